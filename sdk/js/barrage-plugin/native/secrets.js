import { host } from './state.js';
export function get(name) {
  if (!host().secrets.has(name)) throw `no secret \`${name}\` was granted`;
  return host().secrets.get(name);
}
