"""{{name}}: a Barrage codec for OpenAI-style /v1/completions, streamed as
server-sent events. Change `encode` and `decode_chunk` to speak your server."""

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
    export_codec,
    http_error,
    is_success,
    merge_extra,
    parse_json_object,
    snippet,
)


class Plugin(Codec):
    def info(self):
        return PluginInfo("{{name}}", "0.1.0", "OpenAI-style /v1/completions over SSE")

    def check_config(self, config):
        for key in config:
            raise ConfigError(f"unknown field `{key}`: this codec takes no settings", field=key)

    def encode(self, spec):
        if spec.prompt.tag not in ("text", "token-ids"):
            raise ValueError(f"a completions codec takes a text or token-id prompt, not {spec.prompt.tag}")
        g = spec.generation
        body = {"model": spec.model, "prompt": spec.prompt.val, "stream": g.stream}
        if g.max_tokens is not None:
            body["max_tokens"] = g.max_tokens
        if g.min_tokens is not None:
            body["min_tokens"] = g.min_tokens
        if g.ignore_eos:
            body["ignore_eos"] = True
        if g.temperature is not None:
            body["temperature"] = g.temperature
        if g.stream and g.include_usage:
            body["stream_options"] = {"include_usage": True}
        merge_extra(body, spec.extra)
        # Keys sorted, no spaces: the same bytes as the Rust and JavaScript templates.
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        return EncodedRequest(
            HttpRequest("POST", "/v1/completions", [("content-type", "application/json")], data),
            streaming=g.stream,
            framing=Framing.SSE,
        )

    def decoder(self, head, options):
        return Stream(options.want_text)

    def decode_unary(self, head, body, options):
        events = []
        chunk = parse_json_object(body)
        if chunk is not None:
            decode_chunk(chunk, options.want_text, events)
        elif not is_success(head.status):
            events.append(http_error(head.status, body))
        else:
            events.append(Event.malformed(f"not a JSON completion: {snippet(body)}"))
        if not is_success(head.status) and not any(e.tag == "server-error" for e in events):
            events.append(http_error(head.status, body))
        return events


class Stream(Decoder):
    """One response's decoding state: each chunk stands alone, so only the options."""

    def __init__(self, want_text):
        self.want_text = want_text

    def push(self, frames):
        out = []
        for i, frame in enumerate(frames):
            events = []
            decode_frame(frame.data, self.want_text, events)
            out.extend(FrameEvent(i, e) for e in events)
        return out


def decode_frame(data, want_text, events):
    data = data.strip(b" \t\n\r\x0c")  # ASCII whitespace, as the Rust template trims
    if not data:
        return events.append(Event.keep_alive())
    if data == b"[DONE]":
        return events.append(Event.done())
    chunk = parse_json_object(data)
    if chunk is None:
        return events.append(Event.malformed(f"not a JSON chunk: {snippet(data)}"))
    decode_chunk(chunk, want_text, events)


def count(value):
    return value if type(value) is int and 0 <= value < 1 << 32 else None


def decode_chunk(chunk, want_text, events):
    error = chunk.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        if code is not None and not isinstance(code, str):
            code = json.dumps(code)
        message = error.get("message")
        return events.append(Event.server_error(message if isinstance(message, str) else "", code))
    choices = chunk.get("choices")
    choices = choices if isinstance(choices, list) else []
    for choice in choices:
        choice = choice if isinstance(choice, dict) else {}
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else None
        text = choice.get("text")
        if isinstance(text, str) and text:
            events.append(Event.content(len(text.encode()), None, text if want_text else None))
        elif finish is None:
            events.append(Event.empty_delta())
        if finish is not None:
            events.append(Event.finish(finish))
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        events.append(Event.usage(count(usage.get("prompt_tokens")), count(usage.get("completion_tokens"))))
    elif not choices:
        events.append(Event.empty_delta())


# componentize-py finds the world's exports under these names.
Meta, RequestCodec = export_codec(Plugin())
