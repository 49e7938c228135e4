//! Barrage codec for Amazon SageMaker real-time endpoints: `POST
//! /endpoints/{name}/invocations-response-stream`
//! (InvokeEndpointWithResponseStream), or `…/invocations` (InvokeEndpoint)
//! for a whole response, signed with SigV4 inside the plugin.
//!
//! SageMaker passes the body to the model's container and its answer
//! back. The containers LLMs are served from on SageMaker (LMI with vLLM
//! or TensorRT-LLM, the vLLM and SGLang images, TGI with its Messages API)
//! take OpenAI's chat shape, so this codec sends and reads that
//! (`openai-common`). A stream is an AWS event stream of `PayloadPart`
//! events, each carrying some bytes of the container's own SSE stream,
//! cut wherever SageMaker cut them: the decoder joins the parts and reads
//! each SSE event when its blank line arrives, attributing it to the part
//! that completed it. `ModelStreamError` and `InternalStreamFailure` are
//! the server's errors.

use aws_common::{Credentials, Signing, Unsigned};
use barrage_sdk::prelude::*;
use openai_common::{Endpoint, StreamDecoder};
use serde::Deserialize;
use serde_json::Value;

/// The codec's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where requests are signed for.
    #[serde(flatten)]
    pub signing: Signing,
    /// The endpoint's name (default the run's model).
    pub endpoint: Option<String>,
    /// The inference component to invoke, on an endpoint that hosts several
    /// (`X-Amzn-SageMaker-Inference-Component`).
    pub inference_component: Option<String>,
    /// Extra headers, signed with the rest.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The credentials granted as secrets, if any.
    #[serde(skip)]
    pub credentials: Option<Credentials>,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        settings.signing.check()?;
        for (field, value) in [
            ("endpoint", &settings.endpoint),
            ("inference_component", &settings.inference_component),
        ] {
            if let Some(v) = value
                && !name_ok(v)
            {
                return Err(ConfigError {
                    field: Some(field.into()),
                    message: format!("`{v}` is not a SageMaker name: letters, digits and hyphens, at most 63"),
                });
            }
        }
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

/// Build and sign the request for `spec`: the chat body an OpenAI-compatible
/// container takes, sent to the endpoint.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let endpoint = settings.endpoint.clone().unwrap_or_else(|| spec.model.clone());
    if !name_ok(&endpoint) {
        return Err(format!(
            "`{endpoint}` is not a SageMaker endpoint name: set `endpoint:` in the codec's configuration"
        ));
    }
    let time = spec.send_time;
    let chat = openai_common::encode(Endpoint::Chat, &openai_common::Settings::default(), spec)?;
    let WireRequest::Http(http) = chat.request else {
        return Err("the chat encoding is not HTTP".into());
    };
    let action = if chat.streaming {
        "invocations-response-stream"
    } else {
        "invocations"
    };
    let path = format!("/endpoints/{endpoint}/{action}");
    // The container's stream is inside SageMaker's: SageMaker's `accept`
    // header names the container's content type.
    let mut headers: Vec<(String, String)> = http.headers.into_iter().filter(|(k, _)| k != "accept").collect();
    if chat.streaming {
        headers.push(("x-amzn-sagemaker-accept".into(), "text/event-stream".into()));
    }
    if let Some(component) = &settings.inference_component {
        headers.push(("x-amzn-sagemaker-inference-component".into(), component.clone()));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(credentials) = &settings.credentials {
        let host = settings.signing.host("runtime.sagemaker");
        let request = Unsigned {
            method: "POST",
            host: &host,
            path: &path,
            service: "sagemaker",
            region: settings.signing.region(),
            time: &time,
            body: &http.body,
        };
        aws_common::sign(credentials, &request, &mut headers);
    }
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path,
            headers,
            body: http.body,
        }),
        streaming: chat.streaming,
        framing: Framing::AwsEventStream,
        output: OutputKind::Tokens,
        prompt_tokens: None,
    })
}

/// Decoding a stream: the container's SSE bytes not yet ended by a blank
/// line, and the chat decoder that reads each event.
pub struct Stream {
    pending: Vec<u8>,
    chat: StreamDecoder,
}

/// Where the first SSE event in `b` ends: the end of its blank line.
fn event_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(n) = b[i..].iter().position(|&c| c == b'\n') {
        let at = i + n;
        // A blank line: `\n\n`, or `\n\r\n`.
        match b.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if b.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

/// The `data:` lines of one SSE event, joined by `\n`, if it has any.
fn event_data(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push(b'\n');
                    d.extend_from_slice(value);
                }
                None => data = Some(value.to_vec()),
            }
        }
    }
    data
}

#[derive(Deserialize)]
struct StreamError {
    #[serde(rename = "Message", alias = "message")]
    message: Option<String>,
    #[serde(rename = "ErrorCode")]
    error_code: Option<String>,
}

/// A container's stream may be this long without an event's end: longer
/// is a stream that is not SSE.
const MAX_PENDING: usize = 4 << 20;

impl Stream {
    fn decode(&mut self, frame: &Frame<'_>, emit: &mut dyn FnMut(Event)) {
        let kind = frame.event.unwrap_or_default();
        if let Some(exception) = kind.strip_prefix("exception:").or_else(|| kind.strip_prefix("error:")) {
            let e: Option<StreamError> = serde_json::from_slice(frame.data).ok();
            let (code, message) = match e {
                Some(e) => (e.error_code.unwrap_or_else(|| exception.into()), e.message),
                None => (exception.to_string(), None),
            };
            return emit(Event::ServerError(ServerError {
                code: Some(code),
                message: message.unwrap_or_else(|| snippet(frame.data)),
            }));
        }
        if kind != "PayloadPart" {
            // Event types the API may add: nothing to count.
            return emit(Event::KeepAlive);
        }
        self.pending.extend_from_slice(frame.data);
        let mut any = false;
        while let Some(end) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            if let Some(data) = event_data(&event) {
                any = true;
                self.chat.decode_frame(&data, emit);
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.pending.clear();
            return emit(Event::Malformed(format!(
                "the container's stream held {MAX_PENDING} bytes without an SSE event's end: is it SSE?"
            )));
        }
        if !any {
            // Part of an event: its bytes arrived, its meaning has not.
            emit(Event::KeepAlive);
        }
    }
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        Ok(each_frame(frames, |frame, emit| self.decode(frame, emit)))
    }
}

/// The `sagemaker` codec.
pub struct SageMaker;

impl Codec for SageMaker {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "sagemaker".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Amazon SageMaker endpoints serving OpenAI-compatible chat, SigV4-signed".into(),
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
            pending: Vec::new(),
            chat: StreamDecoder::new(&options),
        }
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(openai_common::decode_unary(&head, &body, &options))
    }
}

barrage_sdk::export_codec!(SageMaker);

#[cfg(test)]
mod tests;
