//! Barrage codec for reranking: a query and documents in, a relevance
//! score per document out. Two shapes of `/rerank` cover the servers:
//!
//! - `cohere` (default): `{"query", "documents"}` in, `{"results": [{"index",
//!   "relevance_score"}], "usage"}` out: vLLM (`/rerank`, `/v1/rerank`,
//!   `/v2/rerank`) and Cohere (`/v2/rerank`);
//! - `tei`: `{"query", "texts"}` in, `[{"index", "score"}]` out: Text
//!   Embeddings Inference.
//!
//! A response reports `ranking` (how many documents were scored) and the
//! server's token count; the scores are counted, never kept.

use barrage_sdk::prelude::*;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

/// Which `/rerank` the server speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// vLLM's and Cohere's.
    #[default]
    Cohere,
    /// Text Embeddings Inference's.
    Tei,
}

/// The codec's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The request and response shape.
    #[serde(default)]
    pub api: Api,
    /// Request path (default `/rerank`; Cohere's is `/v2/rerank`).
    pub path: Option<String>,
    /// Most results to ask for (`top_n`); all when none.
    pub top_n: Option<u32>,
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
    let Prompt::Rerank(r) = spec.prompt else {
        return Err(
            "rerank takes a query and documents: the synthetic dataset's `format: rerank`, or `query` and \
                    `documents` in jsonl"
                .into(),
        );
    };
    let mut body = Map::new();
    body.insert("model".into(), Value::String(spec.model));
    body.insert("query".into(), Value::String(r.query));
    let documents = match settings.api {
        Api::Cohere => "documents",
        Api::Tei => "texts",
    };
    body.insert(documents.into(), Value::from(r.documents));
    if let Some(n) = settings.top_n {
        body.insert("top_n".into(), n.into());
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
            path: settings.path.clone().unwrap_or_else(|| "/rerank".into()),
            headers,
            body: serde_json::to_vec(&Value::Object(body)).map_err(|e| e.to_string())?,
        }),
        streaming: false,
        framing: Framing::Raw,
        output: OutputKind::Ranking,
        prompt_tokens: None,
    })
}

