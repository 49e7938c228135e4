// The JavaScript guest library under Node: the test host answers as the
// real one does, and the harness catches what the host would refuse.
// Run: node --import ./barrage-plugin/register.js --test test/
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Decoder, Event, frameEvent, mergeExtra, parseJsonObject, random, snippet, tokenizer, utf8Length } from '../barrage-plugin/index.js';
import { files } from '../barrage-plugin/dataset.js';
import { records } from '../barrage-plugin/reporter.js';
import * as testing from '../barrage-plugin/testing.js';

// A frame per content event; `answer` says how it goes wrong.
const counting = (answer = 'right') => ({
  decoder() {
    return new (class extends Decoder {
      push(frames) {
        if (answer === 'per-batch') return [frameEvent(0, Event.content(1, 1))];
        if (answer === 'past-the-end') return [frameEvent(frames.length, Event.content(1, 1))];
        if (answer === 'not-an-event') return [frameEvent(0, 'content')];
        return frames.map((f, i) => frameEvent(i, Event.content(f.data.length, 1)));
      }
    })();
  },
});

test('the harness pushes as the host does and catches what the host refuses', () => {
  const frames = Array.from({ length: 70 }, (_, i) => testing.frame(String(i)));
  const indexed = testing.decodeStreamIndexed(counting(), frames);
  assert.deepEqual(
    indexed.map(([i]) => i),
    Array.from({ length: 70 }, (_, i) => i),
  );
  assert.throws(() => testing.decodeStream(counting('per-batch'), frames), /depend on how frames are batched/);
  assert.throws(() => testing.decodeStream(counting('past-the-end'), frames), /push returned an event for frame 1 of a batch of 1 frames/);
  assert.throws(() => testing.decodeStream(counting('not-an-event'), frames), /is not an event/);
});

test('SSE frames are cut as the host cuts them', () => {
  const frames = testing.sseFrames('event: x\r\ndata: a\r\ndata: b\r\n\r\n: ping\n\ndata:c\n\nid: 7\n\n');
  assert.deepEqual(
    frames.map((f) => [f.event, new TextDecoder().decode(f.data)]),
    [['x', 'a\nb'], [undefined, ''], [undefined, 'c']],
  );
});

test("random is the host's SplitMix64", () => {
  testing.reset();
  testing.setSeed(0);
  // SplitMix64's first output for seed 0, as the host and the Rust SDK give it.
  assert.equal(random.nextU64(), 0xe220a8397b1dcdafn);
  const f = random.nextF64();
  assert.ok(f >= 0 && f < 1);
  assert.equal(random.fill(11).length, 11);
});

test('the words tokenizer', () => {
  testing.reset();
  const ids = tokenizer.encode('the sky is the sky');
  assert.deepEqual(ids, [0, 1, 2, 0, 1]);
  assert.equal(tokenizer.decode([...ids, 99]), 'the sky is the sky <unk>');
  assert.equal(tokenizer.count('  two   words '), 2);
});

test('files are read by line as the Rust SDK reads them', () => {
  testing.generate({ samples: () => [] }, { files: { 'a.txt': 'one\r\ntwo\rstill two\n\nlast' } });
  assert.deepEqual([...files.lines('a.txt')], [[1, 'one'], [2, 'two\rstill two'], [3, ''], [4, 'last']]);
  assert.equal(new TextDecoder().decode(files.read('a.txt', 5, 3)), 'two');
  assert.throws(() => files.size('other.txt'), /not one of the dataset's files/);
});

test('records come in order', () => {
  testing.render({ render: () => [] }, { schema_version: 1 }, Array.from({ length: 2500 }, (_, id) => ({ id })));
  assert.deepEqual(
    [...records.each()].map((r) => r.id),
    Array.from({ length: 2500 }, (_, i) => i),
  );
});

test('helpers', () => {
  const body = { a: 1 };
  mergeExtra(body, '{"a": 2, "b": 3}');
  assert.deepEqual(body, { a: 2, b: 3 });
  assert.throws(() => mergeExtra(body, '[1]'), /must be a JSON object/);
  assert.throws(() => mergeExtra(body, '{oops'), /not valid JSON/);
  const e = new TextEncoder();
  assert.equal(snippet(e.encode('é'.repeat(300))), 'é'.repeat(200) + '…');
  assert.equal(snippet(e.encode('𝄞'.repeat(250))), '𝄞'.repeat(200) + '…');
  assert.equal(snippet(Uint8Array.from([0xff, 0x20, 0x6f, 0x6b])), '\ufffd ok');
  assert.equal(utf8Length('aé☕𝄞'), 1 + 2 + 3 + 4);
  assert.deepEqual(parseJsonObject(e.encode(' {"a": 1} ')), { a: 1 });
  for (const junk of ['[1]', 'NaN', '{"a": NaN}', '']) assert.equal(parseJsonObject(e.encode(junk)), undefined, junk);
});
