//! The simulator's Prometheus `/metrics`, with vLLM's metric names.
//!
//! Written out by hand: vLLM's names contain `:` and carry their own unit
//! suffixes, which the Prometheus client crates rewrite; here they are
//! exactly what vLLM exposes, so server-metric collection can be tested
//! against the simulator as if it were vLLM.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A cumulative histogram with fixed bucket bounds (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramState>,
}

#[derive(Default)]
struct HistogramState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            inner: Mutex::new(HistogramState {
                counts: vec![0; bounds.len()],
                ..Default::default()
            }),
        }
    }

    /// Record one observation, seconds.
    pub fn observe(&self, v: f64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = self.bounds.iter().position(|&b| v <= b) {
            s.counts[i] += 1;
        }
        s.sum += v;
        s.count += 1;
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).count
    }

    fn write(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&s.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", s.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", s.count);
    }
}

// vLLM's bucket bounds.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
];
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0,
    1920.0, 7680.0,
];

/// Every metric the simulator exposes.
pub struct Metrics {
    model: String,
    /// Sequences in running batches.
    pub running: AtomicU64,
    /// Requests queued.
    pub waiting: AtomicU64,
    /// KV-cache tokens in use (of `kv_capacity`).
    pub kv_used: AtomicU64,
    /// KV-cache capacity over all ready replicas.
    pub kv_capacity: AtomicU64,
    /// Prompt tokens of finished prefills.
    pub prompt_tokens: AtomicU64,
    /// Output tokens sent.
    pub generation_tokens: AtomicU64,
    /// Prompt tokens served from the prefix cache.
    pub prefix_cache_hits: AtomicU64,
    /// Prompt tokens looked up in the prefix cache.
    pub prefix_cache_queries: AtomicU64,
    /// Requests answered in full, by finish reason `stop`.
    pub success_stop: AtomicU64,
    /// Requests answered in full, by finish reason `length`.
    pub success_length: AtomicU64,
    /// Requests received on the generation endpoints.
    pub requests_received: AtomicU64,
    /// Faults injected, by kind (see `Fault::ALL`).
    pub faults: [AtomicU64; super::server::Fault::ALL.len()],
    /// Ready replicas.
    pub replicas: AtomicU64,
    /// Requests by HTTP version: [HTTP/1.x, HTTP/2].
    pub by_http_version: [AtomicU64; 2],
    /// Time to first token.
    pub ttft: Histogram,
    /// Time between tokens.
    pub itl: Histogram,
    /// Arrival to last token.
    pub e2e: Histogram,
}

impl Metrics {
    /// Fresh metrics for `model`.
    pub fn new(model: &str) -> Metrics {
        Metrics {
            model: model.to_string(),
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            kv_used: AtomicU64::new(0),
            kv_capacity: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            prefix_cache_queries: AtomicU64::new(0),
            success_stop: AtomicU64::new(0),
            success_length: AtomicU64::new(0),
            requests_received: AtomicU64::new(0),
            faults: Default::default(),
            replicas: AtomicU64::new(0),
            by_http_version: Default::default(),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let l = format!("model_name=\"{}\"", self.model);
        let mut out = String::with_capacity(8192);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let gauge = |out: &mut String, name: &str, help: &str, v: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{l}}} {v}");
        };
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            get(&self.running).to_string(),
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            get(&self.waiting).to_string(),
        );
        let cap = get(&self.kv_capacity).max(1) as f64;
        let usage = get(&self.kv_used) as f64 / cap;
        gauge(
            &mut out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            usage.to_string(),
        );
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            usage.to_string(),
        );
        gauge(
            &mut out,
            "barrage_sim:replicas",
            "Replicas serving.",
            get(&self.replicas).to_string(),
        );
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{l}}} {v}");
        };
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            get(&self.prompt_tokens),
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            get(&self.generation_tokens),
        );
        counter(
            &mut out,
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in tokens.",
            get(&self.prefix_cache_hits),
        );
        counter(
            &mut out,
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in tokens.",
            get(&self.prefix_cache_queries),
        );
        counter(
            &mut out,
            "barrage_sim:requests_received_total",
            "Requests received on generation endpoints.",
            get(&self.requests_received),
        );
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter"
        );
        let _ = writeln!(
            out,
            "vllm:request_success_total{{{l},finished_reason=\"stop\"}} {}",
            get(&self.success_stop)
        );
        let _ = writeln!(
            out,
            "vllm:request_success_total{{{l},finished_reason=\"length\"}} {}",
            get(&self.success_length)
        );
        let _ = writeln!(
            out,
            "# HELP barrage_sim:faults_total Faults injected, by kind.\n# TYPE barrage_sim:faults_total counter"
        );
        for (kind, n) in super::server::Fault::ALL.iter().zip(&self.faults) {
            let _ = writeln!(
                out,
                "barrage_sim:faults_total{{{l},kind=\"{}\"}} {}",
                kind.name(),
                get(n)
            );
        }
        let _ = writeln!(
            out,
            "# HELP barrage_sim:http_requests_total Requests by HTTP version.\n# TYPE barrage_sim:http_requests_total counter"
        );
        for (v, n) in ["1.1", "2"].iter().zip(&self.by_http_version) {
            let _ = writeln!(out, "barrage_sim:http_requests_total{{{l},version=\"{v}\"}} {}", get(n));
        }
        self.ttft.write(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &l,
        );
        self.itl.write(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &l,
        );
        self.itl.write(
            &mut out,
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds (older name).",
            &l,
        );
        self.e2e.write(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            &l,
        );
        out
    }
}
