//! Envoy's tcp_proxy for gateway TCP servers, the sidecar listener's TCP
//! services (`serve_sidecar`, by destination address) and, through
//! `forward`, TLS streams routed by SNI (`passthrough`): pick a destination by weight,
//! a host through the cluster's runtime state (load balancer, outlier
//! detection), take a `maxConnections` unit, connect within the connect
//! timeout, then copy bytes both ways until both sides have closed.
//!
//! Half-close is propagated as Envoy does: when one side sends FIN, the
//! proxy shuts down its write half toward the other side and keeps the
//! opposite direction flowing until that side sends its own FIN. A read or
//! write error (a reset) ends the connection in both directions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::access_log::{Entry, format_time};
use super::flags::Flags;
use super::{Shared, ejection, upstream};
use crate::cluster::limits::{Permit, ResourceLimit};
use crate::cluster::outlier::HostOutcome;
use crate::cluster::same_policy;
use crate::cluster::{Pick, PickError};
use crate::compile::cluster_policy::{ClusterPolicy, PoolSettings};
use crate::compile::gateway::{PortKind, TcpDestination};
use crate::compile::sni::pick_destination;
use crate::compile::{Cluster, Snapshot};

/// Bytes read at a time in each direction.
const BUF: usize = 16 * 1024;

/// `connectionPool.tcp.maxConnections` per cluster for proxied TCP
/// connections, kept across reloads while the cluster's policy is unchanged.
#[derive(Default)]
pub struct TcpLimits {
    by_cluster: Mutex<HashMap<Arc<str>, ClusterLimit>>,
}

/// The policy a cluster's connection limit was built from, and the limit.
type ClusterLimit = (Arc<ClusterPolicy>, Arc<ResourceLimit>);

impl TcpLimits {
    fn permit(&self, cluster: &Cluster, max: usize) -> Option<Permit> {
        let mut map = self.by_cluster.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(cluster.name.clone())
            .or_insert_with(|| (cluster.policy.clone(), new_resource(max)));
        if !same_policy(&entry.0, &cluster.policy) {
            *entry = (cluster.policy.clone(), new_resource(max));
        }
        entry.1.try_acquire()
    }
}

fn new_resource(max: usize) -> Arc<ResourceLimit> {
    ResourceLimit::new(u32::try_from(max).unwrap_or(u32::MAX))
}

/// What ended a proxied connection, for the log.
struct Done {
    flags: Flags,
    details: Option<String>,
}

/// A downstream connection's log entry while it is proxied.
pub(crate) struct Conn {
    pub entry: Entry,
    started: Instant,
}

impl Conn {
    pub(crate) fn new(down: &TcpStream, remote: SocketAddr) -> Conn {
        Conn::at(down.local_addr().unwrap_or(remote), remote)
    }

    /// A connection accepted on `local` from `remote`.
    pub(crate) fn at(local: SocketAddr, remote: SocketAddr) -> Conn {
        Conn {
            entry: Entry {
                start_time: format_time(SystemTime::now()),
                method: "-".into(),
                path: "-".into(),
                protocol: "-",
                downstream_local_address: local.to_string(),
                downstream_remote_address: remote.to_string(),
                ..Default::default()
            },
            started: Instant::now(),
        }
    }

    /// No filter chain takes the connection: Envoy closes it, and Istio's
    /// listener access log records it with flag NR.
    pub(crate) fn no_route(mut self, shared: &Shared) {
        self.entry.response_flags = Flags::NO_ROUTE_FOUND;
        self.entry.response_code_details = "filter_chain_not_found".into();
        finish(shared, self.entry, self.started, None);
    }
}

/// Proxy one accepted connection on gateway TCP port `port`. Never fails:
/// every outcome ends in a close and an access-log entry.
pub async fn serve(
    shared: Arc<Shared>,
    limits: Arc<TcpLimits>,
    down: TcpStream,
    remote: SocketAddr,
    port: u16,
) {
    let conn = Conn::new(&down, remote);
    let snapshot = shared.snapshot.load_full();
    match snapshot.gateway.ports.get(&port).map(|p| &p.kind) {
        Some(PortKind::Tcp(Some(r))) if !r.destinations.is_empty() => {
            let name = format!("{}#tcp[{}]", r.virtual_service, r.rule_index);
            let route = Route {
                name,
                destinations: &r.destinations,
            };
            forward(&shared, &limits, &snapshot, down, conn, route, Vec::new()).await;
        }
        // Istio builds no filter chain: Envoy closes the connection.
        _ => conn.no_route(&shared),
    }
}

