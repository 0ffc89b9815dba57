//! The upstream side of HTTP/1.1 on strait's own codec (`crate::http1`,
//! issue #15). A pooled connection is borrowed by the request's task, which
//! writes the request head and body straight into the connection and reads
//! the response head; the response body then reads from the connection as
//! the downstream side consumes it and hands the connection back at its
//! end. No task, channel or header-map round trip per connection: what
//! hyper's client dispatcher costs on every request.
//!
//! Upgrades (WebSocket) still go through hyper's client (`upstream.rs`),
//! which hands the upgraded stream to `forward`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::body::{self, Body, BoxError};
use super::exchange::Reply;
use super::upstream::{Outgoing, SendError};
use crate::http1::chunked::{self, Chunk, Decoder};
use crate::http1::head::ResponseReader;
use crate::http1::{self as codec, HeadLimits, ResponseHead};

/// The transport under a connection (TCP, or TLS over TCP).
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Bytes read at a time; a response head usually fits in one read.
const READ_SIZE: usize = 8 * 1024;

/// One upstream HTTP/1.1 connection, idle in a pool or lent to a request.
pub(super) struct Conn {
    io: Box<dyn Io>,
    read: BytesMut,
    write: BytesMut,
    pub(super) born: Instant,
    pub(super) requests: u32,
    pub(super) idle_since: Instant,
    /// The cluster-wide `maxConnections` slot, released when it closes.
    permit: Option<OwnedSemaphorePermit>,
    /// Told when it closes, so requests waiting for a slot look again.
    changed: Arc<Notify>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The slot first: a waiter woken below must find it free.
        drop(self.permit.take());
        self.changed.notify_waiters();
    }
}

impl Conn {
    pub(super) fn new(io: Box<dyn Io>, permit: OwnedSemaphorePermit, changed: Arc<Notify>) -> Conn {
        let now = super::clock::now();
        Conn {
            io,
            read: BytesMut::new(),
            write: BytesMut::new(),
            born: now,
            requests: 0,
            idle_since: now,
            permit: Some(permit),
            changed,
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on
    /// it since its last response (no end of stream, no stray bytes). A
    /// readiness check, not a system call, unless the socket turned
    /// readable.
    pub(super) fn usable(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut buf),
            Poll::Pending
        )
    }

    /// Read more bytes into the read buffer.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }
}

/// How the request body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length,
    Chunked,
}

/// Write the request head into `buf`, and say how its body is framed.
fn write_head(buf: &mut BytesMut, out: &Outgoing<'_>) -> Framing {
    let headers = out.headers;
    let has_length = headers.contains("content-length");
    let has_coding = headers.contains("transfer-encoding");
    let framing = if has_length {
        Framing::Length
    } else if has_coding {
        Framing::Chunked
    } else {
        match out.body.size_hint().exact() {
            // As hyper's client: a known length is sent as Content-Length
            // (an empty body only for methods that carry one).
            Some(0) if !matches!(*out.method, Method::POST | Method::PUT | Method::PATCH) => {
                Framing::None
            }
            Some(_) => Framing::Length,
            None => Framing::Chunked,
        }
    };
    let mut length = itoa_buf();
    let added: Option<(&[u8], &[u8])> = match framing {
        Framing::Length if !has_length => {
            let n = out.body.size_hint().exact().unwrap_or(0);
            Some((b"content-length", format_u64(&mut length, n)))
        }
        Framing::Chunked if !has_coding => Some((b"transfer-encoding", b"chunked")),
        _ => None,
    };
    codec::write::request_head(
        buf,
        out.method.as_str(),
        out.path_and_query.as_str().as_bytes(),
        codec::Version::Http11,
        std::iter::once((&b"host"[..], out.authority.as_bytes()))
            .chain(headers.iter().filter(|(n, _)| *n != b"host"))
            .chain(added),
    );
    framing
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, in `buf`.
fn format_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The request on its way out and the response head on its way in, on one
/// task: the body is written as it arrives while the connection is read,
/// so an upstream answering before the body ends is heard.
struct Exchange<'a> {
    conn: &'a mut Conn,
    body: Option<Body>,
    framing: Framing,
    method: Method,
    reader: ResponseReader,
    /// Bytes of the request reached the socket.
    wrote: bool,
    flush: bool,
}

