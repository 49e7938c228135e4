//! An example codec plugin: Ollama's `/api/generate`, which streams one JSON
//! object per line (NDJSON):
//!
//! ```text
//! {"model":"llama3","response":"The","done":false}
//! {"model":"llama3","response":" sky","done":false}
//! {"model":"llama3","response":"","done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2}
//! ```
//!
//! It shows the whole plugin surface: plugin info, a checked configuration,
//! encoding a request, decoding a stream frame by frame (the host cuts the
//! lines and timestamps them), decoding a non-streamed body, logging, and
//! unit tests that run natively with `cargo test`.

use barrage_sdk::prelude::*;
use serde::Deserialize;

/// The plugin's configuration table (`--codec-config` or the run config).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// How long Ollama keeps the model loaded after the request, e.g. "5m".
    keep_alive: Option<String>,
}

pub struct OllamaGenerate;

impl Codec for OllamaGenerate {
    type Decoder = Lines;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "ollama-generate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Ollama /api/generate, NDJSON streaming (SDK example)".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &serde_json::Value) -> Result<(), ConfigError> {
        serde_json::from_value::<Settings>(config.clone())
            .map(|_| ())
            .map_err(|e| ConfigError {
                field: None,
                message: e.to_string(),
            })
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        let settings: Settings = config::get()?;
        let prompt = match spec.prompt {
            Prompt::Text(text) => text,
            Prompt::Messages(_) | Prompt::TokenIds(_) | Prompt::Inputs(_) | Prompt::Rerank(_) => {
                return Err("ollama-generate takes a text prompt".into());
            }
        };
        let g = &spec.generation;
        let mut options = serde_json::Map::new();
        if let Some(n) = g.max_tokens {
            options.insert("num_predict".into(), n.into());
        }
        if let Some(t) = g.temperature {
            options.insert("temperature".into(), f64::from(t).into());
        }
        let mut body = serde_json::json!({
            "model": spec.model,
            "prompt": prompt,
            "stream": g.stream,
            "options": options,
        });
        if let Some(k) = settings.keep_alive {
            body["keep_alive"] = k.into();
        }
        if let Some(fields) = body.as_object_mut() {
            barrage_sdk::codec::merge_extra(fields, spec.extra.as_deref())?;
        }
        Ok(EncodedRequest {
            request: WireRequest::Http(HttpRequest {
                method: "POST".into(),
                path: "/api/generate".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
            }),
            streaming: g.stream,
            framing: Framing::Ndjson,
            output: OutputKind::Tokens,
            prompt_tokens: None,
        })
    }

    fn decoder(_head: ResponseHead, options: DecodeOptions) -> Lines {
        Lines {
            want_text: options.want_text,
        }
    }

    fn decode_unary(_head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        let mut events = Vec::new();
        decode_line(&body, options.want_text, &mut events);
        Ok(events)
    }
}

/// Decoding state of one stream: Ollama's lines are self-contained, so
/// there is nothing to carry between frames but the options.
pub struct Lines {
    want_text: bool,
}

impl Decoder for Lines {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let mut events = Vec::new();
            decode_line(frame.data, self.want_text, &mut events);
            out.extend(events.into_iter().map(|event| FrameEvent { frame: i as u32, event }));
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    response: String,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u32>,
    eval_count: Option<u32>,
    error: Option<String>,
}

fn decode_line(data: &[u8], want_text: bool, events: &mut Vec<Event>) {
    let line: Line = match serde_json::from_slice(data) {
        Ok(line) => line,
        Err(e) => {
            log::debug(&format!("skipping a line that is not JSON: {e}"));
            // Said without the parser's words, so the Python and JavaScript
            // ports (sdk/examples) report the same event.
            return events.push(Event::Malformed(format!("not an Ollama line: {}", snippet(data))));
        }
    };
    if let Some(message) = line.error {
        return events.push(Event::ServerError(ServerError { code: None, message }));
    }
    if !line.response.is_empty() {
        events.push(Event::Content(ContentDelta {
            bytes: line.response.len() as u32,
            // Ollama streams one token per line.
            tokens: Some(1),
            text: want_text.then_some(line.response),
        }));
    } else if !line.done {
        events.push(Event::EmptyDelta);
    }
    if line.done {
        events.push(Event::Finish(line.done_reason.unwrap_or_else(|| "stop".into())));
        events.push(Event::Usage(Usage {
            prompt_tokens: line.prompt_eval_count,
            completion_tokens: line.eval_count,
            cached_tokens: None,
            reasoning_tokens: None,
        }));
        events.push(Event::Done);
    }
}

barrage_sdk::export_codec!(OllamaGenerate);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{self, decode_stream, frame};

    #[test]
    fn decodes_a_stream() {
        let frames = vec![
            frame(r#"{"response":"The","done":false}"#),
            frame(r#"{"response":" sky","done":false}"#),
            frame(r#"{"response":"","done":true,"done_reason":"stop","prompt_eval_count":26,"eval_count":2}"#),
        ];
        let events = decode_stream::<OllamaGenerate>(frames, DecodeOptions { want_text: true }).unwrap();
        assert!(matches!(&events[0], Event::Content(d) if d.text.as_deref() == Some("The")));
        assert!(matches!(&events[2], Event::Finish(r) if r == "stop"));
        assert!(matches!(&events[3], Event::Usage(u) if u.completion_tokens == Some(2)));
        assert!(matches!(events[4], Event::Done));
    }

    #[test]
    fn encodes_with_the_configured_keep_alive_and_the_extra_fields() {
        testing::set_config(serde_json::json!({"keep_alive": "10m"}));
        let spec = RequestSpec {
            id: 1,
            model: "llama3".into(),
            prompt: Prompt::Text("Why is the sky blue?".into()),
            generation: Generation {
                max_tokens: Some(8),
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream: true,
                include_usage: false,
            },
            // Extra fields win over generated ones.
            extra: Some(r#"{"raw": true, "keep_alive": "1h"}"#.into()),
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        };
        let req = OllamaGenerate::encode(spec).unwrap();
        let WireRequest::Http(http) = req.request else {
            panic!("HTTP expected")
        };
        let body: serde_json::Value = serde_json::from_slice(&http.body).unwrap();
        assert_eq!(body["keep_alive"], "1h");
        assert_eq!(body["raw"], true);
        assert_eq!(body["options"]["num_predict"], 8);
        assert!(matches!(req.framing, Framing::Ndjson));
    }

    #[test]
    fn rejects_unknown_settings() {
        assert!(OllamaGenerate::check_config(&serde_json::json!({"keepalive": "1m"})).is_err());
    }
}
