//! Thread per core (`strait run --workers N`, N > 1), Envoy's and nginx's
//! model: N OS threads, each running a single-threaded runtime with its own
//! listener socket bound with `SO_REUSEPORT` to the same address, so the
//! kernel spreads new connections over the workers and a connection, its
//! requests and its upstream connections stay on one thread (no
//! work-stealing, no cross-thread wake-ups, no contended pool lock).
//!
//! Shared by every worker: the snapshot (one atomic load per request), the
//! cluster runtime state (balancers, outlier detection, `http2MaxRequests`
//! and `maxRetries` counters), the downstream connection cap and the
//! metrics. Per worker: the upstream connection pools, as in Envoy, whose
//! `maxConnections` and pending-request counters stay cluster-wide
//! (`upstream::ClusterWide`).
//!
//! The caller's runtime (the main thread in `strait run`) keeps the admin
//! listener, the memory sampler, the reload watcher and signal handling.
//! Gateway listeners (`gateway::start`) stay there too: a gateway workload
//! serves its ports from that one thread.

use std::cell::Cell;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::access_log::AccessLog;
use super::{DownstreamLimits, Running, Shared};
use crate::compile::Snapshot;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's worker index; `usize::MAX` off the worker threads.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Make the calling thread worker `i` (its upstream pools and counters).
pub(crate) fn enter(i: usize) {
    WORKER.with(|w| w.set(i));
}

/// Per-worker counters (Envoy's `listener.<address>.worker_<N>.*`).
#[derive(Clone, Default)]
pub struct WorkerStats {
    accepted: Vec<Counter>,
}

impl WorkerStats {
    /// Counters for `workers` workers, registered with `metrics`
    /// (nothing for a single-threaded proxy).
    pub fn new(workers: usize, metrics: &mut crate::metrics::Metrics) -> WorkerStats {
        if workers == 0 {
            return WorkerStats::default();
        }
        let family = Family::<Vec<(String, String)>, Counter>::default();
        let accepted = (0..workers)
            .map(|i| {
                family
                    .get_or_create(&vec![("envoy_worker_id".into(), i.to_string())])
                    .clone()
            })
            .collect();
        metrics.register(
            "envoy_listener_worker_downstream_cx",
            "Downstream connections accepted, per worker thread",
            family,
        );
        WorkerStats { accepted }
    }

    /// Count a connection accepted on the calling thread's worker.
    pub(crate) fn accepted_here(&self) {
        if let Some(c) = self.accepted.get(current()) {
            c.inc();
        }
    }

    /// Connections each worker has accepted.
    pub fn accepted(&self) -> Vec<u64> {
        self.accepted.iter().map(Counter::get).collect()
    }
}

/// A proxy serving on `workers` threads, or on the caller's runtime when
/// there is one worker.
pub struct Workers {
    pub running: Running,
    threads: Vec<JoinHandle<()>>,
    /// Ends the worker runtimes (after draining).
    exit: watch::Sender<bool>,
}

impl Workers {
    /// Worker threads running (0 with one worker: it is the caller's).
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Stop accepting on every worker, let in-flight requests finish (up to
    /// `bound`), then stop the worker threads. Returns the connections still
    /// open when the bound ran out (closed by the stop).
    pub async fn drain(self, bound: Duration) -> usize {
        let left = self.running.drain(bound).await;
        let _ = self.exit.send(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        left
    }
}

/// Bind the listeners and serve on `workers` threads. The admin listener and
/// the memory sampler run on the caller's runtime. With one worker this is
/// [`super::start_with_limits`]: everything on the caller's runtime.
pub async fn start_workers(
    snapshot: Snapshot,
    listen: SocketAddr,
    admin: SocketAddr,
    access_log: AccessLog,
    limits: DownstreamLimits,
    workers: usize,
) -> std::io::Result<Workers> {
    let (exit, _) = watch::channel(false);
    if workers <= 1 {
        let running = super::start_with_limits(snapshot, listen, admin, access_log, limits).await?;
        return Ok(Workers {
            running,
            threads: Vec::new(),
            exit,
        });
    }
    limits
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let shared = Shared::build(snapshot, access_log, limits, workers);
    // Every socket and runtime before any thread, so a failure leaves
    // nothing half-started; the first bind resolves port 0 for the rest.
    // The admin socket first: a failure after the runtimes exist would drop
    // them inside this async context (a panic, not an error).
    let admin_listener = TcpListener::bind(admin)
        .await
        .map_err(|e| super::bind_error(e, "--admin", admin))?;
    let first =
        reuse_port_listener(listen).map_err(|e| super::bind_error(e, "--listen", listen))?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(sibling_listener(&listeners[0], bound)?);
    }
    let mut runtimes = Vec::with_capacity(workers);
    for _ in 0..workers {
        runtimes.push(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        );
    }
    let (tx, rx) = watch::channel(false);
    let running = Running {
        listen: bound,
        admin: admin_listener.local_addr()?,
        shared: shared.clone(),
        shutdown: tx,
    };
    let _ = shared.addresses.set((running.listen, running.admin));
    let mut threads = Vec::with_capacity(workers);
    for (i, (listener, rt)) in listeners.into_iter().zip(runtimes).enumerate() {
        let shared = shared.clone();
        let shutdown = rx.clone();
        let mut exit_rx = exit.subscribe();
        let spawned = std::thread::Builder::new()
            .name(format!("strait-worker-{i}"))
            .spawn(move || {
                enter(i);
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => super::serve(l, shared, shutdown).await,
                        Err(e) => tracing::error!(worker = i, error = %e, "worker cannot listen"),
                    }
                    // Connections drain on this runtime: it must outlive
                    // them until the drain is over (or the handle dropped).
                    let _ = exit_rx.wait_for(|stop| *stop).await;
                });
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // Stop the workers already running before reporting.
                running.shutdown();
                let _ = exit.send(true);
                return Err(e);
            }
        }
    }
    tokio::spawn(super::sample_memory(shared.clone(), rx.clone()));
    tokio::spawn(super::admin::serve(admin_listener, shared, rx));
    Ok(Workers {
        running,
        threads,
        exit,
    })
}

