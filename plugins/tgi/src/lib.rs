//! Barrage codec for Text Generation Inference's native API: `/generate`
//! (one JSON body) and `/generate_stream` (SSE, one event per token):
//!
//! ```text
//! data:{"index":1,"token":{"id":17,"text":" sky","logprob":-0.2,"special":false},"generated_text":null,"details":null}
//! data:{"index":2,"token":{"id":2,"text":"","logprob":0.0,"special":true},"generated_text":"The sky",
//!       "details":{"finish_reason":"eos_token","generated_tokens":2,"seed":null,"input_length":5}}
//! ```
//!
//! The last event carries the whole text and the details: its presence is
//! the stream's end, its `details` the finish reason and the exact counts.
//! Errors come as `{"error": ..., "error_type": ...}`, as the body of a
//! failed request or as an event mid-stream.

use std::borrow::Cow;
use std::collections::BTreeMap;

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The plugin's configuration table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Path of non-streamed requests.
    pub path: String,
    /// Path of streamed requests.
    pub stream_path: String,
    /// Ask for `details` in non-streamed responses: the finish reason and the
    /// exact output token count (streams always end with them).
    pub details: bool,
    /// Ask for the prompt's tokens back (`details.prefill`) in non-streamed
    /// responses, which gives the exact prompt token count at the cost of a
    /// larger response.
    pub decoder_input_details: bool,
    /// Extra headers sent with every request.
    pub headers: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            path: "/generate".into(),
            stream_path: "/generate_stream".into(),
            details: true,
            decoder_input_details: false,
            headers: BTreeMap::new(),
        }
    }
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        check_path("path", Some(&settings.path))?;
        check_path("stream_path", Some(&settings.stream_path))?;
        Ok(settings)
    }

    fn current() -> Settings {
        Settings::from_config(&config::value()).unwrap_or_default()
    }
}

/// Build the request for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let inputs = match spec.prompt {
        Prompt::Text(text) => text,
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("tgi")),
        Prompt::Messages(_) => {
            return Err(
                "tgi takes a text prompt; give the dataset a chat template (dataset.chat_template) \
                        or use the openai-chat codec against TGI's /v1/chat/completions"
                    .into(),
            );
        }
        Prompt::TokenIds(_) => return Err("tgi takes a text prompt, not token ids".into()),
    };
    let g = spec.generation;
    let mut parameters = Map::new();
    if let Some(max) = g.max_tokens {
        parameters.insert("max_new_tokens".into(), max.into());
    }
    // TGI refuses a temperature of 0: greedy decoding is no sampling.
    if let Some(t) = g.temperature.filter(|t| *t > 0.0) {
        parameters.insert("temperature".into(), f64::from(t).into());
        parameters.insert("do_sample".into(), true.into());
    }
    if !g.stream {
        parameters.insert("details".into(), settings.details.into());
        if settings.decoder_input_details {
            parameters.insert("decoder_input_details".into(), true.into());
        }
    }
    let mut body = Map::new();
    body.insert("inputs".into(), inputs.into());
    body.insert("parameters".into(), Value::Object(parameters));
    barrage_sdk::codec::merge_extra_nested(&mut body, spec.extra.as_deref(), "parameters")?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if g.stream {
        headers.push(("accept".into(), "text/event-stream".into()));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: if g.stream {
                &settings.stream_path
            } else {
                &settings.path
            }
            .clone(),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: g.stream,
        framing: Framing::Sse,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

/// A stream's event, or (without `token`) a non-streamed response.
#[derive(Deserialize)]
struct StreamEvent<'a> {
    #[serde(default, borrow)]
    token: Option<Token<'a>>,
    #[serde(default, borrow)]
    generated_text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    details: Option<Details<'a>>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error_type: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Token<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default)]
    special: bool,
}

/// A stream's `details`, or a non-streamed response's (which has `prefill`
/// instead of `input_length`).
#[derive(Deserialize)]
struct Details<'a> {
    #[serde(borrow)]
    finish_reason: Cow<'a, str>,
    generated_tokens: u32,
    #[serde(default)]
    input_length: Option<u32>,
    #[serde(default)]
    prefill: Vec<serde::de::IgnoredAny>,
}

