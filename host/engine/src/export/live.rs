//! The run's metrics as Prometheus families (`prometheus-client`): what
//! the records thread adds with each record, what the pacer adds at each
//! stage's end, and what is read off the load engine's live counters at
//! each scrape. The names are listed in `docs/metrics.md`.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::load::shared::Counters;
use crate::metrics::{Record, ScheduleCounts, Status};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabel {
    stage: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    stage: usize,
    outcome: &'static str,
}

/// Seconds. The same bounds as vLLM's own histograms for these
/// quantities (`vllm/v1/metrics/loggers.py`), so a client and a server
/// histogram can be set side by side in one panel, with finer buckets below
/// 10 ms for the fast servers (and simulator) inter-token gaps come from.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
    160.0, 640.0, 2560.0,
];
const TOKEN_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0, 20.0, 40.0, 80.0,
];
const REQUEST_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// Send lag is the client's own error: microseconds to a second.
const LAG_BUCKETS: &[f64] = &[
    0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The families, registered once for the run.
pub(super) struct LiveMetrics {
    pub registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    scheduled: Family<StageLabel, Counter>,
    dropped: Family<StageLabel, Counter>,
    not_sent: Family<StageLabel, Counter>,
    input_tokens: Family<StageLabel, Counter>,
    output_tokens: Family<StageLabel, Counter>,
    ttft: Histograms,
    inter_token: Histograms,
    inter_chunk: Histograms,
    tpot: Histograms,
    e2e: Histograms,
    duration: Histograms,
    send_lag: Histograms,
    achieved: Gauge<f64, std::sync::atomic::AtomicU64>,
    stage: Gauge,
    /// The load engine's live counters, once a run has them.
    pub counters: Arc<OnceLock<Arc<Counters>>>,
}

fn ttft_histogram() -> Histogram {
    Histogram::new(TTFT_BUCKETS.iter().copied())
}
fn token_histogram() -> Histogram {
    Histogram::new(TOKEN_BUCKETS.iter().copied())
}
fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS.iter().copied())
}
fn lag_histogram() -> Histogram {
    Histogram::new(LAG_BUCKETS.iter().copied())
}

type Histograms = Family<StageLabel, Histogram, fn() -> Histogram>;

