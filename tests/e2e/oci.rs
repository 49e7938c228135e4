//! Plugins through an OCI registry: Debian's `docker-registry`
//! (distribution 2.8) started on loopback, `barrage plugin push` and `pull`
//! in the Wasm OCI layout, `oras` from PyPI (a client nobody here wrote)
//! on the other end, digest-pinned lockfile entries, and every way a pull
//! can go wrong refused with nothing half-installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Daemon, SimProcess, barrage, free_port, run, test_plugin, workspace};

fn registry(dir: &Path) -> Daemon {
    let port = free_port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\n\
             http: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    Daemon::start(
        "docker-registry",
        &["serve".into(), config.display().to_string()],
        format!("127.0.0.1:{port}"),
        "/v2/",
        dir.join("registry.log"),
    )
}

/// `oras_client.py ARGS` (tests/interop): its output's lines.
fn oras(args: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg(workspace().join("tests/interop/oras_client.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn sha256(path: &Path) -> String {
    barrage_plugin_host::engine::sha256_hex(&std::fs::read(path).unwrap())
}

fn ok(cmd: &mut Command) -> String {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    stdout
}

fn refused(cmd: &mut Command, why: &str) {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains(why), "{why}: {stderr}");
}

/// A signed copy of the ollama-generate example in `dir`.
fn signed_plugin(dir: &Path) -> (PathBuf, PathBuf) {
    let plugin = dir.join("ollama-generate.wasm");
    std::fs::copy(test_plugin("ollama-generate"), &plugin).unwrap();
    let (public, secret) = (dir.join("team.pub"), dir.join("team.key"));
    for args in [
        vec![
            "-G",
            "-W",
            "-p",
            public.to_str().unwrap(),
            "-s",
            secret.to_str().unwrap(),
        ],
        vec![
            "-S",
            "-W",
            "-s",
            secret.to_str().unwrap(),
            "-m",
            plugin.to_str().unwrap(),
        ],
    ] {
        let out = Command::new("minisign").args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    (plugin, public)
}

#[test]
fn a_signed_plugin_goes_through_a_registry_into_a_locked_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = registry(d);
    let (plugin, public) = signed_plugin(d);
    let reference = format!("{}/plugins/ollama-generate:1.0", reg.addr);
    let out = ok(barrage()
        .current_dir(d)
        .args(["plugin", "push", "ollama-generate.wasm", &reference]));
    assert!(out.contains("with its signature ollama-generate.wasm.minisig"), "{out}");
    let pinned = out
        .lines()
        .find_map(|l| l.strip_prefix("pinned: "))
        .expect("a pinned reference")
        .to_string();
    // The registry holds that manifest under the tag.
    let digest = oras(&["digest", &reg.addr, "plugins/ollama-generate:1.0"]);
    assert!(pinned.ends_with(&format!("@{}", digest[0])), "{pinned} vs {digest:?}");

    // Locking a registry plugin pulls it into the plugin directory and pins it.
    let plugins = d.join("installed");
    ok(barrage().current_dir(d).args([
        "plugin",
        "lock",
        &format!("oci://{reference}"),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--key",
        &format!("team={}", public.display()),
        "--require-signatures",
    ]));
    let lock = std::fs::read_to_string(d.join("barrage.lock")).unwrap();
    assert!(lock.contains(&format!("source = \"{pinned}\"")), "{lock}");
    assert!(
        lock.contains("signed_by = \"team\""),
        "the signature came along: {lock}"
    );
    assert_eq!(sha256(&plugins.join("ollama-generate.wasm")), sha256(&plugin));

    // A fresh machine: the lockfile alone brings the approved plugins back.
    std::fs::remove_dir_all(&plugins).unwrap();
    let out = ok(barrage()
        .current_dir(d)
        .args(["plugin", "pull", "--output-dir", plugins.to_str().unwrap()]));
    assert!(out.contains("with its signature"), "{out}");
    assert_eq!(sha256(&plugins.join("ollama-generate.wasm")), sha256(&plugin));
    let sim = SimProcess::start(&["--mode", "zero"]);
    let locked_run = |reporter: &str, out: &str| {
        run(barrage().current_dir(d).args([
            "run",
            "--quiet",
            "--locked",
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--codec",
            "ollama-generate",
            "--reporter",
            reporter,
            "--requests",
            "2",
            "--rate",
            "10",
            "--target",
            &format!("http://{}", sim.addr),
            "--output",
            out,
        ]))
    };
    // The pulled plugin passes the lock; `json` is not in this lockfile,
    // and is refused before anything is sent.
    let (code, _, stderr) = locked_run("json", "refused");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("plugin 'json'") && stderr.contains("is not in the lockfile"),
        "{stderr}"
    );
    assert!(!d.join("refused/records.jsonl").exists());
    // A codec where a reporter is asked is refused for what it is.
    let (code, _, stderr) = locked_run("ollama-generate", "wrong-kind");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is a codec plugin, not a reporter"), "{stderr}");
    // Approved, it runs (the simulator speaks OpenAI, not Ollama: every
    // request fails, exit 5, but the locked plugin was loaded and used).
    ok(barrage().current_dir(d).args(["plugin", "lock", "json"]));
    let (code, _, stderr) = locked_run("json", "ran");
    assert_eq!(code, 5, "{stderr}");
    assert!(d.join("ran/records.jsonl").exists());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("ran/meta.json")).unwrap()).unwrap();
    assert_eq!(meta["plugin"]["sha256"], sha256(&plugin).as_str());
}

