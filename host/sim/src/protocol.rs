//! The wire formats the simulator speaks: OpenAI-compatible completions and
//! chat, Text Generation Inference's native API, SGLang's native
//! `/generate`, Triton's generate extension (KServe v2 over HTTP), KServe
//! v2's gRPC `ModelInfer` / `ModelStreamInfer`, vLLM's gRPC `Generate` and
//! JetStream's gRPC `Decode`.
//!
//! Each turns a request body into what it asks ([`Asked`]) and a token
//! timeline into that server's bytes ([`Reply`]). The timeline itself (when
//! each token is ready, which faults strike) belongs to the server and is
//! the same whatever the protocol, so every codec is measured against the
//! same ground truth.

use std::fmt::Write as _;

use bytes::Bytes;
use hyper::StatusCode;
use jetstream_proto as jetstream;
use kserve_v2_proto as kserve;
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use vllm_engine_proto as vllm;

use super::media::MediaConfig;
use super::text::{PromptShape, word};

/// A protocol the simulator answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Completions,
    Chat,
    Tgi,
    Sglang,
    Triton,
    /// KServe v2 over gRPC (Triton's `GRPCInferenceService`).
    TritonGrpc,
    /// vLLM's gRPC engine service.
    VllmGrpc,
    /// JetStream's `Orchestrator`.
    JetStream,
    /// Anthropic's Messages API.
    Anthropic,
    /// OpenAI's Responses API.
    Responses,
    /// Amazon Bedrock's Converse API.
    Bedrock,
    /// Google's Gemini API and Vertex AI.
    Gemini,
    /// An Amazon SageMaker endpoint whose container speaks OpenAI's chat.
    SageMaker,
}

impl Protocol {
    /// Triton's and JetStream's streams end with their body; the others
    /// announce their end (`[DONE]`, TGI's final `generated_text`, vLLM's
    /// `GenerateComplete`), which a fault can leave out.
    pub(crate) fn has_end_marker(self) -> bool {
        !self.is_triton() && !matches!(self, Protocol::JetStream | Protocol::Gemini)
    }

    /// Whether the stream can leave its finish reason out. Triton says one
    /// only when asked (`return_finish_reason`); vLLM's is in its end
    /// marker; JetStream has none.
    pub(crate) fn reports_finish(self, extras: &Extras) -> bool {
        match self {
            Protocol::Triton | Protocol::TritonGrpc => extras.finish_reason,
            Protocol::VllmGrpc | Protocol::JetStream | Protocol::Responses => false,
            _ => true,
        }
    }

    /// Whether it is an AWS API: SigV4 keys, AWS's error shape, event streams.
    pub(crate) fn is_aws(self) -> bool {
        matches!(self, Protocol::Bedrock | Protocol::SageMaker)
    }

    fn is_triton(self) -> bool {
        matches!(self, Protocol::Triton | Protocol::TritonGrpc)
    }

    /// Whether it is spoken over gRPC: errors are statuses, streams end
    /// with trailers.
    pub(crate) fn is_grpc(self) -> bool {
        matches!(self, Protocol::TritonGrpc | Protocol::VllmGrpc | Protocol::JetStream)
    }

    /// The content type of a stream of this protocol.
    pub(crate) fn stream_content_type(self) -> &'static str {
        if self.is_grpc() {
            "application/grpc"
        } else if self.is_aws() {
            "application/vnd.amazon.eventstream"
        } else {
            "text/event-stream"
        }
    }
}

/// The route a generation request came in on.
pub(crate) enum Route {
    Completions,
    Chat,
    /// `POST /generate`: TGI's (`inputs`) or SGLang's (`text`, `input_ids`).
    Generate,
    /// `POST /generate_stream` (TGI).
    TgiStream,
    /// `POST /v2/models/{model}[/versions/{v}]/generate[_stream]`.
    Triton {
        model: String,
        stream: bool,
    },
    /// `POST /inference.GRPCInferenceService/ModelInfer` or `…/ModelStreamInfer`.
    TritonGrpc {
        stream: bool,
    },
    /// `POST /vllm.grpc.engine.VllmEngine/Generate`.
    VllmGrpc,
    /// `POST /jetstream_proto.Orchestrator/Decode`.
    JetStream,
    /// `POST /v1/messages` (Anthropic).
    Messages,
    /// `POST /v1/responses` (OpenAI).
    Responses,
    /// `POST /model/{modelId}/converse[-stream]` (Bedrock).
    Bedrock {
        stream: bool,
    },
    /// `POST …/models/{model}:[stream]generateContent` (Gemini, Vertex AI).
    Gemini {
        stream: bool,
    },
    /// `POST /endpoints/{name}/invocations[-response-stream]` (SageMaker).
    SageMaker {
        stream: bool,
    },
}

impl Route {
    /// The route of a generation path, if it is one.
    pub(crate) fn of(path: &str) -> Option<Route> {
        match path {
            "/v1/completions" => return Some(Route::Completions),
            "/v1/chat/completions" => return Some(Route::Chat),
            "/generate" => return Some(Route::Generate),
            "/generate_stream" => return Some(Route::TgiStream),
            "/inference.GRPCInferenceService/ModelInfer" => return Some(Route::TritonGrpc { stream: false }),
            "/inference.GRPCInferenceService/ModelStreamInfer" => return Some(Route::TritonGrpc { stream: true }),
            "/vllm.grpc.engine.VllmEngine/Generate" => return Some(Route::VllmGrpc),
            "/jetstream_proto.Orchestrator/Decode" => return Some(Route::JetStream),
            "/v1/messages" => return Some(Route::Messages),
            "/v1/responses" => return Some(Route::Responses),
            _ => {}
        }
        if let Some(stream) = crate::bedrock::route(path) {
            return Some(Route::Bedrock { stream });
        }
        if let Some(stream) = crate::gemini::route(path) {
            return Some(Route::Gemini { stream });
        }
        if let Some(stream) = crate::bedrock::sagemaker_route(path) {
            return Some(Route::SageMaker { stream });
        }
        let rest = path.strip_prefix("/v2/models/")?;
        let (model, action) = rest.split_once('/')?;
        let action = match action.strip_prefix("versions/") {
            Some(versioned) => versioned.split_once('/')?.1,
            None => action,
        };
        let stream = match action {
            "generate" => false,
            "generate_stream" => true,
            _ => return None,
        };
        Some(Route::Triton {
            model: model.to_string(),
            stream,
        })
    }

