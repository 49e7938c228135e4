"""The glue componentize-py calls: it finds a world's exports as classes
(`Meta`, `RequestCodec`, ...) in the app module and an exported resource
in a module named after its interface (`request_codec.Decoder`,
`dataset_source.Generator`, the shims beside this package). Each turns the
plugin's objects into the generated types and back, and turns a Python
exception into the contract's error (logged with its traceback at debug)
rather than a trap.
"""

import json
import traceback

from . import types as t
from .host import IN_WASM, config, log, world_module

# Each world has one of the three.
_rc = world_module("exports.request_codec")
_ds = world_module("exports.dataset_source")
_rr = world_module("exports.report_renderer")
if IN_WASM:
    from componentize_py_types import Err
    from wit_world.imports import types as _types

_PLUGIN = {}


def _failure(what: str, e: BaseException) -> str:
    log.debug(f"{what} raised:\n{traceback.format_exc()}")
    return f"{type(e).__name__}: {e}" if not isinstance(e, (ValueError, OSError)) else str(e)


class _Meta:
    def info(self):
        i = _PLUGIN["plugin"].info()
        secrets = [_types.SecretNeed(name=s.name, required=s.required, description=s.description) for s in i.secrets]
        return _types.PluginInfo(name=i.name, version=i.version, description=i.description, secrets=secrets)

    def check_config(self) -> None:
        try:
            _PLUGIN["plugin"].check_config(json.loads(config.raw()))
        except t.ConfigError as e:
            raise Err(_types.ConfigError(field=e.field, message=e.message))
        except ValueError as e:
            raise Err(_types.ConfigError(field=None, message=f"configuration is not valid JSON: {e}"))
        except Exception as e:
            raise Err(_types.ConfigError(field=None, message=_failure("check_config", e)))


def _meta(plugin) -> type:
    _PLUGIN["plugin"] = plugin
    return _Meta


# --- codec -----------------------------------------------------------------


def _media_in(m) -> t.Media:
    if isinstance(m.source, _types.MediaSource_Inline):
        return t.Media(m.media_type, data=bytes(m.source.value), tokens=m.tokens)
    return t.Media(m.media_type, url=m.source.value, tokens=m.tokens)


def _part_in(p) -> t.ContentPart:
    if isinstance(p, _types.ContentPart_Text):
        return t.ContentPart("text", p.value)
    if isinstance(p, _types.ContentPart_Image):
        return t.ContentPart("image", _media_in(p.value))
    return t.ContentPart("audio", _media_in(p.value))


def _message_in(m) -> t.Message:
    parts = list(m.content)
    content = parts[0].value if len(parts) == 1 and isinstance(parts[0], _types.ContentPart_Text) else [_part_in(p) for p in parts]
    calls = [t.ToolCall(c.id, c.name, c.arguments) for c in m.tool_calls]
    return t.Message(m.role, content, calls, m.tool_call_id)


def _prompt_in(p) -> t.Prompt:
    if isinstance(p, _types.Prompt_Text):
        return t.Prompt.text(p.value)
    if isinstance(p, _types.Prompt_Messages):
        return t.Prompt.messages([_message_in(m) for m in p.value])
    if isinstance(p, _types.Prompt_Inputs):
        return t.Prompt.inputs(list(p.value))
    if isinstance(p, _types.Prompt_Rerank):
        return t.Prompt.rerank(p.value.query, list(p.value.documents))
    return t.Prompt.token_ids(list(p.value))


def _tool_in(x) -> t.Tool:
    return t.Tool(x.name, x.parameters, x.description)


def _spec_in(s) -> t.RequestSpec:
    g = s.generation
    generation = t.Generation(g.max_tokens, g.min_tokens, g.ignore_eos, g.temperature, g.stream, g.include_usage)
    send_time = t.Datetime(s.send_time.seconds, s.send_time.nanoseconds)
    tools = [_tool_in(x) for x in s.tools]
    return t.RequestSpec(s.id, s.model, _prompt_in(s.prompt), generation, s.extra, tools, send_time)


def _frames_in(batch):
    """The batch's frames as Frame objects (each a copy of its bytes)."""
    data = bytes(batch.data)

    def cut(span):
        return data[span.start : span.start + span.len]

    return [t.Frame(f.event and cut(f.event).decode("utf-8", "replace"), cut(f.data)) for f in batch.frames]


