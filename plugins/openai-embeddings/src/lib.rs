//! Barrage codec for OpenAI-compatible `/v1/embeddings` (vLLM, TEI,
//! SGLang, hosted APIs): a batch of inputs in, a vector per input out.
//!
//! A response reports `embeddings` (how many vectors, how long) and the
//! server's prompt-token usage; its vectors are counted, never kept: an
//! embeddings benchmark measures latency, items per second and input
//! tokens per second.

use std::fmt;

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The codec's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Request path, for servers that mount the API elsewhere (default `/v1/embeddings`).
    pub path: Option<String>,
    /// `float` (default) or `base64`, as the API's `encoding_format`.
    pub encoding_format: Option<String>,
    /// Ask for vectors of this length (models that can shorten them).
    pub dimensions: Option<u32>,
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
        if let Some(f) = settings.encoding_format.as_deref()
            && f != "float"
            && f != "base64"
        {
            return Err(ConfigError {
                field: Some("encoding_format".into()),
                message: format!("`{f}` is not an encoding; use `float` or `base64`"),
            });
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

/// Build the request for `spec`.
pub fn encode(settings: &Settings, spec: RequestSpec) -> Result<EncodedRequest, String> {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(spec.model));
    let input = match spec.prompt {
        Prompt::Inputs(inputs) => Value::from(inputs),
        Prompt::Text(text) => Value::String(text),
        Prompt::TokenIds(ids) => Value::from(ids),
        Prompt::Messages(_) => {
            return Err(
                "openai-embeddings embeds text: give it inputs (the synthetic dataset's `format: inputs`, \
                        or `inputs` in jsonl), not a chat"
                    .into(),
            );
        }
        Prompt::Rerank(_) => return Err("a rerank query needs the rerank codec".into()),
    };
    body.insert("input".into(), input);
    if let Some(f) = &settings.encoding_format {
        body.insert("encoding_format".into(), f.clone().into());
    }
    if let Some(d) = settings.dimensions {
        body.insert("dimensions".into(), d.into());
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
            path: settings.path.clone().unwrap_or_else(|| "/v1/embeddings".into()),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: false,
        framing: Framing::Raw,
        output: OutputKind::Embeddings,
        prompt_tokens: None,
    })
}

/// A vector's length, read without keeping it: the elements of a JSON
/// array, or the four-byte floats of a base64 string.
struct Length(u32);

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Length, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = Length;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of numbers or a base64 string")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Length, A::Error> {
                let mut n = 0u32;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Length(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Length, E> {
                let pad = s.bytes().rev().take_while(|&b| b == b'=').count();
                Ok(Length(((s.len() / 4 * 3).saturating_sub(pad) / 4) as u32))
            }
        }
        d.deserialize_any(Count)
    }
}

#[derive(Deserialize)]
struct Item {
    embedding: Length,
}

#[derive(Deserialize, Default)]
struct EmbedUsage {
    prompt_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<Value>,
}

#[derive(Deserialize)]
struct Response {
    data: Option<Vec<Item>>,
    usage: Option<EmbedUsage>,
    error: Option<Value>,
}

