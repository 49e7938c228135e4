//! Golden transcripts: one response as a server sent it (status, headers,
//! the body's bytes) and the events a codec made of it. `barrage plugin
//! record` writes them from a real server (or the simulator) with the
//! codec itself; `barrage plugin test` holds a codec to them: the same
//! events whatever way the body is read.

use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use barrage_core::body::ResponseSink;
use barrage_core::framing::Framing;
use barrage_core::types::{
    DecodeOptions, EncodedRequest, Generation, HttpRequest, Prompt, RequestSpec, ResponseHead, WireRequest,
};
use barrage_plugin_host::stream::DecodeSink;
use barrage_plugin_host::{CodecWorkers, PluginFailure};

/// The transcript format's version.
pub const TRANSCRIPT_VERSION: u32 = 1;

/// One response and the events it decodes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transcript {
    /// [`TRANSCRIPT_VERSION`].
    pub barrage_transcript: u32,
    /// The codec that recorded it.
    pub codec: String,
    /// The codec's configuration when it did.
    #[serde(default)]
    pub codec_config: serde_json::Value,
    /// Whether it is a stream (cut into frames) or a body decoded whole.
    pub stream: bool,
    /// How a stream is cut: `sse`, `ndjson`, `grpc` or `raw`.
    pub framing: String,
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body's bytes, base64.
    pub body_base64: String,
    /// The events, one a line as `barrage plugin decode` prints them:
    /// `FRAME EVENT`.
    pub events: Vec<String>,
}

/// Why a transcript could not be used.
#[derive(Debug, thiserror::Error)]
#[error("transcript {path}: {message}")]
pub struct TranscriptError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Transcript {
    /// Read the transcript at `path`.
    pub fn read(path: &Path) -> Result<Transcript, TranscriptError> {
        let error = |message: String| TranscriptError {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let t: Transcript = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        if t.barrage_transcript != TRANSCRIPT_VERSION {
            return Err(error(format!(
                "version {} is not one this Barrage reads ({TRANSCRIPT_VERSION})",
                t.barrage_transcript
            )));
        }
        t.framing().map_err(error)?;
        t.body().map_err(|e| error(format!("body_base64: {e}")))?;
        Ok(t)
    }

    /// The body's bytes.
    pub fn body(&self) -> Result<Vec<u8>, base64::DecodeError> {
        BASE64.decode(&self.body_base64)
    }

    /// How a stream is cut.
    pub fn framing(&self) -> Result<Framing, String> {
        Framing::NAMES
            .iter()
            .find(|(name, _)| *name == self.framing)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("framing `{}`: use sse, ndjson, grpc or raw", self.framing))
    }

    /// A transcript of `body`, decoded to `events`.
    pub fn new(
        codec: &str,
        codec_config: serde_json::Value,
        request: &EncodedRequest,
        head: &ResponseHead,
        body: &[u8],
        events: Vec<String>,
    ) -> Transcript {
        let framing = Framing::NAMES
            .iter()
            .find(|(_, f)| *f == request.framing)
            .map_or("raw", |(name, _)| name);
        Transcript {
            barrage_transcript: TRANSCRIPT_VERSION,
            codec: codec.to_string(),
            codec_config,
            stream: request.streaming,
            framing: framing.to_string(),
            status: head.status,
            headers: head.headers.clone(),
            body_base64: BASE64.encode(body),
            events,
        }
    }
}

/// What decoding a body gave: its event lines, or the plugin's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// `FRAME EVENT` lines.
    pub lines: Vec<String>,
    /// The plugin call that failed, if one did.
    pub failure: Option<PluginFailure>,
}

/// The events of a body decoded as a run decodes a response: through the
/// host's framing and plugin threads, `body` handed over in reads cut at
/// `cuts` (offsets, ascending).
pub fn decode(
    workers: &CodecWorkers,
    stream: bool,
    framing: Framing,
    head: &ResponseHead,
    body: &[u8],
    cuts: &[usize],
) -> Decoded {
    // The sink reads only whether a response streams, and how it is cut.
    let request = EncodedRequest {
        request: WireRequest::Http(HttpRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: Vec::new(),
            body: Vec::new(),
        }),
        streaming: stream,
        framing,
        output: Default::default(),
        prompt_tokens: None,
    };
    let mut sink = DecodeSink::new(workers, &request, DecodeOptions { want_text: true });
    sink.head(head.clone());
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let cut = cut.clamp(from, body.len());
        if cut > from {
            sink.data(&body[from..cut], Instant::now());
            sink.read_done();
        }
        from = cut;
    }
    let outcome = sink.end(Instant::now()).blocking_outcome();
    Decoded {
        lines: outcome
            .events
            .iter()
            .map(|e| format!("{} {}", e.frame, e.event))
            .collect(),
        failure: outcome.failure,
    }
}

