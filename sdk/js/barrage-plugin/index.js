// Write Barrage plugins (codecs, datasets, reporters) in JavaScript.
//
// The contract is the `barrage:plugin@0.2.0` WIT package (wit/);
// componentize-js builds a component from a module that exports the
// world's interfaces, which `exportCodec` (here), `exportDataset`
// (dataset.js) or `exportReporter` (reporter.js) make from a plugin object:
//
//     export const { meta, requestCodec } = exportCodec(new MyCodec());
//
// Values have the shapes componentize-js gives WIT types: records are
// objects with camelCase fields, a variant is `{ tag, val }`, an enum a
// string, `option` a value or undefined, `list<u8>` a Uint8Array, `u64` a
// BigInt. The same module runs under Node, where testing.js stands in for
// the host (`node --import ./barrage-plugin/register.js --test`).
//
// A plugin has no files, network, environment or clock: everything comes
// through the contract (config, log, random seeded by the run, tokenizer,
// secrets the user granted).
import { failure, meta } from './common.js';

export { ConfigError, Prompt, message, messageText } from './common.js';
export { config, log, random, secrets, tokenizer } from './host.js';

export const CONTRACT_VERSION = '0.1.0';

/** How the host cuts a response body into frames. */
export const Framing = {
  RAW: 'raw',
  SSE: 'sse',
  NDJSON: 'ndjson',
  GRPC_MESSAGES: 'grpc-messages',
  AWS_EVENT_STREAM: 'aws-event-stream',
};

/** What a successful response carries. */
export const OutputKind = { TOKENS: 'tokens', EMBEDDINGS: 'embeddings', RANKING: 'ranking', IMAGES: 'images', AUDIO: 'audio' };

const delta = (bytes, tokens, text) => ({ bytes, tokens: tokens ?? undefined, text: text ?? undefined });

/** What a codec reports. */
export const Event = {
  content: (bytes, tokens, text) => ({ tag: 'content', val: delta(bytes, tokens, text) }),
  reasoning: (bytes, tokens, text) => ({ tag: 'reasoning', val: delta(bytes, tokens, text) }),
  roleOnly: () => ({ tag: 'role-only' }),
  emptyDelta: () => ({ tag: 'empty-delta' }),
  usage: (promptTokens, completionTokens, cachedTokens, reasoningTokens) => ({
    tag: 'usage',
    val: {
      promptTokens: promptTokens ?? undefined,
      completionTokens: completionTokens ?? undefined,
      cachedTokens: cachedTokens ?? undefined,
      reasoningTokens: reasoningTokens ?? undefined,
    },
  }),
  finish: (reason) => ({ tag: 'finish', val: reason }),
  serverError: (message, code) => ({ tag: 'server-error', val: { code: code ?? undefined, message } }),
  keepAlive: () => ({ tag: 'keep-alive' }),
  done: () => ({ tag: 'done' }),
  malformed: (reason) => ({ tag: 'malformed', val: reason }),
  embeddings: (count, dimensions) => ({ tag: 'embeddings', val: { count, dimensions } }),
  ranking: (count) => ({ tag: 'ranking', val: { count } }),
  image: (count, bytes) => ({ tag: 'image', val: { count, bytes: BigInt(bytes) } }),
  audio: (count, bytes) => ({ tag: 'audio', val: { count, bytes: BigInt(bytes) } }),
};

/** An event and the index, within the batch `push` was given, of its frame. */
export const frameEvent = (frame, event) => ({ frame, event });

/** An HTTP request to send (`path` only: the host sends it to the run's target). */
export const httpRequest = (method, path, headers, body) => ({
  tag: 'http',
  val: { method, path, headers, body: typeof body === 'string' ? new TextEncoder().encode(body) : body },
});

/** A gRPC call: `message` is the serialized request, without the 5-byte prefix. */
export const grpcRequest = (service, method, metadata, message, serverStreaming) => ({
  tag: 'grpc',
  val: { service, method, metadata, message, serverStreaming },
});

