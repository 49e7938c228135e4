//! The model-server codecs beyond OpenAI (TGI, SGLang's native API,
//! KServe v2 / Triton over HTTP and gRPC, vLLM's gRPC server, JetStream)
//! through the CLI against the simulator, which speaks each: timing against the simulator's fixed
//! timing, exact token counts, faults counted in their classes, bad
//! configurations and bad answers named, and each server's own metric names
//! read by server-metric collection.

use std::path::Path;

use crate::common::{
    Daemon, SimProcess, assert_accounted, barrage, config_run, free_port, metric, records, run, summary,
};

/// (codec, its configuration as YAML flow, what the case is called)
/// (TGI gives a non-streamed response's prompt length only with its prompt
/// tokens, `decoder_input_details`.)
const CODECS: &[(&str, &str, &str)] = &[
    ("tgi", "{decoder_input_details: true}", "tgi"),
    ("sglang-native", "{}", "sglang"),
    ("kserve-v2-http", "{}", "triton-trtllm"),
    ("kserve-v2-http", "{backend: vllm}", "triton-vllm"),
    ("kserve-v2-grpc", "{}", "triton-grpc"),
    ("vllm-grpc", "{}", "vllm-grpc"),
    ("jetstream", "{}", "jetstream"),
];

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A run of `yaml` against `sim` that must succeed; its results directory.
fn run_ok(sim: &SimProcess, dir: &Path, name: &str, yaml: &str) -> std::path::PathBuf {
    let (mut cmd, out) = config_run(sim, dir, name, yaml);
    let (code, stdout, stderr) = run(cmd.args(["--reporter", "json"]));
    assert_eq!(code, 0, "{name}: {stdout}\n{stderr}");
    out
}

#[test]
fn each_codec_measures_the_simulators_fixed_timing_streamed_and_unary() {
    // TTFT 40 ms, then a token every 8 ms: 16 tokens end at 160 ms, the
    // same timeline whichever protocol carries it.
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "plain", "--ttft-ms", "40", "--itl-ms", "8"]);
    for (codec, config, case) in CODECS {
        for stream in [true, false] {
            let name = format!("{case}-{}", if stream { "stream" } else { "unary" });
            let out = run_ok(
                &sim,
                dir.path(),
                &name,
                &format!(
                    "codec: {codec}\ncodec_config: {config}\nrequest: {{max_tokens: 16, stream: {stream}}}\n\
                     stages:\n  - {{shape: constant, rate: 20, requests: 20}}\n"
                ),
            );
            let s = summary(&out);
            let st = &s["stages"][0];
            assert_accounted(st);
            assert_eq!(st["succeeded"], 20, "{name}: {st}");
            assert_eq!(st["output_tokens"], 320, "{name}: 16 tokens each, exactly");
            assert_eq!(
                st["output_tokens_source"]["usage"], 20,
                "{name}: counts from the server"
            );
            // The client's reading and scheduling on a busy 2-core machine:
            // medians within 3 ms (0.8 ms for gaps), as the OpenAI test.
            let within = |key: &str, p: &str, lo: f64, hi: f64| {
                let v = f(&st[key][p]);
                assert!(v >= lo && v <= hi, "{name}: {key} {p} = {v:.3} ms, expected {lo}..{hi}");
            };
            // A unary body is built, encoded and sent after the last token
            // (over gRPC, through HTTP/2 framing too): 3 ms more of slack.
            within("e2e_ms", "p50", 160.0, if stream { 163.0 } else { 166.0 });
            for r in records(&out) {
                assert_eq!(r["output_tokens"], 16, "{name}: {r}");
                assert!(r["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{name}: {r}");
            }
            if stream {
                within("ttft_ms", "p50", 40.0, 43.0);
                // 20 requests: the p99 is the slowest one, which one stall
                // of the test machine makes; the p90 is not.
                within("ttft_ms", "p90", 40.0, 50.0);
                within("inter_token_ms", "p50", 7.2, 8.8);
                within("inter_chunk_ms", "p50", 7.2, 8.8);
                within("tpot_ms", "p50", 7.5, 8.5);
                assert_eq!(st["inter_chunk_ms"]["count"], 20 * 15, "{name}: 15 gaps per request");
                for r in records(&out) {
                    assert_eq!(r["content_frames_ms"].as_array().unwrap().len(), 16, "{name}: {r}");
                }
            }
        }
    }
}

