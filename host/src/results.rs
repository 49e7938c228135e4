//! Per-request records, streamed to disk as they complete, and the run
//! summary built from them.
//!
//! Times in records are milliseconds from the run's start (a monotonic
//! clock); `meta.json` holds the wall-clock start.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::plugin::wire;
use crate::transport::{Ending, Exchange};

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A complete response with output.
    Ok,
    /// A non-2xx status.
    HttpError,
    /// An error object from the server (in the stream or the body).
    ServerError,
    /// No response within the timeout.
    Timeout,
    /// Stopped by the user before it finished.
    Cancelled,
    /// Connecting, sending or reading failed (including a cut connection).
    TransportError,
    /// The codec plugin failed on this response.
    PluginError,
    /// The stream ended without its end marker or finish reason.
    Truncated,
    /// The server sent a frame the codec could not parse.
    Malformed,
}

/// One request, as written to `records.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Request id (also sent as `x-request-id`).
    pub id: u64,
    /// Stage index.
    pub stage: usize,
    /// Scheduled send, ms from run start.
    pub scheduled_ms: f64,
    /// Actual send, ms.
    pub sent_ms: f64,
    /// Response headers, ms.
    pub headers_ms: Option<f64>,
    /// First body byte, ms.
    pub first_byte_ms: Option<f64>,
    /// First frame carrying output (content or reasoning), ms.
    pub first_token_ms: Option<f64>,
    /// Last frame carrying output, ms.
    pub last_token_ms: Option<f64>,
    /// End of the exchange, ms.
    pub end_ms: f64,
    /// Arrival of every output-carrying frame, ms.
    pub content_frames_ms: Vec<f64>,
    /// Tokens in each of those frames, where known.
    pub content_frame_tokens: Vec<Option<u32>>,
    /// Prompt tokens (server usage).
    pub prompt_tokens: Option<u32>,
    /// Output tokens.
    pub output_tokens: u32,
    /// Where `output_tokens` came from: `usage` (server), `frames` (token
    /// counts per frame) or `frame_count` (one per output frame; approximate).
    pub output_tokens_source: &'static str,
    /// How it ended.
    pub status: Status,
    /// HTTP status.
    pub http_status: Option<u16>,
    /// HTTP version of the response.
    pub http_version: Option<&'static str>,
    /// The error, if any.
    pub error: Option<String>,
    /// Finish reason.
    pub finish_reason: Option<String>,
    /// Request body bytes.
    pub bytes_sent: u64,
    /// Response body bytes.
    pub bytes_received: u64,
    /// False for requests sent in a stage's warm-up or cool-down: counted,
    /// but left out of latency and throughput figures.
    pub measured: bool,
    /// Time waited for a slot under the stage's concurrency cap, ms.
    pub queue_wait_ms: Option<f64>,
}

impl Record {
    /// Build a record from an exchange.
    pub fn from_exchange(id: u64, stage: usize, origin: Instant, scheduled: Instant, ex: &Exchange) -> Record {
        let ms = |t: Instant| t.saturating_duration_since(origin).as_secs_f64() * 1000.0;
        let mut frames_ms = Vec::new();
        let mut frame_tokens = Vec::new();
        let mut last_frame = None;
        let (mut usage, mut finish, mut server_error, mut done, mut malformed) = (None, None, None, false, None);
        for e in &ex.decoded.events {
            match &e.event {
                wire::Event::Content(d) | wire::Event::Reasoning(d) => {
                    // Several deltas of one frame (content and reasoning) count once.
                    if last_frame != Some(e.frame) {
                        frames_ms.push(ms(e.at));
                        frame_tokens.push(d.tokens);
                        last_frame = Some(e.frame);
                    } else if let (Some(last), Some(t)) = (frame_tokens.last_mut(), d.tokens) {
                        *last = Some(last.unwrap_or(0) + t);
                    }
                }
                wire::Event::Usage(u) => usage = Some(*u),
                wire::Event::Finish(r) => finish = Some(r.clone()),
                wire::Event::ServerError(err) => {
                    server_error = Some(format!("{}: {}", err.code.as_deref().unwrap_or("error"), err.message))
                }
                wire::Event::Done => done = true,
                wire::Event::Malformed(m) => malformed = malformed.or(Some(format!("malformed frame: {m}"))),
                _ => {}
            }
        }
        let (output_tokens, source) = match (
            usage.and_then(|u| u.completion_tokens),
            frame_tokens.iter().all(Option::is_some),
        ) {
            (Some(n), _) => (n, "usage"),
            (None, true) if !frame_tokens.is_empty() => (frame_tokens.iter().map(|t| t.unwrap_or(0)).sum(), "frames"),
            _ => (frames_ms.len() as u32, "frame_count"),
        };
        let (status, error) = match (&ex.ending, ex.status) {
            (Ending::Timeout, _) => (Status::Timeout, Some("timed out".to_string())),
            (Ending::Cancelled, _) => (Status::Cancelled, Some("cancelled by stop".to_string())),
            (Ending::TransportError(e), _) => (Status::TransportError, Some(e.clone())),
            (Ending::Complete, Some(s)) if !(200..300).contains(&s) => (
                Status::HttpError,
                Some(server_error.unwrap_or_else(|| format!("HTTP {s}"))),
            ),
            (Ending::Complete, _) if ex.decoded.failure.is_some() => {
                (Status::PluginError, ex.decoded.failure.as_ref().map(|f| f.to_string()))
            }
            (Ending::Complete, _) if server_error.is_some() => (Status::ServerError, server_error),
            (Ending::Complete, _) if malformed.is_some() => (Status::Malformed, malformed),
            (Ending::Complete, _) if ex.decoded.frames > 1 && (!done || finish.is_none()) => (
                Status::Truncated,
                Some(
                    if !done {
                        "stream ended without its end marker"
                    } else {
                        "stream ended without a finish reason"
                    }
                    .to_string(),
                ),
            ),
            (Ending::Complete, _) => (Status::Ok, None),
        };
        Record {
            id,
            stage,
            scheduled_ms: ms(scheduled),
            sent_ms: ms(ex.sent),
            headers_ms: ex.headers_at.map(ms),
            first_byte_ms: ex.first_byte.map(ms),
            first_token_ms: frames_ms.first().copied(),
            last_token_ms: frames_ms.last().copied(),
            end_ms: ms(ex.end),
            content_frames_ms: frames_ms,
            content_frame_tokens: frame_tokens,
            prompt_tokens: usage.and_then(|u| u.prompt_tokens),
            output_tokens,
            output_tokens_source: source,
            status,
            http_status: ex.status,
            http_version: ex.version,
            error,
            finish_reason: finish,
            bytes_sent: ex.bytes_sent,
            bytes_received: ex.bytes_received,
            measured: true,
            queue_wait_ms: None,
        }
    }
}

