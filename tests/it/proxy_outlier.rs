//! DestinationRule `outlierDetection` (istio-traffic-api.md §2.8) as a
//! client sees it: hosts answering errors are ejected and skipped, come
//! back after the ejection time, every host ejected gives 503 UH, and
//! nothing is ejected without an `outlierDetection` block.
//!
//! Ejections last only `baseEjectionTime` (200ms here), so assertions that
//! need a host to still be ejected are checked against the admin API after
//! each request instead of against the clock.

use std::net::SocketAddr;

use crate::support::*;

const HOST: &str = "a.test";
const CLUSTER: &str = "outbound|80||a.test";
const FAST: &str =
    "consecutive5xxErrors: 2, interval: 50ms, baseEjectionTime: 200ms, maxEjectionPercent: 100";

/// `a.test:80` with `endpoints`, round robin, and `outlier` (flow YAML
/// inside `outlierDetection: {...}`) when given.
fn config(endpoints: &[SocketAddr], outlier: Option<&str>) -> String {
    let mut s = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: a}}\nspec:\n  hosts: [{HOST}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: p, protocol: HTTP}}]\n  endpoints:\n"
    );
    for addr in endpoints {
        s.push_str(&format!(
            "  - {{address: {}, ports: {{p: {}}}}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    let od = outlier
        .map(|o| format!(", outlierDetection: {{{o}}}"))
        .unwrap_or_default();
    s.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: a}}\nspec:\n  host: {HOST}\n  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}{od}}}\n"
    ));
    s
}

async fn admin(proxy: &Proxy, path: &str) -> Got {
    send(
        &h1_client(),
        proxy.running.admin,
        "GET",
        "admin",
        path,
        &[],
        "",
    )
    .await
}

async fn cluster_json(proxy: &Proxy) -> serde_json::Value {
    let got = admin(proxy, "/clusters").await;
    let all: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == CLUSTER)
        .cloned()
        .expect("cluster listed")
}

