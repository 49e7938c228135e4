//! HTTP transport: hyper with TCP_NODELAY on every connection, connection
//! pooling, per-request timeouts, custom headers and an API key from the
//! environment. Every read is timestamped here, on the I/O task, and handed
//! with its time to a [`ResponseSink`]; the transport knows nothing of
//! decoding.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Body as _;
use hyper::header::{HeaderName, HeaderValue};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use tower_service::Service;

use barrage_core::body::ResponseSink;
use barrage_core::types::{EncodedRequest, HttpRequest, ResponseHead, WireRequest};

mod grpc;
pub(crate) mod h1;

pub use grpc::GrpcStatus;

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The target URL is unusable.
    #[error("target `{target}`: {message}")]
    Target {
        /// The URL.
        target: String,
        /// Why.
        message: String,
    },
    /// A header name or value is invalid.
    #[error("header `{name}`: {message}")]
    Header {
        /// The header.
        name: String,
        /// Why.
        message: String,
    },
}

/// How one exchange ended, as far as the transport can tell.
#[derive(Debug)]
pub enum Ending {
    /// The body was read to its end.
    Complete,
    /// The request timed out.
    Timeout,
    /// Connecting, sending or reading failed.
    TransportError(String),
    /// The run was stopped before it finished.
    Cancelled,
    /// A frame of the response went over the frame limit, or the body
    /// could not be framed; the rest was not read.
    Refused(barrage_core::framing::Refusal),
    /// The client itself ran out of something (descriptors, ports, memory)
    /// before the request reached the server: not the server's failure.
    ClientResource(String),
    /// No slot under `max_connections` came free by the request's send-by
    /// time, so it was not sent: a missed arrival, which has no record.
    Missed,
}

/// A connect failure: the client's own when the system refused it a
/// descriptor, a port or memory, else a transport error.
fn connect_failed(e: &(dyn std::error::Error + 'static)) -> Ending {
    let message = format!("connect: {}", error_chain(e));
    let mut cause = Some(e);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::ENOBUFS | libc::ENOMEM)
            )
        {
            return Ending::ClientResource(message);
        }
        cause = err.source();
    }
    Ending::TransportError(message)
}

/// One request and response, timed by the host.
#[derive(Debug)]
pub struct Exchange {
    /// When the request was handed to the connection.
    pub sent: Instant,
    /// How long the request waited for a slot under `max_connections`.
    pub slot_wait: Option<Duration>,
    /// The connection the response came on: its number in this run and
    /// when it was established (after `sent` when this request waited for a new one).
    pub connection: Option<ConnInfo>,
    /// When the response headers arrived.
    pub headers_at: Option<Instant>,
    /// When the first body byte arrived.
    pub first_byte: Option<Instant>,
    /// When the exchange ended.
    pub end: Instant,
    /// HTTP status, once known.
    pub status: Option<u16>,
    /// The HTTP version the response came in, e.g. `HTTP/2.0`.
    pub version: Option<&'static str>,
    /// How it ended.
    pub ending: Ending,
    /// Body bytes received.
    pub bytes_received: u64,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// A gRPC exchange's status, from its trailers (or, for a trailers-only
    /// response, its headers).
    pub grpc: Option<GrpcStatus>,
}

thread_local! {
    static OFF_RUNTIME: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `poll`, a first poll of exchanges on a thread that is no runtime
/// worker (the pacer's, which writes each request at its time): their
/// timeouts and cancel signals are armed on their next poll, on the
/// runtime, and ask for no poll of their own. The caller sees that the
/// exchange is polled again: when its socket wakes it, and soon in any case.
pub(crate) fn polled_off_runtime<R>(poll: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            OFF_RUNTIME.set(false);
        }
    }
    OFF_RUNTIME.set(true);
    let _reset = Reset;
    poll()
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Extra headers on every request.
    pub headers: Vec<(String, String)>,
    /// Sent as a bearer token; never logged.
    pub api_key: Option<String>,
    /// Idle connections kept per host (0: no limit).
    pub max_idle_per_host: usize,
    /// Most requests on the wire at once, and so (HTTP/1.1) most open
    /// connections (0: no limit). A request waits for a slot before it is sent.
    pub max_connections: usize,
    /// Per-request timeout (and connect timeout).
    pub timeout: Duration,
    /// Speak HTTP/2 only: h2c (prior knowledge) on http://, h2 by ALPN on https://.
    /// Otherwise HTTP/1.1 on http://, and whatever ALPN picks on https://.
    pub http2: bool,
    /// TLS settings for https:// targets.
    pub tls: barrage_core::tls::ClientTls,
    /// HTTP/2 connections gRPC calls spread over, in turn.
    pub grpc_connections: usize,
}

/// Which connection a response came on, and when that connection was
/// established. The connector attaches it to every connection; hyper hands
/// it back with each response.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Connections are numbered from 0 in the order they were opened.
    pub id: u64,
    /// When connecting (and the TLS handshake) finished.
    pub established: Instant,
}

/// The HTTPS-or-HTTP connector, numbering and timing each new connection,
/// and holding the number of open connections to `max_connections`: a new
/// connection waits for one to close, while hyper's pool hands the waiting
/// request any connection that falls idle first.
#[derive(Clone)]
struct TimedConnector {
    inner: HttpsConnector<HttpConnector>,
    next_id: Arc<AtomicU64>,
    open: Option<Arc<tokio::sync::Semaphore>>,
}

impl TimedConnector {
    /// Whether `max_connections` connections are open.
    fn at_cap(&self) -> bool {
        self.open.as_ref().is_some_and(|open| open.available_permits() == 0)
    }
}

type InnerStream = <HttpsConnector<HttpConnector> as Service<hyper::Uri>>::Response;
type InnerError = <HttpsConnector<HttpConnector> as Service<hyper::Uri>>::Error;

