//! Approved plugin sets: `barrage plugin lock` writes the lockfile, a run
//! with `--locked` (or `locked: true`) loads only what it approves, signed
//! as it asks. Signatures are made by Debian's `minisign`, a tool nobody
//! here wrote (tests/setup installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{SimProcess, barrage, run, test_plugin};

/// A minisign key pair in `dir`: (public key file, secret key file).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (public, secret) = (dir.join(format!("{name}.pub")), dir.join(format!("{name}.key")));
    let out = Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .output()
        .expect("minisign (tests/setup installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (public, secret)
}

/// Sign `file` with `secret`, into `file.minisig`.
fn sign(file: &Path, secret: &Path) {
    let out = Command::new("minisign")
        .args(["-S", "-W", "-s"])
        .arg(secret)
        .arg("-m")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `barrage plugin lock ARGS` in `dir`, which must succeed.
fn lock(dir: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = run(barrage().current_dir(dir).args(["plugin", "lock"]).args(args));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    stdout
}

/// A short run in `dir` against `sim` with `args`: (exit code, stderr).
fn locked_run(dir: &Path, sim: &SimProcess, out: &str, args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run(barrage()
        .current_dir(dir)
        .args([
            "run",
            "--quiet",
            "--requests",
            "4",
            "--rate",
            "20",
            "--max-tokens",
            "4",
            "--target",
            &format!("http://{}", sim.addr),
            "--output",
            out,
        ])
        .args(args));
    (code, stderr)
}

fn edit_lock(dir: &Path, from: &str, to: &str) {
    let path = dir.join("barrage.lock");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    std::fs::write(&path, text.replace(from, to)).unwrap();
}

#[test]
fn a_locked_run_loads_the_approved_signed_set_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let (public, secret) = keypair(d, "team");
    let codec = d.join("ollama-generate.wasm");
    std::fs::copy(test_plugin("ollama-generate"), &codec).unwrap();
    sign(&codec, &secret);
    // Every built-in, and the signed plugin with its key.
    lock(d, &[]);
    let out = lock(
        d,
        &[
            "ollama-generate.wasm",
            "--key",
            &format!("team={}", public.display()),
            "--require-signatures",
        ],
    );
    assert!(out.contains("ollama-generate        codec"), "{out}");
    let text = std::fs::read_to_string(d.join("barrage.lock")).unwrap();
    assert!(
        text.contains("signed_by = \"team\"") && text.contains("require_signatures = true"),
        "{text}"
    );
    assert!(
        text.contains("name = \"openai-chat\""),
        "the built-ins locked before are kept: {text}"
    );

    // The approved set runs, and meta.json says exactly which code it was.
    let (code, stderr) = locked_run(d, &sim, "ok", &["--locked", "--dataset", "synthetic"]);
    assert_eq!(code, 0, "{stderr}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("ok/meta.json")).unwrap()).unwrap();
    let lock_sha = barrage_plugin_host::engine::sha256_hex(&std::fs::read(d.join("barrage.lock")).unwrap());
    assert_eq!(meta["lockfile"]["sha256"], lock_sha.as_str());
    assert_eq!(meta["plugin"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(meta["dataset"]["sha256"].as_str().unwrap().len(), 64);
    let reporters: Vec<&str> = meta["reporters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(reporters, ["json", "csv", "markdown", "html"]);
    for r in meta["reporters"].as_array().unwrap() {
        assert!(text.contains(r["sha256"].as_str().unwrap()), "{r}");
    }
    // The signed plugin, loaded as a codec from its file.
    let (code, stderr) = locked_run(
        d,
        &sim,
        "signed",
        &["--locked", "--codec", "ollama-generate.wasm", "--reporter", "json"],
    );
    // The simulator answers OpenAI, not Ollama: loaded and run is the point.
    assert!(code == 0 || code == 5, "{stderr}");
    assert!(!stderr.contains("lockfile"), "{stderr}");
}

#[test]
fn a_locked_run_refuses_what_the_lockfile_does_not_approve_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let (public, secret) = keypair(d, "team");
    let (_, other_secret) = keypair(d, "other");
    let codec = d.join("ollama-generate.wasm");
    std::fs::copy(test_plugin("ollama-generate"), &codec).unwrap();
    sign(&codec, &secret);
    lock(
        d,
        &[
            "openai-chat",
            "json",
            "ollama-generate.wasm",
            "--key",
            &format!("team={}", public.display()),
        ],
    );
    let refused = |name: &str, args: &[&str], why: &str| {
        let (code, stderr) = locked_run(d, &sim, name, args);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(why), "{name}: {stderr}");
        assert!(
            !d.join(name).join("records.jsonl").exists(),
            "{name}: a refused run sends nothing"
        );
    };
    // A plugin the lockfile does not list: a reporter, found before the run.
    refused("unlisted", &["--locked"], "plugin 'csv' (sha256 ");
    refused(
        "unlisted-codec",
        &["--locked", "--codec", "openai-completions", "--reporter", "json"],
        "is not in the lockfile barrage.lock",
    );
    // --lockfile alone enforces nothing, and says so.
    refused(
        "unenforced",
        &["--lockfile", "barrage.lock", "--reporter", "json"],
        "--lockfile barrage.lock is given without --locked",
    );
    let signed = ["--locked", "--codec", "ollama-generate.wasm", "--reporter", "json"];
    // A signature by another key.
    std::fs::copy(d.join("ollama-generate.wasm.minisig"), d.join("good.minisig")).unwrap();
    sign(&codec, &other_secret);
    refused("other-key", &signed, "was made with another key than key 'team'");
    // A signature that does not match the file (another file's).
    let decoy = d.join("decoy.wasm");
    std::fs::write(&decoy, b"not the plugin").unwrap();
    sign(&decoy, &secret);
    std::fs::copy(d.join("decoy.wasm.minisig"), d.join("ollama-generate.wasm.minisig")).unwrap();
    refused("bad-signature", &signed, "does not verify with key 'team'");
    std::fs::copy(d.join("good.minisig"), d.join("ollama-generate.wasm.minisig")).unwrap();
    // The key expired, then revoked.
    let key_line = "name = \"team\"\n";
    edit_lock(d, key_line, &format!("{key_line}not_after = \"2020-01-01\"\n"));
    refused("expired", &signed, "trusts only until 2020-01-01: the key has expired");
    edit_lock(d, "not_after = \"2020-01-01\"\n", "revoked = true\n");
    refused("revoked", &signed, "marks revoked");
    edit_lock(d, "revoked = true\n", "");
    // A tampered file (its signature no longer matters: its digest is not approved).
    let mut bytes = std::fs::read(&codec).unwrap();
    bytes.push(0);
    std::fs::write(&codec, bytes).unwrap();
    refused("tampered", &signed, "but the lockfile barrage.lock approves it only as");
    // A malformed lockfile names the line.
    std::fs::write(d.join("broken.lock"), "version = 1\n[[plugins]\n").unwrap();
    refused(
        "broken",
        &["--locked", "--lockfile", "broken.lock"],
        "lockfile broken.lock: TOML parse error at line 2",
    );
}

#[test]
fn a_configuration_locks_a_run_and_the_lockfiles_limits_cap_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let conf = d.join("conf");
    std::fs::create_dir(&conf).unwrap();
    lock(&conf, &["openai-chat", "json"]);
    std::fs::write(
        conf.join("run.yaml"),
        "locked: true\nlockfile: barrage.lock\nreport: {reporters: [json, csv]}\n\
         stages:\n  - {shape: constant, rate: 20, requests: 4}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(barrage().current_dir(d).args([
        "run",
        "--quiet",
        "--target",
        &format!("http://{}", sim.addr),
        "--config",
        "conf/run.yaml",
        "--output",
        "by-config",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("plugin 'csv'") && stderr.contains("conf/barrage.lock"),
        "the lockfile is found beside the configuration: {stderr}"
    );

    // A deadline in the lockfile is a ceiling on the run's.
    let misbehaving = d.join("misbehaving.wasm");
    std::fs::copy(test_plugin("misbehaving"), &misbehaving).unwrap();
    lock(d, &["misbehaving.wasm"]);
    edit_lock(
        d,
        "name = \"misbehaving\"\n",
        "name = \"misbehaving\"\ndeadline_ms = 10\n",
    );
    let body = d.join("loop.sse");
    std::fs::write(&body, "data: loop\n\n").unwrap();
    let (code, stdout, stderr) = run(barrage().current_dir(d).args([
        "plugin",
        "decode",
        "--locked",
        "--codec",
        "misbehaving.wasm",
        "loop.sse",
    ]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("ran past its 10 ms deadline"), "{stdout}");
}
