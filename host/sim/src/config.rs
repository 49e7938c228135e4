//! The simulator's configuration: a YAML file, overridden by flags.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A duration distribution in milliseconds. In YAML a one-key map:
/// `{constant: 50}`, `{normal: {mean: 50, stddev: 5}}`,
/// `{lognormal: {median: 50, sigma: 0.3}}` or `{uniform: {min: 20, max: 80}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "DistMap", into = "DistMap")]
pub enum Dist {
    /// Always this many milliseconds.
    Constant(f64),
    /// Normal, truncated at 0.
    Normal {
        /// Mean, ms.
        mean: f64,
        /// Standard deviation, ms.
        stddev: f64,
    },
    /// Log-normal given by its median and the sigma of the underlying normal.
    Lognormal {
        /// Median, ms.
        median: f64,
        /// Sigma of ln(x).
        sigma: f64,
    },
    /// Uniform between `min` and `max`.
    Uniform {
        /// Lower bound, ms.
        min: f64,
        /// Upper bound, ms.
        max: f64,
    },
}

/// How a [`Dist`] is written: a map with exactly one of these keys. (serde's
/// own enum encoding would need YAML tags like `!normal`.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DistMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    constant: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    normal: Option<NormalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lognormal: Option<LognormalSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uniform: Option<UniformSpec>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalSpec {
    mean: f64,
    stddev: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LognormalSpec {
    median: f64,
    sigma: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UniformSpec {
    min: f64,
    max: f64,
}

impl TryFrom<DistMap> for Dist {
    type Error = String;

    fn try_from(m: DistMap) -> Result<Dist, String> {
        let mut found = Vec::new();
        if let Some(v) = m.constant {
            found.push(Dist::Constant(v));
        }
        if let Some(n) = m.normal {
            found.push(Dist::Normal {
                mean: n.mean,
                stddev: n.stddev,
            });
        }
        if let Some(l) = m.lognormal {
            found.push(Dist::Lognormal {
                median: l.median,
                sigma: l.sigma,
            });
        }
        if let Some(u) = m.uniform {
            found.push(Dist::Uniform { min: u.min, max: u.max });
        }
        match found.as_slice() {
            [d] => Ok(*d),
            _ => Err("a distribution needs exactly one of `constant`, `normal`, `lognormal`, `uniform`".into()),
        }
    }
}

impl From<Dist> for DistMap {
    fn from(d: Dist) -> DistMap {
        let mut m = DistMap::default();
        match d {
            Dist::Constant(v) => m.constant = Some(v),
            Dist::Normal { mean, stddev } => m.normal = Some(NormalSpec { mean, stddev }),
            Dist::Lognormal { median, sigma } => m.lognormal = Some(LognormalSpec { median, sigma }),
            Dist::Uniform { min, max } => m.uniform = Some(UniformSpec { min, max }),
        }
        m
    }
}

impl Dist {
    /// The mean of the distribution, ms.
    pub fn mean(&self) -> f64 {
        match *self {
            Dist::Constant(v) => v,
            Dist::Normal { mean, .. } => mean,
            Dist::Lognormal { median, sigma } => median * (sigma * sigma / 2.0).exp(),
            Dist::Uniform { min, max } => (min + max) / 2.0,
        }
    }

    fn check(&self, field: &str) -> Result<(), String> {
        let ok = match *self {
            Dist::Constant(v) => v >= 0.0,
            Dist::Normal { mean, stddev } => mean >= 0.0 && stddev >= 0.0,
            Dist::Lognormal { median, sigma } => median > 0.0 && sigma >= 0.0,
            Dist::Uniform { min, max } => min >= 0.0 && max >= min,
        };
        let finite = match *self {
            Dist::Constant(v) => v.is_finite(),
            Dist::Normal { mean, stddev } => mean.is_finite() && stddev.is_finite(),
            Dist::Lognormal { median, sigma } => median.is_finite() && sigma.is_finite(),
            Dist::Uniform { min, max } => min.is_finite() && max.is_finite(),
        };
        if ok && finite {
            Ok(())
        } else {
            Err(format!(
                "{field}: {self:?} is not a valid duration distribution (values must be finite and ≥ 0, max ≥ min, median > 0)"
            ))
        }
    }
}

/// Whose Prometheus metric names `/metrics` uses, so server-metric
/// collection can be tried against the simulator as against that server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricNames {
    /// `vllm:num_requests_waiting`, `vllm:time_to_first_token_seconds`, ...
    #[default]
    Vllm,
    /// `sglang:num_queue_reqs`, `sglang:time_to_first_token_seconds`, ...
    Sglang,
    /// `tgi_queue_size`, `tgi_request_success`, `tgi_request_duration`, ...
    Tgi,
    /// Triton's `nv_inference_*` and TensorRT-LLM's `nv_trt_llm_*`.
    Triton,
    /// `jetstream_prefill_backlog_size`, `jetstream_time_to_first_token`, ...
    Jetstream,
}

