//! What `sweep` and `search` share: many runs against one target (or one
//! embedded simulator for all of them), one line printed per run.

use anyhow::{Result, bail};
use clap::Args;

use barrage_engine::capacity::search::{SearchOptions, SearchReport};
use barrage_engine::capacity::sweep::{SweepOptions, SweepReport};
use barrage_engine::capacity::{Point, Runner};
use barrage_engine::load::StopSignal;

use super::run::{Setup, runtime, stop_on_signals, target_or_sim};

/// How each run of a sweep or search goes: shared flags.
#[derive(Debug, Args)]
pub(crate) struct PointArgs {
    /// Longest each rate runs, seconds (it ends sooner once its throughput is steady).
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub(crate) point_duration: f64,
    /// Seconds at the start of each rate that are not measured.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    pub(crate) warmup: f64,
    /// Seconds per level of the closed-loop probe.
    #[arg(long, value_name = "SECONDS", default_value_t = 4.0)]
    pub(crate) probe_duration: f64,
    /// Most runs after the probe (a search's repeats included).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub(crate) max_points: usize,
    /// Highest rate tried, requests/s.
    #[arg(long, value_name = "RATE")]
    pub(crate) max_rate: Option<f64>,
    /// Stop once the rates bracketing the answer are this close (a share of the higher).
    #[arg(long, value_name = "SHARE", default_value_t = 0.05)]
    pub(crate) precision: f64,
}

impl PointArgs {
    /// Refuse values no run could have; `question` names the command.
    pub(crate) fn check(&self, run: &super::run::RunArgs, question: &str) -> Result<()> {
        if let Some(flag) = run.single_run_flag() {
            bail!(
                "{flag} is for a single run; a {question} chooses its own runs (see --point-duration and --max-rate)"
            );
        }
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !(positive(self.point_duration) && positive(self.probe_duration) && self.warmup >= 0.0) {
            bail!("--point-duration and --probe-duration must be > 0 seconds, --warmup ≥ 0");
        }
        if self.warmup >= self.point_duration {
            bail!(
                "--warmup ({}) must be shorter than --point-duration ({})",
                self.warmup,
                self.point_duration
            );
        }
        if !(self.precision > 0.0 && self.precision < 1.0) {
            bail!("--precision is a share between 0 and 1, got {}", self.precision);
        }
        if self.max_points == 0 || self.max_rate.is_some_and(|r| !positive(r)) {
            bail!("--max-points must be at least 1 and --max-rate > 0");
        }
        Ok(())
    }
}

/// The question asked.
pub(crate) enum Question {
    Sweep(SweepOptions),
    Search(SearchOptions, Vec<String>),
}

/// Its answer.
pub(crate) enum Answer {
    Sweep(SweepReport),
    Search(SearchReport),
}

/// One line per run, on stderr.
fn say(point: &Point) {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    eprintln!(
        "{:<22} {:>8} sent {:>6} failed {:>5}  throughput {:>8.2}/s  ttft p99 {:>8} ms  e2e p99 {:>8} ms{}",
        point.name,
        point.load,
        point.sent,
        point.failed,
        point.throughput,
        ms(point.ttft_p99_ms),
        ms(point.e2e_p99_ms),
        point.stopped.as_deref().map_or(String::new(), |s| format!("  ({s})"))
    );
}

/// The answer's runs at rates as one run in its directory, with `marks`,
/// and the reporters run on it (the HTML report's load curve).
pub(crate) fn report_as_run(
    run: &super::run::RunArgs,
    config: &barrage_engine::config::RunConfig,
    dir: &std::path::Path,
    runs: &[(String, barrage_engine::capacity::Load)],
    marks: Vec<barrage_engine::metrics::LoadMark>,
) -> Result<Option<barrage_engine::metrics::Summary>> {
    let options = config.report.metrics_options().map_err(|m| anyhow::anyhow!("{m}"))?;
    let summary = barrage_engine::capacity::as_run(dir, runs, marks, options)?;
    if let Some(summary) = &summary {
        crate::options::write_reports(run.plugins(), &config.report, summary, dir, dir);
    }
    Ok(summary)
}

/// Write and print the answer's page; the exit code when the answer ended
/// in a failure of the target (5) or a stop (3).
pub(crate) fn conclude(
    dir: &std::path::Path,
    file: &str,
    page: &str,
    note: Option<&str>,
    stop: &StopSignal,
) -> Result<Option<std::process::ExitCode>> {
    std::fs::write(dir.join(file), page)?;
    print!("{page}");
    println!("results: {}", dir.display());
    Ok(
        if let Some(note) = note.filter(|n| n.starts_with(barrage_engine::capacity::ALL_FAILED)) {
            eprintln!("error: {note}");
            Some(std::process::ExitCode::from(5))
        } else if stop.is_stopped() {
            Some(std::process::ExitCode::from(3))
        } else {
            None
        },
    )
}

/// Ask `question` of the setup's target; the stop is the user's (Ctrl-C).
pub(crate) fn ask(setup: Setup, question: Question, quiet: bool) -> Result<(Answer, StopSignal)> {
    if setup.plan.config.export.is_some() {
        bail!(
            "export: the live export is for a single run (`barrage run`); a sweep's points are runs of their own: \
             remove export: from the config"
        );
    }
    let runtime = runtime()?;
    let stop = StopSignal::default();
    let answer = runtime.block_on(async {
        let signals = stop_on_signals(&stop);
        let (target, sim) = target_or_sim(&setup.plan.config).await?;
        let quiet_say = |_: &Point| {};
        let mut runner = Runner {
            base: &setup.plan.config,
            plugins: setup.plugins.clone(),
            workload: setup.workload.clone(),
            target,
            dir: setup.dir.clone(),
            stop: stop.clone(),
            on_point: if quiet { &quiet_say } else { &say },
            spent: 0,
        };
        let answer = match question {
            Question::Sweep(options) => barrage_engine::capacity::sweep::sweep(&mut runner, &options)
                .await
                .map(Answer::Sweep),
            Question::Search(options, objectives) => {
                barrage_engine::capacity::search::search(&mut runner, &options, objectives)
                    .await
                    .map(Answer::Search)
            }
        };
        if let Some(sim) = sim {
            sim.shutdown().await;
        }
        signals.abort();
        anyhow::Ok(answer?)
    })?;
    Ok((answer, stop))
}
