use super::*;
use crate::load::{LoadOptions, load_str};
use crate::route::{Action, RequestView, Route};
use crate::source::file::load_paths;

fn snap(yaml: &str) -> Snapshot {
    let cfg = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    compile(&cfg, &ProxyIdentity::default())
}

fn bookinfo() -> Snapshot {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bookinfo");
    let cfg = load_paths(
        &[dir],
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    compile(&cfg, &ProxyIdentity::default())
}

fn get<'a>(
    s: &'a Snapshot,
    authority: &str,
    path: &str,
    headers: &'a crate::header_list::HeaderList,
) -> Option<&'a Route> {
    let view = RequestView {
        method: "GET",
        scheme: "http",
        authority,
        path,
        query: None,
        headers,
    };
    s.routes.vhost(authority)?.select(&view)
}

fn clusters_of(r: &Route) -> Vec<(String, u32)> {
    match &r.action {
        Action::Forward(w) => w.iter().map(|c| (c.name.to_string(), c.weight)).collect(),
        _ => vec![],
    }
}

#[test]
fn bookinfo_routes_jason_to_v2_and_splits_the_rest() {
    let s = bookinfo();
    let mut h = crate::header_list::HeaderList::new();
    let r = get(&s, "reviews:9080", "/", &h).expect("a route");
    assert_eq!(
        clusters_of(r),
        vec![
            (
                "outbound|9080|v1|reviews.default.svc.cluster.local".into(),
                90
            ),
            (
                "outbound|9080|v2|reviews.default.svc.cluster.local".into(),
                10
            )
        ]
    );
    h.insert(
        http::HeaderName::from_static("end-user"),
        "jason".parse().unwrap(),
    );
    let r = get(&s, "reviews:9080", "/", &h).expect("a route");
    assert_eq!(&*r.name, "jason");
    assert_eq!(
        clusters_of(r),
        vec![(
            "outbound|9080|v2|reviews.default.svc.cluster.local".into(),
            100
        )]
    );
    let v1 = &s.clusters[&ClusterKey {
        port: 9080,
        subset: "v1".into(),
        host: "reviews.default.svc.cluster.local".into(),
    }];
    assert_eq!(v1.endpoints.len(), 1);
    assert_eq!(&*v1.endpoints[0].authority, "127.0.1.1:9080");
}

#[test]
fn sidecar_domain_forms_of_a_kubernetes_host() {
    let s = bookinfo();
    let h = crate::header_list::HeaderList::new();
    for a in [
        "reviews:9080",
        "reviews.default:9080",
        "reviews.default.svc:9080",
        "reviews.default.svc.cluster.local:9080",
        "REVIEWS:9080",
    ] {
        assert!(get(&s, a, "/", &h).is_some(), "{a} routes");
    }
    assert!(
        get(&s, "reviews", "/", &h).is_none(),
        "no port means 80, and reviews has only 9080"
    );
}

const SVC: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: r}
spec:
  hosts: [r.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.2, labels: {version: v1}}
";

#[test]
fn service_without_virtual_service_gets_istio_default_route() {
    let s = snap(SVC);
    let h = crate::header_list::HeaderList::new();
    let r = get(&s, "r", "/anything", &h).expect("default route");
    assert_eq!(&*r.name, "default");
    assert_eq!(
        clusters_of(r),
        vec![("outbound|80||r.default.svc.cluster.local".into(), 100)]
    );
    assert_eq!(
        r.retry.as_ref().unwrap().num_retries,
        2,
        "default retry policy"
    );
    assert_eq!(
        r.timeout, None,
        "Istio disables the route timeout by default"
    );
}

#[test]
fn first_match_wins_and_nothing_after_a_catch_all() {
    let s = snap(&format!(
        "{SVC}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [r]
  http:
  - name: api
    match: [{{uri: {{prefix: /api}}}}]
    route: [{{destination: {{host: r}}}}]
  - name: all
    route: [{{destination: {{host: r}}}}]
  - name: never
    match: [{{uri: {{prefix: /never}}}}]
    route: [{{destination: {{host: r}}}}]
"
    ));
    let h = crate::header_list::HeaderList::new();
    assert_eq!(&*get(&s, "r", "/api/x", &h).unwrap().name, "api");
    assert_eq!(&*get(&s, "r", "/never", &h).unwrap().name, "all");
    assert_eq!(
        s.routes.vhost("r").unwrap().routes.len(),
        2,
        "routes after a catch-all are not generated"
    );
}

