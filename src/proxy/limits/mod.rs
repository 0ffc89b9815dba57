//! Downstream limits and the overload guard: what one client, or many, may
//! cost the proxy before it says no. One job per module:
//!
//! - [`config`]: the limits ([`DownstreamLimits`]) and the hyper/h2
//!   connection builder with every limit set explicitly, because their
//!   defaults have changed between releases and have had bugs (hyper#3782
//!   left `max_local_error_reset_streams` off). The defaults follow Envoy's
//!   (`max_request_headers_kb`, `max_headers_count`, `idle_timeout`,
//!   `stream_idle_timeout`) and its edge guide (100 concurrent streams,
//!   64 KiB stream window, 1 MiB connection window).
//! - [`head`]: an HTTP/1 request head over `max_request_headers_kb`, counted
//!   as Envoy counts it, and hyper's 431.
//! - [`conn`]: what one downstream connection did last ([`ConnState`]),
//!   stored by the one wrapper around it ([`Tracked`]).
//! - [`watchdog`]: the per-connection deadlines (first request, request
//!   head, idle, stalled streams) checked against those timestamps: for
//!   strait's HTTP/1.1 connections by their listener's [`Patrol`] (one
//!   task, one timer), for HTTP/2 and hyper's by a [`Watchdog`] each.
//! - [`stream_idle`]: the request path's stream idle timer (408/504 SI).
//! - [`stats`]: the downstream counters, named as Istio exports Envoy's.
//! - [`overload`]: the overload guard (resident memory sampled by one
//!   background task, never on the request path; 503 OM, connections
//!   refused).
//!
//! Timers cost nothing per byte: reads and writes store a coarse timestamp
//! (`clock`), and the patrol (or watchdog) compares it with the deadlines.

pub mod config;
pub mod conn;
pub mod head;
pub mod overload;
pub mod stats;
pub mod stream_idle;
pub mod watchdog;

pub use config::{DownstreamLimits, Http2Server, open_files_limit};
pub use conn::{ConnRequest, ConnState, Tracked};
pub use head::{head_too_large, head_too_large_response};
pub use overload::{Overload, parse_bytes, resident_bytes};
pub use stats::DownstreamStats;
pub use stream_idle::{IdleClock, IdleReset, StreamIdle, within_stream_idle};
pub use watchdog::{Expired, Patrol, Watchdog, Watched};

/// The coarse clock reads and writes store: milliseconds from one
/// process-wide base (the request path's clock), cheap to keep in an
/// atomic.
mod clock {
    use std::time::Duration;

    pub(super) use crate::proxy::clock::now_ms;

    pub(super) fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }
}
