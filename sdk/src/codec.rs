//! Model-server codecs: encode a request, decode its response (feature `codec`).
//!
//! Implement [`Codec`] (and its [`Decoder`]) and call [`export_codec!`](crate::export_codec):
//!
//! ```
//! use barrage_sdk::prelude::*;
//!
//! /// A codec for a server that streams plain text lines.
//! pub struct Lines;
//!
//! impl Codec for Lines {
//!     type Decoder = LineDecoder;
//!
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("lines", "0.1.0", "text lines")
//!     }
//!
//!     fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
//!         let Prompt::Text(prompt) = spec.prompt else { return Err("text prompts only".into()) };
//!         Ok(EncodedRequest {
//!             request: WireRequest::Http(HttpRequest {
//!                 method: "POST".into(),
//!                 path: "/generate".into(),
//!                 headers: vec![],
//!                 body: prompt.into_bytes(),
//!             }),
//!             streaming: spec.generation.stream,
//!             framing: Framing::Ndjson,
//!             output: OutputKind::Tokens,
//!             prompt_tokens: None,
//!         })
//!     }
//!
//!     fn decoder(_head: ResponseHead, _options: DecodeOptions) -> LineDecoder {
//!         LineDecoder
//!     }
//!
//!     fn decode_unary(_head: ResponseHead, body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
//!         Ok(vec![Event::Content(ContentDelta { bytes: body.len() as u32, tokens: None, text: None })])
//!     }
//! }
//!
//! pub struct LineDecoder;
//!
//! impl Decoder for LineDecoder {
//!     fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
//!         Ok(frames
//!             .iter()
//!             .enumerate()
//!             .map(|(i, f)| FrameEvent {
//!                 frame: i as u32,
//!                 event: Event::Content(ContentDelta { bytes: f.data.len() as u32, tokens: Some(1), text: None }),
//!             })
//!             .collect())
//!     }
//! }
//!
//! barrage_sdk::export_codec!(Lines);
//!
//! // Natively, the same code runs under the test harness:
//! let events = barrage_sdk::testing::decode_stream::<Lines>(
//!     vec![barrage_sdk::testing::frame("hello")],
//!     DecodeOptions { want_text: false },
//! )
//! .unwrap();
//! assert!(matches!(events[0], Event::Content(ContentDelta { bytes: 5, .. })));
//! ```

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::wit::codec::exports::barrage::plugin::{meta, request_codec};

pub use crate::{ConfigError, ContentPart, Message, PluginInfo, Prompt};
pub use request_codec::{
    ContentDelta, DecodeOptions, Embeddings, EncodedRequest, Event, FrameEvent, Framing, Generation, GrpcRequest,
    HttpRequest, MediaOutput, OutputKind, Ranking, RequestSpec, ResponseHead, ServerError, Usage, WireRequest,
};

/// One frame as the host cut it, borrowed from the batch it came in: the
/// host copies a batch's bytes into the plugin once, not once per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// For SSE, the `event:` field when present; for gRPC, [`GRPC_COMPRESSED`]
    /// on a compressed message; for AWS event streams, the event type
    /// (see the contract's `framing`).
    pub event: Option<&'a str>,
    /// For SSE, the data lines joined by `\n`; otherwise the line, message or chunk.
    pub data: &'a [u8],
}

/// A [`Frame`] that owns its bytes, for tests and fixtures.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameBuf {
    /// As [`Frame::event`].
    pub event: Option<String>,
    /// As [`Frame::data`].
    pub data: Vec<u8>,
}

impl FrameBuf {
    /// The frame, borrowed.
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            event: self.event.as_deref(),
            data: &self.data,
        }
    }
}

/// The frames of a batch, each a view into its buffer; or why a span does
/// not lie within it (which no host does).
fn frames_of(batch: &request_codec::FrameBatch) -> Result<Vec<Frame<'_>>, String> {
    let bytes = |span: request_codec::Span| {
        let start = span.start as usize;
        batch.data.get(start..start + span.len as usize).ok_or_else(|| {
            format!(
                "a frame span {}+{} lies outside its batch of {} bytes",
                span.start,
                span.len,
                batch.data.len()
            )
        })
    };
    batch
        .frames
        .iter()
        .map(|f| {
            let event = match f.event {
                Some(span) => Some(
                    std::str::from_utf8(bytes(span)?).map_err(|_| "a frame's event name is not UTF-8".to_string())?,
                ),
                None => None,
            };
            Ok(Frame {
                event,
                data: bytes(f.data)?,
            })
        })
        .collect()
}

