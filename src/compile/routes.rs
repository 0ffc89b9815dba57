//! VirtualServices → virtual hosts and routes, as pilot builds a sidecar's
//! outbound route configuration (`httproute.go`, `route/route.go`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use super::services::visible;
use super::{ProxyIdentity, ServiceInfo};
use crate::config::{ConfigSet, Resource};
use crate::model::{
    self, HTTPMatchRequest, HTTPRoute, HeaderOperations, Protocol, StringMatch, VirtualService,
    host, re2, selector_matches,
};
use crate::route::{
    AbortKind, Action, ClusterKey, Cors, Fault, HeaderOps, Mirror, Redirect, RetryPolicy, Rewrite,
    Route, RouteMatch, RouteTable, StrMatch, VirtualHost, WeightedCluster,
    matcher::{HeaderKey, HeaderMatch},
};

/// Mesh-bound VirtualServices visible to the proxy, in the order Istio
/// considers them: private to the proxy's namespace, then exported to it by
/// name, then public; within a group by creation time, name, namespace.
pub fn ordered_virtual_services<'a>(
    config: &'a ConfigSet,
    opts: &ProxyIdentity,
) -> Vec<&'a Resource<VirtualService>> {
    ordered_bound(config, opts, |vs| {
        vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh")
    })
}

/// VirtualServices with hosts that `bound` accepts and that are exported to
/// the proxy's namespace, in Istio's order (see
/// [`ordered_virtual_services`]); gateways use the same order
/// (`PushContext.VirtualServicesForGateway`).
pub(super) fn ordered_bound<'a>(
    config: &'a ConfigSet,
    opts: &ProxyIdentity,
    bound: impl Fn(&Resource<VirtualService>) -> bool,
) -> Vec<&'a Resource<VirtualService>> {
    let mut v: Vec<(u8, &Resource<VirtualService>)> = config
        .virtual_services
        .iter()
        .filter(|vs| !vs.spec.hosts.is_empty())
        .filter(|vs| bound(vs))
        .filter(|vs| visible(&vs.spec.export_to, vs.namespace(), &opts.namespace))
        .map(|vs| {
            let e = &vs.spec.export_to;
            let group = if e.iter().any(|x| x == "*") || e.is_empty() {
                if vs.namespace() == opts.namespace && e.is_empty() {
                    0
                } else {
                    2
                }
            } else if e.iter().any(|x| x == ".") && vs.namespace() == opts.namespace {
                0
            } else {
                1
            };
            (group, vs)
        })
        .collect();
    v.sort_by(|(ga, a), (gb, b)| {
        ga.cmp(gb)
            .then_with(|| a.meta.creation_timestamp.cmp(&b.meta.creation_timestamp))
            .then_with(|| a.name().cmp(b.name()))
            .then_with(|| a.namespace().cmp(b.namespace()))
    });
    v.into_iter().map(|(_, vs)| vs).collect()
}

