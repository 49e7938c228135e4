//! Barrage against a gRPC stack nobody here wrote: Python's grpcio serving
//! KServe v2 (Triton's `grpc_service.proto`), vLLM's engine service and
//! JetStream with the stubs those projects publish on PyPI
//! (`tests/interop/grpc_server.py`; `tests/setup` fetches the stubs). The
//! server writes down what the official stubs decoded from each request
//! and when it handed each message to grpcio, on the clock Barrage times
//! with: Barrage's requests must say what was asked, and its records must
//! hold the server's token counts and times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{Daemon, barrage, free_port, records, run, summary, workspace};

/// Tokens in each message the server sends (`SCRIPT` in grpc_server.py),
/// the first 60 ms after the call arrives, the rest 12 ms apart.
const SCRIPT: [u64; 8] = [1, 2, 1, 3, 1, 2, 1, 1];

struct Server {
    daemon: Daemon,
    truth: PathBuf,
}

fn start(dir: &Path) -> Server {
    let stubs = workspace().join("target/test-tools/grpc-stubs");
    assert!(
        stubs.join("tritonclient/grpc/service_pb2.py").exists(),
        "the published stubs are missing: tests/setup fetches them into {}",
        stubs.display()
    );
    let port = free_port();
    let truth = dir.join("truth.jsonl");
    let mut command = Command::new("python3");
    command
        .arg(workspace().join("tests/interop/grpc_server.py"))
        .arg(port.to_string())
        .arg(&truth)
        .env("PYTHONPATH", &stubs);
    let daemon = Daemon::start_listening(command, format!("127.0.0.1:{port}"), dir.join("grpc-server.log"));
    Server { daemon, truth }
}

/// The server's records, by Barrage's request id.
fn truth(path: &Path) -> BTreeMap<u64, Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["request_id"].as_str().unwrap().parse().unwrap(), v))
        .collect()
}

