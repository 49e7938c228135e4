//! A run's figures under a peer's own definitions (`--compat`), from the
//! same records, so a Barrage run can be set beside numbers a user already
//! trusts. Each peer's formulas, and the file they come from, are in
//! `docs/metrics.md` ("Peer-compatible views"); the keys are the peer's own
//! result names. Quantiles are computed exactly from every sample (numpy's
//! linear interpolation, or a weighted rank where the peer weights), not
//! from Barrage's HDR histograms.

use serde_json::{Map, Value, json};

use super::{Record, Status};

/// A peer whose definitions a view follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Peer {
    /// `vllm bench serve`.
    Vllm,
    /// SGLang's `bench_serving`.
    Sglang,
    /// Kubernetes SIG inference-perf, per stage.
    InferencePerf,
    /// GuideLLM.
    Guidellm,
    /// NVIDIA AIPerf.
    Aiperf,
}

impl Peer {
    /// Its name, as `--compat` and the view's file name say it.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Vllm => "vllm",
            Peer::Sglang => "sglang",
            Peer::InferencePerf => "inference-perf",
            Peer::Guidellm => "guidellm",
            Peer::Aiperf => "aiperf",
        }
    }
}

/// numpy's default `percentile` (linear between closest ranks) of sorted `xs`.
fn percentile(xs: &[f64], p: f64) -> Option<f64> {
    let (first, last) = (xs.first()?, xs.last()?);
    if xs.len() == 1 {
        return Some(*first);
    }
    let rank = p / 100.0 * (xs.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    let v = xs[lo] + (xs[hi] - xs[lo]) * (rank - lo as f64);
    Some(v.clamp(*first, *last))
}

/// The `p` percentile of `(value, weight)` pairs sorted by value: the
/// first value whose cumulative weight reaches `p`% of the total.
fn weighted_percentile(xs: &[(f64, f64)], p: f64) -> Option<f64> {
    let total: f64 = xs.iter().map(|x| x.1).sum();
    if total <= 0.0 {
        return None;
    }
    let target = p / 100.0 * total;
    let mut seen = 0.0;
    for &(v, w) in xs {
        seen += w;
        if seen >= target {
            return Some(v);
        }
    }
    xs.last().map(|x| x.0)
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// numpy's `std` (population).
fn std(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt())
}

fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
    xs.sort_by(f64::total_cmp);
    xs
}

fn num(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |v| json!(v))
}

/// Mean, median, std and p99 under vLLM's names (`mean_ttft_ms`, …).
fn vllm_stats(out: &mut Map<String, Value>, name: &str, xs: Vec<f64>, percentiles: &[f64]) {
    let xs = sorted(xs);
    out.insert(format!("mean_{name}_ms"), num(mean(&xs)));
    out.insert(format!("median_{name}_ms"), num(percentile(&xs, 50.0)));
    out.insert(format!("std_{name}_ms"), num(std(&xs)));
    for p in percentiles {
        out.insert(format!("p{p}_{name}_ms"), num(percentile(&xs, *p)));
    }
}

/// The gaps between `times`, in order.
fn gaps(times: &[f64]) -> impl Iterator<Item = f64> + '_ {
    times.windows(2).map(|w| w[1] - w[0])
}

/// The view of `records` (the run's, in any order) under `peer`'s
/// definitions.
pub fn view(peer: Peer, records: &[Record]) -> Value {
    let mut out = match peer {
        Peer::Vllm => vllm(records),
        Peer::Sglang => sglang(records),
        Peer::InferencePerf => inference_perf(records),
        Peer::Guidellm => guidellm(records),
        Peer::Aiperf => aiperf(records),
    };
    out.insert("compat".into(), json!(peer.name()));
    Value::Object(out)
}

fn ok(r: &&Record) -> bool {
    r.status == Status::Ok
}

/// Benchmark start (the first scheduled send) to the last end, seconds.
fn dispatch_to_drain(records: &[Record]) -> f64 {
    let start = records.iter().map(|r| r.scheduled_ms).fold(f64::INFINITY, f64::min);
    let end = records.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    ((end - start) / 1000.0).max(0.0)
}

