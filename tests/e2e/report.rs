//! Metrics and reports end to end: figures against a simulator with known
//! timing, every request accounted for under overload, reports rebuilt from
//! the records of a killed run, shards merged exactly, runs compared, and
//! the HTML report rendered by a real browser.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{SimProcess, barrage, metric, records, run, summary};

fn target(sim: &SimProcess) -> String {
    format!("http://{}", sim.addr)
}

/// `barrage run` against `sim` with extra arguments; asserts it exits 0.
fn run_ok(sim: &SimProcess, out: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--quiet", "--target", &target(sim), "--output"])
        .arg(out)
        .args(args));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    stdout
}

fn spawn_run(sim: &SimProcess, out: &Path, args: &[&str]) -> Child {
    barrage()
        .args(["run", "--quiet", "--target", &target(sim), "--output"])
        .arg(out)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn reported_latencies_match_the_simulators_fixed_timing() {
    // TTFT 40 ms, then a token every 8 ms: 16 tokens end at 40 + 15 × 8 = 160 ms.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "40", "--itl-ms", "8"]);
    let out = dir.path().join("run");
    run_ok(
        &sim,
        &out,
        &[
            "--rate",
            "20",
            "--duration",
            "3",
            "--shape",
            "poisson",
            "--max-tokens",
            "16",
        ],
    );
    sim.stop();
    let s = summary(&out);
    let st = &s["stages"][0];
    let ok = st["succeeded"].as_u64().unwrap();
    assert!(ok > 30, "{ok}");
    // The client adds its own reading and scheduling time on a busy 2-core
    // machine: medians within 3 ms (0.8 ms for gaps), the 99th within 15 ms.
    let within = |key: &str, p: &str, lo: f64, hi: f64| {
        let v = f(&st[key][p]);
        assert!(v >= lo && v <= hi, "{key} {p} = {v:.3} ms, expected {lo}..{hi}");
    };
    within("ttft_ms", "p50", 40.0, 43.0);
    within("ttft_ms", "p99", 40.0, 55.0);
    within("inter_chunk_ms", "p50", 7.2, 8.8);
    within("inter_token_ms", "p50", 7.2, 8.8);
    within("tpot_ms", "p50", 7.5, 8.5);
    within("e2e_ms", "p50", 160.0, 163.0);
    within("normalized_ms_per_token", "p50", 10.0, 10.5);
    assert!(f(&st["ttft_ms"]["p50"]) <= f(&st["ttft_ms"]["p90"]));
    assert_eq!(
        st["inter_chunk_ms"]["count"].as_u64().unwrap(),
        ok * 15,
        "15 gaps per request"
    );
    assert_eq!(st["output_tokens"].as_u64().unwrap(), ok * 16);
    assert_eq!(
        st["output_tokens_source"]["usage"].as_u64().unwrap(),
        ok,
        "counts from server usage"
    );
    for r in records(&out) {
        assert_eq!(r["output_tokens"], 16);
        assert_eq!(r["content_frames_ms"].as_array().unwrap().len(), 16);
        assert!(r["prompt_tokens"].as_u64().unwrap() > 0);
    }
    assert!(st["accounted"].as_bool().unwrap());
    // The per-second series adds up to the totals.
    let ts = s["timeseries"].as_array().unwrap();
    let sent: u64 = ts.iter().map(|p| p["sent"].as_u64().unwrap()).sum();
    let tokens: u64 = ts.iter().map(|p| p["output_tokens"].as_u64().unwrap()).sum();
    assert_eq!(sent, st["sent"].as_u64().unwrap());
    assert_eq!(tokens, ok * 16);
}

#[test]
fn every_request_is_accounted_for_under_overload_and_a_stop() {
    // 430 ms per request against arrivals at 100/s, capped at 25 in flight
    // and dropping the rest; 5 % of requests fail with HTTP 500; Ctrl-C after
    // 2.5 s with a grace period too short for the requests in flight; the
    // second stage never starts.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::from_yaml(
        dir.path(),
        "mode: plain\nplain: {ttft_ms: {constant: 50}, itl_ms: {constant: 20}}\nfaults: {http_500: 0.05}\n",
    );
    let cfg = dir.path().join("run.yaml");
    std::fs::write(
        &cfg,
        "request: {max_tokens: 20}\ngrace_period_s: 0.1\nstages:\n  \
         - {shape: constant, rate: 100, duration_s: 10, max_concurrency: 25, on_cap: drop}\n  \
         - {shape: constant, rate: 10, duration_s: 5}\n  \
         - {shape: constant, rate: 1000000, duration_s: 10000000}\n  \
         - {shape: poisson, rate: 1000000, duration_s: 10000000}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let mut child = spawn_run(&sim, &out, &["--config", cfg.to_str().unwrap()]);
    let (code, _) = crate::common::interrupt_after(&mut child, Duration::from_millis(2500));
    assert_eq!(code, Some(3));
    let s = summary(&out);
    let n = |st: &serde_json::Value, k: &str| st[k].as_u64().unwrap_or_else(|| panic!("{k} in {st}"));
    for st in s["stages"].as_array().unwrap().iter().chain([&s["total"]]) {
        // Arrivals a client starved of CPU missed are counted too.
        crate::common::assert_accounted(st);
        let by_status: u64 = st["by_status"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(by_status, n(st, "sent"));
    }
    let st0 = &s["stages"][0];
    assert!(n(st0, "dropped") > 50, "the cap dropped arrivals: {st0}");
    assert!(n(st0, "not_sent") > 500, "the stop left most of the schedule unsent");
    assert_eq!(n(st0, "scheduled"), 1000, "the stage's whole schedule is counted");
    assert!(
        n(st0, "cancelled") > 0,
        "in-flight requests past the grace period were cancelled"
    );
    assert!(n(st0, "failed") > 0, "HTTP 500s are failures");
    assert_eq!(st0["failed_by_class"]["http_error"].as_u64().unwrap(), n(st0, "failed"));
    let st1 = &s["stages"][1];
    assert_eq!((n(st1, "scheduled"), n(st1, "not_sent"), n(st1, "sent")), (50, 50, 0));
    // Ten trillion arrivals not sent are counted, not iterated: exactly for
    // a constant rate, the expected number for a random one.
    let st2 = &s["stages"][2];
    assert_eq!((n(st2, "not_sent"), n(st2, "sent")), (10_000_000_000_000, 0));
    let st3 = &s["stages"][3];
    assert_eq!((n(st3, "not_sent"), n(st3, "sent")), (10_000_000_000_001, 0));
    // Every sent request has a record, and the server saw each one.
    let recs = records(&out);
    assert_eq!(recs.len() as u64, n(&s["total"], "sent"));
    let seen = metric(&sim.metrics(), "barrage_sim:requests_received_total", &[]);
    assert_eq!(
        seen as u64,
        n(&s["total"], "sent"),
        "the simulator received exactly what was sent"
    );
    let server_500 = metric(&sim.metrics(), "barrage_sim:faults_total", &[("kind", "http_500")]);
    assert_eq!(server_500 as u64, n(st0, "failed"));
    sim.stop();
}

#[test]
fn a_killed_run_is_rebuilt_into_reports_from_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "20", "--itl-ms", "5"]);
    let out = dir.path().join("run");
    let mut child = spawn_run(&sim, &out, &["--rate", "50", "--duration", "60", "--max-tokens", "10"]);
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap(); // SIGKILL: no summary, no reports
    child.wait().unwrap();
    sim.stop();
    assert!(!out.join("summary.json").exists());
    let lines = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    let complete = lines.lines().filter(|l| l.ends_with('}')).count() as u64;
    assert!(complete > 40, "records reached the disk while running: {complete}");

    let (code, stdout, stderr) =
        run(barrage()
            .arg("report")
            .arg(&out)
            .args(["--percentiles", "50,75", "--slo", "ttft < 1ms"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    assert_eq!(s["complete"], false);
    assert_eq!(s["percentiles"], serde_json::json!([50.0, 75.0]));
    let st = &s["stages"][0];
    assert_eq!(st["sent"].as_u64().unwrap(), complete);
    assert!(st["ttft_ms"]["p75"].as_f64().is_some() && st["ttft_ms"].get("p99").is_none());
    assert_eq!(
        f(&st["goodput"]["share"]),
        0.0,
        "no request beats a 1 ms TTFT against a 20 ms server"
    );
    for file in ["report.html", "report.json", "report.md", "stages.csv"] {
        assert!(out.join(file).exists(), "{file}");
    }
    assert!(stdout.contains("goodput 0.00 req/s"), "{stdout}");
}

/// Two short runs against one simulator.
/// Runs `a` and `a2` of one configuration (two shards of one run, as
/// `merge` wants them), and `b` of another.
fn three_runs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "20", "--itl-ms", "4"]);
    let (a, a2, b) = (dir.join("a"), dir.join("a2"), dir.join("b"));
    for out in [&a, &a2] {
        run_ok(
            &sim,
            out,
            &["--rate", "30", "--requests", "40", "--max-tokens", "8", "--seed", "1"],
        );
    }
    run_ok(
        &sim,
        &b,
        &["--rate", "30", "--requests", "25", "--max-tokens", "8", "--seed", "2"],
    );
    sim.stop();
    (a, a2, b)
}

