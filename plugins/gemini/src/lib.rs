//! Barrage codec for Google's Gemini API (`/v1beta/models/{model}:…`) and
//! Vertex AI (`/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…`):
//! `streamGenerateContent?alt=sse`, or `generateContent` for a whole
//! response.
//!
//! Each streamed event is a `GenerateContentResponse` holding new parts
//! (`text`; `thought: true` parts are reasoning; a `functionCall`'s
//! arguments are output) and `usageMetadata` so far. There is no end
//! marker: the chunk with a `finishReason` is the last. The Gemini API's
//! key is the `api-key` secret (`x-goog-api-key`); Vertex AI's OAuth token
//! the `access-token` secret (a bearer token).

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
    /// `gemini` (Google AI's Gemini API, default) or `vertex`.
    pub api: Option<String>,
    /// The API version in the path (default `v1beta` for Gemini, `v1` for Vertex).
    pub version: Option<String>,
    /// Vertex AI: the project.
    pub project: Option<String>,
    /// Vertex AI: the location (default `us-central1`).
    pub location: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The `api-key` secret, when granted.
    #[serde(skip)]
    pub api_key: Option<String>,
    /// The `access-token` secret, when granted.
    #[serde(skip)]
    pub access_token: Option<String>,
}

const API_KEY: &str = "api-key";
const ACCESS_TOKEN: &str = "access-token";

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        let bad = |field: &str, message: String| ConfigError {
            field: Some(field.into()),
            message,
        };
        match (settings.api.as_deref(), &settings.project) {
            (None | Some("gemini"), _) => {}
            (Some("vertex"), Some(p)) if segment_ok(p) => {}
            (Some("vertex"), Some(p)) => return Err(bad("project", format!("`{p}` is not a project id"))),
            (Some("vertex"), None) => {
                return Err(bad(
                    "project",
                    "Vertex AI needs the project: `project: my-project`".into(),
                ));
            }
            (Some(other), _) => {
                return Err(bad("api", format!("`{other}` is not an API; use `gemini` or `vertex`")));
            }
        }
        for (field, value) in [("version", &settings.version), ("location", &settings.location)] {
            if let Some(v) = value
                && !segment_ok(v)
            {
                return Err(bad(field, format!("`{v}` cannot be a path segment")));
            }
        }
        Ok(settings)
    }

    fn current() -> Settings {
        barrage_sdk::once_per_instance!(Settings, || Settings {
            api_key: secrets::get(API_KEY).ok(),
            access_token: secrets::get(ACCESS_TOKEN).ok(),
            ..Settings::from_config(&config::value()).unwrap_or_default()
        })
    }

    fn path(&self, model: &str, stream: bool) -> String {
        let method = if stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        match &self.project {
            Some(project) if self.api.as_deref() == Some("vertex") => format!(
                "/{}/projects/{project}/locations/{}/publishers/google/models/{model}:{method}",
                self.version.as_deref().unwrap_or("v1"),
                self.location.as_deref().unwrap_or("us-central1"),
            ),
            _ => format!(
                "/{}/models/{model}:{method}",
                self.version.as_deref().unwrap_or("v1beta")
            ),
        }
    }
}

fn media(m: &Media) -> Value {
    match &m.source {
        MediaSource::Inline(bytes) => json!({"inlineData": {"mimeType": m.media_type, "data": STANDARD.encode(bytes)}}),
        MediaSource::Url(url) => json!({"fileData": {"mimeType": m.media_type, "fileUri": url}}),
    }
}

/// A message's parts. A tool message answers a call by its function's
/// name, which Gemini wants and the message has only as the call's id:
/// `names` maps the ids of earlier calls to their names.
fn parts(m: &Message, names: &[(String, String)]) -> Result<Vec<Value>, String> {
    if let Some(id) = &m.tool_call_id {
        let name = names
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| format!("tool message answers call `{id}`, which no earlier message made"))?;
        return Ok(vec![
            json!({"functionResponse": {"name": name, "response": {"content": m.text_content()}}}),
        ]);
    }
    let mut out: Vec<Value> = m
        .content
        .iter()
        .map(|p| match p {
            ContentPart::Text(text) => json!({"text": text}),
            ContentPart::Image(m) | ContentPart::Audio(m) => media(m),
        })
        .collect();
    for call in &m.tool_calls {
        let args = call.arguments_json()?;
        out.push(json!({"functionCall": {"name": call.name, "args": args}}));
    }
    Ok(out)
}

