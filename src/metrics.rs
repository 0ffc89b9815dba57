//! Istio's standard metrics (`istio_requests_total`,
//! `istio_request_duration_milliseconds`, `istio_request_bytes`,
//! `istio_response_bytes`) with Istio's labels, and the Envoy per-cluster
//! counters people watch for circuit breaking, in Prometheus (OpenMetrics)
//! text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

mod histogram;
pub use histogram::Histogram;

use crate::flags::Flags;

/// Envoy's default histogram buckets (ms for durations, also used for bytes).
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Response flags as a label value (`-` when none).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct FlagsLabel(pub Flags);

impl EncodeLabelValue for FlagsLabel {
    fn encode(&self, enc: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        write!(enc, "{}", self.0)
    }
}

/// gRPC status as a label value (empty for non-gRPC).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct GrpcLabel(pub Option<u32>);

impl EncodeLabelValue for GrpcLabel {
    fn encode(&self, enc: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(c) => write!(enc, "{c}"),
            None => Ok(()),
        }
    }
}

/// The labels every Istio metric shares: who reported, the source and the
/// destination workload and service, in Istio's order.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub reporter: &'static str,
    pub source_workload: Arc<String>,
    pub source_workload_namespace: Arc<String>,
    pub source_principal: &'static str,
    pub source_app: Arc<String>,
    pub source_version: Arc<String>,
    pub source_canonical_service: Arc<String>,
    pub source_canonical_revision: Arc<String>,
    pub source_cluster: &'static str,
    pub destination_workload: &'static str,
    pub destination_workload_namespace: Arc<String>,
    pub destination_principal: &'static str,
    pub destination_app: Arc<String>,
    pub destination_version: Arc<String>,
    pub destination_canonical_service: Arc<String>,
    pub destination_canonical_revision: Arc<String>,
    pub destination_cluster: &'static str,
    pub destination_service: Arc<String>,
    pub destination_service_name: Arc<String>,
    pub destination_service_namespace: Arc<String>,
}

/// The labels of Istio's request metrics, in Istio's order.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    #[prometheus(flatten)]
    pub peer: PeerLabels,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub grpc_response_status: GrpcLabel,
    pub response_flags: FlagsLabel,
    pub connection_security_policy: &'static str,
}

/// The labels of Istio's TCP metrics: the request labels without
/// `response_code` and `grpc_response_status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TcpLabels {
    #[prometheus(flatten)]
    pub peer: PeerLabels,
    pub request_protocol: &'static str,
    pub response_flags: FlagsLabel,
    pub connection_security_policy: &'static str,
}

/// Istio's TCP metrics (`istio_tcp_*`).
#[derive(Default)]
pub struct TcpMetrics {
    pub opened: Family<TcpLabels, Counter>,
    pub closed: Family<TcpLabels, Counter>,
    /// Bytes sent to the downstream (the response direction).
    pub sent_bytes: Family<TcpLabels, Counter>,
    /// Bytes received from the downstream (the request direction).
    pub received_bytes: Family<TcpLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster_name: Arc<str>,
}

/// Who this proxy is (the `source_*` labels), computed once.
#[derive(Clone, Debug)]
pub struct Source {
    pub workload: Arc<String>,
    pub namespace: Arc<String>,
    pub app: Arc<String>,
    pub version: Arc<String>,
    pub canonical_service: Arc<String>,
    pub canonical_revision: Arc<String>,
}

impl Source {
    pub fn new(namespace: &str, labels: &std::collections::BTreeMap<String, String>) -> Source {
        let get = |k: &str| labels.get(k).cloned();
        let unknown = || "unknown".to_string();
        let app = get("app").unwrap_or_else(unknown);
        let version = get("version").unwrap_or_else(unknown);
        Source {
            workload: Arc::new(
                get("service.istio.io/workload-name").unwrap_or_else(|| app.clone()),
            ),
            namespace: Arc::new(namespace.to_string()),
            canonical_service: Arc::new(
                get("service.istio.io/canonical-name").unwrap_or_else(|| app.clone()),
            ),
            canonical_revision: Arc::new(
                get("service.istio.io/canonical-revision").unwrap_or_else(|| version.clone()),
            ),
            app: Arc::new(app),
            version: Arc::new(version),
        }
    }
}

