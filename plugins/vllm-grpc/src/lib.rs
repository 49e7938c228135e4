//! Barrage codec for vLLM's gRPC server (`vllm serve --grpc`, the
//! `vllm.grpc.engine.VllmEngine` service): one `GenerateRequest` to
//! `Generate`, whose response is always a stream.
//!
//! Streamed (`stream: true`), the server sends a `GenerateStreamChunk` per
//! engine step, holding the step's new token ids and their count, then a
//! `GenerateComplete` with the finish reason; the complete repeats the last
//! chunk's tokens, so they are not counted twice. Not streamed, it sends one
//! `GenerateComplete` holding every output token.
//!
//! The server answers in token ids, not text (detokenizing is the client's
//! business), so content events carry token counts and no bytes. Failures
//! are gRPC statuses (`INVALID_ARGUMENT` for a bad request), which the host
//! reads from the trailers.

use std::collections::BTreeMap;

use barrage_sdk::prelude::*;
use prost::Message as _;
use serde::Deserialize;
use serde_json::Value;
use vllm_engine_proto::{
    GenerateComplete, GenerateRequest, GenerateResponse, SamplingParams, TokenizedInput, generate_request,
    generate_response,
};

/// The plugin's configuration table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Metadata sent with every call.
    pub headers: BTreeMap<String, String>,
}

impl Settings {
    fn current() -> Settings {
        config::parse(&config::value()).unwrap_or_default()
    }
}

/// The sampling parameters a run may set through `request.extra` (a JSON
/// object), by their names in the proto. Any other key is refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraSampling {
    top_p: Option<f32>,
    top_k: Option<u32>,
    min_p: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    repetition_penalty: Option<f32>,
    stop: Option<Vec<String>>,
    stop_token_ids: Option<Vec<u32>>,
    skip_special_tokens: Option<bool>,
    n: Option<u32>,
    seed: Option<i32>,
}

impl ExtraSampling {
    fn parse(extra: Option<&str>) -> Result<ExtraSampling, String> {
        match extra {
            None => Ok(ExtraSampling::default()),
            Some(json) => serde_json::from_str(json).map_err(|e| {
                format!(
                    "request.extra for vllm-grpc holds SamplingParams fields by their proto names \
                     (top_p, top_k, min_p, frequency_penalty, presence_penalty, repetition_penalty, \
                     stop, stop_token_ids, skip_special_tokens, n, seed): {e}"
                )
            }),
        }
    }

    fn apply(self, p: &mut SamplingParams) {
        let ExtraSampling {
            top_p,
            top_k,
            min_p,
            frequency_penalty,
            presence_penalty,
            repetition_penalty,
            stop,
            stop_token_ids,
            skip_special_tokens,
            n,
            seed,
        } = self;
        p.top_p = top_p.unwrap_or(p.top_p);
        p.top_k = top_k.unwrap_or(p.top_k);
        p.min_p = min_p.unwrap_or(p.min_p);
        p.frequency_penalty = frequency_penalty.unwrap_or(p.frequency_penalty);
        p.presence_penalty = presence_penalty.unwrap_or(p.presence_penalty);
        p.repetition_penalty = repetition_penalty.unwrap_or(p.repetition_penalty);
        p.stop = stop.unwrap_or_default();
        p.stop_token_ids = stop_token_ids.unwrap_or_default();
        p.skip_special_tokens = skip_special_tokens.unwrap_or(p.skip_special_tokens);
        p.n = n.unwrap_or(p.n);
        p.seed = seed.or(p.seed);
    }
}

