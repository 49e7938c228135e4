//! The server's figures from a Prometheus server instead of (or beside)
//! its own `/metrics`: the Kubernetes case, several replicas behind a
//! gateway, replicas counted through kube-state-metrics. Each configured
//! PromQL query is evaluated over the whole run with `query_range` once
//! the run is over, at `interval_s` steps; each step becomes a sample of
//! `server.jsonl`, so stages, spikes and rebuilds read them as they read
//! scraped ones.

use std::collections::BTreeMap;

use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{ServerLine, ServerSample};

/// What the queries are asked over: the run's wall-clock start and length.
pub struct Span {
    /// The run's start, Unix ms (`meta.json`'s `started_unix_ms`).
    pub start_unix_ms: u64,
    /// Seconds from the start to the last response.
    pub duration_s: f64,
    /// Seconds between points.
    pub step_s: f64,
}

/// Evaluate every query over `span` against `prometheus` (its base URL):
/// the samples, time-ordered, then one failed line per query that failed
/// (the server's own error: a PromQL parse error names the position).
pub async fn query_run(prometheus: &str, queries: &BTreeMap<String, String>, span: &Span) -> Vec<ServerLine> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let start = span.start_unix_ms as f64 / 1000.0;
    let end = start + span.duration_s;
    let mut by_time: BTreeMap<i64, ServerSample> = BTreeMap::new();
    let mut failed = Vec::new();
    for (name, query) in queries {
        let url = format!(
            "{}/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={}",
            prometheus.trim_end_matches('/'),
            encode(query),
            span.step_s
        );
        match range(&client, &url).await {
            Ok(points) => {
                for (t, value) in points {
                    let t_s = t - start;
                    // Steps are whole milliseconds apart: a key that merges queries.
                    let sample = by_time
                        .entry((t_s * 1000.0).round() as i64)
                        .or_insert_with(|| ServerSample {
                            t_s,
                            ..ServerSample::default()
                        });
                    set(sample, name, value);
                }
            }
            Err(error) => failed.push(ServerLine::Failed {
                t_s: span.duration_s,
                error: format!("server_metrics.queries.{name} `{query}`: {error}"),
            }),
        }
    }
    by_time
        .into_values()
        .map(|s| ServerLine::Sample(Box::new(s)))
        .chain(failed)
        .collect()
}

/// Put a query's value where its name says: `replicas`, `waiting`,
/// `running`, `kv_cache_usage` and `requests` fill the figures every server
/// has, any other name is kept under `queries`.
fn set(sample: &mut ServerSample, name: &str, value: f64) {
    let slot = match name {
        "replicas" => &mut sample.replicas,
        "waiting" => &mut sample.waiting,
        "running" => &mut sample.running,
        "kv_cache_usage" => &mut sample.kv_cache_usage,
        "requests" => &mut sample.requests,
        _ => {
            sample.queries.insert(name.to_string(), value);
            return;
        }
    };
    *slot = Some(value);
}

/// A range query's points, each series' values summed at each step.
async fn range(client: &super::HttpClient, url: &str) -> Result<Vec<(f64, f64)>, String> {
    // Prometheus answers an error with a status and a JSON body that says why.
    let (status, body) = tokio::time::timeout(std::time::Duration::from_secs(10), super::get(client, url, 64 << 20))
        .await
        .map_err(|_| "no answer within 10 s".to_string())??;
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
        let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        format!("HTTP {status}, not a Prometheus API answer: {text}")
    })?;
    if json["status"] != "success" {
        return Err(format!(
            "Prometheus said {}: {}",
            json["errorType"].as_str().unwrap_or("error"),
            json["error"].as_str().unwrap_or("(no message)")
        ));
    }
    let mut sums: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for series in json["data"]["result"].as_array().into_iter().flatten() {
        for point in series["values"].as_array().into_iter().flatten() {
            let t = point[0].as_f64().ok_or("a point without a time")?;
            let v: f64 = point[1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or("a point without a value")?;
            if v.is_finite() {
                let entry = sums.entry((t * 1000.0).round() as i64).or_insert((t, 0.0));
                entry.1 += v;
            }
        }
    }
    Ok(sums.into_values().collect())
}

/// `query` percent-encoded for a URL's query string.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
