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
