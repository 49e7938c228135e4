//! Barrage codec for Anthropic's Messages API (`POST /v1/messages`).
//!
//! A stream is server-sent events named by their type: `message_start`
//! (the prompt's usage), `content_block_start`, `content_block_delta`
//! (`text_delta` is output, `thinking_delta` reasoning, `input_json_delta`
//! a tool call's arguments, `signature_delta` nothing to count),
//! `content_block_stop`, `message_delta` (why it stopped, the output's
//! usage), `message_stop` (the end), `ping` and `error`. The key is the
//! `api-key` secret, sent as `x-api-key`.

use barrage_sdk::prelude::*;
use barrage_sdk::{Media, MediaSource, Tool};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The codec's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Request path (default `/v1/messages`).
    pub path: Option<String>,
    /// The `anthropic-version` header (default `2023-06-01`).
    pub version: Option<String>,
    /// `max_tokens` when the request has none: the API requires one.
    pub default_max_tokens: Option<u32>,
    /// Extra headers (e.g. `anthropic-beta`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The `api-key` secret, when granted.
    #[serde(skip)]
    pub api_key: Option<String>,
}

const API_KEY: &str = "api-key";

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        check_path("path", settings.path.as_deref())?;
        Ok(settings)
    }

    fn current() -> Settings {
        barrage_sdk::once_per_instance!(Settings, || Settings {
            api_key: secrets::get(API_KEY).ok(),
            ..Settings::from_config(&config::value()).unwrap_or_default()
        })
    }
}

fn image(m: &Media) -> Value {
    match &m.source {
        MediaSource::Inline(bytes) => json!({"type": "image", "source": {
            "type": "base64", "media_type": m.media_type, "data": STANDARD.encode(bytes)}}),
        MediaSource::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    }
}

/// A message's content blocks, its tool calls among them.
fn blocks(m: &Message) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for part in &m.content {
        out.push(match part {
            // A tool message's text is the result of the call it answers.
            ContentPart::Text(text) if m.tool_call_id.is_some() => {
                json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": text})
            }
            ContentPart::Text(text) => json!({"type": "text", "text": text}),
            ContentPart::Image(media) => image(media),
            ContentPart::Audio(_) => return Err("the Messages API takes no audio".into()),
        });
    }
    for call in &m.tool_calls {
        let input = call.arguments_json()?;
        out.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    Ok(out)
}

fn tools(tools: &[Tool]) -> Result<Value, String> {
    tools
        .iter()
        .map(|t| {
            let schema = t.schema()?;
            let mut tool = json!({"name": t.name, "input_schema": schema});
            if let Some(d) = &t.description {
                tool["description"] = d.clone().into();
            }
            Ok(tool)
        })
        .collect()
}

/// Build the request for `spec`: system messages go to `system`, a tool
/// message is a user message holding its result.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    match spec.prompt {
        Prompt::Text(text) => messages.push(json!({"role": "user", "content": text})),
        Prompt::Messages(ms) => {
            for m in &ms {
                match m.role.as_str() {
                    "system" => system.push(m.text_content()),
                    "tool" => messages.push(json!({"role": "user", "content": blocks(m)?})),
                    role => messages.push(json!({"role": role, "content": blocks(m)?})),
                }
            }
        }
        Prompt::TokenIds(_) => return Err("the Messages API takes text, not token ids".into()),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("anthropic-messages")),
    }
    let g = spec.generation;
    let mut body = Map::new();
    body.insert("model".into(), Value::String(spec.model));
    let max_tokens = g.max_tokens.or(settings.default_max_tokens).unwrap_or(1024);
    body.insert("max_tokens".into(), max_tokens.into());
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n").into());
    }
    if let Some(t) = g.temperature {
        body.insert("temperature".into(), f64::from(t).into());
    }
    if !spec.tools.is_empty() {
        body.insert("tools".into(), tools(&spec.tools)?);
    }
    body.insert("stream".into(), g.stream.into());
    merge_extra(&mut body, spec.extra.as_deref())?;
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        (
            "anthropic-version".to_string(),
            settings.version.clone().unwrap_or_else(|| "2023-06-01".into()),
        ),
    ];
    if let Some(key) = &settings.api_key {
        headers.push(("x-api-key".into(), key.clone()));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: settings.path.clone().unwrap_or_else(|| "/v1/messages".into()),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: g.stream,
        framing: Framing::Sse,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

#[derive(Deserialize, Default, Clone, Copy)]
struct ApiUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    cache_read_input_tokens: Option<u32>,
    cache_creation_input_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
    thinking: Option<String>,
    partial_json: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<ApiUsage>,
}

/// One event's data.
#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type")]
    kind: Option<String>,
    delta: Option<Delta>,
    usage: Option<ApiUsage>,
    message: Option<StartMessage>,
    error: Option<ApiError>,
}

fn server_error(e: ApiError) -> Event {
    Event::ServerError(ServerError {
        code: e.kind,
        message: e.message.unwrap_or_else(|| "error".into()),
    })
}

