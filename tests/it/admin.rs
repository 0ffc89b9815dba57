//! The admin listener: readiness, Istio metrics after known traffic, config
//! dump, clusters, routes, live explain, logging level.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

async fn admin_get(admin: SocketAddr, path: &str) -> Got {
    send(&h1_client(), admin, "GET", "admin", path, &[], "").await
}

fn config(v1: SocketAddr) -> String {
    service_entry(
        "reviews.default.svc.cluster.local",
        9080,
        "HTTP",
        &[(v1, &[("version", "v1")])],
    ) + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 2}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: nowhere
    match: [{uri: {prefix: /nowhere}}]
    route: [{destination: {host: reviews, subset: v9}}]
  - name: main
    match: [{uri: {prefix: /}}]
    route: [{destination: {host: reviews, subset: v1}}]
"
}

/// Value of the sample whose line contains every `needle`.
fn sample(text: &str, metric: &str, needles: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_known_traffic_with_istio_labels() {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&config(v1.addr)).await;
    for _ in 0..3 {
        assert_eq!(get(proxy.addr(), "reviews:9080", "/ok").await.status, 200);
    }
    assert_eq!(
        get(proxy.addr(), "reviews:9080", "/nowhere").await.status,
        503
    );
    assert_eq!(get(proxy.addr(), "unknown:80", "/").await.status, 404);
    let admin = proxy.running.admin;
    // Metrics are recorded when each response stream ends: poll briefly.
    let mut text = String::new();
    for _ in 0..100 {
        let got = admin_get(admin, "/stats/prometheus").await;
        assert_eq!(got.status, 200);
        assert!(
            got.header("content-type")
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        text = got.text();
        if sample(&text, "istio_requests_total", &["response_code=\"404\""]).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ok = [
        "reporter=\"source\"",
        "destination_service=\"reviews.default.svc.cluster.local\"",
        "destination_service_name=\"reviews\"",
        "destination_service_namespace=\"default\"",
        "destination_version=\"v1\"",
        "request_protocol=\"http\"",
        "response_code=\"200\"",
        "response_flags=\"-\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &ok),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &["response_code=\"404\"", "response_flags=\"NR\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "istio_requests_total",
            &["response_code=\"503\"", "response_flags=\"NC\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "istio_request_duration_milliseconds_count",
            &["response_code=\"200\""]
        ),
        Some(3.0)
    );
    assert!(text.contains("istio_request_bytes_bucket{"));
    assert!(text.contains("istio_response_bytes_sum{"));
    assert_eq!(
        sample(
            &text,
            "envoy_cluster_upstream_rq_total",
            &["cluster_name=\"outbound|9080|v1|reviews.default.svc.cluster.local\""]
        ),
        Some(3.0)
    );
    assert!(
        sample(
            &text,
            "envoy_cluster_upstream_cx_active",
            &["cluster_name=\"outbound|9080|v1|reviews.default.svc.cluster.local\""]
        )
        .is_some_and(|v| v >= 1.0),
        "keep-alive connections to v1 are open"
    );
    assert!(text.ends_with("# EOF\n"), "valid OpenMetrics exposition");
    // Issue #14: Envoy's plain `/stats`, as Istio's tasks grep it.
    let stats = admin_get(proxy.running.admin, "/stats").await.text();
    assert!(
        stats.lines().any(|l| l
            == "cluster.outbound|9080|v1|reviews.default.svc.cluster.local.upstream_rq_total: 3"),
        "{stats}"
    );
}

/// Istio's `destination_version` is the serving workload's `version`
/// label (the stats filter's upstream peer), not the subset's name; a
/// workload without one, or a request no endpoint served, is `unknown`. #14
#[tokio::test]
async fn destination_version_is_the_endpoints_version_label_not_the_subset() {
    let labelled = Upstream::named("labelled").await;
    let bare = Upstream::named("bare").await;
    let yaml = service_entry(
        "ratings.default.svc.cluster.local",
        9080,
        "HTTP",
        &[(labelled.addr, &[("version", "v2")])],
    ) + &service_entry(
        "plain.default.svc.cluster.local",
        80,
        "HTTP",
        &[(bare.addr, &[])],
    ) + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets: [{name: stable, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 100}}}
    route: [{destination: {host: ratings, subset: stable}}]
  - route: [{destination: {host: ratings, subset: stable}}]
";
    let proxy = Proxy::start(&yaml).await;
    assert_eq!(get(proxy.addr(), "ratings:9080", "/r").await.status, 200);
    assert_eq!(
        get(proxy.addr(), "ratings:9080", "/abort").await.status,
        500
    );
    assert_eq!(
        get(proxy.addr(), "plain.default.svc.cluster.local", "/p")
            .await
            .status,
        200
    );
    let mut text = String::new();
    for _ in 0..100 {
        text = admin_get(proxy.running.admin, "/stats/prometheus")
            .await
            .text();
        if text.matches("istio_requests_total{").count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let served = |service: &str, code: &str, version: &str| {
        sample(
            &text,
            "istio_requests_total",
            &[
                &format!("destination_service_name=\"{service}\""),
                &format!("response_code=\"{code}\""),
                &format!("destination_version=\"{version}\""),
            ],
        )
    };
    assert_eq!(served("ratings", "200", "v2"), Some(1.0), "{text}");
    assert_eq!(served("ratings", "500", "unknown"), Some(1.0), "{text}");
    assert_eq!(served("plain", "200", "unknown"), Some(1.0), "{text}");
    assert!(!text.contains("destination_version=\"stable\""), "{text}");
}

/// Issue #14: `/routes` showed two routes to the same destination alike;
/// each route shows its match, fault, timeout and retries.
#[tokio::test]
async fn routes_show_match_fault_timeout_and_retries() {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(
        &(service_entry(
            "reviews.default.svc.cluster.local",
            9080,
            "HTTP",
            &[(v1.addr, &[])],
        ) + "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 50}}
      abort: {httpStatus: 503, percentage: {value: 10}}
    timeout: 3s
    route: [{destination: {host: reviews}}]
  - retries: {attempts: 5, perTryTimeout: 1s}
    route: [{destination: {host: reviews}}]
"),
    )
    .await;
    let routes: serde_json::Value =
        serde_json::from_slice(&admin_get(proxy.running.admin, "/routes").await.body).unwrap();
    let (jason, rest) = (&routes[0]["routes"][0], &routes[0]["routes"][1]);
    assert_eq!(
        jason["match"]["headers"]["end-user"], "exact \"jason\"",
        "{routes}"
    );
    assert_eq!(jason["timeout_ms"], 3000, "{routes}");
    assert_eq!(jason["fault"]["delay"]["ms"], 7000, "{routes}");
    assert_eq!(jason["fault"]["delay"]["percent"], 50.0, "{routes}");
    assert_eq!(jason["fault"]["abort"]["status"], "HTTP 503", "{routes}");
    assert_eq!(jason["fault"]["abort"]["percent"], 10.0, "{routes}");
    assert!(rest["fault"].is_null(), "{routes}");
    assert!(rest["timeout_ms"].is_null(), "{routes}");
    assert_eq!(rest["retries"]["attempts"], 5, "{routes}");
    assert_eq!(rest["retries"]["per_try_timeout_ms"], 1000, "{routes}");
    assert_eq!(
        jason["action"], rest["action"],
        "the same destination: only the fields above tell them apart"
    );
}

/// Issue #14: live `/explain` ignored runtime state; with the cluster's
/// `http2MaxRequests` in flight it shows the circuit breaker and says that
/// new requests get 503 UO, which the proxy then answers.
#[tokio::test]
async fn live_explain_shows_the_circuit_breaker_that_gives_503_uo() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let (r, a) = (release.clone(), arrived.clone());
    let slow = Upstream::start(
        "slow",
        std::sync::Arc::new(move |_| {
            let (r, a) = (r.clone(), a.clone());
            Box::pin(async move {
                a.notify_one();
                r.notified().await;
                http::Response::new(http_body_util::Full::new(bytes::Bytes::from("done")))
            })
        }),
    )
    .await;
    let proxy = Proxy::start(
        &(service_entry("slow.test", 80, "HTTP", &[(slow.addr, &[])])
            + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: slow}
spec:
  host: slow.test
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}
"),
    )
    .await;
    let listen = proxy.addr();
    let held = tokio::spawn(async move { get(listen, "slow.test", "/").await });
    arrived.notified().await;
    let got = admin_get(
        proxy.running.admin,
        "/explain?url=http%3A%2F%2Fslow.test%2F",
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    let cb = &v["destinations"][0]["circuit_breakers"];
    assert_eq!(cb["active_requests"], 1, "{v}");
    assert_eq!(cb["max_requests"], 1, "{v}");
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p.as_str().unwrap()
            == "outbound|80||slow.test has 1 requests in flight, its http2MaxRequests: new requests get 503 UO"),
        "{v}"
    );
    let over = get(listen, "slow.test", "/").await;
    assert_eq!(over.status, 503, "what /explain said");
    release.notify_one();
    assert_eq!(held.await.unwrap().text(), "done");
}

