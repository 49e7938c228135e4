//! HTTPS and HTTP/2: a self-signed simulator, trusted through a CA file or
//! not at all (`--insecure`), refused otherwise; h2c by prior knowledge.

use crate::common::{SimProcess, barrage, metric, run, summary};

#[test]
fn https_targets_are_verified_against_system_roots_and_a_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, cert) = SimProcess::zero_tls(dir.path());
    let target = format!("https://127.0.0.1:{}", sim.addr.port());
    let go = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let (code, _, stderr) = run(barrage()
            .args([
                "run",
                "--quiet",
                "--rate",
                "100",
                "--requests",
                "20",
                "--max-tokens",
                "4",
                "--target",
                &target,
                "--output",
            ])
            .arg(&out)
            .args(extra));
        let s = summary(&out);
        // Nothing succeeded (the untrusted case): exit code 5.
        let expected = if s["total"]["succeeded"] == 0 { 5 } else { 0 };
        assert_eq!(code, expected, "{name}: {stderr}");
        s
    };
    // Not trusted: every request fails the handshake, counted with the reason.
    let s = go("untrusted", &[]);
    assert_eq!(s["stages"][0]["by_status"]["transport_error"], 20);
    let errors = serde_json::to_string(&s["stages"][0]["errors"]).unwrap();
    assert!(errors.contains("certificate"), "{errors}");
    // Trusted through the CA file.
    let s = go("ca-file", &["--ca-file", cert.to_str().unwrap()]);
    assert_eq!(s["stages"][0]["succeeded"], 20);
    // Not verified at all.
    let s = go("insecure", &["--insecure"]);
    assert_eq!(s["stages"][0]["succeeded"], 20);
    // HTTP/2 over TLS, negotiated by ALPN.
    let s = go("h2", &["--http2", "--insecure"]);
    assert_eq!(s["stages"][0]["succeeded"], 20);
    let versions: Vec<String> = std::fs::read_to_string(dir.path().join("h2/records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["http_version"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(versions.iter().all(|v| v == "HTTP/2.0"), "{versions:?}");
    // gRPC over TLS: ALPN h2 whatever --http2 says, over two connections.
    let s = go(
        "grpc",
        &[
            "--codec",
            "kserve-v2-grpc",
            "--grpc-connections",
            "2",
            "--ca-file",
            cert.to_str().unwrap(),
        ],
    );
    assert_eq!(s["stages"][0]["succeeded"], 20);
    let connections: std::collections::BTreeSet<u64> = std::fs::read_to_string(dir.path().join("grpc/records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["connection_id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(connections.len(), 2, "{connections:?}");
    let (code, _, stderr) = run(barrage().args([
        "run",
        "--target",
        &target,
        "--ca-file",
        "/nonexistent.pem",
        "--requests",
        "1",
        "--rate",
        "1",
    ]));
    assert_eq!(code, 2);
    assert!(stderr.contains("TLS file /nonexistent.pem"), "{stderr}");
}

#[test]
fn http2_prior_knowledge_on_plain_http() {
    let sim = SimProcess::start(&["--mode", "zero"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h2c");
    let (code, _, stderr) = run(barrage()
        .args([
            "run",
            "--quiet",
            "--http2",
            "--rate",
            "100",
            "--requests",
            "30",
            "--max-tokens",
            "4",
            "--target",
            &format!("http://{}", sim.addr),
            "--output",
        ])
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary(&out)["stages"][0]["succeeded"], 30);
    let m = sim.metrics();
    assert_eq!(metric(&m, "barrage_sim:http_requests_total", &[("version", "2")]), 30.0);
}
