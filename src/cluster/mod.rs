//! Runtime state of the upstream clusters: hosts with their active-request
//! counts, the DestinationRule load balancer, and the request-level circuit
//! breakers. It lives beside the immutable [`Snapshot`] and survives
//! reloads: [`Registry::reconcile`] keeps a cluster's state when its policy
//! and endpoints did not change, and keeps the hosts that stayed when only
//! the endpoints did (Envoy's CDS/EDS update semantics).
//!
//! No async runtime here: std atomics and locks only.

pub mod balance;
pub mod hash;
pub mod limits;
pub mod locality;
pub mod outlier;
pub mod random;
pub mod warmup;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

pub use crate::compile::cluster_policy::BalancerKind;
use crate::compile::cluster_policy::ClusterPolicy;
use crate::compile::{Cluster, Endpoint, ProxyIdentity, Snapshot};
use crate::route::ClusterKey;
pub use balance::{Balancer, HashTable, Pick, PickError};
pub use limits::{Breakers, Permit};
use locality::{EndpointLocality, Locality};
use outlier::{Ejection, OutlierDetector};

/// One upstream endpoint of a cluster, with its runtime counters.
#[derive(Debug)]
pub struct Host {
    pub endpoint: Endpoint,
    /// Requests in flight to this host (Envoy's `rq_active`).
    active: AtomicU32,
    /// When the host joined the cluster (for slow start).
    pub added: Instant,
}

impl Host {
    pub fn new(endpoint: Endpoint) -> Host {
        Host {
            endpoint,
            active: AtomicU32::new(0),
            added: Instant::now(),
        }
    }

    pub fn authority(&self) -> &Arc<str> {
        &self.endpoint.authority
    }

    /// The endpoint's load-balancing weight (at least 1).
    pub fn weight(&self) -> u32 {
        self.endpoint.weight.max(1)
    }

    /// Requests in flight to this host.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Count one request in flight until the guard drops.
    pub fn begin(self: &Arc<Self>) -> HostGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        HostGuard { host: self.clone() }
    }
}

/// One request in flight to a host; dropping it ends the request.
#[derive(Debug)]
pub struct HostGuard {
    host: Arc<Host>,
}

impl HostGuard {
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        self.host.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The runtime state of one cluster.
#[derive(Debug)]
pub struct ClusterState {
    pub name: Arc<str>,
    /// In the snapshot cluster's endpoint order.
    pub hosts: Vec<Arc<Host>>,
    pub balancer: Balancer,
    /// Shared with the previous state when only endpoints changed.
    pub limits: Arc<Breakers>,
    /// The compiled DestinationRule policy this state was built from.
    pub policy: Arc<ClusterPolicy>,
    /// Present when the policy has an `outlierDetection` block (Istio has
    /// none otherwise). Indexed like `hosts`; shared with the next state
    /// when a reload keeps the outlier config (see [`ClusterState::new`]).
    pub outlier: Option<Arc<OutlierDetector>>,
    /// Locality load balancing, when it changes anything for this proxy.
    pub locality: Option<LocalityLb>,
    /// The compiled cluster this state was last found to match, held
    /// weakly (its address is not reused while held): a reconcile keeps
    /// the state of a cluster an endpoint update shared unchanged without
    /// comparing its endpoints again.
    compiled: std::sync::Mutex<std::sync::Weak<Cluster>>,
}

/// Locality load balancing for one cluster (§2.6), as Istio lays out the
/// endpoints for Envoy: failover priorities, or `distribute` weights per
/// locality. Built once per state; picking allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalityLb {
    /// Envoy priority per host (0 preferred). A pick uses the lowest
    /// priority that has an available host: failover happens when outlier
    /// detection ejected every host of the better ones. (Envoy also
    /// spills part of the load over as soon as a priority is less than
    /// 1/1.4 healthy; strait only moves when none is left.)
    Priorities(Vec<u32>),
    /// Locality index per host, and each locality's weight (`0`: the
    /// locality was dropped). A pick first chooses a locality with an
    /// available host, at random by weight, then a host in it (Envoy's
    /// locality-weighted balancing, without its health scaling).
    Distribute {
        locality: Vec<u32>,
        weights: Vec<u32>,
    },
}

