//! The sidecar listener's TCP services, picked by the connection's
//! destination address as Envoy picks an outbound listener and filter
//! chain: pilot builds one listener per service address and port for a
//! port whose protocol is TCP (or `MONGO`, `MYSQL`, `REDIS`, which it
//! proxies as TCP; `ModelProtocolToListenerProtocol`), bound to the
//! service's IP (a ClusterIP, a ServiceEntry address), or to `0.0.0.0` of
//! the port with a filter chain on the CIDR when the address is one, or
//! for a service without an address (`buildSidecarOutboundListener`).
//! Its filter chains come from the mesh VirtualServices' `tcp` rules for
//! the service's host (`buildSidecarOutboundTCPFilterChainOpts`): the
//! first rule whose match applies without `destinationSubnets` ends the
//! list, a match's `destinationSubnets` make a chain of their own, and a
//! service no rule covers gets its own cluster `outbound|port||host`.
//! A connection whose destination picks a chain here is proxied at once,
//! without sniffing (server-first protocols send nothing first).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::gateway::{TcpDestination, own_destination, tcp_destinations};
use super::routes::ordered_virtual_services;
use super::{ProxyIdentity, ServiceInfo};
use crate::config::{ConfigSet, Resource};
use crate::model::service_entry::Resolution;
use crate::model::{L4MatchAttributes, Protocol, VirtualService, host, selector_matches};

