//! TLS routes picked by SNI, as Envoy picks a listener's filter chain by
//! `server_names` (`FilterChainMatch`): a VirtualService `tls` rule's
//! `match[].sniHosts` become one chain each, whose tcp_proxy sends the raw
//! TLS stream to the rule's weighted destinations. Shared by gateway
//! `PASSTHROUGH` servers (`gateway.rs`) and the sidecar listener
//! (`sidecar_tls`), and by `explain`.

use std::sync::Arc;

use super::gateway::{TcpDestination, own_destination, tcp_destinations};
use super::routes::ordered_virtual_services;
use super::{ProxyIdentity, ServiceInfo};
use crate::config::{ConfigSet, Resource};
use crate::model::{TLSMatchAttributes, VirtualService, host, selector_matches};

/// One filter chain: SNI names → tcp_proxy.
#[derive(Debug)]
pub struct TlsRoute {
    /// `namespace/name` of the VirtualService; `None` for a service's own
    /// chain (the sidecar's route to a TLS service no `tls` rule covers).
    pub virtual_service: Option<String>,
    /// Index of the rule in the VirtualService's `tls` list.
    pub rule_index: usize,
    /// Index of the match in the rule's `match` list.
    pub match_index: usize,
    /// Lower-cased `server_names`; empty matches any SNI and none (a
    /// `sniHosts: ['*']` match: pilot leaves `server_names` out).
    pub sni: Vec<String>,
    /// The weighted destinations; empty when none names a known service
    /// (the connection is then closed, flag NC).
    pub destinations: Vec<TcpDestination>,
}

impl TlsRoute {
    /// The access log's `route_name`: `namespace/name#tls[i]`, or the
    /// service's cluster for a service's own chain.
    pub fn name(&self) -> String {
        match &self.virtual_service {
            Some(vs) => format!("{vs}#tls[{}]", self.rule_index),
            None => self
                .destinations
                .first()
                .map_or_else(String::new, |d| d.cluster.name.to_string()),
        }
    }
}

/// pilot's filter chain `server_names` for SNI hosts: lower-cased, sorted,
/// unique; none at all when one is `*` (`toFilterChainMatch`).
pub fn server_names(hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = hosts
        .iter()
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    if out.iter().any(|h| h == "*") {
        return Vec::new();
    }
    out.sort();
    out.dedup();
    out
}

/// How well `names` (a chain's `server_names`) match `sni`, best first:
/// an exact name, then a `*.suffix` wildcard (the longer suffix the
/// better: Envoy tries `*.b.example.com` before `*.example.com` for
/// `a.b.example.com`), then a chain without names, which matches any SNI
/// and none; `None`: no match.
fn rank(names: &[String], sni: Option<&str>) -> Option<(u8, usize)> {
    if names.is_empty() {
        return Some((2, 0));
    }
    let sni = sni?;
    let mut best: Option<(u8, usize)> = None;
    for n in names {
        let r = if n == sni {
            (0, 0)
        } else if let Some(suffix) = n.strip_prefix('*')
            && suffix.starts_with('.')
            && sni.len() > suffix.len()
            && sni.ends_with(suffix)
        {
            (1, usize::MAX - suffix.len())
        } else {
            continue;
        };
        best = Some(best.map_or(r, |b| b.min(r)));
    }
    best
}

/// The SNI as matched: lower-cased, without a trailing dot.
pub fn normalize(sni: &str) -> String {
    sni.trim_end_matches('.').to_ascii_lowercase()
}

/// Envoy's filter chain match on `server_names` over `chains` (each with
/// its names): the best match by `rank`, the first of equals. `None`:
/// no filter chain matches and Envoy closes the connection.
pub fn select<'a, T>(
    chains: impl IntoIterator<Item = (&'a [String], T)>,
    sni: Option<&str>,
) -> Option<T> {
    let sni = sni.map(normalize);
    let mut best: Option<((u8, usize), T)> = None;
    for (names, item) in chains {
        let Some(r) = rank(names, sni.as_deref()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| r < *b) {
            best = Some((r, item));
        }
    }
    best.map(|(_, item)| item)
}

/// The weighted pick of a destination (`None` when there is none).
pub fn pick_destination(
    destinations: &[TcpDestination],
    roll: impl FnOnce(u64) -> u64,
) -> Option<&TcpDestination> {
    crate::route::pick_weighted(destinations, |d| d.cluster.weight, roll)
}

