//! `explain`: which VirtualService, route, subset and policy a request gets,
//! and why. Uses the proxy's own selection (`VirtualHost::select_traced`) on
//! the same compiled snapshot, so the answer is what the proxy would do.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;

use crate::compile::routes::ordered_virtual_services;
use crate::compile::services::{destination_rule_for, visible};
use crate::compile::{ProxyIdentity, Snapshot, policy};
use crate::config::ConfigSet;
use crate::model::host;
use crate::route::{Action, RequestView, Route, rewrite, split_authority};

/// The request to explain.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
}

/// `Name: value` → header.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (n, v) = s
        .split_once(':')
        .ok_or_else(|| format!("header {s:?} is not `Name: value`"))?;
    let name = HeaderName::from_bytes(n.trim().to_ascii_lowercase().as_bytes())
        .map_err(|_| format!("invalid header name {:?}", n.trim()))?;
    let value =
        HeaderValue::from_str(v.trim()).map_err(|_| format!("invalid header value in {s:?}"))?;
    Ok((name, value))
}

impl Request {
    /// From a URL (`http://reviews:9080/x?y=1`) or a `host/path` shorthand.
    pub fn parse(method: &str, url: &str, headers: HeaderMap) -> Result<Request, String> {
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let uri: http::Uri = full
            .parse()
            .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| format!("URL {url:?} has no host"))?;
        Ok(Request {
            method: method.to_ascii_uppercase(),
            scheme: uri.scheme_str().unwrap_or("http").to_string(),
            authority,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers,
        })
    }
}

