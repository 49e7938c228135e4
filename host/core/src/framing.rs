//! Cutting response bodies into frames, natively, as bytes arrive.
//!
//! The host, not the plugin, frames streams: a frame is timestamped the moment
//! it is cut, on the task that reads the socket, before any plugin sees it.
//! Reads may split a frame anywhere (even inside a `\r\n`) or carry several
//! frames at once; the framers keep the unfinished tail between calls.

use std::time::Instant;

use memchr::memchr;

/// Frames cut and timestamped by the host, in arrival order, their bytes
/// in one buffer: a response's dozens of frames are two allocations, not
/// one each made on the I/O thread and freed on a plugin thread, and the
/// buffer is the contract's frame batch as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frames {
    bytes: Vec<u8>,
    spans: Vec<FrameSpan>,
}

/// One frame of [`Frames`]: when it was cut, and where its parts lie in the
/// buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSpan {
    /// When the bytes that completed this frame were read.
    pub at: Instant,
    /// The `event` (see [`Frame::event`]), when there is one.
    pub event: Option<Span>,
    pub data: Span,
}

/// Bytes `start..start + len` of a [`Frames`] buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

/// One frame, borrowed from its [`Frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// When the bytes that completed this frame were read.
    pub at: Instant,
    /// The SSE `event:` field, when present; for a gRPC message,
    /// [`GRPC_COMPRESSED`] when its compressed flag is set (the message is
    /// passed on as it came, for the codec to refuse); for an AWS event
    /// stream, the event type.
    pub event: Option<&'a str>,
    /// The SSE data (lines joined by `\n`), or the NDJSON line, or the chunk.
    pub data: &'a [u8],
}

impl Frames {
    /// Add a frame cut at `at`.
    pub fn push(&mut self, at: Instant, event: Option<&str>, data: &[u8]) {
        let event = event.map(|e| self.keep(e.as_bytes()));
        let data = self.keep(data);
        self.spans.push(FrameSpan { at, event, data });
    }

    fn keep(&mut self, bytes: &[u8]) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        Span {
            start,
            len: bytes.len(),
        }
    }

    /// Add `other`'s frames after these.
    pub fn append(&mut self, other: Frames) {
        if self.spans.is_empty() {
            *self = other;
            return;
        }
        let offset = self.bytes.len();
        let moved = |s: Span| Span {
            start: s.start + offset,
            len: s.len,
        };
        self.bytes.extend_from_slice(&other.bytes);
        self.spans.extend(other.spans.into_iter().map(|f| FrameSpan {
            at: f.at,
            event: f.event.map(moved),
            data: moved(f.data),
        }));
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Where each frame lies, and when it was cut.
    pub fn spans(&self) -> &[FrameSpan] {
        &self.spans
    }

    /// Frame `i`.
    pub fn get(&self, i: usize) -> Option<Frame<'_>> {
        self.spans.get(i).map(|f| self.frame(f))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Frame<'_>> + '_ {
        self.spans.iter().map(|f| self.frame(f))
    }

    fn frame(&self, f: &FrameSpan) -> Frame<'_> {
        let bytes = |s: Span| &self.bytes[s.start..s.start + s.len];
        Frame {
            at: f.at,
            // Only ever set from a `&str`, so always UTF-8.
            event: f.event.map(|s| std::str::from_utf8(bytes(s)).unwrap_or_default()),
            data: bytes(f.data),
        }
    }

    /// What the frames hold on to while they wait: the buffer and the spans.
    pub fn held_bytes(&self) -> usize {
        self.bytes.len() + self.spans.len() * std::mem::size_of::<FrameSpan>()
    }

    /// The buffer, and where each frame lies in it.
    pub fn into_parts(self) -> (Vec<u8>, Vec<FrameSpan>) {
        (self.bytes, self.spans)
    }
}

/// The `event` of a gRPC message whose compressed flag is set.
pub const GRPC_COMPRESSED: &str = "grpc-compressed";