#[tokio::test]
async fn admin_endpoints_describe_the_live_configuration() {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&config(v1.addr)).await;
    let admin = proxy.running.admin;
    let ready = admin_get(admin, "/ready").await;
    assert_eq!(
        (ready.status.as_u16(), ready.text().as_str()),
        (200, "LIVE\n")
    );

    let clusters: serde_json::Value =
        serde_json::from_slice(&admin_get(admin, "/clusters").await.body).unwrap();
    let names: Vec<&str> = clusters
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local"
        ]
    );
    assert_eq!(clusters[0]["endpoints"][0]["address"], v1.addr.to_string());
    // Issue #14: all four of Envoy's thresholds; unset is Envoy's 2^32-1.
    let cb = &clusters[0]["circuit_breakers"];
    assert_eq!(cb["max_connections"], 1);
    assert_eq!(cb["max_pending_requests"], 2);
    assert_eq!(cb["max_requests"], 4294967295u64);

    let routes: serde_json::Value =
        serde_json::from_slice(&admin_get(admin, "/routes").await.body).unwrap();
    assert_eq!(routes[0]["virtual_service"], "default/reviews");
    assert_eq!(routes[0]["routes"][1]["name"], "main");
    // Issue #14: what tells two routes apart, and what each does.
    assert_eq!(
        routes[0]["routes"][0]["match"]["uri"],
        "prefix \"/nowhere\""
    );
    assert_eq!(routes[0]["routes"][1]["match"]["uri"], "prefix \"/\"");
    assert_eq!(
        routes[0]["routes"][1]["retries"]["attempts"], 2,
        "Istio's default"
    );
    assert!(routes[0]["routes"][1]["timeout_ms"].is_null());

    strait::logging::init(strait::logging::LogFormat::Text);
    let post = send(
        &h1_client(),
        admin,
        "POST",
        "admin",
        "/logging?level=info",
        &[],
        "",
    )
    .await;
    assert_eq!(post.status, 200);
    let bad = send(
        &h1_client(),
        admin,
        "POST",
        "admin",
        "/logging?level=no%20such%20level%5B",
        &[],
        "",
    )
    .await;
    assert_eq!(bad.status, 400);
    let wrong_method = send(&h1_client(), admin, "POST", "admin", "/ready", &[], "").await;
    assert_eq!(wrong_method.status, 405);
    // The level is the process's: put it back for the other tests in this
    // binary.
    send(
        &h1_client(),
        admin,
        "POST",
        "admin",
        "/logging?level=warn",
        &[],
        "",
    )
    .await;
}