impl Service<hyper::Uri> for TimedConnector {
    type Response = TimedStream;
    type Error = InnerError;
    type Future = Pin<Box<dyn Future<Output = Result<TimedStream, InnerError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: hyper::Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let next_id = self.next_id.clone();
        let open = self.open.clone();
        Box::pin(async move {
            let permit = match open {
                Some(open) => open.acquire_owned().await.ok(),
                None => None,
            };
            let inner = inner.call(uri).await?;
            let info = ConnInfo {
                id: next_id.fetch_add(1, Ordering::Relaxed),
                established: Instant::now(),
            };
            Ok(TimedStream {
                inner,
                info,
                _permit: permit,
            })
        })
    }
}

/// A connection carrying its [`ConnInfo`]; reads and writes pass through.
struct TimedStream {
    inner: InnerStream,
    info: ConnInfo,
    /// Its place under `max_connections`, given back when it closes.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Connection for TimedStream {
    fn connected(&self) -> Connected {
        self.inner.connected().extra(self.info)
    }
}

impl hyper::rt::Read for TimedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TimedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

/// A codec names only the path: the scheme, host and port are the user's
/// target, so a path is an origin-form path (`/...`, no spaces or control
/// characters), never an authority (`@host:port/...`) or absolute URI.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.starts_with("//") || !path.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(format!(
            "path `{path}` must start with a single `/` and hold no spaces or control characters: \
             a codec names the path only; the target's scheme, host and port are the user's"
        ));
    }
    Ok(())
}

/// Headers that would steer a request elsewhere are the user's, and those
/// about the connection the host's; a codec sets neither.
fn check_codec_header(name: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("host") || name.starts_with(':') {
        return Err(format!(
            "header `{name}` is the target's: a codec may not set it (users can, with `headers:` in the run configuration)"
        ));
    }
    const CONNECTION: [&str; 6] = [
        "connection",
        "upgrade",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
    ];
    if CONNECTION.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return Err(format!(
            "header `{name}` is about the connection, which the host owns: a codec may not set it"
        ));
    }
    Ok(())
}

/// Whether `req` is a request the transport would send: an HTTP method,
/// an origin-form path, header names and values HTTP allows and none of
/// the target's or the connection's; a gRPC call's names and metadata.
/// Every send checks this; the conformance kit checks it without a send.
pub fn check_request(req: &EncodedRequest) -> Result<(), String> {
    match &req.request {
        WireRequest::Http(http) => {
            hyper::Method::from_bytes(http.method.as_bytes())
                .map_err(|_| format!("`{}` is not an HTTP method", http.method))?;
            check_path(&http.path)?;
            for (k, v) in &http.headers {
                check_codec_header(k)?;
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header `{k}`: {e}"))?;
                HeaderValue::from_str(v).map_err(|e| format!("header `{k}`: {e}"))?;
            }
            Ok(())
        }
        WireRequest::Grpc(g) => grpc::Call::new("http://127.0.0.1", g, &[], Duration::from_secs(1), 0).map(|_| ()),
    }
}