    /// The protocol errors are answered in before the body is read.
    pub(crate) fn protocol(&self) -> Protocol {
        match self {
            Route::Completions => Protocol::Completions,
            Route::Chat => Protocol::Chat,
            // Until the body says which; both servers' errors are JSON with `error`.
            Route::Generate | Route::TgiStream => Protocol::Tgi,
            Route::Triton { .. } => Protocol::Triton,
            Route::TritonGrpc { .. } => Protocol::TritonGrpc,
            Route::VllmGrpc => Protocol::VllmGrpc,
            Route::JetStream => Protocol::JetStream,
            Route::Messages => Protocol::Anthropic,
            Route::Responses => Protocol::Responses,
            Route::Bedrock { .. } => Protocol::Bedrock,
            Route::Gemini { .. } => Protocol::Gemini,
            Route::SageMaker { .. } => Protocol::SageMaker,
        }
    }
}

/// What a request asks, whatever its protocol.
#[derive(Debug)]
pub(crate) struct Asked {
    pub protocol: Protocol,
    pub shape: PromptShape,
    pub max_tokens: Option<u32>,
    pub min_tokens: u32,
    pub ignore_eos: bool,
    pub stream: bool,
    pub extras: Extras,
}

/// The options that change what a response holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extras {
    /// OpenAI: a usage chunk at the end.
    pub include_usage: bool,
    /// OpenAI (vLLM): usage in every chunk.
    pub continuous_usage: bool,
    /// TGI: `details` in a unary response.
    pub details: bool,
    /// TGI: the prompt's tokens as `details.prefill`.
    pub decoder_input_details: bool,
    /// Triton: the `num_input_tokens` output.
    pub input_counts: bool,
    /// Triton: the `num_output_tokens` output.
    pub output_counts: bool,
    /// Triton: the `finish_reason` output.
    pub finish_reason: bool,
    /// Triton: the model named in the path.
    pub model: String,
}

/// A request refused: its status and message.
pub(crate) type Refusal = (StatusCode, String);

fn bad(message: impl Into<String>) -> Refusal {
    (StatusCode::BAD_REQUEST, message.into())
}

/// Read a generation request's body.
pub(crate) fn parse(route: Route, body: &[u8], block: usize, media: &MediaConfig) -> Result<Asked, Refusal> {
    match route {
        Route::Completions => openai(Protocol::Completions, body, block, media),
        Route::Chat => openai(Protocol::Chat, body, block, media),
        Route::Generate | Route::TgiStream => {
            let fields: Map<String, Value> =
                serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
            if fields.contains_key("inputs") {
                tgi(fields, matches!(route, Route::TgiStream), block)
            } else if matches!(route, Route::Generate)
                && (fields.contains_key("text") || fields.contains_key("input_ids"))
            {
                sglang(fields, block)
            } else {
                Err(bad(
                    "`inputs` is required (TGI); SGLang's /generate takes `text` or `input_ids`",
                ))
            }
        }
        Route::Triton { model, stream } => {
            let fields: Map<String, Value> = serde_json::from_slice(body)
                .map_err(|e| bad(format!("failed to parse the request JSON buffer: {e}")))?;
            triton(fields, model, stream, block)
        }
        Route::TritonGrpc { stream } => {
            let (model, fields) = grpc_tensors(grpc_body(body)?)?;
            let mut asked = triton(fields, model, stream, block)?;
            asked.protocol = Protocol::TritonGrpc;
            Ok(asked)
        }
        Route::VllmGrpc => vllm_grpc(grpc_body(body)?, block),
        Route::JetStream => jetstream(grpc_body(body)?, block),
        Route::Messages => crate::anthropic::parse(body, block, media),
        Route::Responses => crate::responses::parse(body, block, media),
        Route::Bedrock { stream } => crate::bedrock::parse(body, stream, block, media),
        Route::Gemini { stream } => crate::gemini::parse(body, stream, block, media),
        // The container reads the body; SageMaker's path says whether the
        // answer streams.
        Route::SageMaker { stream } => {
            let mut asked = openai(Protocol::Chat, body, block, media)?;
            asked.protocol = Protocol::SageMaker;
            asked.stream = stream;
            Ok(asked)
        }
    }
}

/// A gRPC request body's one message.
fn grpc_body(body: &[u8]) -> Result<&[u8], Refusal> {
    match body {
        [0, a, b, c, d, rest @ ..] if u32::from_be_bytes([*a, *b, *c, *d]) as usize <= rest.len() => {
            Ok(&rest[..u32::from_be_bytes([*a, *b, *c, *d]) as usize])
        }
        [1, ..] => Err(bad(
            "compressed messages are not accepted (no grpc-encoding was agreed)",
        )),
        _ => Err(bad("the request body is not a length-prefixed gRPC message")),
    }
}

fn vllm_grpc(message: &[u8], block: usize) -> Result<Asked, Refusal> {
    let request = vllm::GenerateRequest::decode(message).map_err(|e| bad(format!("not a GenerateRequest: {e}")))?;
    let shape = match &request.input {
        Some(vllm::generate_request::Input::Text(t)) => PromptShape::from_words(t.split_whitespace(), block),
        Some(vllm::generate_request::Input::Tokenized(t)) => PromptShape::from_ids(&t.input_ids, block),
        None => return Err(bad("GenerateRequest needs text or tokenized input")),
    };
    let sampling = request.sampling_params.unwrap_or_default();
    Ok(Asked {
        protocol: Protocol::VllmGrpc,
        shape,
        max_tokens: sampling.max_tokens,
        min_tokens: sampling.min_tokens,
        ignore_eos: sampling.ignore_eos,
        stream: request.stream,
        extras: Extras::default(),
    })
}

