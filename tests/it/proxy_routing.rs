//! HTTP routing as a client of an Istio sidecar sees it: virtual-host
//! domains, every `HTTPMatchRequest` field, weighted splits, route actions
//! (redirect, direct response, rewrite, header operations, CORS), subsets and
//! their errors, several VirtualServices for one host, delegation, exportTo,
//! and the access-log fields.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FQDN: &str = "reviews.default.svc.cluster.local";

/// `reviews` on port 9080 with endpoints labelled `version: <name>`.
fn reviews(eps: &[&Upstream]) -> String {
    let labels: Vec<[(&str, &str); 1]> =
        eps.iter().map(|u| [("version", u.name.as_str())]).collect();
    let eps: Vec<(SocketAddr, &[(&str, &str)])> = eps
        .iter()
        .zip(labels.iter())
        .map(|(u, l)| (u.addr, &l[..]))
        .collect();
    service_entry(FQDN, 9080, "HTTP", &eps)
}

/// A DestinationRule for `reviews` with subsets `v1`, `v2`, `v3`.
const DR: &str = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
";

/// A VirtualService `reviews` for host `reviews` with `http` rules (YAML
/// list items indented by two spaces).
fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n{http}---\n"
    )
}

/// A proxy whose `reviews` VirtualService has one rule per `(name, match)`,
/// each answering 200 with its name as body (no catch-all).
async fn matcher_proxy(rules: &[(&str, &str)]) -> Proxy {
    let dead = dead_addr().await;
    let mut http = String::new();
    for (name, m) in rules {
        http.push_str(&format!(
            "  - name: {name}\n    match: {m}\n    directResponse: {{status: 200, body: {{string: {name}}}}}\n"
        ));
    }
    Proxy::start(&(service_entry(FQDN, 9080, "HTTP", &[(dead, &[])]) + &vs(&http))).await
}

/// The name of the rule that answered, or the status when none did.
async fn which(proxy: &Proxy, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let got = send(
        &h1_client(),
        proxy.addr(),
        method,
        "reviews:9080",
        path,
        headers,
        "",
    )
    .await;
    if got.status == 200 {
        got.text()
    } else {
        got.status.as_str().to_string()
    }
}

fn assert_no_route(entry: &serde_json::Value) {
    assert_eq!(entry["response_code"], 404);
    assert_eq!(entry["response_flags"], "NR");
    assert_eq!(entry["response_code_details"], "route_not_found");
}

// ---------------------------------------------------------------- hosts

#[tokio::test]
async fn every_sidecar_domain_form_with_the_port_reaches_the_service() {
    let v1 = Upstream::named("v1").await;
    let ratings = Upstream::named("ratings").await;
    let yaml = reviews(&[&v1])
        + &service_entry(
            "ratings.default.svc.cluster.local",
            80,
            "HTTP",
            &[(ratings.addr, &[])],
        );
    let proxy = Proxy::start(&yaml).await;
    for host in [
        "reviews:9080",
        "reviews.default:9080",
        "reviews.default.svc:9080",
        "reviews.default.svc.cluster.local:9080",
        "REVIEWS.Default:9080",
    ] {
        let got = get(proxy.addr(), host, "/").await;
        assert_eq!(got.status, 200, "{host}");
        assert_eq!(got.text(), "v1", "{host}");
    }
    // No port means 80: reviews has no port 80, ratings does.
    assert_eq!(get(proxy.addr(), "reviews", "/").await.status, 404);
    for host in [
        "ratings",
        "ratings.default",
        "ratings.default.svc",
        "ratings.default.svc.cluster.local",
        "ratings:80",
    ] {
        let got = get(proxy.addr(), host, "/").await;
        assert_eq!(got.status, 200, "{host}");
        assert_eq!(got.text(), "ratings", "{host}");
    }
    assert_eq!(v1.hits(), 5);
    let log = proxy.log_entries(11).await;
    assert_no_route(&log[5]);
}

#[tokio::test]
async fn unknown_host_is_404_no_route_found() {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&reviews(&[&v1])).await;
    let got = get(proxy.addr(), "details:9080", "/").await;
    assert_eq!(got.status, 404);
    assert_eq!(got.text(), "");
    let got = get(proxy.addr(), "reviews:9081", "/").await;
    assert_eq!(got.status, 404, "a port the service does not have");
    let log = proxy.log_entries(2).await;
    assert_no_route(&log[0]);
    assert_no_route(&log[1]);
    assert_eq!(log[0]["authority"], "details:9080");
    assert_eq!(v1.hits(), 0);
}