def _codec_out():
    rc = _rc
    delta = lambda d: rc.ContentDelta(bytes=d.bytes, tokens=d.tokens, text=d.text)  # noqa: E731
    events = {
        "content": lambda v: rc.Event_Content(delta(v)),
        "reasoning": lambda v: rc.Event_Reasoning(delta(v)),
        "role-only": lambda v: rc.Event_RoleOnly(),
        "empty-delta": lambda v: rc.Event_EmptyDelta(),
        "usage": lambda v: rc.Event_Usage(
            rc.Usage(
                prompt_tokens=v.prompt_tokens,
                completion_tokens=v.completion_tokens,
                cached_tokens=v.cached_tokens,
                reasoning_tokens=v.reasoning_tokens,
            )
        ),
        "finish": lambda v: rc.Event_Finish(v),
        "server-error": lambda v: rc.Event_ServerError(rc.ServerError(code=v.code, message=v.message)),
        "keep-alive": lambda v: rc.Event_KeepAlive(),
        "done": lambda v: rc.Event_Done(),
        "malformed": lambda v: rc.Event_Malformed(v),
        "embeddings": lambda v: rc.Event_Embeddings(rc.Embeddings(count=v[0], dimensions=v[1])),
        "ranking": lambda v: rc.Event_Ranking(rc.Ranking(count=v)),
        "image": lambda v: rc.Event_Image(rc.MediaOutput(count=v[0], bytes=v[1])),
        "audio": lambda v: rc.Event_Audio(rc.MediaOutput(count=v[0], bytes=v[1])),
    }
    framings = {
        t.Framing.RAW: rc.Framing.RAW,
        t.Framing.SSE: rc.Framing.SSE,
        t.Framing.NDJSON: rc.Framing.NDJSON,
        t.Framing.GRPC_MESSAGES: rc.Framing.GRPC_MESSAGES,
        t.Framing.AWS_EVENT_STREAM: rc.Framing.AWS_EVENT_STREAM,
    }
    outputs = {
        t.OutputKind.TOKENS: rc.OutputKind.TOKENS,
        t.OutputKind.EMBEDDINGS: rc.OutputKind.EMBEDDINGS,
        t.OutputKind.RANKING: rc.OutputKind.RANKING,
        t.OutputKind.IMAGES: rc.OutputKind.IMAGES,
        t.OutputKind.AUDIO: rc.OutputKind.AUDIO,
    }

    def event(e):
        make = events.get(e.tag)
        if make is None:
            raise ValueError(f"an event's tag must be one of {sorted(events)}, not {e.tag!r}")
        return make(e.val)

    def request(r):
        if isinstance(r.request, t.HttpRequest):
            h = r.request
            wire = rc.WireRequest_Http(
                rc.HttpRequest(method=h.method, path=h.path, headers=list(h.headers), body=bytes(h.body))
            )
        elif isinstance(r.request, t.GrpcRequest):
            g = r.request
            wire = rc.WireRequest_Grpc(
                rc.GrpcRequest(
                    service=g.service,
                    method=g.method,
                    metadata=list(g.metadata),
                    message=bytes(g.message),
                    server_streaming=g.server_streaming,
                )
            )
        else:
            raise ValueError("EncodedRequest.request must be an HttpRequest or a GrpcRequest")
        if r.framing not in framings:
            raise ValueError(f"framing must be one of {sorted(framings)}, not {r.framing!r}")
        if r.output not in outputs:
            raise ValueError(f"output must be one of {sorted(outputs)}, not {r.output!r}")
        return rc.EncodedRequest(
            request=wire,
            streaming=r.streaming,
            framing=framings[r.framing],
            output=outputs[r.output],
            prompt_tokens=r.prompt_tokens,
        )

    return rc, event, request


class _RequestCodec:
    def encode(self, spec):
        try:
            return _CODEC["request"](_PLUGIN["plugin"].encode(_spec_in(spec)))
        except Exception as e:
            raise Err(_failure("encode", e))

    def decode_unary(self, head, body, options):
        event = _CODEC["event"]
        try:
            return [event(e) for e in _PLUGIN["plugin"].decode_unary(head, bytes(body), options)]
        except Exception as e:
            raise Err(_failure("decode_unary", e))


_CODEC = {}


def export_codec(plugin):
    """The exports of a codec world for `plugin` (a `Codec`): assign them in
    the app module as `Meta, RequestCodec = export_codec(MyCodec())`."""
    if IN_WASM:
        rc, event, request = _codec_out()
        _CODEC.update(rc=rc, event=event, request=request)
    return _meta(plugin), _RequestCodec