impl LocalityLb {
    /// Istio's `ApplyLocalityLoadBalancer` for `hosts` and a proxy with
    /// `identity`, with Istio's default mesh setting (`{enabled: true}`).
    /// `None` when it changes nothing: locality LB off, the proxy's
    /// locality unknown (and no `failoverPriority`), one priority only and
    /// no `distribute` rule for the proxy.
    pub fn new(
        cluster: &Cluster,
        hosts: &[Arc<Host>],
        identity: &ProxyIdentity,
    ) -> Option<LocalityLb> {
        let setting = cluster.policy.locality.as_ref()?;
        let proxy = Locality::parse(&identity.locality);
        if proxy.is_empty() && setting.failover_priority.is_empty() {
            return None;
        }
        let endpoints: Vec<EndpointLocality> = hosts
            .iter()
            .map(|h| EndpointLocality {
                locality: Locality::parse(h.endpoint.locality.as_deref().unwrap_or("")),
                labels: (*h.endpoint.labels).clone(),
                weight: h.weight(),
            })
            .collect();
        // Istio: failover needs outlier detection, or Envoy would never
        // move down a priority.
        let outlier = cluster.policy.outlier.is_some();
        let priorities = locality::priorities_with_labels(
            &proxy,
            &identity.labels,
            &endpoints,
            setting,
            outlier,
        );
        if priorities.iter().any(|&p| p > 0) {
            return Some(LocalityLb::Priorities(priorities));
        }
        let weights = locality::distribute_weights(&proxy, &endpoints, setting);
        let natural = locality::distribute_weights(
            &proxy,
            &endpoints,
            &crate::compile::cluster_policy::LocalitySetting {
                distribute: Vec::new(),
                ..setting.clone()
            },
        );
        if weights == natural {
            return None;
        }
        let mut seen: Vec<&Locality> = Vec::new();
        let mut per_locality = Vec::new();
        let index = endpoints
            .iter()
            .zip(&weights)
            .map(
                |(ep, &w)| match seen.iter().position(|l| **l == ep.locality) {
                    Some(i) => i as u32,
                    None => {
                        seen.push(&ep.locality);
                        per_locality.push(w);
                        (seen.len() - 1) as u32
                    }
                },
            )
            .collect();
        Some(LocalityLb::Distribute {
            locality: index,
            weights: per_locality,
        })
    }

    /// The group for one pick among the hosts `available` accepts: the
    /// lowest priority with one, or a locality by weight. `None`: no
    /// available host in any group.
    fn choose(&self, n: usize, available: &dyn Fn(usize) -> bool) -> Option<(&[u32], u32)> {
        match self {
            LocalityLb::Priorities(prio) => (0..n)
                .filter(|&i| available(i))
                .map(|i| prio[i])
                .min()
                .map(|p| (&prio[..], p)),
            LocalityLb::Distribute { locality, weights } => {
                let live = |g: usize| {
                    weights[g] > 0 && (0..n).any(|i| locality[i] as usize == g && available(i))
                };
                let total: u64 = (0..weights.len())
                    .filter(|&g| live(g))
                    .map(|g| u64::from(weights[g]))
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut roll = random::random_range(0..total);
                for g in (0..weights.len()).filter(|&g| live(g)) {
                    let w = u64::from(weights[g]);
                    if roll < w {
                        return Some((&locality[..], g as u32));
                    }
                    roll -= w;
                }
                None
            }
        }
    }
}