/// Decode a response body.
pub fn decode(head: &ResponseHead, body: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    match serde_json::from_slice::<Response>(body) {
        Ok(r) => {
            if let Some(e) = r.error {
                events.push(server_error(e));
            } else if let Some(data) = r.data {
                let dimensions = data.first().map_or(0, |i| i.embedding.0);
                events.push(Event::Embeddings(Embeddings {
                    count: data.len() as u32,
                    dimensions,
                }));
                if let Some(n) = r.usage.and_then(|u| u.prompt_tokens) {
                    events.push(Event::Usage(Usage {
                        prompt_tokens: Some(n),
                        completion_tokens: None,
                        cached_tokens: None,
                        reasoning_tokens: None,
                    }));
                }
            } else if is_success(head.status) {
                events.push(Event::Malformed(format!(
                    "a response without `data`: {}",
                    snippet(body)
                )));
            }
        }
        Err(e) if is_success(head.status) => {
            events.push(Event::Malformed(format!(
                "not an embeddings response ({e}): {}",
                snippet(body)
            )));
        }
        Err(_) => {}
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// An `error` member: OpenAI's object, or a plain message (TEI's).
fn server_error(e: Value) -> Event {
    let (code, message) = match serde_json::from_value::<ErrorBody>(e.clone()) {
        Ok(b) => (
            b.code
                .map(|c| c.as_str().map_or(c.to_string(), str::to_string))
                .or(b.kind),
            b.message.unwrap_or_else(|| e.to_string()),
        ),
        Err(_) => (None, e.as_str().map_or(e.to_string(), str::to_string)),
    };
    Event::ServerError(ServerError { code, message })
}

/// The `openai-embeddings` codec.
pub struct OpenAiEmbeddings;

impl Codec for OpenAiEmbeddings {
    type Decoder = Unstreamed;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "openai-embeddings".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "OpenAI-compatible /v1/embeddings: a batch of inputs, a vector each".into(),
            secrets: vec![barrage_sdk::SecretNeed::optional(
                API_KEY,
                "an API key, sent as `Authorization: Bearer`",
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

barrage_sdk::export_codec!(OpenAiEmbeddings);

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> ResponseHead {
        ResponseHead {
            status: 200,
            headers: vec![],
        }
    }

    fn spec(prompt: Prompt) -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "e5".into(),
            prompt,
            generation: Generation {
                max_tokens: Some(16),
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream: true,
                include_usage: true,
            },
            extra: Some(r#"{"truncate_prompt_tokens": 512}"#.into()),
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        }
    }

    #[test]
    fn a_batch_of_inputs_is_one_request_that_is_not_streamed() {
        let settings = Settings {
            dimensions: Some(256),
            ..Settings::default()
        };
        let r = encode(&settings, spec(Prompt::Inputs(vec!["a b".into(), "c".into()]))).unwrap();
        assert!(!r.streaming);
        assert_eq!(r.output, OutputKind::Embeddings);
        let WireRequest::Http(h) = r.request else { panic!() };
        assert_eq!(h.path, "/v1/embeddings");
        let body: Value = serde_json::from_slice(&h.body).unwrap();
        assert_eq!(body["input"], serde_json::json!(["a b", "c"]));
        assert_eq!(body["dimensions"], 256);
        assert_eq!(body["truncate_prompt_tokens"], 512, "extra fields are merged");
        assert!(body.get("max_tokens").is_none(), "{body}");
        assert!(encode(&settings, spec(Prompt::Messages(vec![Message::text("user", "x")]))).is_err());
    }

    #[test]
    fn vectors_are_counted_as_numbers_or_base64_and_usage_kept() {
        let floats = br#"{"object":"list","data":[{"index":0,"embedding":[0.1,-0.2,0.3]},{"index":1,"embedding":[1,2,3]}],"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        let events = decode(&ok(), floats);
        assert!(
            matches!(
                events[0],
                Event::Embeddings(Embeddings {
                    count: 2,
                    dimensions: 3
                })
            ),
            "{events:?}"
        );
        assert!(
            matches!(
                events[1],
                Event::Usage(Usage {
                    prompt_tokens: Some(7),
                    ..
                })
            ),
            "{events:?}"
        );
        // Five f32s: 20 bytes, 28 base64 characters with one `=`.
        let b64 = br#"{"data":[{"embedding":"AAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}"#;
        assert!(matches!(
            decode(&ok(), b64)[0],
            Event::Embeddings(Embeddings {
                count: 1,
                dimensions: 5
            })
        ));
    }

    #[test]
    fn errors_are_the_servers_and_junk_is_malformed() {
        let e = decode(
            &ResponseHead {
                status: 400,
                headers: vec![],
            },
            br#"{"error":{"message":"input too long","type":"invalid_request_error","code":null}}"#,
        );
        assert!(
            matches!(&e[0], Event::ServerError(s) if s.message == "input too long"),
            "{e:?}"
        );
        assert!(matches!(&decode(&ok(), b"<html>")[0], Event::Malformed(_)));
        let unavailable = decode(
            &ResponseHead {
                status: 503,
                headers: vec![],
            },
            b"busy",
        );
        assert!(
            matches!(&unavailable[0], Event::ServerError(s) if s.message == "HTTP 503: busy"),
            "{unavailable:?}"
        );
    }
}
