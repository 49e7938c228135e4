//! Barrage codec for JetStream (Google's TPU inference server): one
//! `DecodeRequest` to `jetstream_proto.Orchestrator/Decode`, whose response
//! is a stream of `DecodeResponse`s, each holding a sample's new text and
//! its token ids (one id per step, several with speculative decoding).
//!
//! JetStream's stream has no end message and no finish reason or prompt
//! count: it ends with the call's OK status, so the end of the body is the
//! end of the output. `Decode` is the only method, so a non-streamed run
//! (`stream: false`) reads the same stream whole, as one response. Failures
//! are gRPC statuses (`RESOURCE_EXHAUSTED` when the prefill queue is full).

use std::collections::BTreeMap;

use barrage_sdk::prelude::*;
use jetstream_proto::{DecodeRequest, DecodeResponse, decode_request, decode_response};
use prost::Message as _;
use serde::Deserialize;
use serde_json::Value;

/// The plugin's configuration table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Samples per request (`num_samples`); none: the server's default, one.
    pub num_samples: Option<u32>,
    /// Metadata sent with every call.
    pub headers: BTreeMap<String, String>,
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        if let Some(n) = settings.num_samples
            && !(1..=i32::MAX as u32).contains(&n)
        {
            return Err(ConfigError {
                field: Some("num_samples".into()),
                message: format!("num_samples must be at least 1, got {n}"),
            });
        }
        Ok(settings)
    }

    fn current() -> Settings {
        Settings::from_config(&config::value()).unwrap_or_default()
    }
}

/// Build the call for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let content = match spec.prompt {
        Prompt::Text(text) => decode_request::Content::TextContent(decode_request::TextContent { text }),
        Prompt::TokenIds(ids) => decode_request::Content::TokenContent(decode_request::TokenContent {
            token_ids: ids
                .into_iter()
                .map(|id| i32::try_from(id).map_err(|_| format!("token id {id} does not fit JetStream's int32")))
                .collect::<Result<_, _>>()?,
        }),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("jetstream")),
        Prompt::Messages(_) => {
            return Err(
                "jetstream takes a text or token-id prompt (JetStream applies no chat template); \
                 give a chat dataset a chat template (dataset.chat_template)"
                    .into(),
            );
        }
    };
    if spec.extra.is_some() {
        return Err(
            "jetstream's DecodeRequest has no further options: leave request.extra out \
                    (num_samples is in the codec's configuration)"
                .into(),
        );
    }
    let g = spec.generation;
    let request = DecodeRequest {
        max_tokens: g.max_tokens.map_or(0, |n| i32::try_from(n).unwrap_or(i32::MAX)),
        content: Some(content),
        metadata_optional: None,
        num_samples: settings.num_samples.map_or(0, |n| n as i32),
    };
    Ok(EncodedRequest {
        request: WireRequest::Grpc(GrpcRequest {
            service: jetstream_proto::SERVICE.into(),
            method: "Decode".into(),
            metadata: settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            message: request.encode_to_vec(),
            server_streaming: true,
        }),
        streaming: g.stream,
        framing: Framing::GrpcMessages,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

/// One message's new output: text and token ids over its samples; `None`
/// for the placeholder first message.
fn read(data: &[u8]) -> Result<Option<(String, u32)>, Event> {
    let response = DecodeResponse::decode(data)
        .map_err(|e| Event::Malformed(format!("not a DecodeResponse message ({e}): {} bytes", data.len())))?;
    match response.content {
        Some(decode_response::Content::StreamContent(c)) => Ok(Some((
            c.samples.iter().map(|s| s.text.as_str()).collect(),
            c.samples.iter().map(|s| s.token_ids.len() as u32).sum(),
        ))),
        Some(decode_response::Content::InitialContent(_)) => Ok(None),
        None => Err(Event::Malformed(
            "a DecodeResponse with neither initial nor stream content".into(),
        )),
    }
}

fn content(text: String, tokens: u32, want_text: bool) -> Event {
    if text.is_empty() && tokens == 0 {
        return Event::EmptyDelta;
    }
    Event::Content(ContentDelta {
        bytes: text.len() as u32,
        tokens: Some(tokens),
        text: want_text.then_some(text),
    })
}

/// The end of a whole stream: JetStream says no finish reason, and counts
/// only the output.
fn end(tokens: u32) -> [Event; 2] {
    [
        Event::Finish("unreported".into()),
        Event::Usage(Usage {
            prompt_tokens: None,
            completion_tokens: Some(tokens),
            cached_tokens: None,
            reasoning_tokens: None,
        }),
    ]
}

/// Decoding state of one stream.
pub struct StreamDecoder {
    want_text: bool,
    tokens: u32,
}

impl Decoder for StreamDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let event = if is_grpc_compressed(frame) {
                Some(grpc_compressed())
            } else {
                match read(frame.data) {
                    Ok(Some((text, tokens))) => {
                        self.tokens += tokens;
                        Some(content(text, tokens, self.want_text))
                    }
                    Ok(None) => None,
                    Err(event) => Some(event),
                }
            };
            if let Some(event) = event {
                out.push(FrameEvent { frame: i as u32, event });
            }
        }
        Ok(out)
    }

    /// The body ended with an OK status (a failed call is the host's to
    /// count, a malformed message the run's `malformed_frames` policy's):
    /// the output is whole.
    fn finish(&mut self) -> Result<Vec<Event>, String> {
        let mut events = end(self.tokens).to_vec();
        events.push(Event::Done);
        Ok(events)
    }
}

