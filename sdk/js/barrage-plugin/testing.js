// A stand-in for the host under Node, so plugin logic is tested before it
// is built (run tests with `node --import ./barrage-plugin/register.js
// --test`). Set the configuration and seed, then drive a codec with
// decodeStream, a dataset with generate or a reporter with render, and
// read what it logged with takeLogs. The tokenizer is the approximate
// `words` rule (a token per word).
import { host, reset as resetHost } from './native/state.js';

/** Most events one call may return per frame it was given (plus this many once). */
export const EVENTS_PER_FRAME = 64;

export const reset = resetHost;
export function setConfig(config) {
  host().config = config;
}
/** Grant `value` under `name`, as `--codec-secret` would. */
export function setSecret(name, value) {
  host().secrets.set(name, value);
}
export function setSeed(seed) {
  host().rngState = BigInt(seed);
}
export function takeLogs() {
  const logs = host().logs;
  host().logs = [];
  return logs;
}

/** A frame holding `data` (text or bytes), as the host hands an SSE `data:` payload, an NDJSON line or a gRPC message. */
export const frame = (data, event) => ({
  event,
  data: typeof data === 'string' ? new TextEncoder().encode(data) : Uint8Array.from(data),
});

/**
 * Cut a complete SSE body into frames the way the host does: events are
 * separated by a blank line, `data:` lines joined by a newline, a comment
 * (a line starting with `:`) makes a keep-alive frame with empty data.
 */
export function sseFrames(body) {
  const frames = [];
  for (const block of body.replace(/\r\n/g, '\n').split('\n\n')) {
    let event;
    let data;
    let comment = false;
    for (const line of block.split('\n')) {
      if (line === '') continue;
      if (line.startsWith(':')) {
        comment = true;
        continue;
      }
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (name === 'data') data = data === undefined ? value : `${data}\n${value}`;
      else if (name === 'event') event = value;
    }
    if (data !== undefined) frames.push(frame(data, event));
    else if (comment) frames.push(frame(''));
  }
  return frames;
}

const TAGS = new Set(['content', 'reasoning', 'role-only', 'empty-delta', 'usage', 'finish', 'server-error', 'keep-alive', 'done', 'malformed']);

// Events as text that compares exactly (BigInt and undefined included).
const show = (value) =>
  JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v === undefined ? null : v instanceof Uint8Array ? Array.from(v) : v));

function checkEvent(e) {
  if (e === null || typeof e !== 'object' || !TAGS.has(e.tag)) {
    throw new Error(`${show(e)} is not an event (build events with Event.content(...), Event.done(), ...)`);
  }
}

function checkCount(events, frames) {
  const most = EVENTS_PER_FRAME * (frames + 1);
  if (events > most) throw new Error(`a call given ${frames} frames returned ${events} events; the host takes at most ${most}`);
}

function decodeInBatches(codec, frames, sizes, options) {
  const decoder = codec.decoder({ status: 200, headers: [['content-type', 'text/event-stream']] }, options);
  const events = [];
  let base = 0;
  for (const n of sizes) {
    const out = Array.from(decoder.push(frames.slice(base, base + n)));
    checkCount(out.length, n);
    for (const fe of out) {
      if (!(fe.frame >= 0 && fe.frame < n)) {
        throw new Error(
          `push returned an event for frame ${fe.frame} of a batch of ${n} frames (indexes are 0-based, within the batch); the host fails such a response`,
        );
      }
      checkEvent(fe.event);
      events.push([base + fe.frame, fe.event]);
    }
    base += n;
  }
  const last = Array.from(decoder.finish ? decoder.finish() : []);
  checkCount(last.length, 0);
  last.forEach(checkEvent);
  return events.concat(last.map((e) => [frames.length, e]));
}

/**
 * Decode `frames` as one streamed 200 response and return every event with
 * the index of its frame in the stream (finish's: the frame count).
 *
 * The host hands `push` whatever frames of a stream are ready, one or
 * hundreds, however the bytes arrived. So this decodes three ways (a frame
 * per call, all in one call, batches of 1, 2, 3, ...) and fails unless all
 * three give the same events; it also fails what the host fails: an event
 * naming a frame outside its batch, or too many events.
 */
export function decodeStreamIndexed(codec, frames, options = { wantText: false }) {
  const n = frames.length;
  const growing = [];
  for (let left = n, size = 1; left > 0; size++) {
    growing.push(Math.min(size, left));
    left -= Math.min(size, left);
  }
  const first = decodeInBatches(codec, frames, new Array(n).fill(1), options);
  for (const sizes of [n ? [n] : [], growing]) {
    const other = decodeInBatches(codec, frames, sizes, options);
    if (show(other) !== show(first)) {
      throw new Error(
        `the decoder's events depend on how frames are batched: one frame per push gave ${show(first)}, batches of ${show(sizes)} gave ${show(other)}`,
      );
    }
  }
  return first;
}

export const decodeStream = (codec, frames, options) => decodeStreamIndexed(codec, frames, options).map(([, e]) => e);

/**
 * Check the configuration and drain `dataset`'s samples as the host does.
 * Returns { samples, skipped }; throws the DatasetError that fails it.
 */
export function generate(dataset, { config = {}, seed = 0, files = {} } = {}) {
  resetHost();
  setConfig(config);
  setSeed(seed);
  for (const [name, data] of Object.entries(files)) {
    host().files.set(name, typeof data === 'string' ? new TextEncoder().encode(data) : data);
  }
  dataset.checkConfig?.(config);
  const samples = [];
  const skipped = [];
  for (const item of dataset.samples()) {
    (item instanceof Error ? skipped : samples).push(item);
  }
  return { samples, skipped };
}

/** Render `summary` (with these records) as the host would. */
export function render(reporter, summary, records = []) {
  host().records = records.map((r) => JSON.stringify(r));
  return reporter.render({ schemaVersion: summary.schema_version ?? 0, summary });
}