/// Build the call for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let input = match spec.prompt {
        Prompt::Text(text) => generate_request::Input::Text(text),
        Prompt::TokenIds(ids) => generate_request::Input::Tokenized(TokenizedInput {
            original_text: String::new(),
            input_ids: ids,
        }),
        Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("vllm-grpc")),
        Prompt::Messages(_) => {
            return Err(
                "vllm-grpc takes a text or token-id prompt (vLLM's gRPC server applies no chat template); \
                 give a chat dataset a chat template (dataset.chat_template)"
                    .into(),
            );
        }
    };
    let g = spec.generation;
    let mut sampling = SamplingParams {
        temperature: g.temperature,
        max_tokens: g.max_tokens,
        min_tokens: g.min_tokens.unwrap_or(0),
        ignore_eos: g.ignore_eos,
        // vLLM's own default for its OpenAI server; the proto's zero would
        // keep special tokens.
        skip_special_tokens: true,
        spaces_between_special_tokens: true,
        ..SamplingParams::default()
    };
    ExtraSampling::parse(spec.extra.as_deref())?.apply(&mut sampling);
    let request = GenerateRequest {
        request_id: spec.id.to_string(),
        input: Some(input),
        sampling_params: Some(sampling),
        stream: g.stream,
    };
    Ok(EncodedRequest {
        request: WireRequest::Grpc(GrpcRequest {
            service: vllm_engine_proto::SERVICE.into(),
            method: "Generate".into(),
            metadata: settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            message: request.encode_to_vec(),
            // The method always streams; unary requests get one message.
            server_streaming: true,
        }),
        streaming: g.stream,
        framing: Framing::GrpcMessages,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

fn not_a_message(e: prost::DecodeError, data: &[u8]) -> Event {
    Event::Malformed(format!("not a GenerateResponse message ({e}): {} bytes", data.len()))
}

fn content(tokens: usize) -> Event {
    if tokens == 0 {
        Event::EmptyDelta
    } else {
        // Token ids, not text: no bytes to count.
        Event::Content(ContentDelta {
            bytes: 0,
            tokens: Some(tokens as u32),
            text: None,
        })
    }
}

/// The end of an output: its finish reason, or the server error that
/// `abort` and `error` are.
fn finish(complete: &GenerateComplete) -> Event {
    match complete.finish_reason.as_str() {
        reason @ ("abort" | "error") => Event::ServerError(ServerError {
            code: Some(reason.into()),
            message: format!("the server ended the output with finish_reason `{reason}`"),
        }),
        "" => Event::Finish("unreported".into()),
        reason => Event::Finish(reason.into()),
    }
}

fn usage(prompt: u32, completion: u32, cached: u32) -> Event {
    Event::Usage(Usage {
        prompt_tokens: Some(prompt),
        completion_tokens: Some(completion),
        cached_tokens: Some(cached),
        reasoning_tokens: None,
    })
}

/// Decoding state of one stream.
#[derive(Default)]
pub struct StreamDecoder {
    /// Output tokens of the chunks so far.
    tokens: u32,
}

impl Decoder for StreamDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let mut emit = |event| out.push(FrameEvent { frame: i as u32, event });
            if is_grpc_compressed(frame) {
                emit(grpc_compressed());
                continue;
            }
            match GenerateResponse::decode(frame.data).map(|m| m.response) {
                Ok(Some(generate_response::Response::Chunk(chunk))) => {
                    self.tokens += chunk.token_ids.len() as u32;
                    emit(content(chunk.token_ids.len()));
                }
                // Streamed, the complete repeats the last chunk's tokens.
                Ok(Some(generate_response::Response::Complete(complete))) => {
                    let end = finish(&complete);
                    let failed = matches!(end, Event::ServerError(_));
                    emit(end);
                    if !failed {
                        emit(usage(complete.prompt_tokens, self.tokens, complete.cached_tokens));
                        emit(Event::Done);
                    }
                }
                Ok(None) => emit(Event::Malformed(
                    "a GenerateResponse with neither a chunk nor a complete".into(),
                )),
                Err(e) => emit(not_a_message(e, frame.data)),
            }
        }
        Ok(out)
    }
}

/// Decode a non-streamed response: its one `GenerateComplete` holds every
/// output token (a body of chunks and a complete, from a server that
/// streamed anyway, is read as the chunks' sum).
pub fn decode_unary(body: &[u8]) -> Vec<Event> {
    let messages = match grpc_messages(body) {
        Ok(m) => m,
        Err(event) => return vec![event],
    };
    let mut chunk_tokens = None;
    let mut complete = None;
    for m in messages {
        match GenerateResponse::decode(m).map(|r| r.response) {
            Ok(Some(generate_response::Response::Chunk(c))) => {
                *chunk_tokens.get_or_insert(0) += c.token_ids.len() as u32;
            }
            Ok(Some(generate_response::Response::Complete(c))) => complete = Some(c),
            Ok(None) => {
                return vec![Event::Malformed(
                    "a GenerateResponse with neither a chunk nor a complete".into(),
                )];
            }
            Err(e) => return vec![not_a_message(e, m)],
        }
    }
    let Some(c) = complete else {
        return vec![Event::Malformed("the response ended without a GenerateComplete".into())];
    };
    let tokens = chunk_tokens.unwrap_or(c.output_ids.len() as u32);
    match finish(&c) {
        error @ Event::ServerError(_) => vec![error],
        end => vec![
            content(tokens as usize),
            end,
            usage(c.prompt_tokens, tokens, c.cached_tokens),
        ],
    }
}

