//! The run's configuration: a YAML file, overridden by command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::load::shape::{RampKind, ShapeKind};

/// What an open-loop stage does with an arrival when `max_concurrency`
/// requests are already in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapPolicy {
    /// Wait for a slot; the wait shows as send lag and queue wait.
    #[default]
    Queue,
    /// Do not send it; counted as dropped.
    Drop,
}

/// One stage of load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How load is offered.
    pub shape: ShapeKind,
    /// Requests per second (for `ramp`, the rate at the end of the stage).
    #[serde(default)]
    pub rate: Option<f64>,
    /// `ramp`: the rate at the start of the stage.
    #[serde(default)]
    pub from_rate: Option<f64>,
    /// `gamma`: the shape of the gap distribution (1 = Poisson, < 1 burstier).
    #[serde(default)]
    pub burstiness: Option<f64>,
    /// `concurrency`: virtual users.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// `concurrency`: pause between a user's requests, ms.
    #[serde(default)]
    pub think_time_ms: f64,
    /// Stage length, seconds.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Requests in the stage.
    #[serde(default)]
    pub requests: Option<u64>,
    /// Pause after the stage, seconds.
    #[serde(default)]
    pub pause_after_s: f64,
    /// `ramp`: linear (default) or exponential.
    #[serde(default)]
    pub ramp: RampKind,
    /// `ramp` of a closed loop: users at the start (to `concurrency` at the end).
    #[serde(default)]
    pub from_concurrency: Option<usize>,
    /// `burst`: the rate during a burst.
    #[serde(default)]
    pub burst_rate: Option<f64>,
    /// `burst`: how long a burst lasts, seconds.
    #[serde(default)]
    pub burst_s: Option<f64>,
    /// `burst`: when the (first) burst starts, seconds into the stage.
    #[serde(default)]
    pub burst_at_s: f64,
    /// `burst`: repeat the burst every this many seconds.
    #[serde(default)]
    pub period_s: Option<f64>,
    /// `expression`: the rate as an expression of `t`, e.g. `5 + 20*sin(t/60)`.
    #[serde(default)]
    pub rate_expr: Option<String>,
    /// Open loop: most requests in flight at once.
    #[serde(default)]
    pub max_concurrency: Option<usize>,
    /// Open loop: queue or drop arrivals at the cap.
    #[serde(default)]
    pub on_cap: CapPolicy,
    /// Requests sent in the stage's first seconds are recorded but not measured.
    #[serde(default)]
    pub warmup_s: f64,
    /// Requests sent in the stage's last seconds (of `duration_s`) are recorded but not measured.
    #[serde(default)]
    pub cooldown_s: f64,
}

impl Default for Stage {
    fn default() -> Self {
        Stage {
            shape: ShapeKind::Constant,
            rate: None,
            from_rate: None,
            burstiness: None,
            concurrency: None,
            think_time_ms: 0.0,
            duration_s: None,
            requests: None,
            pause_after_s: 0.0,
            ramp: RampKind::Linear,
            from_concurrency: None,
            burst_rate: None,
            burst_s: None,
            burst_at_s: 0.0,
            period_s: None,
            rate_expr: None,
            max_concurrency: None,
            on_cap: CapPolicy::Queue,
            warmup_s: 0.0,
            cooldown_s: 0.0,
        }
    }
}

impl Stage {
    /// What the stage asks for, for reports: its description and requested rate or users.
    pub fn info(&self) -> crate::metrics::StageInfo {
        let closed = matches!(self.shape, ShapeKind::Concurrency)
            || (self.shape == ShapeKind::Ramp && self.from_concurrency.is_some());
        let mut label = match (self.shape, closed) {
            (ShapeKind::Concurrency, _) => format!("concurrency {}", self.concurrency.unwrap_or(1)),
            (ShapeKind::Ramp, true) => format!(
                "ramp {} → {} users",
                self.from_concurrency.unwrap_or(0),
                self.concurrency.unwrap_or(1)
            ),
            (ShapeKind::Ramp, false) => format!(
                "ramp {} → {}/s",
                self.from_rate.unwrap_or(0.0),
                self.rate.unwrap_or(0.0)
            ),
            (ShapeKind::Expression, _) => format!("rate {}", self.rate_expr.as_deref().unwrap_or("?")),
            (ShapeKind::Trace, _) => "trace replay".to_string(),
            (kind, _) => format!(
                "{} {}/s",
                serde_json::to_value(kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                self.rate.unwrap_or(0.0)
            ),
        };
        if let Some(d) = self.duration_s {
            label.push_str(&format!(" for {d}s"));
        }
        if let Some(n) = self.requests {
            label.push_str(&format!(" ({n} requests)"));
        }
        crate::metrics::StageInfo {
            label,
            requested_rate: if closed { None } else { self.rate },
            requested_concurrency: if closed { self.concurrency } else { None },
            duration_s: self.duration_s,
            bursts: self.bursts(),
            burst_rate: (self.shape == ShapeKind::Burst).then_some(self.burst_rate).flatten(),
        }
    }

    /// A `burst` stage's bursts within its duration: (from, to), seconds
    /// from its start (at most 10,000 are listed).
    fn bursts(&self) -> Vec<(f64, f64)> {
        let (ShapeKind::Burst, Some(len), Some(duration)) = (self.shape, self.burst_s, self.duration_s) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut at = self.burst_at_s;
        while at < duration && out.len() < 10_000 {
            out.push((at, (at + len).min(duration)));
            match self.period_s {
                Some(p) if p > 0.0 => at += p,
                _ => break,
            }
        }
        out
    }
}

/// How results are summarized and reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// Percentiles of every distribution (each > 0 and ≤ 100).
    pub percentiles: Vec<f64>,
    /// Objectives for goodput, e.g. `ttft < 200ms` (several per entry, comma-separated).
    pub slo: Vec<String>,
    /// Share of a second's requests that must meet the objectives for the
    /// second to count as meeting them (spike recovery, violation seconds).
    pub slo_attainment: f64,
    /// Pass/fail conditions on the summary, e.g. `ttft p99 < 300ms` (several
    /// per entry, comma-separated); a failed one makes `run` exit 7.
    pub thresholds: Vec<String>,
    /// Reporter plugins run at the end: built-in names (`json`, `csv`,
    /// `markdown`, `html`), installed names or `.wasm` paths.
    pub reporters: Vec<String>,
    /// Configuration of each reporter, by the name used in `reporters`.
    pub reporter_config: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Peers whose metric definitions the run is also reported under
    /// (`compat-<peer>.json`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub compat: Vec<crate::metrics::compat::Peer>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            percentiles: crate::metrics::DEFAULT_PERCENTILES.to_vec(),
            slo: Vec::new(),
            slo_attainment: 0.95,
            thresholds: Vec::new(),
            reporters: ["json", "csv", "markdown", "html"].map(String::from).to_vec(),
            reporter_config: BTreeMap::new(),
            compat: Vec::new(),
        }
    }
}

