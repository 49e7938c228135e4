import assert from 'node:assert/strict';
import { test } from 'node:test';

import { OllamaGenerate } from './codec.js';
import { Event, Prompt } from '../../js/barrage-plugin/index.js';
import { decodeStream, frame, setConfig } from '../../js/barrage-plugin/testing.js';

test('decodes a stream', () => {
  const frames = [
    frame('{"response":"The","done":false}'),
    frame('{"response":" sky","done":false}'),
    frame('{"response":"","done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2}'),
  ];
  const events = decodeStream(new OllamaGenerate(), frames, { wantText: true });
  assert.deepEqual(events[0], Event.content(3, 1, 'The'));
  assert.deepEqual(events.slice(2), [Event.finish('stop'), Event.usage(26, 2), Event.done()]);
});

test('a line that is not JSON is malformed', () => {
  const events = decodeStream(new OllamaGenerate(), [frame('{not json')]);
  assert.deepEqual(events, [Event.malformed('not an Ollama line: {not json')]);
});

test('encodes with the configured keep_alive and the extra fields', () => {
  setConfig({ keep_alive: '10m' });
  const spec = {
    id: 1n,
    model: 'llama3',
    prompt: Prompt.text('Why is the sky blue?'),
    generation: { maxTokens: 8, ignoreEos: false, stream: true, includeUsage: false },
    extra: '{"raw": true, "keep_alive": "1h"}',
  };
  const req = new OllamaGenerate().encode(spec);
  const body = JSON.parse(new TextDecoder().decode(req.request.val.body));
  // Extra fields win over generated ones.
  assert.deepEqual([body.keep_alive, body.raw, body.options.num_predict], ['1h', true, 8]);
  assert.equal(req.framing, 'ndjson');
});

test('rejects unknown settings', () => {
  assert.throws(() => new OllamaGenerate().checkConfig({ keepalive: '1m' }), /unknown field `keepalive`/);
});
