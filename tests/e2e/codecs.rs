//! The first-party codecs, loaded through the real host, decode recorded
//! streams into the expected events, whatever the socket read sizes.

use crate::common::{barrage, fixture, run, test_plugin};

/// (fixture stem, codec)
const CASES: &[(&str, &str)] = &[
    ("chat-multi-token", "openai-chat"),
    ("chat-reasoning", "openai-chat"),
    ("chat-error-midstream", "openai-chat"),
    ("chat-invalid-json", "openai-chat"),
    ("completions-stream", "openai-completions"),
    ("completions-vllm-error", "openai-completions"),
    ("tgi-stream", "tgi"),
    ("tgi-error-midstream", "tgi"),
    ("tgi-malformed", "tgi"),
    ("sglang-stream", "sglang-native"),
    ("sglang-malformed", "sglang-native"),
    ("sglang-error-midstream", "sglang-native"),
    ("kserve-trtllm-stream", "kserve-v2-http"),
    ("kserve-error-midstream", "kserve-v2-http"),
    ("kserve-malformed", "kserve-v2-http"),
    // The hosted APIs' streams in the shapes their references document.
    ("anthropic-stream", "anthropic-messages"),
    ("anthropic-overloaded", "anthropic-messages"),
    ("responses-stream", "openai-responses"),
    // Gemini separates events with CRLF pairs.
    ("gemini-stream", "gemini"),
    ("gemini-error-midstream", "gemini"),
];

fn decoded(codec: &str, file: &std::path::Path, read_size: usize) -> String {
    decoded_as(codec, "sse", file, read_size)
}

fn decoded_as(codec: &str, framing: &str, file: &std::path::Path, read_size: usize) -> String {
    let (code, stdout, stderr) = run(barrage()
        .args([
            "plugin",
            "decode",
            "--text",
            "--framing",
            framing,
            "--codec",
            codec,
            "--read-size",
            &read_size.to_string(),
        ])
        .arg(file));
    // As `run` judges it: a stream holding a server error or a bad frame
    // is not ok, and the exit code says so.
    let ok = stdout.lines().any(|l| l.starts_with("ok: "));
    assert_eq!(code, if ok { 0 } else { 1 }, "{stdout}{stderr}");
    // Drop the file header and the summary: what is left is the events.
    stdout
        .lines()
        .filter(|l| !l.starts_with("# ") && !l.contains(" responses: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn recorded_streams_decode_to_the_expected_events() {
    for (stem, codec) in CASES {
        let sse = fixture(&format!("sse/{stem}.sse"));
        let expected = std::fs::read_to_string(fixture(&format!("sse/{stem}.expected"))).unwrap();
        for read_size in [1, 7, 4096] {
            assert_eq!(
                decoded(codec, &sse, read_size),
                expected,
                "{stem} with {codec}, reads of {read_size} bytes"
            );
        }
    }
}

#[test]
fn recorded_grpc_bodies_decode_to_the_expected_events() {
    // KServe v2 ModelStreamInfer responses as Triton writes them (raw
    // output contents; the decoupled model's empty final response), an
    // error message mid-stream, and a message that is no protobuf; vLLM's
    // and JetStream's streams as their published stubs encode them
    // (tests/interop/record_fixtures.py): multi-token steps, vLLM's
    // complete repeating the last step, an abort, bad messages.
    let cases = [
        ("kserve-stream", "kserve-v2-grpc"),
        ("kserve-error-midstream", "kserve-v2-grpc"),
        ("kserve-malformed", "kserve-v2-grpc"),
        ("vllm-stream", "vllm-grpc"),
        ("vllm-abort", "vllm-grpc"),
        ("vllm-malformed", "vllm-grpc"),
        ("jetstream-stream", "jetstream"),
        ("jetstream-malformed", "jetstream"),
    ];
    for (stem, codec) in cases {
        let body = fixture(&format!("grpc/{stem}.grpc"));
        let expected = std::fs::read_to_string(fixture(&format!("grpc/{stem}.expected"))).unwrap();
        for read_size in [1, 7, 4096] {
            assert_eq!(
                decoded_as(codec, "grpc", &body, read_size),
                expected,
                "{stem}, reads of {read_size} bytes"
            );
        }
    }
}

/// Bedrock's and SageMaker's AWS event streams
/// (`tests/interop/record_aws_fixtures.py`), which botocore's own
/// event-stream parser reads message by message first: the same bytes AWS's
/// SDK accepts decode to the expected events, whatever the read sizes
/// (SageMaker's payload parts cut its container's SSE events anywhere).
#[test]
fn recorded_aws_event_streams_decode_to_the_expected_events() {
    let cases = [
        ("bedrock-stream", "bedrock-converse", 8),
        ("bedrock-throttled", "bedrock-converse", 3),
        ("sagemaker-stream", "sagemaker", 7),
        ("sagemaker-model-error", "sagemaker", 2),
    ];
    for (stem, codec, messages) in cases {
        let body = fixture(&format!("aws/{stem}.eventstream"));
        let parse = "import sys\nfrom botocore.eventstream import EventStreamBuffer\n\
                     b = EventStreamBuffer()\nb.add_data(open(sys.argv[1], 'rb').read())\nprint(len(list(b)))";
        let out = std::process::Command::new("python3")
            .args(["-c", parse])
            .arg(&body)
            .output()
            .unwrap();
        assert!(out.status.success(), "{stem}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            messages.to_string(),
            "{stem}"
        );
        let expected = std::fs::read_to_string(fixture(&format!("aws/{stem}.expected"))).unwrap();
        for read_size in [1, 7, 4096] {
            assert_eq!(
                decoded_as(codec, "aws-event-stream", &body, read_size),
                expected,
                "{stem}, reads of {read_size} bytes"
            );
        }
    }
}

#[test]
fn chat_stream_events_carry_roles_tokens_and_usage() {
    let out = decoded("openai-chat", &fixture("sse/chat-multi-token.sse"), 4096);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "0 role-only",
        "an empty first delta with a role is not output"
    );
    assert!(lines[1].starts_with("1 content bytes=5 tokens=1"), "{}", lines[1]);
    assert!(
        lines[3].starts_with("2 content bytes=11 tokens=3"),
        "multi-token chunk: {}",
        lines[3]
    );
    assert!(out.contains("usage prompt=12 completion=7 cached=8"), "{out}");
    assert!(out.ends_with("6 done\nok: 7 frames, 11 events\n"), "{out}");
}

#[test]
fn text_is_left_out_unless_asked() {
    let (code, stdout, _) = run(barrage()
        .args(["plugin", "decode", "--codec", "openai-chat"])
        .arg(fixture("sse/chat-multi-token.sse")));
    assert_eq!(code, 0);
    assert!(stdout.contains("1 content bytes=5 tokens=1\n"), "{stdout}");
    assert!(!stdout.contains("text="));
}

#[test]
fn sdk_example_builds_loads_and_decodes_ndjson() {
    let plugin = test_plugin("ollama-generate");
    let decode = |malformed: &str| {
        run(barrage()
            .args([
                "plugin",
                "decode",
                "--framing",
                "ndjson",
                "--text",
                "--read-size",
                "5",
                "--malformed-frames",
                malformed,
                "--codec",
            ])
            .arg(&plugin)
            .arg(fixture("ollama-generate.ndjson")))
    };
    let events = [
        "0 content bytes=3 tokens=1 text=\"The\"",
        "1 content bytes=4 tokens=1 text=\" sky\"",
        "2 malformed \"not an Ollama line: not json\"",
        "3 finish stop",
        "3 usage prompt=26 completion=2 cached=- reasoning=-",
        "3 done",
    ];
    // The bad frame fails the response, as in a run...
    let (code, stdout, stderr) = decode("fail");
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines[..6], events);
    assert_eq!(
        lines[6..],
        [
            "malformed: 4 frames, 6 events: malformed frame: not an Ollama line: not json",
            "1 responses: 0 decoded, 1 failed (1 malformed)",
        ]
    );
    // ...unless malformed frames are only counted.
    let (code, stdout, stderr) = decode("count");
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(lines[..6], events);
    assert_eq!(
        lines[6..],
        [
            "ok: 4 frames, 6 events (1 malformed frames counted and skipped)",
            "1 responses: 1 decoded, 0 failed",
        ]
    );
}

