//! The listeners of a gateway workload (`strait run --gateway`): one per
//! server port of the Gateways that select the proxy's labels, bound when
//! the proxy starts. Plain-text HTTP ports serve requests with the port's
//! route table (the request path is the sidecar's, `handler::handle`); TCP
//! ports run `tcp::serve`. The kind of a port and its routes are read from
//! the live snapshot per connection (TCP) or per request (HTTP), so reloads
//! apply; a port added by a reload needs a restart to be bound.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Shared;
use super::tcp::{self, TcpLimits};

/// Where the gateway's server ports listen.
#[derive(Debug, Clone)]
pub struct Bind {
    /// The address every gateway port binds (`--gateway-address`).
    pub address: IpAddr,
    /// Server port → local port (`--gateway-port 80=8080`; `0` picks a
    /// free port). Other ports listen on server port + `offset`.
    pub ports: BTreeMap<u16, u16>,
    /// `--port-offset`: added to server ports without a mapping.
    pub offset: u16,
}

impl Default for Bind {
    fn default() -> Self {
        Bind {
            address: IpAddr::from([127, 0, 0, 1]),
            ports: BTreeMap::new(),
            offset: 0,
        }
    }
}

/// One bound gateway port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// The Gateway server port number.
    pub server_port: u16,
    /// The first server's protocol (`HTTP`, `TCP`, ...).
    pub protocol: &'static str,
    /// The Gateways (`namespace/name`) with servers on the port.
    pub gateways: Vec<String>,
    /// Where it listens.
    pub address: SocketAddr,
}

/// Bind every server port of the current snapshot and serve them until
/// `shutdown`. Binds all ports before serving any, so an error (port in
/// use, no permission for a port below 1024) leaves nothing half-started.
pub async fn start(
    shared: &Arc<Shared>,
    bind: &Bind,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Vec<Listening>> {
    let snapshot = shared.snapshot.load_full();
    let mut bound = Vec::new();
    for (&port, gp) in &snapshot.gateway.ports {
        let local = match bind.ports.get(&port) {
            Some(p) => *p,
            None => port.checked_add(bind.offset).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "gateway port {port} + --port-offset {} is over 65535: lower the offset or map the port with --gateway-port {port}=LOCAL",
                        bind.offset
                    ),
                )
            })?,
        };
        let addr = SocketAddr::new(bind.address, local);
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "gateway port {port} ({}) on {addr}: {e}; map it elsewhere with --gateway-port {port}=LOCAL or --port-offset",
                    gp.protocol.as_str()
                ),
            )
        })?;
        let mut gateways: Vec<String> = gp.servers.iter().map(|s| s.gateway.clone()).collect();
        gateways.dedup();
        bound.push((
            Listening {
                server_port: port,
                protocol: gp.protocol.as_str(),
                gateways,
                address: listener.local_addr()?,
            },
            listener,
        ));
    }
    let limits = Arc::new(TcpLimits::default());
    let mut out = Vec::with_capacity(bound.len());
    for (info, listener) in bound {
        tokio::spawn(accept_loop(
            listener,
            info.server_port,
            shared.clone(),
            limits.clone(),
            shutdown.clone(),
        ));
        out.push(info);
    }
    Ok(out)
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    shared: Arc<Shared>,
    limits: Arc<TcpLimits>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(shared.limits.builder());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, never exit.
                tracing::warn!(error = %e, port, "gateway accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !super::admit(&shared) {
            drop(stream);
            continue;
        }
        let is_http = shared.snapshot.load().gateway.http(port).is_some();
        if !is_http {
            let _ = stream.set_nodelay(true);
            let alive = shared.connections.clone();
            let (shared, limits) = (shared.clone(), limits.clone());
            tokio::spawn(async move {
                let _alive = alive;
                tcp::serve(shared, limits, stream, remote, port).await;
            });
            continue;
        }
        super::spawn_http(&shared, &builder, stream, remote, Some(port), &shutdown);
    }
}
