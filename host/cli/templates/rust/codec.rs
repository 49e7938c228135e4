//! {{name}}: a Barrage codec for OpenAI-style `/v1/completions`, streamed
//! as server-sent events. Change `encode` and `decode_chunk` to speak your
//! server.

use barrage_sdk::prelude::*;
use serde_json::{Value, json};

pub struct Plugin;

impl Codec for Plugin {
    type Decoder = Stream;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "OpenAI-style /v1/completions over SSE".into(),
            secrets: Vec::new(),
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        match config.as_object().and_then(|c| c.keys().next()) {
            Some(key) => Err(ConfigError {
                field: Some(key.clone()),
                message: format!("unknown field `{key}`: this codec takes no settings"),
            }),
            None => Ok(()),
        }
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        let prompt = match spec.prompt {
            Prompt::Text(text) => Value::from(text),
            Prompt::TokenIds(ids) => Value::from(ids),
            Prompt::Messages(_) => return Err("a completions codec takes a text prompt, not messages".into()),
            Prompt::Inputs(_) | Prompt::Rerank(_) => return Err(generation_only("{{name}}")),
        };
        let g = spec.generation;
        let mut body = json!({"model": spec.model, "prompt": prompt, "stream": g.stream});
        let fields = body.as_object_mut().expect("an object");
        if let Some(n) = g.max_tokens {
            fields.insert("max_tokens".into(), n.into());
        }
        if let Some(n) = g.min_tokens {
            fields.insert("min_tokens".into(), n.into());
        }
        if g.ignore_eos {
            fields.insert("ignore_eos".into(), true.into());
        }
        if let Some(t) = g.temperature {
            fields.insert("temperature".into(), f64::from(t).into());
        }
        if g.stream && g.include_usage {
            fields.insert("stream_options".into(), json!({"include_usage": true}));
        }
        merge_extra(fields, spec.extra.as_deref())?;
        Ok(EncodedRequest {
            request: WireRequest::Http(HttpRequest {
                method: "POST".into(),
                path: "/v1/completions".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                // Keys sorted, numbers shortest: the same bytes as the Python and JavaScript templates.
                body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
            }),
            streaming: g.stream,
            framing: Framing::Sse,
            output: OutputKind::Tokens,
            prompt_tokens: None,
        })
    }

    fn decoder(_head: ResponseHead, options: DecodeOptions) -> Stream {
        Stream {
            want_text: options.want_text,
        }
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, options: DecodeOptions) -> Result<Vec<Event>, String> {
        let mut events = Vec::new();
        match serde_json::from_slice::<Value>(&body) {
            Ok(chunk) if chunk.is_object() => decode_chunk(&chunk, options.want_text, &mut events),
            _ if !is_success(head.status) => events.push(http_error(head.status, &body)),
            _ => events.push(Event::Malformed(format!("not a JSON completion: {}", snippet(&body)))),
        }
        ensure_http_error(head.status, &body, &mut events);
        Ok(events)
    }
}

/// One response's decoding state: each chunk stands alone, so only the options.
pub struct Stream {
    want_text: bool,
}

impl Decoder for Stream {
    fn push(&mut self, frames: &[Frame<'_>]) -> Result<Vec<FrameEvent>, String> {
        let mut out = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let mut events = Vec::new();
            decode_frame(&frame.data, self.want_text, &mut events);
            out.extend(events.into_iter().map(|event| FrameEvent { frame: i as u32, event }));
        }
        Ok(out)
    }
}

fn decode_frame(data: &[u8], want_text: bool, events: &mut Vec<Event>) {
    let data = data.trim_ascii();
    if data.is_empty() {
        return events.push(Event::KeepAlive);
    }
    if data == b"[DONE]" {
        return events.push(Event::Done);
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(chunk) if chunk.is_object() => decode_chunk(&chunk, want_text, events),
        _ => events.push(Event::Malformed(format!("not a JSON chunk: {}", snippet(data)))),
    }
}

