//! Distributed runs on one machine as on many: each shard in a network
//! namespace of its own (iproute2's `ip netns` and a veth pair each, made
//! by the test), the simulator in another, all started at one instant
//! (`--start-at`). The simulator's ground truth is the union of the
//! shards' arrivals; `barrage merge` puts their records together.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{arrivals, barrage, run, summary};

/// Network namespaces `sim` and `shard0..n`, a veth pair from each shard's
/// to the simulator's (10.77.I.2 → 10.77.I.1); deleted on drop.
struct Namespaces {
    sim: String,
    shards: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (tests/run installs iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {} (network namespaces need root, as CI has)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Namespaces {
    fn new(shards: usize) -> Namespaces {
        let tag = std::process::id() % 100_000;
        let ns = Namespaces {
            sim: format!("bsim{tag}"),
            shards: (0..shards).map(|i| format!("bsh{tag}-{i}")).collect(),
        };
        ip(&["netns", "add", &ns.sim]);
        ip(&["-n", &ns.sim, "link", "set", "lo", "up"]);
        for (i, shard) in ns.shards.iter().enumerate() {
            let (outer, inner) = (format!("bv{tag}s{i}"), format!("bv{tag}c{i}"));
            ip(&["netns", "add", shard]);
            ip(&["-n", shard, "link", "set", "lo", "up"]);
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
            ip(&["link", "set", &outer, "netns", &ns.sim]);
            ip(&["link", "set", &inner, "netns", shard]);
            ip(&["-n", &ns.sim, "addr", "add", &format!("10.77.{i}.1/24"), "dev", &outer]);
            ip(&["-n", shard, "addr", "add", &format!("10.77.{i}.2/24"), "dev", &inner]);
            ip(&["-n", &ns.sim, "link", "set", &outer, "up"]);
            ip(&["-n", shard, "link", "set", &inner, "up"]);
        }
        ns
    }

    /// `barrage` inside namespace `ns`, with the test suite's settings.
    fn barrage(ns: &str) -> Command {
        let plain = barrage();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(plain.get_program());
        for (k, v) in plain.get_envs() {
            if let Some(v) = v {
                cmd.env(k, v);
            }
        }
        cmd
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // A namespace's veth ends go with it.
        for ns in self.shards.iter().chain([&self.sim]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `barrage sim` in the simulator's namespace on `port`, writing its
/// ground truth to `truth`.
fn sim(ns: &Namespaces, port: u16, truth: &Path) -> Child {
    let mut child = Namespaces::barrage(&ns.sim)
        .args([
            "sim",
            "--mode",
            "zero",
            "--host",
            "0.0.0.0",
            "--port",
            &port.to_string(),
        ])
        .arg("--ground-truth")
        .arg(truth)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.contains("listening"), "{line}");
    child
}

/// Stop a simulator (SIGTERM: it writes the rest of its ground truth) and
/// wait for it; its ground truth file.
fn stop(mut sim: Child, truth: &Path) -> PathBuf {
    let _ = Command::new("kill").args(["-TERM", &sim.id().to_string()]).status();
    let _ = sim.wait();
    truth.to_path_buf()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Run every shard of `shape` at `rate` for `seconds` at one instant, and
/// merge them: the shards' directories, the merged one, and barrage
/// merge's stderr.
fn sharded_run(
    ns: &Namespaces,
    dir: &Path,
    port: u16,
    (shape, rate, seconds): (&str, f64, f64),
) -> (Vec<PathBuf>, PathBuf, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // Time for every shard to load its codec and connect first.
    let start_at = format!("{:.3}", now + 6.0);
    let n = ns.shards.len();
    let children: Vec<(Child, PathBuf)> = ns
        .shards
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            let out = dir.join(format!("{shape}-{i}"));
            let child = Namespaces::barrage(shard)
                .args(["run", "--quiet", "--reporter", "json"])
                .args(["--target", &format!("http://10.77.{i}.1:{port}")])
                .args([
                    "--shape",
                    shape,
                    "--rate",
                    &rate.to_string(),
                    "--duration",
                    &seconds.to_string(),
                ])
                .args(["--shard", &format!("{i}/{n}"), "--start-at", &start_at, "--seed", "7"])
                .arg("--output")
                .arg(&out)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut dirs = Vec::new();
    for (child, out) in children {
        let done = child.wait_with_output().unwrap();
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        dirs.push(out);
    }
    let merged = dir.join(format!("{shape}-merged"));
    let (code, _, stderr) = run(barrage()
        .arg("merge")
        .args(&dirs)
        .arg("--output")
        .arg(&merged)
        .args(["--reporter", "json"]));
    assert_eq!(code, 0, "{stderr}");
    (dirs, merged, stderr)
}

#[test]
fn shards_in_their_own_namespaces_offer_the_asked_shape_together() {
    let tmp = tempfile::tempdir().unwrap();
    let ns = Namespaces::new(2);
    let (port_a, port_b) = (18_081, 18_082);
    let (truth_a, truth_b) = (tmp.path().join("constant.jsonl"), tmp.path().join("poisson.jsonl"));
    let (sim_a, sim_b) = (sim(&ns, port_a, &truth_a), sim(&ns, port_b, &truth_b));

    // A constant rate interleaves: shard 0 sends arrivals 0, 2, 4, …
    let (dirs, merged, stderr) = sharded_run(&ns, tmp.path(), port_a, ("constant", 200.0, 4.0));
    let m = summary(&merged);
    let spread = f(&m["shard_start_spread_ms"]);
    assert!(spread < 5.0, "the shards started {spread} ms apart");
    assert!(stderr.contains("shards started within"), "{stderr}");
    for (i, d) in dirs.iter().enumerate() {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["start"]["shard"], serde_json::json!({"index": i, "count": 2}));
        let late = f(&meta["start"]["schedule_unix_ms"]) - f(&meta["start"]["asked_unix_ms"]);
        assert!(
            (0.0..5.0).contains(&late),
            "shard {i} started {late} ms after the instant"
        );
        // A shard starved of CPU misses arrivals, and counts them.
        let total = &summary(d)["total"];
        assert_eq!(f(&total["sent"]) + f(&total["missed"]), 400.0, "half each: {total}");
    }
    let t = arrivals(&stop(sim_a, &truth_a));
    assert_eq!(t.len(), 800, "the union is the asked schedule");
    assert_eq!(
        m["total"]["sent"].as_u64().unwrap(),
        t.len() as u64,
        "merged counts = the simulator's"
    );
    let rate = (t.len() - 1) as f64 / (t[t.len() - 1] - t[0]);
    assert!((rate - 200.0).abs() < 2.0, "union rate {rate}/s, asked 200/s");
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    let within = gaps.iter().filter(|g| (**g - 0.005).abs() < 0.0025).count();
    assert!(
        within as f64 >= 0.95 * gaps.len() as f64,
        "{within} of {} gaps near 5 ms",
        gaps.len()
    );

    // A Poisson process splits by thinning: the union is again one at the rate.
    let (_, merged, _) = sharded_run(&ns, tmp.path(), port_b, ("poisson", 200.0, 4.0));
    let t = arrivals(&stop(sim_b, &truth_b));
    assert_eq!(summary(&merged)["total"]["sent"].as_u64().unwrap(), t.len() as u64);
    assert!(
        (680..=920).contains(&t.len()),
        "{} arrivals, expected about 800",
        t.len()
    );
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
    assert!((mean - 0.005).abs() < 0.0008, "mean gap {mean}");
    assert!(
        (0.85..1.15).contains(&(sd / mean)),
        "gaps' CV {}: exponential gaps have 1",
        sd / mean
    );
}

#[test]
fn bad_shard_settings_are_refused_and_a_missing_shard_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = crate::common::SimProcess::start(&["--mode", "zero"]);
    let target = format!("http://{}", sim.addr);
    let base = |out: &Path| {
        let mut cmd = barrage();
        cmd.args([
            "run",
            "--quiet",
            "--target",
            &target,
            "--rate",
            "20",
            "--duration",
            "1",
            "--reporter",
            "json",
        ])
        .arg("--output")
        .arg(out);
        cmd
    };
    for (args, expected) in [
        (
            vec!["--shard", "2/2"],
            "the index counts from 0 and must be below the count",
        ),
        (vec!["--shard", "one"], "give INDEX/COUNT"),
        (vec!["--shards", "3"], "$JOB_COMPLETION_INDEX is not set"),
        (vec!["--start-at", "noon"], "is not a time"),
    ] {
        let (code, _, stderr) = run(base(&tmp.path().join("bad"))
            .args(&args)
            .env_remove("JOB_COMPLETION_INDEX"));
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // An Indexed Job's index; a start time in the past: at once, its lateness noted.
    let dirs: Vec<PathBuf> = (0..3).map(|i| tmp.path().join(format!("s{i}"))).collect();
    for (i, d) in dirs.iter().enumerate().take(2) {
        let (code, _, stderr) = run(base(d)
            .args(["--shards", "3", "--start-at", "2020-01-01T00:00:00Z"])
            .env("JOB_COMPLETION_INDEX", i.to_string()));
        assert_eq!(code, 0, "{stderr}");
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("meta.json")).unwrap()).unwrap();
        assert_eq!(f(&meta["start"]["shard"]["index"]), i as f64);
        assert!(
            f(&meta["start"]["schedule_unix_ms"]) - f(&meta["start"]["asked_unix_ms"]) > 1e11,
            "{meta}"
        );
    }
    // Shard 2 died: the others merge, the run is marked incomplete.
    let merged = tmp.path().join("merged");
    let (code, _, stderr) = run(barrage().arg("merge").args(&dirs[..2]).arg("--output").arg(&merged));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: shard 2 of the run is missing"), "{stderr}");
    let m = summary(&merged);
    assert_eq!(m["missing_shards"], serde_json::json!([2]));
    assert_eq!(m["complete"], false);
    // A shard given twice, and another configuration, are refused.
    let (code, _, stderr) = run(barrage()
        .arg("merge")
        .arg(&dirs[0])
        .arg(&dirs[0])
        .arg("--output")
        .arg(&merged));
    assert_ne!(code, 0);
    assert!(stderr.contains("shard 0/3 is given twice"), "{stderr}");
    let other = tmp.path().join("other");
    let (code, _, stderr) = run(base(&other).args(["--shard", "1/3", "--max-tokens", "9"]));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(barrage()
        .arg("merge")
        .arg(&dirs[0])
        .arg(&other)
        .arg("--output")
        .arg(&merged));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("ran different configurations (`request` differs)"),
        "{stderr}"
    );
}

#[test]
fn closed_loop_users_and_dataset_samples_are_divided_among_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = crate::common::SimProcess::start(&["--mode", "plain", "--ttft-ms", "20", "--itl-ms", "5"]);
    let target = format!("http://{}", sim.addr);
    let prompts = tmp.path().join("prompts.jsonl");
    let lines: Vec<String> = (0..10)
        .map(|i| format!("{{\"prompt\": \"prompt number {i}\", \"output_tokens\": 4}}"))
        .collect();
    std::fs::write(&prompts, lines.join("\n") + "\n").unwrap();
    let shard_run = |i: u32, args: &[&str]| {
        let out = tmp.path().join(format!("{}-{i}", args.join("").len()));
        let (code, _, stderr) = run(barrage()
            .args([
                "run",
                "--quiet",
                "--target",
                &target,
                "--reporter",
                "json",
                "--max-tokens",
                "4",
            ])
            .args(["--shard", &format!("{i}/2")])
            .args(args)
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{stderr}");
        crate::common::records(&out)
    };
    // Five users: shard 0 runs users 0, 2 and 4, shard 1 users 1 and 3.
    for (i, users) in [(0, 3), (1, 2)] {
        let records = shard_run(i, &["--concurrency", "5", "--duration", "1.5"]);
        let mut edges: Vec<(f64, i32)> = records
            .iter()
            .flat_map(|r| [(f(&r["sent_ms"]), 1), (f(&r["end_ms"]), -1)])
            .collect();
        edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let most = edges
            .iter()
            .scan(0, |n, e| {
                *n += e.1;
                Some(*n)
            })
            .max();
        assert_eq!(most, Some(users), "shard {i}");
    }
    // Ten prompts: each shard sends its own five, the union every one.
    let file = prompts.to_str().unwrap();
    let mut union = Vec::new();
    for i in 0..2 {
        let records = shard_run(
            i,
            &[
                "--dataset",
                "jsonl",
                "--dataset-file",
                file,
                "--rate",
                "40",
                "--requests",
                "10",
            ],
        );
        let samples: Vec<u64> = records.iter().map(|r| r["sample"].as_u64().unwrap()).collect();
        assert_eq!(samples.len(), 5, "shard {i}: {samples:?}");
        assert!(samples.iter().all(|s| s % 2 == u64::from(i)), "shard {i}: {samples:?}");
        union.extend(samples);
    }
    union.sort();
    assert_eq!(union, (0..10).collect::<Vec<u64>>());
}
