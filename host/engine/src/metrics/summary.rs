//! The run summary (`summary.json`): per-stage and whole-run aggregates and
//! a per-second time series, built from records, live during a run or
//! afterwards from `records.jsonl` (`barrage report`, `barrage merge`).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::hist::{DEFAULT_PERCENTILES, PRECISION};
use super::record::{Record, Status};
use super::slo::Slo;
use super::spikes::Spike;
use super::stage::{ScheduleCounts, StageAgg, StageInfo, StageSummary};
use super::threshold::{Threshold, ThresholdResult};
use crate::server_metrics::ServerSeries;

/// Version of the `summary.json` schema (`docs/metrics.md`). Bumped when a
/// field changes meaning or goes away; new fields do not bump it.
pub const SCHEMA_VERSION: u32 = 1;

/// How to summarize: which percentiles, which objectives.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    /// Percentiles of every distribution (0–100).
    pub percentiles: Vec<f64>,
    /// Objectives for goodput.
    pub slos: Vec<Slo>,
    /// Pass/fail conditions judged on the summary.
    pub thresholds: Vec<Threshold>,
    /// Share of a second's requests that must meet the objectives.
    pub slo_attainment: f64,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            percentiles: DEFAULT_PERCENTILES.to_vec(),
            slos: Vec::new(),
            thresholds: Vec::new(),
            slo_attainment: 0.95,
        }
    }
}

/// Facts about the run that are not in its records.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunFacts {
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Run length, seconds.
    pub duration_s: f64,
    /// Stopped early (signal or error rate).
    pub stopped: bool,
    /// Why.
    pub stop_reason: Option<String>,
    /// False when the run was killed before it wrote its summary: the
    /// schedule's dropped and not-sent counts are then unknown.
    pub complete: bool,
    /// The server benchmarked.
    pub target: String,
    /// The codec plugin.
    pub codec: String,
    /// The seed.
    pub seed: u64,
    /// Load generators the records came from (more than one after `barrage merge`).
    pub shards: u32,
    /// What the load generator itself used (absent from merged or rebuilt summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostUsage>,
    /// In a merged run: the latest shard's start after the earliest's, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_start_spread_ms: Option<f64>,
    /// In a merged run: the shards of the count that were not given (the
    /// run is then not `complete`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
}

/// The load generator's own footprint in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostUsage {
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: f64,
    /// Linear memory the codec's instances held at most, MiB, against its budget.
    pub plugin_memory_peak_mib: f64,
    /// Times a plugin thread panicked (a host bug) and was restarted; the
    /// streams it held failed. Non-zero makes `run` exit with code 4.
    pub plugin_thread_restarts: u64,
}

impl HostUsage {
    /// Peak resident memory of this process so far, MiB.
    pub fn peak_rss_mib() -> f64 {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return 0.0;
        }
        // Linux reports kibibytes.
        usage.ru_maxrss as f64 / 1024.0
    }
}

/// One second of the run (all requests, warm-up included).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Point {
    /// Start of the second, seconds from run start.
    pub t_s: f64,
    /// Requests sent in this second.
    pub sent: u64,
    /// Requests that ended successfully in this second.
    pub completed: u64,
    /// Requests sent in this second that met every objective (with objectives set).
    #[serde(default)]
    pub good: u64,
    /// Requests that ended in failure in this second.
    pub failed: u64,
    /// Output tokens that arrived in this second.
    pub output_tokens: u64,
    /// Prompt tokens of successful requests sent in this second.
    pub input_tokens: u64,
    /// Mean requests in flight over the second.
    pub concurrency: f64,
    /// Median TTFT of successful requests sent in this second, ms.
    pub ttft_p50_ms: Option<f64>,
    /// 99th percentile of the same.
    pub ttft_p99_ms: Option<f64>,
    /// Median TPOT of successful requests sent in this second, ms.
    pub tpot_p50_ms: Option<f64>,
}

/// Per-second accumulators. Latency histograms here are coarse (10 µs,
/// 2 significant digits): they draw a chart, the stage figures are exact.
#[derive(Default)]
struct Second {
    point: Point,
    busy_ms: f64,
    /// Until the second is settled; then its quantiles are in `point`.
    latency: Option<Box<Coarse>>,
}

#[derive(Default)]
struct Coarse {
    ttft: Option<Histogram<u32>>,
    tpot: Option<Histogram<u32>>,
}