impl ReportConfig {
    /// The metrics options this asks for, or what is wrong (the key and why).
    pub fn metrics_options(&self) -> Result<crate::metrics::MetricsOptions, ConfigError> {
        if let Some(p) = self.percentiles.iter().find(|p| !(**p > 0.0 && **p <= 100.0)) {
            return Err(ConfigError::new(format!(
                "report.percentiles: {p} is not a percentile; give numbers > 0 and ≤ 100, e.g. 99.9"
            )));
        }
        let slos =
            crate::metrics::slo::parse_all(&self.slo).map_err(|e| ConfigError::new(format!("report.slo: {e}")))?;
        if !(self.slo_attainment > 0.0 && self.slo_attainment <= 1.0) {
            return Err(ConfigError::new(format!(
                "report.slo_attainment: {} is not a share; give a number above 0 and at most 1, e.g. 0.95",
                self.slo_attainment
            )));
        }
        let thresholds = crate::metrics::threshold::parse_all(&self.thresholds)
            .and_then(|ts| {
                ts.iter().try_for_each(|t| t.check_percentiles(&self.percentiles))?;
                Ok(ts)
            })
            .map_err(|e| ConfigError::new(format!("report.thresholds: {e}")))?;
        Ok(crate::metrics::MetricsOptions {
            percentiles: self.percentiles.clone(),
            slos,
            thresholds,
            slo_attainment: self.slo_attainment,
        })
    }
}

/// What each request asks for (until datasets land: a synthetic prompt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestConfig {
    /// Tokens in the synthetic prompt, counted by the run's tokenizer (words with the default).
    pub prompt_tokens: u32,
    /// Output tokens asked for.
    pub max_tokens: u32,
    /// Ask the server to ignore end-of-sequence (exact output lengths).
    pub ignore_eos: bool,
    /// Stream responses.
    pub stream: bool,
    /// Per-request timeout, seconds.
    pub timeout_s: f64,
}

impl Default for RequestConfig {
    fn default() -> Self {
        RequestConfig {
            prompt_tokens: 64,
            max_tokens: 64,
            ignore_eos: true,
            stream: true,
            timeout_s: 120.0,
        }
    }
}

/// Where a granted secret's value comes from: an environment variable, or
/// a file (its contents, less one trailing newline); exactly one. Only
/// this is written to the results; the value never is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file's path, relative to the configuration file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl std::str::FromStr for SecretSource {
    type Err = String;

    /// `env:VARIABLE` or `file:PATH`.
    fn from_str(s: &str) -> Result<SecretSource, String> {
        match s.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(SecretSource {
                env: Some(var.into()),
                file: None,
            }),
            Some(("file", path)) if !path.is_empty() => Ok(SecretSource {
                env: None,
                file: Some(path.into()),
            }),
            _ => Err(format!("`{s}`: a secret comes from `env:VARIABLE` or `file:PATH`")),
        }
    }
}

