//! `barrage sim`: token-exact outputs, a saturation knee derived from the
//! configured model, faults at their configured rates and counted exactly,
//! `/metrics`, ground truth, the autoscaler, and clear config errors.

use std::time::{Duration, Instant};

use barrage_sim::config::Dist;
use barrage_sim::{Mode, SimConfig, Simulator};
use serde_json::json;

use crate::common::{SimProcess, barrage, client, metric, parse_prometheus, request, run};

fn config(mode: Mode) -> SimConfig {
    SimConfig {
        port: 0,
        mode,
        ..SimConfig::default()
    }
}

fn chat(max_tokens: u32, stream: bool) -> serde_json::Value {
    json!({
        "model": "m",
        "messages": [{"role": "user", "content": "say something about load testing please"}],
        "max_tokens": max_tokens,
        "ignore_eos": true,
        "stream": stream,
        "stream_options": {"include_usage": true},
    })
}

fn content_of(data: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    let c = &v["choices"][0];
    c["delta"]["content"]
        .as_str()
        .or(c["text"].as_str())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_token_exact_and_deterministic() {
    let mut cfg = config(Mode::Zero);
    cfg.stream_interval = 5;
    let sim = Simulator::start(cfg).await.unwrap();
    let c = client();
    for n in [1u32, 2, 37, 64] {
        let reply = request(&c, sim.addr(), "POST", "/v1/chat/completions", Some(chat(n, true)), &[]).await;
        assert_eq!(reply.status, 200);
        let frames = reply.sse();
        let texts: Vec<String> = frames.iter().filter_map(|(_, d)| content_of(d)).collect();
        assert_eq!(
            texts.len() as u32,
            n.div_ceil(5),
            "chunks of 5 tokens for max_tokens={n}"
        );
        let text: String = texts.concat();
        assert_eq!(text.split_whitespace().count() as u32, n, "{text}");
        let usage: serde_json::Value = serde_json::from_str(&frames[frames.len() - 2].1).unwrap();
        assert_eq!(usage["usage"]["completion_tokens"], n);
        assert_eq!(usage["usage"]["prompt_tokens"], 6, "one word is one prompt token");
        assert_eq!(frames.last().unwrap().1, "[DONE]");
        // The first frame is the role-only delta, and the last content chunk says why it stopped.
        assert!(frames[0].1.contains("\"role\":\"assistant\""));
        assert!(frames.iter().any(|(_, d)| d.contains("\"finish_reason\":\"length\"")));
    }
    // Non-streamed, completions: the same word count, and the same text for the same prompt.
    let body = json!({"model": "m", "prompt": "one two three", "max_tokens": 23});
    let a = request(&c, sim.addr(), "POST", "/v1/completions", Some(body.clone()), &[]).await;
    let b = request(&c, sim.addr(), "POST", "/v1/completions", Some(body), &[]).await;
    let a: serde_json::Value = serde_json::from_str(&a.text()).unwrap();
    let b: serde_json::Value = serde_json::from_str(&b.text()).unwrap();
    assert_eq!(a["choices"][0]["text"].as_str().unwrap().split_whitespace().count(), 23);
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    assert_eq!(a["usage"]["completion_tokens"], 23);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_output_than_the_simulator_generates_is_a_bad_request_not_an_allocation() {
    let sim = Simulator::start(config(Mode::Plain)).await.unwrap();
    let c = client();
    let reply = request(
        &c,
        sim.addr(),
        "POST",
        "/v1/chat/completions",
        Some(chat(4_000_000_000, true)),
        &[],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .text()
            .contains("max_tokens 4000000000 is more than this simulator generates (10000000)"),
        "{}",
        reply.text()
    );
    // The simulator goes on serving.
    let ok = request(&c, sim.addr(), "POST", "/v1/chat/completions", Some(chat(3, true)), &[]).await;
    assert_eq!(ok.status, 200);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natural_lengths_respect_max_and_min_tokens() {
    let mut cfg = config(Mode::Zero);
    cfg.output_tokens = Some(Dist::Uniform { min: 1.0, max: 40.0 });
    let sim = Simulator::start(cfg).await.unwrap();
    let c = client();
    let mut lengths = Vec::new();
    for _ in 0..40 {
        let body = json!({"model": "m", "prompt": "x", "max_tokens": 20, "min_tokens": 5});
        let r: serde_json::Value = serde_json::from_str(
            &request(&c, sim.addr(), "POST", "/v1/completions", Some(body), &[])
                .await
                .text(),
        )
        .unwrap();
        let n = r["usage"]["completion_tokens"].as_u64().unwrap();
        assert_eq!(
            r["choices"][0]["text"].as_str().unwrap().split_whitespace().count() as u64,
            n
        );
        let reason = r["choices"][0]["finish_reason"].as_str().unwrap();
        assert_eq!(reason, if n == 20 { "length" } else { "stop" });
        lengths.push(n);
    }
    assert!(lengths.iter().all(|&n| (5..=20).contains(&n)), "{lengths:?}");
    assert!(lengths.iter().any(|&n| n < 20) && lengths.contains(&20), "{lengths:?}");
    sim.shutdown().await;
}

/// Closed loop at `concurrency` for `duration`: (requests/s, mean TTFT).
async fn closed_loop(
    addr: std::net::SocketAddr,
    concurrency: usize,
    duration: Duration,
    tokens: u32,
) -> (f64, Duration) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        tasks.push(tokio::spawn(async move {
            let c = client();
            let (mut done, mut ttft) = (0u32, Duration::ZERO);
            while start.elapsed() < duration {
                let r = request(&c, addr, "POST", "/v1/chat/completions", Some(chat(tokens, true)), &[]).await;
                let first = r
                    .sse()
                    .into_iter()
                    .find(|(_, d)| content_of(d).is_some())
                    .map(|(at, _)| at)
                    .unwrap();
                ttft += first - r.sent;
                done += 1;
            }
            (done, ttft)
        }));
    }
    let (mut done, mut ttft) = (0, Duration::ZERO);
    for t in tasks {
        let (d, f) = t.await.unwrap();
        done += d;
        ttft += f;
    }
    (f64::from(done) / start.elapsed().as_secs_f64(), ttft / done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batching_model_saturates_at_the_knee_its_parameters_imply() {
    let mut cfg = config(Mode::Batching);
    cfg.batching.max_num_seqs = 8;
    cfg.batching.step_base_ms = 8.0;
    cfg.batching.step_per_seq_ms = 0.25;
    cfg.batching.prefill_per_token_ms = 0.0;
    let tokens = 10;
    let b = cfg.batching.clone();
    let sim = Simulator::start(cfg).await.unwrap();
    // At full batch, each step serves max_num_seqs sequences, so the knee is
    // at concurrency max_num_seqs and the plateau at this many requests/s.
    let step_full_ms = b.step_base_ms + b.step_per_seq_ms * b.max_num_seqs as f64;
    let capacity = b.max_num_seqs as f64 / (f64::from(tokens) * step_full_ms / 1000.0);
    let run = Duration::from_millis(2500);
    let (half, ttft_half) = closed_loop(sim.addr(), b.max_num_seqs / 2, run, tokens).await;
    let (knee, ttft_knee) = closed_loop(sim.addr(), b.max_num_seqs, run, tokens).await;
    let (over, ttft_over) = closed_loop(sim.addr(), b.max_num_seqs * 3, run, tokens).await;
    eprintln!(
        "capacity {capacity:.0}/s; c=4: {half:.0}/s {ttft_half:?}; c=8: {knee:.0}/s {ttft_knee:?}; c=24: {over:.0}/s {ttft_over:?}"
    );
    // Below the knee throughput grows with concurrency...
    assert!(
        knee > 1.5 * half,
        "throughput grows below the knee: {half:.0} -> {knee:.0}"
    );
    // ...at the knee it reaches the derived capacity (timer rounding only loses a little)...
    assert!(
        knee <= capacity * 1.05 && knee >= capacity * 0.6,
        "knee {knee:.0}/s vs capacity {capacity:.0}/s"
    );
    // ...and beyond it throughput is flat while TTFT grows with the queue.
    assert!(over <= knee * 1.15, "plateau: {knee:.0} -> {over:.0}");
    assert!(
        ttft_over > ttft_knee * 2,
        "TTFT rises past the knee: {ttft_knee:?} -> {ttft_over:?}"
    );
    sim.shutdown().await;
}

#[test]
fn faults_happen_at_their_rates_and_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::from_yaml(
        dir.path(),
        "mode: zero\nseed: 7\nfaults:\n  http_429: 0.1\n  http_500: 0.1\n  reset_midstream: 0.1\n  malformed_frame: 0.15\n  missing_done: 0.15\n  missing_finish_reason: 0.15\n  stall: {rate: 0.1, ms: 60}\n  slow_first_byte: {rate: 0.1, ms: 60}\n",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = 400;
    let (seen, metrics) = rt.block_on(async {
        let c = client();
        let mut seen = std::collections::BTreeMap::<&str, u32>::new();
        for _ in 0..n {
            let r = request(&c, sim.addr, "POST", "/v1/chat/completions", Some(chat(8, true)), &[]).await;
            let mut count = |k| *seen.entry(k).or_default() += 1;
            if r.headers_at - r.sent > Duration::from_millis(40) {
                count("slow_first_byte");
            }
            match r.status {
                429 => count("http_429"),
                500 => count("http_500"),
                _ => {}
            }
            if r.status != 200 {
                continue;
            }
            if r.body_error.is_some() {
                count("reset_midstream");
            }
            let frames = r.sse();
            if frames
                .iter()
                .any(|(_, d)| d != "[DONE]" && serde_json::from_str::<serde_json::Value>(d).is_err())
            {
                count("malformed_frame");
            }
            if r.body_error.is_none() {
                if frames.last().map(|f| f.1.as_str()) != Some("[DONE]") {
                    count("missing_done");
                }
                if !frames.iter().any(|(_, d)| d.contains("\"finish_reason\":\"")) {
                    count("missing_finish_reason");
                }
            }
            if frames.windows(2).any(|w| w[1].0 - w[0].0 > Duration::from_millis(40)) {
                count("stall");
            }
        }
        let text = request(&c, sim.addr, "GET", "/metrics", None, &[]).await.text();
        (seen, parse_prometheus(&text))
    });
    for (kind, rate) in [
        ("http_429", 0.1),
        ("http_500", 0.1),
        ("reset_midstream", 0.1),
        ("malformed_frame", 0.15),
        ("missing_done", 0.15),
        ("missing_finish_reason", 0.15),
        ("stall", 0.1),
        ("slow_first_byte", 0.1),
    ] {
        let injected = metric(&metrics, "barrage_sim:faults_total", &[("kind", kind)]);
        let observed = f64::from(*seen.get(kind).unwrap_or(&0));
        assert_eq!(
            observed, injected,
            "{kind}: the client saw {observed}, the simulator injected {injected}"
        );
        // Every request is exposed to the HTTP faults; stream faults only
        // reach the requests that got a stream.
        let exposed = if kind.starts_with("http_") || kind == "slow_first_byte" {
            f64::from(n)
        } else {
            f64::from(n) * 0.8
        };
        let expected = rate * exposed;
        let sigma = (exposed * rate * (1.0 - rate)).sqrt();
        assert!(
            (injected - expected).abs() < 4.0 * sigma + 2.0,
            "{kind}: {injected} injected, {expected:.0} expected"
        );
    }
    let stderr = sim.stop();
    assert!(stderr.contains("stopping"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_match_what_was_served() {
    let mut cfg = config(Mode::Batching);
    cfg.batching.step_base_ms = 1.0;
    cfg.model = "sim-8b".into();
    let sim = Simulator::start(cfg).await.unwrap();
    let c = client();
    let n = 25;
    for i in 0..n {
        let r = request(
            &c,
            sim.addr(),
            "POST",
            "/v1/chat/completions",
            Some(chat(12, i % 2 == 0)),
            &[],
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let reply = request(&c, sim.addr(), "GET", "/metrics", None, &[]).await;
    assert_eq!(reply.status, 200);
    let m = parse_prometheus(&reply.text());
    let model = [("model_name", "sim-8b")];
    assert_eq!(
        metric(&m, "vllm:request_success_total", &[("finished_reason", "length")]),
        f64::from(n)
    );
    assert_eq!(metric(&m, "vllm:generation_tokens_total", &model), f64::from(n * 12));
    assert_eq!(metric(&m, "vllm:prompt_tokens_total", &model), f64::from(n * 6));
    assert_eq!(metric(&m, "barrage_sim:requests_received_total", &model), f64::from(n));
    assert_eq!(
        metric(&m, "vllm:time_to_first_token_seconds_count", &model),
        f64::from(n)
    );
    assert_eq!(
        metric(&m, "vllm:e2e_request_latency_seconds_count", &model),
        f64::from(n)
    );
    assert_eq!(
        metric(&m, "vllm:inter_token_latency_seconds_count", &model),
        f64::from(n * 11)
    );
    assert_eq!(
        metric(&m, "vllm:time_to_first_token_seconds_bucket", &[("le", "+Inf")]),
        f64::from(n)
    );
    assert_eq!(metric(&m, "vllm:num_requests_running", &model), 0.0);
    assert_eq!(metric(&m, "vllm:num_requests_waiting", &model), 0.0);
    assert_eq!(metric(&m, "vllm:gpu_cache_usage_perc", &model), 0.0);
    // The same prompt every time: after the first, its full blocks come from the prefix cache.
    assert!(
        metric(&m, "vllm:prefix_cache_hits_total", &model) == 0.0,
        "6-token prompts fill no 16-token block"
    );
    let models = request(&c, sim.addr(), "GET", "/v1/models", None, &[]).await;
    assert!(models.text().contains("\"id\":\"sim-8b\""));
    assert_eq!(request(&c, sim.addr(), "GET", "/health", None, &[]).await.status, 200);
    assert_eq!(request(&c, sim.addr(), "GET", "/nope", None, &[]).await.status, 404);
    let bad = request(
        &c,
        sim.addr(),
        "POST",
        "/v1/completions",
        Some(json!({"model": "m"})),
        &[],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("`prompt` is required"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_cache_hits_are_counted_for_shared_prefixes() {
    let mut cfg = config(Mode::Batching);
    cfg.batching.step_base_ms = 1.0;
    cfg.batching.prefix_block_tokens = 4;
    let sim = Simulator::start(cfg).await.unwrap();
    let c = client();
    let shared = "a b c d e f g h";
    for tail in ["x", "y", "z"] {
        let body = json!({"model": "m", "prompt": format!("{shared} {tail} q r s"), "max_tokens": 2});
        request(&c, sim.addr(), "POST", "/v1/completions", Some(body), &[]).await;
    }
    let m = parse_prometheus(&request(&c, sim.addr(), "GET", "/metrics", None, &[]).await.text());
    // 12-token prompts: 3 blocks each; the first two blocks (8 tokens) are shared.
    assert_eq!(metric(&m, "vllm:prefix_cache_queries_total", &[]), 36.0);
    assert_eq!(metric(&m, "vllm:prefix_cache_hits_total", &[]), 16.0);
    sim.shutdown().await;
}

#[test]
fn ground_truth_records_every_frame_by_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let sim = SimProcess::plain_with_truth("20", "5", &truth);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client();
        for i in 0..3 {
            let id = format!("req-{i}");
            let r = request(
                &c,
                sim.addr,
                "POST",
                "/v1/chat/completions",
                Some(chat(6, true)),
                &[("x-request-id", &id)],
            )
            .await;
            assert_eq!(r.status, 200);
        }
    });
    sim.stop();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, rec) in lines.iter().enumerate() {
        assert_eq!(rec["request_id"], format!("req-{i}"));
        let frames: Vec<u64> = rec["frames_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        // role, 6 content chunks, usage, [DONE]
        assert_eq!(frames.len(), 9);
        assert_eq!(
            rec["content"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c.as_bool().unwrap())
                .count(),
            6
        );
        let arrived = rec["arrived_ns"].as_u64().unwrap();
        let ttft_ms = (frames[1] - arrived) as f64 / 1e6;
        assert!(
            (19.0..30.0).contains(&ttft_ms),
            "true TTFT {ttft_ms} ms for a 20 ms setting"
        );
        assert!(frames.windows(2).all(|w| w[0] <= w[1]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autoscaler_adds_replicas_under_queueing_and_removes_them_after() {
    let mut cfg = config(Mode::Batching);
    cfg.batching.max_num_seqs = 2;
    cfg.batching.step_base_ms = 5.0;
    cfg.autoscaler.enabled = true;
    cfg.autoscaler.max_replicas = 3;
    cfg.autoscaler.scale_up_waiting = 2.0;
    cfg.autoscaler.scale_down_load = 0.5;
    cfg.autoscaler.stabilization_s = 0.2;
    cfg.autoscaler.provision_delay_s = 0.2;
    cfg.autoscaler.interval_s = 0.05;
    let sim = Simulator::start(cfg).await.unwrap();
    let replicas = |sim: &Simulator| sim.metrics().replicas.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(replicas(&sim), 1);
    let addr = sim.addr();
    let load = tokio::spawn(async move { closed_loop(addr, 16, Duration::from_millis(2000), 20).await });
    let mut peak = 1;
    let until = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < until {
        peak = peak.max(replicas(&sim));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.await.unwrap();
    assert_eq!(peak, 3, "scaled up to max_replicas under a queue");
    let until = Instant::now() + Duration::from_secs(3);
    while replicas(&sim) > 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replicas(&sim), 1, "scaled back down when idle");
    sim.shutdown().await;
}

#[test]
fn bad_configs_name_the_file_the_field_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown.yaml", "mode: zero\nmodle: x\n", "unknown field `modle`"),
        (
            "type.yaml",
            "batching:\n  max_num_seqs: many\n",
            "batching.max_num_seqs: invalid type",
        ),
        (
            "rate.yaml",
            "faults:\n  http_429: 1.5\n",
            "faults.http_429 is a fraction of requests: a number from 0 to 1, got 1.5",
        ),
        ("mode.yaml", "mode: turbo\n", "unknown variant `turbo`"),
        (
            "dist.yaml",
            "plain:\n  ttft_ms: {normal: {mean: -5, stddev: 1}}\n",
            "plain.ttft_ms",
        ),
    ];
    for (name, text, message) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, _, stderr) = run(barrage().args(["sim", "--config"]).arg(&path));
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(
            stderr.contains(path.to_str().unwrap()),
            "{name} names the file: {stderr}"
        );
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let (code, _, stderr) = run(barrage().args(["sim", "--stream-interval", "0"]));
    assert_eq!(code, 2);
    assert!(stderr.contains("stream_interval must be at least 1"), "{stderr}");
    let (code, _, stderr) = run(barrage().args(["sim", "--config", "/nonexistent.yaml"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("cannot read simulator config /nonexistent.yaml"),
        "{stderr}"
    );
}
