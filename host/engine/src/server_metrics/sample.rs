//! One scrape of a server's exposition, reduced to what explains the
//! client's figures, under the names vLLM, SGLang, TGI, Triton, JetStream,
//! kube-state-metrics and Barrage's simulator give it: gauges (replicas,
//! queue, running, KV cache), counters (requests, prefix-cache hits) and
//! the server's own latency histograms (TTFT, inter-token).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::exposition::Line;

/// One scrape's figures, each summed over its series (replicas, label sets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSample {
    /// When the answer came, seconds from the run's start.
    pub t_s: f64,
    /// Replicas serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<f64>,
    /// Requests waiting in the server's queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<f64>,
    /// Requests running (in the batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<f64>,
    /// KV-cache use, 0–1 (the mean over series).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<f64>,
    /// Requests the server has completed (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    /// Prefix-cache hits and lookups (counters, in the server's unit: tokens for vLLM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hits: Option<f64>,
    /// See `prefix_cache_hits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_queries: Option<f64>,
    /// The server's time-to-first-token histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<Buckets>,
    /// The server's inter-token (or time-per-output-token) histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl: Option<Buckets>,
    /// The values of the configured PromQL queries not named for a figure above.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<String, f64>,
}

/// A cumulative histogram as scraped, summed over its series: the count at
/// or below each finite bound (seconds), and the count of all (`+Inf`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    /// Upper bounds, seconds, ascending.
    pub le_s: Vec<f64>,
    /// Observations at or below each bound.
    pub counts: Vec<f64>,
    /// All observations.
    pub count: f64,
}

/// Names by what they mean; the first name present is taken.
const REPLICAS: &[&str] = &["barrage_sim:replicas", "kube_deployment_status_replicas_ready"];
const WAITING: &[&str] = &[
    "vllm:num_requests_waiting",
    "sglang:num_queue_reqs",
    "tgi_queue_size",
    "nv_inference_pending_request_count",
    "jetstream_prefill_backlog_size",
];
const RUNNING: &[&str] = &[
    "vllm:num_requests_running",
    "sglang:num_running_reqs",
    "tgi_batch_current_size",
];
const KV_CACHE: &[&str] = &[
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
    // JetStream's, named for the Gateway API inference extension.
    "kv_cache_utilization_perc",
];
const REQUESTS: &[&str] = &[
    "vllm:request_success_total",
    "sglang:num_requests_total",
    "tgi_request_success",
    "nv_inference_request_success",
    "jetstream_request_success_count_total",
];
const PREFIX_HITS: &[&str] = &["vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"];
const PREFIX_QUERIES: &[&str] = &["vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"];
/// Histograms, with the factor that makes their bounds seconds.
const TTFT: &[(&str, f64)] = &[
    ("vllm:time_to_first_token_seconds", 1.0),
    ("sglang:time_to_first_token_seconds", 1.0),
    ("jetstream_time_to_first_token", 1.0),
    ("nv_inference_first_response_histogram_ms", 0.001),
];
const ITL: &[(&str, f64)] = &[
    ("vllm:inter_token_latency_seconds", 1.0),
    ("vllm:time_per_output_token_seconds", 1.0),
    ("sglang:inter_token_latency_seconds", 1.0),
    ("sglang:time_per_output_token_seconds", 1.0),
    ("jetstream_time_per_output_token", 1.0),
];

/// What an exposition `body` says, or why it is not one.
pub fn sample(body: &str, t_s: f64) -> Result<ServerSample, String> {
    let lines = crate::exposition::lines(body)?;
    let values = |names: &[&str]| {
        names.iter().find_map(|name| {
            let found: Vec<f64> = lines.iter().filter(|l| l.name == *name).map(|l| l.value).collect();
            (!found.is_empty()).then_some(found)
        })
    };
    let sum = |names: &[&str]| values(names).map(|v| v.iter().sum());
    Ok(ServerSample {
        t_s,
        replicas: sum(REPLICAS),
        waiting: sum(WAITING),
        running: sum(RUNNING),
        kv_cache_usage: values(KV_CACHE).map(|v| v.iter().sum::<f64>() / v.len() as f64),
        requests: sum(REQUESTS),
        prefix_cache_hits: sum(PREFIX_HITS),
        prefix_cache_queries: sum(PREFIX_QUERIES),
        ttft: histogram(&lines, TTFT)?,
        itl: histogram(&lines, ITL)?,
        queries: BTreeMap::new(),
    })
}

