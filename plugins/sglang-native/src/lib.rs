//! Barrage codec for SGLang's native `/generate`, streamed (SSE) or not:
//!
//! ```text
//! data: {"text":"The","meta_info":{"id":"…","finish_reason":null,"prompt_tokens":5,"completion_tokens":1,"cached_tokens":0},"index":0}
//! data: {"text":"The sky","meta_info":{"id":"…","finish_reason":{"type":"length","length":2},"prompt_tokens":5,"completion_tokens":2,"cached_tokens":0},"index":0}
//! data: [DONE]
//! ```
//!
//! Each event carries the text so far, not only the new part (unless the
//! server runs with `--incremental-streaming-output`: set
//! `incremental_output`), and the counts so far in `meta_info`: the new
//! text and tokens of an event are the growth since the one before.

use std::borrow::Cow;
use std::collections::BTreeMap;

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The plugin's configuration table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Request path.
    pub path: String,
    /// The server sends only the new text in each event
    /// (`--incremental-streaming-output`).
    pub incremental_output: bool,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            path: "/generate".into(),
            incremental_output: false,
            headers: BTreeMap::new(),
        }
    }
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        check_path("path", Some(&settings.path))?;
        Ok(settings)
    }

    fn current() -> Settings {
        Settings::from_config(&config::value()).unwrap_or_default()
    }
}

/// Build the request for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut body = Map::new();
    match spec.prompt {
        Prompt::Text(text) => body.insert("text".into(), text.into()),
        Prompt::TokenIds(ids) => body.insert("input_ids".into(), ids.into()),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("sglang-native")),
        Prompt::Messages(_) => {
            return Err(
                "sglang-native takes a text or token-id prompt; give the dataset a chat template \
                        (dataset.chat_template) or use the openai-chat codec against SGLang's /v1/chat/completions"
                    .into(),
            );
        }
    };
    let g = spec.generation;
    let mut sampling = Map::new();
    if let Some(max) = g.max_tokens {
        sampling.insert("max_new_tokens".into(), max.into());
    }
    if let Some(min) = g.min_tokens {
        sampling.insert("min_new_tokens".into(), min.into());
    }
    if g.ignore_eos {
        sampling.insert("ignore_eos".into(), true.into());
    }
    if let Some(t) = g.temperature {
        sampling.insert("temperature".into(), f64::from(t).into());
    }
    body.insert("sampling_params".into(), Value::Object(sampling));
    body.insert("stream".into(), g.stream.into());
    barrage_sdk::codec::merge_extra_nested(&mut body, spec.extra.as_deref(), "sampling_params")?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: settings.path.clone(),
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
struct Chunk<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    meta_info: Option<MetaInfo<'a>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct MetaInfo<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<FinishReason<'a>>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
    #[serde(default)]
    cached_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct FinishReason<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// `{"error": {"message": ...}}`, `{"error": "..."}` or the OpenAI layer's
/// `{"object": "error", ...}` as the error event.
fn server_error(error: &Value) -> Event {
    let message = match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_string),
        other => other.to_string(),
    };
    let code = error.get("code").map(|c| c.to_string().trim_matches('"').to_string());
    Event::ServerError(ServerError { code, message })
}

impl MetaInfo<'_> {
    /// The end of a response: its finish reason (an abort is the server's
    /// error) and its counts.
    fn finish(self, emit: &mut dyn FnMut(Event)) {
        let Some(finish) = self.finish_reason else { return };
        if finish.kind == "abort" {
            return emit(Event::ServerError(ServerError {
                code: Some("abort".into()),
                message: finish.message.map_or_else(|| "request aborted".into(), Cow::into_owned),
            }));
        }
        emit(Event::Finish(finish.kind.into_owned()));
        emit(Event::Usage(Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_tokens: self.cached_tokens,
            reasoning_tokens: None,
        }));
    }
}

/// Decoding state of one stream: how much text and how many tokens the
/// events before had.
pub struct StreamDecoder {
    want_text: bool,
    incremental: bool,
    text_len: usize,
    tokens: u32,
}

