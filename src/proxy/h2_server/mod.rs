//! The downstream side of HTTP/2 (h2c with prior knowledge, and h2 over TLS
//! after ALPN) on the `h2` crate directly (issue #15): one task per
//! connection, which accepts streams and polls their futures itself. No
//! task, tracing span or boxed request future per stream, as hyper's server
//! has; its behaviour is kept (each file names the part of hyper it
//! follows). One job per module:
//!
//! - [`settings`]: the h2 builder with every downstream limit.
//! - [`connection`]: the connection's future (accept, poll the streams, the
//!   keep-alive, GOAWAY).
//! - [`cork`]: the connection's writes held for a pass, written at its end.
//! - [`keepalive`]: the keep-alive PING and its timeout.
//! - [`stream`]: one stream's request through `handler::handle` and its
//!   response sent.
//! - [`request_body`]: the request body over h2's `RecvStream`.
//! - [`response`]: the response head as HTTP/2 allows it.
//! - [`send_body`]: the response body sent with back-pressure.

mod connection;
mod cork;
mod keepalive;
mod request_body;
mod response;
mod send_body;
mod settings;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::Shared;
use super::handler::ConnInfo;
use super::limits;
use connection::{Failed, Served};
use keepalive::KeepAlive;

/// Serve HTTP/2 on `io` (the client's preface not yet read) until the
/// connection ends; `alive` is its count in `Shared::connections`. The
/// drain signal and the watchdog end it as `proxy::serve_http` ends one.
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
    let (io, cork) = cork::cork(io);
    let watchdog = limits::Watchdog::new(&shared.limits, conn.state.clone());
    let stats = shared.downstream.clone();
    stats.cx_active.inc();
    let handshake = settings::builder(&shared.limits).handshake::<_, Bytes>(io);
    // Before the client's SETTINGS there is nothing to say GOAWAY on.
    let started = tokio::select! {
        r = handshake => r.map_err(|e| tracing::debug!(error = %e, %remote, "HTTP/2 handshake failed")).ok(),
        _ = stop.changed() => None,
        why = watchdog.expired() => {
            stats.count_expired(why);
            None
        }
    };
    let Some(mut h2) = started else {
        stats.cx_active.dec();
        return;
    };
    let keepalive = shared.limits.http2_keepalive_interval.and_then(|interval| {
        let pings = h2.ping_pong()?;
        let timeout = limits::config::HTTP2_KEEPALIVE_TIMEOUT;
        Some(KeepAlive::new(pings, interval, timeout, conn.state.clone()))
    });
    let new_stream = {
        let shared = shared.clone();
        move |request, respond| stream::serve(shared.clone(), conn.clone(), request, respond)
    };
    let mut served = Served::new(h2, cork, keepalive, new_stream);
    let ended = super::until_ended(&mut served, &mut stop, &watchdog, &stats, remote).await;
    match ended {
        Ok(()) => {}
        Err(Failed::H2(e)) => {
            tracing::debug!(error = %e, %remote, "downstream connection ended with an error");
        }
        Err(Failed::Io(e)) => {
            tracing::debug!(error = %e, %remote, "writing to the downstream connection failed");
        }
        Err(Failed::KeepAliveTimedOut) => {
            tracing::debug!(%remote, "HTTP/2 keep-alive timed out, connection closed");
        }
    }
    stats.cx_active.dec();
}
