//! gRPC calls: one length-prefixed message each, on HTTP/2 connections of
//! the transport's own (the `h2` crate that hyper is built on, not hyper's
//! pool). Owning the connections is what lets calls spread over
//! `grpc_connections` of them, and lets a call that waits for a stream under
//! the server's `SETTINGS_MAX_CONCURRENT_STREAMS` be seen waiting: it counts
//! as sent when its stream opens, so the wait is send lag, as a wait for a
//! slot under `max_connections` is. Inside hyper's pool that wait is
//! invisible and lands in TTFT.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tower_service::Service;

use barrage_core::body::ResponseSink;
use barrage_core::types::GrpcRequest;

use super::{
    ConnInfo, Ending, Exchange, TimedConnector, check_codec_header, connect_failed, refused, response_head, take,
};

/// The `grpc-status` and `grpc-message` a gRPC response ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcStatus {
    /// The status code: 0 is OK.
    pub code: u32,
    /// The server's message, percent-decoded.
    pub message: String,
}

impl GrpcStatus {
    /// The code's name, e.g. `RESOURCE_EXHAUSTED`.
    pub fn name(&self) -> &'static str {
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        NAMES.get(self.code as usize).copied().unwrap_or("UNKNOWN")
    }

    /// From a header map holding `grpc-status` (trailers, or the headers of
    /// a trailers-only response).
    fn from_headers(headers: &hyper::HeaderMap) -> Option<GrpcStatus> {
        let code = headers.get("grpc-status")?.to_str().ok()?.trim().parse().unwrap_or(2);
        let message = headers
            .get("grpc-message")
            .map(|m| percent_decode(m.as_bytes()))
            .unwrap_or_default();
        Some(GrpcStatus { code, message })
    }
}

