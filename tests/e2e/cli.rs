//! `barrage plugin list` and `inspect`, installed plugins overriding
//! built-ins, and what `plugin new` refuses (tests/e2e/guests.rs builds
//! what it makes).

use crate::common::{barrage, fixture, run, test_plugin};

#[test]
fn list_shows_builtins_with_kind_versions_and_sha256() {
    let (code, stdout, stderr) = run(barrage().args(["plugin", "list"]));
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "openai-completions",
        "openai-chat",
        "tgi",
        "sglang-native",
        "kserve-v2-http",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing: {stdout}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "codec", "{line}");
        assert_eq!(cols[2], env!("CARGO_PKG_VERSION"), "{line}");
        assert_eq!(cols[3], "0.2.0", "{line}");
        assert_eq!(cols[4].len(), 64, "sha256: {line}");
        assert!(cols[4].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(cols[5], "built-in");
    }
    // Every world's built-ins answer who they are: datasets and reporters
    // import interfaces that codecs do not.
    for (name, kind) in [
        ("csv", "dataset"),
        ("trace", "dataset"),
        ("csv", "reporter"),
        ("html", "reporter"),
    ] {
        assert!(
            stdout.lines().any(|l| l.split_whitespace().take(2).eq([name, kind])),
            "{name} {kind} missing: {stdout}"
        );
    }
    assert!(!stdout.lines().any(|l| l.trim_start().starts_with('!')), "{stdout}");
}

