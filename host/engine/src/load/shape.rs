//! Arrival schedules: when each request of an open-loop stage is sent.
//!
//! Every schedule is computed from the run's seed alone, so the same seed
//! gives the same send times, to the nanosecond, on every run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use barrage_core::rng::Rng;

/// How load is offered during a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    /// Evenly spaced arrivals at `rate`.
    Constant,
    /// Poisson arrivals at `rate` (exponential gaps).
    Poisson,
    /// Gamma-distributed gaps at `rate`; `burstiness` is the gamma shape
    /// (1 is Poisson, below 1 burstier, above 1 smoother).
    Gamma,
    /// Closed loop: `concurrency` virtual users, each sending its next
    /// request when its last one ends (after `think_time_ms`).
    Concurrency,
    /// Poisson arrivals whose rate moves from `from_rate` to `rate` over the
    /// stage, linearly or exponentially (an inhomogeneous Poisson process).
    /// With `from_concurrency` and `concurrency` instead: a closed loop whose
    /// number of users moves the same way.
    Ramp,
    /// Poisson arrivals at `rate`, rising to `burst_rate` for `burst_s`
    /// seconds at `burst_at_s`, and again every `period_s` if given.
    Burst,
    /// Poisson arrivals whose rate is `rate_expr`, an expression of `t`
    /// (seconds since the stage started), e.g. `5 + 20*sin(t/60)`.
    Expression,
    /// Each dataset sample at its own time (`at_ms` after the stage starts):
    /// trace replay. Ends when the dataset is sent, or at `duration_s` or
    /// `requests`.
    Trace,
}

/// How a ramp moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RampKind {
    /// In equal steps.
    #[default]
    Linear,
    /// By equal factors.
    Exponential,
}

/// A rate (requests/s) as a function of seconds since the stage started.
pub type RateFn = std::sync::Arc<dyn Fn(f64) -> f64 + Send + Sync>;

/// An open-loop arrival generator for one stage.
pub struct Arrivals {
    kind: ShapeKind,
    rate: f64,
    from_rate: f64,
    burstiness: f64,
    duration: Option<Duration>,
    max_requests: Option<u64>,
    rng: Rng,
    /// For thinning: the rate function and an upper bound of it.
    varying: Option<(RateFn, f64)>,
    /// Time of the last arrival, seconds from the stage start (for ramps:
    /// the integrated rate Λ reached so far).
    t: f64,
    n: u64,
    /// This load generator's part of the schedule, and for a random one the
    /// draws that pick each arrival's shard.
    shard: Option<(crate::config::Shard, Option<Rng>)>,
}

