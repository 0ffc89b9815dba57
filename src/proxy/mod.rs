//! The data plane: listeners, HTTP/1.1 and h2c on one port (auto-detected),
//! the request path, upstream connections, and the admin listener.
//! The request path only reads the current [`Snapshot`] (one atomic load).

pub mod access_log;
pub mod admin;
pub mod body;
pub mod client_hello;
pub mod clock;
pub mod codec_error;
// Response flags sit below `metrics`; re-exported for the request path.
pub use crate::flags;
pub mod ejection;
pub mod exchange;
pub mod forward;
pub mod gateway;
pub mod h1_client;
mod h1_server;
mod h2_codec_server;
mod h2_server;
pub mod handler;
pub mod hop_by_hop;
pub mod limits;
pub mod local_reply;
pub mod page;
pub mod passthrough;
pub mod sniff;
pub mod status;
pub mod tcp;
pub mod tls;
pub mod tls_server;
pub mod upstream;
pub mod workers;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::compile::Snapshot;
use crate::config::ConfigSet;
use access_log::AccessLog;
use handler::ConnInfo;
pub use limits::{DownstreamLimits, Http2Server};
use status::{Rejected, Status};
use upstream::Upstreams;

/// State shared by every connection.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    /// Per-cluster runtime state (hosts, balancers, circuit breakers),
    /// reconciled with every installed snapshot.
    pub clusters: crate::cluster::Registry,
    pub upstreams: Upstreams,
    pub access_log: AccessLog,
    /// True once the first configuration is live.
    pub ready: AtomicBool,
    pub metrics: crate::metrics::Metrics,
    /// The live configuration's version and the last rejected change (admin
    /// API; never read on the request path).
    pub status: Mutex<Status>,
    /// One clone per open downstream connection, for draining.
    connections: Arc<()>,
    /// Downstream limits, fixed at start.
    pub limits: DownstreamLimits,
    /// The overload guard (memory watermark).
    pub overload: limits::Overload,
    /// Downstream connection and request counters.
    pub downstream: limits::DownstreamStats,
    /// Per-worker counters (empty off `workers::start_workers`).
    pub workers: workers::WorkerStats,
    /// The gateway's listener set (`--gateway`), reconciled on install.
    pub gateway: std::sync::OnceLock<Arc<gateway::Listeners>>,
    /// `maxConnections` of proxied TCP and TLS streams, per cluster, on
    /// every listener.
    pub(crate) tcp: Arc<tcp::TcpLimits>,
    /// Where the sidecar (`--listen`) and admin listeners are bound.
    pub addresses: std::sync::OnceLock<(SocketAddr, SocketAddr)>,
    /// The configuration source's own state for `/config_dump` (the
    /// Kubernetes watches' sync state), read when asked.
    pub source_state: std::sync::OnceLock<SourceState>,
    /// The source's watch metrics, refreshed from `source_state` at scrape time.
    pub source_stats: status::SourceStats,
}

/// Reads a source's live state (the proxy sits below the sources).
pub type SourceState = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

impl Shared {
    pub fn new(snapshot: Snapshot, access_log: AccessLog) -> Arc<Shared> {
        Self::with_limits(snapshot, access_log, DownstreamLimits::default())
    }

    pub fn with_limits(
        snapshot: Snapshot,
        access_log: AccessLog,
        limits: DownstreamLimits,
    ) -> Arc<Shared> {
        Self::build(snapshot, access_log, limits, 0)
    }

    /// Shared state for `workers` worker threads (0: a proxy on one
    /// runtime, whatever its threads).
    pub fn build(
        snapshot: Snapshot,
        access_log: AccessLog,
        limits: DownstreamLimits,
        workers: usize,
    ) -> Arc<Shared> {
        let source =
            crate::metrics::Source::new(&snapshot.identity.namespace, &snapshot.identity.labels);
        let clusters = crate::cluster::Registry::new();
        clusters.reconcile(&snapshot);
        let mut metrics = crate::metrics::Metrics::new(source);
        let downstream = limits::DownstreamStats::default();
        downstream.register(&mut metrics);
        let worker_stats = workers::WorkerStats::new(workers, &mut metrics);
        let source_stats = status::SourceStats::default();
        source_stats.register(&mut metrics);
        Arc::new(Shared {
            clusters,
            metrics,
            snapshot: ArcSwap::from_pointee(snapshot),
            upstreams: Upstreams::with_workers(workers),
            access_log,
            ready: AtomicBool::new(!limits.start_unready),
            status: Mutex::new(Status::default()),
            connections: Arc::new(()),
            overload: limits::Overload::new(limits.memory_limit),
            limits,
            downstream,
            workers: worker_stats,
            gateway: std::sync::OnceLock::new(),
            tcp: Arc::new(tcp::TcpLimits::default()),
            addresses: std::sync::OnceLock::new(),
            source_state: std::sync::OnceLock::new(),
            source_stats,
        })
    }

