//! The server's own view during a run: its Prometheus `/metrics`, fetched
//! every `interval_s` and once more after the last response, reduced to
//! what explains the client's figures ([`sample`]), and judged per stage
//! ([`window`]). Each sample (or failed scrape) is a line of
//! `server.jsonl` as it is taken, so an interrupted run keeps them and
//! `barrage report` rebuilds from them. A scrape that fails is counted and
//! the run goes on.

mod promql;
mod sample;
mod window;

pub use sample::{Buckets, ServerSample, sample};
pub use window::{MeanMax, ServerLatency, ServerStats};

use std::collections::BTreeMap;
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
    /// The exposition's URL; none: the target's `/metrics` (unless
    /// `prometheus` is given, which then replaces the scrape).
    pub url: Option<String>,
    /// Several expositions (one per replica, say), scraped together and
    /// read as one: their series summed, as one server's are.
    pub urls: Vec<String>,
    /// Seconds between scrapes (and between the points of each query).
    pub interval_s: f64,
    /// A Prometheus server's base URL to evaluate `queries` against.
    pub prometheus: Option<String>,
    /// PromQL queries by name; `replicas`, `waiting`, `running`,
    /// `kv_cache_usage` and `requests` fill those figures, any other name
    /// is kept under `queries`.
    pub queries: BTreeMap<String, String>,
}

impl Default for ServerMetricsConfig {
    fn default() -> Self {
        ServerMetricsConfig {
            url: None,
            urls: Vec::new(),
            interval_s: 1.0,
            prometheus: None,
            queries: BTreeMap::new(),
        }
    }
}

impl ServerMetricsConfig {
    /// What to scrape for a run against `target`: the configured URLs, or
    /// the target's `/metrics` (which only an `http://` target has here),
    /// or nothing when a Prometheus server is queried instead.
    pub fn scrape_urls(&self, target: &str) -> Result<Vec<String>, String> {
        let given: Vec<String> = self.url.iter().chain(&self.urls).cloned().collect();
        match (given.is_empty(), &self.prometheus) {
            (false, _) => Ok(given),
            (true, Some(_)) => Ok(Vec::new()),
            (true, None) if target.starts_with("http://") => {
                Ok(vec![format!("{}/metrics", target.trim_end_matches('/'))])
            }
            (true, None) => Err("server_metrics: the target is not http://; give server_metrics.url".into()),
        }
    }

    /// Where the figures come from, as `summary.json` names it.
    pub fn source(&self, target: &str) -> String {
        let scraped = self.scrape_urls(target).unwrap_or_default();
        scraped
            .into_iter()
            .chain(self.prometheus.clone())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// After a run that started at `start_unix_ms` and lasted `duration_s`:
    /// evaluate the queries, if any, and append their samples (and
    /// failures) to `dir/server.jsonl`.
    pub async fn query_after(&self, dir: &Path, start_unix_ms: u64, duration_s: f64) -> std::io::Result<()> {
        let Some(prometheus) = &self.prometheus else {
            return Ok(());
        };
        let span = promql::Span {
            start_unix_ms,
            duration_s,
            step_s: self.interval_s,
        };
        let lines = promql::query_run(prometheus, &self.queries, &span).await;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(SERVER_JSONL))?;
        for line in lines {
            if let Ok(json) = serde_json::to_string(&line) {
                writeln!(file, "{json}")?;
            }
        }
        Ok(())
    }
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
    Sample(Box<ServerSample>),
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
                self.samples.push(*s);
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
        // A Prometheus server's points come after the scrapes.
        series.samples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        Some(series)
    }
}

/// The scrape task of a run.
pub struct Scraper {
    last: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    first: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Scraper {
    /// Scrape `urls` every `interval` until [`Scraper::finish`], appending
    /// each line to `dir/server.jsonl` (the run's series is read back from
    /// it, as a rebuild reads it).
    pub fn spawn(urls: Vec<String>, interval: Duration, origin: Instant, dir: &Path) -> std::io::Result<Scraper> {
        let mut file = std::fs::File::create(dir.join(SERVER_JSONL))?;
        let (last, mut finish) = tokio::sync::oneshot::channel::<()>();
        let (taken, first) = tokio::sync::oneshot::channel::<()>();
        let mut taken = Some(taken);
        let task = tokio::spawn(async move {
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let finishing = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut finish => true,
                };
                let line = scrape(&client, &urls, interval, origin).await;
                if let Ok(json) = serde_json::to_string(&line) {
                    let _ = writeln!(file, "{json}");
                }
                if let Some(t) = taken.take() {
                    let _ = t.send(());
                }
                if finishing {
                    break;
                }
            }
        });
        Ok(Scraper {
            last,
            task,
            first: Some(first),
        })
    }

    /// Wait for the first sample (or its failure): taken before the run
    /// sends anything, it is where the server's counters count from.
    pub async fn first_sample(&mut self) {
        if let Some(first) = self.first.take() {
            let _ = first.await;
        }
    }

    /// Take the last sample (every response is in: the server's counters
    /// have counted them all) and stop; no line is written after this.
    pub async fn finish(self) {
        if self.last.send(()).is_err() {
            self.task.abort();
        }
        let _ = self.task.await;
    }
}