impl Arrivals {
    /// Arrivals for a stage; `stream` keeps stages' random streams apart.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: ShapeKind,
        rate: f64,
        from_rate: f64,
        burstiness: f64,
        duration: Option<Duration>,
        max_requests: Option<u64>,
        seed: u64,
        stream: u64,
    ) -> Arrivals {
        Arrivals {
            kind,
            rate,
            from_rate,
            burstiness,
            duration,
            max_requests,
            rng: Rng::stream(seed, stream),
            varying: None,
            t: 0.0,
            n: 0,
            shard: None,
        }
    }

    /// Keep only `shard`'s part of the schedule. Every shard draws the
    /// whole schedule from the seed and keeps its own arrivals, so the
    /// shards' union is exactly the schedule asked for: an even schedule's
    /// arrivals are taken in turn (shard I keeps arrivals I, I + N, …); a
    /// random one's go to a shard drawn from a seeded stream of their own
    /// (thinning: each part of a Poisson process is again one, at rate / N).
    pub fn shard(mut self, shard: Option<crate::config::Shard>, seed: u64, stream: u64) -> Arrivals {
        self.shard = shard.filter(|s| s.count > 1).map(|s| {
            let pick = (self.kind != ShapeKind::Constant).then(|| Rng::stream(seed, SHARD_STREAMS + stream));
            (s, pick)
        });
        self
    }

    /// Arrivals of an inhomogeneous Poisson process with rate `rate(t)`,
    /// bounded above by `max_rate`, by thinning (Lewis and Shedler).
    pub fn varying(
        rate: RateFn,
        max_rate: f64,
        duration: Option<Duration>,
        max_requests: Option<u64>,
        seed: u64,
        stream: u64,
    ) -> Arrivals {
        let mut a = Arrivals::new(
            ShapeKind::Expression,
            max_rate,
            max_rate,
            1.0,
            duration,
            max_requests,
            seed,
            stream,
        );
        a.varying = Some((rate, max_rate));
        a
    }

    /// Arrivals still to come after those drawn, without drawing them (a
    /// stopped stage's may number 10¹³): exact for a constant rate; for a
    /// random schedule the expected number, the rate integrated over the
    /// time left, rounded. Never more than `requests` allows.
    pub fn left(&self) -> u64 {
        let by_count = self.max_requests.map(|m| m.saturating_sub(self.n));
        let by_time = self.duration.map(|d| self.left_in(d.as_secs_f64()));
        let all = match (by_count, by_time) {
            (Some(c), Some(t)) => c.min(t),
            (c, t) => c.or(t).unwrap_or(0),
        };
        match &self.shard {
            None => all,
            // Arrivals n, n + 1, … taken in turn: those that are this shard's.
            Some((s, None)) => s.owned_in(self.n, all),
            Some((s, Some(_))) => (all as f64 / f64::from(s.count)).round() as u64,
        }
    }

    /// Arrivals still to come before `end` seconds.
    fn left_in(&self, end: f64) -> u64 {
        // The first arrival of a random schedule is at 0; it is still to
        // come until drawn.
        let first = u64::from(self.n == 0);
        let expected = match self.kind {
            ShapeKind::Constant => {
                // Arrival k is at k / rate: count the k < end · rate as the
                // iterator's float comparison would.
                let mut total = (end * self.rate).ceil().max(0.0) as u64;
                while total > 0 && (total - 1) as f64 / self.rate >= end {
                    total -= 1;
                }
                while (total as f64) / self.rate < end {
                    total += 1;
                }
                return total.saturating_sub(self.n);
            }
            ShapeKind::Poisson | ShapeKind::Gamma => first as f64 + (end - self.t).max(0.0) * self.rate,
            _ if self.varying.is_some() => {
                let Some((rate, max)) = &self.varying else { return 0 };
                // The rate integrated by the midpoint rule: a bounded cost,
                // and a rate is never above the bound thinning used.
                let steps = 4096;
                let width = (end - self.t).max(0.0) / f64::from(steps);
                (0..steps)
                    .map(|i| rate(self.t + (f64::from(i) + 0.5) * width).clamp(0.0, *max))
                    .sum::<f64>()
                    * width
            }
            // `t` is the integrated rate Λ reached; Λ(end) is the mean of the two rates times the time.
            ShapeKind::Ramp => (end * (self.from_rate + self.rate) / 2.0 - self.t).max(0.0),
            ShapeKind::Concurrency | ShapeKind::Burst | ShapeKind::Expression | ShapeKind::Trace => 0.0,
        };
        expected.round().min(u64::MAX as f64) as u64
    }

    /// Invert the ramp's integrated rate Λ(t) = r0·t + (r1 − r0)·t²/(2D).
    fn ramp_time(&self, lambda: f64) -> f64 {
        let d = self.duration.map_or(1.0, |d| d.as_secs_f64());
        let (r0, r1) = (self.from_rate, self.rate);
        let a = (r1 - r0) / (2.0 * d);
        if a.abs() < 1e-12 {
            return lambda / r0.max(1e-12);
        }
        // a·t² + r0·t − Λ = 0, the non-negative root.
        (-r0 + (r0 * r0 + 4.0 * a * lambda).max(0.0).sqrt()) / (2.0 * a)
    }
}

