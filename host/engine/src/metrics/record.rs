//! One request's record: what `records.jsonl` holds per line, and the
//! per-request quantities every metric is built from.
//!
//! Times are milliseconds from the run's start (a monotonic clock); the
//! run's wall-clock start is in `meta.json`. The definitions are in
//! `docs/metrics.md`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::transport::{Ending, Exchange};
use barrage_core::framing::Refusal;
use barrage_core::types::{Event, OutputKind};
use barrage_plugin_host::StreamOutcome;

/// What a sent request's record is made of: the exchange as the transport
/// timed it, and what the codec decoded from its response.
#[derive(Debug)]
pub struct Response {
    /// The exchange.
    pub exchange: Exchange,
    /// Decoded events with frame times (streams), or a whole body's events.
    pub decoded: StreamOutcome,
    /// What a `malformed` event does to the request.
    pub malformed: MalformedFrames,
}

/// What a frame the codec could not parse (a `malformed` event) does to its
/// request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MalformedFrames {
    /// The request fails with status `malformed`: a server that sends
    /// frames its protocol does not allow is not serving correctly.
    #[default]
    Fail,
    /// The frame is counted (`malformed_frames` in the record) and skipped;
    /// the request is judged on the rest.
    Count,
}

/// What a response's events say about how it ended, and the verdict on a
/// complete exchange: the rules `run` records and `plugin decode` prints.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The `done` event came.
    pub done: bool,
    /// The finish reason.
    pub finish: Option<String>,
    /// The server's error, `code: message`.
    pub server_error: Option<String>,
    /// Why the first malformed frame was malformed.
    pub malformed: Option<String>,
    /// Malformed frames.
    pub malformed_frames: u32,
    /// What a successful response was to carry (`encoded-request.output`).
    pub output: OutputKind,
    /// Items received: vectors, ranked documents, images, audio clips.
    pub items: u32,
    /// Length of the vectors received.
    pub dimensions: Option<u32>,
    /// Image or audio bytes received.
    pub media_bytes: u64,
}

impl Verdict {
    /// Read the ending off `decoded`'s events.
    pub fn of(decoded: &StreamOutcome) -> Verdict {
        let mut v = Verdict::default();
        for e in &decoded.events {
            v.note(&e.event);
        }
        v
    }

    /// Take one event into account (the record's own pass over the events
    /// calls this, so they are read once).
    pub fn note(&mut self, event: &Event) {
        match event {
            Event::Finish(r) => self.finish = Some(r.clone()),
            Event::ServerError(err) => {
                self.server_error = Some(format!("{}: {}", err.code.as_deref().unwrap_or("error"), err.message))
            }
            Event::Done => self.done = true,
            Event::Embeddings { count, dimensions } => {
                self.items += count;
                self.dimensions = Some(*dimensions);
            }
            Event::Ranking(count) => self.items += count,
            Event::Image(m) | Event::Audio(m) => {
                self.items += m.count;
                self.media_bytes += m.bytes;
            }
            Event::Malformed(m) => {
                self.malformed_frames += 1;
                if self.malformed.is_none() {
                    self.malformed = Some(format!("malformed frame: {m}"));
                }
            }
            _ => {}
        }
    }