impl SecretSource {
    /// The value, or why it cannot be read (naming the variable or file,
    /// never the value).
    pub fn read(&self, base_dir: &Path) -> Result<String, String> {
        match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => format!("the environment variable `{var}` is not set"),
                std::env::VarError::NotUnicode(_) => format!("the environment variable `{var}` is not UTF-8"),
            }),
            (None, Some(path)) => {
                let path = base_dir.join(path);
                let mut text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("the file {} could not be read: {e}", path.display()))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(text)
            }
            _ => Err("give exactly one of `env` (a variable's name) or `file` (a path)".into()),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Base URL of the server (`http://host:port`); none: the embedded simulator.
    pub target: Option<String>,
    /// Codec plugin: a built-in or installed name, or a `.wasm` path.
    pub codec: String,
    /// The codec's configuration table.
    pub codec_config: BTreeMap<String, serde_json::Value>,
    /// Secrets granted to the codec, by the name it reads them under:
    /// where each value comes from (never the value itself).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub codec_secrets: BTreeMap<String, SecretSource>,
    /// Model name sent.
    pub model: String,
    /// Seed for the schedule and prompts.
    pub seed: u64,
    /// Results directory; default `runs/<UTC time>`.
    pub output: Option<PathBuf>,
    /// What each request asks.
    pub request: RequestConfig,
    /// Extra headers on every request.
    pub headers: BTreeMap<String, String>,
    /// Name of an environment variable holding an API key, sent as a bearer token (never written to results).
    pub api_key_env: Option<String>,
    /// Most idle connections kept per host (0: no limit; with `max_connections`, that many).
    pub connections: usize,
    /// Most requests on the wire at once, so most open HTTP/1.1 connections
    /// (0: what the descriptor limit allows); a request past it waits for a slot, which shows as send lag.
    pub max_connections: usize,
    /// HTTP/2 only: h2c on http://, h2 on https://.
    pub http2: bool,
    /// HTTP/2 connections that gRPC calls spread over, in turn (each
    /// carries as many calls at once as the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` allows; a call past it waits for a
    /// stream, which shows as send lag).
    pub grpc_connections: usize,
    /// TLS for https:// targets.
    pub tls: barrage_core::tls::ClientTls,
    /// Plugin threads decoding responses (default: one per core, at most 4:
    /// at thousands of streams a second one thread cannot keep up).
    pub plugin_threads: usize,
    /// What a frame the codec could not parse does: `fail` the request
    /// (status `malformed`), or `count` it in the record and judge the
    /// request on the rest.
    pub malformed_frames: crate::metrics::MalformedFrames,
    /// Most MiB in one frame of a response (a body gathered whole is one
    /// frame); past it the request fails `too_large` and the rest of the
    /// response is not read.
    pub max_frame_mib: f64,
    /// An arrival not sent within this many ms of its time (the client fell
    /// behind, or it waited that long for a connection or a slot under the
    /// stage's cap) is not sent at all: it is counted as missed.
    pub max_send_lag_ms: f64,
    /// Longest a request may wait between its encode (the `send-time` its
    /// codec signs with) and its send, seconds: a request queued longer is
    /// encoded again first.
    pub max_encode_lead_s: f64,
    /// Most MiB of response frames waiting for the plugin threads; past it,
    /// arrivals are missed until they catch up (their backlog stays bounded).
    pub max_decode_backlog_mib: f64,
    /// Fail the run (exit 6) when a stage finds the client saturated.
    pub strict_client: bool,
    /// After a stop, how long in-flight requests may finish, seconds.
    pub grace_period_s: f64,
    /// Stop the run when more than this fraction of finished requests failed (after 20).
    pub max_error_rate: Option<f64>,
    /// Stop the run as soon as a threshold fails on the records so far
    /// (judged every second, after `threshold_grace_s`).
    pub abort_on_threshold: bool,
    /// Seconds from the run's start before `abort_on_threshold` judges.
    pub threshold_grace_s: f64,
    /// Stop the run when requests in flight grow second after second (an
    /// overloaded server's queue), judged from this many seconds after the
    /// start; none: never. `barrage sweep` sets it for each point.
    pub stop_on_overload_after_s: Option<f64>,
    /// End the run once its throughput is steady: the completions of the
    /// full seconds from this many seconds after the start have a mean
    /// known to 2 % (at least 5 of them); none: never. `barrage sweep` and
    /// `search` set it for each point.
    pub stop_when_stable_after_s: Option<f64>,
    /// The load.
    pub stages: Vec<Stage>,
    /// Simulator settings when no target is given.
    pub sim: Option<barrage_sim::SimConfig>,
    /// Percentiles, objectives and reporters.
    pub report: ReportConfig,
    /// Tokenizer offered to plugins (see `--tokenizer`); none: `words`, approximate.
    pub tokenizer: Option<String>,
    /// Load only the plugins the lockfile approves (`--locked`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// The lockfile `locked` enforces, relative to the configuration file;
    /// none: `barrage.lock` in the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockfile: Option<PathBuf>,
    /// Scrape the server's Prometheus metrics during the run (replicas,
    /// queue, KV cache); none: not scraped.
    pub server_metrics: Option<crate::server_metrics::ServerMetricsConfig>,
    /// The live export: a scrape endpoint, a Pushgateway, remote write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::export::ExportConfig>,
    /// This load generator's part of a distributed run; none: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// When to start, RFC 3339 (`2026-12-03T10:00:00Z`) or Unix seconds:
    /// the same instant for every shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// Where prompts come from; none: a synthetic prompt of `request.prompt_tokens`.
    pub dataset: Option<barrage_plugin_host::prepare::DatasetConfig>,
    /// Directory the dataset's relative paths are resolved against: the
    /// config file's, or the working directory.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            target: None,
            codec: "openai-chat".into(),
            codec_config: BTreeMap::new(),
            codec_secrets: BTreeMap::new(),
            model: "barrage-sim".into(),
            seed: 0,
            output: None,
            request: RequestConfig::default(),
            headers: BTreeMap::new(),
            api_key_env: None,
            connections: 0,
            max_connections: 0,
            http2: false,
            grpc_connections: 1,
            tls: barrage_core::tls::ClientTls::default(),
            plugin_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            malformed_frames: crate::metrics::MalformedFrames::Fail,
            max_frame_mib: (barrage_core::framing::DEFAULT_MAX_FRAME >> 20) as f64,
            max_send_lag_ms: 1000.0,
            max_encode_lead_s: 60.0,
            max_decode_backlog_mib: 64.0,
            strict_client: false,
            grace_period_s: 5.0,
            max_error_rate: None,
            abort_on_threshold: false,
            threshold_grace_s: 10.0,
            stop_on_overload_after_s: None,
            stop_when_stable_after_s: None,
            stages: vec![Stage {
                shape: ShapeKind::Constant,
                rate: Some(20.0),
                duration_s: Some(10.0),
                ..Stage::default()
            }],
            sim: None,
            report: ReportConfig::default(),
            server_metrics: None,
            export: None,
            shard: None,
            start_at: None,
            tokenizer: None,
            locked: false,
            lockfile: None,
            dataset: None,
            base_dir: PathBuf::new(),
        }
    }
}

