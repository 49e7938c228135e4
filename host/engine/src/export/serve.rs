//! The scrape endpoint: `GET /metrics` in the Prometheus text format, or
//! OpenMetrics when the scraper asks for it, served by a task on the run's
//! runtime (request tasks never wait for it: encoding takes the families'
//! locks only as long as it reads them).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::live::LiveMetrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serve `metrics` on `listener` until the task is aborted; `served`
/// counts the scrapes answered.
pub(super) fn spawn(
    listener: TcpListener,
    metrics: Arc<LiveMetrics>,
    served: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (metrics, served) = (metrics.clone(), served.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = answer(&metrics, &served, &req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

fn answer(metrics: &LiveMetrics, served: &AtomicU64, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "Barrage serves its metrics at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET /metrics\n".into());
    }
    let openmetrics = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    served.fetch_add(1, Ordering::Relaxed);
    if openmetrics {
        reply(StatusCode::OK, OPENMETRICS, metrics.openmetrics_text())
    } else {
        reply(
            StatusCode::OK,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            metrics.prometheus_text(),
        )
    }
}

/// Bind `addr` (`host:port`; port 0 picks one).
pub(super) async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), std::io::Error> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
