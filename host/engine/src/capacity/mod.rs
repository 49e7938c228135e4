//! Questions about a server's capacity, answered by many short runs whose
//! load is chosen from the ones before: where it saturates (`sweep`) and
//! the most load that meets an objective (`search`). Each run is an
//! ordinary one (`load::run`, a results directory of its own under the
//! answer's); this module only decides what to run next and reads the
//! summaries.

pub mod search;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{RunConfig, Stage};
use crate::load::shape::ShapeKind;
use crate::load::{RunError, StopSignal, Workload};
use crate::metrics::{StageSummary, Summary};

/// The note of an answer the user interrupted.
pub const INTERRUPTED: &str = "interrupted: the points so far are kept";

/// How the note of an answer that stopped at a target failing every
/// request begins.
pub const ALL_FAILED: &str = "every request failed";

/// Why a sweep or search could not go on.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// A run failed to start or to write its results.
    #[error("{point}: {source}")]
    Run {
        /// Which point.
        point: String,
        /// Why.
        source: RunError,
    },
    /// The configuration of a point is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The answer's own files could not be written.
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    /// The runs could not be put together as one.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

/// The answer's runs at rates as one run in its directory, a stage per run
/// in order of rate, with `marks` on its load curve: what reporters draw
/// (the HTML report's load curve shows the knee or the answer). `runs`:
/// (directory name, its load); none, nothing is written.
pub fn as_run(
    dir: &Path,
    runs: &[(String, Load)],
    marks: Vec<crate::metrics::LoadMark>,
    options: crate::metrics::MetricsOptions,
) -> Result<Option<Summary>, CapacityError> {
    if runs.is_empty() {
        return Ok(None);
    }
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.1.amount().total_cmp(&b.1.amount()));
    let stages: Vec<(PathBuf, crate::metrics::StageInfo)> = sorted
        .iter()
        .map(|(name, load)| {
            let info = match *load {
                Load::Rate(rate) => crate::metrics::StageInfo {
                    label: format!("{name}: constant {rate:.2}/s"),
                    requested_rate: Some(rate),
                    ..crate::metrics::StageInfo::default()
                },
                Load::Users(n) => crate::metrics::StageInfo {
                    label: format!("{name}: {n} users"),
                    requested_concurrency: Some(n),
                    ..crate::metrics::StageInfo::default()
                },
            };
            (dir.join(name), info)
        })
        .collect();
    let mut summary = crate::report::sequence(&stages, dir, options)?;
    summary.load_marks = marks;
    crate::results::write_json(&dir.join(crate::results::SUMMARY), &summary)?;
    Ok(Some(summary))
}

/// What one run at one load measured, as the answers use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The run's directory name, under the answer's.
    pub name: String,
    /// Offered load: requests/s (open loop) or users (closed loop).
    pub load: f64,
    /// Requests/s completed while the load was on, past warm-up: the mean
    /// of the seconds' completions.
    pub throughput: f64,
    /// Standard deviation of the seconds' completions.
    pub throughput_sd: f64,
    /// Seconds the throughput is the mean of.
    pub seconds: usize,
    /// Achieved send rate.
    pub achieved_rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests that succeeded.
    pub succeeded: u64,
    /// Requests that failed.
    pub failed: u64,
    /// TTFT p50, ms.
    pub ttft_p50_ms: Option<f64>,
    /// TTFT p99, ms.
    pub ttft_p99_ms: Option<f64>,
    /// TPOT p50, ms.
    pub tpot_p50_ms: Option<f64>,
    /// End-to-end p50, ms.
    pub e2e_p50_ms: Option<f64>,
    /// End-to-end p99, ms.
    pub e2e_p99_ms: Option<f64>,
    /// Goodput share, when objectives are set.
    pub good_share: Option<f64>,
    /// Good requests.
    pub good: u64,
    /// Measured requests that were not cancelled (the share's denominator).
    pub judged: u64,
    /// Why the run stopped early (the overload guard, a threshold, a signal).
    pub stopped: Option<String>,
}

