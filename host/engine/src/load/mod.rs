//! The load engine: turns stages into requests at exact times, sends them,
//! and streams every result to disk.
//!
//! Threads, one module each: the **pacer** ([`pacer`]; a plain OS thread,
//! raised priority) sleeps and then spins to each scheduled send time and
//! sends the request itself; the **feeder** ([`feeder`]) keeps units of
//! work encoded ahead of the schedule; the **records** thread ([`records`])
//! writes `records.jsonl` and keeps the aggregates. Closed-loop stages
//! ([`closed_loop`]) run their virtual users as runtime tasks; a unit's
//! requests are sent by [`request`]; live progress is [`progress`]. Request
//! tasks on the runtime do the I/O and only the I/O.

mod adopt;
mod closed_loop;
pub mod expr;
mod feeder;
mod gauge;
mod pacer;
mod progress;
mod records;
mod request;
pub mod shape;
pub(crate) mod shared;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use barrage_core::types::DecodeOptions;
use barrage_plugin_host::{CodecPlugin, CodecWorkers};
use tokio::sync::watch;

pub use crate::config::{Plan, RunConfig, RunConfigError, Stage};
use crate::metrics::{Aggregator, HostUsage, Record, RunFacts, Summary};
use crate::results::{RecordSink, ResultsError};
use crate::transport::{Transport, TransportError};
pub use pacer::normal_priority;
pub use progress::ProgressSink;
pub use shared::{StopSignal, Workload};

/// Why a run could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results directory could not be written.
    #[error("cannot write results to {path}: {source}")]
    Output {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing or reading a results file failed.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// A thread of the run died.
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// The target or the headers are unusable.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The API key's variable is not set.
    #[error("api_key_env: the environment variable `{0}` is not set")]
    ApiKey(String),
    /// The report settings are invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// What follows a run as it goes, besides its records.
#[derive(Default)]
pub struct Watchers<'a> {
    /// Where progress lines go, if they are wanted.
    pub progress: Option<Box<dyn ProgressSink>>,
    /// The live export, if there is one.
    pub export: Option<&'a crate::export::Exporter>,
}

/// The code a run runs: its codec, and, for `meta.json`, who the other
/// plugins are and the lockfile that approved them all.
#[derive(Clone)]
pub struct RunPlugins {
    /// The codec.
    pub codec: Arc<CodecPlugin>,
    /// The reporters its reports will be rendered by.
    pub reporters: Vec<crate::results::PluginMeta>,
    /// The lockfile, for a locked run.
    pub lockfile: Option<crate::results::LockMeta>,
}

