//! Barrage codec for KServe v2 inference servers over HTTP: Triton's
//! generate extension, `/v2/models/{model}/generate` (one JSON body) and
//! `/generate_stream` (SSE, one event per response of a decoupled model).
//!
//! The generate extension maps a JSON object's fields onto the model's input
//! tensors, and its output tensors onto the response's fields: the inputs
//! are the backends' (see `kserve-common`), each a field, and a response is
//! `{"model_name": …, "text_output": "…", "num_output_tokens": 1}`.

use barrage_sdk::prelude::*;
use kserve_common::{Input, Response, Settings, Stream};
use serde_json::{Map, Value};

/// Build the request for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut body = Map::new();
    for (name, input) in kserve_common::inputs(settings, &spec)? {
        let value = match input {
            Input::Text(t) => Value::String(t),
            Input::Int(n) => n.into(),
            Input::Bool(b) => b.into(),
            Input::Float(f) => f64::from(f).into(),
        };
        body.insert(name, value);
    }
    merge_extra(&mut body, spec.extra.as_deref())?;
    let stream = spec.generation.stream;
    let version = settings
        .version
        .as_ref()
        .map(|v| format!("/versions/{v}"))
        .unwrap_or_default();
    let action = if stream { "generate_stream" } else { "generate" };
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if stream {
        headers.push(("accept".into(), "text/event-stream".into()));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: format!("/v2/models/{}{version}/{action}", settings.model(&spec)),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: stream,
        framing: Framing::Sse,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

/// A tensor's value in the generate extension: a scalar, or (for a shape
/// with more than one element) an array of them.
fn first(v: &Value) -> &Value {
    match v {
        Value::Array(a) => a.first().unwrap_or(&Value::Null),
        other => other,
    }
}

fn count(v: Option<&Value>) -> Option<u32> {
    v.map(first)
        .and_then(Value::as_u64)
        .map(|n| n.min(u64::from(u32::MAX)) as u32)
}

/// The text of an output tensor: one string, or the concatenation of a
/// list of them.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str())
            .collect::<Option<Vec<_>>>()
            .map(|p| p.concat()),
        _ => None,
    }
}

fn read_response(data: &[u8], settings: &Settings) -> Result<Response, Event> {
    let fields: Map<String, Value> = serde_json::from_slice(data)
        .map_err(|e| Event::Malformed(format!("not a JSON object of output tensors ({e}): {}", snippet(data))))?;
    if let Some(error) = fields.get("error") {
        return Err(Event::ServerError(ServerError {
            code: None,
            message: error.as_str().map_or_else(|| error.to_string(), str::to_string),
        }));
    }
    let Some(text) = fields.get(&settings.text_output) else {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(kserve_common::missing_output(settings, &names));
    };
    let text = text_of(text).ok_or_else(|| {
        Event::Malformed(format!(
            "output tensor `{}` is not text: {}",
            settings.text_output,
            snippet(text.to_string().as_bytes())
        ))
    })?;
    let finish = fields
        .get("finish_reason")
        .map(first)
        .and_then(Value::as_str)
        .and_then(kserve_common::finish_reason);
    Ok(Response {
        text,
        output_tokens: count(fields.get("num_output_tokens")),
        input_tokens: count(fields.get("num_input_tokens")),
        finish,
    })
}

/// Decoding state of one stream.
pub struct StreamDecoder(Stream);

impl Decoder for StreamDecoder {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::with_capacity(frames.len());
        for (i, frame) in frames.iter().enumerate() {
            let data = frame.data.trim_ascii();
            let mut emit = |event| out.push(FrameEvent { frame: i as u32, event });
            if data.is_empty() {
                emit(Event::KeepAlive);
                continue;
            }
            let response = read_response(data, &self.0.settings);
            self.0.response(response, &mut emit);
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Event>, String> {
        Ok(self.0.end())
    }
}

/// Decode a non-streamed response.
pub fn decode_unary(head: &ResponseHead, body: &[u8], options: &DecodeOptions, settings: &Settings) -> Vec<Event> {
    let response = read_response(body.trim_ascii(), settings);
    let mut events = match response {
        Err(_) if !is_success(head.status) && serde_json::from_slice::<Value>(body).is_err() => {
            vec![http_error(head.status, body)]
        }
        r => kserve_common::unary_events(r, options),
    };
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `kserve-v2-http` codec.
pub struct KserveV2Http;

impl Codec for KserveV2Http {
    type Decoder = StreamDecoder;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "kserve-v2-http".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "KServe v2 / Triton generate extension over HTTP (TensorRT-LLM and vLLM backends)".into(),
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

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode_unary(&head, &body, &options, &Settings::current()))
    }
}

