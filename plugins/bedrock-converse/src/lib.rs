//! Barrage codec for Amazon Bedrock's Converse API: `POST
//! /model/{modelId}/converse-stream` (ConverseStream), or `…/converse` for a
//! whole response, signed with SigV4 inside the plugin.
//!
//! A stream is an AWS event stream (`application/vnd.amazon.eventstream`),
//! which the host cuts and checks (CRCs) and hands over one message per
//! frame, named by its event type: `messageStart`, `contentBlockStart`,
//! `contentBlockDelta` (`text` is output, `reasoningContent` reasoning,
//! `toolUse.input` a tool call's arguments), `contentBlockStop`,
//! `messageStop` (why it stopped), `metadata` (usage; the stream's last
//! event) and exceptions (`exception:throttlingException` and the like).

use aws_common::{Credentials, Signing, Unsigned};
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
    /// Where requests are signed for.
    #[serde(flatten)]
    pub signing: Signing,
    /// `max_tokens` when the request has none.
    pub default_max_tokens: Option<u32>,
    /// Extra headers, signed with the rest.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The credentials granted as secrets, if any.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        settings.signing.check()?;
        Ok(settings)
    }

    fn current() -> Result<Settings, String> {
        barrage_sdk::once_per_instance!(Result<Settings, String>, || {
            Ok(Settings {
                credentials: Credentials::from_secrets()?,
                ..Settings::from_config(&config::value()).unwrap_or_default()
            })
        })
    }
}

/// A Bedrock image block: bytes only (an image at a URL must be fetched
/// by the dataset first; Bedrock reads none).
fn image(m: &Media) -> Result<Value, String> {
    let format = m
        .media_type
        .strip_prefix("image/")
        .map(|f| if f == "jpg" { "jpeg" } else { f })
        .filter(|f| matches!(*f, "png" | "jpeg" | "gif" | "webp"))
        .ok_or_else(|| format!("Bedrock takes png, jpeg, gif or webp images, not `{}`", m.media_type))?;
    match &m.source {
        MediaSource::Inline(bytes) => {
            Ok(json!({"image": {"format": format, "source": {"bytes": STANDARD.encode(bytes)}}}))
        }
        MediaSource::Url(url) => Err(format!(
            "Bedrock reads images from the request, not from a URL ({url}): give the dataset the file"
        )),
    }
}

/// A message's content blocks, its tool calls and results among them.
fn blocks(m: &Message) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for part in &m.content {
        out.push(match part {
            ContentPart::Text(text) if m.tool_call_id.is_some() => {
                json!({"toolResult": {"toolUseId": m.tool_call_id, "content": [{"text": text}]}})
            }
            ContentPart::Text(text) => json!({"text": text}),
            ContentPart::Image(media) => image(media)?,
            ContentPart::Audio(_) => return Err("the Converse API takes no audio".into()),
        });
    }
    for call in &m.tool_calls {
        let input = call.arguments_json()?;
        out.push(json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": input}}));
    }
    Ok(out)
}

fn tool_config(tools: &[Tool]) -> Result<Value, String> {
    let tools = tools
        .iter()
        .map(|t| {
            let schema = t.schema()?;
            let mut spec = json!({"name": t.name, "inputSchema": {"json": schema}});
            if let Some(d) = &t.description {
                spec["description"] = d.clone().into();
            }
            Ok(json!({"toolSpec": spec}))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(json!({"tools": tools}))
}

/// Build and sign the request for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    match spec.prompt {
        Prompt::Text(text) => messages.push(json!({"role": "user", "content": [{"text": text}]})),
        Prompt::Messages(ms) => {
            for m in &ms {
                match m.role.as_str() {
                    "system" => system.push(json!({"text": m.text_content()})),
                    // A tool's result goes back in a user message.
                    "tool" => messages.push(json!({"role": "user", "content": blocks(m)?})),
                    role => messages.push(json!({"role": role, "content": blocks(m)?})),
                }
            }
        }
        Prompt::TokenIds(_) => return Err("the Converse API takes text, not token ids".into()),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("bedrock-converse")),
    }
    let g = spec.generation;
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let mut inference = Map::new();
    if let Some(n) = g.max_tokens.or(settings.default_max_tokens) {
        inference.insert("maxTokens".into(), n.into());
    }
    if let Some(t) = g.temperature {
        inference.insert("temperature".into(), f64::from(t).into());
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }
    if !spec.tools.is_empty() {
        body.insert("toolConfig".into(), tool_config(&spec.tools)?);
    }
    // A model's own fields (`top_k`, `thinking`) go where Converse passes them on.
    if let Some(extra) = spec.extra.as_deref() {
        let fields: Value =
            serde_json::from_str(extra).map_err(|e| format!("the sample's `extra` is not JSON: {e}"))?;
        body.insert("additionalModelRequestFields".into(), fields);
    }
    let body = serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?;
    let action = if g.stream { "converse-stream" } else { "converse" };
    let path = format!("/model/{}/{action}", aws_common::encode_segment(&spec.model));
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(credentials) = &settings.credentials {
        let host = settings.signing.host("bedrock-runtime");
        let request = Unsigned {
            method: "POST",
            host: &host,
            path: &path,
            service: "bedrock",
            region: settings.signing.region(),
            time: &spec.send_time,
            body: &body,
        };
        aws_common::sign(credentials, &request, &mut headers);
    }
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path,
            headers,
            body,
        }),
        streaming: g.stream,
        framing: Framing::AwsEventStream,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct ApiUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    cache_read_input_tokens: Option<u32>,
    cache_write_input_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct ReasoningDelta {
    text: Option<String>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    input: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delta {
    text: Option<String>,
    reasoning_content: Option<ReasoningDelta>,
    tool_use: Option<ToolUseDelta>,
}

/// One event's payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    delta: Option<Delta>,
    stop_reason: Option<String>,
    usage: Option<ApiUsage>,
    message: Option<String>,
}

