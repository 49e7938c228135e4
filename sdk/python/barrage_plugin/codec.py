"""Writing a codec: subclass `Codec` and `Decoder`, then in the app module

    Meta, RequestCodec = export_codec(MyCodec())

Keep a response's state in its decoder, never in globals: the host runs
several instances and many responses at once.
"""

import json
from typing import List, Optional

from .types import DecodeOptions, EncodedRequest, Event, Frame, FrameEvent, PluginInfo, RequestSpec, ResponseHead


class Decoder:
    """Decoding state of one streamed response."""

    def push(self, frames: List[Frame]) -> List[FrameEvent]:
        """Decode frames in arrival order; one call may carry several. An event's
        `frame` is its frame's index within this call's `frames`. Raise only
        when the response as a whole is unusable: a bad frame is a
        `malformed` event."""
        raise NotImplementedError

    def finish(self) -> List[Event]:
        """The stream has ended: return anything still held back."""
        return []


class Codec:
    def info(self) -> PluginInfo:
        raise NotImplementedError

    def check_config(self, config: dict) -> None:
        """Raise `ConfigError` to refuse the configuration."""

    def encode(self, spec: RequestSpec) -> EncodedRequest:
        """The request to send. Raise (any exception) to fail it."""
        raise NotImplementedError

    def decoder(self, head: ResponseHead, options: DecodeOptions) -> Decoder:
        raise NotImplementedError

    def decode_unary(self, head: ResponseHead, body: bytes, options: DecodeOptions) -> List[Event]:
        """Decode a complete, non-streamed body."""
        raise NotImplementedError


def merge_extra(body: dict, extra: Optional[str]) -> None:
    """Merge a request's `extra` fields (a JSON object from the run or
    dataset configuration) into a JSON body, last, so they win over the
    fields the codec generated, as the contract promises."""
    if extra is None:
        return
    try:
        fields = json.loads(extra)
    except ValueError as e:
        raise ValueError(f"extra request fields are not valid JSON: {e}") from None
    if not isinstance(fields, dict):
        raise ValueError("extra request fields must be a JSON object")
    body.update(fields)


def parse_json_object(data) -> Optional[dict]:
    """`data` (bytes or text) parsed as a JSON object, or None when it is not
    one (bytes that are not UTF-8 are not JSON)."""
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        value = json.loads(text, parse_constant=_not_json)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _not_json(name: str):
    # NaN and Infinity are Python's extensions, not JSON.
    raise ValueError(f"{name} is not JSON")


def snippet(data: bytes) -> str:
    """At most 200 characters of `data`, for error messages."""
    # 200 characters fit in 800 bytes: decode no more.
    text = bytes(data[:800]).decode("utf-8", "replace")
    return text if len(text) <= 200 and len(data) <= 800 else text[:200] + "…"


def is_success(status: int) -> bool:
    return 200 <= status < 300


def http_error(status: int, body: bytes) -> Event:
    """The event for a response whose status is not a success and whose body
    said nothing the codec could read as an error."""
    return Event.server_error(f"HTTP {status}: {snippet(body)}", str(status))
