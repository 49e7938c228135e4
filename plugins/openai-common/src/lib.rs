//! The OpenAI-compatible wire format, shared by the `openai-completions` and
//! `openai-chat` codec plugins (and compiled natively by the host's
//! benchmark, to compare wasm against native decoding).
//!
//! Both endpoints stream the same SSE shape: `data: {chunk}` events ending
//! with `data: [DONE]`, an optional usage chunk (`stream_options.include_usage`),
//! and error objects that some servers send inside the stream. Only the place
//! of the text differs (`choices[].text` vs `choices[].delta.content`), which
//! [`Endpoint`] captures.

use std::borrow::Cow;
use std::marker::PhantomData;

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};

pub mod chat;
mod fast;
#[doc(hidden)]
pub use fast::check_fast_path;

/// Which OpenAI endpoint a codec speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/completions`: a text (or token-id) prompt, text in `choices[].text`.
    Completions,
    /// `/v1/chat/completions`: messages, text in `choices[].delta.content`.
    Chat,
}

impl Endpoint {
    fn default_path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }

    fn codec(self) -> &'static str {
        match self {
            Endpoint::Completions => "openai-completions",
            Endpoint::Chat => "openai-chat",
        }
    }
}

/// The plugin configuration both codecs accept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Request path, for servers that mount the API elsewhere.
    pub path: Option<String>,
    /// Name of the output-length field: `max_tokens` (default) or
    /// `max_completion_tokens` (newer OpenAI chat models).
    pub max_tokens_field: Option<String>,
    /// Ask for usage in every chunk (vLLM's `continuous_usage_stats`), which
    /// gives exact per-chunk token counts.
    #[serde(default)]
    pub continuous_usage_stats: bool,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The `api-key` secret, when granted: sent as a bearer token.
    #[serde(skip)]
    pub api_key: Option<String>,
}

/// The secret both codecs read: a key for servers that want one.
pub const API_KEY: &str = "api-key";

impl Settings {
    /// Parse and check a configuration table.
    pub fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        if let Some(field) = &settings.max_tokens_field
            && field != "max_tokens"
            && field != "max_completion_tokens"
        {
            return Err(ConfigError {
                field: Some("max_tokens_field".into()),
                message: format!(
                    "`{field}` is not an output-length field; use `max_tokens` or `max_completion_tokens`"
                ),
            });
        }
        check_path("path", settings.path.as_deref())?;
        Ok(settings)
    }

    /// The plugin's settings, from the configuration the host gave it. Read
    /// once per instance in a wasm build (the configuration cannot change
    /// while an instance lives); every call in a native test.
    pub fn current() -> Settings {
        barrage_sdk::once_per_instance!(Settings, Settings::read)
    }

    fn read() -> Settings {
        Settings {
            api_key: secrets::get(API_KEY).ok(),
            ..Settings::from_config(&config::value()).unwrap_or_default()
        }
    }
}

/// Build the HTTP request for `spec`.
pub fn encode(endpoint: Endpoint, settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(spec.model));
    match (endpoint, spec.prompt) {
        (Endpoint::Completions, Prompt::Text(text)) => {
            body.insert("prompt".into(), Value::String(text));
        }
        (Endpoint::Completions, Prompt::TokenIds(ids)) => {
            body.insert("prompt".into(), ids.into());
        }
        (Endpoint::Completions, Prompt::Messages(_)) => {
            return Err("openai-completions takes a text or token-id prompt, not a chat conversation; use the openai-chat codec for chat datasets".into());
        }
        (_, Prompt::Inputs(_) | Prompt::Rerank(_)) => return Err(generation_only(endpoint.codec())),
        (Endpoint::Chat, Prompt::Text(text)) => {
            body.insert(
                "messages".into(),
                serde_json::json!([{"role": "user", "content": text}]),
            );
        }
        (Endpoint::Chat, Prompt::Messages(messages)) => {
            let messages: Vec<Value> = messages.into_iter().map(chat::message).collect::<Result<_, _>>()?;
            body.insert("messages".into(), Value::Array(messages));
        }
        (Endpoint::Chat, Prompt::TokenIds(_)) => {
            return Err("openai-chat takes messages or text, not token ids; use the openai-completions codec for token-id prompts".into());
        }
    }
    if !spec.tools.is_empty() {
        if endpoint != Endpoint::Chat {
            return Err("tools need the chat endpoint: use the openai-chat codec".into());
        }
        body.insert("tools".into(), chat::tools(spec.tools)?);
    }
    let g = spec.generation;
    if let Some(max) = g.max_tokens {
        let field = settings.max_tokens_field.as_deref().unwrap_or("max_tokens");
        body.insert(field.into(), max.into());
    }
    if let Some(min) = g.min_tokens {
        body.insert("min_tokens".into(), min.into());
    }
    if g.ignore_eos {
        body.insert("ignore_eos".into(), true.into());
    }
    if let Some(t) = g.temperature {
        body.insert("temperature".into(), f64::from(t).into());
    }
    body.insert("stream".into(), g.stream.into());
    if g.stream && (g.include_usage || settings.continuous_usage_stats) {
        let mut options = Map::new();
        options.insert("include_usage".into(), true.into());
        if settings.continuous_usage_stats {
            options.insert("continuous_usage_stats".into(), true.into());
        }
        body.insert("stream_options".into(), Value::Object(options));
    }
    barrage_sdk::codec::merge_extra(&mut body, spec.extra.as_deref())?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if g.stream {
        headers.push(("accept".into(), "text/event-stream".into()));
    }
    if let Some(key) = &settings.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let body = serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?;
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: settings.path.clone().unwrap_or_else(|| endpoint.default_path().into()),
            headers,
            body,
        }),
        streaming: g.stream,
        framing: Framing::Sse,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

