//! The server's figures over one stage's window: its gauges' mean and
//! most, what its counters and histograms gained.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Buckets, ServerSample, ServerSeries};

/// The server's view of one stage (`server.waiting.max` and
/// `server.ttft_ms.p99` in a threshold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStats {
    /// Samples in the window.
    pub samples: u64,
    /// Replicas.
    pub replicas: Option<MeanMax>,
    /// Requests waiting in the server's queue.
    pub waiting: Option<MeanMax>,
    /// Requests running.
    pub running: Option<MeanMax>,
    /// KV-cache use, 0–1.
    pub kv_cache_usage: Option<MeanMax>,
    /// Requests the server completed over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    /// Prefix-cache hits over lookups in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// The server's own time to first token over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<ServerLatency>,
    /// The server's own inter-token latency over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<ServerLatency>,
    /// Each configured PromQL query not named for a figure above.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub queries: BTreeMap<String, MeanMax>,
}

/// A gauge over a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanMax {
    /// The mean of its samples.
    pub mean: f64,
    /// The most.
    pub max: f64,
}

/// Percentiles of a server histogram's observations in a window, ms,
/// estimated from its buckets as `histogram_quantile` does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerLatency {
    /// Observations in the window.
    pub count: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl ServerLatency {
    fn of(window: &Buckets) -> Option<ServerLatency> {
        let ms = |q: f64| window.quantile(q).map(|s| s * 1000.0);
        Some(ServerLatency {
            count: window.count,
            p50: ms(0.5)?,
            p90: ms(0.9)?,
            p99: ms(0.99)?,
        })
    }
}

impl ServerSeries {
    /// The figures of the samples taken from `from_s` to `to_s` (seconds
    /// from the run's start); none when no sample falls in it. Counters
    /// and histograms count from the last sample at or before `from_s` to
    /// the first at or after `to_s` (the window's own first and last when
    /// there is none outside it): exact when a scrape falls in the quiet
    /// moments between stages, and always for the whole run, whose first
    /// scrape is at its start and last after its last response.
    pub fn stats(&self, from_s: f64, to_s: f64) -> Option<ServerStats> {
        let window: Vec<&ServerSample> = self
            .samples
            .iter()
            .filter(|s| s.t_s >= from_s && s.t_s <= to_s)
            .collect();
        if window.is_empty() {
            return None;
        }
        let mean_max = |values: Vec<f64>| {
            (!values.is_empty()).then(|| MeanMax {
                mean: values.iter().sum::<f64>() / values.len() as f64,
                max: values.iter().copied().fold(f64::MIN, f64::max),
            })
        };
        let of = |f: fn(&ServerSample) -> Option<f64>| mean_max(window.iter().filter_map(|s| f(s)).collect());
        // The samples a counter is read from, among those that have it (a
        // Prometheus server's points and scrapes may both be in the series).
        let ends = |has: &dyn Fn(&ServerSample) -> bool| {
            let inside = window.iter().copied().filter(|s| has(s));
            let (first, last) = (inside.clone().next()?, inside.last()?);
            let before = self
                .samples
                .iter()
                .rev()
                .find(|s| s.t_s <= from_s && has(s))
                .unwrap_or(first);
            let after = self.samples.iter().find(|s| s.t_s >= to_s && has(s)).unwrap_or(last);
            Some((before, after))
        };
        // A counter that went down is a restarted server: no figure.
        let gained = |f: fn(&ServerSample) -> Option<f64>| {
            let (before, after) = ends(&|s| f(s).is_some())?;
            let (a, b) = (f(before)?, f(after)?);
            (b >= a).then_some(b - a)
        };
        let latency = |f: fn(&ServerSample) -> Option<&Buckets>| {
            let (before, after) = ends(&|s| f(s).is_some())?;
            f(after)?.since(f(before)?).and_then(|w| ServerLatency::of(&w))
        };
        let mut queries = BTreeMap::new();
        for s in &window {
            for name in s.queries.keys() {
                queries
                    .entry(name.clone())
                    .or_insert_with(|| mean_max(window.iter().filter_map(|s| s.queries.get(name).copied()).collect()));
            }
        }
        let hits = gained(|s| s.prefix_cache_hits);
        let lookups = gained(|s| s.prefix_cache_queries);
        Some(ServerStats {
            samples: window.len() as u64,
            replicas: of(|s| s.replicas),
            waiting: of(|s| s.waiting),
            running: of(|s| s.running),
            kv_cache_usage: of(|s| s.kv_cache_usage),
            requests: gained(|s| s.requests),
            prefix_cache_hit_rate: match (hits, lookups) {
                (Some(h), Some(q)) if q > 0.0 => Some(h / q),
                _ => None,
            },
            ttft_ms: latency(|s| s.ttft.as_ref()),
            itl_ms: latency(|s| s.itl.as_ref()),
            queries: queries.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_windows_gauges_are_averaged_and_their_most_kept() {
        let mut series = ServerSeries::default();
        for (t, waiting) in [(0.5, 0.0), (1.5, 4.0), (2.5, 8.0), (9.0, 100.0)] {
            series.samples.push(ServerSample {
                t_s: t,
                waiting: Some(waiting),
                ..ServerSample::default()
            });
        }
        let stats = series.stats(1.0, 3.0).unwrap();
        assert_eq!(
            (stats.samples, stats.waiting, stats.running),
            (2, Some(MeanMax { mean: 6.0, max: 8.0 }), None)
        );
        assert!(series.stats(3.0, 8.0).is_none());
    }

    #[test]
    fn counters_and_histograms_count_from_the_sample_before_to_the_one_after() {
        let mut series = ServerSeries::default();
        let histogram = |n: f64| Buckets {
            le_s: vec![0.05, 0.1],
            counts: vec![n / 2.0, n],
            count: n,
        };
        for (t, requests, hits, queries) in [(0.0, 0.0, 0.0, 0.0), (1.5, 10.0, 5.0, 10.0), (3.5, 30.0, 30.0, 40.0)] {
            series.samples.push(ServerSample {
                t_s: t,
                requests: Some(requests),
                prefix_cache_hits: Some(hits),
                prefix_cache_queries: Some(queries),
                ttft: Some(histogram(requests)),
                ..ServerSample::default()
            });
        }
        // The window (1, 3) holds one sample; the counts run from 0.0 to 3.5.
        let stats = series.stats(1.0, 3.0).unwrap();
        assert_eq!(stats.requests, Some(30.0));
        assert_eq!(stats.prefix_cache_hit_rate, Some(0.75));
        let ttft = stats.ttft_ms.unwrap();
        assert_eq!(ttft.count, 30.0);
        assert!((ttft.p50 - 50.0).abs() < 1e-9, "{ttft:?}");
        // A window reaching past the last sample counts to its own last one.
        assert_eq!(series.stats(1.0, 9.0).unwrap().requests, Some(30.0));
        assert_eq!(series.stats(2.0, 9.0).unwrap().requests, Some(20.0));
    }
}