/// The destination labels of one cluster, computed when it is compiled.
#[derive(Clone, Debug)]
pub struct Destination {
    pub service: Arc<String>,
    pub name: Arc<String>,
    pub namespace: Arc<String>,
    pub version: Arc<String>,
    /// This destination's series, resolved once: finding a series by its
    /// two dozen labels costs more than routing the request.
    pub cache: Option<Arc<LazyCache>>,
}

impl Destination {
    /// A compiled cluster's labels (with a series cache).
    pub fn new(service: &str, name: &str, namespace: &str, version: &str) -> Destination {
        Destination {
            service: Arc::new(service.to_string()),
            name: Arc::new(name.to_string()),
            namespace: Arc::new(namespace.to_string()),
            version: Arc::new(version.to_string()),
            cache: Some(Arc::default()),
        }
    }

    /// Another cluster of the same service (a subset, `version`): the
    /// service labels shared, its own series cache.
    pub fn with_version(&self, version: &str) -> Destination {
        Destination {
            service: self.service.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            version: if *self.version == version {
                self.version.clone()
            } else {
                Arc::new(version.to_string())
            },
            cache: Some(Arc::default()),
        }
    }

    /// A request that reached no cluster (404 NR, 400, no `Host`). Istio
    /// labels it `unknown`, never with the request's `Host`: a client
    /// sending endless distinct hosts would otherwise grow the metrics
    /// without bound (istio/istio#18818, fixed by istio/istio#18821).
    pub fn unknown() -> Destination {
        let u = Arc::new("unknown".to_string());
        Destination {
            service: u.clone(),
            name: u.clone(),
            namespace: u.clone(),
            version: u,
            cache: None,
        }
    }
}

/// What varies between the series of one destination.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct SeriesKey {
    grpc: bool,
    response_code: u16,
    grpc_status: Option<u32>,
    flags: Flags,
}

/// The four request metrics of one label set.
struct Series {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// Series handles of one destination, for one [`Metrics`] (a snapshot may
/// outlive or be shared by several in tests, hence the owner check).
/// Write-once slots, no lock: the first request with a new (code, flags,
/// gRPC status) fills a free slot, later ones find it with plain loads.
#[derive(Default)]
pub struct SeriesCache {
    owner: AtomicU64,
    series: [OnceLock<(SeriesKey, Series)>; SERIES_SLOTS],
    cluster: OnceLock<(u64, ClusterHot)>,
}

/// A destination's [`SeriesCache`], allocated by its first request: most
/// clusters of a large configuration never see one, and a cache is a
/// kilobyte (30 MB at 30,000 clusters).
#[derive(Default)]
pub struct LazyCache(OnceLock<Box<SeriesCache>>);

impl LazyCache {
    fn get(&self) -> &SeriesCache {
        self.0.get_or_init(Box::default)
    }
}

impl std::fmt::Debug for LazyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LazyCache")
    }
}

/// A destination sees a handful of (code, flags, gRPC status) combinations;
/// past this many, its further series are found by their labels (slower,
/// still right).
const SERIES_SLOTS: usize = 16;

impl std::fmt::Debug for SeriesCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeriesCache")
    }
}

/// The per-cluster counters every forwarded request touches.
#[derive(Clone)]
pub struct ClusterHot {
    pub upstream_rq_total: Counter,
    pub upstream_rq_active: Gauge,
}

/// Distinguishes [`Metrics`] instances (0 is never used).
static NEXT_METRICS_ID: AtomicU64 = AtomicU64::new(1);

