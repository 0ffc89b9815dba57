//! Upstream connections, one pool per cluster configured from its
//! DestinationRule (`connectionPool`, `tls`): HTTP/1.1 keep-alive reuse and
//! multiplexed HTTP/2 (h2c prior knowledge, or h2 over TLS), the
//! cluster-wide `maxConnections` cap with a bounded queue of pending
//! requests (overflow is Envoy's UO), per-connection request and lifetime
//! limits, idle timeouts, TCP keepalive and TLS origination.

use rustc_hash::FxHashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Uri, Version};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::body::{self, Body};
use super::exchange::Reply;
use super::h1_client::{self, Conn as H1Conn, Io};
use super::tls::{self, Origination};
use crate::cluster::same_policy;
use crate::compile::Cluster;
use crate::compile::cluster_policy::{ClusterPolicy, Keepalive, PoolSettings};
use crate::metrics::{ClusterLabels, Metrics};
use crate::route::UpstreamProtocol;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// The cluster counters Envoy's connection pool moves, for one request:
/// `upstream_rq_total` when the request is given a connection (retries and
/// mirrors each count; overflows and failed connects do not), and on the
/// slow path only (a connection to open or a wait at `maxConnections`) the
/// `upstream_rq_pending_*` and `upstream_cx_overflow` series.
pub struct PoolStats<'a> {
    pub rq_total: &'a Counter,
    pub metrics: &'a Metrics,
    pub labels: &'a ClusterLabels,
}

impl PoolStats<'_> {
    /// The request waits for a connection (Envoy's `newPendingStream`).
    fn pending(&self) -> PendingActive {
        self.metrics
            .upstream_rq_pending_total
            .get_or_create(self.labels)
            .inc();
        let gauge = self
            .metrics
            .upstream_rq_pending_active
            .get_or_create(self.labels)
            .clone();
        gauge.inc();
        PendingActive(gauge)
    }

    /// The connection a waiting request needed failed (Envoy's
    /// `purgePendingStreams`).
    fn pending_failed(&self) {
        self.metrics
            .upstream_rq_pending_failure_eject
            .get_or_create(self.labels)
            .inc();
    }

    fn cx_overflow(&self) {
        self.metrics
            .upstream_cx_overflow
            .get_or_create(self.labels)
            .inc();
    }

    fn pending_overflow(&self) {
        self.metrics
            .upstream_rq_pending_overflow
            .get_or_create(self.labels)
            .inc();
    }
}

/// `upstream_rq_pending_active` while a request waits for a connection.
struct PendingActive(Gauge);

impl Drop for PendingActive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Why an upstream exchange failed before response headers.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Could not connect (refused, unreachable, timed out, TLS handshake or
    /// TLS configuration): Envoy's UF.
    Connect(String),
    /// The connection closed or reset before response headers: UC / UR.
    /// `sent` is false when the request never left (safe to retry always).
    Reset { reason: String, sent: bool },
    /// The upstream answered with something that is not HTTP: UPE.
    Protocol(String),
    /// `maxConnections` reached and more requests than
    /// `http1MaxPendingRequests` already waiting: UO.
    Overflow,
}

impl SendError {
    pub fn reason(&self) -> &str {
        match self {
            SendError::Connect(r) | SendError::Protocol(r) => r,
            SendError::Reset { reason, .. } => reason,
            SendError::Overflow => "overflow",
        }
    }
}

/// The request of one upstream attempt, borrowed from the request's plan
/// (every try and mirror shares one head): the HTTP/1.1 client writes it
/// straight into its connection; HTTP/2 and upgrades build an owned
/// request from it.
pub struct Outgoing<'a> {
    pub method: &'a http::Method,
    pub path_and_query: &'a http::uri::PathAndQuery,
    /// Sent as `Host` (HTTP/1.1) or `:authority` (HTTP/2).
    pub authority: &'a HeaderValue,
    /// Every other header (hop-by-hop ones already stripped).
    pub headers: &'a crate::header_list::HeaderList,
    pub body: Body,
}

impl Outgoing<'_> {
    /// The request as `http` types, for hyper's clients (the cluster's
    /// protocol decides the form; `adapt` turns it into another's).
    fn into_request(self, protocol: UpstreamProtocol) -> Result<Request<Body>, SendError> {
        let bad = |e: &dyn std::fmt::Display| {
            SendError::Protocol(format!("invalid upstream request: {e}"))
        };
        let (uri, version) = match protocol {
            UpstreamProtocol::H2c => (
                Uri::builder()
                    .scheme("http")
                    .authority(self.authority.as_bytes())
                    .path_and_query(self.path_and_query.clone())
                    .build()
                    .map_err(|e| bad(&e))?,
                Version::HTTP_2,
            ),
            UpstreamProtocol::Http1 => (Uri::from(self.path_and_query.clone()), Version::HTTP_11),
        };
        let mut req = Request::new(self.body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = version;
        *req.headers_mut() = self
            .headers
            .to_header_map()
            .map_err(|_| bad(&"invalid header"))?;
        if version == Version::HTTP_11 {
            req.headers_mut()
                .insert(header::HOST, self.authority.clone());
        }
        Ok(req)
    }
}