#[test]
fn faults_and_server_errors_are_counted_in_their_classes() {
    // TGI, SGLang and vLLM's gRPC server announce the end of a stream (a
    // final details event, `[DONE]`, a GenerateComplete), which a fault
    // leaves out; Triton's stream just ends, and the vLLM backend's
    // finish_reason output is what a fault leaves out; JetStream's says
    // neither, so nothing can be left out. Over gRPC, the server's refusals
    // are statuses, not HTTP errors.
    let cases = [
        ("tgi", "{}", Some("missing_done"), "http_error"),
        ("sglang-native", "{}", Some("missing_done"), "http_error"),
        (
            "kserve-v2-http",
            "{backend: vllm}",
            Some("missing_finish_reason"),
            "http_error",
        ),
        (
            "kserve-v2-grpc",
            "{backend: vllm}",
            Some("missing_finish_reason"),
            "grpc_error",
        ),
        ("vllm-grpc", "{}", Some("missing_done"), "grpc_error"),
        ("jetstream", "{}", None, "grpc_error"),
    ];
    for (codec, config, truncation, refused) in cases {
        let dir = tempfile::tempdir().unwrap();
        let truncation_fault = truncation.map_or(String::new(), |t| format!(", {t}: 0.15"));
        let sim = SimProcess::from_yaml(
            dir.path(),
            &format!(
                "mode: zero\nseed: 3\nfaults: {{http_429: 0.1, http_500: 0.1, reset_midstream: 0.15{truncation_fault}}}\n"
            ),
        );
        let out = run_ok(
            &sim,
            dir.path(),
            "faults",
            &format!(
                "codec: {codec}\ncodec_config: {config}\nrequest: {{max_tokens: 8}}\n\
                 stages:\n  - {{shape: constant, rate: 200, requests: 200}}\n"
            ),
        );
        let m = sim.metrics();
        let injected = |k| metric(&m, "barrage_sim:faults_total", &[("kind", k)]);
        let s = summary(&out);
        let st = &s["stages"][0];
        assert_accounted(st);
        let by = &st["by_status"];
        let n = |k: &str| by[k].as_f64().unwrap_or(0.0);
        let truncated = truncation.map_or(0.0, injected);
        assert!(
            injected("http_429") > 0.0 && (truncation.is_none() || truncated > 0.0),
            "{codec}: {by}"
        );
        assert_eq!(n(refused), injected("http_429") + injected("http_500"), "{codec}: {by}");
        assert_eq!(n("transport_error"), injected("reset_midstream"), "{codec}: {by}");
        assert_eq!(n("truncated"), truncated, "{codec}: {by}");
        // A client starved of CPU misses arrivals and counts them; every
        // one it sent has its class.
        assert_eq!(
            st["sent"].as_f64().unwrap() + st["missed"].as_f64().unwrap(),
            200.0,
            "{codec}: {st}"
        );
        assert_eq!(
            n("ok") + n(refused) + n("transport_error") + n("truncated"),
            st["sent"].as_f64().unwrap(),
            "{codec}: {by}"
        );
        // The server's own error bodies are read: its message is the error.
        let recs = records(&out);
        let overloaded = recs
            .iter()
            .find(|r| r["error"].as_str().is_some_and(|e| e.contains("simulated overload")))
            .unwrap_or_else(|| panic!("{codec}: no record of the overload"));
        if refused == "grpc_error" {
            // The status names the class; the HTTP exchange itself was fine.
            assert_eq!(overloaded["http_status"], 200, "{overloaded}");
            assert!(
                overloaded["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("grpc:RESOURCE_EXHAUSTED: "),
                "{overloaded}"
            );
            assert_eq!(overloaded["http_version"], "HTTP/2.0");
        } else {
            assert_eq!(overloaded["http_status"], 429, "{overloaded}");
        }
    }
}

#[test]
fn bad_tensor_names_and_prompts_are_counted_errors_that_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimProcess::start(&["--mode", "zero"]);
    let error_of = |name: &str, yaml: &str| {
        let (mut cmd, out) = config_run(
            &sim,
            dir.path(),
            name,
            &format!("{yaml}\nrequest: {{max_tokens: 4}}\nstages:\n  - {{shape: constant, rate: 50, requests: 3}}\n"),
        );
        let (code, stdout, stderr) = run(&mut cmd);
        assert_eq!(code, 5, "{name}: sent, none succeeded: {stdout}\n{stderr}");
        let st = &summary(&out)["stages"][0];
        assert_accounted(st);
        assert_eq!(st["failed"], 3, "{name}: {st}");
        let r = &records(&out)[0];
        (
            r["status"].as_str().unwrap().to_string(),
            r["error"].as_str().unwrap().to_string(),
        )
    };
    // An input the model does not have: Triton refuses it by name.
    let (status, error) = error_of("input", "codec: kserve-v2-http\ncodec_config: {text_input: prompt}");
    assert_eq!(status, "http_error");
    assert!(error.contains("unexpected inference input 'prompt'"), "{error}");
    // Over gRPC, the same refusal is an INVALID_ARGUMENT status.
    let (status, error) = error_of(
        "grpc-input",
        "codec: kserve-v2-grpc\ncodec_config: {text_input: prompt}",
    );
    assert_eq!(status, "grpc_error");
    assert!(
        error.starts_with("grpc:INVALID_ARGUMENT: ") && error.contains("unexpected inference input 'prompt'"),
        "{error}"
    );
    // An output the response does not have: named, with what it has.
    let (status, error) = error_of("output", "codec: kserve-v2-http\ncodec_config: {text_output: output}");
    assert_eq!(status, "malformed");
    assert!(error.contains("no output tensor `output` (it has: model_name, model_version, num_input_tokens, num_output_tokens, text_output)"), "{error}");
    // A chat dataset without a template, to a text-only protocol.
    for codec in ["tgi", "vllm-grpc", "jetstream"] {
        let (status, error) = error_of(
            &format!("chat-{codec}"),
            &format!("codec: {codec}\ndataset:\n  plugin: synthetic\n  config: {{format: messages, count: 10}}"),
        );
        assert_eq!(status, "plugin_error", "{codec}");
        assert!(error.contains("chat_template"), "{codec}: {error}");
    }
    // Sampling parameters vLLM's proto does not have, by name.
    let extra = dir.path().join("extra.jsonl");
    std::fs::write(&extra, "{\"prompt\": \"a b c\", \"extra\": {\"top_q\": 0.5}}\n").unwrap();
    let (status, error) = error_of(
        "extra",
        &format!(
            "codec: vllm-grpc\ndataset:\n  plugin: jsonl\n  files: [{}]",
            extra.display()
        ),
    );
    assert_eq!(status, "plugin_error");
    assert!(error.contains("unknown field `top_q`"), "{error}");

    // A bad codec configuration is refused before anything is sent, by field.
    let (mut cmd, _) = config_run(
        &sim,
        dir.path(),
        "config",
        "codec: kserve-v2-http\ncodec_config: {backend: onnx}\nstages:\n  - {shape: constant, rate: 1, requests: 1}\n",
    );
    let (code, _, stderr) = run(&mut cmd);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("plugin 'kserve-v2-http' rejected its configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown variant `onnx`"), "{stderr}");
}

