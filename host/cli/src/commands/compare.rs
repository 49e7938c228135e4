//! `barrage compare`: runs side by side.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use barrage_engine::config::ReportConfig;

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
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

pub(crate) fn execute(args: CompareArgs) -> Result<ExitCode> {
    let config = ReportConfig {
        slo: args.slo.clone(),
        ..ReportConfig::default()
    };
    let options = config.metrics_options().map_err(|m| anyhow::anyhow!("{m}"))?;
    let summaries = barrage_engine::report::load_for_compare(&args.runs, &options)?;
    let names = barrage_engine::report::run_names(&args.runs);
    let table = barrage_engine::report::compare_table(&names, &summaries);
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
