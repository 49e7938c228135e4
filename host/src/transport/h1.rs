//! HTTP/1.1 connections driven by the request that uses them.
//!
//! hyper's pooled client runs each connection as a task of its own and hands
//! the response body over through a channel that holds one chunk: every SSE
//! event of a stream then costs two task switches (often across threads),
//! which at thousands of streams per second is most of the client's CPU and
//! the source of its scheduling jitter. Here a connection (`hyper`'s
//! `client::conn::http1`) is owned by the exchange that is using it and is
//! polled by that exchange alongside the response, so the whole response of
//! one read is taken in one poll, and the request is written to the socket
//! by whoever polls the exchange first (the pacer, at the scheduled time).
//!
//! Used for plain `http://` targets over HTTP/1.1, the case load tests run
//! at high rates; HTTP/2 and TLS use hyper's pooled client.

use std::future::{Future, poll_fn};
use std::sync::{Mutex, TryLockError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use tower_service::Service;

use super::{ConnInfo, TimedConnector, TimedStream};

/// One HTTP/1.1 connection and its sender.
pub(super) struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    conn: http1::Connection<TimedStream, Full<Bytes>>,
    /// Set once the connection has ended (closed by the server, or failed).
    ended: bool,
    /// Its number and when it was established.
    pub info: ConnInfo,
}

impl Conn {
    /// Let the connection make progress: write the request, read the
    /// socket, hand the next body chunk over. A no-op once it has ended.
    pub fn drive(&mut self, cx: &mut Context<'_>) {
        if !self.ended && std::pin::Pin::new(&mut self.conn).poll(cx).is_ready() {
            self.ended = true;
        }
    }

    /// Wait until a request can be sent; false when the connection ended.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            self.drive(cx);
            // An ended connection still holds its request queue, so the
            // sender may look ready; nothing would ever take the request.
            if self.ended {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Send `request` and wait for the response head, driving the connection.
    pub async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, String> {
        let response = self.sender.send_request(request);
        let mut response = std::pin::pin!(response);
        poll_fn(|cx| {
            self.drive(cx);
            match response.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(r.map_err(|e| super::error_chain(&e))),
                // hyper answers a request its connection had taken; one
                // still queued when the connection ended is answered here.
                Poll::Pending if self.ended => {
                    Poll::Ready(Err("the connection closed before the response began".into()))
                }
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// Idle connections to one target.
pub(super) struct Pool {
    connector: TimedConnector,
    target: hyper::Uri,
    builder: http1::Builder,
    idle: Mutex<Vec<Conn>>,
    /// Most idle connections kept (0: no limit).
    max_idle: usize,
}

/// Why no connection could be had.
pub(super) type ConnectError = Box<dyn std::error::Error + Send + Sync>;

impl Pool {
    pub fn new(connector: TimedConnector, target: hyper::Uri, max_idle: usize) -> Pool {
        let mut builder = http1::Builder::new();
        // Long responses must not be read in small pieces.
        builder.read_buf_exact_size(Some(64 * 1024));
        Pool {
            connector,
            target,
            builder,
            idle: Mutex::new(Vec::new()),
            max_idle,
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
                Ok(mut idle) => idle.pop(),
                Err(TryLockError::Poisoned(p)) => p.into_inner().pop(),
                Err(TryLockError::WouldBlock) => None,
            };
            let Some(mut conn) = idle else { break };
            // A connection the server closed while idle is seen here, on its
            // first poll, and dropped; the request takes another.
            if conn.ready().await {
                return Ok(conn);
            }
        }
        let io = self.connector.clone().call(self.target.clone()).await?;
        let info = io.info;
        let (sender, conn) = self.builder.handshake(io).await?;
        let mut conn = Conn {
            sender,
            conn,
            ended: false,
            info,
        };
        if conn.ready().await {
            Ok(conn)
        } else {
            Err("the connection closed as soon as it opened".into())
        }
    }

    /// Keep `conn` for the next request; only a connection whose exchange
    /// was read to its end comes back.
    pub fn give_back(&self, conn: Conn) {
        if conn.ended || conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if self.max_idle == 0 || idle.len() < self.max_idle {
            idle.push(conn);
        }
    }
}