/// How a stream is cut; the contract's `framing` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each chunk as read.
    Raw,
    /// Server-sent events.
    Sse,
    /// Newline-delimited JSON.
    Ndjson,
    /// gRPC length-prefixed messages.
    GrpcMessages,
    /// AWS event-stream messages (`application/vnd.amazon.eventstream`).
    AwsEventStream,
}

impl Framing {
    /// Every framing, by the name users give it.
    pub const NAMES: &[(&str, Framing)] = &[
        ("raw", Framing::Raw),
        ("sse", Framing::Sse),
        ("ndjson", Framing::Ndjson),
        ("grpc", Framing::GrpcMessages),
        ("aws-event-stream", Framing::AwsEventStream),
    ];
}

/// A name that is no framing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown framing `{0}`; expected one of raw, sse, ndjson, grpc, aws-event-stream")]
pub struct UnknownFraming(pub String);

impl std::str::FromStr for Framing {
    type Err = UnknownFraming;

    fn from_str(s: &str) -> Result<Framing, UnknownFraming> {
        Framing::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| UnknownFraming(s.to_string()))
    }
}

/// The frame limit unless configured: generous for any real frame, small
/// enough that a few thousand streams cannot exhaust memory with it.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// A line, an SSE event's data or a gRPC message longer than the framer's
/// limit: the rest of the body is not read, so a server that never ends a
/// line cannot grow one without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a frame exceeded the limit of {limit} bytes")]
pub struct FrameTooLarge {
    /// The limit, bytes.
    pub limit: usize,
}

/// Why a framer takes no more of a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A frame over the limit.
    #[error(transparent)]
    TooLarge(#[from] FrameTooLarge),
    /// Bytes that cannot be framed (an AWS event-stream message whose CRC
    /// does not match): nothing after them can be trusted to be cut right.
    #[error("{0}")]
    Corrupt(String),
}

/// An incremental framer for one response body.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    /// Most bytes in one line, SSE event's data or gRPC message, counting
    /// the part still being read.
    limit: usize,
    /// Why the framer takes nothing more, once it refused.
    refused: Option<Refusal>,
    buf: Vec<u8>,
    /// Offset in `buf` up to which lines have already been scanned.
    scanned: usize,
    /// SSE event under construction.
    sse: SseEvent,
    /// Event-stream messages cut so far, to name a corrupt one.
    messages: u64,
}

#[derive(Debug, Default)]
struct SseEvent {
    event: Option<String>,
    /// The data lines so far, joined by `\n`; kept allocated between events.
    data: Vec<u8>,
    has_data: bool,
    comment: bool,
}

impl Framer {
    /// A framer for a body framed as `framing`.
    pub fn new(framing: Framing) -> Framer {
        Framer::limited(framing, usize::MAX)
    }

    /// A framer that refuses a frame of more than `limit` bytes.
    pub fn limited(framing: Framing, limit: usize) -> Framer {
        Framer {
            framing,
            limit,
            refused: None,
            buf: Vec::new(),
            scanned: 0,
            sse: SseEvent::default(),
            messages: 0,
        }
    }

    /// Feed bytes read at `at`; complete frames are appended to `out`. An
    /// error: a line, an SSE event's data or a gRPC message is longer than
    /// the limit; the frames before it are in `out`, and the framer takes
    /// nothing more. Where the reads fall changes neither the frames nor
    /// the refusal.
    pub fn push(&mut self, bytes: &[u8], at: Instant, out: &mut Frames) -> Result<(), Refusal> {
        if let Some(refusal) = &self.refused {
            return Err(refusal.clone());
        }
        // The frames this read completes are at most its bytes and what was
        // held back; room for them at once, rather than a buffer and a list
        // grown by doubling a dozen times a response. A chat stream's SSE
        // event is over a hundred bytes (and a big read of big frames is not
        // given room for thousands).
        out.bytes.reserve(bytes.len() + self.pending());
        out.spans.reserve((bytes.len() / 128).clamp(1, 64));
        let cut = self.cut(bytes, at, out);
        if let Err(refusal) = &cut {
            self.refused = Some(refusal.clone());
            self.buf = Vec::new();
            self.sse = SseEvent::default();
        }
        cut
    }

    fn too_large(&self) -> FrameTooLarge {
        FrameTooLarge { limit: self.limit }
    }