#[tokio::test]
async fn live_explain_uses_the_running_configuration() {
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&config(v1.addr)).await;
    // The harness compiles without recording the config; record it as `run` does.
    let cfg = strait::load::load_str(
        &config(v1.addr),
        "test.yaml",
        &strait::load::LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    proxy
        .running
        .shared
        .record_config(std::sync::Arc::new(cfg), "now".into(), Vec::new());
    let got = admin_get(
        proxy.running.admin,
        "/explain?url=http%3A%2F%2Freviews%3A9080%2Fnowhere",
    )
    .await;
    assert_eq!(got.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["route"]["name"], "nowhere");
    assert!(v["problems"][0].as_str().unwrap().contains("503 NC"));
    let got = admin_get(
        proxy.running.admin,
        "/explain?url=http%3A%2F%2Freviews%3A9080%2F",
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["route"]["name"], "main");
    assert_eq!(
        v["destinations"][0]["endpoint_health"][0]["health"], "healthy",
        "{v}"
    );
    let dump: serde_json::Value =
        serde_json::from_slice(&admin_get(proxy.running.admin, "/config_dump").await.body).unwrap();
    assert_eq!(dump["version_info"], "1");
    let kinds: Vec<&str> = dump["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["DestinationRule", "ServiceEntry", "VirtualService"],
        "deterministic order"
    );
}
