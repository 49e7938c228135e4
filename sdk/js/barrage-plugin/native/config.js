import { host } from './state.js';
export const get = () => JSON.stringify(host().config);