/// What an exchange ends with: the response head, and whether the whole
/// request was sent (if not, the connection cannot carry another).
struct Answered {
    head: ResponseHead,
    request_complete: bool,
}

impl Exchange<'_> {
    fn reset(&self, reason: String) -> SendError {
        SendError::Reset {
            reason,
            sent: self.wrote,
        }
    }

    fn poll_exchange(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answered, SendError>> {
        loop {
            let mut progress = false;
            // Out: what is buffered, then the next piece of the body.
            while !self.conn.write.is_empty() {
                match Pin::new(&mut self.conn.io).poll_write(cx, &self.conn.write) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(
                            self.reset("connection closed while writing".into())
                        ));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.conn.write.advance(n);
                        self.wrote = true;
                        self.flush = true;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.reset(e.to_string()))),
                    Poll::Pending => break,
                }
            }
            if self.conn.write.is_empty() && self.flush {
                match Pin::new(&mut self.conn.io).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.flush = false,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.reset(e.to_string()))),
                    Poll::Pending => {}
                }
            }
            if self.conn.write.is_empty()
                && let Some(b) = self.body.as_mut()
            {
                match Pin::new(b).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        self.encode(frame);
                        progress = true;
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(SendError::Reset {
                            reason: format!("request body: {e}"),
                            sent: true,
                        }));
                    }
                    Poll::Ready(None) => {
                        if self.framing == Framing::Chunked {
                            chunked::write_end(&mut self.conn.write, []);
                        }
                        self.body = None;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            // In: the response head, heard even while the body is sent.
            match self.conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(
                        self.reset("connection closed before message completed".into())
                    ));
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    loop {
                        match self.reader.read(
                            &mut self.conn.read,
                            &HeadLimits::default(),
                            &self.method,
                        ) {
                            Err(r) => {
                                return Poll::Ready(Err(SendError::Protocol(format!(
                                    "upstream response: {}",
                                    r.details()
                                ))));
                            }
                            Ok(None) => break,
                            // 1xx before the final response is dropped, as
                            // hyper's client does (upgrades never come here).
                            Ok(Some(h)) if (100..200).contains(&h.status) && h.status != 101 => {}
                            Ok(Some(head)) => {
                                return Poll::Ready(Ok(Answered {
                                    head,
                                    request_complete: self.body.is_none()
                                        && self.conn.write.is_empty(),
                                }));
                            }
                        }
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(self.reset(e.to_string()))),
                // Nothing left to write: another turn would only find the
                // read pending again (a readiness check per request).
                Poll::Pending if self.conn.write.is_empty() && self.body.is_none() => {
                    return Poll::Pending;
                }
                Poll::Pending => {}
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn encode(&mut self, frame: Frame<Bytes>) {
        match frame.into_data() {
            Ok(data) => match self.framing {
                Framing::Chunked => chunked::write_chunk(&mut self.conn.write, &data),
                Framing::Length | Framing::None => self.conn.write.extend_from_slice(&data),
            },
            Err(frame) => {
                if let (Framing::Chunked, Ok(trailers)) = (self.framing, frame.into_trailers()) {
                    chunked::write_end(
                        &mut self.conn.write,
                        trailers
                            .iter()
                            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                    );
                    self.framing = Framing::None;
                }
            }
        }
    }
}

