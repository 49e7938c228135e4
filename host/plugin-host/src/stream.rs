//! A response on its way to the plugin threads: the sink the transport
//! reads a response into. A stream is cut into timestamped frames by the
//! host's framer and handed to its plugin thread in batches; any other body
//! is gathered whole and decoded once it ends.

use std::time::Instant;

use barrage_core::body::ResponseSink;
use barrage_core::framing::{DEFAULT_MAX_FRAME, FrameTooLarge, Framer, Frames, Refusal};
use barrage_core::types::{DecodeOptions, EncodedRequest, Event, ResponseHead};
use tokio::sync::oneshot;

use crate::PluginFailure;
use crate::workers::{CodecWorkers, Reply, StreamHandle, StreamOutcome, TimedEvent};

/// Frames a stream hands to its plugin thread at once. Batching on the I/O
/// task turns a response's dozens of frames into a few jobs (and
/// plugin-thread wake-ups); frames are already timestamped, so decoding
/// later changes no time.
pub const STREAM_BATCH_FRAMES: usize = 32;

/// Decodes one response with `workers` as the transport reads it.
pub struct DecodeSink<'a> {
    workers: &'a CodecWorkers,
    options: DecodeOptions,
    /// The codec asked for a stream, and how to cut it.
    stream: Option<barrage_core::framing::Framing>,
    /// Most bytes in one frame; a body gathered whole is one frame.
    max_frame: usize,
    refused: Option<Refusal>,
    body: Body<'a>,
}

enum Body<'a> {
    /// No head yet.
    Waiting,
    /// A stream being cut and handed over.
    Stream {
        framer: Framer,
        frames: Frames,
        guard: StreamGuard<'a>,
    },
    /// Anything else, gathered whole.
    Whole { head: ResponseHead, bytes: Vec<u8> },
}

impl<'a> DecodeSink<'a> {
    /// A sink for the response to `req`.
    pub fn new(workers: &'a CodecWorkers, req: &EncodedRequest, options: DecodeOptions) -> DecodeSink<'a> {
        DecodeSink::cutting(workers, req.streaming.then_some(req.framing), options)
    }

    /// A sink that decodes a successful response as a stream cut by `framing`
    /// (recorded bodies, `barrage plugin decode`).
    pub fn stream(
        workers: &'a CodecWorkers,
        framing: barrage_core::framing::Framing,
        options: DecodeOptions,
    ) -> DecodeSink<'a> {
        DecodeSink::cutting(workers, Some(framing), options)
    }

    fn cutting(
        workers: &'a CodecWorkers,
        stream: Option<barrage_core::framing::Framing>,
        options: DecodeOptions,
    ) -> DecodeSink<'a> {
        DecodeSink {
            workers,
            options,
            stream,
            max_frame: DEFAULT_MAX_FRAME,
            refused: None,
            body: Body::Waiting,
        }
    }

    /// Refuse a response with a frame of more than `bytes`.
    pub fn max_frame(mut self, bytes: usize) -> DecodeSink<'a> {
        self.max_frame = bytes;
        self
    }
}

impl<'a> ResponseSink for DecodeSink<'a> {
    type Outcome = Decoding<'a>;

    fn head(&mut self, head: ResponseHead) {
        // A stream is decoded as it arrives; anything else (an error
        // response too) once it is whole.
        self.body = match self.stream {
            Some(framing) if (200..300).contains(&head.status) => Body::Stream {
                framer: Framer::limited(framing, self.max_frame),
                frames: Frames::default(),
                guard: StreamGuard {
                    workers: self.workers,
                    state: GuardState::Unopened(head, self.options),
                },
            },
            _ => Body::Whole {
                head,
                bytes: Vec::new(),
            },
        };
    }

    fn data(&mut self, data: &[u8], at: Instant) {
        if self.refused.is_some() {
            return;
        }
        let refused = match &mut self.body {
            Body::Stream { framer, frames, .. } => framer.push(data, at, frames).err(),
            Body::Whole { bytes, .. } if bytes.len() + data.len() > self.max_frame => {
                Some(FrameTooLarge { limit: self.max_frame }.into())
            }
            Body::Whole { bytes, .. } => {
                bytes.extend_from_slice(data);
                None
            }
            Body::Waiting => None,
        };
        self.refused = refused;
    }