fn jetstream(message: &[u8], block: usize) -> Result<Asked, Refusal> {
    let request = jetstream::DecodeRequest::decode(message).map_err(|e| bad(format!("not a DecodeRequest: {e}")))?;
    let shape = match &request.content {
        Some(jetstream::decode_request::Content::TextContent(t)) => {
            PromptShape::from_words(t.text.split_whitespace(), block)
        }
        Some(jetstream::decode_request::Content::TokenContent(t)) => {
            let ids: Vec<u32> = t.token_ids.iter().map(|&id| id as u32).collect();
            PromptShape::from_ids(&ids, block)
        }
        None => return Err(bad("DecodeRequest needs text_content or token_content")),
    };
    Ok(Asked {
        protocol: Protocol::JetStream,
        shape,
        max_tokens: u32::try_from(request.max_tokens).ok().filter(|&n| n > 0),
        min_tokens: 0,
        // JetStream decodes to max_tokens unless the model stops it.
        ignore_eos: false,
        // Decode always streams.
        stream: true,
        extras: Extras::default(),
    })
}

/// A gRPC `ModelInferRequest`'s inputs as the generate extension's JSON
/// fields, so both ways into Triton are read alike.
fn grpc_tensors(message: &[u8]) -> Result<(String, Map<String, Value>), Refusal> {
    let request =
        kserve::ModelInferRequest::decode(message).map_err(|e| bad(format!("not a ModelInferRequest: {e}")))?;
    let mut fields = Map::new();
    for (i, input) in request.inputs.iter().enumerate() {
        let raw = request.raw_input_contents.get(i);
        let c = input.contents.clone().unwrap_or_default();
        let le4 = |raw: &Vec<u8>| raw.get(..4).map(|b| [b[0], b[1], b[2], b[3]]);
        let value = match input.datatype.as_str() {
            "BYTES" => {
                let element = match raw {
                    Some(raw) => kserve::raw_bytes_elements(raw).and_then(|e| e.first().map(|b| b.to_vec())),
                    None => c.bytes_contents.first().cloned(),
                };
                element.map(|b| Value::String(String::from_utf8_lossy(&b).into_owned()))
            }
            "BOOL" => match raw {
                Some(raw) => raw.first().map(|b| Value::Bool(*b != 0)),
                None => c.bool_contents.first().map(|b| Value::Bool(*b)),
            },
            "FP32" => match raw {
                Some(raw) => le4(raw).map(|b| f64::from(f32::from_le_bytes(b)).into()),
                None => c.fp32_contents.first().map(|f| f64::from(*f).into()),
            },
            _ => match raw {
                Some(raw) => le4(raw).map(|b| i32::from_le_bytes(b).into()),
                None => c.int_contents.first().map(|n| (*n).into()),
            },
        };
        let value = value.ok_or_else(|| bad(format!("input '{}' holds no element", input.name)))?;
        fields.insert(input.name.clone(), value);
    }
    Ok((request.model_name, fields))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
    #[serde(default)]
    continuous_usage_stats: bool,
}

#[derive(Deserialize)]
struct OpenAiRequest {
    #[serde(default)]
    prompt: Option<PromptField>,
    #[serde(default)]
    messages: Option<Vec<ChatMessage>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    min_tokens: u32,
    #[serde(default)]
    ignore_eos: bool,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

fn openai(protocol: Protocol, body: &[u8], block: usize, media: &MediaConfig) -> Result<Asked, Refusal> {
    let parsed: OpenAiRequest = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let shape = match (protocol, &parsed.prompt, &parsed.messages) {
        (Protocol::Chat, _, Some(messages)) => {
            // A message's words are its text, or its text parts'; its other
            // parts are images and audio, counted by the media rules.
            let mut texts: Vec<&str> = Vec::new();
            let mut media_tokens = 0;
            for m in messages {
                match &m.content {
                    Value::String(s) => texts.push(s),
                    Value::Array(parts) => {
                        for p in parts {
                            match p.get("text").and_then(Value::as_str) {
                                Some(t) => texts.push(t),
                                None => media_tokens += media.part_tokens(p),
                            }
                        }
                    }
                    _ => {}
                }
            }
            let mut shape = PromptShape::from_words(texts.iter().flat_map(|t| t.split_whitespace()), block);
            shape.tokens += media_tokens;
            shape
        }
        (Protocol::Chat, _, None) => return Err(bad("`messages` is required")),
        (_, Some(PromptField::Text(t)), _) => PromptShape::from_words(t.split_whitespace(), block),
        (_, Some(PromptField::Texts(ts)), _) => {
            PromptShape::from_words(ts.iter().flat_map(|t| t.split_whitespace()), block)
        }
        (_, Some(PromptField::Ids(ids)), _) => PromptShape::from_ids(ids, block),
        (_, None, _) => return Err(bad("`prompt` is required")),
    };
    let options = parsed.stream_options.unwrap_or_default();
    Ok(Asked {
        protocol,
        shape,
        max_tokens: parsed.max_completion_tokens.or(parsed.max_tokens),
        min_tokens: parsed.min_tokens,
        ignore_eos: parsed.ignore_eos,
        stream: parsed.stream,
        extras: Extras {
            include_usage: options.include_usage || options.continuous_usage_stats,
            continuous_usage: options.continuous_usage_stats,
            ..Extras::default()
        },
    })
}

#[derive(Deserialize)]
struct TgiRequest {
    inputs: String,
    #[serde(default)]
    parameters: TgiParameters,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize, Default)]
struct TgiParameters {
    max_new_tokens: Option<u32>,
    #[serde(default)]
    details: bool,
    #[serde(default)]
    decoder_input_details: bool,
}