/// The routing table: one vhost per HTTP service port.
pub fn route_table(
    config: &ConfigSet,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> RouteTable {
    let vss = ordered_virtual_services(config, opts);
    // Host → first VirtualService in Istio's order, built once so that the
    // lookup per service does not scan every VirtualService.
    let mut exact: HashMap<String, usize> = HashMap::new();
    let mut wildcards: Vec<(usize, String)> = Vec::new();
    for (i, vs) in vss.iter().enumerate() {
        for h in &vs.spec.hosts {
            let h = host::resolve_short_name(h, vs.namespace(), &opts.domain);
            if host::is_wildcard(&h) {
                wildcards.push((i, h));
            } else {
                exact.entry(h).or_insert(i);
            }
        }
    }
    let mut table = RouteTable::default();
    for svc in services {
        let by_wildcard = wildcards
            .iter()
            .filter(|(_, h)| host::subset_of(&svc.fqdn, h))
            .map(|(i, _)| *i)
            .min();
        let first = match (exact.get(&svc.fqdn).copied(), by_wildcard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let vs = first.map(|i| vss[i]);
        for port in svc
            .ports
            .iter()
            .filter(|p| p.protocol.is_http() || p.protocol == Protocol::Unsupported)
        {
            let routes = match vs {
                Some(vs) => build_routes(
                    config,
                    vs,
                    port.number,
                    Some(svc),
                    services,
                    clusters,
                    opts,
                    &|m: &HTTPMatchRequest| applies(m, port.number, opts),
                ),
                None => vec![default_route(svc, port.number, clusters)],
            };
            let idx = table.add_vhost(VirtualHost {
                name: format!("{}:{}", svc.fqdn, port.number),
                virtual_service: vs.map(|vs| vs.key()),
                routes,
            });
            for d in domains(svc, opts) {
                table.add_domain(&d, port.number, idx);
            }
        }
    }
    table
}

/// The names a sidecar accepts for a service (`generateVirtualHostDomains`):
/// the FQDN and, for Kubernetes-style names, `name.ns.svc`, `name.ns`, and
/// `name` from the same namespace.
/// ExternalName aliases get the same forms; a headless Kubernetes Service
/// also `*.` each (per-pod names); then the Service's VIPs.
fn domains(svc: &ServiceInfo, opts: &ProxyIdentity) -> Vec<String> {
    let mut out = Vec::new();
    let suffix = format!(".svc.{}", opts.domain);
    for h in std::iter::once(&svc.fqdn).chain(&svc.aliases) {
        out.push(h.clone());
        if let Some(base) = h.strip_suffix(&suffix)
            && let Some((name, ns)) = base.split_once('.')
            && !ns.contains('.')
        {
            out.push(format!("{name}.{ns}.svc"));
            out.push(format!("{name}.{ns}"));
            if ns == opts.namespace {
                out.push(name.to_string());
            }
        }
    }
    if svc.headless {
        let wild: Vec<String> = out.iter().map(|d| format!("*.{d}")).collect();
        out.extend(wild);
    }
    // A CIDR address names no host a request could carry.
    out.extend(svc.vips.iter().filter(|v| !v.contains('/')).cloned());
    out
}

/// The route a service without a VirtualService gets: everything to the
/// subset-less cluster, default retries, no timeout. Istio names it `default`.
fn default_route(svc: &ServiceInfo, port: u16, clusters: &super::ClusterMap) -> Route {
    let key = ClusterKey {
        port,
        subset: String::new(),
        host: svc.fqdn.clone(),
    };
    let hashed = uses_consistent_hash(clusters, [&key]);
    Route {
        name: "default".into(),
        rule_index: None,
        matcher: RouteMatch::default(),
        action: Action::Forward(vec![WeightedCluster {
            name: key.to_string().into(),
            cluster: key,
            weight: 100,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            authority: None,
            picked: Default::default(),
        }]),
        timeout: None,
        retry: RetryPolicy::from_istio(None, hashed).map(Arc::new),
        fault: None,
        mirrors: Vec::new(),
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
        rewrite: None,
        cors: None,
    }
}

/// Whether the route to `keys` gets a consistent-hash policy: every
/// destination cluster's DestinationRule has `consistentHash` with a hash
/// key. Istio then leaves out the default `previous_hosts` retry
/// predicate (§2.5). Requiring all destinations of a weighted route is our
/// reading.
fn uses_consistent_hash<'k>(
    clusters: &super::ClusterMap,
    keys: impl IntoIterator<Item = &'k ClusterKey>,
) -> bool {
    let mut any = false;
    for k in keys {
        let hashed = clusters.get(k).is_some_and(|c| c.policy.hash_key.is_some());
        if !hashed {
            return false;
        }
        any = true;
    }
    any
}

/// The HTTP rules of `vs` for listener `port`, with delegates inlined;
/// `applies` is the config-time selector of a match (sidecar or gateway).
/// Routes after a catch-all are not generated. `svc` is the service the
/// routes are for (none on a gateway), for the default destination port.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_routes(
    config: &ConfigSet,
    vs: &Resource<VirtualService>,
    port: u16,
    svc: Option<&ServiceInfo>,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
    applies: &dyn Fn(&HTTPMatchRequest) -> bool,
) -> Vec<Route> {
    let mut out = Vec::new();
    let ctx = RouteCtx {
        ns: vs.namespace(),
        port,
        svc,
        services,
        clusters,
        opts,
    };
    'rules: for (i, rule) in vs.spec.http.iter().enumerate() {
        let expanded: Vec<(HTTPRoute, Vec<HTTPMatchRequest>)> = match &rule.delegate {
            Some(d) => delegate_rules(config, vs, rule, d),
            None => vec![(rule.clone(), rule.match_.clone())],
        };
        for (rule, matches) in expanded {
            let applicable: Vec<&HTTPMatchRequest> =
                matches.iter().filter(|m| applies(m)).collect();
            if !matches.is_empty() && applicable.is_empty() {
                continue;
            }
            let matchers: Vec<(Option<&HTTPMatchRequest>, RouteMatch)> = if applicable.is_empty() {
                vec![(None, RouteMatch::default())]
            } else {
                applicable
                    .iter()
                    .map(|m| (Some(*m), compile_match(m)))
                    .collect()
            };
            let mut catch_all = false;
            for (m, matcher) in matchers {
                catch_all |= is_catch_all(&matcher);
                let name = match (rule.name.as_deref(), m.and_then(|m| m.name.as_deref())) {
                    (Some(r), Some(n)) => format!("{r}.{n}"),
                    (Some(r), None) => r.to_string(),
                    (None, Some(n)) => n.to_string(),
                    (None, None) => String::new(),
                };
                out.push(ctx.route(&rule, i, name, matcher));
            }
            if catch_all {
                break 'rules;
            }
        }
    }
    // Kept for the snapshot's life, one list per virtual host.
    out.shrink_to_fit();
    out
}

