import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Plugin } from './plugin.js';
import { Event, Prompt } from './barrage-plugin/index.js';
import { decodeStream, sseFrames } from './barrage-plugin/testing.js';

const STREAM =
  'data: {"choices":[{"text":"Hello","finish_reason":null}]}\n\n' +
  'data: {"choices":[{"text":" world","finish_reason":"length"}]}\n\n' +
  'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n' +
  'data: [DONE]\n\n';

test('decodes a stream however it is batched', () => {
  const events = decodeStream(new Plugin(), sseFrames(STREAM), { wantText: true });
  assert.deepEqual(events, [
    Event.content(5, undefined, 'Hello'),
    Event.content(6, undefined, ' world'),
    Event.finish('length'),
    Event.usage(5, 2),
    Event.done(),
  ]);
});

test("a chunk that is not JSON is malformed and an error is the server's", () => {
  const frames = sseFrames('data: {oops\n\ndata: {"error":{"message":"overloaded","code":503}}\n\n');
  assert.deepEqual(decodeStream(new Plugin(), frames), [Event.malformed('not a JSON chunk: {oops'), Event.serverError('overloaded', '503')]);
});

test('encodes the generation settings and the extra fields', () => {
  const spec = {
    id: 1n,
    model: 'm',
    prompt: Prompt.text('Say hi'),
    generation: { maxTokens: 8, ignoreEos: false, stream: true, includeUsage: true },
    extra: '{"top_k": 5}',
  };
  const body = new TextDecoder().decode(new Plugin().encode(spec).request.val.body);
  assert.equal(body, '{"max_tokens":8,"model":"m","prompt":"Say hi","stream":true,"stream_options":{"include_usage":true},"top_k":5}');
});