impl MetricNames {
    /// The server a first-party codec speaks to, for the embedded simulator
    /// of a run that names no target.
    pub fn of_codec(codec: &str) -> MetricNames {
        match codec {
            "tgi" => MetricNames::Tgi,
            "sglang-native" => MetricNames::Sglang,
            "kserve-v2-http" | "kserve-v2-grpc" => MetricNames::Triton,
            "jetstream" => MetricNames::Jetstream,
            _ => MetricNames::Vllm,
        }
    }
}

/// How response timing is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Continuous batching with a KV-cache budget: saturates like a real server.
    Batching,
    /// Independent requests with TTFT and ITL drawn from distributions.
    Plain,
    /// No delays at all: for measuring the client.
    Zero,
}

/// The continuous-batching performance model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Most sequences in the running batch.
    pub max_num_seqs: usize,
    /// KV-cache budget in tokens (prompt + output of every running sequence).
    pub kv_cache_tokens: u64,
    /// Fixed cost of one engine step, ms.
    pub step_base_ms: f64,
    /// Added cost per sequence in the batch, ms.
    pub step_per_seq_ms: f64,
    /// Prefill cost per prompt token admitted in a step, ms.
    pub prefill_per_token_ms: f64,
    /// Reuse cached prompt prefixes (cached tokens need no prefill).
    pub prefix_cache: bool,
    /// Tokens per prefix-cache block.
    pub prefix_block_tokens: usize,
    /// Most blocks the prefix cache holds (least recently used leave first).
    pub prefix_cache_blocks: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            max_num_seqs: 64,
            kv_cache_tokens: 262_144,
            step_base_ms: 8.0,
            step_per_seq_ms: 0.15,
            prefill_per_token_ms: 0.02,
            prefix_cache: true,
            prefix_block_tokens: 16,
            prefix_cache_blocks: 16_384,
        }
    }
}

/// The plain timing model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlainConfig {
    /// Time to first token.
    pub ttft_ms: Dist,
    /// Time between tokens.
    pub itl_ms: Dist,
}

impl Default for PlainConfig {
    fn default() -> Self {
        PlainConfig {
            ttft_ms: Dist::Constant(50.0),
            itl_ms: Dist::Constant(10.0),
        }
    }
}

/// Replicas added and removed from queue depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscalerConfig {
    /// Turn the autoscaler on.
    pub enabled: bool,
    /// Fewest replicas.
    pub min_replicas: usize,
    /// Most replicas.
    pub max_replicas: usize,
    /// Scale up while waiting requests per ready replica exceed this.
    pub scale_up_waiting: f64,
    /// Scale down while requests (running + waiting) per ready replica stay below this.
    pub scale_down_load: f64,
    /// How long a condition must hold before acting, seconds.
    pub stabilization_s: f64,
    /// Time from deciding to add a replica to it serving (a cold start), seconds.
    pub provision_delay_s: f64,
    /// How often the autoscaler looks, seconds.
    pub interval_s: f64,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            enabled: false,
            min_replicas: 1,
            max_replicas: 4,
            scale_up_waiting: 8.0,
            scale_down_load: 1.0,
            stabilization_s: 5.0,
            provision_delay_s: 10.0,
            interval_s: 1.0,
        }
    }
}

/// A fault that happens to a fraction of requests, with a duration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedFault {
    /// Fraction of requests, 0 to 1.
    pub rate: f64,
    /// How long, ms.
    pub ms: f64,
}

/// Faults injected on demand, each on a fraction of requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Answer 429 Too Many Requests.
    pub http_429: f64,
    /// Answer 500 Internal Server Error.
    pub http_500: f64,
    /// Cut the connection in the middle of a stream.
    pub reset_midstream: f64,
    /// Pause in the middle of a stream.
    pub stall: Option<TimedFault>,
    /// Send one frame that is not valid JSON.
    pub malformed_frame: f64,
    /// End the stream without `[DONE]`.
    pub missing_done: f64,
    /// End the stream without a finish reason.
    pub missing_finish_reason: f64,
    /// Delay the response headers and first byte.
    pub slow_first_byte: Option<TimedFault>,
}

