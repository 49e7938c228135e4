import { host } from './state.js';
export const nextU64 = () => host().nextU64();
export function fill(len) {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i += 8) {
    let v = host().nextU64();
    for (let j = i; j < Math.min(i + 8, len); j++, v >>= 8n) out[j] = Number(v & 0xffn);
  }
  return out;
}
