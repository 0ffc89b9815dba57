//! The request path's clock: one read of the monotonic clock per poll of a
//! connection's task, as nginx (`ngx_time_update` after each event wait)
//! and HAProxy (`now_ms` per loop turn) read it once per turn of their loop.
//! Within a [`Clocked`] poll, [`now`] is the instant the poll began; anywhere
//! else it reads the clock. A poll takes microseconds, and every timeout,
//! idle time and duration the proxy keeps is in milliseconds.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

/// The poll's instant and its milliseconds since [`base`].
#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    ms: u64,
}

thread_local! {
    static NOW: Cell<Option<Reading>> = const { Cell::new(None) };
}

/// The process-wide origin of [`now_ms`].
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn read() -> Reading {
    let at = Instant::now();
    let ms = u64::try_from(at.saturating_duration_since(base()).as_millis()).unwrap_or(u64::MAX);
    Reading { at, ms }
}

/// Now: the current poll's instant inside a [`Clocked`] task, else the
/// clock.
pub fn now() -> Instant {
    NOW.get().map_or_else(Instant::now, |r| r.at)
}

/// Milliseconds since a process-wide origin, as [`now`] reads them: cheap
/// to keep in an atomic.
pub fn now_ms() -> u64 {
    NOW.get().unwrap_or_else(read).ms
}

pin_project_lite::pin_project! {
    /// A task's future whose polls read the clock once, at their start.
    pub struct Clocked<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Clocked<F> {
    pub fn new(inner: F) -> Clocked<F> {
        Clocked { inner }
    }
}

impl<F: Future> Future for Clocked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        /// Puts back what was there (a poll nested in another's, or none),
        /// on return and on unwind alike.
        struct Restore(Option<Reading>);
        impl Drop for Restore {
            fn drop(&mut self) {
                NOW.set(self.0);
            }
        }
        let _restore = Restore(NOW.replace(Some(read())));
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests;
