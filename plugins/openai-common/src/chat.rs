//! Chat messages and tools as the OpenAI chat API writes them: a message of
//! one text part as a plain string (what every server accepts), anything
//! else as a list of typed parts.

use barrage_sdk::prelude::*;
use barrage_sdk::{Media, MediaSource, Tool};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// One message.
pub fn message(m: Message) -> Result<Value, String> {
    let content = match m.content.as_slice() {
        [ContentPart::Text(text)] => Value::String(text.clone()),
        // An assistant message that only calls tools has no content.
        [] => Value::Null,
        parts => Value::Array(parts.iter().map(part).collect::<Result<_, _>>()?),
    };
    let mut out = json!({"role": m.role, "content": content});
    if !m.tool_calls.is_empty() {
        out["tool_calls"] = m
            .tool_calls
            .into_iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = m.tool_call_id {
        out["tool_call_id"] = id.into();
    }
    Ok(out)
}

fn part(p: &ContentPart) -> Result<Value, String> {
    Ok(match p {
        ContentPart::Text(text) => json!({"type": "text", "text": text}),
        ContentPart::Image(m) => json!({"type": "image_url", "image_url": {"url": url(m)}}),
        // OpenAI takes audio inline only, with its format; vLLM and SGLang
        // also take a URL.
        ContentPart::Audio(m) => match &m.source {
            MediaSource::Inline(bytes) => json!({
                "type": "input_audio",
                "input_audio": {"data": STANDARD.encode(bytes), "format": audio_format(&m.media_type)?},
            }),
            MediaSource::Url(u) => json!({"type": "audio_url", "audio_url": {"url": u}}),
        },
    })
}

/// A URL for the part: its own, or its bytes as a data URL.
pub fn url(m: &Media) -> String {
    match &m.source {
        MediaSource::Inline(bytes) => format!("data:{};base64,{}", m.media_type, STANDARD.encode(bytes)),
        MediaSource::Url(u) => u.clone(),
    }
}

fn audio_format(media_type: &str) -> Result<&'static str, String> {
    match media_type {
        "audio/wav" | "audio/x-wav" | "audio/wave" => Ok("wav"),
        "audio/mpeg" | "audio/mp3" => Ok("mp3"),
        other => Err(format!(
            "the OpenAI chat API takes inline audio as wav or mp3, not {other}; convert it, or give it as a URL"
        )),
    }
}

/// The request's `tools`.
pub fn tools(tools: Vec<Tool>) -> Result<Value, String> {
    tools
        .into_iter()
        .map(|t| {
            let parameters = t.schema()?;
            let mut function = json!({"name": t.name, "parameters": parameters});
            if let Some(d) = t.description {
                function["description"] = d.into();
            }
            Ok(json!({"type": "function", "function": function}))
        })
        .collect()
}