#[derive(Debug, Serialize)]
pub struct RouteRef {
    /// 0-based position in the VirtualService's `http` list.
    pub index: Option<usize>,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct RouteTrace {
    pub index: Option<usize>,
    pub name: String,
    pub matched: bool,
    /// Why it did not match (the first failing condition).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct OtherVirtualService {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: u16,
    pub weight: u32,
    pub cluster: String,
    pub destination_rule: Option<String>,
    /// The merged DestinationRule policy for this destination (empty: defaults).
    pub policy: serde_json::Value,
    /// The effective settings, defaults spelled out.
    pub effective: BTreeMap<String, String>,
    pub endpoints: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub request: String,
    pub virtual_host: Option<String>,
    pub virtual_service: Option<String>,
    pub other_virtual_services: Vec<OtherVirtualService>,
    pub routes: Vec<RouteTrace>,
    pub route: Option<RouteRef>,
    pub action: Option<String>,
    /// The path (and query) sent upstream after the route's rewrite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten_path: Option<String>,
    /// A redirect's `Location`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<String>,
    pub destinations: Vec<Destination>,
    pub timeout: String,
    pub retries: String,
    /// What else the chosen route does to the request: fault injection,
    /// mirrors, header operations, CORS (issue #14: explain must show
    /// everything that decides a request).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// On a gateway (`--gateway`): the port and the server chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayChoice>,
    /// A TLS connection routed by SNI, not terminated (a gateway
    /// PASSTHROUGH port, or TLS on the sidecar listener).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsChoice>,
    /// A TCP connection to the sidecar listener, routed by its
    /// destination address (`tcp://address:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpChoice>,
    pub problems: Vec<String>,
}

/// The sidecar TCP listener and filter chain a destination picks.
#[derive(Debug, Serialize)]
pub struct TcpChoice {
    /// The connection's destination `address:port`.
    pub destination: String,
    /// The listener: `address:port`, or `0.0.0.0:port` for the port's
    /// wildcard.
    pub listener: String,
    /// The service whose listener built the chain.
    pub service: String,
    /// `namespace/name#tcp[i]`, or the service's cluster.
    pub route: String,
    /// The chain's destination ranges (empty: any).
    pub destination_subnets: Vec<String>,
}

/// The TLS route a ClientHello's SNI picks (Envoy's filter chain match).
#[derive(Debug, Serialize)]
pub struct TlsChoice {
    pub sni: Option<String>,
    /// `namespace/name#tls[i]`, or the service's cluster for its own route.
    pub route: String,
    /// The match of the `tls` rule whose `sniHosts` took the SNI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_index: Option<usize>,
    /// The route's `server_names` (empty: any SNI, and none).
    pub server_names: Vec<String>,
}

/// Where a request to a gateway lands before routing.
#[derive(Debug, Serialize)]
pub struct GatewayChoice {
    /// The Gateway server port.
    pub port: u16,
    /// `HTTP`, `HTTPS`, `TCP`, ...
    pub protocol: String,
    /// The HTTPS server chosen by SNI: `namespace/name spec.servers[i]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<crate::compile::gateway_tls::CertificateInfo>,
}

/// Explain `req` for a proxy described by `opts`. An `https://` URL is a
/// TLS connection to the sidecar listener: routed by its SNI (the URL's
/// host), see [`explain_sidecar_tls`].
pub fn explain(config: &ConfigSet, snap: &Snapshot, opts: &ProxyIdentity, req: &Request) -> Report {
    if req.scheme == "https" {
        let (host, _) = split_authority(&req.authority);
        return explain_sidecar_tls(config, snap, opts, req, Some(host));
    }
    if req.scheme == "tcp" {
        return explain_sidecar_tcp(config, snap, opts, req);
    }
    let r = empty_report(req);
    explain_in(config, snap, opts, req, &snap.routes, r, false)
}

/// Explain a TLS connection to the sidecar listener with SNI `sni`: the
/// TLS route it picks (`Snapshot::tls`, as `proxy::passthrough` picks it)
/// and its destinations.
pub fn explain_sidecar_tls(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    req: &Request,
    sni: Option<&str>,
) -> Report {
    let mut r = empty_report(req);
    let picked = crate::compile::sni::select(snap.tls.iter().map(|t| (t.sni.as_slice(), t)), sni);
    match picked {
        Some(route) => tls_route(config, snap, opts, sni, route, &mut r),
        None => r.problems.push(format!(
            "no TLS route takes SNI {}: the connection is closed (NR filter_chain_not_found); TLS is routed to services with a TLS or HTTPS port by their host, or by a VirtualService `tls` rule's sniHosts",
            sni.map_or("(none)".to_string(), |s| format!("{s:?}"))
        )),
    }
    r
}

/// Explain a TCP connection to the sidecar listener for `tcp://host:port`:
/// the destination is the host when it is an IP, else the first address
/// of the service of that host (`0.0.0.0` for one without); the TCP
/// listener and chain it picks (`Snapshot::tcp`, as `proxy::tcp` picks
/// them) and its destinations.
pub fn explain_sidecar_tcp(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    req: &Request,
) -> Report {
    let mut r = empty_report(req);
    let (host, port) = split_authority(&req.authority);
    let explicit = req
        .authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    if !explicit {
        r.problems
            .push("a tcp:// URL needs the destination port (tcp://db.internal:5432)".into());
        return r;
    }
    let Some(ip) = destination_ip(snap, opts, host) else {
        r.problems.push(format!(
            "{host} is neither an IP address nor a known service's host"
        ));
        return r;
    };
    let to = std::net::SocketAddr::new(ip, port);
    let Some((listener, chain)) = snap.tcp.select(to) else {
        r.problems.push(format!(
            "{to} is no TCP service's address and port (a TCP, MONGO, MYSQL or REDIS port of a ClusterIP or ServiceEntry address): the connection is sniffed as HTTP or TLS"
        ));
        return r;
    };
    r.virtual_service = chain.virtual_service.clone();
    r.route = Some(RouteRef {
        index: chain.virtual_service.as_ref().map(|_| chain.rule_index),
        name: match &chain.virtual_service {
            Some(_) => format!("tcp[{}]", chain.rule_index),
            None => "(the service's own TCP route)".to_string(),
        },
    });
    r.action = Some("TCP proxy (routed by destination address, not sniffed)".into());
    r.tcp = Some(TcpChoice {
        destination: to.to_string(),
        listener: match listener.address {
            Some(a) => std::net::SocketAddr::new(a, listener.port).to_string(),
            None => format!("0.0.0.0:{}", listener.port),
        },
        service: chain.service.clone(),
        route: chain.name(),
        destination_subnets: chain.prefixes.iter().map(ToString::to_string).collect(),
    });
    stream_destinations(config, snap, opts, &chain.destinations, &mut r);
    r
}

/// The destination IP of `tcp://host`: an IP as it is, else the first
/// address of the service of `host`.
fn destination_ip(snap: &Snapshot, opts: &ProxyIdentity, host: &str) -> Option<std::net::IpAddr> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse() {
        return Some(ip);
    }
    let fqdn = host::resolve_short_name(host, &opts.namespace, &opts.domain);
    let svc = snap
        .services
        .iter()
        .find(|s| s.fqdn == fqdn || s.fqdn == host)?;
    Some(
        svc.vips
            .iter()
            .find_map(|v| crate::compile::sidecar_tcp::Cidr::parse(v))
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.addr),
    )
}

