//! The server's own view during a run: its Prometheus `/metrics`, fetched
//! every `interval_s`, reduced to the gauges that explain the client's
//! figures (replicas, requests waiting and running, KV-cache use), under
//! the names vLLM, SGLang, TGI and Barrage's simulator give them. Each
//! sample (or failed scrape) is a line of `server.jsonl` as it is taken, so
//! an interrupted run keeps them and `barrage report` rebuilds from them.
//! A scrape that fails is counted and the run goes on.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

/// The file the samples are in, in the run directory.
pub const SERVER_JSONL: &str = "server.jsonl";

/// `server_metrics:` in a run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerMetricsConfig {
    /// The exposition's URL; none: the target's `/metrics`.
    pub url: Option<String>,
    /// Seconds between scrapes.
    pub interval_s: f64,
}

impl Default for ServerMetricsConfig {
    fn default() -> Self {
        ServerMetricsConfig {
            url: None,
            interval_s: 1.0,
        }
    }
}

impl ServerMetricsConfig {
    /// What to scrape for a run against `target`: the configured URL, or
    /// the target's `/metrics`, which only an `http://` target has here.
    pub fn url_for(&self, target: &str) -> Result<String, String> {
        match &self.url {
            Some(u) => Ok(u.clone()),
            None if target.starts_with("http://") => Ok(format!("{}/metrics", target.trim_end_matches('/'))),
            None => Err("server_metrics: the target is not http://; give server_metrics.url".into()),
        }
    }
}

/// One scrape's gauges, each summed over its series (replicas, label sets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// When the answer came, seconds from the run's start.
    pub t_s: f64,
    /// Replicas serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<f64>,
    /// Requests waiting in the server's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    /// Requests running (in the batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<f64>,
    /// KV-cache use, 0–1 (the mean over series).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<f64>,
}

/// A line of `server.jsonl`: a sample, or why a scrape failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerLine {
    /// A scrape that failed.
    Failed {
        /// When, seconds from the run's start.
        t_s: f64,
        /// Why.
        error: String,
    },
    /// A scrape's gauges.
    Sample(ServerSample),
}

/// The samples of a run, as `summary.json` holds them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSeries {
    /// What was scraped.
    pub url: String,
    /// Scrapes that answered.
    pub scrapes: u64,
    /// Scrapes that failed (unreachable, an error status, not exposition format).
    pub errors: u64,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// Every sample, in time order.
    pub samples: Vec<ServerSample>,
}

impl ServerSeries {
    /// Take in one line.
    pub fn add(&mut self, line: ServerLine) {
        match line {
            ServerLine::Sample(s) => {
                self.scrapes += 1;
                self.samples.push(s);
            }
            ServerLine::Failed { error, .. } => {
                self.errors += 1;
                self.last_error = Some(error);
            }
        }
    }

    /// The series in a run directory's `server.jsonl`, if it has one; a
    /// line cut short by a hard stop is left out.
    pub fn read(dir: &Path, url: &str) -> Option<ServerSeries> {
        let text = std::fs::read_to_string(dir.join(SERVER_JSONL)).ok()?;
        let mut series = ServerSeries {
            url: url.to_string(),
            ..ServerSeries::default()
        };
        for line in text.lines().filter_map(|l| serde_json::from_str(l).ok()) {
            series.add(line);
        }
        Some(series)
    }
}

/// The server's gauges over one stage's window (`server.waiting.max` in a
/// threshold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Samples in the window.
    pub samples: u64,
    /// Replicas.
    pub replicas: Option<MeanMax>,
    /// Requests waiting in the server's queue.
    pub waiting: Option<MeanMax>,
    /// Requests running.
    pub running: Option<MeanMax>,
    /// KV-cache use, 0–1.
    pub kv_cache_usage: Option<MeanMax>,
}

/// A gauge over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanMax {
    /// The mean of its samples.
    pub mean: f64,
    /// The most.
    pub max: f64,
}

