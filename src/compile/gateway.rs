//! Gateways → the listeners of a gateway workload, as pilot builds them
//! (`pilot/pkg/model/gateway.go` `mergeGateways`,
//! `pilot/pkg/networking/core/gateway.go`): every Gateway whose `selector`
//! matches the proxy's labels (in any namespace) contributes its servers;
//! servers are merged per port number; a plain-text HTTP port gets one route
//! table built from the VirtualServices bound to its gateways, a TCP port one
//! tcp_proxy route, an HTTPS port one TLS setting (`gateway_tls`) and route
//! table per server, picked by SNI as Envoy's filter chain match does.
//! Pure, like the rest of `compile`, but for the certificate files an HTTPS
//! server names (read through `source::certs`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::gateway_tls::{self, ServerTls};
use super::routes::{build_routes, is_catch_all, l4_destinations, ordered_bound};
use super::sni::{self, TlsRoute};
use super::{Cluster, ProxyIdentity, ServiceInfo};
use crate::config::{ConfigSet, Resource};
use crate::model::{
    self, HTTPMatchRequest, L4MatchAttributes, Protocol, TLSMatchAttributes, VirtualService, host,
    selector_matches,
};
use crate::route::{
    Action, HeaderOps, Redirect, Route, RouteMatch, RouteTable, VirtualHost, WeightedCluster,
};

/// Envoy's tcp_proxy idle timeout, which Istio leaves in place unless the
/// DestinationRule sets `connectionPool.tcp.idleTimeout`.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// The listeners of a gateway workload.
#[derive(Debug, Default)]
pub struct GatewayListeners {
    /// By server port number.
    pub ports: BTreeMap<u16, GatewayPort>,
    /// Servers strait cannot serve: `run` refuses to start and a reload is
    /// rejected, rather than silently dropping the traffic.
    pub problems: Vec<Problem>,
}

impl GatewayListeners {
    /// The route table of plain-text HTTP port `port`.
    pub fn http(&self, port: u16) -> Option<&RouteTable> {
        match &self.ports.get(&port)?.kind {
            PortKind::Http(t) => Some(t),
            _ => None,
        }
    }

    /// The HTTPS servers of port `port` (TLS terminated here), also those
    /// beside passthrough servers on one port.
    pub fn https(&self, port: u16) -> Option<&[HttpsServer]> {
        self.ports.get(&port)?.kind.terminating()
    }

    /// The route table for a request on gateway port `port`: the port's
    /// (plain-text HTTP), or that of the HTTPS server the connection's
    /// handshake chose (`server`: Gateway `namespace/name` and index).
    pub fn routes(&self, port: u16, server: Option<(&str, usize)>) -> Option<&RouteTable> {
        let kind = &self.ports.get(&port)?.kind;
        match (kind, server) {
            (PortKind::Http(t), None) => Some(t),
            (_, Some((gw, index))) => kind
                .terminating()?
                .iter()
                .find(|s| s.server.index == index && s.server.gateway == gw)
                .map(|s| &s.routes),
            _ => None,
        }
    }
}

/// Envoy's filter chain match on `server_names` (the HTTPS servers' SNI
/// hosts, pilot `GetSNIHostsForServer`; a server with host `*` gets a chain
/// with no `server_names`, listener.go): the exact name first, then the
/// longest wildcard (`a.b.example.com` tries `*.b.example.com`, then
/// `*.example.com`, then `*.com`), then a chain without server names; no
/// SNI matches only the latter. `None`: no filter chain matches and Envoy
/// closes the connection.
pub fn select_server<'a>(servers: &'a [HttpsServer], sni: Option<&str>) -> Option<&'a HttpsServer> {
    sni::select(servers.iter().map(|s| (s.sni.as_slice(), s)), sni)
}

/// An HTTPS server: TLS terminated with its certificate, requests routed
/// with its own route table (pilot gives each HTTPS server its own RDS
/// route, `https.<port>.<port name>.<gateway>.<namespace>`).
#[derive(Debug)]
pub struct HttpsServer {
    pub server: ServerRef,
    /// Lower-cased SNI names (`server_names`); empty matches any SNI and
    /// none (a `*` host).
    pub sni: Vec<String>,
    pub tls: Arc<ServerTls>,
    pub routes: RouteTable,
    /// A `TLS` server terminating TLS: the tcp_proxy of its `tcp` routes
    /// (pilot `buildGatewayNetworkFiltersFromTCPRoutes` behind the
    /// server's TLS context); the decrypted stream goes there, not to
    /// `routes`.
    pub tcp: Option<TcpRoute>,
}

/// A Gateway server strait cannot serve, with the field that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name` of the Gateway.
    pub gateway: String,
    /// Field path, e.g. `spec.servers[1].port.protocol`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Gateway {}: {}: {}",
            self.gateway, self.path, self.message
        )
    }
}

/// One listener: the servers merged on a port number.
#[derive(Debug)]
pub struct GatewayPort {
    pub number: u16,
    /// The protocol of the first server on the port.
    pub protocol: Protocol,
    pub servers: Vec<ServerRef>,
    pub kind: PortKind,
}