    /// The status of an exchange that ran to its end with HTTP status
    /// `http` (none for a body that never had one), and its error. A
    /// streamed response is complete only with at least one frame and both a
    /// `done` and a `finish` event; a body gathered whole needs neither.
    pub fn judge(
        &self,
        http: Option<u16>,
        decoded: &StreamOutcome,
        malformed: MalformedFrames,
    ) -> (Status, Option<String>) {
        match http {
            // Credentials refused: the run measures nothing until they are
            // fixed, so it is its own class, with the server's words.
            Some(s @ (401 | 403)) => {
                return (
                    Status::AuthError,
                    Some(self.server_error.clone().unwrap_or_else(|| format!("HTTP {s}"))),
                );
            }
            Some(s) if !(200..300).contains(&s) => {
                return (
                    Status::HttpError,
                    Some(self.server_error.clone().unwrap_or_else(|| format!("HTTP {s}"))),
                );
            }
            _ => {}
        }
        if let Some(f) = &decoded.failure {
            return (Status::PluginError, Some(f.to_string()));
        }
        if let Some(e) = &self.server_error {
            return (Status::ServerError, Some(e.clone()));
        }
        if let (Some(m), MalformedFrames::Fail) = (&self.malformed, malformed) {
            return (Status::Malformed, Some(m.clone()));
        }
        if !self.output.is_tokens() {
            // Items, not a token stream: neither `done` nor `finish` is asked of it.
            if self.items == 0 && self.media_bytes == 0 {
                return (
                    Status::EmptyResponse,
                    Some(format!("the response held no {}", output_name(self.output))),
                );
            }
            return (Status::Ok, None);
        }
        if decoded.streamed && decoded.frames == 0 {
            return (
                Status::EmptyResponse,
                Some("the stream held no frame: its body was empty, or not in the framing the codec asked for".into()),
            );
        }
        if decoded.streamed && !self.done {
            return (
                Status::Truncated,
                Some("stream ended without its end marker (no `done` event)".into()),
            );
        }
        if decoded.streamed && self.finish.is_none() {
            return (
                Status::Truncated,
                Some("stream ended without a finish reason (no `finish` event)".into()),
            );
        }
        (Status::Ok, None)
    }
}

/// What a response of `output` holds, for messages.
fn output_name(output: OutputKind) -> &'static str {
    match output {
        OutputKind::Tokens => "tokens",
        OutputKind::Embeddings => "embeddings",
        OutputKind::Ranking => "ranking",
        OutputKind::Images => "images",
        OutputKind::Audio => "audio",
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A complete response with output.
    #[default]
    Ok,
    /// A non-2xx status other than 401 and 403.
    HttpError,
    /// HTTP 401 or 403: the server refused the credentials.
    AuthError,
    /// An error object from the server (in the stream or the body).
    ServerError,
    /// No response within the timeout.
    Timeout,
    /// Stopped by the user before it finished.
    Cancelled,
    /// Connecting, sending or reading failed (including a cut connection).
    TransportError,
    /// The codec plugin failed on this request or response.
    PluginError,
    /// The stream ended without its end marker or finish reason.
    Truncated,
    /// The server sent a frame the codec could not parse.
    Malformed,
    /// A 2xx answer to a streaming request whose body held no frame: empty,
    /// or not in the framing the codec asked for (a JSON object where SSE
    /// was expected).
    EmptyResponse,
    /// A frame of the response (or a body gathered whole) went over
    /// `max_frame_mib`; the rest was not read.
    TooLarge,
    /// The client ran out of descriptors, ports or memory before the
    /// request reached the server: a failure of the client, not the server.
    ClientResource,
    /// A gRPC call that ended with a status other than OK; the error names
    /// it (`grpc:RESOURCE_EXHAUSTED: ...`).
    GrpcError,
}

impl Status {
    /// The name used in records and reports.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::HttpError => "http_error",
            Status::AuthError => "auth_error",
            Status::ServerError => "server_error",
            Status::Timeout => "timeout",
            Status::Cancelled => "cancelled",
            Status::TransportError => "transport_error",
            Status::PluginError => "plugin_error",
            Status::Truncated => "truncated",
            Status::Malformed => "malformed",
            Status::EmptyResponse => "empty_response",
            Status::TooLarge => "too_large",
            Status::ClientResource => "client_resource",
            Status::GrpcError => "grpc_error",
        }
    }

    /// A failure: neither a success nor cancelled by the user.
    pub fn is_failure(self) -> bool {
        !matches!(self, Status::Ok | Status::Cancelled)
    }
}

/// Where a token count came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The server's usage report.
    Usage,
    /// Token counts the codec read off each frame.
    Frames,
    /// One token per output frame: approximate.
    #[default]
    FrameCount,
    /// Counted by the run's tokenizer.
    Tokenizer,
    /// Counted by the codec (a prompt with images or audio, by the server's rule).
    Codec,
}