/// Everything the simulator can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Model name served.
    pub model: String,
    /// Seed for output text, lengths, timings and faults.
    pub seed: u64,
    /// Output length when a request gives no `max_tokens`.
    pub default_max_tokens: u32,
    /// Natural output length when `ignore_eos` is off (capped by
    /// `max_tokens`); none: always `max_tokens`.
    pub output_tokens: Option<Dist>,
    /// Tokens per streamed chunk (vLLM's `--stream-interval`).
    pub stream_interval: u32,
    /// Timing model.
    pub mode: Mode,
    /// Whose metric names `/metrics` uses; none: vLLM's (or, for the
    /// embedded simulator, those of the server the run's codec speaks to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric_names: Option<MetricNames>,
    /// The batching model's parameters.
    pub batching: BatchingConfig,
    /// The plain model's parameters.
    pub plain: PlainConfig,
    /// Replicas behind the port, served round-robin.
    pub replicas: usize,
    /// Add and remove replicas from queue depth.
    pub autoscaler: AutoscalerConfig,
    /// Faults on demand.
    pub faults: FaultConfig,
    /// Write the true send time of every frame to this JSON Lines file.
    pub ground_truth: Option<std::path::PathBuf>,
    /// Serve HTTPS (h2 and http/1.1 by ALPN) with this certificate and key.
    pub tls: Option<ServerTls>,
    /// Require `Authorization: Bearer <api_key>` on generation requests, as
    /// vLLM's `--api-key` and hosted APIs do: any other answer is a 401
    /// naming the key it got, as OpenAI's does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The embeddings endpoint (`POST /v1/embeddings`).
    pub embeddings: crate::embed::EmbeddingsConfig,
    /// The rerank endpoint (`POST /rerank`, `/v1/rerank`, `/v2/rerank`).
    pub rerank: crate::embed::RerankConfig,
    /// The image generation endpoint (`POST /v1/images/generations`).
    pub images: crate::images::ImagesConfig,
    /// Prompt tokens of the images and audio in chat requests.
    pub media: crate::media::MediaConfig,
}

/// PEM files for serving TLS.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// Certificate chain (PEM).
    pub cert_file: std::path::PathBuf,
    /// Private key (PEM).
    pub key_file: std::path::PathBuf,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            host: "127.0.0.1".into(),
            port: 8000,
            model: "barrage-sim".into(),
            seed: 0,
            default_max_tokens: 128,
            output_tokens: None,
            stream_interval: 1,
            mode: Mode::Batching,
            metric_names: None,
            batching: BatchingConfig::default(),
            plain: PlainConfig::default(),
            replicas: 1,
            autoscaler: AutoscalerConfig::default(),
            faults: FaultConfig::default(),
            ground_truth: None,
            tls: None,
            api_key: None,
            embeddings: Default::default(),
            rerank: Default::default(),
            images: Default::default(),
            media: Default::default(),
        }
    }
}

/// Most output tokens one request may ask of the simulator.
pub const MAX_OUTPUT_TOKENS: u32 = 10_000_000;

/// Most replicas the simulator runs.
pub const MAX_REPLICAS: usize = 1024;

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read simulator config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not match the schema.
    #[error("simulator config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Where and what, from the YAML parser.
        message: String,
    },
    /// A value is out of range.
    #[error("simulator config {origin}: {message}")]
    Invalid {
        /// The file or `flags`.
        origin: String,
        /// Which field and what is expected.
        message: String,
    },
}

