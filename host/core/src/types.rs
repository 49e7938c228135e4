//! The host's own request and response types.
//!
//! The engine speaks these; each contract version's generated bindings
//! (inside the plugin host) convert to and from them at the boundary, so a
//! new contract version changes the plugin host only.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::framing::Framing;

/// Where the bytes of an image or audio clip are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// The bytes themselves (base64 in a dataset cache file).
    Inline(#[serde(with = "base64_bytes")] Vec<u8>),
    /// A URL the server fetches.
    Url(String),
}

/// An image or audio part of a chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Media {
    /// e.g. `image/png`.
    pub media_type: String,
    /// Where the bytes are.
    pub source: MediaSource,
    /// Prompt tokens it costs, when the dataset knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
}

impl Media {
    /// Bytes it takes to send (a URL's length for a URL).
    pub fn size(&self) -> usize {
        match &self.source {
            MediaSource::Inline(b) => b.len(),
            MediaSource::Url(u) => u.len(),
        }
    }
}

/// One part of a chat message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    Text(String),
    /// An image.
    Image(Media),
    /// An audio clip.
    Audio(Media),
}

/// A tool call an assistant message made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which a `tool` message answers.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: String,
}

/// A tool a request offers the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: String,
}

/// A chat message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its parts, in order.
    pub content: Vec<ContentPart>,
    /// Calls an assistant message made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message, the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message of one text part.
    pub fn text(role: impl Into<String>, text: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: vec![ContentPart::Text(text.into())],
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    /// Its text parts, joined by newlines (what a tokenizer counts and a
    /// text-only server is sent).
    pub fn text_content(&self) -> String {
        let mut parts = self.content.iter().filter_map(|p| match p {
            ContentPart::Text(t) => Some(t.as_str()),
            _ => None,
        });
        let first = parts.next().unwrap_or_default().to_string();
        parts.fold(first, |mut all, t| {
            all.push('\n');
            all.push_str(t);
            all
        })
    }

    /// Its first part that is not text, if any.
    pub fn media(&self) -> Option<&ContentPart> {
        self.content.iter().find(|p| !matches!(p, ContentPart::Text(_)))
    }

    fn size(&self) -> usize {
        let parts: usize = self
            .content
            .iter()
            .map(|p| match p {
                ContentPart::Text(t) => t.len(),
                ContentPart::Image(m) | ContentPart::Audio(m) => m.size(),
            })
            .sum();
        let calls: usize = self.tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum();
        self.role.len() + parts + calls
    }
}

/// A query and the documents to rank against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RerankQuery {
    /// The query.
    pub query: String,
    /// The documents.
    pub documents: Vec<String>,
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
    /// Inputs to embed, one vector each.
    Inputs(Vec<String>),
    /// A query and documents to rank.
    Rerank(RerankQuery),
}

impl Prompt {
    /// Roughly how many bytes it takes to write out: what encoding it costs.
    pub fn size(&self) -> usize {
        match self {
            Prompt::Text(t) => t.len(),
            Prompt::Messages(m) => m.iter().map(ChatMessage::size).sum(),
            // Up to ten digits and a separator each.
            Prompt::TokenIds(ids) => ids.len() * 11,
            Prompt::Inputs(inputs) => inputs.iter().map(String::len).sum(),
            Prompt::Rerank(r) => r.query.len() + r.documents.iter().map(String::len).sum::<usize>(),
        }
    }

    /// Its text, as a tokenizer counts it: messages' text parts joined by
    /// newlines, every input, the query and every document; none for token ids.
    pub fn text(&self) -> Option<String> {
        match self {
            Prompt::Text(t) => Some(t.clone()),
            Prompt::Messages(m) => Some(m.iter().map(ChatMessage::text_content).collect::<Vec<_>>().join("\n")),
            Prompt::TokenIds(_) => None,
            Prompt::Inputs(inputs) => Some(inputs.join("\n")),
            Prompt::Rerank(r) => Some(
                std::iter::once(r.query.as_str())
                    .chain(r.documents.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }
}

/// Inline media bytes as base64 text in JSON (a dataset cache file), not
/// as an array of numbers four times their size.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("inline media is not valid base64: {e}")))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn bytes_survive_a_round_trip_at_every_padding() {
            for len in 0..10u8 {
                let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(97).wrapping_add(200)).collect();
                let json = serde_json::to_string(&super::super::MediaSource::Inline(bytes.clone())).unwrap();
                let back: super::super::MediaSource = serde_json::from_str(&json).unwrap();
                assert_eq!(back, super::super::MediaSource::Inline(bytes), "{json}");
            }
            assert_eq!(
                serde_json::to_string(&super::super::MediaSource::Inline(b"Man".to_vec())).unwrap(),
                r#"{"inline":"TWFu"}"#
            );
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
    /// Tools offered to the model.
    pub tools: Vec<Tool>,
    /// The wall-clock time assigned to the send, for signatures.
    pub send_time: std::time::SystemTime,
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
    /// What a successful response carries.
    pub output: OutputKind,
    /// The prompt's tokens as the codec counted them, parts included.
    pub prompt_tokens: Option<u32>,
}

/// What a successful response carries: tokens (timed to the first token
/// and between tokens) or items (counted per second).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Generated text.
    #[default]
    Tokens,
    /// Embedding vectors.
    Embeddings,
    /// Relevance scores of documents.
    Ranking,
    /// Generated images.
    Images,
    /// Generated audio.
    Audio,
}

impl OutputKind {
    /// Whether the response is generated text.
    pub fn is_tokens(&self) -> bool {
        *self == OutputKind::Tokens
    }
}

/// Images or audio received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaOutput {
    /// Whole images or clips.
    pub count: u32,
    /// Bytes received.
    pub bytes: u64,
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
    /// Embedding vectors: how many, and their length.
    Embeddings {
        /// Vectors.
        count: u32,
        /// Length of each.
        dimensions: u32,
    },
    /// Documents ranked.
    Ranking(u32),
    /// Image data.
    Image(MediaOutput),
    /// Audio data.
    Audio(MediaOutput),
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
            Event::Embeddings { count, dimensions } => write!(f, "embeddings count={count} dimensions={dimensions}"),
            Event::Ranking(count) => write!(f, "ranking count={count}"),
            Event::Image(m) => write!(f, "image count={} bytes={}", m.count, m.bytes),
            Event::Audio(m) => write!(f, "audio count={} bytes={}", m.count, m.bytes),
        }
    }
}