/// Decode a stream read whole (`stream: false`): one content event with
/// all its text and tokens.
pub fn decode_unary(body: &[u8], options: &DecodeOptions) -> Vec<Event> {
    let messages = match grpc_messages(body) {
        Ok(m) => m,
        Err(event) => return vec![event],
    };
    let mut text = String::new();
    let mut tokens = 0;
    for m in messages {
        match read(m) {
            Ok(Some((t, n))) => {
                text.push_str(&t);
                tokens += n;
            }
            Ok(None) => {}
            Err(event) => return vec![event],
        }
    }
    let mut events = vec![content(text, tokens, options.want_text)];
    events.extend(end(tokens));
    events
}

/// The `jetstream` codec.
pub struct Jetstream;

impl Codec for Jetstream {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "jetstream".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "JetStream's gRPC Orchestrator/Decode stream".into(),
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
            tokens: 0,
        }
    }

    fn decode_unary(_head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&body, &options))
    }
}

barrage_sdk::export_codec!(Jetstream);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream};
    use decode_response::stream_content::Sample;

    fn spec(prompt: Prompt, extra: Option<&str>) -> RequestSpec {
        RequestSpec {
            id: 7,
            model: "m".into(),
            prompt,
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream: true,
                include_usage: true,
            },
            extra: extra.map(str::to_string),
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        }
    }

    fn message(samples: &[(&str, &[i32])]) -> Vec<u8> {
        DecodeResponse {
            content: Some(decode_response::Content::StreamContent(
                decode_response::StreamContent {
                    samples: samples
                        .iter()
                        .map(|(text, ids)| Sample {
                            text: text.to_string(),
                            token_ids: ids.to_vec(),
                        })
                        .collect(),
                },
            )),
        }
        .encode_to_vec()
    }

    #[test]
    fn encode_sends_the_prompt_and_max_tokens_to_decode() {
        testing::set_config(serde_json::json!({"num_samples": 2}));
        let req = Jetstream::encode(spec(Prompt::Text("hi".into()), None)).unwrap();
        let WireRequest::Grpc(g) = &req.request else { panic!() };
        assert_eq!(
            (g.service.as_str(), g.method.as_str(), g.server_streaming),
            ("jetstream_proto.Orchestrator", "Decode", true)
        );
        let m = DecodeRequest::decode(&g.message[..]).unwrap();
        assert_eq!((m.max_tokens, m.num_samples), (16, 2));
        assert!(matches!(m.content, Some(decode_request::Content::TextContent(t)) if t.text == "hi"));
        testing::set_config(serde_json::json!({}));
        let req = Jetstream::encode(spec(Prompt::TokenIds(vec![3, 4]), None)).unwrap();
        let WireRequest::Grpc(g) = &req.request else { panic!() };
        let m = DecodeRequest::decode(&g.message[..]).unwrap();
        assert!(matches!(m.content, Some(decode_request::Content::TokenContent(t)) if t.token_ids == [3, 4]));
        assert_eq!(m.num_samples, 0, "the server's default");
        for (prompt, extra, why) in [
            (Prompt::Messages(vec![]), None, "chat template"),
            (Prompt::TokenIds(vec![u32::MAX]), None, "int32"),
            (Prompt::Text("x".into()), Some("{}"), "request.extra"),
        ] {
            let e = Jetstream::encode(spec(prompt, extra)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        let e = Jetstream::check_config(&serde_json::json!({"num_samples": 0})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("num_samples"));
    }

    #[test]
    fn each_message_is_content_and_the_body_end_is_the_outputs() {
        let initial = DecodeResponse {
            content: Some(decode_response::Content::InitialContent(
                decode_response::InitialContent {},
            )),
        };
        let frames = vec![
            testing::frame_bytes(initial.encode_to_vec()),
            testing::frame_bytes(message(&[("The", &[791])])),
            testing::frame_bytes(message(&[(" café", &[53, 9])])),
            testing::frame_bytes(message(&[("", &[])])),
        ];
        let events = decode_stream::<Jetstream>(frames, DecodeOptions { want_text: true }).unwrap();
        let text = format!("{events:?}");
        assert!(
            matches!(&events[0], Event::Content(ContentDelta { bytes: 3, tokens: Some(1), text: Some(t) }) if t == "The"),
            "{text}"
        );
        assert!(
            matches!(
                events[1],
                Event::Content(ContentDelta {
                    bytes: 6,
                    tokens: Some(2),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[2], Event::EmptyDelta), "{text}");
        assert!(matches!(&events[3], Event::Finish(r) if r == "unreported"), "{text}");
        assert!(
            matches!(
                events[4],
                Event::Usage(Usage {
                    prompt_tokens: None,
                    completion_tokens: Some(3),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[5], Event::Done), "{text}");
    }

    #[test]
    fn bad_messages_fail_the_stream_and_a_whole_body_is_one_response() {
        let frames = vec![
            testing::frame_bytes(message(&[("a", &[1])])),
            testing::frame_bytes(vec![0xff]),
        ];
        let events = decode_stream::<Jetstream>(frames, DecodeOptions { want_text: false }).unwrap();
        assert!(
            matches!(&events[1], Event::Malformed(m) if m.contains("DecodeResponse")),
            "{events:?}"
        );
        let mut body = Vec::new();
        for m in [message(&[("a b", &[1, 2])]), message(&[(" c", &[3])])] {
            body.push(0);
            body.extend_from_slice(&(m.len() as u32).to_be_bytes());
            body.extend_from_slice(&m);
        }
        let events = decode_unary(&body, &DecodeOptions { want_text: true });
        assert!(
            matches!(&events[0], Event::Content(ContentDelta { bytes: 5, tokens: Some(3), text: Some(t) }) if t == "a b c"),
            "{events:?}"
        );
        assert!(matches!(
            events[2],
            Event::Usage(Usage {
                completion_tokens: Some(3),
                ..
            })
        ));
        let events = decode_unary(&body[..body.len() - 2], &DecodeOptions { want_text: false });
        assert!(
            matches!(&events[0], Event::Malformed(m) if m.contains("cut off")),
            "{events:?}"
        );
    }
}
