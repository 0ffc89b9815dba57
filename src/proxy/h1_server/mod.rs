//! The downstream side of HTTP/1.1 on strait's own codec (`crate::http1`,
//! issue #15). The connection's task reads a request head, hands the
//! request to `handler::handle` with a body that reads from the connection
//! itself, and writes the response head and body straight into the socket:
//! no dispatcher, no channel per body, no header map built twice, and no
//! buffer held while the connection waits for its next request.
//!
//! The codec refuses what Envoy's codec refuses (`http1::Refusal`: 400, 414,
//! 431, 501), logs it with flag DPE and closes the connection. Connections
//! this server does not speak go on with the bytes read so far replayed
//! ([`handoff`]): the HTTP/2 prior-knowledge preface (h2c) to
//! `proxy::h2_server`, and a request asking for an upgrade (WebSocket) or
//! `CONNECT` to hyper.

mod handoff;
mod request_body;
mod response;

pub(super) use response::date;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::Method;

use super::exchange::RequestParts;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::Shared;
use super::body;
use super::handler::{self, ConnInfo};
use super::limits::{self, ConnState};
use crate::http1::chunked::Decoder;
use crate::http1::head::RequestReader;
use crate::http1::{self as codec, Refusal, RequestHead};
use request_body::{RequestBody, Slot};

/// Bytes read at a time; a request head usually fits in one read.
const READ_SIZE: usize = 8 * 1024;

/// The HTTP/2 connection preface's first line (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// The read side of a connection: the socket's read half and what was read
/// from it and not yet consumed.
pub(super) struct Reader {
    io: OwnedReadHalf,
    buf: BytesMut,
    state: Arc<ConnState>,
}

impl Reader {
    /// Read more bytes into the buffer.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(READ_SIZE);
        }
        let r = tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut self.io), cx, &mut self.buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    async fn fill(&mut self) -> std::io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// How a connection's time on this server ends.
enum Ended {
    Closed,
    /// hyper serves the rest: the stream and the bytes already read from it.
    HandOff(TcpStream, Bytes),
    /// The HTTP/2 preface: `h2_server` serves the rest, likewise.
    H2(TcpStream, Bytes),
}

/// Serve HTTP/1.1 on an accepted TCP connection until it ends (in the
/// connection's own task); `alive` is its count in `Shared::connections`.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    conn: ConnInfo,
    stop: watch::Receiver<bool>,
    alive: Arc<()>,
) {
    let watchdog = limits::Watchdog::new(&shared.limits, conn.state.clone());
    let stats = shared.downstream.clone();
    stats.cx_active.inc();
    let connection = Connection::new(&shared, stream, &conn);
    let ended = tokio::select! {
        e = connection.run(stop.clone()) => e,
        why = watchdog.expired() => {
            tracing::debug!(remote = %conn.remote, reason = ?why, "closing downstream connection");
            match why {
                limits::Expired::Idle => stats.cx_idle_timeout.inc(),
                limits::Expired::NoRequest => stats.rq_header_timeout.inc(),
                limits::Expired::StreamsIdle => stats.rq_idle_timeout.inc(),
            };
            Ended::Closed
        }
    };
    stats.cx_active.dec();
    match ended {
        Ended::Closed => {}
        Ended::HandOff(stream, read) => {
            let io = handoff::Replay::new(stream, read);
            // Boxed: hyper's connection state is no part of this task's size.
            Box::pin(super::serve_http(shared, builder, io, conn, stop, alive)).await;
        }
        Ended::H2(stream, read) => {
            let io = handoff::Replay::new(stream, read);
            Box::pin(super::h2_server::serve(shared, io, conn, stop, alive)).await;
        }
    }
}

/// One connection's state between requests.
struct Connection<'a> {
    shared: &'a Arc<Shared>,
    /// The connection as its requests see it (heads bounded by the codec).
    conn: ConnInfo,
    /// `None` while a request body holds it.
    reader: Option<Reader>,
    writer: OwnedWriteHalf,
    out: BytesMut,
    heads: RequestReader,
    limits: codec::HeadLimits,
    /// Where request bodies give the read side back (one per connection).
    slot: Arc<Slot>,
    accepted_at: SystemTime,
}

