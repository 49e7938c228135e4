//! Servers that misbehave: each is a small loopback server written to break
//! one rule, and each test shows the run counting it as the failure it is,
//! never as a healthy response, and never growing without bound.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::common::{barrage, records, run, summary};

/// A loopback server that reads each request's head (and a small body)
/// and then lets `answer` write to the connection, which closes after.
fn answering(answer: fn(&mut TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                answer(&mut stream);
            });
        }
    });
    addr
}

/// `barrage run` of `requests` requests at 50/s against `addr`, with `extra` arguments.
fn run_against(addr: SocketAddr, out: &Path, requests: u32, extra: &[&str]) -> (i32, String) {
    let (code, _, stderr) = run(barrage()
        .args(["run", "--quiet", "--rate", "50", "--requests"])
        .arg(requests.to_string())
        .arg("--target")
        .arg(format!("http://{addr}"))
        .arg("--output")
        .arg(out)
        .args(extra));
    (code, stderr)
}

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
const CHUNK: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";

#[test]
fn a_broken_server_never_looks_healthy() {
    fn json(s: &mut TcpStream) {
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: 69\r\n\r\n\
{\"choices\":[{\"index\":0,\"message\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}",
        );
    }
    fn headers_only(s: &mut TcpStream) {
        let _ = s.write_all(SSE_HEAD);
    }
    fn one_frame(s: &mut TcpStream) {
        let _ = s.write_all(&[SSE_HEAD, CHUNK].concat());
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, answer, status) in [
        ("json", json as fn(&mut TcpStream), "empty_response"),
        ("headers-only", headers_only, "empty_response"),
        ("one-frame", one_frame, "truncated"),
    ] {
        let out = dir.path().join(name);
        let (code, stderr) = run_against(answering(answer), &out, 3, &["--slo", "ttft < 10s"]);
        // Nothing succeeded: a distinct exit code, and the report is still written.
        assert_eq!(code, 5, "{name}: {stderr}");
        assert!(
            stderr.contains("error: no request succeeded (3 sent)"),
            "{name}: {stderr}"
        );
        assert!(out.join("report.html").exists(), "{name}");
        let s = summary(&out);
        let stage = &s["stages"][0];
        assert_eq!(stage["succeeded"], 0, "{name}: {s}");
        assert_eq!(stage["by_status"][status], 3, "{name}: {s}");
        assert_eq!(stage["goodput"]["good"], 0, "{name}: {s}");
    }
}

#[test]
fn a_timed_out_request_keeps_the_stream_it_received() {
    // Three chunks and half of a fourth, then nothing until long past the timeout.
    fn stalls(s: &mut TcpStream) {
        let _ = s.write_all(&[SSE_HEAD, CHUNK, CHUNK, CHUNK, &CHUNK[..20]].concat());
        std::thread::sleep(Duration::from_secs(30));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.yaml");
    std::fs::write(&cfg, "request: {timeout_s: 0.5}\n").unwrap();
    let out = dir.path().join("run");
    let (code, stderr) = run_against(answering(stalls), &out, 2, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 5, "{stderr}");
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["status"], "timeout", "{r}");
        assert_eq!(r["error"], "timed out", "{r}");
        // The frames that arrived, their times and tokens are kept; the
        // unfinished fourth is not a frame (so not a malformed one).
        assert_eq!(r["content_frames_ms"].as_array().unwrap().len(), 3, "{r}");
        assert_eq!(r["output_tokens"], 3, "{r}");
        assert!(r.get("malformed_frames").is_none(), "{r}");
        let (sent, first, end) = (
            r["sent_ms"].as_f64().unwrap(),
            r["first_token_ms"].as_f64().unwrap(),
            r["end_ms"].as_f64().unwrap(),
        );
        // The 0.5 s timeout runs from the call; the send is stamped just after.
        assert!(first > sent && first < end && end - sent >= 490.0, "{r}");
        assert_eq!(r["bytes_received"], (3 * CHUNK.len() + 20) as u64, "{r}");
    }
    // A timed-out request is still no success: its tokens count nowhere.
    let s = summary(&out);
    assert_eq!(s["stages"][0]["by_status"]["timeout"], 2, "{s}");
    assert_eq!(s["stages"][0]["output_tokens"], 0, "{s}");
}

