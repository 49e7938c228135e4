//! The pods the operator makes, run here as a kubelet would run them: the
//! ConfigMap's run.yaml on disk, each shard container's args with its
//! `JOB_COMPLETION_INDEX` (the `$(VAR)`s expanded, `/config` and `/results`
//! where the volumes would be), then the merge container's args, its
//! termination message a file. What the operator reads back from that
//! message (`observe::headline`) is checked against the merged summary and
//! the simulator's ground truth.

use std::path::Path;

use barrage_operator::crd::{Arrival, BenchmarkRun, BenchmarkRunSpec, Sweep, Traffic};
use barrage_operator::render::{self, Defaults, Plan};
use k8s_openapi::api::core::v1::Pod;

use crate::common::{SimProcess, arrivals, barrage, summary};

fn plan(endpoint: String, shards: u32, start_at: i64) -> Plan {
    plan_of(
        BenchmarkRunSpec {
            endpoint,
            traffic: Traffic {
                rate: Some(40.0),
                arrival: Arrival::Constant,
                duration_seconds: Some(3.0),
                ..Traffic::default()
            },
            input_length: Some(32),
            max_output_length: Some(8),
            shards,
            thresholds: vec!["error_rate < 1%".into()],
            ..BenchmarkRunSpec::default()
        },
        start_at,
    )
}

fn plan_of(spec: BenchmarkRunSpec, start_at: i64) -> Plan {
    let mut run = BenchmarkRun::new("demo", spec);
    run.metadata.namespace = Some("bench".into());
    run.metadata.uid = Some("6f1c2a4e-7d3b-4c1e-9a55-0d2f8b7e4c10".into());
    render::plan(
        &run,
        &Defaults {
            image: "barrage:test".into(),
        },
        start_at,
    )
    .unwrap()
}

/// A container's args as the kubelet would pass them, in this directory.
fn args_of(job: &k8s_openapi::api::batch::v1::Job, index: Option<u32>, root: &Path) -> Vec<String> {
    let container = &job.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
    container
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| {
            let a = match index {
                Some(i) => a.replace("$(JOB_COMPLETION_INDEX)", &i.to_string()),
                None => a,
            };
            assert!(!a.contains("$("), "{a}: a variable the pod does not have");
            let a = a.replace(
                render::TERMINATION_LOG,
                &root.join("termination-log").display().to_string(),
            );
            [render::CONFIG_DIR, render::RESULTS_DIR].iter().fold(a, |a, dir| {
                a.replace(&format!("{dir}/"), &format!("{}{dir}/", root.display()))
            })
        })
        .collect()
}

/// The merge pod as the API would return it, its termination message the
/// file the merge wrote.
fn merge_pod(message: String) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "demo-merge-x"},
        "status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "barrage", "image": "barrage:test", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "message": message}}
        }]}
    }))
    .unwrap()
}

