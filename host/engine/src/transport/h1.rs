//! HTTP/1.1 over plain TCP, read straight into the framer.
//!
//! hyper decodes a chunked body one HTTP chunk at a time and hands each
//! chunk, as its own `Bytes`, through a channel from the connection to the
//! body. A streamed LLM response is one chunk per token, so at thousands of
//! streams per second that hand-over (buffer splits, reference counts,
//! wakers) cost more of the client than framing and timing the stream did
//! (`perf`, see docs/load.md). Here the exchange owns its connection: the
//! request is written by whoever polls it first (the pacer, at the
//! scheduled time), each read lands in one buffer, is stamped once, and the
//! body decoder passes slices of that buffer to the framer, which copies
//! only a frame's data.
//!
//! Used for plain `http://` targets over HTTP/1.1, the case load tests run
//! at high rates; HTTP/2 and TLS use hyper's pooled client. The response
//! side follows RFC 9112: interim 1xx responses are skipped; a body is
//! delimited by `Transfer-Encoding: chunked`, `Content-Length`, or the end
//! of the connection; a connection is reused only after an HTTP/1.1 response
//! read exactly to its end without `Connection: close`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Mutex, TryLockError};
use std::task::Poll;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tower_service::Service;

use super::{ConnInfo, TimedConnector};

/// Read buffer of a connection: long responses are read in large pieces.
const READ_BUF: usize = 64 * 1024;
/// Most header lines a response head may have.
const MAX_HEADERS: usize = 128;

/// One HTTP/1.1 connection.
pub(super) struct Conn {
    io: TcpStream,
    /// Bytes `start..end` have been read and not consumed yet.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Responses read on it so far: a request that fails on a connection
    /// that has served one before may have met the server closing it as
    /// idle, and is sent once more on a new one.
    served: u32,
    /// Its number and when it was established.
    pub info: ConnInfo,
    /// Its place under `max_connections`, given back when it closes.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A response head.
pub(crate) struct Head {
    /// Status code.
    pub status: u16,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: &'static str,
    /// Header names in lower case, values that are text.
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub body: BodyDecoder,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
}

/// What reading the body gave.
pub(super) enum Read {
    /// Body data was taken; more follows.
    More,
    /// The body ended.
    End,
}

impl Conn {
    /// Whether it has served a response before.
    pub fn reused(&self) -> bool {
        self.served > 0
    }