/// Run `plan` against `target` with `plugins`, writing into `dir`.
pub async fn run(
    plan: Plan,
    plugins: RunPlugins,
    workload: Workload,
    target: &str,
    dir: &Path,
    stop: StopSignal,
    watchers: Watchers<'_>,
) -> Result<Summary, RunError> {
    let Watchers { progress, export } = watchers;
    let RunPlugins {
        codec: plugin,
        reporters,
        lockfile,
    } = plugins;
    let config = &plan.config;
    let workload = workload
        .for_shard(config.shard)
        .map_err(|m| RunError::Config(crate::config::ConfigError::new(m)))?;
    std::fs::create_dir_all(dir).map_err(|source| RunError::Output {
        path: dir.display().to_string(),
        source,
    })?;
    let scrape_urls = match &config.server_metrics {
        Some(m) => m
            .scrape_urls(target)
            .map_err(|m| RunError::Config(crate::config::ConfigError::new(m)))?,
        None => Vec::new(),
    };
    let api_key = match &config.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| RunError::ApiKey(var.clone()))?),
        None => None,
    };
    let transport = Transport::new(
        target,
        &crate::transport::TransportOptions {
            headers: config.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            api_key,
            max_idle_per_host: config.connections,
            max_connections: match config.max_connections {
                0 => pacer::connection_budget(),
                n => n,
            },
            timeout: Duration::from_secs_f64(config.request.timeout_s),
            http2: config.http2,
            tls: config.tls.clone(),
            grpc_connections: config.grpc_connections,
        },
    )?;
    pacer::quiet_kernel_paths();
    let workers = CodecWorkers::start(plugin.clone(), config.plugin_threads).map_err(RunError::Thread)?;
    let (records_tx, records_rx) = tokio::sync::mpsc::channel::<Record>(records::QUEUE);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    // Every shard of a distributed run begins its schedule at this
    // wall-clock instant (the pacer waits for it, once all is set up).
    let start_at = match &config.start_at {
        Some(at) => Some(
            barrage_core::clock::parse_instant(at)
                .map_err(|m| RunError::Config(crate::config::ConfigError::new(format!("start_at: {m}"))))?,
        ),
        None => None,
    };
    // Instant and CLOCK_MONOTONIC are the same clock on Linux; noting both
    // lets records be compared with another process's monotonic times.
    let origin = Instant::now();
    let origin_ns = barrage_core::clock::monotonic_ns();
    let origin_unix_ms = barrage_core::clock::unix_ms();
    let metrics_options = config.report.metrics_options()?;
    let dataset = workload.dataset.as_ref().map(|d| d.stats());
    let start = crate::results::StartMeta {
        unix_ms: origin_unix_ms,
        asked_unix_ms: start_at,
        schedule_unix_ms: None,
        shard: config.shard,
    };
    let provenance = Provenance {
        dataset,
        reporters,
        lockfile,
    };
    let meta = write_meta(dir, config, &plugin, (target, origin_ns), start, provenance)?;
    let live = records::Live {
        counters: Arc::default(),
        ttft_p50_us: Arc::new(AtomicU64::new(u64::MAX)),
    };
    if let Some(e) = export {
        e.attach(live.counters.clone());
    }
    let ctx = Arc::new(shared::Ctx {
        origin,
        transport,
        workers,
        options: DecodeOptions { want_text: false },
        malformed: config.malformed_frames,
        max_frame: config.max_frame(),
        records: records_tx,
        cancel: cancel_rx,
        stopping: stop.flag.clone(),
        counters: live.counters.clone(),
        workload,
        followups: config.stages.iter().map(|_| AtomicU64::new(0)).collect(),
        max_send_lag: config.max_send_lag(),
        max_backlog: config.max_decode_backlog(),
        missed: config.stages.iter().map(|_| AtomicU64::new(0)).collect(),
        export: export.map(crate::export::Exporter::stage_hooks),
        synthetic_prompt_tokens: config.request.prompt_tokens,
        start_at_unix_ms: start_at,
        schedule_start_unix_ms: std::sync::OnceLock::new(),
        adopter: adopt::Adopter::start(),
    });

    let aggregator = Aggregator::new(config.stages.len(), metrics_options, config.request.timeout_s);
    let sink = RecordSink::create(dir, aggregator)?;
    let infos: Vec<_> = config.stages.iter().map(Stage::info).collect();
    let rules = records::StopRules {
        max_error_rate: config.max_error_rate,
        thresholds: config.abort_on_threshold.then(|| {
            (
                origin + Duration::from_secs_f64(config.threshold_grace_s),
                infos.clone(),
            )
        }),
        overload: config
            .stop_on_overload_after_s
            .map(|s| origin + Duration::from_secs_f64(s)),
        stable: config.stop_when_stable_after_s.map(|s| (origin, s.ceil() as usize)),
    };
    let observer = export.map(crate::export::Exporter::observer);
    let writer = records::start(sink, records_rx, &live, stop.clone(), rules, observer)?;
    let server_file = |source| RunError::Output {
        path: dir.join(crate::server_metrics::SERVER_JSONL).display().to_string(),
        source,
    };
    let mut scraper = match &config.server_metrics {
        Some(m) if !scrape_urls.is_empty() => {
            let interval = Duration::from_secs_f64(m.interval_s);
            Some(crate::server_metrics::Scraper::spawn(scrape_urls, interval, origin, dir).map_err(server_file)?)
        }
        _ => None,
    };
    if let Some(s) = &mut scraper {
        s.first_sample().await;
    }
    let progress = progress.map(|sink| {
        let sink = Arc::new(Mutex::new(sink));
        (progress::spawn(sink.clone(), origin, &live), sink)
    });

    // The pacer runs on its own thread; it hands requests to this runtime.
    let feed = feeder::start(config, &ctx)?;
    let handle = tokio::runtime::Handle::current();
    let probe = Arc::new(gauge::IoProbe::default());
    gauge::IoProbe::spawn(&probe);
    let pacer = {
        let ctx = ctx.clone();
        let plan = plan.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("barrage-pacer".into())
            .spawn(move || pacer::pace_stages(&plan, &ctx, feed, &handle, &stop, &probe))
            .map_err(RunError::Thread)?
    };
    let mut scheduled = tokio::task::spawn_blocking(move || pacer.join().unwrap_or_default())
        .await
        .unwrap_or_default();

    // Drain: let in-flight requests finish; after a stop, only for the grace period.
    let grace = Duration::from_secs_f64(config.grace_period_s);
    let drain_start = Instant::now();
    while ctx.counters.in_flight.load(Ordering::SeqCst) > 0 {
        if stop.is_stopped() && drain_start.elapsed() >= grace {
            let _ = cancel_tx.send(true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some((task, sink)) = progress {
        task.abort();
        sink.lock().unwrap_or_else(|p| p.into_inner()).finish();
    }
    let duration_s = origin.elapsed().as_secs_f64();
    for ((counts, followups), missed) in scheduled.iter_mut().zip(&ctx.followups).zip(&ctx.missed) {
        counts.scheduled += followups.load(Ordering::Relaxed);
        counts.missed += missed.load(Ordering::Relaxed);
    }
    let schedule_unix_ms = ctx.schedule_start_unix_ms.get().copied();
    let host = HostUsage {
        peak_rss_mib: HostUsage::peak_rss_mib(),
        plugin_memory_peak_mib: ctx.workers.plugin().memory_peak() as f64 / f64::from(1u32 << 20),
        plugin_thread_restarts: ctx.workers.restarts(),
    };
    // The last context closes the records channel (the feeder thread drops
    // its copy once the pacer's feed is gone).
    drop(ctx);
    let (sink, io_error) = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|_| RunError::Panicked("records"))?
        .map_err(|_| RunError::Panicked("records"))?;
    if let Some(e) = io_error {
        return Err(e.into());
    }
    let facts = RunFacts {
        started_unix_ms: meta.started_unix_ms,
        duration_s,
        stopped: stop.is_stopped(),
        stop_reason: stop.reason(),
        complete: true,
        target: meta.target.clone(),
        codec: meta.plugin.name.clone(),
        seed: config.seed,
        shards: 1,
        host: Some(host),
        shard_start_spread_ms: None,
        missing_shards: Vec::new(),
    };
    // Finished before the file is read: no line is written meanwhile.
    if let Some(scraper) = scraper {
        scraper.finish().await;
    }
    let server = match &config.server_metrics {
        Some(m) => {
            m.query_after(dir, meta.started_unix_ms, duration_s)
                .await
                .map_err(server_file)?;
            crate::server_metrics::ServerSeries::read(dir, &m.source(target))
        }
        None => None,
    };
    let mut summary = sink
        .aggregator
        .summary(&dir.display().to_string(), facts, &infos, &scheduled, server);
    if let Some(e) = export {
        summary.export = Some(e.finish(&scheduled).await);
    }
    crate::results::write_json(&dir.join(crate::results::SUMMARY), &summary)?;
    // A shard notes when its schedule began, after the summary is safe.
    let mut meta = meta;
    if let Some(start) = meta.start.as_mut().filter(|s| s.asked_unix_ms.is_some()) {
        start.schedule_unix_ms = schedule_unix_ms;
        crate::results::write_json(&dir.join(crate::results::META), &meta)?;
    }
    Ok(summary)
}

/// What `meta.json` says of the code besides the codec.
struct Provenance {
    dataset: Option<barrage_plugin_host::prepare::DatasetStats>,
    reporters: Vec<crate::results::PluginMeta>,
    lockfile: Option<crate::results::LockMeta>,
}

fn write_meta(
    dir: &Path,
    config: &RunConfig,
    plugin: &CodecPlugin,
    (target, origin_ns): (&str, u64),
    start: crate::results::StartMeta,
    provenance: Provenance,
) -> Result<crate::results::Meta, RunError> {
    let out = |name: &str, bytes: Vec<u8>| {
        std::fs::write(dir.join(name), bytes).map_err(|source| RunError::Output {
            path: dir.join(name).display().to_string(),
            source,
        })
    };
    // The resolved config. API keys never appear: only the variable's name is in it.
    out(
        "config.yaml",
        serde_yaml_ng::to_string(config).unwrap_or_default().into_bytes(),
    )?;
    let meta = crate::results::Meta {
        barrage_version: env!("CARGO_PKG_VERSION").to_string(),
        seed: config.seed,
        origin_monotonic_ns: origin_ns,
        started_unix_ms: start.unix_ms as u64,
        start: Some(start),
        target: target.to_string(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        plugin: crate::results::PluginMeta {
            name: plugin.name().to_string(),
            version: plugin.info.version.clone(),
            sha256: plugin.sha256.clone(),
            contract: plugin.contract_version.clone(),
            source: plugin.source.location(),
        },
        shards: Vec::new(),
        tokenizer: crate::results::TokenizerMeta {
            name: plugin.tokenizer().name().to_string(),
            exact: plugin.tokenizer().exact(),
        },
        dataset: provenance.dataset,
        reporters: provenance.reporters,
        lockfile: provenance.lockfile,
    };
    out("meta.json", serde_json::to_vec_pretty(&meta).unwrap_or_default())?;
    Ok(meta)
}