class Decoder:
    """The `decoder` resource: the plugin's decoder for one response."""

    def __init__(self, head, options):
        self.inner = _PLUGIN["plugin"].decoder(head, options)

    def push(self, batch):
        rc, event = _CODEC["rc"], _CODEC["event"]
        try:
            frames = _frames_in(batch)
            return [rc.FrameEvent(frame=fe.frame, event=event(fe.event)) for fe in self.inner.push(frames)]
        except Exception as e:
            raise Err(_failure("push", e))

    def finish(self):
        event = _CODEC["event"]
        try:
            return [event(e) for e in self.inner.finish()]
        except Exception as e:
            raise Err(_failure("finish", e))


# --- dataset ---------------------------------------------------------------


def _dataset_error(e):
    ds = _ds
    if isinstance(e, t.DatasetError):
        return ds.DatasetError(file=e.file, line=e.line, message=e.message)
    return ds.DatasetError(file=None, line=None, message=_failure("the dataset", e))


def _media_out(m):
    source = _types.MediaSource_Inline(bytes(m.data)) if m.data is not None else _types.MediaSource_Url(m.url)
    return _types.Media(media_type=m.media_type, source=source, tokens=m.tokens)


def _part_out(p):
    if p.tag == "text":
        return _types.ContentPart_Text(p.val)
    if p.tag == "image":
        return _types.ContentPart_Image(_media_out(p.val))
    if p.tag == "audio":
        return _types.ContentPart_Audio(_media_out(p.val))
    raise ValueError(f"a content part's tag must be text, image or audio, not {p.tag!r}")


def _message_out(m):
    parts = [_types.ContentPart_Text(m.content)] if isinstance(m.content, str) else [_part_out(p) for p in m.content]
    calls = [_types.ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in m.tool_calls]
    return _types.Message(role=m.role, content=parts, tool_calls=calls, tool_call_id=m.tool_call_id)


def _prompt_out(p):
    if p.tag == "text":
        return _types.Prompt_Text(p.val)
    if p.tag == "messages":
        return _types.Prompt_Messages([_message_out(m) for m in p.val])
    if p.tag == "token-ids":
        return _types.Prompt_TokenIds(list(p.val))
    if p.tag == "inputs":
        return _types.Prompt_Inputs(list(p.val))
    if p.tag == "rerank":
        return _types.Prompt_Rerank(_types.RerankQuery(query=p.val.query, documents=list(p.val.documents)))
    raise ValueError(f"a prompt's tag must be text, messages, token-ids, inputs or rerank, not {p.tag!r}")


def _sample_out(s):
    ds = _ds
    session = s.session and ds.SessionTurn(session=s.session.session, turn=s.session.turn, think_time_ms=s.session.think_time_ms)
    return ds.Sample(
        id=s.id,
        prompt=_prompt_out(s.prompt),
        prompt_tokens=s.prompt_tokens,
        output_tokens=s.output_tokens,
        at_ms=s.at_ms,
        session=session,
        extra=s.extra,
        tools=[_types.Tool(name=x.name, description=x.description, parameters=x.parameters) for x in s.tools],
    )


class _DatasetSource:
    def open(self):
        try:
            return Generator(iter(_PLUGIN["plugin"].samples()))
        except Exception as e:
            raise Err(_dataset_error(e))


class Generator:
    """The `generator` resource: batches of what the plugin's `samples` yields."""

    def __init__(self, samples):
        self.samples = samples
        self.done = False

    def next_batch(self, max):
        ds = _ds
        samples, skipped = [], []
        try:
            while not self.done and len(samples) < max:
                item = next(self.samples, None)
                if item is None:
                    self.done = True
                elif isinstance(item, t.DatasetError):
                    skipped.append(_dataset_error(item))
                else:
                    samples.append(_sample_out(item))
        except Exception as e:
            raise Err(_dataset_error(e))
        return ds.Batch(samples=samples, skipped=skipped, done=self.done)


def export_dataset(plugin):
    """The exports of a dataset world for `plugin` (a `Dataset`): assign them
    in the app module as `Meta, DatasetSource = export_dataset(MyDataset())`."""
    return _meta(plugin), _DatasetSource


# --- reporter --------------------------------------------------------------


class _ReportRenderer:
    def wants_records(self) -> bool:
        return bool(_PLUGIN["plugin"].wants_records())

    def render(self, input):
        rr = _rr
        try:
            report = t.ReportInput(input.schema_version, json.loads(input.summary))
            out = _PLUGIN["plugin"].render(report)
            return [rr.OutputFile(path=f.path, contents=bytes(f.contents)) for f in out]
        except Exception as e:
            raise Err(_failure("render", e))


def export_reporter(plugin):
    """The exports of a reporter world for `plugin` (a `Reporter`): assign
    them in the app module as `Meta, ReportRenderer = export_reporter(MyReporter())`."""
    return _meta(plugin), _ReportRenderer
