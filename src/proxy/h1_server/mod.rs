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
//! `proxy::serve_h2` (the downstream HTTP/2 server), and a request asking for an upgrade (WebSocket) or
//! `CONNECT` to hyper.

mod handoff;
mod request_body;
mod response;

pub(super) use response::date;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use http::Method;

use super::exchange::RequestParts;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::Shared;
use super::body;
use super::handler::{self, ConnInfo};
use super::limits::{self, ConnState, Watched};
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
    /// hyper serves the rest: the bytes already read (left in the read
    /// buffer) are replayed to it.
    HandOff,
    /// The HTTP/2 preface: `serve_h2` serves the rest, likewise.
    H2,
    /// A TLS ClientHello on the sidecar listener: routed by its SNI
    /// (`passthrough`), nothing read from it yet.
    Tls,
}

/// Serve HTTP/1.1 on an accepted TCP connection until it ends (in the
/// connection's own task); `watched`: its place on its listener's patrol
/// (deadlines, drain); `alive`: its count in `Shared::connections`.
///
/// While the connection waits for a request, its task holds only this
/// future's own state (`Connection`, a few hundred bytes): no timer (the
/// patrol keeps the deadlines), no drain future (the patrol wakes it), no
/// buffer, no readiness future (the socket's own waker slot); a request's
/// state is boxed for as long as it lasts.
pub(crate) fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    conn: ConnInfo,
    watched: Watched,
    alive: Arc<()>,
) -> impl Future<Output = ()> + Send {
    // Built here, and moved into an async block (an async fn keeps its
    // arguments in the task beside what it moves them to): the task holds
    // one copy of the connection's state.
    let mut connection = Connection::new(shared, stream, conn, watched, alive);
    async move {
        connection.shared.downstream.cx_active.inc();
        let state = connection.conn.state.clone();
        let ended = Expiring {
            state: &state,
            run: connection.run(),
        }
        .await;
        drop(state);
        if let Some(next) = take_over(connection, ended) {
            next.await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's run, ended by its patrol's verdict.
    struct Expiring<'a, F> {
        state: &'a ConnState,
        #[pin]
        run: F,
    }
}

impl<F: Future<Output = Ended>> Future for Expiring<'_, F> {
    type Output = Result<Ended, limits::Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The verdict first: it registers the task's waker before anything
        // the run checks (the drain flag) can change unseen.
        if let Poll::Ready(why) = this.state.poll_expired(cx) {
            return Poll::Ready(Err(why));
        }
        this.run.poll(cx).map(Ok)
    }
}

/// Whoever serves the connection after this server: hyper, `serve_h2` or
/// `passthrough`, with what was read replayed; `None` when it is closed.
/// Not async: their futures are boxed here, so no part of them (nor any
/// temporary of their making) is in the connection's task while it waits.
fn take_over(
    connection: Connection,
    ended: Result<Ended, limits::Expired>,
) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
    let Connection {
        shared,
        conn,
        watched,
        reader,
        writer,
        alive,
        ..
    } = connection;
    shared.downstream.cx_active.dec();
    let ended = ended.unwrap_or_else(|why| {
        tracing::debug!(remote = %conn.remote, reason = ?why, "closing downstream connection");
        shared.downstream.count_expired(why);
        Ended::Closed
    });
    if matches!(ended, Ended::Closed) {
        return None;
    }
    let Reader { io, buf, .. } = reader?;
    let Ok(stream) = io.reunite(writer) else {
        return None;
    };
    // Off the patrol before another server (with its own watchdog) or
    // the passthrough takes the connection over.
    let stop = watched.patrol().stop_signal();
    drop(watched);
    Some(match ended {
        Ended::Closed => return None,
        Ended::HandOff => {
            let io = handoff::Replay::new(stream, buf.freeze());
            // hyper's builder only now: no connection holds one while idle.
            let builder = Arc::new(shared.limits.builder());
            // A fresh smuggling flag: hyper's reads are watched again.
            let conn = ConnInfo {
                smuggling: Arc::default(),
                head_checked: false,
                ..conn
            };
            Box::pin(super::serve_http(shared, builder, io, conn, stop, alive))
        }
        Ended::H2 => {
            let io = handoff::Replay::new(stream, buf.freeze());
            let conn = ConnInfo {
                smuggling: Arc::default(),
                head_checked: false,
                ..conn
            };
            Box::pin(super::serve_h2(shared, io, conn, stop, alive))
        }
        Ended::Tls => Box::pin(super::passthrough::serve_sidecar(
            shared,
            stream,
            conn.remote,
            alive,
        )),
    })
}