/// The report for a TLS stream passed through on `route`.
fn tls_route(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    sni: Option<&str>,
    route: &crate::compile::sni::TlsRoute,
    r: &mut Report,
) {
    r.virtual_service = route.virtual_service.clone();
    r.route = Some(RouteRef {
        index: route.virtual_service.as_ref().map(|_| route.rule_index),
        name: match &route.virtual_service {
            Some(_) => format!("tls[{}].match[{}]", route.rule_index, route.match_index),
            None => "(the service's own TLS route)".to_string(),
        },
    });
    r.action = Some("TLS passthrough (routed by SNI, not terminated)".into());
    r.tls = Some(TlsChoice {
        sni: sni.map(str::to_string),
        route: route.name(),
        match_index: route.virtual_service.as_ref().map(|_| route.match_index),
        server_names: route.sni.clone(),
    });
    stream_destinations(config, snap, opts, &route.destinations, r);
}

/// Timeout, retries and destinations of a proxied stream (TLS by SNI, TCP).
fn stream_destinations(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    destinations: &[crate::compile::gateway::TcpDestination],
    r: &mut Report,
) {
    r.timeout = match destinations.first().map(|d| d.idle_timeout) {
        Some(Some(t)) => format!(
            "idle timeout {}s (connectionPool.tcp.idleTimeout; Istio's default 1h)",
            t.as_secs()
        ),
        Some(None) => "no idle timeout (connectionPool.tcp.idleTimeout 0s)".into(),
        None => "-".into(),
    };
    r.retries = "none (a stream is not retried; a failed connect is UF)".into();
    if destinations.is_empty() {
        r.problems.push(
            "the route's destinations name no known service: the connection is closed (NC)".into(),
        );
    }
    describe_destinations(
        config,
        snap,
        opts,
        destinations.iter().map(|d| &d.cluster),
        r,
    );
}

/// Explain `req` arriving on gateway server port `port` (default: the
/// URL's port, else 443 for https and 80 for http) of a gateway workload
/// (`opts.gateway`); an HTTPS port's server is picked by `sni` (default:
/// the URL's host for https) as the proxy picks it.
pub fn explain_gateway(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    req: &Request,
    port: Option<u16>,
    sni: Option<&str>,
) -> Report {
    use crate::compile::gateway::{Chain, PortKind, select_server};
    let mut r = empty_report(req);
    let (host, url_port) = split_authority(&req.authority);
    let has_port = req.authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && (!h.contains(':') || h.ends_with(']'))
    });
    let port = port
        .or(has_port.then_some(url_port))
        .unwrap_or(if req.scheme == "https" { 443 } else { 80 });
    let Some(gp) = snap.gateway.ports.get(&port) else {
        let ports: Vec<String> = snap.gateway.ports.keys().map(u16::to_string).collect();
        r.problems.push(format!(
            "no Gateway selecting labels {:?} has a server on port {port} (it serves: {}); the connection is refused",
            opts.labels,
            if ports.is_empty() { "nothing".to_string() } else { ports.join(", ") }
        ));
        return r;
    };
    let mut choice = GatewayChoice {
        port,
        protocol: gp.protocol.as_str().to_string(),
        server: None,
        sni: None,
        tls_mode: None,
        certificate: None,
    };
    let table = match &gp.kind {
        PortKind::Http(t) => t,
        PortKind::Https(servers) => {
            let sni = sni
                .map(str::to_string)
                .or_else(|| (req.scheme == "https").then(|| host.to_string()));
            choice.sni = sni.clone();
            let Some(s) = select_server(servers, sni.as_deref()) else {
                r.problems.push(format!(
                    "no HTTPS server on port {port} matches SNI {}: the connection is closed during the handshake (no filter chain matches)",
                    sni.as_deref().map_or("(none)".to_string(), |s| format!("{s:?}"))
                ));
                r.gateway = Some(choice);
                return r;
            };
            terminating(&mut choice, s);
            if let Some(t) = &s.tcp {
                r.gateway = Some(choice);
                terminated_tcp(config, snap, opts, t, &mut r);
                return r;
            }
            &s.routes
        }
        PortKind::Passthrough(p) => {
            let sni = sni
                .map(str::to_string)
                .or_else(|| (req.scheme == "https").then(|| host.to_string()));
            choice.sni = sni.clone();
            match p.select(sni.as_deref()) {
                None => {
                    r.problems.push(format!(
                        "no filter chain on port {port} takes SNI {} (no `tls` route's sniHosts, no HTTPS server's hosts): the connection is closed (NR filter_chain_not_found)",
                        sni.as_deref().map_or("(none)".to_string(), |s| format!("{s:?}"))
                    ));
                    r.gateway = Some(choice);
                    return r;
                }
                Some(Chain::Terminate(s)) => {
                    terminating(&mut choice, s);
                    if let Some(t) = &s.tcp {
                        r.gateway = Some(choice);
                        terminated_tcp(config, snap, opts, t, &mut r);
                        return r;
                    }
                    &s.routes
                }
                Some(Chain::Route(route)) => {
                    choice.tls_mode = Some("PASSTHROUGH".into());
                    r.gateway = Some(choice);
                    tls_route(config, snap, opts, sni.as_deref(), route, &mut r);
                    return r;
                }
            }
        }
        _ => {
            r.problems.push(format!(
                "port {port} is a {} server: connections are proxied by its `tcp` route, not routed per request",
                gp.protocol.as_str()
            ));
            r.gateway = Some(choice);
            return r;
        }
    };
    r.gateway = Some(choice);
    explain_in(config, snap, opts, req, table, r, true)
}