#[test]
fn no_matching_rule_means_no_route() {
    let s = snap(&format!(
        "{SVC}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [r]
  http:
  - match: [{{uri: {{exact: /only}}}}]
    route: [{{destination: {{host: r}}}}]
"
    ));
    let h = crate::header_list::HeaderList::new();
    assert!(get(&s, "r", "/other", &h).is_none());
}

#[test]
fn undeclared_subset_has_no_cluster() {
    let s = snap(&format!(
        "{SVC}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [r]
  http:
  - route: [{{destination: {{host: r, subset: v9}}}}]
"
    ));
    let h = crate::header_list::HeaderList::new();
    let r = get(&s, "r", "/", &h).unwrap();
    let Action::Forward(w) = &r.action else {
        panic!()
    };
    assert!(
        !s.clusters.contains_key(&w[0].cluster),
        "503 NC at request time"
    );
}

#[test]
fn match_port_selects_the_listener_port_at_config_time() {
    let s = snap(&format!(
        "{SVC}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [r]
  http:
  - name: other-port
    match: [{{port: 8080}}]
    route: [{{destination: {{host: r}}}}]
  - name: fallback
    route: [{{destination: {{host: r}}}}]
"
    ));
    let h = crate::header_list::HeaderList::new();
    assert_eq!(&*get(&s, "r", "/", &h).unwrap().name, "fallback");
}

#[test]
fn several_virtual_services_for_one_host_first_by_name_wins() {
    let s = snap(&format!(
        "{SVC}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: b-second}}
spec:
  hosts: [r]
  http: [{{name: b, route: [{{destination: {{host: r}}}}]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: a-first}}
spec:
  hosts: [r]
  http: [{{name: a, route: [{{destination: {{host: r}}}}]}}]
"
    ));
    let h = crate::header_list::HeaderList::new();
    assert_eq!(
        &*get(&s, "r", "/", &h).unwrap().name,
        "a",
        "no merge on sidecars; first wins"
    );
}

#[test]
fn zero_weight_destination_is_dropped_when_there_are_several() {
    let s = snap(&format!(
        "{SVC}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r}}
spec:
  hosts: [r]
  http:
  - route:
    - {{destination: {{host: r, subset: a}}, weight: 0}}
    - {{destination: {{host: r, subset: b}}, weight: 5}}
"
    ));
    let h = crate::header_list::HeaderList::new();
    assert_eq!(clusters_of(get(&s, "r", "/", &h).unwrap()).len(), 1);
}

fn dr_for(yaml: &str, proxy_ns: &str, labels: &[(&str, &str)]) -> Option<String> {
    let cfg = load_str(yaml, "t.yaml", &LoadOptions::default());
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    let opts = ProxyIdentity {
        namespace: proxy_ns.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ProxyIdentity::default()
    };
    let svcs = services::services(&cfg, &opts);
    let svc = svcs
        .iter()
        .find(|s| s.fqdn == "r.prod.svc.cluster.local")
        .expect("service");
    services::destination_rule_for(&cfg, svc, &opts).map(|d| d.name)
}

const SVC_PROD: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: r, namespace: prod}
spec:
  hosts: [r.prod.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.2}]
";

fn dr(ns: &str, name: &str, host: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {host}\n{extra}"
    )
}

#[test]
fn destination_rule_lookup_client_namespace_then_service_then_root() {
    let all = format!(
        "{SVC_PROD}{}{}{}",
        dr("client", "c", "r.prod.svc.cluster.local", ""),
        dr("prod", "s", "r", ""),
        dr("istio-system", "root", "r.prod.svc.cluster.local", "")
    );
    assert_eq!(dr_for(&all, "client", &[]).as_deref(), Some("client/c"));
    assert_eq!(dr_for(&all, "other", &[]).as_deref(), Some("prod/s"));
    let only_root = format!(
        "{SVC_PROD}{}",
        dr("istio-system", "root", "r.prod.svc.cluster.local", "")
    );
    assert_eq!(
        dr_for(&only_root, "other", &[]).as_deref(),
        Some("istio-system/root")
    );
    let elsewhere = format!(
        "{SVC_PROD}{}",
        dr("unrelated", "x", "r.prod.svc.cluster.local", "")
    );
    assert_eq!(
        dr_for(&elsewhere, "other", &[]),
        None,
        "DRs outside the three namespaces never apply"
    );
}