/// One finished request, as the metrics see it.
pub struct Record<'a> {
    pub destination: &'a Destination,
    pub grpc: bool,
    pub response_code: u16,
    pub grpc_status: Option<u32>,
    pub flags: Flags,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

pub struct Metrics {
    id: u64,
    registry: Registry,
    source: Source,
    unknown: Arc<String>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
    request_bytes: Family<RequestLabels, Histogram>,
    response_bytes: Family<RequestLabels, Histogram>,
    pub upstream_rq_total: Family<ClusterLabels, Counter>,
    pub upstream_rq_retry: Family<ClusterLabels, Counter>,
    pub upstream_rq_retry_overflow: Family<ClusterLabels, Counter>,
    pub upstream_rq_pending_overflow: Family<ClusterLabels, Counter>,
    pub upstream_rq_pending_total: Family<ClusterLabels, Counter>,
    pub upstream_rq_pending_active: Family<ClusterLabels, Gauge>,
    pub upstream_rq_pending_failure_eject: Family<ClusterLabels, Counter>,
    pub upstream_cx_overflow: Family<ClusterLabels, Counter>,
    pub upstream_rq_active: Family<ClusterLabels, Gauge>,
    pub upstream_cx_active: Family<ClusterLabels, Gauge>,
    pub upstream_cx_connect_fail: Family<ClusterLabels, Counter>,
    pub outlier_detection_ejections_total: Family<ClusterLabels, Counter>,
    pub outlier_detection_ejections_active: Family<ClusterLabels, Gauge>,
    pub tcp: TcpMetrics,
    /// Configuration changes applied / rejected by reloads (Envoy's xDS
    /// `update_success` and `update_rejected`).
    pub config_update_success: Counter,
    pub config_update_rejected: Counter,
}

fn histogram() -> Histogram {
    Histogram::new(&BUCKETS)
}

/// `metric` registered in `registry` as `name` with `help`; the handle back.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// Istio's four request metrics: count, duration, request and response size.
struct RequestFamilies {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram>,
    request_bytes: Family<RequestLabels, Histogram>,
    response_bytes: Family<RequestLabels, Histogram>,
}

impl RequestFamilies {
    fn register(r: &mut Registry) -> RequestFamilies {
        let histograms = || {
            Family::<RequestLabels, Histogram>::new_with_constructor(histogram as fn() -> Histogram)
        };
        RequestFamilies {
            requests: registered(
                r,
                "istio_requests",
                "Requests, by Istio's labels",
                Family::default(),
            ),
            duration: registered(
                r,
                "istio_request_duration_milliseconds",
                "Request duration in milliseconds",
                histograms(),
            ),
            request_bytes: registered(
                r,
                "istio_request_bytes",
                "Request size in bytes",
                histograms(),
            ),
            response_bytes: registered(
                r,
                "istio_response_bytes",
                "Response size in bytes",
                histograms(),
            ),
        }
    }
}

/// Envoy's per-cluster counters and gauges ([`Metrics`]' fields of the
/// same names).
struct ClusterFamilies {
    upstream_rq_total: Family<ClusterLabels, Counter>,
    upstream_rq_retry: Family<ClusterLabels, Counter>,
    upstream_rq_retry_overflow: Family<ClusterLabels, Counter>,
    upstream_rq_pending_overflow: Family<ClusterLabels, Counter>,
    upstream_rq_pending_total: Family<ClusterLabels, Counter>,
    upstream_rq_pending_active: Family<ClusterLabels, Gauge>,
    upstream_rq_pending_failure_eject: Family<ClusterLabels, Counter>,
    upstream_cx_overflow: Family<ClusterLabels, Counter>,
    upstream_rq_active: Family<ClusterLabels, Gauge>,
    upstream_cx_active: Family<ClusterLabels, Gauge>,
    upstream_cx_connect_fail: Family<ClusterLabels, Counter>,
    outlier_detection_ejections_total: Family<ClusterLabels, Counter>,
    outlier_detection_ejections_active: Family<ClusterLabels, Gauge>,
}