/// The HTTP client of a run.
pub struct Transport {
    client: Client<TimedConnector, Full<Bytes>>,
    /// gRPC calls' connections: HTTP/2 only (h2c on http://, ALPN `h2` on
    /// https://), whatever `http2` says for HTTP requests.
    grpc: grpc::Pool,
    /// Connections driven by their exchanges, for plain-HTTP/1.1 targets
    /// (see [`h1`]); other targets use `client`.
    direct: Option<h1::Pool>,
    /// `host[:port]` of the target, sent as `Host` on direct connections.
    authority: HeaderValue,
    /// The target's path prefix (no trailing `/`), for direct connections.
    prefix: String,
    base: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    /// Slots under `max_connections`, if set.
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl Transport {
    /// A client for `target` (`http(s)://host:port`, optionally with a path prefix).
    pub fn new(target: &str, options: &TransportOptions) -> Result<Transport, TransportError> {
        let bad = |message: String| TransportError::Target {
            target: target.to_string(),
            message,
        };
        let uri = check_target(target).map_err(bad)?;
        let mut http = HttpConnector::new();
        // Nagle's algorithm with delayed ACKs stalls small request writes
        // by ~40 ms on loopback; every connection sends at once instead.
        http.set_nodelay(true);
        http.set_connect_timeout(Some(options.timeout));
        // The TLS connector passes http:// through untouched.
        http.enforce_http(false);
        let tls = barrage_core::tls::client_config(&options.tls).map_err(|e| bad(e.to_string()))?;
        let builder = || {
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
        };
        // ALPN offers what the client will speak: h2 alone, or both.
        let connector = if options.http2 {
            builder().enable_http2().wrap_connector(http.clone())
        } else {
            builder().enable_http1().enable_http2().wrap_connector(http.clone())
        };
        let next_id = Arc::new(AtomicU64::new(0));
        let open =
            (options.max_connections > 0).then(|| Arc::new(tokio::sync::Semaphore::new(options.max_connections)));
        let grpc_connector = TimedConnector {
            inner: builder().enable_http2().wrap_connector(http),
            next_id: next_id.clone(),
            open: open.clone(),
        };
        let connector = TimedConnector {
            inner: connector,
            next_id,
            open,
        };
        let grpc = grpc::Pool::new(grpc_connector, uri.clone(), options.grpc_connections);
        let mut builder = Client::builder(TokioExecutor::new());
        match (options.max_idle_per_host, options.max_connections) {
            (0, 0) => {}
            (0, cap) => {
                builder.pool_max_idle_per_host(cap);
            }
            (idle, _) => {
                builder.pool_max_idle_per_host(idle);
            }
        }
        builder.http2_only(options.http2);
        // Long responses must not be read in small pieces.
        builder.http1_read_buf_exact_size(64 * 1024);
        builder
            .http2_initial_stream_window_size(4 << 20)
            .http2_initial_connection_window_size(16 << 20);
        let direct = (uri.scheme_str() == Some("http") && !options.http2).then(|| {
            let idle = match (options.max_idle_per_host, options.max_connections) {
                (0, cap) => cap,
                (idle, _) => idle,
            };
            h1::Pool::new(connector.clone(), uri.clone(), idle)
        });
        let authority = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .ok_or_else(|| bad("the URL has no host".into()))?;
        let client = builder.build(connector);
        let mut parsed = Vec::new();
        for (k, v) in &options.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| TransportError::Header {
                name: k.clone(),
                message: e.to_string(),
            })?;
            let value = HeaderValue::from_str(v).map_err(|e| TransportError::Header {
                name: k.clone(),
                message: e.to_string(),
            })?;
            parsed.push((name, value));
        }
        if let Some(key) = &options.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| TransportError::Header {
                name: "authorization".into(),
                message: "the API key holds characters a header cannot".into(),
            })?;
            value.set_sensitive(true);
            parsed.push((hyper::header::AUTHORIZATION, value));
        }
        Ok(Transport {
            client,
            grpc,
            direct,
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            base: target.trim_end_matches('/').to_string(),
            headers: parsed,
            timeout: options.timeout,
            slots: (options.max_connections > 0)
                .then(|| Arc::new(tokio::sync::Semaphore::new(options.max_connections))),
        })
    }

    /// Send `req` and read its response into `sink`. Never fails: errors
    /// are part of the returned exchange. The sink's outcome is there
    /// whenever a response head arrived: what was read before a timeout, a
    /// stop or a failed read is kept.
    pub async fn execute<S: ResponseSink>(
        &self,
        req: &EncodedRequest,
        request_id: u64,
        mut sink: S,
        send_by: Instant,
        cancel: &mut tokio::sync::watch::Receiver<bool>,
    ) -> (Exchange, Option<S::Outcome>) {
        let sent = Instant::now();
        let mut ex = Exchange {
            sent,
            slot_wait: None,
            connection: None,
            headers_at: None,
            first_byte: None,
            end: sent,
            status: None,
            version: None,
            ending: Ending::Complete,
            bytes_received: 0,
            bytes_sent: 0,
            grpc: None,
        };
        let outgoing = match (&req.request, &self.direct) {
            (WireRequest::Http(http), Some(pool)) => {
                ex.bytes_sent = http.body.len() as u64;
                self.request_bytes(http, request_id)
                    .map(|bytes| Outgoing::Direct(pool, &http.method, bytes))
            }
            (WireRequest::Http(http), None) => {
                ex.bytes_sent = http.body.len() as u64;
                self.request(http, request_id)
                    .map(|r| Outgoing::Pooled(&self.client, Box::new(r)))
            }
            (WireRequest::Grpc(grpc), _) => grpc::Call::new(&self.base, grpc, &self.headers, self.timeout, request_id)
                .map(|call| {
                    ex.bytes_sent = call.len();
                    Outgoing::Grpc(Box::new(call))
                }),
        };
        let outgoing = match outgoing {
            Ok(o) => o,
            Err(e) => {
                ex.ending = Ending::TransportError(format!("the codec built an invalid request: {e}"));
                return (ex, None);
            }
        };
        let deadline = tokio::time::Instant::from_std(sent + self.timeout);
        let exchange = async {
            // Held until the body is read: at most `max_connections` requests on the wire.
            let _slot = match &self.slots {
                Some(slots) => {
                    let waited = Instant::now();
                    let slot = tokio::time::timeout_at(send_by.into(), slots.clone().acquire_owned()).await;
                    ex.slot_wait = Some(waited.elapsed());
                    match slot {
                        Ok(slot) => slot.ok(),
                        Err(_) => {
                            ex.ending = Ending::Missed;
                            return;
                        }
                    }
                }
                None => None,
            };
            ex.sent = Instant::now();
            match outgoing {
                Outgoing::Direct(pool, method, bytes) => {
                    exchange_direct(pool, method, &bytes, &mut sink, &mut ex).await
                }
                Outgoing::Pooled(client, request) => {
                    exchange_pooled(client, *request, &mut sink, &mut ex).await;
                }
                Outgoing::Grpc(call) => self.grpc.call(*call, &mut sink, &mut ex).await,
            }
        };
        // What can cut the exchange short is armed only on the runtime: a
        // first poll on the pacer (see `polled_off_runtime`) leaves it for
        // the next poll, without asking for one. The timer and the cancel
        // signal each register under a lock runtime workers also take, and
        // a pacer waiting there for a preempted worker is send lag.
        let cut = async {
            let mut first = true;
            std::future::poll_fn(|_| match std::mem::take(&mut first) && OFF_RUNTIME.get() {
                true => std::task::Poll::Pending,
                false => std::task::Poll::Ready(()),
            })
            .await;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => Ending::Timeout,
                _ = cancel.wait_for(|c| *c) => Ending::Cancelled,
            }
        };
        // Biased: the exchange is polled first, so the request is written
        // before anything else is done.
        tokio::select! {
            biased;
            () = exchange => {}
            ending = cut => ex.ending = ending,
        };
        ex.end = Instant::now();
        let outcome = ex.headers_at.is_some().then(|| match ex.ending {
            Ending::Complete => sink.end(ex.end),
            _ => sink.cut(ex.end),
        });
        (ex, outcome)
    }

    /// The request for hyper's client.
    fn request(&self, http: &HttpRequest, request_id: u64) -> Result<hyper::Request<Full<Bytes>>, String> {
        check_path(&http.path)?;
        let uri: hyper::Uri = format!("{}{}", self.base, http.path)
            .parse()
            .map_err(|e| format!("path `{}`: {e}", http.path))?;
        // Belt and braces: whatever the path held, the request goes to the
        // target's own host and port.
        if uri.authority().map(|a| a.as_str()) != Some(self.authority.to_str().unwrap_or_default()) {
            return Err(format!("path `{}` would leave the target", http.path));
        }
        let mut builder = hyper::Request::builder().method(http.method.as_str()).uri(uri);
        for (k, v) in &http.headers {
            check_codec_header(k)?;
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        builder = builder.header("x-request-id", request_id.to_string());
        builder
            .body(Full::new(Bytes::copy_from_slice(&http.body)))
            .map_err(|e| e.to_string())
    }

    /// The request as bytes for a direct HTTP/1.1 connection: head and body
    /// in one buffer, written with one system call. Names and values are
    /// checked as hyper would; `content-length` is always the body's, so the
    /// codec's own `content-length` or `transfer-encoding` is not sent.
    fn request_bytes(&self, http: &HttpRequest, request_id: u64) -> Result<Vec<u8>, String> {
        let method = hyper::Method::from_bytes(http.method.as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", http.method))?;
        check_path(&http.path)?;
        let mut out = Vec::with_capacity(256 + http.body.len());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(http.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        let mut line = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        let mut host_given = false;
        for (k, v) in &http.headers {
            check_codec_header(k)?;
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header `{k}`: {e}"))?;
            let value = HeaderValue::from_str(v).map_err(|e| format!("header `{k}`: {e}"))?;
            if name == hyper::header::CONTENT_LENGTH || name == hyper::header::TRANSFER_ENCODING {
                continue;
            }
            host_given |= name == hyper::header::HOST;
            line(name.as_str().as_bytes(), value.as_bytes());
        }
        // Only the user may name another host (`headers:` in the run configuration).
        for (name, value) in &self.headers {
            host_given |= name == hyper::header::HOST;
            line(name.as_str().as_bytes(), value.as_bytes());
        }
        if !host_given {
            line(b"host", self.authority.as_bytes());
        }
        line(b"x-request-id", request_id.to_string().as_bytes());
        if !http.body.is_empty() || !matches!(method, hyper::Method::GET | hyper::Method::HEAD) {
            line(b"content-length", http.body.len().to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&http.body);
        Ok(out)
    }
}

/// One exchange through hyper's pooled client (HTTP/2, TLS).
async fn exchange_pooled<S: ResponseSink>(
    client: &Client<TimedConnector, Full<Bytes>>,
    request: hyper::Request<Full<Bytes>>,
    sink: &mut S,
    ex: &mut Exchange,
) {
    let response = match client.request(request).await {
        Ok(r) => r,
        Err(e) if e.is_connect() => {
            ex.ending = connect_failed(&e);
            return;
        }
        Err(e) => {
            ex.ending = Ending::TransportError(error_chain(&e));
            return;
        }
    };
    ex.connection = response.extensions().get::<ConnInfo>().copied();
    ex.headers_at = Some(Instant::now());
    let status = response.status().as_u16();
    ex.status = Some(status);
    ex.version = Some(match response.version() {
        hyper::Version::HTTP_2 => "HTTP/2.0",
        hyper::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    });
    sink.head(response_head(status, response.headers()));
    let mut reader = Reader {
        body: response.into_body(),
        chunks: Vec::new(),
        at: None,
    };
    loop {
        let step = reader.next().await;
        // Every chunk taken at once is stamped with the time the first was.
        let at = reader.at.take().unwrap_or_else(Instant::now);
        for data in reader.chunks.drain(..) {
            take(ex, sink, &data, at);
        }
        if refused(ex, sink) {
            break;
        }
        match step {
            Step::More => sink.read_done(),
            Step::End => break,
            Step::Failed(e) => {
                ex.ending = Ending::TransportError(e);
                break;
            }
        }
    }
}

/// A response head as the sink takes it (headers whose values are not
/// text are left out).
fn response_head(status: u16, headers: &hyper::HeaderMap) -> ResponseHead {
    ResponseHead {
        status,
        headers: headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
    }
}

/// `target` as a URL the transport sends to exactly as written: `http(s)://host[:port][/prefix]`.
pub fn check_target(target: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = target.parse().map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("use an http:// or https:// URL".into());
    }
    if uri.host().is_none() {
        return Err("the URL has no host".into());
    }
    // What would not survive being joined with each request's path:
    // credentials would go out as the Host header, a query would end up
    // in the middle of every path.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("the URL holds credentials; give them as a header (headers:) or an API key (api_key_env)".into());
    }
    if uri.query().is_some() || target.contains('#') {
        return Err("the URL has a query or fragment; the target is a scheme, host, port and path prefix only".into());
    }
    // An out-of-range port parses as no port at all, which would
    // silently mean the scheme's default.
    if let Some(authority) = uri.authority() {
        let after_host = authority
            .as_str()
            .rsplit_once(']')
            .map_or(authority.as_str(), |(_, rest)| rest);
        if let Some((_, port)) = after_host.rsplit_once(':')
            && !matches!(port.parse::<u16>(), Ok(1..))
        {
            return Err(format!("port `{port}` is not a port: use 1 to 65535"));
        }
    }
    Ok(uri)
}

/// Body bytes read at `at`: counted and timed for the exchange, then the sink's.
fn take<S: ResponseSink>(ex: &mut Exchange, sink: &mut S, data: &[u8], at: Instant) {
    ex.first_byte.get_or_insert(at);
    ex.bytes_received += data.len() as u64;
    sink.data(data, at);
}

/// Whether the sink refuses the rest of the response, which then ends the exchange.
fn refused<S: ResponseSink>(ex: &mut Exchange, sink: &S) -> bool {
    match sink.refused() {
        Some(r) => {
            ex.ending = Ending::Refused(r);
            true
        }
        None => false,
    }
}

/// One exchange on a direct HTTP/1.1 connection (see [`h1`]).
async fn exchange_direct<S: ResponseSink>(
    pool: &h1::Pool,
    method: &str,
    request: &[u8],
    sink: &mut S,
    ex: &mut Exchange,
) {
    let mut conn = match pool.checkout().await {
        Ok(c) => c,
        Err(e) => {
            ex.ending = connect_failed(e.as_ref());
            return;
        }
    };
    let (head, head_at) = loop {
        ex.connection = Some(conn.info);
        let (nothing_received, message) = match conn.write_all(request).await {
            Ok(()) => match conn.read_head(method).await {
                Ok(head) => break head,
                Err(e) => (e.nothing_received, e.message),
            },
            Err(e) => (true, format!("sending the request: {e}")),
        };
        // The server closed an idle connection just as the request went out
        // on it: nothing was answered, so the request goes once more, on a
        // new connection (which is not retried).
        if nothing_received && conn.reused() {
            conn = match pool.connect().await {
                Ok(c) => c,
                Err(e) => {
                    ex.ending = connect_failed(e.as_ref());
                    return;
                }
            };
            continue;
        }
        ex.ending = Ending::TransportError(message);
        return;
    };
    ex.headers_at = Some(head_at);
    ex.status = Some(head.status);
    ex.version = Some(head.version);
    sink.head(ResponseHead {
        status: head.status,
        headers: head.headers,
    });
    let mut decoder = head.body;
    let mut at = head_at;
    loop {
        let read = conn
            .read_body(&mut decoder, &mut at, |data, at| take(ex, sink, data, at))
            .await;
        if refused(ex, sink) {
            break;
        }
        match read {
            Ok(h1::Read::More) => sink.read_done(),
            Ok(h1::Read::End) => break,
            Err(e) => {
                ex.ending = Ending::TransportError(e);
                break;
            }
        }
    }
    if matches!(ex.ending, Ending::Complete) && conn.finished(head.keep_alive) {
        pool.give_back(conn);
    }
}

/// A request ready for its connection.
enum Outgoing<'a> {
    /// Bytes (and the method) for a direct HTTP/1.1 connection from this pool.
    Direct(&'a h1::Pool, &'a str, Vec<u8>),
    /// A request for hyper's client (boxed: it is ten times the size).
    Pooled(
        &'a Client<TimedConnector, Full<Bytes>>,
        Box<hyper::Request<Full<Bytes>>>,
    ),
    /// A gRPC call, for the gRPC connections (boxed, as the hyper request).
    Grpc(Box<grpc::Call>),
}