#[test]
fn most_specific_destination_rule_host_wins() {
    let yaml = format!(
        "{SVC_PROD}{}{}",
        dr("prod", "wild", "'*.prod.svc.cluster.local'", ""),
        dr("prod", "exact", "r", "")
    );
    assert_eq!(dr_for(&yaml, "other", &[]).as_deref(), Some("prod/exact"));
}

#[test]
fn private_destination_rule_in_the_service_namespace_is_not_visible_elsewhere() {
    let yaml = format!("{SVC_PROD}{}", dr("prod", "s", "r", "  exportTo: ['.']\n"));
    assert_eq!(dr_for(&yaml, "other", &[]), None);
    assert_eq!(dr_for(&yaml, "prod", &[]).as_deref(), Some("prod/s"));
}

#[test]
fn destination_rules_for_one_host_merge_first_subset_and_policy_win() {
    let yaml = format!(
        "{SVC_PROD}{}{}",
        dr(
            "prod",
            "a",
            "r",
            "  subsets: [{name: v1, labels: {version: v1}}]\n"
        ),
        dr(
            "prod",
            "b",
            "r",
            "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1, labels: {version: other}}, {name: v2, labels: {version: v2}}]\n"
        )
    );
    let cfg = load_str(&yaml, "t.yaml", &LoadOptions::default());
    let opts = ProxyIdentity {
        namespace: "prod".into(),
        ..ProxyIdentity::default()
    };
    let svcs = services::services(&cfg, &opts);
    let applied = services::destination_rule_for(&cfg, &svcs[0], &opts).unwrap();
    assert_eq!(applied.name, "prod/a+prod/b");
    let subsets: Vec<(String, String)> = applied
        .spec
        .subsets
        .iter()
        .map(|s| (s.name.clone().unwrap(), s.labels["version"].clone()))
        .collect();
    assert_eq!(
        subsets,
        vec![("v1".into(), "v1".into()), ("v2".into(), "v2".into())]
    );
    assert!(
        applied.spec.traffic_policy.is_some(),
        "the first top-level policy is kept"
    );
}

#[test]
fn workload_selector_destination_rule_applies_only_to_matching_proxies() {
    let yaml = format!(
        "{SVC_PROD}{}{}",
        dr("client", "all", "r.prod.svc.cluster.local", ""),
        dr(
            "client",
            "mine",
            "r.prod.svc.cluster.local",
            "  workloadSelector: {matchLabels: {app: web}}\n"
        )
    );
    assert_eq!(
        dr_for(&yaml, "client", &[("app", "web")]).as_deref(),
        Some("client/mine")
    );
    assert_eq!(
        dr_for(&yaml, "client", &[("app", "api")]).as_deref(),
        Some("client/all")
    );
}

#[test]
fn consistent_hash_destinations_drop_the_default_previous_hosts_retry_predicate() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r}\nspec:\n  hosts: [r.default.svc.cluster.local, s.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.0.0.1}]\n";
    let dr = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}\n";
    let vs = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: s}\nspec:\n  hosts: [s]\n  http:\n  - match: [{uri: {prefix: /explicit}}]\n    retries: {attempts: 1, retryIgnorePreviousHosts: true}\n    route: [{destination: {host: r}}]\n  - route: [{destination: {host: r}}]\n";
    let s = snap(&format!("{se}{dr}{vs}"));
    let h = crate::header_list::HeaderList::new();
    let avoid = |authority: &str, path: &str| {
        get(&s, authority, path, &h)
            .expect("a route")
            .retry
            .as_ref()
            .unwrap()
            .avoid_previous_hosts
    };
    assert!(!avoid("r:80", "/"), "default route to a hashed cluster");
    assert!(!avoid("s:80", "/"), "VS route to a hashed cluster");
    assert!(avoid("s:80", "/explicit"), "an explicit true still adds it");

    let plain = snap(&format!("{se}{vs}"));
    let r = get(&plain, "s:80", "/", &h).unwrap();
    assert!(r.retry.as_ref().unwrap().avoid_previous_hosts);
}
