//! Deliberately bad plugins never crash the host: the failing response is
//! counted as a plugin error, the others decode, and unloadable plugins are
//! refused with a message that says why.

use crate::common::{barrage, fixture, run, test_plugin};

fn write(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn a_looping_plugin_fails_only_its_response() {
    let plugin = test_plugin("misbehaving");
    let dir = tempfile::tempdir().unwrap();
    let spin = write(&dir, "spin.sse", b"data: one\n\ndata: loop\n\ndata: never decoded\n\n");
    let good = fixture("sse/chat-reasoning.sse");
    let (code, stdout, stderr) = run(barrage()
        .args(["plugin", "decode", "--plugin-deadline-ms", "20", "--codec"])
        .arg(&plugin)
        .arg(&good)
        .arg(&spin)
        .arg(&good));
    assert_eq!(code, 1, "a failed response makes the exit code 1: {stderr}");
    assert!(
        stdout.contains("failed: plugin 'misbehaving' timeout: call ran past its 20 ms deadline"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("ok: 6 frames, 7 events").count(),
        2,
        "both good responses decode: {stdout}"
    );
    assert!(
        stdout.ends_with("3 responses: 2 decoded, 1 failed (1 plugin timeout)\n"),
        "{stdout}"
    );
}

#[test]
fn a_plugin_past_its_memory_limit_fails_only_its_response() {
    let plugin = test_plugin("misbehaving");
    let dir = tempfile::tempdir().unwrap();
    let hog = write(&dir, "hog.sse", b"data: hog\n\n");
    let good = fixture("sse/chat-reasoning.sse");
    let (code, stdout, _) = run(barrage()
        // A generous deadline, so that on a busy machine the memory limit,
        // not the clock, is what stops the allocation loop.
        .args([
            "plugin",
            "decode",
            "--plugin-memory-mib",
            "32",
            "--plugin-deadline-ms",
            "5000",
            "--codec",
        ])
        .arg(&plugin)
        .arg(&hog)
        .arg(&good)
        .arg(&hog)
        .arg(&good));
    assert_eq!(code, 1);
    assert_eq!(
        stdout
            .matches("failed: plugin 'misbehaving' memory limit: memory limit of 32 MiB reached")
            .count(),
        2,
        "{stdout}"
    );
    assert_eq!(stdout.matches("ok: 6 frames, 7 events").count(), 2, "{stdout}");
    assert!(
        stdout.ends_with("4 responses: 2 decoded, 2 failed (2 plugin memory limit)\n"),
        "{stdout}"
    );
}

#[test]
fn a_plugin_for_another_contract_version_is_refused_by_name_and_versions() {
    let plugin = test_plugin("wrong-version");
    let (code, _, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec"])
        .arg(&plugin)
        .arg(fixture("sse/chat-reasoning.sse")));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("plugin 'wrong_version' targets barrage:plugin@0.9.0, which this host cannot load; this host supports barrage:plugin@0.1.0, barrage:plugin@0.2.0"),
        "{stderr}"
    );
    let (code, stdout, _) = run(barrage().args(["plugin", "inspect"]).arg(&plugin));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("supported: no: it targets barrage:plugin@0.9.0; this host supports barrage:plugin@0.1.0, barrage:plugin@0.2.0"),
        "{stdout}"
    );
}

#[test]
fn files_that_are_not_components_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "is a core WebAssembly module, not a component; build it for the wasm32-wasip2 target",
        ),
        (
            "text.wasm",
            b"hello, world\n",
            "is not a WebAssembly binary (no `\\0asm` header)",
        ),
        ("empty.wasm", b"", "is not a WebAssembly binary"),
        ("broken.wasm", b"\0asm\x0d\0\x01\0\x01\x02\x03", "could not be compiled"),
    ];
    for (name, bytes, message) in cases {
        let path = write(&dir, name, bytes);
        let stem = name.trim_end_matches(".wasm");
        for args in [&["plugin", "inspect"][..], &["plugin", "decode", "--codec"][..]] {
            let mut cmd = barrage();
            cmd.args(args).arg(&path);
            if args.len() == 3 {
                cmd.arg(fixture("sse/chat-reasoning.sse"));
            }
            let (code, _, stderr) = run(&mut cmd);
            assert_eq!(code, 2, "{name}: {stderr}");
            assert!(
                stderr.starts_with(&format!("error: plugin '{stem}' ")),
                "{name}: {stderr}"
            );
            assert!(stderr.contains(message), "{name}: {stderr}");
            assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        }
    }
    let (code, _, stderr) = run(barrage().args(["plugin", "inspect", "/nonexistent/x.wasm"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("could not read plugin file /nonexistent/x.wasm"),
        "{stderr}"
    );
}

#[test]
fn a_codec_of_the_wrong_kind_is_refused() {
    // A component that implements no Barrage world at all.
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "empty-component.wasm", b"\0asm\x0d\0\x01\0");
    let (code, _, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec"])
        .arg(&path)
        .arg(fixture("sse/chat-reasoning.sse")));
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "plugin 'empty-component' is not a Barrage plugin: it implements none of the barrage:plugin worlds"
        ),
        "{stderr}"
    );
}