barrage_sdk::export_codec!(KserveV2Http);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream, sse_frames};

    fn spec(stream: bool) -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "ensemble".into(),
            prompt: Prompt::Text("hi".into()),
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: None,
                ignore_eos: true,
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

    fn http(req: &EncodedRequest) -> (String, Value) {
        let WireRequest::Http(h) = &req.request else {
            panic!("HTTP")
        };
        (h.path.clone(), serde_json::from_slice(&h.body).unwrap())
    }

    #[test]
    fn encode_builds_each_backends_layout() {
        testing::set_config(serde_json::json!({}));
        let (path, body) = http(&KserveV2Http::encode(spec(true)).unwrap());
        assert_eq!(path, "/v2/models/ensemble/generate_stream");
        assert_eq!(
            (body["text_input"].as_str(), body["max_tokens"].as_u64()),
            (Some("hi"), Some(16))
        );
        assert_eq!(body["return_num_output_tokens"], true);
        assert!(body.get("return_finish_reason").is_none());

        testing::set_config(
            serde_json::json!({"backend": "vllm", "model": "llama", "version": "2", "text_input": "prompt"}),
        );
        let (path, body) = http(&KserveV2Http::encode(spec(false)).unwrap());
        assert_eq!(path, "/v2/models/llama/versions/2/generate");
        assert_eq!(body["prompt"], "hi");
        let sampling: Value = serde_json::from_str(body["sampling_parameters"].as_str().unwrap()).unwrap();
        assert_eq!(
            (sampling["max_tokens"].as_u64(), sampling["ignore_eos"].as_bool()),
            (Some(16), Some(true))
        );
        assert_eq!(body["return_finish_reason"], true);
        testing::set_config(serde_json::json!({}));
    }

    #[test]
    fn a_stream_sums_its_counts_and_ends_with_the_body() {
        testing::set_config(serde_json::json!({}));
        let body = "data: {\"model_name\":\"m\",\"text_output\":\"The\",\"num_input_tokens\":5,\"num_output_tokens\":1}\n\n\
                    data: {\"model_name\":\"m\",\"text_output\":[\" sky\",\" is\"],\"num_input_tokens\":5,\"num_output_tokens\":2}\n\n";
        let events = decode_stream::<KserveV2Http>(sse_frames(body), DecodeOptions { want_text: true }).unwrap();
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
        assert!(
            matches!(&events[1], Event::Content(ContentDelta { bytes: 7, tokens: Some(2), text: Some(t) }) if t == " sky is"),
            "{text}"
        );
        assert!(matches!(&events[2], Event::Finish(r) if r == "unreported"), "{text}");
        assert!(
            matches!(
                events[3],
                Event::Usage(Usage {
                    prompt_tokens: Some(5),
                    completion_tokens: Some(3),
                    ..
                })
            ),
            "{text}"
        );
        assert!(matches!(events[4], Event::Done), "{text}");
    }

    #[test]
    fn the_vllm_backends_finish_reason_is_read_and_its_absence_noticed() {
        testing::set_config(serde_json::json!({"backend": "vllm"}));
        let body = "data: {\"text_output\":\"a\",\"finish_reason\":\"None\"}\n\ndata: {\"text_output\":\"b\",\"finish_reason\":\"length\"}\n\n";
        let events = decode_stream::<KserveV2Http>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(matches!(&events[2], Event::Finish(r) if r == "length"), "{events:?}");
        let body = "data: {\"text_output\":\"a\",\"finish_reason\":\"None\"}\n\n";
        let events = decode_stream::<KserveV2Http>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(!events.iter().any(|e| matches!(e, Event::Finish(_))), "{events:?}");
        testing::set_config(serde_json::json!({}));
    }

    #[test]
    fn a_missing_output_tensor_is_named_and_errors_are_the_servers() {
        testing::set_config(serde_json::json!({"text_output": "output"}));
        let body = "data: {\"model_name\":\"m\",\"text_output\":\"x\"}\n\n";
        let events = decode_stream::<KserveV2Http>(sse_frames(body), DecodeOptions { want_text: false }).unwrap();
        assert!(
            matches!(&events[0], Event::Malformed(m) if m.contains("no output tensor `output` (it has: model_name, text_output)")),
            "{events:?}"
        );
        testing::set_config(serde_json::json!({}));
        let head = ResponseHead {
            status: 400,
            headers: vec![],
        };
        let settings = Settings::default();
        let events = decode_unary(
            &head,
            br#"{"error":"unexpected inference input 'x' for model 'm'"}"#,
            &DecodeOptions { want_text: false },
            &settings,
        );
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Event::ServerError(e) if e.message.contains("'x'")));
        let events = decode_unary(&head, b"Bad Request", &DecodeOptions { want_text: false }, &settings);
        assert!(matches!(&events[0], Event::ServerError(e) if e.code.as_deref() == Some("400")));
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = KserveV2Http::check_config(&serde_json::json!({"backend": "onnx"})).unwrap_err();
        assert!(err.message.contains("unknown variant"), "{}", err.message);
        let err = KserveV2Http::check_config(&serde_json::json!({"model": "a/b"})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("model"));
    }
}