/// Distribution of one quantity, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Dist {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Percentiles: p50, p90, p95, p99, p99.9.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
}

/// Microsecond histograms with 3 significant digits (0.1 % precision).
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist(Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid")))
    }
}

impl Hist {
    /// Record `ms` milliseconds.
    pub fn record_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            let _ = self.0.record((ms * 1000.0).round() as u64);
        }
    }

    /// The distribution, or none without samples.
    pub fn dist(&self) -> Option<Dist> {
        let h = &self.0;
        if h.is_empty() {
            return None;
        }
        let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        Some(Dist {
            count: h.len(),
            mean: h.mean() / 1000.0,
            min: h.min() as f64 / 1000.0,
            max: h.max() as f64 / 1000.0,
            stddev: h.stdev() / 1000.0,
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p999: q(0.999),
        })
    }
}

/// Running aggregates of a stage.
#[derive(Default)]
pub struct StageAgg {
    /// Requests by status.
    pub by_status: BTreeMap<Status, u64>,
    /// Errors by message (first 100 characters), up to 50 distinct.
    pub errors: BTreeMap<String, u64>,
    ttft: Hist,
    ttfb: Hist,
    inter_chunk: Hist,
    tpot: Hist,
    e2e: Hist,
    lag: Hist,
    queue_wait: Hist,
    queued: u64,
    unmeasured: u64,
    first_sent_ms: Option<f64>,
    last_sent_ms: f64,
    last_end_ms: f64,
    output_tokens: u64,
    prompt_tokens: u64,
    /// Requests the schedule offered in this stage.
    pub scheduled: u64,
    /// Requested rate, if open loop.
    pub requested_rate: Option<f64>,
}

impl StageAgg {
    /// Add one record.
    pub fn add(&mut self, r: &Record) {
        *self.by_status.entry(r.status).or_default() += 1;
        self.lag.record_ms(r.sent_ms - r.scheduled_ms);
        self.first_sent_ms = Some(self.first_sent_ms.map_or(r.sent_ms, |f| f.min(r.sent_ms)));
        self.last_sent_ms = self.last_sent_ms.max(r.sent_ms);
        self.last_end_ms = self.last_end_ms.max(r.end_ms);
        if let Some(e) = &r.error
            && (self.errors.len() < 50 || self.errors.contains_key(e))
        {
            *self.errors.entry(e.chars().take(100).collect()).or_default() += 1;
        }
        if let Some(w) = r.queue_wait_ms {
            self.queue_wait.record_ms(w);
            if w > 0.001 {
                self.queued += 1;
            }
        }
        if !r.measured {
            self.unmeasured += 1;
            return;
        }
        if r.status != Status::Ok {
            return;
        }
        self.output_tokens += u64::from(r.output_tokens);
        self.prompt_tokens += u64::from(r.prompt_tokens.unwrap_or(0));
        if let Some(t) = r.first_byte_ms {
            self.ttfb.record_ms(t - r.sent_ms);
        }
        if let Some(t) = r.first_token_ms {
            self.ttft.record_ms(t - r.sent_ms);
        }
        for w in r.content_frames_ms.windows(2) {
            self.inter_chunk.record_ms(w[1] - w[0]);
        }
        if let (Some(first), Some(last)) = (r.first_token_ms, r.last_token_ms)
            && r.output_tokens > 1
        {
            self.tpot.record_ms((last - first) / f64::from(r.output_tokens - 1));
        }
        if let Some(last) = r.last_token_ms {
            self.e2e.record_ms(last - r.sent_ms);
        }
    }