// The wire shapes, borrowed from the frame where possible: decoding is the
// hot path, so text is only copied out when the host asks for it.

#[derive(Deserialize, Default)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default, borrow)]
    error: Option<WireError<'a>>,
    /// vLLM's error shape: `{"object": "error", "message": ..., "type": ..., "code": ...}`.
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<Value>,
}

#[derive(Deserialize, Default)]
struct Choice<'a> {
    /// Completions: the new text.
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    /// Chat streaming: the new part of the message.
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    /// Chat non-streaming: the whole message.
    #[serde(default, borrow)]
    message: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct Delta<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    /// Newer vLLM and some gateways name the reasoning field `reasoning`.
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct WireError<'a> {
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    code: Option<Value>,
}

fn code_string(code: Option<Value>, kind: Option<Cow<'_, str>>) -> Option<String> {
    match code {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => kind.map(Cow::into_owned),
    }
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens),
            reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens),
        }
    }
}

/// Decoding state of one streamed response.
pub struct StreamDecoder {
    want_text: bool,
    /// `completion_tokens` of the last usage seen, to turn continuous usage
    /// into per-chunk token counts.
    last_completion_tokens: Option<u32>,
    /// The last plain text chunk, which the next ones most likely repeat.
    repeat: Option<fast::Repeat>,
}

impl StreamDecoder {
    /// A decoder for a response with these options.
    pub fn new(options: &DecodeOptions) -> StreamDecoder {
        StreamDecoder {
            want_text: options.want_text,
            last_completion_tokens: None,
            repeat: None,
        }
    }

