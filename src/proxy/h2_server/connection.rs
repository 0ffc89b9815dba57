//! One HTTP/2 connection driven by one task: it accepts streams and polls
//! every stream's future itself (`FuturesUnordered`: only woken streams are
//! polled), where hyper spawns a task per stream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use h2::RecvStream;
use h2::server::{Connection, SendResponse};
use http::Request;
use tokio::io::{AsyncRead, AsyncWrite};

use super::cork::{Cork, Corked};
use super::keepalive::KeepAlive;

/// How a connection ended badly.
#[derive(Debug)]
pub(super) enum Failed {
    /// A connection error (a protocol error, the socket broke).
    H2(h2::Error),
    /// Writing out a pass's frames failed (the socket broke).
    Io(std::io::Error),
    /// A keep-alive PING went unanswered.
    KeepAliveTimedOut,
}

/// A served connection: resolves when it is closed.
pub(super) struct Served<S, F, M> {
    conn: Connection<Corked<S>, Bytes>,
    /// Writes out what a pass queued, once, at its end.
    cork: Cork<S>,
    streams: FuturesUnordered<F>,
    /// Makes a new stream's future.
    new_stream: M,
    keepalive: Option<KeepAlive>,
    timed_out: bool,
}

impl<S, F, M> Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    M: FnMut(Request<RecvStream>, SendResponse<Bytes>) -> F + Unpin,
{
    pub(super) fn new(
        conn: Connection<Corked<S>, Bytes>,
        cork: Cork<S>,
        keepalive: Option<KeepAlive>,
        new_stream: M,
    ) -> Self {
        cork.set();
        Served {
            conn,
            cork,
            streams: FuturesUnordered::new(),
            new_stream,
            keepalive,
            timed_out: false,
        }
    }

    /// GOAWAY: finish the streams in flight, take no new ones.
    pub(super) fn graceful_shutdown(&mut self) {
        self.conn.graceful_shutdown();
    }
}

impl<S, F, M> crate::proxy::Drain for Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    M: FnMut(Request<RecvStream>, SendResponse<Bytes>) -> F + Unpin,
{
    fn graceful_shutdown(&mut self) {
        Served::graceful_shutdown(self);
    }
}

impl<S, F, M> Future for Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    M: FnMut(Request<RecvStream>, SendResponse<Bytes>) -> F + Unpin,
{
    type Output = Result<(), Failed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.poll_pass(cx);
        // The pass is over: what it queued goes out in one write. A broken
        // socket ends the connection as h2 would.
        match (r, this.cork.poll_flush(cx)) {
            (Poll::Pending, Poll::Ready(Err(e))) => Poll::Ready(Err(Failed::Io(e))),
            (r, flushed) => {
                if flushed.is_ready() && this.streams.is_empty() {
                    this.cork.release();
                }
                r
            }
        }
    }
}

impl<S, F, M> Served<S, F, M>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
    M: FnMut(Request<RecvStream>, SendResponse<Bytes>) -> F + Unpin,
{
    /// Poll the streams, then the connection (which queues their frames).
    fn poll_pass(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Failed>> {
        let this = self;
        loop {
            // The streams first: the connection below flushes what they
            // queued in this same pass.
            while let Poll::Ready(Some(())) = this.streams.poll_next_unpin(cx) {}
            if let Some(k) = this.keepalive.as_mut()
                && k.poll_expired(cx).is_ready()
            {
                // hyper's keep-alive timeout: GOAWAY and close, streams too.
                this.keepalive = None;
                this.timed_out = true;
                this.conn.abrupt_shutdown(h2::Reason::NO_ERROR);
            }
            match this.conn.poll_accept(cx) {
                Poll::Ready(Some(Ok((request, respond)))) => {
                    this.streams.push((this.new_stream)(request, respond));
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Failed::H2(e))),
                Poll::Ready(None) if this.timed_out => {
                    return Poll::Ready(Err(Failed::KeepAliveTimedOut));
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests;
