//! One HTTP/2 connection driven by one task on strait's codec: each pass
//! reads what the socket has into the codec, acts on its events (a new
//! stream's request future, request-body DATA, resets, window updates),
//! polls the streams that were woken (their futures write their
//! responses into the codec), and writes the codec's output once, at the
//! pass's end (as `h2_server::cork` makes h2 do; nginx and HAProxy write a
//! connection's output once per turn of their loop). Reads stop while
//! [`HIGH`] bytes wait to be written: a client that does not read cannot
//! make the connection buffer without bound (PING and SETTINGS floods).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::keepalive::KeepAlive;
use super::premature::PrematureResets;
use super::request::{self};
use super::request_body::{self, Inbox, RequestBody};
use super::slots::Slots;
use super::stream::{HIGH, Stopped, Stream};
use crate::http2::conn::{Config, Connection, Event};
use crate::http2::{Error, ErrorCode};
use crate::proxy::exchange::{Reply, RequestParts};

/// Bytes read at a time (a DATA frame of the default size and its header).
const READ_SIZE: usize = 16 * 1024 + 9;
/// Passes of reading, polling and writing before the task yields.
const ROUNDS: usize = 16;

/// How a connection ended badly.
#[derive(Debug)]
pub(super) enum Failed {
    /// A connection error (answered with GOAWAY).
    Protocol(Error),
    /// The socket broke.
    Io(io::Error),
    /// A keep-alive PING went unanswered.
    KeepAliveTimedOut,
}

/// A served connection: resolves when it is closed.
pub(super) struct Served<S, F, M> {
    io: S,
    conn: Connection,
    input: BytesMut,
    events: Vec<Event>,
    /// Output taken from the codec, being written.
    writing: BytesMut,
    streams: Slots<Stream<F>>,
    /// Streams waiting for the output to be written.
    blocked: Vec<usize>,
    new_stream: M,
    keepalive: Option<KeepAlive>,
    premature: PrematureResets,
    /// The client closed its side (or a connection error was sent).
    closing: Option<Result<(), Failed>>,
}

