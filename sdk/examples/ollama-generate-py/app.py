"""The Ollama example codec (sdk/examples/ollama-generate) in Python:
Ollama's /api/generate, one JSON object per line (NDJSON).

Build:  componentize-py -d ../../../wit -w codec componentize -p . -p ../../python app -o ollama_generate_py.wasm
Test:   PYTHONPATH=../../python python3 -m unittest
"""

import json

from barrage_plugin import (
    Codec,
    ConfigError,
    Decoder,
    EncodedRequest,
    Event,
    FrameEvent,
    Framing,
    HttpRequest,
    PluginInfo,
    config,
    export_codec,
    log,
    merge_extra,
    parse_json_object,
    snippet,
)


class OllamaGenerate(Codec):
    def info(self):
        return PluginInfo("ollama-generate-py", "0.1.0", "Ollama /api/generate, NDJSON streaming (Python SDK example)")

    def check_config(self, settings):
        for key in settings:
            if key != "keep_alive":
                raise ConfigError(f"unknown field `{key}`, expected `keep_alive`", field=key)

    def encode(self, spec):
        if spec.prompt.tag != "text":
            raise ValueError("ollama-generate takes a text prompt")
        g = spec.generation
        options = {}
        if g.max_tokens is not None:
            options["num_predict"] = g.max_tokens
        if g.temperature is not None:
            options["temperature"] = g.temperature
        body = {"model": spec.model, "prompt": spec.prompt.val, "stream": g.stream, "options": options}
        keep_alive = config.value().get("keep_alive")
        if keep_alive is not None:
            body["keep_alive"] = keep_alive
        merge_extra(body, spec.extra)
        return EncodedRequest(
            HttpRequest("POST", "/api/generate", [("content-type", "application/json")], json.dumps(body).encode()),
            streaming=g.stream,
            framing=Framing.NDJSON,
        )

    def decoder(self, head, options):
        return Lines(options.want_text)

    def decode_unary(self, head, body, options):
        return decode_line(body, options.want_text)


class Lines(Decoder):
    """Ollama's lines are self-contained: nothing to carry between frames."""

    def __init__(self, want_text):
        self.want_text = want_text

    def push(self, frames):
        return [FrameEvent(i, e) for i, f in enumerate(frames) for e in decode_line(f.data, self.want_text)]


def parse_line(data):
    """The line as a dict of the fields read, or None when it is not one of
    Ollama's (the same lines the Rust example refuses)."""
    line = parse_json_object(data)
    if line is None:
        return None
    def u32(v):
        return type(v) is int and 0 <= v < 1 << 32
    kinds = {
        "response": lambda v: isinstance(v, str),
        "done": lambda v: isinstance(v, bool),
        "done_reason": lambda v: v is None or isinstance(v, str),
        "prompt_eval_count": lambda v: v is None or u32(v),
        "eval_count": lambda v: v is None or u32(v),
        "error": lambda v: v is None or isinstance(v, str),
    }
    if not all(ok(line[key]) for key, ok in kinds.items() if key in line):
        return None
    return line


def decode_line(data, want_text):
    line = parse_line(data)
    if line is None:
        log.debug("skipping a line that is not Ollama's JSON")
        return [Event.malformed(f"not an Ollama line: {snippet(data)}")]
    if line.get("error") is not None:
        return [Event.server_error(line["error"])]
    events = []
    response = line.get("response") or ""
    done = bool(line.get("done", False))
    if response:
        # Ollama streams one token per line.
        events.append(Event.content(len(response.encode()), 1, response if want_text else None))
    elif not done:
        events.append(Event.empty_delta())
    if done:
        events.append(Event.finish(line.get("done_reason") or "stop"))
        events.append(Event.usage(line.get("prompt_eval_count"), line.get("eval_count")))
        events.append(Event.done())
    return events


# componentize-py finds the world's exports under these names.
Meta, RequestCodec = export_codec(OllamaGenerate())
