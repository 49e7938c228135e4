import { host } from './state.js';
function bytes(name) {
  const data = host().files.get(name);
  // The host's error is the `err` of a result: componentize-js throws it.
  if (data === undefined) throw `\`${name}\` is not one of the dataset's files`;
  return data;
}
export const names = () => [...host().files.keys()];
export const size = (name) => BigInt(bytes(name).length);
export const read = (name, offset, len) => bytes(name).slice(Number(offset), Number(offset) + len);