fn decode_chunk(chunk: &Value, want_text: bool, events: &mut Vec<Event>) {
    if let Some(error) = chunk.get("error").filter(|e| e.is_object()) {
        let code = match &error["code"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let message = error["message"].as_str().unwrap_or("").to_string();
        return events.push(Event::ServerError(ServerError { code, message }));
    }
    let choices = chunk["choices"].as_array().map(Vec::as_slice).unwrap_or_default();
    for choice in choices {
        let finish = choice["finish_reason"].as_str();
        match choice["text"].as_str().filter(|t| !t.is_empty()) {
            Some(text) => events.push(Event::Content(ContentDelta {
                bytes: text.len() as u32,
                tokens: None,
                text: want_text.then(|| text.to_string()),
            })),
            None if finish.is_none() => events.push(Event::EmptyDelta),
            None => {}
        }
        if let Some(reason) = finish {
            events.push(Event::Finish(reason.to_string()));
        }
    }
    let count = |v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    match chunk.get("usage").filter(|u| u.is_object()) {
        Some(usage) => events.push(Event::Usage(Usage {
            prompt_tokens: count(&usage["prompt_tokens"]),
            completion_tokens: count(&usage["completion_tokens"]),
            cached_tokens: None,
            reasoning_tokens: None,
        })),
        None if choices.is_empty() => events.push(Event::EmptyDelta),
        None => {}
    }
}

barrage_sdk::export_codec!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing::{decode_stream, sse_frames};

    const STREAM: &str = "data: {\"choices\":[{\"text\":\"Hello\",\"finish_reason\":null}]}\n\n\
                          data: {\"choices\":[{\"text\":\" world\",\"finish_reason\":\"length\"}]}\n\n\
                          data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n\
                          data: [DONE]\n\n";

    #[test]
    fn decodes_a_stream_however_it_is_batched() {
        let events = decode_stream::<Plugin>(sse_frames(STREAM), DecodeOptions { want_text: true }).unwrap();
        let shown: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
        assert_eq!(events.len(), 5, "{shown:?}");
        assert!(matches!(&events[0], Event::Content(d) if d.text.as_deref() == Some("Hello") && d.bytes == 5));
        assert!(matches!(&events[2], Event::Finish(r) if r == "length"));
        assert!(matches!(&events[3], Event::Usage(u) if u.completion_tokens == Some(2)));
        assert!(matches!(events[4], Event::Done));
    }

    #[test]
    fn a_chunk_that_is_not_json_is_malformed_and_an_error_is_the_servers() {
        let events = decode_stream::<Plugin>(
            sse_frames("data: {oops\n\ndata: {\"error\":{\"message\":\"overloaded\",\"code\":503}}\n\n"),
            DecodeOptions { want_text: false },
        )
        .unwrap();
        assert!(matches!(&events[0], Event::Malformed(m) if m == "not a JSON chunk: {oops"));
        assert!(matches!(&events[1], Event::ServerError(e) if e.message == "overloaded" && e.code.as_deref() == Some("503")));
    }

    #[test]
    fn encodes_the_generation_settings_and_the_extra_fields() {
        let spec = RequestSpec {
            id: 1,
            model: "m".into(),
            prompt: Prompt::Text("Say hi".into()),
            generation: Generation {
                max_tokens: Some(8),
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream: true,
                include_usage: true,
            },
            extra: Some(r#"{"top_k": 5}"#.into()),
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime { seconds: 0, nanoseconds: 0 },
        };
        let request = Plugin::encode(spec).unwrap();
        let WireRequest::Http(http) = request.request else { panic!("an HTTP request") };
        assert_eq!(
            String::from_utf8(http.body).unwrap(),
            r#"{"max_tokens":8,"model":"m","prompt":"Say hi","stream":true,"stream_options":{"include_usage":true},"top_k":5}"#
        );
    }
}
