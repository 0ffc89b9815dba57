//! A cluster's DestinationRule policy, compiled once into the typed settings
//! the runtime uses (as linkerd's `client-policy` turns its API types into
//! the proxy's): circuit breakers, connection pool, load balancer, hash
//! key, slow start, locality setting, outlier detection and TLS. `compile`
//! builds one per cluster from the merged `TrafficPolicy`
//! ([`super::policy::effective`]); `cluster/` and `proxy/` read only this, and
//! a reload compares it to decide whether a cluster's runtime state (breakers,
//! pools, detector) carries over.

pub mod outlier;
pub mod pool;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::model::{
    ClientTLSMode, ClientTLSSettings, ConsistentHashLB, LoadBalancerSettings,
    LocalityLoadBalancerSetting, SimpleLB, TrafficPolicy,
};
pub use crate::route::hash_policy::HashKey;
pub use outlier::OutlierConfig;
pub use pool::{Keepalive, PoolSettings};

/// Istio's value for every circuit-breaker threshold it does not set.
pub const UNLIMITED: u32 = u32::MAX;
/// MeshConfig `connectTimeout` default, for clusters whose policy sets none.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Envoy's default `min_weight_percent` (and Istio's `minimumPercent` default).
pub const DEFAULT_MIN_PERCENT: f64 = 10.0;
/// Envoy's default `aggression` (and Istio's).
pub const DEFAULT_AGGRESSION: f64 = 1.0;

/// Everything the runtime needs from one cluster's DestinationRule policy.
/// `Default` is a cluster without one (every Istio default).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterPolicy {
    pub breakers: CircuitBreakers,
    pub pool: PoolSettings,
    pub lb: BalancerKind,
    /// The ring or Maglev table of a `consistentHash` balancer.
    pub hash: Option<HashAlgorithm>,
    /// The request hash policy of a `consistentHash` balancer.
    pub hash_key: Option<HashKey>,
    pub slow_start: Option<SlowStart>,
    /// The locality LB setting in effect (`None`: locality LB off).
    pub locality: Option<LocalitySetting>,
    /// Present when the policy has an `outlierDetection` block (Istio has
    /// no detector otherwise).
    pub outlier: Option<OutlierConfig>,
    /// `trafficPolicy.tls`, read into a TLS client config when a pool is
    /// built (certificate files are read then).
    pub tls: Option<UpstreamTls>,
}

/// `trafficPolicy.tls` as the upstream pool reads it (its files are read
/// when a pool is built, by `proxy::tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamTls {
    pub mode: UpstreamTlsMode,
    /// `caCertificates` (`None`: the web PKI roots).
    pub ca_certificates: Option<String>,
    /// `clientCertificate` and `privateKey` (MUTUAL; empty when unset).
    pub client_certificate: String,
    pub private_key: String,
    pub subject_alt_names: Vec<String>,
    /// `sni` (`None`: the request's authority is sent).
    pub sni: Option<String>,
    pub insecure_skip_verify: bool,
}

/// `tls.mode`, with what strait cannot originate said once, here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    Disable,
    Simple,
    Mutual,
    /// ISTIO_MUTUAL or a `credentialName`: the reason every request of the
    /// cluster fails with (UF).
    Unsupported(String),
}

impl UpstreamTlsMode {
    /// Istio's name of the mode.
    pub fn name(&self) -> &'static str {
        match self {
            UpstreamTlsMode::Disable => "DISABLE",
            UpstreamTlsMode::Simple => "SIMPLE",
            UpstreamTlsMode::Mutual => "MUTUAL",
            UpstreamTlsMode::Unsupported(_) => "unsupported",
        }
    }
}

impl From<&ClientTLSSettings> for UpstreamTls {
    fn from(tls: &ClientTLSSettings) -> UpstreamTls {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        let mode = match (
            super::policy::unsupported_tls(tls),
            tls.mode.unwrap_or_default(),
        ) {
            (Some(reason), _) => UpstreamTlsMode::Unsupported(reason),
            (None, ClientTLSMode::Disable) => UpstreamTlsMode::Disable,
            (None, ClientTLSMode::Simple) => UpstreamTlsMode::Simple,
            (None, ClientTLSMode::Mutual) => UpstreamTlsMode::Mutual,
            // Refused by `unsupported_tls` above.
            (None, ClientTLSMode::IstioMutual) => {
                UpstreamTlsMode::Unsupported("ISTIO_MUTUAL is not supported".into())
            }
        };
        UpstreamTls {
            mode,
            ca_certificates: tls.ca_certificates.clone().filter(|p| !p.is_empty()),
            client_certificate: text(&tls.client_certificate),
            private_key: text(&tls.private_key),
            subject_alt_names: tls.subject_alt_names.clone(),
            sni: tls.sni.clone().filter(|s| !s.is_empty()),
            insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
        }
    }
}