impl SimConfig {
    /// Read a YAML file.
    pub fn from_file(path: &Path) -> Result<SimConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parse YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<SimConfig, ConfigError> {
        let config: SimConfig = if text.trim().is_empty() {
            SimConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Parse {
                path: origin.to_string(),
                message: e.to_string(),
            })?
        };
        config.check().map_err(|message| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Check ranges; the error names the field and what it accepts.
    pub fn validate(&self) -> Result<(), barrage_core::invalid::InvalidKey> {
        self.check().map_err(barrage_core::invalid::InvalidKey::new)
    }

    fn check(&self) -> Result<(), String> {
        self.embeddings.validate()?;
        self.rerank.validate()?;
        self.images.validate()?;
        self.media.validate()?;
        let b = &self.batching;
        let positive = [
            ("batching.step_base_ms", b.step_base_ms),
            ("batching.step_per_seq_ms", b.step_per_seq_ms),
            ("batching.prefill_per_token_ms", b.prefill_per_token_ms),
        ];
        for (field, v) in positive {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{field} must be a number ≥ 0, got {v}"));
            }
        }
        if b.max_num_seqs == 0 {
            return Err("batching.max_num_seqs must be at least 1".into());
        }
        if b.kv_cache_tokens == 0 {
            return Err("batching.kv_cache_tokens must be at least 1".into());
        }
        if b.prefix_block_tokens == 0 {
            return Err("batching.prefix_block_tokens must be at least 1".into());
        }
        self.plain.ttft_ms.check("plain.ttft_ms")?;
        self.plain.itl_ms.check("plain.itl_ms")?;
        if let Some(d) = &self.output_tokens {
            d.check("output_tokens")?;
        }
        if self.stream_interval == 0 {
            return Err("stream_interval must be at least 1".into());
        }
        if !(1..=MAX_OUTPUT_TOKENS).contains(&self.default_max_tokens) {
            return Err(format!(
                "default_max_tokens must be from 1 to {MAX_OUTPUT_TOKENS}, got {}",
                self.default_max_tokens
            ));
        }
        if self.replicas == 0 {
            return Err("replicas must be at least 1".into());
        }
        let a = &self.autoscaler;
        if a.enabled && (a.min_replicas == 0 || a.max_replicas < a.min_replicas) {
            return Err("autoscaler: need 1 ≤ min_replicas ≤ max_replicas".into());
        }
        for (field, n) in [("replicas", self.replicas), ("autoscaler.max_replicas", a.max_replicas)] {
            if n > MAX_REPLICAS {
                return Err(format!(
                    "{field} is {n}; at most {MAX_REPLICAS}, each a step loop of its own (see the limits in docs/load.md)"
                ));
            }
        }
        if a.enabled && !(a.interval_s > 0.0 && a.stabilization_s >= 0.0 && a.provision_delay_s >= 0.0) {
            return Err("autoscaler: interval_s must be > 0, stabilization_s and provision_delay_s ≥ 0".into());
        }
        let f = &self.faults;
        let rates = [
            ("faults.http_429", f.http_429),
            ("faults.http_500", f.http_500),
            ("faults.reset_midstream", f.reset_midstream),
            ("faults.malformed_frame", f.malformed_frame),
            ("faults.missing_done", f.missing_done),
            ("faults.missing_finish_reason", f.missing_finish_reason),
            ("faults.stall.rate", f.stall.map_or(0.0, |s| s.rate)),
            ("faults.slow_first_byte.rate", f.slow_first_byte.map_or(0.0, |s| s.rate)),
        ];
        for (field, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "{field} is a fraction of requests: a number from 0 to 1, got {rate}"
                ));
            }
        }
        if f.http_429 + f.http_500 > 1.0 {
            return Err("faults.http_429 + faults.http_500 must not exceed 1".into());
        }
        for (field, fault) in [
            ("faults.stall.ms", f.stall),
            ("faults.slow_first_byte.ms", f.slow_first_byte),
        ] {
            if let Some(t) = fault
                && !(t.ms.is_finite() && t.ms >= 0.0)
            {
                return Err(format!("{field} must be a number of milliseconds ≥ 0, got {}", t.ms));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_read_and_write_as_one_key_maps() {
        let c = SimConfig::from_yaml(
            "plain:\n  ttft_ms: {lognormal: {median: 80, sigma: 0.4}}\n  itl_ms: {constant: 5}\noutput_tokens: {uniform: {min: 1, max: 9}}\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            c.plain.ttft_ms,
            Dist::Lognormal {
                median: 80.0,
                sigma: 0.4
            }
        );
        assert_eq!(c.plain.itl_ms, Dist::Constant(5.0));
        let again = SimConfig::from_yaml(&serde_yaml_ng::to_string(&c).unwrap(), "t").unwrap();
        assert_eq!(again, c);
        let err =
            SimConfig::from_yaml("plain:\n  ttft_ms: {constant: 5, uniform: {min: 1, max: 2}}\n", "t").unwrap_err();
        assert!(err.to_string().contains("exactly one of"), "{err}");
    }
}
