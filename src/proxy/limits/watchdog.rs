//! Per-connection deadlines (first request, request head, idle, stalled
//! streams) from the timestamps reads and writes store.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::DownstreamLimits;
use super::clock::{ms, now_ms};
use super::conn::ConnState;

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No first request, or no complete HTTP/1 head since its first byte,
    /// within the request-headers timeout: close gracefully (GOAWAY),
    /// briefly.
    NoRequest,
    /// Requests in flight but no bytes either way past the stream idle
    /// timeout (a client that stopped reading, or every stream stalled):
    /// close now.
    StreamsIdle,
    /// Nothing in flight past the idle timeout: close gracefully (GOAWAY).
    Idle,
}

/// Per-connection deadlines, checked by sleeping until the nearest one.
pub struct Watchdog {
    state: Arc<ConnState>,
    header_ms: Option<u64>,
    idle_ms: Option<u64>,
    streams_ms: Option<u64>,
    /// Never sleep longer than this, so a rule that starts to apply while
    /// asleep (a request began) is checked at most this late.
    max_sleep_ms: u64,
}

impl Watchdog {
    pub fn new(limits: &DownstreamLimits, state: Arc<ConnState>) -> Watchdog {
        // The request path answers 408/504 at the stream idle timeout; the
        // connection-level rule must come later so that answer goes first.
        let streams_ms = limits
            .stream_idle_timeout
            .map(|t| ms(t).saturating_add(ms(t) / 4).saturating_add(50));
        let header_ms = limits.request_headers_timeout.map(ms);
        let idle_ms = limits.idle_timeout.map(ms);
        let shortest = [header_ms, idle_ms, streams_ms]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(15_000);
        Watchdog {
            state,
            header_ms,
            idle_ms,
            streams_ms,
            max_sleep_ms: (shortest / 4).clamp(5, 15_000),
        }
    }

    /// The verdict now, or how long to sleep before asking again.
    fn check(&self, now: u64) -> Result<u64, Expired> {
        let s = &self.state;
        let last = s.last_io_ms.load(Ordering::Relaxed);
        let idle_for = now.saturating_sub(last);
        let mut next = self.max_sleep_ms;
        if s.requests.load(Ordering::Relaxed) == 0
            && let Some(t) = self.header_ms
        {
            // From accept, not from the last byte: a trickle must not reset it.
            let age = now.saturating_sub(s.accepted_ms);
            if age >= t {
                return Err(Expired::NoRequest);
            }
            next = next.min(t - age);
        }
        let head_since = s.head_since_ms.load(Ordering::Relaxed);
        if head_since != 0
            && let Some(t) = self.header_ms
        {
            let age = now.saturating_sub(head_since);
            if age >= t {
                return Err(Expired::NoRequest);
            }
            next = next.min(t - age);
        }
        let (rule, verdict) = if s.in_flight.load(Ordering::Relaxed) > 0 {
            (self.streams_ms, Expired::StreamsIdle)
        } else {
            (self.idle_ms, Expired::Idle)
        };
        if let Some(t) = rule {
            if idle_for >= t {
                return Err(verdict);
            }
            next = next.min(t - idle_for);
        }
        Ok(next.max(1))
    }

    /// Resolves when the connection should end.
    pub async fn expired(&self) -> Expired {
        if self.header_ms.is_none() && self.idle_ms.is_none() && self.streams_ms.is_none() {
            return std::future::pending().await;
        }
        loop {
            match self.check(now_ms()) {
                Err(e) => return e,
                Ok(wait) => tokio::time::sleep(Duration::from_millis(wait)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dog(limits: &DownstreamLimits) -> (Watchdog, Arc<ConnState>) {
        let st = Arc::new(ConnState::default());
        (Watchdog::new(limits, st.clone()), st)
    }

    #[test]
    fn first_request_deadline_counts_from_accept() {
        let l = DownstreamLimits {
            request_headers_timeout: Some(Duration::from_millis(100)),
            ..DownstreamLimits::default()
        };
        let (w, st) = dog(&l);
        let t0 = st.accepted_ms;
        assert!(w.check(t0 + 50).is_ok());
        // Bytes trickling in do not extend it.
        st.last_io_ms.store(t0 + 99, Ordering::Relaxed);
        assert_eq!(w.check(t0 + 100), Err(Expired::NoRequest));
        // Once a request came, only a head in progress is timed.
        let r = st.request();
        assert!(w.check(t0 + 100).is_ok());
        drop(r);
        assert!(
            w.check(t0 + 10_000).is_ok(),
            "a waiting keep-alive connection"
        );
    }

    #[test]
    fn a_later_head_is_timed_from_its_first_byte() {
        let l = DownstreamLimits {
            request_headers_timeout: Some(Duration::from_millis(100)),
            ..DownstreamLimits::default()
        };
        let (w, st) = dog(&l);
        drop(st.request());
        st.head_started();
        let since = st.head_since_ms.load(Ordering::Relaxed);
        // Started again by more bytes of the same head: still the first.
        st.head_started();
        assert_eq!(st.head_since_ms.load(Ordering::Relaxed), since);
        assert!(w.check(since + 99).is_ok());
        assert_eq!(w.check(since + 100), Err(Expired::NoRequest));
        st.head_done();
        assert!(w.check(since + 100).is_ok());
    }

    #[test]
    fn idle_rules_depend_on_requests_in_flight() {
        let l = DownstreamLimits {
            idle_timeout: Some(Duration::from_millis(1000)),
            stream_idle_timeout: Some(Duration::from_millis(100)),
            ..DownstreamLimits::default()
        };
        let (w, st) = dog(&l);
        let r = st.request();
        let t0 = st.last_io_ms.load(Ordering::Relaxed);
        // In flight: the stream rule, after the request path's own timer.
        assert!(w.check(t0 + 100).is_ok());
        assert_eq!(w.check(t0 + 200), Err(Expired::StreamsIdle));
        drop(r);
        // Nothing in flight: the connection idle timeout.
        assert!(w.check(t0 + 200).is_ok());
        assert_eq!(w.check(t0 + 1000), Err(Expired::Idle));
    }
}