/// `vllm bench serve` (`calculate_metrics`): TTFT at the first message
/// with `choices`, role-only included, which is the first frame of the
/// stream (Barrage's first body byte); ITL one sample per chunk, the first
/// from that message; E2E to the last token chunk; N from usage; TPOT =
/// (E2E − TTFT)/(N − 1); duration from the benchmark's start to the last
/// response.
fn vllm(records: &[Record]) -> Map<String, Value> {
    let good: Vec<&Record> = records.iter().filter(ok).collect();
    let duration = dispatch_to_drain(records);
    let (mut ttft, mut tpot, mut itl, mut e2el) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut input, mut output) = (0u64, 0u64);
    for r in &good {
        let first = r.first_byte_ms.or(r.first_token_ms).unwrap_or(r.end_ms);
        let last = r.last_token_ms.unwrap_or(r.end_ms);
        ttft.push(first - r.sent_ms);
        e2el.push(last - r.sent_ms);
        let n = r.output_tokens.max(1);
        if n > 1 {
            tpot.push((last - first) / f64::from(n - 1));
        }
        let mut times = vec![first];
        times.extend(r.content_frames_ms.iter().copied().filter(|t| *t > first));
        itl.extend(gaps(&times));
        input += u64::from(r.prompt_tokens.unwrap_or(0));
        output += u64::from(n);
    }
    let mut out = Map::new();
    out.insert("duration".into(), json!(duration));
    out.insert("completed".into(), json!(good.len()));
    out.insert("failed".into(), json!(records.len() - good.len()));
    out.insert("total_input_tokens".into(), json!(input));
    out.insert("total_output_tokens".into(), json!(output));
    let per_s = |n: f64| if duration > 0.0 { n / duration } else { 0.0 };
    out.insert("request_throughput".into(), json!(per_s(good.len() as f64)));
    out.insert("output_throughput".into(), json!(per_s(output as f64)));
    out.insert("total_token_throughput".into(), json!(per_s((input + output) as f64)));
    vllm_stats(&mut out, "ttft", ttft, &[99.0]);
    vllm_stats(&mut out, "tpot", tpot, &[99.0]);
    vllm_stats(&mut out, "itl", itl, &[99.0]);
    vllm_stats(&mut out, "e2el", e2el, &[99.0]);
    out
}

/// SGLang `bench_serving`: TTFT at the first non-empty text; ITL per chunk
/// after it; TPOT = (latency − TTFT)/(N − 1); latency to the stream's last
/// line; concurrency = Σ latency / duration.
fn sglang(records: &[Record]) -> Map<String, Value> {
    let good: Vec<&Record> = records.iter().filter(ok).collect();
    let duration = dispatch_to_drain(records);
    let (mut ttft, mut tpot, mut itl, mut e2e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut input, mut output) = (0u64, 0u64);
    for r in &good {
        let latency = r.end_ms - r.sent_ms;
        e2e.push(latency);
        if let Some(t) = r.ttft() {
            ttft.push(t);
            if r.output_tokens > 1 {
                tpot.push((latency - t) / f64::from(r.output_tokens - 1));
            }
        }
        itl.extend(r.inter_chunk());
        input += u64::from(r.prompt_tokens.unwrap_or(0));
        output += u64::from(r.output_tokens);
    }
    let per_s = |n: f64| if duration > 0.0 { n / duration } else { 0.0 };
    let mut out = Map::new();
    out.insert("duration".into(), json!(duration));
    out.insert("completed".into(), json!(good.len()));
    out.insert("total_input_tokens".into(), json!(input));
    out.insert("total_output_tokens".into(), json!(output));
    out.insert("request_throughput".into(), json!(per_s(good.len() as f64)));
    out.insert("input_throughput".into(), json!(per_s(input as f64)));
    out.insert("output_throughput".into(), json!(per_s(output as f64)));
    out.insert("concurrency".into(), json!(per_s(e2e.iter().sum::<f64>() / 1000.0)));
    vllm_stats(&mut out, "e2e_latency", e2e, &[90.0, 99.0]);
    vllm_stats(&mut out, "ttft", ttft, &[99.0]);
    vllm_stats(&mut out, "tpot", tpot, &[99.0]);
    let itl = sorted(itl);
    out.insert("p95_itl_ms".into(), num(percentile(&itl, 95.0)));
    out.insert("max_itl_ms".into(), num(itl.last().copied()));
    vllm_stats(&mut out, "itl", itl, &[99.0]);
    out
}

