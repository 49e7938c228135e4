// {{name}}: a Barrage codec for OpenAI-style /v1/completions, streamed as
// server-sent events. Change `encode` and `decodeChunk` to speak your server.
import {
  Codec,
  ConfigError,
  Decoder,
  Event,
  Framing,
  exportCodec,
  frameEvent,
  httpError,
  httpRequest,
  isSuccess,
  mergeExtra,
  parseJsonObject,
  snippet,
  utf8Length,
} from './barrage-plugin/index.js';

// Keys sorted at every level, no spaces: the same bytes as the Rust and Python
// templates (but for a whole-number float, which JavaScript writes as 1, not 1.0).
const sorted = (v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v)
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]))
    : v;

const count = (v) => (Number.isInteger(v) && v >= 0 && v < 2 ** 32 ? v : undefined);

function decodeChunk(chunk, wantText, events) {
  const error = chunk.error;
  if (error !== null && typeof error === 'object' && !Array.isArray(error)) {
    const code = error.code === undefined || error.code === null ? undefined : typeof error.code === 'string' ? error.code : JSON.stringify(error.code);
    events.push(Event.serverError(typeof error.message === 'string' ? error.message : '', code));
    return;
  }
  const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
  for (let choice of choices) {
    if (choice === null || typeof choice !== 'object' || Array.isArray(choice)) choice = {};
    const finish = typeof choice.finish_reason === 'string' ? choice.finish_reason : undefined;
    if (typeof choice.text === 'string' && choice.text !== '') {
      events.push(Event.content(utf8Length(choice.text), undefined, wantText ? choice.text : undefined));
    } else if (finish === undefined) {
      events.push(Event.emptyDelta());
    }
    if (finish !== undefined) events.push(Event.finish(finish));
  }
  const usage = chunk.usage;
  if (usage !== null && typeof usage === 'object' && !Array.isArray(usage)) {
    events.push(Event.usage(count(usage.prompt_tokens), count(usage.completion_tokens)));
  } else if (choices.length === 0) {
    events.push(Event.emptyDelta());
  }
}

const DONE = new TextEncoder().encode('[DONE]');
const isSpace = (b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0c;

function decodeFrame(data, wantText, events) {
  let start = 0;
  let end = data.length;
  while (start < end && isSpace(data[start])) start++;
  while (end > start && isSpace(data[end - 1])) end--;
  data = data.subarray(start, end);
  if (data.length === 0) return events.push(Event.keepAlive());
  if (data.length === DONE.length && data.every((b, i) => b === DONE[i])) return events.push(Event.done());
  const chunk = parseJsonObject(data);
  if (chunk === undefined) return events.push(Event.malformed(`not a JSON chunk: ${snippet(data)}`));
  decodeChunk(chunk, wantText, events);
}

// One response's decoding state: each chunk stands alone, so only the options.
class Stream extends Decoder {
  constructor(wantText) {
    super();
    this.wantText = wantText;
  }

  push(frames) {
    const out = [];
    frames.forEach((frame, i) => {
      const events = [];
      decodeFrame(frame.data, this.wantText, events);
      for (const e of events) out.push(frameEvent(i, e));
    });
    return out;
  }
}

export class Plugin extends Codec {
  info() {
    return { name: '{{name}}', version: '0.1.0', description: 'OpenAI-style /v1/completions over SSE' };
  }

  checkConfig(config) {
    for (const key of Object.keys(config)) {
      throw new ConfigError(`unknown field \`${key}\`: this codec takes no settings`, key);
    }
  }

  encode(spec) {
    if (spec.prompt.tag !== 'text' && spec.prompt.tag !== 'token-ids') {
      throw new Error(`a completions codec takes a text or token-id prompt, not ${spec.prompt.tag}`);
    }
    const g = spec.generation;
    const prompt = spec.prompt.tag === 'token-ids' ? Array.from(spec.prompt.val) : spec.prompt.val;
    const body = { model: spec.model, prompt, stream: g.stream };
    if (g.maxTokens !== undefined) body.max_tokens = g.maxTokens;
    if (g.minTokens !== undefined) body.min_tokens = g.minTokens;
    if (g.ignoreEos) body.ignore_eos = true;
    if (g.temperature !== undefined) body.temperature = g.temperature;
    if (g.stream && g.includeUsage) body.stream_options = { include_usage: true };
    mergeExtra(body, spec.extra);
    return {
      request: httpRequest('POST', '/v1/completions', [['content-type', 'application/json']], JSON.stringify(sorted(body))),
      streaming: g.stream,
      framing: Framing.SSE,
    };
  }

  decoder(_head, options) {
    return new Stream(options.wantText);
  }

  decodeUnary(head, body, options) {
    const events = [];
    const chunk = parseJsonObject(body);
    if (chunk !== undefined) decodeChunk(chunk, options.wantText, events);
    else if (!isSuccess(head.status)) events.push(httpError(head.status, body));
    else events.push(Event.malformed(`not a JSON completion: ${snippet(body)}`));
    if (!isSuccess(head.status) && !events.some((e) => e.tag === 'server-error')) events.push(httpError(head.status, body));
    return events;
  }
}

// componentize-js finds the world's exports under these names.
export const { meta, requestCodec } = exportCodec(new Plugin());