#[test]
fn the_embedded_simulator_poses_as_the_codecs_server_for_server_metrics() {
    // With no target, the simulator started for the run names its metrics
    // as the server the codec speaks to does; server-metric collection
    // reads those names.
    let posing = CODECS
        .iter()
        .filter(|(_, _, case)| ["tgi", "sglang", "triton-trtllm", "jetstream"].contains(case));
    for (codec, config, case) in posing {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("run.yaml");
        std::fs::write(
            &cfg,
            format!(
                "codec: {codec}\ncodec_config: {config}\nsim: {{mode: plain, plain: {{ttft_ms: {{constant: 50}}, itl_ms: {{constant: 2}}}}}}\n\
                 request: {{max_tokens: 8}}\nserver_metrics: {{interval_s: 0.3}}\n\
                 stages:\n  - {{shape: constant, rate: 20, duration_s: 1.5}}\n"
            ),
        )
        .unwrap();
        let out = dir.path().join("run");
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--reporter", "json", "--config"])
            .arg(&cfg)
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{case}: {stdout}\n{stderr}");
        let s = summary(&out);
        let server = &s["total"]["server"];
        assert_eq!(f(&server["requests"]), f(&s["total"]["succeeded"]), "{case}: {server}");
        // Arrivals a client starved of CPU missed are counted, not sent.
        assert!(
            f(&s["total"]["succeeded"]) + f(&s["total"]["missed"]) >= 29.0,
            "{case}: {}",
            s["total"]
        );
        // TGI has no TTFT histogram; SGLang and Triton (in ms) do.
        if *codec == "tgi" {
            assert!(server["ttft_ms"].is_null(), "{case}: {server}");
        } else {
            let p50 = f(&server["ttft_ms"]["p50"]);
            assert!((40.0..=60.0).contains(&p50), "{case}: server TTFT p50 {p50}");
        }
    }
    // `barrage sim --metric-names` picks them by hand.
    let sim = SimProcess::start(&["--mode", "zero", "--metric-names", "triton"]);
    let m = sim.metrics();
    assert_eq!(
        metric(&m, "nv_inference_request_success", &[("model", "barrage-sim")]),
        0.0
    );
    assert!(!m.iter().any(|(name, _, _)| name.starts_with("vllm:")), "no vLLM names");
}

