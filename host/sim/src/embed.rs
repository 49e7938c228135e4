//! Encoder endpoints: embeddings (`POST /v1/embeddings`, OpenAI's shape,
//! which vLLM, TEI and SGLang serve too: a batch of inputs in, one vector
//! per input out) and reranking (`POST /rerank`, `/v1/rerank`, `/v2/rerank`:
//! a query and documents in, a score per document out, in vLLM's and
//! Cohere's shape or TEI's). Each answers after a time that grows with its
//! tokens. No batching across requests: an encoder's cost is its tokens,
//! and this model says so without pretending to know its scheduler.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use barrage_core::rng::Rng;

/// The embeddings endpoint's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingsConfig {
    /// Length of each vector.
    pub dimensions: u32,
    /// Time of a request whatever its size, ms.
    pub base_ms: f64,
    /// Time per input token, ms.
    pub per_token_ms: f64,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        EmbeddingsConfig {
            dimensions: 384,
            base_ms: 5.0,
            per_token_ms: 0.02,
        }
    }
}

impl EmbeddingsConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(1..=65_536).contains(&self.dimensions) {
            return Err(format!(
                "embeddings.dimensions must be from 1 to 65536, got {}",
                self.dimensions
            ));
        }
        for (name, v) in [("base_ms", self.base_ms), ("per_token_ms", self.per_token_ms)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("embeddings.{name} must be ≥ 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// The rerank endpoint's model: a cross-encoder reads the query with each
/// document, so its tokens are the query's once per document plus the
/// documents'.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RerankConfig {
    /// Time of a request whatever its size, ms.
    pub base_ms: f64,
    /// Time per token read, ms.
    pub per_token_ms: f64,
}

impl Default for RerankConfig {
    fn default() -> Self {
        RerankConfig {
            base_ms: 5.0,
            per_token_ms: 0.02,
        }
    }
}

impl RerankConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, v) in [("base_ms", self.base_ms), ("per_token_ms", self.per_token_ms)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!("rerank.{name} must be ≥ 0, got {v}"));
            }
        }
        Ok(())
    }
}

/// What a rerank request asks.
#[derive(Debug, PartialEq)]
pub(crate) struct RerankAsked {
    /// The query's tokens (words).
    pub query: u32,
    /// Each document's tokens.
    pub documents: Vec<u32>,
    /// TEI's shape (`texts` in, a bare list out) rather than vLLM's and Cohere's.
    pub tei: bool,
    /// Most results to return (`top_n`); all when none.
    pub top_n: Option<usize>,
}

impl RerankAsked {
    /// Tokens a cross-encoder reads: the query with every document.
    pub(crate) fn tokens(&self) -> u32 {
        self.documents.iter().map(|d| d + self.query).sum()
    }
}

/// Read a rerank body; a refusal is a message for a 400.
pub(crate) fn parse_rerank(body: &[u8]) -> Result<RerankAsked, String> {
    #[derive(Deserialize)]
    struct Request {
        query: Option<String>,
        documents: Option<Vec<Value>>,
        texts: Option<Vec<String>>,
        top_n: Option<usize>,
    }
    let r: Request = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let words = |s: &str| s.split_whitespace().count() as u32;
    let query = r.query.as_deref().map(words).ok_or("`query` is required")?;
    let (documents, tei) = match (r.documents, r.texts) {
        (Some(docs), None) => (
            docs.iter()
                .map(|d| match d {
                    Value::String(s) => Some(words(s)),
                    // Cohere's `{"text": …}` documents.
                    Value::Object(o) => o.get("text").and_then(Value::as_str).map(words),
                    _ => None,
                })
                .collect::<Option<Vec<u32>>>()
                .ok_or("every document must be a string or {\"text\": string}")?,
            false,
        ),
        (None, Some(texts)) => (texts.iter().map(|t| words(t)).collect(), true),
        (Some(_), Some(_)) => return Err("give `documents` or `texts`, not both".into()),
        (None, None) => return Err("`documents` (or TEI's `texts`) is required".into()),
    };
    if documents.is_empty() {
        return Err("no documents to rank".into());
    }
    Ok(RerankAsked {
        query,
        documents,
        tei,
        top_n: r.top_n,
    })
}

