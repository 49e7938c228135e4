//! Reports: the console table, reporter plugins writing files, and the
//! commands that work on finished runs (`barrage report`, `merge`,
//! `compare`). Summaries are always rebuilt from `records.jsonl`, so a report
//! regenerated later (other percentiles, other objectives) or from a run
//! killed mid-way is computed exactly as the live one was.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::config::ReportConfig;
use crate::metrics::{Aggregator, MetricsOptions, Record, RunFacts, ScheduleCounts, StageInfo, StageSummary, Summary};
use crate::results::{self, Meta, ResultsError, RunDir, ShardMeta};
use barrage_plugin_host::reporter::RecordFeed;
use barrage_plugin_host::{PluginContext, PluginEngine, PluginError, PluginFailure, Registry, ReporterPlugin};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A results directory could not be read or written.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// A reporter could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A reporter failed.
    #[error("{0}")]
    Failed(#[from] PluginFailure),
    /// The request is not possible (e.g. merging nothing).
    #[error("{0}")]
    Invalid(String),
}

/// What loading a reporter needs: the engine, where plugins are found, and
/// the context (seed, tokenizer, log level) each gets with its own configuration.
pub struct ReporterHost<'a> {
    /// The plugin engine.
    pub engine: &'a PluginEngine,
    /// Where named plugins are found.
    pub registry: &'a Registry,
    /// The context every reporter starts from.
    pub context: &'a PluginContext,
}