impl ClusterFamilies {
    fn register(r: &mut Registry) -> ClusterFamilies {
        ClusterFamilies {
            upstream_rq_total: registered(
                r,
                "envoy_cluster_upstream_rq",
                "Requests sent upstream, per cluster",
                Family::default(),
            ),
            upstream_rq_retry: registered(
                r,
                "envoy_cluster_upstream_rq_retry",
                "Retries, per cluster",
                Family::default(),
            ),
            upstream_rq_retry_overflow: registered(
                r,
                "envoy_cluster_upstream_rq_retry_overflow",
                "Retries skipped by circuit breaking (maxRetries), per cluster",
                Family::default(),
            ),
            upstream_rq_pending_overflow: registered(
                r,
                "envoy_cluster_upstream_rq_pending_overflow",
                "Requests failed fast by connection-pool limits (503 UO), per cluster",
                Family::default(),
            ),
            upstream_rq_pending_total: registered(
                r,
                "envoy_cluster_upstream_rq_pending",
                "Requests that waited for an upstream connection (one being opened, or at maxConnections), per cluster",
                Family::default(),
            ),
            upstream_rq_pending_failure_eject: registered(
                r,
                "envoy_cluster_upstream_rq_pending_failure_eject",
                "Waiting requests failed because their connection failed, per cluster",
                Family::default(),
            ),
            upstream_cx_overflow: registered(
                r,
                "envoy_cluster_upstream_cx_overflow",
                "Times a connection was needed at maxConnections, per cluster",
                Family::default(),
            ),
            upstream_cx_connect_fail: registered(
                r,
                "envoy_cluster_upstream_cx_connect_fail",
                "Upstream connection failures, per cluster",
                Family::default(),
            ),
            outlier_detection_ejections_total: registered(
                r,
                "envoy_cluster_outlier_detection_ejections_enforced",
                "Hosts ejected by outlier detection, per cluster",
                Family::default(),
            ),
            upstream_rq_active: registered(
                r,
                "envoy_cluster_upstream_rq_active",
                "Requests in flight upstream, per cluster",
                Family::default(),
            ),
            upstream_rq_pending_active: registered(
                r,
                "envoy_cluster_upstream_rq_pending_active",
                "Requests waiting for an upstream connection, per cluster",
                Family::default(),
            ),
            upstream_cx_active: registered(
                r,
                "envoy_cluster_upstream_cx_active",
                "Open upstream connections, per cluster",
                Family::default(),
            ),
            outlier_detection_ejections_active: registered(
                r,
                "envoy_cluster_outlier_detection_ejections_active",
                "Hosts currently ejected, per cluster",
                Family::default(),
            ),
        }
    }
}

impl TcpMetrics {
    fn register(r: &mut Registry) -> TcpMetrics {
        TcpMetrics {
            opened: registered(
                r,
                "istio_tcp_connections_opened",
                "TCP connections opened, by Istio's labels",
                Family::default(),
            ),
            closed: registered(
                r,
                "istio_tcp_connections_closed",
                "TCP connections closed, by Istio's labels",
                Family::default(),
            ),
            sent_bytes: registered(
                r,
                "istio_tcp_sent_bytes",
                "Bytes sent to the downstream during TCP connections",
                Family::default(),
            ),
            received_bytes: registered(
                r,
                "istio_tcp_received_bytes",
                "Bytes received from the downstream during TCP connections",
                Family::default(),
            ),
        }
    }
}