#[test]
fn a_grpc_call_to_an_http1_server_or_with_a_message_over_the_limit_is_a_counted_error() {
    let dir = tempfile::tempdir().unwrap();
    // Python's http.server speaks HTTP/1.0 and 1.1 only: it answers the
    // HTTP/2 preface with an HTTP/1 error, and every call fails to start.
    let port = free_port();
    let http1 = Daemon::start(
        "python3",
        &[
            "-m".into(),
            "http.server".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--directory".into(),
            dir.path().display().to_string(),
        ],
        format!("127.0.0.1:{port}"),
        "/",
        dir.path().join("http-server.log"),
    );
    let out = dir.path().join("http1");
    let (code, stdout, stderr) = run(barrage()
        .args([
            "run",
            "--quiet",
            "--codec",
            "vllm-grpc",
            "--rate",
            "20",
            "--requests",
            "5",
        ])
        .args(["--target", &format!("http://{}", http1.addr), "--output"])
        .arg(&out));
    assert_eq!(code, 5, "nothing succeeded: {stdout}\n{stderr}");
    let st = &summary(&out)["stages"][0];
    assert_accounted(st);
    assert_eq!(st["by_status"]["transport_error"], 5, "{st}");
    let error = records(&out)[0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("HTTP/2"), "{error}");

    // One JetStream message of 600 words, past a 1 KiB frame limit.
    let sim = SimProcess::start(&["--mode", "zero", "--stream-interval", "600"]);
    let (mut cmd, out) = config_run(
        &sim,
        dir.path(),
        "large",
        "codec: jetstream\nmax_frame_mib: 0.0009765625\nrequest: {max_tokens: 600}\n\
         stages:\n  - {shape: constant, rate: 20, requests: 4}\n",
    );
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 5, "{stdout}\n{stderr}");
    let st = &summary(&out)["stages"][0];
    assert_accounted(st);
    assert_eq!(st["by_status"]["too_large"], 4, "{st}");
    let error = records(&out)[0]["error"].as_str().unwrap().to_string();
    assert!(error.contains("max_frame_mib"), "{error}");
}

