//! The operator's reconcile steps against transcripts of the Kubernetes API
//! (`tests/transcripts/*.yaml`): each names the run as the watch delivers
//! it, the clock, every request the step must make (method, path and query,
//! body) in order with the API's answer, and the step's outcome. No API
//! server runs on these machines; docs/kubernetes.md says how to try the
//! operator on a real cluster.
//!
//! `BARRAGE_UPDATE_TRANSCRIPTS=1` rewrites the recorded request bodies with
//! what the operator sends now (review the diff); the paths, answers and
//! outcomes are never rewritten.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use barrage_operator::crd::BenchmarkRun;
use barrage_operator::reconcile::{Context, reconcile};
use barrage_operator::render::Defaults;
use http_body_util::BodyExt as _;
use kube::runtime::controller::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Transcript {
    about: String,
    now: i64,
    run: Value,
    exchanges: Vec<Exchange>,
    /// `requeue Ns` or `await change`.
    outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Exchange {
    request: Request,
    response: Response,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    method: String,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Response {
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<Value>,
    /// Answer with the request's body, as the API server answers a create.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    echo: bool,
}

struct Replay {
    exchanges: Vec<Exchange>,
    next: usize,
    /// What differed from the transcript, in order.
    mismatches: Vec<String>,
    /// The bodies actually sent, for updating.
    sent: Vec<Option<Value>>,
}

fn transcripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/transcripts");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the transcripts are missing from {}", dir.display());
    files
}

async fn replay(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut transcript: Transcript = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let state = Arc::new(Mutex::new(Replay {
        exchanges: transcript.exchanges.clone(),
        next: 0,
        mismatches: Vec::new(),
        sent: Vec::new(),
    }));
    let service = {
        let state = state.clone();
        tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                let body: Option<Value> = (!bytes.is_empty()).then(|| serde_json::from_slice(&bytes).unwrap());
                let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
                let mut s = state.lock().unwrap();
                let i = s.next;
                s.next += 1;
                s.sent.push(body.clone());
                let Some(ex) = s.exchanges.get(i).cloned() else {
                    s.mismatches
                        .push(format!("request {i} is not in the transcript: {} {path}", parts.method));
                    return Ok::<_, String>(answer(500, None));
                };
                if ex.request.method != parts.method.as_str() || ex.request.path != path {
                    s.mismatches.push(format!(
                        "request {i}: the transcript has {} {}, the operator sent {} {path}",
                        ex.request.method, ex.request.path, parts.method
                    ));
                    return Ok(answer(500, None));
                }
                if std::env::var_os("BARRAGE_UPDATE_TRANSCRIPTS").is_none() && ex.request.body != body {
                    s.mismatches.push(format!(
                        "request {i} ({} {path}): the body differs\n  transcript: {}\n  sent:       {}",
                        parts.method,
                        serde_json::to_string(&ex.request.body).unwrap(),
                        serde_json::to_string(&body).unwrap()
                    ));
                }
                let reply = if ex.response.echo { body } else { ex.response.body };
                Ok(answer(ex.response.status, reply))
            }
        })
    };
    let client = kube::Client::new(service, "default");
    let run: BenchmarkRun = serde_json::from_value(transcript.run.clone()).map_err(|e| e.to_string())?;
    let now = transcript.now;
    let ctx = Arc::new(Context {
        client,
        defaults: Defaults {
            image: "registry.example/barrage:0.1.0".into(),
        },
        clock: Box::new(move || now),
    });
    let outcome = reconcile(Arc::new(run), ctx).await;
    let s = state.lock().unwrap();
    let mut problems = s.mismatches.clone();
    if s.next < s.exchanges.len() {
        problems.push(format!(
            "the operator stopped after {} of the transcript's {} requests",
            s.next,
            s.exchanges.len()
        ));
    }
    let expected = match transcript.outcome.as_str() {
        "await change" => Action::await_change(),
        other => {
            let secs = other
                .strip_prefix("requeue ")
                .and_then(|s| s.strip_suffix('s'))
                .and_then(|s| s.parse().ok());
            Action::requeue(Duration::from_secs(
                secs.unwrap_or_else(|| panic!("bad outcome `{other}`")),
            ))
        }
    };
    match outcome {
        Ok(action) if action == expected => {}
        Ok(action) => problems.push(format!(
            "the step ended with {action:?}, the transcript says {expected:?}"
        )),
        Err(e) => problems.push(format!("the step failed: {e}")),
    }
    if std::env::var_os("BARRAGE_UPDATE_TRANSCRIPTS").is_some() && s.mismatches.is_empty() {
        for (ex, body) in transcript.exchanges.iter_mut().zip(&s.sent) {
            ex.request.body = body.clone();
        }
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(path, header + &serde_yaml_ng::to_string(&transcript).unwrap()).unwrap();
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} ({}):\n{}",
            path.display(),
            transcript.about,
            problems.join("\n")
        ))
    }
}

fn answer(status: u16, body: Option<Value>) -> http::Response<http_body_util::Full<bytes::Bytes>> {
    let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn every_reconcile_step_makes_the_recorded_requests_and_ends_as_recorded() {
    let mut failures = Vec::new();
    for path in transcripts() {
        if let Err(e) = replay(&path).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The harness itself: a transcript that differs from what the operator
/// does must fail, or the test above proves nothing.
#[tokio::test]
async fn a_transcript_the_operator_does_not_follow_fails() {
    if std::env::var_os("BARRAGE_UPDATE_TRANSCRIPTS").is_some() {
        return;
    }
    let path = transcripts()
        .into_iter()
        .find(|p| p.ends_with("01-start.yaml"))
        .unwrap();
    let mut t: Transcript = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let body = t.exchanges[1].request.body.as_mut().unwrap();
    body["data"]["run.yaml"] = Value::String("target: http://elsewhere:1\n".into());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("changed.yaml");
    std::fs::write(&copy, serde_yaml_ng::to_string(&t).unwrap()).unwrap();
    let e = replay(&copy).await.unwrap_err();
    assert!(e.contains("request 1 (POST") && e.contains("the body differs"), "{e}");
    t.exchanges.pop();
    std::fs::write(&copy, serde_yaml_ng::to_string(&t).unwrap()).unwrap();
    let e = replay(&copy).await.unwrap_err();
    assert!(e.contains("is not in the transcript"), "{e}");
}
