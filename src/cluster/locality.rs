//! Locality-aware load balancing (`LocalityLoadBalancerSetting`): the
//! per-endpoint Envoy priorities and locality weights that istiod would put in
//! the ClusterLoadAssignment it sends to this proxy.
//!
//! Mirrors Istio `pilot/pkg/networking/core/loadbalancer/loadbalancer.go`
//! (`ApplyLocalityLoadBalancer`, `applyLocalityFailover`,
//! `applyFailoverPriorities`, `applyLocalityWeights`) and the helpers in
//! `pilot/pkg/networking/util` (`LocalityMatch`, `LbPriority`). Pure: the
//! proxy's own locality and labels come in as arguments.
//!
//! Istio works on `LocalityLbEndpoints` groups (one per locality); this module
//! works per endpoint. Each endpoint's priority only depends on its own
//! locality and labels, and Istio's renumbering ("priorities range from 0 to N
//! without skipping") is a dense ranking, so the results are the same.

use std::collections::{BTreeMap, BTreeSet};

use crate::compile::cluster_policy::LocalitySetting;

/// Well-known topology labels Istio adds to proxy and endpoint labels
/// (`AugmentLabels`), usable as `failoverPriority` keys.
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
pub const LABEL_SUBZONE: &str = "topology.istio.io/subzone";
pub const LABEL_NETWORK: &str = "topology.istio.io/network";
pub const LABEL_CLUSTER: &str = "topology.istio.io/cluster";
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// An Envoy locality: `region/zone/subzone`, any part possibly empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub subzone: String,
}

impl Locality {
    /// Istio `SplitLocalityLabel`: split on `/`; one part is a region, two a
    /// region and zone, three or more region/zone/subzone (extra parts are
    /// dropped). The empty string is the empty locality.
    pub fn parse(text: &str) -> Locality {
        let mut parts = text.split('/');
        let mut next = || parts.next().unwrap_or("").to_string();
        Locality {
            region: next(),
            zone: next(),
            subzone: next(),
        }
    }

    /// Istio `IsLocalityEmpty`: no region.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Istio `util.LocalityMatch(locality, rule)`: the rule's region must be
    /// equal or `*`; its zone and subzone equal, `*` or absent.
    pub fn matches(&self, rule: &str) -> bool {
        let rule = Locality::parse(rule);
        let region = rule.region == "*" || self.region == rule.region;
        let zone = rule.zone == "*" || rule.zone.is_empty() || self.zone == rule.zone;
        let subzone =
            rule.subzone == "*" || rule.subzone.is_empty() || self.subzone == rule.subzone;
        region && zone && subzone
    }

    /// The region/zone/subzone labels Istio's `AugmentLabels` derives from a
    /// locality (only the non-empty parts).
    pub fn topology_labels(&self) -> BTreeMap<String, String> {
        [
            (LABEL_REGION, &self.region),
            (LABEL_ZONE, &self.zone),
            (LABEL_SUBZONE, &self.subzone),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }
}

impl std::fmt::Display for Locality {
    /// Istio `LocalityToString`: stops at the first empty part.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.region)?;
        if self.zone.is_empty() {
            return Ok(());
        }
        write!(f, "/{}", self.zone)?;
        if self.subzone.is_empty() {
            return Ok(());
        }
        write!(f, "/{}", self.subzone)
    }
}

/// What locality load balancing needs to know about one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointLocality {
    pub locality: Locality,
    /// The endpoint's labels (for `failoverPriority`). Region, zone and
    /// subzone labels are added from `locality`, as Istio's `AugmentLabels`;
    /// add `topology.istio.io/network` / `cluster` yourself if known.
    pub labels: BTreeMap<String, String>,
    /// The endpoint's load-balancing weight (Istio uses 1 for an unset one).
    pub weight: u32,
}

impl EndpointLocality {
    fn augmented_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.extend(self.locality.topology_labels());
        labels
    }
}

