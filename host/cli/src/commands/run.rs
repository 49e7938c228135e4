//! `barrage run`: benchmark a server, or the embedded simulator.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use barrage_engine::config::{RunConfig, Stage};
use barrage_engine::export::{Exporter, Identity};
use barrage_engine::gate::{Failure, Gate};
use barrage_engine::load::shape::ShapeKind;
use barrage_engine::load::{ProgressSink, Watchers};
use barrage_plugin_host::CodecPlugin;

use crate::options::{
    CiArgs, DatasetArgs, MetricsArgs, PluginOptions, exit_code, prepare_dataset, read_plugin_config,
    reporter_identities, say_failed_thresholds, write_reports,
};

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// YAML run configuration (see docs/load.md); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Server base URL, e.g. http://127.0.0.1:8000. None: the embedded simulator.
    #[arg(long)]
    target: Option<String>,
    /// Codec plugin: built-in or installed name, or a .wasm file.
    #[arg(long)]
    codec: Option<String>,
    /// The codec's configuration: a JSON object, or @FILE with JSON or TOML.
    #[arg(long, value_name = "JSON|@FILE")]
    codec_config: Option<String>,
    /// Grant the codec a secret it declares: NAME=env:VARIABLE or
    /// NAME=file:PATH (repeatable). The value never reaches the results.
    #[arg(long = "codec-secret", value_name = "NAME=SOURCE")]
    codec_secrets: Vec<String>,
    /// Model name to send.
    #[arg(long)]
    model: Option<String>,
    /// One stage at this request rate (requests/s).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Shape of the --rate stage.
    #[arg(long, value_enum, default_value = "constant")]
    shape: ShapeKind,
    /// One closed-loop stage with this many virtual users.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Length of the flag-given stage, seconds.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Requests in the flag-given stage.
    #[arg(long)]
    requests: Option<u64>,
    /// Results directory (default runs/<UTC time>).
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Seed for the schedule and prompts.
    #[arg(long)]
    seed: Option<u64>,
    /// Output tokens per request.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Prompt length in tokens of --tokenizer (words with the default tokenizer).
    #[arg(long)]
    prompt_tokens: Option<u32>,
    /// No live progress lines.
    #[arg(long)]
    quiet: bool,
    /// HTTP/2 only (h2c on http://, h2 on https://).
    #[arg(long)]
    http2: bool,
    /// HTTP/2 connections that gRPC calls spread over.
    #[arg(long, value_name = "N")]
    grpc_connections: Option<usize>,
    /// Trust the certificates in this PEM file too (https:// targets).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long)]
    insecure: bool,
    /// Replace the run already in --output (removed first) instead of refusing.
    #[arg(long)]
    overwrite: bool,
    /// What a frame the codec cannot parse does to its request: fail it
    /// (status malformed), or count it and judge the request on the rest.
    #[arg(long, value_name = "WHAT")]
    malformed_frames: Option<barrage_engine::metrics::MalformedFrames>,
    /// Most MiB in one frame of a response (default 16); a response with a
    /// longer one fails as too_large and the rest of it is not read.
    #[arg(long, value_name = "MIB")]
    max_frame_mib: Option<f64>,
    /// Send an arrival at most this many ms late (default 1000); later, it
    /// is not sent but counted as missed.
    #[arg(long, value_name = "MS")]
    max_send_lag_ms: Option<f64>,
    /// Exit 6 when a stage finds Barrage itself saturated (missed
    /// arrivals, send lag, late I/O wake-ups or no CPU left).
    #[arg(long)]
    strict_client: bool,
    /// Scrape the server's Prometheus metrics every second during the run
    /// (replicas, queue, KV cache): the target's /metrics, or this URL.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    server_metrics: Option<String>,
    /// Stop the run as soon as a threshold fails on the results so far
    /// (judged every second, after --threshold-grace).
    #[arg(long)]
    abort_on_threshold: bool,
    /// Seconds from the start before --abort-on-threshold judges (default 10).
    #[arg(long, value_name = "SECONDS")]
    threshold_grace: Option<f64>,
    #[command(flatten)]
    export: ExportArgs,
    #[command(flatten)]
    distributed: DistributedArgs,
    #[command(flatten)]
    dataset: DatasetArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    ci: CiArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

