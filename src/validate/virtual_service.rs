//! VirtualService validation: Istio's `ValidateVirtualService`
//! (`pkg/config/validation/validation.go`), `validateHTTPRoute`
//! (`virtualservice.go`), the CRD schema rules (durations ≥ 1ms, one member
//! per proto `oneof`) and the unreachable/ineffective-rule analysis
//! (`analyzeUnreachable{HTTP,TCP,TLS}Rules`, reported as IST0130/IST0131).

use std::collections::{BTreeMap, HashMap};

use super::{Finding, Note, common};
use crate::config::Resource;
use crate::model::names::{self, go_quote};
use crate::model::{
    Abort, CorsPolicy, Delay, Destination, HTTPDirectResponse, HTTPMatchRequest, HTTPRedirect,
    HTTPRetry, HTTPRewrite, HTTPRoute, HTTPRouteDestination, HeaderOperations, Headers,
    L4MatchAttributes, Percent, RouteDestination, StringMatch, TCPRoute, TLSMatchAttributes,
    TLSRoute, VirtualService, host,
};

/// `constants.IstioMeshGateway`.
const MESH: &str = "mesh";

/// `supportedRetryOnPolicies`: Envoy `x-envoy-retry-on` and
/// `x-envoy-retry-grpc-on` tokens.
const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// `supportedCORSMethods`.
const CORS_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// Go `net/http.StatusText` codes (a retryOn token that parses to one of
/// these is a valid retriable status code).
const GO_HTTP_STATUS_CODES: [u16; 62] = [
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

/// `outboundHostNameFormat` of the auto-generated SNI domains.
const OUTBOUND_SNI_FORMAT: &str = "outbound_.<port>_._.<hostname>";

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// `ValidateVirtualService`, plus the CRD rules and the unreachable-rule analysis.
pub fn validate(r: &Resource<VirtualService>) -> Vec<Finding> {
    let vs = &r.spec;
    let mut out = Vec::new();
    let is_delegate = vs.hosts.is_empty();

    if is_delegate {
        // A VS without hosts is a delegate.
        if !vs.gateways.is_empty() {
            out.push(Finding::error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            ));
        }
        if !vs.tls.is_empty() {
            out.push(Finding::error(
                "spec.tls",
                "delegate virtual service must have no tls route specified",
            ));
        }
        if !vs.tcp.is_empty() {
            out.push(Finding::error(
                "spec.tcp",
                "delegate virtual service must have no tcp route specified",
            ));
        }
    }

    let applies_to_gateway = !vs.gateways.is_empty() && is_gateway(vs);
    let applies_to_mesh = !applies_to_gateway;
    if !vs.gateways.is_empty() {
        gateway_names("spec.gateways", &vs.gateways, &mut out);
    }
    if !applies_to_gateway {
        jwt_claim_routes(vs, &mut out);
    }
    hosts(vs, applies_to_gateway, applies_to_mesh, &mut out);

    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        out.push(Finding::error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        ));
    }
    for (i, route) in vs.http.iter().enumerate() {
        validate_http_route(&format!("spec.http[{i}]"), route, is_delegate, &mut out);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        validate_tls_route(&format!("spec.tls[{i}]"), route, vs, &mut out);
    }
    for (i, route) in vs.tcp.iter().enumerate() {
        validate_tcp_route(&format!("spec.tcp[{i}]"), route, &mut out);
    }
    common::export_to(
        "spec.exportTo",
        &vs.export_to,
        &r.meta.namespace,
        false,
        false,
        &mut out,
    );

    unreachable_http_rules(&vs.http, &mut out);
    unreachable_l4_rules(
        "tcp",
        &vs.tcp,
        |t: &TCPRoute| &t.match_,
        tcp_match_key,
        &mut out,
    );
    unreachable_l4_rules(
        "tls",
        &vs.tls,
        |t: &TLSRoute| &t.match_,
        tls_match_key,
        &mut out,
    );
    out
}

// ---------------------------------------------------------------------------
// VirtualService level
// ---------------------------------------------------------------------------

/// `isGateway`: true unless `mesh` is listed (also true for an empty list,
/// which matters for `validateSniHost`).
fn is_gateway(vs: &VirtualService) -> bool {
    !vs.gateways.iter().any(|g| g == MESH)
}

/// `isSniHost`: some TLS match lists SNI hosts.
fn is_sni_host(vs: &VirtualService) -> bool {
    vs.tls
        .iter()
        .any(|t| t.match_.iter().any(|m| !m.sni_hosts.is_empty()))
}

/// Hosts: wildcard DNS names or IPs; `*` not on mesh-bound VSs; no two
/// hosts that overlap (`host.Name.Matches`).
fn hosts(vs: &VirtualService, to_gateway: bool, to_mesh: bool, out: &mut Vec<Finding>) {
    let sni = is_sni_host(vs);
    let mut all_valid = true;
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = format!("spec.hosts[{i}]");
        let res = if to_gateway {
            wildcard_domain_for_gateway(sni, h)
        } else {
            names::validate_wildcard_domain(h)
        };
        match res {
            Err(e) => {
                if !is_netip_addr(h) {
                    out.push(Finding::error(p, e));
                    all_valid = false;
                }
            }
            Ok(()) if to_mesh && h == "*" => {
                out.push(Finding::error(
                    p,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway; \
                     list the service hosts, or bind the VirtualService to a gateway",
                ));
                all_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_valid {
        for (i, a) in vs.hosts.iter().enumerate() {
            for (j, b) in vs.hosts.iter().enumerate().skip(i + 1) {
                if host::matches(a, b) {
                    out.push(Finding::error(
                        format!("spec.hosts[{j}]"),
                        format!("duplicate hosts in virtual service: {a} & {b}"),
                    ));
                }
            }
        }
    }
}

/// `ValidateWildcardDomainForVirtualServiceBoundToGateway`: with SNI routes,
/// the auto-generated `outbound_.<port>_._.<host>` form is accepted too.
fn wildcard_domain_for_gateway(sni: bool, domain: &str) -> Result<(), String> {
    if sni && domain.starts_with("outbound_") {
        if domain.len() > 255 {
            return Err(format!(
                "domain name {} too long (max 255)",
                go_quote(domain)
            ));
        }
        let parts: Vec<&str> = domain.split('_').collect();
        let (Some(port), Some(hostname)) = (parts.get(1), parts.get(3)) else {
            return Err(format!(
                "domain name {domain} invalid, should follow '{OUTBOUND_SNI_FORMAT}' format"
            ));
        };
        let port = port.trim_matches('.');
        let hostname = hostname.trim_matches('.');
        if !port.bytes().any(|b| b.is_ascii_digit()) {
            return Err(format!(
                "domain name {} invalid (label {} invalid). should follow {OUTBOUND_SNI_FORMAT} format",
                go_quote(domain),
                go_quote(port)
            ));
        }
        if !hostname.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "domain name {} invalid (label {} invalid). should follow {OUTBOUND_SNI_FORMAT} format",
                go_quote(domain),
                go_quote(hostname)
            ));
        }
        return Ok(());
    }
    names::validate_wildcard_domain(domain)
}

