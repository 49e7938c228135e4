//! The simulator's HTTP server: routes, faults, ground truth.
//!
//! Endpoints live in [`handle`]; what each protocol reads and writes lives
//! in `protocol`, and every protocol is fed the same token timeline.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::config::{Dist, Mode, SimConfig};
use super::engine::{Router, SeqRequest};
use super::metrics::Metrics;
use super::protocol::{self, Piece, Protocol, Reply, Route};
use super::text::{PromptShape, word};
use super::truth::{TruthRecord, TruthWriter, monotonic_ns};
use barrage_core::rng::Rng;

/// A fault the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 Too Many Requests.
    Http429,
    /// 500 Internal Server Error.
    Http500,
    /// Connection cut mid-stream.
    ResetMidstream,
    /// A pause mid-stream.
    Stall,
    /// A frame that is not JSON.
    MalformedFrame,
    /// No `[DONE]`.
    MissingDone,
    /// No finish reason.
    MissingFinishReason,
    /// Headers and first byte late.
    SlowFirstByte,
}

impl Fault {
    /// Every fault, in `/metrics` order.
    pub const ALL: [Fault; 8] = [
        Fault::Http429,
        Fault::Http500,
        Fault::ResetMidstream,
        Fault::Stall,
        Fault::MalformedFrame,
        Fault::MissingDone,
        Fault::MissingFinishReason,
        Fault::SlowFirstByte,
    ];