#[test]
fn a_server_that_never_answers_is_timed_out_or_cancelled_not_waited_for() {
    // Each request is written from the pacer's thread, and its task waits,
    // unspawned, for whatever wakes it first: with no byte ever coming back,
    // that is its timeout, or the cancel when a stop's grace period ends.
    fn silent(_: &mut TcpStream) {
        std::thread::sleep(Duration::from_secs(30));
    }
    let dir = tempfile::tempdir().unwrap();
    let check = |out: &Path, status: &str| {
        let recs = records(out);
        assert_eq!(recs.len(), 3, "{status}: every request has its record");
        for r in &recs {
            assert_eq!(r["status"], status, "{r}");
            assert!(r["headers_ms"].is_null() && r["first_byte_ms"].is_null(), "{r}");
            let (sent, end) = (r["sent_ms"].as_f64().unwrap(), r["end_ms"].as_f64().unwrap());
            if status == "timeout" {
                // The 0.5 s runs from the call; the send is stamped just after.
                assert!((490.0..5000.0).contains(&(end - sent)), "{r}");
            }
        }
        assert_eq!(summary(out)["stages"][0]["by_status"][status], 3);
    };

    let cfg = dir.path().join("timeout.yaml");
    std::fs::write(&cfg, "request: {timeout_s: 0.5}\n").unwrap();
    let out = dir.path().join("timeout");
    let (code, stderr) = run_against(answering(silent), &out, 3, &["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 5, "{stderr}");
    check(&out, "timeout");

    // A timeout of ten minutes: only the stop ends these.
    std::fs::write(&cfg, "request: {timeout_s: 600}\ngrace_period_s: 0.3\n").unwrap();
    let out = dir.path().join("cancel");
    let mut child = barrage()
        .args(["run", "--quiet", "--rate", "50", "--requests", "3", "--target"])
        .arg(format!("http://{}", answering(silent)))
        .arg("--output")
        .arg(&out)
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (_, stopping) = crate::common::interrupt_after(&mut child, Duration::from_secs(1));
    assert!(stopping < Duration::from_secs(10), "the stop waited {stopping:?}");
    check(&out, "cancelled");
}

#[test]
fn a_frame_past_the_limit_fails_the_request_as_too_large_and_reading_stops() {
    // Two chunks, then one line that never ends: 64 KiB at a time until
    // the client hangs up.
    fn endless_line(s: &mut TcpStream) {
        let _ = s.write_all(&[SSE_HEAD, CHUNK, CHUNK, b"data: "].concat());
        let piece = vec![b'x'; 64 << 10];
        while s.write_all(&piece).is_ok() {}
    }
    // An error body, gathered whole, of 2 MiB.
    fn huge_error(s: &mut TcpStream) {
        let body = vec![b' '; 2 << 20];
        let head = format!(
            "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, answer, frames) in [
        ("endless-line", endless_line as fn(&mut TcpStream), 2),
        ("huge-error", huge_error, 0),
    ] {
        let out = dir.path().join(name);
        let (code, stderr) = run_against(answering(answer), &out, 2, &["--max-frame-mib", "1"]);
        assert_eq!(code, 5, "{name}: {stderr}");
        let recs = records(&out);
        assert_eq!(recs.len(), 2, "{name}");
        for r in &recs {
            assert_eq!(r["status"], "too_large", "{name}: {r}");
            let error = r["error"].as_str().unwrap();
            assert!(error.contains("went over max_frame_mib (1 MiB)"), "{name}: {error}");
            // The frames before the long one are kept.
            assert_eq!(r["content_frames_ms"].as_array().unwrap().len(), frames, "{name}: {r}");
            // Reading stopped soon after the limit, though the server would go on.
            let read = r["bytes_received"].as_u64().unwrap();
            assert!(read > 1 << 20 && read < 2 << 20, "{name}: {read} bytes read");
        }
    }
    // The default is 16 MiB; the limit has a documented range.
    let (code, stderr) = run_against(
        answering(endless_line),
        &dir.path().join("zero"),
        1,
        &["--max-frame-mib", "0"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("max_frame_mib is 0; it must be from") && stderr.contains("docs/load.md"),
        "{stderr}"
    );
}

#[test]
fn plugin_decode_refuses_a_recorded_frame_past_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("long.sse");
    let long = format!("{}data: {}\n\n", String::from_utf8_lossy(CHUNK), "x".repeat(20_000));
    std::fs::write(&body, long).unwrap();
    let (code, stdout, stderr) = run(barrage()
        .args(["plugin", "decode", "--codec", "openai-chat", "--max-frame-mib", "0.01"])
        .arg(&body));
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("too_large: a frame exceeded the limit of 10485 bytes, past --max-frame-mib 0.01"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 content bytes=2"),
        "the frame before it was decoded: {stdout}"
    );
    assert!(
        stdout.contains("1 responses: 0 decoded, 1 failed (1 too_large)"),
        "{stdout}"
    );
    // Under the default limit the same body decodes.
    let (_, stdout, _) = run(barrage()
        .args(["plugin", "decode", "--codec", "openai-chat"])
        .arg(&body));
    assert!(!stdout.contains("too_large"), "{stdout}");
}
