//! `barrage search`: the highest rate that meets an objective. The
//! objective is the run's own: per-request objectives (`report.slo`) met by
//! at least `attainment` of the requests, and every threshold
//! (`report.thresholds`) holding. The probe's capacity estimate gives the
//! first bracket; then the rate is interpolated on the measured attainment
//! between the highest rate that met the objective and the lowest that did
//! not. A point is judged with a confidence bound on its attainment (a
//! Wilson interval); one the bound leaves undecided is repeated, its
//! requests pooled with the earlier ones, before its estimate decides.

use serde::{Deserialize, Serialize};

use super::{ALL_FAILED, CapacityError, INTERRUPTED, Load, Point, Probe, Runner, rate_name, write};
use crate::metrics::Summary;

/// What a search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Over {
    /// The open-loop arrival rate, requests/s.
    #[default]
    Rate,
    /// Closed-loop users (concurrency).
    Users,
}

impl Over {
    /// The unit of a load, for messages.
    pub fn unit(self) -> &'static str {
        match self {
            Over::Rate => "requests/s",
            Over::Users => "users",
        }
    }

    /// `amount` as a load of this kind (users are whole, at least one).
    pub fn load(self, amount: f64) -> Load {
        match self {
            Over::Rate => Load::Rate(amount),
            Over::Users => Load::Users(amount.round().max(1.0) as usize),
        }
    }
}

/// How a search runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOptions {
    /// Rate or users.
    #[serde(default)]
    pub over: Over,
    /// Share of requests that must meet the objectives (0–1].
    pub attainment: f64,
    /// Confidence of the bound each point is judged with (0–1).
    pub confidence: f64,
    /// Longest a point runs, seconds (it ends sooner once steady).
    pub point_s: f64,
    /// Seconds at a point's start that are not measured.
    pub warmup_s: f64,
    /// Seconds per probe level.
    pub probe_s: f64,
    /// Most points, repeats included.
    pub max_points: usize,
    /// Times an undecided point is repeated.
    pub max_repeats: usize,
    /// The answer is pinned down once the rates bracketing it are this close
    /// (a share of the higher one).
    pub precision: f64,
    /// Highest rate tried, requests/s; none: no limit.
    pub max_rate: Option<f64>,
    /// Lowest rate tried before the objective is declared impossible.
    pub min_rate: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            over: Over::Rate,
            attainment: 0.99,
            confidence: 0.95,
            point_s: 20.0,
            warmup_s: 3.0,
            probe_s: 4.0,
            max_points: 12,
            max_repeats: 2,
            precision: 0.05,
            max_rate: None,
            min_rate: 0.1,
        }
    }
}

/// How one rate fared, over every run at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Offered load: requests/s, or users (`over: users`).
    pub rate: f64,
    /// The runs at this load (more than one when a point was undecided).
    pub runs: Vec<Point>,
    /// Requests that met the objectives, over all runs.
    pub good: u64,
    /// Requests judged (measured, not cancelled), over all runs.
    pub judged: u64,
    /// Attainment: good / judged.
    pub attainment: f64,
    /// The confidence interval on it.
    pub interval: (f64, f64),
    /// Thresholds that failed in the last run at this rate.
    pub failed_thresholds: Vec<String>,
    /// Whether the objective was met.
    pub met: bool,
    /// Whether the bound decided it (else the estimate did, after repeats).
    pub decided: bool,
}

/// A search's answer (`search.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// How it ran.
    pub options: SearchOptions,
    /// The objectives, as written.
    pub objectives: Vec<String>,
    /// The probe.
    pub probe: Probe,
    /// Each rate tried, in the order tried.
    pub trials: Vec<Trial>,
    /// The highest rate that met the objective.
    pub best: Option<f64>,
    /// The lowest rate that did not.
    pub failed_at: Option<f64>,
    /// Why there is no answer, or why the search ended early.
    pub note: Option<String>,
    /// Requests sent by the probe and every point.
    pub requests_spent: u64,
}

/// Most users the probe tries.
const PROBE_USERS: usize = 1024;

/// The file the report is written to, in the search's directory.
pub const SEARCH_JSON: &str = "search.json";

