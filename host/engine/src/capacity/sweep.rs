//! `barrage sweep`: where a server saturates. A closed-loop probe doubles
//! its users until throughput stops growing, which brackets capacity
//! (Little's law turns its latency at one user into the concurrency the
//! knee needs); then open-loop points at offered rates around that
//! estimate, each until its throughput is steady, the next rate chosen
//! between the highest that was served and the lowest that was not, until
//! the knee is pinned down. A point whose queue grows without bound stops
//! itself (the overload guard) and counts as saturated.

use serde::{Deserialize, Serialize};

use super::{ALL_FAILED, CapacityError, INTERRUPTED, Load, Point, Probe, Runner, mean_sd, rate_name, write};

/// How a sweep runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepOptions {
    /// Longest a point runs, seconds (it ends sooner once steady).
    pub point_s: f64,
    /// Seconds at a point's start that are not measured.
    pub warmup_s: f64,
    /// Seconds per probe level.
    pub probe_s: f64,
    /// Most open-loop points.
    pub max_points: usize,
    /// Highest rate tried, requests/s; none: no limit.
    pub max_rate: Option<f64>,
    /// Most users the probe tries.
    pub max_users: usize,
    /// A point is past the knee when its throughput is below this share of
    /// its offered rate, or gained less than this share of the rate added
    /// since the point below.
    pub efficiency: f64,
    /// The knee is pinned down once the rates bracketing it are this close
    /// (a share of the higher one).
    pub precision: f64,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            point_s: 20.0,
            warmup_s: 3.0,
            probe_s: 4.0,
            max_points: 10,
            max_rate: None,
            max_users: 1024,
            efficiency: 0.9,
            precision: 0.05,
        }
    }
}

/// A point of the sweep and whether it was past the knee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// What the run measured.
    #[serde(flatten)]
    pub point: Point,
    /// Past the knee: more offered load bought (almost) no throughput.
    pub saturated: bool,
}

/// Where throughput stops following the offered rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knee {
    /// The rate, requests/s: the throughput the saturated points plateau at.
    pub rate: f64,
    /// Its standard error, from the points' own second-to-second variance
    /// and their spread.
    pub uncertainty: f64,
    /// The highest offered rate that was still served.
    pub below: Option<f64>,
    /// The lowest offered rate that was not.
    pub above: f64,
}

/// A sweep's answer (`sweep.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// How it ran.
    pub options: SweepOptions,
    /// The probe.
    pub probe: Probe,
    /// The points, by offered rate.
    pub points: Vec<SweepPoint>,
    /// First runs of rates measured again: past the knee below a rate that
    /// was served, which one busy second can fake. `points` holds the
    /// second run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remeasured: Vec<SweepPoint>,
    /// The knee; none when no point was past it (or none was below it).
    pub knee: Option<Knee>,
    /// Why there is no knee, or why the sweep ended early.
    pub note: Option<String>,
    /// Requests sent by the probe and every point.
    pub requests_spent: u64,
}

impl SweepReport {
    /// A sweep's report before its probe.
    fn new(options: &SweepOptions) -> SweepReport {
        SweepReport {
            options: options.clone(),
            probe: Probe::default(),
            points: Vec::new(),
            remeasured: Vec::new(),
            knee: None,
            note: None,
            requests_spent: 0,
        }
    }

    /// Open-loop runs so far, those measured again included.
    fn runs(&self) -> usize {
        self.points.len() + self.remeasured.len()
    }
}

/// The first rates a sweep runs, around the probe's capacity `estimate`,
/// in the order `plan` pops them (from the end: the lowest first).
fn first_rates(estimate: f64) -> Vec<f64> {
    [1.15, 0.85, 0.5].iter().map(|k| k * estimate).collect()
}

/// The file the report is written to, in the sweep's directory.
pub const SWEEP_JSON: &str = "sweep.json";