impl StreamDecoder {
    fn decode_frame(&mut self, data: &[u8], emit: &mut dyn FnMut(Event)) {
        let data = data.trim_ascii();
        if data.is_empty() {
            return emit(Event::KeepAlive);
        }
        if data == b"[DONE]" {
            return emit(Event::Done);
        }
        let chunk: Chunk = match serde_json::from_slice(data) {
            Ok(c) => c,
            Err(e) => {
                return emit(Event::Malformed(format!(
                    "not an SGLang stream event ({e}): {}",
                    snippet(data)
                )));
            }
        };
        if let Some(error) = &chunk.error {
            return emit(server_error(error));
        }
        let text = chunk.text.unwrap_or_default();
        let new_text = if self.incremental {
            &text[..]
        } else {
            match text.get(self.text_len..) {
                Some(t) => t,
                None => {
                    return emit(Event::Malformed(format!(
                        "the text so far ({} bytes) is shorter than the event before's ({} bytes); \
                         if the server sends only new text, set incremental_output = true",
                        text.len(),
                        self.text_len
                    )));
                }
            }
        };
        let meta = chunk.meta_info;
        let tokens = meta.as_ref().and_then(|m| m.completion_tokens).map(|now| {
            let new = now.saturating_sub(self.tokens);
            self.tokens = now;
            new
        });
        if new_text.is_empty() {
            emit(Event::EmptyDelta);
        } else {
            emit(Event::Content(ContentDelta {
                bytes: new_text.len() as u32,
                tokens,
                text: self.want_text.then(|| new_text.to_string()),
            }));
        }
        if !self.incremental {
            self.text_len = text.len();
        }
        if let Some(meta) = meta {
            meta.finish(emit);
        }
    }
}

impl Decoder for StreamDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(each_frame(frames, |frame, emit| self.decode_frame(frame.data, emit)))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body<'a> {
    #[serde(borrow)]
    One(Chunk<'a>),
    /// A batch of prompts answers with a list.
    #[serde(borrow)]
    Many(Vec<Chunk<'a>>),
}

/// Decode a non-streamed response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let chunk = match serde_json::from_slice::<Body>(body.trim_ascii()) {
        Ok(Body::One(c)) => c,
        Ok(Body::Many(cs)) if !cs.is_empty() => cs.into_iter().next().unwrap_or(Chunk {
            text: None,
            meta_info: None,
            error: None,
        }),
        Ok(Body::Many(_)) => return vec![Event::Malformed("response is an empty list".into())],
        Err(_) if !is_success(head.status) => return vec![http_error(head.status, body)],
        Err(e) => {
            return vec![Event::Malformed(format!(
                "response body is not an SGLang response ({e}): {}",
                snippet(body)
            ))];
        }
    };
    let mut events = Vec::new();
    if let Some(error) = &chunk.error {
        events.push(server_error(error));
    } else if let Some(text) = chunk.text {
        events.push(Event::Content(ContentDelta {
            bytes: text.len() as u32,
            tokens: chunk.meta_info.as_ref().and_then(|m| m.completion_tokens),
            text: options.want_text.then(|| text.into_owned()),
        }));
        if let Some(meta) = chunk.meta_info {
            meta.finish(&mut |e| events.push(e));
        }
    } else {
        events.push(Event::Malformed(format!("response has no `text`: {}", snippet(body))));
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `sglang-native` codec.
pub struct SglangNative;

impl Codec for SglangNative {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "sglang-native".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "SGLang's native /generate, streaming and not".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        Settings::from_config(config).map(|_| ())
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        encode(&Settings::current(), spec)
    }

    fn decoder(_head: ResponseHead, options: DecodeOptions) -> StreamDecoder {
        StreamDecoder {
            want_text: options.want_text,
            incremental: Settings::current().incremental_output,
            text_len: 0,
            tokens: 0,
        }
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&head, &body, &options))
    }
}