/// Config-time selectors: port, sourceLabels, sourceNamespace, gateways.
fn applies(m: &HTTPMatchRequest, port: u16, opts: &ProxyIdentity) -> bool {
    m.port.is_none_or(|p| p == u32::from(port))
        && selector_matches(&m.source_labels, &opts.labels)
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns == opts.namespace)
        && (m.gateways.is_empty() || m.gateways.iter().any(|g| g == "mesh"))
}

pub(super) fn is_catch_all(m: &RouteMatch) -> bool {
    let uri_all = match &m.uri {
        None => true,
        Some(StrMatch::Prefix(p)) => p.is_empty() || p == "/",
        Some(StrMatch::Regex(r)) => r.as_str() == "^(?:.*)$",
        _ => false,
    };
    uri_all
        && m.scheme.is_none()
        && m.method.is_none()
        && m.authority.is_none()
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.query_params.is_empty()
}

/// A delegate's rules merged under the root rule (one level only): matches
/// combined pairwise, unset route fields inherited from the root.
fn delegate_rules(
    config: &ConfigSet,
    root: &Resource<VirtualService>,
    rule: &HTTPRoute,
    d: &model::Delegate,
) -> Vec<(HTTPRoute, Vec<HTTPMatchRequest>)> {
    let ns = d.namespace.as_deref().unwrap_or(root.namespace());
    let Some(name) = d.name.as_deref() else {
        return Vec::new();
    };
    let Some(delegate) = config
        .virtual_services
        .iter()
        .find(|v| v.name() == name && v.namespace() == ns && v.spec.hosts.is_empty())
    else {
        tracing::warn!(root = %root.key(), delegate = %format!("{ns}/{name}"), "delegate VirtualService not found; rule skipped");
        return Vec::new();
    };
    if !visible(
        &delegate.spec.export_to,
        delegate.namespace(),
        root.namespace(),
    ) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for dr in &delegate.spec.http {
        let mut merged = dr.clone();
        merged.delegate = None;
        macro_rules! inherit {
            ($($f:ident),*) => { $( if merged.$f.is_none() { merged.$f = rule.$f.clone(); } )* };
        }
        inherit!(
            rewrite,
            direct_response,
            timeout,
            retries,
            fault,
            mirror,
            mirror_percentage,
            cors_policy,
            headers
        );
        if merged.mirrors.is_empty() {
            merged.mirrors = rule.mirrors.clone();
        }
        merged.name = match (&rule.name, &dr.name) {
            (Some(r), Some(n)) => Some(format!("{r}-{n}")),
            (a, b) => b.clone().or_else(|| a.clone()),
        };
        let matches = merge_matches(&rule.match_, &dr.match_);
        if matches.is_empty() && !(rule.match_.is_empty() && dr.match_.is_empty()) {
            continue;
        }
        out.push((merged, matches));
    }
    out
}

