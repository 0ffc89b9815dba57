//! Host names as Istio treats them: short-name expansion, wildcard matching and
//! the analyzer's host-to-resource-name mapping.
//!
//! Sources: `pkg/config/host/name.go` (`Name.Matches`, `Name.SubsetOf`,
//! `IsWildCarded`), `pkg/config/model.go` (`ResolveShortnameToFQDN`) and
//! `pkg/config/analysis/analyzers/util/{hosts,config}.go`
//! (`ConvertHostToFQDN`, `GetResourceNameFromHost`).

use std::net::{IpAddr, Ipv6Addr};

/// The Kubernetes cluster domain the analyzers hard-code
/// (`util.DefaultKubernetesDomain`).
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// Pilot's `ResolveShortnameToFQDN`. A host without a `.` becomes
/// `host.<namespace>.svc.<domain>`, where the namespace is the one of the
/// *config resource* (VS, DR, ...), not of the service.
///
/// Istio exempts only the empty string, the literal `*` and IP addresses
/// (`netutil.IsValidIPAddress`, i.e. Go `netip.ParseAddr`, so IPv6 zones are
/// accepted). Any other wildcard without a dot, e.g. `*foo`, *is* expanded,
/// exactly as pilot does. An empty namespace or domain drops that part.
pub fn resolve_short_name(host: &str, namespace: &str, domain: &str) -> String {
    if host.is_empty() || host == "*" || is_netip_addr(host) || host.contains('.') {
        return host.to_string();
    }
    let mut out = host.to_string();
    if !namespace.is_empty() {
        out.push('.');
        out.push_str(namespace);
    }
    if !domain.is_empty() {
        out.push_str(".svc.");
        out.push_str(domain);
    }
    out
}

/// The analyzers' `util.ConvertHostToFQDN(namespace, host)`: a host with no
/// `.` that does not start with `*` becomes `host.<ns>.svc.cluster.local`.
/// Unlike pilot it does **not** skip IP addresses (an IPv6 literal such as
/// `::1` has no dot and is expanded) and always uses `cluster.local`.
pub fn to_fqdn(host: &str, namespace: &str) -> String {
    if !host.starts_with('*') && !host.contains('.') {
        format!("{host}.{namespace}.svc.{DEFAULT_DOMAIN}")
    } else {
        host.to_string()
    }
}

/// `host.Name.IsWildCarded`: the first byte is `*`.
pub fn is_wildcard(h: &str) -> bool {
    h.starts_with('*')
}

/// `host.Name.Matches`: true when the two (possibly wildcarded) names overlap,
/// in either direction. `*` matches everything; `*.foo.com` matches
/// `a.foo.com` but not `foo.com`; two wildcards match when one's suffix
/// (after `*`) ends with the other's. Plain suffix test, so `*foo.com` also
/// matches `barfoo.com`. Otherwise exact, case-sensitive string equality.
pub fn matches(a: &str, b: &str) -> bool {
    match (is_wildcard(a), is_wildcard(b)) {
        (true, true) => {
            if a.len() < b.len() {
                b[1..].ends_with(&a[1..])
            } else {
                a[1..].ends_with(&b[1..])
            }
        }
        (true, false) => b.ends_with(&a[1..]),
        (false, true) => a.ends_with(&b[1..]),
        (false, false) => a == b,
    }
}

/// `host.Name.SubsetOf`: `a` is covered by `b` (one direction of `matches`).
/// A wildcard is never a subset of a concrete name.
pub fn subset_of(a: &str, b: &str) -> bool {
    match (is_wildcard(a), is_wildcard(b)) {
        (true, true) => a.len() >= b.len() && a[1..].ends_with(&b[1..]),
        (true, false) => false,
        (false, true) => a.ends_with(&b[1..]),
        (false, false) => a == b,
    }
}

/// Analyzer `util.GetResourceNameFromHost(defaultNs, host)`, returned as
/// `(name, namespace)`. The analyzer's `fqdnPattern` is
/// `^(.+)\.(.+)\.svc\.cluster\.local$`, so `x.y.svc.cluster.local` gives
/// `(x, y)`; with more dots the name takes the greedy part
/// (`a.b.c.svc.cluster.local` → (`a.b`, `c`)). Anything else, short names
/// included, is `(host, default_ns)`.
pub fn resource_name_from_host(default_ns: &str, host: &str) -> (String, String) {
    const SUFFIX: &str = ".svc.cluster.local";
    if let Some(stem) = host.strip_suffix(SUFFIX) {
        // Greedy `(.+)\.(.+)`: split at the last dot with both sides non-empty.
        let split = stem
            .match_indices('.')
            .map(|(i, _)| i)
            .rev()
            .find(|&i| i > 0 && i + 1 < stem.len());
        if let Some(i) = split {
            return (stem[..i].to_string(), stem[i + 1..].to_string());
        }
    }
    (host.to_string(), default_ns.to_string())
}

/// Go `netip.ParseAddr` acceptance: IPv4, IPv6, and IPv6 with a non-empty
/// `%zone`.
fn is_netip_addr(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    match s.split_once('%') {
        Some((addr, zone)) => !zone.is_empty() && addr.parse::<Ipv6Addr>().is_ok(),
        None => false,
    }
}

#[cfg(test)]
mod tests;