barrage_sdk::export_codec!(SglangNative);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream, sse_frames};

    fn spec(prompt: Prompt) -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "m".into(),
            prompt,
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: Some(4),
                ignore_eos: true,
                temperature: Some(0.0),
                stream: true,
                include_usage: true,
            },
            extra: Some(r#"{"sampling_params": {"top_p": 0.9}, "rid": "r1"}"#.into()),
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        }
    }

    #[test]
    fn encode_sends_text_or_ids_with_sampling_params() {
        testing::set_config(serde_json::json!({}));
        let req = SglangNative::encode(spec(Prompt::TokenIds(vec![1, 2]))).unwrap();
        let WireRequest::Http(h) = &req.request else { panic!() };
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(h.path, "/generate");
        assert_eq!(body["input_ids"], serde_json::json!([1, 2]));
        let s = &body["sampling_params"];
        assert_eq!(
            (s["max_new_tokens"].as_u64(), s["min_new_tokens"].as_u64()),
            (Some(16), Some(4))
        );
        assert_eq!(s["ignore_eos"], true);
        assert_eq!(s["top_p"], 0.9);
        assert_eq!(body["rid"], "r1");
        assert_eq!(body["stream"], true);
    }

    const STREAM: &str = "data: {\"text\":\"The\",\"meta_info\":{\"finish_reason\":null,\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n\
        data: {\"text\":\"The sky is\",\"meta_info\":{\"finish_reason\":null,\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n\
        data: {\"text\":\"The sky is\",\"meta_info\":{\"finish_reason\":{\"type\":\"stop\",\"matched\":2},\"prompt_tokens\":5,\"completion_tokens\":4,\"cached_tokens\":2}}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn cumulative_text_and_counts_become_deltas() {
        testing::set_config(serde_json::json!({}));
        let events = decode_stream::<SglangNative>(sse_frames(STREAM), DecodeOptions { want_text: true }).unwrap();
        let text = format!("{events:?}");
        assert!(
            matches!(&events[0], Event::Content(ContentDelta { bytes: 3, tokens: Some(1), text: Some(t) }) if t == "The"),
            "{text}"
        );
        assert!(
            matches!(&events[1], Event::Content(ContentDelta { bytes: 7, tokens: Some(2), text: Some(t) }) if t == " sky is"),
            "{text}"
        );
        assert!(matches!(events[2], Event::EmptyDelta), "{text}");
        assert!(matches!(&events[3], Event::Finish(r) if r == "stop"), "{text}");
        assert!(
            matches!(
                events[4],
                Event::Usage(Usage {
                    prompt_tokens: Some(5),
                    completion_tokens: Some(4),
                    cached_tokens: Some(2),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[5], Event::Done));
    }

    #[test]
    fn incremental_output_is_taken_as_it_comes() {
        testing::set_config(serde_json::json!({"incremental_output": true}));
        let body = "data: {\"text\":\"ab\",\"meta_info\":{\"completion_tokens\":1}}\n\ndata: {\"text\":\"c\",\"meta_info\":{\"completion_tokens\":2}}\n\n";
        let events = decode_stream::<SglangNative>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(matches!(
            &events[1],
            Event::Content(ContentDelta {
                bytes: 1,
                tokens: Some(1),
                ..
            })
        ));
        // Incremental text read as cumulative shrinks: named, with the fix.
        testing::set_config(serde_json::json!({}));
        let events = decode_stream::<SglangNative>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(matches!(&events[1], Event::Malformed(m) if m.contains("incremental_output")));
        testing::set_config(serde_json::json!({}));
    }

    #[test]
    fn errors_and_aborts_are_server_errors() {
        let body = "data: {\"error\":{\"message\":\"The input is too long\"}}\n\n\
                    data: {\"text\":\"\",\"meta_info\":{\"finish_reason\":{\"type\":\"abort\",\"message\":\"client gone\"}}}\n\n";
        let events = decode_stream::<SglangNative>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(matches!(&events[0], Event::ServerError(e) if e.message == "The input is too long"));
        assert!(matches!(&events[2], Event::ServerError(e) if e.code.as_deref() == Some("abort")));
        let head = ResponseHead {
            status: 400,
            headers: vec![],
        };
        let events = decode_unary(
            &head,
            br#"{"error":{"message":"bad"}}"#,
            &DecodeOptions { want_text: false },
        );
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Event::ServerError(e) if e.message == "bad"));
    }

    #[test]
    fn a_unary_response_counts_from_meta_info() {
        let head = ResponseHead {
            status: 200,
            headers: vec![],
        };
        let body = br#"{"text":"a b","meta_info":{"finish_reason":{"type":"length","length":2},"prompt_tokens":3,"completion_tokens":2}}"#;
        let events = decode_unary(&head, body, &DecodeOptions { want_text: false });
        assert!(matches!(
            &events[0],
            Event::Content(ContentDelta {
                bytes: 3,
                tokens: Some(2),
                ..
            })
        ));
        assert!(matches!(&events[1], Event::Finish(r) if r == "length"));
        assert!(matches!(
            events[2],
            Event::Usage(Usage {
                prompt_tokens: Some(3),
                ..
            })
        ));
    }
}
