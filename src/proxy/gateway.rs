//! The listeners of a gateway workload (`strait run --gateway`): one per
//! server port of the Gateways that select the proxy's labels, following
//! the installed snapshot ([`Listeners`]). Plain-text HTTP ports serve
//! requests with the port's route table (the request path is the sidecar's,
//! `handler::handle`); HTTPS ports terminate TLS first (`tls_server`);
//! passthrough ports route the TLS stream by SNI (`passthrough`); TCP
//! ports run `tcp::serve`. The kind of a port and
//! its routes are read from the live snapshot per connection (the kind) and
//! per request (HTTP routes), so reloads apply without a new socket.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Shared;
use super::tcp::{self, TcpLimits};
use crate::compile::Snapshot;
use crate::compile::gateway::{GatewayPort, PortKind};

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

/// One gateway listener, as `/listeners` and `strait run` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// The Gateway server port number.
    pub server_port: u16,
    /// The first server's protocol (`HTTP`, `TCP`, `TLS`, ...).
    pub protocol: &'static str,
    /// How TLS is handled on the port (`NONE`, `PASSTHROUGH`, ...).
    pub tls_mode: &'static str,
    /// The Gateways (`namespace/name`) with servers on the port.
    pub gateways: Vec<String>,
    /// The servers merged on the port: `namespace/name` of the Gateway,
    /// then `#` and the server's index in `spec.servers` (and its port name).
    pub servers: Vec<String>,
    /// Where it listens.
    pub address: SocketAddr,
}

/// A gateway port that should listen but does not: its bind failed on a
/// reload (the rest of the configuration is served; the bind is tried again
/// on the next reload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    pub server_port: u16,
    pub protocol: &'static str,
    pub address: Option<SocketAddr>,
    pub error: String,
}

/// The gateway's listener set, following the installed snapshot: every
/// install calls [`Listeners::reconcile`], which binds the ports a reload
/// added, stops accepting on the ports it removed (their connections
/// drain: HTTP connections finish their in-flight requests, TCP ones run
/// to their end) and updates what the others show. A port whose servers
/// changed keeps its socket: its accept loop reads the port's kind from
/// the live snapshot per connection, so new connections get the new
/// setting and open ones keep theirs.
pub struct Listeners {
    bind: Bind,
    runtime: tokio::runtime::Handle,
    shutdown: watch::Receiver<bool>,
    limits: Arc<TcpLimits>,
    /// The proxy these listeners serve (they live inside it).
    shared: Weak<Shared>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    open: BTreeMap<u16, Open>,
    failed: BTreeMap<u16, Failed>,
}

struct Open {
    info: Listening,
    /// Ends the port's accept loop (dropped or set: it stops).
    stop: watch::Sender<bool>,
}

impl Listeners {
    /// The listeners bound now, by server port.
    pub fn listening(&self) -> Vec<Listening> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.open.values().map(|o| o.info.clone()).collect()
    }

    /// Ports that should listen but could not be bound.
    pub fn failed(&self) -> Vec<Failed> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.failed.values().cloned().collect()
    }

    /// The local address of server port `port`.
    fn local_address(&self, port: u16) -> Result<SocketAddr, String> {
        let local = match self.bind.ports.get(&port) {
            Some(p) => *p,
            None => port.checked_add(self.bind.offset).ok_or_else(|| {
                format!(
                    "gateway port {port} + --port-offset {} is over 65535: lower the offset or map the port with --gateway-port {port}=LOCAL",
                    self.bind.offset
                )
            })?,
        };
        Ok(SocketAddr::new(self.bind.address, local))
    }

    /// Make the listener set that of `snapshot`. Returns the ports that
    /// could not be bound (also kept for `/listeners` and logged).
    pub fn reconcile(&self, snapshot: &Snapshot) -> Vec<Failed> {
        let Some(shared) = self.shared.upgrade() else {
            return Vec::new();
        };
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ports = &snapshot.gateway.ports;
        let removed: Vec<u16> = st
            .open
            .keys()
            .filter(|p| !ports.contains_key(p))
            .copied()
            .collect();
        for port in removed {
            if let Some(o) = st.open.remove(&port) {
                let _ = o.stop.send(true);
                tracing::info!(port, address = %o.info.address, "gateway port removed: stopped accepting, draining its connections");
            }
        }
        st.failed.clear();
        for (&port, gp) in ports {
            if let Some(o) = st.open.get_mut(&port) {
                let address = o.info.address;
                o.info = describe(gp, address);
                continue;
            }
            let bound = self.local_address(port).and_then(|addr| {
                bind_now(&self.runtime, addr).map_err(|e| {
                    format!(
                        "gateway port {port} ({}) on {addr}: {e}; map it elsewhere with --gateway-port {port}=LOCAL or --port-offset",
                        gp.protocol.as_str()
                    )
                })
            });
            match bound {
                Ok(listener) => {
                    let address = listener.local_addr().unwrap_or(SocketAddr::new(
                        self.bind.address,
                        self.bind.ports.get(&port).copied().unwrap_or(port),
                    ));
                    let (stop, stopped) = watch::channel(false);
                    self.runtime.spawn(accept_loop(
                        listener,
                        port,
                        shared.clone(),
                        self.limits.clone(),
                        self.shutdown.clone(),
                        stopped,
                    ));
                    let info = describe(gp, address);
                    tracing::info!(port, address = %address, protocol = info.protocol, "gateway port listening");
                    st.open.insert(port, Open { info, stop });
                }
                Err(error) => {
                    tracing::warn!(port, %error, "gateway port cannot listen; the rest of the configuration is served");
                    st.failed.insert(
                        port,
                        Failed {
                            server_port: port,
                            protocol: gp.protocol.as_str(),
                            address: self.local_address(port).ok(),
                            error,
                        },
                    );
                }
            }
        }
        st.failed.values().cloned().collect()
    }
}

