//! Amazon Bedrock's Converse API (`POST /model/{modelId}/converse` and
//! `…/converse-stream`): the request it takes and the AWS event stream it
//! answers with, from the simulator's one token timeline. Also the event
//! stream a SageMaker endpoint answers in (`/endpoints/{name}/invocations-response-stream`):
//! its container's bytes in `PayloadPart` events.
//!
//! A stream is `messageStart`, a `contentBlockDelta` per piece, then
//! `contentBlockStop` and `messageStop` (why it stopped) with the last
//! piece, and `metadata` (usage), the last event, which a fault can leave
//! out. Each event is an event-stream message with its CRCs; the
//! simulator's malformed frame is one whose message CRC is wrong.

use barrage_core::framing::aws_event_stream_message;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::media::MediaConfig;
use crate::protocol::{Asked, Extras, Protocol, Refusal, Reply};
use crate::text::PromptShape;

#[derive(Deserialize)]
struct Block {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Vec<Block>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig {
    max_tokens: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    messages: Option<Vec<Message>>,
    #[serde(default)]
    system: Vec<Block>,
    inference_config: Option<InferenceConfig>,
}

/// The route's path, if it is a Converse one: the model and whether it streams.
pub(crate) fn route(path: &str) -> Option<bool> {
    let rest = path.strip_prefix("/model/")?;
    let (model, action) = rest.split_once('/')?;
    if model.is_empty() {
        return None;
    }
    match action {
        "converse" => Some(false),
        "converse-stream" => Some(true),
        _ => None,
    }
}

/// The route's path, if it is a SageMaker invocation: whether it streams.
pub(crate) fn sagemaker_route(path: &str) -> Option<bool> {
    let (name, action) = path.strip_prefix("/endpoints/")?.split_once('/')?;
    if name.is_empty() {
        return None;
    }
    match action {
        "invocations" => Some(false),
        "invocations-response-stream" => Some(true),
        _ => None,
    }
}

/// `bytes` as SageMaker streams a container's output: in `PayloadPart`
/// events whose payload is the bytes themselves, here cut in two in the
/// middle (SageMaker's parts do not follow the container's events).
pub(crate) fn payload_parts(bytes: &[u8]) -> Bytes {
    let headers = [
        (":event-type", "PayloadPart"),
        (":content-type", "application/octet-stream"),
        (":message-type", "event"),
    ];
    let (a, b) = bytes.split_at(bytes.len() / 2);
    let mut out = aws_event_stream_message(&headers, a);
    out.extend(aws_event_stream_message(&headers, b));
    Bytes::from(out)
}

/// Read a Converse request, refusing what the API refuses.
pub(crate) fn parse(body: &[u8], stream: bool, block: usize, media: &MediaConfig) -> Result<Asked, Refusal> {
    let bad = |m: String| (hyper::StatusCode::BAD_REQUEST, m);
    let r: Request = serde_json::from_slice(body).map_err(|e| bad(format!("Malformed input request: {e}")))?;
    let messages = r.messages.filter(|m| !m.is_empty()).ok_or_else(|| {
        bad(
            "1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null"
                .into(),
        )
    })?;
    let words = r
        .system
        .iter()
        .chain(messages.iter().flat_map(|m| &m.content))
        .filter_map(|b| b.text.as_deref())
        .flat_map(str::split_whitespace);
    let mut shape = PromptShape::from_words(words, block);
    shape.tokens += media.tokens_in_body(body);
    Ok(Asked {
        protocol: Protocol::Bedrock,
        shape,
        max_tokens: r.inference_config.and_then(|c| c.max_tokens),
        min_tokens: 0,
        ignore_eos: false,
        stream,
        extras: Extras::default(),
    })
}

/// An event of `kind` carrying `payload` as JSON.
pub(crate) fn event(kind: &str, payload: &Value) -> Vec<u8> {
    aws_event_stream_message(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        payload.to_string().as_bytes(),
    )
}

/// Bedrock's name for why the output ended.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        _ => "end_turn",
    }
}

impl Reply {
    /// `messageStart`.
    pub(crate) fn bedrock_start(&self) -> Bytes {
        Bytes::from(event("messageStart", &json!({"role": "assistant"})))
    }