#[test]
fn what_oras_pushes_barrage_pulls_and_the_other_way_round() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = registry(d);
    let (plugin, _) = signed_plugin(d);
    // oras pushes; Barrage pulls, the same bytes.
    let digest = oras(&["push", &reg.addr, "plugins/by-oras:2", plugin.to_str().unwrap()]);
    let out = ok(barrage().current_dir(d).args([
        "plugin",
        "pull",
        &format!("{}/plugins/by-oras:2", reg.addr),
        "--output-dir",
        "from-oras",
    ]));
    assert!(out.contains(&format!("@{}", digest[0])), "{out}");
    assert_eq!(sha256(&d.join("from-oras/ollama-generate.wasm")), sha256(&plugin));
    // Barrage pushes; oras pulls, the same bytes under the same digest.
    let out = ok(barrage().current_dir(d).args([
        "plugin",
        "push",
        "ollama-generate.wasm",
        &format!("{}/plugins/by-barrage:3", reg.addr),
    ]));
    let pinned = out
        .lines()
        .find_map(|l| l.strip_prefix("pinned: "))
        .unwrap()
        .to_string();
    assert!(pinned.ends_with(&oras(&["digest", &reg.addr, "plugins/by-barrage:3"])[0]));
    let files = oras(&[
        "pull",
        &reg.addr,
        "plugins/by-barrage:3",
        d.join("by-oras").to_str().unwrap(),
    ]);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(sha256(Path::new(&files[0])), sha256(&plugin));
}

#[test]
fn a_bad_registry_or_artifact_is_refused_with_nothing_half_installed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let reg = registry(d);
    let (plugin, _) = signed_plugin(d);
    let pull = |reference: &str, extra: &[&str]| {
        let mut cmd = barrage();
        cmd.current_dir(d)
            .args(["plugin", "pull", reference, "--output-dir", "out"])
            .args(extra);
        cmd
    };
    // A registry that is not there.
    refused(
        &mut pull(&format!("127.0.0.1:{}/plugins/x:1", free_port()), &[]),
        "could not be reached",
    );
    // A reference that does not exist.
    refused(
        &mut pull(&format!("{}/plugins/nothing:1", reg.addr), &[]),
        "no such artifact in the registry",
    );
    // An artifact of another kind.
    oras(&[
        "push",
        &reg.addr,
        "plugins/image:1",
        plugin.to_str().unwrap(),
        "application/vnd.oci.image.config.v1+json",
    ]);
    refused(
        &mut pull(&format!("{}/plugins/image:1", reg.addr), &[]),
        "is not a Barrage plugin artifact: its config media type is application/vnd.oci.image.config.v1+json",
    );
    // A component over the size limit.
    let big = d.join("big.wasm");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    oras(&["push", &reg.addr, "plugins/big:1", big.to_str().unwrap()]);
    refused(
        &mut pull(&format!("{}/plugins/big:1", reg.addr), &["--max-size-mib", "2"]),
        "over the limit of 2097152 bytes",
    );
    // A download whose bytes are not the manifest's: the registry's copy
    // of the layer is cut short on disk.
    oras(&["push", &reg.addr, "plugins/cut:1", plugin.to_str().unwrap()]);
    let digest = sha256(&plugin);
    let blob = d
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&digest[..2])
        .join(&digest)
        .join("data");
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
    // (oci-client checks the digest as the bytes stream in, and names the
    // one expected.)
    refused(
        &mut pull(&format!("{}/plugins/cut:1", reg.addr), &[]),
        &format!("igest. Expected sha256:{digest}"),
    );
    // Nothing of any of them was installed.
    let left: Vec<_> = std::fs::read_dir(d.join("out"))
        .map(|e| e.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