/// What [`Arrivals::poll_next`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// The next arrival, from the stage start.
    At(Duration),
    /// No arrival before this time; ask again there.
    NotBefore(Duration),
    /// The schedule is over.
    End,
}

/// Streams of the seeded generator that pick each arrival's shard, one per
/// stage, apart from the schedules' own.
const SHARD_STREAMS: u64 = 1 << 32;

/// A varying rate's candidates are drawn a second of schedule time at a
/// time: where the rate is near zero, thinning may reject candidates for
/// hours of schedule, and the pacer must be able to wait (and notice a
/// stop) between them. A fixed grid keeps the schedule the same whoever
/// draws it.
const THINNING_STEP_S: f64 = 1.0;

impl Arrivals {
    /// The next arrival of this shard's part, or, for a varying rate, the
    /// second of schedule time up to which there is none.
    pub fn poll_next(&mut self) -> Next {
        loop {
            let index = self.n;
            let next = self.draw();
            let Some((shard, pick)) = &mut self.shard else {
                return next;
            };
            if let Next::At(_) = next {
                let owner = match pick {
                    None => index % u64::from(shard.count),
                    Some(rng) => ((rng.f64() * f64::from(shard.count)) as u64).min(u64::from(shard.count) - 1),
                };
                if owner != u64::from(shard.index) {
                    continue;
                }
            }
            return next;
        }
    }

