// The approximate `words` tokenizer: one token per whitespace-separated word.
import { host } from './state.js';
const words = (text) => text.split(/\s+/).filter((w) => w !== '');
export const info = () => ({ name: 'words', exact: false });
export const count = (text) => words(text).length;
export function encode(text) {
  const h = host();
  return Uint32Array.from(
    words(text).map((w) => {
      if (!h.vocab.has(w)) {
        h.vocab.set(w, h.words.length);
        h.words.push(w);
      }
      return h.vocab.get(w);
    }),
  );
}
export const decode = (tokens) => Array.from(tokens, (t) => host().words[t] ?? '<unk>').join(' ');