/** A codec's base: override `info`, `encode`, `decoder` and `decodeUnary`. */
export class Codec {
  checkConfig(_config) {}
}

/** A response's decoding state: override `push` (and `finish` if it holds anything back). */
export class Decoder {
  finish() {
    return [];
  }
}

/**
 * Merge a request's `extra` fields (a JSON object from the run or dataset
 * configuration) into a JSON body, last, so they win over the codec's.
 */
export function mergeExtra(body, extra) {
  if (extra === undefined || extra === null) return;
  let fields;
  try {
    fields = JSON.parse(extra);
  } catch (e) {
    throw new Error(`extra request fields are not valid JSON: ${e.message}`);
  }
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
    throw new Error('extra request fields must be a JSON object');
  }
  Object.assign(body, fields);
}

const lossy = new TextDecoder();

// The first 200 code points (with `u`, a class matches a whole surrogate pair).
const FIRST_200 = /^[\s\S]{0,200}/u;

/** At most 200 characters of `data` (bytes or text), for error messages. */
export function snippet(data) {
  // 200 characters fit in 800 bytes: decode no more. No loop over the
  // characters: in an interpreter each step is time, the regex engine's are not.
  const text = typeof data === 'string' ? data : lossy.decode(data.subarray(0, 800));
  const cut = typeof data !== 'string' && data.length > 800;
  if (text.length <= 200 && !cut) return text;
  const head = FIRST_200.exec(text)[0];
  return head.length < text.length || cut ? head + '…' : text;
}

const isJsonSpace = (c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * `data` (bytes or text) parsed as a JSON object, or undefined when it is
 * not one. Cheap on junk: what does not start with `{` is never handed to
 * JSON.parse, whose exceptions cost an interpreter dearly. Bytes that are
 * not UTF-8 read as U+FFFD.
 */
export function parseJsonObject(data) {
  const text = typeof data === 'string' ? data : lossy.decode(data);
  let i = 0;
  while (i < text.length && isJsonSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 0x7b) return undefined;
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The length of `text` in UTF-8 bytes (what a content event counts), without encoding it. */
export function utf8Length(text) {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

export const isSuccess = (status) => status >= 200 && status < 300;

/** The event for a failed status whose body said nothing readable as an error. */
export const httpError = (status, body) => Event.serverError(`HTTP ${status}: ${snippet(body)}`, String(status));

/**
 * The codec world's exports for `codec`. A thrown exception becomes the
 * call's error (its stack logged at debug), never a trap.
 */
/** A batch's frames, each `{ event, data }` viewing the batch's buffer (no copy). */
function framesOf(batch) {
  const { data } = batch;
  const view = (span) => data.subarray(span.start, span.start + span.len);
  return batch.frames.map((f) => ({ event: f.event ? lossy.decode(view(f.event)) : undefined, data: view(f.data) }));
}

export function exportCodec(codec) {
  class ExportedDecoder {
    constructor(head, options) {
      this.inner = codec.decoder(head, options);
    }
    push(batch) {
      try {
        return this.inner.push(framesOf(batch));
      } catch (e) {
        throw failure('push', e);
      }
    }
    finish() {
      try {
        return this.inner.finish ? this.inner.finish() : [];
      } catch (e) {
        throw failure('finish', e);
      }
    }
  }
  return {
    meta: meta(codec),
    requestCodec: {
      Decoder: ExportedDecoder,
      encode(spec) {
        try {
          return { output: OutputKind.TOKENS, promptTokens: undefined, ...codec.encode(spec) };
        } catch (e) {
          throw failure('encode', e);
        }
      },
      decodeUnary(head, body, options) {
        try {
          return codec.decodeUnary(head, body, options);
        } catch (e) {
          throw failure('decodeUnary', e);
        }
      },
    },
  };
}