/// What drives a stage's sends, decided once, when the configuration is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// Open loop: arrivals at the times the stage's shape draws.
    Arrivals,
    /// Open loop: each sample at its own time (trace replay).
    Trace,
    /// Closed loop: virtual users, each sending when its last response ended.
    Users,
}

impl StageKind {
    fn of(stage: &Stage) -> StageKind {
        match stage.shape {
            ShapeKind::Concurrency => StageKind::Users,
            ShapeKind::Ramp if stage.from_concurrency.is_some() => StageKind::Users,
            ShapeKind::Trace => StageKind::Trace,
            _ => StageKind::Arrivals,
        }
    }
}

/// A run configuration that passed its checks, with each stage's kind.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration.
    pub config: RunConfig,
    /// Per stage, what drives its sends.
    pub kinds: Vec<StageKind>,
}

/// A value out of range in a run configuration.
pub use barrage_core::invalid::InvalidKey as ConfigError;

/// This load generator's part of a distributed run (`--shard I/N`): shard
/// `index` of `count`, from 0. The shards' union is the run asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// Which one, from 0.
    pub index: u32,
    /// How many.
    pub count: u32,
}

impl Shard {
    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard `{text}`: give INDEX/COUNT, e.g. 0/4 for the first of four shards");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let shard = Shard {
            index: i.trim().parse().map_err(|_| bad())?,
            count: n.trim().parse().map_err(|_| bad())?,
        };
        shard.check().map(|()| shard)
    }

    /// Whether the index is one of the count.
    pub fn check(&self) -> Result<(), String> {
        if self.count == 0 || self.index >= self.count {
            return Err(format!(
                "shard {}/{}: the index counts from 0 and must be below the count (0 to {})",
                self.index,
                self.count,
                self.count.saturating_sub(1)
            ));
        }
        Ok(())
    }

    /// Whether item `i` of a sequence dealt out in turn is this shard's.
    pub fn owns(&self, i: u64) -> bool {
        i % u64::from(self.count) == u64::from(self.index)
    }

    /// Of `n` items numbered from `from`, dealt out in turn, how many are this shard's.
    pub fn owned_in(&self, from: u64, n: u64) -> u64 {
        let count = u64::from(self.count);
        let first = (u64::from(self.index) + count - from % count) % count;
        if first >= n { 0 } else { (n - first).div_ceil(count) }
    }
}