fn merge_matches(root: &[HTTPMatchRequest], del: &[HTTPMatchRequest]) -> Vec<HTTPMatchRequest> {
    if root.is_empty() {
        return del.to_vec();
    }
    if del.is_empty() {
        return root.to_vec();
    }
    let mut out = Vec::new();
    for r in root {
        for d in del {
            let mut m = d.clone();
            if let (
                Some(StringMatch {
                    prefix: Some(rp), ..
                }),
                Some(du),
            ) = (&r.uri, &d.uri)
            {
                let dv = du.exact.as_deref().or(du.prefix.as_deref()).unwrap_or("");
                if du.regex.is_none() && !dv.starts_with(rp.as_str()) {
                    continue;
                }
            }
            m.uri = m.uri.or_else(|| r.uri.clone());
            m.scheme = m.scheme.or_else(|| r.scheme.clone());
            m.method = m.method.or_else(|| r.method.clone());
            m.authority = m.authority.or_else(|| r.authority.clone());
            m.port = m.port.or(r.port);
            m.ignore_uri_case = m.ignore_uri_case.or(r.ignore_uri_case);
            m.source_namespace = m.source_namespace.or_else(|| r.source_namespace.clone());
            for (k, v) in &r.headers {
                m.headers.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &r.without_headers {
                m.without_headers
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
            for (k, v) in &r.query_params {
                m.query_params.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &r.source_labels {
                m.source_labels
                    .entry(k.clone())
                    .or_insert_with(|| v.clone());
            }
            if m.gateways.is_empty() {
                m.gateways = r.gateways.clone();
            }
            out.push(m);
        }
    }
    out
}

/// Compile a `StringMatch` (`{}` and `regex: "*"` mean presence for headers
/// and query parameters).
fn str_match(m: &StringMatch, presence_allowed: bool) -> Option<StrMatch> {
    if let Some(e) = &m.exact {
        return Some(StrMatch::Exact(e.clone()));
    }
    if let Some(p) = &m.prefix {
        return Some(StrMatch::Prefix(p.clone()));
    }
    if let Some(r) = &m.regex {
        if presence_allowed && r == "*" {
            return Some(StrMatch::Present);
        }
        return match re2::compile_full_match(r) {
            Ok(re) => Some(StrMatch::Regex(re)),
            // Validation reports bad regexes; a route must never match by accident.
            Err(_) => Some(StrMatch::Regex(regex::Regex::new("[^\\s\\S]").ok()?)),
        };
    }
    presence_allowed.then_some(StrMatch::Present)
}

fn compile_match(m: &HTTPMatchRequest) -> RouteMatch {
    let headers = |map: &std::collections::BTreeMap<String, Box<StringMatch>>| {
        map.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "uri" | "scheme" | "method" | "authority"))
            .filter_map(|(k, v)| {
                Some(HeaderMatch {
                    name: header_key(k)?,
                    matcher: str_match(v, true)?,
                })
            })
            .collect::<Vec<_>>()
            .into_boxed_slice()
            .into_vec()
    };
    RouteMatch {
        uri: m.uri.as_ref().and_then(|u| str_match(u, false)),
        ignore_uri_case: m.ignore_uri_case.unwrap_or(false),
        scheme: m.scheme.as_ref().and_then(|u| str_match(u, false)),
        method: m.method.as_ref().and_then(|u| str_match(u, false)),
        authority: m.authority.as_ref().and_then(|u| str_match(u, false)),
        headers: headers(&m.headers),
        without_headers: headers(&m.without_headers),
        query_params: m
            .query_params
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), str_match(v, true)?)))
            .collect(),
    }
}

/// Header names as HTTP/2 carries them (lowercase).
fn header_name(k: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()
}

