use super::*;
use crate::load::{LoadOptions, load_str};
use crate::source::file::load_paths;

fn opts() -> ProxyIdentity {
    ProxyIdentity::default()
}

fn run(
    yaml_or_dir: Result<&str, &str>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Report {
    let lo = LoadOptions {
        namespace: Some("default".into()),
        ..Default::default()
    };
    let cfg = match yaml_or_dir {
        Ok(yaml) => load_str(yaml, "t.yaml", &lo),
        Err(dir) => load_paths(
            &[std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)],
            &lo,
        ),
    };
    let snap = crate::compile::compile(&cfg, &opts());
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    explain(
        &cfg,
        &snap,
        &opts(),
        &Request::parse(method, url, h).unwrap(),
    )
}

#[test]
fn bookinfo_split_route_with_default_policy_spelled_out() {
    let r = run(
        Err("examples/bookinfo"),
        "GET",
        "http://reviews:9080/reviews/1",
        &[],
    );
    assert_eq!(r.virtual_service.as_deref(), Some("default/reviews"));
    assert_eq!(r.routes.len(), 2);
    assert!(!r.routes[0].matched);
    assert_eq!(
        r.routes[0].reason.as_deref(),
        Some("headers.end-user wanted exact \"jason\"")
    );
    let route = r.route.as_ref().unwrap();
    assert_eq!((route.index, route.name.as_str()), (Some(1), "split"));
    assert_eq!(r.destinations.len(), 2);
    assert_eq!(
        r.destinations[0].cluster,
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    assert_eq!(r.destinations[0].weight, 90);
    assert_eq!(
        r.destinations[0].endpoints,
        vec!["127.0.1.1:9080".to_string()]
    );
    assert_eq!(
        r.destinations[0].destination_rule.as_deref(),
        Some("default/reviews")
    );
    assert!(
        r.retries
            .starts_with("Istio's default: 2 retries on connect-failure"),
        "{}",
        r.retries
    );
    assert!(r.timeout.starts_with("none"), "{}", r.timeout);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}

#[test]
fn jason_gets_v2_with_weight_100() {
    let r = run(
        Err("examples/bookinfo"),
        "GET",
        "reviews:9080/",
        &[("end-user", "jason")],
    );
    assert_eq!(r.route.as_ref().unwrap().name, "jason");
    assert_eq!(r.destinations[0].subset.as_deref(), Some("v2"));
    assert_eq!(r.destinations[0].weight, 100);
}

const SVC: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: r}
spec:
  hosts: [r.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.2, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
";

#[test]
fn undeclared_subset_is_called_out_with_its_503() {
    let yaml = format!(
        "{SVC}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - route: [{{destination: {{host: r, subset: v3}}}}]\n"
    );
    let r = run(Ok(&yaml), "GET", "http://r/", &[]);
    assert_eq!(r.problems.len(), 1);
    assert!(r.problems[0].contains("503 NC"), "{}", r.problems[0]);
    assert!(
        r.problems[0].contains("declares v1, v2"),
        "{}",
        r.problems[0]
    );
}

#[test]
fn subset_without_endpoints_is_called_out_with_its_503() {
    let yaml = format!(
        "{SVC}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - route: [{{destination: {{host: r, subset: v2}}}}]\n"
    );
    let r = run(Ok(&yaml), "GET", "http://r/", &[]);
    assert!(r.problems[0].contains("503 UH"), "{:?}", r.problems);
    assert!(r.destinations[0].effective["loadBalancer"].contains("ROUND_ROBIN"));
}

#[test]
fn losing_virtual_service_says_why() {
    let yaml = format!(
        "{SVC}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: b}}\nspec:\n  hosts: [r]\n  http: [{{route: [{{destination: {{host: r}}}}]}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: a}}\nspec:\n  hosts: [r]\n  http: [{{route: [{{destination: {{host: r}}}}]}}]\n"
    );
    let r = run(Ok(&yaml), "GET", "http://r/", &[]);
    assert_eq!(r.virtual_service.as_deref(), Some("default/a"));
    assert_eq!(r.other_virtual_services.len(), 1);
    assert_eq!(r.other_virtual_services[0].name, "default/b");
    assert!(r.other_virtual_services[0].reason.contains("comes first"));
}

#[test]
fn unknown_port_and_no_route_say_404() {
    let r = run(Err("examples/bookinfo"), "GET", "http://reviews/", &[]);
    assert!(
        r.problems[0].contains("404 NR") && r.problems[0].contains("9080"),
        "{:?}",
        r.problems
    );
    let yaml = format!(
        "{SVC}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - match: [{{uri: {{prefix: /api}}}}]\n    route: [{{destination: {{host: r}}}}]\n"
    );
    let r = run(Ok(&yaml), "GET", "http://r/other", &[]);
    assert!(r.route.is_none());
    assert!(r.problems[0].contains("404 NR"));
    assert_eq!(
        r.routes[0].reason.as_deref(),
        Some("uri wanted prefix \"/api\"")
    );
}

#[test]
fn explain_agrees_with_the_selection_the_proxy_uses() {
    // A randomised set of requests: the route explain reports is the route
    // VirtualHost::select returns (the proxy's call).
    let lo = LoadOptions {
        namespace: Some("default".into()),
        ..Default::default()
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bookinfo");
    let cfg = load_paths(&[dir], &lo);
    let snap = crate::compile::compile(&cfg, &opts());
    let users = ["jason", "Jason", "", "bob"];
    let hosts = [
        "reviews:9080",
        "reviews.default:9080",
        "reviews",
        "ratings:9080",
    ];
    for i in 0..64u32 {
        let mut h = HeaderMap::new();
        let u = users[(i as usize) % users.len()];
        if !u.is_empty() {
            h.insert("end-user", u.parse().unwrap());
        }
        let host = hosts[(i as usize / 4) % hosts.len()];
        let req = Request::parse("GET", &format!("http://{host}/p{i}"), h.clone()).unwrap();
        let report = explain(&cfg, &snap, &opts(), &req);
        let list = crate::header_list::HeaderList::from(h.clone());
        let view = RequestView {
            method: "GET",
            scheme: "http",
            authority: host,
            path: &req.path,
            query: None,
            headers: &list,
        };
        let proxy = snap
            .routes
            .vhost(host)
            .and_then(|v| v.select(&view))
            .map(|r| r.name.to_string());
        assert_eq!(
            report.route.map(|r| r.name),
            proxy,
            "request {i} to {host} as {u:?}"
        );
    }
}

/// Issue #14: explain showed the route to v1 and no problem for a request
/// the proxy answers 500 FI; it shows fault, mirrors and header operations.
#[test]
fn fault_mirrors_and_header_operations_are_shown() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local, shadow.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - fault:
      delay: {fixedDelay: 7s, percentage: {value: 50}}
      abort: {httpStatus: 500, percentage: {value: 100}}
    mirror: {host: shadow}
    mirrorPercentage: {value: 10}
    headers:
      request: {set: {x-a: b}, remove: [x-c]}
    route: [{destination: {host: ratings}}]
";
    let r = run(Ok(yaml), "GET", "http://ratings:9080/", &[]);
    let all = r.policies.join("\n");
    assert!(
        all.contains("Fault delay: 7000ms before forwarding, for 50% of requests (flag DI)"),
        "{all}"
    );
    assert!(
        all.contains("Fault abort: HTTP 500 without forwarding, for 100% of requests (flag FI)"),
        "{all}"
    );
    assert!(
        all.contains(
            "Mirror: a copy of 10% of requests to outbound|9080||shadow.default.svc.cluster.local"
        ),
        "{all}"
    );
    assert!(all.contains("Request headers set: x-a: b"), "{all}");
    assert!(all.contains("Request headers removed: x-c"), "{all}");
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("aborts every request") && p.contains("HTTP 500 (FI)")),
        "{:?}",
        r.problems
    );
    assert!(render_text(&r).contains("Fault abort: HTTP 500"));
}

/// Issue #14: explain shows a route's CORS policy (the proxy answers
/// preflight requests itself), as it does fault and mirrors.
#[test]
fn cors_is_shown() {
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - corsPolicy:
      allowOrigins: [{exact: https://a.example}, {prefix: https://b.}]
      allowMethods: [GET]
      allowCredentials: true
    route: [{destination: {host: ratings}}]
";
    let r = run(Ok(yaml), "GET", "http://ratings:9080/", &[]);
    let all = r.policies.join("\n");
    assert!(
        all.contains("CORS: 2 allowed origin pattern(s), credentials allowed; preflight requests are answered by the proxy"),
        "{all}"
    );
    assert!(render_text(&r).contains("CORS: 2 allowed origin pattern(s)"));
}