/// The rerank response: a score per document drawn from `rng`, highest
/// first, at most `top_n` of them.
pub(crate) fn rerank_body(asked: &RerankAsked, model: &str, rng: &mut Rng) -> String {
    let mut scored: Vec<(usize, f64)> = (0..asked.documents.len()).map(|i| (i, rng.f64())).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(asked.top_n.unwrap_or(scored.len()));
    if asked.tei {
        let items: Vec<Value> = scored
            .iter()
            .map(|(i, s)| serde_json::json!({"index": i, "score": s}))
            .collect();
        return Value::Array(items).to_string();
    }
    let results: Vec<Value> = scored
        .iter()
        .map(|(i, s)| serde_json::json!({"index": i, "relevance_score": s}))
        .collect();
    serde_json::json!({
        "id": "rerank-sim",
        "model": model,
        "results": results,
        "usage": {"total_tokens": asked.tokens()},
    })
    .to_string()
}

/// How long a rerank takes, ms.
pub(crate) fn rerank_latency_ms(asked: &RerankAsked, config: &RerankConfig) -> f64 {
    config.base_ms + config.per_token_ms * f64::from(asked.tokens())
}

/// What an embeddings request asks.
#[derive(Debug, PartialEq)]
pub(crate) struct EmbedAsked {
    /// Tokens of each input (words, or token ids).
    pub tokens: Vec<u32>,
    /// Vectors as base64 of little-endian f32s, not as numbers.
    pub base64: bool,
}

impl EmbedAsked {
    pub(crate) fn total_tokens(&self) -> u32 {
        self.tokens.iter().sum()
    }
}

/// Read a request body; a refusal is a message for a 400.
pub(crate) fn parse(body: &[u8]) -> Result<EmbedAsked, String> {
    #[derive(Deserialize)]
    struct Request {
        input: Option<Value>,
        #[serde(default)]
        encoding_format: Option<String>,
    }
    let r: Request = serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))?;
    let words = |s: &str| s.split_whitespace().count() as u32;
    let tokens = match r.input {
        Some(Value::String(s)) => vec![words(&s)],
        Some(Value::Array(items)) if !items.is_empty() => {
            let one = |v: &Value| match v {
                Value::String(s) => Some(words(s)),
                Value::Array(ids) if ids.iter().all(Value::is_u64) => Some(ids.len() as u32),
                _ => None,
            };
            if items.iter().all(Value::is_u64) {
                vec![items.len() as u32]
            } else {
                items.iter().map(one).collect::<Option<Vec<u32>>>().ok_or(
                    "`input` must be a string, a list of strings, a list of token ids or a list of lists of them",
                )?
            }
        }
        Some(Value::Array(_)) => return Err("`input` is empty".into()),
        Some(_) => return Err("`input` must be a string or a list".into()),
        None => return Err("`input` is required".into()),
    };
    let base64 = match r.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(format!("encoding_format must be float or base64, not {other}")),
    };
    Ok(EmbedAsked { tokens, base64 })
}

/// The response body: a vector per input drawn from `rng`, and the usage.
pub(crate) fn body(asked: &EmbedAsked, config: &EmbeddingsConfig, model: &str, rng: &mut Rng) -> String {
    use std::fmt::Write;
    let mut out = String::from(r#"{"object":"list","data":["#);
    for i in 0..asked.tokens.len() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, r#"{{"object":"embedding","index":{i},"embedding":"#);
        let values = (0..config.dimensions).map(|_| (rng.f64() * 2.0 - 1.0) as f32);
        if asked.base64 {
            use base64::Engine;
            let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
            let _ = write!(out, "\"{}\"", base64::engine::general_purpose::STANDARD.encode(bytes));
        } else {
            out.push('[');
            for (k, v) in values.enumerate() {
                if k > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{v:.6}");
            }
            out.push(']');
        }
        out.push('}');
    }
    let tokens = asked.total_tokens();
    let _ = write!(
        out,
        r#"],"model":{},"usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#,
        serde_json::Value::from(model)
    );
    out
}

