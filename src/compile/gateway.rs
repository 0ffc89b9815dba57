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
use super::{Cluster, Options, ServiceInfo};
use crate::config::{ConfigSet, Resource};
use crate::model::{self, HTTPMatchRequest, L4MatchAttributes, Protocol, VirtualService, host};
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
            PortKind::Https(_) | PortKind::Tcp(_) => None,
        }
    }

    /// The HTTPS servers of port `port` (TLS terminated here).
    pub fn https(&self, port: u16) -> Option<&[HttpsServer]> {
        match &self.ports.get(&port)?.kind {
            PortKind::Https(s) => Some(s),
            _ => None,
        }
    }

    /// The route table for a request on gateway port `port`: the port's
    /// (plain-text HTTP), or that of the HTTPS server the connection's
    /// handshake chose (`server`: Gateway `namespace/name` and index).
    pub fn routes(&self, port: u16, server: Option<(&str, usize)>) -> Option<&RouteTable> {
        match (&self.ports.get(&port)?.kind, server) {
            (PortKind::Http(t), None) => Some(t),
            (PortKind::Https(servers), Some((gw, index))) => servers
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
    if let Some(sni) = sni {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        if let Some(s) = servers.iter().find(|s| s.sni.contains(&sni)) {
            return Some(s);
        }
        let mut rest = sni.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            let wildcard = format!("*.{parent}");
            if let Some(s) = servers.iter().find(|s| s.sni.contains(&wildcard)) {
                return Some(s);
            }
            rest = parent;
        }
    }
    servers.iter().find(|s| s.sni.is_empty())
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
}

impl PortKind {
    /// How the port handles TLS, in Istio's `tls.mode` words (`NONE`:
    /// plain text).
    pub fn tls_mode(&self) -> &'static str {
        match self {
            PortKind::Http(_) | PortKind::Tcp(_) => "NONE",
            PortKind::Https(servers) => servers
                .first()
                .map_or("SIMPLE", |s| gateway_tls::mode_name(s.tls.mode)),
        }
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
    opts: &Options,
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
    m.source_labels
        .iter()
        .all(|(k, v)| opts.labels.get(k) == Some(v))
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
    Https,
    Tcp,
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
                    "TLS settings on a {} server are not supported (only `httpsRedirect`); use protocol HTTPS for TLS, which strait does not serve yet",
                    protocol.as_str()
                ),
            ));
        }
        return Ok((number, protocol, Class::Http));
    }
    let terminates = server.tls.as_ref().is_some_and(|t| {
        matches!(
            t.mode.unwrap_or_default(),
            model::ServerTLSMode::Simple
                | model::ServerTLSMode::Mutual
                | model::ServerTLSMode::OptionalMutual
        )
    });
    if protocol == Protocol::Https && terminates {
        return Ok((number, protocol, Class::Https));
    }
    match protocol {
        Protocol::Https | Protocol::Tls => Err(problem(
            "port.protocol",
            format!(
                "{} servers with this TLS mode (SNI passthrough, TLS to TCP, or no `tls`) are not supported by strait yet; it serves HTTPS servers with tls.mode SIMPLE, MUTUAL or OPTIONAL_MUTUAL, and plain-text HTTP, HTTP2, GRPC, GRPC-WEB and TCP (also MONGO, MYSQL, REDIS) servers",
                protocol.as_str()
            ),
        )),
        Protocol::Udp => Err(problem(
            "port.protocol",
            "UDP servers are not supported (Istio gateways do not proxy UDP either)".to_string(),
        )),
        _ if server.tls.is_some() => Err(problem(
            "tls",
            format!(
                "TLS settings on a {} server are not supported; strait proxies it as plain TCP only",
                protocol.as_str()
            ),
        )),
        _ => Ok((number, protocol, Class::Tcp)),
    }
}

/// A port while servers are merged onto it.
struct PortAcc {
    protocol: Protocol,
    class: Class,
    servers: Vec<ServerRef>,
    /// Per server, for an HTTPS port.
    tls: Vec<(Vec<String>, Arc<ServerTls>)>,
    /// pilot's `tlsHostsByPort`: hosts of the TLS servers merged so far.
    tls_hosts: Vec<String>,
}