#[tokio::test]
async fn absolute_form_request_routes_by_its_uri_authority() {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&reviews(&[&v1])).await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(
        b"GET http://reviews:9080/abs?q=1 HTTP/1.1\r\nHost: unknown.example\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("v1"), "{text}");
    let seen = v1.last();
    assert_eq!(seen.uri, "/abs?q=1");
    assert_eq!(seen.headers["host"], "reviews:9080");
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["authority"], "reviews:9080");
}

// ---------------------------------------------------------------- matching

#[tokio::test]
async fn uri_exact_prefix_and_regex_which_must_match_the_whole_path() {
    let proxy = matcher_proxy(&[
        ("exact", "[{uri: {exact: /exact}}]"),
        ("prefix", "[{uri: {prefix: /pre}}]"),
        ("regex", "[{uri: {regex: '/v1/.*'}}]"),
    ])
    .await;
    assert_eq!(which(&proxy, "GET", "/exact", &[]).await, "exact");
    assert_eq!(which(&proxy, "GET", "/exact?x=1", &[]).await, "exact");
    assert_eq!(which(&proxy, "GET", "/exact/", &[]).await, "404");
    assert_eq!(which(&proxy, "GET", "/prefix/a", &[]).await, "prefix");
    assert_eq!(which(&proxy, "GET", "/pre", &[]).await, "prefix");
    assert_eq!(which(&proxy, "GET", "/PRE", &[]).await, "404");
    assert_eq!(which(&proxy, "GET", "/v1/anything", &[]).await, "regex");
    assert_eq!(which(&proxy, "GET", "/v1/", &[]).await, "regex");
    assert_eq!(which(&proxy, "GET", "/v1x", &[]).await, "404");
    assert_eq!(which(&proxy, "GET", "/x/v1/a", &[]).await, "404");
}

#[tokio::test]
async fn ignore_uri_case_applies_to_exact_and_prefix() {
    let proxy = matcher_proxy(&[
        ("exact", "[{uri: {exact: /Login}, ignoreUriCase: true}]"),
        ("prefix", "[{uri: {prefix: /API}, ignoreUriCase: true}]"),
        ("sensitive", "[{uri: {exact: /Case}}]"),
    ])
    .await;
    assert_eq!(which(&proxy, "GET", "/LOGIN", &[]).await, "exact");
    assert_eq!(which(&proxy, "GET", "/login", &[]).await, "exact");
    assert_eq!(which(&proxy, "GET", "/api/v1", &[]).await, "prefix");
    assert_eq!(which(&proxy, "GET", "/case", &[]).await, "404");
}

both_http2_servers!(scheme_method_and_authority_are_matched);
async fn scheme_method_and_authority_are_matched() {
    let proxy = matcher_proxy(&[
        ("https", "[{scheme: {exact: https}}]"),
        ("post", "[{method: {exact: POST}}]"),
        ("auth", "[{authority: {exact: 'reviews.default:9080'}}]"),
        (
            "http",
            "[{scheme: {exact: http}, method: {regex: 'GET|HEAD'}}]",
        ),
    ])
    .await;
    assert_eq!(which(&proxy, "POST", "/", &[]).await, "post");
    assert_eq!(which(&proxy, "GET", "/", &[]).await, "http");
    assert_eq!(which(&proxy, "PUT", "/", &[]).await, "404");
    let got = get(proxy.addr(), "reviews.default:9080", "/").await;
    assert_eq!(got.text(), "auth");
    let got = h2_send(proxy.addr(), "PUT", "reviews.default:9080", "/", &[], "").await;
    assert_eq!(got.text(), "auth", "h2 :authority is matched too");
}

#[tokio::test]
async fn headers_match_exact_prefix_regex_and_presence() {
    let proxy = matcher_proxy(&[
        ("exact", "[{headers: {end-user: {exact: jason}}}]"),
        ("prefix", "[{headers: {x-prefix: {prefix: abc}}}]"),
        ("regex", "[{headers: {x-regex: {regex: 'v[0-9]+'}}}]"),
        ("present", "[{headers: {x-present: {}}}]"),
    ])
    .await;
    assert_eq!(
        which(&proxy, "GET", "/", &[("end-user", "jason")]).await,
        "exact"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("end-user", "Jason")]).await,
        "404"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-prefix", "abcdef")]).await,
        "prefix"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-prefix", "xabc")]).await,
        "404"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-regex", "v12")]).await,
        "regex"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-regex", "v12x")]).await,
        "404",
        "regex is a full match"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-present", "")]).await,
        "present"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("X-Present", "anything")]).await,
        "present"
    );
    assert_eq!(which(&proxy, "GET", "/", &[]).await, "404");
}

