//! The HTTP/2 keep-alive PING, as hyper's server sends it (`proto/h2/ping.rs`,
//! keep-alive while idle; `h2_server::keepalive` on h2's `PingPong`): after
//! `interval` with no bytes moved, a PING through the codec; no ACK within
//! `timeout` (`HTTP2_KEEPALIVE_TIMEOUT`, 20 s) and the connection is
//! closed.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::http2::conn::Connection;
use crate::proxy::limits::ConnState;

/// h2's `Ping::opaque()` payload, which hyper sends.
const OPAQUE: [u8; 8] = [0x3b, 0x7c, 0xdb, 0x7a, 0x0b, 0x87, 0x16, 0xb4];

pub(super) struct KeepAlive {
    interval: Duration,
    timeout: Duration,
    state: Arc<ConnState>,
    /// The next PING, or the deadline for the ACK of the one sent.
    timer: Pin<Box<Sleep>>,
    sent: bool,
}

impl KeepAlive {
    pub(super) fn new(interval: Duration, timeout: Duration, state: Arc<ConnState>) -> Self {
        KeepAlive {
            interval,
            timeout,
            state,
            timer: Box::pin(tokio::time::sleep(interval)),
            sent: false,
        }
    }

    /// A PING ACK arrived.
    pub(super) fn acked(&mut self, data: [u8; 8]) {
        if self.sent && data == OPAQUE {
            self.sent = false;
            self.timer.as_mut().reset(Instant::now() + self.interval);
        }
    }

    /// Ready when a PING went unanswered past the timeout; sends the PING
    /// when it is due.
    pub(super) fn poll_expired(&mut self, conn: &mut Connection, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            if self.sent {
                return Poll::Ready(());
            }
            // Bytes moved since: the interval runs from the last of them.
            let quiet = self.state.quiet_for();
            if quiet < self.interval {
                let at = Instant::now() + (self.interval - quiet);
                self.timer.as_mut().reset(at);
                continue;
            }
            conn.ping(OPAQUE);
            self.sent = true;
            let at = Instant::now() + self.timeout;
            self.timer.as_mut().reset(at);
        }
    }
}
