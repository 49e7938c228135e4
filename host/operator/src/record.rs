//! `barrage-operator run --record FILE`: every exchange with the API server
//! but watches, appended to FILE as one JSON line each, in the shape of the
//! test transcripts' `exchanges` (`host/operator/tests/transcripts`), so a
//! transcript can be taken from a real cluster. Headers (credentials among
//! them) are not written.

use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use tower::{Layer, Service};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The layer `ClientBuilder::with_layer` takes.
#[derive(Clone)]
pub struct RecordLayer {
    out: Arc<Mutex<std::fs::File>>,
}

impl RecordLayer {
    /// Appends to `path`, making it if need be.
    pub fn create(path: &Path) -> std::io::Result<RecordLayer> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RecordLayer {
            out: Arc::new(Mutex::new(file)),
        })
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner: Arc::new(tokio::sync::Mutex::new(inner)),
            out: self.out.clone(),
        }
    }
}

/// Shares the service it wraps: kube's stack is not `Clone`, and a
/// request's body must be read before the call.
#[derive(Clone)]
pub struct Record<S> {
    inner: Arc<tokio::sync::Mutex<S>>,
    out: Arc<Mutex<std::fs::File>>,
}

/// A body as JSON where it is JSON, else as text; none when empty.
fn body_value(bytes: &Bytes) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    Some(serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())))
}

impl<S, B> Service<Request<kube::client::Body>> for Record<S>
where
    S: Service<Request<kube::client::Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<UnsyncBoxBody<Bytes, BoxError>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is the wrapped service's, awaited in `call`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let inner = self.inner.clone();
        let out = self.out.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let method = parts.method.to_string();
            let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
            let watch = parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
            let sent = body.collect().await?.to_bytes();
            let req = Request::from_parts(parts, kube::client::Body::from(sent.clone()));
            let call = {
                use tower::ServiceExt as _;
                let mut inner = inner.lock().await;
                inner.ready().await.map_err(Into::into)?.call(req)
            };
            let response = call.await.map_err(Into::into)?;
            if watch {
                // A watch answers for as long as it lasts: passed through.
                return Ok(response.map(|b| b.map_err(Into::into).boxed_unsync()));
            }
            let (rparts, rbody) = response.into_parts();
            let answer = rbody.collect().await.map_err(Into::into)?.to_bytes();
            let line = json!({
                "request": {"method": method, "path": path, "body": body_value(&sent)},
                "response": {"status": rparts.status.as_u16(), "body": body_value(&answer)},
            });
            if let Ok(mut f) = out.lock() {
                writeln!(f, "{line}")?;
            }
            Ok(Response::from_parts(
                rparts,
                Full::new(answer).map_err(|never| match never {}).boxed_unsync(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[tokio::test]
    async fn exchanges_are_written_as_transcript_lines_and_the_answer_passes_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.jsonl");
        let inner = tower::service_fn(|req: Request<kube::client::Body>| async move {
            assert_eq!(req.uri().path(), "/api/v1/namespaces/bench/configmaps/demo-config");
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo-config"}, "data": {"a": "b"}});
            Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(body.to_string()))))
        });
        let service = RecordLayer::create(&path).unwrap().layer(inner);
        let client = kube::Client::new(service, "default");
        let cm: ConfigMap = kube::Api::namespaced(client, "bench").get("demo-config").await.unwrap();
        assert_eq!(cm.data.unwrap()["a"], "b");
        let text = std::fs::read_to_string(&path).unwrap();
        let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["request"]["method"], "GET");
        assert_eq!(
            line["request"]["path"],
            "/api/v1/namespaces/bench/configmaps/demo-config"
        );
        assert_eq!(line["response"]["status"], 200);
        assert_eq!(line["response"]["body"]["data"]["a"], "b");
    }
}