/// Run the sweep. Every point's run is in a directory of its own under the
/// runner's; `sweep.json` is rewritten after each, so an interrupted sweep
/// keeps what it found.
pub async fn sweep(runner: &mut Runner<'_>, options: &SweepOptions) -> Result<SweepReport, CapacityError> {
    let mut report = SweepReport::new(options);
    let (probe, note) = super::probe(runner, options.probe_s, options.warmup_s, options.max_users).await?;
    report.probe = probe;
    report.requests_spent = runner.spent;
    report.note = note;
    write(&runner.dir, SWEEP_JSON, &report)?;
    let probe = &report.probe;
    if runner.interrupted() {
        report.note = Some(INTERRUPTED.into());
    }
    if report.note.is_some() {
        write(&runner.dir, SWEEP_JSON, &report)?;
        return Ok(report);
    }
    // Past its start (twice the latency at one user, at least the warm-up)
    // a point whose queue keeps growing is saturated: it need not go on.
    let settle = options
        .warmup_s
        .max(2.0 * probe.base_latency_ms.unwrap_or(0.0) / 1000.0);
    let mut queue = first_rates(probe.capacity_estimate);
    while !runner.interrupted() {
        let Some(Run { rate, again }) = plan(&report, &mut queue, options) else {
            break;
        };
        let name = rate_name("rate-", report.runs(), rate);
        let (point, _) = runner
            .point(&name, Load::Rate(rate), options.point_s, options.warmup_s, Some(settle))
            .await?;
        let failed_all = point.sent > 0 && point.succeeded == 0;
        add(&mut report, point, again, options);
        report.requests_spent = runner.spent;
        write(&runner.dir, SWEEP_JSON, &report)?;
        if failed_all {
            report.note = Some(format!(
                "{ALL_FAILED} at {rate:.2} requests/s; the sweep stopped there (see {name}/summary.json)"
            ));
            break;
        }
    }
    if runner.interrupted() {
        report.note = Some(INTERRUPTED.into());
    } else if report.knee.is_none() && report.note.is_none() {
        report.note = Some(match report.points.iter().any(|p| p.saturated) {
            true => "every point was past the knee; lower rates were not tried".into(),
            false => format!(
                "no point was past the knee up to {:.2} requests/s{}",
                report.points.iter().map(|p| p.point.load).fold(0.0, f64::max),
                if options.max_rate.is_some() {
                    " (--max-rate)"
                } else {
                    ""
                }
            ),
        });
    }
    write(&runner.dir, SWEEP_JSON, &report)?;
    Ok(report)
}

/// Sort by offered rate and mark the points past the knee: those the
/// overload guard stopped, those served below `efficiency` of their rate,
/// and those whose throughput gained less than `efficiency` of the rate
/// added since the point below while their latency inflated (end-to-end
/// p50 half again that of the lowest rate): more load bought little but
/// waiting.
fn classify(points: &mut [SweepPoint], options: &SweepOptions) {
    points.sort_by(|a, b| a.point.load.total_cmp(&b.point.load));
    let base_latency = points.first().and_then(|p| p.point.e2e_p50_ms);
    let mut below = (0.0, 0.0);
    for p in points.iter_mut() {
        let (load, x) = (p.point.load, p.point.throughput);
        let overloaded = p.point.stopped.as_deref().is_some_and(|r| r.starts_with("overloaded"));
        let gained = if load > below.0 {
            (x - below.1) / (load - below.0)
        } else {
            1.0
        };
        let inflated = matches!((p.point.e2e_p50_ms, base_latency), (Some(l), Some(b)) if l > 1.5 * b);
        p.saturated = overloaded || x < options.efficiency * load || (gained < options.efficiency && inflated);
        below = (load, x);
    }
}

/// The next open-loop run of a sweep.
#[derive(Debug)]
struct Run {
    rate: f64,
    /// The index in `points` of the point it measures again.
    again: Option<usize>,
}

/// The next run, if any: a contradicted point measured again, else the
/// next of the first rates (`queue`, popped from the end), else the next
/// bisection step.
fn plan(report: &SweepReport, queue: &mut Vec<f64>, options: &SweepOptions) -> Option<Run> {
    let points = &report.points;
    if report.runs() >= options.max_points {
        return None;
    }
    if let Some(i) = contradicted(points, &report.remeasured) {
        return Some(Run {
            rate: points[i].point.load,
            again: Some(i),
        });
    }
    let rate = queue.pop().or_else(|| next_rate(points, options))?;
    let rate = options.max_rate.map_or(rate, |m| rate.min(m));
    let new = !points.iter().any(|p| (p.point.load - rate).abs() < 1e-9);
    new.then_some(Run { rate, again: None })
}

