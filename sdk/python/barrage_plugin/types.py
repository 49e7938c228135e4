"""The contract's records and variants (wit/*.wit) as plain Python.

Field names are the WIT names in snake case. A WIT variant is an object
with `tag` (the case's WIT name, e.g. "content", "token-ids") and `val`
(its payload, or None), the shape the JavaScript guest library uses too.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

Headers = List[Tuple[str, str]]


@dataclass
class SecretNeed:
    """A secret the plugin reads with `secrets.get(name)`; the user grants it."""

    name: str
    required: bool
    description: str


@dataclass
class PluginInfo:
    name: str
    version: str
    description: str
    secrets: List[SecretNeed] = field(default_factory=list)


@dataclass
class Datetime:
    """Wall-clock time, UTC, since the Unix epoch."""

    seconds: int
    nanoseconds: int


class ConfigError(Exception):
    """Raised by `check_config`: the host refuses the plugin and names `field`."""

    def __init__(self, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class Media:
    """An image or audio clip: `data` (bytes) or `url`, one of them."""

    media_type: str
    data: Optional[bytes] = None
    url: Optional[str] = None
    tokens: Optional[int] = None


@dataclass
class ContentPart:
    """tag: "text" (val: str), "image" or "audio" (val: Media)."""

    tag: str
    val: object


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object


@dataclass
class Tool:
    name: str
    parameters: str  # JSON Schema
    description: Optional[str] = None


@dataclass
class Message:
    """`content` is a str for a message of one text part (most of them),
    else a list of ContentPart."""

    role: str
    content: object
    tool_calls: List[ToolCall] = field(default_factory=list)
    tool_call_id: Optional[str] = None

    def text(self) -> str:
        """Its text parts, joined by newlines."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.val for p in self.content if p.tag == "text")


@dataclass
class RerankQuery:
    query: str
    documents: List[str]


@dataclass
class Prompt:
    """tag: "text" (val: str), "messages" (val: list of Message), "token-ids"
    (val: list of int), "inputs" (val: list of str, to embed) or "rerank"
    (val: RerankQuery)."""

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

    @staticmethod
    def inputs(inputs: List[str]) -> "Prompt":
        return Prompt("inputs", inputs)

    @staticmethod
    def rerank(query: str, documents: List[str]) -> "Prompt":
        return Prompt("rerank", RerankQuery(query, documents))


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
    tools: List[Tool] = field(default_factory=list)
    send_time: Datetime = field(default_factory=lambda: Datetime(0, 0))


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
    AWS_EVENT_STREAM = "aws-event-stream"


class OutputKind:
    """What a successful response carries."""

    TOKENS = "tokens"
    EMBEDDINGS = "embeddings"
    RANKING = "ranking"
    IMAGES = "images"
    AUDIO = "audio"


@dataclass
class EncodedRequest:
    request: object  # HttpRequest or GrpcRequest
    streaming: bool
    framing: str  # a Framing value
    output: str = OutputKind.TOKENS
    prompt_tokens: Optional[int] = None


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

    @staticmethod
    def embeddings(count: int, dimensions: int) -> "Event":
        return Event("embeddings", (count, dimensions))

    @staticmethod
    def ranking(count: int) -> "Event":
        return Event("ranking", count)

    @staticmethod
    def image(count: int, bytes: int) -> "Event":
        return Event("image", (count, bytes))

    @staticmethod
    def audio(count: int, bytes: int) -> "Event":
        return Event("audio", (count, bytes))


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
    tools: List[Tool] = field(default_factory=list)

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