/// A `TLS` server terminating TLS: the decrypted stream's `tcp` route.
fn terminated_tcp(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    t: &crate::compile::gateway::TcpRoute,
    r: &mut Report,
) {
    r.virtual_service = Some(t.virtual_service.clone());
    r.route = Some(RouteRef {
        index: Some(t.rule_index),
        name: format!("tcp[{}]", t.rule_index),
    });
    r.action = Some("TCP proxy of the decrypted stream (TLS terminated)".into());
    stream_destinations(config, snap, opts, &t.destinations, r);
}

/// The HTTPS server a connection's SNI picked: its name, mode and
/// certificate.
fn terminating(choice: &mut GatewayChoice, s: &crate::compile::gateway::HttpsServer) {
    choice.server = Some(format!(
        "{} spec.servers[{}]",
        s.server.gateway, s.server.index
    ));
    choice.tls_mode = Some(crate::compile::gateway_tls::mode_name(s.tls.mode).to_string());
    choice.certificate = Some(s.tls.certificate.clone());
}

fn empty_report(req: &Request) -> Report {
    let request = if req.scheme == "tcp" {
        format!("tcp://{}", req.authority)
    } else {
        format!(
            "{} {}://{}{}{}",
            req.method,
            req.scheme,
            req.authority,
            req.path,
            req.query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default()
        )
    };
    Report {
        request,
        virtual_host: None,
        virtual_service: None,
        other_virtual_services: Vec::new(),
        routes: Vec::new(),
        route: None,
        action: None,
        rewritten_path: None,
        redirect: None,
        destinations: Vec::new(),
        timeout: String::new(),
        retries: String::new(),
        policies: Vec::new(),
        gateway: None,
        tls: None,
        tcp: None,
        problems: Vec::new(),
    }
}

