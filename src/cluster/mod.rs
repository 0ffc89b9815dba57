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
pub mod warmup;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::compile::{Cluster, Endpoint, Snapshot};
use crate::model::TrafficPolicy;
use crate::route::ClusterKey;
pub use balance::{Balancer, HashTable, Kind, Pick, PickError};
pub use limits::{Limits, Permit};

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

    /// Whether the host may receive requests at `now`. Always true until
    /// outlier detection ejects hosts.
    pub fn is_available(&self, _now: Instant) -> bool {
        true
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
    pub limits: Arc<Limits>,
    /// The merged DestinationRule policy this state was built from.
    pub policy: Option<TrafficPolicy>,
}

impl ClusterState {
    /// State for `cluster`, reusing the hosts (by identical endpoint) and,
    /// when the policy is unchanged, the circuit breakers of `previous`.
    pub fn new(cluster: &Cluster, previous: Option<&ClusterState>) -> ClusterState {
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
            Some(p) if p.policy == cluster.policy => p.limits.clone(),
            _ => Arc::new(Limits::from_policy(cluster.policy.as_ref())),
        };
        let lb = cluster
            .policy
            .as_ref()
            .and_then(|p| p.load_balancer.as_ref());
        let balancer = Balancer::new(lb, &hosts);
        if balancer.kind() == Kind::Passthrough {
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
        }
    }

    /// True if `cluster` would build the same state (same policy, same
    /// endpoints in the same order).
    pub fn matches(&self, cluster: &Cluster) -> bool {
        self.policy == cluster.policy
            && self.hosts.len() == cluster.endpoints.len()
            && self
                .hosts
                .iter()
                .zip(&cluster.endpoints)
                .all(|(h, e)| h.endpoint == *e)
    }

    /// The host for one request attempt.
    pub fn pick(&self, p: &Pick<'_>) -> Result<Arc<Host>, PickError> {
        self.balancer
            .pick(&self.hosts, p)
            .map(|i| self.hosts[i].clone())
    }
}

/// Every cluster's runtime state, swapped atomically on reconcile.
#[derive(Debug, Default)]
pub struct Registry {
    clusters: ArcSwap<HashMap<ClusterKey, Arc<ClusterState>>>,
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
        let next: HashMap<ClusterKey, Arc<ClusterState>> = snap
            .clusters
            .iter()
            .map(|(key, c)| {
                let prev = old.get(key);
                let state = match prev {
                    Some(p) if p.matches(c) => p.clone(),
                    _ => Arc::new(ClusterState::new(c, prev.map(|p| &**p))),
                };
                (key.clone(), state)
            })
            .collect();
        self.clusters.store(Arc::new(next));
    }

    pub fn get(&self, key: &ClusterKey) -> Option<Arc<ClusterState>> {
        self.clusters.load().get(key).cloned()
    }

    /// The state for `cluster`: the registry's, or a transient one when a
    /// request still holds a snapshot whose cluster was since removed.
    pub fn state_for(&self, cluster: &Cluster) -> Arc<ClusterState> {
        self.get(&cluster.key)
            .unwrap_or_else(|| Arc::new(ClusterState::new(cluster, None)))
    }

    /// All clusters (admin API).
    pub fn all(&self) -> Arc<HashMap<ClusterKey, Arc<ClusterState>>> {
        self.clusters.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_str};

    fn snapshot(yaml: &str) -> Snapshot {
        let cfg = load_str(
            yaml,
            "t.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        crate::compile::compile(&cfg, &Default::default())
    }

    fn se(addrs: &[&str]) -> String {
        let mut s = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r}\nspec:\n  hosts: [r.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints:\n".to_string();
        for a in addrs {
            s.push_str(&format!("  - address: {a}\n"));
        }
        s
    }

    const DR_RR: &str = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n";

    fn key() -> ClusterKey {
        ClusterKey {
            port: 80,
            subset: String::new(),
            host: "r.default.svc.cluster.local".into(),
        }
    }

    #[test]
    fn reconcile_keeps_unchanged_clusters_and_the_hosts_that_stayed() {
        let reg = Registry::new();
        reg.reconcile(&snapshot(&se(&["10.0.0.1", "10.0.0.2"])));
        let a = reg.get(&key()).expect("cluster state");
        assert_eq!(a.balancer.kind(), Kind::LeastRequest);
        let _busy = a.hosts[1].begin();

        reg.reconcile(&snapshot(&se(&["10.0.0.1", "10.0.0.2"])));
        let b = reg.get(&key()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "nothing changed: same state");

        reg.reconcile(&snapshot(&se(&["10.0.0.2", "10.0.0.3"])));
        let c = reg.get(&key()).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(Arc::ptr_eq(&c.hosts[0], &a.hosts[1]), "10.0.0.2 stayed");
        assert_eq!(c.hosts[0].active(), 1);
        assert!(Arc::ptr_eq(&a.limits, &c.limits), "policy unchanged");

        reg.reconcile(&snapshot(&(se(&["10.0.0.2", "10.0.0.3"]) + DR_RR)));
        let d = reg.get(&key()).unwrap();
        assert_eq!(d.balancer.kind(), Kind::RoundRobin);
        assert!(!Arc::ptr_eq(&c.limits, &d.limits), "policy changed");
        assert!(Arc::ptr_eq(&c.hosts[0], &d.hosts[0]));

        reg.reconcile(&snapshot(""));
        assert!(reg.get(&key()).is_none());
    }

    #[test]
    fn host_guard_counts_active_requests() {
        let h = Arc::new(Host::new(Endpoint {
            authority: "10.0.0.1:80".into(),
            labels: Default::default(),
            weight: 0,
            locality: None,
        }));
        assert_eq!(h.weight(), 1);
        let g1 = h.begin();
        let g2 = h.begin();
        assert_eq!(h.active(), 2);
        drop(g1);
        assert_eq!(g2.host().active(), 1);
        drop(g2);
        assert_eq!(h.active(), 0);
    }
}