/// The Wilson score interval of `good` of `n` at normal quantile `z`.
pub fn wilson(good: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, good as f64 / n as f64);
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The two-sided normal quantile for `confidence` (0.90, 0.95, 0.99, …),
/// by bisection on the error function's approximation.
fn z_of(confidence: f64) -> f64 {
    // Abramowitz & Stegun 7.1.26, good to 1.5e-7: enough for a bound.
    let erf = |x: f64| {
        let t = 1.0 / (1.0 + 0.327_591_1 * x);
        let y =
            t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
        1.0 - y * (-x * x).exp()
    };
    let (mut lo, mut hi) = (0.0, 10.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if erf(mid / std::f64::consts::SQRT_2) < confidence {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Run the search. `objectives` are the objectives as written, for the
/// report; the runner's configuration holds them (`report.slo`,
/// `report.thresholds`). `search.json` is rewritten after each point.
pub async fn search(
    runner: &mut Runner<'_>,
    options: &SearchOptions,
    objectives: Vec<String>,
) -> Result<SearchReport, CapacityError> {
    let mut report = SearchReport {
        options: options.clone(),
        objectives,
        probe: Probe::default(),
        trials: Vec::new(),
        best: None,
        failed_at: None,
        note: None,
        requests_spent: 0,
    };
    let (probe, note) = super::probe(runner, options.probe_s, options.warmup_s, PROBE_USERS).await?;
    report.probe = probe;
    report.note = note;
    report.requests_spent = runner.spent;
    if runner.interrupted() {
        report.note = Some(INTERRUPTED.into());
    }
    write(&runner.dir, SEARCH_JSON, &report)?;
    if report.note.is_some() {
        return Ok(report);
    }
    let z = z_of(options.confidence);
    // Objectives usually give way a little before capacity (for users:
    // the users Little's law says reach it).
    let mut rate = match options.over {
        Over::Rate => 0.9 * report.probe.capacity_estimate,
        Over::Users => report.probe.knee_users.unwrap_or(1.0).max(1.0).round(),
    };
    let unit = options.over.unit();
    let mut points = 0;
    loop {
        if let Some(m) = options.max_rate {
            rate = rate.min(m);
        }
        if points >= options.max_points || runner.interrupted() {
            break;
        }
        let trial = measure(runner, options, z, rate, &mut points, report.trials.len()).await?;
        let all_failed = trial.runs.iter().all(|r| r.sent > 0 && r.succeeded == 0);
        report.trials.push(trial);
        (report.best, report.failed_at) = bracket(&report.trials);
        report.requests_spent = runner.spent;
        write(&runner.dir, SEARCH_JSON, &report)?;
        if all_failed {
            report.note = Some(format!("{ALL_FAILED} at {rate:.2} {unit}; the search stopped there"));
            break;
        }
        match next_rate(&report.trials, options) {
            Next::Rate(r) => rate = r,
            Next::Done => break,
            Next::Impossible(lowest) => {
                report.note = Some(format!(
                    "no load meets the objective: the lowest tried, {lowest:.2} {unit}, did not"
                ));
                break;
            }
            Next::AtLimit(limit) => {
                report.note = Some(format!(
                    "the objective is met at the highest load allowed, {limit:.2} {unit} (--max-rate)"
                ));
                break;
            }
        }
    }
    if runner.interrupted() {
        report.note = Some(INTERRUPTED.into());
    } else if report.note.is_none() && points >= options.max_points && next_rate(&report.trials, options) != Next::Done
    {
        report.note = Some(format!(
            "stopped after {points} points before reaching the precision asked"
        ));
    }
    write(&runner.dir, SEARCH_JSON, &report)?;
    Ok(report)
}

/// Run `rate` until the bound decides (at most `max_repeats` extra runs).
async fn measure(
    runner: &mut Runner<'_>,
    options: &SearchOptions,
    z: f64,
    rate: f64,
    points: &mut usize,
    index: usize,
) -> Result<Trial, CapacityError> {
    let mut trial = Trial {
        rate,
        runs: Vec::new(),
        good: 0,
        judged: 0,
        attainment: 0.0,
        interval: (0.0, 1.0),
        failed_thresholds: Vec::new(),
        met: false,
        decided: false,
    };
    for repeat in 0..=options.max_repeats {
        let prefix = match options.over {
            Over::Rate => "rate-",
            Over::Users => "users-",
        };
        let name = match repeat {
            0 => rate_name(prefix, index, rate),
            n => format!("{}-again{n}", rate_name(prefix, index, rate)),
        };
        let (point, summary) = runner
            .point(&name, options.over.load(rate), options.point_s, options.warmup_s, None)
            .await?;
        *points += 1;
        judge(&mut trial, point, &summary, options, z);
        if trial.decided || *points >= options.max_points || runner.interrupted() {
            break;
        }
    }
    Ok(trial)
}

/// Pool `point` into `trial` and judge it.
fn judge(trial: &mut Trial, point: Point, summary: &Summary, options: &SearchOptions, z: f64) {
    let objectives = summary.total.goodput.is_some();
    // Without per-request objectives every successful request is good:
    // attainment is then the success rate.
    let (good, judged) = match &summary.total.goodput {
        Some(g) => (g.good, g.judged),
        None => (point.succeeded, point.succeeded + point.failed),
    };
    trial.good += good;
    trial.judged += judged;
    trial.runs.push(point);
    trial.failed_thresholds = summary.failed_thresholds().map(|t| t.describe()).collect();
    trial.attainment = if trial.judged > 0 {
        trial.good as f64 / trial.judged as f64
    } else {
        0.0
    };
    trial.interval = wilson(trial.good, trial.judged, z);
    let thresholds_hold = trial.failed_thresholds.is_empty();
    let target = if objectives { options.attainment } else { 0.0 };
    if !thresholds_hold || trial.interval.1 < target {
        (trial.met, trial.decided) = (false, true);
    } else if trial.interval.0 >= target {
        (trial.met, trial.decided) = (true, true);
    } else {
        (trial.met, trial.decided) = (trial.attainment >= target, false);
    }
}

/// The highest rate met and the lowest failed (above it, when the trials
/// disagree).
fn bracket(trials: &[Trial]) -> (Option<f64>, Option<f64>) {
    let best = trials.iter().filter(|t| t.met).map(|t| t.rate).reduce(f64::max);
    let failed = trials
        .iter()
        .filter(|t| !t.met && best.is_none_or(|b| t.rate > b))
        .map(|t| t.rate)
        .reduce(f64::min);
    (best, failed)
}

#[derive(Debug, PartialEq)]
enum Next {
    Rate(f64),
    Done,
    Impossible(f64),
    AtLimit(f64),
}

/// The next load; for users a whole number not tried yet, inside the bracket.
fn next_rate(trials: &[Trial], options: &SearchOptions) -> Next {
    let next = next_amount(trials, options);
    if options.over == Over::Rate {
        return next;
    }
    let (lo, hi) = bracket(trials);
    match next {
        Next::Rate(r) => {
            let r = r.round().max(1.0);
            let r = match lo {
                Some(lo) if r <= lo => lo + 1.0,
                _ => r,
            };
            let tried = |x: f64| trials.iter().any(|t| t.rate == x);
            if hi.is_some_and(|h| r >= h) || tried(r) {
                match trials.iter().map(|t| t.rate).reduce(f64::min) {
                    Some(lowest) if lo.is_none() && lowest > 1.0 => Next::Rate(lowest - 1.0),
                    Some(lowest) if lo.is_none() => Next::Impossible(lowest),
                    _ => Next::Done,
                }
            } else {
                Next::Rate(r)
            }
        }
        other => other,
    }
}

fn next_amount(trials: &[Trial], options: &SearchOptions) -> Next {
    let at = |r: f64| trials.iter().find(|t| t.rate == r);
    match bracket(trials) {
        (Some(lo), Some(hi)) => {
            if (hi - lo) / hi <= options.precision {
                return Next::Done;
            }
            let (a_lo, a_hi) = (
                at(lo).map_or(1.0, |t| t.attainment),
                at(hi).map_or(0.0, |t| t.attainment),
            );
            // Where the attainment line crosses the target, kept off the
            // ends so that the bracket shrinks every step.
            let target = options.attainment;
            let k = if a_lo > a_hi && a_lo >= target && target >= a_hi {
                ((a_lo - target) / (a_lo - a_hi)).clamp(0.25, 0.75)
            } else {
                0.5
            };
            Next::Rate(lo + k * (hi - lo))
        }
        (Some(lo), None) => match options.max_rate {
            Some(m) if lo >= m => Next::AtLimit(m),
            _ => Next::Rate(lo * 1.25),
        },
        (None, _) => {
            let lowest = trials.iter().map(|t| t.rate).fold(f64::INFINITY, f64::min);
            if lowest <= options.min_rate {
                Next::Impossible(lowest)
            } else {
                Next::Rate((lowest * 0.6).max(options.min_rate))
            }
        }
    }
}

/// The search as a Markdown page (`search.md`) and console text.
pub fn markdown(report: &SearchReport) -> String {
    let mut m = String::from("# Barrage search\n\n");
    m += &format!(
        "Objective: {} met by at least {:.2} % of requests (judged at {:.0} % confidence), over {}.\n\n",
        if report.objectives.is_empty() {
            "success".to_string()
        } else {
            report.objectives.join(", ")
        },
        report.options.attainment * 100.0,
        report.options.confidence * 100.0,
        report.options.over.unit()
    );
    let unit = report.options.over.unit();
    m += &match (report.best, report.failed_at) {
        (Some(b), Some(f)) => format!("**Highest load that meets it: {b:.2} {unit}**; {f:.2} does not.\n\n"),
        (Some(b), None) => format!("**Highest load that meets it: {b:.2} {unit}** (no higher load failed).\n\n"),
        (None, _) => "**No load tried meets it.**\n\n".to_string(),
    };
    if let Some(note) = &report.note {
        m += &format!("{note}\n\n");
    }
    m += &format!("| {unit} | runs |");
    m += " judged | attainment | interval | thresholds failed | meets | decided by |\n";
    m += "|---:|---:|---:|---:|---|---|:---:|---|\n";
    for t in &report.trials {
        m += &format!(
            "| {:.2} | {} | {} | {:.2} % | {:.2}–{:.2} % | {} | {} | {} |\n",
            t.rate,
            t.runs.len(),
            t.judged,
            t.attainment * 100.0,
            t.interval.0 * 100.0,
            t.interval.1 * 100.0,
            if t.failed_thresholds.is_empty() {
                "-".to_string()
            } else {
                t.failed_thresholds.join("; ").replace('|', "\\|")
            },
            if t.met { "yes" } else { "no" },
            if t.decided { "the bound" } else { "the estimate" }
        );
    }
    m += &format!("\nRequests spent: {}.\n", report.requests_spent);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_bounds_match_published_values() {
        // 95 of 100 at 95 %: (0.8883, 0.9785), as tabulated for Wilson's interval.
        let (lo, hi) = wilson(95, 100, z_of(0.95));
        assert!((lo - 0.8883).abs() < 5e-4 && (hi - 0.9785).abs() < 5e-4, "{lo} {hi}");
        assert!((z_of(0.95) - 1.95996).abs() < 1e-4);
        assert!((z_of(0.99) - 2.57583).abs() < 1e-4);
        assert_eq!(wilson(0, 0, 1.96), (0.0, 1.0));
    }

    fn trial(rate: f64, attainment: f64, met: bool) -> Trial {
        Trial {
            rate,
            runs: Vec::new(),
            good: (attainment * 1000.0) as u64,
            judged: 1000,
            attainment,
            interval: (attainment, attainment),
            failed_thresholds: Vec::new(),
            met,
            decided: true,
        }
    }

    #[test]
    fn the_next_rate_interpolates_inside_the_bracket_until_it_is_narrow() {
        let options = SearchOptions {
            attainment: 0.9,
            ..SearchOptions::default()
        };
        let near = |next: Next, rate: f64| matches!(next, Next::Rate(r) if (r - rate).abs() < 1e-9);
        let trials = vec![trial(50.0, 1.0, true), trial(100.0, 0.5, false)];
        // The line from (50, 1.0) to (100, 0.5) crosses 0.9 at 60.
        assert!(near(next_rate(&trials, &options), 62.5), "kept off the end");
        let trials = vec![trial(50.0, 0.95, true), trial(100.0, 0.85, false)];
        assert!(near(next_rate(&trials, &options), 75.0));
        let trials = vec![trial(97.0, 0.95, true), trial(100.0, 0.85, false)];
        assert_eq!(next_rate(&trials, &options), Next::Done);
        assert_eq!(next_rate(&[trial(50.0, 1.0, true)], &options), Next::Rate(62.5));
        assert_eq!(next_rate(&[trial(50.0, 0.1, false)], &options), Next::Rate(30.0));
        let floor = SearchOptions {
            min_rate: 30.0,
            ..options.clone()
        };
        assert_eq!(next_rate(&[trial(30.0, 0.1, false)], &floor), Next::Impossible(30.0));
    }
}