/// A server of a Gateway, as merged onto a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRef {
    /// `namespace/name` of the Gateway.
    pub gateway: String,
    /// Index in `spec.servers`.
    pub index: usize,
    /// `hosts` with the namespace part normalised as pilot does
    /// (`./h` → `<gateway ns>/h`, `*/h` → `h`).
    pub hosts: Vec<String>,
    pub https_redirect: bool,
    /// `port.name`, for listings.
    pub port_name: Option<String>,
    /// A `TLS` server terminating TLS in front of `tcp` routes.
    pub tcp: bool,
}

#[derive(Debug)]
pub enum PortKind {
    /// HTTP, HTTP2, GRPC, GRPC-WEB: routed by host (port ignored, as on
    /// Istio gateways) with the bound VirtualServices' `http` rules.
    Http(RouteTable),
    /// HTTPS servers terminating TLS, picked by SNI ([`select_server`]).
    Https(Vec<HttpsServer>),
    /// TCP and every other non-HTTP protocol (MONGO, MYSQL, REDIS, ...):
    /// the first matching `tcp` rule; `None` closes connections (NR).
    Tcp(Option<TcpRoute>),
    /// TLS (or HTTPS) servers with `tls.mode: PASSTHROUGH`: the
    /// ClientHello's SNI picks a `tls` route, whose destination gets the
    /// TLS stream untouched; HTTPS servers terminating TLS on the same
    /// port are filter chains beside them.
    Passthrough(PassthroughPort),
}

impl PortKind {
    /// How the port handles TLS, in Istio's `tls.mode` words (`NONE`:
    /// plain text), that of its first server.
    pub fn tls_mode(&self) -> &'static str {
        match self {
            PortKind::Http(_) | PortKind::Tcp(_) => "NONE",
            PortKind::Https(servers) => servers
                .first()
                .map_or("SIMPLE", |s| gateway_tls::mode_name(s.tls.mode)),
            PortKind::Passthrough(p) => p.tls_mode,
        }
    }

    /// The servers terminating TLS on the port.
    pub fn terminating(&self) -> Option<&[HttpsServer]> {
        match self {
            PortKind::Https(s) => Some(s),
            PortKind::Passthrough(p) => Some(&p.servers),
            _ => None,
        }
    }
}

/// A port with `PASSTHROUGH` servers: one filter chain per `tls` route
/// match (pilot's `buildGatewayNetworkFiltersFromTLSRoutes`) and one per
/// HTTPS server terminating TLS beside them.
#[derive(Debug)]
pub struct PassthroughPort {
    /// In pilot's order: servers in merge order, bound VirtualServices in
    /// Istio's order, rules, matches.
    pub routes: Vec<TlsRoute>,
    pub servers: Vec<HttpsServer>,
    /// The first server's mode (`PASSTHROUGH`, or `SIMPLE` and the like
    /// when a terminating server came first).
    pub tls_mode: &'static str,
}

/// The filter chain a connection's SNI picked on a passthrough port.
#[derive(Debug, Clone, Copy)]
pub enum Chain<'a> {
    Route(&'a TlsRoute),
    Terminate(&'a HttpsServer),
}

impl PassthroughPort {
    /// Envoy's filter chain match over the port's routes and terminating
    /// servers alike ([`sni::select`]); `None` closes the connection (NR).
    pub fn select(&self, sni: Option<&str>) -> Option<Chain<'_>> {
        let routes = self
            .routes
            .iter()
            .map(|r| (r.sni.as_slice(), Chain::Route(r)));
        let servers = self
            .servers
            .iter()
            .map(|s| (s.sni.as_slice(), Chain::Terminate(s)));
        sni::select(routes.chain(servers), sni)
    }
}

/// The tcp_proxy of a TCP port.
#[derive(Debug)]
pub struct TcpRoute {
    /// `namespace/name` of the VirtualService.
    pub virtual_service: String,
    /// Index of the rule in its `tcp` list.
    pub rule_index: usize,
    pub destinations: Vec<TcpDestination>,
}

#[derive(Debug)]
pub struct TcpDestination {
    pub cluster: WeightedCluster,
    /// `connectionPool.tcp.idleTimeout` of the destination's
    /// DestinationRule (top-level policy only, as Istio reads it), else 1h;
    /// `None` when set to `0s` (no idle timeout).
    pub idle_timeout: Option<Duration>,
}

/// pilot's `resolveGatewayName`: a VirtualService's gateway reference as
/// `namespace/name`. `name` and `./name` are in the VirtualService's
/// namespace; the legacy `name.ns.svc.cluster.local` means `ns/name`;
/// `mesh` stays `mesh`.
pub fn resolve_gateway_name(g: &str, vs_namespace: &str) -> String {
    if g == "mesh" {
        return g.to_string();
    }
    match g.split_once('/') {
        Some((".", name)) => format!("{vs_namespace}/{name}"),
        Some(_) => g.to_string(),
        None => match g.split_once('.') {
            None => format!("{vs_namespace}/{g}"),
            Some((name, rest)) => {
                let ns = rest.split('.').next().unwrap_or(rest);
                format!("{ns}/{name}")
            }
        },
    }
}