fn explain_in(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    req: &Request,
    table: &crate::route::RouteTable,
    mut r: Report,
    gateway: bool,
) -> Report {
    let Some(vhost) = table.vhost(&req.authority) else {
        if gateway {
            r.problems.push(format!(
                "no VirtualService bound to this gateway server names host {:?}: requests get 404 NR (bind one with `gateways: [namespace/name]` and a host in the server's hosts)",
                split_authority(&req.authority).0
            ));
            return r;
        }
        let (h, port) = split_authority(&req.authority);
        let known: Vec<String> = snap
            .services
            .iter()
            .filter(|s| s.fqdn == h || s.name == h || s.fqdn.starts_with(&format!("{h}.")))
            .flat_map(|s| s.ports.iter().map(|p| p.number.to_string()))
            .collect();
        r.problems.push(if known.is_empty() {
            format!("no service is known as {h:?} to a proxy in namespace {:?}: requests get 404 NR (declare it with a ServiceEntry, or check the Host header)", opts.namespace)
        } else {
            format!(
                "{h} does not listen on port {port} (it has {}): requests get 404 NR; put the port in the Host header",
                known.join(", ")
            )
        });
        return r;
    };
    r.virtual_host = Some(vhost.name.clone());
    r.virtual_service = vhost.virtual_service.clone();
    let fqdn = vhost
        .name
        .rsplit_once(':')
        .map_or(vhost.name.as_str(), |(h, _)| h);
    r.other_virtual_services = others(config, opts, fqdn, vhost.virtual_service.as_deref());

    let headers = crate::header_list::HeaderList::from(req.headers.clone());
    let view = RequestView {
        method: &req.method,
        scheme: &req.scheme,
        authority: &req.authority,
        path: &req.path,
        query: req.query.as_deref(),
        headers: &headers,
    };
    let mut traces = Vec::new();
    let chosen = vhost.select_traced(&view, |route, res| {
        traces.push(RouteTrace {
            index: route.rule_index,
            name: route.name.to_string(),
            matched: res.is_ok(),
            reason: res.err().map(|m| {
                let (field, wanted) = route.matcher.describe_miss(m);
                format!("{field} wanted {wanted}")
            }),
        });
    });
    r.routes = traces;
    let Some(route) = chosen else {
        r.problems
            .push("no route matches this request: it gets 404 NR (add a rule without `match` at the end as a catch-all)".into());
        return r;
    };
    r.route = Some(RouteRef {
        index: route.rule_index,
        name: route.name.to_string(),
    });
    describe_route(config, snap, opts, req, route, &mut r);
    r
}

/// Other VirtualServices naming this host, and why they do not apply.
fn others(
    config: &ConfigSet,
    opts: &ProxyIdentity,
    fqdn: &str,
    winner: Option<&str>,
) -> Vec<OtherVirtualService> {
    let names_host = |vs: &crate::config::Resource<crate::model::VirtualService>| {
        vs.spec.hosts.iter().any(|h| {
            let h = host::resolve_short_name(h, vs.namespace(), &opts.domain);
            h == fqdn || (host::is_wildcard(&h) && host::subset_of(fqdn, &h))
        })
    };
    let ordered: Vec<String> = ordered_virtual_services(config, opts)
        .into_iter()
        .filter(|vs| names_host(vs))
        .map(|vs| vs.key())
        .collect();
    let mut out = Vec::new();
    for vs in config.virtual_services.iter().filter(|vs| names_host(vs)) {
        let key = vs.key();
        if Some(key.as_str()) == winner {
            continue;
        }
        let reason = if !(vs.spec.gateways.is_empty()
            || vs.spec.gateways.iter().any(|g| g == "mesh"))
        {
            "bound only to gateways (its `gateways` does not include mesh)".to_string()
        } else if !visible(&vs.spec.export_to, vs.namespace(), &opts.namespace) {
            format!("not exported to namespace {:?}", opts.namespace)
        } else if let Some(w) = winner {
            let pos = |k: &str| ordered.iter().position(|x| x == k);
            format!(
                "{w} comes first in Istio's order (namespace-private, then exported by name, then public; then creation time, name, namespace: position {} vs {}); sidecars do not merge VirtualServices — merge them into one",
                pos(w).map_or("-".into(), |p| p.to_string()),
                pos(&key).map_or("-".into(), |p| p.to_string())
            )
        } else {
            "does not apply".to_string()
        };
        out.push(OtherVirtualService { name: key, reason });
    }
    out
}

/// A fraction in millionths as a percentage (`100%`, `0.1%`).
fn percent(millionths: u32) -> String {
    format!("{}%", f64::from(millionths) / 10_000.0)
}