    fn refused(&self) -> Option<Refusal> {
        self.refused.clone()
    }

    fn read_done(&mut self) {
        if let Body::Stream { frames, guard, .. } = &mut self.body
            && frames.len() >= STREAM_BATCH_FRAMES
        {
            guard.push(std::mem::take(frames));
        }
    }

    fn end(self, at: Instant) -> Decoding<'a> {
        match self.body {
            Body::Stream {
                mut framer,
                mut frames,
                guard,
            } => {
                framer.finish(at, &mut frames);
                guard.finish(frames, at)
            }
            Body::Whole { head, bytes } => Decoding::Whole {
                reply: self.workers.decode_unary(head, bytes, self.options),
                at,
            },
            Body::Waiting => Decoding::Nothing,
        }
    }

    fn cut(self, at: Instant) -> Decoding<'a> {
        match self.body {
            // The frames cut so far are decoded; the unfinished tail is not a frame.
            Body::Stream { frames, guard, .. } => guard.finish(frames, at),
            // Part of a body is nothing a codec can read.
            Body::Whole { .. } | Body::Waiting => Decoding::Nothing,
        }
    }
}

/// A response read in full; its events to come from the plugin threads.
pub enum Decoding<'a> {
    /// A stream, to be finished on its plugin thread.
    Stream(Finishing<'a>),
    /// A whole body's events, all timed at `at`.
    Whole {
        /// The plugin thread's answer.
        reply: oneshot::Receiver<Result<Vec<Event>, PluginFailure>>,
        /// When the body ended.
        at: Instant,
    },
    /// There was no response to decode.
    Nothing,
}

impl<'a> Decoding<'a> {
    /// Wait for the plugin thread's answer.
    pub async fn outcome(self) -> StreamOutcome {
        match self {
            Decoding::Stream(f) => f.finish().await.unwrap_or_else(|_| StreamOutcome::lost()),
            Decoding::Whole { reply, at } => whole(reply.await.ok(), at),
            Decoding::Nothing => StreamOutcome::default(),
        }
    }

    /// Wait for the answer on a thread that is not a runtime's.
    pub fn blocking_outcome(self) -> StreamOutcome {
        match self {
            Decoding::Stream(f) => f.finish().blocking_recv().unwrap_or_else(|_| StreamOutcome::lost()),
            Decoding::Whole { reply, at } => whole(reply.blocking_recv().ok(), at),
            Decoding::Nothing => StreamOutcome::default(),
        }
    }

    /// For a stream: have its plugin thread call `then` with the outcome
    /// (exactly once), instead of waking a task to take it. Anything else
    /// comes back with `then`, to be awaited.
    pub fn then<F>(self, then: F) -> Result<(), (Decoding<'a>, F)>
    where
        F: FnOnce(StreamOutcome) + Send + 'static,
    {
        match self {
            Decoding::Stream(f) => {
                f.finish_then(Reply::new(then));
                Ok(())
            }
            other => Err((other, then)),
        }
    }
}

/// A stream read to its end (or cut), whose last frames and finish go to
/// its plugin thread when the caller says where the outcome goes; dropped
/// before that, the stream is cancelled.
pub struct Finishing<'a> {
    workers: &'a CodecWorkers,
    handle: StreamHandle,
    frames: Frames,
    at: Instant,
    handed_over: bool,
}

impl Finishing<'_> {
    fn finish(mut self) -> oneshot::Receiver<StreamOutcome> {
        self.handed_over = true;
        self.workers
            .finish_with(self.handle, std::mem::take(&mut self.frames), self.at)
    }

    fn finish_then(mut self, reply: Reply) {
        self.handed_over = true;
        self.workers
            .finish_then(self.handle, std::mem::take(&mut self.frames), self.at, reply);
    }
}

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            self.workers.cancel(self.handle);
        }
    }
}