/// A run of `requests` through `codec` against the server; its directory.
fn run_against(server: &Server, dir: &Path, name: &str, yaml: &str) -> (i32, PathBuf, String) {
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml).unwrap();
    let out = dir.join(name);
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--quiet", "--reporter", "json", "--config"])
        .arg(&cfg)
        .args(["--target", &format!("http://{}", server.daemon.addr), "--output"])
        .arg(&out));
    (code, out, format!("{stdout}\n{stderr}\n{}", server.daemon.log()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn barrages_requests_counts_and_times_match_a_grpcio_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let cases = [
        ("kserve-v2-grpc", "kserve", true),
        ("kserve-v2-grpc", "kserve", false),
        ("vllm-grpc", "vllm", true),
        ("vllm-grpc", "vllm", false),
        ("jetstream", "jetstream", true),
    ];
    for (codec, service, stream) in cases {
        let name = format!("{codec}-{}", if stream { "stream" } else { "unary" });
        let (code, out, log) = run_against(
            &server,
            dir.path(),
            &name,
            &format!(
                "codec: {codec}\ngrpc_connections: 2\n\
                 request: {{prompt_tokens: 16, max_tokens: 12, ignore_eos: true, stream: {stream}}}\n\
                 stages:\n  - {{shape: constant, rate: 20, requests: 8}}\n"
            ),
        );
        assert_eq!(code, 0, "{name}: {log}");
        let st = &summary(&out)["stages"][0];
        assert_eq!(st["succeeded"], 8, "{name}: {st}");
        assert_eq!(st["output_tokens"], 8 * 12, "{name}: exact counts: {st}");
        let meta: Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
        let origin_ns = meta["origin_monotonic_ns"].as_u64().unwrap() as f64;
        let at_ms = |ns: &Value| (ns.as_u64().unwrap() as f64 - origin_ns) / 1e6;
        let truth = truth(&server.truth);
        let (mut ttft_gaps, mut frame_gaps) = (Vec::new(), Vec::new());
        for r in records(&out) {
            let id = r["id"].as_u64().unwrap();
            let t = truth
                .get(&id)
                .filter(|t| t["service"] == service)
                .unwrap_or_else(|| panic!("{name}: the server saw no call {id}"));
            // What the official stubs decoded is what was asked.
            let asked = &t["asked"];
            match service {
                "kserve" => {
                    let inputs = &asked["inputs"];
                    assert_eq!(inputs["max_tokens"], 12, "{name}: {asked}");
                    assert_eq!(inputs["stream"], stream, "{name}: {asked}");
                    assert_eq!(inputs["return_num_output_tokens"], true, "{name}: {asked}");
                    assert_eq!(inputs["text_input"].as_str().unwrap().split_whitespace().count(), 16);
                }
                "vllm" => {
                    assert_eq!(
                        (
                            &asked["max_tokens"],
                            &asked["ignore_eos"],
                            &asked["stream"],
                            &asked["input"]
                        ),
                        (
                            &Value::from(12),
                            &Value::from(true),
                            &Value::from(stream),
                            &Value::from("text")
                        ),
                        "{name}: {asked}"
                    );
                    assert_eq!(asked["request_id"], id.to_string());
                    assert_eq!(asked["skip_special_tokens"], true);
                    assert_eq!(asked["text"].as_str().unwrap().split_whitespace().count(), 16);
                }
                _ => {
                    assert_eq!(asked["max_tokens"], 12, "{name}: {asked}");
                    assert_eq!(asked["content"], "text_content", "{name}: {asked}");
                }
            }
            // Counts: the server's, exactly, message by message when streamed.
            assert_eq!(r["output_tokens"], 12, "{name}: {r}");
            assert_eq!(r["output_tokens_source"], "usage", "{name}: {r}");
            if service == "vllm" {
                assert_eq!(r["prompt_tokens"], 16, "{name}: the server's prompt count");
            }
            // Times: sent before the server saw it, each message received
            // after the server handed it over.
            let sent = r["sent_ms"].as_f64().unwrap();
            let arrived = at_ms(&t["arrived_ns"]);
            assert!(
                arrived >= sent,
                "{name}: arrived {arrived:.3} ms before sent {sent:.3} ms"
            );
            let server_sent: Vec<f64> = t["sent_ns"].as_array().unwrap().iter().map(at_ms).collect();
            let frames: Vec<f64> = r["content_frames_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            if stream {
                assert_eq!(frames.len(), SCRIPT.len(), "{name}: one content frame per message: {r}");
                let tokens: Vec<u64> = r["content_frame_tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                assert_eq!(tokens, SCRIPT, "{name}: each message's tokens");
                for (got, handed) in frames.iter().zip(&server_sent) {
                    assert!(
                        got >= handed,
                        "{name}: a frame at {got:.3} ms, handed over at {handed:.3} ms"
                    );
                    frame_gaps.push(got - handed);
                }
            } else {
                assert_eq!(frames.len(), 1, "{name}: {r}");
            }
            let ttft = r["first_token_ms"].as_f64().unwrap() - sent;
            ttft_gaps.push(ttft - (server_sent[0] - arrived));
        }
        // On loopback, what separates Barrage's times from the server's is
        // grpcio's own reading and writing and the kernel: 1.3-2.6 ms at
        // the median for TTFT (grpcio parses the call before its handler
        // starts the server's clock), 0.4 ms for a message, seen on this
        // two-core machine; the bounds leave room for a busy one.
        let ttft_gap = median(ttft_gaps);
        assert!(
            (0.0..10.0).contains(&ttft_gap),
            "{name}: TTFT {ttft_gap:.3} ms over the server's"
        );
        if stream {
            let frame_gap = median(frame_gaps);
            assert!(frame_gap < 5.0, "{name}: frames {frame_gap:.3} ms after the server's");
        }
    }
}

#[test]
fn grpcio_statuses_are_counted_with_their_names_and_what_arrived_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    for codec in ["kserve-v2-grpc", "vllm-grpc", "jetstream"] {
        // A trailers-only refusal.
        let (code, out, log) = run_against(
            &server,
            dir.path(),
            &format!("{codec}-refused"),
            &format!(
                "codec: {codec}\ncodec_config: {{headers: {{x-fail: RESOURCE_EXHAUSTED}}}}\n\
                 request: {{max_tokens: 12}}\nstages:\n  - {{shape: constant, rate: 20, requests: 4}}\n"
            ),
        );
        assert_eq!(code, 5, "{codec}: {log}");
        let st = &summary(&out)["stages"][0];
        assert_eq!(st["by_status"]["grpc_error"], 4, "{codec}: {st}");
        for r in records(&out) {
            assert_eq!(r["error"], "grpc:RESOURCE_EXHAUSTED: refused by x-fail", "{codec}: {r}");
            assert_eq!(r["http_status"], 200, "{codec}: the status came in the headers");
        }
        // An error after three messages: the call fails, its three messages kept.
        let (code, out, log) = run_against(
            &server,
            dir.path(),
            &format!("{codec}-midstream"),
            &format!(
                "codec: {codec}\ncodec_config: {{headers: {{x-fail-after: \"3\"}}}}\n\
                 request: {{max_tokens: 12}}\nstages:\n  - {{shape: constant, rate: 20, requests: 4}}\n"
            ),
        );
        assert_eq!(code, 5, "{codec}: {log}");
        for r in records(&out) {
            assert_eq!(r["status"], "grpc_error", "{codec}: {r}");
            assert_eq!(r["error"], "grpc:INTERNAL: failed after 3 messages", "{codec}: {r}");
            assert_eq!(r["content_frames_ms"].as_array().unwrap().len(), 3, "{codec}: {r}");
        }
    }
}

/// SigV4 as AWS's own SDK computes it: `tests/interop/sigv4_server.py`
/// re-signs every request with botocore's `SigV4Auth` (same credentials,
/// the request's own date, the service its path belongs to) and answers
/// 403 unless Barrage's signature is the same, for Bedrock and SageMaker
/// alike. Temporary credentials sign their session token too; a request
/// without it, or with a wrong secret key, is refused and counted as an
/// `auth_error`.
#[test]
fn aws_signatures_match_botocores() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new("python3");
    command.arg(workspace().join("tests/interop/sigv4_server.py")).args([
        &port.to_string(),
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "eu-west-3",
        "FwoGZXIvYXdzEXAMPLETOKEN",
    ]);
    let server = Daemon::start_listening(command, format!("127.0.0.1:{port}"), dir.path().join("sigv4.log"));
    let codecs = [
        ("bedrock-converse", "anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("sagemaker", "llama-3-8b-instruct"),
    ];
    for (codec, model) in codecs {
        for (name, secret, token, ok) in [
            ("signed", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", true, true),
            ("no-token", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", false, false),
            ("wrong-key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY00", true, false),
        ] {
            let cfg = dir.path().join(format!("{codec}-{name}.yaml"));
            // The codec signs the host requests carry: here the server's address.
            std::fs::write(
                &cfg,
                format!(
                    "codec: {codec}\ncodec_config: {{region: eu-west-3, host: \"127.0.0.1:{port}\"}}\n\
                     model: \"{model}\"\n\
                     request: {{prompt_tokens: 12, max_tokens: 6, stream: false}}\n\
                     stages:\n  - {{shape: constant, rate: 20, requests: 4}}\n"
                ),
            )
            .unwrap();
            let out = dir.path().join(format!("{codec}-{name}"));
            let mut cmd = barrage();
            cmd.env("AWS_TEST_ID", "AKIAIOSFODNN7EXAMPLE")
                .env("AWS_TEST_SECRET", secret)
                .env("AWS_TEST_TOKEN", "FwoGZXIvYXdzEXAMPLETOKEN")
                .args(["run", "--quiet", "--config"])
                .arg(&cfg)
                .args(["--target", &format!("http://{}", server.addr)])
                .args(["--codec-secret", "access-key-id=env:AWS_TEST_ID"])
                .args(["--codec-secret", "secret-access-key=env:AWS_TEST_SECRET"]);
            if token {
                cmd.args(["--codec-secret", "session-token=env:AWS_TEST_TOKEN"]);
            }
            let (_, stdout, stderr) = run(cmd.arg("--output").arg(&out));
            let recs = records(&out);
            assert_eq!(recs.len(), 4, "{codec} {name}: {stdout}\n{stderr}\n{}", server.log());
            for r in &recs {
                if ok {
                    assert_eq!(r["status"], "ok", "{codec} {name}: {r}\n{}", server.log());
                    assert_eq!(r["output_tokens"], 3, "{r}");
                } else {
                    assert_eq!(r["status"], "auth_error", "{codec} {name}: {r}");
                    assert!(r["error"].as_str().unwrap().contains("signature"), "{r}");
                }
            }
        }
    }
    let log = server.log();
    for path in [
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse",
        "/endpoints/llama-3-8b-instruct/invocations",
    ] {
        assert_eq!(
            log.matches(&format!("signature ok: {path}\n")).count(),
            4,
            "{path}: {log}"
        );
    }
    assert_eq!(log.matches("signature mismatch").count(), 16, "{log}");
}
