//! Barrage codec for OpenAI's Responses API (`POST /v1/responses`).
//!
//! A stream is server-sent events named by their type. Output arrives as
//! `response.output_text.delta` (text), `response.refusal.delta` and
//! `response.function_call_arguments.delta` (output too), and
//! `response.reasoning_summary_text.delta` / `response.reasoning_text.delta`
//! (reasoning). The stream ends with `response.completed`,
//! `response.incomplete` (why: `incomplete_details.reason`) or
//! `response.failed`, each holding the whole response and its usage; an
//! `error` event is a server error. There is no `[DONE]`. The key is the
//! `api-key` secret, sent as a bearer token.

use barrage_sdk::prelude::*;
use barrage_sdk::{MediaSource, Tool};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The codec's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Request path (default `/v1/responses`).
    pub path: Option<String>,
    /// Keep responses on the server (`store`; default false: a benchmark
    /// leaves nothing behind).
    #[serde(default)]
    pub store: bool,
    /// Extra headers sent with every request.
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

fn part(p: &ContentPart, role: &str) -> Result<Value, String> {
    Ok(match p {
        // What the model said before is output text; what it is told, input.
        ContentPart::Text(text) if role == "assistant" => json!({"type": "output_text", "text": text}),
        ContentPart::Text(text) => json!({"type": "input_text", "text": text}),
        ContentPart::Image(m) => json!({"type": "input_image", "image_url": openai_common::chat::url(m)}),
        ContentPart::Audio(m) => match &m.source {
            MediaSource::Url(_) | MediaSource::Inline(_) => {
                return Err("the Responses API takes no audio input: use the openai-chat codec".into());
            }
        },
    })
}

/// A message's input items: the message itself, then its tool calls; a
/// tool message is the output of the call it answers.
fn items(m: &Message, out: &mut Vec<Value>) -> Result<(), String> {
    if let Some(call_id) = &m.tool_call_id {
        out.push(json!({"type": "function_call_output", "call_id": call_id, "output": m.text_content()}));
        return Ok(());
    }
    if !m.content.is_empty() {
        let content: Vec<Value> = m.content.iter().map(|p| part(p, &m.role)).collect::<Result<_, _>>()?;
        out.push(json!({"role": m.role, "content": content}));
    }
    for c in &m.tool_calls {
        out.push(json!({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}));
    }
    Ok(())
}

/// Tools as the Responses API writes them: flat, not under `function`.
fn tools(tools: Vec<Tool>) -> Result<Value, String> {
    let Value::Array(chat) = openai_common::chat::tools(tools)? else {
        return Ok(Value::Array(Vec::new()));
    };
    Ok(chat
        .into_iter()
        .map(|mut t| {
            let mut flat = t["function"].take();
            flat["type"] = "function".into();
            flat
        })
        .collect())
}

/// Build the request for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let input = match spec.prompt {
        Prompt::Text(text) => Value::String(text),
        Prompt::Messages(ms) => {
            let mut out = Vec::new();
            for m in &ms {
                items(m, &mut out)?;
            }
            Value::Array(out)
        }
        Prompt::TokenIds(_) => return Err("the Responses API takes text, not token ids".into()),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("openai-responses")),
    };
    let g = spec.generation;
    let mut body = Map::new();
    body.insert("model".into(), Value::String(spec.model));
    body.insert("input".into(), input);
    if let Some(n) = g.max_tokens {
        body.insert("max_output_tokens".into(), n.into());
    }
    if let Some(t) = g.temperature {
        body.insert("temperature".into(), f64::from(t).into());
    }
    if !spec.tools.is_empty() {
        body.insert("tools".into(), tools(spec.tools)?);
    }
    body.insert("stream".into(), g.stream.into());
    body.insert("store".into(), settings.store.into());
    merge_extra(&mut body, spec.extra.as_deref())?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = &settings.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: settings.path.clone().unwrap_or_else(|| "/v1/responses".into()),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: g.stream,
        framing: Framing::Sse,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

#[derive(Deserialize, Default)]
struct Details {
    cached_tokens: Option<u32>,
    reasoning_tokens: Option<u32>,
}

#[derive(Deserialize, Default)]
struct ApiUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    #[serde(default)]
    input_tokens_details: Details,
    #[serde(default)]
    output_tokens_details: Details,
}

