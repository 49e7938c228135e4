//! Workloads that are not token streams: embeddings, reranking and image
//! generation, through the CLI against the simulator's `/v1/embeddings`,
//! `/rerank` and `/v1/images/generations`. Their
//! records and summaries count items (vectors, documents scored) and input
//! tokens, their latency runs from send to the response's end, and no
//! report shows a time to first token for them.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::common::{barrage, records, run, summary};

#[test]
fn an_embeddings_run_reports_items_and_latency_and_no_token_timings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.yaml");
    std::fs::write(
        &config,
        "codec: openai-embeddings\nmodel: e5\ndataset:\n  plugin: synthetic\n  config: {count: 50, format: inputs, batch: 3, prompt_tokens: 20}\n\
         sim:\n  embeddings: {dimensions: 96, base_ms: 2, per_token_ms: 0.05}\n\
         stages:\n  - {shape: constant, rate: 20, requests: 10}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--config"])
        .arg(&config)
        .args([
            "--reporter",
            "json",
            "--reporter",
            "markdown",
            "--reporter",
            "csv",
            "--output",
        ])
        .arg(&out));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The console's table too: items and latency, no token timings.
    assert!(stdout.contains("items/s") && stdout.contains("lat p99"), "{stdout}");
    assert!(!stdout.contains("ttft"), "{stdout}");
    let recs = records(&out);
    assert_eq!(recs.len(), 10);
    for r in &recs {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["output"], "embeddings", "{r}");
        assert_eq!(r["items"], 3, "{r}");
        assert_eq!(r["dimensions"], 96, "{r}");
        assert!(r["first_token_ms"].is_null(), "no first token: {r}");
        // The simulator's usage: 3 inputs of 20 words.
        assert_eq!(r["prompt_tokens"], 60, "{r}");
        assert_eq!(r["prompt_tokens_source"], "usage", "{r}");
        // 2 ms + 60 tokens × 0.05 ms, at least.
        let latency = r["end_ms"].as_f64().unwrap() - r["sent_ms"].as_f64().unwrap();
        assert!(latency >= 5.0, "{latency} ms: {r}");
    }
    let s = summary(&out);
    let total = &s["total"];
    assert_eq!(total["items"], 30, "{total}");
    assert!(total["items_per_s"].as_f64().unwrap() > 0.0, "{total}");
    assert_eq!(total["input_tokens"], 600, "{total}");
    assert!(total["ttft_ms"].is_null(), "{total}");
    assert!(total["inter_token_ms"].is_null(), "{total}");
    assert!(total["output_tokens_per_request"].is_null(), "{total}");
    assert_eq!(total["e2e_stream_ms"]["count"], 10, "{total}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| items/s |"), "{md}");
    assert!(md.contains("| End-to-end (stream end) |"), "{md}");
    for absent in ["TTFT", "Inter-token", "output tokens/s"] {
        assert!(!md.contains(absent), "{absent} in:\n{md}");
    }
    let csv = std::fs::read_to_string(out.join("stages.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("items_per_s"), "{csv}");
}

/// A loopback server answering every request with `body` (status 200).
fn answering(body: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn an_embeddings_answer_without_vectors_or_not_json_is_a_named_failure() {
    for (body, status, error) in [
        (
            r#"{"object":"list","data":[]}"#,
            "empty_response",
            "the response held no embeddings",
        ),
        ("<html>busy</html>", "malformed", "not an embeddings response"),
    ] {
        let addr = answering(body);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let (code, _, stderr) = run(barrage()
            .args([
                "run",
                "--quiet",
                "--codec",
                "openai-embeddings",
                "--rate",
                "20",
                "--requests",
                "3",
            ])
            .arg("--target")
            .arg(format!("http://{addr}"))
            .arg("--output")
            .arg(&out));
        assert_ne!(code, 2, "{stderr}");
        for r in records(&out) {
            assert_eq!(r["status"], status, "{r}");
            assert!(r["error"].as_str().unwrap().contains(error), "{r}");
        }
    }
}

#[test]
fn a_rerank_run_counts_the_documents_scored_in_either_servers_shape() {
    for api in ["cohere", "tei"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let (code, _, stderr) = run(barrage()
            .args(["run", "--quiet", "--codec", "rerank", "--codec-config"])
            .arg(format!(r#"{{"api": "{api}"}}"#))
            .args([
                "--dataset",
                "synthetic",
                "--dataset-config",
                r#"{"count": 8, "format": "rerank", "batch": 5, "prompt_tokens": 10, "query_tokens": 3}"#,
                "--rate",
                "20",
                "--requests",
                "8",
                "--output",
            ])
            .arg(&out));
        assert_eq!(code, 0, "{api}: {stderr}");
        for r in records(&out) {
            assert_eq!(r["status"], "ok", "{api}: {r}");
            assert_eq!(r["output"], "ranking", "{r}");
            assert_eq!(r["items"], 5, "{r}");
            // The query read with each of five documents: the simulator's
            // usage (vLLM's shape), or the dataset's count (TEI reports none).
            assert_eq!(r["prompt_tokens"], 5 * (10 + 3), "{r}");
        }
        let total = &summary(&out)["total"];
        assert_eq!(total["items"], 40, "{api}: {total}");
        assert!(total["ttft_ms"].is_null(), "{total}");
    }
}

/// Images: counted with their decoded bytes, timed to the response's end
/// (the simulator's time grows with the pixels asked), no token timings;
/// an oversized request is the server's named 400.
#[test]
fn an_image_run_counts_images_and_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("run.yaml");
    std::fs::write(
        &config,
        "codec: openai-images\ncodec_config: {n: 2, size: 256x128}\nrequest: {prompt_tokens: 7}\n\
         sim:\n  images: {base_ms: 1, per_megapixel_ms: 100, bytes_per_megapixel: 50000}\n\
         stages:\n  - {shape: constant, rate: 20, requests: 6}\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--reporter", "json", "--reporter", "markdown", "--output"])
        .arg(&out));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("items/s") && !stdout.contains("ttft"), "{stdout}");
    // 256 × 128 pixels are 0.032768 megapixels: 1638 bytes an image, and
    // 1 ms + 100 ms × 2 images × 0.032768 of time.
    for r in &records(&out) {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["output"], "images", "{r}");
        assert_eq!(r["items"], 2, "{r}");
        assert_eq!(r["media_bytes"], 2 * 1638, "{r}");
        assert_eq!(r["prompt_tokens"], 7, "{r}");
        assert!(r["first_token_ms"].is_null(), "{r}");
        let latency = r["end_ms"].as_f64().unwrap() - r["sent_ms"].as_f64().unwrap();
        assert!(latency >= 7.5, "{latency} ms: {r}");
    }
    let total = &summary(&out)["total"];
    assert_eq!(total["items"], 12, "{total}");
    assert!(total["ttft_ms"].is_null(), "{total}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| items/s |") && !md.contains("TTFT"), "{md}");

    std::fs::write(
        &config,
        "codec: openai-images\ncodec_config: {size: 9000x9000}\nstages:\n  - {shape: constant, rate: 20, requests: 2}\n",
    )
    .unwrap();
    let out = dir.path().join("too-big");
    run(barrage()
        .args(["run", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&out));
    for r in &records(&out) {
        assert_eq!(r["status"], "http_error", "{r}");
        assert!(r["error"].as_str().unwrap().contains("not a valid size"), "{r}");
    }
}

