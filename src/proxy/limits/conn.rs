//! What one downstream connection did last, stored by the one wrapper
//! around it; the watchdog reads it.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::clock::now_ms;
use crate::proxy::sniff::{self, Watcher};

/// What the watchdog knows of one downstream connection.
#[derive(Debug)]
pub struct ConnState {
    pub(super) accepted_ms: u64,
    pub(super) last_io_ms: AtomicU64,
    /// Whether a request came (a flag, not a count: the state is kept
    /// small, 80 bytes with its `Arc`, as every connection has one).
    pub(super) requested: AtomicBool,
    pub(super) in_flight: AtomicU32,
    /// When the HTTP/1 request head being read began (0: none is), set by
    /// the raw-head watcher for a head that spans reads.
    pub(super) head_since_ms: AtomicU64,
    /// Why the listener's patrol ended the connection (0: it did not).
    pub(super) expired: AtomicU8,
    /// The connection's task, for the patrol (deadlines, drain).
    pub(super) waker: AtomicWaker,
    /// On a listener's patrol (strait's HTTP/1.1 server), which then keeps
    /// body-less requests' stream idle timeout too.
    pub(super) patrolled: AtomicBool,
    /// A request's stream idle clock kept by the patrol: [`STREAM_NONE`],
    /// [`STREAM_WAITING`] (since `last_io_ms`), [`STREAM_EXPIRED`].
    pub(super) stream: AtomicU8,
}

pub(super) const STREAM_NONE: u8 = 0;
pub(super) const STREAM_WAITING: u8 = 1;
pub(super) const STREAM_EXPIRED: u8 = 2;

impl Default for ConnState {
    fn default() -> Self {
        let now = now_ms();
        ConnState {
            accepted_ms: now,
            last_io_ms: AtomicU64::new(now),
            requested: AtomicBool::new(false),
            in_flight: AtomicU32::new(0),
            head_since_ms: AtomicU64::new(0),
            expired: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            patrolled: AtomicBool::new(false),
            stream: AtomicU8::new(STREAM_NONE),
        }
    }
}

impl ConnState {
    /// Bytes moved either way just now.
    pub(crate) fn touch(&self) {
        self.last_io_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// When the connection was accepted, on the wall clock (for logs).
    pub(crate) fn accepted_at(&self) -> std::time::SystemTime {
        let age = now_ms().saturating_sub(self.accepted_ms);
        std::time::SystemTime::now() - std::time::Duration::from_millis(age)
    }

    /// How long since bytes last moved either way.
    pub(crate) fn quiet_for(&self) -> std::time::Duration {
        let last = self.last_io_ms.load(Ordering::Relaxed);
        std::time::Duration::from_millis(now_ms().saturating_sub(last))
    }

    /// The first bytes of an HTTP/1 request head arrived without its end:
    /// the header timeout runs from now (Envoy's `request_headers_timeout`
    /// starts at the first byte of the headers, not while a keep-alive
    /// connection waits).
    pub fn head_started(&self) {
        let _ = self.head_since_ms.compare_exchange(
            0,
            now_ms().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The head being read is complete (or no longer watched).
    pub fn head_done(&self) {
        self.head_since_ms.store(0, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn head_in_progress(&self) -> bool {
        self.head_since_ms.load(Ordering::Relaxed) != 0
    }

    /// Mark the connection ended by its patrol, and wake its task.
    pub(super) fn expire(&self, why: super::Expired) {
        self.expired.store(why as u8, Ordering::Release);
        self.waker.wake();
    }

    /// Ready once the patrol ended the connection; otherwise the task is
    /// woken when it does (or when the listener drains).
    pub fn poll_expired(&self, cx: &mut Context<'_>) -> Poll<super::Expired> {
        self.waker.register(cx.waker());
        match super::Expired::from_u8(self.expired.load(Ordering::Acquire)) {
            Some(e) => Poll::Ready(e),
            None => Poll::Pending,
        }
    }

    /// Whether the connection is on a listener's patrol (its task's waker
    /// is registered on every poll: the patrol can wake it).
    pub fn patrolled(&self) -> bool {
        self.patrolled.load(Ordering::Relaxed)
    }

    /// A request's stream idle clock starts now, kept by the patrol; the
    /// guard stops it.
    pub fn stream_wait(&self) -> StreamWait<'_> {
        self.touch();
        self.stream.store(STREAM_WAITING, Ordering::Relaxed);
        StreamWait(self)
    }

    /// Mark the waiting request's stream expired (unless it ended
    /// meanwhile) and wake its task.
    pub(super) fn expire_stream(&self) {
        if self
            .stream
            .compare_exchange(
                STREAM_WAITING,
                STREAM_EXPIRED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.waker.wake();
        }
    }

    /// A request began; the guard ends it (drop it when the response ends).
    pub fn request(self: &Arc<Self>) -> ConnRequest {
        self.requested.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ConnRequest(self.clone())
    }
}

/// A request waiting for its response under the patrol's stream idle
/// clock (see [`ConnState::stream_wait`]).
#[derive(Debug)]
pub struct StreamWait<'a>(&'a ConnState);

impl StreamWait<'_> {
    /// Whether the patrol found the stream idle past its timeout.
    pub fn expired(&self) -> bool {
        self.0.stream.load(Ordering::Acquire) == STREAM_EXPIRED
    }
}

impl Drop for StreamWait<'_> {
    fn drop(&mut self) {
        self.0.stream.store(STREAM_NONE, Ordering::Relaxed);
    }
}

/// A request in flight on its connection (see [`ConnState::request`]).
#[derive(Debug)]
pub struct ConnRequest(Arc<ConnState>);

impl Drop for ConnRequest {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A downstream connection whose reads and writes mark it active, and
/// whose reads are shown to the raw-head watcher (request smuggling shapes,
/// the header timeout's clock): one wrapper, one pass per read.
pub struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
    watcher: Watcher,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, state: Arc<ConnState>, smuggling: sniff::Flag) -> Self {
        Tracked {
            inner,
            watcher: Watcher::new(smuggling).with_clock(state.clone()),
            state,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.touch();
            let this = &mut *self;
            this.watcher.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
