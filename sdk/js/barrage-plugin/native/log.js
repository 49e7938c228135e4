import { host } from './state.js';
export function log(level, message) {
  host().logs.push([level, message]);
}
