//! `barrage merge`: merge the shards of a distributed run into one.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::options::{CiArgs, MetricsArgs, PluginOptions, print_and_report};

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// Results directories of the shards.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Leave out a directory that holds no run (a shard that never started
    /// writes none) with a warning, instead of refusing: the merged run
    /// names its shard missing. For a merge step that lists every shard's
    /// directory before it knows which ran.
    #[arg(long)]
    skip_missing: bool,
    /// The merged run's directory.
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    ci: CiArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

pub(crate) fn execute(mut args: MergeArgs) -> Result<ExitCode> {
    if args.skip_missing {
        args.runs
            .retain(|dir| match barrage_engine::results::RunDir::open(dir) {
                Ok(_) => true,
                Err(e) => {
                    eprintln!("warning: leaving out {}: {e}", dir.display());
                    false
                }
            });
        anyhow::ensure!(
            !args.runs.is_empty(),
            "none of the directories given holds a run: nothing to merge"
        );
    }
    let first = barrage_engine::results::RunDir::open(&args.runs[0])?;
    let (config, options) = args.metrics.settings_for(&first)?;
    let summary = barrage_engine::report::merge(&args.runs, &args.output, options)?;
    if let Some(spread) = summary.run.shard_start_spread_ms {
        eprintln!("shards started within {spread:.3} ms of each other");
    }
    if !summary.run.missing_shards.is_empty() {
        let missing: Vec<String> = summary.run.missing_shards.iter().map(u32::to_string).collect();
        eprintln!(
            "warning: shard {} of the run is missing (it died, or its directory was not given): the merged run is \
             incomplete, its counts are the other shards'",
            missing.join(", ")
        );
    }
    Ok(print_and_report(
        &args.plugins,
        &args.ci,
        &config,
        &summary,
        (&args.output, &args.output),
    ))
}
