//! Per-stage aggregates: every request counted, every latency in a histogram.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::{ClientHealth, ClientLoad};
use super::hist::{Dist, Hist};
use super::record::{Record, Status, TokenSource};
use super::slo::{self, Slo};

/// What the schedule did with a stage's arrivals; the load engine knows
/// these, the records do not.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScheduleCounts {
    /// Arrivals the stage's schedule produced (for closed loop: requests started).
    pub scheduled: u64,
    /// Arrivals not sent because the stage's concurrency cap was reached (`on_cap: drop`).
    pub dropped: u64,
    /// Arrivals not sent because the client could not send them within
    /// `max_send_lag_ms` of their time, or its decode backlog was full.
    pub missed: u64,
    /// Arrivals not sent because the run stopped first.
    pub not_sent: u64,
    /// What the engine saw of the client meanwhile.
    pub client: ClientLoad,
}

impl ScheduleCounts {
    /// The counts a summary kept (for rebuilding it from records).
    pub fn of(s: &StageSummary) -> ScheduleCounts {
        ScheduleCounts {
            scheduled: s.scheduled,
            dropped: s.dropped,
            missed: s.missed,
            not_sent: s.not_sent,
            client: s.client.as_ref().map(|c| c.load).unwrap_or_default(),
        }
    }

    /// Both schedules' counts together (two stages, or one stage's shards).
    pub fn plus(self, other: ScheduleCounts) -> ScheduleCounts {
        ScheduleCounts {
            scheduled: self.scheduled + other.scheduled,
            dropped: self.dropped + other.dropped,
            missed: self.missed + other.missed,
            not_sent: self.not_sent + other.not_sent,
            client: self.client.worst(other.client),
        }
    }
}

/// What the configuration says a stage asked for.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageInfo {
    /// A short description, e.g. `poisson 50/s for 60s`.
    pub label: String,
    /// Requested arrival rate (open loop; the mean for shaped rates).
    pub requested_rate: Option<f64>,
    /// Requested virtual users (closed loop).
    pub requested_concurrency: Option<usize>,
    /// The stage's length, seconds, when it has one.
    pub duration_s: Option<f64>,
    /// A `burst` stage's bursts: (from, to), seconds from the stage's start.
    pub bursts: Vec<(f64, f64)>,
    /// The rate during them.
    pub burst_rate: Option<f64>,
}

/// Goodput: requests that succeeded and met every objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goodput {
    /// The objectives, as written.
    pub slos: Vec<String>,
    /// Good requests.
    pub good: u64,
    /// Good requests per second of the measurement window.
    pub requests_per_s: f64,
    /// Good requests / measured requests that were not cancelled.
    pub share: f64,
    /// Measured requests that were not cancelled: the share's denominator.
    #[serde(default)]
    pub judged: u64,
}

/// Running aggregates of one stage (or of the whole run).
#[derive(Clone)]
pub struct StageAgg {
    by_status: BTreeMap<Status, u64>,
    errors: BTreeMap<String, u64>,
    ttft: Hist,
    ttfb: Hist,
    ttfa: Hist,
    inter_chunk: Hist,
    inter_token: Hist,
    tpot: Hist,
    e2e: Hist,
    e2e_stream: Hist,
    normalized: Hist,
    lag: Hist,
    queue_wait: Hist,
    prompt_len: Hist,
    output_len: Hist,
    queued: u64,
    unmeasured: u64,
    good: u64,
    measured_settled: u64,
    first_sent: Option<f64>,
    last_sent: f64,
    start: Option<f64>,
    end: f64,
    window_from: Option<f64>,
    window_to: f64,
    output_tokens: u64,
    prompt_tokens: u64,
    /// Measured requests that succeeded.
    measured_ok: u64,
    /// Items they received (vectors, ranked documents, images, clips).
    items: u64,
    output_sources: BTreeMap<TokenSource, u64>,
    prompt_sources: BTreeMap<&'static str, u64>,
}

impl Default for StageAgg {
    fn default() -> Self {
        StageAgg {
            by_status: BTreeMap::new(),
            errors: BTreeMap::new(),
            ttft: Hist::ms(),
            ttfb: Hist::ms(),
            ttfa: Hist::ms(),
            inter_chunk: Hist::ms(),
            inter_token: Hist::ms(),
            tpot: Hist::ms(),
            e2e: Hist::ms(),
            e2e_stream: Hist::ms(),
            normalized: Hist::ms(),
            lag: Hist::ms(),
            queue_wait: Hist::ms(),
            prompt_len: Hist::count(),
            output_len: Hist::count(),
            queued: 0,
            unmeasured: 0,
            good: 0,
            measured_settled: 0,
            first_sent: None,
            last_sent: 0.0,
            start: None,
            end: 0.0,
            window_from: None,
            window_to: 0.0,
            output_tokens: 0,
            measured_ok: 0,
            items: 0,
            prompt_tokens: 0,
            output_sources: BTreeMap::new(),
            prompt_sources: BTreeMap::new(),
        }
    }
}

