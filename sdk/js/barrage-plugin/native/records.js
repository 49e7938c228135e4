import { host } from './state.js';
export const count = () => BigInt(host().records.length);
export const nextBatch = (max) => host().records.splice(0, max);