#[tokio::test]
async fn pseudo_header_keys_match_the_request_line() {
    let proxy = matcher_proxy(&[
        ("post", "[{headers: {':method': {exact: POST}}}]"),
        ("path", "[{headers: {':path': {exact: '/p?q=1'}}}]"),
        ("status", "[{headers: {':status': {}}}]"),
    ])
    .await;
    assert_eq!(which(&proxy, "POST", "/", &[]).await, "post");
    assert_eq!(which(&proxy, "GET", "/p?q=1", &[]).await, "path");
    assert_eq!(which(&proxy, "GET", "/p", &[]).await, "404");
    assert_eq!(
        which(&proxy, "GET", "/", &[]).await,
        "404",
        "no :status on a request"
    );
}

#[tokio::test]
async fn without_headers_excludes_requests_that_match() {
    let proxy = matcher_proxy(&[
        (
            "not-canary",
            "[{withoutHeaders: {x-canary: {exact: 'yes'}}}]",
        ),
        ("rest", "[{uri: {prefix: /}}]"),
    ])
    .await;
    assert_eq!(which(&proxy, "GET", "/", &[]).await, "not-canary");
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-canary", "no")]).await,
        "not-canary"
    );
    assert_eq!(
        which(&proxy, "GET", "/", &[("x-canary", "yes")]).await,
        "rest"
    );
    let proxy = matcher_proxy(&[
        ("no-debug", "[{withoutHeaders: {x-debug: {}}}]"),
        ("rest", "[{uri: {prefix: /}}]"),
    ])
    .await;
    assert_eq!(which(&proxy, "GET", "/", &[]).await, "no-debug");
    assert_eq!(which(&proxy, "GET", "/", &[("x-debug", "1")]).await, "rest");
}

#[tokio::test]
async fn query_params_match_exact_empty_regex_and_presence() {
    let proxy = matcher_proxy(&[
        ("exact", "[{queryParams: {user: {exact: jason}}}]"),
        ("debug", "[{queryParams: {debug: {exact: ''}}}]"),
        ("regex", "[{queryParams: {ver: {regex: 'v[0-9]+'}}}]"),
        ("present", "[{queryParams: {flag: {}}}]"),
    ])
    .await;
    assert_eq!(which(&proxy, "GET", "/?user=jason", &[]).await, "exact");
    assert_eq!(which(&proxy, "GET", "/?a=1&user=jason", &[]).await, "exact");
    assert_eq!(which(&proxy, "GET", "/?user=jasonx", &[]).await, "404");
    assert_eq!(which(&proxy, "GET", "/?debug", &[]).await, "debug");
    assert_eq!(which(&proxy, "GET", "/?debug=", &[]).await, "debug");
    assert_eq!(which(&proxy, "GET", "/?debug=1", &[]).await, "404");
    assert_eq!(which(&proxy, "GET", "/?ver=v12", &[]).await, "regex");
    assert_eq!(which(&proxy, "GET", "/?ver=v12x", &[]).await, "404");
    assert_eq!(
        which(&proxy, "GET", "/?flag=anything", &[]).await,
        "present"
    );
    assert_eq!(which(&proxy, "GET", "/?flag", &[]).await, "present");
    assert_eq!(which(&proxy, "GET", "/?other=1", &[]).await, "404");
    assert_eq!(which(&proxy, "GET", "/", &[]).await, "404");
}

#[tokio::test]
async fn match_blocks_are_ored_fields_anded_and_the_first_match_wins() {
    let proxy = matcher_proxy(&[
        (
            "and",
            "[{uri: {prefix: /both}, headers: {end-user: {exact: jason}}}]",
        ),
        ("or", "[{uri: {prefix: /a}}, {uri: {prefix: /b}}]"),
        ("later", "[{uri: {prefix: /a}}]"),
    ])
    .await;
    assert_eq!(
        which(&proxy, "GET", "/both", &[("end-user", "jason")]).await,
        "and"
    );
    assert_eq!(
        which(&proxy, "GET", "/both", &[]).await,
        "or",
        "/both starts with /b"
    );
    assert_eq!(
        which(&proxy, "GET", "/a", &[]).await,
        "or",
        "first match wins"
    );
    assert_eq!(which(&proxy, "GET", "/b", &[]).await, "or");
    assert_eq!(which(&proxy, "GET", "/c", &[]).await, "404");
    let log = proxy.log_entries(5).await;
    assert_eq!(log[0]["route_name"], "and");
    assert_no_route(&log[4]);
    assert_eq!(log[4]["route_name"], serde_json::Value::Null);
}

