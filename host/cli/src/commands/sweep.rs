//! `barrage sweep`: find where a server saturates.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use barrage_engine::capacity::sweep::{SweepOptions, markdown};

use barrage_engine::capacity::Load;
use barrage_engine::metrics::LoadMark;

use super::capacity::{Answer, PointArgs, Question, ask, conclude, report_as_run};
use super::run::RunArgs;

#[derive(Debug, Args)]
pub(crate) struct SweepArgs {
    /// Past the knee: throughput below this share of the offered rate, or a
    /// gain below it for the rate added while latency inflates.
    #[arg(long, value_name = "SHARE", default_value_t = 0.9)]
    efficiency: f64,
    #[command(flatten)]
    points: PointArgs,
    #[command(flatten)]
    run: RunArgs,
}

pub(crate) fn execute(mut args: SweepArgs) -> Result<ExitCode> {
    args.points.check(&args.run, "sweep")?;
    if !(args.efficiency > 0.0 && args.efficiency < 1.0) {
        bail!("--efficiency is a share between 0 and 1, got {}", args.efficiency);
    }
    let p = &args.points;
    let options = SweepOptions {
        point_s: p.point_duration,
        warmup_s: p.warmup,
        probe_s: p.probe_duration,
        max_points: p.max_points,
        max_rate: p.max_rate,
        max_users: SweepOptions::default().max_users,
        efficiency: args.efficiency,
        precision: p.precision,
    };
    let setup = args.run.setup()?;
    let dir = setup.dir.clone();
    let config = setup.plan.config.clone();
    let (answer, stop) = ask(setup, Question::Sweep(options), args.run.quiet())?;
    let Answer::Sweep(report) = answer else {
        unreachable!("a sweep answers with a sweep")
    };
    let runs: Vec<(String, Load)> = report
        .points
        .iter()
        .map(|p| (p.point.name.clone(), Load::Rate(p.point.load)))
        .collect();
    let marks = report
        .knee
        .iter()
        .map(|k| LoadMark {
            load: k.rate,
            label: format!("knee {:.1} ± {:.1} req/s", k.rate, k.uncertainty),
        })
        .collect();
    let summary = report_as_run(&args.run, &config, &dir, &runs, marks)?;
    if let Some(path) = args.run.status_file() {
        // The points together, and the knee: what a sweep stands for.
        let mut headline = summary.map(|s| s.headline()).unwrap_or_default();
        headline.complete = !stop.is_stopped();
        headline.knee_rate = report.knee.as_ref().map(|k| k.rate);
        headline.knee_uncertainty = report.knee.as_ref().map(|k| k.uncertainty);
        std::fs::write(path, headline.to_line())
            .with_context(|| format!("cannot write the status file {}", path.display()))?;
    }
    let page = markdown(&report);
    let code = conclude(&dir, "sweep.md", &page, report.note.as_deref(), &stop)?;
    Ok(code.unwrap_or(ExitCode::SUCCESS))
}