    /// The next arrival of the whole schedule.
    fn draw(&mut self) -> Next {
        if self.max_requests.is_some_and(|m| self.n >= m) {
            return Next::End;
        }
        let at = match self.kind {
            ShapeKind::Constant => self.n as f64 / self.rate,
            ShapeKind::Poisson => {
                if self.n > 0 {
                    self.t += self.rng.exponential(1.0 / self.rate);
                }
                self.t
            }
            ShapeKind::Gamma => {
                if self.n > 0 {
                    let k = self.burstiness;
                    self.t += self.rng.gamma(k, 1.0 / (self.rate * k));
                }
                self.t
            }
            _ if self.varying.is_some() => {
                let Some((rate, max)) = self.varying.clone() else {
                    return Next::End;
                };
                let end = self.duration.map_or(f64::INFINITY, |d| d.as_secs_f64());
                let step_end = ((self.t / THINNING_STEP_S).floor() + 1.0) * THINNING_STEP_S;
                loop {
                    let candidate = self.t + self.rng.exponential(1.0 / max);
                    if candidate >= step_end.min(end) || !candidate.is_finite() {
                        // Exponential gaps forget: drawing on from the step's
                        // end is the same process.
                        self.t = step_end;
                        return if step_end >= end {
                            Next::End
                        } else {
                            Next::NotBefore(Duration::from_secs_f64(step_end))
                        };
                    }
                    self.t = candidate;
                    if self.rng.f64() * max <= rate(self.t).max(0.0) {
                        break self.t;
                    }
                }
            }
            ShapeKind::Ramp => {
                self.t += self.rng.exponential(1.0);
                self.ramp_time(self.t)
            }
            ShapeKind::Concurrency | ShapeKind::Burst | ShapeKind::Expression | ShapeKind::Trace => return Next::End,
        };
        if self.duration.is_some_and(|d| at >= d.as_secs_f64()) || !at.is_finite() {
            return Next::End;
        }
        self.n += 1;
        Next::At(Duration::from_secs_f64(at))
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    /// The next arrival, however far the schedule has to be drawn to it.
    fn next(&mut self) -> Option<Duration> {
        loop {
            match self.poll_next() {
                Next::At(at) => return Some(at),
                Next::NotBefore(_) => {}
                Next::End => return None,
            }
        }
    }
}

/// The arrivals of an open-loop stage.
pub fn stage_arrivals(stage: &crate::config::Stage, seed: u64, index: usize) -> Arrivals {
    let duration = stage.duration_s.map(Duration::from_secs_f64);
    let (seed, stream) = (seed, index as u64);
    let rate = stage.rate.unwrap_or(1.0);
    match stage.shape {
        ShapeKind::Ramp if stage.ramp == RampKind::Exponential => {
            let (r0, r1) = (stage.from_rate.unwrap_or(1.0), rate);
            let d = stage.duration_s.unwrap_or(1.0);
            let f: RateFn = std::sync::Arc::new(move |t| r0 * (r1 / r0).powf(t / d));
            Arrivals::varying(f, r0.max(r1), duration, stage.requests, seed, stream)
        }
        ShapeKind::Burst => {
            let (base, burst) = (rate, stage.burst_rate.unwrap_or(rate));
            let (at, len, period) = (stage.burst_at_s, stage.burst_s.unwrap_or(0.0), stage.period_s);
            let f: RateFn = std::sync::Arc::new(move |t| {
                let into = t - at;
                let in_burst = into >= 0.0 && period.map_or(into, |p| into.rem_euclid(p)) < len;
                if in_burst { burst } else { base }
            });
            Arrivals::varying(f, base.max(burst), duration, stage.requests, seed, stream)
        }
        ShapeKind::Expression => {
            let expr = stage
                .rate_expr
                .as_deref()
                .and_then(|e| super::expr::Expr::parse(e).ok());
            let expr = expr.unwrap_or(super::expr::Expr::Num(0.0));
            let d = stage.duration_s.unwrap_or(1.0);
            // Bound the rate by sampling it finely, with a margin: thinning
            // needs an upper bound, and a smooth expression does not peak
            // much between 4,096 samples.
            let max = (0..=4096)
                .map(|i| expr.eval(d * i as f64 / 4096.0))
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            let f: RateFn = std::sync::Arc::new(move |t| expr.eval(t));
            Arrivals::varying(f, (max * 1.1).max(1e-9), duration, stage.requests, seed, stream)
        }
        kind => Arrivals::new(
            kind,
            rate,
            stage.from_rate.unwrap_or(1.0),
            stage.burstiness.unwrap_or(1.0),
            duration,
            stage.requests,
            seed,
            stream,
        ),
    }
}

/// Users a closed-loop stage wants at `t` seconds (a concurrency ramp moves
/// from `from_concurrency` to `concurrency`).
pub fn users_at(stage: &crate::config::Stage, t: f64) -> usize {
    let to = stage.concurrency.unwrap_or(1) as f64;
    let Some(from) = stage.from_concurrency.filter(|_| stage.shape == ShapeKind::Ramp) else {
        return to as usize;
    };
    let from = from as f64;
    let x = (t / stage.duration_s.unwrap_or(1.0)).clamp(0.0, 1.0);
    let n = match stage.ramp {
        RampKind::Linear => from + (to - from) * x,
        RampKind::Exponential => from * (to / from).powf(x),
    };
    n.round().max(1.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(kind: ShapeKind, rate: f64, from: f64, k: f64, secs: f64, seed: u64) -> Vec<f64> {
        Arrivals::new(kind, rate, from, k, Some(Duration::from_secs_f64(secs)), None, seed, 0)
            .map(|d| d.as_secs_f64())
            .collect()
    }

    #[test]
    fn the_shards_of_a_schedule_are_disjoint_and_their_union_is_it() {
        use crate::config::Shard;
        let all = |kind: ShapeKind| Arrivals::new(kind, 300.0, 300.0, 1.0, Some(Duration::from_secs(4)), None, 9, 2);
        for kind in [ShapeKind::Constant, ShapeKind::Poisson, ShapeKind::Gamma] {
            let whole: Vec<Duration> = all(kind).collect();
            let parts: Vec<Vec<Duration>> = (0..3)
                .map(|index| all(kind).shard(Some(Shard { index, count: 3 }), 9, 2).collect())
                .collect();
            let mut union: Vec<Duration> = parts.iter().flatten().copied().collect();
            union.sort();
            assert_eq!(union, whole, "{kind:?}");
            for part in &parts {
                let share = part.len() as f64 / whole.len() as f64;
                assert!(
                    (share - 1.0 / 3.0).abs() < 0.05,
                    "{kind:?}: a shard has {share} of the arrivals"
                );
            }
            if kind == ShapeKind::Constant {
                // In turn: shard 1 has arrivals 1, 4, 7, …
                assert_eq!(parts[1][..3], [whole[1], whole[4], whole[7]]);
            }
        }
        // What is left is this shard's part of it.
        let mut a = all(ShapeKind::Constant).shard(Some(Shard { index: 2, count: 3 }), 9, 2);
        assert_eq!(a.left(), 400);
        a.next();
        assert_eq!(a.left(), 399);
        assert_eq!(Shard { index: 1, count: 2 }.owned_in(0, 5), 2);
        assert_eq!(Shard { index: 0, count: 2 }.owned_in(3, 4), 2);
        assert_eq!(Shard { index: 0, count: 4 }.owned_in(1, 2), 0);
    }

    #[test]
    fn constant_is_evenly_spaced() {
        let o = offsets(ShapeKind::Constant, 100.0, 0.0, 1.0, 2.0, 0);
        assert_eq!(o.len(), 200);
        assert!(o.windows(2).all(|w| ((w[1] - w[0]) - 0.01).abs() < 1e-9));
    }

    #[test]
    fn poisson_and_gamma_have_the_asked_rate_and_dispersion() {
        for (kind, k, cv) in [
            (ShapeKind::Poisson, 1.0, 1.0),
            (ShapeKind::Gamma, 0.25, 2.0),
            (ShapeKind::Gamma, 4.0, 0.5),
        ] {
            let o = offsets(kind, 1000.0, 0.0, k, 50.0, 3);
            let gaps: Vec<f64> = o.windows(2).map(|w| w[1] - w[0]).collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
            assert!((mean * 1000.0 - 1.0).abs() < 0.03, "{kind:?} mean gap {mean}");
            assert!((sd / mean - cv).abs() < 0.05 * cv, "{kind:?} cv {}", sd / mean);
        }
    }

    #[test]
    fn ramps_move_the_rate_linearly() {
        let o = offsets(ShapeKind::Ramp, 400.0, 100.0, 1.0, 20.0, 5);
        let first = o.iter().filter(|&&t| t < 2.0).count() as f64 / 2.0;
        let last = o.iter().filter(|&&t| t >= 18.0).count() as f64 / 2.0;
        // Expected: ~115/s over the first 2 s and ~385/s over the last 2 s.
        assert!((first - 115.0).abs() < 25.0, "{first}");
        assert!((last - 385.0).abs() < 45.0, "{last}");
        assert!((o.len() as f64 - 5000.0).abs() < 250.0, "{}", o.len());
    }

    #[test]
    fn thinning_follows_a_varying_rate() {
        // 100/s for the first 5 s, 400/s for the next 5 s.
        let rate: RateFn = std::sync::Arc::new(|t| if t < 5.0 { 100.0 } else { 400.0 });
        let o: Vec<f64> = Arrivals::varying(rate, 400.0, Some(Duration::from_secs(10)), None, 1, 0)
            .map(|d| d.as_secs_f64())
            .collect();
        let first = o.iter().filter(|&&t| t < 5.0).count() as f64;
        let second = o.len() as f64 - first;
        assert!((first - 500.0).abs() < 4.0 * 500f64.sqrt(), "{first}");
        assert!((second - 2000.0).abs() < 4.0 * 2000f64.sqrt(), "{second}");
    }

    #[test]
    fn the_arrivals_left_are_counted_without_drawing_them() {
        let stage = |shape: &str| -> crate::config::Stage {
            serde_yaml_ng::from_str(&format!(
                "{{shape: {shape}, rate: 50, from_rate: 10, burst_rate: 200, burst_s: 2, \
                 rate_expr: '20 + 10*sin(t)', duration_s: 40}}"
            ))
            .unwrap()
        };
        // Exact for a constant rate, wherever the count starts, with a
        // duration, a request cap or both.
        for (rate, secs, requests) in [
            (50.0, 40.0, None),
            (3.0, 1.0, None),
            (7.0, 10.0, Some(33)),
            (0.3, 7.0, None),
        ] {
            let fresh = || {
                Arrivals::new(
                    ShapeKind::Constant,
                    rate,
                    rate,
                    1.0,
                    Some(Duration::from_secs_f64(secs)),
                    requests,
                    1,
                    0,
                )
            };
            let total = fresh().count() as u64;
            for drawn in [0, 1, total / 2, total] {
                let mut a = fresh();
                a.by_ref().take(drawn as usize).for_each(drop);
                assert_eq!(a.left(), total - drawn, "rate {rate} for {secs} s, {drawn} drawn");
            }
        }
        // The expected count for a random schedule: within a few standard
        // deviations of what drawing gives.
        for shape in ["poisson", "gamma", "ramp", "burst", "expression"] {
            let st = stage(shape);
            let drawn = stage_arrivals(&st, 3, 0).count() as f64;
            let mut a = stage_arrivals(&st, 3, 0);
            let expected = a.left() as f64;
            assert!(
                (expected - drawn).abs() < 4.0 * drawn.sqrt(),
                "{shape}: {expected} vs {drawn}"
            );
            a.by_ref().take(100).for_each(drop);
            let rest = a.left() as f64;
            assert!(
                (rest - (drawn - 100.0)).abs() < 4.0 * drawn.sqrt(),
                "{shape}: {rest} vs {}",
                drawn - 100.0
            );
        }
        // Ten trillion left is counted as quickly as ten.
        let huge = Arrivals::new(
            ShapeKind::Constant,
            1e6,
            1e6,
            1.0,
            Some(Duration::from_secs_f64(1e7)),
            None,
            1,
            0,
        );
        assert_eq!(huge.left(), 10_000_000_000_000);
    }

    #[test]
    fn a_varying_rate_is_drawn_a_second_of_schedule_at_a_time() {
        // A peak at the start, then (almost) nothing for a long stage.
        let st: crate::config::Stage =
            serde_yaml_ng::from_str("{shape: expression, rate_expr: '1000*exp(-t*t)', duration_s: 100000}").unwrap();
        let mut polled = stage_arrivals(&st, 5, 0);
        let (mut arrivals, mut waits) = (Vec::new(), Vec::new());
        while waits.len() < 10 {
            match polled.poll_next() {
                Next::At(at) => arrivals.push(at),
                Next::NotBefore(at) => waits.push(at),
                Next::End => break,
            }
        }
        // The peak's arrivals, then a wait at each whole second.
        assert!(
            arrivals.len() > 500 && arrivals.iter().all(|a| a.as_secs_f64() < 10.0),
            "{}",
            arrivals.len()
        );
        let seconds: Vec<f64> = waits.iter().map(Duration::as_secs_f64).collect();
        assert!(seconds.windows(2).all(|w| w[1] == w[0] + 1.0), "{seconds:?}");
        // Drawn through the waits, the schedule is the same.
        let drawn: Vec<Duration> = stage_arrivals(&st, 5, 0).take(arrivals.len()).collect();
        assert_eq!(drawn, arrivals);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(
            offsets(ShapeKind::Poisson, 50.0, 0.0, 1.0, 5.0, 9),
            offsets(ShapeKind::Poisson, 50.0, 0.0, 1.0, 5.0, 9)
        );
        assert_ne!(
            offsets(ShapeKind::Poisson, 50.0, 0.0, 1.0, 5.0, 9),
            offsets(ShapeKind::Poisson, 50.0, 0.0, 1.0, 5.0, 10)
        );
    }
}