/// What one wait for body data ended with.
enum Step {
    /// Chunks arrived; more may follow.
    More,
    /// The body ended (its last chunks, if any, are in `chunks`).
    End,
    /// Reading failed.
    Failed(String),
}

/// Reads a hyper response body, taking every chunk that is already there in
/// one go: hyper yields one HTTP chunk per poll, while one socket read often
/// holds dozens.
struct Reader {
    body: hyper::body::Incoming,
    /// Data taken by the last [`Reader::next`].
    chunks: Vec<Bytes>,
    /// When the first of `chunks` was taken.
    at: Option<Instant>,
}

impl Reader {
    /// Wait for data, then take all that is ready.
    async fn next(&mut self) -> Step {
        std::future::poll_fn(|cx| {
            loop {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Ok(data) = frame.into_data() {
                            self.at.get_or_insert_with(Instant::now);
                            self.chunks.push(data);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Step::Failed(error_chain(&e))),
                    Poll::Ready(None) => return Poll::Ready(Step::End),
                    Poll::Pending if self.chunks.is_empty() => return Poll::Pending,
                    Poll::Pending => return Poll::Ready(Step::More),
                }
            }
        })
        .await
    }
}

/// An error with its causes, e.g. `client error (Connect): tcp connect error: Connection refused`.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use barrage_core::framing::Refusal;
    use barrage_core::types::Framing;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Collects what the transport hands a sink, with each read's time.
    #[derive(Default)]
    struct Collect {
        head: Option<ResponseHead>,
        reads: Vec<(Vec<u8>, Instant)>,
        read_done: usize,
        /// Refuse the response once it holds more bytes than this.
        refuse_over: Option<usize>,
    }

    struct Collected {
        sink: Collect,
        end: Instant,
        /// Ended by `cut`, not `end`.
        cut: bool,
    }

    impl ResponseSink for Collect {
        type Outcome = Collected;

        fn head(&mut self, head: ResponseHead) {
            assert!(self.head.is_none(), "one head");
            self.head = Some(head);
        }

        fn data(&mut self, data: &[u8], at: Instant) {
            assert!(self.head.is_some(), "the head comes first");
            self.reads.push((data.to_vec(), at));
        }

        fn read_done(&mut self) {
            self.read_done += 1;
        }

        fn refused(&self) -> Option<barrage_core::framing::Refusal> {
            let held: usize = self.reads.iter().map(|(d, _)| d.len()).sum();
            self.refuse_over
                .filter(|limit| held > *limit)
                .map(|limit| barrage_core::framing::FrameTooLarge { limit }.into())
        }

        fn end(self, at: Instant) -> Collected {
            Collected {
                sink: self,
                end: at,
                cut: false,
            }
        }

        fn cut(self, at: Instant) -> Collected {
            Collected {
                sink: self,
                end: at,
                cut: true,
            }
        }
    }

    impl Collected {
        fn body(&self) -> Vec<u8> {
            self.sink.reads.iter().flat_map(|(d, _)| d.clone()).collect()
        }
    }

    /// A send-by time no test reaches.
    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn request() -> EncodedRequest {
        EncodedRequest {
            request: WireRequest::Http(HttpRequest {
                method: "POST".into(),
                path: "/v1/completions".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{}".to_vec(),
            }),
            streaming: true,
            framing: Framing::Sse,
            output: Default::default(),
            prompt_tokens: None,
        }
    }

    fn options(timeout_ms: u64, http2: bool) -> TransportOptions {
        TransportOptions {
            headers: vec![("x-run".into(), "test".into())],
            api_key: None,
            max_idle_per_host: 0,
            max_connections: 0,
            timeout: Duration::from_millis(timeout_ms),
            http2,
            tls: barrage_core::tls::ClientTls::default(),
            grpc_connections: 1,
        }
    }

    const EVENTS: [&str; 3] = ["data: one\n\n", "data: two\n\n", "data: [DONE]\n\n"];

    /// An HTTP/1.1 server on loopback that answers one request with a
    /// chunked body, one chunk per event, each after its gap; returns its
    /// address and the request head it read.
    async fn chunked_server(gaps: [Duration; 3]) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            for (e, gap) in EVENTS.iter().zip(gaps) {
                tokio::time::sleep(gap).await;
                s.write_all(format!("{:x}\r\n{e}\r\n", e.len()).as_bytes())
                    .await
                    .unwrap();
            }
            s.write_all(b"0\r\n\r\n").await.unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (format!("http://{addr}"), task)
    }

    #[tokio::test]
    async fn the_direct_path_hands_the_sink_every_body_byte_with_its_read_time() {
        let (target, server) = chunked_server([Duration::from_millis(20); 3]).await;
        let transport = Transport::new(&target, &options(5_000, false)).unwrap();
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let (ex, out) = transport
            .execute(&request(), 7, Collect::default(), later(), &mut cancel)
            .await;
        let out = out.expect("a complete response reaches the sink's end");
        assert!(!out.cut);
        let head = server.await.unwrap();
        assert!(head.starts_with("POST /v1/completions HTTP/1.1\r\n"), "{head}");
        assert!(
            head.contains("x-request-id: 7\r\n") && head.contains("x-run: test\r\n"),
            "{head}"
        );
        assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
        assert_eq!(ex.status, Some(200));
        let sink_head = out.sink.head.as_ref().unwrap();
        assert_eq!(sink_head.status, 200);
        assert!(
            sink_head
                .headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "text/event-stream")
        );
        assert_eq!(out.body(), EVENTS.concat().as_bytes(), "the chunked framing is gone");
        assert_eq!(ex.bytes_received, EVENTS.concat().len() as u64);
        // The events were sent 20 ms apart, so they were separate reads, each
        // timed when it was read, in order, between the head and the end (the
        // last at least one gap after the first, however the first two met).
        assert!(out.sink.reads.len() >= 3, "{}", out.sink.reads.len());
        let times: Vec<Instant> = out.sink.reads.iter().map(|(_, t)| *t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times[times.len() - 1] - times[0] >= Duration::from_millis(15));
        assert!(ex.headers_at.unwrap() <= times[0] && *times.last().unwrap() <= out.end);
        assert_eq!(ex.first_byte, Some(times[0]));
        assert!(out.sink.read_done >= 2, "the sink hears of reads between data");
    }

    #[tokio::test]
    async fn a_connection_idle_past_its_timeout_is_closed_not_reused() {
        // A keep-alive server answering every request on a connection with
        // a two-byte body; each accepted connection reports when it closes.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}", listener.local_addr().unwrap());
        let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel::<usize>();
        tokio::spawn(async move {
            for n in 0.. {
                let (mut s, _) = listener.accept().await.unwrap();
                let closed = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    loop {
                        let read = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await.unwrap_or(0);
                        if read == 0 {
                            let _ = closed.send(n);
                            return;
                        }
                        got.extend_from_slice(&buf[..read]);
                        if got.windows(4).any(|w| w == b"\r\n\r\n") {
                            got.clear();
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                        }
                    }
                });
            }
        });
        let mut transport = Transport::new(&target, &options(5_000, false)).unwrap();
        transport
            .direct
            .as_mut()
            .unwrap()
            .set_idle_timeout(Duration::from_millis(100));
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let mut connection = async || {
            let (ex, _) = transport
                .execute(&request(), 1, Collect::default(), later(), &mut cancel)
                .await;
            assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
            ex.connection.unwrap().id
        };
        let first = connection().await;
        assert_eq!(connection().await, first, "reused while fresh");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let second = connection().await;
        assert_ne!(second, first, "idle past its timeout: a new connection");
        let gone = tokio::time::timeout(Duration::from_secs(5), closed.recv()).await;
        assert_eq!(gone.unwrap(), Some(0), "and the idle one was closed");
    }

    /// An h2c server on loopback that answers one request with the events, 20 ms apart.
    async fn h2_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_req| async {
                let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
                tokio::spawn(async move {
                    for e in EVENTS {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        let _ = tx.send(Ok(Frame::data(Bytes::from_static(e.as_bytes())))).await;
                    }
                });
                let body = StreamBody::new(tokio_stream(rx));
                Ok::<_, Infallible>(hyper::Response::builder().status(200).body(body).unwrap())
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                .await;
        });
        target
    }

    #[tokio::test]
    async fn the_hyper_path_does_the_same_over_http2() {
        let target = h2_server().await;
        let transport = Transport::new(&target, &options(5_000, true)).unwrap();
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let (ex, out) = transport
            .execute(&request(), 1, Collect::default(), later(), &mut cancel)
            .await;
        let out = out.expect("a complete response");
        assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
        assert_eq!(ex.version, Some("HTTP/2.0"));
        assert_eq!(out.sink.head.as_ref().unwrap().status, 200);
        assert_eq!(out.body(), EVENTS.concat().as_bytes());
        let times: Vec<Instant> = out.sink.reads.iter().map(|(_, t)| *t).collect();
        assert!(times.len() >= 3 && times.windows(2).all(|w| w[0] <= w[1]));
        assert!(times[times.len() - 1] - times[0] >= Duration::from_millis(15));
    }

    #[tokio::test]
    async fn a_timeout_cuts_the_exchange_short_and_the_sink_keeps_what_arrived() {
        let (target, _server) = chunked_server([Duration::ZERO, Duration::from_secs(5), Duration::ZERO]).await;
        let transport = Transport::new(&target, &options(300, false)).unwrap();
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        // The timeout runs from the call (the send is stamped a little later).
        let called = Instant::now();
        let (ex, out) = transport
            .execute(&request(), 1, Collect::default(), later(), &mut cancel)
            .await;
        assert!(matches!(ex.ending, Ending::Timeout), "{:?}", ex.ending);
        assert!(ex.end - called >= Duration::from_millis(300), "{:?}", ex.end - called);
        let out = out.expect("a head arrived, so the sink has an outcome");
        assert!(out.cut, "cut short, not ended");
        assert_eq!(out.body(), EVENTS[0].as_bytes());
        assert_eq!(out.end, ex.end);
    }

    #[tokio::test]
    async fn a_refusing_sink_ends_the_exchange_as_too_large() {
        for http2 in [false, true] {
            let (target, _server) = if http2 {
                (h2_server().await, None)
            } else {
                let (t, s) = chunked_server([Duration::from_millis(20); 3]).await;
                (t, Some(s))
            };
            let transport = Transport::new(&target, &options(5_000, http2)).unwrap();
            let (_tx, mut cancel) = tokio::sync::watch::channel(false);
            let sink = Collect {
                refuse_over: Some(EVENTS[0].len()),
                ..Collect::default()
            };
            let (ex, out) = transport.execute(&request(), 1, sink, later(), &mut cancel).await;
            assert!(
                matches!(&ex.ending, Ending::Refused(Refusal::TooLarge(r)) if r.limit == EVENTS[0].len()),
                "http2 {http2}: {:?}",
                ex.ending
            );
            let out = out.unwrap();
            assert!(out.cut);
            // Reading stopped at the read that went over.
            assert_eq!(out.body(), EVENTS[..2].concat().as_bytes(), "http2 {http2}");
        }
    }

    fn grpc_call() -> EncodedRequest {
        EncodedRequest {
            request: WireRequest::Grpc(barrage_core::types::GrpcRequest {
                service: "inference.GRPCInferenceService".into(),
                method: "ModelStreamInfer".into(),
                metadata: vec![("x-model".into(), "m".into())],
                message: b"hi".to_vec(),
                server_streaming: true,
            }),
            streaming: true,
            framing: Framing::GrpcMessages,
            output: Default::default(),
            prompt_tokens: None,
        }
    }

    #[tokio::test]
    async fn a_grpc_call_sends_one_message_and_reads_its_status_from_the_trailers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}", listener.local_addr().unwrap());
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let seen_tx = seen_tx.clone();
                async move {
                    let head = format!(
                        "{} {} {:?} {:?} {:?} {:?}",
                        req.uri().path(),
                        req.headers()["content-type"].to_str().unwrap(),
                        req.headers()["te"],
                        req.headers()["grpc-timeout"],
                        req.headers()["x-model"],
                        req.headers()["x-run"],
                    );
                    let body = http_body_util::BodyExt::collect(req.into_body())
                        .await
                        .unwrap()
                        .to_bytes();
                    let _ = seen_tx.send((head, body));
                    let mut trailers = hyper::HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("8"));
                    trailers.insert("grpc-message", HeaderValue::from_static("queue%20full"));
                    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
                        Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01a"))),
                        Ok(Frame::trailers(trailers)),
                    ];
                    let body = StreamBody::new(futures_util::stream::iter(frames));
                    Ok::<_, Infallible>(hyper::Response::builder().status(200).body(body).unwrap())
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                .await;
        });
        // HTTP/1.1 for HTTP requests; gRPC goes over h2c all the same.
        let transport = Transport::new(&target, &options(1_500, false)).unwrap();
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let (ex, out) = transport
            .execute(&grpc_call(), 1, Collect::default(), later(), &mut cancel)
            .await;
        let (head, body) = seen.recv().await.unwrap();
        assert_eq!(
            head,
            "/inference.GRPCInferenceService/ModelStreamInfer application/grpc \"trailers\" \"1500m\" \"m\" \"test\""
        );
        assert_eq!(&body[..], b"\0\0\0\0\x02hi", "one message with its 5-byte prefix");
        assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
        assert_eq!(ex.version, Some("HTTP/2.0"));
        let status = ex.grpc.expect("a status");
        assert_eq!(
            (status.code, status.name(), status.message.as_str()),
            (8, "RESOURCE_EXHAUSTED", "queue full")
        );
        assert_eq!(out.unwrap().body(), b"\0\0\0\0\x01a");
    }

    #[tokio::test]
    async fn a_grpc_call_to_a_server_without_http2_is_a_transport_error() {
        let (target, _server) = chunked_server([Duration::ZERO; 3]).await;
        let transport = Transport::new(&target, &options(1_000, false)).unwrap();
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let (ex, out) = transport
            .execute(&grpc_call(), 1, Collect::default(), later(), &mut cancel)
            .await;
        assert!(matches!(&ex.ending, Ending::TransportError(_)), "{:?}", ex.ending);
        assert!(out.is_none() && ex.grpc.is_none());
    }

    /// An HTTP/2 server on loopback allowing `streams` streams at once per
    /// connection, answering every call after `delay` with one message and
    /// an OK status, or resetting it when its message is `reset`; each
    /// call's arrival is sent on the channel.
    async fn grpc_server(streams: u32, delay: Duration) -> (String, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = format!("http://{}", listener.local_addr().unwrap());
        let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                let arrived_tx = arrived_tx.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let _ = arrived_tx.send(Instant::now());
                    async move {
                        let body = http_body_util::BodyExt::collect(req.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        tokio::time::sleep(delay).await;
                        let mut trailers = hyper::HeaderMap::new();
                        trailers.insert("grpc-status", HeaderValue::from_static("0"));
                        let reset = &body[5..] == b"reset";
                        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
                        tokio::spawn(async move {
                            let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01a")))).await;
                            // The message goes out before the reset, which
                            // would otherwise drop it from the send queue.
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            let last = if reset {
                                Err(std::io::Error::other("reset"))
                            } else {
                                Ok(Frame::trailers(trailers))
                            };
                            let _ = tx.send(last).await;
                        });
                        let body = StreamBody::new(tokio_stream(rx));
                        Ok::<_, Infallible>(hyper::Response::builder().status(200).body(body).unwrap())
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(streams)
                        .serve_connection(hyper_util::rt::TokioIo::new(s), service),
                );
            }
        });
        (target, arrived)
    }

    fn grpc_options(connections: usize) -> TransportOptions {
        TransportOptions {
            grpc_connections: connections,
            ..options(5_000, false)
        }
    }

    #[tokio::test]
    async fn a_call_past_the_servers_stream_limit_waits_and_the_wait_is_send_lag() {
        // One stream at a time, 60 ms each: three calls at once go one after
        // another, and each later one counts as sent when its stream opened.
        let (target, mut arrived) = grpc_server(1, Duration::from_millis(60)).await;
        let transport = Transport::new(&target, &grpc_options(1)).unwrap();
        // The connection, and the server's SETTINGS, first.
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let (ex, _) = transport
            .execute(&grpc_call(), 0, Collect::default(), later(), &mut cancel)
            .await;
        assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
        arrived.recv().await.unwrap();
        let started = Instant::now();
        let calls = (1..=3).map(|id| {
            let transport = &transport;
            async move {
                let (_tx, mut cancel) = tokio::sync::watch::channel(false);
                transport
                    .execute(&grpc_call(), id, Collect::default(), later(), &mut cancel)
                    .await
                    .0
            }
        });
        let mut exchanges = futures_util::future::join_all(calls).await;
        exchanges.sort_by_key(|ex| ex.sent);
        let mut arrivals = Vec::new();
        while let Ok(at) = arrived.try_recv() {
            arrivals.push(at);
        }
        assert_eq!(arrivals.len(), 3);
        for (i, ex) in exchanges.iter().enumerate() {
            assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
            assert_eq!(ex.grpc.as_ref().map(|g| g.code), Some(0));
            assert_eq!(ex.connection.map(|c| c.id), Some(0), "one connection");
            // Sent when its stream opened, so never after the server saw it,
            // and the second and third only once the one before had ended.
            assert!(ex.sent <= arrivals[i], "call {i} reached the server before it was sent");
            if i > 0 {
                let wait = ex.slot_wait.expect("a wait for a stream");
                assert!(wait >= Duration::from_millis(40 * i as u64), "call {i} waited {wait:?}");
                assert!(ex.sent >= exchanges[i - 1].headers_at.unwrap(), "call {i}");
                assert!(ex.sent - started >= Duration::from_millis(50 * i as u64));
            }
        }
        // Their time to the response is the server's 60 ms, not the queue's.
        for ex in &exchanges {
            let to_head = ex.headers_at.unwrap() - ex.sent;
            assert!(to_head < Duration::from_millis(100), "{to_head:?}");
        }
    }

    #[tokio::test]
    async fn calls_spread_over_the_asked_connections_in_turn() {
        let (target, _arrived) = grpc_server(100, Duration::ZERO).await;
        let transport = Transport::new(&target, &grpc_options(3)).unwrap();
        let mut ids = Vec::new();
        for id in 0..6 {
            let (_tx, mut cancel) = tokio::sync::watch::channel(false);
            let (ex, _) = transport
                .execute(&grpc_call(), id, Collect::default(), later(), &mut cancel)
                .await;
            assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
            ids.push(ex.connection.unwrap().id);
        }
        assert_eq!(ids, [0, 1, 2, 0, 1, 2]);
    }

    #[tokio::test]
    async fn a_reset_stream_is_a_transport_error_that_keeps_what_arrived() {
        let (target, _arrived) = grpc_server(100, Duration::ZERO).await;
        let transport = Transport::new(&target, &grpc_options(1)).unwrap();
        let mut call = grpc_call();
        if let WireRequest::Grpc(g) = &mut call.request {
            g.message = b"reset".to_vec();
        }
        let (_tx, mut cancel) = tokio::sync::watch::channel(false);
        let (ex, out) = transport
            .execute(&call, 1, Collect::default(), later(), &mut cancel)
            .await;
        match &ex.ending {
            Ending::TransportError(e) => assert!(e.contains("reset the stream"), "{e}"),
            other => panic!("{other:?}"),
        }
        let out = out.expect("the head arrived");
        assert!(out.cut);
        assert_eq!(out.body(), b"\0\0\0\0\x01a");
        // The connection is still good for the next call.
        let (ex, _) = transport
            .execute(&grpc_call(), 2, Collect::default(), later(), &mut cancel)
            .await;
        assert!(matches!(ex.ending, Ending::Complete), "{:?}", ex.ending);
    }

    #[test]
    fn a_target_is_a_scheme_host_port_and_prefix_or_refused() {
        for bad in ["http://127.0.0.1:99999", "http://127.0.0.1:0", "http://[::1]:70000"] {
            let e = Transport::new(bad, &options(200, false)).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("is not a port")),
                "{bad}: {e:?}"
            );
        }
        for ok in [
            "http://127.0.0.1:8000",
            "http://[::1]:8000",
            "https://example.invalid",
            "http://127.0.0.1:8000/prefix/",
        ] {
            assert!(Transport::new(ok, &options(200, false)).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://user:secret@127.0.0.1:8000", "holds credentials"),
            ("http://127.0.0.1:8000/v1?x=1", "query or fragment"),
            ("http://127.0.0.1:8000/#top", "query or fragment"),
            ("http://127.0.0.1:", "is not a port"),
            ("ftp://127.0.0.1", "http:// or https://"),
        ] {
            let e = Transport::new(bad, &options(200, false)).err().map(|e| e.to_string());
            assert!(e.as_deref().is_some_and(|e| e.contains(why)), "{bad}: {e:?}");
        }
    }

    #[test]
    fn a_codec_names_an_origin_form_path_and_none_of_the_targets_or_connections_headers() {
        for ok in ["/v1/completions", "/v2/models/m/infer?x=1", "/"] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "@evil:9/v1",
            "http://evil/v1",
            "//evil/v1",
            "v1",
            "",
            "/a b",
            "/a\r\nHost: evil",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for bad in ["Host", "host", ":authority", "Connection", "upgrade", "TE"] {
            assert!(check_codec_header(bad).is_err(), "{bad}");
        }
        for ok in ["content-type", "accept", "authorization", "x-api-key"] {
            assert!(check_codec_header(ok).is_ok(), "{ok}");
        }
    }

    /// A channel as the stream of frames `StreamBody` takes.
    fn tokio_stream<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