/// Refuse an address another process is listening on, before binding it
/// with `SO_REUSEPORT` (which would silently share it with that process:
/// two proxies with different configurations splitting the traffic). A
/// plain socket cannot bind an address any socket is listening on, so a
/// trial bind tells; workers of this process share it afterwards. Port 0
/// is always free.
pub fn refuse_foreign_holder(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As the real bind: a port in TIME_WAIT is free.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            std::io::Error::new(
                e.kind(),
                format!(
                    "--listen {addr}: another process is listening on it; stop it, choose another address, or pass --reuse-port to share it with that process (SO_REUSEPORT)"
                ),
            )
        } else {
            super::bind_error(e, "--listen", addr)
        }
    })
}

/// A listening socket that other workers' sockets may share: the kernel
/// balances new connections over every `SO_REUSEPORT` socket of the address.
fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As tokio's and std's bind: restarts do not wait out TIME_WAIT.
    socket.set_reuse_address(true)?;
    #[cfg(target_os = "linux")]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Another worker's listener on `addr`: its own `SO_REUSEPORT` socket on
/// Linux; elsewhere, where `SO_REUSEPORT` does not balance, a handle on the
/// first socket (the workers then take turns accepting).
fn sibling_listener(
    first: &std::net::TcpListener,
    addr: SocketAddr,
) -> std::io::Result<std::net::TcpListener> {
    if cfg!(target_os = "linux") {
        reuse_port_listener(addr)
    } else {
        first.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_off_the_workers_have_no_index() {
        assert_eq!(current(), usize::MAX);
        let i = std::thread::spawn(|| {
            enter(3);
            current()
        })
        .join()
        .unwrap();
        assert_eq!(i, 3);
        assert_eq!(current(), usize::MAX);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reuse_port_sockets_share_an_address_and_others_cannot_steal_it() {
        let a = reuse_port_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = reuse_port_listener(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // A plain socket (no SO_REUSEPORT) is refused the address.
        assert!(std::net::TcpListener::bind(addr).is_err());
    }

    /// Envoy keeps a connection pool per worker thread but counts
    /// `max_connections` for the whole cluster: each worker gets its own
    /// pool of a cluster, and every pool sees the one count.
    #[test]
    fn pools_are_per_worker_and_their_limits_cluster_wide() {
        use crate::load::{LoadOptions, load_str};
        let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b}
spec:
  hosts: [b.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: p, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec:
  host: b.test
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}
";
        let cfg = load_str(
            yaml,
            "t.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        let snap = crate::compile::compile(&cfg, &Default::default());
        let cluster = snap
            .clusters
            .values()
            .find(|c| c.name.contains("b.test"))
            .unwrap()
            .clone();
        let ups = Arc::new(super::super::upstream::Upstreams::with_workers(2));
        let on = |i: usize| {
            let (ups, cluster) = (ups.clone(), cluster.clone());
            std::thread::spawn(move || {
                enter(i);
                ups.pool(&cluster)
            })
            .join()
            .unwrap()
        };
        let (a, b) = (on(0), on(1));
        assert!(!Arc::ptr_eq(&a, &b), "one pool per worker");
        assert!(Arc::ptr_eq(&a, &on(0)), "a worker keeps its pool");
        assert_eq!(a.settings.max_connections, 3);
        assert_eq!((a.open_connections(), b.open_connections()), (0, 0));
        assert_eq!(ups.open_connections_by_cluster().len(), 1);
    }
}