impl ReporterHost<'_> {
    /// Run every reporter of `config` on `summary`; files go to `out_dir`.
    /// A failing reporter does not stop the others: each outcome is returned.
    pub fn render_all(
        &self,
        config: &ReportConfig,
        summary: &Summary,
        records: &Path,
        out_dir: &Path,
    ) -> Vec<(String, Result<Vec<PathBuf>, ReportError>)> {
        let json = match serde_json::to_string(summary) {
            Ok(j) => j,
            Err(e) => return vec![("summary".into(), Err(ReportError::Invalid(e.to_string())))],
        };
        config
            .reporters
            .iter()
            .map(|name| {
                let outcome = self.render_one(
                    name,
                    config,
                    summary.schema_version,
                    &json,
                    summary.total.sent,
                    records,
                    out_dir,
                );
                (name.clone(), outcome)
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn render_one(
        &self,
        name: &str,
        config: &ReportConfig,
        schema_version: u32,
        json: &str,
        record_count: u64,
        records: &Path,
        out_dir: &Path,
    ) -> Result<Vec<PathBuf>, ReportError> {
        let plugin_config = config.reporter_config.get(name).cloned().unwrap_or_default();
        let plugin_config = serde_json::to_string(&plugin_config).unwrap_or_else(|_| "{}".into());
        let ctx = PluginContext {
            config_json: plugin_config.into(),
            ..self.context.clone()
        };
        let source = self.registry.resolve_in(barrage_plugin_host::World::Reporter, name)?;
        let plugin = ReporterPlugin::load(self.engine, &source, ctx)?;
        let files = plugin.render(schema_version, json.to_string(), || {
            RecordFeed::open(records, record_count)
        })?;
        let mut written = Vec::new();
        for f in files {
            let path = out_dir.join(&f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| ResultsError::Io {
                    path: parent.display().to_string(),
                    source,
                })?;
            }
            std::fs::write(&path, &f.contents).map_err(|source| ResultsError::Io {
                path: path.display().to_string(),
                source,
            })?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Rebuild a run's summary from its records, with `options`. The schedule
/// counts (dropped, not sent) come from the run's own summary when it wrote
/// one; a run killed before that has only its records, and says so.
pub fn rebuild(run: &RunDir, options: MetricsOptions) -> Result<(Summary, u64), ReportError> {
    let config = run.config().ok();
    let stage_count = config.as_ref().map_or(0, |c| c.stages.len());
    let mut agg = Aggregator::new(stage_count, options, request_timeout_s(config.iter()));
    let mut last = 0f64;
    let skipped = run.for_each_record(|r| {
        last = last.max(r.end_ms);
        agg.add(&r);
    })?;
    let infos: Vec<StageInfo> = config
        .as_ref()
        .map(|c| c.stages.iter().map(crate::load::Stage::info).collect())
        .unwrap_or_default();
    let (facts, counts) = match &run.summary {
        Some(old) => (old.run.clone(), old.stages.iter().map(ScheduleCounts::of).collect()),
        None => (facts_from_meta(&run.meta, last / 1000.0), Vec::new()),
    };
    let server_url = config
        .as_ref()
        .and_then(|c| c.server_metrics.as_ref())
        .map(|m| m.source(&run.meta.target))
        .unwrap_or_default();
    let server = crate::server_metrics::ServerSeries::read(&run.dir, &server_url);
    let mut summary = agg.summary(&run.dir.display().to_string(), facts, &infos, &counts, server);
    if run.summary.is_none() {
        // Without the pacer's counts, every record is all that is known.
        for s in summary.stages.iter_mut().chain(std::iter::once(&mut summary.total)) {
            s.scheduled = s.sent;
            s.accounted = s.reconciles();
        }
    }
    Ok((summary, skipped))
}

/// The longest request timeout of `configs` (the default without one).
fn request_timeout_s<'a>(configs: impl Iterator<Item = &'a crate::config::RunConfig>) -> f64 {
    configs
        .map(|c| c.request.timeout_s)
        .reduce(f64::max)
        .unwrap_or_else(|| crate::config::RequestConfig::default().timeout_s)
}

/// A record ordered by when it ended.
struct Ended(Record);

impl PartialEq for Ended {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ended {}

impl PartialOrd for Ended {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ended {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.end_ms.total_cmp(&other.0.end_ms)
    }
}

fn facts_from_meta(meta: &Meta, duration_s: f64) -> RunFacts {
    RunFacts {
        started_unix_ms: meta.started_unix_ms,
        duration_s,
        stopped: true,
        stop_reason: Some("the run did not finish (no summary.json); rebuilt from its records".into()),
        complete: false,
        target: meta.target.clone(),
        codec: meta.plugin.name.clone(),
        seed: meta.seed,
        shards: 1,
        host: None,
        shard_start_spread_ms: None,
        missing_shards: Vec::new(),
    }
}

/// Merge runs made by several load generators into one run in `out`: the
/// records are put on a common clock (the earliest start) and interleaved
/// in the order they ended, and the summary is rebuilt from them, so every
/// histogram is exact.
pub fn merge(inputs: &[PathBuf], out: &Path, options: MetricsOptions) -> Result<Summary, ReportError> {
    // One is allowed: a one-shard run's merge is its own, which keeps a
    // Kubernetes run's steps the same whatever its shard count.
    if inputs.is_empty() {
        return Err(ReportError::Invalid("give the run directories to merge".into()));
    }
    let runs: Vec<RunDir> = inputs.iter().map(|d| RunDir::open(d)).collect::<Result<_, _>>()?;
    let missing_shards = check_shards(&runs)?;
    // The wall clock at each origin, to the µs where the run noted it:
    // records are placed by it. The spread is of when the schedules began.
    let start_of = |r: &RunDir| r.meta.start.map_or(r.meta.started_unix_ms as f64, |s| s.unix_ms);
    let schedule_of = |r: &RunDir| {
        r.meta
            .start
            .and_then(|s| s.schedule_unix_ms)
            .unwrap_or_else(|| start_of(r))
    };
    let origin_exact = runs.iter().map(start_of).fold(f64::INFINITY, f64::min);
    let origin = runs.iter().map(|r| r.meta.started_unix_ms).min().unwrap_or(0);
    let spread_ms = runs.iter().map(schedule_of).fold(f64::NEG_INFINITY, f64::max)
        - runs.iter().map(schedule_of).fold(f64::INFINITY, f64::min);
    std::fs::create_dir_all(out).map_err(|source| ResultsError::Io {
        path: out.display().to_string(),
        source,
    })?;
    let configs: Vec<_> = runs.iter().filter_map(|r| r.config().ok()).collect();
    let stage_count = configs.iter().map(|c| c.stages.len()).max().unwrap_or(0);
    let agg = Aggregator::new(stage_count, options, request_timeout_s(configs.iter()));
    let mut sink = results::RecordSink::create(out, agg)?;
    let mut shards = Vec::new();
    let mut counts: Vec<ScheduleCounts> = Vec::new();
    let mut duration_s = 0f64;
    let mut readers = Vec::with_capacity(runs.len());
    for run in &runs {
        let offset_ms = start_of(run) - origin_exact;
        shards.push(ShardMeta {
            dir: run.dir.display().to_string(),
            host: run.meta.host.clone(),
            started_unix_ms: run.meta.started_unix_ms,
            offset_ms,
        });
        readers.push((run.records()?, offset_ms));
        for (j, s) in run.summary.iter().flat_map(|s| s.stages.iter()).enumerate() {
            if counts.len() <= j {
                counts.resize(j + 1, ScheduleCounts::default());
            }
            counts[j] = counts[j].plus(ScheduleCounts::of(s));
        }
    }
    // The shards' records interleaved in the order they ended, as one run's
    // are: the time series settles its seconds as the newest end passes them.
    let next = |shard: usize, readers: &mut [(results::RecordReader, f64)]| {
        let (reader, offset_ms) = &mut readers[shard];
        reader.next().transpose().map(|r| {
            r.map(|mut r| {
                shift(&mut r, *offset_ms);
                r.shard = Some(shard as u32);
                Ended(r)
            })
        })
    };
    let mut heads = std::collections::BinaryHeap::new();
    for shard in 0..readers.len() {
        if let Some(r) = next(shard, &mut readers)? {
            heads.push(std::cmp::Reverse((r, shard)));
        }
    }
    while let Some(std::cmp::Reverse((Ended(r), shard))) = heads.pop() {
        duration_s = duration_s.max(r.end_ms / 1000.0);
        sink.add(&r)?;
        if let Some(r) = next(shard, &mut readers)? {
            heads.push(std::cmp::Reverse((r, shard)));
        }
    }
    sink.flush()?;
    let agg = sink.aggregator;
    let first = &runs[0];
    let complete = runs.iter().all(|r| r.summary.is_some()) && missing_shards.is_empty();
    let mut meta = first.meta.clone();
    meta.started_unix_ms = origin;
    meta.host = runs.iter().map(|r| r.meta.host.as_str()).collect::<Vec<_>>().join(",");
    meta.shards = shards;
    results::write_json(&out.join(results::META), &meta)?;
    if let Ok(config) = std::fs::read(first.dir.join(results::CONFIG)) {
        std::fs::write(out.join(results::CONFIG), config).map_err(|source| ResultsError::Io {
            path: out.join(results::CONFIG).display().to_string(),
            source,
        })?;
    }
    let infos: Vec<StageInfo> = first
        .config()
        .map(|c| c.stages.iter().map(crate::load::Stage::info).collect())
        .unwrap_or_default();
    let facts = RunFacts {
        started_unix_ms: origin,
        duration_s,
        stopped: runs.iter().any(|r| r.summary.as_ref().is_none_or(|s| s.run.stopped)),
        stop_reason: runs
            .iter()
            .find_map(|r| r.summary.as_ref().and_then(|s| s.run.stop_reason.clone())),
        complete,
        target: first.meta.target.clone(),
        codec: first.meta.plugin.name.clone(),
        seed: first.meta.seed,
        shards: runs.len() as u32,
        host: None,
        shard_start_spread_ms: Some(spread_ms),
        missing_shards,
    };
    // Shards' server gauges are not merged: each scraped the same server.
    let summary = agg.summary(&out.display().to_string(), facts, &infos, &counts, None);
    results::write_json(&out.join(results::SUMMARY), &summary)?;
    Ok(summary)
}

/// Refuse runs that are not shards of one run (other seeds, other
/// configurations, a shard given twice or shards of different counts);
/// the shards of the count that are not among them.
fn check_shards(runs: &[RunDir]) -> Result<Vec<u32>, ReportError> {
    let first = &runs[0];
    if let Some(other) = runs.iter().find(|r| r.meta.seed != first.meta.seed) {
        return Err(ReportError::Invalid(format!(
            "{} has seed {} and {} seed {}: shards of one run share its seed (give every shard the same config)",
            first.dir.display(),
            first.meta.seed,
            other.dir.display(),
            other.meta.seed
        )));
    }
    // The configuration but for what differs between shards by design
    // (each may reach the server by an address of its own).
    let plan = |r: &RunDir| {
        r.config().ok().map(|mut c| {
            (c.shard, c.start_at, c.output, c.target) = (None, None, None, None);
            serde_json::to_value(c).unwrap_or_default()
        })
    };
    let base = plan(first);
    for run in &runs[1..] {
        let this = plan(run);
        if let (Some(serde_json::Value::Object(a)), Some(serde_json::Value::Object(b))) = (&base, &this)
            && let Some(key) = a.keys().chain(b.keys()).find(|k| a.get(*k) != b.get(*k))
        {
            return Err(ReportError::Invalid(format!(
                "{} and {} ran different configurations (`{key}` differs): only shards of one run merge",
                first.dir.display(),
                run.dir.display()
            )));
        }
    }
    let shards: Vec<crate::config::Shard> = runs.iter().filter_map(|r| r.meta.start.and_then(|s| s.shard)).collect();
    let Some(count) = shards.first().map(|s| s.count) else {
        return Ok(Vec::new());
    };
    if shards.len() != runs.len() || shards.iter().any(|s| s.count != count) {
        return Err(ReportError::Invalid(format!(
            "the runs are not shards of one {count}-shard run: some ran with another --shard count or none"
        )));
    }
    let mut seen = vec![false; count as usize];
    for s in &shards {
        if std::mem::replace(&mut seen[s.index as usize], true) {
            return Err(ReportError::Invalid(format!(
                "shard {}/{count} is given twice: give each shard's directory once",
                s.index
            )));
        }
    }
    Ok((0..count).filter(|&i| !seen[i as usize]).collect())
}

/// Runs made one after another (the points of a sweep or a search) as one
/// run in `out` with a stage each, in the order given (each run's own
/// stages folded into it): the records on a common clock (the earliest
/// start), the summary rebuilt from them. `meta.json`, `records.jsonl` and
/// `summary.json` are written, so reporters and `barrage report` work on it.
pub fn sequence(runs: &[(PathBuf, StageInfo)], out: &Path, options: MetricsOptions) -> Result<Summary, ReportError> {
    let opened: Vec<RunDir> = runs.iter().map(|(d, _)| RunDir::open(d)).collect::<Result<_, _>>()?;
    let Some(first) = opened.first() else {
        return Err(ReportError::Invalid("no runs to put in sequence".into()));
    };
    let origin = opened.iter().map(|r| r.meta.started_unix_ms).min().unwrap_or(0);
    let configs: Vec<_> = opened.iter().filter_map(|r| r.config().ok()).collect();
    let agg = Aggregator::new(runs.len(), options, request_timeout_s(configs.iter()));
    let mut sink = results::RecordSink::create(out, agg)?;
    // In the order they ran, so the records come in about the order they ended.
    let mut by_start: Vec<usize> = (0..opened.len()).collect();
    by_start.sort_by_key(|&i| opened[i].meta.started_unix_ms);
    let mut duration_s = 0f64;
    for i in by_start {
        let run = &opened[i];
        let offset_ms = (run.meta.started_unix_ms - origin) as f64;
        for r in run.records()? {
            let mut r = r?;
            r.stage = i;
            shift(&mut r, offset_ms);
            duration_s = duration_s.max(r.end_ms / 1000.0);
            sink.add(&r)?;
        }
    }
    sink.flush()?;
    let counts: Vec<ScheduleCounts> = opened
        .iter()
        .map(|r| {
            r.summary
                .as_ref()
                .map_or_else(ScheduleCounts::default, |s| ScheduleCounts::of(&s.total))
        })
        .collect();
    let mut meta = first.meta.clone();
    meta.started_unix_ms = origin;
    results::write_json(&out.join(results::META), &meta)?;
    let infos: Vec<StageInfo> = runs.iter().map(|(_, info)| info.clone()).collect();
    let facts = RunFacts {
        started_unix_ms: origin,
        duration_s,
        stopped: opened.iter().any(|r| r.summary.is_none()),
        stop_reason: None,
        complete: opened.iter().all(|r| r.summary.is_some()),
        target: first.meta.target.clone(),
        codec: first.meta.plugin.name.clone(),
        seed: first.meta.seed,
        shards: 1,
        host: None,
        shard_start_spread_ms: None,
        missing_shards: Vec::new(),
    };
    let summary = sink
        .aggregator
        .summary(&out.display().to_string(), facts, &infos, &counts, None);
    results::write_json(&out.join(results::SUMMARY), &summary)?;
    Ok(summary)
}

/// Move a record's times by `ms`.
fn shift(r: &mut Record, ms: f64) {
    if ms == 0.0 {
        return;
    }
    for t in [&mut r.scheduled_ms, &mut r.sent_ms, &mut r.end_ms] {
        *t += ms;
    }
    for t in [
        &mut r.headers_ms,
        &mut r.first_byte_ms,
        &mut r.first_token_ms,
        &mut r.first_answer_ms,
        &mut r.last_token_ms,
    ]
    .into_iter()
    .flatten()
    {
        *t += ms;
    }
    for t in &mut r.content_frames_ms {
        *t += ms;
    }
}

fn cell(d: &Option<crate::metrics::Dist>, p: f64) -> Option<f64> {
    d.as_ref().and_then(|d| d.p(p))
}

/// The headline figures compared across runs: (name, value of a section).
type Figure = (&'static str, fn(&StageSummary) -> Option<f64>);

const FIGURES: &[Figure] = &[
    ("sent", |s| Some(s.sent as f64)),
    ("failed", |s| Some(s.failed as f64)),
    ("req/s", |s| Some(s.requests_per_s)),
    ("output tok/s", |s| Some(s.output_tokens_per_s)),
    ("goodput req/s", |s| s.goodput.as_ref().map(|g| g.requests_per_s)),
    ("ttft p50 ms", |s| cell(&s.ttft_ms, 50.0)),
    ("ttft p99 ms", |s| cell(&s.ttft_ms, 99.0)),
    ("itl p50 ms", |s| cell(&s.inter_token_ms, 50.0)),
    ("tpot p50 ms", |s| cell(&s.tpot_ms, 50.0)),
    ("tpot p99 ms", |s| cell(&s.tpot_ms, 99.0)),
    ("e2e p50 ms", |s| cell(&s.e2e_ms, 50.0)),
    ("e2e p99 ms", |s| cell(&s.e2e_ms, 99.0)),
];

fn f2(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// Each stage, then all stages together when there are several.
fn sections(summary: &Summary) -> impl Iterator<Item = &StageSummary> {
    summary
        .stages
        .iter()
        .chain((summary.stages.len() > 1).then_some(&summary.total))
}

/// The table printed at the end of every run.
pub fn console_table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "results: {}", summary.dir);
    if let Some(reason) = &summary.run.stop_reason {
        let _ = writeln!(out, "stopped early: {reason}");
    }
    // A run of embeddings, rankings or images has no tokens to time: its
    // columns are items and the latency to the response's end.
    let items = summary.total.items > 0 && summary.total.output_tokens == 0;
    let middle: [&str; 6] = if items {
        ["items/s", "lat p50", "lat p90", "lat p99", "lat max", "in tok/s"]
    } else {
        ["ttft p50", "ttft p99", "itl p50", "tpot p50", "e2e p99", "tok/s"]
    };
    let _ = writeln!(
        out,
        "{:<6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "stage",
        "sent",
        "ok",
        "failed",
        "drop",
        "missed",
        "req/s",
        "rate",
        middle[0],
        middle[1],
        middle[2],
        middle[3],
        middle[4],
        middle[5],
        "lag p99"
    );
    for s in sections(summary) {
        let cells: [String; 6] = if items {
            [
                format!("{:.1}", s.items_per_s),
                f2(cell(&s.e2e_stream_ms, 50.0)),
                f2(cell(&s.e2e_stream_ms, 90.0)),
                f2(cell(&s.e2e_stream_ms, 99.0)),
                f2(s.e2e_stream_ms.as_ref().map(|d| d.max)),
                format!("{:.1}", s.input_tokens_per_s),
            ]
        } else {
            [
                f2(cell(&s.ttft_ms, 50.0)),
                f2(cell(&s.ttft_ms, 99.0)),
                f2(cell(&s.inter_token_ms, 50.0)),
                f2(cell(&s.tpot_ms, 50.0)),
                f2(cell(&s.e2e_ms, 99.0)),
                format!("{:.1}", s.output_tokens_per_s),
            ]
        };
        let _ = writeln!(
            out,
            "{:<6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>8.2} {:>8.2} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            s.stage.map_or("all".to_string(), |i| i.to_string()),
            s.sent,
            s.succeeded,
            s.failed,
            s.dropped,
            s.missed,
            s.requests_per_s,
            s.achieved_rate,
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            f2(cell(&s.send_lag_ms, 99.0)),
        );
        if let Some(g) = &s.goodput {
            let _ = writeln!(
                out,
                "       goodput {:.2} req/s ({:.1} % of requests met {})",
                g.requests_per_s,
                g.share * 100.0,
                g.slos.join(", ")
            );
        }
        for (msg, n) in &s.errors {
            let _ = writeln!(out, "       {n} × {msg}");
        }
        if let Some(server) = &s.server {
            let gauge = |name: &str, g: Option<crate::server_metrics::MeanMax>| {
                g.map(|g| format!("{name} {:.1} (most {:.1})", g.mean, g.max))
            };
            let latency = |name: &str, l: Option<crate::server_metrics::ServerLatency>| {
                l.map(|l| format!("{name} p50 {:.1} ms, p99 {:.1} ms", l.p50, l.p99))
            };
            let parts: Vec<String> = [
                server.requests.map(|n| format!("{n:.0} requests")),
                gauge("replicas", server.replicas),
                gauge("waiting", server.waiting),
                gauge("running", server.running),
                gauge("KV cache", server.kv_cache_usage),
                server
                    .prefix_cache_hit_rate
                    .map(|r| format!("prefix-cache hits {:.1}%", 100.0 * r)),
                latency("TTFT", server.ttft_ms),
                latency("inter-token", server.itl_ms),
            ]
            .into_iter()
            .flatten()
            .collect();
            let _ = writeln!(out, "       server: {}", parts.join(", "));
        }
        if let Some(c) = s.client.as_ref().filter(|c| c.saturated) {
            let _ = writeln!(
                out,
                "       CLIENT SATURATED: Barrage itself was a bottleneck here, so these figures describe it as much as the server: {}",
                c.reasons.join("; ")
            );
        }
        if !s.accounted {
            let _ = writeln!(
                out,
                "       WARNING: counts do not reconcile (scheduled {} = sent {} + dropped {} + missed {} + not sent {}; sent = ok {} + failed {} + cancelled {})",
                s.scheduled, s.sent, s.dropped, s.missed, s.not_sent, s.succeeded, s.failed, s.cancelled
            );
        }
    }
    let legend = if items {
        "(times in ms; lat = send to the response's end; items = vectors, documents ranked or images; rate = achieved send rate; details in summary.json and records.jsonl)"
    } else {
        "(times in ms; itl = inter-token latency; rate = achieved send rate; details in summary.json and records.jsonl)"
    };
    let _ = writeln!(out, "{legend}");
    if !summary.thresholds.is_empty() {
        let failed = summary.failed_thresholds().count();
        let _ = writeln!(
            out,
            "thresholds: {} of {} passed",
            summary.thresholds.len() - failed,
            summary.thresholds.len()
        );
        for t in &summary.thresholds {
            let _ = writeln!(out, "  {} {}", if t.passed { "pass" } else { "FAIL" }, t.describe());
        }
    }
    if let Some(server) = &summary.server {
        let most = |f: fn(&crate::server_metrics::ServerSample) -> Option<f64>| {
            server.samples.iter().filter_map(f).reduce(f64::max)
        };
        let _ = writeln!(
            out,
            "server ({}): {} scrapes, {} failed{}; most replicas {}, waiting {}, running {}",
            server.url,
            server.scrapes,
            server.errors,
            server
                .last_error
                .as_deref()
                .map_or(String::new(), |e| format!(" (last: {e})")),
            f2(most(|s| s.replicas)),
            f2(most(|s| s.waiting)),
            f2(most(|s| s.running)),
        );
    }
    for (i, spike) in summary.spikes.iter().enumerate() {
        let _ = writeln!(out, "spike {i}: {}", describe_spike(spike));
    }
    out
}

/// One spike in words, for the console.
pub fn describe_spike(s: &crate::metrics::spikes::Spike) -> String {
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
    let mut text = format!(
        "{:.1}–{:.1} s (stage {}, {} → {} req/s)",
        s.start_s,
        s.end_s,
        s.stage,
        f2(s.rate_before),
        f2(s.rate)
    );
    match (s.violation_s, s.recovered) {
        (None, _) => text.push_str("; no objectives to judge recovery by (--slo)"),
        (Some(n), true) => {
            let _ = write!(
                text,
                "; objectives missed {n} s, met again after {}",
                secs(s.recovery_s)
            );
        }
        (Some(n), false) => {
            let _ = write!(text, "; objectives missed {n} s, NOT met again by the window's end");
        }
    }
    if let Some(e) = s.excess_ttft_ms_s {
        let _ = write!(text, "; excess TTFT {e:.0} ms·s");
    }
    if let Some(before) = s.replicas_before {
        let _ = write!(
            text,
            "; replicas {} → {} (up after {}, down {} after the spike), {} replica·s",
            f2(Some(before)),
            f2(s.replicas_peak),
            secs(s.scale_up_s),
            secs(s.scale_down_s),
            f2(s.replica_seconds)
        );
    }
    text
}

/// The headline figures of each stage (and of all, with several) as a
/// Markdown table.
pub fn figures_markdown(summary: &Summary) -> String {
    let mut out = String::from("| stage |");
    let mut rule = String::from("|---|");
    for (name, _) in FIGURES {
        let _ = write!(out, " {name} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "\n{rule}");
    for s in sections(summary) {
        let _ = write!(out, "| {} |", s.stage.map_or("all".to_string(), |i| i.to_string()));
        for (_, value) in FIGURES {
            let _ = write!(out, " {} |", f2(value(s)));
        }
        out.push('\n');
    }
    out
}

/// Runs side by side, with the difference of each from the first. Stages are
/// compared by index; `all` compares whole runs.
pub fn compare_table(names: &[String], summaries: &[Summary]) -> String {
    let mut out = String::new();
    let stages = summaries.iter().map(|s| s.stages.len()).max().unwrap_or(0);
    let sections: Vec<Option<usize>> = (0..stages).map(Some).chain((stages > 1).then_some(None)).collect();
    for section in sections {
        let pick = |s: &Summary| -> Option<StageSummary> {
            match section {
                Some(i) => s.stages.get(i).cloned(),
                None => Some(s.total.clone()),
            }
        };
        let _ = writeln!(
            out,
            "\n## {}\n",
            section.map_or("all stages".to_string(), |i| {
                let label = summaries
                    .first()
                    .and_then(|s| s.stages.get(i))
                    .map(|s| s.label.clone())
                    .unwrap_or_default();
                format!("stage {i}: {label}")
            })
        );
        header(&mut out, names);
        let picked: Vec<Option<StageSummary>> = summaries.iter().map(pick).collect();
        for (name, f) in FIGURES {
            row(
                &mut out,
                name,
                &picked.iter().map(|s| s.as_ref().and_then(f)).collect::<Vec<_>>(),
            );
        }
    }
    // Spikes side by side: two autoscaler settings under the same load.
    let spikes = summaries.iter().map(|s| s.spikes.len()).max().unwrap_or(0);
    for k in 0..spikes {
        let first = summaries.iter().find_map(|s| s.spikes.get(k));
        let _ = writeln!(
            out,
            "\n## spike {k}{}\n",
            first.map_or(String::new(), |s| format!(": stage {} at {:.1} s", s.stage, s.start_s))
        );
        header(&mut out, names);
        for (name, f) in SPIKE_FIGURES {
            let values: Vec<Option<f64>> = summaries.iter().map(|s| s.spikes.get(k).and_then(f)).collect();
            row(&mut out, name, &values);
        }
    }
    out
}

/// The figures of a spike compared across runs.
type SpikeFigure = (&'static str, fn(&crate::metrics::spikes::Spike) -> Option<f64>);

const SPIKE_FIGURES: &[SpikeFigure] = &[
    ("recovery s", |s| s.recovery_s),
    ("objectives missed s", |s| s.violation_s.map(|n| n as f64)),
    ("excess TTFT ms·s", |s| s.excess_ttft_ms_s),
    ("scale-up s", |s| s.scale_up_s),
    ("scale-down s", |s| s.scale_down_s),
    ("peak replicas", |s| s.replicas_peak),
    ("replica·s", |s| s.replica_seconds),
];

fn header(out: &mut String, names: &[String]) {
    let _ = write!(out, "| figure |");
    for (i, n) in names.iter().enumerate() {
        let _ = write!(out, " {n} |");
        if i > 0 {
            let _ = write!(out, " Δ |");
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---:|".repeat(names.len() * 2 - 1));
}

/// A row of values, each with its difference from the first.
fn row(out: &mut String, name: &str, values: &[Option<f64>]) {
    let _ = write!(out, "| {name} |");
    for (i, v) in values.iter().enumerate() {
        let _ = write!(out, " {} |", f2(*v));
        if i > 0 {
            let delta = match (values[0], v) {
                (Some(a), Some(b)) if a != 0.0 => format!("{:+.1} %", (b - a) / a * 100.0),
                _ => "-".into(),
            };
            let _ = write!(out, " {delta} |");
        }
    }
    let _ = writeln!(out);
}

/// The summaries of runs to compare, rebuilt with one set of options so
/// percentiles and objectives match.
pub fn load_for_compare(dirs: &[PathBuf], options: &MetricsOptions) -> Result<Vec<Summary>, ReportError> {
    dirs.iter()
        .map(|d| Ok(rebuild(&RunDir::open(d)?, options.clone())?.0))
        .collect()
}

/// Distinct, short names for run directories (their last path part).
pub fn run_names(dirs: &[PathBuf]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    dirs.iter()
        .map(|d| {
            let base = d
                .file_name()
                .map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into_owned());
            let n = seen.entry(base.clone()).or_default();
            *n += 1;
            if *n > 1 { format!("{base}#{n}") } else { base }
        })
        .collect()
}

/// The run in `run_dir` under each of `peers`' metric definitions, each
/// written to `out_dir/compat-<peer>.json`: the files, and each view's
/// headline line.
pub fn compat_views(
    run_dir: &Path,
    out_dir: &Path,
    peers: &[crate::metrics::compat::Peer],
) -> Result<Vec<(PathBuf, String)>, ResultsError> {
    if peers.is_empty() {
        return Ok(Vec::new());
    }
    let records = crate::results::RunDir::open(run_dir)?
        .records()?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for &peer in peers {
        let view = crate::metrics::compat::view(peer, &records);
        let path = out_dir.join(format!("compat-{}.json", peer.name()));
        crate::results::write_json(&path, &view)?;
        out.push((path, crate::metrics::compat::headline(peer, &view)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Status;

    fn record(id: u64, sent_ms: f64) -> Record {
        Record {
            id,
            sent_ms,
            scheduled_ms: sent_ms,
            first_token_ms: Some(sent_ms + 5.0),
            content_frames_ms: vec![sent_ms + 5.0, sent_ms + 7.0],
            last_token_ms: Some(sent_ms + 7.0),
            end_ms: sent_ms + 8.0,
            output_tokens: 2,
            status: Status::Ok,
            measured: true,
            ..Record::default()
        }
    }

    #[test]
    fn merge_puts_shards_on_one_clock_and_counts_every_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, out) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("merged"));
        results::tests::run_dir(&a, 1_000, &[record(0, 0.0), record(1, 10.0)]);
        // The second shard started 5 ms later: its times move by 5 ms, and
        // the merged records interleave in the order they ended.
        results::tests::run_dir(&b, 1_005, &[record(0, 0.0), record(1, 10.0), record(2, 20.0)]);
        let summary = merge(&[a.clone(), b.clone()], &out, MetricsOptions::default()).unwrap();
        assert_eq!(summary.run.shards, 2);
        assert!(!summary.run.complete, "the shards wrote no summary of their own");
        let merged = RunDir::open(&out).unwrap();
        let mut seen = Vec::new();
        merged
            .for_each_record(|r| seen.push((r.shard, r.id, r.sent_ms)))
            .unwrap();
        assert_eq!(
            seen,
            vec![
                (Some(0), 0, 0.0),
                (Some(1), 0, 5.0),
                (Some(0), 1, 10.0),
                (Some(1), 1, 15.0),
                (Some(1), 2, 25.0)
            ]
        );
        assert_eq!(merged.meta.started_unix_ms, 1_000);
        assert_eq!(merged.meta.host, "host-1000,host-1005");
        assert_eq!(merged.meta.shards[1].offset_ms, 5.0);
        assert_eq!((summary.total.sent, summary.total.succeeded), (5, 5));
    }

    #[test]
    fn merge_needs_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let e = merge(&[], &dir.path().join("m"), MetricsOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("give the run directories"), "{e}");
    }
}