impl LiveMetrics {
    /// The families, each sample carrying `identity` as labels.
    pub fn new(identity: &super::Identity) -> LiveMetrics {
        let labels = [
            ("run_id", identity.run_id.clone()),
            ("shard", identity.shard.clone()),
            ("target", identity.target.clone()),
            ("codec", identity.codec.clone()),
        ];
        let mut m = LiveMetrics {
            registry: Registry::with_labels(labels.into_iter().map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))),
            requests: Family::default(),
            scheduled: Family::default(),
            dropped: Family::default(),
            not_sent: Family::default(),
            input_tokens: Family::default(),
            output_tokens: Family::default(),
            ttft: Family::new_with_constructor(ttft_histogram),
            inter_token: Family::new_with_constructor(token_histogram),
            inter_chunk: Family::new_with_constructor(token_histogram),
            tpot: Family::new_with_constructor(token_histogram),
            e2e: Family::new_with_constructor(request_histogram),
            duration: Family::new_with_constructor(request_histogram),
            send_lag: Family::new_with_constructor(lag_histogram),
            achieved: Gauge::default(),
            stage: Gauge::default(),
            counters: Arc::default(),
        };
        m.registry
            .register_collector(Box::new(LoadCounters(m.counters.clone())));
        let registry = &mut m.registry;
        registry.register(
            "barrage_requests",
            "Requests that ended, by stage and outcome (ok, http_error, timeout, ...)",
            m.requests.clone(),
        );
        registry.register(
            "barrage_requests_scheduled",
            "Requests the stage's schedule held, counted at the stage's end",
            m.scheduled.clone(),
        );
        registry.register(
            "barrage_requests_dropped",
            "Arrivals dropped by the stage's concurrency cap (on_full: drop), counted at the stage's end",
            m.dropped.clone(),
        );
        registry.register(
            "barrage_requests_not_sent",
            "Arrivals not sent because the run stopped first, counted at the stage's end",
            m.not_sent.clone(),
        );
        registry.register(
            "barrage_input_tokens",
            "Prompt tokens of successful measured requests",
            m.input_tokens.clone(),
        );
        registry.register(
            "barrage_output_tokens",
            "Output tokens of successful measured requests",
            m.output_tokens.clone(),
        );
        registry.register(
            "barrage_time_to_first_token_seconds",
            "Send to the first output frame, successful measured requests",
            m.ttft.clone(),
        );
        registry.register(
            "barrage_inter_token_latency_seconds",
            "Each gap between output frames over the tokens of the frame that ends it, one observation per token",
            m.inter_token.clone(),
        );
        registry.register(
            "barrage_inter_chunk_latency_seconds",
            "Gaps between output frames",
            m.inter_chunk.clone(),
        );
        registry.register(
            "barrage_time_per_output_token_seconds",
            "(last - first output frame) / (output tokens - 1), per request",
            m.tpot.clone(),
        );
        registry.register(
            "barrage_e2e_latency_seconds",
            "Send to the last output frame",
            m.e2e.clone(),
        );
        registry.register(
            "barrage_request_duration_seconds",
            "Send to the end of the response",
            m.duration.clone(),
        );
        registry.register(
            "barrage_send_lag_seconds",
            "How late each request was sent after its scheduled time: the client's own error",
            m.send_lag.clone(),
        );
        registry.register(
            "barrage_achieved_requests_per_second",
            "Requests that ended in the last full second",
            m.achieved.clone(),
        );
        registry.register(
            "barrage_stage",
            "The stage being offered (index from 0; -1 before the first and after the last)",
            m.stage.clone(),
        );
        m.stage.set(-1);
        m
    }

    /// The registry in the Prometheus text format (0.0.4): what a
    /// Pushgateway takes and remote write is built from.
    pub fn prometheus_text(&self) -> String {
        let mut text = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// The registry in OpenMetrics text.
    pub fn openmetrics_text(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// The stage the pacer is now offering, or -1.
    pub fn set_stage(&self, stage: Option<usize>) {
        self.stage.set(stage.map_or(-1, |s| s as i64));
    }

    /// Bring stage `stage`'s schedule counters to `counts`: they only grow
    /// (a session's later turns add to the schedule after the stage's end).
    pub fn set_schedule(&self, stage: usize, counts: &ScheduleCounts) {
        let label = StageLabel { stage };
        for (family, value) in [
            (&self.scheduled, counts.scheduled),
            (&self.dropped, counts.dropped),
            (&self.not_sent, counts.not_sent),
        ] {
            let counter = family.get_or_create(&label);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
    }
}

/// What the records thread adds: one record at a time, through handles
/// to its stage's histograms taken once.
pub(crate) struct Observer {
    metrics: Arc<LiveMetrics>,
    stages: Vec<StageHandles>,
    /// The second (from the run's start) completions are being counted for.
    second: u64,
    in_second: u64,
}

struct StageHandles {
    ttft: Histogram,
    inter_token: Histogram,
    inter_chunk: Histogram,
    tpot: Histogram,
    e2e: Histogram,
    duration: Histogram,
    send_lag: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
}

impl Observer {
    pub(super) fn new(metrics: Arc<LiveMetrics>) -> Observer {
        Observer {
            metrics,
            stages: Vec::new(),
            second: 0,
            in_second: 0,
        }
    }

    fn stage(&mut self, stage: usize) -> &StageHandles {
        while self.stages.len() <= stage {
            let label = StageLabel {
                stage: self.stages.len(),
            };
            let m = &self.metrics;
            self.stages.push(StageHandles {
                ttft: m.ttft.get_or_create_owned(&label),
                inter_token: m.inter_token.get_or_create_owned(&label),
                inter_chunk: m.inter_chunk.get_or_create_owned(&label),
                tpot: m.tpot.get_or_create_owned(&label),
                e2e: m.e2e.get_or_create_owned(&label),
                duration: m.duration.get_or_create_owned(&label),
                send_lag: m.send_lag.get_or_create_owned(&label),
                input_tokens: m.input_tokens.get_or_create_owned(&label),
                output_tokens: m.output_tokens.get_or_create_owned(&label),
            });
        }
        &self.stages[stage]
    }

    /// Take in one record, by the rules the summary's figures follow:
    /// every request counts by its outcome and its send lag; latencies and
    /// tokens come from successful measured requests only.
    pub fn observe(&mut self, r: &Record) {
        self.metrics
            .requests
            .get_or_create(&OutcomeLabels {
                stage: r.stage,
                outcome: r.status.name(),
            })
            .inc();
        let second = (r.end_ms / 1000.0) as u64;
        if second > self.second {
            // Records come in about the order they end.
            let full = if second == self.second + 1 { self.in_second } else { 0 };
            self.metrics.achieved.set(full as f64);
            (self.second, self.in_second) = (second, 0);
        }
        self.in_second += 1;
        let s = self.stage(r.stage);
        s.send_lag.observe(((r.sent_ms - r.scheduled_ms) / 1000.0).max(0.0));
        if !r.measured || r.status != Status::Ok {
            return;
        }
        s.input_tokens.inc_by(u64::from(r.prompt_tokens.unwrap_or(0)));
        s.output_tokens.inc_by(u64::from(r.output_tokens));
        let seconds = |ms: f64| ms / 1000.0;
        if let Some(v) = r.ttft() {
            s.ttft.observe(seconds(v));
        }
        if let Some(v) = r.tpot() {
            s.tpot.observe(seconds(v));
        }
        if let Some(v) = r.e2e() {
            s.e2e.observe(seconds(v));
        }
        s.duration.observe(seconds(r.e2e_stream()));
        for gap in r.inter_chunk() {
            s.inter_chunk.observe(seconds(gap));
        }
        for (gap, tokens) in r.inter_token() {
            for _ in 0..tokens {
                s.inter_token.observe(seconds(gap));
            }
        }
    }
}

/// The load engine's live counters, read at each scrape.
#[derive(Debug)]
struct LoadCounters(Arc<OnceLock<Arc<Counters>>>);

impl Collector for LoadCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(c) = self.0.get() else {
            return Ok(());
        };
        let in_flight = ConstGauge::new(c.in_flight.load(Ordering::Relaxed) as i64);
        in_flight.encode(encoder.encode_descriptor(
            "barrage_requests_in_flight",
            "Requests sent and not yet ended",
            None,
            in_flight.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "barrage_requests_sent",
                "Requests sent (a session's turns each count)",
                c.sent.load(Ordering::Relaxed),
            ),
            (
                "barrage_requests_missed",
                "Arrivals not sent because the client could not send them in time",
                c.missed.load(Ordering::Relaxed),
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        Ok(())
    }
}