/// A match key: a header, or one of the request pseudo-headers Envoy
/// matches like headers. Unknown pseudo-headers are rejected by validation.
fn header_key(k: &str) -> Option<HeaderKey> {
    const PSEUDO: [&str; 5] = [":method", ":scheme", ":authority", ":path", ":status"];
    let lk = k.to_ascii_lowercase();
    if let Some(p) = PSEUDO.iter().find(|p| **p == lk) {
        return Some(HeaderKey::Pseudo(p));
    }
    header_name(k).map(HeaderKey::Header)
}

/// The weighted clusters of a `tcp` (or `tls`) rule of `vs` on listener
/// `port`, as Istio's `buildOutboundNetworkFilters` builds the tcp_proxy: a
/// single destination takes everything; with several, weights are relative
/// and a zero weight gets nothing. The cluster port is resolved as for HTTP.
pub(super) fn l4_destinations(
    vs: &Resource<VirtualService>,
    routes: &[model::RouteDestination],
    port: u16,
    services: &[Arc<ServiceInfo>],
    clusters: &super::ClusterMap,
    opts: &ProxyIdentity,
) -> Vec<WeightedCluster> {
    let ctx = RouteCtx {
        ns: vs.namespace(),
        port,
        svc: None,
        services,
        clusters,
        opts,
    };
    let several = routes.len() > 1;
    routes
        .iter()
        .filter_map(|rd| {
            let key = ctx.cluster_key(rd.destination.as_ref()?)?;
            let weight = if several {
                u32::try_from(rd.weight.unwrap_or(0)).unwrap_or(0)
            } else {
                100
            };
            Some(WeightedCluster {
                name: key.to_string().into(),
                cluster: key,
                weight,
                request_headers: HeaderOps::default(),
                response_headers: HeaderOps::default(),
                authority: None,
                picked: Default::default(),
            })
        })
        .filter(|w| w.weight > 0)
        .collect()
}

struct RouteCtx<'a> {
    ns: &'a str,
    port: u16,
    svc: Option<&'a ServiceInfo>,
    services: &'a [Arc<ServiceInfo>],
    clusters: &'a super::ClusterMap,
    opts: &'a ProxyIdentity,
}

