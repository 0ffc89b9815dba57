//! The request path's stream idle timer: Envoy's `stream_idle_timeout`,
//! 408 while the request arrives, 504 after (flag SI).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::clock::{ms, now_ms};
use super::conn::ConnState;

/// One request's stream idle clock: reset by request body data, checked
/// while the proxy waits for the response.
#[derive(Debug)]
pub struct StreamIdle {
    timeout: Duration,
    last_ms: AtomicU64,
    request_complete: AtomicBool,
}

impl StreamIdle {
    /// A clock started now, shared with the request body that resets it;
    /// `None` when the timeout is off.
    pub fn start(timeout: Option<Duration>, request_complete: bool) -> Option<Arc<StreamIdle>> {
        timeout.map(|timeout| Arc::new(StreamIdle::new(timeout, request_complete)))
    }

    /// A clock started now, for a request whose body cannot reset it.
    pub fn new(timeout: Duration, request_complete: bool) -> StreamIdle {
        StreamIdle {
            timeout,
            last_ms: AtomicU64::new(now_ms()),
            request_complete: AtomicBool::new(request_complete),
        }
    }

    fn touch(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The whole request has arrived (408 before, 504 after).
    pub fn request_complete(&self) -> bool {
        self.request_complete.load(Ordering::Relaxed)
    }
}

/// How a request's stream idle timeout is kept.
#[derive(Debug, Clone, Copy)]
pub enum IdleClock<'a> {
    /// No timeout.
    Off,
    /// A timer in the request's future (HTTP/2 streams, requests with a
    /// body, whose data resets the clock).
    Timer(&'a StreamIdle),
    /// The connection's patrol: a body-less request on strait's HTTP/1.1
    /// server ([`ConnState::patrolled`]), timed from its start by the
    /// connection's last activity (bytes of a pipelined request arriving
    /// meanwhile reset it too). No timer per request; met within the
    /// patrol's round.
    Patrol(&'a ConnState),
}

/// Run `fut` (route and forward) unless the stream goes idle first; the
/// error says whether the request had fully arrived.
pub async fn within_stream_idle<F: Future>(
    fut: F,
    clock: IdleClock<'_>,
) -> Result<F::Output, bool> {
    match clock {
        IdleClock::Off => Ok(fut.await),
        IdleClock::Timer(idle) => within_timer(fut, idle).await,
        IdleClock::Patrol(state) => {
            let waiting = state.stream_wait();
            let mut fut = std::pin::pin!(fut);
            // The patrol wakes the connection's task, whose waker it keeps
            // (registered on every poll of that task).
            std::future::poll_fn(|cx| {
                if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Ok(out));
                }
                if waiting.expired() {
                    // Body-less: the whole request had arrived.
                    return Poll::Ready(Err(true));
                }
                Poll::Pending
            })
            .await
        }
    }
}

async fn within_timer<F: Future>(fut: F, idle: &StreamIdle) -> Result<F::Output, bool> {
    tokio::pin!(fut);
    let sleep = tokio::time::sleep(idle.timeout);
    tokio::pin!(sleep);
    let timeout = ms(idle.timeout);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Ok(out),
            () = &mut sleep => {
                let quiet = now_ms().saturating_sub(idle.last_ms.load(Ordering::Relaxed));
                if quiet >= timeout {
                    return Err(idle.request_complete());
                }
                let wait = Duration::from_millis(timeout - quiet);
                sleep.as_mut().reset(tokio::time::Instant::now() + wait);
            }
        }
    }
}

/// A request body whose frames reset its stream's idle clock.
pub struct IdleReset<B> {
    inner: B,
    idle: Option<Arc<StreamIdle>>,
}

impl<B> IdleReset<B> {
    pub fn new(inner: B, idle: Option<Arc<StreamIdle>>) -> Self {
        IdleReset { inner, idle }
    }
}

impl<B> HttpBody for IdleReset<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(ready), Some(idle)) = (&r, &self.idle) {
            idle.touch();
            if ready.is_none() || self.inner.is_end_stream() {
                idle.request_complete.store(true, Ordering::Relaxed);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
