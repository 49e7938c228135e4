//! Google's Gemini API and Vertex AI (`…/models/{model}:generateContent`
//! and `:streamGenerateContent`): the request they take and the chunks they
//! stream (`alt=sse`), from the simulator's one token timeline.
//!
//! Each chunk is a `GenerateContentResponse` holding the new text; every
//! chunk carries `usageMetadata` so far, and the last says why it stopped
//! (`finishReason`). No end marker follows: the finish reason is the end a
//! fault can leave out.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::media::MediaConfig;
use crate::protocol::{Asked, Extras, Protocol, Refusal, Reply};
use crate::text::PromptShape;

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    max_output_tokens: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    contents: Option<Vec<Content>>,
    system_instruction: Option<Content>,
    generation_config: Option<GenerationConfig>,
}

/// Whether `path` is a Gemini or Vertex generation path, and if so
/// whether it streams: `/v1beta/models/{m}:…`, `/v1/models/{m}:…`, or
/// `/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:…`.
pub(crate) fn route(path: &str) -> Option<bool> {
    let (resource, method) = path.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    let (_, model) = resource.rsplit_once("/models/")?;
    (!model.is_empty() && !model.contains('/')).then_some(stream)
}

/// Read a request, refusing what the API refuses.
pub(crate) fn parse(body: &[u8], stream: bool, block: usize, media: &MediaConfig) -> Result<Asked, Refusal> {
    let bad = |m: String| (hyper::StatusCode::BAD_REQUEST, m);
    let r: Request = serde_json::from_slice(body).map_err(|e| bad(format!("Invalid JSON payload received. {e}")))?;
    let contents = r
        .contents
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("* GenerateContentRequest.contents: contents is not specified".into()))?;
    let words = r
        .system_instruction
        .iter()
        .chain(&contents)
        .flat_map(|c| &c.parts)
        .filter_map(|p| p.text.as_deref())
        .flat_map(str::split_whitespace);
    let mut shape = PromptShape::from_words(words, block);
    shape.tokens += media.tokens_in_body(body);
    Ok(Asked {
        protocol: Protocol::Gemini,
        shape,
        max_tokens: r.generation_config.and_then(|g| g.max_output_tokens),
        min_tokens: 0,
        ignore_eos: false,
        stream,
        extras: Extras::default(),
    })
}

/// Gemini's name for why the output ended.
fn finish_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        _ => "STOP",
    }
}

impl Reply {
    fn gemini_response(&self, text: &str, done: u32, finish: Option<&str>) -> Value {
        let mut candidate = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
        if let Some(f) = finish {
            candidate["finishReason"] = finish_reason(f).into();
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": self.prompt_tokens, "candidatesTokenCount": done,
                              "totalTokenCount": self.prompt_tokens + done},
            "modelVersion": "sim",
            "responseId": format!("r{}", self.id),
        })
    }

    /// One streamed chunk.
    pub(crate) fn gemini_chunk(&self, text: &str, done: u32, finish: Option<&str>) -> Bytes {
        Bytes::from(format!("data: {}\r\n\r\n", self.gemini_response(text, done, finish)))
    }

    /// A whole response.
    pub(crate) fn gemini_unary(&self, text: String, finish: &str) -> Value {
        self.gemini_response(&text, self.output_tokens, Some(finish))
    }
}

/// A chunk whose JSON is cut short.
pub(crate) const MALFORMED: &[u8] = b"data: {\"candidates\": [{\"content\r\n\r\n";

/// An error body as Google's APIs write one.
pub(crate) fn error_body(status: hyper::StatusCode, message: &str) -> String {
    let name = match status.as_u16() {
        400 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": status.as_u16(), "message": message, "status": name}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8], stream: bool, block: usize) -> Result<Asked, Refusal> {
        super::parse(body, stream, block, &MediaConfig::default())
    }

    #[test]
    fn routes_and_requests_are_read_as_the_apis_read_them() {
        assert_eq!(
            route("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(true)
        );
        assert_eq!(
            route("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"),
            Some(false)
        );
        assert_eq!(route("/v1beta/models/:generateContent"), None);
        assert_eq!(route("/v1beta/models/m:embedContent"), None);
        let asked = parse(
            br#"{"systemInstruction": {"parts": [{"text": "be brief"}]},
                 "generationConfig": {"maxOutputTokens": 5},
                 "contents": [{"role": "user", "parts": [{"text": "one two"}, {"inlineData": {"mimeType": "image/png", "data": ""}}]}]}"#,
            true,
            16,
        )
        .unwrap();
        assert_eq!(asked.max_tokens, Some(5));
        assert_eq!(asked.shape.tokens, 4 + 576, "words, and an image it cannot measure");
        assert!(
            parse(br#"{"contents": []}"#, true, 16)
                .unwrap_err()
                .1
                .contains("contents")
        );
    }
}
