"""Write Barrage plugins (codecs, datasets, reporters) in Python.

The contract is the `barrage:plugin@0.2.0` WIT package (`wit/`);
componentize-py builds a component from an app module that subclasses one
of `Codec`, `Dataset` or `Reporter` and assigns the world's exports:

    Meta, RequestCodec = export_codec(MyCodec())

The same code runs under plain CPython, where `barrage_plugin.testing`
stands in for the host, so plugin logic is unit-tested with
`python3 -m unittest`. See docs/plugins.md in the Barrage repository.

A plugin has no files, network, environment or clock: the host links
WASI as stubs that give nothing (an empty environment, a clock stopped at
zero). Everything comes through the contract: `config`, `log`, `random`
(seeded by the run), `tokenizer`, `secrets` (what the user granted), and
a dataset's `files` or a reporter's `records`.
"""

from ._export import export_codec, export_dataset, export_reporter
from .codec import Codec, Decoder, http_error, is_success, merge_extra, parse_json_object, snippet
from .dataset import Dataset
from .host import config, files, log, random, records, secrets, tokenizer
from .reporter import Reporter
from .types import (
    ConfigError,
    ContentDelta,
    ContentPart,
    Datetime,
    DatasetError,
    DecodeOptions,
    EncodedRequest,
    Event,
    Frame,
    FrameEvent,
    Framing,
    Generation,
    GrpcRequest,
    HttpRequest,
    Media,
    Message,
    OutputFile,
    OutputKind,
    PluginInfo,
    Prompt,
    ReportInput,
    RequestSpec,
    RerankQuery,
    ResponseHead,
    Sample,
    SecretNeed,
    ServerError,
    SessionTurn,
    Tool,
    ToolCall,
    Usage,
)

CONTRACT_VERSION = "0.2.0"

__all__ = [name for name in dir() if not name.startswith("_")]