/// pilot's `sanitizeServerHostNamespace`: `./h` → `<ns>/h`, `*/h` → `h`,
/// and `*/*` makes the server's hosts just `*`.
pub fn sanitize_server_hosts(hosts: &[String], gateway_namespace: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        match h.split_once('/') {
            Some((".", rest)) => out.push(format!("{gateway_namespace}/{rest}")),
            Some(("*", "*")) => return vec!["*".to_string()],
            Some(("*", rest)) => out.push(rest.to_string()),
            _ => out.push(h.clone()),
        }
    }
    out
}

/// pilot's `GetSNIHostsForServer`, lower-cased: the hosts without their
/// namespace part, sorted, unique; empty when one is `*` (a filter chain
/// without `server_names`).
fn sni_hosts(hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = hosts
        .iter()
        .map(|h| {
            h.split_once('/')
                .map_or(h.as_str(), |(_, n)| n)
                .to_ascii_lowercase()
        })
        .collect();
    if out.iter().any(|h| h == "*") {
        return Vec::new();
    }
    out.sort();
    out.dedup();
    out
}

/// `host.NamesForNamespace`: the server hosts a VirtualService in
/// `namespace` may bind to, without their namespace part.
pub fn names_for_namespace(hosts: &[String], namespace: &str) -> Vec<String> {
    hosts
        .iter()
        .filter_map(|h| match h.split_once('/') {
            Some((ns, name)) if ns == namespace || ns == "*" => Some(name.to_string()),
            Some(_) => None,
            None => Some(h.clone()),
        })
        .collect()
}

/// `host.Names.Intersection`: for every pair where one host covers the
/// other, the more specific one (`*.example.com` ∩ `a.example.com` is
/// `a.example.com`), without duplicates, in `a`'s order.
pub fn intersection(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in a {
        for y in b {
            let pick = if host::subset_of(x, y) {
                x
            } else if host::subset_of(y, x) {
                y
            } else {
                continue;
            };
            if !out.contains(pick) {
                out.push(pick.clone());
            }
        }
    }
    out
}

/// pilot's `pickMatchingGatewayHosts` (used for TCP): whether one of the
/// VirtualService's hosts matches a server host, in either direction, the
/// server host's namespace part (if any) naming the VirtualService's.
pub fn picks_host(server_hosts: &[String], vs_hosts: &[String], vs_namespace: &str) -> bool {
    vs_hosts.iter().any(|vh| {
        server_hosts.iter().any(|sh| {
            let sh = match sh.split_once('/') {
                Some((ns, name)) if ns == vs_namespace => name,
                Some(_) => return false,
                None => sh.as_str(),
            };
            host::matches(sh, vh)
        })
    })
}

/// pilot's `sourceMatchHTTP` and port check for a gateway: a match with
/// `gateways` applies when it names this gateway (its `sourceLabels` are
/// then not looked at); otherwise `sourceLabels` must be a subset of the
/// gateway workload's labels and `sourceNamespace` its namespace; `port`
/// must be the server port.
pub fn http_match_applies(
    m: &HTTPMatchRequest,
    port: u16,
    gateway: &str,
    vs_namespace: &str,
    opts: &ProxyIdentity,
) -> bool {
    if m.port.is_some_and(|p| p != u32::from(port)) {
        return false;
    }
    if !m.gateways.is_empty() {
        return m
            .gateways
            .iter()
            .any(|g| resolve_gateway_name(g, vs_namespace) == gateway);
    }
    selector_matches(&m.source_labels, &opts.labels)
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns == opts.namespace)
}

/// pilot's `l4MultiMatch` on a gateway: no match entries match; otherwise
/// one entry whose `port` (if set) is the server port and whose `gateways`
/// (if set) name this gateway. Other L4 fields are not looked at on
/// gateways.
pub fn l4_match_applies(
    matches: &[L4MatchAttributes],
    port: u16,
    gateway: &str,
    vs_namespace: &str,
) -> bool {
    matches.is_empty()
        || matches.iter().any(|m| {
            m.port.is_none_or(|p| p == 0 || p == u32::from(port))
                && (m.gateways.is_empty()
                    || m.gateways
                        .iter()
                        .any(|g| resolve_gateway_name(g, vs_namespace) == gateway))
        })
}

/// What a server can become here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Http,
    /// HTTPS terminating TLS.
    Https,
    /// TLS terminating TLS (SIMPLE, MUTUAL, OPTIONAL_MUTUAL) in front of
    /// `tcp` routes.
    TlsTcp,
    /// TLS or HTTPS with `tls.mode: PASSTHROUGH`.
    Passthrough,
    Tcp,
}

impl Class {
    /// pilot's `IsTLSServer`: servers merged on a port as SNI filter chains.
    fn tls(self) -> bool {
        matches!(self, Class::Https | Class::TlsTcp | Class::Passthrough)
    }
}

