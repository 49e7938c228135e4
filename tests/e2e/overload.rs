//! Past its own limits the client stays an instrument: arrivals it cannot
//! send on time are missed and counted (never sent in a burst to catch up),
//! every queue is bounded, the saturation is said in every report, and
//! the accounting still holds exactly.

use std::path::{Path, PathBuf};

use crate::common::*;

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The stage's accounting holds, and every request sent has a record.
fn assert_accounted_and_recorded(out: &Path, stage: &serde_json::Value) {
    assert_accounted(stage);
    assert_eq!(
        records(out).len() as u64,
        n(&stage["sent"]),
        "one record per request sent"
    );
}

/// How long after its scheduled time a record was sent, ms.
fn lag(r: &serde_json::Value) -> f64 {
    r["sent_ms"].as_f64().unwrap() - r["scheduled_ms"].as_f64().unwrap()
}

/// The most any record was sent after its scheduled time, ms.
fn worst_lag(recs: &[serde_json::Value]) -> f64 {
    recs.iter().map(lag).fold(0.0, f64::max)
}

/// Up to ten records sent more than `ms` after their time: (scheduled ms,
/// lag ms, connection) each, to tell one stall from many in a failure.
fn latest(recs: &[serde_json::Value], ms: f64) -> Vec<(f64, f64, serde_json::Value)> {
    recs.iter()
        .filter(|r| lag(r) > ms)
        .take(10)
        .map(|r| (r["scheduled_ms"].as_f64().unwrap(), lag(r), r["connection_id"].clone()))
        .collect()
}

/// `barrage run --quiet` against `sim` with `yaml` as its config file and
/// `args`; the exit code, stdout, stderr and the results directory.
fn run_against(sim: &SimProcess, dir: &Path, yaml: &str, args: &[&str]) -> (i32, String, String, PathBuf) {
    let (mut cmd, out) = config_run(sim, dir, "run", yaml);
    let (code, stdout, stderr) = run(cmd.args(args));
    (code, stdout, stderr, out)
}

