//! The HTTP/2 keep-alive PING, as hyper's server sends it (`proto/h2/ping.rs`,
//! keep-alive while idle): after `interval` with no bytes moved, a PING;
//! no PONG within `timeout` (`HTTP2_KEEPALIVE_TIMEOUT`, 20 s) and the
//! connection is closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::proxy::limits::ConnState;

pub(super) struct KeepAlive {
    pings: h2::PingPong,
    interval: Duration,
    timeout: Duration,
    state: Arc<ConnState>,
    /// The next PING, or the deadline for the PONG of the one sent.
    timer: Pin<Box<Sleep>>,
    sent: bool,
}

impl KeepAlive {
    pub(super) fn new(
        pings: h2::PingPong,
        interval: Duration,
        timeout: Duration,
        state: Arc<ConnState>,
    ) -> Self {
        KeepAlive {
            pings,
            interval,
            timeout,
            state,
            timer: Box::pin(tokio::time::sleep(interval)),
            sent: false,
        }
    }

    /// Ready when a PING went unanswered past the timeout.
    pub(super) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sent {
                match self.pings.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.sent = false;
                        self.timer.as_mut().reset(Instant::now() + self.interval);
                        continue;
                    }
                    // The connection is ending; it says why itself.
                    Poll::Ready(Err(_)) => return Poll::Pending,
                    Poll::Pending => {}
                }
                ready!(self.timer.as_mut().poll(cx));
                return Poll::Ready(());
            }
            ready!(self.timer.as_mut().poll(cx));
            // Bytes moved since: the interval runs from the last of them.
            let quiet = self.state.quiet_for();
            if quiet < self.interval {
                let at = Instant::now() + (self.interval - quiet);
                self.timer.as_mut().reset(at);
                continue;
            }
            if self.pings.send_ping(h2::Ping::opaque()).is_err() {
                return Poll::Pending;
            }
            self.sent = true;
            let at = Instant::now() + self.timeout;
            self.timer.as_mut().reset(at);
        }
    }
}