/// Every cluster's pool, keyed by cluster name. A pool is rebuilt only when
/// its cluster's policy or protocol changes, so connections survive reloads
/// that leave a cluster alone.
///
/// As in Envoy, connection pools are per worker thread (a connection is
/// driven and reused by the worker that opened it, so requests do not cross
/// threads), while the circuit-breaker counters (`maxConnections`, pending
/// requests) are cluster-wide: every worker's pool of a cluster shares one
/// [`ClusterWide`].
pub struct Upstreams {
    /// One map per worker ([`super::workers::current`]), the last one for
    /// threads that are not workers (admin, gateway, tests' runtimes).
    slots: Box<[Slot]>,
    /// The cluster-wide half of each cluster's pools.
    wide: Mutex<FxHashMap<Arc<str>, Arc<ClusterWide>>>,
}

/// One worker's pools by cluster name.
type Slot = Mutex<FxHashMap<Arc<str>, Entry>>;

struct Entry {
    /// The cluster the pool was last used for; holding the `Weak` keeps its
    /// address from being reused, so pointer equality is exact.
    source: Weak<Cluster>,
    pool: Arc<ClusterPool>,
}

impl Upstreams {
    /// Pools for `workers` worker threads (plus one for other threads).
    pub fn with_workers(workers: usize) -> Upstreams {
        Upstreams {
            slots: (0..=workers)
                .map(|_| Mutex::new(FxHashMap::default()))
                .collect(),
            wide: Mutex::new(FxHashMap::default()),
        }
    }

    /// Open upstream connections per cluster name (for the metrics),
    /// counted across every worker.
    pub fn open_connections_by_cluster(&self) -> Vec<(Arc<str>, usize)> {
        let map = self.wide.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(name, w)| (name.clone(), w.open_connections()))
            .collect()
    }

    /// Open connections and waiting requests per cluster name, across
    /// every worker (the admin page's circuit-breaker use).
    pub fn pool_use_by_cluster(&self) -> Vec<(Arc<str>, usize, usize)> {
        let map = self.wide.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(name, w)| {
                (
                    name.clone(),
                    w.open_connections(),
                    w.pending.load(Ordering::Acquire),
                )
            })
            .collect()
    }

    /// The calling thread's pools.
    fn slot(&self) -> &Slot {
        let last = self.slots.len() - 1;
        &self.slots[super::workers::current().min(last)]
    }

    /// The shared counters for a new pool of `cluster`: those of the
    /// other workers' pools when the policy is the same.
    fn wide_for(&self, cluster: &Cluster) -> Arc<ClusterWide> {
        let mut map = self.wide.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get(&cluster.name)
            && same_policy(&w.policy, &cluster.policy)
            && w.protocol == cluster.protocol
        {
            return w.clone();
        }
        map.retain(|_, w| w.live());
        let settings = &cluster.policy.pool;
        let w = Arc::new(ClusterWide {
            policy: cluster.policy.clone(),
            protocol: cluster.protocol,
            max_connections: settings.max_connections.min(Semaphore::MAX_PERMITS),
            permits: Arc::new(Semaphore::new(
                settings.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            pending: AtomicUsize::new(0),
            changed: Arc::new(Notify::new()),
            waiters: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
        });
        map.insert(cluster.name.clone(), w.clone());
        w
    }

    /// The pool of `cluster` on this thread's worker, built on first use.
    pub fn pool(&self, cluster: &Arc<Cluster>) -> Arc<ClusterPool> {
        let mut map = self.slot().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&cluster.name) {
            if std::ptr::eq(e.source.as_ptr(), Arc::as_ptr(cluster)) {
                return e.pool.clone();
            }
            if same_policy(&e.pool.policy, &cluster.policy) && e.pool.protocol == cluster.protocol {
                e.source = Arc::downgrade(cluster);
                return e.pool.clone();
            }
        }
        // Forget pools of clusters no snapshot holds any more.
        map.retain(|_, e| e.source.strong_count() > 0);
        let wide = self.wide_for(cluster);
        let pool = Arc::new(ClusterPool::with_wide(cluster, wide.clone()));
        wide.add(&pool);
        map.insert(
            cluster.name.clone(),
            Entry {
                source: Arc::downgrade(cluster),
                pool: pool.clone(),
            },
        );
        pool
    }

    /// Send one request to `endpoint` of `cluster` and wait for the response
    /// headers. `downstream` is the client's HTTP version
    /// (`useClientProtocol`).
    pub async fn send(
        &self,
        cluster: &Arc<Cluster>,
        endpoint: &Arc<str>,
        downstream: Version,
        out: Outgoing<'_>,
        stats: &PoolStats<'_>,
    ) -> Result<Reply, SendError> {
        let pool = self.pool(cluster);
        pool.send(endpoint, downstream, out, stats).await
    }
}