/// Bind `addr` now (a synchronous socket call), registered with `runtime`.
fn bind_now(runtime: &tokio::runtime::Handle, addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's bind: a port in TIME_WAIT is free.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    let _in = runtime.enter();
    TcpListener::from_std(socket.into())
}

fn describe(gp: &GatewayPort, address: SocketAddr) -> Listening {
    let mut gateways: Vec<String> = gp.servers.iter().map(|s| s.gateway.clone()).collect();
    gateways.dedup();
    Listening {
        server_port: gp.number,
        protocol: gp.protocol.as_str(),
        tls_mode: gp.kind.tls_mode(),
        gateways,
        servers: gp
            .servers
            .iter()
            .map(|s| match &s.port_name {
                Some(n) => format!("{}#{} ({n})", s.gateway, s.index),
                None => format!("{}#{}", s.gateway, s.index),
            })
            .collect(),
        address,
    }
}

/// Bind every server port of the current snapshot and serve them until
/// `shutdown`; from then on the set follows every installed snapshot.
/// Every port must bind at start (port in use, no permission for a port
/// below 1024: an error, nothing left listening); a port a reload adds that
/// cannot be bound is reported in `/listeners` and the log instead.
/// Called inside the tokio runtime the listeners are to run on (their
/// accept loops are spawned on it, now and on every reload); outside one,
/// an error.
pub fn start(
    shared: &Arc<Shared>,
    bind: &Bind,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<Vec<Listening>> {
    let listeners = Arc::new(Listeners {
        bind: bind.clone(),
        runtime: tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?,
        shutdown,
        limits: shared.tcp.clone(),
        shared: Arc::downgrade(shared),
        state: Mutex::new(State::default()),
    });
    let snapshot = shared.snapshot.load_full();
    let failed = listeners.reconcile(&snapshot);
    if let Some(f) = failed.first() {
        let mut st = listeners.state.lock().unwrap_or_else(|p| p.into_inner());
        for (_, o) in std::mem::take(&mut st.open) {
            let _ = o.stop.send(true);
        }
        return Err(std::io::Error::other(f.error.clone()));
    }
    if shared.gateway.set(listeners.clone()).is_err() {
        return Err(std::io::Error::other(
            "the gateway listeners are already started",
        ));
    }
    // A snapshot installed between the first reconcile and `set` would have
    // been missed: reconcile with the live one again (a no-op otherwise).
    let live = shared.snapshot.load_full();
    if !Arc::ptr_eq(&live, &snapshot) {
        listeners.reconcile(&live);
    }
    Ok(listeners.listening())
}

async fn accept_loop(
    listener: TcpListener,
    port: u16,
    shared: Arc<Shared>,
    limits: Arc<TcpLimits>,
    mut shutdown: watch::Receiver<bool>,
    mut removed: watch::Receiver<bool>,
) {
    // For TLS-terminated connections (hyper serves those that are not h2).
    let builder = Arc::new(shared.limits.builder());
    // What this port's HTTP connections drain on: the proxy's shutdown or
    // the port's removal, whichever comes first.
    let (drain, draining) = watch::channel(false);
    // The port's HTTP/1.1 connections: their deadlines and the drain.
    let h1 = super::Http1::start(&shared, draining.clone());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
            _ = removed.changed() => break,
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
        let to = Dispatch {
            builder: &builder,
            limits: &limits,
            h1: &h1,
            draining: &draining,
        };
        serve_connection(&shared, &to, stream, remote, port);
    }
    // Closing the socket here refuses new connections at once.
    drop(listener);
    let _ = drain.send(true);
    h1.patrol.drain();
}

/// What a gateway port's accept loop hands its connections.
struct Dispatch<'a> {
    builder: &'a Arc<hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>>,
    limits: &'a Arc<TcpLimits>,
    h1: &'a super::Http1,
    draining: &'a watch::Receiver<bool>,
}

/// One accepted connection on gateway port `port`, by the kind of the port
/// in the live snapshot: the place each listener kind hooks in.
fn serve_connection(
    shared: &Arc<Shared>,
    to: &Dispatch<'_>,
    stream: TcpStream,
    remote: SocketAddr,
    port: u16,
) {
    let Dispatch {
        builder,
        limits,
        h1,
        draining,
    } = *to;
    let snapshot = shared.snapshot.load();
    match snapshot.gateway.ports.get(&port).map(|p| &p.kind) {
        Some(PortKind::Http(_)) => {
            super::spawn_http(shared, h1, stream, remote, Some(port));
        }
        Some(PortKind::Https(_)) => {
            super::tls_server::spawn(shared, builder, stream, remote, port, draining);
        }
        Some(PortKind::Passthrough(_)) => {
            super::passthrough::spawn_gateway(
                shared, builder, limits, stream, remote, port, draining,
            );
        }
        // TCP, and a port the snapshot no longer has (closed, NR, by
        // `tcp::serve`).
        Some(PortKind::Tcp(_)) | None => {
            let _ = stream.set_nodelay(true);
            let alive = shared.connections.clone();
            let (shared, limits) = (shared.clone(), limits.clone());
            tokio::spawn(super::clock::Clocked::new(async move {
                let _alive = alive;
                tcp::serve(shared, limits, stream, remote, port).await;
            }));
        }
    }
}