impl Point {
    /// The point a run's summary describes; `warmup_s` seconds of its
    /// time series are left out of the throughput.
    pub fn of(name: &str, load: f64, summary: &Summary, warmup_s: f64) -> Point {
        let s: &StageSummary = &summary.total;
        // The seconds the load was on: from the end of warm-up to the last
        // second anything was sent, which is partial if the run stopped early.
        let last_sent = summary.timeseries.iter().rposition(|p| p.sent > 0);
        let end = last_sent.map_or(0, |l| if summary.run.stopped { l } else { l + 1 });
        let seconds: Vec<f64> = summary
            .timeseries
            .iter()
            .take(end)
            .filter(|p| p.t_s >= warmup_s)
            .map(|p| p.completed as f64)
            .collect();
        let (throughput, throughput_sd) = mean_sd(&seconds);
        let p = |d: &Option<crate::metrics::Dist>, q: f64| d.as_ref().and_then(|d| d.p(q));
        let good = s.goodput.as_ref().map_or(0, |g| g.good);
        Point {
            name: name.to_string(),
            load,
            throughput,
            throughput_sd,
            seconds: seconds.len(),
            achieved_rate: s.achieved_rate,
            sent: s.sent,
            succeeded: s.succeeded,
            failed: s.failed,
            ttft_p50_ms: p(&s.ttft_ms, 50.0),
            ttft_p99_ms: p(&s.ttft_ms, 99.0),
            tpot_p50_ms: p(&s.tpot_ms, 50.0),
            e2e_p50_ms: p(&s.e2e_ms, 50.0),
            e2e_p99_ms: p(&s.e2e_ms, 99.0),
            good_share: s.goodput.as_ref().map(|g| g.share),
            good,
            judged: s.goodput.as_ref().map_or(0, |g| g.judged),
            stopped: summary.run.stop_reason.clone(),
        }
    }
}

/// Mean and standard deviation (0 for fewer than two values).
pub(crate) fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Runs one point after another: the base configuration with one stage of
/// the point's own, each in a directory of its own under `dir`.
pub struct Runner<'a> {
    /// The configuration every point starts from (its stages are replaced).
    pub base: &'a RunConfig,
    /// The codec, and who the other plugins are.
    pub plugins: crate::load::RunPlugins,
    /// The prompts.
    pub workload: Workload,
    /// The server.
    pub target: String,
    /// The answer's directory.
    pub dir: PathBuf,
    /// The user's stop (Ctrl-C): it stops the point running, and the answer.
    pub stop: StopSignal,
    /// Told of each point as it ends (the binary prints a line).
    pub on_point: &'a (dyn Fn(&Point) + Sync),
    /// Requests sent by every point so far.
    pub spent: u64,
}

/// One point's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Open loop, constant rate, requests/s.
    Rate(f64),
    /// Closed loop, users.
    Users(usize),
}

impl Load {
    /// Requests/s or users, as a number.
    pub fn amount(self) -> f64 {
        match self {
            Load::Rate(r) => r,
            Load::Users(n) => n as f64,
        }
    }
}