/// The hosted APIs against the simulator's endpoints for them, streamed
/// and whole: exact counts from their usage, their own stop reasons, and
/// their keys sent from granted secrets as each API wants them (a wrong
/// key is an `auth_error` that names no key). Bedrock's and SageMaker's key
/// is the access key id their SigV4 signature names (botocore checks the
/// signature itself: `aws_signatures_match_botocores`); SageMaker's
/// stream is the container's cut across `PayloadPart` events.
#[test]
fn hosted_apis_run_streamed_and_whole_with_their_keys_as_secrets() {
    const RIGHT: &str = "key-right-0001";
    const WRONG: &str = "key-wrong-0002";
    let cases = [
        ("anthropic-messages", "max_tokens", &["api-key"][..]),
        ("openai-responses", "max_output_tokens", &["api-key"][..]),
        ("gemini", "MAX_TOKENS", &["api-key"][..]),
        (
            "bedrock-converse",
            "max_tokens",
            &["access-key-id", "secret-access-key"][..],
        ),
        ("sagemaker", "length", &["access-key-id", "secret-access-key"][..]),
    ];
    for (codec, finish, secrets) in cases {
        for (stream, key) in [(true, RIGHT), (false, RIGHT), (true, WRONG)] {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("run.yaml");
            std::fs::write(
                &config,
                format!(
                    "codec: {codec}\nsim: {{api_key: {RIGHT}}}\nrequest: {{prompt_tokens: 12, max_tokens: 6, stream: {stream}}}\n\
                     stages:\n  - {{shape: constant, rate: 20, requests: 5}}\n"
                ),
            )
            .unwrap();
            let out = dir.path().join("run");
            let mut cmd = barrage();
            cmd.env("BARRAGE_TEST_KEY", key).args(["run", "--config"]).arg(&config);
            for name in secrets {
                cmd.args(["--codec-secret", &format!("{name}=env:BARRAGE_TEST_KEY")]);
            }
            let (code, stdout, stderr) = run(cmd.arg("--output").arg(&out));
            let recs = records(&out);
            assert_eq!(recs.len(), 5, "{codec}: {stderr}");
            if key == WRONG {
                assert!(!stdout.contains(key) && !stderr.contains(key), "{codec}");
                for r in &recs {
                    assert_eq!(r["status"], "auth_error", "{codec}: {r}");
                    assert!(!r.to_string().contains(key), "{codec}: {r}");
                }
                continue;
            }
            assert_eq!(code, 0, "{codec}: {stderr}");
            for r in &recs {
                assert_eq!(r["status"], "ok", "{codec} stream {stream}: {r}");
                assert_eq!(r["output_tokens"], 6, "{codec}: {r}");
                assert_eq!(r["output_tokens_source"], "usage", "{codec}: {r}");
                assert_eq!(r["prompt_tokens"], 12, "{codec}: {r}");
                assert_eq!(r["finish_reason"], finish, "{codec}: {r}");
                if stream {
                    assert_eq!(r["content_frames_ms"].as_array().unwrap().len(), 6, "{codec}: {r}");
                }
            }
        }
    }
}

/// An AWS event-stream message whose CRC does not match its bytes ends
/// that response as `malformed`, with the message named, and the run goes on.
#[test]
fn a_bedrock_stream_with_a_bad_crc_is_a_counted_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.yaml");
    std::fs::write(
        &config,
        "codec: bedrock-converse\nsim: {faults: {malformed_frame: 1.0}}\nrequest: {prompt_tokens: 12, max_tokens: 8}\n\
         stages:\n  - {shape: constant, rate: 20, requests: 4}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let (_, _, stderr) = run(barrage()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out));
    let recs = records(&out);
    assert_eq!(recs.len(), 4, "{stderr}");
    for r in &recs {
        assert_eq!(r["status"], "malformed", "{r}");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains("CRC of message"), "{r}");
    }
    assert_eq!(summary(&out)["total"]["by_status"]["malformed"], 4);
}
