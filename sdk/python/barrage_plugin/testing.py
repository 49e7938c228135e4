"""A stand-in for the host under plain CPython, so plugin logic is tested
with `python3 -m unittest` before it is built. Set the configuration and
seed, then drive a codec with `decode_stream`, a dataset with `generate` or
a reporter with `render`, and read what it logged with `take_logs`.
The tokenizer is the approximate `words` rule (a token per word).
"""

import json
from typing import List, Optional, Tuple

from . import _native
from .types import DatasetError, DecodeOptions, Event, Frame, ReportInput, ResponseHead

# Most events one call may return per frame it was given (plus this many
# once); the host fails a response whose codec returns more.
EVENTS_PER_FRAME = 64


def reset() -> None:
    """Forget configuration, seed, logs, files and records."""
    _native.HOST = _native.TestHost()


def set_config(config: dict) -> None:
    _native.HOST.config = config


def set_secret(name: str, value: str) -> None:
    """Grant `value` under `name`, as `--codec-secret` would."""
    _native.HOST.secrets[name] = value


def set_seed(seed: int) -> None:
    _native.HOST.rng_state = seed


def take_logs() -> List[Tuple[str, str]]:
    logs, _native.HOST.logs = _native.HOST.logs, []
    return logs


def frame(data, event: Optional[str] = None) -> Frame:
    """A frame holding `data` (text or bytes), as the host hands an SSE
    `data:` payload, an NDJSON line or a gRPC message."""
    return Frame(event, data.encode() if isinstance(data, str) else bytes(data))


def sse_frames(body: str) -> List[Frame]:
    """Cut a complete SSE body into frames the way the host does: events are
    separated by a blank line, `data:` lines joined by a newline, a comment
    (a line starting with `:`) makes a keep-alive frame with empty data."""
    frames = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event, data, comment = None, None, False
        for line in block.split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                comment = True
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data = value if data is None else data + "\n" + value
            elif name == "event":
                event = value
        if data is not None:
            frames.append(Frame(event, data.encode()))
        elif comment:
            frames.append(Frame(None, b""))
    return frames


def decode_stream_indexed(codec, frames: List[Frame], options: DecodeOptions = DecodeOptions()) -> List[Tuple[int, Event]]:
    """Decode `frames` as one streamed 200 response and return every event
    with the index of its frame in the stream (`finish`'s: the frame count).

    The host hands `push` whatever frames of a stream are ready, one or
    hundreds, however the bytes arrived. So this decodes three ways (a
    frame per call, all in one call, batches of 1, 2, 3, ...) and fails
    unless all three give the same events; it also fails what the host
    fails: an event naming a frame outside its batch, or too many events."""
    n = len(frames)
    growing, left, size = [], n, 1
    while left > 0:
        growing.append(min(size, left))
        left -= min(size, left)
        size += 1
    first = _decode_in_batches(codec, frames, [1] * n, options)
    for sizes in ([n] if n else [], growing):
        other = _decode_in_batches(codec, frames, sizes, options)
        if other != first:
            raise AssertionError(
                "the decoder's events depend on how frames are batched: one frame per push gave "
                f"{first!r}, batches of {sizes} gave {other!r}"
            )
    return first


def decode_stream(codec, frames: List[Frame], options: DecodeOptions = DecodeOptions()) -> List[Event]:
    """`decode_stream_indexed` without the frame indexes."""
    return [e for _, e in decode_stream_indexed(codec, frames, options)]


def _decode_in_batches(codec, frames, sizes, options):
    head = ResponseHead(200, [("content-type", "text/event-stream")])
    decoder = codec.decoder(head, options)
    events, base = [], 0
    for n in sizes:
        out = list(decoder.push(frames[base : base + n]))
        _check_count(len(out), n)
        for fe in out:
            if not 0 <= fe.frame < n:
                raise AssertionError(
                    f"push returned an event for frame {fe.frame} of a batch of {n} frames (indexes are "
                    "0-based, within the batch); the host fails such a response"
                )
            _check_event(fe.event)
            events.append((base + fe.frame, fe.event))
        base += n
    last = list(decoder.finish())
    _check_count(len(last), 0)
    for e in last:
        _check_event(e)
    return events + [(len(frames), e) for e in last]


_TAGS = {
    "content",
    "reasoning",
    "role-only",
    "empty-delta",
    "usage",
    "finish",
    "server-error",
    "keep-alive",
    "done",
    "malformed",
    "embeddings",
    "ranking",
    "image",
    "audio",
}


def _check_event(e) -> None:
    if not isinstance(e, Event) or e.tag not in _TAGS:
        raise AssertionError(f"{e!r} is not an Event (build events with Event.content(...), Event.done(), ...)")


def _check_count(events: int, frames: int) -> None:
    most = EVENTS_PER_FRAME * (frames + 1)
    if events > most:
        raise AssertionError(f"a call given {frames} frames returned {events} events; the host takes at most {most}")


def generate(dataset, config: Optional[dict] = None, seed: int = 0, files: Optional[dict] = None):
    """Check the configuration and drain `dataset`'s samples as the host
    does. Returns (samples, skipped); raises the `DatasetError` that fails it."""
    reset()
    set_config(config or {})
    set_seed(seed)
    _native.HOST.files = {name: data.encode() if isinstance(data, str) else data for name, data in (files or {}).items()}
    dataset.check_config(config or {})
    samples, skipped = [], []
    for item in dataset.samples():
        (skipped if isinstance(item, DatasetError) else samples).append(item)
    return samples, skipped


def render(reporter, summary: dict, records: Optional[list] = None):
    """Render `summary` (with these records) as the host would."""
    _native.HOST.records = [json.dumps(r) for r in (records or [])]
    return reporter.render(ReportInput(summary.get("schema_version", 0), summary))