    /// Refuse `len` bytes of one line, event or message if over the limit.
    fn within(&self, len: usize) -> Result<(), FrameTooLarge> {
        if len > self.limit {
            Err(self.too_large())
        } else {
            Ok(())
        }
    }

    fn cut(&mut self, bytes: &[u8], at: Instant, out: &mut Frames) -> Result<(), Refusal> {
        match self.framing {
            // A chunk as read is at most one read's bytes.
            Framing::Raw => {
                if !bytes.is_empty() {
                    out.push(at, None, bytes);
                }
                Ok(())
            }
            // With nothing held back (the usual case: a read ends where a
            // frame does), lines are cut from the read itself and only an
            // unfinished tail is kept.
            Framing::Sse | Framing::Ndjson if self.buf.is_empty() => {
                let used = self.cut_lines(bytes, 0, at, out)?;
                self.within(bytes.len() - used)?;
                self.buf.extend_from_slice(&bytes[used..]);
                self.scanned = self.buf.len();
                Ok(())
            }
            Framing::Sse | Framing::Ndjson => {
                self.buf.extend_from_slice(bytes);
                Ok(self.cut_held(at, out)?)
            }
            Framing::GrpcMessages => {
                self.buf.extend_from_slice(bytes);
                Ok(self.cut_grpc(at, out)?)
            }
            Framing::AwsEventStream => {
                self.buf.extend_from_slice(bytes);
                self.cut_event_stream(at, out)
            }
        }
    }

    /// The body ended: flush a final frame that lacked its terminator.
    pub fn finish(&mut self, at: Instant, out: &mut Frames) {
        if self.refused.is_some() {
            return;
        }
        match self.framing {
            Framing::Raw | Framing::GrpcMessages | Framing::AwsEventStream => {}
            Framing::Sse | Framing::Ndjson => {
                if !self.buf.is_empty() {
                    // A last line without its newline still counts (and
                    // fits: its bytes were checked as they came).
                    self.buf.push(b'\n');
                    let _ = self.cut_held(at, out);
                }
                if self.framing == Framing::Sse {
                    self.dispatch_sse(at, out);
                }
            }
        }
    }

    /// Bytes held back waiting for the rest of a frame (an SSE event's
    /// earlier data lines too).
    pub fn pending(&self) -> usize {
        self.buf.len() + self.sse.data.len()
    }

    /// Cut the lines of the held-back buffer.
    fn cut_held(&mut self, at: Instant, out: &mut Frames) -> Result<(), FrameTooLarge> {
        // Taken out meanwhile, so the SSE state can change.
        let buf = std::mem::take(&mut self.buf);
        let used = self.cut_lines(&buf, self.scanned, at, out)?;
        self.within(buf.len() - used)?;
        self.buf = buf;
        self.buf.drain(..used);
        self.scanned = self.buf.len();
        Ok(())
    }

    /// Handle every complete line of `buf` (none ends before `search`);
    /// returns the length of those lines. Lines are read in place and copied
    /// once, into `out`. A line is measured with its `\r`, as its unfinished
    /// tail is.
    fn cut_lines(
        &mut self,
        buf: &[u8],
        mut search: usize,
        at: Instant,
        out: &mut Frames,
    ) -> Result<usize, FrameTooLarge> {
        let mut start = 0;
        while let Some(pos) = memchr(b'\n', &buf[search..]) {
            let end = search + pos;
            self.within(end - start)?;
            let mut line = &buf[start..end];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            match self.framing {
                Framing::Sse => self.sse_line(line, at, out)?,
                _ => {
                    if !line.trim_ascii().is_empty() {
                        out.push(at, None, line);
                    }
                }
            }
            start = end + 1;
            search = start;
        }
        Ok(start)
    }

