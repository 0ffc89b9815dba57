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
mod tests {
    use super::*;

    #[test]
    fn short_name_expands_against_resource_namespace_not_service_namespace() {
        // A VS in `frontend` pointing at `reviews` means frontend's reviews.
        assert_eq!(
            resolve_short_name("reviews", "frontend", "cluster.local"),
            "reviews.frontend.svc.cluster.local"
        );
    }

    #[test]
    fn name_with_dot_is_not_expanded() {
        assert_eq!(
            resolve_short_name("reviews.default", "ns", "cluster.local"),
            "reviews.default"
        );
        assert_eq!(to_fqdn("reviews.default", "ns"), "reviews.default");
    }

    #[test]
    fn literal_star_is_not_expanded() {
        assert_eq!(resolve_short_name("*", "ns", "cluster.local"), "*");
        assert_eq!(to_fqdn("*", "ns"), "*");
    }

    #[test]
    fn pilot_expands_dotless_wildcard_other_than_star() {
        // ResolveShortnameToFQDN only special-cases the literal "*".
        assert_eq!(
            resolve_short_name("*foo", "ns", "cluster.local"),
            "*foo.ns.svc.cluster.local"
        );
        // The analyzer's ConvertHostToFQDN skips anything starting with '*'.
        assert_eq!(to_fqdn("*foo", "ns"), "*foo");
    }

    #[test]
    fn pilot_leaves_ip_addresses_alone() {
        assert_eq!(resolve_short_name("::1", "ns", "cluster.local"), "::1");
        assert_eq!(
            resolve_short_name("fe80::1%eth0", "ns", "cluster.local"),
            "fe80::1%eth0"
        );
        assert_eq!(
            resolve_short_name("10.0.0.1", "ns", "cluster.local"),
            "10.0.0.1"
        );
    }

    #[test]
    fn analyzer_expands_ipv6_literal_because_it_has_no_dot() {
        assert_eq!(to_fqdn("::1", "ns"), "::1.ns.svc.cluster.local");
    }

    #[test]
    fn empty_namespace_or_domain_drops_that_part() {
        assert_eq!(
            resolve_short_name("a", "", "cluster.local"),
            "a.svc.cluster.local"
        );
        assert_eq!(resolve_short_name("a", "ns", ""), "a.ns");
        assert_eq!(resolve_short_name("", "ns", "cluster.local"), "");
    }

    #[test]
    fn to_fqdn_ignores_configured_domain() {
        assert_eq!(
            to_fqdn("reviews", "default"),
            "reviews.default.svc.cluster.local"
        );
    }

    #[test]
    fn wildcard_does_not_match_bare_domain() {
        assert!(!matches("*.foo.com", "foo.com"));
        assert!(!matches("foo.com", "*.foo.com"));
    }

    #[test]
    fn wildcard_matches_any_depth_of_subdomain() {
        assert!(matches("*.foo.com", "a.foo.com"));
        assert!(matches("*.foo.com", "a.b.foo.com"));
        assert!(matches("a.b.foo.com", "*.foo.com"));
    }

    #[test]
    fn star_matches_everything() {
        assert!(matches("*", "foo.com"));
        assert!(matches("*.com", "*"));
        assert!(matches("*", "*"));
    }

    #[test]
    fn two_wildcards_match_when_one_suffix_contains_the_other() {
        assert!(matches("*.com", "*.foo.com"));
        assert!(matches("*.foo.com", "*.com"));
        assert!(!matches("*.bar.com", "*.foo.com"));
    }

    #[test]
    fn wildcard_without_dot_is_a_plain_suffix_test() {
        assert!(matches("*foo.com", "barfoo.com"));
        assert!(matches("*foo.com", "foo.com"));
    }

    #[test]
    fn concrete_names_match_exactly_and_case_sensitively() {
        assert!(matches("foo.com", "foo.com"));
        assert!(!matches("foo.com", "bar.com"));
        assert!(!matches("Foo.com", "foo.com"));
    }

    #[test]
    fn subset_of_is_one_directional() {
        assert!(subset_of("a.foo.com", "*.foo.com"));
        assert!(!subset_of("*.foo.com", "a.foo.com"));
        assert!(subset_of("*.foo.com", "*.com"));
        assert!(!subset_of("*.com", "*.foo.com"));
        assert!(subset_of("*.foo.com", "*"));
        assert!(!subset_of("*", "*.foo.com"));
        assert!(subset_of("foo.com", "foo.com"));
    }

    #[test]
    fn is_wildcard_checks_leading_star_only() {
        assert!(is_wildcard("*"));
        assert!(is_wildcard("*.a"));
        assert!(!is_wildcard("a.*"));
        assert!(!is_wildcard(""));
    }

    #[test]
    fn resource_name_from_kubernetes_fqdn_uses_its_namespace() {
        assert_eq!(
            resource_name_from_host("default", "reviews.prod.svc.cluster.local"),
            ("reviews".to_string(), "prod".to_string())
        );
    }

    #[test]
    fn resource_name_from_other_hosts_uses_default_namespace() {
        for h in [
            "reviews",
            "reviews.prod",
            "reviews.prod.svc",
            "a.example.com",
            "*.x.svc.cluster.local.org",
        ] {
            assert_eq!(
                resource_name_from_host("default", h),
                (h.to_string(), "default".to_string())
            );
        }
    }

    #[test]
    fn resource_name_fqdn_pattern_backtracks_past_a_trailing_dot() {
        assert_eq!(
            resource_name_from_host("d", "a.b..svc.cluster.local"),
            ("a".to_string(), "b.".to_string())
        );
        assert_eq!(
            resource_name_from_host("d", "a..svc.cluster.local"),
            ("a..svc.cluster.local".to_string(), "d".to_string())
        );
    }

    #[test]
    fn resource_name_fqdn_pattern_is_greedy_on_the_name() {
        assert_eq!(
            resource_name_from_host("d", "a.b.c.svc.cluster.local"),
            ("a.b".to_string(), "c".to_string())
        );
    }
}
