//! What a load spike did, for judging an autoscaler: how long the
//! objectives were missed and when they were met again, how much latency
//! the spike added, and (with the server's replica counts) how soon the
//! server scaled up and back down, and what it cost in replica-seconds.
//!
//! A spike is where the schedule's rate rises: a stage whose requested rate
//! is more than a fifth above the stage before's, and each burst of a
//! `burst` stage. Each is judged over its window: from its start to the
//! next spike's (or the run's end), in whole seconds of the time series.

use serde::{Deserialize, Serialize};

use super::stage::{StageInfo, StageSummary};
use super::summary::Point;
use crate::server_metrics::ServerSeries;

/// One spike, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spike {
    /// The stage it is in.
    pub stage: usize,
    /// Start of the raised load, seconds from the run's start.
    pub start_s: f64,
    /// Its end.
    pub end_s: f64,
    /// The rate before and during it, requests/s, when the schedule says.
    pub rate_before: Option<f64>,
    /// The rate during it.
    pub rate: Option<f64>,
    /// Seconds of its window whose requests met the objectives less often
    /// than `report.slo_attainment` (none without objectives).
    pub violation_s: Option<u64>,
    /// From its start to the end of the last such second: when the
    /// objectives were met again (0: never missed; none without objectives,
    /// or when still missed at the window's end, see `recovered`).
    pub recovery_s: Option<f64>,
    /// False when the window's last second still missed the objectives.
    pub recovered: bool,
    /// Sum over its window's seconds of TTFT p50 above the p50 before it,
    /// ms × s.
    pub excess_ttft_ms_s: Option<f64>,
    /// Replicas at its start.
    pub replicas_before: Option<f64>,
    /// Most replicas in its window.
    pub replicas_peak: Option<f64>,
    /// From its start to the first sample with more replicas.
    pub scale_up_s: Option<f64>,
    /// From its end to the first sample back at `replicas_before` or fewer.
    pub scale_down_s: Option<f64>,
    /// Replicas × seconds over its window.
    pub replica_seconds: Option<f64>,
}

/// A spike before it is judged: where it is.
struct Window {
    stage: usize,
    start_s: f64,
    end_s: f64,
    rate_before: Option<f64>,
    rate: Option<f64>,
}

/// Where the schedule's rate rises.
fn windows(infos: &[StageInfo], stages: &[StageSummary]) -> Vec<Window> {
    let mut out = Vec::new();
    for (i, (info, stage)) in infos.iter().zip(stages).enumerate() {
        let start_s = stage.start_ms / 1000.0;
        let before = i.checked_sub(1).and_then(|j| infos[j].requested_rate);
        if let (Some(prev), Some(rate)) = (before, info.requested_rate)
            && rate > 1.2 * prev
            && stage.sent > 0
        {
            out.push(Window {
                stage: i,
                start_s,
                end_s: start_s + info.duration_s.unwrap_or(0.0),
                rate_before: Some(prev),
                rate: Some(rate),
            });
        }
        for (from, to) in &info.bursts {
            out.push(Window {
                stage: i,
                start_s: start_s + from,
                end_s: start_s + to,
                rate_before: info.requested_rate,
                rate: info.burst_rate,
            });
        }
    }
    out.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    out
}

/// Judge every spike of a run.
pub fn judge(
    infos: &[StageInfo],
    stages: &[StageSummary],
    series: &[Point],
    attainment: Option<f64>,
    server: Option<&ServerSeries>,
) -> Vec<Spike> {
    let windows = windows(infos, stages);
    let run_end = series.len() as f64;
    windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let until = windows
                .get(k + 1)
                .map_or(run_end, |n| n.start_s)
                .max(w.end_s.min(run_end));
            let first = w.start_s.floor() as usize;
            let last = (until.ceil() as usize).min(series.len());
            let seconds = series.get(first..last).unwrap_or(&[]);
            let violating = |p: &Point| attainment.is_some_and(|a| p.sent > 0 && (p.good as f64) < a * p.sent as f64);
            let (violation_s, recovery_s, recovered) = match attainment {
                None => (None, None, true),
                Some(_) => {
                    let count = seconds.iter().filter(|p| violating(p)).count() as u64;
                    let last_bad = seconds.iter().rposition(violating);
                    let still = seconds.iter().rev().find(|p| p.sent > 0).is_some_and(violating);
                    let recovery = match last_bad {
                        None => Some(0.0),
                        Some(_) if still => None,
                        Some(i) => Some((first + i + 1) as f64 - w.start_s),
                    };
                    (Some(count), recovery, !still)
                }
            };
            let before: Vec<f64> = series
                .get(first.saturating_sub(10)..first)
                .unwrap_or(&[])
                .iter()
                .filter_map(|p| p.ttft_p50_ms)
                .collect();
            let baseline = median(before);
            let excess = baseline.map(|b| {
                seconds
                    .iter()
                    .filter_map(|p| p.ttft_p50_ms)
                    .map(|v| (v - b).max(0.0))
                    .sum()
            });
            let mut spike = Spike {
                stage: w.stage,
                start_s: w.start_s,
                end_s: w.end_s,
                rate_before: w.rate_before,
                rate: w.rate,
                violation_s,
                recovery_s,
                recovered,
                excess_ttft_ms_s: excess,
                replicas_before: None,
                replicas_peak: None,
                scale_up_s: None,
                scale_down_s: None,
                replica_seconds: None,
            };
            if let Some(server) = server {
                replicas(&mut spike, server, until);
            }
            spike
        })
        .collect()
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    Some(xs[xs.len() / 2])
}