    fn sse_line(&mut self, line: &[u8], at: Instant, out: &mut Frames) -> Result<(), FrameTooLarge> {
        if line.is_empty() {
            self.dispatch_sse(at, out);
            return Ok(());
        }
        if line[0] == b':' {
            self.sse.comment = true;
            return Ok(());
        }
        let (field, value) = match memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" if self.sse.has_data => {
                // An event of many short data lines is one frame.
                let d = &mut self.sse.data;
                if d.len() + 1 + value.len() > self.limit {
                    return Err(self.too_large());
                }
                d.push(b'\n');
                d.extend_from_slice(value);
            }
            b"data" => {
                self.sse.has_data = true;
                self.sse.data.extend_from_slice(value);
            }
            b"event" => self.sse.event = Some(String::from_utf8_lossy(value).into_owned()),
            // `id:` and `retry:` do not matter to a benchmark.
            _ => {}
        }
        Ok(())
    }

    fn dispatch_sse(&mut self, at: Instant, out: &mut Frames) {
        let ev = &mut self.sse;
        if ev.has_data {
            out.push(at, ev.event.as_deref(), &ev.data);
        } else if ev.comment {
            // A comment-only event is a keep-alive: passed on with empty data
            // so it is counted, never mistaken for output.
            out.push(at, None, b"");
        }
        ev.event = None;
        ev.data.clear();
        ev.has_data = false;
        ev.comment = false;
    }

    fn cut_grpc(&mut self, at: Instant, out: &mut Frames) -> Result<(), FrameTooLarge> {
        let mut start = 0;
        let mut result = Ok(());
        while self.buf.len() - start >= 5 {
            let len = u32::from_be_bytes([
                self.buf[start + 1],
                self.buf[start + 2],
                self.buf[start + 3],
                self.buf[start + 4],
            ]) as usize;
            // Refused by its declared length, before its bytes arrive.
            if let Err(e) = self.within(len) {
                result = Err(e);
                break;
            }
            if self.buf.len() - start - 5 < len {
                break;
            }
            let event = (self.buf[start] != 0).then_some(GRPC_COMPRESSED);
            out.push(at, event, &self.buf[start + 5..start + 5 + len]);
            start += 5 + len;
        }
        self.buf.drain(..start);
        result
    }
}

/// The AWS event-stream wire format: a prelude (total length, headers
/// length, the prelude's CRC32), the headers, the payload, the message's
/// CRC32. [`aws_event_stream_message`] writes it.
mod event_stream {
    /// Prelude (12 bytes) and trailing CRC (4).
    pub const OVERHEAD: usize = 16;

    /// A header value: only strings matter to framing; the rest are skipped.
    pub enum Value<'a> {
        Text(&'a [u8]),
        Other,
    }

    /// The headers of a message, or why they do not parse.
    pub fn headers(mut b: &[u8]) -> Result<Vec<(&[u8], Value<'_>)>, String> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let short = || "a header runs past the headers' length".to_string();
            let (&len, rest) = b.split_first().ok_or_else(short)?;
            let name = rest.get(..len as usize).ok_or_else(short)?;
            let rest = &rest[len as usize..];
            let (&kind, rest) = rest.split_first().ok_or_else(short)?;
            let fixed = |n: usize| rest.get(n..).ok_or_else(short);
            let (value, rest) = match kind {
                0 | 1 => (Value::Other, rest),
                2 => (Value::Other, fixed(1)?),
                3 => (Value::Other, fixed(2)?),
                4 => (Value::Other, fixed(4)?),
                5 | 8 => (Value::Other, fixed(8)?),
                9 => (Value::Other, fixed(16)?),
                6 | 7 => {
                    let n = rest.get(..2).ok_or_else(short)?;
                    let n = u16::from_be_bytes([n[0], n[1]]) as usize;
                    let value = rest.get(2..2 + n).ok_or_else(short)?;
                    let value = if kind == 7 { Value::Text(value) } else { Value::Other };
                    (value, &rest[2 + n..])
                }
                other => return Err(format!("a header has unknown value type {other}")),
            };
            if out.iter().any(|(n, _)| *n == name) {
                return Err(format!("header `{}` is repeated", String::from_utf8_lossy(name)));
            }
            out.push((name, value));
            b = rest;
        }
        Ok(out)
    }
}

