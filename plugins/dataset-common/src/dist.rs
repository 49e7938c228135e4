//! Length distributions for prompts, outputs, turns and think times.
//!
//! In a configuration a length is a number (fixed) or a table naming a
//! distribution:
//!
//! ```yaml
//! prompt_tokens: 512
//! prompt_tokens: {dist: uniform, min: 100, max: 1000}
//! prompt_tokens: {dist: normal, mean: 512, stddev: 64}
//! prompt_tokens: {dist: lognormal, mean: 512, stddev: 300}
//! prompt_tokens: {dist: empirical, values: [128, 512, 2048], weights: [0.5, 0.3, 0.2]}
//! ```
//!
//! Every draw is clamped to `[min, max]` when given (normal and lognormal)
//! and to at least 1.

use barrage_sdk::dataset::random;
use serde::{Deserialize, Deserializer};

/// A distribution of lengths.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "dist", rename_all = "lowercase", deny_unknown_fields)]
pub enum Dist {
    /// Always `value`.
    Fixed {
        /// The length.
        value: f64,
    },
    /// Uniform integers from `min` to `max` inclusive.
    Uniform {
        /// Smallest.
        min: f64,
        /// Largest.
        max: f64,
    },
    /// Normal, rounded.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
        /// Clamp below.
        #[serde(default)]
        min: Option<f64>,
        /// Clamp above.
        #[serde(default)]
        max: Option<f64>,
    },
    /// Log-normal with this mean and standard deviation of the lengths
    /// themselves (not of their logarithm), rounded.
    Lognormal {
        /// Mean length.
        mean: f64,
        /// Standard deviation of the lengths.
        stddev: f64,
        /// Clamp below.
        #[serde(default)]
        min: Option<f64>,
        /// Clamp above.
        #[serde(default)]
        max: Option<f64>,
    },
    /// One of `values`, with `weights` (equal when left out).
    Empirical {
        /// The lengths.
        values: Vec<f64>,
        /// Their relative weights.
        #[serde(default)]
        weights: Option<Vec<f64>>,
    },
}

/// A length: a fixed number or a [`Dist`].
#[derive(Debug, Clone, PartialEq)]
pub struct Length(pub Dist);

impl Length {
    /// A fixed length.
    pub fn fixed(value: f64) -> Length {
        Length(Dist::Fixed { value })
    }

