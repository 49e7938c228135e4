//! The few figures that stand for a whole run, for a caller with little room
//! to read them from: a Kubernetes termination message holds 4 KiB, and it is
//! how the operator learns what a merged run measured.

use serde::{Deserialize, Serialize};

/// What `--status-file` writes: one line of JSON. The names are camelCase
/// because they land in a Kubernetes status as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Headline {
    /// Completed requests per second over the measured windows.
    pub achieved_rate: f64,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// failed / (sent − cancelled), as the `error_rate` threshold counts it.
    pub error_rate: f64,
    pub output_tokens_per_s: f64,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// None when the run had no thresholds.
    pub thresholds_passed: Option<bool>,
    /// The failed thresholds as written, as many as fit (see [`MAX_BYTES`]).
    #[serde(default)]
    pub failed_thresholds: Vec<String>,
    /// The run ended as planned, every shard present.
    pub complete: bool,
    #[serde(default)]
    pub missing_shards: Vec<u32>,
    pub shard_start_spread_ms: Option<f64>,
    /// A sweep's knee (requests/s) and its standard error; none for a run,
    /// or when no rate was past the knee.
    #[serde(default)]
    pub knee_rate: Option<f64>,
    #[serde(default)]
    pub knee_uncertainty: Option<f64>,
}

/// A termination message's limit.
pub const MAX_BYTES: usize = 4096;

impl Headline {
    /// The JSON line, dropping failed thresholds from the end until it fits
    /// in [`MAX_BYTES`] (the verdict itself always stays).
    pub fn to_line(&self) -> String {
        let mut h = self.clone();
        loop {
            let line = serde_json::to_string(&h).unwrap_or_default();
            if line.len() <= MAX_BYTES || h.failed_thresholds.pop().is_none() {
                return line;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_of_failed_thresholds_is_cut_to_fit_a_termination_message() {
        let h = Headline {
            thresholds_passed: Some(false),
            failed_thresholds: (0..500).map(|i| format!("stage {i}: ttft p99 < 100ms")).collect(),
            ..Headline::default()
        };
        let line = h.to_line();
        assert!(line.len() <= MAX_BYTES);
        let back: Headline = serde_json::from_str(&line).unwrap();
        assert_eq!(back.thresholds_passed, Some(false));
        assert!(!back.failed_thresholds.is_empty() && back.failed_thresholds.len() < 500);
        assert_eq!(back.failed_thresholds[0], h.failed_thresholds[0]);
    }
}
