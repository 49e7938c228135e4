// What the host offers every plugin: log, config, random, tokenizer, secrets, and a
// dataset's files and a reporter's records. Inside a component these are
// the contract's imports; under Node (unit tests) the loader hook in
// register.js resolves them to native/*.js, which testing.js drives.
import * as hostLog from 'barrage:plugin/log@0.2.0';
import * as hostConfig from 'barrage:plugin/config@0.2.0';
import * as hostRandom from 'barrage:plugin/random@0.2.0';
import * as hostTokenizer from 'barrage:plugin/tokenizer@0.2.0';
import * as hostSecrets from 'barrage:plugin/secrets@0.2.0';

function logAt(level) {
  return (message) => hostLog.log(level, String(message));
}

/** Log lines the host shows with the plugin's name (its log budget applies). */
export const log = {
  log: (level, message) => hostLog.log(level, String(message)),
  trace: logAt('trace'),
  debug: logAt('debug'),
  info: logAt('info'),
  warn: logAt('warn'),
  error: logAt('error'),
};

let raw;

/** The table the user gave the plugin (`--codec-config`, a run config's section). */
export const config = {
  // Asked once per instance: the configuration cannot change while it
  // lives. (Not under Node, where each test sets its own.)
  raw: () => (globalThis.__barrageTestHost ? hostConfig.get() : (raw ??= hostConfig.get())),
  value() {
    try {
      const value = JSON.parse(config.raw());
      return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
    } catch {
      return {};
    }
  },
};

/** The run's seeded random source: the same seed, the same numbers. */
export const random = {
  /** The next 64 random bits, as a BigInt. */
  nextU64: () => hostRandom.nextU64(),
  /** A uniform number in [0, 1). */
  nextF64: () => Number(hostRandom.nextU64() >> 11n) / 2 ** 53,
  /** `len` random bytes. */
  fill: (len) => hostRandom.fill(len),
};

/** The run's tokenizer. */
export const tokenizer = {
  info: () => hostTokenizer.info(),
  count: (text) => hostTokenizer.count(text),
  encode: (text) => Array.from(hostTokenizer.encode(text)),
  decode: (tokens) => hostTokenizer.decode(Uint32Array.from(tokens)),
};

/**
 * Secrets the user granted this plugin, by the names its info declares
 * (`secrets: [{ name, required, description }]`). Never log or show a
 * value: the host masks it wherever it finds it, but not a transformed one.
 */
export const secrets = {
  /** The value granted under `name`; throws when none was. */
  get: (name) => hostSecrets.get(name),
};