    /// Write all of `bytes`. On the pacer's first poll this is normally one
    /// `write` call that completes at once.
    pub async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut done = 0;
        poll_fn(|cx| {
            while done < bytes.len() {
                match Pin::new(&mut self.io).poll_write(cx, &bytes[done..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => done += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Read more into the buffer; returns when it was read and how much
    /// (0: the peer closed the connection).
    async fn fill(&mut self) -> std::io::Result<(usize, Instant)> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < READ_BUF / 4 {
            // Little room left: move the unread tail to the front rather
            // than read in small pieces.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        let n = poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut self.buf[end..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
        self.end += n;
        Ok((n, Instant::now()))
    }

    /// Read the response head (after any interim 1xx responses) to a
    /// request made with `method`; returns it and when the read that
    /// completed it returned.
    pub async fn read_head(&mut self, method: &str) -> Result<(Head, Instant), HeadError> {
        let mut received = false;
        let mut at = Instant::now();
        loop {
            if self.start < self.end {
                received = true;
                match parse_head(&self.buf[self.start..self.end], method) {
                    Ok(Parsed::Partial) if self.end - self.start == self.buf.len() => {
                        return Err(HeadError::new(
                            received,
                            format!("the response head is larger than {} KiB", READ_BUF / 1024),
                        ));
                    }
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Interim(n)) => {
                        self.start += n;
                        continue;
                    }
                    Ok(Parsed::Head(head, n)) => {
                        self.start += n;
                        return Ok((head, at));
                    }
                    Err(e) => return Err(HeadError::new(received, e)),
                }
            }
            match self.fill().await {
                Ok((0, _)) => {
                    let message = if received {
                        "the connection closed in the middle of the response head"
                    } else {
                        "the connection closed before the response began"
                    };
                    return Err(HeadError::new(received, message.into()));
                }
                Ok((_, read_at)) => at = read_at,
                Err(e) => return Err(HeadError::new(received, format!("reading the response: {e}"))),
            }
        }
    }

    /// Read body bytes: wait for data (unless some is already buffered),
    /// then give `sink` every piece of body data now in the buffer, with
    /// the time it was read.
    pub async fn read_body(
        &mut self,
        body: &mut BodyDecoder,
        at: &mut Instant,
        mut sink: impl FnMut(&[u8], Instant),
    ) -> Result<Read, String> {
        if self.start == self.end && !body.is_done() {
            match self.fill().await {
                Ok((0, _)) => {
                    return match body {
                        BodyDecoder::UntilClose => Ok(Read::End),
                        _ => Err("the connection closed before the response ended".into()),
                    };
                }
                Ok((_, read_at)) => *at = read_at,
                Err(e) => return Err(format!("reading the response: {e}")),
            }
        }
        let used = body.decode(&self.buf[self.start..self.end], |data| sink(data, *at))?;
        self.start += used;
        Ok(if body.is_done() { Read::End } else { Read::More })
    }

    /// Count the response read to its end on this connection; true when
    /// the connection can be reused (nothing unexpected left in it).
    pub fn finished(&mut self, keep_alive: bool) -> bool {
        self.served += 1;
        keep_alive && self.start == self.end
    }

    /// Whether the peer has closed (or written to) the connection while it
    /// was idle; such a connection is not used again. At most one
    /// non-blocking read, none when the reactor knows there is nothing.
    fn idle_and_open(&mut self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Why a response head could not be had.
pub(super) struct HeadError {
    /// No byte of a response had arrived.
    pub nothing_received: bool,
    /// What went wrong.
    pub message: String,
}

impl HeadError {
    fn new(received: bool, message: String) -> HeadError {
        HeadError {
            nothing_received: !received,
            message,
        }
    }
}

/// What the bytes at the start of a response hold.
pub(crate) enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A whole interim (1xx) response of this many bytes, to skip.
    Interim(usize),
    /// A final response head of this many bytes.
    Head(Head, usize),
}

pub(crate) fn parse_head(bytes: &[u8], method: &str) -> Result<Parsed, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let n = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("the response has more than {MAX_HEADERS} header lines"));
        }
        Err(e) => return Err(format!("not an HTTP/1.x response ({e})")),
    };
    // Complete implies both are set.
    let status = response.code.unwrap_or_default();
    let minor = response.version.unwrap_or_default();
    if status == 101 {
        return Err("the server switched protocols (101), which a benchmark request never asks for".into());
    }
    if (100..200).contains(&status) {
        return Ok(Parsed::Interim(n));
    }
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let mut close = minor == 0;
    let mut out = Vec::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value).ok();
        match name.as_str() {
            "transfer-encoding" => {
                // The last coding decides; a body not ending in chunked
                // runs to the end of the connection.
                let last = value.and_then(|v| v.rsplit(',').next()).map(str::trim);
                chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")));
            }
            "content-length" => {
                let v = value
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| format!("invalid content-length `{}`", String::from_utf8_lossy(h.value)))?;
                if length.is_some_and(|l| l != v) {
                    return Err("the response has two different content-length headers".into());
                }
                length = Some(v);
            }
            "connection" => {
                let tokens = value.unwrap_or_default().split(',').map(str::trim);
                for t in tokens {
                    if t.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if t.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                        close = false;
                    }
                }
            }
            _ => {}
        }
        if let Some(v) = value {
            out.push((name, v.to_string()));
        }
    }
    let body = if method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 {
        BodyDecoder::Length(0)
    } else {
        match (chunked, length) {
            (Some(true), _) => CHUNKED,
            (Some(false), _) | (None, None) => BodyDecoder::UntilClose,
            (None, Some(l)) => BodyDecoder::Length(l),
        }
    };
    let keep_alive = !close && !matches!(body, BodyDecoder::UntilClose);
    Ok(Parsed::Head(
        Head {
            status,
            version: if minor == 0 { "HTTP/1.0" } else { "HTTP/1.1" },
            headers: out,
            body,
            keep_alive,
        },
        n,
    ))
}

