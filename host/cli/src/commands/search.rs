//! `barrage search`: the highest rate that meets an objective.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use barrage_engine::capacity::search::{Over, SearchOptions, markdown};

use barrage_engine::metrics::LoadMark;

use super::capacity::{Answer, PointArgs, Question, ask, conclude, report_as_run};
use super::run::RunArgs;

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// Share of requests that must meet the --slo objectives: 99%, 0.99.
    #[arg(long, value_name = "SHARE", default_value = "99%")]
    attainment: String,
    /// What to vary: the arrival rate, or closed-loop users.
    #[arg(long, value_enum, default_value = "rate")]
    over: Over,
    /// Confidence of the bound each rate is judged with: 95%, 0.95.
    #[arg(long, value_name = "SHARE", default_value = "95%")]
    confidence: String,
    /// Lowest rate tried before the objective is called impossible, requests/s.
    #[arg(long, value_name = "RATE", default_value_t = 0.1)]
    min_rate: f64,
    #[command(flatten)]
    points: PointArgs,
    #[command(flatten)]
    run: RunArgs,
}

/// `99%` or `0.99`: a share in (0, 1].
fn share(text: &str, flag: &str) -> Result<f64> {
    let t = text.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match v {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => bail!("{flag} `{text}`: give a share such as 99% or 0.99 (above 0, at most 100%)"),
    }
}

pub(crate) fn execute(mut args: SearchArgs) -> Result<ExitCode> {
    args.points.check(&args.run, "search")?;
    if args.run.status_file().is_some() {
        bail!("--status-file is for run, sweep, merge and report; a search's answer is its search.json");
    }
    let p = &args.points;
    let options = SearchOptions {
        over: args.over,
        attainment: share(&args.attainment, "--attainment")?,
        confidence: share(&args.confidence, "--confidence")?,
        point_s: p.point_duration,
        warmup_s: p.warmup,
        probe_s: p.probe_duration,
        max_points: p.max_points,
        max_rate: p.max_rate,
        min_rate: args.min_rate,
        precision: p.precision,
        ..SearchOptions::default()
    };
    if options.confidence >= 1.0 {
        bail!("--confidence must be below 100%");
    }
    if !(args.min_rate > 0.0 && args.min_rate.is_finite()) {
        bail!("--min-rate must be > 0, got {}", args.min_rate);
    }
    let setup = args.run.setup()?;
    let report_config = &setup.plan.config.report;
    let objectives: Vec<String> = report_config
        .slo
        .iter()
        .chain(&report_config.thresholds)
        .cloned()
        .collect();
    let dir = setup.dir.clone();
    let config = setup.plan.config.clone();
    let (answer, stop) = ask(setup, Question::Search(options, objectives), args.run.quiet())?;
    let Answer::Search(report) = answer else {
        unreachable!("a search answers with a search")
    };
    let over = report.options.over;
    let runs: Vec<(String, _)> = report
        .trials
        .iter()
        .flat_map(|t| t.runs.iter().map(move |r| (r.name.clone(), over.load(r.load))))
        .collect();
    let marks = report
        .best
        .iter()
        .map(|&b| LoadMark {
            load: b,
            label: format!("meets the objective up to {b:.1} {}", over.unit()),
        })
        .collect();
    report_as_run(&args.run, &config, &dir, &runs, marks)?;
    let page = markdown(&report);
    if let Some(code) = conclude(&dir, "search.md", &page, report.note.as_deref(), &stop)? {
        return Ok(code);
    }
    if report.best.is_none() {
        eprintln!(
            "error: {}",
            report.note.as_deref().unwrap_or("no load tried meets the objective")
        );
        return Ok(ExitCode::from(7));
    }
    Ok(ExitCode::SUCCESS)
}