/// One connection's state between requests.
struct Connection {
    shared: Arc<Shared>,
    /// The connection as its requests see it (heads bounded by the codec).
    conn: ConnInfo,
    /// `None` while a request body holds it.
    reader: Option<Reader>,
    writer: OwnedWriteHalf,
    out: BytesMut,
    heads: RequestReader,
    /// Where request bodies give the read side back (made for a
    /// connection's first request with a body: most never have one).
    slot: Option<Arc<Slot>>,
    watched: Watched,
    /// The connection's count in `Shared::connections`.
    alive: Arc<()>,
}

/// What an idle connection's wait found.
enum Waited {
    Readable,
    Closed,
    Tls,
}

/// What waiting for the next request found (matched at once: boxing the
/// head would cost an allocation per request).
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(RequestHead),
    Closed,
    Refused(Refusal),
    HandOff,
    Tls,
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        stream: TcpStream,
        conn: ConnInfo,
        watched: Watched,
        alive: Arc<()>,
    ) -> Connection {
        let (io, writer) = stream.into_split();
        // Heads are bounded by strait's codec.
        let conn = ConnInfo {
            head_checked: true,
            ..conn
        };
        Connection {
            reader: Some(Reader {
                io,
                buf: BytesMut::new(),
                state: conn.state.clone(),
            }),
            writer,
            out: BytesMut::new(),
            heads: RequestReader::default(),
            slot: None,
            shared,
            conn,
            watched,
            alive,
        }
    }

    async fn run(&mut self) -> Ended {
        let mut first = true;
        let refused = loop {
            // The head (200-odd bytes) lives in this block alone: no await
            // after it is read, so it is no part of the task's state.
            let exchange = {
                let head = match self.next_head(first).await {
                    Next::Head(h) => h,
                    Next::Closed => return Ended::Closed,
                    Next::Refused(r) => break r,
                    Next::HandOff => return self.hand_off(None),
                    Next::Tls => return Ended::Tls,
                };
                first = false;
                if head.upgrade || head.method() == Method::CONNECT {
                    return self.hand_off(Some(&head));
                }
                // Boxed: a request's state (its head, header list,
                // response writer) is no part of an idle connection's task.
                // Allocated first, then built in place: no copy of the
                // whole future from the stack into the box.
                Box::into_pin(Box::write(Box::new_uninit(), self.exchange(head)))
            };
            if !exchange.await {
                return Ended::Closed;
            }
        };
        // Boxed: rare, and no part of an idle connection's task.
        let refuse = Box::pin(self.refuse(refused));
        refuse.await;
        Ended::Closed
    }

    /// Read until a request head is complete. No buffer is held while the
    /// connection waits for the first byte of a request.
    async fn next_head(&mut self, first: bool) -> Next {
        let Some(r) = self.reader.as_mut() else {
            return Next::Closed;
        };
        // The sidecar listener tells TLS from HTTP by the first byte
        // (Istio's protocol sniffing); gateway ports know their protocol.
        let mut sniff = first && self.conn.gateway_port.is_none();
        loop {
            if first && !r.buf.is_empty() && is_h2_preface(&r.buf) {
                if r.buf.len() >= H2_PREFACE.len() {
                    return Next::HandOff;
                }
            } else {
                match self.heads.read(&mut r.buf, &head_limits(&self.shared)) {
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
            if !r.buf.is_empty() {
                // The header timeout runs from a head's first byte.
                r.state.head_started();
                match r.fill().await {
                    Ok(0) | Err(_) => return Next::Closed,
                    Ok(_) => continue,
                }
            }
            // Idle: release the buffers and wait for the socket, or the
            // drain (an idle connection closes at once); the patrol keeps
            // the deadlines.
            r.buf = BytesMut::new();
            self.out = BytesMut::new();
            let watched = &self.watched;
            let waited = std::future::poll_fn(|cx| {
                if watched.draining() {
                    return Poll::Ready(Waited::Closed);
                }
                if sniff {
                    let mut byte = [0u8; 1];
                    let mut b = tokio::io::ReadBuf::new(&mut byte);
                    return r.io.poll_peek(cx, &mut b).map(|p| match p {
                        Ok(1) if byte[0] == super::client_hello::HANDSHAKE_RECORD => Waited::Tls,
                        Ok(1) => Waited::Readable,
                        _ => Waited::Closed,
                    });
                }
                r.io.as_ref().poll_read_ready(cx).map(|p| match p {
                    Ok(()) => Waited::Readable,
                    Err(_) => Waited::Closed,
                })
            })
            .await;
            match waited {
                Waited::Readable => {}
                Waited::Closed => return Next::Closed,
                Waited::Tls => return Next::Tls,
            }
            sniff = false;
            // Read what is there without waiting: a stale readiness
            // (WouldBlock) goes back to waiting with no buffer held.
            r.buf.reserve(READ_SIZE);
            match read_now(&mut r.io, &mut r.buf).await {
                Some(Ok(0)) => return Next::Closed,
                Some(Ok(_)) => r.state.touch(),
                None => {}
                Some(Err(_)) => return Next::Closed,
            }
        }
    }

    /// Give the connection to hyper (or `serve_h2`: no head, the
    /// HTTP/2 preface), replaying what was read (`head`: the request head
    /// already taken off the buffer).
    fn hand_off(&mut self, head: Option<&RequestHead>) -> Ended {
        let Some(reader) = self.reader.as_mut() else {
            return Ended::Closed;
        };
        // What was read, left in the buffer for `take_over` to replay.
        match head {
            None => Ended::H2,
            Some(h) => {
                let mut read = BytesMut::with_capacity(h.as_bytes().len() + reader.buf.len());
                read.extend_from_slice(h.as_bytes());
                read.extend_from_slice(&reader.buf);
                reader.buf = read;
                Ended::HandOff
            }
        }
    }

    /// Answer a refused head as Envoy's codec does (status, connection
    /// closed), logged with flag DPE.
    async fn refuse(&mut self, r: Refusal) {
        super::codec_error::log_refusal(
            &self.shared,
            self.conn.local,
            self.conn.remote,
            self.conn.state.accepted_at(),
            r.status(),
            r.details(),
        );
        response::refusal(&mut self.out, r.status());
        let _ = self.flush().await;
    }

    /// One request and its response; whether the connection carries on.
    async fn exchange(&mut self, mut head: RequestHead) -> bool {
        let body = match (head.body, self.reader.take()) {
            (codec::Framing::Length(n), Some(reader)) if n > 0 => {
                RequestBody::length(reader, n, self.slot())
            }
            (codec::Framing::Chunked, Some(reader)) => {
                let decoder = Decoder::new(head_limits(&self.shared));
                RequestBody::chunked(reader, decoder, self.slot())
            }
            (_, reader) => {
                self.reader = reader;
                return self.respond(&mut head, body::empty()).await;
            }
        };
        // RFC 9110 §10.1.1: never to an HTTP/1.0 client.
        let body = if head.expect_continue && head.version == codec::Version::Http11 {
            body.expect_continue()
        } else {
            body
        };
        self.respond(&mut head, body::boxed(body)).await
    }

    /// Hand the request to the request path and write its response.
    async fn respond(&mut self, head: &mut RequestHead, body: body::Body) -> bool {
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
            // The response first: once it is there, the client's side is
            // not looked at (a readiness check fewer per request).
            biased;
            r = handled => r,
            // The request is dropped: nobody is there to answer.
            () = client_gone(&mut self.reader) => return false,
        };
        let draining = self.watched.draining();
        let keep = response::write(self, resp, &request, draining).await;
        if self.reader.is_none() {
            // The body gave the read side back: carry on only if it was
            // read to its end (what follows is then the next request).
            match self.slot.as_ref().and_then(|s| s.take()) {
                Some((reader, true)) => self.reader = Some(reader),
                _ => return false,
            }
        }
        keep && !self.watched.draining()
    }

    /// Where a request body gives the read side back.
    fn slot(&mut self) -> Arc<Slot> {
        self.slot.get_or_insert_with(Arc::default).clone()
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
        // The socket's own waker slot, as the idle wait: no waiter queued
        // on the socket (and its lock) per request.
        let ready = std::future::poll_fn(|cx| r.io.as_ref().poll_read_ready(cx)).await;
        if ready.is_err() {
            return;
        }
        r.buf.reserve(READ_SIZE);
        match read_now(&mut r.io, &mut r.buf).await {
            Some(Ok(0)) => return,
            Some(Ok(_)) => r.state.touch(),
            None => {}
            Some(Err(_)) => return,
        }
    }
}