impl TokenSource {
    /// The name used in records and reports.
    pub fn name(self) -> &'static str {
        match self {
            TokenSource::Usage => "usage",
            TokenSource::Frames => "frames",
            TokenSource::FrameCount => "frame_count",
            TokenSource::Tokenizer => "tokenizer",
            TokenSource::Codec => "codec",
        }
    }
}

/// One request, as written to `records.jsonl`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// Request id (also sent as `x-request-id`).
    pub id: u64,
    /// Stage index.
    pub stage: usize,
    /// Session of a multi-turn conversation, when the dataset has sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u64>,
    /// Index of the dataset sample the prompt came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<u64>,
    /// Which load generator sent it, in a run merged from shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// Scheduled send, ms from run start.
    pub scheduled_ms: f64,
    /// Actual send, ms.
    pub sent_ms: f64,
    /// Time waited for a connection slot under `max_connections`, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_wait_ms: Option<f64>,
    /// The connection used: numbered from 0 in the order the run opened them.
    #[serde(default)]
    pub connection_id: Option<u64>,
    /// When the request had its connection: the send for a pooled one, or
    /// when a new one was established (connect and TLS done), ms.
    #[serde(default)]
    pub connection_acquired_ms: Option<f64>,
    /// Response headers, ms.
    pub headers_ms: Option<f64>,
    /// First body byte, ms.
    pub first_byte_ms: Option<f64>,
    /// First frame carrying output (content or reasoning), ms.
    pub first_token_ms: Option<f64>,
    /// First frame carrying answer content (not reasoning), ms.
    #[serde(default)]
    pub first_answer_ms: Option<f64>,
    /// Last frame carrying output, ms.
    pub last_token_ms: Option<f64>,
    /// End of the exchange (stream end, error or cancel), ms.
    pub end_ms: f64,
    /// Arrival of every output-carrying frame, ms.
    pub content_frames_ms: Vec<f64>,
    /// Tokens in each of those frames, where the codec knows them (left
    /// out of the file when it knows none).
    #[serde(default, skip_serializing_if = "all_unknown")]
    pub content_frame_tokens: Vec<Option<u32>>,
    /// Output frames that carried reasoning.
    #[serde(default)]
    pub reasoning_frames: u32,
    /// Prompt tokens.
    pub prompt_tokens: Option<u32>,
    /// Where `prompt_tokens` came from.
    #[serde(default)]
    pub prompt_tokens_source: Option<TokenSource>,
    /// Output tokens.
    pub output_tokens: u32,
    /// Where `output_tokens` came from.
    pub output_tokens_source: TokenSource,
    /// How it ended.
    pub status: Status,
    /// HTTP status.
    pub http_status: Option<u16>,
    /// HTTP version of the response.
    pub http_version: Option<String>,
    /// The error, if any.
    pub error: Option<String>,
    /// Finish reason.
    pub finish_reason: Option<String>,
    /// Frames the codec could not parse (counted and skipped under
    /// `malformed_frames: count`; under `fail` the first fails the request).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub malformed_frames: u32,
    /// Request body bytes.
    pub bytes_sent: u64,
    /// Response body bytes.
    pub bytes_received: u64,
    /// False for requests sent in a stage's warm-up or cool-down: counted,
    /// but left out of latency and throughput figures.
    pub measured: bool,
    /// Time waited for a slot under the stage's concurrency cap, ms.
    pub queue_wait_ms: Option<f64>,
    /// What the response was to carry; generated text unless written.
    #[serde(default, skip_serializing_if = "OutputKind::is_tokens")]
    pub output: OutputKind,
    /// Items received (vectors, ranked documents, images, audio clips).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub items: u32,
    /// Length of the vectors received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// Image or audio bytes received.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub media_bytes: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn all_unknown(tokens: &[Option<u32>]) -> bool {
    tokens.iter().all(Option::is_none)
}