    /// A new downstream connection's count (held until it closes).
    pub(crate) fn connection_guard(&self) -> Arc<()> {
        self.connections.clone()
    }

    /// Open downstream connections.
    pub fn open_connections(&self) -> usize {
        Arc::strong_count(&self.connections) - 1
    }

    /// Install a validated configuration; returns its version.
    pub fn install_config(
        &self,
        snapshot: Snapshot,
        config: Arc<ConfigSet>,
        at: String,
        sources: Vec<String>,
    ) -> u64 {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        self.install(snapshot);
        self.metrics.config_update_success.inc();
        Self::record(&mut st, config, at, sources)
    }

    /// Record the configuration the current snapshot was built from
    /// (`sources`: what it was read from, as `Source::describe` says).
    pub fn record_config(&self, config: Arc<ConfigSet>, at: String, sources: Vec<String>) -> u64 {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        Self::record(&mut st, config, at, sources)
    }

    fn record(st: &mut Status, config: Arc<ConfigSet>, at: String, sources: Vec<String>) -> u64 {
        st.version += 1;
        st.loaded_at = at;
        st.paths = sources;
        st.config = config;
        st.version
    }

    /// Count a configuration applied as an endpoint-only change.
    pub fn count_endpoint_update(&self) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.endpoint_updates += 1;
    }

    /// The resources left out of the live configuration.
    pub fn set_rejected_resources(&self, rejected: Vec<String>) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        st.rejected = rejected;
    }

    /// Record a change that did not validate (the live config is untouched).
    pub fn reject_config(&self, r: Rejected) {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        self.metrics.config_update_rejected.inc();
        st.last_rejected = Some(r);
    }

    /// Swap in a new snapshot; in-flight requests keep the one they loaded.
    /// Cluster state is reconciled first, so a request on the new snapshot
    /// finds its cluster's state (unchanged clusters keep theirs).
    pub fn install(&self, snapshot: Snapshot) {
        self.clusters.reconcile(&snapshot);
        let snapshot = Arc::new(snapshot);
        self.snapshot.store(snapshot.clone());
        // After the store: a new port's first connection finds its kind.
        if let Some(g) = self.gateway.get() {
            g.reconcile(&snapshot);
        }
        self.ready.store(true, Ordering::Release);
    }
}

/// Serve the outbound listener until `shutdown` becomes true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    // This listener's HTTP/1.1 connections on this worker: their
    // deadlines and the drain, kept by one task.
    let h1 = Http1::start(&shared, shutdown.clone());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, never exit.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        shared.workers.accepted_here();
        if !admit(&shared) {
            drop(stream);
            continue;
        }
        spawn_sidecar(&shared, &h1, stream, remote);
    }
    h1.patrol.drain();
}

/// What an accept loop's HTTP/1.1 connections share.
pub(crate) struct Http1 {
    /// Their deadlines and the drain.
    pub(crate) patrol: Arc<limits::Patrol>,
    /// The smuggling flag of their `ConnInfo`, never set: strait's codec
    /// refuses those shapes itself (a connection handed to hyper or
    /// the HTTP/2 server gets a flag of its own). One per listener and worker
    /// instead of an allocation per connection.
    unflagged: sniff::Flag,
}

impl Http1 {
    pub(crate) fn start(shared: &Shared, stop: watch::Receiver<bool>) -> Http1 {
        Http1 {
            patrol: limits::Patrol::start(&shared.limits, stop),
            unflagged: sniff::Flag::default(),
        }
    }

    fn conn(&self, local: SocketAddr, remote: SocketAddr, gateway_port: Option<u16>) -> ConnInfo {
        ConnInfo {
            local,
            remote,
            smuggling: self.unflagged.clone(),
            gateway_port,
            state: Arc::default(),
            tls: None,
            head_checked: true,
        }
    }
}

/// An accepted connection of the sidecar listener, in its own task: one
/// whose destination (`tcp::original_destination`) is a TCP service's
/// address and port goes to that service's tcp_proxy at once
/// (`tcp::serve_sidecar`, `Snapshot::tcp`, a task of its own), as Envoy
/// hands it to the listener of that address before any sniffing; the rest
/// go to `h1_server`, which tells a TLS ClientHello (its first byte a
/// handshake record's) from HTTP/1.1 and h2c when the first byte comes, as
/// Istio's protocol sniffing does, within the connection's deadlines and
/// the drain (a connection that sends nothing is closed at the time it has
/// for its first request); TLS is routed by SNI
/// (`passthrough::serve_sidecar`).
fn spawn_sidecar(
    shared: &Arc<Shared>,
    h1: &Http1,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
) {
    let alive = shared.connections.clone();
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(remote);
    if !shared.snapshot.load().tcp.is_empty() {
        let to = tcp::original_destination(&stream, local);
        let snapshot = shared.snapshot.load_full();
        if snapshot.tcp.select(to).is_some() {
            tokio::spawn(clock::Clocked::new(tcp::serve_sidecar(
                shared.clone(),
                stream,
                remote,
                to,
                snapshot,
                alive,
            )));
            return;
        }
    }
    spawn_h1(shared, h1, stream, h1.conn(local, remote, None), alive);
}