/// A distributed run's flags (`shard:` and `start_at:` in a config).
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Distributed runs")]
struct DistributedArgs {
    /// Send shard INDEX of COUNT of the load (e.g. 0/4): the shards' union
    /// is the run asked for. Merge their directories with `barrage merge`.
    #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "shards")]
    shard: Option<String>,
    /// Run as one of COUNT shards, the index from $JOB_COMPLETION_INDEX
    /// (what a Kubernetes Indexed Job sets).
    #[arg(long, value_name = "COUNT")]
    shards: Option<u32>,
    /// Start at this wall-clock instant, RFC 3339 (2026-12-03T10:00:00Z)
    /// or Unix seconds: the same for every shard.
    #[arg(long, value_name = "TIME")]
    start_at: Option<String>,
}

impl DistributedArgs {
    fn given(&self) -> bool {
        self.shard.is_some() || self.shards.is_some() || self.start_at.is_some()
    }

    fn apply(&self, config: &mut RunConfig) -> Result<()> {
        if let Some(s) = &self.shard {
            config.shard = Some(barrage_engine::config::Shard::parse(s).map_err(|e| anyhow::anyhow!(e))?);
        }
        if let Some(count) = self.shards {
            let index = std::env::var("JOB_COMPLETION_INDEX").map_err(|_| {
                anyhow::anyhow!("--shards {count}: $JOB_COMPLETION_INDEX is not set (a Kubernetes Indexed Job sets it; elsewhere give --shard INDEX/COUNT)")
            })?;
            let index = index
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("--shards {count}: $JOB_COMPLETION_INDEX is `{index}`, not a number"))?;
            config.shard = Some(barrage_engine::config::Shard { index, count });
        }
        if let Some(at) = &self.start_at {
            config.start_at = Some(at.clone());
        }
        Ok(())
    }
}

/// The live export's flags (`export:` in a config).
#[derive(Debug, Default, clap::Args)]
#[command(next_help_heading = "Live export")]
struct ExportArgs {
    /// Serve the run's metrics for Prometheus at http://ADDR/metrics
    /// during the run and for --metrics-linger after it (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Seconds to go on serving after the run (default 15; Ctrl-C ends it).
    #[arg(long, value_name = "SECONDS")]
    metrics_linger: Option<f64>,
    /// Push the run's metrics to this Pushgateway at each stage's end and
    /// at the run's end (job barrage, grouped by run_id and shard).
    #[arg(long, value_name = "URL")]
    pushgateway: Option<String>,
    /// Send the run's metrics by Prometheus remote write to this URL
    /// (e.g. http://127.0.0.1:9090/api/v1/write) every 5 s and at each stage's end.
    #[arg(long, value_name = "URL")]
    remote_write: Option<String>,
    /// The run_id label of the exported metrics (default: the results directory's name).
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
}

impl ExportArgs {
    fn given(&self) -> bool {
        self.metrics_listen.is_some()
            || self.metrics_linger.is_some()
            || self.pushgateway.is_some()
            || self.remote_write.is_some()
            || self.run_id.is_some()
    }

    fn apply(&mut self, config: &mut RunConfig) {
        if !self.given() {
            return;
        }
        let e = config.export.get_or_insert_with(Default::default);
        if let Some(v) = self.metrics_listen.take() {
            e.listen = Some(v);
        }
        if let Some(v) = self.metrics_linger {
            e.linger_s = v;
        }
        if let Some(v) = self.pushgateway.take() {
            e.pushgateway = Some(v);
        }
        if let Some(v) = self.remote_write.take() {
            e.remote_write = Some(v);
        }
        if let Some(v) = self.run_id.take() {
            e.run_id = Some(v);
        }
    }
}

/// Progress lines on stderr: rewritten in place four times a second on a
/// terminal, a line a second otherwise (a log).
struct StderrProgress {
    tty: bool,
}