impl Framer {
    fn cut_event_stream(&mut self, at: Instant, out: &mut Frames) -> Result<(), Refusal> {
        let mut start = 0;
        let mut result = Ok(());
        while self.buf.len() - start >= 12 {
            let b = &self.buf[start..];
            let total = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let headers_len = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
            let prelude_crc = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
            let n = self.messages + 1;
            if crc32fast::hash(&b[..8]) != prelude_crc {
                result = Err(Refusal::Corrupt(format!(
                    "AWS event stream: the prelude CRC of message {n} does not match its bytes"
                )));
                break;
            }
            if total < event_stream::OVERHEAD + headers_len {
                result = Err(Refusal::Corrupt(format!(
                    "AWS event stream: message {n} declares {total} bytes, too few for its {headers_len} bytes of headers"
                )));
                break;
            }
            if let Err(e) = self.within(total - event_stream::OVERHEAD) {
                result = Err(e.into());
                break;
            }
            if b.len() < total {
                break;
            }
            let message = &b[..total];
            let crc = u32::from_be_bytes(message[total - 4..].try_into().expect("4 bytes"));
            if crc32fast::hash(&message[..total - 4]) != crc {
                result = Err(Refusal::Corrupt(format!(
                    "AWS event stream: the CRC of message {n} does not match its bytes"
                )));
                break;
            }
            match event_frame(message, headers_len) {
                Ok((event, data)) => out.push(at, Some(&event), &data),
                Err(why) => {
                    result = Err(Refusal::Corrupt(format!("AWS event stream: message {n}: {why}")));
                    break;
                }
            }
            self.messages += 1;
            start += total;
        }
        self.buf.drain(..start);
        result
    }
}

/// An AWS event-stream message with string headers: what the simulator's
/// Bedrock and SageMaker streams are made of, and what the framer's tests
/// feed it.
pub fn aws_event_stream_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7); // a string
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = event_stream::OVERHEAD + h.len() + payload.len();
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&(total as u32).to_be_bytes());
    m.extend_from_slice(&(h.len() as u32).to_be_bytes());
    m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
    m.extend_from_slice(&h);
    m.extend_from_slice(payload);
    m.extend_from_slice(&crc32fast::hash(&m).to_be_bytes());
    m
}