/// Add a run's point (in place of the one it measured again) and judge
/// the points and the knee anew.
fn add(report: &mut SweepReport, point: Point, again: Option<usize>, options: &SweepOptions) {
    if let Some(i) = again {
        report.remeasured.push(report.points.remove(i));
    }
    report.points.push(SweepPoint {
        point,
        saturated: false,
    });
    classify(&mut report.points, options);
    report.knee = knee(&report.points);
}

/// The index of a point to measure again: the lowest past the knee below a
/// rate that was served, unless its rate was measured again already. A
/// server does not serve more when offered more past its knee, so one of
/// the two is wrong, and the lower one is what bisection would build on;
/// a stall of the machine running both (a busy CI runner) is enough.
fn contradicted(points: &[SweepPoint], remeasured: &[SweepPoint]) -> Option<usize> {
    let served = highest_served(points)?;
    points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.saturated && p.point.load < served)
        .filter(|(_, p)| !remeasured.iter().any(|r| r.point.load == p.point.load))
        .min_by(|a, b| a.1.point.load.total_cmp(&b.1.point.load))
        .map(|(i, _)| i)
}

/// The highest offered rate that was still served.
fn highest_served(points: &[SweepPoint]) -> Option<f64> {
    points
        .iter()
        .filter(|p| !p.saturated)
        .map(|p| p.point.load)
        .reduce(f64::max)
}

/// The rate to try next, if the knee is not pinned down yet.
fn next_rate(points: &[SweepPoint], options: &SweepOptions) -> Option<f64> {
    let past = points.iter().filter(|p| p.saturated).map(|p| p.point.load);
    let (lo, hi) = (highest_served(points), past.reduce(f64::min));
    match (lo, hi) {
        (_, None) => {
            let top = points.iter().map(|p| p.point.load).fold(0.0, f64::max);
            let limit = options.max_rate.unwrap_or(f64::INFINITY);
            (top < limit).then_some(top * 1.5)
        }
        (None, Some(hi)) => Some(hi * 0.5),
        (Some(lo), Some(hi)) if lo < hi && (hi - lo) / hi > options.precision => Some((lo + hi) / 2.0),
        // A second point past the knee, for the plateau's spread.
        _ if points.iter().filter(|p| p.saturated).count() < 2 => hi.map(|h| h * 1.25),
        _ => None,
    }
}

/// The knee: the throughput the saturated points plateau at, when there
/// are points on both sides of it.
fn knee(points: &[SweepPoint]) -> Option<Knee> {
    let plateau: Vec<&Point> = points.iter().filter(|p| p.saturated).map(|p| &p.point).collect();
    let served = highest_served(points);
    if plateau.is_empty() || served.is_none() {
        return None;
    }
    // Each point's mean second weighted by its precision: its seconds over
    // their variance, which is at least one request per second squared
    // (counts per second resolve no finer). A point with a stalled second
    // then counts for little beside steady ones, where a weight by seconds
    // alone let one stall on a busy machine pull the knee 10 % low.
    let weight = |p: &Point| p.seconds.max(1) as f64 / p.throughput_sd.powi(2).max(1.0);
    let weights: f64 = plateau.iter().map(|p| weight(p)).sum();
    let rate = plateau.iter().map(|p| weight(p) * p.throughput).sum::<f64>() / weights;
    let k = plateau.len() as f64;
    // Within the points: the standard error of the weighted mean; between
    // them: the spread of their means.
    let within = weights.sqrt().recip();
    let throughputs: Vec<f64> = plateau.iter().map(|p| p.throughput).collect();
    let between = mean_sd(&throughputs).1 / k.sqrt();
    Some(Knee {
        rate,
        uncertainty: (within.powi(2) + between.powi(2)).sqrt(),
        below: served,
        above: plateau.iter().map(|p| p.load).fold(f64::INFINITY, f64::min),
    })
}