impl Coarse {
    fn quantiles_into(&self, p: &mut Point) {
        p.ttft_p50_ms = coarse_at(&self.ttft, 0.5);
        p.ttft_p99_ms = coarse_at(&self.ttft, 0.99);
        p.tpot_p50_ms = coarse_at(&self.tpot, 0.5);
    }
}

fn coarse_record(h: &mut Option<Histogram<u32>>, ms: Option<f64>) {
    if let Some(ms) = ms.filter(|v| v.is_finite() && *v >= 0.0) {
        let h = h.get_or_insert_with(|| Histogram::new(2).unwrap_or_else(|_| unreachable!("2 digits are valid")));
        let _ = h.record((ms * 100.0).round() as u64);
    }
}

fn coarse_at(h: &Option<Histogram<u32>>, q: f64) -> Option<f64> {
    h.as_ref().map(|h| h.value_at_quantile(q) as f64 / 100.0)
}

/// The per-second time series.
///
/// A second's latency histograms (a few KiB) are folded into its three
/// quantiles once no record can still be sent in it, so a run's memory does
/// not grow with its length. Records come in about the order their requests
/// end (live, and from `records.jsonl`), and a request ends within its
/// timeout of being sent: a second is settled when the newest end seen is
/// past it by the timeout and [`SETTLE_SLACK_MS`].
pub struct Timeline {
    seconds: Vec<Second>,
    settle_ms: f64,
    newest_end_ms: f64,
    /// Seconds before this one are settled.
    settled: usize,
}

/// How long after its end a record may still reach the aggregator: what
/// the plugin threads and the records queue can hold it back by is seconds.
pub const SETTLE_SLACK_MS: f64 = 60_000.0;

/// Longest run the time series covers (a week); later seconds are folded into the last.
const MAX_SECONDS: usize = 7 * 24 * 3600;

impl Timeline {
    /// A time series for requests that end within `request_timeout_s` of being sent.
    pub fn new(request_timeout_s: f64) -> Timeline {
        Timeline {
            seconds: Vec::new(),
            settle_ms: request_timeout_s.max(0.0) * 1000.0 + SETTLE_SLACK_MS,
            newest_end_ms: 0.0,
            settled: 0,
        }
    }

    fn index(ms: f64) -> usize {
        ((ms.max(0.0) / 1000.0) as usize).min(MAX_SECONDS)
    }

    fn at(&mut self, ms: f64) -> &mut Second {
        let i = Self::index(ms);
        if self.seconds.len() <= i {
            self.seconds.resize_with(i + 1, Second::default);
        }
        &mut self.seconds[i]
    }

    /// Add one record; `good`: it met every objective.
    pub fn add(&mut self, r: &Record, good: bool) {
        let sent = &mut self.at(r.sent_ms).point;
        sent.sent += 1;
        sent.good += u64::from(good);
        let ok = r.status == Status::Ok;
        let end = self.at(r.end_ms);
        if ok {
            end.point.completed += 1;
        } else if r.status.is_failure() {
            end.point.failed += 1;
        }
        if ok {
            for (i, t) in r.content_frames_ms.iter().enumerate() {
                let k = r.frame_tokens(i);
                self.at(*t).point.output_tokens += u64::from(k);
            }
            let open = Self::index(r.sent_ms) >= self.settled;
            let sent = self.at(r.sent_ms);
            sent.point.input_tokens += u64::from(r.prompt_tokens.unwrap_or(0));
            // A record later than the slack allows (none is expected) still
            // counts everywhere but in its settled second's chart quantiles.
            if open {
                let latency = sent.latency.get_or_insert_default();
                coarse_record(&mut latency.ttft, r.ttft());
                coarse_record(&mut latency.tpot, r.tpot());
            }
        }
        // Time in flight, spread over the seconds it spans.
        let (mut from, to) = (r.sent_ms.max(0.0), r.end_ms.max(r.sent_ms));
        while from < to {
            let second_end = ((from / 1000.0).floor() + 1.0) * 1000.0;
            let upto = second_end.min(to);
            self.at(from).busy_ms += upto - from;
            from = upto;
        }
        if r.end_ms > self.newest_end_ms {
            self.newest_end_ms = r.end_ms;
            self.settle();
        }
    }