fn tgi(fields: Map<String, Value>, stream_route: bool, block: usize) -> Result<Asked, Refusal> {
    let parsed: TgiRequest = serde_json::from_value(Value::Object(fields)).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Failed to deserialize the JSON body: {e}"),
        )
    })?;
    Ok(Asked {
        protocol: Protocol::Tgi,
        shape: PromptShape::from_words(parsed.inputs.split_whitespace(), block),
        max_tokens: parsed.parameters.max_new_tokens,
        min_tokens: 0,
        // TGI has no ignore_eos: a natural length is what it gives.
        ignore_eos: false,
        stream: stream_route || parsed.stream,
        extras: Extras {
            details: parsed.parameters.details,
            decoder_input_details: parsed.parameters.decoder_input_details,
            ..Extras::default()
        },
    })
}

#[derive(Deserialize)]
struct SglangRequest {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    input_ids: Option<Vec<u32>>,
    #[serde(default)]
    sampling_params: SglangSampling,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize, Default)]
struct SglangSampling {
    max_new_tokens: Option<u32>,
    #[serde(default)]
    min_new_tokens: u32,
    #[serde(default)]
    ignore_eos: bool,
}

fn sglang(fields: Map<String, Value>, block: usize) -> Result<Asked, Refusal> {
    let parsed: SglangRequest =
        serde_json::from_value(Value::Object(fields)).map_err(|e| bad(format!("invalid request: {e}")))?;
    let shape = match (&parsed.text, &parsed.input_ids) {
        (Some(t), None) => PromptShape::from_words(t.split_whitespace(), block),
        (None, Some(ids)) => PromptShape::from_ids(ids, block),
        _ => return Err(bad("Either text or input_ids should be provided, not both")),
    };
    Ok(Asked {
        protocol: Protocol::Sglang,
        shape,
        max_tokens: parsed.sampling_params.max_new_tokens,
        min_tokens: parsed.sampling_params.min_new_tokens,
        ignore_eos: parsed.sampling_params.ignore_eos,
        stream: parsed.stream,
        extras: Extras::default(),
    })
}

/// The inputs Triton's TensorRT-LLM and vLLM backends declare; anything
/// else is refused as Triton refuses an input its model does not have.
const TRITON_INPUTS: &[&str] = &[
    "text_input",
    "max_tokens",
    "stream",
    "sampling_parameters",
    "exclude_input_in_output",
    "return_num_input_tokens",
    "return_num_output_tokens",
    "return_finish_reason",
    "bad_words",
    "stop_words",
    "temperature",
    "top_k",
    "top_p",
    "random_seed",
    "end_id",
    "pad_id",
    "min_tokens",
];

/// A tensor given as a scalar or a one-element array.
fn scalar(v: &Value) -> &Value {
    match v {
        Value::Array(a) if a.len() == 1 => &a[0],
        other => other,
    }
}

fn triton(fields: Map<String, Value>, model: String, stream_route: bool, block: usize) -> Result<Asked, Refusal> {
    let mut params = Map::new();
    for (name, value) in &fields {
        match name.as_str() {
            "id" => {}
            "parameters" => match value {
                Value::Object(p) => params.extend(p.clone()),
                _ => return Err(bad("'parameters' must be a JSON object")),
            },
            n if TRITON_INPUTS.contains(&n) => {}
            other => {
                return Err(bad(format!(
                    "[request id: <id_unknown>] unexpected inference input '{other}' for model '{model}'"
                )));
            }
        }
    }
    let get = |name: &str| fields.get(name).map(scalar).or_else(|| params.get(name));
    let flag = |name: &str| get(name).and_then(Value::as_bool).unwrap_or(false);
    let Some(Value::String(text)) = get("text_input") else {
        return Err(bad(format!(
            "[request id: <id_unknown>] expected input 'text_input' (a string) for model '{model}'"
        )));
    };
    // The vLLM backend takes its sampling parameters as one JSON string.
    let sampling: Map<String, Value> = match get("sampling_parameters") {
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| bad(format!("sampling_parameters is not a JSON object: {e}")))?
        }
        Some(_) => return Err(bad("sampling_parameters must be a JSON string")),
        None => Map::new(),
    };
    let number = |name: &str| {
        get(name)
            .or_else(|| sampling.get(name))
            .and_then(Value::as_u64)
            .map(|n| n.min(u64::from(u32::MAX)) as u32)
    };
    Ok(Asked {
        protocol: Protocol::Triton,
        shape: PromptShape::from_words(text.split_whitespace(), block),
        max_tokens: number("max_tokens"),
        min_tokens: number("min_tokens").unwrap_or(0),
        ignore_eos: sampling.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false),
        // TensorRT-LLM streams only when its `stream` input says so too.
        stream: stream_route && get("stream").and_then(Value::as_bool) != Some(false),
        extras: Extras {
            input_counts: flag("return_num_input_tokens"),
            output_counts: flag("return_num_output_tokens"),
            finish_reason: flag("return_finish_reason"),
            model,
            ..Extras::default()
        },
    })
}

/// A refusal in the protocol's own error shape.
pub(crate) fn error_body(protocol: Protocol, status: StatusCode, kind: &str, message: &str) -> (StatusCode, String) {
    match protocol {
        Protocol::Completions | Protocol::Chat | Protocol::Responses => (
            status,
            json!({"object": "error", "message": message, "type": kind, "param": null, "code": status.as_u16()})
                .to_string(),
        ),
        Protocol::Tgi => {
            // TGI answers a bad request as 422 with a validation error.
            let (status, error_type) = match status.as_u16() {
                400 | 422 => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
                429 => (status, "overloaded"),
                _ => (status, "generation"),
            };
            (status, json!({"error": message, "error_type": error_type}).to_string())
        }
        Protocol::Sglang => (status, json!({"error": {"message": message}}).to_string()),
        Protocol::Triton => (status, json!({"error": message}).to_string()),
        Protocol::Anthropic => (status, crate::anthropic::error_body(status, message)),
        Protocol::Bedrock | Protocol::SageMaker => (status, crate::bedrock::error_body(message)),
        Protocol::Gemini => (status, crate::gemini::error_body(status, message)),
        // gRPC errors are a status in the headers, not a body (see `grpc_status`).
        Protocol::TritonGrpc | Protocol::VllmGrpc | Protocol::JetStream => (status, String::new()),
    }
}

