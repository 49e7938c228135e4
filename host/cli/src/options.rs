//! Flag groups several commands share (plugins, datasets, metrics), and
//! what they share doing with them: loading plugin configuration, preparing
//! a dataset, writing reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use barrage_engine::config::ReportConfig;
use barrage_engine::gate::{Failure, Gate};
use barrage_engine::metrics::Summary;
use barrage_plugin_host::engine::{default_cache_dir, default_total_budget};
use barrage_plugin_host::state::{LogLevel, parse_level};
use barrage_plugin_host::{EngineOptions, PluginContext, PluginEngine, Registry};

/// Where prompts come from: shared by `run` and `dataset prepare`.
#[derive(Debug, Args)]
pub(crate) struct DatasetArgs {
    /// Dataset plugin: synthetic, sharegpt, jsonl, csv, shared-prefix, multi-turn, trace, an installed name or a .wasm file.
    #[arg(long, value_name = "NAME")]
    pub(crate) dataset: Option<String>,
    /// An input file of the dataset (repeatable; relative to the working directory).
    #[arg(long = "dataset-file", value_name = "FILE")]
    pub(crate) dataset_files: Vec<PathBuf>,
    /// A directory the dataset may read the images and audio its records name from (relative to the working directory).
    #[arg(long = "dataset-media-dir", value_name = "DIR")]
    pub(crate) dataset_media_dir: Option<PathBuf>,
    /// The dataset plugin's options: JSON, or @FILE (.json or .toml).
    #[arg(long, value_name = "JSON|@FILE")]
    pub(crate) dataset_config: Option<String>,
    /// Prepare the dataset afresh instead of reusing the cache.
    #[arg(long)]
    pub(crate) no_dataset_cache: bool,
}