/// What every worker's pool of one cluster shares: Envoy's circuit-breaker
/// counters are per cluster, not per worker.
pub struct ClusterWide {
    policy: Arc<ClusterPolicy>,
    protocol: UpstreamProtocol,
    max_connections: usize,
    /// One permit per open connection (`maxConnections`).
    permits: Arc<Semaphore>,
    /// Requests waiting for a connection (`http1MaxPendingRequests`).
    pending: AtomicUsize,
    /// A connection became idle, a stream ended or a connection closed, on
    /// any worker (waiters at the cap are woken across workers).
    changed: Arc<Notify>,
    /// Requests waiting on `changed`: a connection put back idle wakes
    /// them only when there are some (no `Notify` lock per request).
    waiters: AtomicUsize,
    /// Every worker's pool, so a worker at the cap can use another's
    /// connections instead of waiting for one to close.
    pools: Mutex<Vec<Weak<ClusterPool>>>,
}

impl ClusterWide {
    fn open_connections(&self) -> usize {
        self.max_connections
            .saturating_sub(self.permits.available_permits())
    }

    fn add(&self, pool: &Arc<ClusterPool>) {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    fn live(&self) -> bool {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.iter().any(|p| p.strong_count() > 0)
    }

    /// The other workers' pools.
    fn others(&self, me: &ClusterPool) -> Vec<Arc<ClusterPool>> {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|p| !std::ptr::eq(Arc::as_ptr(p), me))
            .collect()
    }
}

/// One cluster's connections on one worker, and its limits.
pub struct ClusterPool {
    pub settings: PoolSettings,
    policy: Arc<ClusterPolicy>,
    protocol: UpstreamProtocol,
    /// `Err` fails every request with UF and this reason.
    tls: Result<Option<Origination>, String>,
    /// `wide.permits` (cluster-wide `maxConnections`).
    permits: Arc<Semaphore>,
    /// `wide.changed`.
    changed: Arc<Notify>,
    wide: Arc<ClusterWide>,
    conns: Mutex<Conns>,
    ids: AtomicU64,
    /// A task closes HTTP/1.1 connections idle past the idle timeout (one
    /// per pool, running only while connections are idle: a timer per
    /// request would cost a task and a timer entry for every request).
    sweeping: AtomicBool,
}

#[derive(Default)]
struct Conns {
    h1: FxHashMap<Arc<str>, Vec<H1Conn>>,
    h2: FxHashMap<Arc<str>, Vec<H2Conn>>,
}

#[derive(Clone)]
struct H2Conn {
    id: u64,
    sender: http2::SendRequest<Body>,
    born: Instant,
    state: Arc<H2State>,
}

struct H2State {
    active: AtomicUsize,
    requests: AtomicUsize,
    last_used: Mutex<Instant>,
    closed: AtomicBool,
}

/// A request waiting on a cluster's `changed`, counted while it waits.
struct Waiter<'a>(&'a AtomicUsize);