/// The sweep as a Markdown page (`sweep.md`) and console text.
pub fn markdown(report: &SweepReport) -> String {
    let mut m = String::from("# Barrage sweep\n\n");
    let p = &report.probe;
    m += &format!(
        "Probe: {} levels up to {} users; throughput peaked at {:.2} requests/s{}.\n\n",
        p.levels.len(),
        p.levels.last().map_or(0.0, |l| l.load),
        p.capacity_estimate,
        match (p.base_latency_ms, p.knee_users) {
            (Some(ms), Some(n)) => format!(" (latency {ms:.1} ms at one user: the knee needs about {n:.1} users)"),
            _ => String::new(),
        }
    );
    match &report.knee {
        Some(k) => {
            m += &format!(
                "**Knee: {:.2} ± {:.2} requests/s** (served up to {}, saturated from {:.2}).\n\n",
                k.rate,
                k.uncertainty,
                k.below.map_or("-".into(), |b| format!("{b:.2}")),
                k.above
            )
        }
        None => m += "**No knee found.**\n\n",
    }
    if let Some(note) = &report.note {
        m += &format!("{note}\n\n");
    }
    m += "| offered req/s | throughput req/s | ± (sd) | sent | failed | ttft p50 | ttft p99 | tpot p50 | e2e p99 | past knee | run |\n";
    m += "|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---|\n";
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for sp in &report.points {
        let p = &sp.point;
        m += &format!(
            "| {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | `{}` |\n",
            p.load,
            p.throughput,
            p.throughput_sd,
            p.sent,
            p.failed,
            ms(p.ttft_p50_ms),
            ms(p.ttft_p99_ms),
            ms(p.tpot_p50_ms),
            ms(p.e2e_p99_ms),
            if sp.saturated { "yes" } else { "" },
            p.name
        );
    }
    for sp in &report.remeasured {
        let p = &sp.point;
        m += &format!(
            "\nMeasured again: {:.2} requests/s; its first run (`{}`) served {:.2} ± {:.2}, past the knee below a rate that was served.\n",
            p.load, p.name, p.throughput, p.throughput_sd
        );
    }
    m += &format!("\nRequests spent: {} (latencies in ms).\n", report.requests_spent);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point of a server that serves `min(rate, capacity)`.
    fn at(rate: f64, capacity: f64) -> SweepPoint {
        let x = rate.min(capacity);
        SweepPoint {
            point: Point {
                name: String::new(),
                load: rate,
                throughput: x,
                throughput_sd: x * 0.02,
                seconds: 10,
                achieved_rate: rate,
                sent: (rate * 10.0) as u64,
                succeeded: (rate * 10.0) as u64,
                failed: 0,
                ttft_p50_ms: None,
                ttft_p99_ms: None,
                tpot_p50_ms: None,
                e2e_p50_ms: Some(if rate > capacity { 500.0 } else { 100.0 }),
                e2e_p99_ms: None,
                good_share: None,
                good: 0,
                judged: 0,
                stopped: None,
            },
            saturated: false,
        }
    }

    #[test]
    fn bisection_between_served_and_saturated_finds_the_plateau() {
        let options = SweepOptions::default();
        let capacity = 80.0;
        let mut points: Vec<SweepPoint> = [40.0, 68.0, 92.0].iter().map(|&r| at(r, capacity)).collect();
        for _ in 0..options.max_points {
            classify(&mut points, &options);
            match next_rate(&points, &options) {
                Some(r) => points.push(at(r, capacity)),
                None => break,
            }
        }
        classify(&mut points, &options);
        let k = knee(&points).unwrap();
        assert!((k.rate - capacity).abs() < 1e-9, "{k:?}");
        assert!(k.uncertainty > 0.0 && k.uncertainty < 1.0, "{k:?}");
        let (lo, hi) = (k.below.unwrap(), k.above);
        assert!(
            lo <= capacity && hi >= capacity && (hi - lo) / hi <= options.precision,
            "{lo}..{hi}"
        );
        assert!(points.len() <= 8, "{} points", points.len());
    }

    #[test]
    fn a_point_past_the_knee_below_a_served_rate_is_measured_again_once() {
        let options = SweepOptions::default();
        let capacity = 111.0;
        let mut report = SweepReport::new(&options);
        // The probe underestimated (a busy machine), and the first run at
        // 85 % of its estimate lost a second: it looks past the knee.
        let mut queue = first_rates(45.67);
        let mut runs = Vec::new();
        while let Some(run) = plan(&report, &mut queue, &options) {
            let mut p = at(run.rate, capacity).point;
            if runs.len() == 1 {
                p.throughput *= 0.8;
            }
            runs.push(run.rate);
            add(&mut report, p, run.again, &options);
        }
        assert_eq!(runs[3], runs[1], "the contradicted rate goes first: {runs:?}");
        assert_eq!(report.remeasured.len(), 1);
        assert_eq!(report.remeasured[0].point.load, runs[1]);
        assert_eq!(report.points.len() + 1, runs.len());
        let k = report.knee.as_ref().unwrap();
        assert!((k.rate - capacity).abs() < 1e-9, "{k:?} after {runs:?}");
        assert!(markdown(&report).contains(&format!("Measured again: {:.2} requests/s", runs[1])));

        // A point that is past the knee again is kept: it is measured once more only.
        let mut points = vec![at(20.0, 1000.0), at(40.0, 1000.0), at(60.0, 1000.0)];
        points[1].point.throughput = 20.0;
        classify(&mut points, &options);
        assert_eq!(contradicted(&points, &[]), Some(1));
        let first = points[1].clone();
        assert_eq!(contradicted(&points, &[first]), None);
    }

    #[test]
    fn a_point_with_a_stalled_second_weighs_little_in_the_knee() {
        // Seen under load: 112/s lost most of one second of its four.
        let options = SweepOptions::default();
        let mut points = vec![at(56.0, 111.0), at(107.8, 111.0), at(112.0, 111.0), at(128.8, 111.0)];
        points[2].point.throughput = 93.4;
        points[2].point.throughput_sd = 40.48;
        points[2].point.seconds = 4;
        points[3].point.throughput = 110.67;
        points[3].point.throughput_sd = 1.53;
        points[3].point.seconds = 3;
        classify(&mut points, &options);
        let k = knee(&points).unwrap();
        assert!((k.rate - 110.67).abs() < 0.1, "{k:?}");
        // The points' disagreement still shows in the uncertainty.
        assert!(k.uncertainty > 5.0, "{k:?}");
        assert_eq!((k.below, k.above), (Some(107.8), 112.0));
    }

    #[test]
    fn with_no_point_saturated_the_rates_rise_and_with_all_they_fall() {
        let options = SweepOptions::default();
        let mut points = vec![at(10.0, 1000.0), at(20.0, 1000.0)];
        classify(&mut points, &options);
        assert_eq!(next_rate(&points, &options), Some(30.0));
        assert!(knee(&points).is_none());
        let mut points = vec![at(100.0, 10.0), at(200.0, 10.0)];
        classify(&mut points, &options);
        assert!(points.iter().all(|p| p.saturated));
        assert_eq!(next_rate(&points, &options), Some(50.0));
        let capped = SweepOptions {
            max_rate: Some(20.0),
            ..SweepOptions::default()
        };
        let mut points = vec![at(10.0, 1000.0), at(20.0, 1000.0)];
        classify(&mut points, &capped);
        assert_eq!(next_rate(&points, &capped), None);
    }

    #[test]
    fn an_overloaded_point_is_past_the_knee_whatever_it_served() {
        let options = SweepOptions::default();
        let mut points = vec![at(50.0, 100.0), at(60.0, 100.0)];
        points[1].point.stopped = Some("overloaded: requests in flight rose".into());
        classify(&mut points, &options);
        assert_eq!(
            points.iter().map(|p| p.saturated).collect::<Vec<_>>(),
            vec![false, true]
        );
    }
}