/// The `vllm-grpc` codec.
pub struct VllmGrpc;

impl Codec for VllmGrpc {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "vllm-grpc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "vLLM's gRPC server: vllm.grpc.engine.VllmEngine/Generate, streamed and not".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        config::parse::<Settings>(config).map(|_| ())
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        encode(&Settings::current(), spec)
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> StreamDecoder {
        StreamDecoder::default()
    }

    fn decode_unary(_head: ResponseHead, body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&body))
    }
}

barrage_sdk::export_codec!(VllmGrpc);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream};
    use vllm_engine_proto::GenerateStreamChunk;

    fn spec(prompt: Prompt, stream: bool, extra: Option<&str>) -> RequestSpec {
        RequestSpec {
            id: 7,
            model: "m".into(),
            prompt,
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: Some(2),
                ignore_eos: true,
                temperature: Some(0.0),
                stream,
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

    fn request(req: &EncodedRequest) -> (GrpcRequest, GenerateRequest) {
        let WireRequest::Grpc(g) = &req.request else {
            panic!("{req:?}")
        };
        (g.clone(), GenerateRequest::decode(&g.message[..]).unwrap())
    }

    fn chunk(ids: &[u32]) -> FrameBuf {
        let m = GenerateResponse {
            response: Some(generate_response::Response::Chunk(GenerateStreamChunk {
                token_ids: ids.to_vec(),
                prompt_tokens: 5,
                completion_tokens: ids.len() as u32,
                cached_tokens: 2,
                index: 0,
            })),
        };
        testing::frame_bytes(m.encode_to_vec())
    }

    fn complete(ids: &[u32], reason: &str) -> Vec<u8> {
        GenerateResponse {
            response: Some(generate_response::Response::Complete(GenerateComplete {
                output_ids: ids.to_vec(),
                finish_reason: reason.into(),
                prompt_tokens: 5,
                completion_tokens: ids.len() as u32,
                cached_tokens: 2,
                ..GenerateComplete::default()
            })),
        }
        .encode_to_vec()
    }

    fn prefixed(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        for m in messages {
            body.push(0);
            body.extend_from_slice(&(m.len() as u32).to_be_bytes());
            body.extend_from_slice(m);
        }
        body
    }

    #[test]
    fn encode_sends_the_prompt_and_sampling_parameters_to_generate() {
        testing::set_config(serde_json::json!({"headers": {"x-tenant": "a"}}));
        let req = VllmGrpc::encode(spec(Prompt::Text("hi".into()), true, None)).unwrap();
        assert!(req.streaming && matches!(req.framing, Framing::GrpcMessages));
        let (g, m) = request(&req);
        assert_eq!(
            (g.service.as_str(), g.method.as_str()),
            (vllm_engine_proto::SERVICE, "Generate")
        );
        assert_eq!(g.metadata, [("x-tenant".to_string(), "a".to_string())]);
        assert_eq!(m.request_id, "7");
        assert!(m.stream);
        assert_eq!(m.input, Some(generate_request::Input::Text("hi".into())));
        let p = m.sampling_params.unwrap();
        assert_eq!(
            (
                p.max_tokens,
                p.min_tokens,
                p.ignore_eos,
                p.temperature,
                p.skip_special_tokens
            ),
            (Some(16), 2, true, Some(0.0), true)
        );
        let req = VllmGrpc::encode(spec(
            Prompt::TokenIds(vec![1, 2, 3]),
            false,
            Some(r#"{"top_k": 40, "seed": 3, "stop": ["\n"]}"#),
        ))
        .unwrap();
        assert!(!req.streaming);
        let (_, m) = request(&req);
        assert!(!m.stream);
        assert!(matches!(m.input, Some(generate_request::Input::Tokenized(t)) if t.input_ids == [1, 2, 3]));
        let p = m.sampling_params.unwrap();
        assert_eq!((p.top_k, p.seed, p.stop), (40, Some(3), vec!["\n".to_string()]));
        testing::set_config(serde_json::json!({}));
    }

    #[test]
    fn bad_prompts_and_extra_fields_are_refused_by_name() {
        testing::set_config(serde_json::json!({}));
        let chat = Prompt::Messages(vec![]);
        assert!(
            VllmGrpc::encode(spec(chat, true, None))
                .unwrap_err()
                .contains("chat template")
        );
        let e = VllmGrpc::encode(spec(Prompt::Text("x".into()), true, Some(r#"{"top_q": 1}"#))).unwrap_err();
        assert!(e.contains("top_q") && e.contains("top_k"), "{e}");
        assert!(VllmGrpc::check_config(&serde_json::json!({"header": {}})).is_err());
    }

    #[test]
    fn a_stream_counts_each_chunks_tokens_once() {
        // Two chunks, then the last chunk's tokens again in the complete.
        let frames = vec![
            chunk(&[11]),
            chunk(&[12, 13, 14]),
            chunk(&[]),
            testing::frame_bytes(complete(&[12, 13, 14], "length")),
        ];
        let events = decode_stream::<VllmGrpc>(frames, DecodeOptions { want_text: true }).unwrap();
        let text = format!("{events:?}");
        assert!(
            matches!(
                events[0],
                Event::Content(ContentDelta {
                    bytes: 0,
                    tokens: Some(1),
                    text: None
                })
            ),
            "{text}"
        );
        assert!(
            matches!(events[1], Event::Content(ContentDelta { tokens: Some(3), .. })),
            "{text}"
        );
        assert!(matches!(events[2], Event::EmptyDelta), "{text}");
        assert!(matches!(&events[3], Event::Finish(r) if r == "length"), "{text}");
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
        assert!(matches!(events[5], Event::Done), "{text}");
        assert_eq!(events.len(), 6);
    }

    #[test]
    fn aborts_bad_messages_and_a_missing_complete_are_reported() {
        let frames = vec![
            chunk(&[1]),
            testing::frame_bytes(vec![0xff, 0xff]),
            testing::frame_bytes(Vec::new()),
            testing::frame_bytes(complete(&[], "abort")),
        ];
        let events = decode_stream::<VllmGrpc>(frames, DecodeOptions { want_text: false }).unwrap();
        assert!(
            matches!(&events[1], Event::Malformed(m) if m.contains("GenerateResponse")),
            "{events:?}"
        );
        assert!(
            matches!(&events[2], Event::Malformed(m) if m.contains("neither")),
            "{events:?}"
        );
        assert!(
            matches!(&events[3], Event::ServerError(e) if e.code.as_deref() == Some("abort")),
            "{events:?}"
        );
        assert!(!events.iter().any(|e| matches!(e, Event::Done)), "an abort is no end");
        // Chunks and no complete: no end, so the host counts it truncated.
        let events = decode_stream::<VllmGrpc>(vec![chunk(&[1, 2])], DecodeOptions { want_text: false }).unwrap();
        assert!(!events.iter().any(|e| matches!(e, Event::Done | Event::Finish(_))));
        let mut compressed = chunk(&[1]);
        compressed.event = Some(barrage_sdk::codec::GRPC_COMPRESSED.into());
        let events = decode_stream::<VllmGrpc>(vec![compressed], DecodeOptions { want_text: false }).unwrap();
        assert!(matches!(&events[0], Event::Malformed(m) if m.contains("compressed")));
    }

    #[test]
    fn a_unary_body_is_one_complete_with_every_token() {
        let body = prefixed(&[complete(&[1, 2, 3, 4], "stop")]);
        let events = decode_unary(&body);
        assert!(
            matches!(events[0], Event::Content(ContentDelta { tokens: Some(4), .. })),
            "{events:?}"
        );
        assert!(matches!(&events[1], Event::Finish(r) if r == "stop"));
        assert!(matches!(
            events[2],
            Event::Usage(Usage {
                completion_tokens: Some(4),
                ..
            })
        ));
        // A server that streamed anyway: the chunks count, not the complete's repeat.
        let body = prefixed(&[chunk(&[1, 2]).data, chunk(&[3]).data, complete(&[3], "length")]);
        assert!(matches!(
            decode_unary(&body)[0],
            Event::Content(ContentDelta { tokens: Some(3), .. })
        ));
        for (bad, why) in [
            (prefixed(&[chunk(&[1]).data]), "without a GenerateComplete"),
            (body[..body.len() - 1].to_vec(), "cut off"),
            (Vec::new(), "no message"),
            (vec![1, 0, 0, 0, 0], "compressed"),
            (vec![0, 0, 0], "prefix"),
        ] {
            let events = decode_unary(&bad);
            assert!(
                matches!(&events[0], Event::Malformed(m) if m.contains(why)),
                "{why}: {events:?}"
            );
        }
        let abort = decode_unary(&prefixed(&[complete(&[], "error")]));
        assert!(matches!(&abort[..], [Event::ServerError(_)]), "{abort:?}");
    }
}
