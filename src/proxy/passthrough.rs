//! TLS passthrough: the connection's ClientHello is read without
//! terminating TLS (Envoy's `tls_inspector`, `client_hello`), its SNI picks
//! a filter chain (`compile::sni`), and the TLS stream goes to the chain's
//! destination untouched through `tcp::forward` (the bytes read are sent
//! first), or, on a gateway port where HTTPS servers sit beside
//! passthrough routes, to `tls_server` with the bytes replayed. No chain
//! for the SNI (or for none): the connection is closed and logged with
//! flag NR, as Envoy does when no filter chain matches.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Shared;
use super::client_hello::{Inspect, MAX_BUFFERED, inspect};
use super::tcp::{self, Conn, TcpLimits};
use super::tls_server::{self, Peer};
use crate::compile::gateway::{Chain, PortKind};
use crate::compile::sni;

/// Bytes read at a time while the ClientHello is incomplete.
const READ: usize = 4096;

/// The start of a TLS connection, read up to the end of its ClientHello.
#[derive(Debug)]
pub(crate) struct Hello {
    /// Everything read so far (to be sent on first).
    pub bytes: Vec<u8>,
    /// The SNI; `None` when the client sent none, or the bytes are not a
    /// (parsable) ClientHello.
    pub sni: Option<String>,
}

/// Why no ClientHello came.
#[derive(Debug)]
pub(crate) enum NoHello {
    /// Closed, or failed, before a complete ClientHello.
    Closed,
    /// The listener filters timeout ran out.
    TimedOut,
}

/// Read the ClientHello of `stream` within `timeout`, bounded by
/// [`MAX_BUFFERED`].
pub(crate) async fn read_hello(
    stream: &mut TcpStream,
    timeout: Option<Duration>,
) -> Result<Hello, NoHello> {
    let work = async {
        let mut bytes: Vec<u8> = Vec::with_capacity(READ);
        loop {
            let len = bytes.len();
            let room = READ.min(MAX_BUFFERED - len);
            bytes.resize(len + room, 0);
            let n = match stream.read(&mut bytes[len..]).await {
                Ok(0) | Err(_) => return Err(NoHello::Closed),
                Ok(n) => n,
            };
            bytes.truncate(len + n);
            match inspect(&bytes) {
                Inspect::NeedMore => continue,
                Inspect::Tls { sni } => return Ok(Hello { bytes, sni }),
                Inspect::NotTls => return Ok(Hello { bytes, sni: None }),
            }
        }
    };
    match timeout {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .unwrap_or(Err(NoHello::TimedOut)),
        None => work.await,
    }
}

/// An accepted connection of gateway passthrough port `port`, in its own
/// task.
pub(crate) fn spawn_gateway(
    shared: &Arc<Shared>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    limits: &Arc<TcpLimits>,
    mut stream: TcpStream,
    remote: SocketAddr,
    port: u16,
    draining: &watch::Receiver<bool>,
) {
    let alive = shared.connection_guard();
    let _ = stream.set_nodelay(true);
    let (shared, builder, limits) = (shared.clone(), builder.clone(), limits.clone());
    let draining = draining.clone();
    tokio::spawn(async move {
        let mut conn = Conn::new(&stream, remote);
        let local = stream.local_addr().unwrap_or(remote);
        let Some(hello) = hello_or_close(&shared, &mut stream, remote).await else {
            return;
        };
        conn.entry.requested_server_name = hello.sni.clone();
        let snapshot = shared.snapshot.load_full();
        let chain = match snapshot.gateway.ports.get(&port).map(|p| &p.kind) {
            Some(PortKind::Passthrough(p)) => p.select(hello.sni.as_deref()),
            _ => None,
        };
        match chain {
            None => conn.no_route(&shared),
            Some(Chain::Route(r)) => {
                let route = tcp::Route {
                    name: r.name(),
                    destinations: &r.destinations,
                };
                let _alive = alive;
                tcp::forward(
                    &shared,
                    &limits,
                    &snapshot,
                    stream,
                    conn,
                    route,
                    hello.bytes,
                )
                .await;
            }
            Some(Chain::Terminate(_)) => {
                let peer = Peer {
                    local,
                    remote,
                    port,
                };
                let replay = Replay::new(hello.bytes, stream);
                drop(snapshot);
                tls_server::serve(shared, builder, replay, peer, draining, alive).await;
            }
        }
    });
}

/// A TLS connection on the sidecar listener: its SNI picks one of the
/// snapshot's TLS routes (`Snapshot::tls`), whose destination gets the
/// stream untouched; no route closes it (NR).
pub(crate) async fn serve_sidecar(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    remote: SocketAddr,
    alive: Arc<()>,
) {
    let _alive = alive;
    let mut conn = Conn::new(&stream, remote);
    let Some(hello) = hello_or_close(&shared, &mut stream, remote).await else {
        return;
    };
    conn.entry.requested_server_name = hello.sni.clone();
    let snapshot = shared.snapshot.load_full();
    let routes = &snapshot.tls;
    let picked = sni::select(
        routes.iter().map(|r| (r.sni.as_slice(), r)),
        hello.sni.as_deref(),
    );
    match picked {
        None => conn.no_route(&shared),
        Some(r) => {
            let route = tcp::Route {
                name: r.name(),
                destinations: &r.destinations,
            };
            let limits = shared.tcp.clone();
            tcp::forward(
                &shared,
                &limits,
                &snapshot,
                stream,
                conn,
                route,
                hello.bytes,
            )
            .await;
        }
    }
}

/// The ClientHello of a new connection, or `None` once the connection is
/// closed for not sending one in time (Envoy closes the socket: no access
/// log entry, `downstream_pre_cx_timeout` counted on a timeout).
pub(crate) async fn hello_or_close(
    shared: &Shared,
    stream: &mut TcpStream,
    remote: SocketAddr,
) -> Option<Hello> {
    match read_hello(stream, shared.limits.listener_filters_timeout).await {
        Ok(h) => Some(h),
        Err(why) => {
            if matches!(why, NoHello::TimedOut) {
                shared.downstream.pre_cx_timeout.inc();
            }
            tracing::debug!(%remote, ?why, "connection closed before a TLS ClientHello");
            None
        }
    }
}

/// A stream whose first bytes were read already: they are read again
/// first, then the stream's own.
pub(crate) struct Replay<S> {
    first: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub(crate) fn new(first: Vec<u8>, inner: S) -> Replay<S> {
        Replay {
            first,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.first.len() {
            let n = buf.remaining().min(this.first.len() - this.at);
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            if this.at == this.first.len() {
                this.first = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