/// One sample of every URL at once, read as one exposition (their series
/// summed, as one server's over its label sets); a URL that fails fails
/// the sample, named: a sum without one replica would look like a drop.
async fn scrape(client: &HttpClient, urls: &[String], interval: Duration, origin: Instant) -> ServerLine {
    let within = interval.max(Duration::from_millis(500));
    let mut fetches = tokio::task::JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let (client, url) = (client.clone(), url.clone());
        fetches.spawn(async move {
            let outcome = tokio::time::timeout(within, fetch(&client, &url))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {:.1} s", within.as_secs_f64())));
            (i, outcome)
        });
    }
    let mut bodies = vec![String::new(); urls.len()];
    let mut failure = None;
    while let Some(done) = fetches.join_next().await {
        match done {
            Ok((i, Ok(body))) => bodies[i] = body,
            Ok((i, Err(e))) => {
                failure.get_or_insert_with(|| if urls.len() > 1 { format!("{}: {e}", urls[i]) } else { e });
            }
            Err(e) => {
                failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let t_s = origin.elapsed().as_secs_f64();
    if let Some(error) = failure {
        return ServerLine::Failed { t_s, error };
    }
    match sample(&bodies.join("\n"), t_s) {
        Ok(s) => ServerLine::Sample(Box::new(s)),
        Err(error) => ServerLine::Failed { t_s, error },
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>;

/// Longest exposition read; a larger one is refused.
const MAX_BODY: usize = 16 << 20;

async fn fetch(client: &HttpClient, url: &str) -> Result<String, String> {
    let (status, body) = get(client, url, MAX_BODY).await?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".into())
}

/// `GET url`: the status and the body (at most `max` bytes), whatever the status.
async fn get(client: &HttpClient, url: &str, max: usize) -> Result<(hyper::StatusCode, bytes::Bytes), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let response = client.get(uri).await.map_err(|e| crate::transport::error_chain(&e))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), max)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// Check `server_metrics:`; the message names the key.
pub fn check(config: &ServerMetricsConfig) -> Result<(), String> {
    if !(config.interval_s >= 0.1 && config.interval_s.is_finite()) {
        return Err(format!(
            "server_metrics.interval_s must be at least 0.1 s, got {}",
            config.interval_s
        ));
    }
    const EXPOSITION: &str = "http://127.0.0.1:8000/metrics";
    let urls = (config.url.iter().map(|u| ("server_metrics.url", u, EXPOSITION)))
        .chain(config.urls.iter().map(|u| ("server_metrics.urls", u, EXPOSITION)))
        .chain(
            config
                .prometheus
                .iter()
                .map(|u| ("server_metrics.prometheus", u, "http://127.0.0.1:9090")),
        );
    for (key, url, example) in urls {
        match url.parse::<hyper::Uri>() {
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => {}
            _ => return Err(format!("{key} `{url}`: give an http:// URL, e.g. {example}")),
        }
    }
    match (&config.prometheus, config.queries.is_empty()) {
        (Some(_), true) => Err(
            "server_metrics.prometheus: give the PromQL queries to evaluate under server_metrics.queries, \
             e.g. waiting: sum(vllm:num_requests_waiting)"
                .into(),
        ),
        (None, false) => Err("server_metrics.queries: give server_metrics.prometheus, the server to ask".into()),
        _ => match config.queries.iter().find(|(_, q)| q.trim().is_empty()) {
            Some((name, _)) => Err(format!("server_metrics.queries.{name} is empty: give a PromQL query")),
            None => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_settings_say_what_is_missing() {
        let config = |yaml: &str| serde_yaml_ng::from_str::<ServerMetricsConfig>(yaml).unwrap();
        let e = |yaml: &str| check(&config(yaml)).unwrap_err();
        assert!(e("prometheus: http://p:9090").contains("give the PromQL queries"));
        assert!(e("queries: {waiting: x}").contains("give server_metrics.prometheus"));
        assert!(e("prometheus: p:9090\nqueries: {a: x}").contains("server_metrics.prometheus `p:9090`"));
        assert!(e("prometheus: http://p\nqueries: {a: ' '}").contains("queries.a is empty"));
        let ok = config("prometheus: http://p:9090\nqueries: {replicas: x}");
        assert!(check(&ok).is_ok());
        // Queried instead of scraped, unless a URL is given too.
        assert_eq!(ok.scrape_urls("http://t"), Ok(Vec::new()));
        assert_eq!(ok.source("http://t"), "http://p:9090");
        assert_eq!(config("{}").source("http://t/"), "http://t/metrics");
    }

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
