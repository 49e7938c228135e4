// Writing a dataset: give `exportDataset` an object whose `samples()` is a
// generator, and export what it returns:
//
//     export const { meta, datasetSource } = exportDataset(new MyDataset());
//
// Yield a sample per request; yield a DatasetError to skip bad input (it is
// counted and shown with its file and line); throw one to fail the run.
import { failure, meta } from './common.js';

export { files } from './files.js';

/** Thrown to fail a generation; yielded to skip bad input. */
export class DatasetError extends Error {
  constructor(message, file, line) {
    super(message);
    this.file = file;
    this.line = line;
  }
}

export const Sample = {
  /** A text prompt with nothing else known. */
  text: (id, prompt) => ({ id: BigInt(id), prompt: { tag: 'text', val: prompt } }),
};

function wireError(e) {
  if (e instanceof DatasetError) {
    return { file: e.file, line: e.line === undefined ? undefined : BigInt(e.line), message: e.message };
  }
  return { file: undefined, line: undefined, message: failure('the dataset', e) };
}

const opt = (v) => (v === null ? undefined : v);

function wireSample(s) {
  return {
    id: BigInt(s.id),
    prompt: s.prompt,
    promptTokens: opt(s.promptTokens),
    outputTokens: opt(s.outputTokens),
    atMs: opt(s.atMs),
    session: s.session ? { session: BigInt(s.session.session), turn: s.session.turn, thinkTimeMs: opt(s.session.thinkTimeMs) } : undefined,
    extra: opt(s.extra),
    tools: s.tools ?? [],
  };
}

export class Dataset {
  checkConfig(_config) {}
}

export function exportDataset(dataset) {
  class Generator {
    constructor(samples) {
      this.samples = samples;
      this.done = false;
    }
    nextBatch(max) {
      const samples = [];
      const skipped = [];
      try {
        while (!this.done && samples.length < max) {
          const next = this.samples.next();
          if (next.done) this.done = true;
          else if (next.value instanceof DatasetError) skipped.push(wireError(next.value));
          else samples.push(wireSample(next.value));
        }
      } catch (e) {
        throw wireError(e);
      }
      return { samples, skipped, done: this.done };
    }
  }
  return {
    meta: meta(dataset),
    datasetSource: {
      Generator,
      open() {
        try {
          return new Generator(dataset.samples()[Symbol.iterator]());
        } catch (e) {
          throw wireError(e);
        }
      },
    },
  };
}