    /// The name used in config and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Http429 => "http_429",
            Fault::Http500 => "http_500",
            Fault::ResetMidstream => "reset_midstream",
            Fault::Stall => "stall",
            Fault::MalformedFrame => "malformed_frame",
            Fault::MissingDone => "missing_done",
            Fault::MissingFinishReason => "missing_finish_reason",
            Fault::SlowFirstByte => "slow_first_byte",
        }
    }

    fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The address could not be bound.
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        /// host:port.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS certificate or key is unusable.
    #[error("simulator TLS: {0}")]
    Tls(#[from] barrage_core::tls::TlsError),
    /// The ground-truth file could not be created.
    #[error("simulator cannot write ground truth to {path}: {source}")]
    Truth {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

struct State {
    config: SimConfig,
    metrics: Arc<Metrics>,
    router: Option<Arc<Router>>,
    truth: Option<TruthWriter>,
    requests: AtomicU64,
}

/// A running simulator.
pub struct Simulator {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    state: Arc<State>,
}

impl Simulator {
    /// Bind and start serving. Must be called inside a tokio runtime.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let addr = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&addr).await.map_err(|source| SimError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        let metrics = Arc::new(Metrics::new(&config.model, config.metric_names.unwrap_or_default()));
        let router = (config.mode == Mode::Batching).then(|| {
            let r = Router::start(config.batching.clone(), config.replicas, metrics.clone());
            if config.autoscaler.enabled {
                r.start_autoscaler(config.autoscaler.clone());
            }
            r
        });
        if router.is_none() {
            metrics.replicas.store(config.replicas as u64, Ordering::Relaxed);
        }
        let truth = match &config.ground_truth {
            Some(path) => Some(TruthWriter::create(path).map_err(|source| SimError::Truth {
                path: path.display().to_string(),
                source,
            })?),
            None => None,
        };
        let tls = match &config.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                barrage_core::tls::server_config(&t.cert_file, &t.key_file)?,
            ))),
            None => None,
        };
        let state = Arc::new(State {
            config,
            metrics,
            router,
            truth,
            requests: AtomicU64::new(0),
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state.clone(), tls, rx));
        Ok(Simulator {
            addr: local,
            shutdown,
            task,
            state,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Stop accepting, and flush the ground truth.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        if let Some(t) = &self.state.truth {
            t.flush();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // Without TCP_NODELAY, Nagle's algorithm holds small SSE
                // writes back for the peer's delayed ACK (~40 ms on
                // loopback) and falsifies every latency served.
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            // A failed handshake (a client that does not trust us) just ends the connection.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

type SimBody = http_body_util::Either<Full<Bytes>, StreamBody>;

/// A response with a status and content type; built without a fallible
/// builder since every header here is a static, valid value.
fn response(status: StatusCode, content_type: &'static str, body: SimBody) -> Response<SimBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

fn full(body: impl Into<Bytes>) -> SimBody {
    http_body_util::Either::Left(Full::new(body.into()))
}

fn json(status: StatusCode, body: String) -> Response<SimBody> {
    response(status, "application/json", full(body))
}

fn error(protocol: Protocol, status: StatusCode, kind: &str, message: &str) -> Response<SimBody> {
    if protocol.is_grpc() {
        // A gRPC error is a trailers-only response: HTTP 200, the status in the headers.
        let mut r = response(StatusCode::OK, "application/grpc", full(Bytes::new()));
        r.headers_mut()
            .extend(protocol::grpc_trailers(protocol::grpc_status(status), message));
        return r;
    }
    let (status, body) = protocol::error_body(protocol, status, kind, message);
    let mut r = json(status, body);
    if protocol.is_aws() {
        // AWS names the exception in a header; its body holds the message only.
        let kind = if kind.ends_with("Exception") || kind == "MissingAuthenticationToken" {
            kind
        } else {
            crate::bedrock::error_type(status)
        };
        if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
            r.headers_mut().insert("x-amzn-errortype", v);
        }
    }
    r
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<SimBody>, Infallible> {
    let path = req.uri().path().to_string();
    let version = if req.version() == hyper::Version::HTTP_2 { 1 } else { 0 };
    state.metrics.by_http_version[version].fetch_add(1, Ordering::Relaxed);
    Ok(match (req.method(), path.as_str()) {
        (&Method::GET, "/health" | "/v2/health/ready" | "/v2/health/live") => json(StatusCode::OK, String::new()),
        (&Method::GET, "/v1/models") => json(
            StatusCode::OK,
            serde_json::json!({"object": "list", "data": [{"id": state.config.model, "object": "model", "created": 0, "owned_by": "barrage-sim"}]}).to_string(),
        ),
        (&Method::GET, "/metrics") => {
            response(StatusCode::OK, "text/plain; version=0.0.4", full(state.metrics.render()))
        }
        (&Method::POST, "/v1/embeddings") => embeddings(state, req).await,
        (&Method::POST, "/rerank" | "/v1/rerank" | "/v2/rerank") => rerank(state, req).await,
        (&Method::POST, "/v1/images/generations") => images(state, req).await,
        (&Method::POST, _) if let Some(route) = Route::of(&path) => generate(state, req, route).await,
        _ => error(
            Protocol::Completions,
            StatusCode::NOT_FOUND,
            "NotFoundError",
            &format!("no route for {} {path}", req.method()),
        ),
    })
}

/// The refusal of a request without the configured API key, if it is
/// one: 401, or AWS's 403.
fn unauthorized(state: &State, req: &Request<Incoming>, protocol: Protocol) -> Option<Response<SimBody>> {
    let key = state.config.api_key.as_ref()?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let bearer = || header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    let given = match protocol {
        Protocol::Anthropic => header("x-api-key"),
        // An AWS API's key is the access key id a SigV4 signature names (the
        // simulator does not check the signature: tests/interop's botocore
        // server does).
        Protocol::Bedrock | Protocol::SageMaker => {
            let credential = header("authorization")
                .and_then(|v| v.strip_prefix("AWS4-HMAC-SHA256 Credential="))
                .and_then(|v| v.split_once('/'))
                .map(|(id, _)| id);
            return match credential {
                Some(id) if id == key => None,
                Some(_) => Some(error(
                    protocol,
                    StatusCode::FORBIDDEN,
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                )),
                None => Some(error(
                    protocol,
                    StatusCode::FORBIDDEN,
                    "MissingAuthenticationToken",
                    "Missing Authentication Token",
                )),
            };
        }
        // Gemini's API takes a key as `x-goog-api-key`; Vertex AI a bearer token.
        Protocol::Gemini => header("x-goog-api-key").or_else(bearer),
        _ => bearer(),
    };
    if given == Some(key.as_str()) {
        return None;
    }
    let message = match given {
        Some(k) => format!("Incorrect API key provided: {k}"),
        None => "You didn't provide an API key".to_string(),
    };
    Some(error(protocol, StatusCode::UNAUTHORIZED, "invalid_api_key", &message))
}

/// A request's whole body, or the 400 of one that could not be read.
async fn read_body(req: Request<Incoming>, protocol: Protocol) -> Result<Bytes, Response<SimBody>> {
    match req.into_body().collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(error(
            protocol,
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            &format!("could not read body: {e}"),
        )),
    }
}

/// An encoder endpoint's request: authorized, its body read and parsed by
/// `parse`, counted; then, after the time `latency_ms` gives (none in
/// `zero` mode), the answer `answer` writes from the request's own random
/// stream.
async fn encoder<A>(
    state: Arc<State>,
    req: Request<Incoming>,
    parse: impl FnOnce(&[u8]) -> Result<A, String>,
    latency_ms: impl FnOnce(&A, &SimConfig) -> f64,
    answer: impl FnOnce(&A, &SimConfig, &mut Rng) -> String,
) -> Response<SimBody> {
    let protocol = Protocol::Completions;
    if let Some(refused) = unauthorized(&state, &req, protocol) {
        return refused;
    }
    let body = match read_body(req, protocol).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let asked = match parse(&body) {
        Ok(asked) => asked,
        Err(message) => return error(protocol, StatusCode::BAD_REQUEST, "BadRequestError", &message),
    };
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    state.metrics.requests_received.fetch_add(1, Ordering::Relaxed);
    let config = &state.config;
    if config.mode != Mode::Zero {
        let ms = latency_ms(&asked, config);
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
    }
    let mut rng = Rng::stream(config.seed, n);
    json(StatusCode::OK, answer(&asked, config, &mut rng))
}

/// `POST /v1/embeddings`: vectors after the embeddings model's time.
async fn embeddings(state: Arc<State>, req: Request<Incoming>) -> Response<SimBody> {
    use crate::embed::{body, latency_ms, parse};
    encoder(
        state,
        req,
        parse,
        |a, c| latency_ms(a, &c.embeddings),
        |a, c, rng| body(a, &c.embeddings, &c.model, rng),
    )
    .await
}

/// `POST /rerank`: scores after the rerank model's time.
async fn rerank(state: Arc<State>, req: Request<Incoming>) -> Response<SimBody> {
    use crate::embed::{parse_rerank, rerank_body, rerank_latency_ms};
    encoder(
        state,
        req,
        parse_rerank,
        |a, c| rerank_latency_ms(a, &c.rerank),
        |a, c, rng| rerank_body(a, &c.model, rng),
    )
    .await
}

/// `POST /v1/images/generations`: images after the diffusion model's time.
async fn images(state: Arc<State>, req: Request<Incoming>) -> Response<SimBody> {
    use crate::images::{body, latency_ms, parse};
    encoder(
        state,
        req,
        parse,
        |a, c| latency_ms(a, &c.images),
        |a, c, rng| body(a, &c.images, rng),
    )
    .await
}

/// Everything decided about one request before tokens flow.
struct Plan {
    reply: Reply,
    request_id: Option<String>,
    arrived: Instant,
    arrived_ns: u64,
    max_tokens: u32,
    faults: Vec<Fault>,
    stall_ms: f64,
}

impl Plan {
    fn has(&self, f: Fault) -> bool {
        self.faults.contains(&f)
    }

    fn finish_reason(&self) -> &'static str {
        if self.reply.output_tokens >= self.max_tokens {
            "length"
        } else {
            "stop"
        }
    }
}

fn sample_ms(d: &Dist, rng: &mut Rng) -> f64 {
    match *d {
        Dist::Constant(v) => v,
        Dist::Normal { mean, stddev } => (mean + stddev * rng.standard_normal()).max(0.0),
        Dist::Lognormal { median, sigma } => median * (sigma * rng.standard_normal()).exp(),
        Dist::Uniform { min, max } => min + (max - min) * rng.f64(),
    }
}

async fn generate(state: Arc<State>, req: Request<Incoming>, route: Route) -> Response<SimBody> {
    let arrived = Instant::now();
    let arrived_ns = monotonic_ns();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let protocol = route.protocol();
    if let Some(refused) = unauthorized(&state, &req, protocol) {
        return refused;
    }
    let body = match read_body(req, protocol).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let config = &state.config;
    let asked = match protocol::parse(route, &body, config.batching.prefix_block_tokens, &config.media) {
        Ok(asked) => asked,
        Err((status, message)) => return error(protocol, status, "BadRequestError", &message),
    };
    let protocol = asked.protocol;
    let shape = asked.shape;
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    state.metrics.requests_received.fetch_add(1, Ordering::Relaxed);
    let mut rng = Rng::stream(config.seed, n);

    // Faults are drawn in a fixed order from the request's own stream, so a
    // seed gives the same faults to the same request index.
    let f = &config.faults;
    let mut faults = Vec::new();
    let r = rng.f64();
    if r < f.http_429 {
        faults.push(Fault::Http429);
    } else if r < f.http_429 + f.http_500 {
        faults.push(Fault::Http500);
    }
    let mut draw = |rate: f64, fault: Fault, faults: &mut Vec<Fault>| {
        if rng.chance(rate) {
            faults.push(fault);
        }
    };
    draw(f.reset_midstream, Fault::ResetMidstream, &mut faults);
    draw(f.stall.map_or(0.0, |s| s.rate), Fault::Stall, &mut faults);
    draw(f.malformed_frame, Fault::MalformedFrame, &mut faults);
    draw(f.missing_done, Fault::MissingDone, &mut faults);
    draw(f.missing_finish_reason, Fault::MissingFinishReason, &mut faults);
    draw(
        f.slow_first_byte.map_or(0.0, |s| s.rate),
        Fault::SlowFirstByte,
        &mut faults,
    );

    let count = |fault: Fault| state.metrics.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
    if faults.contains(&Fault::SlowFirstByte) {
        count(Fault::SlowFirstByte);
        let ms = f.slow_first_byte.map_or(0.0, |s| s.ms);
        tokio::time::sleep(Duration::from_secs_f64(ms / 1000.0)).await;
    }
    if faults.contains(&Fault::Http429) {
        count(Fault::Http429);
        return error(
            protocol,
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitError",
            "simulated overload: too many requests",
        );
    }
    if faults.contains(&Fault::Http500) {
        count(Fault::Http500);
        return error(
            protocol,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "simulated internal error",
        );
    }

    let max_tokens = asked.max_tokens.unwrap_or(config.default_max_tokens).max(1);
    // Token times are planned up front: a client's 4000000000 is refused as
    // a real server refuses more than its context holds.
    if max_tokens > crate::config::MAX_OUTPUT_TOKENS {
        return error(
            protocol,
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            &format!(
                "max_tokens {max_tokens} is more than this simulator generates ({})",
                crate::config::MAX_OUTPUT_TOKENS
            ),
        );
    }
    let output_tokens = match (&config.output_tokens, asked.ignore_eos) {
        (Some(d), false) => (sample_ms(d, &mut rng).round() as u32).clamp(asked.min_tokens.max(1), max_tokens),
        _ => max_tokens,
    };
    state
        .metrics
        .prompt_tokens
        .fetch_add(u64::from(shape.tokens), Ordering::Relaxed);
    let plan = Plan {
        reply: Reply {
            protocol,
            id: n,
            prompt_tokens: shape.tokens,
            output_tokens,
            text_seed: shape.hash ^ config.seed,
            extras: asked.extras,
        },
        request_id,
        arrived,
        arrived_ns,
        max_tokens,
        stall_ms: f.stall.map_or(0.0, |s| s.ms),
        faults,
    };

    let times = match token_times(&state, &plan, shape, &mut rng) {
        Ok(t) => t,
        Err(message) => return error(protocol, StatusCode::BAD_REQUEST, "BadRequestError", &message),
    };
    if asked.stream {
        // A reset must come after the frames before it were written, and a
        // stall in the middle of the stream: those go over time.
        let over_time = plan.has(Fault::Stall) || plan.has(Fault::ResetMidstream);
        let body = if matches!(times, TokenTimes::Zero) && !over_time {
            // Every token is ready at once, so the whole stream is too: made
            // here and played back by the body, it costs no task and no
            // channel hand-over per token (at thousands of streams a second
            // those were most of the simulator's CPU, taken from the client
            // it shares a machine with). Frames still go out one by one.
            let mut frames = VecDeque::new();
            stream_response(state.clone(), plan, times, &mut FrameSink::Ready(&mut frames)).await;
            StreamBody::Ready(frames)
        } else {
            let (tx, rx) = mpsc::channel(64);
            tokio::spawn(async move { stream_response(state, plan, times, &mut FrameSink::Channel(tx)).await });
            StreamBody::Channel(rx)
        };
        response(
            StatusCode::OK,
            protocol.stream_content_type(),
            http_body_util::Either::Right(body),
        )
    } else {
        unary_response(&state, plan, times).await
    }
}

/// When each output token is ready.
enum TokenTimes {
    /// From the batching engine, as it steps.
    Engine(mpsc::UnboundedReceiver<Instant>),
    /// Drawn up front (plain mode); offsets from arrival.
    Planned(Vec<Duration>),
    /// At once.
    Zero,
}

impl TokenTimes {
    async fn next(&mut self, arrived: Instant, i: usize) -> Option<Instant> {
        match self {
            TokenTimes::Engine(rx) => rx.recv().await,
            TokenTimes::Planned(offsets) => {
                let at = arrived + *offsets.get(i)?;
                tokio::time::sleep_until(at.into()).await;
                Some(at)
            }
            TokenTimes::Zero => Some(Instant::now()),
        }
    }
}

fn token_times(state: &State, plan: &Plan, shape: PromptShape, rng: &mut Rng) -> Result<TokenTimes, String> {
    match state.config.mode {
        Mode::Batching => {
            let (tx, rx) = mpsc::unbounded_channel();
            let router = state.router.as_ref().ok_or("no engine")?;
            router.submit(SeqRequest {
                shape,
                output_tokens: plan.reply.output_tokens,
                tokens: tx,
            })?;
            Ok(TokenTimes::Engine(rx))
        }
        Mode::Plain => {
            let p = &state.config.plain;
            let mut t = sample_ms(&p.ttft_ms, rng);
            let mut offsets = Vec::with_capacity(plan.reply.output_tokens as usize);
            for i in 0..plan.reply.output_tokens {
                if i > 0 {
                    t += sample_ms(&p.itl_ms, rng);
                }
                offsets.push(Duration::from_secs_f64(t / 1000.0));
            }
            Ok(TokenTimes::Planned(offsets))
        }
        Mode::Zero => Ok(TokenTimes::Zero),
    }
}

type StreamItem = Result<Frame<Bytes>, std::io::Error>;

/// Where a streamed response's frames go.
enum FrameSink<'a> {
    /// To the response body as they are made (tokens come over time).
    Channel(mpsc::Sender<StreamItem>),
    /// Collected for the body to play back (tokens all ready at once).
    Ready(&'a mut VecDeque<StreamItem>),
}

impl FrameSink<'_> {
    /// False when the client has gone.
    async fn send(&mut self, item: StreamItem) -> bool {
        match self {
            FrameSink::Channel(tx) => tx.send(item).await.is_ok(),
            FrameSink::Ready(frames) => {
                frames.push_back(item);
                true
            }
        }
    }
}

async fn stream_response(state: Arc<State>, plan: Plan, mut times: TokenTimes, sink: &mut FrameSink<'_>) {
    let interval = state.config.stream_interval;
    let reply = &plan.reply;
    let n = reply.output_tokens;
    let fault_at = n / 2;
    let mut truth = TruthRecord::new(plan.request_id.clone(), reply.id, plan.arrived_ns);
    // The truth file is the simulator's own record; without one, no clock read per frame.
    let timed = state.truth.is_some();
    async fn send(sink: &mut FrameSink<'_>, bytes: Bytes, truth: &mut TruthRecord, timed: bool, content: bool) -> bool {
        truth.frame(if timed { monotonic_ns() } else { 0 }, content);
        sink.send(Ok(Frame::data(bytes))).await
    }
    let count = |fault: Fault| state.metrics.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
    // A fault that would change nothing in this protocol is not injected,
    // so the counts say what a client could see.
    let missing_done = plan.has(Fault::MissingDone) && reply.protocol.has_end_marker();
    let missing_finish = plan.has(Fault::MissingFinishReason) && reply.protocol.reports_finish(&reply.extras);
    let mut text = String::new();
    let mut first: Option<Instant> = None;
    let mut last = plan.arrived;
    let mut from = 0;
    for i in 0..n {
        let Some(at) = times.next(plan.arrived, i as usize).await else {
            return;
        };
        match first {
            None => {
                first = Some(at);
                state.metrics.ttft.observe((at - plan.arrived).as_secs_f64());
                if let Some(role) = reply.role_chunk()
                    && !send(sink, role, &mut truth, timed, false).await
                {
                    return;
                }
            }
            Some(_) => state.metrics.itl.observe((at - last).as_secs_f64()),
        }
        last = at;
        state.metrics.generation_tokens.fetch_add(1, Ordering::Relaxed);
        text.push_str(word(reply.text_seed, i));
        let done = i + 1;
        if done % interval != 0 && done != n {
            continue;
        }
        // A stall just before a reset could not be seen by the client: the
        // reset wins.
        if i >= fault_at
            && plan.has(Fault::Stall)
            && !plan.has(Fault::ResetMidstream)
            && truth.content_frames() == (fault_at / interval) as usize
        {
            count(Fault::Stall);
            tokio::time::sleep(Duration::from_secs_f64(plan.stall_ms / 1000.0)).await;
        }
        if i >= fault_at && plan.has(Fault::ResetMidstream) {
            count(Fault::ResetMidstream);
            sink.send(Err(std::io::Error::other("simulated connection reset")))
                .await;
            return;
        }
        if i >= fault_at && plan.has(Fault::MalformedFrame) && !truth.malformed_sent {
            count(Fault::MalformedFrame);
            truth.malformed_sent = true;
            if !send(sink, reply.malformed(), &mut truth, timed, false).await {
                return;
            }
        }
        let piece = Piece {
            from,
            to: done,
            text: &text,
            finish: (done == n && !missing_finish).then(|| plan.finish_reason()),
            end: done == n && !missing_done,
        };
        if !send(sink, reply.chunk(&piece), &mut truth, timed, true).await {
            return;
        }
        text.clear();
        from = done;
    }
    if missing_finish {
        count(Fault::MissingFinishReason);
    }
    if let Some(usage) = reply.usage_chunk()
        && !send(sink, usage, &mut truth, timed, false).await
    {
        return;
    }
    if missing_done {
        count(Fault::MissingDone);
    } else if let Some(done) = reply.done_marker()
        && !send(sink, done, &mut truth, timed, false).await
    {
        return;
    }
    if let Some(trailers) = reply.end_trailers()
        && !sink.send(Ok(Frame::trailers(trailers))).await
    {
        return;
    }
    finish_request(&state, &plan, last);
    if let Some(t) = &state.truth {
        t.write(truth);
    }
}

fn finish_request(state: &State, plan: &Plan, last: Instant) {
    state.metrics.e2e.observe((last - plan.arrived).as_secs_f64());
    let counter = if plan.finish_reason() == "length" {
        &state.metrics.success_length
    } else {
        &state.metrics.success_stop
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

async fn unary_response(state: &State, plan: Plan, mut times: TokenTimes) -> Response<SimBody> {
    let mut last = plan.arrived;
    for i in 0..plan.reply.output_tokens {
        let Some(at) = times.next(plan.arrived, i as usize).await else {
            return error(
                plan.reply.protocol,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "engine stopped",
            );
        };
        if i == 0 {
            state.metrics.ttft.observe((at - plan.arrived).as_secs_f64());
        } else {
            state.metrics.itl.observe((at - last).as_secs_f64());
        }
        last = at;
    }
    state
        .metrics
        .generation_tokens
        .fetch_add(u64::from(plan.reply.output_tokens), Ordering::Relaxed);
    finish_request(state, &plan, last);
    if plan.reply.protocol.is_grpc() {
        let frames = [
            Frame::data(plan.reply.grpc_unary(plan.finish_reason())),
            Frame::trailers(protocol::grpc_trailers(0, "")),
        ];
        let body = StreamBody::Ready(frames.into_iter().map(Ok).collect());
        return response(StatusCode::OK, "application/grpc", http_body_util::Either::Right(body));
    }
    json(StatusCode::OK, plan.reply.unary(plan.finish_reason()))
}

/// A streamed response body: each frame is written as it comes; an error
/// cuts the connection.
pub enum StreamBody {
    /// Frames made over time by a task of their own.
    Channel(mpsc::Receiver<StreamItem>),
    /// Frames all made already.
    Ready(VecDeque<StreamItem>),
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match &mut *self {
            StreamBody::Channel(rx) => rx.poll_recv(cx),
            StreamBody::Ready(frames) => Poll::Ready(frames.pop_front()),
        }
    }
}