/// The destination of a sidecar connection, as Envoy's `original_dst`
/// listener filter restores it: `SO_ORIGINAL_DST` when iptables
/// redirected the connection, else the socket's local address.
pub(crate) fn original_destination(down: &TcpStream, local: SocketAddr) -> SocketAddr {
    #[cfg(target_os = "linux")]
    {
        let sock = socket2::SockRef::from(down);
        let got = if local.is_ipv4() {
            sock.original_dst_v4()
        } else {
            sock.original_dst_v6()
        };
        if let Some(a) = got.ok().and_then(|a| a.as_socket()) {
            return a;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = down;
    local
}

/// A sidecar connection whose destination is a TCP service's address
/// (`Snapshot::tcp`, picked by `chain`): proxied at once, never sniffed.
pub(crate) async fn serve_sidecar(
    shared: Arc<Shared>,
    down: TcpStream,
    remote: SocketAddr,
    destination: SocketAddr,
    snapshot: Arc<Snapshot>,
    alive: Arc<()>,
) {
    let _alive = alive;
    let mut conn = Conn::new(&down, remote);
    conn.entry.downstream_local_address = destination.to_string();
    let Some((_, chain)) = snapshot.tcp.select(destination) else {
        conn.no_route(&shared);
        return;
    };
    let route = Route {
        name: chain.name(),
        destinations: &chain.destinations,
    };
    let limits = shared.tcp.clone();
    forward(&shared, &limits, &snapshot, down, conn, route, Vec::new()).await;
}

/// A downstream stream `forward` proxies: a TCP stream, or the decrypted
/// stream of a `TLS` gateway server terminating TLS.
pub(crate) trait Downstream: Send + 'static {
    type Read: AsyncRead + Unpin + Send;
    type Write: AsyncWrite + Unpin + Send;
    fn halves(self) -> (Self::Read, Self::Write);
}

impl Downstream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl<S> Downstream for tokio_rustls::server::TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// The tcp_proxy a connection goes through.
pub(crate) struct Route<'a> {
    /// For the access log's `route_name`.
    pub name: String,
    pub destinations: &'a [TcpDestination],
}

/// Proxy `down` through `route`: pick a destination by weight and a host of
/// its cluster, connect, send `initial` (bytes already read from `down`,
/// such as a ClientHello looked at for its SNI), then copy both ways.
/// Ends with the access-log entry.
pub(crate) async fn forward<D: Downstream>(
    shared: &Shared,
    limits: &TcpLimits,
    snapshot: &Snapshot,
    down: D,
    conn: Conn,
    route: Route<'_>,
    initial: Vec<u8>,
) {
    let Conn { mut entry, started } = conn;
    entry.route_name = Some(route.name);
    let Some(dest) = pick_destination(route.destinations, |total| {
        crate::cluster::random::random_range(0..total)
    }) else {
        // A rule whose destinations name no known service: the cluster
        // does not exist (Envoy's tcp_proxy closes, NC).
        entry.response_flags = Flags::NO_CLUSTER_FOUND;
        entry.response_code_details = "cluster_not_found".into();
        finish(shared, entry, started, None);
        return;
    };
    entry.upstream_cluster = Some(dest.cluster.name.to_string());
    let Some(cluster) = snapshot.clusters.get(&dest.cluster.cluster).cloned() else {
        entry.response_flags = Flags::NO_CLUSTER_FOUND;
        entry.response_code_details = "cluster_not_found".into();
        finish(shared, entry, started, None);
        return;
    };
    let metric = cluster.metric.clone();
    shared.metrics.tcp_opened(&metric);
    let done = proxy(shared, limits, &cluster, dest, down, initial, &mut entry).await;
    entry.response_flags = done.flags;
    entry.connection_termination_details = done.details;
    finish(shared, entry, started, Some(&metric));
}

/// Write the access-log entry and the close metrics.
fn finish(
    shared: &Shared,
    mut entry: Entry,
    started: Instant,
    metric: Option<&crate::metrics::Destination>,
) {
    entry.duration = started.elapsed().as_millis() as u64;
    if let Some(m) = metric {
        shared.metrics.tcp_closed(
            m,
            entry.response_flags,
            entry.bytes_sent,
            entry.bytes_received,
        );
    }
    if shared.access_log.enabled() {
        shared.access_log.log(&entry);
    }
}