    /// Current median TTFT, ms.
    pub fn ttft_p50(&self) -> Option<f64> {
        self.ttft.dist().map(|d| d.p50)
    }

    /// The stage's summary.
    pub fn summary(&self, index: usize) -> StageSummary {
        let ok = self.by_status.get(&Status::Ok).copied().unwrap_or(0);
        let sent: u64 = self.by_status.values().sum();
        let window_s = self.first_sent_ms.map_or(0.0, |f| (self.last_end_ms - f) / 1000.0);
        let send_span_s = self.first_sent_ms.map_or(0.0, |f| (self.last_sent_ms - f) / 1000.0);
        let per_s = |n: f64| if window_s > 0.0 { n / window_s } else { 0.0 };
        StageSummary {
            stage: index,
            scheduled: self.scheduled,
            dropped: 0,
            queued: self.queued,
            queue_wait_ms: self.queue_wait.dist(),
            unmeasured: self.unmeasured,
            sent,
            succeeded: ok,
            by_status: self.by_status.clone(),
            errors: self.errors.clone(),
            requested_rate: self.requested_rate,
            // n arrivals span n − 1 gaps.
            achieved_rate: if send_span_s > 0.0 {
                (sent.saturating_sub(1)) as f64 / send_span_s
            } else {
                0.0
            },
            requests_per_s: per_s(ok as f64),
            output_tokens_per_s: per_s(self.output_tokens as f64),
            input_tokens_per_s: per_s(self.prompt_tokens as f64),
            output_tokens: self.output_tokens,
            ttft_ms: self.ttft.dist(),
            ttfb_ms: self.ttfb.dist(),
            inter_chunk_ms: self.inter_chunk.dist(),
            tpot_ms: self.tpot.dist(),
            e2e_ms: self.e2e.dist(),
            send_lag_ms: self.lag.dist(),
        }
    }
}

/// What `summary.json` holds per stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// Stage index.
    pub stage: usize,
    /// Arrivals the schedule produced.
    pub scheduled: u64,
    /// Arrivals not sent because the stage's concurrency cap was reached (`on_cap: drop`).
    pub dropped: u64,
    /// Requests that waited for a slot under the cap (`on_cap: queue`).
    pub queued: u64,
    /// How long they waited.
    pub queue_wait_ms: Option<Dist>,
    /// Requests in warm-up or cool-down: counted here, not in the figures below.
    pub unmeasured: u64,
    /// Requests sent.
    pub sent: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests by how they ended.
    pub by_status: BTreeMap<Status, u64>,
    /// Error messages and counts.
    pub errors: BTreeMap<String, u64>,
    /// Requested arrival rate (open loop).
    pub requested_rate: Option<f64>,
    /// Achieved send rate: (sent − 1) / (last send − first send).
    pub achieved_rate: f64,
    /// Successful requests per second over first send → last end.
    pub requests_per_s: f64,
    /// Output tokens per second, same window.
    pub output_tokens_per_s: f64,
    /// Input tokens per second, same window.
    pub input_tokens_per_s: f64,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Time to first output frame, from send.
    pub ttft_ms: Option<Dist>,
    /// Time to first byte, from send.
    pub ttfb_ms: Option<Dist>,
    /// Gaps between consecutive output frames, pooled.
    pub inter_chunk_ms: Option<Dist>,
    /// Per request (last − first output frame) / (output tokens − 1).
    pub tpot_ms: Option<Dist>,
    /// Send to last output frame.
    pub e2e_ms: Option<Dist>,
    /// Actual send − scheduled send.
    pub send_lag_ms: Option<Dist>,
}

/// Appends records to `records.jsonl` and keeps the aggregates.
pub struct RecordSink {
    out: BufWriter<std::fs::File>,
    /// Per-stage aggregates.
    pub stages: Vec<StageAgg>,
    written: u64,
}

impl RecordSink {
    /// Create `records.jsonl` in `dir`.
    pub fn create(dir: &Path, stages: usize) -> std::io::Result<RecordSink> {
        let out = BufWriter::new(std::fs::File::create(dir.join("records.jsonl"))?);
        Ok(RecordSink {
            out,
            stages: (0..stages).map(|_| StageAgg::default()).collect(),
            written: 0,
        })
    }

    /// Write and aggregate one record. Flushed every 256 records, so a
    /// crash loses at most that many.
    pub fn add(&mut self, r: &Record) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, r)?;
        self.out.write_all(b"\n")?;
        if let Some(agg) = self.stages.get_mut(r.stage) {
            agg.add(r);
        }
        self.written += 1;
        if self.written.is_multiple_of(256) {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Flush to disk.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