/// `h1_server` on an accepted connection, in its own task, on `patrol`.
fn spawn_h1(
    shared: &Arc<Shared>,
    h1: &Http1,
    stream: tokio::net::TcpStream,
    conn: ConnInfo,
    alive: Arc<()>,
) {
    // On the patrol before the task runs: a drain from now on wakes it.
    let watched = h1.patrol.watch(conn.state.clone());
    tokio::spawn(clock::Clocked::new(h1_server::serve(
        shared.clone(),
        stream,
        conn,
        watched,
        alive,
    )));
}

/// Whether a new downstream connection may be served: accept and close at
/// once otherwise (Envoy's global connection limit and overload rejection),
/// so the backlog never fills with clients that would wait for nothing.
pub(crate) fn admit(shared: &Shared) -> bool {
    if shared.open_connections() >= shared.limits.max_connections {
        shared.downstream.cx_overflow.inc();
        return false;
    }
    if shared.overload.active() {
        shared.downstream.cx_overload_reject.inc();
        return false;
    }
    true
}

/// Serve HTTP/1.1 and h2c on an accepted connection, in its own task, with
/// the downstream limits; `gateway_port` selects a gateway port's routes.
pub(crate) fn spawn_http(
    shared: &Arc<Shared>,
    h1: &Http1,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    gateway_port: Option<u16>,
) {
    // Counted before the task runs, so a burst cannot overshoot the cap.
    let alive = shared.connections.clone();
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(remote);
    let conn = h1.conn(local, remote, gateway_port);
    spawn_h1(shared, h1, stream, conn, alive);
}

/// Serve a connection with hyper's auto builder until it ends (`io`: a TCP
/// stream `h1_server` hands over for an upgrade or `CONNECT`, or a TLS
/// stream on an HTTPS gateway port whose ALPN is not `h2`: HTTP/1.1, or h2
/// a client starts without ALPN); `alive` is the connection's count in
/// `Shared::connections`. h2c and h2 by ALPN go to [`serve_h2`].
pub(crate) async fn serve_http<S>(
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: S,
    conn: ConnInfo,
    mut stop: watch::Receiver<bool>,
    alive: Arc<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (local, remote) = (conn.local, conn.remote);
    let stream = limits::Tracked::new(io, conn.state.clone(), conn.smuggling.clone());
    let watchdog = limits::Watchdog::new(&shared.limits, conn.state.clone());
    let accepted_at = std::time::SystemTime::now();
    let shared_log = shared.clone();
    {
        let _alive = alive;
        shared.downstream.cx_active.inc();
        let stats = shared.downstream.clone();
        // `handle`'s future boxed (hyper moves it: an HTTP/2 stream's into
        // its task; a pointer is cheaper to move than kilobytes), mapped to
        // the `http` types hyper takes by a combinator (an async block
        // would hold the future twice).
        let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (parts, body) = req.into_parts();
            futures_util::FutureExt::map(
                Box::pin(handler::handle(
                    shared.clone(),
                    conn.clone(),
                    parts.into(),
                    body,
                )),
                |r| Ok::<_, std::convert::Infallible>(r.into_http()),
            )
        });
        let c = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
        tokio::pin!(c);
        let res = tokio::select! {
            r = c.as_mut() => r,
            _ = stop.changed() => {
                // Drain: finish in-flight requests, take no new ones.
                c.as_mut().graceful_shutdown();
                c.await
            }
            why = watchdog.expired() => {
                tracing::debug!(remote = %remote, reason = ?why, "closing downstream connection");
                match why {
                    limits::Expired::Idle => stats.cx_idle_timeout.inc(),
                    limits::Expired::NoRequest => stats.rq_header_timeout.inc(),
                    limits::Expired::StreamsIdle => stats.rq_idle_timeout.inc(),
                };
                // GOAWAY on HTTP/2 (clients that connected early retry
                // cleanly), bounded since the peer may not read; a
                // stalled peer would not read it at all.
                if why != limits::Expired::StreamsIdle {
                    c.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, c.as_mut()).await;
                }
                Ok(())
            }
        };
        if let Err(e) = res {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            {
                stats.rq_header_timeout.inc();
            }
            codec_error::log(&shared_log, local, remote, accepted_at, e.as_ref());
            tracing::debug!(error = %e, remote = %remote, "downstream connection ended with an error");
        }
        stats.cx_active.dec();
    }
}