/// The request-level circuit breakers Istio writes from
/// `connectionPool.http` (0 or unset → 2^32-1, as Istio's
/// `if settings.Http.MaxRetries > 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakers {
    /// `http2MaxRequests` → Envoy `max_requests`.
    pub max_requests: u32,
    /// `maxRetries` → Envoy `max_retries`.
    pub max_retries: u32,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_requests: UNLIMITED,
            max_retries: UNLIMITED,
        }
    }
}

impl CircuitBreakers {
    fn new(policy: Option<&TrafficPolicy>) -> CircuitBreakers {
        let http = policy
            .and_then(|p| p.connection_pool.as_ref())
            .and_then(|c| c.http.as_ref());
        let threshold = |v: Option<i32>| match v {
            Some(n) if n > 0 => n as u32,
            _ => UNLIMITED,
        };
        CircuitBreakers {
            max_requests: threshold(http.and_then(|h| h.http2_max_requests)),
            max_retries: threshold(http.and_then(|h| h.max_retries)),
        }
    }
}

impl Default for ClusterPolicy {
    fn default() -> Self {
        ClusterPolicy::new(None)
    }
}

impl From<&TrafficPolicy> for ClusterPolicy {
    fn from(policy: &TrafficPolicy) -> Self {
        ClusterPolicy::new(Some(policy))
    }
}

impl ClusterPolicy {
    /// The shared compiled policy for `policy`: clusters without one (most,
    /// in a large mesh) share a single default.
    pub fn compile(policy: Option<TrafficPolicy>) -> Arc<ClusterPolicy> {
        static DEFAULT: LazyLock<Arc<ClusterPolicy>> = LazyLock::new(Arc::default);
        match policy {
            Some(p) => Arc::new(ClusterPolicy::from(&p)),
            None => DEFAULT.clone(),
        }
    }

    /// The settings for a cluster with `policy` (already merged for its
    /// port and subset; `None`: no DestinationRule policy).
    pub fn new(policy: Option<&TrafficPolicy>) -> ClusterPolicy {
        let lb = policy.and_then(|p| p.load_balancer.as_deref());
        let consistent = lb.and_then(|l| l.consistent_hash.as_ref());
        ClusterPolicy {
            breakers: CircuitBreakers::new(policy),
            pool: PoolSettings::from_policy(policy, DEFAULT_CONNECT_TIMEOUT),
            lb: BalancerKind::of(lb),
            hash: consistent.map(HashAlgorithm::from_policy),
            hash_key: consistent.and_then(HashKey::from_policy),
            slow_start: lb.and_then(SlowStart::from_lb),
            locality: effective_setting(lb.and_then(|l| l.locality_lb_setting.as_ref()), None)
                .as_ref()
                .map(LocalitySetting::from),
            outlier: policy
                .and_then(|p| p.outlier_detection.as_ref())
                .map(|od| OutlierConfig::from_istio(od)),
            tls: policy.and_then(|p| p.tls.as_ref()).map(UpstreamTls::from),
        }
    }
}

/// Envoy `RingHashLoadBalancer::DefaultMinRingSize`; also what Istio sets.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;

/// Envoy `MaglevTable::DefaultTableSize`, the paper's recommended prime.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;

/// Which consistent-hash algorithm a cluster uses, with its size parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    RingHash { minimum_ring_size: u64 },
    Maglev { table_size: u64 },
}

impl HashAlgorithm {
    /// Mirrors Istio `ApplyRingHashLoadBalancer` (cluster_traffic_policy.go):
    /// `maglev` → MAGLEV (table size only when non-zero, else Envoy's 65537);
    /// `ringHash` → RING_HASH (minimum size only when non-zero, else 1024);
    /// neither → RING_HASH with the deprecated `minimumRingSize` or 1024.
    pub fn from_policy(policy: &ConsistentHashLB) -> HashAlgorithm {
        if let Some(maglev) = &policy.maglev {
            let table_size = maglev
                .table_size
                .filter(|&n| n != 0)
                .unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE);
            return HashAlgorithm::Maglev { table_size };
        }
        let minimum_ring_size = match &policy.ring_hash {
            Some(ring) => ring.minimum_ring_size,
            None => policy.minimum_ring_size,
        }
        .filter(|&n| n != 0)
        .unwrap_or(DEFAULT_MIN_RING_SIZE);
        HashAlgorithm::RingHash { minimum_ring_size }
    }
}