/// Distinct error messages kept per stage; the rest are counted under one key.
const MAX_ERROR_KINDS: usize = 50;
/// Longest error message a stage's error count is keyed by: long enough for
/// a cause and its detail (an import's name, a panic's location), short
/// enough to keep the console table readable.
const MAX_ERROR_KEY: usize = 400;

/// Record `(value, count)` samples, a run of equal values as one: frames
/// that arrived in one read share a timestamp, so from a fast server most
/// gaps are the same zero, and the records thread spent more on
/// histogram updates than on anything else.
fn record_runs(h: &mut Hist, samples: impl Iterator<Item = (f64, u64)>) {
    let mut run: Option<(f64, u64)> = None;
    for (v, n) in samples {
        match &mut run {
            Some((value, count)) if *value == v => *count += n,
            _ => {
                if let Some((value, count)) = run.replace((v, n)) {
                    h.record_n(value, count);
                }
            }
        }
    }
    if let Some((value, count)) = run {
        h.record_n(value, count);
    }
}

impl StageAgg {
    /// Add one record.
    pub fn add(&mut self, r: &Record, slos: &[Slo]) {
        *self.by_status.entry(r.status).or_default() += 1;
        self.lag.record(r.sent_ms - r.scheduled_ms);
        self.first_sent = Some(self.first_sent.map_or(r.sent_ms, |f| f.min(r.sent_ms)));
        self.last_sent = self.last_sent.max(r.sent_ms);
        self.start = Some(self.start.map_or(r.scheduled_ms, |f| f.min(r.scheduled_ms)));
        self.end = self.end.max(r.end_ms);
        if let Some(e) = &r.error {
            let message = barrage_plugin_host::bounds::cut(e, MAX_ERROR_KEY);
            let key = format!("{}: {message}", r.status.name());
            let key = if self.errors.len() < MAX_ERROR_KINDS || self.errors.contains_key(&key) {
                key
            } else {
                format!("{}: (other messages)", r.status.name())
            };
            *self.errors.entry(key).or_default() += 1;
        }
        if let Some(w) = r.queue_wait_ms {
            self.queue_wait.record(w);
            if w > 0.001 {
                self.queued += 1;
            }
        }
        if !r.measured {
            self.unmeasured += 1;
            return;
        }
        self.window_from = Some(self.window_from.map_or(r.sent_ms, |f| f.min(r.sent_ms)));
        self.window_to = self.window_to.max(r.end_ms);
        if r.status != Status::Cancelled {
            self.measured_settled += 1;
        }
        if r.status != Status::Ok {
            return;
        }
        if slo::is_good(r, slos) {
            self.good += 1;
        }
        self.measured_ok += 1;
        self.items += u64::from(r.items);
        self.prompt_tokens += u64::from(r.prompt_tokens.unwrap_or(0));
        let prompt_source = r.prompt_tokens_source.map_or("unknown", TokenSource::name);
        *self.prompt_sources.entry(prompt_source).or_default() += 1;
        // Items are not tokens: an embeddings request has no output length.
        if r.output.is_tokens() {
            self.output_tokens += u64::from(r.output_tokens);
            *self.output_sources.entry(r.output_tokens_source).or_default() += 1;
            self.output_len.record(f64::from(r.output_tokens));
        }
        if let Some(p) = r.prompt_tokens {
            self.prompt_len.record(f64::from(p));
        }
        let put = |h: &mut Hist, v: Option<f64>| {
            if let Some(v) = v {
                h.record(v);
            }
        };
        put(&mut self.ttft, r.ttft());
        put(&mut self.ttfb, r.ttfb());
        put(&mut self.ttfa, r.ttfa());
        put(&mut self.tpot, r.tpot());
        put(&mut self.e2e, r.e2e());
        put(&mut self.e2e_stream, Some(r.e2e_stream()));
        put(&mut self.normalized, r.normalized());
        record_runs(&mut self.inter_chunk, r.inter_chunk().map(|gap| (gap, 1)));
        record_runs(
            &mut self.inter_token,
            r.inter_token().map(|(gap, tokens)| (gap, u64::from(tokens))),
        );
    }