/// A corpus of one's own: jsonl batches to embed and csv queries with
/// documents to rank, counted in items and the server's input tokens.
#[test]
fn a_corpus_from_files_is_embedded_and_ranked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("embed.jsonl"),
        "{\"inputs\": [\"the quick brown fox\", \"jumps over\"]}\n{\"inputs\": [\"the lazy dog\"]}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rank.csv"),
        "query,documents\nwhich fox,\"[\"\"a fox\"\", \"\"a dog\"\", \"\"a cat\"\"]\"\n",
    )
    .unwrap();
    for (codec, plugin, file, items, tokens) in [
        ("openai-embeddings", "jsonl", "embed.jsonl", 6, 18),
        // Each document is read with the query: (2 + 2) × 3 a request.
        ("rerank", "csv", "rank.csv", 12, 48),
    ] {
        let config = dir.path().join(format!("{codec}.yaml"));
        std::fs::write(
            &config,
            format!(
                "codec: {codec}\ndataset: {{plugin: {plugin}, files: [{file}]}}\n\
                 stages:\n  - {{shape: constant, rate: 50, requests: 4}}\n"
            ),
        )
        .unwrap();
        let out = dir.path().join(codec);
        let (code, stdout, stderr) = run(barrage()
            .args(["run", "--quiet", "--config"])
            .arg(&config)
            .arg("--output")
            .arg(&out));
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        let total = &summary(&out)["total"];
        assert_eq!(total["items"], items, "{codec}: {total}");
        assert_eq!(total["input_tokens"], tokens, "{codec}: {total}");
    }
}
