//! One stream: its request's future (`handler::handle`), then its response
//! written through the codec: the head from the reply's header list, the
//! body as DATA within the peer's windows, trailers. Polled by the
//! connection's task with the stream's slot waker; a client RST_STREAM
//! drops it (the request's future with it, as hyper's `H2Stream` does).
//! The body is sent as hyper's `PipeToSendStream` sends it: a chunk is
//! taken from the body only once the one before went out, the last DATA
//! frame carries END_STREAM, trailers end the stream, and a body error
//! resets the stream with the error's HTTP/2 reason.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::Body as _;

use super::request_body::{self, Shared};
use super::response;
use crate::header_list::HeaderList;
use crate::http2::ErrorCode;
use crate::http2::conn::Connection;
use crate::proxy::body::Body;
use crate::proxy::exchange::Reply;

pub(super) struct Stream<F> {
    pub(super) id: u32,
    phase: Phase<F>,
    /// The request body's inbox (None: no body).
    pub(super) inbox: Option<Shared>,
    /// Body bytes `content-length` says are still to come (h2's check).
    pub(super) remaining: Option<u64>,
    /// The client ended its side.
    pub(super) remote_done: bool,
    /// When it opened (`clock::now_ms`), for Envoy's premature-reset rule.
    pub(super) opened_ms: u64,
}

enum Phase<F> {
    Handling(Pin<Box<F>>),
    Sending {
        body: Body,
        /// A chunk taken from the body, not all sent yet, and whether it
        /// is the last.
        waiting: Option<(Bytes, bool)>,
    },
    /// The response is sent.
    Sent,
}

/// Why a stream's poll stopped.
pub(super) enum Stopped {
    /// Waiting for its future, its body, or the peer's windows (woken).
    Pending,
    /// The connection's output holds enough: woken once it is written.
    Output,
    /// The response is sent (or the stream reset).
    Done,
}

/// The connection's output held before a stream waits for the socket
/// (back-pressure beyond the peer's windows, as h2's send buffer).
pub(super) const HIGH: usize = 64 * 1024;

impl<F: Future<Output = Reply>> Stream<F> {
    pub(super) fn new(
        id: u32,
        handling: Pin<Box<F>>,
        inbox: Option<Shared>,
        remaining: Option<u64>,
        remote_done: bool,
    ) -> Stream<F> {
        Stream {
            id,
            phase: Phase::Handling(handling),
            inbox,
            remaining,
            remote_done,
            opened_ms: crate::proxy::clock::now_ms(),
        }
    }

    /// Whether a response head went out.
    pub(super) fn responded(&self) -> bool {
        !matches!(self.phase, Phase::Handling(_))
    }

    /// Drive the stream as far as it goes now.
    pub(super) fn poll(&mut self, conn: &mut Connection, cx: &mut Context<'_>) -> Stopped {
        loop {
            match &mut self.phase {
                Phase::Handling(handled) => {
                    let Poll::Ready(reply) = handled.as_mut().poll(cx) else {
                        return Stopped::Pending;
                    };
                    self.phase = respond(conn, self.id, reply);
                }
                Phase::Sending { body, waiting } => match send(conn, self.id, body, waiting, cx) {
                    Poll::Ready(Some(Stopped::Output)) => return Stopped::Output,
                    Poll::Ready(_) => self.phase = Phase::Sent,
                    Poll::Pending => return Stopped::Pending,
                },
                Phase::Sent => return Stopped::Done,
            }
        }
    }

    /// Bytes the request body read (or, with `all`, everything it holds:
    /// the stream is leaving) to give back to the windows.
    pub(super) fn released(&self, all: bool) -> usize {
        self.inbox
            .as_ref()
            .map_or(0, |i| request_body::lock(i).take_released(all))
    }

    /// Whether the request path let go of the request body.
    pub(super) fn body_dropped(&self) -> bool {
        self.inbox
            .as_ref()
            .is_none_or(|i| request_body::lock(i).is_dropped())
    }
}

/// The response head; the phase that follows.
fn respond<F>(conn: &mut Connection, id: u32, reply: Reply) -> Phase<F> {
    let Reply {
        status,
        mut headers,
        body,
        ..
    } = reply;
    let end = body.is_end_stream();
    let length = if end { None } else { body.size_hint().exact() };
    response::prepare(&mut headers, length);
    conn.send_response(id, status.as_u16(), &headers, end);
    if end {
        Phase::Sent
    } else {
        Phase::Sending {
            body,
            waiting: None,
        }
    }
}

/// Send the body: Ready(None) when sent (or given up), Ready(Some(Output))
/// when the connection's output is full.
fn send(
    conn: &mut Connection,
    id: u32,
    body: &mut Body,
    waiting: &mut Option<(Bytes, bool)>,
    cx: &mut Context<'_>,
) -> Poll<Option<Stopped>> {
    loop {
        if let Some((data, end)) = waiting.take() {
            let room = HIGH.saturating_sub(conn.pending_output());
            if room == 0 {
                *waiting = Some((data, end));
                return Poll::Ready(Some(Stopped::Output));
            }
            if !data.is_empty() && conn.send_capacity(id) == 0 {
                // Woken by the client's WINDOW_UPDATE.
                *waiting = Some((data, end));
                return Poll::Pending;
            }
            let k = data.len().min(room);
            let n = conn.send_data(id, &data[..k], end && k == data.len());
            if n < data.len() {
                *waiting = Some((data.slice(n..), end));
                continue;
            }
            if end {
                return Poll::Ready(None);
            }
        }
        match ready!(Pin::new(&mut *body).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => *waiting = Some((data, body.is_end_stream())),
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        conn.send_trailers(id, &HeaderList::from(trailers));
                        return Poll::Ready(None);
                    }
                }
            },
            Some(Err(e)) => {
                conn.reset(id, reason(e.as_ref()));
                return Poll::Ready(None);
            }
            None => {
                conn.send_data(id, b"", true);
                return Poll::Ready(None);
            }
        }
    }
}

/// The RST_STREAM code for a failed body: the first HTTP/2 reason in its
/// error chain (an upstream stream's reset passed on), else
/// INTERNAL_ERROR, as hyper's `Error::h2_reason`.
fn reason(e: &(dyn std::error::Error + 'static)) -> ErrorCode {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(reason) = err.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return ErrorCode(u32::from(reason));
        }
        cur = err.source();
    }
    ErrorCode::INTERNAL_ERROR
}