/// Envoy priority per endpoint (0 is preferred), using only the proxy's
/// locality for `failoverPriority` labels. See [`priorities_with_labels`].
pub fn priorities(
    proxy: &Locality,
    endpoints: &[EndpointLocality],
    setting: &LocalitySetting,
    outlier_enabled: bool,
) -> Vec<u32> {
    priorities_with_labels(proxy, &BTreeMap::new(), endpoints, setting, outlier_enabled)
}

/// Envoy priority per endpoint (0 is preferred), as Istio
/// `ApplyLocalityLoadBalancer` assigns them:
///
/// - `enabled: false`, a `distribute` list, or no outlier detection
///   (`outlier_enabled`; Envoy would never fail over without it): all 0.
/// - `failoverPriority` set: `applyFailoverPriorities` ranks endpoints by how
///   many leading labels match the proxy's, then, only if `failover` is also
///   set, `applyLocalityFailover` refines each rank by locality.
/// - otherwise `applyLocalityFailover`: same region/zone/subzone 0, same
///   region/zone 1, same region 2, other regions 3; with a `failover` rule
///   whose `from` is the proxy's region, other regions than its `to` drop to
///   4. Priorities are then renumbered densely.
///
/// `proxy_labels` are the proxy's workload labels; region/zone/subzone labels
/// from `proxy` are added as Istio's `AugmentLabels` does.
pub fn priorities_with_labels(
    proxy: &Locality,
    proxy_labels: &BTreeMap<String, String>,
    endpoints: &[EndpointLocality],
    setting: &LocalitySetting,
    outlier_enabled: bool,
) -> Vec<u32> {
    let zeros = vec![0; endpoints.len()];
    if setting.disabled || !setting.distribute.is_empty() || !outlier_enabled {
        return zeros;
    }
    if setting.failover_priority.is_empty() {
        return dense_rank(
            endpoints
                .iter()
                .map(|ep| locality_failover_priority(proxy, &ep.locality, setting))
                .collect(),
        );
    }
    let mut labels = proxy_labels.clone();
    labels.extend(proxy.topology_labels());
    let by_labels = failover_priorities(&labels, endpoints, &setting.failover_priority);
    if setting.failover.is_empty() {
        return by_labels;
    }
    dense_rank(
        endpoints
            .iter()
            .zip(&by_labels)
            .map(|(ep, &p)| p * 5 + locality_failover_priority(proxy, &ep.locality, setting))
            .collect(),
    )
}

/// Istio `LbPriority` plus the `failover` rule of `applyLocalityFailover`.
fn locality_failover_priority(
    proxy: &Locality,
    endpoint: &Locality,
    setting: &LocalitySetting,
) -> u32 {
    let priority = if proxy.region != endpoint.region {
        3
    } else if proxy.zone != endpoint.zone {
        2
    } else if proxy.subzone != endpoint.subzone {
        1
    } else {
        0
    };
    if priority == 3 {
        let rule = setting
            .failover
            .iter()
            .find(|(from, _)| *from == proxy.region);
        if let Some((_, to)) = rule
            && endpoint.region != *to
        {
            return 4;
        }
    }
    priority
}