/// An address range (an IP is its full-length range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/64` or a plain IP; `None` when neither.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max)?,
            None => max,
        };
        Some(Cidr { addr, len }.masked())
    }

    fn full(&self) -> bool {
        self.len == if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn masked(self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Cidr {
            addr,
            len: self.len,
        }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address as its
    /// IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        Cidr {
            addr: ip,
            len: self.len,
        }
        .masked()
        .addr
            == self.addr
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The sidecar's TCP listeners.
#[derive(Debug, Default)]
pub struct TcpListeners {
    pub listeners: Vec<TcpListener>,
}

/// One of pilot's outbound TCP listeners.
#[derive(Debug)]
pub struct TcpListener {
    /// The IP it is bound to; `None`: `0.0.0.0` (and `::`) of the port.
    pub address: Option<IpAddr>,
    pub port: u16,
    /// Filter chains, in pilot's order (the first of equal matches wins).
    pub chains: Vec<TcpChain>,
    /// An HTTP, TLS or auto-detected service port shares the listener:
    /// Istio sniffs its connections, and so does strait (the HTTP and TLS
    /// path; these TCP chains are not taken).
    pub sniffed: bool,
}

/// One filter chain: destination ranges → tcp_proxy.
#[derive(Debug)]
pub struct TcpChain {
    /// `destination_prefix_ranges`; empty matches every destination.
    pub prefixes: Vec<Cidr>,
    /// The service whose listener built the chain.
    pub service: String,
    /// `namespace/name` of the VirtualService; `None` for the service's
    /// own cluster.
    pub virtual_service: Option<String>,
    /// Index of the rule in the VirtualService's `tcp` list.
    pub rule_index: usize,
    /// The weighted destinations; empty when none names a known service
    /// (the connection is then closed, flag NC).
    pub destinations: Vec<TcpDestination>,
}

impl TcpChain {
    /// The access log's `route_name`: `namespace/name#tcp[i]`, or the
    /// service's cluster for its own chain.
    pub fn name(&self) -> String {
        match &self.virtual_service {
            Some(vs) => format!("{vs}#tcp[{}]", self.rule_index),
            None => self
                .destinations
                .first()
                .map_or_else(String::new, |d| d.cluster.name.to_string()),
        }
    }

    /// How well the chain matches `ip`: the longest matching prefix, a
    /// chain without prefixes last; `None`: no match (Envoy's
    /// `FilterChainMatch.prefix_ranges`, most specific first).
    fn rank(&self, ip: IpAddr) -> Option<i16> {
        if self.prefixes.is_empty() {
            return Some(-1);
        }
        self.prefixes
            .iter()
            .filter(|p| p.contains(ip))
            .map(|p| i16::from(p.len))
            .max()
    }
}

impl TcpListener {
    /// The chain taking a connection to `ip`, as Envoy's filter chain
    /// match picks it; the first of equals.
    pub fn select(&self, ip: IpAddr) -> Option<&TcpChain> {
        let mut best: Option<(i16, &TcpChain)> = None;
        for c in &self.chains {
            if let Some(r) = c.rank(ip)
                && best.is_none_or(|(b, _)| r > b)
            {
                best = Some((r, c));
            }
        }
        best.map(|(_, c)| c)
    }
}

impl TcpListeners {
    /// The listener a connection to `dst` lands on (the one bound to its
    /// IP and port, else the port's wildcard; Envoy's original-destination
    /// hand-off) and the chain it takes there; `None`: not a TCP service's
    /// (sniffed as before).
    pub fn select(&self, dst: SocketAddr) -> Option<(&TcpListener, &TcpChain)> {
        let ip = dst.ip().to_canonical();
        let port = dst.port();
        let exact = self
            .listeners
            .iter()
            .find(|l| l.port == port && l.address == Some(ip));
        let listener = exact.or_else(|| {
            self.listeners
                .iter()
                .find(|l| l.port == port && l.address.is_none())
        })?;
        if listener.sniffed {
            return None;
        }
        Some((listener, listener.select(ip)?))
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }
}

/// Istio proxies these as TCP (a listener without protocol sniffing).
pub fn is_tcp_listener(p: Protocol) -> bool {
    matches!(
        p,
        Protocol::Tcp | Protocol::Mongo | Protocol::Mysql | Protocol::Redis
    )
}

/// The sidecar's TCP listeners for `services` (see the module doc).
/// Services are taken in registry order; a chain whose match repeats one
/// already on the listener is dropped, as pilot's `mergeTCPFilterChains`
/// drops it. A headless Service (pilot builds a listener per pod) and a
/// `resolution: NONE` ServiceEntry without addresses (a listener for the
/// original destination, which strait cannot proxy) get none.
pub fn sidecar_listeners(
    config: &ConfigSet,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> TcpListeners {
    if !services
        .iter()
        .any(|s| s.ports.iter().any(|p| is_tcp_listener(p.protocol)))
    {
        return TcpListeners::default();
    }
    let vss = ordered_virtual_services(config, opts);
    let original_dst: HashSet<String> = config
        .service_entries
        .iter()
        .filter(|se| se.spec.resolution.unwrap_or_default() == Resolution::None)
        .map(|se| se.key())
        .collect();
    let mut out: Vec<TcpListener> = Vec::new();
    for svc in services.iter().filter(|s| !s.headless) {
        let addresses: Vec<(Cidr, &str)> = svc
            .vips
            .iter()
            .filter_map(|v| Some((Cidr::parse(v)?, v.as_str())))
            .collect();
        if addresses.is_empty() && original_dst.contains(&svc.source) {
            continue;
        }
        for port in svc.ports.iter().filter(|p| is_tcp_listener(p.protocol)) {
            let ctx = Builder {
                config,
                port: port.number,
                services,
                clusters,
                opts,
            };
            let binds: Vec<(Option<IpAddr>, Vec<&str>)> = if addresses.is_empty() {
                vec![(None, Vec::new())]
            } else {
                addresses
                    .iter()
                    .map(|(c, s)| {
                        if c.full() {
                            (Some(c.addr), Vec::new())
                        } else {
                            (None, vec![*s])
                        }
                    })
                    .collect()
            };
            for (address, cidrs) in binds {
                let chains = ctx.chains(svc, &vss, &cidrs);
                merge(&mut out, address, port.number, chains);
            }
        }
    }
    mark_sniffed(&mut out, services);
    TcpListeners { listeners: out }
}

/// Add `chains` to the listener on `address` and `port` (made when new),
/// dropping each that conflicts with one already there.
fn merge(out: &mut Vec<TcpListener>, address: Option<IpAddr>, port: u16, chains: Vec<TcpChain>) {
    let at = match out
        .iter()
        .position(|l| l.address == address && l.port == port)
    {
        Some(i) => i,
        None => {
            out.push(TcpListener {
                address,
                port,
                chains: Vec::new(),
                sniffed: false,
            });
            out.len() - 1
        }
    };
    let l = &mut out[at];
    for c in chains {
        let mut mine: Vec<Cidr> = c.prefixes.clone();
        mine.sort_by_key(ToString::to_string);
        mine.dedup();
        let conflict = l.chains.iter().any(|e| {
            let mut theirs = e.prefixes.clone();
            theirs.sort_by_key(ToString::to_string);
            theirs.dedup();
            theirs == mine
        });
        if conflict {
            tracing::debug!(port, service = %c.service, "TCP filter chain repeats an earlier chain's match on its listener: dropped");
            continue;
        }
        l.chains.push(c);
    }
}

/// pilot's listener conflicts: an HTTP port shares the wildcard listener of
/// its number, and a TLS or auto-detected port binds its service's IP (or
/// the wildcard without one); the TCP chains of such a listener are
/// merged into a sniffing one.
fn mark_sniffed(out: &mut [TcpListener], services: &[Arc<ServiceInfo>]) {
    for svc in services {
        let ips: Vec<IpAddr> = svc
            .vips
            .iter()
            .filter_map(|v| Cidr::parse(v).filter(Cidr::full).map(|c| c.addr))
            .collect();
        for p in svc.ports.iter().filter(|p| !is_tcp_listener(p.protocol)) {
            if p.protocol == Protocol::Udp {
                continue;
            }
            let wildcard = p.protocol.is_http() || ips.is_empty();
            for l in out.iter_mut().filter(|l| l.port == p.number) {
                let hit = match l.address {
                    None => wildcard,
                    Some(ip) => !p.protocol.is_http() && ips.contains(&ip),
                };
                l.sniffed |= hit;
            }
        }
    }
}

/// What building one service port's chains reads.
struct Builder<'a> {
    config: &'a ConfigSet,
    port: u16,
    services: &'a [Arc<ServiceInfo>],
    clusters: &'a super::ClusterMap,
    opts: &'a ProxyIdentity,
}

impl Builder<'_> {
    /// pilot's `buildSidecarOutboundTCPFilterChainOpts` for `svc` on this
    /// port, the listener's own ranges being `cidrs` (the service's CIDR
    /// address; none on a listener bound to its IP).
    fn chains(
        &self,
        svc: &ServiceInfo,
        vss: &[&Resource<VirtualService>],
        cidrs: &[&str],
    ) -> Vec<TcpChain> {
        let own: Vec<Cidr> = cidrs.iter().filter_map(|c| Cidr::parse(c)).collect();
        let mut out = Vec::new();
        let mut default_added = false;
        'rules: for vs in vss.iter().filter(|vs| self.for_host(vs, svc)) {
            for (i, rule) in vs.spec.tcp.iter().enumerate() {
                if rule.route.is_empty() {
                    continue;
                }
                let chain = |prefixes: Vec<Cidr>| TcpChain {
                    prefixes,
                    service: svc.fqdn.clone(),
                    virtual_service: Some(vs.key()),
                    rule_index: i,
                    destinations: tcp_destinations(
                        self.config,
                        vs,
                        &rule.route,
                        self.port,
                        self.services,
                        self.clusters,
                        self.opts,
                    ),
                };
                if rule.match_.is_empty() {
                    out.push(chain(own.clone()));
                    default_added = true;
                    break 'rules;
                }
                let mut subnets: Vec<&str> = Vec::new();
                for m in rule.match_.iter().filter(|m| self.applies(m)) {
                    if m.destination_subnets.is_empty() {
                        out.push(chain(own.clone()));
                        default_added = true;
                        break 'rules;
                    }
                    subnets.extend(m.destination_subnets.iter().map(String::as_str));
                }
                if subnets.is_empty() {
                    continue;
                }
                let prefixes: Vec<Cidr> = subnets.iter().filter_map(|s| Cidr::parse(s)).collect();
                if !prefixes.is_empty() {
                    out.push(chain(prefixes));
                }
                // A chain on the service's own ranges replaces its default.
                let (mut a, mut b) = (subnets.clone(), cidrs.to_vec());
                a.sort_unstable();
                b.sort_unstable();
                if a == b {
                    default_added = true;
                }
            }
        }
        if !default_added {
            out.push(self.own_chain(svc, own));
        }
        out
    }

    /// pilot's `getConfigsForHost`: a VirtualService host matching the
    /// service's.
    fn for_host(&self, vs: &Resource<VirtualService>, svc: &ServiceInfo) -> bool {
        vs.spec.hosts.iter().any(|h| {
            host::matches(
                &host::resolve_short_name(h, vs.namespace(), &self.opts.domain),
                &svc.fqdn,
            )
        })
    }

    /// pilot's `matchTCP` for a sidecar on listener port `port`.
    fn applies(&self, m: &L4MatchAttributes) -> bool {
        (m.gateways.is_empty() || m.gateways.iter().any(|g| g == "mesh"))
            && m.port.is_none_or(|p| p == 0 || p == u32::from(self.port))
            && selector_matches(&m.source_labels, &self.opts.labels)
            && m.source_namespace
                .as_deref()
                .is_none_or(|ns| ns.is_empty() || ns == self.opts.namespace)
    }

    /// No rule covers the service: its own cluster.
    fn own_chain(&self, svc: &ServiceInfo, prefixes: Vec<Cidr>) -> TcpChain {
        TcpChain {
            prefixes,
            service: svc.fqdn.clone(),
            virtual_service: None,
            rule_index: 0,
            destinations: vec![own_destination(self.config, self.clusters, svc, self.port)],
        }
    }
}

#[cfg(test)]
mod tests;