/// How a response body is delimited, and how far it has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyDecoder {
    /// This many bytes are still to come.
    Length(u64),
    /// Chunked transfer coding, in this state.
    Chunked(Chunk),
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A chunked decoder at the start of a body.
const CHUNKED: BodyDecoder = BodyDecoder::Chunked(NEXT_CHUNK);

/// At the start of a chunk-size line.
const NEXT_CHUNK: Chunk = Chunk::Size {
    value: 0,
    digits: 0,
    ext: false,
};

/// Where a chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// In a chunk-size line: the size so far, its digit count, and whether
    /// an extension (`;…`) or whitespace after the size is being skipped.
    Size {
        value: u64,
        digits: u8,
        ext: bool,
    },
    /// Saw the size line's `\r`.
    SizeLf {
        value: u64,
        digits: u8,
    },
    /// Chunk data still to come.
    Data(u64),
    /// After a chunk's data: its `\r\n`.
    DataCr,
    DataLf,
    /// In the trailer section (after the last chunk); `empty`: the current
    /// line has no content so far.
    Trailer {
        empty: bool,
    },
    /// The body ended.
    Done,
}

impl BodyDecoder {
    pub fn is_done(&self) -> bool {
        matches!(self, BodyDecoder::Length(0) | BodyDecoder::Chunked(Chunk::Done))
    }

    /// Decode `input`, handing each piece of body data to `data`; returns
    /// how many bytes of `input` were used (all of them, unless the body
    /// ended before its end).
    pub fn decode(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, String> {
        match self {
            BodyDecoder::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                if n > 0 {
                    data(&input[..n]);
                }
                *left -= n as u64;
                Ok(n)
            }
            BodyDecoder::UntilClose => {
                if !input.is_empty() {
                    data(input);
                }
                Ok(input.len())
            }
            BodyDecoder::Chunked(state) => decode_chunked(state, input, data),
        }
    }
}

fn decode_chunked(state: &mut Chunk, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, String> {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        *state = match *state {
            Chunk::Data(left) => {
                let n = left.min((input.len() - i) as u64) as usize;
                data(&input[i..i + n]);
                i += n;
                *state = if left == n as u64 {
                    Chunk::DataCr
                } else {
                    Chunk::Data(left - n as u64)
                };
                continue;
            }
            Chunk::Size { value, digits, ext } => match b {
                b'\r' => Chunk::SizeLf { value, digits },
                b'\n' => end_of_size(value, digits)?,
                _ if ext => Chunk::Size { value, digits, ext },
                b';' | b' ' | b'\t' => Chunk::Size {
                    value,
                    digits,
                    ext: true,
                },
                _ => {
                    let d = (b as char)
                        .to_digit(16)
                        .ok_or_else(|| format!("invalid chunk size: byte {b:#04x} in the size line"))?;
                    if digits >= 15 {
                        return Err("invalid chunk size: more than 15 hex digits".into());
                    }
                    Chunk::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                        ext,
                    }
                }
            },
            Chunk::SizeLf { value, digits } => match b {
                b'\n' => end_of_size(value, digits)?,
                _ => return Err("invalid chunk size line: `\\r` without `\\n`".into()),
            },
            Chunk::DataCr => match b {
                b'\r' => Chunk::DataLf,
                b'\n' => NEXT_CHUNK,
                _ => return Err("chunk data longer than its declared size".into()),
            },
            Chunk::DataLf => match b {
                b'\n' => NEXT_CHUNK,
                _ => return Err("chunk data longer than its declared size".into()),
            },
            Chunk::Trailer { empty } => match b {
                b'\n' if empty => Chunk::Done,
                b'\n' => Chunk::Trailer { empty: true },
                b'\r' => Chunk::Trailer { empty },
                _ => Chunk::Trailer { empty: false },
            },
            Chunk::Done => return Ok(i),
        };
        i += 1;
    }
    Ok(i)
}

/// The state after a chunk-size line with `value` (`digits` of them).
fn end_of_size(value: u64, digits: u8) -> Result<Chunk, String> {
    match (digits, value) {
        (0, _) => Err("invalid chunk size: the size line has no digits".into()),
        (_, 0) => Ok(Chunk::Trailer { empty: true }),
        (_, v) => Ok(Chunk::Data(v)),
    }
}