impl ClusterState {
    /// State for `cluster`, reusing the hosts (by identical endpoint) and,
    /// when the policy is unchanged, the circuit breakers of `previous`.
    pub fn new(
        cluster: &Cluster,
        previous: Option<&ClusterState>,
        identity: &ProxyIdentity,
    ) -> ClusterState {
        let hosts: Vec<Arc<Host>> = cluster
            .endpoints
            .iter()
            .map(|e| {
                previous
                    .and_then(|p| p.hosts.iter().find(|h| h.endpoint == *e))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Host::new(e.clone())))
            })
            .collect();
        let limits = match previous {
            Some(p) if same_policy(&p.policy, &cluster.policy) => p.limits.clone(),
            _ => Arc::new(Breakers::new(&cluster.policy.breakers)),
        };
        let balancer = Balancer::new(&cluster.policy, &hosts);
        let outlier = outlier_state(cluster, previous, &hosts);
        let locality = LocalityLb::new(cluster, &hosts, identity);
        if balancer.kind() == BalancerKind::Passthrough {
            tracing::warn!(
                cluster = %cluster.name,
                "loadBalancer PASSTHROUGH (original destination) is not supported: requests to this cluster get 503"
            );
        }
        ClusterState {
            name: cluster.name.clone(),
            hosts,
            balancer,
            limits,
            policy: cluster.policy.clone(),
            outlier,
            locality,
            compiled: std::sync::Mutex::new(std::sync::Weak::new()),
        }
    }

    /// True if this state was built for, or last matched, this very
    /// compiled cluster.
    fn built_for(&self, cluster: &Arc<Cluster>) -> bool {
        let seen = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        std::ptr::eq(seen.as_ptr(), Arc::as_ptr(cluster))
    }

    /// Remember that this state serves `cluster`.
    fn serves(&self, cluster: &Arc<Cluster>) {
        *self.compiled.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(cluster);
    }

    /// True if `cluster` would build the same state (same policy, same
    /// endpoints in the same order).
    pub fn matches(&self, cluster: &Cluster) -> bool {
        same_policy(&self.policy, &cluster.policy)
            && self.hosts.len() == cluster.endpoints.len()
            && self
                .hosts
                .iter()
                .zip(&cluster.endpoints)
                .all(|(h, e)| h.endpoint == *e)
    }

    /// The host for one request attempt, among the hosts outlier detection
    /// leaves eligible (`NoHost` when it ejected all of them and panic
    /// mode is off: 503 UH).
    pub fn pick(&self, p: &Pick<'_>) -> Result<Arc<Host>, PickError> {
        let mask = match &self.outlier {
            Some(od) => Some(od.eligible(p.now).ok_or(PickError::NoHost)?),
            None => None,
        };
        let eligible = mask.as_deref().or(p.eligible);
        let group = match &self.locality {
            Some(l) => {
                let available = |i: usize| eligible.is_none_or(|m| m.get(i) != Some(&false));
                match l.choose(self.hosts.len(), &available) {
                    Some(g) => Some(g),
                    None => return Err(PickError::NoHost),
                }
            }
            None => None,
        };
        let p = Pick {
            eligible,
            group: group.or(p.group),
            ..*p
        };
        self.balancer
            .pick(&self.hosts, &p)
            .map(|i| self.hosts[i].clone())
    }

    /// The index of `host` in this state.
    pub fn index_of(&self, host: &Arc<Host>) -> Option<usize> {
        self.hosts.iter().position(|h| Arc::ptr_eq(h, host))
    }

    /// Report one attempt's outcome on `host` to outlier detection (no-op
    /// without it, or when the host is no longer in this state).
    pub fn record(
        &self,
        host: &Arc<Host>,
        outcome: outlier::HostOutcome,
        now: Instant,
    ) -> Option<Ejection> {
        let od = self.outlier.as_ref()?;
        od.record(self.index_of(host)?, outcome, now)
    }

    /// Per host: ejected by outlier detection at `now`, and times ejected.
    pub fn host_health(&self, now: Instant) -> Vec<(bool, u32)> {
        match &self.outlier {
            Some(od) => {
                let available = od.available(now);
                (0..self.hosts.len())
                    .map(|i| {
                        let ejected = !available.get(i).copied().unwrap_or(true);
                        let n = od.host_ejections(i).map_or(0, |(n, _)| n);
                        (ejected, n)
                    })
                    .collect()
            }
            None => vec![(false, 0); self.hosts.len()],
        }
    }
}

