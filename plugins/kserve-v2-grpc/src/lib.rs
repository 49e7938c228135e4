//! Barrage codec for KServe v2 inference servers over gRPC
//! (`inference.GRPCInferenceService`): `ModelStreamInfer` for streamed
//! requests (one request message; each response of a decoupled model is a
//! message of the response stream) and `ModelInfer` for unary ones.
//!
//! The inputs are the backends' layouts (see `kserve-common`) as tensors
//! with their elements in `contents`: the prompt and JSON strings as BYTES,
//! counts as INT32, flags as BOOL, each of shape `[1, 1]` for TensorRT-LLM
//! (a batch of one) and `[1]` for vLLM (no batch dimension). Outputs are
//! read from `raw_output_contents` (which Triton always sends: BYTES as
//! 4-byte little-endian lengths and bytes, numbers little-endian) or from
//! `contents`.

use barrage_sdk::prelude::*;
use kserve_common::{Backend, Input, Response, Settings, Stream};
use kserve_v2_proto::{
    InferInputTensor, InferOutputTensor, InferTensorContents, ModelInferRequest, ModelInferResponse,
    ModelStreamInferResponse,
};
use prost::Message as _;
use serde_json::Value;

/// Build the call for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let shape = match settings.backend {
        Backend::TensorrtLlm => vec![1, 1],
        Backend::Vllm => vec![1],
    };
    let inputs = kserve_common::inputs(settings, &spec)?
        .into_iter()
        .map(|(name, input)| {
            let mut contents = InferTensorContents::default();
            let datatype = match input {
                Input::Text(t) => {
                    contents.bytes_contents.push(t.into_bytes());
                    "BYTES"
                }
                Input::Int(n) => {
                    contents.int_contents.push(n);
                    "INT32"
                }
                Input::Bool(b) => {
                    contents.bool_contents.push(b);
                    "BOOL"
                }
                Input::Float(f) => {
                    contents.fp32_contents.push(f);
                    "FP32"
                }
            };
            InferInputTensor {
                name,
                datatype: datatype.into(),
                shape: shape.clone(),
                contents: Some(contents),
                ..InferInputTensor::default()
            }
        })
        .collect();
    let request = ModelInferRequest {
        model_name: settings.model(&spec).to_string(),
        model_version: settings.version.clone().unwrap_or_default(),
        id: spec.id.to_string(),
        inputs,
        ..ModelInferRequest::default()
    };
    let stream = spec.generation.stream;
    Ok(EncodedRequest {
        request: WireRequest::Grpc(GrpcRequest {
            service: kserve_v2_proto::SERVICE.into(),
            method: if stream { "ModelStreamInfer" } else { "ModelInfer" }.into(),
            metadata: settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            message: request.encode_to_vec(),
            server_streaming: stream,
        }),
        streaming: stream,
        framing: Framing::GrpcMessages,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

/// An output's elements as bytes: from the raw contents at its index, or
/// its `contents`.
fn elements<'a>(response: &'a ModelInferResponse, index: usize, output: &'a InferOutputTensor) -> Option<Vec<Vec<u8>>> {
    if let Some(raw) = response.raw_output_contents.get(index) {
        return match output.datatype.as_str() {
            "BYTES" => kserve_v2_proto::raw_bytes_elements(raw).map(|e| e.into_iter().map(<[u8]>::to_vec).collect()),
            _ => Some(vec![raw.clone()]),
        };
    }
    let contents = output.contents.as_ref()?;
    let numbers = |v: Vec<u64>| Some(v.into_iter().map(|n| n.to_le_bytes().to_vec()).collect());
    match output.datatype.as_str() {
        "BYTES" => Some(contents.bytes_contents.clone()),
        "UINT32" | "UINT64" | "UINT16" | "UINT8" => numbers(
            contents
                .uint_contents
                .iter()
                .map(|n| u64::from(*n))
                .chain(contents.uint64_contents.iter().copied())
                .collect(),
        ),
        _ => numbers(
            contents
                .int_contents
                .iter()
                .map(|n| *n as u64)
                .chain(contents.int64_contents.iter().map(|n| *n as u64))
                .collect(),
        ),
    }
}

/// The first element of a numeric output, little-endian, as a count.
fn count_of(bytes: &[u8]) -> Option<u32> {
    let mut word = [0u8; 8];
    let n = bytes.len().min(8);
    word[..n].copy_from_slice(&bytes[..n]);
    u32::try_from(u64::from_le_bytes(word)).ok()
}

fn read_response(response: &ModelInferResponse, settings: &Settings) -> Result<Response, Event> {
    let mut r = Response::default();
    let mut found = false;
    for (i, output) in response.outputs.iter().enumerate() {
        let Some(elements) = elements(response, i, output) else {
            return Err(Event::Malformed(format!(
                "output tensor `{}` ({}) has contents that do not parse",
                output.name, output.datatype
            )));
        };
        let first = elements.first().map(Vec::as_slice).unwrap_or_default();
        match output.name.as_str() {
            name if name == settings.text_output => {
                found = true;
                r.text = elements.iter().map(|e| String::from_utf8_lossy(e)).collect();
            }
            "num_output_tokens" => r.output_tokens = count_of(first),
            "num_input_tokens" => r.input_tokens = count_of(first),
            "finish_reason" => r.finish = kserve_common::finish_reason(&String::from_utf8_lossy(first)),
            _ => {}
        }
    }
    // A decoupled model's empty final response carries no outputs.
    if !found && !response.outputs.is_empty() {
        let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
        return Err(kserve_common::missing_output(settings, &names));
    }
    Ok(r)
}

fn not_a_message(what: &str, e: prost::DecodeError, data: &[u8]) -> Event {
    Event::Malformed(format!("not a {what} message ({e}): {} bytes", data.len()))
}

/// Decoding state of one stream.
pub struct StreamDecoder(Stream);

impl Decoder for StreamDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let mut emit = |event| out.push(FrameEvent { frame: i as u32, event });
            if is_grpc_compressed(frame) {
                self.0.response(Err(grpc_compressed()), &mut emit);
                continue;
            }
            let response = match ModelStreamInferResponse::decode(frame.data) {
                Ok(m) if !m.error_message.is_empty() => Err(Event::ServerError(ServerError {
                    code: None,
                    message: m.error_message,
                })),
                Ok(m) => match m.infer_response {
                    Some(r) => read_response(&r, &self.0.settings),
                    None => Ok(Response::default()),
                },
                Err(e) => Err(not_a_message("ModelStreamInferResponse", e, frame.data)),
            };
            self.0.response(response, &mut emit);
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Event>, String> {
        Ok(self.0.end())
    }
}