impl ServerSeries {
    /// The gauges of the samples taken from `from_s` to `to_s` (seconds
    /// from the run's start); none when no sample falls in it.
    pub fn stats(&self, from_s: f64, to_s: f64) -> Option<ServerStats> {
        let window: Vec<&ServerSample> = self
            .samples
            .iter()
            .filter(|s| s.t_s >= from_s && s.t_s <= to_s)
            .collect();
        if window.is_empty() {
            return None;
        }
        let of = |f: fn(&ServerSample) -> Option<f64>| {
            let values: Vec<f64> = window.iter().filter_map(|s| f(s)).collect();
            (!values.is_empty()).then(|| MeanMax {
                mean: values.iter().sum::<f64>() / values.len() as f64,
                max: values.iter().copied().fold(f64::MIN, f64::max),
            })
        };
        Some(ServerStats {
            samples: window.len() as u64,
            replicas: of(|s| s.replicas),
            waiting: of(|s| s.waiting),
            running: of(|s| s.running),
            kv_cache_usage: of(|s| s.kv_cache_usage),
        })
    }
}

/// Gauges by what they mean, under each server's name for them; the
/// first name present is taken.
const REPLICAS: &[&str] = &["barrage_sim:replicas", "kube_deployment_status_replicas_ready"];
const WAITING: &[&str] = &["vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size"];
const RUNNING: &[&str] = &[
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "tgi_batch_current_size",
];
const KV_CACHE: &[&str] = &[
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
];

/// One sample line of the text exposition format: its metric name and
/// value (labels are checked, not kept: the gauges here are summed over
/// them). `None` for blank and comment lines.
///
/// Hand-written: `prometheus-parse` refuses the colons of recording-rule
/// style names that vLLM and SGLang use (`vllm:num_requests_waiting`), and
/// the other parser on crates.io is LGPL.
fn sample_line(line: &str) -> Result<Option<(&str, f64)>, &'static str> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let name_end = line
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())))
        .map_or(line.len(), |(i, _)| i);
    if name_end == 0 {
        return Err("no metric name");
    }
    let (name, mut rest) = line.split_at(name_end);
    if let Some(labels) = rest.strip_prefix('{') {
        // Label values are quoted and may escape `"` and `\`.
        let (mut quoted, mut escaped, mut end) = (false, false, None);
        for (i, c) in labels.char_indices() {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => quoted = !quoted,
                (false, _, '}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        rest = &labels[end.ok_or("labels not closed")? + 1..];
    }
    let mut fields = rest.split_whitespace();
    let value = match fields.next().ok_or("no value")? {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| "the value is not a number")?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| "the timestamp is not a whole number")?;
    }
    if fields.next().is_some() {
        return Err("more than a value and a timestamp");
    }
    Ok(Some((name, value)))
}

/// The gauges of an exposition `body`, or why it is not one.
pub fn sample(body: &str, t_s: f64) -> Result<ServerSample, String> {
    let mut values: Vec<(&str, f64)> = Vec::new();
    for (n, line) in body.lines().enumerate() {
        match sample_line(line) {
            Ok(Some(v)) => values.push(v),
            Ok(None) => {}
            Err(why) => {
                let line: String = line.chars().take(80).collect();
                return Err(format!(
                    "line {} is not Prometheus text format ({why}): `{line}`",
                    n + 1
                ));
            }
        }
    }
    let gauge = |names: &[&str]| {
        names.iter().find_map(|name| {
            let found: Vec<f64> = values.iter().filter(|(m, _)| m == name).map(|(_, v)| *v).collect();
            (!found.is_empty()).then_some(found)
        })
    };
    let sum = |names: &[&str]| gauge(names).map(|v| v.iter().sum());
    Ok(ServerSample {
        t_s,
        replicas: sum(REPLICAS),
        waiting: sum(WAITING),
        running: sum(RUNNING),
        kv_cache_usage: gauge(KV_CACHE).map(|v| v.iter().sum::<f64>() / v.len() as f64),
    })
}

/// Scrape `url` every `interval` until the task is aborted, appending each
/// line to `dir/server.jsonl` (the run's series is read back from it, as a
/// rebuild reads it).
pub fn spawn(
    url: String,
    interval: Duration,
    origin: Instant,
    dir: &Path,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut file = std::fs::File::create(dir.join(SERVER_JSONL))?;
    Ok(tokio::spawn(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let outcome = tokio::time::timeout(interval.max(Duration::from_millis(500)), fetch(&client, &url)).await;
            let t_s = origin.elapsed().as_secs_f64();
            let line = match outcome {
                Ok(Ok(body)) => match sample(&body, t_s) {
                    Ok(s) => ServerLine::Sample(s),
                    Err(error) => ServerLine::Failed { t_s, error },
                },
                Ok(Err(error)) => ServerLine::Failed { t_s, error },
                Err(_) => ServerLine::Failed {
                    t_s,
                    error: format!("no answer within {:.1} s", interval.as_secs_f64().max(0.5)),
                },
            };
            if let Ok(json) = serde_json::to_string(&line) {
                let _ = writeln!(file, "{json}");
            }
        }
    }))
}