impl<S, F, M> Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Reply>,
    M: FnMut(RequestParts, RequestBody) -> F + Unpin,
{
    pub(super) fn new(io: S, config: Config, keepalive: Option<KeepAlive>, new_stream: M) -> Self {
        Served {
            io,
            conn: Connection::new(config),
            input: BytesMut::new(),
            events: Vec::new(),
            writing: BytesMut::new(),
            streams: Slots::new(),
            blocked: Vec::new(),
            new_stream,
            keepalive,
            premature: PrematureResets::default(),
            closing: None,
        }
    }

    /// GOAWAY, twice with a PING between (see
    /// `Connection::go_away_gracefully`): finish the streams in flight,
    /// take no new ones after the final GOAWAY; the connection ends with
    /// its last stream.
    pub(super) fn graceful_shutdown(&mut self) {
        self.conn.go_away_gracefully();
    }

    fn unsent(&self) -> usize {
        self.writing.len() + self.conn.pending_output()
    }

    /// Read what the socket has; whether anything happened.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.closing.is_some() || self.unsent() >= HIGH {
            return false;
        }
        if self.input.capacity() - self.input.len() < 1024 {
            self.input.reserve(READ_SIZE);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.input) {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) => {
                // The client is gone: its streams go with it, as in h2.
                self.closing = Some(Ok(()));
                true
            }
            Poll::Ready(Ok(_)) => {
                let mut events = std::mem::take(&mut self.events);
                let r = self.conn.recv(&mut self.input, &mut events);
                // Every new stream is in its slot before any is polled: a
                // stream reset in the same read is never started (Rapid
                // Reset costs no request).
                for e in events.drain(..) {
                    if let Err(e) = self.event(e) {
                        self.closing = Some(Err(Failed::Protocol(e)));
                    }
                }
                self.events = events;
                if let Err(e) = r {
                    self.closing = Some(Err(Failed::Protocol(e)));
                }
                if self.input.is_empty() && self.input.capacity() > 4 * READ_SIZE {
                    self.input = BytesMut::new();
                }
                true
            }
            Poll::Ready(Err(e)) => {
                self.closing = Some(Err(Failed::Io(e)));
                true
            }
        }
    }

    fn event(&mut self, e: Event) -> Result<(), Error> {
        match e {
            Event::Request {
                stream,
                mut head,
                end_stream,
            } => {
                let Ok(parts) = request::parts(&mut head) else {
                    return self.conn.refuse(stream, ErrorCode::PROTOCOL_ERROR);
                };
                self.request(stream, parts, end_stream)?;
            }
            Event::TooLarge { stream } => {
                // h2's answer: 431, the stream ended. A request still open
                // (its body to come) is then reset NO_ERROR, as Envoy's
                // connection manager resets a stream whose response ended
                // first (`doEndStream`: `LocalReset`, which its HTTP/2 codec
                // sends as NO_ERROR; RFC 9113 §8.1). A request that ended
                // is closed both ways: nothing follows the 431.
                self.conn
                    .send_response(stream, 431, &Default::default(), true);
                self.conn.reset(stream, ErrorCode::NO_ERROR);
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => self.data(stream, data, end_stream)?,
            Event::Trailers { stream, trailers } => {
                let Some(i) = self.streams.index_of(stream) else {
                    return Ok(());
                };
                if let Some(s) = self.streams.get_mut(i) {
                    s.remote_done = true;
                    if s.remaining.is_some_and(|r| r != 0) {
                        return self.refuse(stream, ErrorCode::PROTOCOL_ERROR);
                    }
                    if let Some(inbox) = &s.inbox {
                        request_body::lock(inbox).trailers(trailers);
                    }
                }
                self.streams.wake(i);
            }
            Event::Reset { stream, code } => {
                if let Some(s) = self.streams.remove(stream) {
                    if let Some(inbox) = &s.inbox {
                        request_body::lock(inbox).reset(code);
                    }
                    self.leave(&s);
                }
            }
            Event::WindowUpdate { stream } => {
                if let Some(i) = self.streams.index_of(stream) {
                    self.streams.wake(i);
                }
            }
            Event::PingAck(data) => {
                if let Some(k) = self.keepalive.as_mut() {
                    k.acked(data);
                }
            }
            Event::Settings(_) | Event::GoAway { .. } => {}
        }
        Ok(())
    }

    /// A new stream: its request's future in a slot, polled this pass.
    fn request(&mut self, stream: u32, parts: RequestParts, end: bool) -> Result<(), Error> {
        let Ok(length) = request::content_length(&parts) else {
            return self.conn.refuse(stream, ErrorCode::PROTOCOL_ERROR);
        };
        if end && length.is_some_and(|n| n > 0) {
            return self.conn.refuse(stream, ErrorCode::PROTOCOL_ERROR);
        }
        // CONNECT, as hyper: no request body (the stream would be a
        // tunnel's), and a CONNECT announcing one is reset.
        let connect = parts.method == http::Method::CONNECT;
        if connect && length.is_some_and(|n| n != 0) {
            self.conn.reset(stream, ErrorCode::INTERNAL_ERROR);
            return Ok(());
        }
        let new_stream = &mut self.new_stream;
        self.streams.insert_with(stream, |waker| {
            let no_body = end || connect;
            let (inbox, body) = if no_body {
                (None, RequestBody::empty())
            } else {
                let inbox = Inbox::new(waker.clone());
                (Some(inbox.clone()), RequestBody::new(inbox, length))
            };
            // Boxed: allocated first, then built in place (no copy of the
            // request path's future, most of the stream's size).
            let handling = Box::into_pin(Box::write(Box::new_uninit(), new_stream(parts, body)));
            Stream::new(stream, handling, inbox, length, no_body)
        });
        Ok(())
    }

    fn data(&mut self, stream: u32, data: bytes::Bytes, end: bool) -> Result<(), Error> {
        let len = data.len();
        let Some(i) = self.streams.index_of(stream) else {
            self.conn.release(stream, len);
            return Ok(());
        };
        let Some(s) = self.streams.get_mut(i) else {
            return Ok(());
        };
        s.remote_done |= end;
        // h2's content-length check: more than announced, or less at the
        // end, is a stream error PROTOCOL_ERROR.
        if let Some(r) = s.remaining.as_mut() {
            match r.checked_sub(len as u64) {
                Some(left) if !(end && left != 0) => *r = left,
                _ => {
                    self.conn.release(stream, len);
                    return self.refuse(stream, ErrorCode::PROTOCOL_ERROR);
                }
            }
        }
        let taken = s
            .inbox
            .as_ref()
            .is_some_and(|inbox| request_body::lock(inbox).push(data, end));
        if !taken {
            self.conn.release(stream, len);
        }
        self.streams.wake(i);
        Ok(())
    }

    /// A stream error of the request's (its future dropped, its body failed
    /// with `code`).
    fn refuse(&mut self, stream: u32, code: ErrorCode) -> Result<(), Error> {
        if let Some(s) = self.streams.remove(stream) {
            if let Some(inbox) = &s.inbox {
                request_body::lock(inbox).reset(code);
            }
            self.leave(&s);
        }
        self.conn.refuse(stream, code)
    }

    /// A stream leaves: what its body holds goes back to the windows, and
    /// it counts for Envoy's premature-reset rule (too many streams closed
    /// before they were answered close the connection).
    fn leave(&mut self, s: &Stream<F>) {
        let n = s.released(true);
        if n > 0 {
            self.conn.release(s.id, n);
        }
        let responded = s.responded();
        let lifetime = if responded {
            0
        } else {
            crate::proxy::clock::now_ms().saturating_sub(s.opened_ms)
        };
        if self.premature.closed(responded, lifetime) && self.closing.is_none() {
            let e = self.conn.close(
                ErrorCode::ENHANCE_YOUR_CALM,
                "too many streams reset before they were answered",
            );
            self.closing = Some(Err(Failed::Protocol(e)));
        }
    }

    /// Poll the woken streams (a few rounds: a stream woken while polled
    /// waits for the next pass).
    fn poll_streams(&mut self) -> bool {
        let mut any = false;
        for _ in 0..4 {
            let woken = self.streams.take_woken();
            if woken.is_empty() {
                self.streams.give_back(woken);
                break;
            }
            any = true;
            for &index in &woken {
                self.poll_stream(index);
            }
            self.streams.give_back(woken);
        }
        any
    }

    fn poll_stream(&mut self, index: usize) {
        let Some((s, waker)) = self.streams.get_with_waker(index) else {
            return;
        };
        let mut cx = Context::from_waker(waker);
        let stopped = s.poll(&mut self.conn, &mut cx);
        let released = s.released(false);
        let id = s.id;
        if released > 0 {
            self.conn.release(id, released);
        }
        match stopped {
            Stopped::Pending => {}
            Stopped::Output => self.blocked.push(index),
            Stopped::Done => {
                // The response is out. A request body still coming is
                // cut short with NO_ERROR once the request path let go of
                // it (RFC 9113 §8.1), as h2 does when the `RecvStream` is
                // dropped.
                if s.remote_done || s.body_dropped() {
                    let s = self.streams.remove(id);
                    if let Some(s) = s {
                        if self.conn.is_open(id) {
                            self.conn.reset(id, ErrorCode::NO_ERROR);
                        }
                        self.leave(&s);
                    }
                }
            }
        }
    }

    /// Write out what the codec holds; Ready once all is written and
    /// flushed.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.writing.is_empty() {
                if self.conn.pending_output() == 0 {
                    return Pin::new(&mut self.io).poll_flush(cx);
                }
                self.writing = self.conn.output().split();
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.writing) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.writing.advance(n),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// One pass; Ready(Some(..)) when the connection is over.
    fn pass(&mut self, cx: &mut Context<'_>) -> (bool, Option<Result<(), Failed>>) {
        let mut progress = self.poll_read(cx);
        if let Some(k) = self.keepalive.as_mut()
            && k.poll_expired(&mut self.conn, cx).is_ready()
        {
            // hyper's keep-alive timeout: GOAWAY and close, streams too.
            self.keepalive = None;
            self.conn.go_away(ErrorCode::NO_ERROR);
            self.closing = Some(Err(Failed::KeepAliveTimedOut));
        }
        progress |= self.poll_streams();
        let before = self.unsent();
        let written = self.poll_write(cx);
        if let Poll::Ready(Err(e)) = written {
            return (true, Some(Err(Failed::Io(e))));
        }
        progress |= self.unsent() < before;
        if self.unsent() < HIGH && !self.blocked.is_empty() {
            for index in self.blocked.drain(..) {
                self.streams.wake(index);
            }
            progress = true;
        }
        let over = self.conn.is_closed()
            || self.closing.is_some()
            || (self.conn.is_going_away() && self.streams.is_empty());
        if over && written.is_ready() {
            // Once, best effort (TCP's FIN, TLS's close_notify), as h2
            // shuts its codec down at the end; the socket closes anyway.
            let _ = Pin::new(&mut self.io).poll_shutdown(cx);
            let ended = self.closing.take().unwrap_or(Ok(()));
            return (true, Some(ended));
        }
        (progress, None)
    }
}

impl<S, F, M> crate::proxy::Drain for Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Reply>,
    M: FnMut(RequestParts, RequestBody) -> F + Unpin,
{
    fn graceful_shutdown(&mut self) {
        Served::graceful_shutdown(self);
    }
}

impl<S, F, M> Future for Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = Reply>,
    M: FnMut(RequestParts, RequestBody) -> F + Unpin,
{
    type Output = Result<(), Failed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.streams.register(cx);
        for _ in 0..ROUNDS {
            match this.pass(cx) {
                (_, Some(ended)) => {
                    // The streams go first: their bodies see the reset.
                    for s in this.streams.drain() {
                        if let Some(inbox) = &s.inbox {
                            request_body::lock(inbox).reset(ErrorCode::CANCEL);
                        }
                    }
                    return Poll::Ready(ended);
                }
                (false, None) => return Poll::Pending,
                (true, None) => {}
            }
        }
        // Busy: let the worker's other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
