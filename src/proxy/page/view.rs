//! What the page shows, gathered from state the proxy already keeps: the
//! snapshot (routes, clusters, gateway listeners), the cluster registry
//! (hosts, ejections, circuit breakers), the pools, the reload status and
//! the sampled [`History`]. Plain data; `html.rs` renders it.

use std::time::{Duration, Instant};

use super::history::{History, Stats};
use crate::compile::Snapshot;
use crate::proxy::Shared;
use crate::route::{Action, RouteMatch, RouteTable};

pub struct View {
    pub version: u64,
    pub applied_at: String,
    pub paths: Vec<String>,
    pub rejected: Option<(String, Vec<String>)>,
    /// Seconds the figures cover.
    pub seconds: u64,
    pub routes: Vec<VhostView>,
    pub gateways: Vec<GatewayView>,
    pub clusters: Vec<ClusterView>,
}

pub struct VhostView {
    pub id: String,
    pub name: String,
    pub virtual_service: Option<String>,
    pub routes: Vec<RouteView>,
}

pub struct RouteView {
    pub name: String,
    pub index: Option<usize>,
    /// The match conditions, `any request` for a catch-all.
    pub matches: String,
    /// What a non-forwarding route does (`redirect 301`, `direct 503`).
    pub action: Option<String>,
    pub destinations: Vec<DestView>,
}

pub struct DestView {
    pub id: String,
    pub cluster: String,
    /// Configured share, percent of the route's total weight.
    pub weight: f64,
    /// Requests this route sent here over the last minute.
    pub picks: u64,
    /// Observed share of the route's requests, percent (None: no traffic).
    pub share: Option<f64>,
    /// The cluster is missing from the snapshot: every request is 503 NC.
    pub missing: bool,
    /// The destination cluster's figures (all routes to it together).
    pub stats: Stats,
}

pub struct GatewayView {
    pub port: u16,
    pub protocol: String,
    /// `namespace/name` and hosts of each server bound to the port.
    pub servers: Vec<String>,
    /// The HTTP port's routes (empty for TCP).
    pub routes: Vec<VhostView>,
    /// `TCP`: the VirtualService tcp routes, one line each.
    pub tcp: Vec<String>,
}

pub struct ClusterView {
    pub id: String,
    pub name: String,
    pub destination_rule: Option<String>,
    /// The policy in one line: load balancer, pool limits, outlier detection.
    pub policy: String,
    pub breakers: Vec<Breaker>,
    pub endpoints: Vec<EndpointView>,
    pub stats: Stats,
}

/// One circuit breaker's use against its limit.
pub struct Breaker {
    pub name: &'static str,
    pub used: u64,
    pub limit: u64,
}

pub struct EndpointView {
    pub address: String,
    pub labels: String,
    pub weight: u32,
    pub ejected: bool,
    pub active: u32,
    pub ejections: u32,
    /// `since 12s ago, back in 18s: CONSECUTIVE_5XX` for an ejected host.
    pub ejection: Option<String>,
}

/// Everything the page shows, now.
pub fn gather(shared: &Shared, history: &History) -> View {
    let (version, applied_at, paths, rejected) = {
        let st = shared.status.lock().unwrap_or_else(|p| p.into_inner());
        (
            st.version,
            st.loaded_at.clone(),
            st.paths.clone(),
            st.last_rejected
                .as_ref()
                .map(|r| (r.at.clone(), r.errors.clone())),
        )
    };
    let snap = shared.snapshot.load();
    let routes = vhosts(&snap.routes, "m", &snap, history);
    let gateways = snap
        .gateway
        .ports
        .values()
        .map(|p| gateway_view(p, &snap, history))
        .collect();
    View {
        version,
        applied_at,
        paths,
        rejected,
        seconds: history.now().clamp(1, super::history::MINUTE),
        routes,
        gateways,
        clusters: clusters(shared, &snap, history),
    }
}