/// The first of `names` whose `_bucket` series are present, summed by bound.
fn histogram(lines: &[Line<'_>], names: &[(&str, f64)]) -> Result<Option<Buckets>, String> {
    for (name, to_seconds) in names {
        let bucket = format!("{name}_bucket");
        let mut by_bound: Vec<(f64, f64)> = Vec::new();
        let mut count = 0.0;
        for line in lines.iter().filter(|l| l.name == bucket) {
            let pairs = line.label_pairs().map_err(|e| format!("{bucket}: {e}"))?;
            let le = pairs
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or_else(|| format!("{bucket}: a bucket without `le`"))?;
            let bound: f64 = match le.1.as_str() {
                "+Inf" | "Inf" => f64::INFINITY,
                v => v.parse().map_err(|_| format!("{bucket}: le=\"{v}\" is not a number"))?,
            };
            if bound.is_infinite() {
                count += line.value;
                continue;
            }
            let bound = bound * to_seconds;
            match by_bound
                .iter_mut()
                .find(|(b, _)| (*b - bound).abs() <= bound.abs() * 1e-12)
            {
                Some((_, c)) => *c += line.value,
                None => by_bound.push((bound, line.value)),
            }
        }
        if by_bound.is_empty() && count == 0.0 {
            continue;
        }
        by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
        return Ok(Some(Buckets {
            le_s: by_bound.iter().map(|b| b.0).collect(),
            counts: by_bound.iter().map(|b| b.1).collect(),
            count,
        }));
    }
    Ok(None)
}

impl Buckets {
    /// What was observed between `earlier` and `self` (a later scrape of
    /// the same histogram); none if the bounds differ or a count went down
    /// (the server restarted).
    pub fn since(&self, earlier: &Buckets) -> Option<Buckets> {
        if self.le_s != earlier.le_s || self.count < earlier.count {
            return None;
        }
        let counts: Vec<f64> = self.counts.iter().zip(&earlier.counts).map(|(a, b)| a - b).collect();
        if counts.iter().any(|c| *c < 0.0) {
            return None;
        }
        Some(Buckets {
            le_s: self.le_s.clone(),
            counts,
            count: self.count - earlier.count,
        })
    }

    /// The `q` quantile (0–1), seconds, as Prometheus's
    /// `histogram_quantile` estimates it: linear within the bucket the rank
    /// falls in, the highest finite bound when it falls in `+Inf`; none
    /// without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        let (mut lower, mut below) = (0.0, 0.0);
        for (&bound, &count) in self.le_s.iter().zip(&self.counts) {
            if count >= rank {
                if count == below {
                    return Some(bound);
                }
                return Some(lower + (bound - lower) * (rank - below) / (count - below));
            }
            (lower, below) = (bound, count);
        }
        self.le_s.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_summed_over_series_and_scaled_to_seconds() {
        let body = "nv_inference_first_response_histogram_ms_bucket{model=\"a\",le=\"100\"} 2\n\
                    nv_inference_first_response_histogram_ms_bucket{model=\"b\",le=\"100\"} 3\n\
                    nv_inference_first_response_histogram_ms_bucket{model=\"a\",le=\"500\"} 4\n\
                    nv_inference_first_response_histogram_ms_bucket{model=\"b\",le=\"500\"} 5\n\
                    nv_inference_first_response_histogram_ms_bucket{model=\"a\",le=\"+Inf\"} 4\n\
                    nv_inference_first_response_histogram_ms_bucket{model=\"b\",le=\"+Inf\"} 6\n\
                    nv_inference_request_success{model=\"a\"} 4\nnv_inference_request_success{model=\"b\"} 6\n";
        let s = sample(body, 0.0).unwrap();
        assert_eq!(
            s.ttft,
            Some(Buckets {
                le_s: vec![0.1, 0.5],
                counts: vec![5.0, 9.0],
                count: 10.0
            })
        );
        assert_eq!(s.requests, Some(10.0));
        assert!(
            sample("vllm:time_to_first_token_seconds_bucket{x=\"1\"} 1\n", 0.0)
                .unwrap_err()
                .contains("without `le`")
        );
    }

    #[test]
    fn quantiles_of_a_window_follow_prometheus_interpolation() {
        let at = |counts: Vec<f64>, count: f64| Buckets {
            le_s: vec![0.1, 0.2, 0.4],
            counts,
            count,
        };
        let window = at(vec![10.0, 30.0, 40.0], 40.0)
            .since(&at(vec![10.0, 10.0, 20.0], 20.0))
            .unwrap();
        assert_eq!(window.counts, [0.0, 20.0, 20.0]);
        // Rank 10 of 20 falls halfway into (0.1, 0.2]; rank 19.8 near the top.
        assert!((window.quantile(0.5).unwrap() - 0.15).abs() < 1e-12);
        assert!((window.quantile(0.99).unwrap() - 0.199).abs() < 1e-12);
        // Past the last finite bound: that bound, as histogram_quantile says.
        assert_eq!(at(vec![0.0, 0.0, 1.0], 4.0).quantile(0.9), Some(0.4));
        assert_eq!(at(vec![0.0; 3], 0.0).quantile(0.5), None);
        assert!(
            at(vec![0.0; 3], 1.0).since(&at(vec![0.0; 3], 2.0)).is_none(),
            "a restart"
        );
    }
}