#[test]
fn plugin_config_from_a_toml_file_is_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "path = \"/openai/v1/chat/completions\"\n[headers]\nx-team = \"perf\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec", "openai-chat", "--codec-config"])
        .arg(format!("@{}", good.display()))
        .arg(fixture("sse/chat-reasoning.sse")));
    assert_eq!(code, 0, "{stderr}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "max_tokens_field = \"n\"\n").unwrap();
    let (code, _, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec", "openai-chat", "--codec-config"])
        .arg(format!("@{}", bad.display()))
        .arg(fixture("sse/chat-reasoning.sse")));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("plugin 'openai-chat' rejected its configuration at `max_tokens_field`"),
        "{stderr}"
    );

    let (code, _, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec", "openai-chat", "--codec-config", "[1]"])
        .arg(fixture("sse/chat-reasoning.sse")));
    assert_eq!(code, 2);
    assert!(stderr.contains("must be a table"), "{stderr}");
}

/// Decodes a recorded stream with `BARRAGE_PERFMAP` set or not; returns the
/// perf map the process left, if any (removed from `/tmp`).
fn perf_map_of_a_decode(perfmap: bool) -> Option<String> {
    let mut cmd = barrage();
    if perfmap {
        cmd.env("BARRAGE_PERFMAP", "1");
    }
    let child = cmd
        .args(["plugin", "decode", "--codec", "openai-chat"])
        .arg(fixture("sse/chat-multi-token.sse"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run barrage");
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
    assert!(child.wait_with_output().expect("wait for barrage").status.success());
    let text = std::fs::read_to_string(&map).ok();
    let _ = std::fs::remove_file(&map);
    text
}

#[test]
fn perfmap_names_plugin_code_for_perf() {
    let text = perf_map_of_a_decode(true).expect("a perf map was written");
    // One line per compiled function: start, size, name.
    let wasm_lines = text.lines().filter(|l| l.contains("wasm")).count();
    assert!(
        wasm_lines > 10,
        "the perf map holds {wasm_lines} lines naming wasm code"
    );
    assert!(
        perf_map_of_a_decode(false).is_none(),
        "a perf map was written without BARRAGE_PERFMAP"
    );
}
