//! The released plugin contract never changes silently.
//!
//! `wit/frozen/<version>/` holds a copy of every released version of the
//! `barrage:plugin` package. Published plugins were built against those
//! files, so they must never change (their digest is pinned here), and the
//! live `wit/` must equal the frozen copy of the version it declares: any
//! change to the contract needs a new version (and a new frozen copy).

use sha2::{Digest, Sha256};

use crate::common::{barrage, records, run, test_plugin, workspace};

/// sha256 over the frozen 0.1.0 files (name, NUL, contents, NUL; sorted by name).
const FROZEN_0_1_0: &str = "33387d4c75cfd18290eb05778e8d58c44c47838434aa3d23138f10589b634484";

/// The same over the frozen 0.2.0 files.
const FROZEN_0_2_0: &str = "d29e5cd0715e0aa909e06b4fa4f2eaa75c166df03873351458a6ceafda0f3975";

fn wit_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wit"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn digest(files: &[(String, Vec<u8>)]) -> String {
    let mut h = Sha256::new();
    for (name, body) in files {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(body);
        h.update([0]);
    }
    hex::encode(h.finalize())
}

#[test]
fn the_released_contracts_are_unchanged() {
    for (version, pinned) in [("0.1.0", FROZEN_0_1_0), ("0.2.0", FROZEN_0_2_0)] {
        let frozen = wit_files(&workspace().join("wit/frozen").join(version));
        assert!(!frozen.is_empty());
        assert_eq!(
            digest(&frozen),
            pinned,
            "wit/frozen/{version} changed: released contracts must never change"
        );
    }
}

#[test]
fn the_live_contract_matches_the_frozen_copy_of_its_version() {
    let live = wit_files(&workspace().join("wit"));
    let version = live
        .iter()
        .find_map(|(_, body)| {
            let text = String::from_utf8_lossy(body);
            text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("package barrage:plugin@")
                    .map(|v| v.trim_end_matches(';').to_string())
            })
        })
        .expect("wit/ declares package barrage:plugin@<version>");
    let frozen_dir = workspace().join("wit/frozen").join(&version);
    assert!(
        frozen_dir.exists(),
        "wit/ declares barrage:plugin@{version} but wit/frozen/{version}/ does not exist: copy wit/*.wit there when releasing"
    );
    let frozen = wit_files(&frozen_dir);
    assert_eq!(
        live.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        frozen.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "the WIT files of {version} differ from the frozen copy"
    );
    for ((name, a), (_, b)) in live.iter().zip(&frozen) {
        assert!(
            a == b,
            "wit/{name} differs from wit/frozen/{version}/{name}: released contracts are immutable; bump the package version for a change"
        );
    }
}

/// `barrage run` with the frozen-contract codec (bound straight to
/// `wit/frozen/0.1.0`, no SDK) against the embedded simulator: its records,
/// and the numbers its `encode` drew from the host's `random`, in order.
fn run_frozen_codec(seed: &str, out: &std::path::Path) -> (Vec<serde_json::Value>, Vec<u64>) {
    let codec = test_plugin("frozen-contract");
    let (code, _, stderr) = run(barrage()
        .args([
            "run",
            "--quiet",
            "--rate",
            "50",
            "--requests",
            "5",
            "--seed",
            seed,
            "--codec",
        ])
        .arg(&codec)
        .arg("--output")
        .arg(out));
    assert_eq!(code, 0, "{stderr}");
    let draws = stderr
        .lines()
        .filter_map(|l| l.split("random draw ").nth(1))
        .map(|n| n.trim().parse().expect("a number"))
        .collect();
    (records(out), draws)
}

#[test]
fn a_plugin_built_from_the_frozen_0_1_0_contract_loads_through_the_version_dispatch() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(barrage()
        .args(["plugin", "inspect"])
        .arg(test_plugin("frozen-contract")));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("barrage:plugin@0.1.0"), "{stdout}");
    assert!(stdout.contains("frozen-contract"), "{stdout}");
    let (recs, _) = run_frozen_codec("7", &dir.path().join("run"));
    assert_eq!(recs.len(), 5);
    for r in &recs {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["output_tokens"].as_u64().unwrap() > 0, "{r}");
    }
}