/// `decode` of a transcript.
pub fn decode_transcript(workers: &CodecWorkers, t: &Transcript, body: &[u8], cuts: &[usize]) -> Decoded {
    let head = ResponseHead {
        status: t.status,
        headers: t.headers.clone(),
    };
    // `read` checked the framing.
    let framing = t.framing().unwrap_or(Framing::Raw);
    decode(workers, t.stream, framing, &head, body, cuts)
}

/// A sink that keeps what it passes on: the head and every body byte.
struct Keeping<S> {
    inner: S,
    head: Option<ResponseHead>,
    body: Vec<u8>,
}

impl<S: ResponseSink> ResponseSink for Keeping<S> {
    type Outcome = (Option<ResponseHead>, Vec<u8>, S::Outcome);

    fn head(&mut self, head: ResponseHead) {
        self.head = Some(head.clone());
        self.inner.head(head);
    }

    fn data(&mut self, data: &[u8], at: Instant) {
        self.body.extend_from_slice(data);
        self.inner.data(data, at);
    }

    fn read_done(&mut self) {
        self.inner.read_done();
    }

    fn refused(&self) -> Option<barrage_core::framing::Refusal> {
        self.inner.refused()
    }

    fn end(self, at: Instant) -> Self::Outcome {
        (self.head, self.body, self.inner.end(at))
    }

    fn cut(self, at: Instant) -> Self::Outcome {
        (self.head, self.body, self.inner.cut(at))
    }
}

/// The request the kit asks a codec to encode: `max_tokens` of output,
/// no sampling settings, usage asked for.
pub fn request(id: u64, model: &str, prompt: Prompt, max_tokens: u32, stream: bool) -> RequestSpec {
    RequestSpec {
        id,
        model: model.into(),
        prompt,
        generation: Generation {
            max_tokens: Some(max_tokens),
            min_tokens: None,
            ignore_eos: true,
            temperature: None,
            stream,
            include_usage: true,
        },
        extra: None,
        tools: Vec::new(),
        send_time: std::time::SystemTime::now(),
    }
}

/// Send `spec` to `transport` with the codec of `workers`, and the
/// transcript of its response: the bytes as they came, the events the
/// codec made of them.
pub async fn record(
    transport: &crate::transport::Transport,
    workers: &CodecWorkers,
    spec: RequestSpec,
    codec_config: serde_json::Value,
) -> Result<Transcript, String> {
    let plugin = workers.plugin();
    let request = plugin
        .instance()
        .and_then(|mut i| i.encode(spec))
        .map_err(|e| e.to_string())?;
    let sink = Keeping {
        inner: DecodeSink::new(workers, &request, DecodeOptions { want_text: true }),
        head: None,
        body: Vec::new(),
    };
    let (_tx, mut cancel) = tokio::sync::watch::channel(false);
    let later = Instant::now() + std::time::Duration::from_secs(3600);
    let (exchange, outcome) = transport.execute(&request, 0, sink, later, &mut cancel).await;
    let Some((Some(head), body, decoding)) = outcome else {
        return Err(format!("no response: {:?}", exchange.ending));
    };
    if !matches!(exchange.ending, crate::transport::Ending::Complete) {
        return Err(format!("the response did not end whole: {:?}", exchange.ending));
    }
    let decoded = decoding.outcome().await;
    if let Some(f) = decoded.failure {
        return Err(format!("the codec failed on the response: {f}"));
    }
    let events = decoded
        .events
        .iter()
        .map(|e| format!("{} {}", e.frame, e.event))
        .collect();
    Ok(Transcript::new(
        plugin.name(),
        codec_config,
        &request,
        &head,
        &body,
        events,
    ))
}
