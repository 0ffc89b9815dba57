//! The downstream side of HTTP/2 (h2c with prior knowledge, and h2 over TLS
//! after ALPN) on strait's own codec (`crate::http2`, issue #15): the
//! default (`DownstreamLimits::http2_server`; `STRAIT_HTTP2_SERVER=h2` or
//! `--http2-server h2` picks `proxy::h2_server`, on the `h2` crate). One task per
//! connection reads into the codec, runs each stream's request future
//! itself and writes the codec's output once per pass; no `HeaderMap` on
//! the way in or out. What `h2_server` does is kept (each file names the
//! part of h2 or hyper it follows). One job per module:
//!
//! - [`settings`]: the codec's settings from the downstream limits.
//! - [`connection`]: the connection's future (read, events, the woken
//!   streams, write; keep-alive; GOAWAY).
//! - [`slots`]: the streams and their wakers.
//! - [`request`]: a request head as the request path's parts.
//! - [`request_body`]: the request body fed by the connection.
//! - [`stream`]: one stream's request future and its response sent.
//! - [`response`]: the response head as HTTP/2 allows it.
//! - [`keepalive`]: the keep-alive PING and its timeout.
//! - [`premature`]: Envoy's rule for streams reset before they were
//!   answered.

mod connection;
mod keepalive;
mod premature;
mod request;
mod request_body;
mod response;
mod settings;
mod slots;
mod stream;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::Shared;
use super::handler::{self, ConnInfo};
use super::limits;
use connection::{Failed, Served};
use keepalive::KeepAlive;

/// Serve HTTP/2 on `io` (the client's preface not yet read) until the
/// connection ends; `alive` is its count in `Shared::connections`. The
/// drain signal and the watchdog end it as `h2_server::serve` ends one.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    io: S,
    conn: ConnInfo,
    mut stop: watch::Receiver<bool>,
    alive: Arc<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _alive = alive;
    let remote = conn.remote;
    let io = limits::Tracked::new(io, conn.state.clone(), conn.smuggling.clone());
    let watchdog = limits::Watchdog::new(&shared.limits, conn.state.clone());
    let stats = shared.downstream.clone();
    stats.cx_active.inc();
    let keepalive = shared.limits.http2_keepalive_interval.map(|interval| {
        let timeout = limits::config::HTTP2_KEEPALIVE_TIMEOUT;
        KeepAlive::new(interval, timeout, conn.state.clone())
    });
    let config = settings::config(&shared.limits);
    let new_stream = {
        let shared = shared.clone();
        let conn = conn.clone();
        move |parts, body| handler::handle(shared.clone(), conn.clone(), parts, body)
    };
    let mut served = Served::new(io, config, keepalive, new_stream);
    let ended = super::until_ended(&mut served, &mut stop, &watchdog, &stats, remote).await;
    match ended {
        Ok(()) => {}
        Err(Failed::Protocol(e)) => {
            tracing::debug!(error = ?e, %remote, "downstream connection ended with an error");
        }
        Err(Failed::Io(e)) => {
            tracing::debug!(error = %e, %remote, "downstream connection broke");
        }
        Err(Failed::KeepAliveTimedOut) => {
            tracing::debug!(%remote, "HTTP/2 keep-alive timed out, connection closed");
        }
    }
    stats.cx_active.dec();
}