impl Details<'_> {
    fn events(self, emit: &mut dyn FnMut(Event)) {
        let prompt_tokens = self
            .input_length
            .or_else(|| (!self.prefill.is_empty()).then_some(self.prefill.len() as u32));
        emit(Event::Finish(self.finish_reason.into_owned()));
        emit(Event::Usage(Usage {
            prompt_tokens,
            completion_tokens: Some(self.generated_tokens),
            cached_tokens: None,
            reasoning_tokens: None,
        }));
    }
}

fn server_error(error: Cow<'_, str>, kind: Option<Cow<'_, str>>) -> Event {
    Event::ServerError(ServerError {
        code: kind.map(Cow::into_owned),
        message: error.into_owned(),
    })
}

/// Decoding state of one stream: each event stands alone.
pub struct StreamDecoder {
    want_text: bool,
}

impl StreamDecoder {
    fn decode_frame(&self, data: &[u8], emit: &mut dyn FnMut(Event)) {
        let data = data.trim_ascii();
        if data.is_empty() {
            return emit(Event::KeepAlive);
        }
        let event: StreamEvent = match serde_json::from_slice(data) {
            Ok(e) => e,
            Err(e) => {
                return emit(Event::Malformed(format!(
                    "not a TGI stream event ({e}): {}",
                    snippet(data)
                )));
            }
        };
        if let Some(error) = event.error {
            return emit(server_error(error, event.error_type));
        }
        match event.token {
            // The end-of-sequence token is generated but is no output.
            Some(t) if !t.special => emit(Event::Content(ContentDelta {
                bytes: t.text.len() as u32,
                tokens: Some(1),
                text: self.want_text.then(|| t.text.into_owned()),
            })),
            Some(_) => emit(Event::EmptyDelta),
            None => {}
        }
        // Only the last event has the whole text: that is the stream's end.
        if event.generated_text.is_some() {
            if let Some(details) = event.details {
                details.events(emit);
            }
            emit(Event::Done);
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
    One(StreamEvent<'a>),
    /// `POST /` answers with a list of one.
    #[serde(borrow)]
    Many(Vec<StreamEvent<'a>>),
}

/// Decode a non-streamed response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let mut events = Vec::new();
    let response = match serde_json::from_slice::<Body>(body.trim_ascii()) {
        Ok(Body::One(r)) => Some(r),
        Ok(Body::Many(rs)) => rs.into_iter().next(),
        Err(_) if !is_success(head.status) => return vec![http_error(head.status, body)],
        Err(e) => {
            return vec![Event::Malformed(format!(
                "response body is not a TGI response ({e}): {}",
                snippet(body)
            ))];
        }
    };
    match response {
        Some(StreamEvent {
            error: Some(error),
            error_type,
            ..
        }) => events.push(server_error(error, error_type)),
        Some(StreamEvent {
            generated_text: Some(text),
            details,
            ..
        }) => {
            events.push(Event::Content(ContentDelta {
                bytes: text.len() as u32,
                tokens: details.as_ref().map(|d| d.generated_tokens),
                text: options.want_text.then(|| text.into_owned()),
            }));
            match details {
                Some(d) => d.events(&mut |e| events.push(e)),
                // Without details TGI says no finish reason; the text is whole.
                None => events.push(Event::Finish("unreported".into())),
            }
        }
        _ => events.push(Event::Malformed(format!(
            "response has no `generated_text`: {}",
            snippet(body)
        ))),
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `tgi` codec.
pub struct Tgi;

impl Codec for Tgi {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "tgi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Text Generation Inference's native /generate and /generate_stream".into(),
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
        }
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&head, &body, &options))
    }
}

barrage_sdk::export_codec!(Tgi);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream, sse_frames};

    fn spec(prompt: Prompt, stream: bool, temperature: Option<f32>) -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "m".into(),
            prompt,
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: None,
                ignore_eos: false,
                temperature,
                stream,
                include_usage: true,
            },
            extra: Some(r#"{"parameters": {"top_k": 5}, "truncate": 100}"#.into()),
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        }
    }

    fn http(req: &EncodedRequest) -> (&str, Value) {
        let WireRequest::Http(h) = &req.request else {
            panic!("HTTP")
        };
        (&h.path, serde_json::from_slice(&h.body).unwrap())
    }

    #[test]
    fn encode_puts_options_under_parameters_and_picks_the_path() {
        testing::set_config(serde_json::json!({}));
        let req = Tgi::encode(spec(Prompt::Text("hi".into()), true, Some(0.0))).unwrap();
        let (path, body) = http(&req);
        assert_eq!(path, "/generate_stream");
        assert_eq!(body["inputs"], "hi");
        assert_eq!(body["parameters"]["max_new_tokens"], 16);
        assert_eq!(body["parameters"]["top_k"], 5, "extra parameters merge in");
        assert_eq!(body["truncate"], 100);
        assert!(
            body["parameters"].get("temperature").is_none(),
            "0 is greedy: no temperature"
        );
        let req = Tgi::encode(spec(Prompt::Text("hi".into()), false, Some(0.7))).unwrap();
        let (path, body) = http(&req);
        assert_eq!(path, "/generate");
        assert_eq!(body["parameters"]["details"], true);
        assert_eq!(body["parameters"]["do_sample"], true);
        let messages = Prompt::Messages(vec![Message::text("user", "x")]);
        assert!(
            Tgi::encode(spec(messages, true, None))
                .unwrap_err()
                .contains("chat_template")
        );
    }

    #[test]
    fn a_stream_gives_a_token_per_event_then_details() {
        let body = "data:{\"index\":1,\"token\":{\"id\":1,\"text\":\"The\",\"logprob\":0,\"special\":false},\"generated_text\":null,\"details\":null}\n\n\
                    data:{\"index\":2,\"token\":{\"id\":2,\"text\":\"\",\"logprob\":0,\"special\":true},\"generated_text\":\"The\",\
                    \"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":2,\"seed\":null,\"input_length\":5}}\n\n";
        let events = decode_stream::<Tgi>(sse_frames(body), DecodeOptions { want_text: true }).unwrap();
        let text = format!("{events:?}");
        assert!(
            matches!(
                &events[0],
                Event::Content(ContentDelta {
                    bytes: 3,
                    tokens: Some(1),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[1], Event::EmptyDelta), "{text}");
        assert!(matches!(&events[2], Event::Finish(r) if r == "eos_token"), "{text}");
        assert!(
            matches!(
                events[3],
                Event::Usage(Usage {
                    prompt_tokens: Some(5),
                    completion_tokens: Some(2),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[4], Event::Done), "{text}");
    }

    #[test]
    fn errors_in_the_stream_and_bodies_are_server_errors() {
        let body = "data:{\"error\":\"Request failed during generation: CUDA OOM\",\"error_type\":\"generation\"}\n\n";
        let events = decode_stream::<Tgi>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(
            matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("generation") && e.message.contains("OOM"))
        );
        let head = |status| ResponseHead {
            status,
            headers: vec![],
        };
        let events = decode_unary(
            &head(422),
            br#"{"error":"Input validation error: `inputs` must have less than 4096 tokens","error_type":"validation"}"#,
            &DecodeOptions { want_text: false },
        );
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("validation")));
        let events = decode_unary(&head(503), b"<html>", &DecodeOptions { want_text: false });
        assert!(matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("503")));
    }

    #[test]
    fn a_unary_response_counts_from_its_details() {
        let head = ResponseHead {
            status: 200,
            headers: vec![],
        };
        let body = br#"[{"generated_text":"a b c","details":{"finish_reason":"length","generated_tokens":3,"seed":null,"prefill":[{"id":1},{"id":2}],"tokens":[]}}]"#;
        let events = decode_unary(&head, body, &DecodeOptions { want_text: false });
        assert!(matches!(
            &events[0],
            Event::Content(ContentDelta {
                bytes: 5,
                tokens: Some(3),
                ..
            })
        ));
        assert!(matches!(&events[1], Event::Finish(r) if r == "length"));
        assert!(matches!(
            events[2],
            Event::Usage(Usage {
                prompt_tokens: Some(2),
                completion_tokens: Some(3),
                ..
            })
        ));
        let events = decode_unary(&head, br#"{"generated_text":"x"}"#, &DecodeOptions { want_text: false });
        assert!(matches!(&events[0], Event::Content(ContentDelta { tokens: None, .. })));
    }

    #[test]
    fn config_errors_name_the_field() {
        assert_eq!(
            Tgi::check_config(&serde_json::json!({"paths": "/x"}))
                .unwrap_err()
                .field
                .as_deref(),
            Some("paths")
        );
        assert_eq!(
            Tgi::check_config(&serde_json::json!({"stream_path": "x"}))
                .unwrap_err()
                .field
                .as_deref(),
            Some("stream_path")
        );
    }
}
