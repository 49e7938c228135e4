// The host as plugin code sees it under Node: what testing.js sets,
// answered the way the host answers.
const MASK = (1n << 64n) - 1n;

export class TestHost {
  constructor() {
    this.config = {};
    this.logs = [];
    this.files = new Map();
    this.records = [];
    this.secrets = new Map();
    this.rngState = 0n;
    this.words = [];
    this.vocab = new Map();
  }

  // SplitMix64, the generator the host's `random` uses.
  nextU64() {
    this.rngState = (this.rngState + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.rngState;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }
}

// One per process, shared by every module that imports this one.
globalThis.__barrageTestHost ??= new TestHost();
export const host = () => globalThis.__barrageTestHost;
export const reset = () => {
  globalThis.__barrageTestHost = new TestHost();
};