fn classify(
    gw: &Resource<model::Gateway>,
    index: usize,
    server: &model::Server,
) -> Result<(u16, Protocol, Class), Option<Problem>> {
    let port = server.port.as_ref().ok_or(None)?;
    let number = port
        .number
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or(None)?;
    let protocol = Protocol::parse(port.protocol.as_deref().unwrap_or(""));
    let problem = |path: &str, message: String| {
        Some(Problem {
            gateway: gw.key(),
            path: format!("spec.servers[{index}].{path}"),
            message,
        })
    };
    if protocol.is_http() {
        let tls_beyond_redirect = server.tls.as_ref().is_some_and(|t| {
            t.mode.is_some() || t.server_certificate.is_some() || t.credential_name.is_some()
        });
        if tls_beyond_redirect {
            return Err(problem(
                "tls",
                format!(
                    "TLS settings on a {} server are not supported (only `httpsRedirect`); use protocol HTTPS to terminate TLS",
                    protocol.as_str()
                ),
            ));
        }
        return Ok((number, protocol, Class::Http));
    }
    let class = match (protocol, &server.tls) {
        (Protocol::Https | Protocol::Tls, None) => {
            return Err(problem(
                "tls",
                format!(
                    "{} servers need `tls` settings: mode SIMPLE or MUTUAL to terminate, PASSTHROUGH to route the TLS stream by SNI",
                    protocol.as_str()
                ),
            ));
        }
        (Protocol::Https | Protocol::Tls, Some(tls)) => {
            tls_class(protocol, tls.mode.unwrap_or_default())
                .map_err(|message| problem("tls.mode", message))?
        }
        (Protocol::Udp, _) => {
            return Err(problem(
                "port.protocol",
                "UDP servers are not supported (Istio gateways do not proxy UDP either)"
                    .to_string(),
            ));
        }
        (_, Some(_)) => {
            return Err(problem(
                "tls",
                format!(
                    "TLS settings on a {} server are not supported; strait proxies it as plain TCP only (use protocol TLS with mode PASSTHROUGH for a TLS stream)",
                    protocol.as_str()
                ),
            ));
        }
        (_, None) => Class::Tcp,
    };
    Ok((number, protocol, class))
}

/// The class of an HTTPS or TLS server by its `tls.mode` (pilot's
/// `IsPassThroughServer`: an HTTPS server in PASSTHROUGH mode is proxied
/// by SNI like a TLS one), or why strait cannot serve it.
fn tls_class(protocol: Protocol, mode: model::ServerTLSMode) -> Result<Class, String> {
    use model::ServerTLSMode as M;
    match mode {
        M::Passthrough => Ok(Class::Passthrough),
        M::Simple | M::Mutual | M::OptionalMutual if protocol == Protocol::Https => Ok(Class::Https),
        M::Simple | M::Mutual | M::OptionalMutual => Ok(Class::TlsTcp),
        M::AutoPassthrough => Err(
            "AUTO_PASSTHROUGH (SNI-DNAT to the mesh cluster the SNI names, for multi-network east-west gateways) is not supported by strait; use PASSTHROUGH with VirtualService `tls` routes".to_string(),
        ),
        M::IstioMutual => Err(
            "ISTIO_MUTUAL terminates with Istio's workload certificates, which strait does not have; use SIMPLE or MUTUAL with certificate files or credentialName".to_string(),
        ),
    }
}

/// A port while servers are merged onto it.
struct PortAcc {
    protocol: Protocol,
    class: Class,
    servers: Vec<ServerRef>,
    /// Per server of a TLS port: its SNI names and TLS settings when it
    /// terminates, `None` for a passthrough server.
    tls: Vec<Option<(Vec<String>, Arc<ServerTls>)>>,
    /// pilot's `tlsHostsByPort`: hosts of the TLS servers merged so far.
    tls_hosts: Vec<String>,
    /// The first server's `tls.mode`.
    tls_mode: &'static str,
}