/// The replica figures of `spike` from the server's samples up to `until`.
fn replicas(spike: &mut Spike, server: &ServerSeries, until: f64) {
    let counts: Vec<(f64, f64)> = server
        .samples
        .iter()
        .filter_map(|s| s.replicas.map(|r| (s.t_s, r)))
        .collect();
    let Some(before) = counts
        .iter()
        .rev()
        .find(|(t, _)| *t <= spike.start_s)
        .or(counts.first())
        .map(|(_, r)| *r)
    else {
        return;
    };
    let window: Vec<(f64, f64)> = counts
        .iter()
        .copied()
        .filter(|(t, _)| *t >= spike.start_s && *t <= until)
        .collect();
    spike.replicas_before = Some(before);
    spike.replicas_peak = window.iter().map(|(_, r)| *r).reduce(f64::max);
    spike.scale_up_s = window.iter().find(|(_, r)| *r > before).map(|(t, _)| t - spike.start_s);
    spike.scale_down_s = spike.scale_up_s.and_then(|_| {
        counts
            .iter()
            .find(|(t, r)| *t >= spike.end_s && *r <= before)
            .map(|(t, _)| t - spike.end_s)
    });
    // A step function: the count at the start, then each sample's until
    // the next one, the last until the window's end.
    let mut steps = vec![(spike.start_s, before)];
    steps.extend(window.iter().copied());
    steps.push((until.max(spike.start_s), 0.0));
    spike.replica_seconds = Some(steps.windows(2).map(|p| p[0].1 * (p[1].0 - p[0].0)).sum());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server_metrics::ServerSample;

    fn second(t: usize, sent: u64, good: u64, ttft: f64) -> Point {
        Point {
            t_s: t as f64,
            sent,
            good,
            ttft_p50_ms: Some(ttft),
            ..Point::default()
        }
    }

    #[test]
    fn a_step_up_is_a_spike_judged_until_its_objectives_are_met_again() {
        let infos = vec![
            StageInfo {
                requested_rate: Some(10.0),
                duration_s: Some(10.0),
                ..StageInfo::default()
            },
            StageInfo {
                requested_rate: Some(30.0),
                duration_s: Some(10.0),
                ..StageInfo::default()
            },
        ];
        let stages = vec![
            StageSummary {
                start_ms: 0.0,
                sent: 100,
                ..StageSummary::default()
            },
            StageSummary {
                start_ms: 10_000.0,
                sent: 300,
                ..StageSummary::default()
            },
        ];
        // Seconds 10–13 miss (a queue), then it is met again.
        let series: Vec<Point> = (0..20)
            .map(|t| match t {
                0..10 => second(t, 10, 10, 20.0),
                10..14 => second(t, 30, 5, 220.0),
                _ => second(t, 30, 30, 20.0),
            })
            .collect();
        let mut server = ServerSeries::default();
        for (t, r) in [
            (9.5, 1.0),
            (10.5, 1.0),
            (12.5, 2.0),
            (13.5, 3.0),
            (20.5, 3.0),
            (22.5, 1.0),
        ] {
            server.samples.push(ServerSample {
                t_s: t,
                replicas: Some(r),
                ..ServerSample::default()
            });
        }
        let spikes = judge(&infos, &stages, &series, Some(0.95), Some(&server));
        assert_eq!(spikes.len(), 1);
        let s = &spikes[0];
        assert_eq!(
            (s.start_s, s.end_s, s.rate_before, s.rate),
            (10.0, 20.0, Some(10.0), Some(30.0))
        );
        assert_eq!((s.violation_s, s.recovery_s, s.recovered), (Some(4), Some(4.0), true));
        assert_eq!(s.excess_ttft_ms_s, Some(800.0));
        assert_eq!((s.replicas_before, s.replicas_peak), (Some(1.0), Some(3.0)));
        assert_eq!((s.scale_up_s, s.scale_down_s), (Some(2.5), Some(2.5)));
        // 1 × 2.5 s + 2 × 1 s + 3 × 6.5 s, to the window's end at 20 s.
        assert_eq!(s.replica_seconds, Some(24.0));
    }

    #[test]
    fn a_burst_still_missed_at_its_windows_end_has_not_recovered() {
        let infos = vec![StageInfo {
            requested_rate: Some(10.0),
            burst_rate: Some(50.0),
            bursts: vec![(5.0, 8.0)],
            duration_s: Some(12.0),
            ..StageInfo::default()
        }];
        let stages = vec![StageSummary {
            sent: 200,
            ..StageSummary::default()
        }];
        let series: Vec<Point> = (0..12)
            .map(|t| second(t, 10, if t >= 6 { 0 } else { 10 }, 20.0))
            .collect();
        let s = &judge(&infos, &stages, &series, Some(0.9), None)[0];
        assert_eq!((s.start_s, s.end_s, s.rate), (5.0, 8.0, Some(50.0)));
        assert_eq!((s.violation_s, s.recovery_s, s.recovered), (Some(6), None, false));
        assert_eq!(s.replicas_before, None);
        // Without objectives only latency and replicas are judged.
        let s = &judge(&infos, &stages, &series, None, None)[0];
        assert_eq!((s.violation_s, s.recovery_s), (None, None));
        assert_eq!(s.excess_ttft_ms_s, Some(0.0));
    }
}