/// A cluster's slow-start configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    pub window: Duration,
    /// Percentage, 0–100.
    pub min_percent: f64,
    pub aggression: f64,
}
impl SlowStart {
    /// What Istio puts in the cluster's `slow_start_config`
    /// (`applyRoundRobinLoadBalancer` / `applyLeastRequestLoadBalancer` with
    /// `setWarmup` / `setSlowStartConfig`): only for ROUND_ROBIN and
    /// LEAST_REQUEST (also UNSPECIFIED and the deprecated LEAST_CONN, which
    /// become LEAST_REQUEST); a consistent hash replaces the LB config, so it
    /// has none. `warmup` wins over the deprecated `warmupDurationSecs`,
    /// which takes Envoy's defaults for the rest.
    pub fn from_lb(lb: &LoadBalancerSettings) -> Option<SlowStart> {
        if lb.consistent_hash.is_some() {
            return None;
        }
        match lb.simple.unwrap_or_default() {
            SimpleLB::RoundRobin
            | SimpleLB::LeastRequest
            | SimpleLB::LeastConn
            | SimpleLB::Unspecified => {}
            SimpleLB::Random | SimpleLB::Passthrough => return None,
        }
        if let Some(warmup) = &lb.warmup {
            return Some(SlowStart {
                window: warmup.duration.as_ref()?.as_std(),
                min_percent: warmup.minimum_percent.unwrap_or(DEFAULT_MIN_PERCENT),
                aggression: warmup.aggression.unwrap_or(DEFAULT_AGGRESSION),
            });
        }
        lb.warmup_duration_secs.as_ref().map(|d| SlowStart {
            window: d.as_std(),
            min_percent: DEFAULT_MIN_PERCENT,
            aggression: DEFAULT_AGGRESSION,
        })
    }
}

/// The balancing policy Istio derives from `loadBalancer` (§2.5, §0.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BalancerKind {
    LeastRequest,
    RoundRobin,
    Random,
    Passthrough,
    ConsistentHash,
}
impl BalancerKind {
    /// Istio's `defaultLBAlgorithm` (LEAST_REQUEST) for unset,
    /// `UNSPECIFIED` and the deprecated `LEAST_CONN`.
    pub fn of(lb: Option<&LoadBalancerSettings>) -> BalancerKind {
        let Some(lb) = lb else {
            return BalancerKind::LeastRequest;
        };
        if lb.consistent_hash.is_some() {
            return BalancerKind::ConsistentHash;
        }
        match lb.simple.unwrap_or_default() {
            SimpleLB::Unspecified | SimpleLB::LeastConn | SimpleLB::LeastRequest => {
                BalancerKind::LeastRequest
            }
            SimpleLB::RoundRobin => BalancerKind::RoundRobin,
            SimpleLB::Random => BalancerKind::Random,
            SimpleLB::Passthrough => BalancerKind::Passthrough,
        }
    }
}

/// `localityLbSetting` as the balancer reads it (the effective setting of
/// [`effective_setting`]; its patterns plain strings, unset ones empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalitySetting {
    /// `enabled: false`.
    pub disabled: bool,
    /// `distribute`: each rule's `from` pattern and weight per `to` pattern.
    pub distribute: Vec<(String, BTreeMap<String, u32>)>,
    /// `failover`: each rule's `from` region and `to` region.
    pub failover: Vec<(String, String)>,
    /// `failoverPriority`: label keys or `key=value`, in priority order.
    pub failover_priority: Vec<String>,
}

impl From<&LocalityLoadBalancerSetting> for LocalitySetting {
    fn from(s: &LocalityLoadBalancerSetting) -> LocalitySetting {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        LocalitySetting {
            disabled: s.enabled == Some(false),
            distribute: s
                .distribute
                .iter()
                .map(|d| (text(&d.from), d.to.clone()))
                .collect(),
            failover: s
                .failover
                .iter()
                .map(|f| (text(&f.from), text(&f.to)))
                .collect(),
            failover_priority: s.failover_priority.clone(),
        }
    }
}

/// Istio `GetLocalityLbSetting(mesh, destrule, service)`: the
/// DestinationRule's setting replaces the mesh-wide one entirely; either one
/// with `enabled: false` turns locality load balancing off (`None`).
/// `mesh = None` means Istio's default mesh config, `{enabled: true}`.
pub fn effective_setting(
    destination_rule: Option<&LocalityLoadBalancerSetting>,
    mesh: Option<&LocalityLoadBalancerSetting>,
) -> Option<LocalityLoadBalancerSetting> {
    if let Some(dr) = destination_rule {
        return (dr.enabled != Some(false)).then(|| dr.clone());
    }
    match mesh {
        Some(m) => (m.enabled != Some(false)).then(|| m.clone()),
        None => Some(LocalityLoadBalancerSetting {
            enabled: Some(true),
            ..Default::default()
        }),
    }
}