/// Usage as the host counts it: the prompt is every input token, read from
/// the cache or written to it.
fn usage(u: ApiUsage) -> Event {
    let cached = u.cache_read_input_tokens;
    Event::Usage(Usage {
        prompt_tokens: u
            .input_tokens
            .map(|n| n + cached.unwrap_or(0) + u.cache_write_input_tokens.unwrap_or(0)),
        completion_tokens: u.output_tokens,
        cached_tokens: cached,
        reasoning_tokens: None,
    })
}

fn content(d: Delta, want_text: bool) -> Event {
    match d {
        Delta { text: Some(t), .. } if t.is_empty() => Event::EmptyDelta,
        Delta { text: Some(t), .. } => Event::Content(ContentDelta::of_text(&t, want_text)),
        Delta {
            reasoning_content: Some(ReasoningDelta { text: Some(t) }),
            ..
        } => Event::Reasoning(ContentDelta::of_text(&t, want_text)),
        // A tool call's arguments are output the model generated.
        Delta {
            tool_use: Some(ToolUseDelta { input: Some(j) }),
            ..
        } => Event::Content(ContentDelta::of_text(&j, want_text)),
        _ => Event::EmptyDelta,
    }
}

/// Decoding a ConverseStream: no state beyond what to keep.
pub struct Stream {
    want_text: bool,
}

impl Stream {
    fn decode(&mut self, frame: &Frame<'_>, emit: &mut dyn FnMut(Event)) {
        let kind = frame.event.unwrap_or_default();
        let data: Data = match serde_json::from_slice(frame.data) {
            Ok(d) => d,
            Err(e) => {
                return emit(Event::Malformed(format!(
                    "`{kind}` is not a ConverseStream event ({e}): {}",
                    snippet(frame.data)
                )));
            }
        };
        if let Some(exception) = kind.strip_prefix("exception:").or_else(|| kind.strip_prefix("error:")) {
            return emit(Event::ServerError(ServerError {
                code: Some(exception.to_string()),
                message: data.message.unwrap_or_else(|| snippet(frame.data)),
            }));
        }
        match kind {
            "messageStart" => emit(Event::RoleOnly),
            "contentBlockDelta" => emit(data.delta.map_or(Event::EmptyDelta, |d| content(d, self.want_text))),
            "contentBlockStart" | "contentBlockStop" => emit(Event::EmptyDelta),
            "messageStop" => emit(Event::Finish(data.stop_reason.unwrap_or_default())),
            // The last event of a stream.
            "metadata" => {
                if let Some(u) = data.usage {
                    emit(usage(u));
                }
                emit(Event::Done);
            }
            // Event types the API may add: nothing to count.
            _ => emit(Event::KeepAlive),
        }
    }
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(each_frame(frames, |frame, emit| self.decode(frame, emit)))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block {
    text: Option<String>,
    reasoning_content: Option<Value>,
    tool_use: Option<Value>,
}

#[derive(Deserialize)]
struct OutputMessage {
    content: Vec<Block>,
}

#[derive(Deserialize)]
struct Output {
    message: Option<OutputMessage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Whole {
    output: Option<Output>,
    stop_reason: Option<String>,
    usage: Option<ApiUsage>,
}

/// Decode a whole Converse response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let mut events = Vec::new();
    if is_success(head.status) {
        match serde_json::from_slice::<Whole>(body) {
            Ok(Whole {
                output: Some(Output { message: Some(m) }),
                stop_reason,
                usage: u,
            }) => {
                for b in m.content {
                    let reasoning = b
                        .reasoning_content
                        .as_ref()
                        .and_then(|r| r.pointer("/reasoningText/text"));
                    let tool = b.tool_use.as_ref().and_then(|t| t.get("input"));
                    match (b.text, reasoning, tool) {
                        (Some(t), _, _) => events.push(Event::Content(ContentDelta::of_text(&t, options.want_text))),
                        (_, Some(Value::String(t)), _) => {
                            events.push(Event::Reasoning(ContentDelta::of_text(t, options.want_text)))
                        }
                        (_, _, Some(input)) => events.push(Event::Content(ContentDelta::of_text(
                            &input.to_string(),
                            options.want_text,
                        ))),
                        _ => {}
                    }
                }
                if let Some(reason) = stop_reason {
                    events.push(Event::Finish(reason));
                }
                events.push(usage(u.unwrap_or_default()));
            }
            _ => events.push(Event::Malformed(format!("not a Converse response: {}", snippet(body)))),
        }
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `bedrock-converse` codec.
pub struct BedrockConverse;

impl Codec for BedrockConverse {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "bedrock-converse".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Amazon Bedrock's Converse and ConverseStream APIs, SigV4-signed".into(),
            secrets: aws_common::secret_needs(),
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        Settings::from_config(config).map(|_| ())
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        encode(&Settings::current()?, spec)
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

barrage_sdk::export_codec!(BedrockConverse);

#[cfg(test)]
mod tests;