/// What waiting for the next request found (matched at once: boxing the
/// head would cost an allocation per request).
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    Closed,
    Refused(Refusal),
    HandOff,
}

impl<'a> Connection<'a> {
    fn new(shared: &'a Arc<Shared>, stream: TcpStream, conn: &'a ConnInfo) -> Connection<'a> {
        let (io, writer) = stream.into_split();
        let conn = ConnInfo {
            head_checked: true,
            ..conn.clone()
        };
        Connection {
            shared,
            reader: Some(Reader {
                io,
                buf: BytesMut::new(),
                state: conn.state.clone(),
            }),
            writer,
            out: BytesMut::new(),
            heads: RequestReader::default(),
            limits: codec::HeadLimits {
                max_head_bytes: shared.limits.max_request_headers_kb.saturating_mul(1024),
                max_headers: shared.limits.max_request_headers,
            },
            slot: Arc::new(Slot::default()),
            conn,
            accepted_at: SystemTime::now(),
        }
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Ended {
        let mut first = true;
        loop {
            let head = match self.next_head(first, &mut stop).await {
                Next::Head(h) => h,
                Next::Closed => return Ended::Closed,
                Next::Refused(r) => {
                    self.refuse(r).await;
                    return Ended::Closed;
                }
                Next::HandOff => return self.hand_off(None),
            };
            first = false;
            if head.upgrade || head.method() == Method::CONNECT {
                return self.hand_off(Some(&head));
            }
            // Boxed: a request's state (its head, header map, response
            // writer) is no part of an idle connection's task.
            if !Box::pin(self.exchange(head, &stop)).await {
                return Ended::Closed;
            }
        }
    }

