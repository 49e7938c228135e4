//! The command line: argument parsing and the commands. Errors become
//! `anyhow` errors with context here, at the edge; the library below uses
//! typed errors.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::framing::{Framer, Framing};
use crate::load::config::ReportConfig;
use crate::metrics::Summary;
use crate::plugin::describe::{Description, describe};
use crate::plugin::engine::default_cache_dir;
use crate::plugin::state::parse_level;
use crate::plugin::{CodecPlugin, CodecWorkers, EngineOptions, PluginContext, PluginEngine, Registry, contract, wire};

/// Barrage: load generator and benchmark host for LLM inference servers.
#[derive(Debug, Parser)]
#[command(name = "barrage", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with plugins: list, inspect, try a codec on recorded responses.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Run the simulated LLM inference server (OpenAI-compatible) on loopback.
    Sim(SimArgs),
    /// Benchmark a server (or, with no target, the embedded simulator).
    Run(Box<RunArgs>),
    /// Rebuild a run's summary and reports from its records (other
    /// percentiles, objectives or reporters; or a run that was killed).
    Report(ReportArgs),
    /// Merge runs made by several load generators into one run.
    Merge(MergeArgs),
    /// Compare runs side by side, with the difference from the first.
    Compare(CompareArgs),
    /// Work with datasets: prepare one (and fill the cache) to see what a run would send.
    #[command(subcommand)]
    Dataset(DatasetCommand),
}

#[derive(Debug, Subcommand)]
enum DatasetCommand {
    /// Prepare a dataset: run its plugin, print what it made, optionally
    /// write the samples as JSON Lines.
    Prepare(PrepareArgs),
}

#[derive(Debug, Args)]
struct PrepareArgs {
    /// A run configuration whose `dataset:`, `tokenizer:` and `seed:` are used; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Seed for sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Write the prepared samples here, one JSON object per line.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    dataset: DatasetArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

/// Where prompts come from: shared by `run` and `dataset prepare`.
#[derive(Debug, Args)]
struct DatasetArgs {
    /// Dataset plugin: synthetic, sharegpt, jsonl, csv, shared-prefix, multi-turn, trace, an installed name or a .wasm file.
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
    /// An input file of the dataset (repeatable; relative to the working directory).
    #[arg(long = "dataset-file", value_name = "FILE")]
    dataset_files: Vec<PathBuf>,
    /// The dataset plugin's options: JSON, or @FILE (.json or .toml).
    #[arg(long, value_name = "JSON|@FILE")]
    dataset_config: Option<String>,
    /// Prepare the dataset afresh instead of reusing the cache.
    #[arg(long)]
    no_dataset_cache: bool,
}

impl DatasetArgs {
    /// Apply these flags over `config`'s `dataset:` section.
    fn apply(&self, config: &mut crate::load::RunConfig) -> Result<()> {
        if let Some(name) = &self.dataset {
            match &mut config.dataset {
                Some(d) if d.plugin == *name => {}
                slot => {
                    *slot = Some(crate::dataset::DatasetConfig {
                        plugin: name.clone(),
                        files: Vec::new(),
                        config: Default::default(),
                        cache: true,
                        chat_template: None,
                        apply_chat_template: false,
                    })
                }
            }
        }
        let flags_given = !self.dataset_files.is_empty() || self.dataset_config.is_some() || self.no_dataset_cache;
        let Some(d) = config.dataset.as_mut() else {
            if flags_given {
                bail!("--dataset-file, --dataset-config and --no-dataset-cache need a dataset: give --dataset NAME");
            }
            return Ok(());
        };
        if !self.dataset_files.is_empty() {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            d.files = self.dataset_files.iter().map(|f| cwd.join(f)).collect();
        }
        if let Some(c) = &self.dataset_config {
            let value: serde_json::Value = serde_json::from_str(&read_plugin_config(Some(c), "--dataset-config")?)?;
            d.config = serde_json::from_value(value)?;
        }
        if self.no_dataset_cache {
            d.cache = false;
        }
        Ok(())
    }
}

/// How results are summarized: shared by `run`, `report`, `merge` and `compare`.
#[derive(Debug, Args)]
struct MetricsArgs {
    /// An objective for goodput, e.g. "ttft < 200ms" (repeatable; or several comma-separated).
    #[arg(long, value_name = "OBJECTIVE")]
    slo: Vec<String>,
    /// Percentiles to report, comma-separated, e.g. 50,90,99,99.9.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    percentiles: Option<Vec<f64>>,
    /// Reporter plugins to run (repeatable): json, csv, markdown, html, or a name or .wasm file.
    #[arg(long = "reporter", value_name = "NAME")]
    reporters: Vec<String>,
}

impl MetricsArgs {
    /// The report settings of `run`'s configuration with these flags over
    /// them, and the metrics options they ask for.
    fn settings_for(&self, run: &crate::results::RunDir) -> Result<(ReportConfig, crate::metrics::MetricsOptions)> {
        let mut config = run.config().map(|c| c.report).unwrap_or_default();
        self.apply(&mut config);
        let options = config.metrics_options().map_err(|m| anyhow::anyhow!("{m}"))?;
        Ok((config, options))
    }

