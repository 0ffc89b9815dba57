//! The data plane: listeners, HTTP/1.1 and h2c on one port (auto-detected),
//! the request path, upstream connections, and the admin listener.
//! The request path only reads the current [`Snapshot`] (one atomic load).

pub mod access_log;
pub mod admin;
pub mod body;
pub mod codec_error;
pub mod flags;
pub mod forward;
pub mod handler;
pub mod local_reply;
pub mod pool;
pub mod sniff;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::compile::Snapshot;
use crate::config::ConfigSet;
use crate::reload::{Rejected, Status};
use access_log::AccessLog;
use handler::ConnInfo;
use upstream::Upstreams;

/// Istio's default connect timeout (`MeshConfig.connectTimeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Slowloris guard: the whole request head must arrive within this.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest HTTP/1 request head (line + headers); beyond it clients get 431.
pub const MAX_HEADER_BYTES: usize = 60 * 1024;

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
}

impl Shared {
    pub fn new(snapshot: Snapshot, access_log: AccessLog) -> Arc<Shared> {
        let source =
            crate::metrics::Source::new(&snapshot.identity.namespace, &snapshot.identity.labels);
        let clusters = crate::cluster::Registry::new();
        clusters.reconcile(&snapshot);
        Arc::new(Shared {
            clusters,
            metrics: crate::metrics::Metrics::new(source),
            snapshot: ArcSwap::from_pointee(snapshot),
            upstreams: Upstreams::new(DEFAULT_CONNECT_TIMEOUT),
            access_log,
            ready: AtomicBool::new(true),
            status: Mutex::new(Status::default()),
            connections: Arc::new(()),
        })
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
        paths: &[PathBuf],
    ) -> u64 {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        self.install(snapshot);
        self.metrics.config_update_success.inc();
        Self::record(&mut st, config, at, paths)
    }

    /// Record the configuration the current snapshot was built from.
    pub fn record_config(&self, config: Arc<ConfigSet>, at: String, paths: &[PathBuf]) -> u64 {
        let mut st = self.status.lock().unwrap_or_else(|p| p.into_inner());
        Self::record(&mut st, config, at, paths)
    }

    fn record(st: &mut Status, config: Arc<ConfigSet>, at: String, paths: &[PathBuf]) -> u64 {
        st.version += 1;
        st.loaded_at = at;
        st.paths = paths.iter().map(|p| p.display().to_string()).collect();
        st.config = config;
        st.version
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
        self.snapshot.store(Arc::new(snapshot));
        self.ready.store(true, Ordering::Release);
    }
}

/// Serve the outbound listener until `shutdown` becomes true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(1024)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(Some(1024));
    let builder = Arc::new(builder);
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
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(remote);
        let conn = ConnInfo::new(local, remote);
        let stream = sniff::Watched::new(stream, conn.smuggling.clone());
        let shared = shared.clone();
        let shared_log = shared.clone();
        let accepted_at = std::time::SystemTime::now();
        let builder = builder.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let _alive = shared.connections.clone();
            let svc = service_fn(move |req| handler::handle(shared.clone(), conn.clone(), req));
            let c = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::pin!(c);
            let res = tokio::select! {
                r = c.as_mut() => r,
                _ = stop.changed() => {
                    // Drain: finish in-flight requests, take no new ones.
                    c.as_mut().graceful_shutdown();
                    c.await
                }
            };
            if let Err(e) = res {
                codec_error::log(&shared_log, local, remote, accepted_at, e.as_ref());
                tracing::debug!(error = %e, remote = %remote, "downstream connection ended with an error");
            }
        });
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
    let shared = Shared::new(snapshot, access_log);
    let listener = TcpListener::bind(listen).await?;
    let admin_listener = TcpListener::bind(admin).await?;
    let (tx, rx) = watch::channel(false);
    let running = Running {
        listen: listener.local_addr()?,
        admin: admin_listener.local_addr()?,
        shared: shared.clone(),
        shutdown: tx,
    };
    tokio::spawn(serve(listener, shared.clone(), rx.clone()));
    tokio::spawn(admin::serve(admin_listener, shared, rx));
    Ok(running)
}