/// Send `req` on `conn` and read the response head. `recycle` takes the
/// connection back when the response body has been read to its end (and
/// the connection may carry another request); a connection that cannot is
/// closed. `last` says this is the connection's last request
/// (`maxRequestsPerConnection`).
pub(super) async fn send<F>(
    mut conn: Conn,
    out: Outgoing<'_>,
    last: bool,
    recycle: F,
) -> Result<Reply, SendError>
where
    F: FnOnce(Conn) + Send + Unpin + 'static,
{
    let framing = write_head(&mut conn.write, &out);
    let req_body = out.body;
    let mut exchange = Exchange {
        conn: &mut conn,
        body: (framing != Framing::None || !req_body.is_end_stream()).then_some(req_body),
        framing,
        method: out.method.clone(),
        reader: ResponseReader::default(),
        wrote: false,
        flush: false,
    };
    let answered = std::future::poll_fn(|cx| exchange.poll_exchange(cx)).await;
    // The request body (unsent if the upstream answered early) goes now.
    drop(exchange);
    let answered = answered?;
    let mut head = answered.head;
    let reuse = head.keep_alive && answered.request_complete && !last;
    let state = match head.body {
        codec::Framing::Empty | codec::Framing::Length(0) => State::Done,
        codec::Framing::Length(n) => State::Length(n),
        codec::Framing::Chunked => State::Chunked(Decoder::new(HeadLimits::default())),
        codec::Framing::UntilClose => State::UntilClose,
    };
    if matches!(state, State::Done) {
        let response = response_head(&mut head, body::empty())?;
        if reuse {
            recycle(conn);
        }
        return Ok(response);
    }
    let incoming = ResponseBody {
        conn: Some(conn),
        state,
        recycle: reuse.then_some(recycle),
    };
    response_head(&mut head, body::boxed(incoming))
}

/// The response head as the request path carries it: the head's lines
/// (names already lowercase) without a copy.
fn response_head(head: &mut ResponseHead, body: Body) -> Result<Reply, SendError> {
    let status = StatusCode::from_u16(head.status)
        .map_err(|_| SendError::Protocol("upstream response: invalid status".into()))?;
    let mut reply = Reply::with_status(status, body);
    reply.version = match head.version {
        codec::Version::Http10 => Version::HTTP_10,
        codec::Version::Http11 => Version::HTTP_11,
    };
    reply.headers = head.take_header_list();
    Ok(reply)
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(Decoder),
    UntilClose,
    Done,
}

/// A response body read from its connection as it is polled.
struct ResponseBody<F> {
    conn: Option<Conn>,
    state: State,
    recycle: Option<F>,
}

impl<F: FnOnce(Conn)> ResponseBody<F> {
    /// The body ended: the connection goes back or closes.
    fn end(&mut self) {
        self.state = State::Done;
        if let (Some(conn), Some(recycle)) = (self.conn.take(), self.recycle.take()) {
            recycle(conn);
        }
        self.conn = None;
    }
}

/// The connection ended inside a response body.
fn cut_short() -> BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "upstream connection closed inside the response body",
    ))
}

impl<F: FnOnce(Conn) + Unpin> HttpBody for ResponseBody<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) => {
                    if !conn.read.is_empty() {
                        let n = (*left).min(conn.read.len() as u64);
                        let data = conn.read.split_to(n as usize).freeze();
                        *left -= n;
                        if *left == 0 {
                            this.end();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                State::Chunked(decoder) => match decoder.decode(&mut conn.read) {
                    Err(r) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            r.details(),
                        )))));
                    }
                    Ok(Some(Chunk::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Some(Chunk::End(fields))) => {
                        this.end();
                        if fields.is_empty() {
                            return Poll::Ready(None);
                        }
                        let mut trailers = HeaderMap::with_capacity(fields.len());
                        for (n, v) in fields.iter() {
                            if let (Ok(n), Ok(v)) =
                                (HeaderName::from_bytes(n), HeaderValue::from_bytes(v))
                            {
                                trailers.append(n, v);
                            }
                        }
                        return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                    }
                    Ok(None) => {}
                },
                State::UntilClose => {
                    if !conn.read.is_empty() {
                        let data = conn.read.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match std::task::ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, State::UntilClose) => {
                    this.conn = None;
                    this.state = State::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(cut_short())));
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