    /// Apply these flags over `config`.
    fn apply(&self, config: &mut ReportConfig) {
        if !self.slo.is_empty() {
            config.slo = self.slo.clone();
        }
        if let Some(p) = &self.percentiles {
            config.percentiles = p.clone();
        }
        if !self.reporters.is_empty() {
            config.reporters = self.reporters.clone();
        }
    }
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// The run's results directory.
    run: PathBuf,
    /// Write the summary and reports here instead of into the run directory.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Results directories of the shards.
    #[arg(required = true, num_args = 2..)]
    runs: Vec<PathBuf>,
    /// The merged run's directory.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Results directories; differences are relative to the first.
    #[arg(required = true, num_args = 2..)]
    runs: Vec<PathBuf>,
    /// Also write the comparison as compare.md into this directory.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// An objective for goodput (repeatable).
    #[arg(long, value_name = "OBJECTIVE")]
    slo: Vec<String>,
}

#[derive(Debug, Args)]
struct RunArgs {
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
    /// Model name to send.
    #[arg(long)]
    model: Option<String>,
    /// One stage at this request rate (requests/s).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Shape of the --rate stage.
    #[arg(long, value_enum, default_value = "constant")]
    shape: crate::load::shape::ShapeKind,
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
    /// Trust the certificates in this PEM file too (https:// targets).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    dataset: DatasetArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// YAML configuration (see docs/simulator.md); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (0: any free port).
    #[arg(long)]
    port: Option<u16>,
    /// Timing model.
    #[arg(long, value_enum)]
    mode: Option<crate::sim::Mode>,
    /// Seed for text, lengths, timings and faults.
    #[arg(long)]
    seed: Option<u64>,
    /// Replicas behind the port.
    #[arg(long)]
    replicas: Option<usize>,
    /// Plain mode: constant time to first token, ms.
    #[arg(long, value_name = "MS")]
    ttft_ms: Option<f64>,
    /// Plain mode: constant time between tokens, ms.
    #[arg(long, value_name = "MS")]
    itl_ms: Option<f64>,
    /// Batching mode: most sequences in a batch.
    #[arg(long)]
    max_num_seqs: Option<usize>,
    /// Tokens per streamed chunk.
    #[arg(long)]
    stream_interval: Option<u32>,
    /// Record the true send time of every frame to this JSON Lines file.
    #[arg(long, value_name = "FILE")]
    ground_truth: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// List built-in and installed plugins with kind, version and sha256.
    List(ListArgs),
    /// Show a plugin file's world, contract version, imports and exports.
    Inspect(InspectArgs),
    /// Decode recorded response bodies with a codec, one file per response,
    /// through the same framing and plugin threads a run uses.
    Decode(DecodeArgs),
}

/// Settings for loading and running plugins.
#[derive(Debug, Args)]
struct PluginOptions {
    /// Directory of installed plugins (default: $BARRAGE_PLUGIN_DIR or ~/.local/share/barrage/plugins).
    #[arg(long, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,
    /// Most linear memory a plugin instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    plugin_memory_mib: usize,
    /// Longest a single codec call may run, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    plugin_deadline_ms: u64,
    /// Where compiled plugins are cached (default: $BARRAGE_CACHE_DIR or ~/.cache/barrage/compiled).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Lowest level of plugin log lines printed: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    plugin_log: String,
    /// Tokenizer offered to plugins: words (approximate), cl100k_base,
    /// o200k_base, a tokenizer.json (or its directory), or a model id in the
    /// local Hugging Face cache.
    #[arg(long, value_name = "SPEC")]
    tokenizer: Option<String>,
}

impl PluginOptions {
    fn engine(&self) -> Result<PluginEngine> {
        if self.plugin_memory_mib == 0 || self.plugin_deadline_ms == 0 {
            bail!("--plugin-memory-mib and --plugin-deadline-ms must be greater than 0");
        }
        let options = EngineOptions {
            memory_limit: self.plugin_memory_mib << 20,
            call_deadline: Duration::from_millis(self.plugin_deadline_ms),
            cache_dir: self.cache_dir.clone().or_else(default_cache_dir),
            ..EngineOptions::default()
        };
        Ok(PluginEngine::new(options)?)
    }