async fn proxy<D: Downstream>(
    shared: &Shared,
    limits: &TcpLimits,
    cluster: &Arc<Cluster>,
    dest: &TcpDestination,
    down: D,
    initial: Vec<u8>,
    entry: &mut Entry,
) -> Done {
    let fail = |flags: Flags| Done {
        flags,
        details: None,
    };
    let settings = &cluster.policy.pool;
    let stats = crate::metrics::Metrics::cluster(&cluster.name);
    let state = shared.clusters.state_for(cluster);
    let host = match state.pick(&Pick::new(Instant::now(), &[])) {
        Ok(h) => h,
        Err(PickError::NoHost | PickError::Passthrough) => {
            entry.response_code_details = "no_healthy_upstream".into();
            return fail(Flags::NO_HEALTHY_UPSTREAM);
        }
    };
    let Some(_permit) = limits.permit(cluster, settings.max_connections) else {
        // Envoy's TCP pool: a connection needed at `maxConnections`.
        shared
            .metrics
            .upstream_cx_overflow
            .get_or_create(&stats)
            .inc();
        shared
            .metrics
            .upstream_rq_pending_overflow
            .get_or_create(&stats)
            .inc();
        entry.response_code_details = "overflow".into();
        return fail(Flags::UPSTREAM_OVERFLOW);
    };
    let endpoint = host.authority().clone();
    entry.upstream_host = Some(endpoint.to_string());
    let _active = host.begin();
    let up = match connect(&endpoint, settings).await {
        Ok(s) => s,
        Err(reason) => {
            shared
                .metrics
                .upstream_cx_connect_fail
                .get_or_create(&stats)
                .inc();
            ejection::record(
                shared,
                &state,
                cluster,
                &stats,
                &host,
                HostOutcome::LocalOriginFailure,
            );
            entry.upstream_transport_failure_reason = Some(reason);
            return fail(Flags::UPSTREAM_CONNECTION_FAILURE);
        }
    };
    // Envoy reports a successful connect to outlier detection (a success
    // resets the consecutive-failure counters).
    ejection::record(shared, &state, cluster, &stats, &host, HostOutcome::Success);
    entry.upstream_local_address = up.local_addr().ok().map(|a| a.to_string());
    let gauge = shared
        .metrics
        .upstream_cx_active
        .get_or_create(&stats)
        .clone();
    gauge.inc();
    let sent = AtomicU64::new(0);
    let received = AtomicU64::new(initial.len() as u64);
    let mut up = up;
    let details = match up.write_all(&initial).await {
        Ok(()) => copy_both_ways(down, up, dest.idle_timeout, &sent, &received).await,
        Err(e) => Some(format!("downstream_to_upstream: {e}")),
    };
    gauge.dec();
    entry.bytes_sent = sent.load(Ordering::Relaxed);
    entry.bytes_received = received.load(Ordering::Relaxed);
    Done {
        flags: Flags::NONE,
        details,
    }
}

/// TCP connect within `connectTimeout`, with `tcpKeepalive`.
async fn connect(endpoint: &str, settings: &PoolSettings) -> Result<TcpStream, String> {
    let work = upstream::open_tcp(endpoint, settings.keepalive.as_ref());
    match tokio::time::timeout(settings.connect_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err("connection timeout".to_string()),
    }
}

/// Last activity in either direction, as milliseconds since `start`.
struct Activity {
    start: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `timeout`; never without one.
    async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// Copy one direction until its FIN, then send FIN on.
async fn pipe<R, W>(
    mut from: R,
    mut to: W,
    bytes: &AtomicU64,
    activity: &Activity,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
    }
}

/// Both directions until both have sent FIN, either fails, or nothing
/// moved for `idle_timeout`. Returns why it ended when that was not two
/// clean FINs.
pub(crate) async fn copy_both_ways<D: Downstream>(
    down: D,
    up: TcpStream,
    idle_timeout: Option<Duration>,
    sent: &AtomicU64,
    received: &AtomicU64,
) -> Option<String> {
    let activity = Activity {
        start: tokio::time::Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (down_r, down_w) = down.halves();
    let (up_r, up_w) = up.into_split();
    let to_upstream = pipe(down_r, up_w, received, &activity);
    let to_downstream = pipe(up_r, down_w, sent, &activity);
    tokio::pin!(to_upstream, to_downstream);
    let (mut up_done, mut down_done) = (false, false);
    let idle = activity.idle(idle_timeout);
    tokio::pin!(idle);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut to_upstream, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(e) => return Some(format!("downstream_to_upstream: {e}")),
            },
            r = &mut to_downstream, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(e) => return Some(format!("upstream_to_downstream: {e}")),
            },
            _ = &mut idle => return Some("idle_timeout".to_string()),
        }
    }
    None
}
