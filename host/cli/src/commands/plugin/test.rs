//! `barrage plugin test` (the conformance kit, see
//! `barrage_engine::conformance`) and `barrage plugin record`, which makes
//! the golden transcripts it holds codecs to.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use barrage_core::types::Prompt;
use barrage_engine::conformance::{self, transcript};
use barrage_plugin_host::{CodecPlugin, CodecWorkers, World};

use crate::commands::run::{runtime, target_or_sim};
use crate::options::{PluginOptions, read_plugin_config};

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The plugin: a .wasm file, or a built-in or installed name.
    plugin: String,
    /// Its configuration: a JSON object, or @FILE with JSON or TOML.
    #[arg(long, value_name = "JSON|@FILE")]
    config: Option<String>,
    /// A golden transcript to hold a codec to (repeatable; a directory:
    /// every *.json in it). `barrage plugin record` makes them.
    #[arg(long = "transcript", value_name = "FILE|DIR")]
    transcripts: Vec<PathBuf>,
    /// An input file for a dataset plugin (repeatable).
    #[arg(long = "dataset-file", value_name = "FILE")]
    dataset_files: Vec<PathBuf>,
    /// Also write the checks as a JUnit XML file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    plugins: PluginOptions,
}

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// The codec: a .wasm file, or a built-in or installed name.
    #[arg(long)]
    codec: String,
    /// The codec's configuration: a JSON object, or @FILE with JSON or TOML.
    #[arg(long, value_name = "JSON|@FILE")]
    codec_config: Option<String>,
    /// The server (default: the embedded simulator, speaking the codec's protocol).
    #[arg(long)]
    target: Option<String>,
    /// Model name sent.
    #[arg(long, default_value = "barrage-sim")]
    model: String,
    /// Responses to record: the even ones streamed, the odd ones not.
    #[arg(long, default_value_t = 2)]
    requests: u32,
    /// Output tokens asked of each.
    #[arg(long, default_value_t = 8)]
    max_tokens: u32,
    /// Where the transcripts go.
    #[arg(long, short)]
    output: PathBuf,
    #[command(flatten)]
    plugins: PluginOptions,
}

/// Transcript files: the ones named, and every `*.json` of a directory named.
fn transcript_files(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in given {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("{} holds no transcript (*.json)", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

pub(crate) fn test(args: TestArgs) -> Result<ExitCode> {
    let engine = args.plugins.engine()?;
    let registry = args.plugins.registry();
    let source = registry.resolve(&args.plugin)?;
    let work = tempfile::tempdir().context("a working directory")?;
    let setup = conformance::Setup {
        engine: &engine,
        registry: &registry,
        context: args
            .plugins
            .context(read_plugin_config(args.config.as_deref(), "--config")?, 1)?,
        source,
        transcripts: transcript_files(&args.transcripts)?,
        dataset_files: args.dataset_files.clone(),
        work_dir: work.path().to_path_buf(),
    };
    let report = conformance::test(setup);
    print!("{}", report.table());
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit()).with_context(|| format!("writing {}", path.display()))?;
        println!("junit: {}", path.display());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn record(args: RecordArgs) -> Result<ExitCode> {
    if args.requests == 0 {
        bail!("--requests must be at least 1");
    }
    let engine = args.plugins.engine()?;
    let source = args.plugins.registry().resolve_in(World::Codec, &args.codec)?;
    let codec_config = read_plugin_config(args.codec_config.as_deref(), "--codec-config")?;
    let config_value: serde_json::Value = serde_json::from_str(&codec_config)?;
    let plugin = CodecPlugin::load(&engine, &source, args.plugins.context(codec_config, 0)?)?;
    let workers = CodecWorkers::start(plugin.clone(), 1).context("starting a plugin thread")?;
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let config = barrage_engine::config::RunConfig {
        target: args.target.clone(),
        codec: args.codec.clone(),
        ..barrage_engine::config::RunConfig::default()
    };
    let rt = runtime()?;
    let written = rt.block_on(async {
        let (target, sim) = target_or_sim(&config).await?;
        let transport = barrage_engine::transport::Transport::new(
            &target,
            &barrage_engine::transport::TransportOptions {
                headers: Vec::new(),
                api_key: None,
                max_idle_per_host: 0,
                max_connections: 0,
                timeout: Duration::from_secs(60),
                http2: false,
                tls: barrage_core::tls::ClientTls::default(),
                grpc_connections: 1,
            },
        )?;
        let mut written = Vec::new();
        for i in 0..args.requests {
            let stream = i % 2 == 0;
            let prompt = Prompt::Text("Explain in a few words what a benchmark measures.".into());
            let spec = transcript::request(u64::from(i), &args.model, prompt, args.max_tokens, stream);
            let t = transcript::record(&transport, &workers, spec, config_value.clone())
                .await
                .map_err(|e| anyhow::anyhow!("request {i}: {e}"))?;
            let path = args.output.join(format!(
                "{}-{i}-{}.json",
                plugin.name(),
                if stream { "stream" } else { "unary" }
            ));
            std::fs::write(&path, serde_json::to_vec_pretty(&t)?)
                .with_context(|| format!("writing {}", path.display()))?;
            written.push((path, t.events.len()));
        }
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        anyhow::Ok(written)
    })?;
    for (path, events) in written {
        println!("recorded {} ({events} events)", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