/// How long an idle connection may take to say goodbye after GOAWAY.
pub(crate) const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A served HTTP/2 connection that can stop taking streams (GOAWAY).
pub(crate) trait Drain {
    fn graceful_shutdown(&mut self);
}

/// Run a served HTTP/2 connection (either server) until it ends: on the
/// drain signal it finishes its streams and takes no new ones; on the
/// watchdog's verdict it says GOAWAY and gets [`IDLE_CLOSE_GRACE`] to go
/// (none after stalled streams: a stalled peer would not read it).
pub(crate) async fn until_ended<F, E>(
    served: &mut F,
    stop: &mut watch::Receiver<bool>,
    watchdog: &limits::Watchdog,
    stats: &limits::DownstreamStats,
    remote: SocketAddr,
) -> Result<(), E>
where
    F: std::future::Future<Output = Result<(), E>> + Drain + Unpin,
{
    tokio::select! {
        r = &mut *served => r,
        _ = stop.changed() => {
            served.graceful_shutdown();
            (&mut *served).await
        }
        why = watchdog.expired() => {
            tracing::debug!(%remote, reason = ?why, "closing downstream connection");
            stats.count_expired(why);
            if why != limits::Expired::StreamsIdle {
                served.graceful_shutdown();
                let _ = tokio::time::timeout(IDLE_CLOSE_GRACE, &mut *served).await;
            }
            Ok(())
        }
    }
}

/// Serve downstream HTTP/2 (h2c, or h2 by ALPN) with the server
/// `DownstreamLimits::http2_server` picks: `h2_codec_server` (strait's
/// codec, the default) or `h2_server` (the `h2` crate, the way back).
pub(crate) async fn serve_h2<S>(
    shared: Arc<Shared>,
    io: S,
    conn: ConnInfo,
    stop: watch::Receiver<bool>,
    alive: Arc<()>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match shared.limits.http2_server {
        Http2Server::H2 => h2_server::serve(shared, io, conn, stop, alive).await,
        Http2Server::Codec => h2_codec_server::serve(shared, io, conn, stop, alive).await,
    }
}

/// A running proxy (for `run`, `demo` and tests).
pub struct Running {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Running {
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A receiver that sees the shutdown (for listeners started later,
    /// such as the gateway's).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Stop accepting, let in-flight requests finish (up to `bound`).
    /// Returns the connections still open when the bound ran out.
    pub async fn drain(&self, bound: Duration) -> usize {
        self.shutdown();
        let deadline = tokio::time::Instant::now() + bound;
        while self.shared.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.shared.open_connections()
    }
}

/// Bind the listeners and serve in the background.
pub async fn start(
    snapshot: Snapshot,
    listen: SocketAddr,
    admin: SocketAddr,
    access_log: AccessLog,
) -> std::io::Result<Running> {
    start_with_limits(
        snapshot,
        listen,
        admin,
        access_log,
        DownstreamLimits::default(),
    )
    .await
}

/// A bind error naming the flag and address it was for.
pub(crate) fn bind_error(e: std::io::Error, flag: &str, addr: SocketAddr) -> std::io::Error {
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        format!(
            ": another process is listening on it; stop it or choose another address with {flag}"
        )
    } else {
        String::new()
    };
    std::io::Error::new(e.kind(), format!("{flag} {addr}: {e}{hint}"))
}

/// [`start`] with downstream limits other than the defaults.
pub async fn start_with_limits(
    snapshot: Snapshot,
    listen: SocketAddr,
    admin: SocketAddr,
    access_log: AccessLog,
    limits: DownstreamLimits,
) -> std::io::Result<Running> {
    limits
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let shared = Shared::with_limits(snapshot, access_log, limits);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| bind_error(e, "--listen", listen))?;
    let admin_listener = TcpListener::bind(admin)
        .await
        .map_err(|e| bind_error(e, "--admin", admin))?;
    let (tx, rx) = watch::channel(false);
    let running = Running {
        listen: listener.local_addr()?,
        admin: admin_listener.local_addr()?,
        shared: shared.clone(),
        shutdown: tx,
    };
    let _ = shared.addresses.set((running.listen, running.admin));
    tokio::spawn(serve(listener, shared.clone(), rx.clone()));
    tokio::spawn(sample_memory(shared.clone(), rx.clone()));
    tokio::spawn(admin::serve(admin_listener, shared, rx));
    Ok(running)
}

/// The overload guard's only memory reader: one sample per interval, off the
/// request path.
async fn sample_memory(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.limits.memory_sample_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        shared.overload.sample(&shared.downstream);
    }
}