fn tools(tools: &[Tool]) -> Result<Value, String> {
    let declarations = tools
        .iter()
        .map(|t| {
            let schema = t.schema()?;
            let mut d = json!({"name": t.name, "parameters": schema});
            if let Some(desc) = &t.description {
                d["description"] = desc.clone().into();
            }
            Ok(d)
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(json!([{"functionDeclarations": declarations}]))
}

/// Build the request for `spec`: system messages go to `systemInstruction`,
/// the assistant is `model`, a tool's result goes back as `user`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut system = Vec::new();
    let mut contents = Vec::new();
    match spec.prompt {
        Prompt::Text(text) => contents.push(json!({"role": "user", "parts": [{"text": text}]})),
        Prompt::Messages(ms) => {
            let mut names = Vec::new();
            for m in &ms {
                names.extend(m.tool_calls.iter().map(|c| (c.id.clone(), c.name.clone())));
                let role = match m.role.as_str() {
                    "system" | "developer" => {
                        system.push(json!({"text": m.text_content()}));
                        continue;
                    }
                    "assistant" | "model" => "model",
                    _ => "user",
                };
                contents.push(json!({"role": role, "parts": parts(m, &names)?}));
            }
        }
        Prompt::TokenIds(_) => return Err("the Gemini API takes text, not token ids".into()),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("gemini")),
    }
    let g = spec.generation;
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = Map::new();
    if let Some(n) = g.max_tokens {
        config.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = g.temperature {
        config.insert("temperature".into(), f64::from(t).into());
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if !spec.tools.is_empty() {
        body.insert("tools".into(), tools(&spec.tools)?);
    }
    merge_extra(&mut body, spec.extra.as_deref())?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = &settings.api_key {
        headers.push(("x-goog-api-key".into(), key.clone()));
    }
    if let Some(token) = &settings.access_token {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !segment_ok(&spec.model) {
        return Err(format!("model `{}` cannot be a path segment", spec.model));
    }
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: settings.path(&spec.model, g.stream),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: g.stream,
        framing: Framing::Sse,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    function_call: Option<Value>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiUsage {
    prompt_token_count: Option<u32>,
    candidates_token_count: Option<u32>,
    cached_content_token_count: Option<u32>,
    thoughts_token_count: Option<u32>,
}

#[derive(Deserialize)]
struct ApiError {
    status: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<ApiUsage>,
    error: Option<ApiError>,
    prompt_feedback: Option<Value>,
}

/// The events of one `GenerateContentResponse`: parts, usage so far, and,
/// in the last, why it stopped and the end.
fn chunk_events(c: Chunk, want_text: bool, emit: &mut dyn FnMut(Event)) {
    if let Some(e) = c.error {
        return emit(Event::ServerError(ServerError {
            code: e.status,
            message: e.message.unwrap_or_else(|| "error".into()),
        }));
    }
    let mut finish = None;
    let mut any = false;
    if let Some(candidate) = c.candidates.into_iter().next() {
        for p in candidate.content.map(|c| c.parts).unwrap_or_default() {
            any = true;
            match (p.text, p.function_call) {
                // The last chunk often holds an empty part beside its finish reason.
                (Some(t), _) if t.is_empty() => emit(Event::EmptyDelta),
                (Some(t), _) if p.thought => emit(Event::Reasoning(ContentDelta::of_text(&t, want_text))),
                (Some(t), _) => emit(Event::Content(ContentDelta::of_text(&t, want_text))),
                (None, Some(call)) => emit(Event::Content(ContentDelta::of_text(
                    &call.get("args").map(Value::to_string).unwrap_or_default(),
                    want_text,
                ))),
                (None, None) => emit(Event::EmptyDelta),
            }
        }
        finish = candidate.finish_reason;
    }
    if let Some(u) = c.usage_metadata {
        any = true;
        let cached = u.cached_content_token_count;
        emit(Event::Usage(Usage {
            prompt_tokens: u.prompt_token_count,
            // Thinking tokens are billed as output but counted apart.
            completion_tokens: u
                .candidates_token_count
                .map(|n| n + u.thoughts_token_count.unwrap_or(0)),
            cached_tokens: cached,
            reasoning_tokens: u.thoughts_token_count,
        }));
    }
    if let Some(reason) = finish {
        emit(Event::Finish(reason));
        emit(Event::Done);
    } else if c.prompt_feedback.is_some() && !any {
        // A prompt blocked before any output: the response ends here.
        emit(Event::Finish("blocked".into()));
        emit(Event::Done);
    } else if !any {
        emit(Event::EmptyDelta);
    }
}

/// Decoding a stream: no state beyond what to keep.
pub struct Stream {
    want_text: bool,
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(each_frame(frames, |frame, emit| {
            if frame.data.trim_ascii().is_empty() {
                return emit(Event::KeepAlive);
            }
            match serde_json::from_slice::<Chunk>(frame.data) {
                Ok(c) => chunk_events(c, self.want_text, emit),
                Err(e) => emit(Event::Malformed(format!(
                    "not a GenerateContentResponse ({e}): {}",
                    snippet(frame.data)
                ))),
            }
        }))
    }
}

/// Decode a whole response (`generateContent`).
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let mut events = Vec::new();
    match serde_json::from_slice::<Chunk>(body) {
        Ok(c) if c.error.is_some() || is_success(head.status) => {
            chunk_events(c, options.want_text, &mut |e| events.push(e));
            // A whole response is whole: it needs no end marker.
            events.retain(|e| !matches!(e, Event::Done | Event::EmptyDelta));
        }
        _ if is_success(head.status) => {
            events.push(Event::Malformed(format!(
                "not a GenerateContentResponse: {}",
                snippet(body)
            )));
        }
        _ => {}
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `gemini` codec.
pub struct Gemini;

impl Codec for Gemini {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "gemini".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Google's Gemini API and Vertex AI (generateContent, streamGenerateContent)".into(),
            secrets: vec![
                barrage_sdk::SecretNeed::optional(API_KEY, "a Gemini API key, sent as `x-goog-api-key`"),
                barrage_sdk::SecretNeed::optional(
                    ACCESS_TOKEN,
                    "a Vertex AI OAuth access token, sent as a bearer token",
                ),
            ],
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

barrage_sdk::export_codec!(Gemini);

#[cfg(test)]
mod tests;
