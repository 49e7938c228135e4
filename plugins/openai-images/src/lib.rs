//! Barrage codec for OpenAI-compatible image generation (`POST
//! /v1/images/generations`: OpenAI's DALL·E and gpt-image models, and the
//! diffusion servers that serve the same shape).
//!
//! A response reports `image` (how many, how many bytes once decoded; an
//! image returned as a URL counts with no bytes) and the prompt's tokens
//! when the server says them. Images are counted, never kept: an image
//! benchmark measures latency, images per second and bytes.

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The codec's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Request path (default `/v1/images/generations`).
    pub path: Option<String>,
    /// Images per request (`n`; default the server's, 1).
    pub n: Option<u32>,
    /// `WIDTHxHEIGHT` (`1024x1024`), or `auto`.
    pub size: Option<String>,
    /// `quality` (`low`, `medium`, `high`, `standard`, `hd`), as the model takes.
    pub quality: Option<String>,
    /// `b64_json` or `url` (DALL·E; gpt-image models always answer b64_json).
    pub response_format: Option<String>,
    /// Extra headers sent with every request.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The `api-key` secret, when granted.
    #[serde(skip)]
    pub api_key: Option<String>,
}

const API_KEY: &str = "api-key";

impl Settings {
    fn from_config(config: &Value) -> Result<Settings, ConfigError> {
        let settings: Settings = config::parse(config)?;
        let bad = |field: &str, message: String| ConfigError {
            field: Some(field.into()),
            message,
        };
        if let Some(n) = settings.n
            && !(1..=10).contains(&n)
        {
            return Err(bad("n", format!("{n} images a request: give 1 to 10")));
        }
        if let Some(size) = &settings.size {
            let ok = size == "auto"
                || size
                    .split_once('x')
                    .is_some_and(|(w, h)| w.parse::<u32>().is_ok() && h.parse::<u32>().is_ok());
            if !ok {
                return Err(bad(
                    "size",
                    format!("`{size}` is not a size: give WIDTHxHEIGHT (`1024x1024`) or `auto`"),
                ));
            }
        }
        if let Some(f) = settings.response_format.as_deref()
            && f != "b64_json"
            && f != "url"
        {
            return Err(bad(
                "response_format",
                format!("`{f}` is not a format: use `b64_json` or `url`"),
            ));
        }
        check_path("path", settings.path.as_deref())?;
        Ok(settings)
    }

    fn current() -> Settings {
        barrage_sdk::once_per_instance!(Settings, || Settings {
            api_key: secrets::get(API_KEY).ok(),
            ..Settings::from_config(&config::value()).unwrap_or_default()
        })
    }
}

/// Build the request for `spec`: its text is the prompt.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let prompt = match spec.prompt {
        Prompt::Text(text) => text,
        Prompt::Messages(ms) => ms.iter().map(Message::text_content).collect::<Vec<_>>().join("\n"),
        Prompt::TokenIds(_) => return Err("image generation takes a text prompt, not token ids".into()),
        Prompt::Inputs(_) | Prompt::Rerank(_) => {
            return Err("openai-images generates from a text prompt: give it text or a chat".into());
        }
    };
    let mut body = Map::new();
    body.insert("model".into(), Value::String(spec.model));
    body.insert("prompt".into(), Value::String(prompt));
    if let Some(n) = settings.n {
        body.insert("n".into(), n.into());
    }
    for (name, value) in [
        ("size", &settings.size),
        ("quality", &settings.quality),
        ("response_format", &settings.response_format),
    ] {
        if let Some(v) = value {
            body.insert(name.into(), v.clone().into());
        }
    }
    merge_extra(&mut body, spec.extra.as_deref())?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(key) = &settings.api_key {
        headers.push(("authorization".into(), format!("Bearer {key}")));
    }
    headers.extend(settings.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: settings.path.clone().unwrap_or_else(|| "/v1/images/generations".into()),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: false,
        framing: Framing::Raw,
        output: OutputKind::Images,
        prompt_tokens: None,
    })
}