/// What the engine knows of a request before it is sent: its place in the
/// run's schedule and in the dataset.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo {
    /// Request id.
    pub id: u64,
    /// Stage index.
    pub stage: usize,
    /// When it was due.
    pub scheduled: Instant,
    /// False in a stage's warm-up or cool-down.
    pub measured: bool,
    /// Time spent waiting for a slot under the stage's concurrency cap.
    pub queue_wait: Option<Duration>,
    /// The dataset sample it sends.
    pub sample: Option<u64>,
    /// The session the sample belongs to.
    pub session: Option<u64>,
    /// The prompt's length by the run's tokenizer, where known: the
    /// record's prompt count when the server reports none.
    pub prompt_tokens: Option<u32>,
    /// The prompt's length as the codec counted it (parts included); wins
    /// over the tokenizer's, not over the server's.
    pub codec_prompt_tokens: Option<u32>,
    /// What the response is to carry.
    pub output: OutputKind,
}

impl RequestInfo {
    /// A measured request `id` of `stage`, due at `scheduled`, with no dataset sample.
    pub fn new(id: u64, stage: usize, scheduled: Instant) -> RequestInfo {
        RequestInfo {
            id,
            stage,
            scheduled,
            measured: true,
            queue_wait: None,
            sample: None,
            session: None,
            prompt_tokens: None,
            codec_prompt_tokens: None,
            output: OutputKind::Tokens,
        }
    }
}

/// From whole nanoseconds since `origin`, so a time prints as its exact
/// decimal (2.169002, not 2.1690020000000003).
fn ms_since(origin: Instant, t: Instant) -> f64 {
    nanos_ms(t.saturating_duration_since(origin))
}

/// `d.as_nanos() as f64 / 1e6`, to the bit, without the u128 (its
/// conversion to f64 is a libcall, and a record makes one per frame).
fn nanos_ms(d: Duration) -> f64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos())) as f64
        / 1e6
}

impl Record {
    /// A measured request `id` of `stage` with no dataset sample, from its
    /// response: the shape the metric tests build records in.
    #[cfg(test)]
    pub fn from_exchange(id: u64, stage: usize, origin: Instant, scheduled: Instant, response: &Response) -> Record {
        Record::sent(&RequestInfo::new(id, stage, scheduled), origin, response)
    }

    /// A request the codec could not encode: nothing was sent.
    pub fn not_encoded(info: &RequestInfo, origin: Instant, failure: &barrage_plugin_host::PluginFailure) -> Record {
        let now = ms_since(origin, Instant::now());
        Record {
            sent_ms: now,
            end_ms: now,
            status: Status::PluginError,
            error: Some(failure.to_string()),
            ..Record::planned(info, origin)
        }
    }

    /// The fields every record of `info` has, whatever happened to it.
    fn planned(info: &RequestInfo, origin: Instant) -> Record {
        Record {
            id: info.id,
            stage: info.stage,
            session: info.session,
            sample: info.sample,
            scheduled_ms: ms_since(origin, info.scheduled),
            measured: info.measured,
            queue_wait_ms: info.queue_wait.map(|d| d.as_secs_f64() * 1000.0),
            output: info.output,
            ..Record::default()
        }
    }