    fn settle(&mut self) {
        let before = ((self.newest_end_ms - self.settle_ms) / 1000.0).floor();
        let before = if before > 0.0 {
            (before as usize).min(self.seconds.len())
        } else {
            0
        };
        for s in self.seconds.iter_mut().take(before).skip(self.settled) {
            if let Some(latency) = s.latency.take() {
                latency.quantiles_into(&mut s.point);
            }
        }
        self.settled = self.settled.max(before);
    }

    /// Seconds whose histograms are still held.
    #[cfg(test)]
    pub(crate) fn unsettled(&self) -> usize {
        self.seconds.iter().filter(|s| s.latency.is_some()).count()
    }

    /// Requests completed in each second so far, from the run's start.
    pub fn completed(&self) -> Vec<u64> {
        self.seconds.iter().map(|s| s.point.completed).collect()
    }

    /// The series, one point per second from the run's start.
    pub fn points(&self) -> Vec<Point> {
        self.seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut p = Point {
                    t_s: i as f64,
                    concurrency: s.busy_ms / 1000.0,
                    ..s.point.clone()
                };
                if let Some(latency) = &s.latency {
                    latency.quantiles_into(&mut p);
                }
                p
            })
            .collect()
    }
}

/// `summary.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Version of this schema.
    pub schema_version: u32,
    /// Barrage version that wrote it.
    pub barrage_version: String,
    /// The results directory.
    pub dir: String,
    /// Facts about the run.
    #[serde(flatten)]
    pub run: RunFacts,
    /// Percentiles reported.
    pub percentiles: Vec<f64>,
    /// Objectives for goodput.
    pub slos: Vec<String>,
    /// How exact the distributions are.
    pub precision: String,
    /// Per stage.
    pub stages: Vec<StageSummary>,
    /// All stages together.
    pub total: StageSummary,
    /// One point per second.
    pub timeseries: Vec<Point>,
    /// Each threshold's verdict, per stage it judges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdResult>,
    /// The server's own gauges over the run, when scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSeries>,
    /// What each rise of the offered load did (see `metrics::spikes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spikes: Vec<Spike>,
    /// Offered loads to mark on the load curve: a sweep's knee, a search's answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_marks: Vec<LoadMark>,
    /// How the live export went (scrapes served, pushes), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::export::ExportStats>,
}

/// A vertical mark on the load curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMark {
    /// The offered load it marks (requests/s or users).
    pub load: f64,
    /// What it is, e.g. `knee 80.0 ± 0.4 req/s`.
    pub label: String,
}

impl Summary {
    /// The thresholds that failed.
    pub fn failed_thresholds(&self) -> impl Iterator<Item = &ThresholdResult> {
        self.thresholds.iter().filter(|t| !t.passed)
    }

    /// The run's headline figures (all stages together), for `--status-file`.
    pub fn headline(&self) -> barrage_core::headline::Headline {
        let t = &self.total;
        let p = |d: &Option<super::hist::Dist>, q: f64| d.as_ref().and_then(|d| d.p(q));
        let attempted = t.sent.saturating_sub(t.cancelled);
        barrage_core::headline::Headline {
            achieved_rate: t.achieved_rate,
            sent: t.sent,
            succeeded: t.succeeded,
            failed: t.failed,
            error_rate: if attempted == 0 {
                0.0
            } else {
                t.failed as f64 / attempted as f64
            },
            output_tokens_per_s: t.output_tokens_per_s,
            ttft_p50_ms: p(&t.ttft_ms, 50.0),
            ttft_p99_ms: p(&t.ttft_ms, 99.0),
            e2e_p99_ms: p(&t.e2e_ms, 99.0),
            thresholds_passed: (!self.thresholds.is_empty()).then(|| self.failed_thresholds().next().is_none()),
            failed_thresholds: self.failed_thresholds().map(ThresholdResult::describe).collect(),
            complete: self.run.complete && self.run.missing_shards.is_empty(),
            missing_shards: self.run.missing_shards.clone(),
            shard_start_spread_ms: self.run.shard_start_spread_ms,
            knee_rate: None,
            knee_uncertainty: None,
        }
    }
}

/// Builds a [`Summary`] from records, in any order.
pub struct Aggregator {
    options: MetricsOptions,
    stages: Vec<StageAgg>,
    total: StageAgg,
    timeline: Timeline,
}