/// Longest exposition read; a larger one is refused.
const MAX_BODY: usize = 16 << 20;

async fn fetch(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>,
    url: &str,
) -> Result<String, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let response = client.get(uri).await.map_err(|e| {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        message
    })?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".into())
}

/// Check `server_metrics:`; the message names the key.
pub fn check(config: &ServerMetricsConfig) -> Result<(), String> {
    if !(config.interval_s >= 0.1 && config.interval_s.is_finite()) {
        return Err(format!(
            "server_metrics.interval_s must be at least 0.1 s, got {}",
            config.interval_s
        ));
    }
    if let Some(url) = &config.url {
        match url.parse::<hyper::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
            _ => {
                return Err(format!(
                    "server_metrics.url `{url}`: give an http:// URL, e.g. http://127.0.0.1:8000/metrics"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_read_under_each_servers_names_and_summed_over_series() {
        let body = "# HELP vllm:num_requests_waiting waiting\n# TYPE vllm:num_requests_waiting gauge\n\
                    vllm:num_requests_waiting{model_name=\"m\",replica=\"0\"} 3\n\
                    vllm:num_requests_waiting{model_name=\"m\",replica=\"1\"} 4\n\
                    sglang:num_running_reqs 7\n\
                    vllm:kv_cache_usage_perc{replica=\"0\"} 0.2\nvllm:kv_cache_usage_perc{replica=\"1\"} 0.4\n\
                    barrage_sim:replicas 2\n";
        let s = sample(body, 1.5).unwrap();
        assert_eq!((s.waiting, s.running, s.replicas), (Some(7.0), Some(7.0), Some(2.0)));
        assert!((s.kv_cache_usage.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(sample("", 0.0).unwrap().replicas, None);
    }

    #[test]
    fn a_body_that_is_not_exposition_format_is_refused_with_its_line() {
        let e = sample("ok 1\n<html><body>login</body></html>\n", 0.0).unwrap_err();
        assert!(
            e.contains("line 2 is not Prometheus text format (no metric name)"),
            "{e}"
        );
        for (line, why) in [
            ("up{job=\"a\" 1", "labels not closed"),
            ("up", "no value"),
            ("up one", "not a number"),
            ("up 1 2 3", "more than"),
        ] {
            assert!(sample(line, 0.0).unwrap_err().contains(why), "{line}");
        }
        // Quoted braces, escapes, timestamps and special values are fine.
        let s = sample("x{a=\"}\\\"\"} 1 1700000000000\nbarrage_sim:replicas +Inf\n", 0.0).unwrap();
        assert_eq!(s.replicas, Some(f64::INFINITY));
    }

    #[test]
    fn a_windows_gauges_are_averaged_and_their_most_kept() {
        let mut series = ServerSeries::default();
        for (t, waiting) in [(0.5, 0.0), (1.5, 4.0), (2.5, 8.0), (9.0, 100.0)] {
            series.samples.push(ServerSample {
                t_s: t,
                waiting: Some(waiting),
                ..ServerSample::default()
            });
        }
        let stats = series.stats(1.0, 3.0).unwrap();
        assert_eq!(
            (stats.samples, stats.waiting, stats.running),
            (2, Some(MeanMax { mean: 6.0, max: 8.0 }), None)
        );
        assert!(series.stats(3.0, 8.0).is_none());
    }

    #[test]
    fn lines_round_trip_and_count_failures() {
        let mut series = ServerSeries::default();
        for line in [
            r#"{"t_s":1.0,"replicas":1.0}"#,
            r#"{"t_s":2.0,"error":"connection refused"}"#,
            r#"{"t_s":3.0,"replicas":2.0,"waiting":5.0}"#,
        ] {
            series.add(serde_json::from_str(line).unwrap());
        }
        assert_eq!((series.scrapes, series.errors), (2, 1));
        assert_eq!(series.last_error.as_deref(), Some("connection refused"));
        assert_eq!(series.samples[1].waiting, Some(5.0));
    }
}