#[derive(Deserialize, Default)]
struct RerankUsage {
    total_tokens: Option<u32>,
    prompt_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct CohereResponse {
    results: Option<Vec<IgnoredAny>>,
    usage: Option<RerankUsage>,
    error: Option<Value>,
    /// Cohere's and TEI's error bodies: `{"message": …}`, `{"error": "…"}`.
    message: Option<String>,
}

/// Decode a response body.
pub fn decode(api: Api, head: &ResponseHead, body: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let ranked = |n: usize| Event::Ranking(Ranking { count: n as u32 });
    match (api, serde_json::from_slice::<Value>(body)) {
        (Api::Tei, Ok(Value::Array(items))) => events.push(ranked(items.len())),
        (_, Ok(value @ Value::Object(_))) => match serde_json::from_value::<CohereResponse>(value) {
            Ok(r) if r.error.is_some() || r.message.is_some() => {
                let message = match r.error {
                    Some(Value::Object(o)) => o.get("message").and_then(Value::as_str).map(str::to_string),
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                events.push(Event::ServerError(ServerError {
                    code: None,
                    message: message.or(r.message).unwrap_or_else(|| snippet(body)),
                }));
            }
            Ok(CohereResponse {
                results: Some(results),
                usage,
                ..
            }) if api == Api::Cohere => {
                events.push(ranked(results.len()));
                if let Some(n) = usage.and_then(|u| u.prompt_tokens.or(u.total_tokens)) {
                    events.push(Event::Usage(Usage {
                        prompt_tokens: Some(n),
                        completion_tokens: None,
                        cached_tokens: None,
                        reasoning_tokens: None,
                    }));
                }
            }
            _ if is_success(head.status) => {
                events.push(Event::Malformed(format!("not a rerank response: {}", snippet(body))));
            }
            _ => {}
        },
        _ if is_success(head.status) => {
            events.push(Event::Malformed(format!("not a rerank response: {}", snippet(body))));
        }
        _ => {}
    }
    ensure_http_error(head.status, body, &mut events);
    events
}

/// The `rerank` codec.
pub struct Rerank;

impl Codec for Rerank {
    type Decoder = Unstreamed;

    fn info() -> PluginInfo {
        PluginInfo {
            name: "rerank".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "/rerank of vLLM, Cohere (api: cohere) and Text Embeddings Inference (api: tei)".into(),
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
        Ok(decode(Settings::current().api, &head, &body))
    }
}

barrage_sdk::export_codec!(Rerank);

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> ResponseHead {
        ResponseHead {
            status,
            headers: vec![],
        }
    }

    fn spec(prompt: Prompt) -> RequestSpec {
        RequestSpec {
            id: 1,
            model: "bge-reranker".into(),
            prompt,
            generation: Generation {
                max_tokens: None,
                min_tokens: None,
                ignore_eos: false,
                temperature: None,
                stream: false,
                include_usage: false,
            },
            extra: None,
            tools: Vec::new(),
            send_time: barrage_sdk::Datetime {
                seconds: 0,
                nanoseconds: 0,
            },
        }
    }

    fn query() -> Prompt {
        Prompt::Rerank(barrage_sdk::RerankQuery {
            query: "what is a token".into(),
            documents: vec!["a unit of text".into(), "a coin".into()],
        })
    }

    #[test]
    fn a_query_and_its_documents_are_sent_in_either_shape() {
        for (api, field) in [(Api::Cohere, "documents"), (Api::Tei, "texts")] {
            let settings = Settings {
                api,
                top_n: Some(1),
                ..Settings::default()
            };
            let r = encode(&settings, spec(query())).unwrap();
            assert_eq!(r.output, OutputKind::Ranking);
            assert!(!r.streaming);
            let WireRequest::Http(h) = r.request else { panic!() };
            assert_eq!(h.path, "/rerank");
            let body: Value = serde_json::from_slice(&h.body).unwrap();
            assert_eq!(body["query"], "what is a token");
            assert_eq!(body[field], serde_json::json!(["a unit of text", "a coin"]));
            assert_eq!(body["top_n"], 1);
        }
        assert!(encode(&Settings::default(), spec(Prompt::Text("q".into()))).is_err());
    }

    #[test]
    fn scores_are_counted_in_either_shape_and_errors_are_the_servers() {
        let cohere = br#"{"id":"x","results":[{"index":1,"relevance_score":0.9},{"index":0,"relevance_score":0.1}],"usage":{"total_tokens":12}}"#;
        let e = decode(Api::Cohere, &head(200), cohere);
        assert!(matches!(e[0], Event::Ranking(Ranking { count: 2 })), "{e:?}");
        assert!(
            matches!(
                e[1],
                Event::Usage(Usage {
                    prompt_tokens: Some(12),
                    ..
                })
            ),
            "{e:?}"
        );
        let tei = br#"[{"index":0,"score":0.99},{"index":1,"score":0.01},{"index":2,"score":0.5}]"#;
        assert!(matches!(
            decode(Api::Tei, &head(200), tei)[0],
            Event::Ranking(Ranking { count: 3 })
        ));
        let bad = decode(
            Api::Tei,
            &head(413),
            br#"{"error":"batch too large","error_type":"Validation"}"#,
        );
        assert!(
            matches!(&bad[0], Event::ServerError(s) if s.message == "batch too large"),
            "{bad:?}"
        );
        assert!(matches!(
            &decode(Api::Cohere, &head(200), b"[1]")[0],
            Event::Malformed(_)
        ));
        assert!(matches!(
            &decode(Api::Tei, &head(200), br#"{"results":[]}"#)[0],
            Event::Malformed(_)
        ));
    }
}