/// inference-perf, per stage (`reportgen/base.py`): TTFT only for N > 1;
/// TPOT = (last − first)/(N − 1); ITL pooled per token, each token after a
/// chunk's first at a gap of 0; NTPOT = (end − start)/N; E2E to the end;
/// throughput over first send → last end; `achieved_rate` over first →
/// last send; linear percentiles at its default set.
fn inference_perf(records: &[Record]) -> Map<String, Value> {
    const PERCENTILES: &[f64] = &[0.1, 1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
    let stats = |xs: Vec<f64>| {
        let xs = sorted(xs);
        let mut m = Map::new();
        m.insert("mean".into(), num(mean(&xs)));
        m.insert("min".into(), num(xs.first().copied()));
        m.insert("max".into(), num(xs.last().copied()));
        for p in PERCENTILES {
            m.insert(format!("p{p}"), num(percentile(&xs, *p)));
        }
        Value::Object(m)
    };
    let stages = records.iter().map(|r| r.stage).max().map_or(0, |s| s + 1);
    let mut out = Map::new();
    let mut list = Vec::new();
    for stage in 0..stages {
        let all: Vec<&Record> = records.iter().filter(|r| r.stage == stage).collect();
        let good: Vec<&Record> = all.iter().copied().filter(ok).collect();
        let (mut ttft, mut tpot, mut itl, mut ntpot, mut e2e) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut output = 0u64;
        for r in &good {
            let n = r.output_tokens;
            output += u64::from(n);
            e2e.push((r.end_ms - r.sent_ms) / 1000.0);
            if n > 0 {
                ntpot.push((r.end_ms - r.sent_ms) / 1000.0 / f64::from(n));
            }
            if n > 1
                && let Some(t) = r.ttft()
            {
                ttft.push(t / 1000.0);
            }
            if let Some(t) = r.tpot() {
                tpot.push(t / 1000.0);
            }
            for (i, w) in r.content_frames_ms.windows(2).enumerate() {
                itl.push((w[1] - w[0]) / 1000.0);
                itl.extend(std::iter::repeat_n(0.0, r.frame_tokens(i + 1) as usize - 1));
            }
            if !r.content_frames_ms.is_empty() {
                itl.extend(std::iter::repeat_n(0.0, r.frame_tokens(0) as usize - 1));
            }
        }
        let first_start = all.iter().map(|r| r.sent_ms).fold(f64::INFINITY, f64::min);
        let last_start = all.iter().map(|r| r.sent_ms).fold(0.0, f64::max);
        let last_end = good.iter().map(|r| r.end_ms).fold(0.0, f64::max);
        let window = (last_end - first_start) / 1000.0;
        let per_s = |n: f64| if window > 0.0 { n / window } else { 0.0 };
        let sends = (last_start - first_start) / 1000.0;
        list.push(json!({
            "stage": stage,
            "load_summary": {
                "count": all.len(),
                "achieved_rate": if sends > 0.0 { all.len() as f64 / sends } else { 0.0 },
            },
            "successes": {
                "count": good.len(),
                "latency": {
                    "request_latency": stats(e2e),
                    "time_to_first_token": stats(ttft),
                    "time_per_output_token": stats(tpot),
                    "normalized_time_per_output_token": stats(ntpot),
                    "inter_token_latency": stats(itl),
                },
                "throughput": {
                    "requests_per_sec": per_s(good.len() as f64),
                    "output_tokens_per_sec": per_s(output as f64),
                },
            },
            "failures": {"count": all.len() - good.len()},
        }));
    }
    out.insert("stages".into(), Value::Array(list));
    out
}

/// GuideLLM: TTFT at the first iteration; ITL = (last − first)/(N − 1) per
/// request, its percentiles weighted by N − 1; TPOT = (last − start)/N,
/// weighted by N; request latency to the end; throughput over the measured
/// window (warm-up and cool-down left out).
fn guidellm(records: &[Record]) -> Map<String, Value> {
    const PERCENTILES: &[f64] = &[0.1, 1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];
    let measured: Vec<&Record> = records.iter().filter(|r| r.measured).collect();
    let good: Vec<&Record> = measured.iter().copied().filter(ok).collect();
    let (mut ttft, mut itl, mut tpot, mut latency) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut output = 0u64;
    for r in &good {
        let n = f64::from(r.output_tokens);
        output += u64::from(r.output_tokens);
        latency.push(((r.end_ms - r.sent_ms) / 1000.0, 1.0));
        if let Some(t) = r.ttft() {
            ttft.push((t, 1.0));
        }
        if let (Some(first), Some(last)) = (r.first_token_ms, r.last_token_ms) {
            if n > 1.0 {
                itl.push(((last - first) / (n - 1.0), n - 1.0));
            }
            if n > 0.0 {
                tpot.push(((last - r.sent_ms) / n, n));
            }
        }
    }
    let stats = |mut xs: Vec<(f64, f64)>| {
        xs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: f64 = xs.iter().map(|x| x.1).sum();
        let mut m = Map::new();
        m.insert(
            "mean".into(),
            num((total > 0.0).then(|| xs.iter().map(|x| x.0 * x.1).sum::<f64>() / total)),
        );
        m.insert("count".into(), json!(xs.len()));
        for p in PERCENTILES {
            m.insert(format!("p{p}"), num(weighted_percentile(&xs, *p)));
        }
        Value::Object(m)
    };
    let from = measured.iter().map(|r| r.sent_ms).fold(f64::INFINITY, f64::min);
    let to = measured.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    let window = ((to - from) / 1000.0).max(0.0);
    let per_s = |n: f64| if window > 0.0 { n / window } else { 0.0 };
    let mut out = Map::new();
    out.insert("duration".into(), json!(window));
    out.insert(
        "request_totals".into(),
        json!({"successful": good.len(), "errored": measured.len() - good.len()}),
    );
    out.insert("requests_per_second".into(), json!(per_s(good.len() as f64)));
    out.insert("output_tokens_per_second".into(), json!(per_s(output as f64)));
    out.insert("request_latency".into(), stats(latency));
    out.insert("time_to_first_token_ms".into(), stats(ttft));
    out.insert("inter_token_latency_ms".into(), stats(itl));
    out.insert("time_per_output_token_ms".into(), stats(tpot));
    out
}

/// AIPerf (`docs/metrics-reference.md`): TTFT at the first non-empty
/// content; TTST to the second; latency to the last content chunk; ITL =
/// (latency − TTFT)/(OSL − 1) per request; ICL every chunk gap; duration
/// from the first request to the last response.
fn aiperf(records: &[Record]) -> Map<String, Value> {
    let good: Vec<&Record> = records.iter().filter(ok).collect();
    let (mut ttft, mut ttst, mut latency, mut itl, mut icl) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut output = 0u64;
    for r in &good {
        output += u64::from(r.output_tokens);
        let Some(first) = r.ttft() else { continue };
        let last = r.e2e().unwrap_or(first);
        ttft.push(first);
        latency.push(last);
        if let Some(second) = r.content_frames_ms.get(1) {
            ttst.push(second - r.content_frames_ms[0]);
        }
        if r.output_tokens > 1 {
            itl.push((last - first) / f64::from(r.output_tokens - 1));
        }
        icl.extend(r.inter_chunk());
    }
    let stats = |xs: Vec<f64>| {
        let xs = sorted(xs);
        let mut m = Map::new();
        m.insert("unit".into(), json!("ms"));
        m.insert("avg".into(), num(mean(&xs)));
        m.insert("min".into(), num(xs.first().copied()));
        m.insert("max".into(), num(xs.last().copied()));
        for p in [1.0, 5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0] {
            m.insert(format!("p{p}"), num(percentile(&xs, p)));
        }
        m.insert("std".into(), num(std(&xs)));
        Value::Object(m)
    };
    let from = records.iter().map(|r| r.sent_ms).fold(f64::INFINITY, f64::min);
    let to = records.iter().map(|r| r.end_ms).fold(0.0, f64::max);
    let duration = ((to - from) / 1000.0).max(0.0);
    let per_s = |n: f64| if duration > 0.0 { n / duration } else { 0.0 };
    let mut out = Map::new();
    out.insert("benchmark_duration".into(), json!(duration));
    out.insert("request_count".into(), json!(good.len()));
    out.insert("error_request_count".into(), json!(records.len() - good.len()));
    out.insert("request_throughput".into(), json!(per_s(good.len() as f64)));
    out.insert("output_token_throughput".into(), json!(per_s(output as f64)));
    out.insert("time_to_first_token".into(), stats(ttft));
    out.insert("time_to_second_token".into(), stats(ttst));
    out.insert("request_latency".into(), stats(latency));
    out.insert("inter_token_latency".into(), stats(itl));
    out.insert("inter_chunk_latency".into(), stats(icl));
    out
}

/// One line per headline figure of `view`, for the console.
pub fn headline(peer: Peer, view: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("-".into(), |v| format!("{v:.2}"));
    match peer {
        Peer::Vllm | Peer::Sglang => {
            let mut s = format!(
                "{} view: {} completed in {} s, {} req/s, {} output tok/s",
                peer.name(),
                view["completed"],
                f(&view["duration"]),
                f(&view["request_throughput"]),
                f(&view["output_throughput"])
            );
            for m in ["ttft", "tpot", "itl"] {
                s += &format!(
                    "; {m} mean {} median {} p99 {} ms",
                    f(&view[format!("mean_{m}_ms")]),
                    f(&view[format!("median_{m}_ms")]),
                    f(&view[format!("p99_{m}_ms")])
                );
            }
            s
        }
        Peer::InferencePerf => {
            let mut s = String::from("inference-perf view:");
            for stage in view["stages"].as_array().into_iter().flatten() {
                let l = &stage["successes"]["latency"];
                s += &format!(
                    " stage {}: {} ok, {} req/s, ttft p50 {} s, itl p50 {} s, tpot p50 {} s;",
                    stage["stage"],
                    stage["successes"]["count"],
                    f(&stage["successes"]["throughput"]["requests_per_sec"]),
                    f(&l["time_to_first_token"]["p50"]),
                    f(&l["inter_token_latency"]["p50"]),
                    f(&l["time_per_output_token"]["p50"])
                );
            }
            s.trim_end_matches(';').to_string()
        }
        Peer::Guidellm => format!(
            "guidellm view: {} successful, {} req/s, {} output tok/s; ttft p50 {} ms, itl p50 {} ms, tpot p50 {} ms",
            view["request_totals"]["successful"],
            f(&view["requests_per_second"]),
            f(&view["output_tokens_per_second"]),
            f(&view["time_to_first_token_ms"]["p50"]),
            f(&view["inter_token_latency_ms"]["p50"]),
            f(&view["time_per_output_token_ms"]["p50"])
        ),
        Peer::Aiperf => format!(
            "aiperf view: {} requests, {} req/s, {} output tok/s; ttft p50 {} ms, itl p50 {} ms, icl p50 {} ms",
            view["request_count"],
            f(&view["request_throughput"]),
            f(&view["output_token_throughput"]),
            f(&view["time_to_first_token"]["p50"]),
            f(&view["inter_token_latency"]["p50"]),
            f(&view["inter_chunk_latency"]["p50"])
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request sent at 0 whose first frame (role-only, no output) comes
    /// at 40 ms and whose output frames come at `frames` with `tokens` each.
    fn record(frames: &[f64], tokens: &[u32], end: f64) -> Record {
        Record {
            scheduled_ms: 0.0,
            sent_ms: 0.0,
            first_byte_ms: Some(40.0),
            first_token_ms: frames.first().copied(),
            last_token_ms: frames.last().copied(),
            content_frames_ms: frames.to_vec(),
            content_frame_tokens: tokens.iter().map(|&t| Some(t)).collect(),
            output_tokens: tokens.iter().sum(),
            prompt_tokens: Some(10),
            end_ms: end,
            measured: true,
            ..Record::default()
        }
    }

    fn close(a: &Value, b: f64) {
        let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    /// Two requests: one token per frame; and two tokens per frame.
    fn two() -> Vec<Record> {
        vec![
            record(&[100.0, 110.0, 130.0], &[1, 1, 1], 140.0),
            record(&[50.0, 90.0], &[2, 2], 100.0),
        ]
    }

    #[test]
    fn vllm_counts_the_role_message_as_first_and_itl_per_chunk() {
        let v = view(Peer::Vllm, &two());
        // TTFT from the first message (40 ms) for both.
        close(&v["mean_ttft_ms"], 40.0);
        // ITL per chunk from that message: [60, 10, 20] and [10, 40].
        close(&v["mean_itl_ms"], 140.0 / 5.0);
        close(&v["median_itl_ms"], 20.0);
        // TPOT = (E2E − TTFT)/(N − 1): (130 − 40)/2 and (90 − 40)/3.
        close(&v["mean_tpot_ms"], (45.0 + 50.0 / 3.0) / 2.0);
        // E2E to the last token chunk; duration to the last end.
        close(&v["mean_e2el_ms"], 110.0);
        close(&v["duration"], 0.14);
        close(&v["output_throughput"], 7.0 / 0.14);
        assert_eq!(v["completed"], 2);
    }

    #[test]
    fn sglang_takes_latency_to_the_last_line_and_concurrency_from_it() {
        let v = view(Peer::Sglang, &two());
        close(&v["mean_ttft_ms"], 75.0);
        // TPOT = (latency − TTFT)/(N − 1): (140 − 100)/2, (100 − 50)/3.
        close(&v["mean_tpot_ms"], (20.0 + 50.0 / 3.0) / 2.0);
        close(&v["max_itl_ms"], 40.0);
        close(&v["concurrency"], 0.24 / 0.14);
    }

    #[test]
    fn inference_perf_gives_each_token_of_a_chunk_after_its_first_a_zero_gap() {
        let v = view(Peer::InferencePerf, &two());
        let l = &v["stages"][0]["successes"]["latency"];
        // Per-token gaps: [10, 20] and [0 (first frame's second token), 40, 0].
        close(&l["inter_token_latency"]["p50"], 0.010);
        close(&l["inter_token_latency"]["mean"], 0.070 / 5.0);
        close(&l["inter_token_latency"]["min"], 0.0);
        // NTPOT = (end − start)/N: 140/3 and 100/4 ms.
        close(&l["normalized_time_per_output_token"]["max"], 0.140 / 3.0);
        close(
            &v["stages"][0]["successes"]["throughput"]["requests_per_sec"],
            2.0 / 0.14,
        );
    }

    #[test]
    fn guidellm_weights_itl_by_tokens_after_the_first_and_tpot_includes_ttft() {
        let v = view(Peer::Guidellm, &two());
        // ITL (last − first)/(N − 1): 15 (weight 2) and 40/3 (weight 3).
        close(&v["inter_token_latency_ms"]["mean"], (15.0 * 2.0 + 40.0) / 5.0);
        close(&v["inter_token_latency_ms"]["p50"], 40.0 / 3.0);
        // TPOT (last − start)/N: 130/3 (weight 3) and 90/4 (weight 4).
        close(&v["time_per_output_token_ms"]["p50"], 22.5);
        close(&v["time_per_output_token_ms"]["p99"], 130.0 / 3.0);
    }

    #[test]
    fn aiperf_itl_is_per_request_and_icl_per_chunk() {
        let v = view(Peer::Aiperf, &two());
        close(&v["inter_token_latency"]["avg"], (15.0 + 40.0 / 3.0) / 2.0);
        close(&v["inter_chunk_latency"]["max"], 40.0);
        close(&v["time_to_second_token"]["min"], 10.0);
        close(&v["benchmark_duration"], 0.14);
    }

    #[test]
    fn percentiles_follow_numpy_and_weighted_ranks() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&xs, 50.0), Some(2.5));
        assert!((percentile(&xs, 99.0).unwrap() - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(weighted_percentile(&[(1.0, 1.0), (2.0, 3.0)], 30.0), Some(2.0));
        assert_eq!(weighted_percentile(&[(1.0, 1.0), (2.0, 3.0)], 25.0), Some(1.0));
    }
}