impl RunConfig {
    /// The codec's granted secrets, read from their sources; an error names
    /// the grant (`codec_secrets.NAME`) and what is missing.
    pub fn codec_secrets(&self) -> Result<barrage_plugin_host::Secrets, ConfigError> {
        let mut granted = Vec::new();
        for (name, source) in &self.codec_secrets {
            let value = source
                .read(&self.base_dir)
                .map_err(|m| ConfigError::new(format!("codec_secrets.{name}: {m}")))?;
            granted.push((name.clone(), value));
        }
        barrage_plugin_host::Secrets::new(granted)
            .map_err(|e| ConfigError::new(format!("codec_secrets.{}: {}", e.name, e.problem)))
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RunConfigError {
    /// Unreadable file.
    #[error("cannot read run config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed YAML or wrong keys or types.
    #[error("run config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The YAML parser's message, with line and column.
        message: String,
    },
    /// Values out of range.
    #[error("run config {origin}: {message}")]
    Invalid {
        /// The file or `flags`.
        origin: String,
        /// Which key, and what is expected.
        message: String,
    },
}

impl RunConfig {
    /// Read a YAML file.
    pub fn from_file(path: &Path) -> Result<RunConfig, RunConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = if text.trim().is_empty() {
            RunConfig::default()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| RunConfigError::Parse {
                path: path.display().to_string(),
                message: e.to_string(),
            })?
        };
        config.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(config)
    }

    /// `max_frame_mib` in bytes (the default if out of range, which the check refuses).
    pub fn max_frame(&self) -> usize {
        max_frame_bytes(self.max_frame_mib).unwrap_or(barrage_core::framing::DEFAULT_MAX_FRAME)
    }

    /// `max_decode_backlog_mib` in bytes.
    pub fn max_decode_backlog(&self) -> u64 {
        (self.max_decode_backlog_mib * f64::from(1u32 << 20)) as u64
    }

    /// `max_send_lag_ms` as a duration (validated: positive and finite).
    pub fn max_send_lag(&self) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64(self.max_send_lag_ms / 1000.0)
            .unwrap_or(std::time::Duration::from_secs(1))
    }

    /// Check every key and decide what drives each stage: a run
    /// configuration the engine can run as it stands.
    pub fn plan(self) -> Result<Plan, ConfigError> {
        let kinds = self.validate()?;
        Ok(Plan { config: self, kinds })
    }

    /// Check ranges; each stage's kind. The error names the key and what it accepts.
    pub fn validate(&self) -> Result<Vec<StageKind>, ConfigError> {
        self.check().map_err(ConfigError::new)?;
        Ok(self.stages.iter().map(StageKind::of).collect())
    }

    fn check(&self) -> Result<(), String> {
        if self.stages.is_empty() {
            return Err("stages: at least one stage is needed".into());
        }
        self.report.metrics_options().map_err(|e| e.message)?;
        if let Some(t) = &self.target {
            crate::transport::check_target(t).map_err(|m| format!("target `{t}`: {m}"))?;
        }
        if !(1..=MAX_GRPC_CONNECTIONS).contains(&self.grpc_connections) {
            return Err(format!(
                "grpc_connections must be 1 to {MAX_GRPC_CONNECTIONS}, got {}",
                self.grpc_connections
            ));
        }
        if self.request.max_tokens == 0 {
            return Err("request.max_tokens must be at least 1".into());
        }
        if !(self.request.timeout_s > 0.0 && self.request.timeout_s.is_finite()) {
            return Err(format!(
                "request.timeout_s must be a number of seconds > 0, got {}",
                self.request.timeout_s
            ));
        }
        if !(self.grace_period_s >= 0.0 && self.grace_period_s.is_finite()) {
            return Err(format!("grace_period_s must be ≥ 0, got {}", self.grace_period_s));
        }
        if let Some(r) = self.max_error_rate
            && !(0.0..=1.0).contains(&r)
        {
            return Err(format!("max_error_rate is a fraction from 0 to 1, got {r}"));
        }
        if !(self.threshold_grace_s >= 0.0 && self.threshold_grace_s.is_finite()) {
            return Err(format!(
                "threshold_grace_s must be ≥ 0 seconds, got {}",
                self.threshold_grace_s
            ));
        }
        for (key, v) in [
            ("stop_on_overload_after_s", self.stop_on_overload_after_s),
            ("stop_when_stable_after_s", self.stop_when_stable_after_s),
        ] {
            if let Some(s) = v
                && !(s >= 0.0 && s.is_finite())
            {
                return Err(format!("{key} must be ≥ 0 seconds, got {s}"));
            }
        }
        if let Some(e) = &self.export {
            crate::export::check(e)?;
        }
        if let Some(s) = &self.shard {
            s.check()?;
        }
        if let Some(at) = &self.start_at {
            barrage_core::clock::parse_instant(at).map_err(|e| format!("start_at: {e}"))?;
        }
        if let Some(m) = &self.server_metrics {
            crate::server_metrics::check(m)?;
        }
        if self.abort_on_threshold && self.report.thresholds.is_empty() {
            return Err(
                "abort_on_threshold: there are no thresholds to judge; give report.thresholds (or --threshold)".into(),
            );
        }
        for (i, s) in self.stages.iter().enumerate() {
            let at = format!("stages[{i}]");
            if s.duration_s.is_none() && s.requests.is_none() && s.shape != ShapeKind::Trace {
                return Err(format!("{at}: give duration_s or requests (or both) so the stage ends"));
            }
            if let Some(d) = s.duration_s
                && !(d > 0.0 && d.is_finite())
            {
                return Err(format!("{at}.duration_s must be > 0 seconds, got {d}"));
            }
            if !(s.pause_after_s >= 0.0 && s.pause_after_s.is_finite()) {
                return Err(format!("{at}.pause_after_s must be ≥ 0, got {}", s.pause_after_s));
            }
            let positive = |name: &str, v: Option<f64>| match v {
                Some(v) if v > 0.0 && v.is_finite() => Ok(()),
                Some(v) => Err(format!("{at}.{name} must be a number > 0, got {v}")),
                None => Err(format!("{at}: shape {:?} needs {name}", s.shape)),
            };
            match s.shape {
                ShapeKind::Constant | ShapeKind::Poisson => positive("rate", s.rate)?,
                ShapeKind::Gamma => {
                    positive("rate", s.rate)?;
                    positive("burstiness", s.burstiness)?;
                }
                ShapeKind::Ramp => {
                    if s.duration_s.is_none() {
                        return Err(format!("{at}: a ramp needs duration_s"));
                    }
                    match (s.from_concurrency, s.concurrency) {
                        (Some(a), Some(b)) if a > 0 && b > 0 => {}
                        (Some(_), _) | (None, Some(_)) => {
                            return Err(format!(
                                "{at}: a concurrency ramp needs from_concurrency ≥ 1 and concurrency ≥ 1"
                            ));
                        }
                        (None, None) => {
                            positive("rate", s.rate)?;
                            positive("from_rate", s.from_rate)?;
                        }
                    }
                }
                ShapeKind::Burst => {
                    positive("rate", s.rate)?;
                    positive("burst_rate", s.burst_rate)?;
                    positive("burst_s", s.burst_s)?;
                    if let Some(p) = s.period_s
                        && !(p > 0.0 && p.is_finite())
                    {
                        return Err(format!("{at}.period_s must be > 0, got {p}"));
                    }
                    if !(s.burst_at_s >= 0.0 && s.burst_at_s.is_finite()) {
                        return Err(format!("{at}.burst_at_s must be ≥ 0, got {}", s.burst_at_s));
                    }
                }
                ShapeKind::Expression => {
                    let Some(src) = &s.rate_expr else {
                        return Err(format!(
                            "{at}: shape expression needs rate_expr, e.g. \"5 + 20*sin(t/60)\""
                        ));
                    };
                    let shown = barrage_plugin_host::bounds::cut(src, 80);
                    let expr =
                        crate::load::expr::Expr::parse(src).map_err(|e| format!("{at}.rate_expr `{shown}`: {e}"))?;
                    let Some(duration) = s.duration_s else {
                        return Err(format!("{at}: an expression rate needs duration_s"));
                    };
                    // A rate that is never a finite positive number sends
                    // nothing: say so instead of running an empty stage.
                    let steps = 1000;
                    let (mut sends, mut peak) = (false, (0.0, 0.0));
                    for k in 0..=steps {
                        let t = duration * f64::from(k) / f64::from(steps);
                        let rate = expr.eval(t);
                        sends |= rate.is_finite() && rate > 0.0;
                        if rate.is_finite() && rate > peak.1 {
                            peak = (t, rate);
                        }
                    }
                    // The schedule is drawn against the expression's peak.
                    if peak.1 > MAX_RATE {
                        return Err(format!(
                            "{at}.rate_expr `{shown}` reaches {} requests/s at t = {} s; at most {MAX_RATE} \
                             (see the limits in docs/load.md)",
                            number(peak.1),
                            peak.0
                        ));
                    }
                    if !sends {
                        return Err(format!(
                            "{at}.rate_expr `{shown}` is never a finite rate above 0 over the stage's {duration} s, \
                             so the stage would send nothing"
                        ));
                    }
                }
                ShapeKind::Trace => {
                    if self.dataset.is_none() {
                        return Err(format!(
                            "{at}: shape trace sends a dataset's samples at their times; add a `dataset:` \
                             section (e.g. plugin: trace, files: [my-trace.jsonl])"
                        ));
                    }
                }
                ShapeKind::Concurrency => match s.concurrency {
                    Some(c) if c > 0 => {}
                    _ => return Err(format!("{at}: shape concurrency needs concurrency ≥ 1")),
                },
            }
            if s.max_concurrency == Some(0) {
                return Err(format!("{at}.max_concurrency must be at least 1"));
            }
            for (name, v) in [("warmup_s", s.warmup_s), ("cooldown_s", s.cooldown_s)] {
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(format!("{at}.{name} must be ≥ 0 seconds, got {v}"));
                }
            }
            if !(s.think_time_ms >= 0.0 && s.think_time_ms.is_finite()) {
                return Err(format!("{at}.think_time_ms must be ≥ 0, got {}", s.think_time_ms));
            }
            s.check_limits(&at)?;
        }
        if max_frame_bytes(self.max_frame_mib).is_none() {
            return Err(format!(
                "max_frame_mib is {}; it must be from {MIN_FRAME_MIB} (1 KiB) to {MAX_FRAME_MIB} (see the limits in docs/load.md)",
                number(self.max_frame_mib)
            ));
        }
        at_most("request.timeout_s", Some(self.request.timeout_s), MAX_SECONDS)?;
        at_most("grace_period_s", Some(self.grace_period_s), MAX_SECONDS)?;
        if !(self.max_send_lag_ms > 0.0 && self.max_send_lag_ms.is_finite()) {
            return Err(format!(
                "max_send_lag_ms must be > 0 ms, got {}: it is how late an arrival may still be sent",
                number(self.max_send_lag_ms)
            ));
        }
        at_most("max_send_lag_ms", Some(self.max_send_lag_ms), MAX_SECONDS * 1000.0)?;
        if !(self.max_encode_lead_s >= 0.1 && self.max_encode_lead_s.is_finite()) {
            return Err(format!(
                "max_encode_lead_s must be at least 0.1 s, got {}: it is how long an encoded request may wait for its send",
                number(self.max_encode_lead_s)
            ));
        }
        if !(self.max_decode_backlog_mib > 0.0 && self.max_decode_backlog_mib.is_finite()) {
            return Err(format!(
                "max_decode_backlog_mib must be > 0, got {}",
                number(self.max_decode_backlog_mib)
            ));
        }
        at_most(
            "max_decode_backlog_mib",
            Some(self.max_decode_backlog_mib),
            MAX_FRAME_MIB * 1024.0,
        )?;
        at_most(
            "request.prompt_tokens",
            Some(f64::from(self.request.prompt_tokens)),
            MAX_TOKENS,
        )?;
        at_most(
            "request.max_tokens",
            Some(f64::from(self.request.max_tokens)),
            MAX_TOKENS,
        )?;
        Ok(())
    }
}

