import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Plugin } from './plugin.js';
import { DatasetError } from './barrage-plugin/dataset.js';
import { generate } from './barrage-plugin/testing.js';

const PROMPTS = '# greetings\nSay hi\n\nSay hello to the world\nwho are you\n';
const texts = (samples) => samples.map((s) => s.prompt.val);

test('a prompt per line with its token count', () => {
  const { samples } = generate(new Plugin(), { config: { output_tokens: 16 }, files: { 'prompts.txt': PROMPTS } });
  assert.deepEqual(texts(samples), ['Say hi', 'Say hello to the world', 'who are you']);
  assert.deepEqual([samples[1].promptTokens, samples[1].outputTokens], [5, 16]);
});

test('a line too long is skipped with its file and line', () => {
  const { samples, skipped } = generate(new Plugin(), { config: { max_chars: 11 }, files: { 'prompts.txt': PROMPTS } });
  assert.deepEqual(texts(samples), ['Say hi', 'who are you']);
  assert.ok(skipped[0] instanceof DatasetError);
  assert.deepEqual([skipped[0].message, skipped[0].file, skipped[0].line], ['a prompt of more than 11 characters (max_chars)', 'prompts.txt', 4]);
});

test('the seed decides the shuffled order', () => {
  const order = (seed) => texts(generate(new Plugin(), { config: { shuffle: true }, seed, files: { 'prompts.txt': PROMPTS } }).samples);
  assert.deepEqual(order(7), order(7));
  assert.deepEqual([...order(7)].sort(), ['Say hello to the world', 'Say hi', 'who are you']);
});