impl Metrics {
    pub fn new(source: Source) -> Metrics {
        let mut registry = Registry::default();
        let RequestFamilies {
            requests,
            duration,
            request_bytes,
            response_bytes,
        } = RequestFamilies::register(&mut registry);
        let ClusterFamilies {
            upstream_rq_total,
            upstream_rq_retry,
            upstream_rq_retry_overflow,
            upstream_rq_pending_overflow,
            upstream_rq_pending_total,
            upstream_rq_pending_active,
            upstream_rq_pending_failure_eject,
            upstream_cx_overflow,
            upstream_rq_active,
            upstream_cx_active,
            upstream_cx_connect_fail,
            outlier_detection_ejections_total,
            outlier_detection_ejections_active,
        } = ClusterFamilies::register(&mut registry);
        let tcp = TcpMetrics::register(&mut registry);
        let config_update_success = registered(
            &mut registry,
            "strait_config_update_success",
            "Configuration changes applied by a reload (Envoy's update_success)",
            Counter::default(),
        );
        let config_update_rejected = registered(
            &mut registry,
            "strait_config_update_rejected",
            "Configuration changes rejected by a reload; the last good configuration kept serving (Envoy's update_rejected)",
            Counter::default(),
        );
        Metrics {
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
            tcp,
            config_update_success,
            config_update_rejected,
            registry,
            source,
            unknown: Arc::new("unknown".into()),
            requests,
            duration,
            request_bytes,
            response_bytes,
            upstream_rq_total,
            upstream_rq_retry,
            upstream_rq_retry_overflow,
            upstream_rq_pending_overflow,
            upstream_rq_pending_total,
            upstream_rq_pending_active,
            upstream_rq_pending_failure_eject,
            upstream_cx_overflow,
            upstream_rq_active,
            upstream_cx_active,
            upstream_cx_connect_fail,
            outlier_detection_ejections_total,
            outlier_detection_ejections_active,
        }
    }

    pub fn record(&self, r: &Record<'_>) {
        let key = SeriesKey {
            grpc: r.grpc,
            response_code: r.response_code,
            grpc_status: if r.grpc { r.grpc_status } else { None },
            flags: r.flags,
        };
        let observe = |series: &Series| {
            series.requests.inc();
            series.duration.observe(r.duration_ms);
            series.request_bytes.observe(r.request_bytes as f64);
            series.response_bytes.observe(r.response_bytes as f64);
        };
        match r.destination.cache.as_deref().map(LazyCache::get) {
            Some(cache) if self.owns(cache) => {
                match self.cached_series(cache, r.destination, key) {
                    Some(series) => observe(series),
                    None => observe(&self.series(r.destination, key)),
                }
            }
            _ => observe(&self.series(r.destination, key)),
        }
    }

    /// Claim `cache` for this instance; false if another one owns it. Once
    /// claimed, one load.
    fn owns(&self, cache: &SeriesCache) -> bool {
        match cache.owner.load(Ordering::Acquire) {
            0 => match cache
                .owner
                .compare_exchange(0, self.id, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => true,
                Err(owner) => owner == self.id,
            },
            owner => owner == self.id,
        }
    }