/// The gRPC status for an HTTP-style refusal.
pub(crate) fn grpc_status(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 | 422 => 3, // INVALID_ARGUMENT
        404 => 12,      // UNIMPLEMENTED
        429 => 8,       // RESOURCE_EXHAUSTED
        503 => 14,      // UNAVAILABLE
        _ => 13,        // INTERNAL
    }
}

/// `grpc-status` and `grpc-message` (percent-encoded, as gRPC wants).
pub(crate) fn grpc_trailers(code: u32, message: &str) -> hyper::HeaderMap {
    let mut map = hyper::HeaderMap::new();
    map.insert("grpc-status", hyper::header::HeaderValue::from(code));
    if !message.is_empty() {
        let mut encoded = String::new();
        for b in message.bytes() {
            if (0x20..0x7f).contains(&b) && b != b'%' {
                encoded.push(b as char);
            } else {
                let _ = write!(encoded, "%{b:02X}");
            }
        }
        if let Ok(v) = hyper::header::HeaderValue::from_str(&encoded) {
            map.insert("grpc-message", v);
        }
    }
    map
}

/// A gRPC message: its 5-byte prefix and `message`.
fn grpc_message(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// What a response is made from: everything the protocol needs besides the
/// token timeline.
pub(crate) struct Reply {
    pub protocol: Protocol,
    pub id: u64,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub text_seed: u64,
    pub extras: Extras,
}

/// One streamed piece: tokens `from..to` of the output, whose text is `text`.
pub(crate) struct Piece<'a> {
    pub from: u32,
    pub to: u32,
    pub text: &'a str,
    /// The finish reason (`stop` or `length`), on the last piece unless a
    /// fault leaves it out.
    pub finish: Option<&'a str>,
    /// The last piece, and the stream's end is to be announced in it (TGI).
    pub end: bool,
}

impl Reply {
    pub(crate) fn words(&self, range: std::ops::Range<u32>) -> String {
        range.map(|i| word(self.text_seed, i)).collect()
    }

    /// Chat's first chunk, which carries the role and no text.
    pub(crate) fn role_chunk(&self) -> Option<Bytes> {
        match self.protocol {
            Protocol::Chat => Some(self.openai_chunk("", None, None, true)),
            Protocol::Anthropic => Some(self.anthropic_start()),
            Protocol::Responses => Some(self.responses_start()),
            Protocol::Bedrock => Some(self.bedrock_start()),
            Protocol::SageMaker => self.in_payload_parts(Reply::role_chunk),
            _ => None,
        }
    }

    /// The bytes of one streamed piece.
    pub(crate) fn chunk(&self, piece: &Piece<'_>) -> Bytes {
        match self.protocol {
            Protocol::Completions | Protocol::Chat => {
                self.openai_chunk(piece.text, piece.finish, Some(piece.to), false)
            }
            Protocol::Tgi => self.tgi_chunk(piece),
            Protocol::Sglang => self.sglang_chunk(piece),
            Protocol::Triton => self.triton_chunk(piece),
            Protocol::TritonGrpc => grpc_message(&kserve::ModelStreamInferResponse {
                error_message: String::new(),
                infer_response: Some(self.grpc_response(
                    piece.text,
                    piece.to - piece.from,
                    piece.finish.or(Some("None")),
                )),
            }),
            Protocol::VllmGrpc => self.vllm_chunk(piece),
            Protocol::Anthropic => self.anthropic_chunk(piece.text, piece.finish, piece.to == self.output_tokens),
            Protocol::Responses => self.responses_chunk(piece),
            Protocol::Bedrock => self.bedrock_chunk(piece.text, piece.finish, piece.to == self.output_tokens),
            Protocol::Gemini => self.gemini_chunk(piece.text, piece.to, piece.finish),
            Protocol::SageMaker => self
                .in_payload_parts(|chat| Some(chat.chunk(piece)))
                .unwrap_or_default(),
            Protocol::JetStream => grpc_message(&jetstream::DecodeResponse {
                content: Some(jetstream::decode_response::Content::StreamContent(
                    jetstream::decode_response::StreamContent {
                        samples: vec![jetstream::decode_response::stream_content::Sample {
                            text: piece.text.to_string(),
                            token_ids: (piece.from..piece.to).map(|i| token_id(i) as i32).collect(),
                        }],
                    },
                )),
            }),
        }
    }

    /// vLLM streams each step's new token ids; its last chunk is followed
    /// at once by the `GenerateComplete`, which repeats that chunk's tokens
    /// and says why the output ended.
    fn vllm_chunk(&self, piece: &Piece<'_>) -> Bytes {
        let ids: Vec<u32> = (piece.from..piece.to).map(token_id).collect();
        let chunk = grpc_message(&vllm::GenerateResponse {
            response: Some(vllm::generate_response::Response::Chunk(vllm::GenerateStreamChunk {
                token_ids: ids.clone(),
                prompt_tokens: self.prompt_tokens,
                completion_tokens: piece.to - piece.from,
                cached_tokens: 0,
                index: 0,
            })),
        });
        if !piece.end {
            return chunk;
        }
        let complete = self.vllm_complete(ids, piece.finish.unwrap_or("stop"));
        [chunk, complete].concat().into()
    }

    fn vllm_complete(&self, output_ids: Vec<u32>, finish: &str) -> Bytes {
        let completion_tokens = output_ids.len() as u32;
        grpc_message(&vllm::GenerateResponse {
            response: Some(vllm::generate_response::Response::Complete(vllm::GenerateComplete {
                output_ids,
                finish_reason: finish.into(),
                prompt_tokens: self.prompt_tokens,
                completion_tokens,
                ..vllm::GenerateComplete::default()
            })),
        })
    }

