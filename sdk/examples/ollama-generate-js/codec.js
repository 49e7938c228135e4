// The Ollama example codec (sdk/examples/ollama-generate) in JavaScript:
// Ollama's /api/generate, one JSON object per line (NDJSON).
//
// Build:  node ../../js/barrage-plugin/build.mjs --world codec --wit ../../../wit codec.js ollama_generate_js.wasm
// Test:   node --import ../../js/barrage-plugin/register.js --test
import {
  Codec,
  ConfigError,
  Decoder,
  Event,
  Framing,
  config,
  exportCodec,
  frameEvent,
  httpRequest,
  log,
  mergeExtra,
  parseJsonObject,
  snippet,
  utf8Length,
} from '../../js/barrage-plugin/index.js';

const u32 = (v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32;
const FIELDS = {
  response: (v) => typeof v === 'string',
  done: (v) => typeof v === 'boolean',
  done_reason: (v) => v === null || typeof v === 'string',
  prompt_eval_count: (v) => v === null || u32(v),
  eval_count: (v) => v === null || u32(v),
  error: (v) => v === null || typeof v === 'string',
};

// The line's fields, or undefined when it is not one of Ollama's (the same
// lines the Rust example refuses).
function parseLine(data) {
  const line = parseJsonObject(data);
  if (line === undefined) return undefined;
  for (const [key, ok] of Object.entries(FIELDS)) {
    if (key in line && !ok(line[key])) return undefined;
  }
  return line;
}

export function decodeLine(data, wantText) {
  const line = parseLine(data);
  if (line === undefined) {
    log.debug("skipping a line that is not Ollama's JSON");
    return [Event.malformed(`not an Ollama line: ${snippet(data)}`)];
  }
  if (line.error != null) return [Event.serverError(line.error)];
  const events = [];
  const response = line.response ?? '';
  const done = line.done ?? false;
  if (response !== '') {
    // Ollama streams one token per line.
    events.push(Event.content(utf8Length(response), 1, wantText ? response : undefined));
  } else if (!done) {
    events.push(Event.emptyDelta());
  }
  if (done) {
    events.push(Event.finish(line.done_reason ?? 'stop'));
    events.push(Event.usage(line.prompt_eval_count, line.eval_count));
    events.push(Event.done());
  }
  return events;
}

class Lines extends Decoder {
  constructor(wantText) {
    super();
    this.wantText = wantText;
  }

  // Ollama's lines are self-contained: nothing to carry between frames.
  push(frames) {
    return frames.flatMap((f, i) => decodeLine(f.data, this.wantText).map((e) => frameEvent(i, e)));
  }
}

export class OllamaGenerate extends Codec {
  info() {
    return { name: 'ollama-generate-js', version: '0.1.0', description: 'Ollama /api/generate, NDJSON streaming (JavaScript SDK example)' };
  }

  checkConfig(settings) {
    for (const key of Object.keys(settings)) {
      if (key !== 'keep_alive') throw new ConfigError(`unknown field \`${key}\`, expected \`keep_alive\``, key);
    }
  }

  encode(spec) {
    if (spec.prompt.tag !== 'text') throw new Error('ollama-generate takes a text prompt');
    const g = spec.generation;
    const options = {};
    if (g.maxTokens !== undefined) options.num_predict = g.maxTokens;
    if (g.temperature !== undefined) options.temperature = g.temperature;
    const body = { model: spec.model, prompt: spec.prompt.val, stream: g.stream, options };
    const keepAlive = config.value().keep_alive;
    if (keepAlive !== undefined) body.keep_alive = keepAlive;
    mergeExtra(body, spec.extra);
    return {
      request: httpRequest('POST', '/api/generate', [['content-type', 'application/json']], JSON.stringify(body)),
      streaming: g.stream,
      framing: Framing.NDJSON,
    };
  }

  decoder(_head, options) {
    return new Lines(options.wantText);
  }

  decodeUnary(_head, body, options) {
    return decodeLine(body, options.wantText);
  }
}

// componentize-js finds the world's exports under these names.
export const { meta, requestCodec } = exportCodec(new OllamaGenerate());