/// Build the gateway listeners for the workload described by `opts`.
pub fn compile(
    config: &ConfigSet,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> GatewayListeners {
    let mut out = GatewayListeners::default();
    let ports = merge_servers(config, opts, &mut out.problems);
    let mut bound: HashMap<String, Vec<&Resource<VirtualService>>> = HashMap::new();
    for (number, acc) in ports {
        for s in &acc.servers {
            bound.entry(s.gateway.clone()).or_insert_with(|| {
                ordered_bound(config, opts, |vs| {
                    vs.spec
                        .gateways
                        .iter()
                        .any(|g| resolve_gateway_name(g, vs.namespace()) == s.gateway)
                })
            });
        }
        let ctx = PortCtx {
            config,
            port: number,
            bound: &bound,
            services,
            clusters,
            opts,
        };
        let kind = ctx.kind(&acc, &mut out.problems);
        out.ports.insert(
            number,
            GatewayPort {
                number,
                protocol: acc.protocol,
                servers: acc.servers,
                kind,
            },
        );
    }
    out
}

/// The Gateways selecting the workload, their servers merged per port as
/// pilot's `mergeGateways` does; what cannot be served goes to `problems`.
fn merge_servers(
    config: &ConfigSet,
    opts: &ProxyIdentity,
    problems: &mut Vec<Problem>,
) -> BTreeMap<u16, PortAcc> {
    let mut gateways: Vec<&Resource<model::Gateway>> = config
        .gateways
        .iter()
        // An empty selector selects every workload.
        .filter(|g| selector_matches(&g.spec.selector, &opts.labels))
        .collect();
    // pilot merges Gateways in creation order (`sortConfigByCreationTime`).
    gateways.sort_by(|a, b| {
        a.meta
            .creation_timestamp
            .cmp(&b.meta.creation_timestamp)
            .then_with(|| a.name().cmp(b.name()))
            .then_with(|| a.namespace().cmp(b.namespace()))
    });
    let mut ports: BTreeMap<u16, PortAcc> = BTreeMap::new();
    for gw in gateways {
        for (index, server) in gw.spec.servers.iter().enumerate() {
            let (number, protocol, class) = match classify(gw, index, server) {
                Ok(c) => c,
                Err(Some(p)) => {
                    problems.push(p);
                    continue;
                }
                Err(None) => continue,
            };
            if server.bind.is_some() {
                tracing::warn!(gateway = %gw.key(), server = index, "server `bind` is ignored: strait binds every gateway port on --gateway-address");
            }
            // pilot's `CheckDuplicates`: a TLS server repeating a host of
            // an earlier one on the port is skipped (Envoy refuses two
            // filter chains with the same match).
            if class.tls()
                && let Some(acc) = ports.get(&number)
                && acc.class.tls()
                && let Some(dup) = server.hosts.iter().find(|h| acc.tls_hosts.contains(h))
            {
                tracing::warn!(gateway = %gw.key(), server = index, port = number, "skipping server: duplicate host {dup} on a TLS port");
                continue;
            }
            let tls = match class {
                Class::Https | Class::TlsTcp => {
                    let settings = server.tls.as_ref().expect("classified HTTPS");
                    match gateway_tls::build(config, gw, settings) {
                        Ok(t) => Some(Some((sni_hosts(&server.hosts), Arc::new(t)))),
                        Err(e) => {
                            problems.push(Problem {
                                gateway: gw.key(),
                                path: format!("spec.servers[{index}].{}", e.field),
                                message: e.message,
                            });
                            continue;
                        }
                    }
                }
                Class::Passthrough => Some(None),
                Class::Http | Class::Tcp => None,
            };
            let sref = server_ref(gw, index, server, class);
            merge_server(&mut ports, number, protocol, class, sref, server, tls);
        }
    }
    ports
}

fn server_ref(
    gw: &Resource<model::Gateway>,
    index: usize,
    server: &model::Server,
    class: Class,
) -> ServerRef {
    ServerRef {
        gateway: gw.key(),
        index,
        hosts: sanitize_server_hosts(&server.hosts, gw.namespace()),
        https_redirect: class == Class::Http
            && server
                .tls
                .as_ref()
                .and_then(|t| t.https_redirect)
                .unwrap_or(false),
        port_name: server.port.as_ref().and_then(|p| p.name.clone()),
        tcp: class == Class::TlsTcp,
    }
}

/// Put one server on its port: a new port, or merged with the port's
/// servers when pilot merges them (plain-text HTTP with HTTP, TLS servers
/// with TLS servers), else skipped.
fn merge_server(
    ports: &mut BTreeMap<u16, PortAcc>,
    number: u16,
    protocol: Protocol,
    class: Class,
    sref: ServerRef,
    server: &model::Server,
    tls: Option<Option<(Vec<String>, Arc<ServerTls>)>>,
) {
    let mode = || {
        server.tls.as_ref().map_or("NONE", |t| {
            gateway_tls::mode_name(t.mode.unwrap_or_default())
        })
    };
    match ports.get_mut(&number) {
        None => {
            ports.insert(
                number,
                PortAcc {
                    protocol,
                    class,
                    servers: vec![sref],
                    tls_hosts: if class.tls() {
                        server.hosts.clone()
                    } else {
                        Vec::new()
                    },
                    tls: tls.into_iter().collect(),
                    tls_mode: mode(),
                },
            );
        }
        // Plain-text HTTP servers share the port's route table.
        Some(acc) if acc.class == Class::Http && class == Class::Http => acc.servers.push(sref),
        // TLS servers share the port, one filter chain each (or one per
        // `tls` route of a passthrough server).
        Some(acc) if acc.class.tls() && class.tls() => {
            acc.servers.push(sref);
            acc.tls_hosts.extend(server.hosts.iter().cloned());
            acc.tls.extend(tls);
        }
        // pilot skips a server whose protocol cannot merge with the
        // port's, and a second TCP server on a port.
        Some(acc) => {
            tracing::warn!(
                gateway = %sref.gateway,
                server = sref.index,
                port = number,
                "skipping server: port {number} already serves {} for {}",
                acc.protocol.as_str(),
                acc.servers[0].gateway
            );
        }
    }
}

/// What building one port's routes reads.
struct PortCtx<'a> {
    config: &'a ConfigSet,
    port: u16,
    bound: &'a HashMap<String, Vec<&'a Resource<VirtualService>>>,
    services: &'a [Arc<ServiceInfo>],
    clusters: &'a super::ClusterMap,
    opts: &'a ProxyIdentity,
}