/// Build the gateway listeners for the workload described by `opts`.
// split pending (issue #11): the gateway listeners, being extended for TLS this session.
#[allow(clippy::too_many_lines)]
pub fn compile(
    config: &ConfigSet,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &Options,
) -> GatewayListeners {
    let mut gateways: Vec<&Resource<model::Gateway>> = config
        .gateways
        .iter()
        // An empty selector selects every workload.
        .filter(|g| {
            g.spec
                .selector
                .iter()
                .all(|(k, v)| opts.labels.get(k) == Some(v))
        })
        .collect();
    // pilot merges Gateways in creation order (`sortConfigByCreationTime`).
    gateways.sort_by(|a, b| {
        a.meta
            .creation_timestamp
            .cmp(&b.meta.creation_timestamp)
            .then_with(|| a.name().cmp(b.name()))
            .then_with(|| a.namespace().cmp(b.namespace()))
    });
    let mut out = GatewayListeners::default();
    let mut ports: BTreeMap<u16, PortAcc> = BTreeMap::new();
    for gw in gateways {
        for (index, server) in gw.spec.servers.iter().enumerate() {
            let (number, protocol, class) = match classify(gw, index, server) {
                Ok(c) => c,
                Err(Some(p)) => {
                    out.problems.push(p);
                    continue;
                }
                Err(None) => continue,
            };
            if server.bind.is_some() {
                tracing::warn!(gateway = %gw.key(), server = index, "server `bind` is ignored: strait binds every gateway port on --gateway-address");
            }
            let sref = ServerRef {
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
            };
            let tls = if class == Class::Https {
                // pilot's `CheckDuplicates`: a TLS server repeating a host
                // of an earlier one on the port is skipped (Envoy refuses
                // two filter chains with the same match).
                if let Some(acc) = ports.get(&number)
                    && acc.class == Class::Https
                    && let Some(dup) = server.hosts.iter().find(|h| acc.tls_hosts.contains(h))
                {
                    tracing::warn!(gateway = %gw.key(), server = index, port = number, "skipping server: duplicate host {dup} on an HTTPS port");
                    continue;
                }
                let settings = server.tls.as_ref().expect("classified HTTPS");
                match gateway_tls::build(config, gw, settings) {
                    Ok(t) => Some((sni_hosts(&server.hosts), Arc::new(t))),
                    Err(e) => {
                        out.problems.push(Problem {
                            gateway: gw.key(),
                            path: format!("spec.servers[{index}].{}", e.field),
                            message: e.message,
                        });
                        continue;
                    }
                }
            } else {
                None
            };
            match ports.get_mut(&number) {
                None => {
                    ports.insert(
                        number,
                        PortAcc {
                            protocol,
                            class,
                            servers: vec![sref],
                            tls_hosts: if tls.is_some() {
                                server.hosts.clone()
                            } else {
                                Vec::new()
                            },
                            tls: tls.into_iter().collect(),
                        },
                    );
                }
                // Plain-text HTTP servers share the port's route table.
                Some(acc) if acc.class == Class::Http && class == Class::Http => {
                    acc.servers.push(sref)
                }
                // TLS servers share the port, one filter chain each.
                Some(acc) if acc.class == Class::Https && class == Class::Https => {
                    acc.servers.push(sref);
                    acc.tls_hosts.extend(server.hosts.iter().cloned());
                    acc.tls.extend(tls);
                }
                // pilot skips a server whose protocol cannot merge with the
                // port's, and a second TCP server on a port.
                Some(acc) => {
                    tracing::warn!(
                        gateway = %gw.key(),
                        server = index,
                        port = number,
                        "skipping server: port {number} already serves {} for {}",
                        acc.protocol.as_str(),
                        acc.servers[0].gateway
                    );
                }
            }
        }
    }
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
        let kind = if acc.class == Class::Http {
            PortKind::Http(http_table(
                config,
                number,
                &acc.servers,
                &bound,
                services,
                clusters,
                opts,
            ))
        } else if acc.class == Class::Https {
            PortKind::Https(
                acc.servers
                    .iter()
                    .zip(acc.tls)
                    .map(|(server, (sni, tls))| HttpsServer {
                        routes: http_table(
                            config,
                            number,
                            std::slice::from_ref(server),
                            &bound,
                            services,
                            clusters,
                            opts,
                        ),
                        server: server.clone(),
                        sni,
                        tls,
                    })
                    .collect(),
            )
        } else {
            PortKind::Tcp(tcp_route(
                config,
                number,
                &acc.servers[0],
                &bound,
                services,
                clusters,
                opts,
            ))
        };
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
    opts: &Options,
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
    opts: &Options,
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
            let destinations = l4_destinations(vs, &rule.route, port, services, clusters, opts)
                .into_iter()
                .map(|cluster| TcpDestination {
                    idle_timeout: tcp_idle_timeout(config, clusters.get(&cluster.cluster)),
                    cluster,
                })
                .collect();
            return Some(TcpRoute {
                virtual_service: vs.key(),
                rule_index: i,
                destinations,
            });
        }
    }
    None
}

/// `connectionPool.tcp.idleTimeout` of the top-level `trafficPolicy` of the
/// cluster's DestinationRule (Istio ignores port-level and subset policies
/// here), else Envoy's 1h; `0s` disables it.
fn tcp_idle_timeout(config: &ConfigSet, cluster: Option<&Arc<Cluster>>) -> Option<Duration> {
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