/// A whole body's events, timed at its end; `None`: the plugin thread is gone.
fn whole(reply: Option<Result<Vec<Event>, PluginFailure>>, at: Instant) -> StreamOutcome {
    match reply {
        Some(Ok(events)) => StreamOutcome {
            events: events
                .into_iter()
                .map(|event| TimedEvent { at, frame: 0, event })
                .collect(),
            frames: 1,
            failure: None,
            streamed: false,
        },
        Some(Err(f)) => StreamOutcome {
            failure: Some(f),
            ..StreamOutcome::default()
        },
        None => StreamOutcome::lost(),
    }
}

/// A stream being decoded; cancelled on the plugin thread if it is dropped
/// (a timeout, a stop) before it finishes, so no instance leaks. It is
/// opened on the plugin thread with its first frames, not before.
struct StreamGuard<'a> {
    workers: &'a CodecWorkers,
    state: GuardState,
}

enum GuardState {
    Unopened(ResponseHead, DecodeOptions),
    Open(StreamHandle),
    Finished,
}

impl<'a> StreamGuard<'a> {
    fn handle(&mut self) -> Option<StreamHandle> {
        if let GuardState::Unopened(..) = self.state
            && let GuardState::Unopened(head, options) = std::mem::replace(&mut self.state, GuardState::Finished)
        {
            self.state = GuardState::Open(self.workers.open(head, options));
        }
        match self.state {
            GuardState::Open(h) => Some(h),
            _ => None,
        }
    }

    fn push(&mut self, frames: Frames) {
        if let Some(h) = self.handle() {
            self.workers.push(h, frames);
        }
    }