    /// Current median TTFT, ms.
    pub fn ttft_p50(&self) -> Option<f64> {
        self.ttft.value_at(50.0)
    }

    /// The stage's summary. `index` is none for the whole run.
    pub fn summary(
        &self,
        index: Option<usize>,
        info: &StageInfo,
        counts: ScheduleCounts,
        percentiles: &[f64],
        slos: &[Slo],
    ) -> StageSummary {
        let count = |s: Status| self.by_status.get(&s).copied().unwrap_or(0);
        let succeeded = count(Status::Ok);
        let cancelled = count(Status::Cancelled);
        let sent: u64 = self.by_status.values().sum();
        let failed_by_class: BTreeMap<Status, u64> = self
            .by_status
            .iter()
            .filter(|(s, _)| s.is_failure())
            .map(|(s, n)| (*s, *n))
            .collect();
        let failed = failed_by_class.values().sum();
        let window_s = self.window_from.map_or(0.0, |f| (self.window_to - f) / 1000.0);
        let send_span_s = self.first_sent.map_or(0.0, |f| (self.last_sent - f) / 1000.0);
        let per_s = |n: f64| if window_s > 0.0 { n / window_s } else { 0.0 };
        let measured_ok = self.measured_ok;
        let mut summary = StageSummary {
            stage: index,
            label: info.label.clone(),
            requested_rate: info.requested_rate,
            requested_concurrency: info.requested_concurrency,
            start_ms: self.start.unwrap_or(0.0),
            end_ms: self.end,
            window_s,
            scheduled: counts.scheduled,
            dropped: counts.dropped,
            missed: counts.missed,
            not_sent: counts.not_sent,
            sent,
            succeeded,
            failed,
            cancelled,
            failed_by_class,
            accounted: false,
            queued: self.queued,
            queue_wait_ms: self.queue_wait.dist(percentiles),
            unmeasured: self.unmeasured,
            by_status: self.by_status.clone(),
            errors: self.errors.clone(),
            // n arrivals span n − 1 gaps.
            achieved_rate: if send_span_s > 0.0 {
                sent.saturating_sub(1) as f64 / send_span_s
            } else {
                0.0
            },
            requests_per_s: per_s(measured_ok as f64),
            input_tokens_per_s: per_s(self.prompt_tokens as f64),
            output_tokens_per_s: per_s(self.output_tokens as f64),
            total_tokens_per_s: per_s((self.prompt_tokens + self.output_tokens) as f64),
            items: self.items,
            items_per_s: per_s(self.items as f64),
            input_tokens: self.prompt_tokens,
            output_tokens: self.output_tokens,
            output_tokens_source: self
                .output_sources
                .iter()
                .map(|(s, n)| (s.name().to_string(), *n))
                .collect(),
            prompt_tokens_source: self.prompt_sources.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            goodput: (!slos.is_empty()).then(|| Goodput {
                slos: slos.iter().map(ToString::to_string).collect(),
                good: self.good,
                requests_per_s: per_s(self.good as f64),
                share: if self.measured_settled > 0 {
                    self.good as f64 / self.measured_settled as f64
                } else {
                    0.0
                },
                judged: self.measured_settled,
            }),
            ttft_ms: self.ttft.dist(percentiles),
            ttfb_ms: self.ttfb.dist(percentiles),
            ttfa_ms: self.ttfa.dist(percentiles),
            inter_chunk_ms: self.inter_chunk.dist(percentiles),
            inter_token_ms: self.inter_token.dist(percentiles),
            tpot_ms: self.tpot.dist(percentiles),
            e2e_ms: self.e2e.dist(percentiles),
            e2e_stream_ms: self.e2e_stream.dist(percentiles),
            normalized_ms_per_token: self.normalized.dist(percentiles),
            send_lag_ms: self.lag.dist(percentiles),
            client: Some(ClientHealth::judge(
                counts.missed,
                self.lag.value_at(99.0),
                counts.client,
            )),
            prompt_tokens: self.prompt_len.dist(percentiles),
            output_tokens_per_request: self.output_len.dist(percentiles),
            server: None,
        };
        summary.accounted = summary.reconciles();
        summary
    }
}

