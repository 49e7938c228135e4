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
fn the_released_0_1_0_contract_is_unchanged() {
    let frozen = wit_files(&workspace().join("wit/frozen/0.1.0"));
    assert!(!frozen.is_empty());
    assert_eq!(
        digest(&frozen),
        FROZEN_0_1_0,
        "wit/frozen/0.1.0 changed: released contracts must never change"
    );
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