    /// Decode a batch of frames.
    pub fn push(&mut self, frames: &[Frame<'_>]) -> Vec<FrameEvent> {
        barrage_sdk::codec::each_frame(frames, |frame, emit| self.decode_frame(frame.data, emit))
    }

    /// Decode one frame's data, calling `emit` for each event in order.
    pub fn decode_frame(&mut self, data: &[u8], emit: &mut dyn FnMut(Event)) {
        let data = data.trim_ascii();
        if data.is_empty() {
            return emit(Event::KeepAlive);
        }
        if data == b"[DONE]" {
            return emit(Event::Done);
        }
        // A plain chunk (one choice, text only) makes one event of its text,
        // as `decode_chunk` would: an empty text is an empty delta.
        if let Some(text) = self.repeat.as_ref().and_then(|r| r.text(data)) {
            return emit(match text.is_empty() {
                true => Event::EmptyDelta,
                false => Event::Content(content_delta(&text, None, self.want_text)),
            });
        }
        let parsed = match fast::chunk_and_repeat(data) {
            Some((chunk, repeat)) => {
                if repeat.is_some() {
                    self.repeat = repeat;
                }
                Ok(chunk)
            }
            None => serde_json::from_slice(data),
        };
        let chunk: Chunk = match parsed {
            Ok(chunk) => chunk,
            Err(e) => {
                return emit(Event::Malformed(format!("not a JSON chunk ({e}): {}", snippet(data))));
            }
        };
        decode_chunk(chunk, self.want_text, &mut self.last_completion_tokens, emit);
    }
}

fn content_delta(text: &str, tokens: Option<u32>, want_text: bool) -> ContentDelta {
    ContentDelta {
        bytes: text.len() as u32,
        tokens,
        text: want_text.then(|| text.to_string()),
    }
}

/// Turn one parsed chunk (streamed or a whole non-streamed body) into events.
fn decode_chunk(
    chunk: Chunk<'_>,
    want_text: bool,
    last_completion_tokens: &mut Option<u32>,
    emit: &mut dyn FnMut(Event),
) {
    if let Some(err) = chunk.error {
        return emit(Event::ServerError(ServerError {
            code: code_string(err.code, err.kind),
            message: err.message.map(Cow::into_owned).unwrap_or_default(),
        }));
    }
    if chunk.object.as_deref() == Some("error") {
        return emit(Event::ServerError(ServerError {
            code: code_string(chunk.code, chunk.kind),
            message: chunk.message.map(Cow::into_owned).unwrap_or_default(),
        }));
    }
    // Continuous usage: the growth of completion_tokens since the previous
    // chunk is the number of tokens this chunk carries.
    let tokens = match (&chunk.usage, *last_completion_tokens) {
        (Some(u), prev) if u.completion_tokens.is_some() => {
            let now = u.completion_tokens.unwrap_or(0);
            *last_completion_tokens = Some(now);
            Some(now.saturating_sub(prev.unwrap_or(0)))
        }
        _ => None,
    };
    let delta = |text: &str| content_delta(text, tokens, want_text);
    let has_choices = !chunk.choices.is_empty();
    for choice in chunk.choices {
        let mut produced = false;
        if let Some(text) = choice.text.as_deref().filter(|t| !t.is_empty()) {
            emit(Event::Content(delta(text)));
            produced = true;
        }
        let mut role_only = false;
        if let Some(d) = choice.delta.or(choice.message) {
            let reasoning = d.reasoning_content.as_deref().or(d.reasoning.as_deref());
            if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
                emit(Event::Reasoning(delta(text)));
                produced = true;
            }
            if let Some(text) = d.content.as_deref().filter(|t| !t.is_empty()) {
                emit(Event::Content(delta(text)));
                produced = true;
            }
            role_only = !produced && d.role.is_some();
        }
        if !produced && choice.finish_reason.is_none() {
            emit(if role_only { Event::RoleOnly } else { Event::EmptyDelta });
        }
        if let Some(reason) = choice.finish_reason {
            emit(Event::Finish(reason.into_owned()));
        }
    }
    match chunk.usage {
        Some(u) => emit(Event::Usage(u.into())),
        None if !has_choices => emit(Event::EmptyDelta),
        None => {}
    }
}

/// Decode a complete non-streamed response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let mut events = Vec::new();
    match serde_json::from_slice::<Chunk>(body.trim_ascii()) {
        Ok(chunk) => {
            decode_chunk(chunk, options.want_text, &mut None, &mut |e| events.push(e));
            ensure_http_error(head.status, body, &mut events);
        }
        Err(_) if !is_success(head.status) => events.push(http_error(head.status, body)),
        Err(e) => events.push(Event::Malformed(format!(
            "response body is not a JSON completion ({e}): {}",
            snippet(body)
        ))),
    }
    events
}

/// What distinguishes the two codecs: endpoint, name and description.
pub trait Api: 'static {
    /// The endpoint spoken.
    const ENDPOINT: Endpoint;
    /// The plugin's name.
    const NAME: &'static str;
    /// The plugin's description.
    const DESCRIPTION: &'static str;
}

/// `/v1/completions`.
pub struct CompletionsApi;

impl Api for CompletionsApi {
    const ENDPOINT: Endpoint = Endpoint::Completions;
    const NAME: &'static str = "openai-completions";
    const DESCRIPTION: &'static str = "OpenAI-compatible /v1/completions, streaming and not";
}

/// `/v1/chat/completions`.
pub struct ChatApi;

impl Api for ChatApi {
    const ENDPOINT: Endpoint = Endpoint::Chat;
    const NAME: &'static str = "openai-chat";
    const DESCRIPTION: &'static str = "OpenAI-compatible /v1/chat/completions, streaming and not";
}

/// An OpenAI-compatible codec for endpoint `A`.
pub struct OpenAi<A>(PhantomData<A>);

/// The `openai-completions` codec.
pub type CompletionsCodec = OpenAi<CompletionsApi>;

/// The `openai-chat` codec.
pub type ChatCodec = OpenAi<ChatApi>;

impl<A: Api> Codec for OpenAi<A> {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: A::NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: A::DESCRIPTION.into(),
            secrets: vec![barrage_sdk::SecretNeed::optional(
                API_KEY,
                "an API key, sent as `Authorization: Bearer` (OpenAI, vLLM's --api-key, hosted APIs)",
            )],
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        Settings::from_config(config).map(|_| ())
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        encode(A::ENDPOINT, &Settings::current(), spec)
    }

    fn decoder(_head: ResponseHead, options: DecodeOptions) -> StreamDecoder {
        StreamDecoder::new(&options)
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&head, &body, &options))
    }
}

impl Decoder for StreamDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(StreamDecoder::push(self, frames))
    }
}

#[cfg(test)]
mod tests;