/// How long a connection may stay idle in the pool before it is closed, as
/// hyper's pool does for the other transports. Without it a moment of
/// high concurrency left its connections open for the rest of the run: a
/// soak at 1,000 req/s went from 54 to 160 descriptors in 25 minutes.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Idle connections to one target, the most recently used last, each with
/// when it fell idle.
pub(super) struct Pool {
    connector: TimedConnector,
    target: hyper::Uri,
    idle: Mutex<VecDeque<(Conn, Instant)>>,
    /// Most idle connections kept (0: no limit).
    max_idle: usize,
    /// [`IDLE_TIMEOUT`], shorter in tests.
    idle_timeout: std::time::Duration,
}

/// Why no connection could be had.
pub(super) type ConnectError = Box<dyn std::error::Error + Send + Sync>;

impl Pool {
    pub fn new(connector: TimedConnector, target: hyper::Uri, max_idle: usize) -> Pool {
        Pool {
            connector,
            target,
            idle: Mutex::new(VecDeque::new()),
            max_idle,
            idle_timeout: IDLE_TIMEOUT,
        }
    }

    /// The most recently used idle connection that is still open, else a
    /// new one (also when the idle list is busy at that instant).
    pub async fn checkout(&self) -> Result<Conn, ConnectError> {
        loop {
            // Never waits for the lock: a checkout runs on the pacer, and a
            // worker preempted while giving a connection back has held it
            // for milliseconds; a new connection costs far less.
            let idle = match self.idle.try_lock() {
                Ok(mut idle) => idle.pop_back(),
                Err(TryLockError::Poisoned(p)) => p.into_inner().pop_back(),
                // At the connection cap a new connection would wait for one
                // to close, and the idle ones never do: wait for the lock.
                Err(TryLockError::WouldBlock) if self.connector.at_cap() => {
                    self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop_back()
                }
                Err(TryLockError::WouldBlock) => None,
            };
            let Some((mut conn, since)) = idle else { break };
            // One idle past its timeout is closed, not used; the older ones
            // under it follow on the next turns.
            if since.elapsed() <= self.idle_timeout && conn.idle_and_open() {
                return Ok(conn);
            }
        }
        self.connect().await
    }

    /// A new connection.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        let stream = self.connector.clone().call(self.target.clone()).await?;
        let io = match stream.inner {
            hyper_rustls::MaybeHttpsStream::Http(io) => io.into_inner(),
            hyper_rustls::MaybeHttpsStream::Https(_) => return Err("a TLS connection for a plain-HTTP target".into()),
        };
        Ok(Conn {
            io,
            buf: vec![0; READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            served: 0,
            info: stream.info,
            _permit: stream._permit,
        })
    }

    /// Close idle connections after `timeout` instead of [`IDLE_TIMEOUT`].
    #[cfg(test)]
    pub fn set_idle_timeout(&mut self, timeout: std::time::Duration) {
        self.idle_timeout = timeout;
    }