#[tokio::test]
async fn match_port_selects_the_rules_of_each_service_port() {
    let dead = dead_addr().await;
    let se = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [{FQDN}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {{number: 9080, name: a, protocol: HTTP}}
  - {{number: 9090, name: b, protocol: HTTP}}
  endpoints:
  - {{address: {}, ports: {{a: {p}, b: {p}}}}}
---
",
        dead.ip(),
        p = dead.port()
    );
    let yaml = se
        + &vs("  - match: [{port: 9080, uri: {prefix: /}}]
    directResponse: {status: 200, body: {string: port-9080}}
  - directResponse: {status: 200, body: {string: other}}
");
    let proxy = Proxy::start(&yaml).await;
    assert_eq!(
        get(proxy.addr(), "reviews:9080", "/").await.text(),
        "port-9080"
    );
    assert_eq!(get(proxy.addr(), "reviews:9090", "/").await.text(), "other");
}

#[tokio::test]
async fn source_labels_select_rules_for_the_proxy_they_fit() {
    let dead = dead_addr().await;
    let yaml = service_entry(FQDN, 9080, "HTTP", &[(dead, &[])])
        + &vs("  - match: [{sourceLabels: {app: productpage}}]
    directResponse: {status: 200, body: {string: from-productpage}}
  - directResponse: {status: 200, body: {string: other}}
");
    let labels: BTreeMap<String, String> = [
        ("app".to_string(), "productpage".to_string()),
        ("version".to_string(), "v1".to_string()),
    ]
    .into();
    let pp = Proxy::start_with(&yaml, labels).await;
    assert_eq!(
        get(pp.addr(), "reviews:9080", "/").await.text(),
        "from-productpage"
    );
    let other = Proxy::start_with(&yaml, [("app".to_string(), "ratings".to_string())].into()).await;
    assert_eq!(get(other.addr(), "reviews:9080", "/").await.text(), "other");
}

// ---------------------------------------------------------------- weights

/// Send `n` requests (16 at a time) to `reviews:9080/`.
async fn burst(proxy: &Proxy, n: usize) {
    let client = h1_client();
    let addr = proxy.addr();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(16);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let c = client.clone();
            set.spawn(async move { send(&c, addr, "GET", "reviews:9080", "/", &[], "").await });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().status, 200);
        }
        done += batch;
    }
}

async fn split_proxy(route: &str) -> (Proxy, Upstream, Upstream) {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let proxy = Proxy::start(&(reviews(&[&v1, &v2]) + DR + &vs(route))).await;
    (proxy, v1, v2)
}

#[tokio::test]
async fn weighted_split_90_10_is_honoured() {
    let (proxy, v1, v2) = split_proxy(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
",
    )
    .await;
    burst(&proxy, 2000).await;
    let share = v2.hits() as f64 / 2000.0;
    assert_eq!(v1.hits() + v2.hits(), 2000);
    assert!((0.075..=0.125).contains(&share), "v2 got {share}");
}

#[tokio::test]
async fn weights_are_relative_and_need_not_sum_to_100() {
    let (proxy, v1, v2) = split_proxy(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 1}
    - {destination: {host: reviews, subset: v2}, weight: 3}
",
    )
    .await;
    burst(&proxy, 1000).await;
    let share = v2.hits() as f64 / 1000.0;
    assert_eq!(v1.hits() + v2.hits(), 1000);
    assert!((0.70..=0.80).contains(&share), "v2 got {share}");
}

#[tokio::test]
async fn a_single_destination_gets_everything_whatever_its_weight() {
    let (proxy, v1, v2) =
        split_proxy("  - route: [{destination: {host: reviews, subset: v2}, weight: 10}]\n").await;
    burst(&proxy, 50).await;
    assert_eq!((v1.hits(), v2.hits()), (0, 50));
}

#[tokio::test]
async fn a_zero_weight_destination_among_several_gets_nothing() {
    let (proxy, v1, v2) = split_proxy(
        "  - route:
    - {destination: {host: reviews, subset: v1}, weight: 0}
    - {destination: {host: reviews, subset: v2}, weight: 5}
",
    )
    .await;
    burst(&proxy, 200).await;
    assert_eq!((v1.hits(), v2.hits()), (0, 200));
}

// ---------------------------------------------------------------- actions