#[derive(Deserialize)]
struct Image {
    b64_json: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
struct ApiUsage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct ApiError {
    message: Option<String>,
    code: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    data: Option<Vec<Image>>,
    usage: Option<ApiUsage>,
    error: Option<ApiError>,
}

/// Bytes a base64 string decodes to.
fn decoded_len(b64: &str) -> u64 {
    let pad = b64.bytes().rev().take_while(|&b| b == b'=').count();
    (b64.len() / 4 * 3).saturating_sub(pad) as u64
}

/// Decode a response body.
pub fn decode(head: &ResponseHead, body: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    match serde_json::from_slice::<Response>(body) {
        Ok(Response { error: Some(e), .. }) => {
            let code = match e.code {
                Some(Value::String(s)) => Some(s),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => e.kind,
            };
            events.push(Event::ServerError(ServerError {
                code,
                message: e.message.unwrap_or_else(|| "error".into()),
            }));
        }
        Ok(Response {
            data: Some(images),
            usage,
            ..
        }) => {
            let mut bytes = 0;
            for image in &images {
                match (&image.b64_json, &image.url) {
                    (Some(b64), _) => bytes += decoded_len(b64),
                    (None, Some(_)) => {}
                    (None, None) => {
                        events.push(Event::Malformed("an image with neither `b64_json` nor `url`".into()));
                        return events;
                    }
                }
            }
            events.push(Event::Image(MediaOutput {
                count: images.len() as u32,
                bytes,
            }));
            if let Some(u) = usage {
                events.push(Event::Usage(Usage {
                    prompt_tokens: u.input_tokens,
                    completion_tokens: u.output_tokens,
                    cached_tokens: None,
                    reasoning_tokens: None,
                }));
            }
        }
        _ if is_success(head.status) => {
            events.push(Event::Malformed(format!("not an images response: {}", snippet(body))));
        }
        _ => {}
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `openai-images` codec.
pub struct OpenAiImages;

impl Codec for OpenAiImages {
    type Decoder = Unstreamed;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "openai-images".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "OpenAI-compatible image generation (/v1/images/generations)".into(),
            secrets: vec![barrage_sdk::SecretNeed::optional(
                API_KEY,
                "an API key, sent as a bearer token",
            )],
        }
    }

    fn check_config(config: &Value) -> Result<(), ConfigError> {
        Settings::from_config(config).map(|_| ())
    }

    fn encode(spec: RequestSpec) -> Result<EncodedRequest, String> {
        encode(&Settings::current(), spec)
    }

    fn decoder(_head: ResponseHead, _options: DecodeOptions) -> Unstreamed {
        Unstreamed
    }

    fn decode_unary(head: ResponseHead, body: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Event>, String> {
        Ok(decode(&head, &body))
    }
}

barrage_sdk::export_codec!(OpenAiImages);

#[cfg(test)]
mod tests {
    use super::*;
    use barrage_sdk::testing;
    use serde_json::json;

    fn spec(prompt: Prompt) -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "gpt-image-1".into(),
            prompt,
            generation: Generation {
                max_tokens: None,
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream: false,
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

    #[test]
    fn a_prompt_becomes_a_generation_request_for_images() {
        testing::reset();
        testing::set_config(json!({"n": 2, "size": "512x512", "quality": "low"}));
        testing::set_secret(API_KEY, "sk-0123456789");
        let req = OpenAiImages::encode(spec(Prompt::Text("a red fox".into()))).unwrap();
        assert_eq!(req.output, OutputKind::Images);
        let WireRequest::Http(h) = &req.request else { panic!() };
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "gpt-image-1", "prompt": "a red fox", "n": 2, "size": "512x512", "quality": "low"})
        );
        assert!(
            h.headers
                .contains(&("authorization".into(), "Bearer sk-0123456789".into()))
        );
        assert!(OpenAiImages::encode(spec(Prompt::Inputs(vec!["x".into()]))).is_err());
        for (bad, field) in [
            (json!({"n": 0}), "n"),
            (json!({"size": "huge"}), "size"),
            (json!({"response_format": "png"}), "response_format"),
        ] {
            assert_eq!(Settings::from_config(&bad).unwrap_err().field.as_deref(), Some(field));
        }
    }

    #[test]
    fn images_are_counted_with_their_decoded_bytes() {
        let head = |status| ResponseHead {
            status,
            headers: vec![],
        };
        let body = json!({"created": 1, "data": [{"b64_json": "iVBORw0KGgo="}, {"b64_json": "AAAA"}],
                          "usage": {"input_tokens": 5, "output_tokens": 4160, "total_tokens": 4165}});
        let events = decode(&head(200), body.to_string().as_bytes());
        assert!(
            matches!(&events[0], Event::Image(m) if m.count == 2 && m.bytes == 8 + 3),
            "{events:?}"
        );
        assert!(matches!(&events[1], Event::Usage(u) if u.prompt_tokens == Some(5)));
        let urls = decode(&head(200), br#"{"data": [{"url": "https://x/1.png"}]}"#);
        assert!(matches!(&urls[0], Event::Image(m) if m.count == 1 && m.bytes == 0));
        let refused = decode(
            &head(400),
            br#"{"error": {"message": "Your request was rejected by the safety system.", "type": "image_generation_user_error", "code": "content_policy_violation"}}"#,
        );
        assert!(
            matches!(&refused[0], Event::ServerError(e) if e.code.as_deref() == Some("content_policy_violation")),
            "{refused:?}"
        );
        assert!(matches!(&decode(&head(200), b"{}")[0], Event::Malformed(_)));
        assert!(matches!(
            &decode(&head(200), br#"{"data": [{}]}"#)[0],
            Event::Malformed(_)
        ));
    }
}