impl<'a> Waiter<'a> {
    fn new(count: &'a AtomicUsize) -> Waiter<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Waiter(count)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Decrements the pending count when a waiting request stops waiting.
struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClusterPool {
    /// A pool of its own (one worker).
    pub fn new(cluster: &Cluster) -> ClusterPool {
        let ups = Upstreams::with_workers(0);
        Self::with_wide(cluster, ups.wide_for(cluster))
    }

    fn with_wide(cluster: &Cluster, wide: Arc<ClusterWide>) -> ClusterPool {
        let settings = cluster.policy.pool.clone();
        let tls = tls::origination(cluster.policy.tls.as_ref());
        if let Err(e) = &tls {
            tracing::warn!(cluster = %cluster.name, error = %e, "upstream TLS settings unusable; requests fail with UF");
        }
        ClusterPool {
            permits: wide.permits.clone(),
            changed: wide.changed.clone(),
            wide,
            settings,
            policy: cluster.policy.clone(),
            protocol: cluster.protocol,
            tls,
            conns: Mutex::new(Conns::default()),
            ids: AtomicU64::new(1),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Requests waiting for a connection now, on every worker.
    pub fn pending(&self) -> usize {
        self.wide.pending.load(Ordering::Acquire)
    }

    /// Connections open now (or being opened), on every worker.
    pub fn open_connections(&self) -> usize {
        self.wide.open_connections()
    }

    /// The protocol spoken upstream for this request.
    fn effective(&self, downstream: Version, upgrade: bool) -> UpstreamProtocol {
        // Upgrades (WebSocket) need HTTP/1.1.
        if upgrade && self.protocol != UpstreamProtocol::H2c {
            return self.protocol;
        }
        if self.settings.use_client_protocol {
            return if downstream == Version::HTTP_2 {
                UpstreamProtocol::H2c
            } else {
                UpstreamProtocol::Http1
            };
        }
        if self.protocol == UpstreamProtocol::Http1 && self.settings.h2_upgrade {
            return UpstreamProtocol::H2c;
        }
        self.protocol
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, born: Instant) -> bool {
        self.settings
            .max_connection_duration
            .is_some_and(|d| super::clock::now().saturating_duration_since(born) >= d)
    }

    /// An idle HTTP/1.1 connection that must not be used again.
    fn stale(&self, c: &H1Conn, now: Instant) -> bool {
        self.settings
            .max_connection_duration
            .is_some_and(|d| now.saturating_duration_since(c.born) >= d)
            || self
                .settings
                .idle_timeout
                .is_some_and(|t| now.saturating_duration_since(c.idle_since) >= t)
    }

    /// How often the sweeper looks for idle connections past their time:
    /// a quarter of the shortest limit, so one closes within 1.25× of it.
    fn sweep_period(&self) -> Option<Duration> {
        let s = &self.settings;
        let shortest = match (s.idle_timeout, s.max_connection_duration) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some((shortest / 4).clamp(Duration::from_millis(5), Duration::from_secs(30)))
    }

    pub async fn send(
        self: &Arc<Self>,
        endpoint: &Arc<str>,
        downstream: Version,
        out: Outgoing<'_>,
        stats: &PoolStats<'_>,
    ) -> Result<Reply, SendError> {
        let origination = match &self.tls {
            Ok(o) => o.as_ref(),
            Err(reason) => return Err(SendError::Connect(reason.clone())),
        };
        let upgrade = out.headers.contains("upgrade");
        let proto = self.effective(downstream, upgrade);
        if proto == UpstreamProtocol::Http1 && !upgrade {
            // The common case: strait's HTTP/1.1 client, no owned request.
            let tls = match origination {
                Some(o) => {
                    let name = o
                        .server_name(&sni_host(out.authority))
                        .map_err(SendError::Connect)?;
                    Some((o.h1.clone(), name))
                }
                None => None,
            };
            let key = pool_key(endpoint, tls.as_ref());
            return self.send_h1(endpoint, key, tls, out, stats).await;
        }
        let req = out.into_request(self.protocol)?;
        let (req, host) = adapt(req, proto, origination.is_some())?;
        let tls = match origination {
            Some(o) => {
                let name = o
                    .server_name(host.as_deref().unwrap_or_default())
                    .map_err(SendError::Connect)?;
                let config = match proto {
                    UpstreamProtocol::Http1 => o.h1.clone(),
                    UpstreamProtocol::H2c => o.h2.clone(),
                };
                Some((config, name))
            }
            None => None,
        };
        let key = pool_key(endpoint, tls.as_ref());
        // Boxed: hyper's futures are no part of the HTTP/1.1 path's state.
        match proto {
            // Only upgrades take hyper's HTTP/1.1 client.
            UpstreamProtocol::Http1 => {
                Box::pin(self.send_h1_upgrade(endpoint, tls, req, stats)).await
            }
            UpstreamProtocol::H2c => Box::pin(self.send_h2(endpoint, key, tls, req, stats)).await,
        }
    }

    /// Wait for `try_get` to succeed, opening a connection with `open`
    /// when a permit is free; at the cap, use another worker's connection
    /// or queue (bounded by `http1MaxPendingRequests` and the connect
    /// timeout).
    async fn acquire<T, G, O, F>(
        &self,
        mut try_get: G,
        open: O,
        stats: &PoolStats<'_>,
    ) -> Result<T, SendError>
    where
        G: FnMut(&ClusterPool) -> Option<T>,
        O: FnOnce(OwnedSemaphorePermit) -> F,
        F: std::future::Future<Output = Result<T, SendError>>,
    {
        // The common case first, without registering for wake-ups.
        if let Some(c) = try_get(self) {
            return Ok(c);
        }
        // Envoy queues a request while its connection is being opened.
        let opening = |permit, pending: PendingActive| async move {
            let r = open(permit).await;
            if r.is_err() {
                stats.pending_failed();
            }
            drop(pending);
            r
        };
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return opening(permit, stats.pending()).await;
        }
        let deadline = tokio::time::Instant::now() + self.settings.connect_timeout;
        let mut waiting: Option<(Pending<'_>, PendingActive)> = None;
        // Counted before the idle lists are looked at (under their lock):
        // a connection put back after that look sees the count and wakes.
        let _waiter = Waiter::new(&self.wide.waiters);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(c) = try_get(self) {
                return Ok(c);
            }
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                let active = match waiting {
                    Some((queued, active)) => {
                        drop(queued);
                        active
                    }
                    None => stats.pending(),
                };
                return opening(permit, active).await;
            }
            // At the cap the connections may all be other workers': use
            // one (it stays driven by its own worker) rather than wait for
            // it to close.
            let others = self.wide.others(self);
            if let Some(c) = others.iter().find_map(|p| try_get(p)) {
                return Ok(c);
            }
            // An idle HTTP/1.1 connection to another endpoint makes room
            // (its permit returns when it has closed).
            if !self.evict_one_idle() {
                others.iter().any(|p| p.evict_one_idle());
            }
            if waiting.is_none() {
                let pending = &self.wide.pending;
                if pending.fetch_add(1, Ordering::AcqRel) >= self.settings.max_pending {
                    pending.fetch_sub(1, Ordering::AcqRel);
                    stats.pending_overflow();
                    return Err(SendError::Overflow);
                }
                // Queued for a connection at `maxConnections` (Envoy counts
                // the connection it could not open; not an overflowing
                // request, which never queues).
                stats.cx_overflow();
                waiting = Some((Pending(pending), stats.pending()));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(SendError::Connect(
                    "timed out waiting for a connection (maxConnections reached)".into(),
                ));
            }
        }
    }

    fn evict_one_idle(&self) -> bool {
        let mut conns = self.lock();
        for list in conns.h1.values_mut() {
            if let Some(c) = list.pop() {
                drop(c);
                return true;
            }
        }
        false
    }

    /// TCP (and TLS) connect within the connect timeout.
    async fn connect(
        &self,
        endpoint: &str,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    ) -> Result<Box<dyn Io>, SendError> {
        let timeout = self.settings.connect_timeout;
        let work = async {
            let stream = open_tcp(endpoint, self.settings.keepalive.as_ref())
                .await
                .map_err(SendError::Connect)?;
            match tls {
                None => Ok(Box::new(stream) as Box<dyn Io>),
                Some((config, name)) => {
                    let s = tokio_rustls::TlsConnector::from(config)
                        .connect(name, stream)
                        .await
                        .map_err(|e| SendError::Connect(format!("TLS_error: {e}")))?;
                    Ok(Box::new(s) as Box<dyn Io>)
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Connect("connection timeout".into())),
        }
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    // ---- HTTP/1.1 ----

    /// The most recently used idle connection (LIFO keeps the working set
    /// small and lets the others reach their idle timeout).
    fn take_idle_h1(&self, key: &Arc<str>) -> Option<H1Conn> {
        let mut conns = self.lock();
        let list = conns.h1.get_mut(key)?;
        let now = super::clock::now();
        while let Some(mut c) = list.pop() {
            if !self.stale(&c, now) && c.usable() {
                return Some(c);
            }
        }
        None
    }

    async fn open_h1(
        &self,
        endpoint: &str,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        permit: OwnedSemaphorePermit,
    ) -> Result<H1Conn, SendError> {
        let io = self.connect(endpoint, tls).await?;
        Ok(H1Conn::new(io, permit, self.changed.clone()))
    }

    async fn send_h1(
        self: &Arc<Self>,
        endpoint: &Arc<str>,
        key: Arc<str>,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        out: Outgoing<'_>,
        stats: &PoolStats<'_>,
    ) -> Result<Reply, SendError> {
        let mut conn = match self.take_idle_h1(&key) {
            Some(c) => c,
            // Opening or waiting for a connection: boxed, so that path's
            // state (connect, TLS handshake, queueing) is no part of every
            // request's future.
            None => {
                Box::pin(self.acquire(
                    |p: &ClusterPool| p.take_idle_h1(&key),
                    |permit| self.open_h1(endpoint, tls, permit),
                    stats,
                ))
                .await?
            }
        };
        stats.rq_total.inc();
        conn.requests += 1;
        let max = self.settings.max_requests_per_connection;
        let last = max != 0 && conn.requests >= max;
        let pool = self.clone();
        h1_client::send(conn, out, last, move |c| pool.put_idle_h1(key, c)).await
    }

    /// An upgrade (WebSocket) on a connection of its own through hyper's
    /// client, which hands the upgraded stream to `forward`; the connection
    /// is not pooled (after a 101 it is the tunnel's).
    async fn send_h1_upgrade(
        &self,
        endpoint: &Arc<str>,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        req: Request<Body>,
        stats: &PoolStats<'_>,
    ) -> Result<Reply, SendError> {
        let (io, permit) = self
            .acquire(
                |_: &ClusterPool| None,
                |permit| async move {
                    let io = self.connect(endpoint, tls).await?;
                    Ok((io, permit))
                },
                stats,
            )
            .await?;
        let (mut sender, conn) = http1::Builder::new()
            .preserve_header_case(false)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let changed = self.changed.clone();
        tokio::spawn(Driven {
            conn: conn.with_upgrades(),
            on_end: Some(move |e: Option<hyper::Error>| {
                if let Some(e) = e {
                    tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
                }
                drop(permit);
                changed.notify_waiters();
            }),
        });
        stats.rq_total.inc();
        match sender.send_request(req).await {
            Ok(resp) => {
                if let Some(problem) = ambiguous_framing(resp.headers()) {
                    return Err(SendError::Protocol(problem.into()));
                }
                Ok(Reply::from(resp.map(body::boxed)))
            }
            Err(e) => Err(classify(&e)),
        }
    }

    fn put_idle_h1(self: &Arc<Self>, key: Arc<str>, mut conn: H1Conn) {
        if self.expired(conn.born) {
            return;
        }
        conn.idle_since = super::clock::now();
        // Every connection is kept, as Envoy's HTTP/1.1 pool keeps them: the
        // cluster's maxConnections bounds them, the idle timeout closes
        // those a burst left (a cap here closed and reopened connections
        // under any concurrency above it).
        self.lock().h1.entry(key).or_default().push(conn);
        // After the lock: a waiter counted itself before its own look at
        // the lists (`acquire`).
        if self.wide.waiters.load(Ordering::SeqCst) != 0 {
            self.changed.notify_waiters();
        }
        self.ensure_sweeper();
    }

    /// Start the idle sweeper unless it runs; it stops when nothing is idle
    /// or the pool is gone.
    fn ensure_sweeper(self: &Arc<Self>) {
        let Some(period) = self.sweep_period() else {
            return;
        };
        if self.sweeping.load(Ordering::Acquire) {
            return;
        }
        // Also called from a response body's drop: outside a runtime
        // there is nothing to run the sweeper on (nor anything to sweep for).
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(pool) = pool.upgrade() else { return };
                let now = Instant::now();
                let mut conns = pool.lock();
                // Dropping a connection closes it; one the upstream closed
                // (or wrote to) while idle goes too, releasing its slot.
                conns.h1.retain(|_, list| {
                    list.retain_mut(|c| !pool.stale(c, now) && c.usable());
                    !list.is_empty()
                });
                if conns.h1.is_empty() {
                    // Cleared under the lock, so a connection put back
                    // after this starts a new sweeper.
                    pool.sweeping.store(false, Ordering::Release);
                    return;
                }
            }
        });
    }

    // ---- HTTP/2 ----

    fn take_h2(&self, key: &Arc<str>) -> Option<H2Conn> {
        let mut conns = self.lock();
        let list = conns.h2.get_mut(key)?;
        list.retain(|c| {
            !c.sender.is_closed()
                && !c.state.closed.load(Ordering::Acquire)
                && !self.expired(c.born)
        });
        let max_req = self.settings.max_requests_per_connection as usize;
        let c = list.iter().find(|c| {
            c.state.active.load(Ordering::Acquire) < self.settings.max_concurrent_streams
                && (max_req == 0 || c.state.requests.load(Ordering::Acquire) < max_req)
        })?;
        c.state.active.fetch_add(1, Ordering::AcqRel);
        let n = c.state.requests.fetch_add(1, Ordering::AcqRel) + 1;
        let c = c.clone();
        if max_req != 0 && n >= max_req {
            // Its last request: no new streams; it closes when done.
            list.retain(|x| x.id != c.id);
        }
        Some(c)
    }

    async fn open_h2(
        self: &Arc<Self>,
        key: &Arc<str>,
        endpoint: &str,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        permit: OwnedSemaphorePermit,
    ) -> Result<H2Conn, SendError> {
        let io = self.connect(endpoint, tls).await?;
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder.timer(TokioTimer::new());
        let (sender, conn) = builder
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        let state = Arc::new(H2State {
            active: AtomicUsize::new(1),
            requests: AtomicUsize::new(1),
            last_used: Mutex::new(Instant::now()),
            closed: AtomicBool::new(false),
        });
        let changed = self.changed.clone();
        let st = state.clone();
        tokio::spawn(Driven {
            conn,
            on_end: Some(move |e: Option<hyper::Error>| {
                if let Some(e) = e {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
                st.closed.store(true, Ordering::Release);
                drop(permit);
                changed.notify_waiters();
            }),
        });
        let c = H2Conn {
            id: self.next_id(),
            sender,
            born: Instant::now(),
            state,
        };
        let max_req = self.settings.max_requests_per_connection as usize;
        if max_req != 1 {
            self.lock()
                .h2
                .entry(key.clone())
                .or_default()
                .push(c.clone());
            self.watch_h2(key.clone(), &c);
        }
        Ok(c)
    }

    /// Drop the pool's handle on an HTTP/2 connection once it has been idle
    /// for the idle timeout or lived `maxConnectionDuration` (it then
    /// closes when its last stream ends).
    fn watch_h2(self: &Arc<Self>, key: Arc<str>, c: &H2Conn) {
        if self.settings.idle_timeout.is_none() && self.settings.max_connection_duration.is_none() {
            return;
        }
        let pool = Arc::downgrade(self);
        let (id, born, state) = (c.id, c.born, c.state.clone());
        tokio::spawn(async move {
            loop {
                let Some(p) = pool.upgrade() else { return };
                if state.closed.load(Ordering::Acquire) {
                    return;
                }
                let since = *state.last_used.lock().unwrap_or_else(|e| e.into_inner());
                let idle_left = p
                    .settings
                    .idle_timeout
                    .map(|t| t.saturating_sub(since.elapsed()));
                let life_left = p
                    .settings
                    .max_connection_duration
                    .map(|d| d.saturating_sub(born.elapsed()));
                let idle_done =
                    idle_left == Some(Duration::ZERO) && state.active.load(Ordering::Acquire) == 0;
                if idle_done || life_left == Some(Duration::ZERO) {
                    if let Some(list) = p.lock().h2.get_mut(&key) {
                        list.retain(|x| x.id != id);
                    }
                    return;
                }
                let wait = match (idle_left, life_left) {
                    (Some(Duration::ZERO), Some(b)) => b.min(Duration::from_millis(50)),
                    (Some(Duration::ZERO), None) => Duration::from_millis(50),
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or(Duration::from_secs(1)),
                };
                drop(p);
                tokio::time::sleep(wait).await;
            }
        });
    }

    async fn send_h2(
        self: &Arc<Self>,
        endpoint: &Arc<str>,
        key: Arc<str>,
        tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
        req: Request<Body>,
        stats: &PoolStats<'_>,
    ) -> Result<Reply, SendError> {
        let mut conn = self
            .acquire(
                |p: &ClusterPool| p.take_h2(&key),
                |permit| self.open_h2(&key, endpoint, tls, permit),
                stats,
            )
            .await?;
        stats.rq_total.inc();
        let guard = StreamGuard {
            state: conn.state.clone(),
            changed: self.changed.clone(),
        };
        if conn.sender.ready().await.is_err() {
            conn.state.closed.store(true, Ordering::Release);
            return Err(SendError::Reset {
                reason: "connection closed".into(),
                sent: false,
            });
        }
        match conn.sender.send_request(req).await {
            Ok(resp) => Ok(Reply::from(resp.map(|b| {
                body::boxed(Guarded {
                    inner: b,
                    _guard: guard,
                })
            }))),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// An upstream connection's task: drives the connection, then calls
/// `on_end`. A named future rather than an async block, which would hold the
/// connection twice (captured, then awaited) and double the task's memory
/// for every pooled connection.
struct Driven<C, E> {
    conn: C,
    on_end: Option<E>,
}

impl<C, E> std::future::Future for Driven<C, E>
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + Unpin,
    E: FnOnce(Option<hyper::Error>) + Unpin,
{
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let result = std::task::ready!(Pin::new(&mut self.conn).poll(cx));
        if let Some(f) = self.on_end.take() {
            f(result.err());
        }
        Poll::Ready(())
    }
}

/// One HTTP/2 stream in use; dropping it frees the stream's slot.
struct StreamGuard {
    state: Arc<H2State>,
    changed: Arc<Notify>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        *self
            .state
            .last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = super::clock::now();
        self.state.active.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }
}

/// A response body holding its stream's slot until it is dropped.
struct Guarded {
    inner: Incoming,
    _guard: StreamGuard,
}

impl HttpBody for Guarded {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Put the request in the form `proto` needs (absolute URI without `Host`
/// for HTTP/2, origin form with `Host` for HTTP/1.1); with `tls`, returns
/// the authority's host (the default SNI). The URI's parts are shared, not
/// copied: an HTTP/1.1 request that arrived in origin form is left as is.
/// Connections are shared only by requests with the same SNI.
fn pool_key(
    endpoint: &Arc<str>,
    tls: Option<&(Arc<rustls::ClientConfig>, ServerName<'static>)>,
) -> Arc<str> {
    match tls {
        Some((_, name)) => format!("{endpoint}|{}", name.to_str()).into(),
        None => endpoint.clone(),
    }
}

/// The SNI for an HTTP/1.1 request's `Host` (an unparsable one is still
/// the best guess; the handshake reports it), as `adapt` derives it.
fn sni_host(authority: &HeaderValue) -> String {
    match http::uri::Authority::try_from(authority.as_bytes()) {
        Ok(a) => a.host().to_string(),
        Err(_) => String::from_utf8_lossy(authority.as_bytes()).into_owned(),
    }
}

fn adapt(
    mut req: Request<Body>,
    proto: UpstreamProtocol,
    tls: bool,
) -> Result<(Request<Body>, Option<String>), SendError> {
    let bad =
        |e: &dyn std::fmt::Display| SendError::Protocol(format!("invalid upstream request: {e}"));
    let host_header = |req: &Request<Body>| {
        req.headers()
            .get(header::HOST)
            .map(|v| http::uri::Authority::try_from(v.as_bytes()))
    };
    let host = if !tls {
        None
    } else if let Some(a) = req.uri().authority() {
        Some(a.host().to_string())
    } else {
        // An unparsable `Host` is still the best SNI guess; the handshake
        // reports it.
        let raw = req
            .headers()
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        match host_header(&req) {
            Some(Ok(a)) => Some(a.host().to_string()),
            _ => Some(raw.map(|r| r.into_owned()).unwrap_or_default()),
        }
    };
    match proto {
        UpstreamProtocol::H2c => {
            let authority = match req.uri().authority() {
                Some(a) => a.clone(),
                None => match host_header(&req) {
                    Some(Ok(a)) => a,
                    Some(Err(e)) => return Err(bad(&e)),
                    None => return Err(bad(&"no `Host` to send as `:authority`")),
                },
            };
            let mut parts = std::mem::take(req.uri_mut()).into_parts();
            parts.scheme = Some(if tls {
                http::uri::Scheme::HTTPS
            } else {
                http::uri::Scheme::HTTP
            });
            parts.authority = Some(authority);
            if parts.path_and_query.is_none() {
                parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            }
            *req.uri_mut() = Uri::from_parts(parts).map_err(|e| bad(&e))?;
            *req.version_mut() = Version::HTTP_2;
            req.headers_mut().remove(header::HOST);
        }
        UpstreamProtocol::Http1 => {
            if let Some(a) = req.uri().authority().cloned() {
                if !req.headers().contains_key(header::HOST)
                    && let Ok(v) = HeaderValue::from_str(a.as_str())
                {
                    req.headers_mut().insert(header::HOST, v);
                }
                let pq = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::from(pq);
            }
            *req.version_mut() = Version::HTTP_11;
        }
    }
    Ok((req, host))
}

/// A TCP connection to `endpoint` (no delay, `tcpKeepalive`), for HTTP
/// pools and the TCP proxy alike; the caller bounds it by the connect
/// timeout. `Err` is Envoy's transport failure reason.
pub async fn open_tcp(endpoint: &str, keepalive: Option<&Keepalive>) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(endpoint)
        .await
        .map_err(|e| connect_reason(&e))?;
    let _ = stream.set_nodelay(true);
    if let Some(k) = keepalive {
        set_keepalive(&stream, k);
    }
    Ok(stream)
}

fn set_keepalive(stream: &TcpStream, k: &Keepalive) {
    let sock = socket2::SockRef::from(stream);
    let mut ka = socket2::TcpKeepalive::new();
    if let Some(t) = k.time {
        ka = ka.with_time(t);
    }
    if let Some(i) = k.interval {
        ka = ka.with_interval(i);
    }
    if let Some(p) = k.probes {
        ka = ka.with_retries(p);
    }
    if let Err(e) = sock.set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

fn connect_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "delayed connect error: Connection refused".into(),
        std::io::ErrorKind::TimedOut => "connection timeout".into(),
        _ => e.to_string(),
    }
}

/// A response whose framing two parsers could read differently (RFC 9112
/// §6.3): hyper would let Transfer-Encoding win over Content-Length and
/// accept repeated equal Content-Length values; Envoy's codec rejects both
/// (`allow_chunked_length: false`; http-parser's duplicate Content-Length
/// error), which makes the request fail with UPE.
/// One pass over the names (a response has a handful) instead of three
/// hashed lookups.
fn ambiguous_framing(h: &http::HeaderMap) -> Option<&'static str> {
    let (mut lengths, mut listed, mut chunked) = (0usize, false, false);
    for (name, value) in h {
        if name == header::CONTENT_LENGTH {
            lengths += 1;
            listed |= value.as_bytes().contains(&b',');
        } else if name == header::TRANSFER_ENCODING {
            chunked = true;
        }
    }
    if lengths > 0 && chunked {
        return Some(
            "http/1.1 protocol error: both 'Content-Length' and 'Transfer-Encoding' are set",
        );
    }
    if lengths > 1 || listed {
        return Some("http/1.1 protocol error: multiple Content-Length values");
    }
    None
}

/// Map hyper's error to what Envoy would call it.
fn classify(e: &hyper::Error) -> SendError {
    if e.is_canceled() {
        return SendError::Reset {
            reason: "connection closed before the request was sent".into(),
            sent: false,
        };
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        return SendError::Protocol(e.to_string());
    }
    SendError::Reset {
        reason: e.to_string(),
        sent: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_is_ambiguous_with_cl_and_te_or_several_lengths() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (n, v) in pairs {
                m.append(*n, HeaderValue::from_static(v));
            }
            m
        };
        assert_eq!(ambiguous_framing(&h(&[("content-length", "3")])), None);
        assert_eq!(
            ambiguous_framing(&h(&[("transfer-encoding", "chunked")])),
            None
        );
        let both = h(&[("content-length", "3"), ("transfer-encoding", "chunked")]);
        assert!(ambiguous_framing(&both).unwrap().contains("both"));
        let twice = h(&[("content-length", "3"), ("content-length", "3")]);
        assert!(ambiguous_framing(&twice).unwrap().contains("multiple"));
        let listed = h(&[("content-length", "3, 3")]);
        assert!(ambiguous_framing(&listed).unwrap().contains("multiple"));
    }

    fn req(uri: &str, host: Option<&str>) -> Request<Body> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(body::empty()).unwrap()
    }

    #[test]
    fn adapt_h1_to_h2_and_back() {
        let (r, host) = adapt(
            req("/a?b=1", Some("svc.example:8080")),
            UpstreamProtocol::H2c,
            true,
        )
        .unwrap();
        assert_eq!(r.uri().to_string(), "https://svc.example:8080/a?b=1");
        assert!(r.headers().get("host").is_none());
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(host.as_deref(), Some("svc.example"));
        let (r, host) = adapt(
            req("http://svc.example/x", None),
            UpstreamProtocol::Http1,
            false,
        )
        .unwrap();
        assert_eq!(r.uri().to_string(), "/x");
        assert_eq!(r.headers()["host"], "svc.example");
        assert_eq!(host, None, "the host is needed only as SNI");
        let (r, _) = adapt(req("/y?z", Some("svc")), UpstreamProtocol::Http1, false).unwrap();
        assert_eq!(r.uri().to_string(), "/y?z");
        assert_eq!(r.headers()["host"], "svc");
        let (r, _) = adapt(req("/p", Some("svc:81")), UpstreamProtocol::H2c, false).unwrap();
        assert_eq!(r.uri().to_string(), "http://svc:81/p");
        assert!(adapt(req("/p", Some("bad host")), UpstreamProtocol::H2c, false).is_err());
    }
}