/// The sidecar listener's SNI chains, as pilot builds a sidecar's outbound
/// TLS filter chains (`buildSidecarOutboundTLSFilterChainOpts`) for every
/// service port whose protocol is `TLS` or `HTTPS`: the mesh
/// VirtualServices for the service's host give one chain per `tls` match
/// that applies to the proxy (`matchTLS`: `port` the service port,
/// `sourceLabels`, `sourceNamespace`, `gateways` naming `mesh`), and a
/// service port no `tls` match covers gets its own chain on the service's
/// host (and aliases) to its cluster. strait has one listener where Istio
/// has one per port, so the chains of every TLS port are merged (ports in
/// ascending order, services in registry order) and a chain whose names
/// repeat an earlier chain's is dropped, as pilot's `mergeTCPFilterChains`
/// drops a duplicate match. A match with `destinationSubnets` is left out:
/// the original destination address it needs is not known here.
pub fn sidecar_routes(
    config: &ConfigSet,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> Vec<TlsRoute> {
    let mut ports: Vec<(u16, &Arc<ServiceInfo>)> = services
        .iter()
        .flat_map(|s| {
            s.ports
                .iter()
                .filter(|p| p.protocol.is_tls())
                .map(move |p| (p.number, s))
        })
        .collect();
    if ports.is_empty() {
        return Vec::new();
    }
    ports.sort_by_key(|(p, _)| *p);
    let vss = ordered_virtual_services(config, opts);
    let mut out: Vec<TlsRoute> = Vec::new();
    for (port, svc) in ports {
        let ctx = Sidecar {
            config,
            port,
            services,
            clusters,
            opts,
        };
        for chain in ctx.service_chains(svc, &vss) {
            if out.iter().any(|c| c.sni == chain.sni) {
                tracing::debug!(port, service = %svc.fqdn, sni = ?chain.sni, "TLS chain repeats an earlier chain's server names: dropped");
                continue;
            }
            out.push(chain);
        }
    }
    out
}

/// What building one TLS service port's chains reads.
struct Sidecar<'a> {
    config: &'a ConfigSet,
    port: u16,
    services: &'a [Arc<ServiceInfo>],
    clusters: &'a super::ClusterMap,
    opts: &'a ProxyIdentity,
}

impl Sidecar<'_> {
    fn service_chains(
        &self,
        svc: &ServiceInfo,
        vss: &[&Resource<VirtualService>],
    ) -> Vec<TlsRoute> {
        let mut out = Vec::new();
        let mut handled: Vec<(&[String], &[String])> = Vec::new();
        for vs in vss.iter().filter(|vs| {
            vs.spec.hosts.iter().any(|h| {
                host::matches(
                    &host::resolve_short_name(h, vs.namespace(), &self.opts.domain),
                    &svc.fqdn,
                )
            })
        }) {
            for (i, rule) in vs.spec.tls.iter().enumerate() {
                if rule.route.is_empty() {
                    continue;
                }
                for (j, m) in rule.match_.iter().enumerate() {
                    if !self.applies(m) {
                        continue;
                    }
                    // `hashRuntimeTLSMatchPredicates`: a later match with
                    // the same SNI hosts and subnets is unreachable.
                    let key = (m.sni_hosts.as_slice(), m.destination_subnets.as_slice());
                    if handled.contains(&key) {
                        continue;
                    }
                    handled.push(key);
                    if !m.destination_subnets.is_empty() {
                        tracing::warn!(virtual_service = %vs.key(), rule = i, "tls match with destinationSubnets left out on the sidecar listener: the original destination address is not known");
                        continue;
                    }
                    out.push(TlsRoute {
                        virtual_service: Some(vs.key()),
                        rule_index: i,
                        match_index: j,
                        sni: server_names(&m.sni_hosts),
                        destinations: tcp_destinations(
                            self.config,
                            vs,
                            &rule.route,
                            self.port,
                            self.services,
                            self.clusters,
                            self.opts,
                        ),
                    });
                }
            }
        }
        if handled.is_empty() {
            out.push(self.own_chain(svc));
        }
        out
    }

    /// pilot's `matchTLS` for a sidecar on listener port `port`.
    fn applies(&self, m: &TLSMatchAttributes) -> bool {
        (m.gateways.is_empty() || m.gateways.iter().any(|g| g == "mesh"))
            && m.port.is_none_or(|p| p == 0 || p == u32::from(self.port))
            && selector_matches(&m.source_labels, &self.opts.labels)
            && m.source_namespace
                .as_deref()
                .is_none_or(|ns| ns.is_empty() || ns == self.opts.namespace)
    }

    /// A TLS service port without a `tls` rule: the service's host (and
    /// the hosts aliasing it) to its own cluster.
    fn own_chain(&self, svc: &ServiceInfo) -> TlsRoute {
        let mut names = vec![svc.fqdn.clone()];
        names.extend(svc.aliases.iter().cloned());
        TlsRoute {
            virtual_service: None,
            rule_index: 0,
            match_index: 0,
            sni: server_names(&names),
            destinations: vec![own_destination(self.config, self.clusters, svc, self.port)],
        }
    }
}

#[cfg(test)]
mod tests;