impl PortCtx<'_> {
    fn kind(&self, acc: &PortAcc, problems: &mut Vec<Problem>) -> PortKind {
        match acc.class {
            Class::Http => PortKind::Http(self.http_table(&acc.servers)),
            Class::Tcp => PortKind::Tcp(tcp_route(
                self.config,
                self.port,
                &acc.servers[0],
                self.bound,
                self.services,
                self.clusters,
                self.opts,
            )),
            Class::Https | Class::TlsTcp | Class::Passthrough => {
                let mut terminating = Vec::new();
                let mut passthrough = Vec::new();
                for (server, tls) in acc.servers.iter().zip(&acc.tls) {
                    match tls {
                        Some((sni, tls)) if server.tcp => {
                            // pilot builds no filter chain for a terminating
                            // TLS server without a matching `tcp` route.
                            let Some(route) = self.tcp_route(server) else {
                                tracing::warn!(gateway = %server.gateway, server = server.index, port = self.port, "TLS server has no matching `tcp` route: no filter chain (as pilot's \"listener missed network filter\")");
                                continue;
                            };
                            terminating.push(HttpsServer {
                                routes: RouteTable::default(),
                                server: server.clone(),
                                sni: sni.clone(),
                                tls: tls.clone(),
                                tcp: Some(route),
                            });
                        }
                        Some((sni, tls)) => terminating.push(HttpsServer {
                            routes: self.http_table(std::slice::from_ref(server)),
                            server: server.clone(),
                            sni: sni.clone(),
                            tls: tls.clone(),
                            tcp: None,
                        }),
                        None => passthrough.push(server),
                    }
                }
                if passthrough.is_empty() {
                    return PortKind::Https(terminating);
                }
                PortKind::Passthrough(PassthroughPort {
                    routes: self.tls_routes(&passthrough, &terminating, problems),
                    servers: terminating,
                    tls_mode: acc.tls_mode,
                })
            }
        }
    }

    fn tcp_route(&self, server: &ServerRef) -> Option<TcpRoute> {
        tcp_route(
            self.config,
            self.port,
            server,
            self.bound,
            self.services,
            self.clusters,
            self.opts,
        )
    }

    fn http_table(&self, servers: &[ServerRef]) -> RouteTable {
        http_table(
            self.config,
            self.port,
            servers,
            self.bound,
            self.services,
            self.clusters,
            self.opts,
        )
    }

    /// The filter chains of passthrough servers
    /// (`buildGatewayNetworkFiltersFromTLSRoutes`): per server, per bound
    /// VirtualService whose hosts match the server's, per `tls` rule with
    /// a `route`, per match whose `port` and `gateways` apply, one chain on
    /// the match's `sniHosts`. A match repeating an SNI host of an earlier
    /// chain on the port is skipped as pilot skips it (`CheckDuplicates`).
    /// One sharing a server name with a terminating server on the port is
    /// not deduplicated by pilot (its `tlsHostsByPort` of the listener
    /// build holds only passthrough matches): both filter chains are
    /// pushed and Envoy refuses the listener, keeping its previous one.
    /// strait refuses the configuration the same way (a problem: not
    /// served at start, a reload rejected and the last good one kept).
    fn tls_routes(
        &self,
        servers: &[&ServerRef],
        terminating: &[HttpsServer],
        problems: &mut Vec<Problem>,
    ) -> Vec<TlsRoute> {
        let mut known: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for server in servers {
            let gw = server.gateway.as_str();
            for vs in self.bound.get(gw).map(Vec::as_slice).unwrap_or_default() {
                let ns = vs.namespace();
                let vs_hosts: Vec<String> = vs
                    .spec
                    .hosts
                    .iter()
                    .map(|h| host::resolve_short_name(h, ns, &self.opts.domain))
                    .collect();
                if !picks_host(&server.hosts, &vs_hosts, ns) {
                    continue;
                }
                for (i, rule) in vs.spec.tls.iter().enumerate() {
                    if rule.route.is_empty() {
                        continue;
                    }
                    for (j, m) in rule.match_.iter().enumerate() {
                        if !tls_match_applies(m, self.port, gw, ns) {
                            continue;
                        }
                        let names = sni::server_names(&m.sni_hosts);
                        if let Some(t) = terminating.iter().find(|t| overlap(&t.sni, &names)) {
                            problems.push(Problem {
                                gateway: t.server.gateway.clone(),
                                path: format!("spec.servers[{}].hosts", t.server.index),
                                message: format!(
                                    "VirtualService {} spec.tls[{i}].match[{j}].sniHosts {:?} share a server name with this server on port {}: Istio pushes both filter chains and Envoy refuses the listener (multiple filter chains with the same matching rules), keeping its previous one; give the tls match other sniHosts, or drop the name from one of them",
                                    vs.key(),
                                    m.sni_hosts,
                                    self.port
                                ),
                            });
                            continue;
                        }
                        let duplicate = m.sni_hosts.iter().find(|h| known.contains(h)).cloned();
                        if let Some(dup) = duplicate {
                            tracing::warn!(virtual_service = %vs.key(), rule = i, port = self.port, gateway = gw, "skipping VirtualService tls rule: duplicate SNI host {dup} on the port");
                            continue;
                        }
                        known.extend(m.sni_hosts.iter().cloned());
                        out.push(TlsRoute {
                            virtual_service: Some(vs.key()),
                            rule_index: i,
                            match_index: j,
                            sni: names,
                            destinations: self.tcp_destinations(vs, &rule.route),
                        });
                    }
                }
            }
        }
        out
    }

    fn tcp_destinations(
        &self,
        vs: &Resource<VirtualService>,
        routes: &[model::RouteDestination],
    ) -> Vec<TcpDestination> {
        tcp_destinations(
            self.config,
            vs,
            routes,
            self.port,
            self.services,
            self.clusters,
            self.opts,
        )
    }
}