    /// The series of `key` from `cache`'s slots, filling a free one; `None`
    /// when every slot holds another key.
    fn cached_series<'c>(
        &self,
        cache: &'c SeriesCache,
        d: &Destination,
        key: SeriesKey,
    ) -> Option<&'c Series> {
        for slot in &cache.series {
            // Two requests racing for one free slot: the loser moves on, and
            // at worst one key takes two slots.
            let (k, series) = match slot.get() {
                Some(filled) => filled,
                None => slot.get_or_init(|| (key, self.series(d, key))),
            };
            if *k == key {
                return Some(series);
            }
        }
        None
    }

    fn series(&self, d: &Destination, key: SeriesKey) -> Series {
        let labels = RequestLabels {
            peer: self.peer_labels(d),
            request_protocol: if key.grpc { "grpc" } else { "http" },
            response_code: key.response_code,
            grpc_response_status: GrpcLabel(key.grpc_status),
            response_flags: FlagsLabel(key.flags),
            connection_security_policy: "unknown",
        };
        Series {
            requests: self.requests.get_or_create(&labels).clone(),
            duration: self.duration.get_or_create(&labels).clone(),
            request_bytes: self.request_bytes.get_or_create(&labels).clone(),
            response_bytes: self.response_bytes.get_or_create(&labels).clone(),
        }
    }

    /// The hot per-cluster counters of the cluster `d` belongs to.
    pub fn cluster_hot(&self, d: &Destination, name: &Arc<str>) -> ClusterHot {
        let resolve = || {
            let labels = Self::cluster(name);
            // Shown from a cluster's first request on, zero or not, as
            // Envoy's `/stats` shows them (Istio's circuit-breaking task
            // greps for `pending`).
            drop(self.upstream_rq_pending_total.get_or_create(&labels));
            drop(self.upstream_rq_pending_active.get_or_create(&labels));
            drop(
                self.upstream_rq_pending_failure_eject
                    .get_or_create(&labels),
            );
            drop(self.upstream_rq_pending_overflow.get_or_create(&labels));
            drop(self.upstream_cx_overflow.get_or_create(&labels));
            ClusterHot {
                upstream_rq_total: self.upstream_rq_total.get_or_create(&labels).clone(),
                upstream_rq_active: self.upstream_rq_active.get_or_create(&labels).clone(),
            }
        };
        match d.cache.as_deref().map(LazyCache::get) {
            Some(cache) if self.owns(cache) => {
                let (id, hot) = cache.cluster.get_or_init(|| (self.id, resolve()));
                if *id == self.id {
                    hot.clone()
                } else {
                    resolve()
                }
            }
            _ => resolve(),
        }
    }

    fn tcp_labels(&self, d: &Destination, flags: Flags) -> TcpLabels {
        TcpLabels {
            peer: self.peer_labels(d),
            request_protocol: "tcp",
            response_flags: FlagsLabel(flags),
            connection_security_policy: "unknown",
        }
    }

    /// Istio's source and destination labels for a destination.
    fn peer_labels(&self, d: &Destination) -> PeerLabels {
        let s = &self.source;
        PeerLabels {
            reporter: "source",
            source_workload: s.workload.clone(),
            source_workload_namespace: s.namespace.clone(),
            source_principal: "unknown",
            source_app: s.app.clone(),
            source_version: s.version.clone(),
            source_canonical_service: s.canonical_service.clone(),
            source_canonical_revision: s.canonical_revision.clone(),
            source_cluster: "unknown",
            destination_workload: "unknown",
            destination_workload_namespace: d.namespace.clone(),
            destination_principal: "unknown",
            destination_app: self.unknown.clone(),
            destination_version: d.version.clone(),
            destination_canonical_service: d.name.clone(),
            destination_canonical_revision: d.version.clone(),
            destination_cluster: "unknown",
            destination_service: d.service.clone(),
            destination_service_name: d.name.clone(),
            destination_service_namespace: d.namespace.clone(),
        }
    }

    /// A proxied TCP connection opened (`istio_tcp_connections_opened_total`).
    pub fn tcp_opened(&self, d: &Destination) {
        self.tcp
            .opened
            .get_or_create(&self.tcp_labels(d, Flags::NONE))
            .inc();
    }

    /// A proxied TCP connection closed, with its bytes in each direction
    /// and its response flags.
    pub fn tcp_closed(&self, d: &Destination, flags: Flags, sent: u64, received: u64) {
        let labels = self.tcp_labels(d, flags);
        self.tcp.closed.get_or_create(&labels).inc();
        self.tcp.sent_bytes.get_or_create(&labels).inc_by(sent);
        self.tcp
            .received_bytes
            .get_or_create(&labels)
            .inc_by(received);
    }

    pub fn cluster(name: &Arc<str>) -> ClusterLabels {
        ClusterLabels {
            cluster_name: name.clone(),
        }
    }

    /// Register a metric kept outside the request path (downstream limits).
    pub fn register(
        &mut self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry.register(name, help, metric);
    }

    /// The exposition text (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One cached request series of a destination, read for the admin page.