/// How long the request takes, ms.
pub(crate) fn latency_ms(asked: &EmbedAsked, config: &EmbeddingsConfig) -> f64 {
    config.base_ms + config.per_token_ms * f64::from(asked.total_tokens())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_counted_in_every_shape_and_answered_a_vector_each() {
        let cases: &[(&str, Vec<u32>)] = &[
            (r#"{"input": "a b c"}"#, vec![3]),
            (r#"{"input": ["a b", "c"]}"#, vec![2, 1]),
            (r#"{"input": [1, 2, 3, 4]}"#, vec![4]),
            (r#"{"input": [[1, 2], [3]]}"#, vec![2, 1]),
        ];
        for (body, tokens) in cases {
            let asked = parse(body.as_bytes()).unwrap();
            assert_eq!(&asked.tokens, tokens, "{body}");
            let config = EmbeddingsConfig {
                dimensions: 8,
                ..EmbeddingsConfig::default()
            };
            let out: Value = serde_json::from_str(&body_of(&asked, &config)).unwrap();
            assert_eq!(out["data"].as_array().unwrap().len(), tokens.len());
            assert_eq!(out["data"][0]["embedding"].as_array().unwrap().len(), 8);
            assert_eq!(out["usage"]["prompt_tokens"], tokens.iter().sum::<u32>());
        }
        for bad in [
            r#"{"input": []}"#,
            r#"{"input": 3}"#,
            r#"{}"#,
            r#"{"input": "x", "encoding_format": "hex"}"#,
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    fn body_of(asked: &EmbedAsked, config: &EmbeddingsConfig) -> String {
        body(asked, config, "m", &mut Rng::new(1))
    }

    #[test]
    fn reranks_answer_in_the_shape_they_were_asked_in() {
        let cohere = parse_rerank(br#"{"query": "a b", "documents": ["x y z", {"text": "w"}], "top_n": 1}"#).unwrap();
        assert_eq!(
            (cohere.query, cohere.documents.clone(), cohere.tei),
            (2, vec![3, 1], false)
        );
        assert_eq!(cohere.tokens(), 8);
        let out: Value = serde_json::from_str(&rerank_body(&cohere, "m", &mut Rng::new(1))).unwrap();
        assert_eq!(out["results"].as_array().unwrap().len(), 1, "top_n");
        assert_eq!(out["usage"]["total_tokens"], 8);
        let tei = parse_rerank(br#"{"query": "a", "texts": ["x", "y", "z"]}"#).unwrap();
        let out: Value = serde_json::from_str(&rerank_body(&tei, "m", &mut Rng::new(1))).unwrap();
        let scores: Vec<f64> = out
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .collect();
        assert_eq!(scores.len(), 3);
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "highest first: {scores:?}");
        for bad in [
            r#"{"documents": ["x"]}"#,
            r#"{"query": "q"}"#,
            r#"{"query": "q", "documents": []}"#,
            r#"{"query": "q", "documents": [3]}"#,
        ] {
            assert!(parse_rerank(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_vectors_hold_four_bytes_a_dimension() {
        let asked = parse(br#"{"input": ["a"], "encoding_format": "base64"}"#).unwrap();
        let config = EmbeddingsConfig {
            dimensions: 5,
            ..EmbeddingsConfig::default()
        };
        let out: Value = serde_json::from_str(&body_of(&asked, &config)).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(out["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(bytes.len(), 20);
    }
}