    /// A request that was sent, from its response.
    pub fn sent(info: &RequestInfo, origin: Instant, response: &Response) -> Record {
        let (ex, decoded) = (&response.exchange, &response.decoded);
        let ms = |t: Instant| ms_since(origin, t);
        // At most a frame per event: one allocation each, not a doubling per few frames.
        let mut frames_ms = Vec::with_capacity(decoded.events.len());
        let mut frame_tokens = Vec::with_capacity(decoded.events.len());
        let mut last_frame = None;
        let mut first_answer = None;
        let mut reasoning_frames = 0u32;
        let mut last_reasoning_frame = None;
        let mut usage = None;
        let mut verdict = Verdict {
            output: info.output,
            ..Verdict::default()
        };
        for e in &decoded.events {
            match &e.event {
                Event::Content(d) | Event::Reasoning(d) => {
                    if matches!(e.event, Event::Reasoning(_)) {
                        if last_reasoning_frame != Some(e.frame) {
                            reasoning_frames += 1;
                            last_reasoning_frame = Some(e.frame);
                        }
                    } else if first_answer.is_none() {
                        first_answer = Some(ms(e.at));
                    }
                    // Several deltas of one frame (content and reasoning) count once.
                    if last_frame != Some(e.frame) {
                        frames_ms.push(ms(e.at));
                        frame_tokens.push(d.tokens);
                        last_frame = Some(e.frame);
                    } else if let (Some(last), Some(t)) = (frame_tokens.last_mut(), d.tokens) {
                        *last = Some(last.unwrap_or(0) + t);
                    }
                }
                Event::Usage(u) => usage = Some(*u),
                other => verdict.note(other),
            }
        }
        let (output_tokens, source) = match (
            usage.and_then(|u| u.completion_tokens),
            frame_tokens.iter().all(Option::is_some),
        ) {
            (Some(n), _) => (n, TokenSource::Usage),
            (None, true) if !frame_tokens.is_empty() => {
                (frame_tokens.iter().map(|t| t.unwrap_or(0)).sum(), TokenSource::Frames)
            }
            _ => (frames_ms.len() as u32, TokenSource::FrameCount),
        };
        let (status, error) = match &ex.ending {
            Ending::Timeout => (Status::Timeout, Some("timed out".to_string())),
            Ending::Cancelled => (Status::Cancelled, Some("cancelled by stop".to_string())),
            Ending::TransportError(e) => (Status::TransportError, Some(e.clone())),
            Ending::ClientResource(e) => (
                Status::ClientResource,
                Some(format!(
                    "{e}: the client ran out of a resource; raise the descriptor limit (ulimit -n) or lower max_connections"
                )),
            ),
            // The load engine keeps missed requests out of the records; one
            // that got here was still not sent for want of a connection.
            Ending::Missed => (
                Status::ClientResource,
                Some("not sent: no connection came free within max_send_lag_ms".to_string()),
            ),
            Ending::Refused(Refusal::Corrupt(why)) => (Status::Malformed, Some(why.clone())),
            Ending::Refused(Refusal::TooLarge(r)) => (
                Status::TooLarge,
                Some(format!(
                    "a frame of the response went over max_frame_mib ({} MiB), so the rest was not read; \
                     raise max_frame_mib if the server's frames really are that long",
                    r.limit as f64 / (1 << 20) as f64
                )),
            ),
            // A gRPC status is the server's verdict on the whole call.
            Ending::Complete if let Some(g) = ex.grpc.as_ref().filter(|g| g.code != 0) => {
                (Status::GrpcError, Some(format!("grpc:{}: {}", g.name(), g.message)))
            }
            Ending::Complete => verdict.judge(ex.status, decoded, response.malformed),
        };
        // The server's count wins; the client's tokenizer is the fallback.
        let (prompt_tokens, prompt_tokens_source) =
            match (usage.and_then(|u| u.prompt_tokens), info.codec_prompt_tokens) {
                (Some(n), _) => (Some(n), Some(TokenSource::Usage)),
                (None, Some(n)) => (Some(n), Some(TokenSource::Codec)),
                (None, None) => (info.prompt_tokens, info.prompt_tokens.map(|_| TokenSource::Tokenizer)),
            };
        // Items are counted, not tokens: no output tokens are claimed for them.
        let (output_tokens, source) = match info.output {
            OutputKind::Tokens => (output_tokens, source),
            _ => (0, TokenSource::Usage),
        };
        Record {
            sent_ms: ms(ex.sent),
            connection_wait_ms: ex.slot_wait.map(nanos_ms),
            connection_id: ex.connection.map(|c| c.id),
            connection_acquired_ms: ex.connection.map(|c| ms(c.established.max(ex.sent))),
            headers_ms: ex.headers_at.map(ms),
            first_byte_ms: ex.first_byte.map(ms),
            first_token_ms: frames_ms.first().copied(),
            first_answer_ms: first_answer,
            last_token_ms: frames_ms.last().copied(),
            end_ms: ms(ex.end),
            content_frames_ms: frames_ms,
            content_frame_tokens: frame_tokens,
            reasoning_frames,
            prompt_tokens,
            prompt_tokens_source,
            output_tokens,
            output_tokens_source: source,
            status,
            http_status: ex.status,
            http_version: ex.version.map(str::to_string),
            error,
            malformed_frames: verdict.malformed_frames,
            items: verdict.items,
            dimensions: verdict.dimensions,
            media_bytes: verdict.media_bytes,
            finish_reason: verdict.finish,
            bytes_sent: ex.bytes_sent,
            bytes_received: ex.bytes_received,
            ..Record::planned(info, origin)
        }
    }