/// Whether one of the client's reasons for saturation says `text`.
fn has_reason(client: &serde_json::Value, text: &str) -> bool {
    client["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains(text))
}

#[test]
fn past_its_saturation_the_client_misses_arrivals_says_so_everywhere_and_stays_bounded() {
    // 40,000 arrivals a second are far past what this client sends on a
    // test machine (a few thousand): most must be missed, none sent late
    // beyond the bound, and the stage must end on time.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let (code, stdout, stderr, out) = run_against(
        &sim,
        dir.path(),
        "max_send_lag_ms: 50\nrequest: {max_tokens: 16}\nstages: [{shape: constant, rate: 40000, duration_s: 2}]\n",
        &["--strict-client"],
    );
    sim.stop();
    assert_eq!(code, 6, "--strict-client fails a saturated run: {stderr}");
    assert!(
        stderr.contains("error: the client was saturated in stage 0"),
        "{stderr}"
    );
    assert!(stdout.contains("CLIENT SATURATED"), "{stdout}");
    let s = summary(&out);
    let stage = &s["stages"][0];
    assert_eq!(n(&stage["scheduled"]), 80_000, "the whole schedule is accounted for");
    assert!(n(&stage["missed"]) > 1_000, "{stage}");
    assert_accounted_and_recorded(&out, stage);
    let client = &stage["client"];
    assert_eq!(client["saturated"], true, "{client}");
    assert_eq!(client["missed"], stage["missed"]);
    assert!(has_reason(client, "arrivals were missed"), "{client}");
    let recs = records(&out);
    // The pacer checks the bound just before it sends; a little more covers
    // a preemption between the check and the send's stamp.
    assert!(
        worst_lag(&recs) < 50.0 + 50.0,
        "no arrival went long after its time: {} ms; the latest: {:?}",
        worst_lag(&recs),
        latest(&recs, 50.0)
    );
    let last_send = recs.iter().map(|r| r["sent_ms"].as_f64().unwrap()).fold(0.0, f64::max);
    assert!(
        last_send < 2_000.0 + 150.0,
        "the stage ended on time: last send at {last_send} ms"
    );
    // Memory stays bounded: nothing queues past the bounds, whatever was asked.
    let rss = s["host"]["peak_rss_mib"].as_f64().unwrap();
    assert!(rss < 512.0, "peak RSS {rss} MiB");
    // Every report says so.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**Client saturated:"), "{md}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<p class=warn>Client saturated:"));
    let csv = std::fs::read_to_string(out.join("stages.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    let col = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(col("client_saturated"), "true");
    assert_eq!(col("missed"), stage["missed"].to_string());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["stages"][0]["client"]["saturated"], true);
}

#[test]
fn a_wait_for_a_connection_past_the_send_lag_bound_is_a_miss_not_a_late_send() {
    // One connection serving ~150 ms requests handles ~7 of the 40 a second
    // offered; the rest wait for it, and past 300 ms are missed.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "100", "--itl-ms", "10"]);
    let (code, _, stderr, out) = run_against(
        &sim,
        dir.path(),
        "max_connections: 1\nmax_send_lag_ms: 300\nrequest: {max_tokens: 5}\n\
         stages: [{shape: constant, rate: 40, duration_s: 1.5}]\n",
        &[],
    );
    sim.stop();
    assert_eq!(
        code, 0,
        "a saturated client only warns without --strict-client: {stderr}"
    );
    assert!(stderr.contains("warning: the client was saturated"), "{stderr}");
    let stage = &summary(&out)["stages"][0];
    assert_eq!(n(&stage["scheduled"]), 60);
    assert!(n(&stage["missed"]) > 20, "{stage}");
    assert!(n(&stage["succeeded"]) >= 5, "{stage}");
    assert_accounted_and_recorded(&out, stage);
    let recs = records(&out);
    assert!(
        recs.iter().all(|r| r["status"] == "ok"),
        "a missed arrival leaves no failed record"
    );
    // Sent at most the bound late (plus scheduling slack), never queued for seconds.
    assert!(worst_lag(&recs) < 300.0 + 100.0, "{}", worst_lag(&recs));
}

#[test]
fn a_decode_backlog_past_its_bound_misses_arrivals_until_the_plugin_threads_catch_up() {
    // Each push burns ~40 ms on the one plugin thread: 100 streams a second
    // of one or two pushes each need seconds of decoding per second, so
    // frames pile up until the backlog bound (0.25 MiB, ~20 streams) stops
    // new sends.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let hostile = test_plugin("hostile");
    let (code, _, stderr, out) = run_against(
        &sim,
        dir.path(),
        "plugin_threads: 1\nmax_decode_backlog_mib: 0.25\n",
        &[
            "--codec",
            hostile.to_str().unwrap(),
            "--codec-config",
            r#"{"attack":"slow-decode","spins":30000000}"#,
            "--plugin-deadline-ms",
            "5000",
            "--rate",
            "100",
            "--duration",
            "2",
            "--max-tokens",
            "64",
        ],
    );
    sim.stop();
    assert_eq!(code, 0, "{stderr}");
    let stage = &summary(&out)["stages"][0];
    assert_accounted_and_recorded(&out, stage);
    let client = &stage["client"];
    assert!(n(&client["missed_for_backlog"]) > 0, "{client}");
    assert!(n(&stage["missed"]) >= n(&client["missed_for_backlog"]));
    assert_eq!(client["saturated"], true);
    assert!(has_reason(client, "decode backlog was full"), "{client}");
    // The bound holds the backlog near it: what streams already in flight
    // add after it is reached, not everything the schedule asked.
    let peak = client["decode_backlog_peak_mib"].as_f64().unwrap();
    assert!(peak > 0.25 && peak < 4.0, "backlog peak {peak} MiB");
    // What was sent was decoded in full, however late: a backlog changes no result.
    assert_eq!(stage["succeeded"], stage["sent"], "{stage}");
}

#[test]
fn a_long_stream_decoded_in_merged_batches_keeps_to_its_deadline_per_frame() {
    // 100,000 frames arrive faster than one plugin thread decodes them, so
    // the thread hands thousands of queued frames to one push. Its deadline
    // grows with the frames it is given: a valid stream never times out.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let (code, _, stderr, out) = run_against(
        &sim,
        dir.path(),
        "plugin_threads: 1\n",
        &["--rate", "2", "--requests", "2", "--max-tokens", "100000"],
    );
    sim.stop();
    assert_eq!(code, 0, "{stderr}");
    for r in records(&out) {
        assert_eq!(r["status"], "ok", "{}", r["error"]);
        assert_eq!(r["output_tokens"], 100_000);
    }
}