fn pods_run(plan: &Plan, root: &Path, indexes: &[u32]) {
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let yaml = &plan.config_map.data.as_ref().unwrap()["run.yaml"];
    std::fs::write(config.join("run.yaml"), yaml).unwrap();
    let shards: Vec<_> = indexes
        .iter()
        .map(|&i| {
            barrage()
                .args(args_of(&plan.shards, Some(i), root))
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in shards {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a shard failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_operators_pods_run_the_asked_load_and_their_merge_reports_it_to_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let sim = SimProcess::plain_with_truth("2", "1", &truth);
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 2;
    let plan = plan(format!("http://{}", sim.addr), 2, start_at);
    pods_run(&plan, dir.path(), &[0, 1]);
    let out = barrage()
        .args(args_of(plan.merge.as_ref().unwrap(), None, dir.path()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the merge failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sim.stop();

    let message = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    assert!(message.len() <= barrage_core::headline::MAX_BYTES);
    let headline = barrage_operator::observe::headline(&[merge_pod(message)]).expect("the operator reads the figures");
    let merged = summary(&dir.path().join("results/demo/merged"));
    let sent = arrivals(&truth).len() as u64;
    // A shard starved of CPU misses arrivals, and counts them.
    let missed = merged["total"]["missed"].as_u64().unwrap();
    assert_eq!(sent + missed, 120, "40/s for 3 s between the two shards");
    assert_eq!(headline.sent, sent);
    assert_eq!(headline.sent, merged["total"]["sent"].as_u64().unwrap());
    assert_eq!(headline.succeeded, sent);
    assert_eq!(
        headline.achieved_rate,
        merged["total"]["achieved_rate"].as_f64().unwrap()
    );
    assert_eq!(headline.ttft_p99_ms, merged["total"]["ttft_ms"]["p99"].as_f64());
    assert!(headline.ttft_p50_ms.unwrap() >= 2.0, "{headline:?}");
    assert_eq!(headline.thresholds_passed, Some(true));
    assert!(headline.complete && headline.missing_shards.is_empty(), "{headline:?}");
    let spread = headline.shard_start_spread_ms.expect("two shards have a start spread");
    assert!(spread < 50.0, "shards started {spread} ms apart");
}

#[test]
fn a_shard_that_never_ran_is_named_missing_and_the_rest_is_merged() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let sim = SimProcess::plain_with_truth("1", "1", &truth);
    let plan = plan(format!("http://{}", sim.addr), 3, 0);
    // Shard 1's pod never started; its start instant is long past (0), so
    // the others start at once and note how late.
    pods_run(&plan, dir.path(), &[0, 2]);
    let out = barrage()
        .args(args_of(plan.merge.as_ref().unwrap(), None, dir.path()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    sim.stop();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("leaving out") && stderr.contains("shard-1"), "{stderr}");
    let message = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    let headline = barrage_operator::observe::headline(&[merge_pod(message)]).unwrap();
    assert_eq!(headline.missing_shards, [1]);
    assert!(!headline.complete);
    assert_eq!(headline.sent, arrivals(&truth).len() as u64);
    assert_eq!(headline.sent, 80, "two thirds of 40/s for 3 s");
}

/// A `sweep:` run is one pod running `barrage sweep`, its knee in its own
/// termination message: against the batching model's 80 requests/s.
#[test]
fn a_sweeps_one_pod_finds_the_knee_and_reports_it_to_the_status() {
    let dir = tempfile::tempdir().unwrap();
    // 8 sequences of 10 tokens in 10 ms steps: 80 requests/s.
    let sim = SimProcess::from_yaml(
        dir.path(),
        "mode: batching\nbatching: {max_num_seqs: 8, step_base_ms: 8, step_per_seq_ms: 0.25, prefill_per_token_ms: 0}\n",
    );
    let plan = plan_of(
        BenchmarkRunSpec {
            endpoint: format!("http://{}", sim.addr),
            input_length: Some(16),
            max_output_length: Some(10),
            sweep: Some(Sweep {
                point_duration_seconds: Some(5.0),
                warmup_seconds: Some(1.0),
                probe_duration_seconds: Some(3.0),
                ..Sweep::default()
            }),
            shards: 1,
            ..BenchmarkRunSpec::default()
        },
        0,
    );
    assert!(plan.merge.is_none(), "a sweep has nothing to merge");
    pods_run(&plan, dir.path(), &[0]);
    sim.stop();
    let message = std::fs::read_to_string(dir.path().join("termination-log")).unwrap();
    let headline = barrage_operator::observe::headline(&[merge_pod(message)]).expect("the operator reads the figures");
    let sweep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("results/demo/sweep/sweep.json")).unwrap()).unwrap();
    let knee = headline.knee_rate.expect("a knee");
    assert_eq!(Some(knee), sweep["knee"]["rate"].as_f64());
    assert!((knee - 80.0).abs() < 8.0, "knee {knee} req/s, the model's is 80");
    assert!(headline.complete && headline.sent > 0, "{headline:?}");
}

#[test]
fn merge_with_nothing_to_merge_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = barrage()
        .args(["merge", "--skip-missing"])
        .arg(dir.path().join("shard-0"))
        .arg("--output")
        .arg(dir.path().join("m"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("none of the directories given holds a run"), "{stderr}");
}