    /// Read until a request head is complete. No buffer is held while the
    /// connection waits for the first byte of a request.
    async fn next_head(&mut self, first: bool, stop: &mut watch::Receiver<bool>) -> Next {
        let Some(r) = self.reader.as_mut() else {
            return Next::Closed;
        };
        loop {
            if first && !r.buf.is_empty() && is_h2_preface(&r.buf) {
                if r.buf.len() >= H2_PREFACE.len() {
                    return Next::HandOff;
                }
            } else {
                match self.heads.read(&mut r.buf, &self.limits) {
                    Ok(Some(head)) => {
                        r.state.head_done();
                        return Next::Head(head);
                    }
                    Ok(None) => {}
                    Err(refusal) => {
                        r.state.head_done();
                        return Next::Refused(refusal);
                    }
                }
            }
            if r.buf.is_empty() {
                // Idle: release the buffers and wait for the socket (or the
                // drain: an idle connection closes at once).
                r.buf = BytesMut::new();
                self.out = BytesMut::new();
                if *stop.borrow() {
                    return Next::Closed;
                }
                tokio::select! {
                    biased;
                    _ = stop.changed() => return Next::Closed,
                    ready = r.io.readable() => if ready.is_err() {
                        return Next::Closed;
                    },
                }
            } else {
                // The header timeout runs from a head's first byte.
                r.state.head_started();
            }
            match r.fill().await {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Give the connection to hyper, replaying what was read (`head`: the
    /// request head already taken off the buffer).
    fn hand_off(mut self, head: Option<&RequestHead>) -> Ended {
        let Some(reader) = self.reader.take() else {
            return Ended::Closed;
        };
        let mut read = BytesMut::new();
        if let Some(h) = head {
            read.extend_from_slice(h.as_bytes());
        }
        read.extend_from_slice(&reader.buf);
        match reader.io.reunite(self.writer) {
            // No head: the HTTP/2 preface.
            Ok(stream) if head.is_none() => Ended::H2(stream, read.freeze()),
            Ok(stream) => Ended::HandOff(stream, read.freeze()),
            Err(_) => Ended::Closed,
        }
    }

    /// Answer a refused head as Envoy's codec does (status, connection
    /// closed), logged with flag DPE.
    async fn refuse(&mut self, r: Refusal) {
        super::codec_error::log_refusal(
            self.shared,
            self.conn.local,
            self.conn.remote,
            self.accepted_at,
            r.status(),
            r.details(),
        );
        response::refusal(&mut self.out, r.status());
        let _ = self.flush().await;
    }

    /// One request and its response; whether the connection carries on.
    async fn exchange(&mut self, mut head: RequestHead, stop: &watch::Receiver<bool>) -> bool {
        let body = match (head.body, self.reader.take()) {
            (codec::Framing::Length(n), Some(reader)) if n > 0 => {
                RequestBody::length(reader, n, self.slot.clone())
            }
            (codec::Framing::Chunked, Some(reader)) => {
                RequestBody::chunked(reader, Decoder::new(self.limits), self.slot.clone())
            }
            (_, reader) => {
                self.reader = reader;
                return self.respond(&mut head, body::empty(), stop).await;
            }
        };
        // RFC 9110 §10.1.1: never to an HTTP/1.0 client.
        let body = if head.expect_continue && head.version == codec::Version::Http11 {
            body.expect_continue()
        } else {
            body
        };
        self.respond(&mut head, body::boxed(body), stop).await
    }

    /// Hand the request to the request path and write its response.
    async fn respond(
        &mut self,
        head: &mut RequestHead,
        body: body::Body,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let version = match head.version {
            codec::Version::Http10 => http::Version::HTTP_10,
            codec::Version::Http11 => http::Version::HTTP_11,
        };
        let parts = RequestParts {
            method: head.method().clone(),
            uri: head.uri().clone(),
            version,
            headers: head.take_header_list(),
            extensions: http::Extensions::new(),
        };
        let request = response::RequestFacts {
            version: head.version,
            head: head.method() == Method::HEAD,
            keep_alive: head.keep_alive,
        };
        // Part of the exchange's future, which `run` boxes: the request
        // path's state is not part of an idle connection's task.
        let handled = std::pin::pin!(handler::handle(
            self.shared.clone(),
            self.conn.clone(),
            parts,
            body,
        ));
        let resp = tokio::select! {
            r = handled => r,
            // The request is dropped: nobody is there to answer.
            () = client_gone(&mut self.reader) => return false,
        };
        let draining = *stop.borrow();
        let keep = response::write(self, resp, &request, draining).await;
        if self.reader.is_none() {
            // The body gave the read side back: carry on only if it was
            // read to its end (what follows is then the next request).
            match self.slot.take() {
                Some((reader, true)) => self.reader = Some(reader),
                _ => return false,
            }
        }
        keep && !*stop.borrow()
    }

    /// Write what is buffered to the client.
    async fn flush(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.writer.write_all(&self.out).await;
        self.out.clear();
        self.conn.state.touch();
        r
    }
}

/// Resolves when the client closes its side of the connection (or it
/// breaks) while a response is being made: hyper's server (half-closes off)
/// and Envoy end the request then. Bytes that arrive meanwhile (a pipelined
/// request) are kept for later, up to the head limit; pending forever while
/// a request body holds the read side (the body sees the end itself).
async fn client_gone(reader: &mut Option<Reader>) {
    let Some(r) = reader.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        if r.buf.len() >= READ_SIZE * 8 {
            return std::future::pending().await;
        }
        if r.io.readable().await.is_err() {
            return;
        }
        r.buf.reserve(READ_SIZE);
        match r.io.try_read_buf(&mut r.buf) {
            Ok(0) => return,
            Ok(_) => r.state.touch(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Whether the bytes read so far start (or are the start of) the HTTP/2
/// preface.
fn is_h2_preface(buf: &[u8]) -> bool {
    let n = buf.len().min(H2_PREFACE.len());
    buf[..n] == H2_PREFACE[..n]
}

/// Whether a comma-separated header value lists `token` (ASCII
/// case-insensitive).
fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h2_preface_is_told_from_its_first_bytes() {
        assert!(is_h2_preface(b"PRI"));
        assert!(is_h2_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(!is_h2_preface(b"POST / HTTP/1.1\r\n"));
        assert!(!is_h2_preface(b"PRIX"));
    }

    #[test]
    fn tokens_are_found_in_lists() {
        assert!(contains_token(b"trailers", b"trailers"));
        assert!(contains_token(b"gzip, Trailers", b"trailers"));
        assert!(!contains_token(b"trailersx", b"trailers"));
    }
}