#[tokio::test]
async fn redirect_rewrites_uri_authority_port_scheme_with_301_by_default() {
    let dead = dead_addr().await;
    let yaml = service_entry(FQDN, 9080, "HTTP", &[(dead, &[])])
        + &vs("  - match: [{uri: {prefix: /uri}}]
    redirect: {uri: /new}
  - match: [{uri: {prefix: /auth}}]
    redirect: {authority: other.example.com}
  - match: [{uri: {prefix: /port}}]
    redirect: {port: 8080}
  - match: [{uri: {prefix: /scheme}}]
    redirect: {scheme: https}
  - match: [{uri: {prefix: /code}}]
    redirect: {uri: /found, redirectCode: 302}
  - match: [{uri: {prefix: /derive}}]
    redirect: {authority: other.example.com, derivePort: FROM_REQUEST_PORT}
");
    let proxy = Proxy::start(&yaml).await;
    let cases = [
        ("/uri/x?q=1", 301, "http://reviews:9080/new?q=1"),
        ("/auth/x?q=1", 301, "http://other.example.com/auth/x?q=1"),
        ("/port/x", 301, "http://reviews:8080/port/x"),
        // Envoy keeps the request's host:port when only the scheme changes
        // (it strips the port only when it is the old scheme's default).
        ("/scheme/x", 301, "https://reviews:9080/scheme/x"),
        ("/code", 302, "http://reviews:9080/found"),
        // FROM_REQUEST_PORT is the service port the request was sent to.
        ("/derive", 301, "http://other.example.com:9080/derive"),
    ];
    for (path, status, location) in cases {
        let got = get(proxy.addr(), "reviews:9080", path).await;
        assert_eq!(got.status, status, "{path}");
        assert_eq!(got.header("location"), Some(location), "{path}");
    }
    let log = proxy.log_entries(cases.len()).await;
    assert_eq!(log[0]["response_flags"], "-");
    assert_eq!(log[0]["response_code"], 301);
}

#[tokio::test]
async fn redirect_to_https_drops_the_default_http_port() {
    let dead = dead_addr().await;
    let yaml = service_entry("web.default.svc.cluster.local", 80, "HTTP", &[(dead, &[])])
        + "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - redirect: {scheme: https}
";
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "web:80", "/a?b").await;
    assert_eq!(got.header("location"), Some("https://web/a?b"));
    let got = get(proxy.addr(), "web", "/a").await;
    assert_eq!(got.header("location"), Some("https://web/a"));
}

#[tokio::test]
async fn direct_response_answers_with_status_and_body() {
    let dead = dead_addr().await;
    let yaml = service_entry(FQDN, 9080, "HTTP", &[(dead, &[])])
        + &vs("  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - directResponse: {status: 503}
");
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/teapot").await;
    assert_eq!(got.status, 418);
    assert_eq!(got.text(), "short and stout");
    let got = get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "");
    let log = proxy.log_entries(2).await;
    assert_eq!(log[0]["response_code"], 418);
    assert_eq!(log[0]["response_flags"], "-");
    assert_eq!(log[0]["response_code_details"], "direct_response");
}

async fn rewrite_proxy(rules: &str) -> (Proxy, Upstream) {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&(reviews(&[&v1]) + &vs(rules))).await;
    (proxy, v1)
}

#[tokio::test]
async fn rewrite_uri_replaces_the_matched_prefix() {
    let (proxy, v1) = rewrite_proxy(
        "  - match: [{uri: {prefix: /v1/}}]
    rewrite: {uri: /api/}
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /strip}}]
    rewrite: {uri: /}
    route: [{destination: {host: reviews}}]
",
    )
    .await;
    get(proxy.addr(), "reviews:9080", "/v1/reviews/1?x=1").await;
    assert_eq!(v1.last().uri, "/api/reviews/1?x=1");
    get(proxy.addr(), "reviews:9080", "/strip/a").await;
    assert_eq!(v1.last().uri, "//a");
    get(proxy.addr(), "reviews:9080", "/strip").await;
    assert_eq!(v1.last().uri, "/");
    let log = proxy.log_entries(1).await;
    assert_eq!(
        log[0]["path"], "/v1/reviews/1?x=1",
        "the log has the original path"
    );
}

/// Istio gives a rule without a `uri` match the prefix `/`; Envoy's prefix
/// rewrite then replaces that `/`, so `/x` becomes `/apix`.
#[tokio::test]
async fn rewrite_without_uri_match_replaces_the_implicit_slash_prefix() {
    let (proxy, v1) = rewrite_proxy(
        "  - rewrite: {uri: /api}
    route: [{destination: {host: reviews}}]
",
    )
    .await;
    get(proxy.addr(), "reviews:9080", "/x").await;
    assert_eq!(v1.last().uri, "/apix");
}

#[tokio::test]
async fn rewrite_uri_on_an_exact_match_replaces_the_whole_path() {
    let (proxy, v1) = rewrite_proxy(
        "  - match: [{uri: {exact: /login}}]
    rewrite: {uri: /auth/signin}
    route: [{destination: {host: reviews}}]
",
    )
    .await;
    let got = get(proxy.addr(), "reviews:9080", "/login?next=/home").await;
    assert_eq!(got.status, 200);
    assert_eq!(v1.last().uri, "/auth/signin?next=/home");
}