/// A checked event-stream message as the frame the contract describes:
/// the event type (or `exception:` / `error:` and its type) and the
/// payload (an error's message).
fn event_frame(message: &[u8], headers_len: usize) -> Result<(String, Vec<u8>), String> {
    let headers = event_stream::headers(&message[12..12 + headers_len])?;
    let text = |name: &[u8]| {
        headers.iter().find_map(|(n, v)| match v {
            event_stream::Value::Text(t) if *n == name => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        })
    };
    let payload = &message[12 + headers_len..message.len() - 4];
    let kind = text(b":message-type").unwrap_or_else(|| "event".into());
    let (event, data) = match kind.as_str() {
        "exception" => (
            format!("exception:{}", text(b":exception-type").unwrap_or_default()),
            payload.to_vec(),
        ),
        "error" => (
            format!("error:{}", text(b":error-code").unwrap_or_default()),
            text(b":error-message").unwrap_or_default().into_bytes(),
        ),
        _ => (text(b":event-type").unwrap_or_default(), payload.to_vec()),
    };
    Ok((event, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `body` in reads of `piece` bytes until the framer refuses one.
    fn first_refusal(f: &mut Framer, body: &[u8], piece: usize, out: &mut Frames) -> Option<Result<(), Refusal>> {
        let now = Instant::now();
        body.chunks(piece).map(|c| f.push(c, now, out)).find(Result::is_err)
    }

    fn cut_in_pieces(framing: Framing, body: &[u8], piece: usize) -> Vec<(Option<String>, String)> {
        let mut f = Framer::new(framing);
        let mut out = Frames::default();
        let now = Instant::now();
        for chunk in body.chunks(piece) {
            f.push(chunk, now, &mut out).unwrap();
        }
        f.finish(now, &mut out);
        out.iter()
            .map(|fr| {
                (
                    fr.event.map(str::to_owned),
                    String::from_utf8(fr.data.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn sse_is_the_same_whatever_the_read_sizes() {
        let body = b"data: {\"a\":1}\r\n\r\n: ping\n\nevent: error\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let expected = vec![
            (None, "{\"a\":1}".to_string()),
            (None, String::new()),
            (Some("error".to_string()), "x\ny".to_string()),
            (None, "[DONE]".to_string()),
        ];
        for piece in [1, 2, 3, 7, 16, body.len()] {
            assert_eq!(cut_in_pieces(Framing::Sse, body, piece), expected, "piece size {piece}");
        }
    }

    #[test]
    fn sse_last_event_without_blank_line_is_kept() {
        assert_eq!(
            cut_in_pieces(Framing::Sse, b"data: end", 4),
            vec![(None, "end".to_string())]
        );
    }

    #[test]
    fn ndjson_skips_blank_lines_and_keeps_an_unterminated_last_line() {
        let body = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        for piece in [1, 5, body.len()] {
            let lines: Vec<String> = cut_in_pieces(Framing::Ndjson, body, piece)
                .into_iter()
                .map(|(_, d)| d)
                .collect();
            assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
        }
    }

    #[test]
    fn grpc_messages_are_cut_by_their_length_prefix() {
        let mut body = Vec::new();
        for (flag, msg) in [(0, &b"hello"[..]), (0, b""), (1, b"world!")] {
            body.push(flag);
            body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            body.extend_from_slice(msg);
        }
        for piece in [1, 3, body.len()] {
            let msgs = cut_in_pieces(Framing::GrpcMessages, &body, piece);
            let data: Vec<&str> = msgs.iter().map(|(_, d)| d.as_str()).collect();
            assert_eq!(data, ["hello", "", "world!"]);
            // The compressed flag is passed on, for the codec to refuse.
            let events: Vec<Option<&str>> = msgs.iter().map(|(e, _)| e.as_deref()).collect();
            assert_eq!(events, [None, None, Some(GRPC_COMPRESSED)]);
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_and_the_frames_before_it_kept() {
        let grpc = |msgs: &[&[u8]]| {
            let mut body = Vec::new();
            for m in msgs {
                body.push(0);
                body.extend_from_slice(&(m.len() as u32).to_be_bytes());
                body.extend_from_slice(m);
            }
            body
        };
        let long = "x".repeat(100);
        let cases: Vec<(Framing, Vec<u8>)> = vec![
            (Framing::Ndjson, format!("{{}}\n{long}\n{{}}\n").into_bytes()),
            // A line that never ends.
            (Framing::Ndjson, format!("{{}}\n{long}").into_bytes()),
            (Framing::Sse, format!("data: a\n\ndata: {long}\n\n").into_bytes()),
            // An event of many short data lines.
            (
                Framing::Sse,
                format!("data: a\n\n{}", "data: xxxxxxxxxx\n".repeat(10)).into_bytes(),
            ),
            (Framing::GrpcMessages, grpc(&[b"a", long.as_bytes(), b"b"])),
        ];
        for (framing, body) in cases {
            for piece in [1, 7, body.len()] {
                let mut f = Framer::limited(framing, 64);
                let mut out = Frames::default();
                let now = Instant::now();
                let refused = first_refusal(&mut f, &body, piece, &mut out);
                assert_eq!(
                    refused,
                    Some(Err(Refusal::TooLarge(FrameTooLarge { limit: 64 }))),
                    "{framing:?} in pieces of {piece}"
                );
                assert_eq!(
                    out.len(),
                    1,
                    "{framing:?} in pieces of {piece}: the frame before is kept"
                );
                // Nothing more is taken.
                assert!(f.push(b"\n\n{}\n", now, &mut out).is_err());
                f.finish(now, &mut out);
                assert_eq!(out.len(), 1);
            }
        }
        // Up to the limit is fine.
        let mut f = Framer::limited(Framing::Ndjson, 64);
        let mut out = Frames::default();
        assert!(
            f.push(format!("{}\n", "y".repeat(64)).as_bytes(), Instant::now(), &mut out)
                .is_ok()
        );
        assert_eq!(out.len(), 1);
    }

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        aws_event_stream_message(
            &[
                (":message-type", "event"),
                (":event-type", kind),
                (":content-type", "application/json"),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn aws_event_streams_are_cut_by_their_prelude_whatever_the_reads() {
        let body = [
            event("messageStart", r#"{"role":"assistant"}"#),
            event("contentBlockDelta", r#"{"delta":{"text":"Hi"}}"#),
            aws_event_stream_message(
                &[
                    (":message-type", "exception"),
                    (":exception-type", "throttlingException"),
                ],
                br#"{"message":"slow down"}"#,
            ),
            aws_event_stream_message(
                &[
                    (":message-type", "error"),
                    (":error-code", "InternalFailure"),
                    (":error-message", "boom"),
                ],
                b"",
            ),
        ]
        .concat();
        let expected = vec![
            (Some("messageStart".to_string()), r#"{"role":"assistant"}"#.to_string()),
            (
                Some("contentBlockDelta".to_string()),
                r#"{"delta":{"text":"Hi"}}"#.to_string(),
            ),
            (
                Some("exception:throttlingException".to_string()),
                r#"{"message":"slow down"}"#.to_string(),
            ),
            (Some("error:InternalFailure".to_string()), "boom".to_string()),
        ];
        for piece in [1, 5, 13, body.len()] {
            assert_eq!(
                cut_in_pieces(Framing::AwsEventStream, &body, piece),
                expected,
                "piece size {piece}"
            );
        }
    }

    /// The AWS event-stream test vectors (aws-c-event-stream's encoded
    /// cases, as botocore's `tests/unit/test_eventstream.py` carries them):
    /// every header type, a payload, an error message; and the corrupted
    /// ones, each refused.
    #[test]
    fn the_aws_test_vectors_are_cut_as_aws_decodes_them() {
        let positive: &[(&[u8], Option<&str>, &[u8])] = &[
            (b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff", Some(""), b""),
            (b"\x00\x00\x00\x17\x00\x00\x00\x07)\x86\x01X\x04byte\x02\xff\xc2\xf8i\xdc", Some(""), b""),
            (b"\x00\x00\x00\x19\x00\x00\x00\tq\x0e\x92>\x05short\x03\xff\xff\xb2|\xb6\xcc", Some(""), b""),
            (
                b"\x00\x00\x00\x1d\x00\x00\x00\r\x83\xe3\xf0\xe7\x07integer\x04\xff\xff\xff\xff\x8b\x8e\x12\xeb",
                Some(""),
                b"",
            ),
            (
                b"\x00\x00\x00\x1e\x00\x00\x00\x0e]J\xdb\x8d\x04long\x05\xff\xff\xff\xff\xff\xff\xff\xffK\xc22\xda",
                Some(""),
                b"",
            ),
            (
                b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96",
                Some(""),
                b"{'foo':'bar'}",
            ),
            (
                b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
                Some(""),
                b"{'foo':'bar'}",
            ),
            (
                b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c\x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03\x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05\x016\x06\x00\x05bytes\x017\x07\x00\x04utf8\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef\x63\x35\x36\x71",
                Some(""),
                b"",
            ),
            (
                b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e\x0d:message-type\x07\x00\x05error\x0b:error-code\x07\x00\x04code\x0e:error-message\x07\x00\x07message\x6b\x6c\xea\x3d",
                Some("error:code"),
                b"message",
            ),
        ];
        let all: Vec<u8> = positive.iter().flat_map(|(m, _, _)| m.to_vec()).collect();
        let expected: Vec<(Option<String>, Vec<u8>)> = positive
            .iter()
            .map(|(_, e, d)| (e.map(str::to_string), d.to_vec()))
            .collect();
        for piece in [1, 3, 17, all.len()] {
            let mut f = Framer::new(Framing::AwsEventStream);
            let mut out = Frames::default();
            let now = Instant::now();
            for c in all.chunks(piece) {
                f.push(c, now, &mut out).unwrap();
            }
            let got: Vec<(Option<String>, Vec<u8>)> = out
                .iter()
                .map(|fr| (fr.event.map(str::to_owned), fr.data.to_vec()))
                .collect();
            assert_eq!(got, expected, "in pieces of {piece}");
        }
        let negative: &[(&str, &[u8])] = &[
            ("length", b"\x01\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96"),
            ("payload", b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'\x8d\xc3e96"),
            (
                "headers",
                b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent+type\x07\x00\x10application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
            ),
            (
                "header length",
                b"\x00\x00\x00=\xFF\x00\x01\x02\x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json{'foo':'bar'}\x8d\x9c\x08\xb1",
            ),
            (
                "duplicate header",
                b"\x00\x00\x00\x24\x00\x00\x00\x14\x4b\xb9\x82\xd0\x04test\x04asdf\x04test\x04asdf\xf3\xf4\x75\x63",
            ),
        ];
        for (what, message) in negative {
            let mut f = Framer::new(Framing::AwsEventStream);
            let mut out = Frames::default();
            let refused = first_refusal(&mut f, message, message.len(), &mut out);
            assert!(
                matches!(refused, Some(Err(Refusal::Corrupt(_)))),
                "corrupted {what}: {refused:?}"
            );
            assert!(out.is_empty(), "corrupted {what}");
        }
    }

    #[test]
    fn an_event_stream_message_with_a_bad_crc_ends_the_body_named() {
        let good = event("contentBlockDelta", "{}");
        for (corrupt_at, what) in [(9, "the prelude CRC of message 2"), (20, "the CRC of message 2")] {
            let mut bad = good.clone();
            bad[corrupt_at] ^= 0x40;
            let body = [good.clone(), bad, good.clone()].concat();
            for piece in [1, 7, body.len()] {
                let mut f = Framer::new(Framing::AwsEventStream);
                let mut out = Frames::default();
                let refused = first_refusal(&mut f, &body, piece, &mut out);
                let Some(Err(Refusal::Corrupt(why))) = refused else {
                    panic!("{what} in pieces of {piece}: {refused:?}");
                };
                assert!(why.contains(what), "{why}");
                assert_eq!(out.len(), 1, "the message before it is kept");
            }
        }
    }

    #[test]
    fn appended_frames_keep_their_bytes_events_and_times() {
        let (t0, t1) = (Instant::now(), Instant::now() + std::time::Duration::from_millis(3));
        let owned = |f: &Frames| -> Vec<(Instant, Option<String>, Vec<u8>)> {
            f.iter()
                .map(|fr| (fr.at, fr.event.map(str::to_owned), fr.data.to_vec()))
                .collect()
        };
        let mut first = Frames::default();
        first.push(t0, Some("message_start"), b"{\"a\":1}");
        first.push(t0, None, b"");
        let mut second = Frames::default();
        second.push(t1, None, b"[DONE]");
        second.push(t1, Some(GRPC_COMPRESSED), b"\x00\x01");
        let mut all = Frames::default();
        all.append(first.clone());
        all.append(second.clone());
        let expected: Vec<_> = owned(&first).into_iter().chain(owned(&second)).collect();
        assert_eq!(owned(&all), expected);
        assert_eq!(all.len(), 4);
        assert_eq!(all.get(2).map(|f| f.data), Some(&b"[DONE]"[..]));
        assert_eq!(all.get(4), None);
        // The buffer holds each frame's event and data once, in order.
        let (bytes, spans) = all.clone().into_parts();
        assert_eq!(bytes, b"message_start{\"a\":1}[DONE]grpc-compressed\x00\x01");
        let last = spans[3];
        assert_eq!(&bytes[last.data.start..last.data.start + last.data.len], b"\x00\x01");
        assert_eq!(all.held_bytes(), bytes.len() + 4 * std::mem::size_of::<FrameSpan>());
    }

    #[test]
    fn frames_carry_the_time_of_the_read_that_completed_them() {
        let mut f = Framer::new(Framing::Sse);
        let mut out = Frames::default();
        let t0 = Instant::now();
        let t1 = t0 + std::time::Duration::from_millis(5);
        f.push(b"data: a\n", t0, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(f.pending(), 1, "the event's data waits for its blank line");
        f.push(b"\ndata: b\n\n", t1, &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|fr| fr.at == t1));
    }
}
