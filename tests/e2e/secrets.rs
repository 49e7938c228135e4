//! Secrets granted to plugins: they reach the plugin that declares them and
//! the server it sends them to, and nothing else: no record, summary, log,
//! report, error message or console line holds a value, whatever the plugin
//! or the server does with it.

use std::path::Path;

use crate::common::{barrage, records, run, summary, test_plugin};

/// Every file under `dir`, read whole (lossily: reports are text, the
/// rest is searched as bytes would be).
fn every_file(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(every_file(&path));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            out.push((path.display().to_string(), text));
        }
    }
    out
}

/// No file under `dir` and neither console stream holds `value`.
fn assert_nowhere(value: &str, dir: &Path, stdout: &str, stderr: &str) {
    let files = every_file(dir);
    assert!(files.len() >= 4, "the run wrote its results: {files:?}");
    for (path, text) in files {
        assert!(!text.contains(value), "{path} holds the secret:\n{text}");
    }
    assert!(!stdout.contains(value), "stdout holds the secret:\n{stdout}");
    assert!(!stderr.contains(value), "stderr holds the secret:\n{stderr}");
}

#[test]
fn a_plugin_that_shows_its_secret_everywhere_shows_it_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let token = "tok-5be7a1c09d3e4f62";
    let (code, stdout, stderr) = run(barrage()
        .env("BARRAGE_TEST_TOKEN", token)
        .args(["run", "--rate", "50", "--requests", "9", "--codec"])
        .arg(test_plugin("hostile"))
        .args([
            "--codec-config",
            r#"{"attack": "leak"}"#,
            "--codec-secret",
            "token=env:BARRAGE_TEST_TOKEN",
            "--reporter",
            "json",
            "--reporter",
            "markdown",
            "--reporter",
            "csv",
            "--output",
        ])
        .arg(&out));
    assert_ne!(code, 2, "{stderr}");
    assert_nowhere(token, &out, &stdout, &stderr);
    // Each path the plugin tried was taken, and masked.
    assert!(stderr.contains("the token is [secret]"), "{stderr}");
    let recs = records(&out);
    assert_eq!(recs.len(), 9);
    let errors: Vec<&str> = recs.iter().filter_map(|r| r["error"].as_str()).collect();
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.contains("encode refused, token [secret]"))
            .count(),
        3,
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("the server saw [secret]")),
        "{errors:?}"
    );
}

/// A run of the openai-chat codec against a simulator that wants
/// `sim_key`, granted the key in a file; its exit code, console and results.
fn keyed_run(dir: &Path, sim_key: &str, granted: &str) -> (i32, String, String, std::path::PathBuf) {
    std::fs::write(dir.join("key.txt"), format!("{granted}\n")).unwrap();
    let config = dir.join("run.yaml");
    std::fs::write(
        &config,
        format!(
            "codec: openai-chat\ncodec_secrets:\n  api-key: {{file: key.txt}}\nsim:\n  api_key: {sim_key}\n\
             stages:\n  - {{shape: constant, rate: 50, requests: 6}}\n"
        ),
    )
    .unwrap();
    let out = dir.join("run");
    let (code, stdout, stderr) = run(barrage()
        .args(["run", "--config"])
        .arg(&config)
        .args(["--reporter", "json", "--output"])
        .arg(&out));
    (code, stdout, stderr, out)
}

#[test]
fn an_api_key_goes_to_the_server_as_a_bearer_token_and_a_refused_one_is_an_auth_error() {
    let dir = tempfile::tempdir().unwrap();
    let right = "sk-right-4f1d2c3b";
    let (code, _, stderr, out) = keyed_run(dir.path(), right, right);
    assert_eq!(code, 0, "{stderr}");
    assert!(records(&out).iter().all(|r| r["status"] == "ok"), "{:?}", records(&out));

    let dir = tempfile::tempdir().unwrap();
    let wrong = "sk-wrong-9a8b7c6d";
    let (_, stdout, stderr, out) = keyed_run(dir.path(), right, wrong);
    // The simulator answers as OpenAI does, naming the key it was given:
    // that is masked too.
    assert_nowhere(wrong, &out, &stdout, &stderr);
    let recs = records(&out);
    assert_eq!(recs.len(), 6);
    for r in &recs {
        assert_eq!(r["status"], "auth_error", "{r}");
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("Incorrect API key provided: [secret]"),
            "{r}"
        );
    }
    let st = summary(&out);
    assert_eq!(st["stages"][0]["by_status"]["auth_error"], 6, "{st}");
}

#[test]
fn grants_that_cannot_be_honoured_are_refused_before_anything_is_sent() {
    let hostile = test_plugin("hostile");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--codec-secret".into(), "nope=env:BARRAGE_TEST_LONG".into()],
            "plugin 'openai-chat' does not read a secret named `nope`; it reads: api-key",
        ),
        (
            vec![
                "--codec".into(),
                hostile.display().to_string(),
                "--codec-config".into(),
                r#"{"attack": "leak"}"#.into(),
            ],
            "needs secret `token` (what the `leak` attack tries to show), which is not granted: grant it with \
             `--codec-secret token=env:VARIABLE`",
        ),
        (
            vec![
                "--codec-secret".into(),
                "api-key=env:BARRAGE_SURELY_UNSET_VARIABLE".into(),
            ],
            "codec_secrets.api-key: the environment variable `BARRAGE_SURELY_UNSET_VARIABLE` is not set",
        ),
        (
            vec!["--codec-secret".into(), "api-key=env:BARRAGE_TEST_SHORT".into()],
            "codec_secrets.api-key: its value has 5 bytes; a secret needs at least 8",
        ),
        (
            vec!["--codec-secret".into(), "api-key=vault:x".into()],
            "--codec-secret api-key: `vault:x`: a secret comes from `env:VARIABLE` or `file:PATH`",
        ),
    ];
    for (args, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, _, stderr) = run(barrage()
            .env("BARRAGE_TEST_SHORT", "short")
            .env("BARRAGE_TEST_LONG", "long-enough-value")
            .args(["run", "--rate", "50", "--requests", "2", "--output"])
            .arg(dir.path().join("run"))
            .args(&args));
        assert_ne!(code, 0, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}:\n{stderr}");
        assert!(
            !dir.path().join("run/records.jsonl").exists(),
            "{args:?}: nothing is sent"
        );
    }
}