impl DatasetArgs {
    /// Apply these flags over `config`'s `dataset:` section.
    pub(crate) fn apply(&self, config: &mut barrage_engine::config::RunConfig) -> Result<()> {
        if let Some(name) = &self.dataset {
            match &mut config.dataset {
                Some(d) if d.plugin == *name => {}
                slot => {
                    *slot = Some(barrage_plugin_host::prepare::DatasetConfig {
                        plugin: name.clone(),
                        files: Vec::new(),
                        config: Default::default(),
                        cache: true,
                        chat_template: None,
                        apply_chat_template: false,
                        media_dir: None,
                    })
                }
            }
        }
        let flags_given = !self.dataset_files.is_empty()
            || self.dataset_config.is_some()
            || self.no_dataset_cache
            || self.dataset_media_dir.is_some();
        let Some(d) = config.dataset.as_mut() else {
            if flags_given {
                bail!(
                    "--dataset-file, --dataset-media-dir, --dataset-config and --no-dataset-cache need a dataset: give --dataset NAME"
                );
            }
            return Ok(());
        };
        if !self.dataset_files.is_empty() {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            d.files = self.dataset_files.iter().map(|f| cwd.join(f)).collect();
        }
        if let Some(dir) = &self.dataset_media_dir {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            d.media_dir = Some(cwd.join(dir));
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
pub(crate) struct MetricsArgs {
    /// An objective for goodput, e.g. "ttft < 200ms" (repeatable; or several comma-separated).
    #[arg(long, value_name = "OBJECTIVE")]
    pub(crate) slo: Vec<String>,
    /// A pass/fail condition on the results, e.g. "ttft p99 < 300ms",
    /// "error_rate < 1%", "stage 1: achieved_rate > 0.99 * requested"
    /// (repeatable; or several comma-separated). A failed one: exit 7.
    #[arg(long, value_name = "THRESHOLD")]
    pub(crate) threshold: Vec<String>,
    /// Percentiles to report, comma-separated, e.g. 50,90,99,99.9.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub(crate) percentiles: Option<Vec<f64>>,
    /// Reporter plugins to run (repeatable): json, csv, markdown, html, or a name or .wasm file.
    #[arg(long = "reporter", value_name = "NAME")]
    pub(crate) reporters: Vec<String>,
    /// Also report the run under a peer's own metric definitions, into
    /// compat-PEER.json (repeatable; or comma-separated).
    #[arg(long, value_name = "PEER", value_delimiter = ',')]
    pub(crate) compat: Vec<barrage_engine::metrics::compat::Peer>,
}

impl MetricsArgs {
    /// The report settings of `run`'s configuration with these flags over
    /// them, and the metrics options they ask for.
    pub(crate) fn settings_for(
        &self,
        run: &barrage_engine::results::RunDir,
    ) -> Result<(ReportConfig, barrage_engine::metrics::MetricsOptions)> {
        let mut config = run.config().map(|c| c.report).unwrap_or_default();
        self.apply(&mut config);
        let options = config.metrics_options().map_err(|m| anyhow::anyhow!("{m}"))?;
        Ok((config, options))
    }

    /// Apply these flags over `config`.
    pub(crate) fn apply(&self, config: &mut ReportConfig) {
        if !self.slo.is_empty() {
            config.slo = self.slo.clone();
        }
        if !self.threshold.is_empty() {
            config.thresholds = self.threshold.clone();
        }
        if let Some(p) = &self.percentiles {
            config.percentiles = p.clone();
        }
        if !self.reporters.is_empty() {
            config.reporters = self.reporters.clone();
        }
        if !self.compat.is_empty() {
            config.compat = self.compat.clone();
        }
    }
}

/// Files for CI: shared by `run`, `report` and `merge`.
#[derive(Debug, Args)]
pub(crate) struct CiArgs {
    /// Write a JUnit XML file: one test case per threshold and per check of
    /// the run (ended as planned, requests succeeded).
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
    /// Append a Markdown summary (verdict, thresholds, headline figures) to
    /// this file, e.g. "$GITHUB_STEP_SUMMARY".
    #[arg(long, value_name = "FILE")]
    pub(crate) ci_summary: Option<PathBuf>,
    /// Write the headline figures (rate, TTFT p50/p99, errors, threshold
    /// verdict) as one line of JSON; in a Kubernetes pod,
    /// /dev/termination-log, where the operator reads them.
    #[arg(long, value_name = "FILE")]
    pub(crate) status_file: Option<PathBuf>,
}

impl CiArgs {
    /// Write the files asked for; false (and a message) if one could not be.
    pub(crate) fn write(&self, gate: &Gate, summary: &Summary, console: &str) -> bool {
        let mut ok = true;
        if let Some(path) = &self.junit {
            match std::fs::write(path, gate.junit(summary, console)) {
                Ok(()) => println!("junit: {}", path.display()),
                Err(e) => {
                    ok = false;
                    eprintln!("error: cannot write the JUnit file {}: {e}", path.display());
                }
            }
        }
        if let Some(path) = &self.ci_summary {
            use std::io::Write as _;
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(gate.markdown(summary).as_bytes()));
            if let Err(e) = appended {
                ok = false;
                eprintln!("error: cannot append the CI summary to {}: {e}", path.display());
            }
        }
        if let Some(path) = &self.status_file
            && let Err(e) = std::fs::write(path, summary.headline().to_line())
        {
            ok = false;
            eprintln!("error: cannot write the status file {}: {e}", path.display());
        }
        ok
    }
}

/// The exit code of a run's verdict (docs/load.md lists them).
pub(crate) fn exit_code(failure: Option<Failure>) -> ExitCode {
    ExitCode::from(match failure {
        None => 0,
        Some(Failure::PluginRestarts) => 4,
        Some(Failure::NoneSucceeded) => 5,
        Some(Failure::ClientSaturated) => 6,
        Some(Failure::Threshold) => 7,
        Some(Failure::Stopped) => 3,
    })
}

/// Each threshold that failed, on stderr.
pub(crate) fn say_failed_thresholds(summary: &Summary) {
    let failed: Vec<String> = summary.failed_thresholds().map(|t| t.describe()).collect();
    if !failed.is_empty() {
        eprintln!("error: {} threshold(s) failed: {}", failed.len(), failed.join("; "));
    }
}

/// Settings for loading and running plugins.
#[derive(Debug, Args)]
pub(crate) struct PluginOptions {
    /// Directory of installed plugins (default: $BARRAGE_PLUGIN_DIR or ~/.local/share/barrage/plugins).
    #[arg(long, value_name = "DIR")]
    pub(crate) plugin_dir: Option<PathBuf>,
    /// Most linear memory a plugin instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub(crate) plugin_memory_mib: usize,
    /// Longest a single plugin call may run, in milliseconds of CPU time.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub(crate) plugin_deadline_ms: u64,
    /// Longest a codec's `encode` may run per 64 KiB of prompt, in
    /// milliseconds of CPU time (encodes run ahead of the schedule, one after
    /// another: a slow one delays the rest).
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub(crate) plugin_encode_deadline_ms: u64,
    /// Most linear memory all instances of one plugin may hold together, in
    /// MiB; past it new streams fail (default: none of its own, the
    /// all-plugins budget covers it).
    #[arg(long, value_name = "MIB")]
    pub(crate) plugin_memory_budget_mib: Option<usize>,
    /// Most linear memory all plugins may hold together, in MiB (default:
    /// half the machine's memory).
    #[arg(long, value_name = "MIB")]
    pub(crate) plugins_memory_budget_mib: Option<usize>,
    /// Where compiled plugins are cached (default: $BARRAGE_CACHE_DIR or ~/.cache/barrage/compiled).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Lowest level of plugin log lines printed: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub(crate) plugin_log: String,
    /// Tokenizer offered to plugins: words (approximate), cl100k_base,
    /// o200k_base, a tokenizer.json (or its directory), or a model id in the
    /// local Hugging Face cache.
    #[arg(long, value_name = "SPEC")]
    pub(crate) tokenizer: Option<String>,
    /// Load only the plugins the lockfile approves (by name and sha256,
    /// signed as it asks); refuse any other before compiling it.
    #[arg(long)]
    pub(crate) locked: bool,
    /// The lockfile --locked enforces (default: barrage.lock in the working directory).
    #[arg(long, value_name = "FILE")]
    pub(crate) lockfile: Option<PathBuf>,
}

impl PluginOptions {
    pub(crate) fn engine(&self) -> Result<PluginEngine> {
        if self.plugin_memory_mib == 0 || self.plugin_deadline_ms == 0 || self.plugin_encode_deadline_ms == 0 {
            bail!("--plugin-memory-mib, --plugin-deadline-ms and --plugin-encode-deadline-ms must be greater than 0");
        }
        if self.plugin_memory_budget_mib == Some(0) || self.plugins_memory_budget_mib == Some(0) {
            bail!("--plugin-memory-budget-mib and --plugins-memory-budget-mib must be greater than 0");
        }
        let total_budget = self
            .plugins_memory_budget_mib
            .map_or_else(default_total_budget, |mib| mib << 20);
        let lock = match (self.locked, &self.lockfile) {
            (false, Some(path)) => bail!(
                "--lockfile {} is given without --locked: nothing would enforce it (add --locked, or `locked: true`)",
                path.display()
            ),
            (false, None) => None,
            (true, path) => {
                let path = path
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(barrage_plugin_host::lock::DEFAULT_LOCKFILE));
                Some(std::sync::Arc::new(barrage_plugin_host::lock::Lock::read(&path)?))
            }
        };
        let options = EngineOptions {
            memory_limit: self.plugin_memory_mib << 20,
            call_deadline: Duration::from_millis(self.plugin_deadline_ms),
            encode_deadline: Duration::from_millis(self.plugin_encode_deadline_ms),
            total_budget,
            plugin_budget: self.plugin_memory_budget_mib.map_or(usize::MAX, |mib| mib << 20),
            cache_dir: self.cache_dir.clone().or_else(default_cache_dir),
            lock,
            ..EngineOptions::default()
        };
        Ok(PluginEngine::new(options)?)
    }

    pub(crate) fn registry(&self) -> Registry {
        match &self.plugin_dir {
            Some(dir) => Registry {
                plugin_dir: Some(dir.clone()),
            },
            None => Registry::from_env(),
        }
    }

    /// The context every plugin of a command gets; `seed` is the run's
    /// (host.wit promises each plugin the run's seed), 0 where there is no run.
    pub(crate) fn context(&self, config_json: String, seed: u64) -> Result<PluginContext> {
        let log_level = parse_level(&self.plugin_log).with_context(|| {
            format!(
                "--plugin-log `{}`: expected trace, debug, info, warn or error",
                self.plugin_log
            )
        })?;
        let spec = self.tokenizer.as_deref().unwrap_or("words");
        let tokenizer = barrage_plugin_host::tokenizer::load(spec).with_context(|| "--tokenizer".to_string())?;
        Ok(PluginContext {
            name: "".into(),
            config_json: config_json.into(),
            seed,
            tokenizer,
            log_level,
            log: std::sync::Arc::new(|plugin: &str, level: LogLevel, message: &str| {
                eprintln!("[plugin {plugin}] {level:?}: {message}")
            }),
            secrets: Default::default(),
        })
    }
}

/// Who each reporter is, for `meta.json`: found, read and (under a lock)
/// approved now, so that a run its reporters would be refused for sends
/// nothing.
pub(crate) fn reporter_identities(
    plugins: &PluginOptions,
    engine: &PluginEngine,
    names: &[String],
) -> Result<Vec<barrage_engine::results::PluginMeta>> {
    let registry = plugins.registry();
    names
        .iter()
        .map(|name| {
            let source = registry.resolve_in(barrage_plugin_host::World::Reporter, name)?;
            let d = barrage_plugin_host::describe::describe(engine, &source, plugins.context("{}".into(), 0)?)
                .with_context(|| format!("reporter {name}"))?;
            match d.contract.world {
                Some(barrage_plugin_host::World::Reporter) => {}
                Some(other) => bail!(
                    "reporter {name}: {} is a {other} plugin, not a reporter",
                    source.location()
                ),
                None => bail!("reporter {name}: {} is not a Barrage plugin", source.location()),
            }
            Ok(barrage_engine::results::PluginMeta {
                name: source.label(),
                version: d.info.map(|i| i.version).unwrap_or_default(),
                sha256: d.sha256,
                contract: d.contract.versions.first().cloned().unwrap_or_default(),
                source: source.location(),
            })
        })
        .collect()
}

/// Read `--codec-config`: inline JSON, or `@FILE` holding JSON or TOML. The
/// result is a JSON object.
pub(crate) fn read_plugin_config(arg: Option<&str>, flag: &str) -> Result<String> {
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

/// Run the configured reporters; a reporter that fails is reported and the
/// others still run (the summary and records are already on disk).
pub(crate) fn write_reports(
    plugins: &PluginOptions,
    config: &ReportConfig,
    summary: &Summary,
    run_dir: &Path,
    out_dir: &Path,
) -> bool {
    let (engine, context) = match plugins
        .engine()
        .and_then(|e| Ok((e, plugins.context("{}".into(), summary.run.seed)?)))
    {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("reports not written: {e:#}");
            return false;
        }
    };
    let registry = plugins.registry();
    let host = barrage_engine::report::ReporterHost {
        engine: &engine,
        registry: &registry,
        context: &context,
    };
    let mut ok = true;
    for (name, outcome) in host.render_all(
        config,
        summary,
        &run_dir.join(barrage_engine::results::RECORDS),
        out_dir,
    ) {
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
    match barrage_engine::report::compat_views(run_dir, out_dir, &config.compat) {
        Ok(views) => {
            for (path, headline) in views {
                println!("{headline}");
                println!("report (compat): {}", path.display());
            }
        }
        Err(e) => {
            ok = false;
            eprintln!("compat views not written: {e}");
        }
    }
    ok
}

/// The console table, the reporters and the CI files of a rebuilt or
/// merged run; exit code 4 if a reporter or a CI file failed, 7 if a
/// threshold did.
pub(crate) fn print_and_report(
    plugins: &PluginOptions,
    ci: &CiArgs,
    config: &ReportConfig,
    summary: &Summary,
    dirs: (&Path, &Path),
) -> ExitCode {
    let console = barrage_engine::report::console_table(summary);
    print!("{console}");
    let reports = write_reports(plugins, config, summary, dirs.0, dirs.1);
    // Only the thresholds judge a rebuilt run: how it ran was the run's verdict.
    let gate = Gate::of(summary, false);
    let files = ci.write(&gate, summary, &console);
    say_failed_thresholds(summary);
    if !(reports && files) {
        ExitCode::from(4)
    } else if summary.failed_thresholds().next().is_some() {
        ExitCode::from(7)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prepare `config`'s dataset, if it has one, printing what it made.
pub(crate) fn prepare_dataset(
    config: &barrage_engine::config::RunConfig,
    plugins: &PluginOptions,
    engine: &PluginEngine,
) -> Result<Option<barrage_plugin_host::prepare::Prepared>> {
    let Some(dataset) = &config.dataset else {
        return Ok(None);
    };
    let context = plugins.context("{}".into(), config.seed)?;
    let registry = plugins.registry();
    let prepared = barrage_plugin_host::prepare::prepare(
        dataset,
        barrage_plugin_host::prepare::PrepareEnv {
            engine,
            registry: &registry,
            context,
            base_dir: &config.base_dir,
            cache_dir: barrage_plugin_host::prepare::default_cache_dir(),
        },
    )?;
    eprintln!("{} in {:.2} s", prepared.stats(), prepared.seconds);
    if let Some(e) = &prepared.cache_error {
        eprintln!("note: {e}");
    }
    for s in prepared.skipped.iter().take(5) {
        eprintln!("  skipped {}", s.at);
    }
    if prepared.skipped.len() > 5 {
        eprintln!("  … and {} more", prepared.skipped.len() - 5);
    }
    Ok(Some(prepared))
}