impl StderrProgress {
    fn boxed() -> Box<dyn ProgressSink> {
        use std::io::IsTerminal;
        Box::new(StderrProgress {
            tty: std::io::stderr().is_terminal(),
        })
    }
}

impl ProgressSink for StderrProgress {
    fn interval(&self) -> Duration {
        Duration::from_millis(if self.tty { 250 } else { 1000 })
    }

    fn line(&mut self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&mut self) {
        eprintln!();
    }
}

/// `dir`, unless it holds a run already: then only with `--overwrite`, which
/// removes the old run first, so no stale file of it is left beside the
/// new one.
fn claim_output(dir: PathBuf, overwrite: bool) -> Result<PathBuf> {
    let holds_run = [
        "meta.json",
        "records.jsonl",
        "summary.json",
        "sweep.json",
        "search.json",
    ]
    .iter()
    .any(|f| dir.join(f).exists());
    if holds_run {
        if !overwrite {
            bail!(
                "{} already holds a run; give another --output, or --overwrite to replace it",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing the old run in {}", dir.display()))?;
    }
    Ok(dir)
}

/// `dir`, or `dir-2`, `dir-3`, ... if it exists: two runs started in the same
/// second get directories of their own.
fn fresh(dir: PathBuf) -> PathBuf {
    if !dir.exists() {
        return dir;
    }
    (2u32..)
        .map(|n| PathBuf::from(format!("{}-{n}", dir.display())))
        .find(|d| !d.exists())
        .unwrap_or(dir)
}

/// `runs/<UTC yyyymmdd-hhmmss>`.
fn default_output_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (y, m, d, hh, mm, ss) = barrage_core::clock::utc(secs);
    PathBuf::from("runs").join(format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}"))
}

impl RunArgs {
    /// Apply these flags over `config` (the file's, or the defaults).
    fn apply(&mut self, config: &mut RunConfig) -> Result<()> {
        if let Some(v) = self.target.take() {
            // Checked here, so a bad flag is reported as the flag, not under
            // the config file's name.
            barrage_engine::transport::check_target(&v).map_err(|m| anyhow::anyhow!("--target `{v}`: {m}"))?;
            config.target = Some(v);
        }
        if let Some(v) = self.codec.take() {
            config.codec = v;
        }
        if let Some(v) = self.model.take() {
            config.model = v;
        }
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if let Some(v) = self.max_tokens {
            config.request.max_tokens = v;
        }
        if let Some(v) = self.prompt_tokens {
            config.request.prompt_tokens = v;
        }
        if let Some(v) = self.output.take() {
            config.output = Some(v);
        }
        if self.http2 {
            config.http2 = true;
        }
        if let Some(v) = self.grpc_connections {
            config.grpc_connections = v;
        }
        if let Some(v) = self.ca_file.take() {
            config.tls.ca_file = Some(v);
        }
        if self.insecure {
            config.tls.insecure = true;
        }
        if let Some(v) = self.malformed_frames {
            config.malformed_frames = v;
        }
        if let Some(v) = self.max_frame_mib {
            config.max_frame_mib = v;
        }
        if let Some(v) = self.max_send_lag_ms {
            config.max_send_lag_ms = v;
        }
        if self.strict_client {
            config.strict_client = true;
        }
        if self.abort_on_threshold {
            config.abort_on_threshold = true;
        }
        if let Some(url) = self.server_metrics.take() {
            let m = config.server_metrics.get_or_insert_with(Default::default);
            if !url.is_empty() {
                m.url = Some(url);
            }
        }
        if let Some(v) = self.threshold_grace {
            config.threshold_grace_s = v;
        }
        self.export.apply(config);
        self.distributed.apply(config)?;
        if self.rate.is_some() || self.concurrency.is_some() {
            let duration = self
                .duration
                .or(if self.requests.is_none() { Some(10.0) } else { None });
            config.stages = vec![Stage {
                shape: if self.concurrency.is_some() {
                    ShapeKind::Concurrency
                } else {
                    self.shape
                },
                rate: self.rate,
                burstiness: Some(1.0),
                concurrency: self.concurrency,
                duration_s: duration,
                requests: self.requests,
                ..Stage::default()
            }];
        } else if self.duration.is_some() || self.requests.is_some() {
            for stage in &mut config.stages {
                if self.duration.is_some() {
                    stage.duration_s = self.duration;
                }
                if self.requests.is_some() {
                    stage.requests = self.requests;
                }
            }
        }
        if let Some(c) = &self.codec_config {
            let value: serde_json::Value = serde_json::from_str(&read_plugin_config(Some(c), "--codec-config")?)?;
            config.codec_config = serde_json::from_value(value)?;
        }
        for grant in &self.codec_secrets {
            let (name, source) = grant
                .split_once('=')
                .with_context(|| format!("--codec-secret `{grant}`: expected NAME=env:VARIABLE or NAME=file:PATH"))?;
            let source = source
                .parse()
                .map_err(|e| anyhow::anyhow!("--codec-secret {name}: {e}"))?;
            config.codec_secrets.insert(name.to_string(), source);
        }
        self.metrics.apply(&mut config.report);
        self.dataset.apply(config)?;
        if let Some(t) = &self.plugins.tokenizer {
            config.tokenizer = Some(t.clone());
        }
        self.plugins.tokenizer = config.tokenizer.clone();
        // Either way in, the lock is the flags' and the file's together:
        // a configuration can lock a run, and no flag unlocks it.
        config.locked |= self.plugins.locked;
        if let Some(path) = self.plugins.lockfile.take() {
            config.lockfile = Some(path);
        } else if let Some(path) = config.lockfile.take() {
            config.lockfile = Some(config.base_dir.join(path));
        }
        self.plugins.locked = config.locked;
        self.plugins.lockfile = config.lockfile.clone();
        Ok(())
    }
}

/// What a run (or a sweep of runs) needs before it starts: the checked
/// plan, its results directory, the codec and the prompts.
pub(crate) struct Setup {
    pub(crate) plan: barrage_engine::config::Plan,
    pub(crate) dir: PathBuf,
    pub(crate) plugins: barrage_engine::load::RunPlugins,
    pub(crate) workload: barrage_engine::load::Workload,
}

impl RunArgs {
    /// The configuration file with the flags over it, checked; the results
    /// directory claimed; the codec loaded and the dataset prepared.
    pub(crate) fn setup(&mut self) -> Result<Setup> {
        let mut config = match &self.config {
            Some(path) => RunConfig::from_file(path)?,
            None => RunConfig::default(),
        };
        let origin = self
            .config
            .as_ref()
            .map_or("flags".to_string(), |p| p.display().to_string());
        self.apply(&mut config)?;
        let plan = config.plan().map_err(|m| anyhow::anyhow!("run config {origin}: {m}"))?;
        let config = &plan.config;
        if let Some(sim) = &config.sim {
            sim.validate()
                .map_err(|m| anyhow::anyhow!("run config {origin}: sim.{m}"))?;
        }
        let dir = match config.output.clone() {
            Some(dir) => claim_output(dir, self.overwrite)?,
            None => fresh(default_output_dir()),
        };
        let engine = self.plugins.engine()?;
        let source = self
            .plugins
            .registry()
            .resolve_in(barrage_plugin_host::World::Codec, &config.codec)?;
        let plugin_config = serde_json::to_string(&config.codec_config)?;
        let mut ctx = self.plugins.context(plugin_config, config.seed)?;
        ctx.secrets = std::sync::Arc::new(
            config
                .codec_secrets()
                .map_err(|e| anyhow::anyhow!("run config {origin}: {e}"))?,
        );
        let codec = CodecPlugin::load(&engine, &source, ctx)?;
        // Known (and, under a lock, approved) before anything is sent.
        let reporters = reporter_identities(&self.plugins, &engine, &config.report.reporters)?;
        let workload = match prepare_dataset(config, &self.plugins, &engine)? {
            Some(prepared) => {
                for (i, stage) in config.stages.iter().enumerate() {
                    if stage.shape == ShapeKind::Trace && !prepared.timed() {
                        bail!(
                            "run config {origin}: stages[{i}]: shape trace sends each sample at its time, and the \
                             {} dataset's samples have none (use the trace dataset, or at_ms in jsonl/csv records)",
                            prepared.plugin
                        );
                    }
                }
                barrage_engine::load::Workload::dataset(std::sync::Arc::new(prepared))
            }
            None => barrage_engine::load::Workload::synthetic(),
        };
        let lockfile = engine.lock().map(|lock| barrage_engine::results::LockMeta {
            path: lock.path().display().to_string(),
            sha256: lock.sha256().to_string(),
        });
        Ok(Setup {
            plan,
            dir,
            plugins: barrage_engine::load::RunPlugins {
                codec,
                reporters,
                lockfile,
            },
            workload,
        })
    }

    /// Whether to print progress lines.
    pub(crate) fn progress(&self) -> Option<Box<dyn ProgressSink>> {
        (!self.quiet).then(StderrProgress::boxed)
    }

    /// A flag given that only a single run has (its one stage, aborting it,
    /// its CI files), if any: a sweep or search chooses its own runs.
    pub(crate) fn single_run_flag(&self) -> Option<&'static str> {
        [
            (self.rate.is_some(), "--rate"),
            (self.concurrency.is_some(), "--concurrency"),
            (self.duration.is_some(), "--duration"),
            (self.requests.is_some(), "--requests"),
            (self.abort_on_threshold, "--abort-on-threshold"),
            (self.ci.junit.is_some(), "--junit"),
            (self.ci.ci_summary.is_some(), "--ci-summary"),
            (self.export.given(), "--metrics-listen, --pushgateway, --remote-write"),
            (self.distributed.given(), "--shard, --shards, --start-at"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// Whether progress is to be shown.
    pub(crate) fn quiet(&self) -> bool {
        self.quiet
    }

    /// The plugin flags.
    pub(crate) fn plugins(&self) -> &PluginOptions {
        &self.plugins
    }

    /// Where `--status-file` writes the headline figures, if given.
    pub(crate) fn status_file(&self) -> Option<&std::path::Path> {
        self.ci.status_file.as_deref()
    }
}

/// The runtime every run's socket I/O happens on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .on_thread_start(barrage_engine::load::normal_priority)
        .enable_all()
        .build()
        .context("starting tokio")
}

/// Ctrl-C and SIGTERM stop `stop`; a second one quits at once.
pub(crate) fn stop_on_signals(stop: &barrage_engine::load::StopSignal) -> tokio::task::JoinHandle<()> {
    let stop = stop.clone();
    tokio::spawn(async move {
        barrage_engine::signals::wait_for_stop().await;
        eprintln!("\nstopping: finishing in-flight requests (Ctrl-C again to quit at once)");
        stop.stop("interrupted");
        barrage_engine::signals::wait_for_stop().await;
        eprintln!("quitting at once; records so far are in the results directory");
        std::process::exit(130);
    })
}

/// The configured target, or the embedded simulator started for it.
pub(crate) async fn target_or_sim(config: &RunConfig) -> Result<(String, Option<barrage_sim::Simulator>)> {
    Ok(match &config.target {
        Some(t) => (t.clone(), None),
        None => {
            let mut sim_config = config.sim.clone().unwrap_or_default();
            sim_config.port = 0;
            sim_config.host = "127.0.0.1".into();
            sim_config.metric_names = sim_config
                .metric_names
                .or(Some(barrage_sim::config::MetricNames::of_codec(&config.codec)));
            let sim = barrage_sim::Simulator::start(sim_config).await?;
            eprintln!(
                "no --target: benchmarking the embedded simulator at http://{}",
                sim.addr()
            );
            (format!("http://{}", sim.addr()), Some(sim))
        }
    })
}

pub(crate) fn execute(mut args: RunArgs) -> Result<ExitCode> {
    let Setup {
        plan,
        dir,
        plugins,
        workload,
    } = args.setup()?;
    let config = &plan.config;
    let runtime = runtime()?;
    let stop = barrage_engine::load::StopSignal::default();
    let (report, exporter, signals) = runtime.block_on(async {
        let signals = stop_on_signals(&stop);
        let (target, sim) = target_or_sim(config).await?;
        let exporter = match &config.export {
            Some(e) => Some(start_export(e, &dir, &target, &plugins.codec).await?),
            None => None,
        };
        let report = barrage_engine::load::run(
            plan.clone(),
            plugins,
            workload,
            &target,
            &dir,
            stop.clone(),
            Watchers {
                progress: args.progress(),
                export: exporter.as_ref(),
            },
        )
        .await;
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        anyhow::Ok((report?, exporter, signals))
    })?;
    let console = barrage_engine::report::console_table(&report);
    print!("{console}");
    if let Some(stats) = &report.export {
        say_export(stats);
    }
    write_reports(&args.plugins, &config.report, &report, &dir, &dir);
    let gate = Gate::of(&report, config.strict_client);
    args.ci.write(&gate, &report, &console);
    let restarted = gate.failure == Some(Failure::PluginRestarts);
    for check in gate.failed() {
        let why = check.failure.as_deref().unwrap_or_default();
        match check.kind {
            Failure::PluginRestarts => eprintln!(
                "error: {why}; the streams it held failed (counted as plugin errors). This is a bug in \
                 Barrage: please report it."
            ),
            // Every request failing is then the restarts' doing.
            Failure::NoneSucceeded if !restarted => eprintln!(
                "error: {why}: a server (or codec) that answers nothing right is not measured; the errors \
                 are above and in summary.json"
            ),
            _ => {}
        }
    }
    let saturated: Vec<String> = report
        .stages
        .iter()
        .filter(|s| s.client.as_ref().is_some_and(|c| c.saturated))
        .filter_map(|s| s.stage.map(|i| i.to_string()))
        .collect();
    if !saturated.is_empty() {
        eprintln!(
            "{}: the client was saturated in stage {} (reasons above and in summary.json, stages[].client): \
             lower the rate, give Barrage more cores, or run several shards",
            if config.strict_client { "error" } else { "warning" },
            saturated.join(", ")
        );
    }
    say_failed_thresholds(&report);
    if let Some(exporter) = exporter
        && let (Some(addr), Some(linger)) = (exporter.addr(), exporter.linger_time())
        && !linger.is_zero()
    {
        // After the reports: the linger is for a last scrape.
        eprintln!(
            "serving the run's metrics at http://{addr}/metrics for {:.0} s more (Ctrl-C ends it)",
            linger.as_secs_f64()
        );
        runtime.block_on(exporter.linger(&stop));
    }
    signals.abort();
    Ok(exit_code(gate.failure))
}

/// Start the live export `config` asks for, labelled with the run's identity.
async fn start_export(
    config: &barrage_engine::export::ExportConfig,
    dir: &std::path::Path,
    target: &str,
    plugin: &CodecPlugin,
) -> Result<Exporter> {
    let identity = Identity {
        run_id: config.run_id.clone().unwrap_or_else(|| {
            dir.file_name()
                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
        }),
        shard: "0".into(),
        target: target.to_string(),
        codec: plugin.name().to_string(),
    };
    let exporter = Exporter::start(config, identity).await?;
    if let Some(addr) = exporter.addr() {
        eprintln!("serving the run's metrics at http://{addr}/metrics");
    }
    Ok(exporter)
}

/// One line per export that went wrong (the run itself went on).
fn say_export(stats: &barrage_engine::export::ExportStats) {
    for (what, push) in [
        ("Pushgateway", &stats.pushgateway),
        ("remote write", &stats.remote_write),
    ] {
        if let Some(p) = push
            && p.failed > 0
        {
            eprintln!(
                "warning: {} of {} pushes to the {what} at {} failed, the last: {}",
                p.failed,
                p.sent + p.failed,
                p.url,
                p.last_error.as_deref().unwrap_or_default()
            );
        }
    }
}