impl Runner<'_> {
    /// Run `load` for `duration_s` (the first `warmup_s` not measured) as
    /// point `name`, ending sooner once its throughput is steady
    /// (`stop_when_stable_after_s`); with `overload_after_s`, also once its
    /// queue grows without bound (`stop_on_overload_after_s`).
    pub async fn point(
        &mut self,
        name: &str,
        load: Load,
        duration_s: f64,
        warmup_s: f64,
        overload_after_s: Option<f64>,
    ) -> Result<(Point, Summary), CapacityError> {
        let stage = match load {
            Load::Rate(r) => Stage {
                shape: ShapeKind::Constant,
                rate: Some(r),
                ..Stage::default()
            },
            Load::Users(n) => Stage {
                shape: ShapeKind::Concurrency,
                concurrency: Some(n),
                ..Stage::default()
            },
        };
        let config = RunConfig {
            stages: vec![Stage {
                duration_s: Some(duration_s),
                warmup_s,
                ..stage
            }],
            output: Some(self.dir.join(name)),
            stop_on_overload_after_s: overload_after_s,
            stop_when_stable_after_s: Some(warmup_s),
            abort_on_threshold: false,
            ..self.base.clone()
        };
        let plan = config.plan()?;
        // The point's own stop: the overload guard ends the point, not
        // the answer; the user's stop ends both.
        let point_stop = StopSignal::default();
        let forward = {
            let (user, point) = (self.stop.clone(), point_stop.clone());
            tokio::spawn(async move {
                loop {
                    if user.is_stopped() {
                        point.stop(&user.reason().unwrap_or_else(|| "interrupted".into()));
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let dir = self.dir.join(name);
        let summary = crate::load::run(
            plan,
            self.plugins.clone(),
            self.workload.clone(),
            &self.target,
            &dir,
            point_stop,
            crate::load::Watchers::default(),
        )
        .await;
        forward.abort();
        let summary = summary.map_err(|source| CapacityError::Run {
            point: dir.display().to_string(),
            source,
        })?;
        self.spent += summary.total.sent;
        let point = Point::of(name, load.amount(), &summary, warmup_s);
        (self.on_point)(&point);
        Ok((point, summary))
    }

    /// Whether the user asked to stop.
    pub fn interrupted(&self) -> bool {
        self.stop.is_stopped()
    }
}

/// The probe's finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// One point per user count tried.
    pub levels: Vec<Point>,
    /// The most throughput any level reached, requests/s.
    pub capacity_estimate: f64,
    /// End-to-end p50 at one user, ms.
    pub base_latency_ms: Option<f64>,
    /// Users needed to reach that throughput at that latency (Little's law).
    pub knee_users: Option<f64>,
}

/// Bracket capacity: a closed loop at 1, 2, 4, … users, `probe_s` each,
/// until doubling the users buys less than a fifth more throughput. Also a note
/// when the probe found nothing to go on (every request failed).
pub(crate) async fn probe(
    runner: &mut Runner<'_>,
    probe_s: f64,
    warmup_s: f64,
    max_users: usize,
) -> Result<(Probe, Option<String>), CapacityError> {
    let warmup = warmup_s.min(probe_s / 2.0);
    let mut probe = Probe::default();
    let mut users = 1;
    let mut note = None;
    while users <= max_users && !runner.interrupted() {
        let name = format!("probe-u{users}");
        let (point, _) = runner.point(&name, Load::Users(users), probe_s, warmup, None).await?;
        let grew = probe
            .levels
            .last()
            .is_none_or(|prev| point.throughput > 1.2 * prev.throughput);
        let failed_all = point.sent > 0 && point.succeeded == 0;
        probe.levels.push(point);
        if failed_all {
            note = Some(format!(
                "{ALL_FAILED} at {users} users: the target does not answer right; see {name}/summary.json"
            ));
            break;
        }
        if !grew {
            break;
        }
        users *= 2;
    }
    probe.capacity_estimate = probe.levels.iter().map(|l| l.throughput).fold(0.0, f64::max);
    probe.base_latency_ms = probe.levels.first().and_then(|l| l.e2e_p50_ms);
    probe.knee_users = probe.base_latency_ms.map(|ms| probe.capacity_estimate * ms / 1000.0);
    if note.is_none() && probe.capacity_estimate <= 0.0 && !runner.interrupted() {
        note = Some("the probe completed no request; there is nothing to go on".into());
    }
    Ok((probe, note))
}

/// `rate` for a directory name: `r12.5`, `r100`.
pub(crate) fn rate_name(prefix: &str, index: usize, load: f64) -> String {
    let load = (load * 100.0).round() / 100.0;
    format!("{prefix}{index:02}-{load}")
}

/// Write `value` as JSON to `dir/name`.
pub(crate) fn write(dir: &Path, name: &str, value: &impl Serialize) -> Result<(), CapacityError> {
    crate::results::write_json(&dir.join(name), value)?;
    Ok(())
}