/// Istio `applyFailoverPriorities` / `applyFailoverPriorityPerLocality`:
/// an endpoint whose labels match the proxy's for the first `j` keys but not
/// the next gets `N - j` (N = number of keys), one matching all gets 0; then
/// dense renumbering. A `key=value` entry compares the endpoint's label with
/// `value` instead of the proxy's. With no proxy labels nothing changes.
fn failover_priorities(
    proxy_labels: &BTreeMap<String, String>,
    endpoints: &[EndpointLocality],
    keys: &[String],
) -> Vec<u32> {
    if proxy_labels.is_empty() || endpoints.is_empty() {
        return vec![0; endpoints.len()];
    }
    // `priorityLabelOverrides`: split on '='; an override only for exactly 2 parts.
    let parsed: Vec<(&str, Option<&str>)> = keys
        .iter()
        .map(|k| {
            let parts: Vec<&str> = k.split('=').collect();
            (parts[0], (parts.len() == 2).then(|| parts[1]))
        })
        .collect();
    let lowest = parsed.len() as u32;
    let raw = endpoints
        .iter()
        .map(|ep| {
            let labels = ep.augmented_labels();
            parsed
                .iter()
                .enumerate()
                .find(|(_, (key, value))| {
                    let want = value
                        .or_else(|| proxy_labels.get(*key).map(String::as_str))
                        .unwrap_or("");
                    labels.get(*key).map(String::as_str).unwrap_or("") != want
                })
                .map_or(0, |(j, _)| lowest - j as u32)
        })
        .collect();
    dense_rank(raw)
}

/// "Priorities should range from 0 (highest) to N (lowest) without skipping."
fn dense_rank(raw: Vec<u32>) -> Vec<u32> {
    let distinct: BTreeSet<u32> = raw.iter().copied().collect();
    let rank: BTreeMap<u32, u32> = distinct
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, i as u32))
        .collect();
    raw.iter().map(|p| rank[p]).collect()
}

/// The locality weight of each endpoint's locality (Envoy
/// `LocalityLbEndpoints.load_balancing_weight`, used by locality-weighted
/// balancing: pick a locality by weight, then an endpoint in it). `0` means
/// the endpoint is dropped.
///
/// Without a `distribute` rule applying (none, `enabled: false`, or no
/// `from` matching the proxy), every locality keeps its natural weight, the
/// sum of its endpoints' weights, as Istio's endpoint builder sets it.
/// Otherwise Istio `applyLocalityWeights`, for the first rule whose `from`
/// matches the proxy: each `to` entry (in sorted order; Istio iterates a Go
/// map, and validation forbids overlaps) takes the not-yet-claimed localities
/// it matches and splits its weight among them in proportion to their
/// natural weights, rounding up; localities no entry claims are dropped.
pub fn distribute_weights(
    proxy: &Locality,
    endpoints: &[EndpointLocality],
    setting: &LocalitySetting,
) -> Vec<u32> {
    // Natural locality weights: the sum of the endpoint weights per locality.
    let mut natural: BTreeMap<&Locality, u64> = BTreeMap::new();
    for ep in endpoints {
        *natural.entry(&ep.locality).or_default() += u64::from(ep.weight);
    }
    let clamp = |w: u64| w.min(u64::from(u32::MAX)) as u32;
    let rule = (!setting.disabled)
        .then(|| {
            setting
                .distribute
                .iter()
                .find(|(from, _)| proxy.matches(from))
        })
        .flatten();
    let Some((_, to_weights)) = rule else {
        return endpoints
            .iter()
            .map(|ep| clamp(natural[&ep.locality]))
            .collect();
    };
    let mut unclaimed: BTreeSet<&Locality> = natural.keys().copied().collect();
    let mut assigned: BTreeMap<&Locality, u64> = BTreeMap::new();
    for (to, &weight) in to_weights {
        let claimed: Vec<&Locality> = unclaimed
            .iter()
            .copied()
            .filter(|l| l.matches(to))
            .collect();
        // Istio uses 1 for a locality without a weight; ours always has one.
        let total: u64 = claimed.iter().map(|l| natural[l]).sum();
        for l in claimed {
            unclaimed.remove(l);
            let original = natural[l];
            let share = if total == 0 {
                0.0
            } else {
                (original * u64::from(weight)) as f64 / total as f64
            };
            let w = if share > 0.0 {
                share.ceil() as u64
            } else {
                original
            };
            assigned.insert(l, w);
        }
    }
    endpoints
        .iter()
        .map(|ep| clamp(assigned.get(&ep.locality).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests;