    /// A `ModelInferResponse` as Triton writes it: outputs with raw contents.
    fn grpc_response(&self, text: &str, tokens: u32, finish: Option<&str>) -> kserve::ModelInferResponse {
        let mut outputs = Vec::new();
        let mut raw = Vec::new();
        let mut add = |name: &str, datatype: &str, contents: Vec<u8>| {
            outputs.push(kserve::InferOutputTensor {
                name: name.into(),
                datatype: datatype.into(),
                shape: vec![1],
                ..kserve::InferOutputTensor::default()
            });
            raw.push(contents);
        };
        add("text_output", "BYTES", kserve::raw_bytes(&[text.as_bytes()]));
        if self.extras.input_counts {
            add("num_input_tokens", "UINT32", self.prompt_tokens.to_le_bytes().to_vec());
        }
        if self.extras.output_counts {
            add("num_output_tokens", "UINT32", tokens.to_le_bytes().to_vec());
        }
        if let Some(reason) = finish.filter(|_| self.extras.finish_reason) {
            add("finish_reason", "BYTES", kserve::raw_bytes(&[reason.as_bytes()]));
        }
        kserve::ModelInferResponse {
            model_name: self.extras.model.clone(),
            model_version: "1".into(),
            id: self.id.to_string(),
            outputs,
            raw_output_contents: raw,
            ..kserve::ModelInferResponse::default()
        }
    }

    /// The trailers a stream ends with: gRPC's OK status.
    pub(crate) fn end_trailers(&self) -> Option<hyper::HeaderMap> {
        self.protocol.is_grpc().then(|| grpc_trailers(0, ""))
    }

    /// A whole unary gRPC response: its one message (Triton's
    /// `ModelInferResponse`, vLLM's `GenerateComplete` with every token;
    /// JetStream always streams).
    pub(crate) fn grpc_unary(&self, finish: &str) -> Bytes {
        match self.protocol {
            Protocol::VllmGrpc => self.vllm_complete((0..self.output_tokens).map(token_id).collect(), finish),
            _ => {
                grpc_message(&self.grpc_response(&self.words(0..self.output_tokens), self.output_tokens, Some(finish)))
            }
        }
    }

