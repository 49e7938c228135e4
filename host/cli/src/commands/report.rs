//! `barrage report`: rebuild a run's summary and reports from its records.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::options::{CiArgs, MetricsArgs, PluginOptions, print_and_report};

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The run's results directory.
    run: PathBuf,
    /// Write the summary and reports here instead of into the run directory.
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    ci: CiArgs,
    #[command(flatten)]
    plugins: PluginOptions,
}

pub(crate) fn execute(args: ReportArgs) -> Result<ExitCode> {
    let run = barrage_engine::results::RunDir::open(&args.run)?;
    let (config, options) = args.metrics.settings_for(&run)?;
    let (summary, skipped) = barrage_engine::report::rebuild(&run, options)?;
    if skipped > 0 {
        eprintln!(
            "note: the last line of {} was cut short by a hard stop and is left out",
            args.run.join(barrage_engine::results::RECORDS).display()
        );
    }
    let out = args.output.clone().unwrap_or_else(|| args.run.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    barrage_engine::results::write_json(&out.join(barrage_engine::results::SUMMARY), &summary)?;
    Ok(print_and_report(
        &args.plugins,
        &args.ci,
        &config,
        &summary,
        (&args.run, &out),
    ))
}