    /// Time to first token: send → first output frame.
    pub fn ttft(&self) -> Option<f64> {
        self.first_token_ms.map(|t| t - self.sent_ms)
    }

    /// Time to first byte: send → first body byte.
    pub fn ttfb(&self) -> Option<f64> {
        self.first_byte_ms.map(|t| t - self.sent_ms)
    }

    /// Time to first answer token, for responses that reasoned first.
    pub fn ttfa(&self) -> Option<f64> {
        if self.reasoning_frames == 0 {
            return None;
        }
        self.first_answer_ms.map(|t| t - self.sent_ms)
    }

    /// Gaps between consecutive output frames.
    pub fn inter_chunk(&self) -> impl Iterator<Item = f64> + '_ {
        self.content_frames_ms.windows(2).map(|w| w[1] - w[0])
    }

    /// Tokens carried by output frame `i`: the codec's count where it gave
    /// one; otherwise the output tokens spread evenly over the frames (so a
    /// server's usage count still spreads over multi-token frames); never
    /// less than one.
    pub fn frame_tokens(&self, i: usize) -> u32 {
        if let Some(Some(n)) = self.content_frame_tokens.get(i) {
            return (*n).max(1);
        }
        let frames = self.content_frames_ms.len() as u64;
        if frames == 0 {
            return 1;
        }
        let total = u64::from(self.output_tokens);
        let i = i as u64;
        (((i + 1) * total / frames) - (i * total / frames)).max(1) as u32
    }

    /// Inter-token latency: each gap between output frames divided evenly
    /// over the tokens of the frame that ends it, as `(per-token gap, tokens)`.
    pub fn inter_token(&self) -> impl Iterator<Item = (f64, u32)> + '_ {
        self.content_frames_ms.windows(2).enumerate().map(|(i, w)| {
            let k = self.frame_tokens(i + 1);
            ((w[1] - w[0]) / f64::from(k), k)
        })
    }

    /// The largest gap between output frames.
    pub fn max_inter_chunk(&self) -> Option<f64> {
        self.inter_chunk().reduce(f64::max)
    }

    /// Time per output token after the first: (last − first output frame) / (output tokens − 1).
    pub fn tpot(&self) -> Option<f64> {
        match (self.first_token_ms, self.last_token_ms) {
            (Some(first), Some(last)) if self.output_tokens > 1 => {
                Some((last - first) / f64::from(self.output_tokens - 1))
            }
            _ => None,
        }
    }

    /// End-to-end latency: send → last output frame.
    pub fn e2e(&self) -> Option<f64> {
        self.last_token_ms.map(|t| t - self.sent_ms)
    }

    /// End-to-end latency to the end of the stream: send → stream end.
    pub fn e2e_stream(&self) -> f64 {
        self.end_ms - self.sent_ms
    }

    /// Normalized latency: (send → stream end) / output tokens.
    pub fn normalized(&self) -> Option<f64> {
        (self.output_tokens > 0).then(|| self.e2e_stream() / f64::from(self.output_tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_are_those_of_the_exact_nanoseconds() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut cases = vec![
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999_999),
            Duration::from_millis(85) + Duration::from_nanos(468_228),
            // Past 2^53 ns (104 days) the value rounds; both ways must round alike.
            Duration::from_nanos((1 << 53) + 1),
            // A century, within u64 nanoseconds (584 years, where it saturates).
            Duration::from_secs(100 * 365 * 86_400) + Duration::from_nanos(999_999_999),
        ];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(Duration::from_nanos(x >> (x % 40)));
        }
        for d in cases {
            assert_eq!(nanos_ms(d).to_bits(), (d.as_nanos() as f64 / 1e6).to_bits(), "{d:?}");
        }
    }
}
