//! Autoscaling experiments: a spike against the simulator's autoscaler,
//! whose provisioning delay is known, judged from the client's records and
//! the replica counts scraped from its `/metrics`.

use crate::common::{SimProcess, barrage, run, summary, workspace};

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_spike_reports_scale_up_and_recovery_that_follow_the_provisioning_delay() {
    let tmp = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(workspace().join("examples/autoscaling.yaml")).unwrap();
    assert!(example.contains("provision_delay_s: 5"));
    let delays = [2.0, 6.0];
    let runs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = delays
            .iter()
            .map(|delay| {
                let config = tmp.path().join(format!("delay{delay}.yaml"));
                std::fs::write(
                    &config,
                    example.replace("provision_delay_s: 5", &format!("provision_delay_s: {delay}")),
                )
                .unwrap();
                let out = tmp.path().join(format!("delay{delay}"));
                scope.spawn(move || {
                    let outcome = run(barrage()
                        .args(["run", "--quiet", "--config"])
                        .arg(&config)
                        .arg("--output")
                        .arg(&out)
                        .args(["--reporter", "json"])
                        .args(["--threshold", "stage 0: server.waiting.max < 5"]));
                    (outcome, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut recoveries = Vec::new();
    for (delay, ((code, stdout, stderr), out)) in delays.iter().zip(&runs) {
        assert_eq!(code, &0, "{stdout}\n{stderr}");
        let s = summary(out);
        let server = &s["server"];
        assert_eq!(server["errors"], 0, "{server}");
        assert!(server["scrapes"].as_u64().unwrap() > 40, "{server}");
        // Per stage, the server's queue: short under the steady load, long in the spike.
        let waiting = |i: usize| f(&s["stages"][i]["server"]["waiting"]["max"]);
        assert!(waiting(0) < 5.0 && waiting(1) > 20.0, "{} / {}", waiting(0), waiting(1));
        assert_eq!(s["thresholds"][0]["passed"], true, "{}", s["thresholds"]);
        assert!(f(&s["stages"][1]["server"]["replicas"]["max"]) >= 2.0);
        let spikes = s["spikes"].as_array().unwrap();
        assert_eq!(spikes.len(), 1, "one rise of the rate: {spikes:?}");
        let spike = &spikes[0];
        assert_eq!((f(&spike["rate_before"]), f(&spike["rate"])), (40.0, 100.0));
        // The replica is asked for once the queue has held for the 1 s
        // stabilization (the autoscaler looks every 0.5 s), and serves
        // `delay` later; the scrape every 0.5 s sees it within a sample.
        let scale_up = f(&spike["scale_up_s"]);
        assert!(
            scale_up >= 1.0 + delay && scale_up <= 1.0 + delay + 2.0,
            "scale-up after {scale_up} s with a {delay} s provisioning delay"
        );
        assert_eq!(f(&spike["replicas_before"]), 1.0);
        assert!(f(&spike["replicas_peak"]) >= 2.0);
        // The objective is missed from the spike on and met again once the
        // new replicas have drained the queue that built meanwhile.
        assert_eq!(spike["recovered"], true, "{spike}");
        let recovery = f(&spike["recovery_s"]);
        assert!(
            recovery >= scale_up - 1.0 && recovery <= scale_up + 8.0,
            "recovery {recovery} s, scale-up {scale_up} s"
        );
        assert!(f(&spike["violation_s"]) >= 1.0 + delay);
        assert!(f(&spike["excess_ttft_ms_s"]) > 0.0);
        assert!(
            f(&spike["replica_seconds"]) > 15.0,
            "at least one replica through the window"
        );
        assert!(stdout.contains("spike 0: "), "{stdout}");
        eprintln!(
            "provisioning {delay} s: scale-up after {scale_up:.1} s, recovery after {recovery:.1} s, \
             {} s missed, {:.0} replica·s",
            spike["violation_s"],
            f(&spike["replica_seconds"])
        );
        recoveries.push(recovery);
    }
    // Four seconds more of provisioning delay: at least that much later recovered.
    assert!(
        recoveries[1] - recoveries[0] >= 4.0 - 1.0,
        "recoveries {recoveries:?} for delays {delays:?}"
    );
    let (code, stdout, stderr) = run(barrage().arg("compare").arg(&runs[0].1).arg(&runs[1].1));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("## spike 0: stage 1 at "), "{stdout}");
    assert!(stdout.contains("| recovery s |"), "{stdout}");
    assert!(stdout.contains("| scale-up s |"), "{stdout}");
}

#[test]
fn a_scrape_target_that_fails_is_counted_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    // Nothing listens on a port just freed; the simulator's models list is JSON.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (url, expected) in [
        (format!("http://{closed}/metrics"), "Connection refused"),
        (
            format!("http://{}/v1/models", sim.addr),
            "is not Prometheus text format",
        ),
    ] {
        let out = tmp.path().join(format!("run{}", url.len()));
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--target", &format!("http://{}", sim.addr)])
            .args(["--rate", "20", "--duration", "2", "--server-metrics", &url, "--output"])
            .arg(&out));
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let s = summary(&out);
        // The load was not disturbed: an arrival is missed only by a client
        // starved of CPU, which says so.
        let count = |k: &str| s["total"][k].as_u64().unwrap();
        let (sent, missed) = (count("sent"), count("missed"));
        assert_eq!(sent + missed, 40, "{s}");
        assert!(missed == 0 || s["stages"][0]["client"]["saturated"] == true, "{s}");
        let server = &s["server"];
        assert!(server["errors"].as_u64().unwrap() >= 1, "{server}");
        assert_eq!(server["scrapes"], 0, "{server}");
        assert!(server["last_error"].as_str().unwrap().contains(expected), "{server}");
        assert!(stdout.contains(&format!("server ({url}): 0 scrapes")), "{stdout}");
        // Every failure is on disk too, and a rebuild keeps them.
        let lines = std::fs::read_to_string(out.join("server.jsonl")).unwrap();
        assert_eq!(lines.lines().count() as u64, server["errors"].as_u64().unwrap());
        let (code, _, stderr) = run(barrage().arg("report").arg(&out).args(["--reporter", "json"]));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(summary(&out)["server"]["errors"], server["errors"]);
    }
}

#[test]
fn the_servers_own_request_counts_and_ttft_per_stage_match_the_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let truth = tmp.path().join("truth.jsonl");
    let sim = SimProcess::plain_with_truth("50", "2", &truth);
    // A pause between the stages: a scrape falls where nothing is in
    // flight, so each stage's counts run from one quiet moment to the next.
    let (mut cmd, out) = crate::common::config_run(
        &sim,
        tmp.path(),
        "stages",
        "stages:\n  - {shape: constant, rate: 20, duration_s: 2, pause_after_s: 1.5}\n  \
         - {shape: constant, rate: 40, duration_s: 2}\nrequest: {max_tokens: 8}\n\
         server_metrics: {interval_s: 0.3}\n",
    );
    let (code, stdout, stderr) = run(cmd.args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    for i in 0..2 {
        let stage = &s["stages"][i];
        let server = &stage["server"];
        assert_eq!(f(&server["requests"]), f(&stage["succeeded"]), "stage {i}: {server}");
        // The simulator's TTFT (50 ms, its histogram's bucket is 40–60 ms)
        // beside the client's, which adds the loopback and the client's reads.
        let (client, own) = (f(&stage["ttft_ms"]["p50"]), f(&server["ttft_ms"]["p50"]));
        assert!((40.0..=60.0).contains(&own), "stage {i}: server TTFT p50 {own}");
        assert!(
            (client - own).abs() < 15.0,
            "stage {i}: client {client} ms, server {own} ms"
        );
        assert_eq!(f(&server["ttft_ms"]["count"]), f(&stage["succeeded"]), "{server}");
    }
    assert_eq!(f(&s["total"]["server"]["requests"]), f(&s["total"]["succeeded"]));
    assert!(stdout.contains("requests, "), "{stdout}");
    assert!(stdout.contains("TTFT p50 "), "{stdout}");
    // The same figures from the records and server.jsonl alone, open to thresholds.
    let (code, _, stderr) = run(barrage().arg("report").arg(&out).args([
        "--reporter",
        "json",
        "--threshold",
        "server.ttft_ms.p99 < 100ms",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(&out)["stages"][1]["server"], s["stages"][1]["server"]);
    let (code, _, stderr) = run(barrage().arg("report").arg(&out).args([
        "--reporter",
        "json",
        "--threshold",
        "stage 1: server.requests < 10",
    ]));
    assert_eq!(code, 7, "{stderr}");
    // Every report shows the server's figures.
    let (code, _, stderr) = run(barrage().arg("report").arg(&out).args([
        "--reporter",
        "csv",
        "--reporter",
        "markdown",
        "--reporter",
        "html",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let csv = std::fs::read_to_string(out.join("stages.csv")).unwrap();
    let mut rows = csv.lines().map(|l| l.split(',').collect::<Vec<_>>());
    let header = rows.next().unwrap();
    let column = header
        .iter()
        .position(|c| *c == "server_requests")
        .expect("server_requests");
    let first: f64 = rows.next().unwrap()[column].parse().unwrap();
    assert_eq!(first, f(&s["stages"][0]["server"]["requests"]));
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("| server: TTFT p50 / p99 (ms) |"), "{markdown}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Client and server over time") && html.contains("server: running"));
}

#[test]
fn several_expositions_are_read_as_one_server_and_one_missing_fails_the_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        SimProcess::start(&["--mode", "zero"]),
        SimProcess::start(&["--mode", "zero"]),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = |urls: &[String]| {
        format!(
            "stages:\n  - {{shape: constant, rate: 20, duration_s: 2}}\nserver_metrics:\n  interval_s: 0.5\n  urls: [{}]\n",
            urls.join(", ")
        )
    };
    let both = [
        format!("http://{}/metrics", a.addr),
        format!("http://{}/metrics", b.addr),
    ];
    let (mut cmd, out) = crate::common::config_run(&a, tmp.path(), "both", &yaml(&both));
    let (code, stdout, stderr) = run(cmd.args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    let server = &s["total"]["server"];
    // One replica each; only the first was sent requests.
    assert_eq!(f(&server["replicas"]["max"]), 2.0, "{server}");
    assert_eq!(f(&server["requests"]), f(&s["total"]["succeeded"]), "{server}");
    assert_eq!(s["server"]["url"], both.join(" + "));

    let one_gone = [both[0].clone(), format!("http://{closed}/metrics")];
    let (mut cmd, out) = crate::common::config_run(&a, tmp.path(), "gone", &yaml(&one_gone));
    let (code, stdout, stderr) = run(cmd.args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let s = summary(&out);
    assert_eq!(s["server"]["scrapes"], 0, "{}", s["server"]);
    let error = s["server"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("http://{closed}/metrics: ")) && error.contains("Connection refused"),
        "{error}"
    );
}