    fn finish(mut self, frames: Frames, end: Instant) -> Decoding<'a> {
        let handle = self.handle();
        self.state = GuardState::Finished;
        match handle {
            Some(h) => Decoding::Stream(Finishing {
                workers: self.workers,
                handle: h,
                frames,
                at: end,
                handed_over: false,
            }),
            None => Decoding::Nothing,
        }
    }
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        if let GuardState::Open(h) = self.state {
            self.workers.cancel(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use barrage_core::framing::Framing;

    use super::*;

    fn chat_workers() -> CodecWorkers {
        CodecWorkers::start(crate::workers::tests::chat_plugin(), 2).unwrap()
    }

    /// A chat stream of `n` one-word chunks, a finish and `[DONE]`.
    fn chat_stream(n: usize) -> Vec<u8> {
        let mut body = String::new();
        for i in 0..n {
            body += &format!(
                "data: {{\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" w{i}\"}},\"finish_reason\":null}}]}}\n\n"
            );
        }
        body += "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        body += "data: [DONE]\n\n";
        body.into_bytes()
    }

    fn ok_head() -> ResponseHead {
        ResponseHead {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
        }
    }

    /// Feed `body` in reads of `size` bytes, read `k` at `origin` + `k` µs.
    fn decode(workers: &CodecWorkers, body: &[u8], size: usize, origin: Instant) -> StreamOutcome {
        let mut sink = DecodeSink::stream(workers, Framing::Sse, DecodeOptions { want_text: false });
        sink.head(ok_head());
        let mut reads = 0u64;
        for piece in body.chunks(size) {
            sink.data(piece, origin + Duration::from_micros(reads));
            sink.read_done();
            reads += 1;
        }
        sink.end(origin + Duration::from_micros(reads)).blocking_outcome()
    }

    #[test]
    fn a_stream_decodes_to_the_same_events_however_its_reads_fall() {
        let workers = chat_workers();
        // More frames than one batch, so the stream goes over in several.
        let body = chat_stream(3 * STREAM_BATCH_FRAMES + 5);
        let origin = Instant::now();
        let whole = decode(&workers, &body, body.len(), origin);
        assert!(whole.failure.is_none(), "{:?}", whole.failure);
        assert_eq!(whole.frames as usize, 3 * STREAM_BATCH_FRAMES + 7);
        let content = whole
            .events
            .iter()
            .filter(|e| matches!(e.event, Event::Content(_)))
            .count();
        assert_eq!(content, 3 * STREAM_BATCH_FRAMES + 5);
        assert!(matches!(whole.events.last().map(|e| &e.event), Some(Event::Done)));
        let shape = |o: &StreamOutcome| {
            o.events
                .iter()
                .map(|e| (e.frame, e.event.to_string()))
                .collect::<Vec<_>>()
        };
        for size in [1, 7, 100, 4096] {
            let split = decode(&workers, &body, size, origin);
            assert_eq!(shape(&split), shape(&whole), "reads of {size} bytes");
            // Each event is timed by the read that completed its frame: in
            // frame order, never before the stream began, never after it ended.
            assert!(
                split
                    .events
                    .windows(2)
                    .all(|w| w[0].frame <= w[1].frame && w[0].at <= w[1].at)
            );
            let reads = body.len().div_ceil(size) as u64;
            assert!(
                split
                    .events
                    .iter()
                    .all(|e| e.at >= origin && e.at <= origin + Duration::from_micros(reads))
            );
        }
    }

    #[test]
    fn a_stream_handed_a_continuation_gives_it_what_awaiting_gives() {
        let workers = chat_workers();
        let body = chat_stream(2 * STREAM_BATCH_FRAMES + 3);
        let origin = Instant::now();
        let awaited = decode(&workers, &body, 100, origin);
        let mut sink = DecodeSink::stream(&workers, Framing::Sse, DecodeOptions { want_text: false });
        sink.head(ok_head());
        for (k, piece) in body.chunks(100).enumerate() {
            sink.data(piece, origin + Duration::from_micros(k as u64));
            sink.read_done();
        }
        let end = origin + Duration::from_micros(body.len().div_ceil(100) as u64);
        let (tx, rx) = std::sync::mpsc::channel();
        let on = std::thread::current().id();
        let handed = sink.end(end).then(move |outcome| {
            let _ = tx.send((outcome, std::thread::current().id()));
        });
        assert!(handed.is_ok(), "a stream takes a continuation");
        let (outcome, ran_on) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_ne!(ran_on, on, "called on the plugin thread");
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert_eq!(outcome.frames, awaited.frames);
        let shape = |o: &StreamOutcome| {
            o.events
                .iter()
                .map(|e| (e.at, e.frame, e.event.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(shape(&outcome), shape(&awaited));
        // Anything but a stream comes back, with its continuation, to be awaited.
        let nothing = DecodeSink::stream(&workers, Framing::Sse, DecodeOptions { want_text: false }).end(end);
        assert!(nothing.then(|_| ()).is_err());
    }

    #[test]
    fn an_error_status_is_decoded_whole_even_for_a_stream() {
        let workers = chat_workers();
        let req = EncodedRequest {
            request: barrage_core::types::WireRequest::Http(barrage_core::types::HttpRequest {
                method: "POST".into(),
                path: "/".into(),
                headers: vec![],
                body: vec![],
            }),
            streaming: true,
            framing: Framing::Sse,
            output: Default::default(),
            prompt_tokens: None,
        };
        let mut sink = DecodeSink::new(&workers, &req, DecodeOptions { want_text: false });
        sink.head(ResponseHead {
            status: 503,
            headers: vec![("content-type".into(), "application/json".into())],
        });
        let at = Instant::now();
        sink.data(br#"{"error":{"message":"over"#, at);
        sink.read_done();
        sink.data(br#"loaded","code":"503"}}"#, at);
        let outcome = sink.end(at).blocking_outcome();
        assert_eq!(outcome.frames, 1);
        assert!(
            outcome
                .events
                .iter()
                .any(|e| matches!(&e.event, Event::ServerError(s) if s.message == "overloaded")),
            "{:?}",
            outcome.events
        );
    }

    #[test]
    fn no_head_means_nothing_to_decode() {
        let workers = chat_workers();
        let sink = DecodeSink::stream(&workers, Framing::Sse, DecodeOptions { want_text: false });
        let outcome = sink.end(Instant::now()).blocking_outcome();
        assert_eq!(outcome.frames, 0);
        assert!(outcome.events.is_empty() && outcome.failure.is_none());
    }
}