impl RouteCtx<'_> {
    fn route(&self, rule: &HTTPRoute, index: usize, name: String, matcher: RouteMatch) -> Route {
        let action = if let Some(r) = &rule.redirect {
            Action::Redirect(redirect(r))
        } else if let Some(d) = &rule.direct_response {
            let body = d
                .body
                .as_ref()
                .and_then(|b| match (&b.string, &b.bytes) {
                    (Some(s), _) => Some(Bytes::from(s.clone())),
                    (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .ok()
                        .map(Bytes::from),
                    _ => None,
                })
                .unwrap_or_default();
            Action::Direct {
                status: d
                    .status
                    .and_then(|s| u16::try_from(s).ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK),
                body,
            }
        } else {
            Action::Forward(self.destinations(rule))
        };
        let hashed = match &action {
            Action::Forward(d) => uses_consistent_hash(self.clusters, d.iter().map(|w| &w.cluster)),
            _ => false,
        };
        let (req_ops, resp_ops, header_authority) = rule
            .headers
            .as_ref()
            .map(|h| {
                let (rq, auth) = header_ops(h.request.as_ref());
                let (rs, _) = header_ops(h.response.as_ref());
                (rq, rs, auth)
            })
            .unwrap_or_default();
        let rewrite = rule
            .rewrite
            .as_ref()
            .map(|rw| Rewrite {
                uri: rw.uri.clone(),
                uri_regex: rw.uri_regex_rewrite.as_ref().and_then(|r| {
                    let re = re2::translate(r.match_.as_deref()?).ok()?;
                    let re = regex::Regex::new(&re).ok()?;
                    Some((re, envoy_substitution(r.rewrite.as_deref().unwrap_or(""))))
                }),
                authority: rw
                    .authority
                    .as_deref()
                    .and_then(|a| HeaderValue::from_str(a).ok()),
            })
            .or_else(|| {
                header_authority.map(|a| Rewrite {
                    uri: None,
                    uri_regex: None,
                    authority: Some(a),
                })
            });
        Route {
            name: name.into(),
            rule_index: Some(index),
            matcher,
            action,
            timeout: rule
                .timeout
                .as_ref()
                .map(|t| t.as_std())
                .filter(|t| !t.is_zero()),
            retry: match rule.retries.as_deref() {
                None => default_retry(hashed),
                r => RetryPolicy::from_istio(r, hashed).map(Arc::new),
            },
            fault: rule.fault.as_deref().and_then(fault),
            mirrors: self.mirrors(rule),
            request_headers: req_ops,
            response_headers: resp_ops,
            rewrite,
            cors: rule.cors_policy.as_ref().map(|c| Arc::new(cors(c))),
        }
    }

    /// The cluster a destination names (short host in the VS namespace;
    /// port from the destination, the service's only port, or the listener).
    fn cluster_key(&self, d: &model::Destination) -> Option<ClusterKey> {
        let h = host::resolve_short_name(d.host.as_deref()?, self.ns, &self.opts.domain);
        let port = d
            .port
            .as_ref()
            .and_then(|p| p.number)
            .and_then(|n| u16::try_from(n).ok())
            .or_else(|| {
                let target = if let Some(svc) = self.svc.filter(|s| s.fqdn == h) {
                    Some(svc)
                } else {
                    self.services.iter().find(|s| s.fqdn == h).map(|s| &**s)
                };
                target.and_then(|s| (s.ports.len() == 1).then(|| s.ports[0].number))
            })
            .unwrap_or(self.port);
        Some(ClusterKey {
            port,
            subset: d.subset.clone().unwrap_or_default(),
            host: h,
        })
    }

    /// The cluster's name, shared with the cluster when it exists.
    fn cluster_name(&self, key: &ClusterKey) -> Arc<str> {
        match self.clusters.get(key) {
            Some(c) => c.name.clone(),
            None => key.to_string().into(),
        }
    }

    fn destinations(&self, rule: &HTTPRoute) -> Vec<WeightedCluster> {
        let several = rule.route.len() > 1;
        rule.route
            .iter()
            .filter_map(|rd| {
                let key = self.cluster_key(rd.destination.as_ref()?)?;
                let weight = if several {
                    u32::try_from(rd.weight.unwrap_or(0)).unwrap_or(0)
                } else {
                    100
                };
                let (rq, auth) = header_ops(rd.headers.as_ref().and_then(|h| h.request.as_ref()));
                let (rs, _) = header_ops(rd.headers.as_ref().and_then(|h| h.response.as_ref()));
                Some(WeightedCluster {
                    name: self.cluster_name(&key),
                    cluster: key,
                    weight,
                    request_headers: rq,
                    response_headers: rs,
                    authority: auth,
                    picked: Default::default(),
                })
            })
            // Destinations with weight 0 get nothing when there are several.
            .filter(|w| w.weight > 0)
            .collect::<Vec<_>>()
            // A filtered collect starts at four entries: most routes have one.
            .into_boxed_slice()
            .into_vec()
    }

    fn mirrors(&self, rule: &HTTPRoute) -> Vec<Mirror> {
        let mut out = Vec::new();
        let mut add = |d: &model::Destination, pct: Option<f64>| {
            if let Some(key) = self.cluster_key(d) {
                let fraction = millionths(pct.unwrap_or(100.0));
                if fraction > 0 {
                    out.push(Mirror {
                        name: self.cluster_name(&key),
                        cluster: key,
                        fraction,
                    });
                }
            }
        };
        if let Some(m) = &rule.mirror {
            // Absent mirrorPercentage means 100%; the deprecated integer applies otherwise.
            let pct = rule
                .mirror_percentage
                .as_ref()
                .and_then(|p| p.value)
                .or(rule.mirror_percent.map(f64::from));
            add(m, pct);
        }
        for m in &rule.mirrors {
            if let Some(d) = &m.destination {
                add(d, m.percentage.as_ref().and_then(|p| p.value));
            }
        }
        out
    }
}

/// Istio's default retry policy (no `retries` block), one per process
/// instead of one per route: most routes have it.
fn default_retry(consistent_hash: bool) -> Option<Arc<RetryPolicy>> {
    static DEFAULTS: std::sync::LazyLock<[Option<Arc<RetryPolicy>>; 2]> =
        std::sync::LazyLock::new(|| {
            [false, true].map(|h| RetryPolicy::from_istio(None, h).map(Arc::new))
        });
    DEFAULTS[usize::from(consistent_hash)].clone()
}