    /// Keep `conn` for the next request, and close those idle past [`IDLE_TIMEOUT`].
    pub fn give_back(&self, conn: Conn) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if self.max_idle == 0 || idle.len() < self.max_idle {
            idle.push_back((conn, now));
        }
        // The least recently used come first.
        while idle
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) > self.idle_timeout)
        {
            idle.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes(), "POST") {
            Ok(Parsed::Head(h, n)) => {
                assert_eq!(n, text.len());
                h
            }
            Ok(_) => panic!("not a whole head: {text:?}"),
            Err(e) => panic!("{e}: {text:?}"),
        }
    }

    /// Decode `body` fed in pieces of `step` bytes; the data and whether it ended.
    fn decode_in_steps(mut dec: BodyDecoder, body: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), String> {
        let mut out = Vec::new();
        let mut used_total = 0;
        let mut pending: Vec<u8> = Vec::new();
        for piece in body.chunks(step) {
            pending.extend_from_slice(piece);
            let used = dec.decode(&pending, |d| out.extend_from_slice(d))?;
            used_total += used;
            pending.drain(..used);
            if dec.is_done() {
                break;
            }
        }
        Ok((out, dec.is_done(), used_total))
    }

    fn chunked() -> BodyDecoder {
        CHUNKED
    }

    #[test]
    fn heads_give_status_headers_and_body_delimiting() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((h.status, h.version, h.keep_alive), (200, "HTTP/1.1", true));
        assert_eq!(h.headers[0], ("content-type".into(), "text/event-stream".into()));
        assert!(matches!(h.body, BodyDecoder::Chunked(_)));

        let h = head("HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\nconnection: close\r\n\r\n");
        assert_eq!((h.status, h.keep_alive, h.body), (404, false, BodyDecoder::Length(12)));
        // No length: to the end of the connection, which then cannot be reused.
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.keep_alive, h.body), (false, BodyDecoder::UntilClose));
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n");
        assert_eq!((h.version, h.keep_alive), ("HTTP/1.0", false));
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        // Chunked wins over a length; a last coding other than chunked runs to close.
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(matches!(h.body, BodyDecoder::Chunked(_)));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!(h.body, BodyDecoder::UntilClose);
        let h = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.body, h.keep_alive), (BodyDecoder::Length(0), true));
    }

    #[test]
    fn interim_responses_are_skipped_and_partial_heads_wait() {
        let text = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert!(matches!(parse_head(text, "POST"), Ok(Parsed::Interim(25))));
        assert!(matches!(parse_head(&text[25..], "POST"), Ok(Parsed::Partial)));
        assert!(matches!(parse_head(b"HTTP/1.1 20", "POST"), Ok(Parsed::Partial)));
    }

    #[test]
    fn bad_heads_are_named() {
        let err = |t: &str| match parse_head(t.as_bytes(), "POST") {
            Err(e) => e,
            Ok(_) => panic!("accepted {t:?}"),
        };
        assert!(err("SSH-2.0-OpenSSH_9.6\r\n").starts_with("not an HTTP/1.x response"));
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n"),
            "invalid content-length `ten`"
        );
        assert_eq!(
            err("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            "the response has two different content-length headers"
        );
        assert!(err("HTTP/1.1 101 Switching Protocols\r\n\r\n").contains("101"));
        let many = format!("HTTP/1.1 200 OK\r\n{}\r\n", "a: b\r\n".repeat(MAX_HEADERS + 1));
        assert_eq!(
            err(&many),
            format!("the response has more than {MAX_HEADERS} header lines")
        );
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in 1..=body.len() {
            let (data, done, used) = decode_in_steps(chunked(), body, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert!(done);
            // The next response's bytes are left alone.
            assert_eq!(used, body.len() - 4, "step {step}");
        }
        // Bare `\n` line ends are taken too.
        let (data, done, _) = decode_in_steps(chunked(), b"3\nabc\n0\n\n", 64).unwrap();
        assert_eq!((data.as_slice(), done), (&b"abc"[..], true));
        // Cut short: not done.
        let (data, done, _) = decode_in_steps(chunked(), b"5\r\nhel", 64).unwrap();
        assert_eq!((data.as_slice(), done), (&b"hel"[..], false));
    }

    #[test]
    fn bad_chunks_are_refused() {
        let err = |b: &[u8]| decode_in_steps(chunked(), b, 64).unwrap_err();
        assert_eq!(err(b"zz\r\n"), "invalid chunk size: byte 0x7a in the size line");
        assert_eq!(err(b"\r\n"), "invalid chunk size: the size line has no digits");
        assert_eq!(err(b"3\r\nabcd\r\n"), "chunk data longer than its declared size");
        assert_eq!(err(b"3\rx"), "invalid chunk size line: `\\r` without `\\n`");
        assert_eq!(
            err(b"1000000000000000\r\n"),
            "invalid chunk size: more than 15 hex digits"
        );
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        let (data, done, used) = decode_in_steps(BodyDecoder::Length(5), b"helloEXTRA", 3).unwrap();
        assert_eq!((data.as_slice(), done, used), (&b"hello"[..], true, 5));
        let (data, done, _) = decode_in_steps(BodyDecoder::UntilClose, b"all of it", 4).unwrap();
        assert_eq!((data.as_slice(), done), (&b"all of it"[..], false));
    }
}