/// Decoding state of one stream: the prompt's usage from `message_start`,
/// reported with the output's at `message_delta`.
pub struct Stream {
    want_text: bool,
    prompt: ApiUsage,
}

impl Stream {
    fn decode(&mut self, frame: &Frame<'_>, emit: &mut dyn FnMut(Event)) {
        if frame.data.trim_ascii().is_empty() {
            return emit(Event::KeepAlive);
        }
        let data: Data = match serde_json::from_slice(frame.data) {
            Ok(d) => d,
            Err(e) => {
                return emit(Event::Malformed(format!(
                    "not a Messages event ({e}): {}",
                    snippet(frame.data)
                )));
            }
        };
        // The event's name and its data's `type` agree; either will do.
        let kind = frame.event.map(str::to_string).or(data.kind).unwrap_or_default();
        match kind.as_str() {
            "message_start" => {
                if let Some(u) = data.message.and_then(|m| m.usage) {
                    self.prompt = u;
                }
                emit(Event::RoleOnly);
            }
            "content_block_delta" => match data.delta {
                Some(Delta {
                    kind: Some(k),
                    text: Some(t),
                    ..
                }) if k == "text_delta" => emit(Event::Content(ContentDelta::of_text(&t, self.want_text))),
                Some(Delta { thinking: Some(t), .. }) => {
                    emit(Event::Reasoning(ContentDelta::of_text(&t, self.want_text)))
                }
                // A tool call's arguments are output the model generated.
                Some(Delta {
                    partial_json: Some(j), ..
                }) => emit(Event::Content(ContentDelta::of_text(&j, self.want_text))),
                _ => emit(Event::EmptyDelta),
            },
            "content_block_start" | "content_block_stop" => emit(Event::EmptyDelta),
            "message_delta" => {
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    emit(Event::Finish(reason));
                }
                let output = data.usage.unwrap_or_default();
                emit(usage(self.prompt, output.output_tokens));
            }
            "message_stop" => emit(Event::Done),
            "error" => emit(server_error(data.error.unwrap_or(ApiError {
                kind: None,
                message: Some(snippet(frame.data)),
            }))),
            // `ping`, and event types the API may add: nothing to count.
            _ => emit(Event::KeepAlive),
        }
    }
}

/// Usage as the host counts it: the prompt is every input token, read from
/// the cache or not.
fn usage(prompt: ApiUsage, output_tokens: Option<u32>) -> Event {
    let cached = prompt.cache_read_input_tokens;
    let input = prompt
        .input_tokens
        .map(|n| n + cached.unwrap_or(0) + prompt.cache_creation_input_tokens.unwrap_or(0));
    Event::Usage(Usage {
        prompt_tokens: input,
        completion_tokens: output_tokens,
        cached_tokens: cached,
        reasoning_tokens: None,
    })
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(each_frame(frames, |frame, emit| self.decode(frame, emit)))
    }
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    thinking: Option<String>,
    input: Option<Value>,
}

#[derive(Deserialize)]
struct Whole {
    content: Option<Vec<Block>>,
    stop_reason: Option<String>,
    usage: Option<ApiUsage>,
    error: Option<ApiError>,
}

/// Decode a whole (non-streamed) response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let mut events = Vec::new();
    match serde_json::from_slice::<Whole>(body) {
        Ok(Whole { error: Some(e), .. }) => events.push(server_error(e)),
        Ok(w) if w.content.is_some() => {
            for b in w.content.unwrap_or_default() {
                match (b.kind.as_str(), b.text, b.thinking, b.input) {
                    ("text", Some(t), _, _) => {
                        events.push(Event::Content(ContentDelta::of_text(&t, options.want_text)))
                    }
                    ("thinking", _, Some(t), _) => {
                        events.push(Event::Reasoning(ContentDelta::of_text(&t, options.want_text)))
                    }
                    ("tool_use", _, _, Some(input)) => events.push(Event::Content(ContentDelta::of_text(
                        &input.to_string(),
                        options.want_text,
                    ))),
                    _ => {}
                }
            }
            if let Some(reason) = w.stop_reason {
                events.push(Event::Finish(reason));
            }
            let u = w.usage.unwrap_or_default();
            events.push(usage(u, u.output_tokens));
        }
        Ok(_) | Err(_) if is_success(head.status) => {
            events.push(Event::Malformed(format!("not a Messages response: {}", snippet(body))));
        }
        _ => {}
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `anthropic-messages` codec.
pub struct AnthropicMessages;

impl Codec for AnthropicMessages {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "anthropic-messages".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Anthropic's Messages API (/v1/messages), streaming and not".into(),
            secrets: vec![barrage_sdk::SecretNeed::optional(
                API_KEY,
                "an API key, sent as `x-api-key`",
            )],
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        Settings::from_config(config).map(|_| ())
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        encode(&Settings::current(), spec)
    }

    fn decoder(_head: ResponseHead, options: DecodeOptions) -> Stream {
        Stream {
            want_text: options.want_text,
            prompt: ApiUsage::default(),
        }
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&head, &body, &options))
    }
}

barrage_sdk::export_codec!(AnthropicMessages);

#[cfg(test)]
mod tests;
