//! Distributions from HDR histograms, with the percentiles the user asked for.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant digits kept by every latency histogram: each recorded value
/// is within 0.1 % of the true one (at 1 µs resolution).
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// What `summary.json` says about the precision of its distributions.
pub const PRECISION: &str = "HDR histograms at 1 µs resolution with 3 significant digits: \
                             every percentile is within 0.1 % of the exact sample value";

/// The default percentiles: p50, p90, p95, p99, p99.9.
pub const DEFAULT_PERCENTILES: &[f64] = &[50.0, 90.0, 95.0, 99.0, 99.9];

/// Quantiles of the `cdf` every distribution carries for plots.
const CDF_POINTS: &[f64] = &[
    0.0, 1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0,
    90.0, 92.5, 95.0, 97.5, 99.0, 99.5, 99.9, 100.0,
];

/// Summary of one quantity's samples (milliseconds, or tokens for counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// `(percentile, value)` points for plotting the distribution.
    #[serde(default)]
    pub cdf: Vec<(f64, f64)>,
    /// The configured percentiles, keyed `p50`, `p99.9`, ….
    #[serde(flatten)]
    pub percentiles: BTreeMap<String, f64>,
}

impl Dist {
    /// The value at percentile `p` (e.g. `99.9`), if it was computed.
    pub fn p(&self, p: f64) -> Option<f64> {
        self.percentiles.get(&percentile_key(p)).copied()
    }
}

/// `p50`, `p99.9`: the key of percentile `p`.
pub fn percentile_key(p: f64) -> String {
    format!("p{p}")
}

/// A histogram of non-negative samples in some unit (ms or tokens).
#[derive(Clone)]
pub struct Hist {
    h: Histogram<u64>,
    /// Histogram units per unit of the samples: 1000 for ms kept in µs.
    scale: f64,
}

impl Hist {
    /// Milliseconds, kept at 1 µs resolution.
    pub fn ms() -> Hist {
        Hist::with_scale(1000.0)
    }

    /// Whole counts (tokens).
    pub fn count() -> Hist {
        Hist::with_scale(1.0)
    }

    fn with_scale(scale: f64) -> Hist {
        Hist {
            h: Histogram::new(SIGNIFICANT_DIGITS).unwrap_or_else(|_| unreachable!("3 significant digits are valid")),
            scale,
        }
    }

    /// Add one sample.
    pub fn record(&mut self, v: f64) {
        self.record_n(v, 1);
    }

    /// Add `n` samples of `v`. Negative or non-finite values (a clock that
    /// never goes backwards makes them impossible) are ignored.
    pub fn record_n(&mut self, v: f64, n: u64) {
        if v.is_finite() && v >= 0.0 && n > 0 {
            let _ = self.h.record_n((v * self.scale).round() as u64, n);
        }
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    /// True without samples.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// The value at percentile `p` (0–100).
    pub fn value_at(&self, p: f64) -> Option<f64> {
        (!self.h.is_empty()).then(|| self.h.value_at_quantile(p / 100.0) as f64 / self.scale)
    }

    /// The distribution with `percentiles`, or none without samples.
    pub fn dist(&self, percentiles: &[f64]) -> Option<Dist> {
        let h = &self.h;
        if h.is_empty() {
            return None;
        }
        let at = |p: f64| h.value_at_quantile(p / 100.0) as f64 / self.scale;
        Some(Dist {
            count: h.len(),
            mean: h.mean() / self.scale,
            min: h.min() as f64 / self.scale,
            max: h.max() as f64 / self.scale,
            stddev: h.stdev() / self.scale,
            cdf: CDF_POINTS.iter().map(|&p| (p, at(p))).collect(),
            percentiles: percentiles.iter().map(|&p| (percentile_key(p), at(p))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_the_stated_precision() {
        let mut h = Hist::ms();
        for i in 1..=10_000 {
            h.record(f64::from(i) * 0.1); // 0.1 .. 1000 ms
        }
        let d = h.dist(&[50.0, 99.0, 99.9]).unwrap();
        assert_eq!(d.count, 10_000);
        for (p, exact) in [(50.0, 500.0), (99.0, 990.0), (99.9, 999.0)] {
            let got = d.p(p).unwrap();
            assert!((got - exact).abs() / exact <= 0.001, "p{p}: {got} vs {exact}");
        }
        assert!((d.mean - 500.05).abs() < 0.5, "{}", d.mean);
        assert_eq!(d.min, 0.1);
        assert!((d.max - 1000.0).abs() <= 1.0);
        assert!(d.p(95.0).is_none(), "only the asked percentiles");
        assert_eq!(percentile_key(99.9), "p99.9");
    }

    #[test]
    fn empty_and_bad_samples() {
        let mut h = Hist::ms();
        h.record(f64::NAN);
        h.record(-1.0);
        assert!(h.dist(DEFAULT_PERCENTILES).is_none());
        h.record_n(2.0, 3);
        assert_eq!(h.dist(DEFAULT_PERCENTILES).unwrap().count, 3);
    }
}
