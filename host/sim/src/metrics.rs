//! The simulator's Prometheus `/metrics`, with vLLM's metric names, or
//! SGLang's, TGI's, Triton's or JetStream's.
//!
//! Written out by hand: vLLM's names contain `:` and carry their own unit
//! suffixes, which the Prometheus client crates rewrite; here they are
//! exactly what vLLM exposes, so server-metric collection can be tested
//! against the simulator as if it were vLLM.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::MetricNames;

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

    /// Sum of observations, seconds.
    pub fn sum(&self) -> f64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).sum
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
    names: MetricNames,
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
    /// Fresh metrics for `model`, written in `names`.
    pub fn new(model: &str, names: MetricNames) -> Metrics {
        Metrics {
            model: model.to_string(),
            names,
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

    /// The text exposition format, in the configured server's names.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let l = match self.names {
            MetricNames::Triton => format!("model=\"{}\",version=\"1\"", self.model),
            // JetStream labels every series with its server's id, and the
            // model name with `-` made `_`.
            MetricNames::Jetstream => format!("id=\"barrage-sim\",model_name=\"{}\"", self.model.replace('-', "_")),
            _ => format!("model_name=\"{}\"", self.model),
        };
        let mut w = Writer {
            out: &mut out,
            labels: &l,
        };
        match self.names {
            MetricNames::Vllm => self.vllm(&mut w),
            MetricNames::Sglang => self.sglang(&mut w),
            MetricNames::Tgi => self.tgi(&mut w),
            MetricNames::Triton => self.triton(&mut w),
            MetricNames::Jetstream => self.jetstream(&mut w),
        }
        self.own(&mut w);
        out
    }

    fn successes(&self) -> u64 {
        get(&self.success_stop) + get(&self.success_length)
    }

    fn kv_usage(&self) -> f64 {
        get(&self.kv_used) as f64 / get(&self.kv_capacity).max(1) as f64
    }

    fn vllm(&self, w: &mut Writer<'_>) {
        w.gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            get(&self.running),
        );
        w.gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            get(&self.waiting),
        );
        let usage = self.kv_usage();
        w.gauge(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            usage,
        );
        w.gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            usage,
        );
        w.counter(
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            get(&self.prompt_tokens),
        );
        w.counter(
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            get(&self.generation_tokens),
        );
        w.counter(
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in tokens.",
            get(&self.prefix_cache_hits),
        );
        w.counter(
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in tokens.",
            get(&self.prefix_cache_queries),
        );
        w.head(
            "vllm:request_success_total",
            "Count of successfully processed requests.",
            "counter",
        );
        for (reason, n) in [("stop", &self.success_stop), ("length", &self.success_length)] {
            w.series(
                "vllm:request_success_total",
                &format!("finished_reason=\"{reason}\""),
                get(n),
            );
        }
        w.histogram(
            &self.ttft,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            1.0,
        );
        w.histogram(
            &self.itl,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            1.0,
        );
        w.histogram(
            &self.itl,
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds (older name).",
            1.0,
        );
        w.histogram(
            &self.e2e,
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            1.0,
        );
    }

    fn sglang(&self, w: &mut Writer<'_>) {
        w.gauge(
            "sglang:num_running_reqs",
            "The number of running requests.",
            get(&self.running),
        );
        w.gauge(
            "sglang:num_queue_reqs",
            "The number of requests in the waiting queue.",
            get(&self.waiting),
        );
        w.gauge("sglang:token_usage", "The token usage.", self.kv_usage());
        let queries = get(&self.prefix_cache_queries);
        let hit_rate = if queries == 0 {
            0.0
        } else {
            get(&self.prefix_cache_hits) as f64 / queries as f64
        };
        w.gauge("sglang:cache_hit_rate", "The prefix cache hit rate.", hit_rate);
        w.counter(
            "sglang:prompt_tokens_total",
            "Number of prefill tokens processed.",
            get(&self.prompt_tokens),
        );
        w.counter(
            "sglang:generation_tokens_total",
            "Number of generation tokens processed.",
            get(&self.generation_tokens),
        );
        w.counter(
            "sglang:num_requests_total",
            "Number of requests processed.",
            self.successes(),
        );
        w.histogram(
            &self.ttft,
            "sglang:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            1.0,
        );
        w.histogram(
            &self.itl,
            "sglang:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            1.0,
        );
        w.histogram(
            &self.e2e,
            "sglang:e2e_request_latency_seconds",
            "Histogram of End-to-end request latency in seconds",
            1.0,
        );
    }

    fn tgi(&self, w: &mut Writer<'_>) {
        // TGI's exporter writes counters without `_total` and no labels.
        let mut unlabelled = Writer { out: w.out, labels: "" };
        let w = &mut unlabelled;
        w.gauge("tgi_queue_size", "Requests waiting in the queue.", get(&self.waiting));
        w.gauge(
            "tgi_batch_current_size",
            "Requests in the current batch.",
            get(&self.running),
        );
        w.counter("tgi_request_count", "Requests received.", get(&self.requests_received));
        w.counter("tgi_request_success", "Requests answered in full.", self.successes());
        w.histogram(&self.e2e, "tgi_request_duration", "Request duration in seconds.", 1.0);
        w.histogram(
            &self.itl,
            "tgi_request_mean_time_per_token_duration",
            "Time between tokens in seconds.",
            1.0,
        );
    }

    fn triton(&self, w: &mut Writer<'_>) {
        let success = self.successes();
        w.counter(
            "nv_inference_request_success",
            "Number of successful inference requests, all batch sizes",
            success,
        );
        w.counter(
            "nv_inference_count",
            "Number of inferences performed (does not include cached requests)",
            success,
        );
        w.counter(
            "nv_inference_exec_count",
            "Number of model executions performed",
            success,
        );
        w.gauge(
            "nv_inference_pending_request_count",
            "Instantaneous number of pending requests awaiting execution per-model.",
            get(&self.waiting),
        );
        w.counter(
            "nv_inference_request_duration_us",
            "Cumulative inference request duration in microseconds (includes cached requests)",
            (self.e2e.sum() * 1e6) as u64,
        );
        w.histogram(
            &self.ttft,
            "nv_inference_first_response_histogram_ms",
            "Duration from request to first response in milliseconds",
            1000.0,
        );
        w.head("nv_trt_llm_request_metrics", "TRT LLM request metrics", "gauge");
        for (kind, n) in [("active", get(&self.running)), ("waiting", get(&self.waiting))] {
            w.series("nv_trt_llm_request_metrics", &format!("request_type=\"{kind}\""), n);
        }
        w.head(
            "nv_trt_llm_kv_cache_block_metrics",
            "TRT LLM KV cache block metrics",
            "gauge",
        );
        for (kind, n) in [("used", get(&self.kv_used)), ("max", get(&self.kv_capacity))] {
            w.series(
                "nv_trt_llm_kv_cache_block_metrics",
                &format!("kv_cache_block_type=\"{kind}\""),
                n,
            );
        }
    }

    fn jetstream(&self, w: &mut Writer<'_>) {
        w.gauge(
            "jetstream_prefill_backlog_size",
            "Size of prefill queue",
            get(&self.waiting),
        );
        w.gauge(
            "num_requests_waiting",
            "Number of requests waiting to be processed for inference.",
            get(&self.waiting),
        );
        w.gauge(
            "kv_cache_utilization_perc",
            "kv-cache utilization % by the requests under processing.",
            self.kv_usage(),
        );
        // prometheus_client adds `_total` to a counter's name.
        w.counter(
            "jetstream_request_success_count_total",
            "Number of requests successfully completed",
            self.successes(),
        );
        w.histogram(
            &self.ttft,
            "jetstream_time_to_first_token",
            "Time to first token per request in seconds",
            1.0,
        );
        w.histogram(
            &self.itl,
            "jetstream_time_per_output_token",
            "Average time per output token per request in seconds",
            1.0,
        );
        w.histogram(
            &self.e2e,
            "jetstream_time_per_request",
            "End to end request latency in seconds",
            1.0,
        );
    }

    /// The simulator's own series, whoever it poses as.
    fn own(&self, w: &mut Writer<'_>) {
        w.gauge("barrage_sim:replicas", "Replicas serving.", get(&self.replicas));
        w.counter(
            "barrage_sim:requests_received_total",
            "Requests received on generation endpoints.",
            get(&self.requests_received),
        );
        w.head("barrage_sim:faults_total", "Faults injected, by kind.", "counter");
        for (kind, n) in super::server::Fault::ALL.iter().zip(&self.faults) {
            w.series("barrage_sim:faults_total", &format!("kind=\"{}\"", kind.name()), get(n));
        }
        w.head(
            "barrage_sim:http_requests_total",
            "Requests by HTTP version.",
            "counter",
        );
        for (v, n) in ["1.1", "2"].iter().zip(&self.by_http_version) {
            w.series("barrage_sim:http_requests_total", &format!("version=\"{v}\""), get(n));
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Writes exposition lines, every series with the same leading labels.
struct Writer<'a> {
    out: &'a mut String,
    labels: &'a str,
}

impl Writer<'_> {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One series, with `extra` labels after the common ones.
    fn series(&mut self, name: &str, extra: &str, v: impl std::fmt::Display) {
        let sep = if self.labels.is_empty() || extra.is_empty() {
            ""
        } else {
            ","
        };
        let labels = format!("{}{sep}{extra}", self.labels);
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {v}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {v}");
        }
    }

    fn gauge(&mut self, name: &str, help: &str, v: impl std::fmt::Display) {
        self.head(name, help, "gauge");
        self.series(name, "", v);
    }

    fn counter(&mut self, name: &str, help: &str, v: u64) {
        self.head(name, help, "counter");
        self.series(name, "", v);
    }

    /// A histogram whose seconds are multiplied by `unit` (1000: milliseconds).
    fn histogram(&mut self, h: &Histogram, name: &str, help: &str, unit: f64) {
        self.head(name, help, "histogram");
        let s = h.inner.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (b, c) in h.bounds.iter().zip(&s.counts) {
            cumulative += c;
            self.series(&bucket, &format!("le=\"{}\"", b * unit), cumulative);
        }
        self.series(&bucket, "le=\"+Inf\"", s.count);
        self.series(&format!("{name}_sum"), "", s.sum * unit);
        self.series(&format!("{name}_count"), "", s.count);
    }
}
