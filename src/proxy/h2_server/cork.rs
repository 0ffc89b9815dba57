//! The connection's writes held for one pass of its task and written at its
//! end, as nginx's and HAProxy's loops write a connection's output once per
//! turn. h2 flushes its codec after every DATA frame of 256 bytes or more
//! (it keeps the payload aside rather than copy it, and takes no frame
//! while one is aside): a write system call per response when a pass
//! finishes many streams. Corked, those flushes copy into one buffer, and
//! the connection's task ([`Cork::poll_flush`]) writes it when the pass is
//! over. Past [`HIGH`] bytes held, writes go to the socket and wait for it
//! (h2's back-pressure is kept).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held before a write waits for the socket.
const HIGH: usize = 64 * 1024;
/// The buffer's first allocation: a pass's worth of small responses.
const FIRST: usize = 16 * 1024;

/// The I/O h2 owns: reads go through, writes are held while corked.
pub(super) struct Corked<S> {
    shared: Arc<Mutex<Held<S>>>,
}

/// The connection task's handle: cork, and write out at the end of a pass.
pub(super) struct Cork<S> {
    shared: Arc<Mutex<Held<S>>>,
}

struct Held<S> {
    io: S,
    out: Vec<u8>,
    /// How much of `out` is written.
    sent: usize,
    corked: bool,
}

/// `io` wrapped, and the handle that writes what it holds.
pub(super) fn cork<S>(io: S) -> (Corked<S>, Cork<S>) {
    let shared = Arc::new(Mutex::new(Held {
        io,
        out: Vec::new(),
        sent: 0,
        corked: false,
    }));
    (
        Corked {
            shared: shared.clone(),
        },
        Cork { shared },
    )
}

/// The lock is only ever taken by the connection's own task, one at a time;
/// a panic while holding it leaves plain bytes, still usable.
fn lock<S>(shared: &Mutex<Held<S>>) -> MutexGuard<'_, Held<S>> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S: AsyncWrite + Unpin> Held<S> {
    fn held(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Write out everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Room for more while corked: Pending while [`HIGH`] bytes wait on the
    /// socket.
    fn poll_room(&mut self, cx: &mut Context<'_>, more: usize) -> Poll<io::Result<()>> {
        if self.held() >= HIGH {
            ready!(self.poll_drain(cx))?;
        }
        // Kept across passes (no regrowing per pass) until released.
        if self.out.capacity() == 0 {
            self.out.reserve(FIRST.max(more));
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> Cork<S> {
    /// Hold writes from now on.
    pub(super) fn set(&self) {
        lock(&self.shared).corked = true;
    }

    /// Write out what the pass left held (the end of a pass of the
    /// connection's task); Pending until the socket took it all, with the
    /// task woken when it can take more.
    pub(super) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = lock(&self.shared);
        if held.held() == 0 {
            return Poll::Ready(Ok(()));
        }
        ready!(held.poll_drain(cx))?;
        Pin::new(&mut held.io).poll_flush(cx)
    }
}

impl<S> Cork<S> {
    /// Free the buffer if nothing is held (no stream in flight: an idle
    /// connection keeps no buffer).
    pub(super) fn release(&self) {
        let mut held = lock(&self.shared);
        if held.out.is_empty() && held.out.capacity() != 0 {
            held.out = Vec::new();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut lock(&self.shared).io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut held = lock(&self.shared);
        if !held.corked {
            ready!(held.poll_drain(cx))?;
            return Pin::new(&mut held.io).poll_write(cx, buf);
        }
        ready!(held.poll_room(cx, buf.len()))?;
        held.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut held = lock(&self.shared);
        if !held.corked {
            ready!(held.poll_drain(cx))?;
            return Pin::new(&mut held.io).poll_write_vectored(cx, bufs);
        }
        let more = bufs.iter().map(|b| b.len()).sum();
        ready!(held.poll_room(cx, more))?;
        let mut n = 0;
        for b in bufs {
            held.out.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    /// Vectored: h2 then keeps large DATA payloads aside, and they are
    /// copied once, here.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = lock(&self.shared);
        if held.corked {
            // The pass's end writes it (`Cork::poll_flush`).
            return Poll::Ready(Ok(()));
        }
        ready!(held.poll_drain(cx))?;
        Pin::new(&mut held.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = lock(&self.shared);
        ready!(held.poll_drain(cx))?;
        Pin::new(&mut held.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