#[tokio::test]
async fn uri_regex_rewrite_substitutes_capture_groups() {
    let (proxy, v1) = rewrite_proxy(
        r"  - match: [{uri: {prefix: /svc/}}]
    rewrite:
      uriRegexRewrite: {match: '^/svc/([^/]+)/(.*)$', rewrite: '/\2/\1'}
    route: [{destination: {host: reviews}}]
",
    )
    .await;
    get(proxy.addr(), "reviews:9080", "/svc/reviews/v1/items?q=2").await;
    assert_eq!(v1.last().uri, "/v1/items/reviews?q=2");
}

#[tokio::test]
async fn rewrite_authority_is_the_host_the_upstream_sees() {
    let (proxy, v1) = rewrite_proxy(
        "  - rewrite: {authority: reviews.internal:8000}
    route: [{destination: {host: reviews}}]
",
    )
    .await;
    get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(v1.last().headers["host"], "reviews.internal:8000");
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["authority"], "reviews:9080");
}

#[tokio::test]
async fn route_header_operations_apply_to_request_and_response() {
    let (proxy, v1) = rewrite_proxy(
        "  - headers:
      request:
        set: {x-set: route}
        add: {x-add: route}
        remove: [x-remove]
      response:
        set: {x-resp-set: route}
        add: {x-resp-add: route}
        remove: [x-upstream]
    route: [{destination: {host: reviews}}]
",
    )
    .await;
    let got = send(
        &h1_client(),
        proxy.addr(),
        "GET",
        "reviews:9080",
        "/",
        &[
            ("x-set", "client"),
            ("x-add", "client"),
            ("x-remove", "client"),
        ],
        "",
    )
    .await;
    let seen = v1.last();
    assert_eq!(seen.headers["x-set"], "route");
    let added: Vec<_> = seen.headers.get_all("x-add").iter().collect();
    assert_eq!(added, ["client", "route"]);
    assert!(!seen.headers.contains_key("x-remove"));
    assert_eq!(got.header("x-resp-set"), Some("route"));
    assert_eq!(got.header("x-resp-add"), Some("route"));
    assert_eq!(got.header("x-upstream"), None);
}

#[tokio::test]
async fn destination_header_operations_apply_to_request_and_response() {
    let (proxy, v1) = rewrite_proxy(
        "  - route:
    - destination: {host: reviews}
      headers:
        request:
          set: {x-dest: one}
          remove: [x-remove]
        response:
          set: {x-resp-dest: one}
          remove: [x-upstream]
",
    )
    .await;
    let got = send(
        &h1_client(),
        proxy.addr(),
        "GET",
        "reviews:9080",
        "/",
        &[("x-remove", "client")],
        "",
    )
    .await;
    let seen = v1.last();
    assert_eq!(seen.headers["x-dest"], "one");
    assert!(!seen.headers.contains_key("x-remove"));
    assert_eq!(got.header("x-resp-dest"), Some("one"));
    assert_eq!(got.header("x-upstream"), None);
}

#[tokio::test]
async fn weighted_destinations_each_apply_their_own_header_operations() {
    let (proxy, v1, v2) = split_proxy(
        "  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
      headers:
        request: {set: {x-dest: v1}}
        response: {set: {x-resp-dest: v1}}
    - destination: {host: reviews, subset: v2}
      weight: 50
      headers:
        request: {set: {x-dest: v2}}
        response: {set: {x-resp-dest: v2}}
",
    )
    .await;
    let client = h1_client();
    for _ in 0..40 {
        let got = send(&client, proxy.addr(), "GET", "reviews:9080", "/", &[], "").await;
        assert_eq!(got.header("x-resp-dest"), Some(got.text().as_str()));
    }
    assert!(v1.hits() > 0 && v2.hits() > 0);
    assert_eq!(v1.last().headers["x-dest"], "v1");
    assert_eq!(v2.last().headers["x-dest"], "v2");
}

const CORS: &str = "  - corsPolicy:
      allowOrigins: [{exact: 'https://example.com'}, {regex: 'https://.*\\.trusted\\.io'}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: reviews}}]
";

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin_is_answered_by_the_proxy() {
    let (proxy, v1) = rewrite_proxy(CORS).await;
    for origin in ["https://example.com", "https://app.trusted.io"] {
        let got = send(
            &h1_client(),
            proxy.addr(),
            "OPTIONS",
            "reviews:9080",
            "/",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
            ],
            "",
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.header("access-control-allow-origin"), Some(origin));
        assert_eq!(got.header("access-control-allow-methods"), Some("GET,POST"));
        assert_eq!(
            got.header("access-control-allow-headers"),
            Some("x-custom,content-type")
        );
        assert_eq!(got.header("access-control-max-age"), Some("86400"));
        assert_eq!(got.header("access-control-allow-credentials"), Some("true"));
    }
    assert_eq!(v1.hits(), 0, "preflights never reach the upstream");
}