/// Merge a request's `extra` fields (`RequestSpec::extra`: a JSON object
/// from the run or dataset configuration) into a JSON request `body`. The
/// host does not do this for a codec, since only the codec knows its body;
/// a JSON codec calls this last, so the extra fields win over generated ones,
/// as the contract promises.
pub fn merge_extra(body: &mut serde_json::Map<String, serde_json::Value>, extra: Option<&str>) -> Result<(), String> {
    let Some(extra) = extra else { return Ok(()) };
    match serde_json::from_str::<serde_json::Value>(extra) {
        Ok(serde_json::Value::Object(fields)) => {
            body.extend(fields);
            Ok(())
        }
        Ok(_) => Err("extra request fields must be a JSON object".into()),
        Err(e) => Err(format!("extra request fields are not valid JSON: {e}")),
    }
}

/// [`merge_extra`] for a body whose options live in a nested object
/// (TGI's `parameters`, SGLang's `sampling_params`): the extra fields under
/// `nested` are merged into that object, field by field, so a user can set
/// one option without restating the codec's others; the rest go top-level.
pub fn merge_extra_nested(
    body: &mut serde_json::Map<String, serde_json::Value>,
    extra: Option<&str>,
    nested: &str,
) -> Result<(), String> {
    let mut fields = serde_json::Map::new();
    merge_extra(&mut fields, extra)?;
    if let Some(serde_json::Value::Object(options)) = fields.remove(nested) {
        match body.get_mut(nested) {
            Some(serde_json::Value::Object(ours)) => ours.extend(options),
            _ => {
                body.insert(nested.into(), serde_json::Value::Object(options));
            }
        }
    }
    body.extend(fields);
    Ok(())
}

/// The error of a text-generation codec given inputs to embed or a rerank
/// query, which other codecs send.
pub fn generation_only(codec: &str) -> String {
    format!(
        "{codec} generates text from a prompt; inputs to embed need the openai-embeddings codec, a rerank query the \
         rerank codec"
    )
}

/// Refuse a configured request path that is not a path (`field` of a
/// codec's configuration, e.g. `path`): the host adds scheme and
/// authority to it.
pub fn check_path(field: &str, path: Option<&str>) -> Result<(), ConfigError> {
    match path {
        Some(p) if !p.starts_with('/') => Err(ConfigError {
            field: Some(field.into()),
            message: format!("{field} `{p}` must start with `/`"),
        }),
        _ => Ok(()),
    }
}

impl ContentDelta {
    /// A delta of `text`, its tokens unknown (the usage says them), the
    /// text itself kept only when the host asked for it.
    pub fn of_text(text: &str, want_text: bool) -> ContentDelta {
        ContentDelta {
            bytes: text.len() as u32,
            tokens: None,
            text: want_text.then(|| text.to_string()),
        }
    }
}

/// A decoder's `push` when each frame is decoded on its own: `decode` is
/// given every frame in turn, and each event it emits is tagged with that
/// frame's index in the batch.
pub fn each_frame(frames: &[Frame<'_>], mut decode: impl FnMut(&Frame<'_>, &mut dyn FnMut(Event))) -> Vec<FrameEvent> {
    let mut out = Vec::with_capacity(frames.len());
    for (i, frame) in frames.iter().enumerate() {
        decode(frame, &mut |event| out.push(FrameEvent { frame: i as u32, event }));
    }
    out
}

/// The decoder of a codec whose responses are never streamed (embeddings,
/// reranking): the host hands it no frames, and it fails the response if
/// it is ever given one.
pub struct Unstreamed;

impl Decoder for Unstreamed {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Err(format!(
            "this codec's responses are not streamed, yet {} frames came",
            frames.len()
        ))
    }
}

