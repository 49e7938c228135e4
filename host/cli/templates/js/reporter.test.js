import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Plugin } from './plugin.js';
import { render } from './barrage-plugin/testing.js';

test('a line per stage and the statuses', () => {
  const summary = {
    schema_version: 1,
    stages: [{ label: 'constant 5/s', sent: 3, succeeded: 2, failed: 1, ttft_ms: { p50: 12.34 } }],
  };
  const files = render(new Plugin(), summary, [{ status: 'ok' }, { status: 'ok' }, { status: 'http_error' }]);
  assert.equal(files[0].path, '{{name}}.txt');
  assert.equal(
    new TextDecoder().decode(files[0].contents),
    'stage constant 5/s: 3 sent, 2 succeeded, 1 failed, TTFT p50 12.340 ms\nhttp_error: 1\nok: 2\n',
  );
});