/// The weighted tcp_proxy destinations of a `tcp` or `tls` rule, with
/// their idle timeouts.
pub(super) fn tcp_destinations(
    config: &ConfigSet,
    vs: &Resource<VirtualService>,
    routes: &[model::RouteDestination],
    port: u16,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> Vec<TcpDestination> {
    l4_destinations(vs, routes, port, services, clusters, opts)
        .into_iter()
        .map(|cluster| TcpDestination {
            idle_timeout: tcp_idle_timeout(config, clusters.get(&cluster.cluster)),
            cluster,
        })
        .collect()
}

/// pilot's `l4SingleMatch` for a `tls` match on a gateway: `port` (if
/// set) is the server port and `gateways` (if set) name this gateway;
/// `sniHosts` become the filter chain's names, and the other fields
/// (`destinationSubnets`, `sourceLabels`, `sourceNamespace`) are not
/// looked at on gateways.
pub fn tls_match_applies(
    m: &TLSMatchAttributes,
    port: u16,
    gateway: &str,
    vs_namespace: &str,
) -> bool {
    m.port.is_none_or(|p| p == 0 || p == u32::from(port))
        && (m.gateways.is_empty()
            || m.gateways
                .iter()
                .any(|g| resolve_gateway_name(g, vs_namespace) == gateway))
}

/// One HTTP route table for all servers on `port`
/// (`buildGatewayHTTPRouteConfig`): a virtual host per host in both a
/// server's and a bound VirtualService's hosts, routes of every
/// VirtualService for the host concatenated in order and then catch-all
/// routes moved last (`SortVHostRoutes`); no virtual host at all gives the
/// `blackhole` one, where everything is 404 NR.
fn http_table(
    config: &ConfigSet,
    port: u16,
    servers: &[ServerRef],
    bound: &HashMap<String, Vec<&Resource<VirtualService>>>,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> RouteTable {
    struct Acc {
        routes: Vec<Route>,
        virtual_service: Option<String>,
        https_redirect: bool,
    }
    let mut order: Vec<String> = Vec::new();
    let mut vhosts: HashMap<String, Acc> = HashMap::new();
    for server in servers {
        let gw = server.gateway.as_str();
        for vs in bound.get(gw).map(Vec::as_slice).unwrap_or_default() {
            let ns = vs.namespace();
            let vs_hosts: Vec<String> = vs
                .spec
                .hosts
                .iter()
                .map(|h| host::resolve_short_name(h, ns, &opts.domain))
                .collect();
            let server_hosts = names_for_namespace(&server.hosts, ns);
            for h in intersection(&server_hosts, &vs_hosts) {
                let applies = |m: &HTTPMatchRequest| http_match_applies(m, port, gw, ns, opts);
                let routes =
                    build_routes(config, vs, port, None, services, clusters, opts, &applies);
                // pilot skips a VirtualService that yields no route here.
                if routes.is_empty() {
                    continue;
                }
                let h = h.to_ascii_lowercase();
                let acc = vhosts.entry(h.clone()).or_insert_with(|| {
                    order.push(h.clone());
                    Acc {
                        routes: Vec::new(),
                        virtual_service: Some(vs.key()),
                        https_redirect: false,
                    }
                });
                acc.routes.extend(routes);
                acc.https_redirect |= server.https_redirect;
            }
        }
        if server.https_redirect {
            for h in names_for_namespace(&server.hosts, "*") {
                let h = h.to_ascii_lowercase();
                let acc = vhosts.entry(h.clone()).or_insert_with(|| {
                    order.push(h.clone());
                    Acc {
                        routes: Vec::new(),
                        virtual_service: None,
                        https_redirect: true,
                    }
                });
                acc.https_redirect = true;
            }
        }
    }
    let mut table = RouteTable::ignoring_port();
    if vhosts.is_empty() {
        let idx = table.add_vhost(VirtualHost {
            name: format!("blackhole:{port}"),
            virtual_service: None,
            routes: Vec::new(),
        });
        table.add_domain("*", 0, idx);
        return table;
    }
    for h in order {
        let Some(acc) = vhosts.remove(&h) else {
            continue;
        };
        let routes = if acc.https_redirect {
            // Envoy's `require_tls: ALL`: a plain-text request is answered
            // with a 301 to https before any route is looked at.
            vec![https_redirect_route()]
        } else {
            let (mut rest, catch_all): (Vec<Route>, Vec<Route>) = acc
                .routes
                .into_iter()
                .partition(|r| !is_catch_all(&r.matcher));
            rest.extend(catch_all);
            rest
        };
        let idx = table.add_vhost(VirtualHost {
            name: format!("{h}:{port}"),
            virtual_service: acc.virtual_service,
            routes,
        });
        table.add_domain(&h, 0, idx);
    }
    table
}

fn https_redirect_route() -> Route {
    Route {
        name: "".into(),
        rule_index: None,
        matcher: RouteMatch::default(),
        action: Action::Redirect(Redirect {
            uri: None,
            prefix_rewrite: None,
            authority: None,
            port: None,
            derive_port_from_request: false,
            scheme: Some("https".into()),
            status: http::StatusCode::MOVED_PERMANENTLY,
        }),
        timeout: None,
        retry: None,
        fault: None,
        mirrors: Vec::new(),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        rewrite: None,
        cors: None,
    }
}

/// The tcp_proxy of a TCP server (`buildGatewayNetworkFiltersFromTCPRoutes`):
/// the first bound VirtualService whose hosts match the server's and the
/// first of its `tcp` rules that matches and has a `route`.
fn tcp_route(
    config: &ConfigSet,
    port: u16,
    server: &ServerRef,
    bound: &HashMap<String, Vec<&Resource<VirtualService>>>,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> Option<TcpRoute> {
    let gw = server.gateway.as_str();
    for vs in bound.get(gw).map(Vec::as_slice).unwrap_or_default() {
        let ns = vs.namespace();
        let vs_hosts: Vec<String> = vs
            .spec
            .hosts
            .iter()
            .map(|h| host::resolve_short_name(h, ns, &opts.domain))
            .collect();
        if !picks_host(&server.hosts, &vs_hosts, ns) {
            continue;
        }
        for (i, rule) in vs.spec.tcp.iter().enumerate() {
            if rule.route.is_empty() || !l4_match_applies(&rule.match_, port, gw, ns) {
                continue;
            }
            let destinations =
                tcp_destinations(config, vs, &rule.route, port, services, clusters, opts);
            return Some(TcpRoute {
                virtual_service: vs.key(),
                rule_index: i,
                destinations,
            });
        }
    }
    None
}

/// Whether two filter chains' `server_names` would both take some SNI
/// Envoy matches exactly: a name in both, or neither has names.
fn overlap(a: &[String], b: &[String]) -> bool {
    (a.is_empty() && b.is_empty()) || a.iter().any(|n| b.contains(n))
}

/// The one destination of a TCP or TLS service no rule covers: its own
/// cluster (the service's only port when it has one, as pilot picks it,
/// else `port`), all the weight, as the sidecar's TCP and TLS chains build
/// it.
pub(super) fn own_destination(
    config: &ConfigSet,
    clusters: &super::ClusterMap,
    svc: &super::ServiceInfo,
    port: u16,
) -> TcpDestination {
    let port = if svc.ports.len() == 1 {
        svc.ports[0].number
    } else {
        port
    };
    let key = crate::route::ClusterKey {
        port,
        subset: String::new(),
        host: svc.fqdn.clone(),
    };
    let cluster = clusters.get(&key);
    let name: Arc<str> = cluster.map_or_else(|| key.to_string().into(), |c| c.name.clone());
    TcpDestination {
        idle_timeout: tcp_idle_timeout(config, cluster),
        cluster: WeightedCluster {
            name,
            cluster: key,
            weight: 100,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            authority: None,
            picked: Default::default(),
        },
    }
}

/// `connectionPool.tcp.idleTimeout` of the top-level `trafficPolicy` of the
/// cluster's DestinationRule (Istio ignores port-level and subset policies
/// here), else Envoy's 1h; `0s` disables it.
pub(super) fn tcp_idle_timeout(
    config: &ConfigSet,
    cluster: Option<&Arc<Cluster>>,
) -> Option<Duration> {
    let dr_key = cluster.and_then(|c| c.destination_rule.as_deref());
    let set = dr_key
        .and_then(|k| config.destination_rules.iter().find(|d| d.key() == k))
        .and_then(|d| d.spec.traffic_policy.as_ref())
        .and_then(|p| p.connection_pool.as_ref())
        .and_then(|c| c.tcp.as_ref())
        .and_then(|t| t.idle_timeout.as_ref());
    match set {
        Some(d) if d.nanos <= 0 => None,
        Some(d) => Some(d.as_std()),
        None => Some(DEFAULT_TCP_IDLE_TIMEOUT),
    }
}

#[cfg(test)]
mod tests;
