//! The host's own request and response types.
//!
//! The engine speaks these; each contract version's generated bindings
//! (inside the plugin host) convert to and from them at the boundary, so a
//! new contract version changes the plugin host only.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::framing::Framing;

/// A chat message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Its text.
    pub content: String,
}

/// The prompt of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Plain text.
    Text(String),
    /// A chat, oldest message first.
    Messages(Vec<ChatMessage>),
    /// Pre-tokenized input.
    TokenIds(Vec<u32>),
}

impl Prompt {
    /// Roughly how many bytes it takes to write out: what encoding it costs.
    pub fn size(&self) -> usize {
        match self {
            Prompt::Text(t) => t.len(),
            Prompt::Messages(m) => m.iter().map(|m| m.role.len() + m.content.len()).sum(),
            // Up to ten digits and a separator each.
            Prompt::TokenIds(ids) => ids.len() * 11,
        }
    }
}

/// Generation parameters of one request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Generation {
    /// Maximum output tokens.
    pub max_tokens: Option<u32>,
    /// Minimum output tokens, where the server supports it.
    pub min_tokens: Option<u32>,
    /// Ask the server to ignore end-of-sequence.
    pub ignore_eos: bool,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Stream the response.
    pub stream: bool,
    /// Ask for token usage inside the stream.
    pub include_usage: bool,
}

/// What the host wants sent; a codec turns it into an [`EncodedRequest`].
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    /// The host's id for this request, unique within the run.
    pub id: u64,
    /// Model name to put in the request.
    pub model: String,
    /// The prompt.
    pub prompt: Prompt,
    /// Generation parameters.
    pub generation: Generation,
    /// Extra top-level body fields, a JSON object.
    pub extra: Option<String>,
}

/// Header or metadata pairs, in order.
pub type Headers = Vec<(String, String)>;

/// An HTTP request as a codec built it; the host adds scheme and authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers the codec sets.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

/// A gRPC call as a codec built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcRequest {
    /// Fully qualified service.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Request metadata.
    pub metadata: Headers,
    /// One protobuf message without the 5-byte prefix.
    pub message: Vec<u8>,
    /// True for a server-streaming method.
    pub server_streaming: bool,
}

/// A transport-neutral request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireRequest {
    /// Over HTTP.
    Http(HttpRequest),
    /// Over gRPC.
    Grpc(GrpcRequest),
}

/// A request ready to send, and how to read its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest {
    /// What to send.
    pub request: WireRequest,
    /// True: decode the response as a stream; false: as one body.
    pub streaming: bool,
    /// How to cut a streamed body into frames.
    pub framing: Framing,
}

/// Status line and headers of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// HTTP status.
    pub status: u16,
    /// Response headers, in order.
    pub headers: Headers,
}

/// What the host wants a decoder to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeOptions {
    /// Return the text of content and reasoning deltas.
    pub want_text: bool,
}

/// Output text in one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDelta {
    /// Bytes of text.
    pub bytes: u32,
    /// Tokens, when the server says.
    pub tokens: Option<u32>,
    /// The text, only when asked for.
    pub text: Option<String>,
}

/// Token counts reported by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: Option<u32>,
    /// Completion tokens.
    pub completion_tokens: Option<u32>,
    /// Prompt tokens served from a prefix cache.
    pub cached_tokens: Option<u32>,
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: Option<u32>,
}

/// An error object sent by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// Error code or type, e.g. `rate_limit_exceeded`.
    pub code: Option<String>,
    /// Its message.
    pub message: String,
}

/// What a frame meant, as the codec decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Output text (counts for time to first token).
    Content(ContentDelta),
    /// Reasoning text (counts as output).
    Reasoning(ContentDelta),
    /// A delta that only carries a role. Not output.
    RoleOnly,
    /// A chunk with a choice but no text. Not output.
    EmptyDelta,
    /// Token counts.
    Usage(Usage),
    /// Why generation stopped.
    Finish(String),
    /// An error object from the server.
    ServerError(ServerError),
    /// A comment or heartbeat frame.
    KeepAlive,
    /// The protocol's end-of-stream marker.
    Done,
    /// A frame the codec could not parse, and why.
    Malformed(String),
}

impl fmt::Display for Event {
    /// One line per event, as `barrage plugin decode` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opt(v: Option<u32>) -> String {
            v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
        }
        fn delta(f: &mut fmt::Formatter<'_>, kind: &str, d: &ContentDelta) -> fmt::Result {
            write!(f, "{kind} bytes={} tokens={}", d.bytes, opt(d.tokens))?;
            match &d.text {
                Some(t) => write!(f, " text={t:?}"),
                None => Ok(()),
            }
        }
        match self {
            Event::Content(d) => delta(f, "content", d),
            Event::Reasoning(d) => delta(f, "reasoning", d),
            Event::RoleOnly => f.write_str("role-only"),
            Event::EmptyDelta => f.write_str("empty-delta"),
            Event::Usage(u) => write!(
                f,
                "usage prompt={} completion={} cached={} reasoning={}",
                opt(u.prompt_tokens),
                opt(u.completion_tokens),
                opt(u.cached_tokens),
                opt(u.reasoning_tokens)
            ),
            Event::Finish(reason) => write!(f, "finish {reason}"),
            Event::ServerError(e) => write!(
                f,
                "server-error code={} message={:?}",
                e.code.as_deref().unwrap_or("-"),
                e.message
            ),
            Event::KeepAlive => f.write_str("keep-alive"),
            Event::Done => f.write_str("done"),
            Event::Malformed(why) => write!(f, "malformed {why:?}"),
        }
    }
}