/// Fault injection, mirrors, header operations and CORS of `route`, as the
/// proxy applies them (`proxy::handler`: CORS, then fault, then the action).
fn describe_policies(route: &Route, r: &mut Report) {
    if let Some(cors) = &route.cors {
        r.policies.push(format!(
            "CORS: {} allowed origin pattern(s){}; preflight requests are answered by the proxy",
            cors.allow_origins.len(),
            if cors.allow_credentials {
                ", credentials allowed"
            } else {
                ""
            }
        ));
    }
    if let Some(fault) = &route.fault {
        if let Some((delay, fraction)) = fault.delay {
            r.policies.push(format!(
                "Fault delay: {}ms before forwarding, for {} of requests (flag DI)",
                delay.as_millis(),
                percent(fraction)
            ));
        }
        if let Some((kind, fraction)) = fault.abort {
            let answer = match kind {
                crate::route::AbortKind::Http(status) => format!("HTTP {}", status.as_u16()),
                crate::route::AbortKind::Grpc(code) => format!("gRPC status {code}"),
            };
            r.policies.push(format!(
                "Fault abort: {answer} without forwarding, for {} of requests (flag FI)",
                percent(fraction)
            ));
            if fraction >= 1_000_000 {
                r.problems.push(format!(
                    "fault injection aborts every request on this route: the proxy answers {answer} (FI) and nothing reaches the destinations below"
                ));
            } else if fraction > 0 {
                r.problems.push(format!(
                    "fault injection aborts {} of requests on this route with {answer} (FI)",
                    percent(fraction)
                ));
            }
        }
    }
    for m in &route.mirrors {
        r.policies.push(format!(
            "Mirror: a copy of {} of requests to {} (responses ignored)",
            percent(m.fraction),
            m.name
        ));
    }
    let ops = |what: &str, ops: &crate::route::HeaderOps, out: &mut Vec<String>| {
        let names = |l: &[(http::HeaderName, http::HeaderValue)]| {
            l.iter()
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !ops.set.is_empty() {
            out.push(format!("{what} headers set: {}", names(&ops.set)));
        }
        if !ops.add.is_empty() {
            out.push(format!("{what} headers added: {}", names(&ops.add)));
        }
        if !ops.remove.is_empty() {
            let removed: Vec<&str> = ops.remove.iter().map(|n| n.as_str()).collect();
            out.push(format!("{what} headers removed: {}", removed.join(", ")));
        }
    };
    ops("Request", &route.request_headers, &mut r.policies);
    ops("Response", &route.response_headers, &mut r.policies);
}

fn describe_route(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    req: &Request,
    route: &Route,
    r: &mut Report,
) {
    describe_policies(route, r);
    r.timeout = match route.timeout {
        Some(t) => format!("{}ms (covers all tries)", t.as_millis()),
        None => "none (Istio's default: no route timeout)".into(),
    };
    let vs_rule = r
        .virtual_service
        .as_deref()
        .and_then(|k| config.virtual_services.iter().find(|v| v.key() == k))
        .and_then(|vs| route.rule_index.and_then(|i| vs.spec.http.get(i)));
    let explicit = vs_rule.is_some_and(|rule| rule.retries.is_some());
    r.retries = match &route.retry {
        None => "disabled (attempts: 0)".into(),
        Some(p) => format!(
            "{}{} retries on {}{}{}",
            if explicit { "" } else { "Istio's default: " },
            p.num_retries,
            p.retry_on_text,
            if p.retriable_status_codes.is_empty() {
                String::new()
            } else {
                format!(" (status codes {:?})", p.retriable_status_codes)
            },
            p.per_try_timeout.map_or_else(
                || ", no per-try timeout".to_string(),
                |t| format!(", per-try timeout {}ms", t.as_millis())
            )
        ),
    };
    let clusters = match &route.action {
        Action::Forward(c) => {
            r.action = Some("route".into());
            r.rewritten_path = rewrite::rewritten_path(route, &req.path, req.query.as_deref());
            c
        }
        Action::Redirect(rd) => {
            r.action = Some(format!("redirect ({})", rd.status.as_u16()));
            r.redirect = Some(rewrite::redirect_location(
                rd,
                route,
                Some(&req.scheme),
                &req.authority,
                &req.path,
                req.query.as_deref(),
            ));
            return;
        }
        Action::Direct { status, .. } => {
            r.action = Some(format!("direct response ({})", status.as_u16()));
            return;
        }
    };
    describe_destinations(config, snap, opts, clusters.iter(), r);
}

/// Each weighted destination: its cluster, DestinationRule policy with
/// Istio's defaults spelled out, endpoints, and what would fail (NC, UH).
fn describe_destinations<'a>(
    config: &ConfigSet,
    snap: &Snapshot,
    opts: &ProxyIdentity,
    clusters: impl Iterator<Item = &'a crate::route::WeightedCluster>,
    r: &mut Report,
) {
    for wc in clusters {
        let key = &wc.cluster;
        let subset = (!key.subset.is_empty()).then(|| key.subset.clone());
        let svc = snap.services.iter().find(|s| s.fqdn == key.host);
        let dr_owned = svc.and_then(|s| destination_rule_for(config, s, opts));
        let dr = dr_owned.as_ref();
        let pol = dr.and_then(|d| policy::effective(&d.spec, key.port, subset.as_deref()));
        let cluster = snap.clusters.get(key);
        let endpoints: Vec<String> = cluster
            .map(|c| {
                c.endpoints
                    .iter()
                    .map(|e| e.authority.to_string())
                    .collect()
            })
            .unwrap_or_default();
        match (svc, cluster, &subset, dr) {
            (None, _, _, _) => r.problems.push(format!(
                "{} is not a known service: {} does not exist, requests get 503 NC (declare the host with a ServiceEntry)",
                key.host, wc.name
            )),
            (Some(_), None, Some(s), None) => r.problems.push(format!(
                "subset {s:?} of {}: no DestinationRule applies to this host, so no subset exists and requests get 503 NC; add a DestinationRule for {} that declares subset {s}",
                key.host, key.host
            )),
            (Some(_), None, Some(s), Some(d)) => {
                let declared: Vec<&str> = d.spec.subsets.iter().filter_map(|x| x.name.as_deref()).collect();
                r.problems.push(format!(
                    "subset {s:?} is not declared in DestinationRule {} (it declares {}): requests get 503 NC; declare the subset or route to a declared one",
                    d.key(),
                    if declared.is_empty() { "none".into() } else { declared.join(", ") }
                ));
            }
            (Some(_), None, None, _) => r.problems.push(format!(
                "port {} is not a port of {}: {} does not exist, requests get 503 NC",
                key.port, key.host, wc.name
            )),
            (Some(_), Some(c), _, _) if c.endpoints.is_empty() => r.problems.push(match (&subset, dr) {
                (Some(s), Some(d)) => {
                    let labels = d
                        .spec
                        .subsets
                        .iter()
                        .find(|x| x.name.as_deref() == Some(s))
                        .map(|x| x.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
                        .unwrap_or_default();
                    format!("subset {s:?} selects no endpoint (labels {labels}): requests get 503 UH; label an endpoint to match or fix the subset's labels")
                }
                _ => format!("{} has no endpoints: requests get 503 UH", key.host),
            }),
            _ => {}
        }
        r.destinations.push(Destination {
            host: key.host.clone(),
            subset,
            port: key.port,
            weight: wc.weight,
            cluster: wc.name.to_string(),
            destination_rule: dr.map(|d| d.key()),
            policy: pol
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok())
                .unwrap_or(serde_json::json!({})),
            effective: spelled_out(pol.as_ref()),
            endpoints,
        });
    }
}