/// Longest time a run's settings may name, in seconds (about 116 days):
/// longer ones cannot be scheduled, and are a typo.
pub const MAX_SECONDS: f64 = 1e7;
/// Highest rate a stage may ask, requests per second: far above what one
/// client can send, and what keeps a stage's schedule countable.
pub const MAX_RATE: f64 = 1e6;
/// Most virtual users or in-flight requests a stage may ask (each is a task
/// and a connection).
pub const MAX_CONCURRENCY: f64 = 100_000.0;
/// Most prompt or output tokens a request may ask.
pub const MAX_TOKENS: f64 = 10_000_000.0;
/// Gamma burstiness, from this to its inverse: beyond, the gaps are all
/// zero or all one huge gap.
pub const MIN_BURSTINESS: f64 = 1e-3;

/// Most gRPC connections: each is a descriptor and a task, and a few
/// carry thousands of calls.
pub const MAX_GRPC_CONNECTIONS: usize = 1024;

/// Smallest and largest frame limit, MiB.
pub const MIN_FRAME_MIB: f64 = 1.0 / 1024.0;
/// See [`MIN_FRAME_MIB`].
pub const MAX_FRAME_MIB: f64 = 1024.0;

/// A frame limit of `mib` in bytes; none if it is out of range.
pub fn max_frame_bytes(mib: f64) -> Option<usize> {
    (MIN_FRAME_MIB..=MAX_FRAME_MIB)
        .contains(&mib)
        .then(|| (mib * f64::from(1u32 << 20)) as usize)
}