#[test]
fn reports_rebuild_exactly_and_shards_merge_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, a2, b) = three_runs(dir.path());
    // Rebuilt from records, the summary equals the live one.
    let again = dir.path().join("a-again");
    let (code, _, stderr) = run(barrage().arg("report").arg(&a).arg("--output").arg(&again));
    assert_eq!(code, 0, "{stderr}");
    let (live, rebuilt) = (summary(&a), summary(&again));
    for key in ["ttft_ms", "tpot_ms", "inter_token_ms", "e2e_ms", "send_lag_ms"] {
        assert_eq!(live["stages"][0][key], rebuilt["stages"][0][key], "{key}");
    }
    assert_eq!(live["timeseries"], rebuilt["timeseries"]);

    let merged = dir.path().join("merged");
    let (code, _, stderr) = run(barrage().arg("merge").arg(&a).arg(&b).arg("--output").arg(&merged));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("has seed 1 and") && stderr.contains("seed 2: shards of one run share its seed"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(barrage().arg("merge").arg(&a).arg(&a2).arg("--output").arg(&merged));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let b = a2;
    let m = summary(&merged);
    let (sa, sb) = (summary(&a), summary(&b));
    assert_eq!(m["shards"], 2);
    assert_eq!(m["total"]["sent"].as_u64().unwrap(), 80);
    assert_eq!(records(&merged).len(), 80);
    let count = |s: &serde_json::Value| s["total"]["ttft_ms"]["count"].as_u64().unwrap();
    assert_eq!(count(&m), count(&sa) + count(&sb));
    let max = |s: &serde_json::Value| f(&s["total"]["ttft_ms"]["max"]);
    assert_eq!(max(&m), max(&sa).max(max(&sb)), "histograms merge exactly");
    assert_eq!(m["total"]["scheduled"].as_u64().unwrap(), 80);
    assert!(m["total"]["accounted"].as_bool().unwrap());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(merged.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["shards"].as_array().unwrap().len(), 2);
    // Records of the later shard moved onto the merged clock.
    let shard1_first = records(&merged)
        .iter()
        .filter(|r| r["shard"] == 1)
        .map(|r| f(&r["sent_ms"]))
        .fold(f64::INFINITY, f64::min);
    let b_first = records(&b)
        .iter()
        .map(|r| f(&r["sent_ms"]))
        .fold(f64::INFINITY, f64::min);
    let offset = f(&meta["shards"][1]["offset_ms"]);
    assert!(offset > 0.0 && (shard1_first - (b_first + offset)).abs() < 1e-6);
    assert!(merged.join("report.html").exists());

    let b = dir.path().join("b");
    let cmp = dir.path().join("cmp");
    let (code, stdout, stderr) = run(barrage().arg("compare").arg(&a).arg(&b).arg("--output").arg(&cmp));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| figure | a | b | Δ |"), "{stdout}");
    let sent_row = stdout.lines().find(|l| l.starts_with("| sent |")).unwrap();
    assert!(
        sent_row.contains("40.00") && sent_row.contains("25.00") && sent_row.contains("-37.5 %"),
        "{sent_row}"
    );
    assert!(cmp.join("compare.md").exists());
}