pub struct SeriesRead {
    pub response_code: u16,
    pub flags: Flags,
    /// `istio_requests_total` of this series.
    pub requests: u64,
    /// `istio_request_duration_milliseconds` of this series (a handle).
    pub duration: Histogram,
}

impl Metrics {
    /// The request series `d` has cached for this instance (none when it
    /// belongs to another; at most `SERIES_SLOTS` of them). Off the request
    /// path: plain loads of the filled slots.
    pub fn series_of(&self, d: &Destination) -> Vec<SeriesRead> {
        // Not allocated: no request has been recorded.
        let Some(cache) = d.cache.as_deref().and_then(|c| c.0.get()) else {
            return Vec::new();
        };
        if cache.owner.load(Ordering::Acquire) != self.id {
            return Vec::new();
        }
        // A key raced into two slots is one series: read it once.
        let mut seen: Vec<SeriesKey> = Vec::new();
        cache
            .series
            .iter()
            .filter_map(OnceLock::get)
            .filter(|(k, _)| {
                let first = !seen.contains(k);
                seen.push(*k);
                first
            })
            .map(|(k, s)| SeriesRead {
                response_code: k.response_code,
                flags: k.flags,
                requests: s.requests.get(),
                duration: s.duration.clone(),
            })
            .collect()
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Envoy's stat names for the per-cluster series (OpenMetrics name as
/// encoded → Envoy's `cluster.<name>.<stat>`).
const ENVOY_STATS: [(&str, &str); 13] = [
    ("envoy_cluster_upstream_rq_total", "upstream_rq_total"),
    (
        "envoy_cluster_upstream_rq_pending_total",
        "upstream_rq_pending_total",
    ),
    (
        "envoy_cluster_upstream_rq_pending_active",
        "upstream_rq_pending_active",
    ),
    (
        "envoy_cluster_upstream_rq_pending_failure_eject_total",
        "upstream_rq_pending_failure_eject",
    ),
    (
        "envoy_cluster_upstream_cx_overflow_total",
        "upstream_cx_overflow",
    ),
    ("envoy_cluster_upstream_rq_retry_total", "upstream_rq_retry"),
    (
        "envoy_cluster_upstream_rq_retry_overflow_total",
        "upstream_rq_retry_overflow",
    ),
    (
        "envoy_cluster_upstream_rq_pending_overflow_total",
        "upstream_rq_pending_overflow",
    ),
    (
        "envoy_cluster_upstream_cx_connect_fail_total",
        "upstream_cx_connect_fail",
    ),
    (
        "envoy_cluster_outlier_detection_ejections_enforced_total",
        "outlier_detection.ejections_enforced_total",
    ),
    ("envoy_cluster_upstream_rq_active", "upstream_rq_active"),
    ("envoy_cluster_upstream_cx_active", "upstream_cx_active"),
    (
        "envoy_cluster_outlier_detection_ejections_active",
        "outlier_detection.ejections_active",
    ),
];

/// The per-cluster series of an OpenMetrics exposition in Envoy's plain
/// `/stats` format (`cluster.outbound|80||a.b.svc.cluster.local.upstream_rq_total: 3`),
/// sorted, so the `… | grep pending` of Istio's circuit-breaking task works.
pub fn envoy_stats(openmetrics: &str) -> String {
    let mut lines: Vec<String> = openmetrics
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('{')?;
            let stat = ENVOY_STATS.iter().find(|(n, _)| *n == name)?.1;
            let cluster = rest.split_once("cluster_name=\"")?.1.split_once('"')?.0;
            let value = rest.rsplit_once("} ")?.1.split(' ').next()?;
            Some(format!("cluster.{cluster}.{stat}: {value}\n"))
        })
        .collect();
    lines.sort();
    lines.concat()
}

#[cfg(test)]
mod tests;
