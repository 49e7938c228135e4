//! OpenAI's Responses API (`POST /v1/responses`): the request it takes and
//! the events it streams, from the simulator's one token timeline.
//!
//! A stream opens with `response.created` and the output item's and text
//! part's `…added` events, carries each piece as `response.output_text.delta`,
//! closes the part and item with the last piece, and ends with
//! `response.completed` (or `response.incomplete` when the output reached
//! `max_output_tokens`), which holds the usage and is the end a fault can
//! leave out. Every event has a `sequence_number`, rising (a delta's is
//! numbered by its first token, so with `stream_interval` above 1 they
//! skip).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::media::MediaConfig;
use crate::protocol::{Asked, Extras, Piece, Protocol, Refusal, Reply};
use crate::text::PromptShape;

#[derive(Deserialize)]
struct Request {
    input: Option<Value>,
    #[serde(default)]
    instructions: Option<String>,
    max_output_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
}

/// The words of an `input`: a string, or items whose content is a string
/// or parts (`input_text` has words; images have none).
fn texts(input: &Value, out: &mut Vec<String>) {
    match input {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => {
            for item in items {
                match item.get("content") {
                    Some(content) => texts(content, out),
                    None => {
                        if let Some(t) = item.get("text").and_then(Value::as_str) {
                            out.push(t.to_string());
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// Read a Responses request, refusing what the API refuses.
pub(crate) fn parse(body: &[u8], block: usize, media: &MediaConfig) -> Result<Asked, Refusal> {
    let bad = |m: String| (hyper::StatusCode::BAD_REQUEST, m);
    let r: Request = serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
    let input = r
        .input
        .ok_or_else(|| bad("Missing required parameter: 'input'.".into()))?;
    let mut words = Vec::new();
    words.extend(r.instructions);
    texts(&input, &mut words);
    let mut shape = PromptShape::from_words(words.iter().flat_map(|t| t.split_whitespace()), block);
    shape.tokens += media.tokens_in_body(body);
    Ok(Asked {
        protocol: Protocol::Responses,
        shape,
        max_tokens: r.max_output_tokens,
        min_tokens: 0,
        ignore_eos: false,
        stream: r.stream,
        extras: Extras::default(),
    })
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Events before the first delta.
const OPENING_EVENTS: u32 = 3;

impl Reply {
    fn response_object(&self, status: &str, text: Option<&str>, finish: Option<&str>) -> Value {
        let mut r = json!({
            "id": format!("resp_{}", self.id), "object": "response", "created_at": 0, "model": "sim",
            "status": status, "output": [],
        });
        if let Some(text) = text {
            r["output"] = json!([{"id": format!("msg_{}", self.id), "type": "message", "status": "completed",
                "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}]);
            r["usage"] = json!({
                "input_tokens": self.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.prompt_tokens + self.output_tokens,
            });
        }
        if finish == Some("length") {
            r["status"] = "incomplete".into();
            r["incomplete_details"] = json!({"reason": "max_output_tokens"});
        }
        r
    }

    /// `response.created` and the output item's and part's `…added`.
    pub(crate) fn responses_start(&self) -> Bytes {
        let item = json!({"id": format!("msg_{}", self.id), "type": "message", "status": "in_progress",
                          "role": "assistant", "content": []});
        let part = json!({"type": "output_text", "text": "", "annotations": []});
        Bytes::from(
            event(
                "response.created",
                &json!({"type": "response.created", "sequence_number": 0,
                        "response": self.response_object("in_progress", None, None)}),
            ) + &event(
                "response.output_item.added",
                &json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item}),
            ) + &event(
                "response.content_part.added",
                &json!({"type": "response.content_part.added", "sequence_number": 2,
                        "item_id": format!("msg_{}", self.id), "output_index": 0, "content_index": 0, "part": part}),
            ),
        )
    }

    /// A piece as `response.output_text.delta`; the last piece also closes
    /// the part and the item and, unless a fault leaves the end out, ends
    /// the response (`completed`, or `incomplete` at the length limit).
    pub(crate) fn responses_chunk(&self, piece: &Piece<'_>) -> Bytes {
        let (text, finish, end) = (piece.text, piece.finish, piece.end);
        let item_id = format!("msg_{}", self.id);
        let seq = OPENING_EVENTS + piece.from;
        let mut out = event(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta", "sequence_number": seq, "item_id": item_id,
                    "output_index": 0, "content_index": 0, "delta": text}),
        );
        if piece.to == self.output_tokens {
            let all = self.words(0..self.output_tokens);
            out += &event(
                "response.output_text.done",
                &json!({"type": "response.output_text.done", "sequence_number": seq + 1, "item_id": item_id,
                        "output_index": 0, "content_index": 0, "text": all}),
            );
            if end {
                let name = if finish == Some("length") {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                out += &event(
                    name,
                    &json!({"type": name, "sequence_number": seq + 2,
                            "response": self.response_object("completed", Some(&all), finish)}),
                );
            }
        }
        Bytes::from(out)
    }

    /// A whole non-streamed response.
    pub(crate) fn responses_unary(&self, text: String, finish: &str) -> Value {
        self.response_object("completed", Some(&text), Some(finish))
    }
}

/// A delta whose JSON is cut short.
pub(crate) const MALFORMED: &[u8] =
    b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], block: usize) -> Result<Asked, Refusal> {
        super::parse(body, block, &MediaConfig::default())
    }

    #[test]
    fn a_request_is_read_as_the_api_reads_it() {
        let asked = parse(
            br#"{"model": "m", "instructions": "be brief", "max_output_tokens": 9, "stream": true,
                 "input": [{"role": "user", "content": [{"type": "input_text", "text": "one two"},
                                                        {"type": "input_image", "image_url": "u"}]}]}"#,
            16,
        )
        .unwrap();
        assert_eq!(asked.max_tokens, Some(9));
        assert!(asked.stream);
        assert_eq!(asked.shape.tokens, 4 + 576, "words, and an image at a URL");
        assert_eq!(parse(br#"{"input": "a b c"}"#, 16).unwrap().shape.tokens, 3);
        assert!(parse(br#"{"model": "m"}"#, 16).unwrap_err().1.contains("input"));
    }
}