#[tokio::test]
async fn cors_preflight_from_another_origin_is_forwarded_by_default() {
    let (proxy, v1) = rewrite_proxy(CORS).await;
    let got = send(
        &h1_client(),
        proxy.addr(),
        "OPTIONS",
        "reviews:9080",
        "/",
        &[
            ("origin", "https://evil.com"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(got.text(), "v1");
    assert_eq!(v1.hits(), 1);
    assert_eq!(got.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn cors_actual_request_from_an_allowed_origin_gets_allow_origin() {
    let (proxy, v1) = rewrite_proxy(CORS).await;
    let got = send(
        &h1_client(),
        proxy.addr(),
        "GET",
        "reviews:9080",
        "/",
        &[("origin", "https://example.com")],
        "",
    )
    .await;
    assert_eq!(got.text(), "v1");
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some("https://example.com")
    );
    assert_eq!(
        got.header("access-control-expose-headers"),
        Some("x-exposed")
    );
    let got = send(
        &h1_client(),
        proxy.addr(),
        "GET",
        "reviews:9080",
        "/",
        &[("origin", "https://evil.com")],
        "",
    )
    .await;
    assert_eq!(got.text(), "v1");
    assert_eq!(got.header("access-control-allow-origin"), None);
    assert_eq!(v1.hits(), 2);
}

// ---------------------------------------------------------------- subsets and errors

#[tokio::test]
async fn route_to_an_undeclared_subset_is_503_no_cluster_found() {
    let v1 = Upstream::named("v1").await;
    let yaml = reviews(&[&v1])
        + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
" + &vs("  - route: [{destination: {host: reviews, subset: v9}}]\n");
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "");
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["response_flags"], "NC");
    assert_eq!(log[0]["response_code_details"], "cluster_not_found");
    assert_eq!(
        log[0]["upstream_cluster"],
        format!("outbound|9080|v9|{FQDN}")
    );
    assert_eq!(v1.hits(), 0);
}

#[tokio::test]
async fn subset_whose_labels_select_no_endpoint_is_503_no_healthy_upstream() {
    let v1 = Upstream::named("v1").await;
    let yaml =
        reviews(&[&v1]) + DR + &vs("  - route: [{destination: {host: reviews, subset: v3}}]\n");
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "no healthy upstream");
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["response_flags"], "UH");
    assert_eq!(log[0]["response_code_details"], "no_healthy_upstream");
    assert_eq!(v1.hits(), 0);
}

#[tokio::test]
async fn without_a_virtual_service_every_endpoint_gets_traffic_on_the_default_route() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let proxy = Proxy::start(&(reviews(&[&v1, &v2]) + DR)).await;
    for _ in 0..10 {
        assert_eq!(get(proxy.addr(), "reviews:9080", "/x").await.status, 200);
    }
    assert!(
        v1.hits() > 0 && v2.hits() > 0,
        "{} {}",
        v1.hits(),
        v2.hits()
    );
    let log = proxy.log_entries(10).await;
    assert_eq!(log[0]["route_name"], "default");
    assert_eq!(log[0]["upstream_cluster"], format!("outbound|9080||{FQDN}"));
}

#[tokio::test]
async fn virtual_service_without_destination_rule_routes_subsetless_destinations() {
    let v1 = Upstream::named("v1").await;
    let yaml = reviews(&[&v1])
        + &vs("  - name: all
    route: [{destination: {host: reviews, port: {number: 9080}}}]
");
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(got.text(), "v1");
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["route_name"], "all");
}

#[tokio::test]
async fn destination_host_not_in_the_registry_is_503_no_cluster_found() {
    let v1 = Upstream::named("v1").await;
    let yaml = reviews(&[&v1]) + &vs("  - route: [{destination: {host: nowhere.example.com}}]\n");
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(got.status, 503);
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["response_flags"], "NC");
    assert_eq!(log[0]["response_code_details"], "cluster_not_found");
    assert_eq!(
        log[0]["upstream_cluster"],
        "outbound|9080||nowhere.example.com"
    );
}

// ---------------------------------------------------------------- several resources

fn named_vs(name: &str, created: Option<&str>, body: &str, export_to: Option<&str>) -> String {
    let created = created.map_or(String::new(), |c| format!(", creationTimestamp: '{c}'"));
    let export = export_to.map_or(String::new(), |e| format!("  exportTo: [{e}]\n"));
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}{created}}}\nspec:\n  hosts: [reviews]\n{export}  http:\n  - directResponse: {{status: 200, body: {{string: {body}}}}}\n---\n"
    )
}