/// At most 200 characters of `data`, for error messages.
pub fn snippet(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

/// The event for a response whose HTTP status is not a success and whose
/// body said nothing the codec could read as an error.
pub fn http_error(status: u16, body: &[u8]) -> Event {
    Event::ServerError(ServerError {
        code: Some(status.to_string()),
        message: format!("HTTP {status}: {}", snippet(body)),
    })
}

/// Whether `status` is a success (2xx).
pub fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A failed response's events hold a server error: the body's own, when
/// the codec read one, otherwise one made of the status and the body.
pub fn ensure_http_error(status: u16, body: &[u8], events: &mut Vec<Event>) {
    if !is_success(status) && !events.iter().any(|e| matches!(e, Event::ServerError(_))) {
        events.push(http_error(status, body));
    }
}

/// The event name the host gives a streamed gRPC message whose compressed
/// flag is set. Barrage offers no compression (it sends no
/// `grpc-accept-encoding`), so such a message cannot be read.
pub const GRPC_COMPRESSED: &str = "grpc-compressed";

/// Whether the host marked `frame` as a compressed gRPC message.
pub fn is_grpc_compressed(frame: &Frame<'_>) -> bool {
    frame.event == Some(GRPC_COMPRESSED)
}

/// The event for a compressed gRPC message.
pub fn grpc_compressed() -> Event {
    Event::Malformed("the message is compressed, which was not asked for (no grpc-accept-encoding was sent)".into())
}

/// A gRPC body gathered whole (a unary call's) as its messages, each
/// without its 5-byte prefix; or the event that says why it is not a run
/// of whole, uncompressed messages.
pub fn grpc_messages(body: &[u8]) -> Result<Vec<&[u8]>, Event> {
    let mut messages = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let [flag, a, b, c, d, tail @ ..] = rest else {
            return Err(Event::Malformed(format!(
                "the body ends inside a gRPC message prefix ({} bytes after {} messages)",
                rest.len(),
                messages.len()
            )));
        };
        if *flag != 0 {
            return Err(grpc_compressed());
        }
        let len = u32::from_be_bytes([*a, *b, *c, *d]) as usize;
        let Some(message) = tail.get(..len) else {
            return Err(Event::Malformed(format!(
                "a gRPC message of {len} bytes is cut off after {} bytes",
                tail.len()
            )));
        };
        messages.push(message);
        rest = &tail[len..];
    }
    if messages.is_empty() {
        return Err(Event::Malformed("the response held no message".into()));
    }
    Ok(messages)
}

/// A model-server protocol.
///
/// All functions are associated functions: the host may run several instances
/// of a plugin on several threads, so per-request state lives in the
/// [`Decoder`], never in globals.
pub trait Codec: 'static {
    /// Decoding state of one streamed response.
    type Decoder: Decoder;

    /// The plugin's name, version and description.
    fn info() -> PluginInfo;

    /// Check the configuration once at load time. `config` is the table the
    /// user gave this plugin, as JSON (`{}` when none). The default accepts
    /// anything.
    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Build the request to send. Runs ahead of the send schedule.
    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String>;

    /// Start decoding a streamed response.
    fn decoder(head: ResponseHead, options: DecodeOptions) -> Self::Decoder;

    /// Decode a complete, non-streamed response body.
    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String>;
}

/// Decoding state of one streamed response.
pub trait Decoder: 'static {
    /// Decode frames in arrival order; each returned event names the index
    /// of the frame (in `frames`) it came from.
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String>;

    /// The stream ended: return anything still held back.
    fn finish(&mut self) -> Result<Vec<Event>, String> {
        Ok(Vec::new())
    }
}

/// Adapts a [`Codec`] to the generated export traits. Used by
/// [`export_codec!`]; not meant to be named by plugin authors.
#[doc(hidden)]
pub struct CodecExports<C>(PhantomData<C>);

/// The exported `decoder` resource wrapping a [`Codec::Decoder`].
#[doc(hidden)]
pub struct DecoderExport<C: Codec>(RefCell<C::Decoder>);

impl<C: Codec> meta::Guest for CodecExports<C> {
    fn info() -> PluginInfo {
        crate::__init();
        C::info()
    }

    fn check_config() -> Result<(), ConfigError> {
        crate::__init();
        C::check_config(&crate::__config_for_check()?)
    }
}

impl<C: Codec> request_codec::Guest for CodecExports<C> {
    type Decoder = DecoderExport<C>;

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        crate::__init();
        C::encode(spec)
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        crate::__init();
        C::decode_unary(head, body, options)
    }
}

impl<C: Codec> request_codec::GuestDecoder for DecoderExport<C> {
    fn new(head: ResponseHead, options: DecodeOptions) -> Self {
        crate::__init();
        DecoderExport(RefCell::new(C::decoder(head, options)))
    }

    fn push(&self, batch: request_codec::FrameBatch) -> Result<Vec<FrameEvent>, String> {
        self.0.borrow_mut().push(&frames_of(&batch)?)
    }

    fn finish(&self) -> Result<Vec<Event>, String> {
        self.0.borrow_mut().finish()
    }
}

/// Export a [`Codec`] implementation as this component's `codec` world.
/// Call it once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_codec {
    ($codec:ty) => {
        // Exports only exist in the wasm build: natively their names (which
        // contain `:` and `@`) are not valid linker symbols, and native
        // builds are for unit tests, which call the trait directly.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __barrage_codec_export {
            use super::*;
            type __BarrageCodecExports = $crate::codec::CodecExports<$codec>;
            $crate::wit::codec::__export_codec_world!(__BarrageCodecExports with_types_in $crate::wit::codec);
        }
    };
}