fn gateway_view(
    p: &crate::compile::gateway::GatewayPort,
    snap: &Snapshot,
    history: &History,
) -> GatewayView {
    use crate::compile::gateway::PortKind;
    let (routes, tcp) = match &p.kind {
        PortKind::Http(table) => (
            vhosts(table, &format!("g{}v", p.number), snap, history),
            Vec::new(),
        ),
        PortKind::Tcp(routes) => (
            Vec::new(),
            routes
                .iter()
                .map(|r| {
                    format!(
                        "{} tcp[{}] → {}",
                        r.virtual_service,
                        r.rule_index,
                        r.destinations
                            .iter()
                            .map(|d| format!("{} ({})", d.cluster.name, d.cluster.weight))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect(),
        ),
        PortKind::Passthrough(port) => (
            Vec::new(),
            port.routes
                .iter()
                .map(|r| {
                    format!(
                        "{} sni {} → {}",
                        r.name(),
                        if r.sni.is_empty() {
                            "*".to_string()
                        } else {
                            r.sni.join(", ")
                        },
                        r.destinations
                            .iter()
                            .map(|d| format!("{} ({})", d.cluster.name, d.cluster.weight))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect(),
        ),
        PortKind::Https(_) => (Vec::new(), Vec::new()),
    };
    GatewayView {
        port: p.number,
        protocol: format!("{:?}", p.protocol),
        servers: p
            .servers
            .iter()
            .map(|s| format!("{} servers[{}]: {}", s.gateway, s.index, s.hosts.join(", ")))
            .collect(),
        routes,
        tcp,
    }
}

/// The route table's virtual hosts; `prefix` keeps figure ids unique
/// between the mesh table and each gateway port's.
pub fn vhosts(
    table: &RouteTable,
    prefix: &str,
    snap: &Snapshot,
    history: &History,
) -> Vec<VhostView> {
    table
        .vhosts
        .iter()
        .enumerate()
        .map(|(vi, v)| VhostView {
            id: format!("{prefix}{vi}"),
            name: v.name.clone(),
            virtual_service: v.virtual_service.clone(),
            routes: v
                .routes
                .iter()
                .enumerate()
                .map(|(ri, r)| {
                    let (destinations, action) = match &r.action {
                        Action::Forward(ws) => {
                            let total = Action::total_weight(ws).max(1) as f64;
                            let picks: Vec<u64> = ws
                                .iter()
                                .enumerate()
                                .map(|(di, _)| history.picks(&pick_key(prefix, vi, ri, di)))
                                .collect();
                            let all: u64 = picks.iter().sum();
                            let dests = ws
                                .iter()
                                .zip(picks)
                                .enumerate()
                                .map(|(di, (w, n))| {
                                    let cluster = snap.clusters.get(&w.cluster);
                                    DestView {
                                        id: format!("{prefix}{vi}-{ri}-{di}"),
                                        cluster: w.name.to_string(),
                                        weight: 100.0 * f64::from(w.weight) / total,
                                        picks: n,
                                        share: (all > 0).then(|| 100.0 * n as f64 / all as f64),
                                        missing: cluster.is_none(),
                                        stats: history.stats(&w.name),
                                    }
                                })
                                .collect();
                            (dests, None)
                        }
                        Action::Redirect(rd) => {
                            (Vec::new(), Some(format!("redirect {}", rd.status.as_u16())))
                        }
                        Action::Direct { status, .. } => (
                            Vec::new(),
                            Some(format!("direct response {}", status.as_u16())),
                        ),
                    };
                    RouteView {
                        name: r.name.to_string(),
                        index: r.rule_index,
                        matches: match_summary(&r.matcher),
                        action,
                        destinations,
                    }
                })
                .collect(),
        })
        .collect()
}

/// The sampler's key for one route destination.
pub fn pick_key(prefix: &str, vhost: usize, route: usize, dest: usize) -> String {
    format!("{prefix}{vhost}-{route}-{dest}")
}

/// A route's match conditions, as `explain` words them.
fn match_summary(m: &RouteMatch) -> String {
    use crate::route::Miss;
    let mut misses = Vec::new();
    if m.uri.is_some() {
        misses.push(Miss::Uri);
    }
    if m.scheme.is_some() {
        misses.push(Miss::Scheme);
    }
    if m.method.is_some() {
        misses.push(Miss::Method);
    }
    if m.authority.is_some() {
        misses.push(Miss::Authority);
    }
    misses.extend((0..m.headers.len()).map(Miss::Header));
    misses.extend((0..m.without_headers.len()).map(Miss::WithoutHeader));
    misses.extend((0..m.query_params.len()).map(Miss::QueryParam));
    if misses.is_empty() {
        return "any request".into();
    }
    misses
        .into_iter()
        .map(|miss| {
            let (field, want) = m.describe_miss(miss);
            format!("{field} {want}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn clusters(shared: &Shared, snap: &Snapshot, history: &History) -> Vec<ClusterView> {
    let now = Instant::now();
    let states = shared.clusters.all();
    let pools = shared.upstreams.pool_use_by_cluster();
    let mut list: Vec<_> = snap.clusters.values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list.into_iter()
        .enumerate()
        .map(|(i, c)| {
            let state = states.get(&c.key);
            let settings = &c.policy.pool;
            let (open, pending) = pools
                .iter()
                .find(|(n, _, _)| **n == *c.name)
                .map_or((0, 0), |(_, o, p)| (*o, *p));
            let mut policy = Vec::new();
            let mut breakers = vec![
                Breaker {
                    name: "connections",
                    used: open as u64,
                    limit: settings.max_connections as u64,
                },
                Breaker {
                    name: "pending",
                    used: pending as u64,
                    limit: settings.max_pending as u64,
                },
            ];
            let mut endpoints = Vec::new();
            if let Some(st) = state {
                policy.push(format!("loadBalancer {}", st.balancer.kind().name()));
                breakers.push(Breaker {
                    name: "requests",
                    used: u64::from(st.limits.requests.count()),
                    limit: u64::from(st.limits.requests.max()),
                });
                breakers.push(Breaker {
                    name: "retries",
                    used: u64::from(st.limits.retries.count()),
                    limit: u64::from(st.limits.retries.max()),
                });
                for (hi, (h, (ejected, ejections))) in
                    st.hosts.iter().zip(st.host_health(now)).enumerate()
                {
                    let e = &h.endpoint;
                    let ejection = st
                        .outlier
                        .as_ref()
                        .and_then(|od| od.host_ejection(hi, now))
                        .map(|x| {
                            format!(
                                "ejected {} ago, back in {} ({}, ejection #{})",
                                secs(now.saturating_duration_since(x.since)),
                                secs(x.until.saturating_duration_since(now)),
                                x.kind.name(),
                                x.num_ejections
                            )
                        });
                    endpoints.push(EndpointView {
                        address: e.authority.to_string(),
                        labels: labels(&e.labels),
                        weight: e.weight,
                        ejected,
                        active: h.active(),
                        ejections,
                        ejection,
                    });
                }
            } else {
                endpoints.extend(c.endpoints.iter().map(|e| EndpointView {
                    address: e.authority.to_string(),
                    labels: labels(&e.labels),
                    weight: e.weight,
                    ejected: false,
                    active: 0,
                    ejections: 0,
                    ejection: None,
                }));
            }
            policy.push(format!(
                "pool maxConnections {}, http1MaxPendingRequests {}",
                limit(settings.max_connections as u64),
                limit(settings.max_pending as u64)
            ));
            match state.and_then(|s| s.outlier.as_ref()) {
                Some(od) => {
                    let o = od.config();
                    policy.push(format!(
                        "outlierDetection consecutive5xxErrors {}, interval {}, baseEjectionTime {}, maxEjectionPercent {}",
                        o.consecutive_5xx,
                        secs(o.interval),
                        secs(o.base_ejection_time),
                        o.max_ejection_percent
                    ));
                }
                None => policy.push("no outlierDetection".into()),
            }
            if let Some(tls) = &c.policy.tls {
                policy.push(format!("tls {}", tls.mode.name()));
            }
            ClusterView {
                id: format!("c{i}"),
                name: c.name.to_string(),
                destination_rule: c.destination_rule.clone(),
                policy: policy.join(" · "),
                breakers,
                endpoints,
                stats: history.stats(&c.name),
            }
        })
        .collect()
}

fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A limit as a person reads it: Envoy's "no limit" is 2³²−1.
pub fn limit(n: u64) -> String {
    if n >= u64::from(u32::MAX) {
        "∞".into()
    } else {
        n.to_string()
    }
}

/// A duration to the second (`1m 30s`, `45s`).
pub fn secs(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Read the counters into the history: once a second, off the request
/// path. Per destination cluster: one read lock (shared with requests) and
/// one atomic load per series; a histogram encode only for series that
/// moved. Per route destination: one atomic load.
pub fn sample(shared: &Shared, history: &mut History) {
    history.tick();
    let snap = shared.snapshot.load();
    let version = shared
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .version;
    // Between reloads nothing is removed and no counter starts again: the
    // destinations never picked (most, in a large mesh) cost a counter
    // read each, no key, no lookup.
    let reloaded = history.config_changed(version);
    for c in snap.clusters.values() {
        for s in c.metrics().flat_map(|m| shared.metrics.series_of(m)) {
            history.observe_series(&c.name, s.response_code, s.flags, s.requests, || {
                s.duration.cumulative()
            });
        }
    }
    let mut routes = Vec::new();
    collect_picks(&snap.routes, "m", reloaded, history, &mut routes);
    for p in snap.gateway.ports.values() {
        if let crate::compile::gateway::PortKind::Http(t) = &p.kind {
            collect_picks(
                t,
                &format!("g{}v", p.number),
                reloaded,
                history,
                &mut routes,
            );
        }
    }
    if !reloaded {
        history.prune();
        return;
    }
    routes.sort_unstable();
    let names: rustc_hash::FxHashSet<&str> = snap.clusters.values().map(|c| &*c.name).collect();
    history.expire(
        |name| names.contains(name),
        |key| routes.binary_search_by(|k| k.as_str().cmp(key)).is_ok(),
    );
}

/// Observe every route destination's picks (`all`: after a reload, every
/// one, so that state of a reset counter is seen; else only those picked).
fn collect_picks(
    table: &RouteTable,
    prefix: &str,
    all: bool,
    history: &mut History,
    keys: &mut Vec<String>,
) {
    for (vi, v) in table.vhosts.iter().enumerate() {
        for (ri, r) in v.routes.iter().enumerate() {
            if let Action::Forward(ws) = &r.action {
                for (di, w) in ws.iter().enumerate() {
                    let picked = w.picked.get();
                    if !all && picked == 0 {
                        continue;
                    }
                    let key = pick_key(prefix, vi, ri, di);
                    if picked == 0 && !history.tracks_picks(&key) {
                        continue;
                    }
                    history.observe_picks(&key, picked);
                    keys.push(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_durations_read_as_a_person_would() {
        assert_eq!(limit(u64::from(u32::MAX)), "∞");
        assert_eq!(limit(1024), "1024");
        assert_eq!(secs(Duration::from_millis(29_600)), "30s");
        assert_eq!(secs(Duration::from_secs(90)), "1m 30s");
    }
}