/// Percent (0–100) → millionths, as Envoy's FractionalPercent per million.
fn millionths(pct: f64) -> u32 {
    (pct.clamp(0.0, 100.0) * 10_000.0).round() as u32
}

/// `\1` capture references (RE2/Envoy) → `${1}` (Rust regex).
fn envoy_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

/// Header operations; `set` of `host`/`:authority` becomes an authority
/// rewrite, other `:` headers are dropped (as Istio does).
fn header_ops(ops: Option<&HeaderOperations>) -> (HeaderOps, Option<HeaderValue>) {
    let mut out = HeaderOps::default();
    let mut authority = None;
    let Some(ops) = ops else {
        return (out, authority);
    };
    for (k, v) in &ops.set {
        let lk = k.to_ascii_lowercase();
        if lk == "host" || lk == ":authority" {
            authority = HeaderValue::from_str(v).ok();
            continue;
        }
        if let (Some(n), Ok(v)) = (header_name(k), HeaderValue::from_str(v)) {
            out.set.push((n, v));
        }
    }
    for (k, v) in &ops.add {
        if let (Some(n), Ok(v)) = (header_name(k), HeaderValue::from_str(v)) {
            out.add.push((n, v));
        }
    }
    for k in &ops.remove {
        if let Some(n) = header_name(k) {
            out.remove.push(n);
        }
    }
    (out, authority)
}

fn redirect(r: &model::HTTPRedirect) -> Redirect {
    Redirect {
        uri: r.uri.clone(),
        prefix_rewrite: r.prefix_rewrite.clone(),
        authority: r.authority.clone(),
        port: r.port.and_then(|p| u16::try_from(p).ok()),
        derive_port_from_request: matches!(
            r.derive_port,
            Some(model::RedirectPortSelection::FromRequestPort)
        ),
        scheme: r.scheme.clone(),
        status: r
            .redirect_code
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::MOVED_PERMANENTLY),
    }
}

/// Fault injection; an unset percentage means the fault never fires (the
/// delay falls back to the deprecated integer `percent`, default 0).
fn fault(f: &model::HTTPFaultInjection) -> Option<Fault> {
    let delay = f.delay.as_ref().and_then(|d| {
        let dur = d.fixed_delay.as_ref()?.as_std();
        let pct = d
            .percentage
            .as_ref()
            .and_then(|p| p.value)
            .or(d.percent.map(f64::from))
            .unwrap_or(0.0);
        Some((dur, millionths(pct)))
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let pct = a.percentage.as_ref().and_then(|p| p.value).unwrap_or(0.0);
        let kind = if let Some(s) = a.http_status {
            AbortKind::Http(StatusCode::from_u16(u16::try_from(s).ok()?).ok()?)
        } else {
            AbortKind::Grpc(model::grpc_code(a.grpc_status.as_deref()?)?)
        };
        Some((kind, millionths(pct)))
    });
    (delay.is_some() || abort.is_some()).then_some(Fault { delay, abort })
}

fn cors(c: &model::CorsPolicy) -> Cors {
    let join = |v: &[String]| {
        (!v.is_empty())
            .then(|| HeaderValue::from_str(&v.join(",")).ok())
            .flatten()
    };
    let mut origins: Vec<StrMatch> = c
        .allow_origins
        .iter()
        .filter_map(|m| str_match(m, false))
        .collect();
    if origins.is_empty() {
        origins = c
            .allow_origin
            .iter()
            .map(|o| StrMatch::Exact(o.clone()))
            .collect();
    }
    Cors {
        allow_origins: origins,
        allow_methods: join(&c.allow_methods),
        allow_headers: join(&c.allow_headers),
        expose_headers: join(&c.expose_headers),
        max_age: c
            .max_age
            .as_ref()
            .map(|d| Duration::from_nanos(d.nanos.max(0) as u64).as_secs())
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok()),
        allow_credentials: c.allow_credentials.unwrap_or(false),
        forward_unmatched_preflights: !matches!(
            c.unmatched_preflights,
            Some(model::UnmatchedPreflights::Ignore)
        ),
    }
}