/// `grpc-message` is percent-encoded UTF-8.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).and_then(|b| hex(*b)),
            bytes.get(i + 2).and_then(|b| hex(*b)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A call ready to go: its head and its one length-prefixed message.
pub(super) struct Call {
    head: hyper::Request<()>,
    body: Bytes,
}

impl Call {
    /// The call for `grpc` to `base` (the target, with any path prefix):
    /// `/{service}/{method}` with the codec's metadata, the user's headers
    /// and a `grpc-timeout` from the request timeout.
    pub(super) fn new(
        base: &str,
        grpc: &GrpcRequest,
        headers: &[(HeaderName, HeaderValue)],
        timeout: std::time::Duration,
        request_id: u64,
    ) -> Result<Call, String> {
        let bad_name = |n: &str| n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._".contains(&b));
        if bad_name(&grpc.service) || bad_name(&grpc.method) {
            return Err(format!(
                "gRPC service `{}` and method `{}` must be non-empty names of letters, digits, `.` and `_`",
                grpc.service, grpc.method
            ));
        }
        let path = format!("/{}/{}", grpc.service, grpc.method);
        let uri: hyper::Uri = format!("{base}{path}").parse().map_err(|e| format!("{path}: {e}"))?;
        let mut builder = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(uri)
            .version(hyper::Version::HTTP_2)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            // At most eight digits, in milliseconds.
            .header("grpc-timeout", format!("{}m", timeout.as_millis().min(99_999_999)));
        for (k, v) in &grpc.metadata {
            check_codec_header(k)?;
            if k.eq_ignore_ascii_case("content-type") || k.to_ascii_lowercase().starts_with("grpc-") {
                return Err(format!("metadata `{k}` is the host's: a codec may not set it"));
            }
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        builder = builder.header("x-request-id", request_id.to_string());
        let head = builder.body(()).map_err(|e| e.to_string())?;
        let len = u32::try_from(grpc.message.len()).map_err(|_| "the gRPC message is over 4 GiB".to_string())?;
        let mut body = Vec::with_capacity(5 + grpc.message.len());
        body.push(0);
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&grpc.message);
        Ok(Call {
            head,
            body: Bytes::from(body),
        })
    }

    /// Request body bytes: the message and its prefix.
    pub(super) fn len(&self) -> u64 {
        self.body.len() as u64
    }
}

/// One open HTTP/2 connection: a handle to open streams on, and its number
/// and time.
#[derive(Clone)]
struct Conn {
    send: h2::client::SendRequest<Bytes>,
    info: ConnInfo,
}

/// The run's gRPC connections, opened when a call first needs each, and
/// again when one has gone (the server closed it, or sent GOAWAY).
pub(super) struct Pool {
    connector: TimedConnector,
    target: hyper::Uri,
    /// Each connection behind a lock held while it is (re)connected, so
    /// that calls arriving meanwhile wait for it rather than open more.
    conns: Box<[tokio::sync::Mutex<Option<Conn>>]>,
    next: AtomicUsize,
}

/// Flow-control windows: a long stream is not held back by the client's
/// reading (the defaults, 64 KiB, would throttle a fast server).
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;
/// Streams assumed open to us until the server's SETTINGS say: the number
/// RFC 9113 asks every server to allow at least (h2's own default is no
/// limit, which a first burst could overrun into refused streams).
const ASSUMED_MAX_STREAMS: usize = 100;

impl Pool {
    pub(super) fn new(connector: TimedConnector, target: hyper::Uri, connections: usize) -> Pool {
        Pool {
            connector,
            target,
            conns: (0..connections.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A handle on the next connection in turn, connected if need be.
    async fn handle(&self) -> Result<Conn, Ending> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let mut slot = self.conns[i].lock().await;
        if let Some(conn) = slot.as_ref() {
            // Ready at once unless the connection has failed or gone away.
            if let Ok(send) = conn.send.clone().ready().await {
                return Ok(Conn { send, info: conn.info });
            }
        }
        let conn = self.connect().await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Conn, Ending> {
        let stream = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(|e| connect_failed(e.as_ref()))?;
        let info = stream.info;
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .initial_max_send_streams(ASSUMED_MAX_STREAMS)
            .handshake::<_, Bytes>(TokioIo::new(stream))
            .await
            .map_err(|e| Ending::TransportError(format!("HTTP/2 handshake: {e}")))?;
        // The connection's frames are read and written by a task of its
        // own; it ends when the server closes the connection or the pool's
        // handles are all dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn { send, info })
    }

    /// Make `call`, reading the response into `sink` and the exchange.
    /// `ex.sent` moves to when the call's stream opened if it had to wait
    /// for one.
    pub(super) async fn call<S: ResponseSink>(&self, call: Call, sink: &mut S, ex: &mut Exchange) {
        let conn = match self.handle().await {
            Ok(c) => c,
            Err(ending) => {
                ex.ending = ending;
                return;
            }
        };
        ex.connection = Some(conn.info);
        let mut send = conn.send;
        let asked = Instant::now();
        let (response, mut request_body) = match send.send_request(call.head, false) {
            Ok(pair) => pair,
            Err(e) => {
                ex.ending = Ending::TransportError(format!("opening the call's stream: {}", h2_error(&e)));
                return;
            }
        };
        // Past the server's stream limit the stream waits to open, and the
        // handle is ready again only once it has.
        let waited = poll_fn(|cx| Poll::Ready(send.poll_ready(cx).is_pending())).await;
        if waited {
            if let Err(e) = send.ready().await {
                ex.ending = Ending::TransportError(format!("waiting for a stream: {}", h2_error(&e)));
                return;
            }
            let opened = Instant::now();
            ex.slot_wait = Some(ex.slot_wait.unwrap_or_default() + (opened - asked));
            ex.sent = opened;
        }
        if let Err(e) = request_body.send_data(call.body, true) {
            ex.ending = Ending::TransportError(format!("sending the message: {}", h2_error(&e)));
            return;
        }
        let response = match response.await {
            Ok(r) => r,
            Err(e) => {
                ex.ending = Ending::TransportError(h2_error(&e));
                return;
            }
        };
        ex.headers_at = Some(Instant::now());
        let status = response.status().as_u16();
        ex.status = Some(status);
        ex.version = Some("HTTP/2.0");
        // A trailers-only response carries its status in the headers.
        ex.grpc = GrpcStatus::from_headers(response.headers());
        sink.head(response_head(status, response.headers()));
        let mut body = response.into_body();
        let mut chunks = Vec::new();
        loop {
            let (step, at) = next_data(&mut body, &mut chunks).await;
            for data in chunks.drain(..) {
                take(ex, sink, &data, at);
            }
            if refused(ex, sink) {
                return;
            }
            match step {
                Some(Ok(())) => sink.read_done(),
                Some(Err(e)) => {
                    ex.ending = Ending::TransportError(h2_error(&e));
                    return;
                }
                None => break,
            }
        }
        match body.trailers().await {
            Ok(trailers) => {
                if let Some(status) = trailers.as_ref().and_then(GrpcStatus::from_headers) {
                    ex.grpc = Some(status);
                }
            }
            Err(e) => {
                ex.ending = Ending::TransportError(h2_error(&e));
                return;
            }
        }
        if ex.grpc.is_none() && status == 200 {
            ex.ending = Ending::TransportError(
                "the gRPC response ended without a grpc-status trailer: the server is not speaking gRPC, \
                 or the stream was cut"
                    .into(),
            );
        }
    }
}

/// Wait for body data, then take all that is already there (one socket
/// read often holds many messages, which h2 hands over one DATA frame at a
/// time); the flow-control window is given back as it is taken. `None`:
/// the body ended; `Some(Ok)`: more may come. Every chunk is stamped with
/// the time the first was taken.
async fn next_data(body: &mut h2::RecvStream, chunks: &mut Vec<Bytes>) -> (Option<Result<(), h2::Error>>, Instant) {
    let mut at = None;
    let step = poll_fn(|cx| {
        loop {
            match body.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    at.get_or_insert_with(Instant::now);
                    // Giving back capacity fails only on a stream already gone.
                    let _ = body.flow_control().release_capacity(data.len());
                    chunks.push(data);
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending if chunks.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(()))),
            }
        }
    })
    .await;
    (step, at.unwrap_or_else(Instant::now))
}

/// An h2 error as a user reads it: a stream the server reset says so and
/// why; bytes that are not HTTP/2 (an HTTP/1.1 server answering the
/// connection preface) say what the server likely is.
fn h2_error(e: &h2::Error) -> String {
    let text = super::error_chain(e);
    match e.reason() {
        Some(reason) if e.is_remote() && e.is_go_away() => {
            format!("the server closed the connection (GOAWAY {reason:?})")
        }
        Some(reason) if e.is_remote() => format!("the server reset the stream ({reason:?})"),
        Some(h2::Reason::PROTOCOL_ERROR | h2::Reason::FRAME_SIZE_ERROR) => format!(
            "{text}: what the server sent is not HTTP/2; gRPC needs HTTP/2, and a server that \
             speaks only HTTP/1.1 answers so"
        ),
        _ if e.is_io() => format!("{text} (a server that does not speak HTTP/2, or closed the connection)"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_named_and_messages_percent_decoded() {
        let mut h = hyper::HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static("8"));
        h.insert("grpc-message", HeaderValue::from_static("queue%20full%3A%20%E2%9C%93"));
        let s = GrpcStatus::from_headers(&h).unwrap();
        assert_eq!(
            (s.code, s.name(), s.message.as_str()),
            (8, "RESOURCE_EXHAUSTED", "queue full: ✓")
        );
        h.insert("grpc-status", HeaderValue::from_static("99"));
        assert_eq!(GrpcStatus::from_headers(&h).unwrap().name(), "UNKNOWN");
        h.insert("grpc-status", HeaderValue::from_static("x"));
        assert_eq!(
            GrpcStatus::from_headers(&h).unwrap().code,
            2,
            "an unreadable status is UNKNOWN"
        );
        assert!(GrpcStatus::from_headers(&hyper::HeaderMap::new()).is_none());
        assert_eq!(percent_decode(b"50%"), "50%", "a lone % is kept");
    }
}