#[test]
fn a_codec_draws_from_the_runs_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (_, a) = run_frozen_codec("1", &dir.path().join("a"));
    let (_, again) = run_frozen_codec("1", &dir.path().join("again"));
    let (_, b) = run_frozen_codec("2", &dir.path().join("b"));
    assert!(a.len() >= 5 && b.len() >= 5, "{a:?} {b:?}");
    assert_eq!(a[..5], again[..5], "the same seed gives the same sequence");
    assert_ne!(a[..5], b[..5], "another seed gives another sequence");
}

#[test]
fn the_sdk_carries_the_live_contract() {
    let live = wit_files(&workspace().join("wit"));
    let vendored = wit_files(&workspace().join("sdk/wit"));
    assert!(!live.is_empty());
    assert!(
        live == vendored,
        "sdk/wit must be a copy of wit/ (the SDK crate is published with it): cp wit/*.wit sdk/wit/"
    );
}

/// A request waits at most `max_encode_lead_s` between its encode (the
/// `send-time` a codec signs with) and its send: the feed encodes far ahead
/// of a slow schedule, and encodes again what waited too long.
#[test]
fn a_request_is_sent_within_the_encode_lead_of_its_send_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.yaml");
    std::fs::write(
        &config,
        "max_encode_lead_s: 0.5\nstages:\n  - {shape: constant, rate: 4, requests: 12}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, _, stderr) = run(barrage()
        .args(["run", "--quiet", "--config"])
        .arg(&config)
        .arg("--codec")
        .arg(test_plugin("hostile"))
        .args(["--codec-config", r#"{"attack": "clock"}"#, "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    // id → the send-time of its last encode, and how often it was encoded.
    let mut encodes: std::collections::BTreeMap<u64, (f64, u32)> = Default::default();
    for line in stderr.lines() {
        let Some(rest) = line.split("encoded ").nth(1) else {
            continue;
        };
        let (id, at) = rest.split_once(" at ").unwrap();
        let entry = encodes.entry(id.parse().unwrap()).or_insert((0.0, 0));
        *entry = (at.trim().parse().unwrap(), entry.1 + 1);
    }
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    let started = meta["started_unix_ms"].as_f64().unwrap() / 1000.0;
    let recs = records(&out);
    assert_eq!(recs.len(), 12);
    for r in &recs {
        let id = r["id"].as_u64().unwrap();
        let sent = started + r["sent_ms"].as_f64().unwrap() / 1000.0;
        let (send_time, _) = encodes[&id];
        let waited = sent - send_time;
        // The start is read a moment apart from the origin of record times.
        assert!(
            (-0.05..0.5 + 0.2).contains(&waited),
            "request {id} was sent {waited:.3} s after its send-time: {encodes:?}"
        );
    }
    assert!(
        encodes.values().any(|(_, n)| *n > 1),
        "the last requests waited 3 s for their send, so they were encoded again: {encodes:?}"
    );
}

/// A 0.1 codec is given what 0.1 can say; a request it cannot (inputs to
/// embed) fails by itself, with the reason, and nothing is sent.
#[test]
fn a_request_the_0_1_contract_cannot_express_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (code, _, stderr) = run(barrage()
        .args(["run", "--quiet", "--rate", "20", "--requests", "3", "--codec"])
        .arg(test_plugin("frozen-contract"))
        .args([
            "--dataset",
            "synthetic",
            "--dataset-config",
            r#"{"count": 3, "format": "inputs", "batch": 2}"#,
        ])
        .arg("--output")
        .arg(&out));
    assert_ne!(code, 2, "{stderr}");
    let recs = records(&out);
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r["status"], "plugin_error", "{r}");
        assert!(
            r["error"].as_str().unwrap().contains(
                "this codec was built for contract 0.1.0, which has no inputs to embed: use a codec built for 0.2"
            ),
            "{r}"
        );
        assert_eq!(r["bytes_sent"], 0, "{r}");
    }
}
