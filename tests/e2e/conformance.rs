//! The conformance kit through the CLI: golden transcripts recorded from
//! the simulator with `barrage plugin record`, a good codec passing `plugin
//! test` and a broken one failing it (a table, the exit code, a JUnit file
//! CI tools read), and the dataset and reporter checks.

use std::path::Path;

use crate::common::{barrage, run, test_plugin, workspace};
use crate::thresholds::{junitparser, validate};

fn record(dir: &Path, codec: &str, out: &str) {
    let (code, stdout, stderr) = run(barrage().current_dir(dir).args([
        "plugin",
        "record",
        "--codec",
        codec,
        "--requests",
        "2",
        "--output",
        out,
    ]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("{out}/{codec}-0-stream.json")), "{stdout}");
}

/// `plugin test ARGS` in `dir`: (exit code, the table).
fn test(dir: &Path, args: &[&str]) -> (i32, String) {
    let (code, stdout, stderr) = run(barrage().current_dir(dir).args(["plugin", "test"]).args(args));
    assert!(code == 0 || code == 1, "{stdout}\n{stderr}");
    (code, stdout)
}

fn result_of<'a>(table: &'a str, check: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(check))
        .unwrap_or_else(|| panic!("no check `{check}` in {table}"))
}

#[test]
fn a_codec_is_held_to_its_recorded_transcripts_and_a_broken_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for codec in ["openai-chat", "kserve-v2-grpc", "jetstream"] {
        record(d, codec, codec);
        let (code, table) = test(d, &[codec, "--transcript", codec, "--junit", &format!("{codec}.xml")]);
        assert_eq!(code, 0, "{table}");
        for check in [
            "every split of the stream",
            "small reads",
            "truncated",
            "malformed frames",
            "long stream within limits",
        ] {
            let line = result_of(&table, &format!("{codec}-0-stream.json: {check}"));
            assert!(line.contains(" pass "), "{line}");
        }
        assert!(result_of(&table, "random frames").contains(" pass "), "{table}");
        let junit = d.join(format!("{codec}.xml"));
        validate(&junit);
        let (tests, failures, _) = junitparser(&junit);
        // The table: a title, a header, a line a check, a tally, the JUnit path.
        assert_eq!((tests as usize, failures), (table.lines().count() - 4, 0), "{table}");
    }

    // The same transcripts held against another codec: a changed codec
    // decodes them otherwise, and the kit says where.
    let misbehaving = test_plugin("misbehaving");
    let (code, table) = test(
        d,
        &[
            misbehaving.to_str().unwrap(),
            "--transcript",
            "openai-chat",
            "--junit",
            "broken.xml",
        ],
    );
    assert_eq!(code, 1, "{table}");
    let line = result_of(&table, "openai-chat-0-stream.json: decodes to its events");
    assert!(
        line.contains(" FAIL ") && line.contains("event 0: expected `0 role-only`"),
        "{line}"
    );
    assert!(
        result_of(&table, "encodes something").contains("it refused every request"),
        "{table}"
    );
    let (_, failures, failed) = junitparser(&d.join("broken.xml"));
    assert!(
        failures >= 2 && failed.iter().any(|n| n == "encodes something"),
        "{failed:?}"
    );

    // A frame that makes it spin: stopped by the deadline, and named.
    let mut t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("openai-chat/openai-chat-0-stream.json")).unwrap()).unwrap();
    t["body_base64"] = "ZGF0YTogbG9vcAoK".into(); // "data: loop\n\n"
    std::fs::write(d.join("loop.json"), t.to_string()).unwrap();
    let (code, table) = test(d, &[misbehaving.to_str().unwrap(), "--transcript", "loop.json"]);
    assert_eq!(code, 1, "{table}");
    let line = result_of(&table, "loop.json: decodes to its events");
    assert!(line.contains("timeout") && line.contains("deadline"), "{line}");
    // A transcript that is not one is named.
    std::fs::write(d.join("bad.json"), "{\"barrage_transcript\": 1}").unwrap();
    let (code, table) = test(d, &["openai-chat", "--transcript", "bad.json"]);
    assert_eq!(code, 1);
    assert!(
        result_of(&table, "bad.json: reads").contains("transcript bad.json: missing field"),
        "{table}"
    );
}

#[test]
fn datasets_and_reporters_have_checks_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prompts = workspace().join("examples/data/prompts.jsonl");
    let (code, table) = test(d, &["jsonl", "--dataset-file", prompts.to_str().unwrap()]);
    assert_eq!(code, 0, "{table}");
    assert!(
        result_of(&table, "same seed, same samples").contains(" pass "),
        "{table}"
    );
    let line = result_of(&table, "bad input located");
    assert!(line.contains("bad-prompts.jsonl:2"), "{line}");
    let (code, table) = test(d, &["synthetic", "--config", "{\"count\": 20, \"prompt_tokens\": 12}"]);
    assert_eq!(code, 0, "{table}");
    assert!(result_of(&table, "declared lengths").contains("20 samples"), "{table}");
    assert!(result_of(&table, "bad input located").contains(" skip "), "{table}");

    let (code, table) = test(d, &["html", "--junit", "html.xml"]);
    assert_eq!(code, 0, "{table}");
    assert!(result_of(&table, "renders a run").contains("report.html"), "{table}");
    assert!(
        result_of(&table, "renders a large run").contains("100000 requests"),
        "{table}"
    );
    validate(&d.join("html.xml"));
}