#[derive(Deserialize)]
struct Incomplete {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct OutputPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct OutputItem {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    content: Vec<OutputPart>,
    #[serde(default)]
    summary: Vec<OutputPart>,
    arguments: Option<String>,
}

/// A whole response object (`response.completed`'s, or the unary body).
#[derive(Deserialize)]
struct Response {
    status: Option<String>,
    #[serde(default)]
    output: Vec<OutputItem>,
    usage: Option<ApiUsage>,
    incomplete_details: Option<Incomplete>,
    error: Option<ApiError>,
}

/// One event's data.
#[derive(Deserialize)]
struct Data {
    #[serde(rename = "type")]
    kind: Option<String>,
    delta: Option<String>,
    response: Option<Response>,
    code: Option<String>,
    message: Option<String>,
}

fn server_error(code: Option<String>, message: Option<String>) -> Event {
    Event::ServerError(ServerError {
        code,
        message: message.unwrap_or_else(|| "error".into()),
    })
}

/// The events of a finished response: why it ended (its status, or why
/// it is incomplete), its usage, or its error.
fn ending(r: Response, emit: &mut dyn FnMut(Event)) {
    if let Some(e) = r.error {
        return emit(server_error(e.code, e.message));
    }
    let reason = match (r.status.as_deref(), r.incomplete_details) {
        (Some("incomplete"), Some(Incomplete { reason: Some(why) })) => why,
        (status, _) => status.unwrap_or("completed").to_string(),
    };
    emit(Event::Finish(reason));
    if let Some(u) = r.usage {
        emit(Event::Usage(Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            cached_tokens: u.input_tokens_details.cached_tokens,
            reasoning_tokens: u.output_tokens_details.reasoning_tokens,
        }));
    }
}

/// Decoding state of one stream: none beyond what to keep.
pub struct Stream {
    want_text: bool,
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
                    "not a Responses event ({e}): {}",
                    snippet(frame.data)
                )));
            }
        };
        let kind = frame.event.map(str::to_string).or(data.kind).unwrap_or_default();
        let text = |emit: &mut dyn FnMut(Event), reasoning: bool| match &data.delta {
            Some(d) if d.is_empty() => emit(Event::EmptyDelta),
            Some(d) if reasoning => emit(Event::Reasoning(ContentDelta::of_text(d, self.want_text))),
            Some(d) => emit(Event::Content(ContentDelta::of_text(d, self.want_text))),
            None => emit(Event::EmptyDelta),
        };
        match kind.as_str() {
            "response.created" => emit(Event::RoleOnly),
            "response.output_text.delta" | "response.refusal.delta" | "response.function_call_arguments.delta" => {
                text(emit, false)
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => text(emit, true),
            "response.completed" | "response.incomplete" | "response.failed" => {
                if let Some(r) = data.response {
                    ending(r, emit);
                }
                emit(Event::Done);
            }
            "error" => emit(server_error(data.code, data.message)),
            // `…added`, `…done`, `response.in_progress` and event types the
            // API may add: nothing to count.
            _ => emit(Event::EmptyDelta),
        }
    }
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(each_frame(frames, |frame, emit| self.decode(frame, emit)))
    }
}

/// Decode a whole (non-streamed) response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let mut events = Vec::new();
    #[derive(Deserialize)]
    struct Failed {
        error: ApiError,
    }
    if let Ok(Failed { error }) = serde_json::from_slice::<Failed>(body)
        && !is_success(head.status)
    {
        events.push(server_error(error.code, error.message));
    } else if is_success(head.status) {
        match serde_json::from_slice::<Response>(body) {
            Ok(r) if r.status.is_some() => {
                for item in &r.output {
                    for p in &item.content {
                        match (p.kind.as_str(), &p.text, &p.refusal) {
                            ("output_text", Some(t), _) | ("refusal", _, Some(t)) => {
                                events.push(Event::Content(ContentDelta::of_text(t, options.want_text)))
                            }
                            _ => {}
                        }
                    }
                    for p in &item.summary {
                        if let Some(t) = &p.text {
                            events.push(Event::Reasoning(ContentDelta::of_text(t, options.want_text)));
                        }
                    }
                    if let (Some(args), "function_call") = (&item.arguments, item.kind.as_str()) {
                        events.push(Event::Content(ContentDelta::of_text(args, options.want_text)));
                    }
                }
                ending(r, &mut |e| events.push(e));
            }
            _ => events.push(Event::Malformed(format!("not a Responses response: {}", snippet(body)))),
        }
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `openai-responses` codec.
pub struct OpenAiResponses;

impl Codec for OpenAiResponses {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "openai-responses".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "OpenAI's Responses API (/v1/responses), streaming and not".into(),
            secrets: vec![barrage_sdk::SecretNeed::optional(
                API_KEY,
                "an API key, sent as a bearer token",
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
        }
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&head, &body, &options))
    }
}

barrage_sdk::export_codec!(OpenAiResponses);

#[cfg(test)]
mod tests;