/// `v` as a user wrote it: a whole number plainly, 1e300 as that, not as 301 digits.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v}")
    } else {
        format!("{v:?}")
    }
}

/// Refuse `v` of `key` if it is above `max`.
fn at_most(key: &str, v: Option<f64>, max: f64) -> Result<(), String> {
    match v {
        Some(v) if v > max => Err(format!(
            "{key} is {}; at most {max} (see the limits in docs/load.md)",
            number(v)
        )),
        _ => Ok(()),
    }
}

impl Stage {
    /// Upper bounds on what a stage asks, so none panics, hangs or
    /// allocates without bound.
    fn check_limits(&self, at: &str) -> Result<(), String> {
        let limit = |key: &str, v: Option<f64>, max: f64| at_most(&format!("{at}.{key}"), v, max);
        for (key, v) in [
            ("duration_s", self.duration_s),
            ("pause_after_s", Some(self.pause_after_s)),
            ("warmup_s", Some(self.warmup_s)),
            ("cooldown_s", Some(self.cooldown_s)),
            ("burst_s", self.burst_s),
            ("burst_at_s", Some(self.burst_at_s)),
            ("period_s", self.period_s),
        ] {
            limit(key, v, MAX_SECONDS)?;
        }
        limit("think_time_ms", Some(self.think_time_ms), MAX_SECONDS * 1000.0)?;
        for (key, v) in [
            ("rate", self.rate),
            ("from_rate", self.from_rate),
            ("burst_rate", self.burst_rate),
        ] {
            limit(key, v, MAX_RATE)?;
        }
        for (key, v) in [
            ("concurrency", self.concurrency),
            ("from_concurrency", self.from_concurrency),
            ("max_concurrency", self.max_concurrency),
        ] {
            limit(key, v.map(|n| n as f64), MAX_CONCURRENCY)?;
        }
        if let Some(b) = self.burstiness
            && !(MIN_BURSTINESS..=1.0 / MIN_BURSTINESS).contains(&b)
        {
            return Err(format!(
                "{at}.burstiness is {b}; it must be from {MIN_BURSTINESS} to {} (see the limits in docs/load.md)",
                1.0 / MIN_BURSTINESS
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<(), String> {
        let config: RunConfig = serde_yaml_ng::from_str(yaml).map_err(|e| format!("parse: {e}"))?;
        config.validate().map(drop).map_err(|e| e.to_string())
    }

    #[test]
    fn values_past_the_documented_limits_are_refused_naming_the_key() {
        for (yaml, key) in [
            ("request: {timeout_s: 1e20}\n", "request.timeout_s is 1e20"),
            ("grace_period_s: 1e20\n", "grace_period_s is"),
            (
                "request: {prompt_tokens: 4000000000}\n",
                "request.prompt_tokens is 4000000000",
            ),
            (
                "stages: [{shape: constant, rate: 10, duration_s: 1e20}]\n",
                "stages[0].duration_s is",
            ),
            (
                "stages: [{shape: constant, rate: 10, duration_s: 5, warmup_s: 1e20}]\n",
                "stages[0].warmup_s is",
            ),
            (
                "stages: [{shape: constant, rate: 10, duration_s: 5, pause_after_s: 1e20}]\n",
                "stages[0].pause_after_s is",
            ),
            (
                "stages: [{shape: constant, rate: 1e12, duration_s: 5}]\n",
                "stages[0].rate is 1000000000000; at most 1000000",
            ),
            (
                "stages: [{shape: poisson, rate: 1e300, duration_s: 5}]\n",
                "stages[0].rate is",
            ),
            (
                "stages: [{shape: ramp, from_rate: 1, rate: 1e12, duration_s: 5}]\n",
                "stages[0].rate is",
            ),
            (
                "stages: [{shape: burst, rate: 1, burst_rate: 1e15, burst_s: 1, duration_s: 5}]\n",
                "stages[0].burst_rate is",
            ),
            (
                "stages: [{shape: gamma, rate: 1, burstiness: 1e-300, duration_s: 5}]\n",
                "stages[0].burstiness is",
            ),
            (
                "stages: [{shape: concurrency, concurrency: 1000000000, duration_s: 5}]\n",
                "stages[0].concurrency is",
            ),
            ("max_frame_mib: 0\n", "max_frame_mib is 0; it must be from"),
            ("max_send_lag_ms: 0\n", "max_send_lag_ms must be > 0 ms, got 0"),
            (
                "max_encode_lead_s: 0\n",
                "max_encode_lead_s must be at least 0.1 s, got 0",
            ),
            ("max_send_lag_ms: 1e300\n", "max_send_lag_ms is"),
            (
                "max_decode_backlog_mib: -1\n",
                "max_decode_backlog_mib must be > 0, got -1",
            ),
            (
                "stages: [{shape: expression, rate_expr: \"4 - 2e31*sin(t/61)\", duration_s: 600}]\n",
                "stages[0].rate_expr `4 - 2e31*sin(t/61)` reaches 1.99999916538891",
            ),
            ("max_frame_mib: 1e300\n", "max_frame_mib is 1e300;"),
        ] {
            let e = check(yaml).unwrap_err();
            assert!(e.contains(key), "{yaml}: {e}");
        }
        assert!(check("stages: [{shape: constant, rate: 1000000, duration_s: 1e7}]\n").is_ok());
    }

    #[test]
    fn the_defaults_and_every_shipped_shape_validate() {
        assert!(RunConfig::default().validate().is_ok());
        for yaml in [
            "stages: [{shape: constant, rate: 10, duration_s: 1}]",
            "stages: [{shape: poisson, rate: 10, requests: 5}]",
            "stages: [{shape: gamma, rate: 10, burstiness: 0.5, duration_s: 1}]",
            "stages: [{shape: concurrency, concurrency: 4, requests: 5}]",
            "stages: [{shape: ramp, from_concurrency: 1, concurrency: 8, duration_s: 3}]",
        ] {
            assert_eq!(check(yaml), Ok(()), "{yaml}");
        }
    }

    #[test]
    fn a_bad_value_is_refused_naming_its_key() {
        for (yaml, key) in [
            ("stages: []", "stages"),
            (
                "target: ftp://x\nstages: [{shape: constant, rate: 1, requests: 1}]",
                "target",
            ),
            ("request: {max_tokens: 0}", "request.max_tokens"),
            ("request: {timeout_s: 0}", "request.timeout_s"),
            ("grace_period_s: -1", "grace_period_s"),
            ("max_error_rate: 1.5", "max_error_rate"),
            ("threshold_grace_s: -1", "threshold_grace_s"),
            ("stop_on_overload_after_s: -1", "stop_on_overload_after_s"),
            ("abort_on_threshold: true", "abort_on_threshold"),
            ("report: {thresholds: [\"ttft p99 < 3h\"]}", "report.thresholds"),
            ("stages: [{shape: constant, rate: 10}]", "stages[0]"),
            ("stages: [{shape: constant, rate: 0, requests: 1}]", "stages[0].rate"),
            (
                "stages: [{shape: constant, rate: 1, duration_s: -2}]",
                "stages[0].duration_s",
            ),
            (
                "stages: [{shape: constant, rate: 1, requests: 1}, {shape: poisson, requests: 1}]",
                "stages[1]",
            ),
            ("stages: [{shape: gamma, rate: 1, requests: 1}]", "burstiness"),
            (
                "stages: [{shape: ramp, from_concurrency: 1, concurrency: 8}]",
                "stages[0]",
            ),
        ] {
            let message = check(yaml).expect_err(yaml);
            assert!(message.contains(key), "{yaml}: `{message}` does not name `{key}`");
        }
    }

    #[test]
    fn the_error_names_its_key_and_each_stage_gets_its_kind_once() {
        let config: RunConfig = serde_yaml_ng::from_str(
            "stages: [{shape: constant, rate: 1, requests: 1}, {shape: poisson, rate: 0, requests: 1}]",
        )
        .unwrap();
        assert_eq!(config.validate().unwrap_err().key, "stages[1].rate");
        let config: RunConfig = serde_yaml_ng::from_str(
            "stages: [{shape: constant, rate: 1, requests: 1}, {shape: concurrency, concurrency: 2, requests: 1}, \
             {shape: ramp, from_concurrency: 1, concurrency: 3, duration_s: 1}, {shape: ramp, from_rate: 1, rate: 3, duration_s: 1}]",
        )
        .unwrap();
        let plan = config.plan().unwrap();
        assert_eq!(
            plan.kinds,
            vec![
                StageKind::Arrivals,
                StageKind::Users,
                StageKind::Users,
                StageKind::Arrivals
            ]
        );
    }

    #[test]
    fn an_unknown_key_is_a_parse_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.yaml");
        std::fs::write(&path, "stages: [{shape: constant, rate: 1, requests: 1}]\nratee: 3\n").unwrap();
        let e = RunConfig::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("run.yaml") && e.contains("ratee"), "{e}");
    }
}