/// One read of what the socket holds, without waiting (`None`: nothing
/// there; the task is woken when something is). Through `poll_read`, not
/// `try_read`: a read shorter than the buffer clears the socket's
/// readiness (tokio knows epoll drained it), so the next wait does not
/// begin with a read that finds nothing (a `recvfrom` per request).
async fn read_now(io: &mut OwnedReadHalf, buf: &mut BytesMut) -> Option<std::io::Result<usize>> {
    std::future::poll_fn(|cx| {
        Poll::Ready(
            match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, buf) {
                Poll::Ready(r) => Some(r),
                Poll::Pending => None,
            },
        )
    })
    .await
}

/// The codec's limits on a head (and a chunked body's lines), from the
/// listener's (read per use: nothing a connection keeps).
fn head_limits(shared: &Shared) -> codec::HeadLimits {
    codec::HeadLimits {
        max_head_bytes: shared.limits.max_request_headers_kb.saturating_mul(1024),
        max_headers: shared.limits.max_request_headers,
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

    /// What an idle connection costs is mostly its task: this future.
    #[tokio::test]
    async fn an_idle_connection_task_holds_only_its_state() {
        let shared = Shared::new(
            crate::compile::Snapshot::default(),
            super::super::access_log::AccessLog::off(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let patrol = super::super::limits::Patrol::start(&shared.limits, stopped);
        let conn = ConnInfo::new(remote, remote);
        let watched = patrol.watch(conn.state.clone());
        let task =
            super::super::clock::Clocked::new(serve(shared, stream, conn, watched, Arc::new(())));
        // tokio adds ~100 bytes of its own and aligns a task to 128 bytes;
        // the allocator serves such blocks without over-allocating only in
        // power-of-two sizes (a 384- or 640-byte task takes a 512- or
        // 768-byte block): at most ~400 bytes fits the 512-byte task.
        let size = std::mem::size_of_val(&task);
        assert!(size <= 400, "the idle connection's future is {size} bytes");
    }

    #[test]
    fn tokens_are_found_in_lists() {
        assert!(contains_token(b"trailers", b"trailers"));
        assert!(contains_token(b"gzip, Trailers", b"trailers"));
        assert!(!contains_token(b"trailersx", b"trailers"));
    }
}