impl Aggregator {
    /// An aggregator for `stages` stages of requests that end within
    /// `request_timeout_s` of being sent.
    pub fn new(stages: usize, options: MetricsOptions, request_timeout_s: f64) -> Aggregator {
        Aggregator {
            options,
            stages: vec![StageAgg::default(); stages],
            total: StageAgg::default(),
            timeline: Timeline::new(request_timeout_s),
        }
    }

    /// Add one record. A record of a stage beyond the configured ones
    /// (a merged shard with more stages) grows the list.
    pub fn add(&mut self, r: &Record) {
        if self.stages.len() <= r.stage {
            self.stages.resize_with(r.stage + 1, StageAgg::default);
        }
        self.stages[r.stage].add(r, &self.options.slos);
        self.total.add(r, &self.options.slos);
        let good = !self.options.slos.is_empty() && super::slo::is_good(r, &self.options.slos);
        self.timeline.add(r, good);
    }

    /// Requests completed in each second so far, from the run's start.
    pub fn completed_per_second(&self) -> Vec<u64> {
        self.timeline.completed()
    }

    /// Median TTFT of stage `stage` so far, ms.
    pub fn ttft_p50(&self, stage: usize) -> Option<f64> {
        self.stages.get(stage).and_then(StageAgg::ttft_p50)
    }

    /// The first threshold failing on the records so far, if any: what
    /// stops a run early (`abort_on_threshold`). Thresholds on figures only
    /// the end of a stage knows, and those with no value yet (a stage not
    /// started), are not judged.
    pub fn live_failure(&self, infos: &[StageInfo]) -> Option<ThresholdResult> {
        let live: Vec<&Threshold> = self.options.thresholds.iter().filter(|t| t.live()).collect();
        if live.is_empty() {
            return None;
        }
        let (p, slos) = (&self.options.percentiles, &self.options.slos);
        let none = ScheduleCounts::default();
        let stages: Vec<StageSummary> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, agg)| agg.summary(Some(i), &infos.get(i).cloned().unwrap_or_default(), none, p, slos))
            .collect();
        let total = self.total.summary(None, &StageInfo::default(), none, p, slos);
        super::threshold::judge_all(&live, &stages, &total)
            .into_iter()
            .find(|r| r.value.is_some() && r.limit.is_some() && !r.passed)
    }

    /// The summary, given what the records cannot tell: each stage's
    /// description and schedule counts, the run's facts and the server's
    /// gauges if they were scraped.
    pub fn summary(
        &self,
        dir: &str,
        run: RunFacts,
        infos: &[StageInfo],
        counts: &[ScheduleCounts],
        server: Option<ServerSeries>,
    ) -> Summary {
        let p = &self.options.percentiles;
        let slos = &self.options.slos;
        let stages: Vec<StageSummary> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, agg)| {
                let info = infos.get(i).cloned().unwrap_or_default();
                agg.summary(Some(i), &info, counts.get(i).copied().unwrap_or_default(), p, slos)
            })
            .collect();
        let total_counts = counts.iter().fold(ScheduleCounts::default(), |a, &c| a.plus(c));
        let total_info = StageInfo {
            label: "all stages".into(),
            ..StageInfo::default()
        };
        let mut total = self.total.summary(None, &total_info, total_counts, p, slos);
        let mut stages = stages;
        if let Some(server) = &server {
            // A stage's window: its first scheduled send to its last end.
            for s in stages.iter_mut().chain(std::iter::once(&mut total)) {
                s.server = server.stats(s.start_ms / 1000.0, s.end_ms / 1000.0);
            }
        }
        let all: Vec<&Threshold> = self.options.thresholds.iter().collect();
        let thresholds = super::threshold::judge_all(&all, &stages, &total);
        let timeseries = self.timeline.points();
        let attainment = (!slos.is_empty()).then_some(self.options.slo_attainment);
        let spikes = super::spikes::judge(infos, &stages, &timeseries, attainment, server.as_ref());
        Summary {
            schema_version: SCHEMA_VERSION,
            barrage_version: env!("CARGO_PKG_VERSION").to_string(),
            dir: dir.to_string(),
            run,
            percentiles: p.clone(),
            slos: slos.iter().map(ToString::to_string).collect(),
            precision: PRECISION.to_string(),
            stages,
            total,
            timeseries,
            thresholds,
            server,
            spikes,
            load_marks: Vec::new(),
            export: None,
        }
    }
}
