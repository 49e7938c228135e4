//! Anthropic's Messages API (`POST /v1/messages`): the request it takes and
//! the stream it answers with, from the simulator's one token timeline.
//! The stream opens with `message_start` (the prompt's usage) and a text
//! `content_block_start`, carries each piece as a `content_block_delta`,
//! closes the block and says why it stopped in `message_delta` (with the
//! output's usage), and ends with `message_stop`, the end marker a fault
//! can leave out.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::media::MediaConfig;
use crate::protocol::{Asked, Extras, Protocol, Refusal, Reply};
use crate::text::PromptShape;

#[derive(Deserialize)]
struct Message {
    content: Value,
}

#[derive(Deserialize)]
struct Request {
    messages: Option<Vec<Message>>,
    max_tokens: Option<u32>,
    #[serde(default)]
    system: Value,
    #[serde(default)]
    stream: bool,
}

/// The text of a content value: a string, or the text of its `text` blocks
/// (images and other blocks have no words).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Read a Messages request, refusing what the API refuses: no `messages`,
/// no `max_tokens` (which the API requires).
pub(crate) fn parse(body: &[u8], block: usize, media: &MediaConfig) -> Result<Asked, Refusal> {
    let bad = |m: String| (hyper::StatusCode::BAD_REQUEST, m);
    let r: Request = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let messages = r.messages.ok_or_else(|| bad("messages: Field required".into()))?;
    let max_tokens = r.max_tokens.ok_or_else(|| bad("max_tokens: Field required".into()))?;
    let texts: Vec<String> = std::iter::once(text_of(&r.system))
        .chain(messages.iter().map(|m| text_of(&m.content)))
        .collect();
    let mut shape = PromptShape::from_words(texts.iter().flat_map(|t| t.split_whitespace()), block);
    shape.tokens += media.tokens_in_body(body);
    Ok(Asked {
        protocol: Protocol::Anthropic,
        shape,
        max_tokens: Some(max_tokens),
        min_tokens: 0,
        ignore_eos: false,
        stream: r.stream,
        extras: Extras::default(),
    })
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Anthropic's name for why the output ended.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        _ => "end_turn",
    }
}

impl Reply {
    /// `message_start` and the text block's `content_block_start`.
    pub(crate) fn anthropic_start(&self) -> Bytes {
        let start = json!({"type": "message_start", "message": {
            "id": format!("msg_{}", self.id), "type": "message", "role": "assistant", "model": "sim",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": self.prompt_tokens, "output_tokens": 1},
        }});
        let block = json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}});
        Bytes::from(event("message_start", &start) + &event("content_block_start", &block))
    }

    /// A piece as a `content_block_delta`; the last also closes the block
    /// and says why the output stopped (unless a fault leaves that out).
    pub(crate) fn anthropic_chunk(&self, text: &str, finish: Option<&str>, last: bool) -> Bytes {
        let delta = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}});
        let mut out = event("content_block_delta", &delta);
        if last {
            out += &event("content_block_stop", &json!({"type": "content_block_stop", "index": 0}));
            let stop = finish.map(stop_reason);
            out += &event(
                "message_delta",
                &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                        "usage": {"output_tokens": self.output_tokens}}),
            );
        }
        Bytes::from(out)
    }

    /// A whole non-streamed message.
    pub(crate) fn anthropic_unary(&self, text: String, finish: &str) -> Value {
        json!({
            "id": format!("msg_{}", self.id), "type": "message", "role": "assistant", "model": "sim",
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop_reason(finish), "stop_sequence": null,
            "usage": {"input_tokens": self.prompt_tokens, "output_tokens": self.output_tokens},
        })
    }
}

/// `message_stop`, the end of a stream.
pub(crate) const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// A delta whose JSON is cut short.
pub(crate) const MALFORMED: &[u8] =
    b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"text\n\n";

/// An error body as the API writes one, its type named by the status.
pub(crate) fn error_body(status: hyper::StatusCode, message: &str) -> String {
    let kind = match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], block: usize) -> Result<Asked, Refusal> {
        super::parse(body, block, &MediaConfig::default())
    }

    #[test]
    fn a_request_is_read_as_the_api_reads_it() {
        let asked = parse(
            br#"{"model": "m", "max_tokens": 9, "system": "be brief", "stream": true,
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "one two"},
                                                           {"type": "image", "source": {"type": "url", "url": "u"}}]}]}"#,
            16,
        )
        .unwrap();
        assert_eq!(asked.max_tokens, Some(9));
        assert!(asked.stream);
        assert_eq!(
            asked.shape.tokens,
            4 + 576,
            "the system prompt's words, the text block's, an image at a URL"
        );
        assert!(parse(br#"{"messages": []}"#, 16).unwrap_err().1.contains("max_tokens"));
        assert!(parse(br#"{"max_tokens": 1}"#, 16).unwrap_err().1.contains("messages"));
    }
}