/// `netutil.IsValidIPAddress` (Go `netip.ParseAddr`: IPv6 zones accepted).
fn is_netip_addr(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((addr, zone)) => !zone.is_empty() && addr.parse::<std::net::Ipv6Addr>().is_ok(),
        None => false,
    }
}

/// `validateGatewayNames` (without Gateway-API semantics). Like Istio, the
/// loop stops after the first name without a `/` (e.g. `mesh`).
fn gateway_names(path: &str, gateways: &[String], out: &mut Vec<Finding>) {
    for (i, g) in gateways.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some((ns, name)) = g.split_once('/') else {
            if let Some((name, rest)) = g.split_once('.') {
                let ns = rest.split('.').next().unwrap_or_default();
                out.push(Finding::warning(
                    &p,
                    format!(
                        "using legacy gatewayName format {}; prefer the <namespace>/<name> format: {}",
                        go_quote(g),
                        go_quote(&format!("{ns}/{name}"))
                    ),
                ));
            }
            if let Err(e) = names::validate_fqdn(g) {
                out.push(Finding::error(&p, e));
            }
            return;
        };
        if ns.is_empty() || name.is_empty() {
            out.push(Finding::error(
                &p,
                "config namespace and gateway name cannot be empty",
            ));
        }
        if !names::is_dns1123_label(ns) {
            out.push(Finding::error(
                &p,
                format!("invalid value for namespace: {}", go_quote(ns)),
            ));
        }
        if !names::is_dns1123_label(name) {
            out.push(Finding::error(
                &p,
                format!("invalid value for gateway name: {}", go_quote(name)),
            ));
        }
    }
}