/// The admin API's view of endpoint `addr`: (health, ejections).
async fn health(proxy: &Proxy, addr: SocketAddr) -> (String, u64) {
    let c = cluster_json(proxy).await;
    let e = c["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == addr.to_string())
        .cloned()
        .expect("endpoint listed");
    (
        e["health"].as_str().unwrap().to_string(),
        e["ejections"].as_u64().unwrap(),
    )
}

async fn stat(proxy: &Proxy, metric: &str) -> f64 {
    let text = admin(proxy, "/stats/prometheus").await.text();
    let prefix = format!("{metric}{{cluster_name=\"{CLUSTER}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Send requests until `bad` has seen `n` (bounded).
async fn until_hits(proxy: &Proxy, bad: &Upstream, n: usize) {
    for _ in 0..100 {
        if bad.hits() >= n {
            return;
        }
        get(proxy.addr(), HOST, "/").await;
    }
    panic!("{} saw {} requests, wanted {n}", bad.name, bad.hits());
}

#[tokio::test]
async fn consecutive_5xx_eject_the_host_and_traffic_moves_to_the_healthy_one() {
    let bad = Upstream::status("bad", 500).await;
    let good = Upstream::named("good").await;
    let proxy = Proxy::start(&config(&[bad.addr, good.addr], Some(FAST))).await;

    // Round robin: the second 500 from `bad` ejects it.
    until_hits(&proxy, &bad, 2).await;
    let (_, ejections) = health(&proxy, bad.addr).await;
    assert_eq!(ejections, 1, "one ejection after two consecutive 5xx");
    assert_eq!(
        stat(
            &proxy,
            "envoy_cluster_outlier_detection_ejections_enforced_total"
        )
        .await,
        1.0
    );
    let c = cluster_json(&proxy).await;
    assert_eq!(c["outlier_detection"]["ejections_enforced_total"], 1);
    assert_eq!(health(&proxy, good.addr).await, ("healthy".into(), 0));

    // While the admin API still shows the same ejection after a request,
    // that request cannot have reached `bad`.
    let mut verified = 0;
    for _ in 0..20 {
        let got = get(proxy.addr(), HOST, "/").await;
        let (h, n) = health(&proxy, bad.addr).await;
        if h != "ejected" || n != 1 {
            break;
        }
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "good");
        assert_eq!(bad.hits(), 2, "an ejected host gets no requests");
        verified += 1;
    }
    assert!(verified > 0, "the ejection was observed");
}

#[tokio::test]
async fn an_ejected_host_returns_after_the_ejection_time() {
    let flaky = Upstream::status("flaky", 500).await;
    let good = Upstream::named("good").await;
    let proxy = Proxy::start(&config(&[flaky.addr, good.addr], Some(FAST))).await;
    until_hits(&proxy, &flaky, 2).await;
    assert_eq!(health(&proxy, flaky.addr).await.1, 1);

    // baseEjectionTime 200ms, sweeps every 50ms: bounded poll.
    let mut back = false;
    for _ in 0..500 {
        if health(&proxy, flaky.addr).await.0 == "healthy" {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(back, "the host was un-ejected");
    // Round robin reaches it again.
    until_hits(&proxy, &flaky, 3).await;
    // One 500 since it came back: not ejected again yet.
    assert_eq!(
        stat(&proxy, "envoy_cluster_outlier_detection_ejections_active").await,
        0.0
    );
}

#[tokio::test]
async fn every_host_ejected_is_503_no_healthy_upstream() {
    let a = Upstream::status("a", 500).await;
    let b = Upstream::status("b", 500).await;
    let proxy = Proxy::start(&config(&[a.addr, b.addr], Some(FAST))).await;
    let mut uh = None;
    for i in 0..200 {
        let got = get(proxy.addr(), HOST, "/").await;
        if got.status == 503 {
            uh = Some((i, got));
            break;
        }
        assert_eq!(got.status, 500);
    }
    let (i, got) = uh.expect("both hosts ejected at some point");
    assert!(i >= 4, "two consecutive 5xx per host first");
    assert_eq!(got.text(), "no healthy upstream");
    let log = proxy.log_entries(i + 1).await;
    assert_eq!(log[i]["response_flags"], "UH", "{:?}", log[i]);
    assert_eq!(log[i]["response_code"], 503);
}

#[tokio::test]
async fn without_an_outlier_detection_block_nothing_is_ejected() {
    let bad = Upstream::status("bad", 500).await;
    let good = Upstream::named("good").await;
    let proxy = Proxy::start(&config(&[bad.addr, good.addr], None)).await;
    for _ in 0..20 {
        get(proxy.addr(), HOST, "/").await;
    }
    assert_eq!(
        bad.hits(),
        10,
        "round robin keeps sending to the failing host"
    );
    assert_eq!(health(&proxy, bad.addr).await, ("healthy".into(), 0));
    assert!(
        cluster_json(&proxy)
            .await
            .get("outlier_detection")
            .is_none()
    );
}

#[tokio::test]
async fn consecutive_gateway_errors_count_502_503_504_only() {
    let e500 = Upstream::status("e500", 500).await;
    let e503 = Upstream::status("e503", 503).await;
    let good = Upstream::named("good").await;
    let proxy = Proxy::start(&config(
        &[e500.addr, e503.addr, good.addr],
        Some(
            "consecutiveGatewayErrors: 2, consecutive5xxErrors: 0, interval: 50ms, baseEjectionTime: 200ms, maxEjectionPercent: 100",
        ),
    ))
    .await;
    until_hits(&proxy, &e503, 2).await;
    assert!(
        health(&proxy, e503.addr).await.1 >= 1,
        "503 is a gateway error"
    );
    until_hits(&proxy, &e500, 6).await;
    assert_eq!(
        health(&proxy, e500.addr).await,
        ("healthy".into(), 0),
        "500 is not a gateway error, and consecutive5xxErrors 0 is off"
    );
}

/// Issue #14: live `/explain` showed no problem while the only host was
/// ejected and requests got 503 UH; it says so, with the host's health and
/// the circuit breakers.
#[tokio::test]
async fn live_explain_shows_the_ejection_that_gives_503_uh() {
    let a = Upstream::status("a", 500).await;
    let slow_return =
        "consecutive5xxErrors: 2, interval: 50ms, baseEjectionTime: 60s, maxEjectionPercent: 100";
    let proxy = Proxy::start(&config(&[a.addr], Some(slow_return))).await;
    let mut ejected = false;
    for _ in 0..50 {
        if get(proxy.addr(), HOST, "/").await.status == 503 {
            ejected = true;
            break;
        }
    }
    assert!(ejected, "the only host is ejected");
    let got = admin(&proxy, "/explain?url=http%3A%2F%2Fa.test%2F").await;
    let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        v["destinations"][0]["endpoint_health"][0]["health"], "ejected",
        "{v}"
    );
    assert_eq!(
        v["destinations"][0]["circuit_breakers"]["active_requests"], 0,
        "{v}"
    );
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with(&format!(
                "every endpoint of {CLUSTER} is ejected by outlier detection: requests get 503 UH"
            ))),
        "{v}"
    );
}