/// Whether two compiled policies are the same (the same `Arc` mostly).
pub fn same_policy(a: &Arc<ClusterPolicy>, b: &Arc<ClusterPolicy>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// The outlier detector for a new state: none without an
/// `outlierDetection` block; the previous one, re-indexed with `retain`,
/// when the outlier config is unchanged (Envoy keeps host monitors across
/// EDS updates); a fresh one otherwise (a changed cluster config).
fn outlier_state(
    cluster: &Cluster,
    previous: Option<&ClusterState>,
    hosts: &[Arc<Host>],
) -> Option<Arc<OutlierDetector>> {
    let config = cluster.policy.outlier.as_ref()?;
    if let Some(prev) = previous
        && let Some(old) = &prev.outlier
        && old.config() == config
    {
        let keep: Vec<Option<usize>> = hosts.iter().map(|h| prev.index_of(h)).collect();
        old.retain(&keep);
        return Some(old.clone());
    }
    Some(Arc::new(OutlierDetector::new(
        config.clone(),
        hosts.len(),
        Instant::now(),
    )))
}

/// Every cluster's runtime state, swapped atomically on reconcile.
/// Cluster states by key (config-controlled keys: a fast hash is safe).
pub type StateMap = HashMap<ClusterKey, Arc<ClusterState>, rustc_hash::FxBuildHasher>;

#[derive(Debug, Default)]
pub struct Registry {
    clusters: ArcSwap<StateMap>,
    /// The proxy identity of the last reconcile (locality load balancing
    /// depends on it).
    identity: ArcSwap<ProxyIdentity>,
    /// Serializes reconciles (reads never take it).
    write: Mutex<()>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Bring the registry in line with `snap`: unchanged clusters keep
    /// their state, changed ones are rebuilt (keeping hosts that stayed),
    /// removed ones are dropped (requests in flight keep their `Arc`).
    pub fn reconcile(&self, snap: &Snapshot) {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.clusters.load_full();
        let prev_id = self.identity.load_full();
        let same_id =
            prev_id.locality == snap.identity.locality && prev_id.labels == snap.identity.labels;
        let next: StateMap = snap
            .clusters
            .iter()
            .map(|(key, c)| {
                let prev = old.get(key);
                let state = match prev {
                    // Shared unchanged by an endpoint update: the same
                    // compiled cluster, nothing to compare.
                    Some(p) if same_id && p.built_for(c) => p.clone(),
                    Some(p) if same_id && p.matches(c) => p.clone(),
                    _ => Arc::new(ClusterState::new(c, prev.map(|p| &**p), &snap.identity)),
                };
                state.serves(c);
                (key.clone(), state)
            })
            .collect();
        self.clusters.store(Arc::new(next));
        self.identity.store(Arc::new(snap.identity.clone()));
    }

    pub fn get(&self, key: &ClusterKey) -> Option<Arc<ClusterState>> {
        self.clusters.load().get(key).cloned()
    }

    /// The state for `cluster`: the registry's, or a transient one when a
    /// request still holds a snapshot whose cluster was since removed.
    pub fn state_for(&self, cluster: &Cluster) -> Arc<ClusterState> {
        self.get(&cluster.key)
            .unwrap_or_else(|| Arc::new(ClusterState::new(cluster, None, &self.identity.load())))
    }

    /// Report an attempt's outcome on `host`, picked from `state`. A reload
    /// may since have re-indexed the shared detector for a newer state, so
    /// the outcome goes through the registry's current state when it shares
    /// `state`'s detector (an outcome from a replaced detector is kept by
    /// that detector only).
    pub fn record(
        &self,
        state: &ClusterState,
        key: &ClusterKey,
        host: &Arc<Host>,
        outcome: outlier::HostOutcome,
        now: Instant,
    ) -> Option<Ejection> {
        let od = state.outlier.as_ref()?;
        match self.get(key) {
            Some(cur) if cur.outlier.as_ref().is_some_and(|c| Arc::ptr_eq(c, od)) => {
                cur.record(host, outcome, now)
            }
            _ => state.record(host, outcome, now),
        }
    }

    /// All clusters (admin API).
    pub fn all(&self) -> Arc<StateMap> {
        self.clusters.load_full()
    }
}

#[cfg(test)]
mod tests;
