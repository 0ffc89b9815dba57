//! `explain` and the running proxy agree: for a randomised set of requests,
//! the route explain reports is the route the proxy logged.

use std::collections::HashMap;

use crate::support::*;
use strait::compile::ProxyIdentity;
use strait::explain::{Request, explain};
use strait::load::{LoadOptions, load_str};

fn config(up: std::net::SocketAddr) -> String {
    service_entry(
        "shop.default.svc.cluster.local",
        80,
        "HTTP",
        &[(up, &[("version", "v1")])],
    ) + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
  - name: admin-posts
    match:
    - {uri: {prefix: /admin}, method: {exact: POST}}
    - {uri: {regex: '/internal/[0-9]+'}}
    route: [{destination: {host: shop, subset: v1}}]
  - name: beta
    match:
    - headers: {x-beta: {exact: 'yes'}}
      withoutHeaders: {x-block: {}}
    route: [{destination: {host: shop}}]
  - name: search
    match: [{queryParams: {q: {regex: '[a-z]+'}}, ignoreUriCase: true, uri: {prefix: /Search}}]
    route: [{destination: {host: shop}}]
  - name: rest
    route: [{destination: {host: shop, subset: v1}}]
"
}

#[tokio::test]
async fn explain_and_the_proxy_pick_the_same_route() {
    let up = Upstream::named("shop").await;
    let yaml = config(up.addr);
    let proxy = Proxy::start(&yaml).await;
    let cfg = load_str(
        &yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let opts = ProxyIdentity::default();
    let snap = strait::compile::compile(&cfg, &opts);

    let methods = ["GET", "POST"];
    let paths = [
        "/admin/x",
        "/internal/42",
        "/internal/x",
        "/search",
        "/SEARCH",
        "/other",
        "/",
    ];
    let queries = ["", "?q=shoes", "?q=123"];
    let header_sets: [&[(&str, &str)]; 4] = [
        &[],
        &[("x-beta", "yes")],
        &[("x-beta", "yes"), ("x-block", "1")],
        &[("x-beta", "no")],
    ];
    let mut expected = HashMap::new();
    let client = h1_client();
    // A deterministic pseudo-random walk over the combinations.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..120 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let m = methods[(seed % 2) as usize];
        let p = paths[((seed >> 8) % paths.len() as u64) as usize];
        let q = queries[((seed >> 16) % queries.len() as u64) as usize];
        let hs = header_sets[((seed >> 24) % header_sets.len() as u64) as usize];
        let id = format!("req-{i}");
        let mut headers: Vec<(&str, &str)> = hs.to_vec();
        headers.push(("x-request-id", &id));
        let path = format!("{p}{q}");
        send(&client, proxy.addr(), m, "shop", &path, &headers, "").await;
        let mut h = http::HeaderMap::new();
        for (k, v) in hs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let report = explain(
            &cfg,
            &snap,
            &opts,
            &Request::parse(m, &format!("http://shop{path}"), h).unwrap(),
        );
        expected.insert(id, report.route.map(|r| r.name));
    }
    let distinct: std::collections::BTreeSet<_> = expected.values().flatten().cloned().collect();
    assert_eq!(
        distinct.len(),
        4,
        "the requests exercise every rule: {distinct:?}"
    );
    let log = proxy.log_entries(120).await;
    let mut checked = 0;
    for e in log {
        let id = e["request_id"].as_str().unwrap().to_string();
        let logged = e["route_name"].as_str().map(str::to_string);
        assert_eq!(expected.get(&id), Some(&logged), "request {id}: {e}");
        checked += 1;
    }
    assert_eq!(checked, 120);
}

/// `explain`'s rewritten path and redirect target are what the proxy sends
/// and answers: both come from `route::rewrite`. The rules have no `uri`
/// match, so the prefix rewrite replaces Istio's implicit `prefix: "/"`
/// (route.go `TranslateRouteMatch`; Envoy `prefix_rewrite`) in both.
#[tokio::test]
async fn explain_shows_the_rewritten_path_and_redirect_the_proxy_uses() {
    let up = Upstream::named("shop").await;
    let yaml = service_entry(
        "shop.default.svc.cluster.local",
        80,
        "HTTP",
        &[(up.addr, &[])],
    ) + "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
  - name: moved
    match: [{headers: {x-moved: {exact: 'yes'}}}]
    redirect: {prefixRewrite: /new/, redirectCode: 301}
  - name: rest
    rewrite: {uri: /v2/}
    route: [{destination: {host: shop}}]
";
    let proxy = Proxy::start(&yaml).await;
    let cfg = load_str(
        &yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let opts = ProxyIdentity::default();
    let snap = strait::compile::compile(&cfg, &opts);
    let client = h1_client();

    let got = send(&client, proxy.addr(), "GET", "shop", "/items?x=1", &[], "").await;
    assert_eq!(got.status, 200);
    let report = explain(
        &cfg,
        &snap,
        &opts,
        &Request::parse("GET", "http://shop/items?x=1", http::HeaderMap::new()).unwrap(),
    );
    assert_eq!(report.rewritten_path.as_deref(), Some("/v2/items?x=1"));
    assert_eq!(up.last().uri, "/v2/items?x=1");

    let got = send(
        &client,
        proxy.addr(),
        "GET",
        "shop",
        "/a/b?y=2",
        &[("x-moved", "yes")],
        "",
    )
    .await;
    assert_eq!(got.status, 301);
    let mut h = http::HeaderMap::new();
    h.insert("x-moved", "yes".parse().unwrap());
    let report = explain(
        &cfg,
        &snap,
        &opts,
        &Request::parse("GET", "http://shop/a/b?y=2", h).unwrap(),
    );
    assert_eq!(report.redirect.as_deref(), Some("http://shop/new/a/b?y=2"));
    assert_eq!(got.header("location"), report.redirect.as_deref());
}