/// `jwt.ToRoutingClaim(name).Match`: `@request.auth.claims.a.b` or
/// `@request.auth.claims[a][b]` (prefix case-insensitive).
fn is_jwt_claim(name: &str) -> bool {
    const PREFIX: &str = "@request.auth.claims";
    let Some(head) = name.get(..PREFIX.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(PREFIX) {
        return false;
    }
    let rest = name.get(PREFIX.len()..).unwrap_or_default();
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// JWT-claim header keys are gateway-only (`ValidateVirtualService`).
fn jwt_claim_routes(vs: &VirtualService, out: &mut Vec<Finding>) {
    let gws = format!("[{}]", vs.gateways.join(" "));
    for (i, route) in vs.http.iter().enumerate() {
        for (j, m) in route.match_.iter().enumerate() {
            for (field, map) in [
                ("headers", &m.headers),
                ("withoutHeaders", &m.without_headers),
            ] {
                for key in map.keys().filter(|k| is_jwt_claim(k)) {
                    out.push(Finding::error(
                        format!("spec.http[{i}].match[{j}].{field}.{key}"),
                        format!(
                            "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: {gws}; \
                             bind the VirtualService to an ingress gateway (not mesh) to route on JWT claims"
                        ),
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP routes
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum RouteType {
    Independent,
    Root,
    Delegate,
}

/// `validateHTTPRoute`.
fn validate_http_route(base: &str, http: &HTTPRoute, in_delegate: bool, out: &mut Vec<Finding>) {
    let route_type = if in_delegate {
        RouteType::Delegate
    } else if http.delegate.is_some() {
        RouteType::Root
    } else {
        RouteType::Independent
    };
    route_conflicts(base, http, route_type, out);
    for (j, m) in http.match_.iter().enumerate() {
        validate_http_match(&format!("{base}.match[{j}]"), m, out);
    }
    if let Some(h) = &http.headers {
        header_operations(&format!("{base}.headers"), h, out);
    }
    if let Some(c) = &http.cors_policy {
        cors_policy(&format!("{base}.corsPolicy"), c, out);
    }
    if let Some(f) = &http.fault {
        let p = format!("{base}.fault");
        if f.abort.is_none() && f.delay.is_none() {
            out.push(Finding::error(
                &p,
                "HTTP fault injection must have an abort and/or a delay",
            ));
        }
        if let Some(a) = &f.abort {
            fault_abort(&format!("{p}.abort"), a, out);
        }
        if let Some(d) = &f.delay {
            fault_delay(&format!("{p}.delay"), d, out);
        }
    }
    mirror_settings(base, http, out);
    if let Some(m) = &http.mirror {
        validate_destination(&format!("{base}.mirror"), m, out);
    }
    if let Some(r) = &http.redirect {
        redirect(&format!("{base}.redirect"), r, &http.match_, out);
    }
    if let Some(d) = &http.direct_response {
        direct_response(&format!("{base}.directResponse"), d, out);
    }
    if let Some(r) = &http.retries {
        retries(&format!("{base}.retries"), r, out);
    }
    if let Some(rw) = &http.rewrite {
        rewrite(&format!("{base}.rewrite"), rw, out);
    }
    authority_rewrite(base, http.rewrite.as_deref(), http.headers.as_deref(), out);
    http_route_destinations(&format!("{base}.route"), &http.route, out);
    if let Some(t) = &http.timeout {
        let p = format!("{base}.timeout");
        if let Err(e) = t.validate_ms() {
            let tail = if t.nanos <= 0 {
                "; omit timeout to disable it (Istio's default is no timeout)"
            } else {
                ""
            };
            out.push(Finding::error(p, format!("{e} (got {}){tail}", t.text)));
        }
    }
}

/// `validateHTTPRouteConflict`: route / redirect / directResponse / delegate.
fn route_conflicts(base: &str, http: &HTTPRoute, route_type: RouteType, out: &mut Vec<Finding>) {
    let mut err = |m: &str| out.push(Finding::error(base, m));
    if route_type == RouteType::Root {
        let name = http.name.as_deref().unwrap_or_default();
        if http.redirect.is_some() {
            err(&format!("root HTTP route {name} must not specify redirect"));
        }
        if !http.route.is_empty() {
            err(&format!("root HTTP route {name} must not specify route"));
        }
        return;
    }
    if route_type == RouteType::Delegate && http.delegate.is_some() {
        err("delegate HTTP route cannot contain delegate");
    }
    if http.redirect.is_some() {
        if !http.route.is_empty() {
            err("HTTP route cannot contain both route and redirect");
        }
        if http.fault.is_some() {
            err("HTTP route cannot contain both fault and redirect");
        }
        if http.rewrite.is_some() {
            err("HTTP route rule cannot contain both rewrite and redirect");
        }
        if http.direct_response.is_some() {
            err("HTTP route rule cannot contain both direct_response and redirect");
        }
    } else if http.direct_response.is_some() {
        if !http.route.is_empty() {
            err("HTTP route cannot contain both route and direct_response");
        }
        if http.fault.is_some() {
            err("HTTP route cannot contain both fault and direct_response");
        }
        if http.rewrite.is_some() {
            err("HTTP route rule cannot contain both rewrite and direct_response");
        }
    } else if http.route.is_empty() {
        err("HTTP route, redirect or direct_response is required");
    }
    if http.mirror.is_some() && !http.mirrors.is_empty() {
        err("HTTP route cannot contain both mirror and mirrors");
    }
}

/// `validateHTTPRouteMatchRequest`.
fn validate_http_match(p: &str, m: &HTTPMatchRequest, out: &mut Vec<Finding>) {
    for (name, sm) in &m.headers {
        let hp = format!("{p}.headers.{name}");
        header_match_name(&hp, name, out);
        common::string_match(&hp, "headers", sm, false, out);
    }
    for (name, sm) in &m.without_headers {
        let hp = format!("{p}.withoutHeaders.{name}");
        header_match_name(&hp, name, out);
        // `*` is not RE2: it is translated to a presence match.
        if sm.regex.as_deref() != Some("*") {
            common::string_match(&hp, "withoutHeaders", sm, false, out);
        }
    }
    // Envoy allows an empty uri prefix, but not for scheme/method/authority.
    if let Some(sm) = &m.uri {
        common::string_match(&format!("{p}.uri"), "uri", sm, true, out);
    }
    for (field, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            common::string_match(&format!("{p}.{field}"), field, sm, false, out);
        }
    }
    for (name, sm) in &m.query_params {
        common::string_match(
            &format!("{p}.queryParams.{name}"),
            "queryParams",
            sm,
            false,
            out,
        );
    }
    if let Some(port) = m.port
        && port != 0
    {
        common::port(&format!("{p}.port"), Some(port), out);
    }
    for e in names::label_errors(&m.source_labels) {
        out.push(Finding::error(format!("{p}.sourceLabels"), e));
    }
    gateway_names(&format!("{p}.gateways"), &m.gateways, out);
    if let Some(ns) = &m.source_namespace
        && !ns.is_empty()
        && !names::is_dns1123_label(ns)
    {
        out.push(Finding::error(
            format!("{p}.sourceNamespace"),
            format!("sourceNamespace match {ns} is invalid"),
        ));
    }
}

/// `ValidateHTTPHeaderNameOrJwtClaimRoute`.
fn header_match_name(p: &str, name: &str, out: &mut Vec<Finding>) {
    if name.is_empty() {
        out.push(Finding::error(p, "header name cannot be empty"));
    } else if !is_jwt_claim(name)
        && let Err(e) = names::validate_header_name(name)
    {
        out.push(Finding::error(p, e));
    }
}

fn is_internal_header(k: &str) -> bool {
    k.starts_with(':') || k.eq_ignore_ascii_case("host")
}

fn is_authority_header(k: &str) -> bool {
    k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host")
}

/// `ValidateHTTPHeaderWithAuthorityOperationName`: request add/set.
fn header_name_with_authority(p: &str, name: &str, out: &mut Vec<Finding>) {
    if name.is_empty() {
        out.push(Finding::error(p, "header name cannot be empty"));
    } else if is_internal_header(name) && !is_authority_header(name) {
        out.push(Finding::error(
            p,
            format!(
                "invalid header {}: header cannot have \":\" prefix",
                go_quote(name)
            ),
        ));
    }
}

/// `ValidateHTTPHeaderOperationName`: request remove, all response operations.
fn header_operation_name(p: &str, name: &str, out: &mut Vec<Finding>) {
    if name.is_empty() {
        out.push(Finding::error(p, "header name cannot be empty"));
    } else if name.eq_ignore_ascii_case("host") {
        out.push(Finding::error(
            p,
            format!("invalid header {}: cannot set Host header", go_quote(name)),
        ));
    } else if is_internal_header(name) {
        out.push(Finding::error(
            p,
            format!(
                "invalid header {}: header cannot have \":\" prefix",
                go_quote(name)
            ),
        ));
    }
}

/// `ValidateHTTPHeaderValue`: no control characters, and Envoy's `%VAR%`
/// syntax (`validateHeaderValue`, a port of Envoy's header parser).
fn header_value(p: &str, value: &str, out: &mut Vec<Finding>) {
    let bad_char = value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'));
    if bad_char {
        out.push(Finding::error(
            p,
            format!("header value configuration {value} is invalid"),
        ));
        return;
    }
    if let Err(e) = envoy_header_value(value) {
        out.push(Finding::error(
            p,
            format!("header value configuration: {e}; write a literal % as %%"),
        ));
    }
}

/// `validateHeaderValue` (Envoy `HeaderParser` state machine).
fn envoy_header_value(v: &str) -> Result<(), String> {
    #[derive(PartialEq)]
    enum S {
        Literal,
        VarName,
        ExpectArray,
        ExpectString,
        Str,
        ExpectDelimOrEnd,
        ExpectArgsEnd,
        ExpectVarEnd,
    }
    let b = v.as_bytes();
    let mut state = S::Literal;
    let mut pos = 0;
    while pos < b.len() {
        let ch = b[pos];
        let has_next = pos + 1 < b.len();
        match state {
            S::Literal => {
                if ch == b'%' {
                    if !has_next {
                        return Err("invalid header configuration. Un-escaped %".into());
                    }
                    if b.get(pos + 1) == Some(&b'%') {
                        pos += 1;
                    } else {
                        state = S::VarName;
                    }
                }
            }
            S::VarName => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch == b'(' {
                    state = S::ExpectArray;
                }
            }
            S::ExpectArray => {
                if ch == b'[' {
                    state = S::ExpectString;
                } else if ch != b' ' {
                    state = S::Str;
                }
            }
            S::ExpectDelimOrEnd => {
                if ch == b',' {
                    state = S::ExpectString;
                } else if ch == b']' {
                    state = S::ExpectArgsEnd;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting ',', ']', or whitespace".into(),
                    );
                }
            }
            S::ExpectString => {
                if ch == b'"' {
                    state = S::Str;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting '\"'".into());
                }
            }
            S::Str => {
                if ch == b'\\' {
                    if !has_next {
                        return Err(
                            "invalid header configuration. Un-terminated backslash in JSON string"
                                .into(),
                        );
                    }
                    pos += 1;
                } else if ch == b')' {
                    state = S::ExpectVarEnd;
                } else if ch == b'"' {
                    state = S::ExpectDelimOrEnd;
                }
            }
            S::ExpectArgsEnd => {
                if ch == b')' {
                    state = S::ExpectVarEnd;
                } else if ch != b' ' {
                    return Err("invalid header configuration. Expecting ')' or whitespace after '{}', but found '{}'".into());
                }
            }
            S::ExpectVarEnd => {
                if ch == b'%' {
                    state = S::Literal;
                } else if ch != b' ' {
                    return Err(
                        "invalid header configuration. Expecting '%' or whitespace after".into(),
                    );
                }
            }
        }
        pos += 1;
    }
    if state != S::Literal {
        return Err(format!(
            "invalid header configuration. Un-terminated variable expression '{v}'"
        ));
    }
    Ok(())
}

/// Route-level header operations (`validateHTTPRoute`) and, identically,
/// destination-level ones (`validateHTTPRouteDestinations`).
fn header_operations(p: &str, h: &Headers, out: &mut Vec<Finding>) {
    if let Some(req) = &h.request {
        ops(&format!("{p}.request"), req, true, out);
    }
    if let Some(resp) = &h.response {
        ops(&format!("{p}.response"), resp, false, out);
    }
}

fn ops(p: &str, o: &HeaderOperations, request: bool, out: &mut Vec<Finding>) {
    for (field, map) in [("add", &o.add), ("set", &o.set)] {
        for (name, value) in map {
            let np = format!("{p}.{field}.{name}");
            if request {
                header_name_with_authority(&np, name, out);
            } else {
                header_operation_name(&np, name, out);
            }
            header_value(&np, value, out);
        }
    }
    for (i, name) in o.remove.iter().enumerate() {
        header_operation_name(&format!("{p}.remove[{i}]"), name, out);
    }
}

/// `validateAuthorityRewrite`: the authority may be rewritten in one place only.
fn authority_rewrite(
    base: &str,
    rewrite: Option<&HTTPRewrite>,
    headers: Option<&Headers>,
    out: &mut Vec<Finding>,
) {
    let mut current = rewrite
        .and_then(|r| r.authority.clone())
        .unwrap_or_default();
    let Some(req) = headers.and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (field, map) in [("set", &req.set), ("add", &req.add)] {
        for (k, v) in map.iter().filter(|(k, _)| is_authority_header(k)) {
            if !current.is_empty() {
                out.push(Finding::error(
                    format!("{base}.headers.request.{field}.{k}"),
                    format!(
                        "authority header cannot be set multiple times: have {}, attempting to set {}; \
                         keep only one of rewrite.authority and the host/:authority header operations",
                        go_quote(&current),
                        go_quote(v)
                    ),
                ));
                return;
            }
            current = v.clone();
        }
    }
}

/// `validateCORSPolicy`.
fn cors_policy(p: &str, c: &CorsPolicy, out: &mut Vec<Finding>) {
    for (i, origin) in c.allow_origins.iter().enumerate() {
        let op = format!("{p}.allowOrigins[{i}]");
        string_match_oneof(&op, origin, out);
        match origin.kind() {
            None | Some((_, "")) => out.push(Finding::error(
                &op,
                "'' is not a valid match type for CORS allow origins",
            )),
            Some(("regex", re)) => common::regex(&op, "corsPolicy.allowOrigins", re, out),
            Some(_) => {}
        }
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            out.push(Finding::error(
                format!("{p}.allowMethods[{i}]"),
                format!(
                    "{} is not a supported HTTP method; use one of {}",
                    go_quote(m),
                    CORS_METHODS.join(", ")
                ),
            ));
        }
    }
    for (field, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, name) in list.iter().enumerate() {
            cors_header_name(&format!("{p}.{field}[{i}]"), name, out);
        }
    }
    if let Some(age) = &c.max_age {
        let ap = format!("{p}.maxAge");
        common::duration(&ap, Some(age), out);
        if age.nanos % 1_000_000_000 > 0 {
            out.push(Finding::error(
                ap,
                "max_age duration is accurate only to seconds precision",
            ));
        }
    }
}

/// `ValidateCORSHTTPHeaderName`: an RFC 7230 token or `*`.
fn cors_header_name(p: &str, name: &str, out: &mut Vec<Finding>) {
    if name.is_empty() {
        out.push(Finding::error(p, "header name cannot be empty"));
    } else if name != "*"
        && (names::PSEUDO_HEADERS.contains(&name) || !names::is_valid_header_name(name))
    {
        out.push(Finding::error(
            p,
            format!("header name {name} is not a valid header name"),
        ));
    }
}

/// CRD oneof on `StringMatch` where `common::string_match` is not used.
fn string_match_oneof(p: &str, m: &StringMatch, out: &mut Vec<Finding>) {
    if m.set_count() > 1 {
        out.push(Finding::error(
            p,
            "only one of exact, prefix or regex may be set",
        ));
    }
}

/// `validatePercentage`: 0, or 0.0001..=100.
fn fault_percentage(p: &str, pct: Option<&Percent>, out: &mut Vec<Finding>) {
    let Some(v) = pct.map(|x| x.value.unwrap_or(0.0)) else {
        return;
    };
    if v.is_nan() || !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
        out.push(Finding::error(
            p,
            format!(
                "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                go_float(v)
            ),
        ));
    }
}

/// `validateHTTPFaultInjectionAbort`.
fn fault_abort(p: &str, a: &Abort, out: &mut Vec<Finding>) {
    fault_percentage(&format!("{p}.percentage"), a.percentage.as_ref(), out);
    let set = [
        a.http_status.is_some(),
        a.grpc_status.is_some(),
        a.http2_error.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set > 1 {
        out.push(Finding::error(
            p,
            "only one of httpStatus, grpcStatus or http2Error may be set",
        ));
    }
    if let Some(g) = &a.grpc_status
        && !crate::model::GRPC_STATUS_NAMES.contains(&g.as_str())
    {
        out.push(Finding::error(
            format!("{p}.grpcStatus"),
            format!(
                "gRPC status {} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md \
                 for a list of supported codes, for example 'NOT_FOUND'",
                go_quote(g)
            ),
        ));
    }
    if a.http2_error.is_some() {
        out.push(Finding::error(
            format!("{p}.http2Error"),
            "HTTP/2 abort fault injection not supported yet",
        ));
    }
    if let Some(s) = a.http_status {
        http_status(&format!("{p}.httpStatus"), i64::from(s), out);
    }
    if set == 0 {
        out.push(Finding::warning(
            p,
            "abort configured, but error type not set; set httpStatus or grpcStatus",
        ));
    }
}

/// `validateHTTPStatus` (accepts 600 although the message says 599).
fn http_status(p: &str, status: i64, out: &mut Vec<Finding>) {
    if !(200..=600).contains(&status) {
        out.push(Finding::error(
            p,
            format!("HTTP status {status} is not in range 200-599"),
        ));
    }
}

/// `validateHTTPFaultInjectionDelay`.
fn fault_delay(p: &str, d: &Delay, out: &mut Vec<Finding>) {
    fault_percentage(&format!("{p}.percentage"), d.percentage.as_ref(), out);
    if d.fixed_delay.is_some() && d.exponential_delay.is_some() {
        out.push(Finding::error(
            p,
            "only one of fixedDelay or exponentialDelay may be set",
        ));
    }
    if let Some(f) = &d.fixed_delay {
        common::duration(&format!("{p}.fixedDelay"), Some(f), out);
    }
    if let Some(e) = &d.exponential_delay {
        let ep = format!("{p}.exponentialDelay");
        common::duration(&ep, Some(e), out);
        out.push(Finding::error(
            ep,
            "exponentialDelay not supported yet; use fixedDelay",
        ));
    }
}

/// `mirrorPercent` (deprecated), `mirrorPercentage` and `mirrors`.
fn mirror_settings(base: &str, http: &HTTPRoute, out: &mut Vec<Finding>) {
    if let Some(v) = http.mirror_percent {
        let p = format!("{base}.mirrorPercent");
        if v > 100 {
            out.push(Finding::error(
                &p,
                format!("mirror_percent must have a max value of 100 (it has {v})"),
            ));
        }
        out.push(Finding::warning(
            p,
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        ));
    }
    if let Some(pct) = &http.mirror_percentage {
        mirror_percentage(
            &format!("{base}.mirrorPercentage"),
            "mirror_percentage",
            pct,
            out,
        );
    }
    for (i, m) in http.mirrors.iter().enumerate() {
        let p = format!("{base}.mirrors[{i}]");
        let Some(d) = &m.destination else {
            out.push(Finding::error(p, "destination is required for mirrors"));
            continue;
        };
        validate_destination(&format!("{p}.destination"), d, out);
        if let Some(pct) = &m.percentage {
            mirror_percentage(&format!("{p}.percentage"), "mirror percentage", pct, out);
        }
    }
}

fn mirror_percentage(p: &str, what: &str, pct: &Percent, out: &mut Vec<Finding>) {
    let v = pct.value.unwrap_or(0.0);
    if v > 100.0 {
        out.push(Finding::error(
            p,
            format!("{what} must have a max value of 100 (it has {v:.6})"),
        ));
    }
    if v < 0.0 {
        out.push(Finding::error(
            p,
            format!("{what} must have a min value of 0 (it has {v:.6})"),
        ));
    }
}

/// `validateHTTPRedirect` (first error only, as in Istio), plus the
/// `prefixRewrite` rules and the `port`/`derivePort` oneof.
fn redirect(p: &str, r: &HTTPRedirect, matches: &[HTTPMatchRequest], out: &mut Vec<Finding>) {
    if r.port.is_some() && r.derive_port.is_some() {
        out.push(Finding::error(
            p,
            "only one of port or derivePort may be set",
        ));
    }
    let nonempty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if nonempty(&r.prefix_rewrite) {
        if nonempty(&r.uri) {
            out.push(Finding::error(
                p,
                "redirect may only specify one of uri or prefix_rewrite",
            ));
            return;
        }
        let non_prefix = matches.iter().any(|m| {
            m.uri
                .as_ref()
                .is_some_and(|u| u.kind().map(|k| k.0) != Some("prefix"))
        });
        if non_prefix {
            out.push(Finding::error(
                format!("{p}.prefixRewrite"),
                "redirect prefix_rewrite requires all URI matches to use prefix match type",
            ));
            return;
        }
    }
    if !nonempty(&r.uri)
        && !nonempty(&r.prefix_rewrite)
        && !nonempty(&r.authority)
        && r.port.is_none()
        && r.derive_port.is_none()
        && !nonempty(&r.scheme)
    {
        out.push(Finding::error(
            p,
            "redirect must specify URI, authority, scheme, or port",
        ));
        return;
    }
    if let Some(code) = r.redirect_code
        && code != 0
        && !(300..=399).contains(&code)
    {
        out.push(Finding::error(
            format!("{p}.redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        ));
        return;
    }
    if let Some(s) = r.scheme.as_deref()
        && !s.is_empty()
        && s != "http"
        && s != "https"
    {
        out.push(Finding::error(
            format!("{p}.scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        ));
        return;
    }
    if let Some(port) = r.port
        && port > 0
    {
        common::port(&format!("{p}.port"), Some(port), out);
    }
}

/// `validateHTTPDirectResponse`, plus the `string`/`bytes` oneof.
fn direct_response(p: &str, d: &HTTPDirectResponse, out: &mut Vec<Finding>) {
    if let Some(body) = &d.body {
        let bp = format!("{p}.body");
        if body.string.is_some() && body.bytes.is_some() {
            out.push(Finding::error(
                &bp,
                "only one of string or bytes may be set",
            ));
        }
        let size = match (&body.string, &body.bytes) {
            (Some(s), _) => s.len(),
            (None, Some(b)) => base64_decoded_len(b),
            (None, None) => 0,
        };
        if size > MIB {
            out.push(Finding::error(
                bp,
                "large direct_responses may impact control plane performance, must be less than 1MB",
            ));
        } else if size > 100 * KIB {
            out.push(Finding::warning(
                bp,
                "large direct_responses may impact control plane performance",
            ));
        }
    }
    http_status(
        &format!("{p}.status"),
        i64::from(d.status.unwrap_or(0)),
        out,
    );
}

/// Length of the data a base64 text decodes to (whitespace ignored).
fn base64_decoded_len(text: &str) -> usize {
    let n = text.bytes().filter(|b| !b.is_ascii_whitespace()).count();
    let pad = text
        .bytes()
        .rev()
        .filter(|b| !b.is_ascii_whitespace())
        .take_while(|b| *b == b'=')
        .count();
    (n / 4 * 3 + (n % 4) * 3 / 4).saturating_sub(pad)
}

/// `validateHTTPRetry`.
fn retries(p: &str, r: &HTTPRetry, out: &mut Vec<Finding>) {
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        out.push(Finding::error(
            format!("{p}.attempts"),
            "attempts cannot be negative",
        ));
    }
    let retry_on = r.retry_on.as_deref().unwrap_or_default();
    if attempts == 0
        && (r.per_try_timeout.is_some()
            || !retry_on.is_empty()
            || r.retry_remote_localities.is_some())
    {
        out.push(Finding::error(
            format!("{p}.attempts"),
            "http retry policy configured when attempts are set to 0 (disabled); \
             set attempts to at least 1, or remove the other retry settings",
        ));
    }
    if let Some(t) = &r.per_try_timeout {
        common::duration(&format!("{p}.perTryTimeout"), Some(t), out);
    }
    if !retry_on.is_empty() {
        for policy in retry_on.split(',') {
            let code = policy.parse::<i64>().unwrap_or(0);
            let is_status = u16::try_from(code).is_ok_and(|c| GO_HTTP_STATUS_CODES.contains(&c));
            if !is_status && !RETRY_ON_POLICIES.contains(&policy) {
                out.push(Finding::error(
                    format!("{p}.retryOn"),
                    format!(
                        "{} is not a valid retryOn policy; use HTTP status codes or: {}",
                        go_quote(policy),
                        RETRY_ON_POLICIES.join(", ")
                    ),
                ));
            }
        }
    }
    if let Some(b) = &r.backoff {
        common::duration(&format!("{p}.backoff"), Some(b), out);
    }
}

/// `validateHTTPRewrite` (first error only, as in Istio).
fn rewrite(p: &str, r: &HTTPRewrite, out: &mut Vec<Finding>) {
    let uri = r.uri.as_deref().unwrap_or_default();
    let authority = r.authority.as_deref().unwrap_or_default();
    if !uri.is_empty() && r.uri_regex_rewrite.is_some() {
        out.push(Finding::error(
            p,
            "rewrite may only contain one of URI or UriRegexRewrite",
        ));
        return;
    }
    if uri.is_empty() && r.uri_regex_rewrite.is_none() && authority.is_empty() {
        out.push(Finding::error(
            p,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. \
             Only one of URI or UriRegexRewrite may be specified",
        ));
        return;
    }
    if let Some(rr) = &r.uri_regex_rewrite {
        let rp = format!("{p}.uriRegexRewrite");
        let m = rr.match_.as_deref().unwrap_or_default();
        let rw = rr.rewrite.as_deref().unwrap_or_default();
        if m.is_empty() || rw.is_empty() {
            out.push(Finding::error(
                rp,
                "UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match fields to be specified",
            ));
            return;
        }
        let mut errs = Vec::new();
        common::regex(
            &format!("{rp}.match"),
            "HTTPRewrite.UriRegexRewrite.Match",
            m,
            &mut errs,
        );
        for mut f in errs {
            f.message = format!("UriRegexRewrite has errors: {}", f.message);
            out.push(f);
        }
    }
}

/// `validateHTTPRouteDestinations`: destinations, per-destination header
/// operations and weights. Weights are relative (they need not sum to 100),
/// but must not be negative and not all 0 when there are several.
fn http_route_destinations(p: &str, routes: &[HTTPRouteDestination], out: &mut Vec<Finding>) {
    let mut total: i32 = 0;
    for (i, rd) in routes.iter().enumerate() {
        let rp = format!("{p}[{i}]");
        match &rd.destination {
            None => out.push(Finding::error(&rp, "destination is required")),
            Some(d) => validate_destination(&format!("{rp}.destination"), d, out),
        }
        if let Some(h) = &rd.headers {
            header_operations(&format!("{rp}.headers"), h, out);
        }
        total = weight(&rp, rd.weight, total, out);
    }
    total_weight(p, routes.len(), total, out);
}

/// `validateRouteDestinations` (TLS and TCP).
fn route_destinations(p: &str, routes: &[RouteDestination], out: &mut Vec<Finding>) {
    let mut total: i32 = 0;
    for (i, rd) in routes.iter().enumerate() {
        let rp = format!("{p}[{i}]");
        match &rd.destination {
            None => out.push(Finding::error(&rp, "destination is required")),
            Some(d) => validate_destination(&format!("{rp}.destination"), d, out),
        }
        total = weight(&rp, rd.weight, total, out);
    }
    total_weight(p, routes.len(), total, out);
}

/// `validateWeight`; returns the running total (int32, wrapping as in Go).
fn weight(rp: &str, w: Option<i32>, total: i32, out: &mut Vec<Finding>) -> i32 {
    let w = w.unwrap_or(0);
    if w < 0 {
        out.push(Finding::error(
            format!("{rp}.weight"),
            format!("weight {w} < 0"),
        ));
    }
    total.wrapping_add(w)
}

fn total_weight(p: &str, n: usize, total: i32, out: &mut Vec<Finding>) {
    if n > 1 && total == 0 {
        out.push(Finding::error(
            p,
            "total destination weight = 0; give at least one destination a positive weight \
             (weights are relative and need not sum to 100)",
        ));
    }
}

/// `validateDestination`: host (not `*`, a wildcard DNS name), subset (DNS
/// label), port (1..65535).
fn validate_destination(p: &str, d: &Destination, out: &mut Vec<Finding>) {
    let h = d.host.as_deref().unwrap_or_default();
    if h == "*" {
        out.push(Finding::error(
            format!("{p}.host"),
            "invalid destination host *; name a single service host",
        ));
    } else if let Err(e) = names::validate_wildcard_domain(h) {
        out.push(Finding::error(format!("{p}.host"), e));
    }
    if let Some(s) = d.subset.as_deref()
        && !s.is_empty()
        && !names::is_dns1123_label(s)
    {
        out.push(Finding::error(
            format!("{p}.subset"),
            format!("subset name is invalid: {s}"),
        ));
    }
    if let Some(port) = &d.port
        && let Err(e) = names::validate_port(port.number.unwrap_or(0))
    {
        out.push(Finding::error(format!("{p}.port.number"), e));
    }
}

// ---------------------------------------------------------------------------
// TLS and TCP routes
// ---------------------------------------------------------------------------

/// `validateTLSRoute`.
fn validate_tls_route(base: &str, tls: &TLSRoute, vs: &VirtualService, out: &mut Vec<Finding>) {
    if tls.match_.is_empty() {
        out.push(Finding::error(
            base,
            "TLS route must have at least one match condition",
        ));
    }
    for (j, m) in tls.match_.iter().enumerate() {
        validate_tls_match(&format!("{base}.match[{j}]"), m, vs, out);
    }
    if tls.route.is_empty() {
        out.push(Finding::error(base, "TLS route is required"));
    }
    route_destinations(&format!("{base}.route"), &tls.route, out);
}

/// `validateTLSMatch`.
fn validate_tls_match(
    p: &str,
    m: &TLSMatchAttributes,
    vs: &VirtualService,
    out: &mut Vec<Finding>,
) {
    if m.sni_hosts.is_empty() {
        out.push(Finding::error(
            p,
            "TLS match must have at least one SNI host",
        ));
    }
    for (k, sni) in m.sni_hosts.iter().enumerate() {
        sni_host(&format!("{p}.sniHosts[{k}]"), sni, vs, out);
    }
    l4_match_common(
        p,
        &m.destination_subnets,
        m.port,
        &m.source_labels,
        &m.gateways,
        out,
    );
}

/// `validateSniHost`: a (wildcard) DNS name covered by one of the VS hosts;
/// an IP is only a warning.
fn sni_host(p: &str, sni: &str, vs: &VirtualService, out: &mut Vec<Finding>) {
    let res = if is_gateway(vs) {
        wildcard_domain_for_gateway(true, sni)
    } else {
        names::validate_wildcard_domain(sni)
    };
    if let Err(e) = res {
        if is_netip_addr(sni) {
            out.push(Finding::warning(
                p,
                format!(
                    "using an IP address ({}) goes against SNI spec and most clients do not support this",
                    go_quote(sni)
                ),
            ));
        } else {
            out.push(Finding::error(p, e));
        }
        return;
    }
    if !vs.hosts.iter().any(|h| host::subset_of(sni, h)) {
        out.push(Finding::error(
            p,
            format!(
                "SNI host {} is not a compatible subset of any of the virtual service hosts: [{}]",
                go_quote(sni),
                vs.hosts.join(", ")
            ),
        ));
    }
}

/// `validateTCPRoute`.
fn validate_tcp_route(base: &str, tcp: &TCPRoute, out: &mut Vec<Finding>) {
    for (j, m) in tcp.match_.iter().enumerate() {
        validate_tcp_match(&format!("{base}.match[{j}]"), m, out);
    }
    if tcp.route.is_empty() {
        out.push(Finding::error(base, "TCP route is required"));
    }
    route_destinations(&format!("{base}.route"), &tcp.route, out);
}

/// `validateTCPMatch`.
fn validate_tcp_match(p: &str, m: &L4MatchAttributes, out: &mut Vec<Finding>) {
    l4_match_common(
        p,
        &m.destination_subnets,
        m.port,
        &m.source_labels,
        &m.gateways,
        out,
    );
}

/// The part `validateTLSMatch` and `validateTCPMatch` share.
fn l4_match_common(
    p: &str,
    subnets: &[String],
    port: Option<u32>,
    labels: &BTreeMap<String, String>,
    gateways: &[String],
    out: &mut Vec<Finding>,
) {
    for (k, s) in subnets.iter().enumerate() {
        if let Err(e) = names::validate_ip_subnet(s) {
            out.push(Finding::error(format!("{p}.destinationSubnets[{k}]"), e));
        }
    }
    if let Some(port) = port
        && port != 0
    {
        common::port(&format!("{p}.port"), Some(port), out);
    }
    for e in names::label_errors(labels) {
        out.push(Finding::error(format!("{p}.sourceLabels"), e));
    }
    gateway_names(&format!("{p}.gateways"), gateways, out);
}

// ---------------------------------------------------------------------------
// Unreachable rules and ineffective matches (IST0130 / IST0131)
// ---------------------------------------------------------------------------

fn unreachable(path: String, rule: String, reason: &str) -> Finding {
    Finding {
        severity: super::Severity::Warning,
        message: format!("virtualService rule {rule} not used ({reason})"),
        path,
        note: Note::UnreachableRule {
            rule,
            reason: reason.to_string(),
        },
    }
}

fn ineffective(path: String, rule: String, match_: String, prior: String) -> Finding {
    Finding {
        severity: super::Severity::Warning,
        message: format!(
            "virtualService rule {rule} match {match_} is not used (duplicate/overlapping match in rule {prior})"
        ),
        path,
        note: Note::IneffectiveMatch {
            rule,
            match_,
            prior,
        },
    }
}

/// `routeName` for HTTP: the quoted name, else `#<index>`.
fn http_route_name(r: &HTTPRoute, i: usize) -> String {
    match r.name.as_deref() {
        Some(n) if !n.is_empty() => go_quote(n),
        _ => format!("#{i}"),
    }
}

/// `requestName` for HTTP: the quoted match name, else `#<index>`.
fn http_match_name(m: &HTTPMatchRequest, j: usize) -> String {
    match m.name.as_deref() {
        Some(n) if !n.is_empty() => go_quote(n),
        _ => format!("#{j}"),
    }
}

/// `asJSON` for an HTTP match: everything but `name`; zero values are
/// omitted as Go's `omitempty` does.
fn http_match_key(m: &HTTPMatchRequest) -> String {
    let mut m = m.clone();
    m.name = None;
    m.port = m.port.filter(|p| *p != 0);
    m.ignore_uri_case = m.ignore_uri_case.filter(|b| *b);
    m.source_namespace = m.source_namespace.filter(|s| !s.is_empty());
    m.stat_prefix = m.stat_prefix.filter(|s| !s.is_empty());
    serde_json::to_string(&m).unwrap_or_else(|e| e.to_string())
}

fn tcp_match_key(m: &L4MatchAttributes) -> String {
    let mut m = m.clone();
    m.port = m.port.filter(|p| *p != 0);
    m.source_namespace = m.source_namespace.filter(|s| !s.is_empty());
    m.source_subnet = m.source_subnet.filter(|s| !s.is_empty());
    serde_json::to_string(&m).unwrap_or_else(|e| e.to_string())
}

fn tls_match_key(m: &TLSMatchAttributes) -> String {
    let mut m = m.clone();
    m.port = m.port.filter(|p| *p != 0);
    m.source_namespace = m.source_namespace.filter(|s| !s.is_empty());
    serde_json::to_string(&m).unwrap_or_else(|e| e.to_string())
}

/// `OverlappingMatchValidationForHTTPRoute`: a URI-prefix match reduced to
/// the fields the overlap check compares.
struct PrefixMatch {
    rule_index: usize,
    match_index: usize,
    route_str: String,
    match_str: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

/// `assignExactOrPrefix`.
fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m.and_then(StringMatch::kind) {
        Some(("exact", v)) if !v.is_empty() => format!("exact:{v}"),
        Some(("prefix", v)) if !v.is_empty() => format!("prefix:{v}"),
        _ => String::new(),
    }
}

/// `genMatchHTTPRoutes`: only matches with a non-empty URI prefix take part;
/// a missing method counts as `GET`.
fn prefix_match(r: &HTTPRoute, m: &HTTPMatchRequest, i: usize, j: usize) -> Option<PrefixMatch> {
    let prefix = match m.uri.as_ref()?.kind()? {
        ("prefix", p) if !p.is_empty() => p.to_string(),
        _ => return None,
    };
    let mut method = exact_or_prefix(m.method.as_deref());
    if method.is_empty() {
        method = "exact:GET".to_string();
    }
    let conv = |map: &BTreeMap<String, Box<StringMatch>>| {
        map.iter()
            .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
            .collect()
    };
    Some(PrefixMatch {
        rule_index: i,
        match_index: j,
        route_str: http_route_name(r, i),
        match_str: http_match_name(m, j),
        prefix,
        port: m.port.unwrap_or(0),
        method,
        authority: exact_or_prefix(m.authority.as_deref()),
        headers: conv(&m.headers),
        query_params: conv(&m.query_params),
        without_headers: conv(&m.without_headers),
    })
}

/// `coveredValidation`: the earlier match `a` covers the later match `b`.
fn covered(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    // Istio compares as "a's value starts with b's" for every field but the URI.
    let field_ok = |x: &str, y: &str| x == y || x.starts_with(y);
    let map_ok = |x: &BTreeMap<String, String>, y: &BTreeMap<String, String>| {
        x.len() == y.len()
            && x.iter()
                .all(|(k, v)| y.get(k).is_some_and(|w| field_ok(v, w)))
    };
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && field_ok(&a.method, &b.method)
        && field_ok(&a.authority, &b.authority)
        && map_ok(&a.headers, &b.headers)
        && map_ok(&a.query_params, &b.query_params)
        && map_ok(&a.without_headers, &b.without_headers)
}

/// `analyzeUnreachableHTTPRules`.
fn unreachable_http_rules(routes: &[HTTPRoute], out: &mut Vec<Finding>) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut empty_match: Option<usize> = None;
    let mut prefixes: Vec<PrefixMatch> = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let rp = format!("spec.http[{i}]");
        if r.match_.is_empty() {
            if empty_match.is_some() {
                out.push(unreachable(
                    rp,
                    http_route_name(r, i),
                    "only the last rule can have no matches",
                ));
            }
            empty_match = Some(i);
            continue;
        }
        if empty_match.is_some() {
            // Istio reports this once per match, with identical text.
            out.push(unreachable(
                rp,
                http_route_name(r, i),
                "route without matches defined before",
            ));
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in r.match_.iter().enumerate() {
            let key = http_match_key(m);
            if let Some(&dup) = seen.get(&key) {
                let prior = routes
                    .get(dup)
                    .map_or_else(|| format!("#{dup}"), |d| http_route_name(d, dup));
                out.push(ineffective(
                    format!("{rp}.match[{j}]"),
                    http_route_name(r, i),
                    http_match_name(m, j),
                    prior,
                ));
                duplicates += 1;
                continue;
            }
            seen.insert(key, i);
            if let Some(pm) = prefix_match(r, m, i, j) {
                prefixes.push(pm);
            }
        }
        if duplicates == r.match_.len() {
            out.push(unreachable(
                rp,
                http_route_name(r, i),
                "all matches used by prior rules",
            ));
        }
    }
    for (k, a) in prefixes.iter().enumerate() {
        for b in prefixes.iter().skip(k + 1) {
            if a.prefix == b.prefix || !covered(a, b) {
                continue;
            }
            out.push(ineffective(
                format!("spec.http[{}].match[{}]", b.rule_index, b.match_index),
                b.route_str.clone(),
                format!("{} of prefix {}", b.match_str, b.prefix),
                format!("{} of prefix {} on {}", a.match_str, a.prefix, a.route_str),
            ));
        }
    }
}

/// `analyzeUnreachableTCPRules` / `analyzeUnreachableTLSRules`: as for HTTP,
/// without names and without the prefix-overlap check.
fn unreachable_l4_rules<R, M>(
    field: &str,
    routes: &[R],
    matches: impl Fn(&R) -> &Vec<M>,
    key: impl Fn(&M) -> String,
    out: &mut Vec<Finding>,
) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut empty_match = false;
    for (i, r) in routes.iter().enumerate() {
        let rp = format!("spec.{field}[{i}]");
        let ms = matches(r);
        if ms.is_empty() {
            if empty_match {
                out.push(unreachable(
                    rp,
                    format!("#{i}"),
                    "only the last rule can have no matches",
                ));
            }
            empty_match = true;
            continue;
        }
        if empty_match {
            out.push(unreachable(
                rp,
                format!("#{i}"),
                "route without matches defined before",
            ));
            continue;
        }
        let mut duplicates = 0;
        for (j, m) in ms.iter().enumerate() {
            let k = key(m);
            if let Some(&dup) = seen.get(&k) {
                out.push(ineffective(
                    format!("{rp}.match[{j}]"),
                    format!("#{i}"),
                    format!("#{j}"),
                    format!("#{dup}"),
                ));
                duplicates += 1;
            } else {
                seen.insert(k, i);
            }
        }
        if duplicates == ms.len() {
            out.push(unreachable(
                rp,
                format!("#{i}"),
                "all matches used by prior rules",
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting helpers
// ---------------------------------------------------------------------------

/// Go's `%v` for a float64 (`strconv` shortest `%g`: `%e` form when the
/// exponent is < -4 or >= 6, e.g. `1e-05`, `1e+06`).
fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let sci = format!("{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests;