#[test]
fn the_html_report_renders_its_charts_in_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Debian's chromium is needed for this test: .ci/run installs it (apt-get install chromium)");
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "15", "--itl-ms", "3"]);
    let cfg = dir.path().join("run.yaml");
    std::fs::write(
        &cfg,
        "request: {max_tokens: 8}\nreport: {slo: ['ttft < 100ms']}\nstages:\n  \
         - {shape: poisson, rate: 20, duration_s: 1.5}\n  - {shape: poisson, rate: 40, duration_s: 1.5}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    run_ok(&sim, &out, &["--config", cfg.to_str().unwrap()]);
    sim.stop();
    let page = out.join("report.html");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    let body = dom
        .split("<body")
        .nth(1)
        .and_then(|b| b.split('>').next())
        .unwrap_or_default();
    assert!(body.contains(r#"data-rendered="ok""#), "the page loaded: <body{body}>");
    assert!(!body.contains("data-error"), "no script error: <body{body}>");
    // 2 load-curve charts, 4 over time, 4 distributions.
    let charts: u32 = body
        .split(r#"data-charts=""#)
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(charts, 10, "every chart drew: <body{body}>");
    assert!(dom.contains("Load curve: throughput"));
}

#[test]
fn bad_results_and_report_settings_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(barrage().arg("report").arg(dir.path().join("nothing")));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("not a Barrage results directory") && stderr.contains("records.jsonl"),
        "{stderr}"
    );

    let (a, _, _) = three_runs(dir.path());
    // A broken line in the middle is an error naming file and line.
    let path = a.join("records.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1] = "{\"id\": oops}";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (code, _, stderr) = run(barrage().arg("report").arg(&a));
    assert_ne!(code, 0);
    assert!(stderr.contains("records.jsonl:2"), "{stderr}");
    std::fs::write(&path, text).unwrap();

    let (code, _, stderr) = run(barrage().arg("report").arg(&a).args(["--slo", "latency < 3ms"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("report.slo") && stderr.contains("`latency`"),
        "{stderr}"
    );
    let (code, _, stderr) = run(barrage().arg("report").arg(&a).args(["--percentiles", "50,120"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("report.percentiles") && stderr.contains("120"),
        "{stderr}"
    );

    // A reporter that cannot be found fails on its own; the others still write.
    let (code, stdout, stderr) =
        run(barrage()
            .arg("report")
            .arg(&a)
            .args(["--reporter", "nope", "--reporter", "markdown"]));
    assert_eq!(code, 4, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("reporter nope failed") && stderr.contains("known plugins"),
        "{stderr}"
    );
    assert!(stdout.contains("report (markdown)"), "{stdout}");

    // A reporter's configuration is checked by the reporter.
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "stages: [{shape: constant, rate: 5, requests: 2}]\nreport: {reporters: [csv], reporter_config: {csv: {rows: 1}}}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(barrage()
        .args(["run", "--quiet", "--max-tokens", "2", "--output"])
        .arg(dir.path().join("r"))
        .arg("--config")
        .arg(&cfg));
    assert_eq!(code, 0, "the run itself succeeds: {stderr}");
    assert!(
        stderr.contains("reporter csv failed") && stderr.contains("`rows`"),
        "{stderr}"
    );
}

#[test]
fn a_last_line_cut_inside_a_character_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let out = dir.path().join("run");
    run_ok(&sim, &out, &["--rate", "50", "--requests", "10", "--max-tokens", "4"]);
    sim.stop();
    // A hard stop mid-write: the last line ends in the first byte of `é`.
    let mut records = std::fs::read(out.join("records.jsonl")).unwrap();
    records.extend_from_slice(b"{\"id\":99,\"error\":\"caf\xc3");
    std::fs::write(out.join("records.jsonl"), records).unwrap();
    let (code, stdout, stderr) = run(barrage().arg("report").arg(&out));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(summary(&out)["stages"][0]["sent"], 10);
}

#[test]
fn peer_views_recompute_the_run_under_each_peers_definitions() {
    let tmp = tempfile::tempdir().unwrap();
    let truth = tmp.path().join("truth.jsonl");
    let sim = SimProcess::plain_with_truth("30", "5", &truth);
    let out = tmp.path().join("run");
    let stdout = run_ok(
        &sim,
        &out,
        &[
            "--rate",
            "20",
            "--duration",
            "2",
            "--max-tokens",
            "8",
            "--compat",
            "vllm",
        ],
    );
    assert!(stdout.contains("vllm view: 40 completed in "), "{stdout}");
    assert!(out.join("compat-vllm.json").exists());
    let (code, stdout, stderr) = run(barrage().arg("report").arg(&out).args([
        "--reporter",
        "json",
        "--compat",
        "vllm,sglang,inference-perf,guidellm,aiperf",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let s = summary(&out);
    let view = |peer: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join(format!("compat-{peer}.json"))).unwrap()).unwrap()
    };
    let ok = f(&s["total"]["succeeded"]);
    let (vllm, sglang, ip, guidellm, aiperf) = (
        view("vllm"),
        view("sglang"),
        view("inference-perf"),
        view("guidellm"),
        view("aiperf"),
    );
    assert_eq!(f(&vllm["completed"]), ok);
    assert_eq!(f(&sglang["completed"]), ok);
    assert_eq!(f(&ip["stages"][0]["successes"]["count"]), ok);
    assert_eq!(f(&guidellm["request_totals"]["successful"]), ok);
    assert_eq!(f(&aiperf["request_count"]), ok);
    // vLLM's first token is the stream's first message (the chat role
    // delta): Barrage's TTFB; the others take the first content, its TTFT.
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() <= 0.01 * b.max(1.0), "{what}: {a} vs {b}");
    close(f(&vllm["mean_ttft_ms"]), f(&s["total"]["ttfb_ms"]["mean"]), "vllm ttft");
    close(
        f(&aiperf["time_to_first_token"]["avg"]),
        f(&s["total"]["ttft_ms"]["mean"]),
        "aiperf ttft",
    );
    close(
        f(&sglang["mean_ttft_ms"]),
        f(&s["total"]["ttft_ms"]["mean"]),
        "sglang ttft",
    );
    // One token per frame at 5 ms: every peer's ITL is about 5 ms here,
    // inference-perf's in seconds.
    for (what, v) in [
        ("vllm median itl", f(&vllm["median_itl_ms"])),
        ("aiperf itl", f(&aiperf["inter_token_latency"]["p50"])),
        ("guidellm itl", f(&guidellm["inter_token_latency_ms"]["p50"])),
        (
            "inference-perf itl",
            1000.0 * f(&ip["stages"][0]["successes"]["latency"]["inter_token_latency"]["p50"]),
        ),
    ] {
        assert!((4.0..8.0).contains(&v), "{what}: {v}");
    }
    for peer in ["sglang", "inference-perf", "guidellm", "aiperf"] {
        assert!(stdout.contains(&format!("{peer} view: ")), "{stdout}");
    }
    let (code, _, stderr) = run(barrage().arg("report").arg(&out).args(["--compat", "locust"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("possible values: vllm, sglang, inference-perf, guidellm, aiperf"),
        "{stderr}"
    );
}