/// A stage's (or the run's) results, as `summary.json` holds them.
/// The definitions are in `docs/metrics.md`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StageSummary {
    /// Stage index; none for the whole run.
    pub stage: Option<usize>,
    /// What the stage asked for, in words.
    pub label: String,
    /// Requested arrival rate (open loop).
    pub requested_rate: Option<f64>,
    /// Requested virtual users (closed loop).
    pub requested_concurrency: Option<usize>,
    /// First scheduled send, ms from run start.
    pub start_ms: f64,
    /// Last request end, ms.
    pub end_ms: f64,
    /// Measurement window: first measured send → last measured end, seconds.
    pub window_s: f64,
    /// Arrivals the schedule produced.
    pub scheduled: u64,
    /// Arrivals dropped at the stage's concurrency cap.
    pub dropped: u64,
    /// Arrivals the client could not send within `max_send_lag_ms`, or
    /// while its decode backlog was full.
    #[serde(default)]
    pub missed: u64,
    /// Arrivals not sent because the run stopped.
    pub not_sent: u64,
    /// Requests sent (every one has a record).
    pub sent: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed (every status but ok and cancelled).
    pub failed: u64,
    /// Requests cancelled by a stop.
    pub cancelled: u64,
    /// Failures by class.
    pub failed_by_class: BTreeMap<Status, u64>,
    /// True when scheduled = sent + dropped + missed + not sent and sent = succeeded + failed + cancelled.
    pub accounted: bool,
    /// Requests that waited for a slot under the cap (`on_cap: queue`).
    pub queued: u64,
    /// How long requests waited for a slot.
    pub queue_wait_ms: Option<Dist>,
    /// Requests in warm-up or cool-down: counted, not in the figures below.
    pub unmeasured: u64,
    /// Requests by how they ended.
    pub by_status: BTreeMap<Status, u64>,
    /// Errors by `class: message`, with counts.
    pub errors: BTreeMap<String, u64>,
    /// Achieved send rate: (sent − 1) / (last send − first send).
    pub achieved_rate: f64,
    /// Successful measured requests per second of the window.
    pub requests_per_s: f64,
    /// Prompt tokens of successful requests per second.
    pub input_tokens_per_s: f64,
    /// Output tokens of successful requests per second.
    pub output_tokens_per_s: f64,
    /// Input + output tokens per second.
    pub total_tokens_per_s: f64,
    /// Prompt tokens of successful measured requests.
    pub input_tokens: u64,
    /// Items received by measured requests that succeeded: vectors, ranked
    /// documents, images, audio clips (none for generated text).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub items: u64,
    /// Those items per second of the measurement window.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub items_per_s: f64,
    /// Output tokens of successful measured requests.
    pub output_tokens: u64,
    /// How many requests' output counts came from each source (`usage`, `frames`, `frame_count`).
    pub output_tokens_source: BTreeMap<String, u64>,
    /// The same for prompt counts (`unknown`: the server did not say).
    pub prompt_tokens_source: BTreeMap<String, u64>,
    /// Requests meeting the objectives, when any are configured.
    pub goodput: Option<Goodput>,
    /// Time to first token: send → first output frame.
    pub ttft_ms: Option<Dist>,
    /// Time to first byte.
    pub ttfb_ms: Option<Dist>,
    /// Time to first answer token, for responses that reasoned first.
    pub ttfa_ms: Option<Dist>,
    /// Gaps between consecutive output frames, pooled (vLLM's and SGLang's "ITL").
    pub inter_chunk_ms: Option<Dist>,
    /// Each gap divided over the tokens of the frame ending it, pooled per token.
    pub inter_token_ms: Option<Dist>,
    /// Per request: (last − first output frame) / (output tokens − 1).
    pub tpot_ms: Option<Dist>,
    /// Send → last output frame.
    pub e2e_ms: Option<Dist>,
    /// Send → stream end.
    pub e2e_stream_ms: Option<Dist>,
    /// (Send → stream end) / output tokens.
    pub normalized_ms_per_token: Option<Dist>,
    /// Actual − scheduled send.
    pub send_lag_ms: Option<Dist>,
    /// Whether the client itself was the bottleneck, and the evidence.
    #[serde(default)]
    pub client: Option<ClientHealth>,
    /// Prompt tokens per request.
    pub prompt_tokens: Option<Dist>,
    /// Output tokens per request.
    pub output_tokens_per_request: Option<Dist>,
    /// The server's gauges over the stage (with `server_metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<crate::server_metrics::ServerStats>,
}

impl StageSummary {
    /// Whether scheduled = sent + dropped + missed + not sent and sent = succeeded + failed + cancelled.
    pub fn reconciles(&self) -> bool {
        self.scheduled == self.sent + self.dropped + self.missed + self.not_sent
            && self.sent == self.succeeded + self.failed + self.cancelled
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}