/// Decode a unary `ModelInfer` response: the body is one length-prefixed message.
pub fn decode_unary(body: &[u8], options: &DecodeOptions, settings: &Settings) -> Vec<Event> {
    let message = match grpc_messages(body) {
        Ok(messages) if messages.len() == 1 => messages[0],
        Ok(messages) => {
            return vec![Event::Malformed(format!(
                "a ModelInfer response is one message, this body holds {}",
                messages.len()
            ))];
        }
        Err(event) => return vec![event],
    };
    let response = ModelInferResponse::decode(message)
        .map_err(|e| not_a_message("ModelInferResponse", e, message))
        .and_then(|r| read_response(&r, settings));
    kserve_common::unary_events(response, options)
}

/// The `kserve-v2-grpc` codec.
pub struct KserveV2Grpc;

impl Codec for KserveV2Grpc {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "kserve-v2-grpc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "KServe v2 / Triton over gRPC: ModelStreamInfer and ModelInfer (TensorRT-LLM and vLLM backends)".into(),
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
        StreamDecoder(Stream::new(&options, Settings::current()))
    }

    fn decode_unary(_head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&body, &options, &Settings::current()))
    }
}

barrage_sdk::export_codec!(KserveV2Grpc);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream};

    fn spec(stream: bool) -> RequestSpec {
        RequestSpec {
            id: 7,
            model: "ensemble".into(),
            prompt: Prompt::Text("hi".into()),
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream,
                include_usage: true,
            },
            extra: None,
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        }
    }

    fn out(name: &str, datatype: &str) -> InferOutputTensor {
        InferOutputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: vec![1],
            ..InferOutputTensor::default()
        }
    }

    /// A streamed response as Triton sends it: raw contents.
    fn message(text: &str, tokens: u32) -> FrameBuf {
        let response = ModelInferResponse {
            model_name: "ensemble".into(),
            outputs: vec![out("text_output", "BYTES"), out("num_output_tokens", "UINT32")],
            raw_output_contents: vec![
                kserve_v2_proto::raw_bytes(&[text.as_bytes()]),
                tokens.to_le_bytes().to_vec(),
            ],
            ..ModelInferResponse::default()
        };
        let m = ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(response),
        };
        testing::frame_bytes(m.encode_to_vec())
    }

    #[test]
    fn encode_sends_tensors_to_the_service() {
        testing::set_config(serde_json::json!({}));
        let req = KserveV2Grpc::encode(spec(true)).unwrap();
        let WireRequest::Grpc(g) = &req.request else { panic!() };
        assert_eq!(
            (g.service.as_str(), g.method.as_str()),
            ("inference.GRPCInferenceService", "ModelStreamInfer")
        );
        assert!(matches!(req.framing, Framing::GrpcMessages));
        let m = ModelInferRequest::decode(&g.message[..]).unwrap();
        assert_eq!((m.model_name.as_str(), m.id.as_str()), ("ensemble", "7"));
        let text = &m.inputs[0];
        assert_eq!(
            (text.name.as_str(), text.datatype.as_str(), &text.shape[..]),
            ("text_input", "BYTES", &[1, 1][..])
        );
        assert_eq!(text.contents.as_ref().unwrap().bytes_contents, [b"hi".to_vec()]);
        let max = m.inputs.iter().find(|i| i.name == "max_tokens").unwrap();
        assert_eq!(
            (max.datatype.as_str(), &max.contents.as_ref().unwrap().int_contents[..]),
            ("INT32", &[16][..])
        );
        let req = KserveV2Grpc::encode(spec(false)).unwrap();
        let WireRequest::Grpc(g) = &req.request else { panic!() };
        assert_eq!(g.method, "ModelInfer");
    }

    #[test]
    fn streamed_messages_give_text_counts_and_an_end() {
        testing::set_config(serde_json::json!({}));
        let frames = vec![message("The", 1), message(" sky is", 2)];
        let events = decode_stream::<KserveV2Grpc>(frames, DecodeOptions { want_text: true }).unwrap();
        let text = format!("{events:?}");
        assert!(
            matches!(&events[1], Event::Content(ContentDelta { bytes: 7, tokens: Some(2), text: Some(t) }) if t == " sky is"),
            "{text}"
        );
        assert!(
            matches!(
                events[3],
                Event::Usage(Usage {
                    completion_tokens: Some(3),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[4], Event::Done), "{text}");
    }

    #[test]
    fn errors_and_bad_messages_are_named() {
        testing::set_config(serde_json::json!({}));
        let error = ModelStreamInferResponse {
            error_message: "in ensemble 'ensemble', Executor failed".into(),
            infer_response: None,
        };
        let frames = vec![
            testing::frame_bytes(error.encode_to_vec()),
            testing::frame_bytes(vec![0xff, 0xff]),
        ];
        let events = decode_stream::<KserveV2Grpc>(frames, DecodeOptions { want_text: false }).unwrap();
        assert!(matches!(&events[0], Event::ServerError(e) if e.message.contains("Executor failed")));
        assert!(matches!(&events[1], Event::Malformed(m) if m.contains("ModelStreamInferResponse")));
        testing::set_config(serde_json::json!({"text_output": "output"}));
        let events = decode_stream::<KserveV2Grpc>(vec![message("x", 1)], DecodeOptions { want_text: false }).unwrap();
        assert!(
            matches!(&events[0], Event::Malformed(m) if m.contains("no output tensor `output` (it has: text_output, num_output_tokens)")),
            "{events:?}"
        );
        testing::set_config(serde_json::json!({}));
    }

    #[test]
    fn a_compressed_message_is_refused() {
        testing::set_config(serde_json::json!({}));
        let mut frame = message("x", 1);
        frame.event = Some(barrage_sdk::codec::GRPC_COMPRESSED.into());
        let events = decode_stream::<KserveV2Grpc>(vec![frame], DecodeOptions { want_text: false }).unwrap();
        assert!(
            matches!(&events[0], Event::Malformed(m) if m.contains("compressed")),
            "{events:?}"
        );
    }

    #[test]
    fn a_unary_body_is_one_prefixed_message() {
        let response = ModelInferResponse {
            outputs: vec![
                out("text_output", "BYTES"),
                out("num_input_tokens", "UINT32"),
                out("num_output_tokens", "UINT32"),
            ],
            raw_output_contents: vec![
                kserve_v2_proto::raw_bytes(&[b"a b"]),
                4u32.to_le_bytes().to_vec(),
                2u32.to_le_bytes().to_vec(),
            ],
            ..ModelInferResponse::default()
        };
        let message = response.encode_to_vec();
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(&message);
        let settings = Settings::default();
        let events = decode_unary(&body, &DecodeOptions { want_text: false }, &settings);
        assert!(
            matches!(
                &events[0],
                Event::Content(ContentDelta {
                    bytes: 3,
                    tokens: Some(2),
                    ..
                })
            ),
            "{events:?}"
        );
        assert!(matches!(
            events[2],
            Event::Usage(Usage {
                prompt_tokens: Some(4),
                ..
            })
        ));
        body[0] = 1;
        assert!(
            matches!(&decode_unary(&body, &DecodeOptions { want_text: false }, &settings)[0], Event::Malformed(m) if m.contains("compressed"))
        );
        assert!(matches!(
            &decode_unary(&body[..3], &DecodeOptions { want_text: false }, &settings)[0],
            Event::Malformed(_)
        ));
    }
}