/// The policy with Istio's defaults written out.
fn spelled_out(p: Option<&crate::model::TrafficPolicy>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let lb = p.and_then(|p| p.load_balancer.as_ref());
    m.insert(
        "loadBalancer".into(),
        match lb {
            None => "LEAST_REQUEST (Istio's default)".into(),
            Some(l) => json(l),
        },
    );
    m.insert(
        "connectionPool".into(),
        p.and_then(|p| p.connection_pool.as_ref()).map_or_else(
            || "no limits (Istio's default: 2^32-1); connectTimeout 10s".into(),
            json,
        ),
    );
    m.insert(
        "outlierDetection".into(),
        p.and_then(|p| p.outlier_detection.as_ref()).map_or_else(
            || "off (Istio's default without an outlierDetection block)".into(),
            json,
        ),
    );
    m.insert(
        "tls".into(),
        p.and_then(|p| p.tls.as_ref())
            .map_or_else(|| "plaintext (no tls block)".into(), json),
    );
    m
}

/// Compact JSON text of a policy block.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The gateway port, SNI, server and certificate lines.
fn render_gateway(s: &mut String, g: &GatewayChoice) {
    let _ = writeln!(s, "Gateway port:    {} ({})", g.port, g.protocol);
    if let Some(sni) = &g.sni {
        let _ = writeln!(s, "SNI:             {sni}");
    }
    if let Some(server) = &g.server {
        let _ = writeln!(
            s,
            "Server:          {server} (tls.mode {})",
            g.tls_mode.as_deref().unwrap_or("?")
        );
    }
    if let Some(c) = &g.certificate {
        let _ = writeln!(
            s,
            "Certificate:     {} (subject {}; DNS {}; expires {})",
            c.source,
            c.subject,
            c.dns_names.join(", "),
            c.not_after
        );
    }
}