    /// A frame that is not JSON.
    pub(crate) fn malformed(&self) -> Bytes {
        match self.protocol {
            Protocol::Completions | Protocol::Chat => {
                Bytes::from_static(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\n\n")
            }
            Protocol::Tgi => Bytes::from_static(b"data:{\"index\":0,\"token\":{\"text\n\n"),
            Protocol::Sglang => Bytes::from_static(b"data: {\"text\":\"\n\n"),
            Protocol::Triton => Bytes::from_static(b"data: {\"model_name\":\"\n\n"),
            Protocol::Anthropic => Bytes::from_static(crate::anthropic::MALFORMED),
            Protocol::Responses => Bytes::from_static(crate::responses::MALFORMED),
            Protocol::Gemini => Bytes::from_static(crate::gemini::MALFORMED),
            Protocol::Bedrock => crate::bedrock::malformed(),
            Protocol::SageMaker => self.in_payload_parts(|chat| Some(chat.malformed())).unwrap_or_default(),
            // A message whose bytes are no protobuf (a field of wire type 7).
            Protocol::TritonGrpc | Protocol::VllmGrpc | Protocol::JetStream => {
                Bytes::from_static(&[0, 0, 0, 0, 2, 0xff, 0xff])
            }
        }
    }

    /// OpenAI's usage chunk after the last piece, when asked.
    pub(crate) fn usage_chunk(&self) -> Option<Bytes> {
        let object = match self.protocol {
            Protocol::SageMaker => return self.in_payload_parts(Reply::usage_chunk),
            Protocol::Chat => "chat.completion.chunk",
            Protocol::Completions => "text_completion",
            _ => return None,
        };
        self.extras.include_usage.then(|| {
            Bytes::from(format!(
                "data: {{\"id\":\"x-{}\",\"object\":\"{object}\",\"created\":0,\"model\":\"sim\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\n",
                self.id,
                self.prompt_tokens,
                self.output_tokens,
                self.prompt_tokens + self.output_tokens
            ))
        })
    }

    /// The end marker sent after the pieces, where the protocol has one of
    /// its own after them.
    pub(crate) fn done_marker(&self) -> Option<Bytes> {
        match self.protocol {
            Protocol::Completions | Protocol::Chat | Protocol::Sglang => Some(Bytes::from_static(b"data: [DONE]\n\n")),
            Protocol::Anthropic => Some(Bytes::from_static(crate::anthropic::MESSAGE_STOP)),
            Protocol::Bedrock => Some(self.bedrock_metadata()),
            Protocol::SageMaker => self.in_payload_parts(Reply::done_marker),
            _ => None,
        }
    }

    /// The reply as the container behind a SageMaker endpoint gives it.
    fn as_chat(&self) -> Reply {
        Reply {
            protocol: Protocol::Chat,
            id: self.id,
            prompt_tokens: self.prompt_tokens,
            output_tokens: self.output_tokens,
            text_seed: self.text_seed,
            extras: self.extras.clone(),
        }
    }

    /// What the container writes (`write` of the chat reply), as SageMaker
    /// passes it on: in `PayloadPart` events, cut where it likes.
    fn in_payload_parts(&self, write: impl FnOnce(&Reply) -> Option<Bytes>) -> Option<Bytes> {
        write(&self.as_chat()).map(|bytes| crate::bedrock::payload_parts(&bytes))
    }

    /// One OpenAI SSE chunk, written without a JSON library (the words are
    /// plain ASCII) and without a temporary string per part: at thousands
    /// of streams a second this is the simulator's inner loop.
    fn openai_chunk(&self, text: &str, finish: Option<&str>, usage: Option<u32>, role: bool) -> Bytes {
        let mut s = String::with_capacity(256 + text.len());
        let chat = self.protocol == Protocol::Chat;
        let (id_prefix, object) = if chat {
            ("chatcmpl-", "chat.completion.chunk")
        } else {
            ("cmpl-", "text_completion")
        };
        s.push_str("data: {\"id\":\"");
        s.push_str(id_prefix);
        let _ = write!(s, "{}", self.id);
        s.push_str("\",\"object\":\"");
        s.push_str(object);
        s.push_str("\",\"created\":0,\"model\":\"sim\",\"choices\":[{\"index\":0,");
        if chat && role {
            s.push_str("\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
        } else if chat {
            s.push_str("\"delta\":{\"content\":\"");
            s.push_str(text);
            s.push_str("\"}");
        } else {
            s.push_str("\"text\":\"");
            s.push_str(text);
            s.push('"');
        }
        s.push_str(",\"logprobs\":null,\"finish_reason\":");
        match finish {
            Some(r) => {
                s.push('"');
                s.push_str(r);
                s.push('"');
            }
            None => s.push_str("null"),
        }
        s.push_str("}]");
        if let Some(done) = usage.filter(|_| self.extras.continuous_usage) {
            let _ = write!(
                s,
                ",\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{done},\"total_tokens\":{}}}",
                self.prompt_tokens,
                self.prompt_tokens + done
            );
        }
        s.push_str("}\n\n");
        Bytes::from(s)
    }

    /// TGI streams one event per token; the last carries the whole text and
    /// the details.
    fn tgi_chunk(&self, piece: &Piece<'_>) -> Bytes {
        let mut s = String::with_capacity(160 * (piece.to - piece.from) as usize);
        for i in piece.from..piece.to {
            let _ = write!(
                s,
                "data:{{\"index\":{},\"token\":{{\"id\":{},\"text\":\"{}\",\"logprob\":-0.25,\"special\":false}},",
                i + 1,
                token_id(i),
                word(self.text_seed, i)
            );
            if piece.end && i + 1 == piece.to {
                let details = match piece.finish {
                    Some(reason) => format!(
                        "{{\"finish_reason\":\"{}\",\"generated_tokens\":{},\"seed\":null,\"input_length\":{}}}",
                        tgi_finish(reason),
                        self.output_tokens,
                        self.prompt_tokens
                    ),
                    None => "null".into(),
                };
                let _ = write!(
                    s,
                    "\"generated_text\":\"{}\",\"details\":{details},\"top_tokens\":null}}\n\n",
                    self.words(0..self.output_tokens)
                );
            } else {
                s.push_str("\"generated_text\":null,\"details\":null,\"top_tokens\":null}\n\n");
            }
        }
        Bytes::from(s)
    }

    /// SGLang streams the text so far (not only the new part) with counts.
    fn sglang_chunk(&self, piece: &Piece<'_>) -> Bytes {
        Bytes::from(format!(
            "data: {}\n\n",
            json!({
                "text": self.words(0..piece.to),
                "meta_info": self.sglang_meta(piece.to, piece.finish),
                "index": 0,
            })
        ))
    }

    fn sglang_meta(&self, completion_tokens: u32, finish: Option<&str>) -> Value {
        let finish = match finish {
            Some("length") => json!({"type": "length", "length": completion_tokens}),
            Some(_) => json!({"type": "stop", "matched": 2}),
            None => Value::Null,
        };
        json!({
            "id": format!("{:032x}", self.id),
            "finish_reason": finish,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "cached_tokens": 0,
        })
    }

    /// Triton streams the new text with the outputs the request asked for.
    fn triton_chunk(&self, piece: &Piece<'_>) -> Bytes {
        let mut body = self.triton_outputs(piece.text, piece.to - piece.from);
        if self.extras.finish_reason {
            // The vLLM backend says "None" until the last response.
            body.insert("finish_reason".into(), piece.finish.unwrap_or("None").into());
        }
        Bytes::from(format!("data: {}\n\n", Value::Object(body)))
    }

    fn triton_outputs(&self, text: &str, tokens: u32) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("model_name".into(), self.extras.model.clone().into());
        body.insert("model_version".into(), "1".into());
        body.insert("text_output".into(), text.into());
        if self.extras.input_counts {
            body.insert("num_input_tokens".into(), self.prompt_tokens.into());
        }
        if self.extras.output_counts {
            body.insert("num_output_tokens".into(), tokens.into());
        }
        body
    }

    /// A whole non-streamed response.
    pub(crate) fn unary(&self, finish: &str) -> String {
        let text = self.words(0..self.output_tokens);
        let usage = json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.prompt_tokens + self.output_tokens,
        });
        let body = match self.protocol {
            Protocol::SageMaker => return self.as_chat().unary(finish),
            Protocol::Chat => json!({
                "id": format!("chatcmpl-{}", self.id), "object": "chat.completion", "created": 0, "model": "sim",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                "usage": usage,
            }),
            Protocol::Completions => json!({
                "id": format!("cmpl-{}", self.id), "object": "text_completion", "created": 0, "model": "sim",
                "choices": [{"index": 0, "text": text, "finish_reason": finish}],
                "usage": usage,
            }),
            Protocol::Tgi if self.extras.details => {
                let prefill: Vec<Value> = if self.extras.decoder_input_details {
                    (0..self.prompt_tokens)
                        .map(|i| json!({"id": 500 + i, "text": "p", "logprob": null}))
                        .collect()
                } else {
                    Vec::new()
                };
                json!({
                    "generated_text": text,
                    "details": {
                        "finish_reason": tgi_finish(finish),
                        "generated_tokens": self.output_tokens,
                        "seed": null,
                        "prefill": prefill,
                        "tokens": [],
                    },
                })
            }
            Protocol::Tgi => json!({"generated_text": text}),
            Protocol::Sglang => json!({
                "text": text,
                "meta_info": self.sglang_meta(self.output_tokens, Some(finish)),
            }),
            // Answered in gRPC messages (`grpc_unary`), not JSON.
            Protocol::VllmGrpc | Protocol::JetStream => Value::Null,
            Protocol::Anthropic => self.anthropic_unary(text, finish),
            Protocol::Responses => self.responses_unary(text, finish),
            Protocol::Bedrock => self.bedrock_unary(text, finish),
            Protocol::Gemini => self.gemini_unary(text, finish),
            Protocol::Triton | Protocol::TritonGrpc => {
                let mut body = self.triton_outputs(&text, self.output_tokens);
                if self.extras.finish_reason {
                    body.insert("finish_reason".into(), finish.into());
                }
                Value::Object(body)
            }
        };
        body.to_string()
    }
}