    /// Check the parameters; the message says which and why.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        let bad = |m: String| Err(format!("{name}: {m}"));
        match &self.0 {
            Dist::Fixed { value } if !(*value >= 0.0 && value.is_finite()) => {
                bad(format!("{value} is not a length ≥ 0"))
            }
            Dist::Uniform { min, max } if !(min <= max && *min >= 0.0) => {
                bad(format!("uniform needs 0 ≤ min ≤ max, got min {min}, max {max}"))
            }
            Dist::Normal { mean, stddev, .. } | Dist::Lognormal { mean, stddev, .. }
                if !(*mean > 0.0 && *stddev >= 0.0 && mean.is_finite() && stddev.is_finite()) =>
            {
                bad(format!(
                    "needs mean > 0 and stddev ≥ 0, got mean {mean}, stddev {stddev}"
                ))
            }
            Dist::Empirical { values, weights } => {
                if values.is_empty() {
                    return bad("empirical needs at least one value".into());
                }
                if let Some(w) = weights
                    && (w.len() != values.len()
                        || w.iter().any(|w| w.is_nan() || *w < 0.0)
                        || w.iter().sum::<f64>() <= 0.0)
                {
                    return bad("empirical weights must be one non-negative number per value, not all zero".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Draw one length (at least `floor`).
    pub fn sample_at_least(&self, floor: f64) -> f64 {
        let clamp =
            |v: f64, min: Option<f64>, max: Option<f64>| v.max(min.unwrap_or(f64::MIN)).min(max.unwrap_or(f64::MAX));
        let v = match &self.0 {
            Dist::Fixed { value } => *value,
            Dist::Uniform { min, max } => {
                let (lo, hi) = (min.round(), max.round());
                lo + ((random::next_f64() * (hi - lo + 1.0)).floor()).min(hi - lo)
            }
            Dist::Normal { mean, stddev, min, max } => clamp((mean + stddev * std_normal()).round(), *min, *max),
            Dist::Lognormal { mean, stddev, min, max } => {
                let s2 = (1.0 + (stddev / mean).powi(2)).ln();
                let mu = mean.ln() - s2 / 2.0;
                clamp((mu + s2.sqrt() * std_normal()).exp().round(), *min, *max)
            }
            Dist::Empirical { values, weights } => {
                let total: f64 = weights.as_ref().map_or(values.len() as f64, |w| w.iter().sum());
                let mut pick = random::next_f64() * total;
                let mut chosen = values[values.len() - 1];
                for (i, v) in values.iter().enumerate() {
                    let w = weights.as_ref().map_or(1.0, |w| w[i]);
                    if pick < w {
                        chosen = *v;
                        break;
                    }
                    pick -= w;
                }
                chosen
            }
        };
        v.max(floor)
    }

    /// Draw a token count (at least 1).
    pub fn tokens(&self) -> u32 {
        self.sample_at_least(1.0).round().min(u32::MAX as f64) as u32
    }
}

/// A standard normal draw (Box–Muller).
fn std_normal() -> f64 {
    let u1 = random::next_f64().max(f64::MIN_POSITIVE);
    let u2 = random::next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Length, D::Error> {
        // A number or a table; the table's own errors (unknown `dist`,
        // missing `mean`) are kept rather than serde's "no variant matched".
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::Number(n) => Ok(Length::fixed(n.as_f64().unwrap_or(0.0))),
            serde_json::Value::Object(_) => serde_json::from_value(v).map(Length).map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected a number or a table like {{dist: normal, mean: 512, stddev: 64}}, got {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Length {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn forms_and_errors() {
        assert_eq!(parse("12"), Length::fixed(12.0));
        assert!(matches!(
            parse(r#"{"dist":"uniform","min":1,"max":3}"#).0,
            Dist::Uniform { .. }
        ));
        let e = serde_json::from_str::<Length>(r#"{"dist":"zipf"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("zipf") && e.contains("uniform"), "{e}");
        let e = serde_json::from_str::<Length>(r#"{"dist":"normal","mean":3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("stddev"), "{e}");
        assert!(parse(r#"{"dist":"uniform","min":5,"max":3}"#).validate("x").is_err());
        assert!(
            parse(r#"{"dist":"empirical","values":[1,2],"weights":[1]}"#)
                .validate("x")
                .is_err()
        );
    }

    #[test]
    fn draws_follow_the_distribution() {
        let n = 20_000;
        let mean = |l: &Length| (0..n).map(|_| l.tokens() as f64).sum::<f64>() / n as f64;
        let u = parse(r#"{"dist":"uniform","min":10,"max":20}"#);
        let draws: Vec<u32> = (0..n).map(|_| u.tokens()).collect();
        assert_eq!(*draws.iter().min().unwrap(), 10);
        assert_eq!(*draws.iter().max().unwrap(), 20);
        assert!((mean(&parse(r#"{"dist":"normal","mean":500,"stddev":50}"#)) - 500.0).abs() < 3.0);
        let ln = parse(r#"{"dist":"lognormal","mean":400,"stddev":200}"#);
        let xs: Vec<f64> = (0..n).map(|_| ln.tokens() as f64).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64).sqrt();
        assert!(
            (m - 400.0).abs() < 8.0 && (sd - 200.0).abs() < 12.0,
            "lognormal mean {m} sd {sd}"
        );
        let e = parse(r#"{"dist":"empirical","values":[1,100],"weights":[3,1]}"#);
        let ones = (0..n).filter(|_| e.tokens() == 1).count() as f64 / n as f64;
        assert!((ones - 0.75).abs() < 0.02, "{ones}");
    }
}