#[test]
fn inspect_shows_world_contract_imports_and_exports() {
    let (code, stdout, stderr) = run(barrage().args(["plugin", "inspect", "openai-chat"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("world:     codec\n"), "{stdout}");
    assert!(stdout.contains("contract:  barrage:plugin 0.2.0\n"), "{stdout}");
    assert!(stdout.contains("  barrage:plugin/log@0.2.0\n"));
    assert!(stdout.contains("  barrage:plugin/secrets@0.2.0\n"));
    assert!(stdout.contains("exports:\n  barrage:plugin/meta@0.2.0\n  barrage:plugin/request-codec@0.2.0\n"));
    assert!(
        stdout.contains("secret:    api-key (optional): an API key, sent as `Authorization: Bearer`"),
        "{stdout}"
    );
    let size: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("size:"))
        .unwrap()
        .trim()
        .trim_end_matches(" bytes")
        .parse()
        .unwrap();
    assert!(size > 10_000, "{size}");
    // WASI that Rust's std links in is listed with the stub that stands in for it.
    assert!(
        stdout.contains("wasi:cli/environment@0.2.6  (stub: empty: no variables, no arguments, no working directory)"),
        "{stdout}"
    );
    assert!(!stdout.contains("traps if called"), "{stdout}");
}

#[test]
fn an_installed_plugin_overrides_the_builtin_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    // Install the misbehaving test plugin under the built-in's name.
    std::fs::copy(test_plugin("misbehaving"), dir.path().join("openai-chat.wasm")).unwrap();
    let (code, stdout, _) = run(barrage().env("BARRAGE_PLUGIN_DIR", dir.path()).args(["plugin", "list"]));
    assert_eq!(code, 0);
    assert!(
        stdout.contains("built-in (overridden by the installed plugin)"),
        "{stdout}"
    );
    // One name: the row is the name it is picked by; what it calls itself is a note.
    let lines: Vec<&str> = stdout.lines().collect();
    let row = lines
        .iter()
        .position(|l| l.starts_with("openai-chat ") && l.contains(dir.path().to_str().unwrap()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(
        lines[row + 1],
        "  note: it calls itself 'misbehaving'; it is picked (--codec, --dataset, --reporter) and named in \
         messages by its file name, 'openai-chat'",
        "{stdout}"
    );

    // Decoding by name now uses the installed plugin.
    let (_, stdout, _) = run(barrage()
        .env("BARRAGE_PLUGIN_DIR", dir.path())
        .args(["plugin", "decode", "--codec", "openai-chat"])
        .arg(fixture("sse/chat-reasoning.sse")));
    assert!(
        stdout.contains("0 content bytes=75 tokens=1"),
        "the installed plugin decoded: {stdout}"
    );
}

#[test]
fn unknown_plugin_names_list_the_known_ones() {
    let (code, _, stderr) = run(barrage().args(["plugin", "inspect", "openai-chatt"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "no plugin named 'openai-chatt'; known plugins: anthropic-messages, bedrock-converse, csv, gemini, html, jetstream, json, jsonl, \
             kserve-v2-grpc, kserve-v2-http, markdown, multi-turn, openai-chat, openai-completions, openai-embeddings, \
             openai-images, openai-responses, rerank, sagemaker, sglang-native, shared-prefix, sharegpt, synthetic, tgi, trace, vllm-grpc"
        ),
        "{stderr}"
    );
    // Where a kind of plugin is asked for, only that kind is listed.
    let (code, _, stderr) = run(barrage().args(["run", "--codec", "openai-chatt", "--requests", "1"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains(
            "no plugin named 'openai-chatt'; known plugins: anthropic-messages, bedrock-converse, gemini, jetstream, kserve-v2-grpc, \
             kserve-v2-http, openai-chat, openai-completions, openai-embeddings, openai-images, openai-responses, rerank, \
             sagemaker, sglang-native, tgi, vllm-grpc ("
        ),
        "{stderr}"
    );
    let (code, _, stderr) = run(barrage().args(["dataset", "prepare", "--dataset", "json"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("known plugins: csv, jsonl, multi-turn, shared-prefix, sharegpt, synthetic, trace ("),
        "{stderr}"
    );
}

#[test]
fn errors_say_their_cause_once_and_name_what_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(barrage().args(["run", "--config", "/nonexistent/run.yaml"]));
    assert_eq!(code, 2);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    // A bad flag is the flag's error, not the config file's.
    let cfg = dir.path().join("run.yaml");
    std::fs::write(&cfg, "target: http://127.0.0.1:8000\n").unwrap();
    let (code, _, stderr) = run(barrage().args(["run", "--target", "ftp://x", "--config"]).arg(&cfg));
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("error: --target `ftp://x`: use an http:// or https:// URL"),
        "{stderr}"
    );
    // A directory where a dataset file belongs.
    let (code, _, stderr) = run(barrage()
        .args(["run", "--requests", "1", "--dataset", "jsonl", "--dataset-file"])
        .arg(dir.path()));
    assert_eq!(code, 2);
    assert!(stderr.contains("is a directory; name a file in it"), "{stderr}");
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_directory_in_use_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(barrage().current_dir(dir.path()).args(["plugin", "new", "My_Server"]));
    assert_ne!(code, 0);
    assert!(
        stderr.contains("`My_Server` is not a plugin name") && stderr.contains("e.g. `my-server`"),
        "{stderr}"
    );
    let taken = dir.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let (code, _, stderr) = run(barrage().current_dir(dir.path()).args([
        "plugin",
        "new",
        "my-server",
        "--lang",
        "python",
        "--path",
        "taken",
    ]));
    assert_ne!(code, 0);
    assert!(stderr.contains("taken already exists and is not empty"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&taken).unwrap().collect();
    assert_eq!(left.len(), 1, "nothing written beside the user's file");
    assert!(!dir.path().join("My_Server").exists() && !dir.path().join("my-server").exists());

    // An empty directory is fine; the project names the plugin throughout.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let (code, stdout, stderr) = run(barrage().current_dir(dir.path()).args([
        "plugin",
        "new",
        "my-server",
        "--kind",
        "reporter",
        "--path",
        "empty",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created reporter `my-server` in empty"), "{stdout}");
    let manifest = std::fs::read_to_string(dir.path().join("empty/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"my-server\"") && manifest.contains("\"reporter\""),
        "{manifest}"
    );
    assert!(dir.path().join("empty/vendor/barrage-sdk/wit/worlds.wit").exists());
    assert!(!manifest.contains("{{"), "every placeholder filled: {manifest}");
}