/// The id the simulator gives output token `i` (protocols that answer in
/// token ids: vLLM's gRPC, JetStream, TGI's token objects).
fn token_id(i: u32) -> u32 {
    1000 + i
}

/// TGI's name for a finish reason.
fn tgi_finish(reason: &str) -> &str {
    if reason == "stop" { "eos_token" } else { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests read with the default media rules.
    fn parse(route: Route, body: &[u8], block: usize) -> Result<Asked, Refusal> {
        super::parse(route, body, block, &MediaConfig::default())
    }

    fn reply(protocol: Protocol, extras: Extras) -> Reply {
        Reply {
            protocol,
            id: 3,
            prompt_tokens: 4,
            output_tokens: 2,
            text_seed: 9,
            extras,
        }
    }

    #[test]
    fn routes_are_read_from_paths() {
        assert!(matches!(Route::of("/generate"), Some(Route::Generate)));
        assert!(matches!(
            Route::of("/v2/models/ensemble/versions/1/generate_stream"),
            Some(Route::Triton { model, stream: true }) if model == "ensemble"
        ));
        assert!(matches!(
            Route::of("/v2/models/m/generate"),
            Some(Route::Triton { stream: false, .. })
        ));
        assert!(Route::of("/v2/models/m/infer").is_none());
        assert!(Route::of("/v2/models/m").is_none());
    }

    #[test]
    fn generate_is_tgi_or_sglang_by_its_body() {
        let tgi = parse(
            Route::Generate,
            br#"{"inputs":"a b c","parameters":{"max_new_tokens":5}}"#,
            16,
        )
        .unwrap();
        assert_eq!(
            (tgi.protocol, tgi.shape.tokens, tgi.max_tokens, tgi.stream),
            (Protocol::Tgi, 3, Some(5), false)
        );
        let sg = parse(
            Route::Generate,
            br#"{"input_ids":[1,2],"sampling_params":{"max_new_tokens":7,"ignore_eos":true},"stream":true}"#,
            16,
        )
        .unwrap();
        assert_eq!(
            (sg.protocol, sg.shape.tokens, sg.max_tokens, sg.ignore_eos),
            (Protocol::Sglang, 2, Some(7), true)
        );
        assert!(
            parse(Route::Generate, br#"{"prompt":"x"}"#, 16)
                .unwrap_err()
                .1
                .contains("`inputs`")
        );
        assert!(parse(Route::TgiStream, br#"{"inputs":"x"}"#, 16).unwrap().stream);
    }

    #[test]
    fn triton_refuses_inputs_its_model_lacks_and_reads_both_backends() {
        let route = || Route::Triton {
            model: "m".into(),
            stream: true,
        };
        let (status, message) = parse(route(), br#"{"text_input":"a","prompt_len":3}"#, 16).unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            message.contains("unexpected inference input 'prompt_len' for model 'm'"),
            "{message}"
        );
        let trt = parse(
            route(),
            br#"{"text_input":"a b","max_tokens":[9],"stream":true,"return_num_output_tokens":true}"#,
            16,
        )
        .unwrap();
        assert_eq!(
            (trt.max_tokens, trt.stream, trt.extras.output_counts),
            (Some(9), true, true)
        );
        let vllm = parse(
            route(),
            br#"{"text_input":"a","stream":false,"sampling_parameters":"{\"max_tokens\":4,\"ignore_eos\":true}"}"#,
            16,
        )
        .unwrap();
        assert_eq!((vllm.max_tokens, vllm.ignore_eos, vllm.stream), (Some(4), true, false));
        assert!(
            parse(route(), br#"{"max_tokens":1}"#, 16)
                .unwrap_err()
                .1
                .contains("'text_input'")
        );
    }

    #[test]
    fn every_streamed_piece_is_valid_json_in_its_protocol() {
        let piece = Piece {
            from: 0,
            to: 2,
            text: "the model",
            finish: Some("length"),
            end: true,
        };
        let all = Extras {
            include_usage: true,
            output_counts: true,
            input_counts: true,
            finish_reason: true,
            model: "m".into(),
            ..Extras::default()
        };
        for protocol in [
            Protocol::Completions,
            Protocol::Chat,
            Protocol::Tgi,
            Protocol::Sglang,
            Protocol::Triton,
        ] {
            let bytes = reply(protocol, all.clone()).chunk(&piece);
            let text = std::str::from_utf8(&bytes).unwrap();
            for event in text.split("\n\n").filter(|e| !e.is_empty()) {
                let data = event.strip_prefix("data:").unwrap().trim();
                let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{protocol:?}: {e}: {data}"));
                assert!(v.is_object());
            }
            serde_json::from_str::<Value>(&reply(protocol, all.clone()).unary("stop")).unwrap();
        }
        let tgi = reply(Protocol::Tgi, Extras::default()).chunk(&piece);
        let tgi = std::str::from_utf8(&tgi).unwrap();
        assert_eq!(tgi.matches("data:").count(), 2, "one event per token");
        assert!(
            tgi.contains("\"finish_reason\":\"length\",\"generated_tokens\":2"),
            "{tgi}"
        );
    }
}
