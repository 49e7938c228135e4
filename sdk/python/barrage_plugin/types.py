"""The contract's records and variants (wit/*.wit) as plain Python.

Field names are the WIT names in snake case. A WIT variant is an object
with `tag` (the case's WIT name, e.g. "content", "token-ids") and `val`
(its payload, or None), the shape the JavaScript guest library uses too.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

Headers = List[Tuple[str, str]]


@dataclass
class PluginInfo:
    name: str
    version: str
    description: str


class ConfigError(Exception):
    """Raised by `check_config`: the host refuses the plugin and names `field`."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class Message:
    role: str
    content: str


@dataclass
class Prompt:
    """tag: "text" (val: str), "messages" (val: list of Message) or "token-ids" (val: list of int)."""

    tag: str
    val: object

    @staticmethod
    def text(text: str) -> "Prompt":
        return Prompt("text", text)

    @staticmethod
    def messages(messages: List[Message]) -> "Prompt":
        return Prompt("messages", messages)

    @staticmethod
    def token_ids(ids: List[int]) -> "Prompt":
        return Prompt("token-ids", ids)


# --- codec world -----------------------------------------------------------


@dataclass
class Generation:
    max_tokens: Optional[int] = None
    min_tokens: Optional[int] = None
    ignore_eos: bool = False
    temperature: Optional[float] = None
    stream: bool = True
    include_usage: bool = False


@dataclass
class RequestSpec:
    id: int
    model: str
    prompt: Prompt
    generation: Generation = field(default_factory=Generation)
    extra: Optional[str] = None


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: Headers
    body: bytes


@dataclass
class GrpcRequest:
    service: str
    method: str
    metadata: Headers
    message: bytes
    server_streaming: bool


class Framing:
    """How the host cuts a response body into frames."""

    RAW = "raw"
    SSE = "sse"
    NDJSON = "ndjson"
    GRPC_MESSAGES = "grpc-messages"


@dataclass
class EncodedRequest:
    request: object  # HttpRequest or GrpcRequest
    streaming: bool
    framing: str  # a Framing value


@dataclass
class ResponseHead:
    status: int
    headers: Headers


@dataclass
class DecodeOptions:
    want_text: bool = False


@dataclass
class Frame:
    event: Optional[str]
    data: bytes


@dataclass
class ContentDelta:
    bytes: int
    tokens: Optional[int] = None
    text: Optional[str] = None


@dataclass
class Usage:
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None


@dataclass
class ServerError:
    message: str
    code: Optional[str] = None


@dataclass
class Event:
    """What a codec reports; build one with the constructors below."""

    tag: str
    val: object = None

    @staticmethod
    def content(bytes: int, tokens: Optional[int] = None, text: Optional[str] = None) -> "Event":
        return Event("content", ContentDelta(bytes, tokens, text))

    @staticmethod
    def reasoning(bytes: int, tokens: Optional[int] = None, text: Optional[str] = None) -> "Event":
        return Event("reasoning", ContentDelta(bytes, tokens, text))

    @staticmethod
    def role_only() -> "Event":
        return Event("role-only")

    @staticmethod
    def empty_delta() -> "Event":
        return Event("empty-delta")

    @staticmethod
    def usage(
        prompt_tokens: Optional[int] = None,
        completion_tokens: Optional[int] = None,
        cached_tokens: Optional[int] = None,
        reasoning_tokens: Optional[int] = None,
    ) -> "Event":
        return Event("usage", Usage(prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens))

    @staticmethod
    def finish(reason: str) -> "Event":
        return Event("finish", reason)

    @staticmethod
    def server_error(message: str, code: Optional[str] = None) -> "Event":
        return Event("server-error", ServerError(message, code))

    @staticmethod
    def keep_alive() -> "Event":
        return Event("keep-alive")

    @staticmethod
    def done() -> "Event":
        return Event("done")

    @staticmethod
    def malformed(reason: str) -> "Event":
        return Event("malformed", reason)


@dataclass
class FrameEvent:
    """An event and the index, within the batch `push` was given, of its frame."""

    frame: int
    event: Event


# --- dataset world ---------------------------------------------------------


@dataclass
class SessionTurn:
    session: int
    turn: int
    think_time_ms: Optional[float] = None


@dataclass
class Sample:
    id: int
    prompt: Prompt
    prompt_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    at_ms: Optional[float] = None
    session: Optional[SessionTurn] = None
    extra: Optional[str] = None

    @staticmethod
    def text(id: int, prompt: str) -> "Sample":
        return Sample(id, Prompt.text(prompt))


class DatasetError(Exception):
    """Raised to fail a generation; yielded to skip bad input. Names the file and line."""

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.message}" if where else self.message

    def __eq__(self, other) -> bool:
        return isinstance(other, DatasetError) and (self.message, self.file, self.line) == (
            other.message,
            other.file,
            other.line,
        )

    def __repr__(self) -> str:
        return f"DatasetError({self.message!r}, file={self.file!r}, line={self.line!r})"


# --- reporter world --------------------------------------------------------


@dataclass
class ReportInput:
    schema_version: int
    summary: dict


@dataclass
class OutputFile:
    path: str
    contents: bytes

    @staticmethod
    def text(path: str, contents: str) -> "OutputFile":
        return OutputFile(path, contents.encode())