    fn registry(&self) -> Registry {
        match &self.plugin_dir {
            Some(dir) => Registry {
                plugin_dir: Some(dir.clone()),
            },
            None => Registry::from_env(),
        }
    }

    fn context(&self, config_json: String) -> Result<PluginContext> {
        let log_level = parse_level(&self.plugin_log).with_context(|| {
            format!(
                "--plugin-log `{}`: expected trace, debug, info, warn or error",
                self.plugin_log
            )
        })?;
        let spec = self.tokenizer.as_deref().unwrap_or("words");
        let tokenizer = crate::tokenizer::load(spec).with_context(|| "--tokenizer".to_string())?;
        Ok(PluginContext {
            name: "".into(),
            config_json: config_json.into(),
            seed: 0,
            tokenizer,
            log_level,
        })
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// The plugin: a .wasm file, or the name of a built-in or installed plugin.
    plugin: String,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FramingArg {
    Sse,
    Ndjson,
    Raw,
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// The codec: a built-in or installed name, or a .wasm file.
    #[arg(long)]
    codec: String,
    /// The codec's configuration: a JSON object, or @FILE with JSON or TOML.
    #[arg(long, value_name = "JSON|@FILE")]
    codec_config: Option<String>,
    /// How the bodies are framed.
    #[arg(long, value_enum, default_value = "sse")]
    framing: FramingArg,
    /// Include the text of content and reasoning deltas.
    #[arg(long)]
    text: bool,
    /// Feed each body to the framer in reads of this many bytes, as a socket would.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    read_size: usize,
    /// Plugin threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Recorded response bodies, one response per file.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    plugins: PluginOptions,
}

/// Run the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Plugin(PluginCommand::List(args)) => plugin_list(args),
        Command::Plugin(PluginCommand::Inspect(args)) => plugin_inspect(args),
        Command::Plugin(PluginCommand::Decode(args)) => plugin_decode(args),
        Command::Sim(args) => sim(args),
        Command::Run(args) => run_benchmark(*args),
        Command::Report(args) => report(args),
        Command::Merge(args) => merge(args),
        Command::Compare(args) => compare(args),
        Command::Dataset(DatasetCommand::Prepare(args)) => dataset_prepare(args),
    }
}

fn plugin_list(args: ListArgs) -> Result<ExitCode> {
    let engine = args.plugins.engine()?;
    let registry = args.plugins.registry();
    let ctx = args.plugins.context("{}".into())?;
    println!(
        "{:<22} {:<9} {:<9} {:<9} {:<64} SOURCE",
        "NAME", "KIND", "VERSION", "CONTRACT", "SHA256"
    );
    let sources = Registry::builtins().chain(registry.installed());
    for source in sources {
        let overridden =
            matches!(source, crate::plugin::PluginSource::Builtin { name, .. } if registry.overrides_builtin(name));
        let mut location = source.location();
        if overridden {
            location.push_str(" (overridden by the installed plugin)");
        }
        match describe(&engine, &source, ctx.clone()) {
            Ok(d) => {
                let (name, version) = match &d.info {
                    Ok(info) => (info.name.clone(), info.version.clone()),
                    Err(_) => (source.label(), "?".into()),
                };
                let kind = d.contract.world.map(|w| w.name()).unwrap_or("?");
                let contract = d.contract.versions.join(",");
                println!(
                    "{name:<22} {kind:<9} {version:<9} {contract:<9} {:<64} {location}",
                    d.sha256
                );
                if let Err(e) = &d.info {
                    println!("  ! {e}");
                }
            }
            Err(e) => println!(
                "{:<22} {:<9} {:<9} {:<9} {:<64} {location}\n  ! {e}",
                source.label(),
                "?",
                "?",
                "?",
                "?"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_inspect(args: InspectArgs) -> Result<ExitCode> {
    let engine = args.plugins.engine()?;
    let source = args.plugins.registry().resolve(&args.plugin)?;
    let ctx = args.plugins.context("{}".into())?;
    let d: Description = describe(&engine, &source, ctx)?;
    println!("plugin:    {}", source.location());
    println!("size:      {} bytes", d.size);
    println!("sha256:    {}", d.sha256);
    println!(
        "world:     {}",
        d.contract
            .world
            .map(|w| w.name())
            .unwrap_or("none (not a Barrage plugin)")
    );
    let versions = if d.contract.versions.is_empty() {
        "none".to_string()
    } else {
        d.contract.versions.join(", ")
    };
    println!("contract:  {} {versions}", contract::PACKAGE);
    match d.contract.supported_version() {
        Ok(_) => println!("supported: yes (this host supports {})", contract::supported_list()),
        Err(found) => println!(
            "supported: no: it targets {found}; this host supports {}",
            contract::supported_list()
        ),
    }
    match &d.info {
        Ok(info) => {
            println!("name:      {}", info.name);
            println!("version:   {}", info.version);
            println!("about:     {}", info.description);
        }
        Err(e) => println!("info:      unavailable: {e}"),
    }
    println!("imports:");
    for i in &d.contract.imports {
        let note = if i.starts_with(contract::PACKAGE) {
            ""
        } else {
            "  (not provided: traps if called)"
        };
        println!("  {i}{note}");
    }
    println!("exports:");
    for e in &d.contract.exports {
        println!("  {e}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Read `--codec-config`: inline JSON, or `@FILE` holding JSON or TOML. The
/// result is a JSON object.
fn read_plugin_config(arg: Option<&str>, flag: &str) -> Result<String> {
    let Some(arg) = arg else { return Ok("{}".into()) };
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading plugin configuration {path}"))?,
            path.to_string(),
        ),
        None => (arg.to_string(), flag.to_string()),
    };
    let value: serde_json::Value = if origin.ends_with(".toml") {
        let table: toml::Table = toml::from_str(&text).with_context(|| format!("{origin}: not valid TOML"))?;
        serde_json::to_value(table).with_context(|| format!("{origin}: cannot be converted to JSON"))?
    } else {
        serde_json::from_str(&text).with_context(|| format!("{origin}: not valid JSON"))?
    };
    if !value.is_object() {
        bail!("{origin}: a plugin configuration must be a table (a JSON object), not {value}");
    }
    Ok(value.to_string())
}

fn plugin_decode(args: DecodeArgs) -> Result<ExitCode> {
    if args.read_size == 0 {
        bail!("--read-size must be at least 1");
    }
    let engine = args.plugins.engine()?;
    let source = args
        .plugins
        .registry()
        .resolve_in(crate::plugin::World::Codec, &args.codec)?;
    let config = read_plugin_config(args.codec_config.as_deref(), "--codec-config")?;
    let ctx = args.plugins.context(config)?;
    let plugin = CodecPlugin::load(&engine, &source, ctx)?;
    let workers = CodecWorkers::start(plugin.clone(), args.threads).context("starting plugin threads")?;
    let framing = match args.framing {
        FramingArg::Sse => Framing::Sse,
        FramingArg::Ndjson => Framing::Ndjson,
        FramingArg::Raw => Framing::Raw,
    };
    let options = || wire::DecodeOptions { want_text: args.text };

    // Open every stream first and feed them interleaved, as concurrent
    // responses arrive, so one failing stream visibly leaves the others be.
    let mut bodies = Vec::new();
    for path in &args.files {
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let head = wire::ResponseHead {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
        };
        bodies.push((path, body, workers.open(head, options()), Framer::new(framing)));
    }
    let longest = bodies.iter().map(|b| b.1.len()).max().unwrap_or(0);
    let mut offset = 0;
    while offset < longest {
        for (_, body, stream, framer) in &mut bodies {
            if offset < body.len() {
                let end = (offset + args.read_size).min(body.len());
                let mut frames = Vec::new();
                framer.push(&body[offset..end], Instant::now(), &mut frames);
                workers.push(*stream, frames);
            }
        }
        offset += args.read_size;
    }
    let mut failed = 0;
    let mut by_kind = std::collections::BTreeMap::new();
    for (path, _, stream, framer) in &mut bodies {
        let mut frames = Vec::new();
        let end = Instant::now();
        framer.finish(end, &mut frames);
        workers.push(*stream, frames);
        let outcome = workers
            .finish(*stream, end)
            .blocking_recv()
            .context("a plugin thread stopped unexpectedly")?;
        println!("# {}", path.display());
        for e in &outcome.events {
            println!("{} {}", e.frame, e.event);
        }
        match &outcome.failure {
            None => println!("ok: {} frames, {} events", outcome.frames, outcome.events.len()),
            Some(f) => {
                failed += 1;
                *by_kind.entry(f.kind.to_string()).or_insert(0) += 1;
                println!("failed: {f}");
            }
        }
    }
    let summary: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} plugin {k}")).collect();
    println!(
        "{} responses: {} decoded, {} failed{}",
        bodies.len(),
        bodies.len() - failed,
        failed,
        if summary.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.join(", "))
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn sim(args: SimArgs) -> Result<ExitCode> {
    use crate::sim::config::Dist;
    let mut config = match &args.config {
        Some(path) => crate::sim::SimConfig::from_file(path)?,
        None => crate::sim::SimConfig::default(),
    };
    if let Some(v) = args.host {
        config.host = v;
    }
    if let Some(v) = args.port {
        config.port = v;
    }
    if let Some(v) = args.mode {
        config.mode = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.replicas {
        config.replicas = v;
    }
    if let Some(v) = args.ttft_ms {
        config.plain.ttft_ms = Dist::Constant(v);
    }
    if let Some(v) = args.itl_ms {
        config.plain.itl_ms = Dist::Constant(v);
    }
    if let Some(v) = args.max_num_seqs {
        config.batching.max_num_seqs = v;
    }
    if let Some(v) = args.stream_interval {
        config.stream_interval = v;
    }
    if let Some(v) = args.ground_truth {
        config.ground_truth = Some(v);
    }
    if let (Some(cert_file), Some(key_file)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(crate::sim::config::ServerTls { cert_file, key_file });
    }
    config.validate().map_err(|m| anyhow::anyhow!("simulator flags: {m}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(async move {
        let sim = crate::sim::Simulator::start(config.clone()).await?;
        // Printed on its own line so scripts and tests can find the port.
        println!(
            "barrage sim listening on http://{} (mode {:?}, model {})",
            sim.addr(),
            config.mode,
            config.model
        );
        crate::signals::wait_for_stop().await;
        eprintln!("barrage sim: stopping");
        sim.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `runs/<UTC yyyymmdd-hhmmss>`.
fn default_output_dir() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    PathBuf::from("runs").join(format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

fn run_benchmark(mut args: RunArgs) -> Result<ExitCode> {
    use crate::load::config::Stage;
    let mut config = match &args.config {
        Some(path) => crate::load::RunConfig::from_file(path)?,
        None => crate::load::RunConfig::default(),
    };
    let origin = args
        .config
        .as_ref()
        .map_or("flags".to_string(), |p| p.display().to_string());
    if let Some(v) = args.target {
        config.target = Some(v);
    }
    if let Some(v) = args.codec {
        config.codec = v;
    }
    if let Some(v) = args.model {
        config.model = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
    if let Some(v) = args.max_tokens {
        config.request.max_tokens = v;
    }
    if let Some(v) = args.prompt_tokens {
        config.request.prompt_tokens = v;
    }
    if let Some(v) = args.output {
        config.output = Some(v);
    }
    if args.http2 {
        config.http2 = true;
    }
    if let Some(v) = args.ca_file {
        config.tls.ca_file = Some(v);
    }
    if args.insecure {
        config.tls.insecure = true;
    }
    if args.rate.is_some() || args.concurrency.is_some() {
        let duration = args
            .duration
            .or(if args.requests.is_none() { Some(10.0) } else { None });
        config.stages = vec![Stage {
            shape: if args.concurrency.is_some() {
                crate::load::shape::ShapeKind::Concurrency
            } else {
                args.shape
            },
            rate: args.rate,
            burstiness: Some(1.0),
            concurrency: args.concurrency,
            duration_s: duration,
            requests: args.requests,
            ..Stage::default()
        }];
    } else if args.duration.is_some() || args.requests.is_some() {
        for stage in &mut config.stages {
            if args.duration.is_some() {
                stage.duration_s = args.duration;
            }
            if args.requests.is_some() {
                stage.requests = args.requests;
            }
        }
    }
    if let Some(c) = &args.codec_config {
        let value: serde_json::Value = serde_json::from_str(&read_plugin_config(Some(c), "--codec-config")?)?;
        config.codec_config = serde_json::from_value(value)?;
    }
    args.metrics.apply(&mut config.report);
    args.dataset.apply(&mut config)?;
    if let Some(t) = &args.plugins.tokenizer {
        config.tokenizer = Some(t.clone());
    }
    args.plugins.tokenizer = config.tokenizer.clone();
    config
        .validate()
        .map_err(|m| anyhow::anyhow!("run config {origin}: {m}"))?;
    if let Some(sim) = &config.sim {
        sim.validate()
            .map_err(|m| anyhow::anyhow!("run config {origin}: sim.{m}"))?;
    }
    let dir = config.output.clone().unwrap_or_else(default_output_dir);
    let engine = args.plugins.engine()?;
    let source = args
        .plugins
        .registry()
        .resolve_in(crate::plugin::World::Codec, &config.codec)?;
    let plugin_config = serde_json::to_string(&config.codec_config)?;
    let plugin = CodecPlugin::load(&engine, &source, args.plugins.context(plugin_config)?)?;
    let workload = match prepare_dataset(&config, &args.plugins, &engine)? {
        Some(prepared) => {
            for (i, stage) in config.stages.iter().enumerate() {
                if stage.shape == crate::load::shape::ShapeKind::Trace && !prepared.timed() {
                    bail!(
                        "run config {origin}: stages[{i}]: shape trace sends each sample at its time, and the \
                         {} dataset's samples have none (use the trace dataset, or at_ms in jsonl/csv records)",
                        prepared.plugin
                    );
                }
            }
            crate::load::Workload::dataset(std::sync::Arc::new(prepared))
        }
        None => crate::load::Workload::synthetic(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .on_thread_start(crate::load::normal_priority)
        .enable_all()
        .build()
        .context("starting tokio")?;
    let stop = crate::load::StopSignal::default();
    let report = runtime.block_on(async {
        let signals = {
            let stop = stop.clone();
            tokio::spawn(async move {
                crate::signals::wait_for_stop().await;
                eprintln!("\nstopping: finishing in-flight requests (Ctrl-C again to quit at once)");
                stop.stop("interrupted");
                crate::signals::wait_for_stop().await;
                eprintln!("quitting at once; records so far are in the results directory");
                std::process::exit(130);
            })
        };
        let (target, sim) = match &config.target {
            Some(t) => (t.clone(), None),
            None => {
                let mut sim_config = config.sim.clone().unwrap_or_default();
                sim_config.port = 0;
                sim_config.host = "127.0.0.1".into();
                let sim = crate::sim::Simulator::start(sim_config).await?;
                eprintln!(
                    "no --target: benchmarking the embedded simulator at http://{}",
                    sim.addr()
                );
                (format!("http://{}", sim.addr()), Some(sim))
            }
        };
        let report = crate::load::run(
            config.clone(),
            plugin,
            workload,
            &target,
            &dir,
            stop.clone(),
            !args.quiet,
        )
        .await;
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        signals.abort();
        report
    })?;
    print!("{}", crate::report::console_table(&report));
    write_reports(&args.plugins, &config.report, &report, &dir, &dir);
    Ok(if report.run.stopped {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Run the configured reporters; a reporter that fails is reported and the
/// others still run (the summary and records are already on disk).
fn write_reports(
    plugins: &PluginOptions,
    config: &ReportConfig,
    summary: &Summary,
    run_dir: &Path,
    out_dir: &Path,
) -> bool {
    let engine = match plugins.engine() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("reports not written: {e:#}");
            return false;
        }
    };
    let registry = plugins.registry();
    let context = |json: String| plugins.context(json).map_err(|e| format!("{e:#}"));
    let host = crate::report::ReporterHost {
        engine: &engine,
        registry: &registry,
        context: &context,
    };
    let mut ok = true;
    for (name, outcome) in host.render_all(config, summary, &run_dir.join(crate::results::RECORDS), out_dir) {
        match outcome {
            Ok(files) => {
                for f in files {
                    println!("report ({name}): {}", f.display());
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("reporter {name} failed: {e}");
            }
        }
    }
    ok
}

fn report(args: ReportArgs) -> Result<ExitCode> {
    let run = crate::results::RunDir::open(&args.run)?;
    let (config, options) = args.metrics.settings_for(&run)?;
    let (summary, skipped) = crate::report::rebuild(&run, options)?;
    if skipped > 0 {
        eprintln!(
            "note: the last line of {} was cut short by a hard stop and is left out",
            args.run.join(crate::results::RECORDS).display()
        );
    }
    let out = args.output.clone().unwrap_or_else(|| args.run.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    crate::results::write_json(&out.join(crate::results::SUMMARY), &summary)?;
    Ok(print_and_report(&args.plugins, &config, &summary, &args.run, &out))
}

/// The console table, then the reporters; exit code 4 if a reporter failed.
fn print_and_report(
    plugins: &PluginOptions,
    config: &ReportConfig,
    summary: &Summary,
    run_dir: &Path,
    out_dir: &Path,
) -> ExitCode {
    print!("{}", crate::report::console_table(summary));
    if write_reports(plugins, config, summary, run_dir, out_dir) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    }
}

fn merge(args: MergeArgs) -> Result<ExitCode> {
    let first = crate::results::RunDir::open(&args.runs[0])?;
    let (config, options) = args.metrics.settings_for(&first)?;
    let summary = crate::report::merge(&args.runs, &args.output, options)?;
    Ok(print_and_report(
        &args.plugins,
        &config,
        &summary,
        &args.output,
        &args.output,
    ))
}

fn compare(args: CompareArgs) -> Result<ExitCode> {
    let config = ReportConfig {
        slo: args.slo.clone(),
        ..ReportConfig::default()
    };
    let options = config.metrics_options().map_err(|m| anyhow::anyhow!("{m}"))?;
    let summaries = crate::report::load_for_compare(&args.runs, &options)?;
    let names = crate::report::run_names(&args.runs);
    let table = crate::report::compare_table(&names, &summaries);
    let mut text = String::from("# Barrage comparison\n\n");
    for (n, d) in names.iter().zip(&args.runs) {
        text += &format!("- {n}: `{}`\n", d.display());
    }
    text += &table;
    print!("{text}");
    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("compare.md");
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        println!("comparison: {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prepare `config`'s dataset, if it has one, printing what it made.
fn prepare_dataset(
    config: &crate::load::RunConfig,
    plugins: &PluginOptions,
    engine: &PluginEngine,
) -> Result<Option<crate::dataset::Prepared>> {
    let Some(dataset) = &config.dataset else {
        return Ok(None);
    };
    let mut context = plugins.context("{}".into())?;
    context.seed = config.seed;
    let registry = plugins.registry();
    let prepared = crate::dataset::prepare(
        dataset,
        crate::dataset::PrepareEnv {
            engine,
            registry: &registry,
            context,
            base_dir: &config.base_dir,
            cache_dir: crate::dataset::default_cache_dir(),
        },
    )?;
    eprintln!("{} in {:.2} s", prepared.stats(), prepared.seconds);
    for s in prepared.skipped.iter().take(5) {
        eprintln!("  skipped {}", s.at);
    }
    if prepared.skipped.len() > 5 {
        eprintln!("  … and {} more", prepared.skipped.len() - 5);
    }
    Ok(Some(prepared))
}

fn dataset_prepare(mut args: PrepareArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => crate::load::RunConfig::from_file(path)?,
        None => crate::load::RunConfig::default(),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    args.dataset.apply(&mut config)?;
    if config.dataset.is_none() {
        bail!("no dataset: give --dataset NAME, or --config FILE with a `dataset:` section");
    }
    if let Some(t) = &args.plugins.tokenizer {
        config.tokenizer = Some(t.clone());
    }
    args.plugins.tokenizer = config.tokenizer.clone();
    let engine = args.plugins.engine()?;
    let Some(prepared) = prepare_dataset(&config, &args.plugins, &engine)? else {
        return Ok(ExitCode::SUCCESS);
    };
    println!("{}", serde_json::to_string_pretty(&prepared.stats())?);
    if let Some(path) = &args.output {
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        );
        for s in &prepared.samples {
            serde_json::to_writer(&mut out, s)?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        std::io::Write::flush(&mut out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