#[tokio::test]
async fn several_virtual_services_for_a_host_are_not_merged_the_oldest_wins() {
    let dead = dead_addr().await;
    let se = service_entry(FQDN, 9080, "HTTP", &[(dead, &[])]);
    let yaml = se.clone()
        + &named_vs("a-reviews", Some("2024-02-01T00:00:00Z"), "a", None)
        + &named_vs("b-reviews", Some("2024-01-01T00:00:00Z"), "b", None);
    let proxy = Proxy::start(&yaml).await;
    assert_eq!(get(proxy.addr(), "reviews:9080", "/").await.text(), "b");
    // Same creation time: by name.
    let yaml = se
        + &named_vs("zz-reviews", Some("2024-01-01T00:00:00Z"), "zz", None)
        + &named_vs("aa-reviews", Some("2024-01-01T00:00:00Z"), "aa", None);
    let proxy = Proxy::start(&yaml).await;
    assert_eq!(get(proxy.addr(), "reviews:9080", "/").await.text(), "aa");
}

#[tokio::test]
async fn a_delegate_virtual_service_supplies_the_routes_of_its_root_rule() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let yaml = reviews(&[&v1, &v2])
        + DR
        + &vs("  - name: root
    match: [{uri: {prefix: /api}}]
    delegate: {name: reviews-api}
  - name: catch-all
    directResponse: {status: 200, body: {string: catch-all}}
") + "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
  - name: two
    match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: one
    route: [{destination: {host: reviews, subset: v1}}]
";
    let proxy = Proxy::start(&yaml).await;
    assert_eq!(
        get(proxy.addr(), "reviews:9080", "/api/v2/x").await.text(),
        "v2"
    );
    assert_eq!(
        get(proxy.addr(), "reviews:9080", "/api/x").await.text(),
        "v1"
    );
    assert_eq!(
        get(proxy.addr(), "reviews:9080", "/other").await.text(),
        "catch-all"
    );
    let log = proxy.log_entries(3).await;
    assert_eq!(log[0]["route_name"], "root-two");
    assert_eq!(log[1]["route_name"], "root-one");
    assert_eq!(log[2]["route_name"], "catch-all");
}

#[tokio::test]
async fn virtual_service_exported_to_another_namespace_is_invisible() {
    let v1 = Upstream::named("v1").await;
    let yaml = reviews(&[&v1]) + &named_vs("reviews", None, "vs", Some("other-ns"));
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/").await;
    assert_eq!(
        got.text(),
        "v1",
        "the default route, not the VirtualService"
    );
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["route_name"], "default");
    let yaml = reviews(&[&v1]) + &named_vs("reviews", None, "vs", Some("default"));
    let proxy = Proxy::start(&yaml).await;
    assert_eq!(get(proxy.addr(), "reviews:9080", "/").await.text(), "vs");
}

// ---------------------------------------------------------------- access log

both_http2_servers!(access_log_records_the_route_the_cluster_and_the_endpoint);
async fn access_log_records_the_route_the_cluster_and_the_endpoint() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let yaml = reviews(&[&v1, &v2])
        + DR
        + &vs("  - name: jason
    match: [{name: user, headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: main
    route: [{destination: {host: reviews, subset: v1}}]
");
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/reviews/1?x=y").await;
    assert_eq!(got.text(), "v1");
    let got = h2_send(
        proxy.addr(),
        "POST",
        "reviews.default:9080",
        "/r",
        &[("end-user", "jason"), ("x-request-id", "req-42")],
        "body",
    )
    .await;
    assert_eq!(got.text(), "v2");
    let log = proxy.log_entries(2).await;
    let e = &log[0];
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/reviews/1?x=y");
    assert_eq!(e["protocol"], "HTTP/1.1");
    assert_eq!(e["response_code"], 200);
    assert_eq!(e["response_flags"], "-");
    assert_eq!(e["response_code_details"], "via_upstream");
    assert_eq!(e["authority"], "reviews:9080");
    assert_eq!(e["upstream_host"], v1.addr.to_string());
    assert_eq!(e["upstream_cluster"], format!("outbound|9080|v1|{FQDN}"));
    assert_eq!(e["route_name"], "main");
    let id = e["request_id"].as_str().expect("a request id");
    assert_eq!(id.len(), 36);
    assert_eq!(
        v1.last().headers["x-request-id"],
        id,
        "the upstream sees the same id"
    );
    let e = &log[1];
    assert_eq!(e["method"], "POST");
    assert_eq!(e["protocol"], "HTTP/2");
    assert_eq!(e["authority"], "reviews.default:9080");
    assert_eq!(e["upstream_host"], v2.addr.to_string());
    assert_eq!(e["upstream_cluster"], format!("outbound|9080|v2|{FQDN}"));
    assert_eq!(e["route_name"], "jason.user");
    assert_eq!(e["request_id"], "req-42");
    assert_eq!(e["bytes_received"], 4);
}