/// The destination, listener and chain lines of a TCP connection.
fn render_tcp(s: &mut String, t: &TcpChoice, vs: Option<&str>) {
    let _ = writeln!(s, "Destination:     {}", t.destination);
    let _ = writeln!(s, "TCP listener:    {} (service {})", t.listener, t.service);
    let _ = writeln!(
        s,
        "TCP route:       {} (destination subnets: {})",
        t.route,
        if t.destination_subnets.is_empty() {
            "any".to_string()
        } else {
            t.destination_subnets.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "VirtualService:  {}",
        vs.unwrap_or("none (the service's own route: the stream to its endpoints)")
    );
}

/// The SNI, TLS route and VirtualService lines of a passed-through stream.
fn render_tls(s: &mut String, r: &Report, t: &TlsChoice) {
    if r.gateway.as_ref().is_none_or(|g| g.sni.is_none()) {
        let _ = writeln!(
            s,
            "SNI:             {}",
            t.sni.as_deref().unwrap_or("(none)")
        );
    }
    let _ = writeln!(
        s,
        "TLS route:       {} (server names: {})",
        t.route,
        if t.server_names.is_empty() {
            "any".to_string()
        } else {
            t.server_names.join(", ")
        }
    );
    let _ = writeln!(
        s,
        "VirtualService:  {}",
        r.virtual_service
            .as_deref()
            .unwrap_or("none (the service's own route: the stream to its endpoints)")
    );
}

/// The report as text for a terminal.
pub fn render_text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Request:         {}", r.request);
    if let Some(g) = &r.gateway {
        render_gateway(&mut s, g);
    }
    if let Some(t) = &r.tcp {
        render_tcp(&mut s, t, r.virtual_service.as_deref());
    } else if let Some(t) = &r.tls {
        render_tls(&mut s, r, t);
    } else if r.virtual_host.is_none()
        && let Some(vs) = &r.virtual_service
    {
        // A stream routed without a virtual host (a TLS server's `tcp`
        // route).
        let _ = writeln!(s, "VirtualService:  {vs}");
    } else {
        let _ = writeln!(
            s,
            "Virtual host:    {}",
            r.virtual_host.as_deref().unwrap_or("none")
        );
    }
    if r.virtual_host.is_some() {
        let _ = writeln!(
            s,
            "VirtualService:  {}",
            r.virtual_service
                .as_deref()
                .unwrap_or("none (the service's default route: everything to all endpoints)")
        );
        for o in &r.other_virtual_services {
            let _ = writeln!(s, "  not used: {} — {}", o.name, o.reason);
        }
    }
    if !r.routes.is_empty() {
        let _ = writeln!(s, "Routes (first match wins):");
        for t in &r.routes {
            let idx = t.index.map_or("-".into(), |i| i.to_string());
            let name = if t.name.is_empty() {
                "(unnamed)"
            } else {
                &t.name
            };
            match &t.reason {
                None => {
                    let _ = writeln!(s, "  [{idx}] {name:<16} MATCH");
                }
                Some(why) => {
                    let _ = writeln!(s, "  [{idx}] {name:<16} no match: {why}");
                }
            }
        }
    }
    if let Some(rt) = &r.route {
        let idx = rt.index.map_or("-".into(), |i| i.to_string());
        let _ = writeln!(
            s,
            "Chosen route:    [{idx}] {} -> {}",
            rt.name,
            r.action.as_deref().unwrap_or("-")
        );
        if let Some(p) = &r.rewritten_path {
            let _ = writeln!(s, "Rewritten path:  {p}");
        }
        if let Some(l) = &r.redirect {
            let _ = writeln!(s, "Redirect to:     {l}");
        }
        let _ = writeln!(s, "Timeout:         {}", r.timeout);
        let _ = writeln!(s, "Retries:         {}", r.retries);
        for p in &r.policies {
            let _ = writeln!(s, "{p}");
        }
    }
    if !r.destinations.is_empty() {
        let _ = writeln!(s, "Destinations:");
        for d in &r.destinations {
            let _ = writeln!(s, "  weight {:>3}  {}", d.weight, d.cluster);
            let _ = writeln!(
                s,
                "              DestinationRule: {}",
                d.destination_rule.as_deref().unwrap_or("none")
            );
            for (k, v) in &d.effective {
                let _ = writeln!(s, "              {k}: {v}");
            }
            let _ = writeln!(
                s,
                "              endpoints: {}",
                if d.endpoints.is_empty() {
                    "none".into()
                } else {
                    d.endpoints.join(", ")
                }
            );
        }
    }
    for p in &r.problems {
        let _ = writeln!(s, "Problem: {p}");
    }
    s
}

#[cfg(test)]
mod tests;