    /// A piece as a `contentBlockDelta`; the last also closes the block
    /// and says why the output stopped (unless a fault leaves that out).
    pub(crate) fn bedrock_chunk(&self, text: &str, finish: Option<&str>, last: bool) -> Bytes {
        let mut out = event(
            "contentBlockDelta",
            &json!({"contentBlockIndex": 0, "delta": {"text": text}}),
        );
        if last {
            out.extend(event("contentBlockStop", &json!({"contentBlockIndex": 0})));
            if let Some(finish) = finish {
                out.extend(event("messageStop", &json!({"stopReason": stop_reason(finish)})));
            }
        }
        Bytes::from(out)
    }

    /// `metadata`, the stream's last event.
    pub(crate) fn bedrock_metadata(&self) -> Bytes {
        Bytes::from(event(
            "metadata",
            &json!({"usage": self.bedrock_usage(), "metrics": {"latencyMs": 0}}),
        ))
    }

    fn bedrock_usage(&self) -> Value {
        json!({"inputTokens": self.prompt_tokens, "outputTokens": self.output_tokens,
               "totalTokens": self.prompt_tokens + self.output_tokens})
    }

    /// A whole Converse response.
    pub(crate) fn bedrock_unary(&self, text: String, finish: &str) -> Value {
        json!({
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop_reason(finish),
            "usage": self.bedrock_usage(),
            "metrics": {"latencyMs": 0},
        })
    }
}

/// A `contentBlockDelta` whose message CRC is wrong, as a corrupted
/// connection would deliver it.
pub(crate) fn malformed() -> Bytes {
    let mut m = event(
        "contentBlockDelta",
        &json!({"contentBlockIndex": 0, "delta": {"text": " x"}}),
    );
    let last = m.len() - 1;
    m[last] ^= 0xff;
    Bytes::from(m)
}

/// An error body as the API writes one.
pub(crate) fn error_body(message: &str) -> String {
    json!({"message": message}).to_string()
}

/// The exception type AWS names an error status by (`x-amzn-ErrorType`).
pub(crate) fn error_type(status: hyper::StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], stream: bool, block: usize) -> Result<Asked, Refusal> {
        super::parse(body, stream, block, &MediaConfig::default())
    }

    #[test]
    fn routes_and_requests_are_read_as_the_api_reads_them() {
        assert_eq!(route("/model/anthropic.claude-v2%3A1/converse-stream"), Some(true));
        assert_eq!(route("/model/m/converse"), Some(false));
        assert_eq!(route("/model//converse"), None);
        assert_eq!(route("/model/m/invoke"), None);
        let asked = parse(
            br#"{"system": [{"text": "be brief"}], "inferenceConfig": {"maxTokens": 7},
                 "messages": [{"role": "user", "content": [{"text": "one two"}, {"image": {"format": "png"}}]}]}"#,
            true,
            16,
        )
        .unwrap();
        assert_eq!(asked.max_tokens, Some(7));
        assert_eq!(asked.shape.tokens, 4);
        assert!(parse(br#"{"messages": []}"#, true, 16).is_err());
        assert_eq!(
            sagemaker_route("/endpoints/llama/invocations-response-stream"),
            Some(true)
        );
        assert_eq!(sagemaker_route("/endpoints/llama/invocations"), Some(false));
        assert_eq!(sagemaker_route("/endpoints//invocations"), None);
    }

    #[test]
    fn messages_carry_their_crcs() {
        let m = event("messageStart", &json!({"role": "assistant"}));
        let total = u32::from_be_bytes([m[0], m[1], m[2], m[3]]) as usize;
        assert_eq!(total, m.len());
        assert_eq!(crc32fast::hash(&m[..8]).to_be_bytes(), m[8..12]);
        assert_eq!(crc32fast::hash(&m[..total - 4]).to_be_bytes(), m[total - 4..]);
        let bad = malformed();
        assert_ne!(
            crc32fast::hash(&bad[..bad.len() - 4]).to_be_bytes(),
            bad[bad.len() - 4..]
        );
    }
}
