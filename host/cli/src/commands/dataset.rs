//! `barrage dataset prepare`: run a dataset plugin and show what a run would send.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::options::{DatasetArgs, PluginOptions, prepare_dataset};

#[derive(Debug, Subcommand)]
pub(crate) enum DatasetCommand {
    /// Prepare a dataset: run its plugin, print what it made, optionally
    /// write the samples as JSON Lines.
    Prepare(PrepareArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PrepareArgs {
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

pub(crate) fn prepare(mut args: PrepareArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => barrage_engine::config::RunConfig::from_file(path)?,
        None => barrage_engine::config::RunConfig::default(),
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
