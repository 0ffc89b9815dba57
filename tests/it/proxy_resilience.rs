//! Timeouts, retries, fault injection and mirrors as a client of an Istio
//! sidecar sees them (istio-traffic-api.md §0.6, §1.12, §1.14, §1.15, §7).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;

/// An upstream that answers 200 `name` after `delay`.
async fn slow(name: &str, delay: Duration) -> Upstream {
    let n = name.to_string();
    Upstream::start(
        name,
        Arc::new(move |_| {
            let n = n.clone();
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Response::new(Full::new(Bytes::from(n)))
            })
        }),
    )
    .await
}

/// A ServiceEntry for `host` (port 80, HTTP) plus a VirtualService whose
/// single HTTP route is `route` (YAML, indented under `http:`).
fn config(host: &str, upstreams: &[std::net::SocketAddr], route: &str) -> String {
    let eps: Vec<(std::net::SocketAddr, &[(&str, &str)])> =
        upstreams.iter().map(|a| (*a, &[][..])).collect();
    service_entry(host, 80, "HTTP", &eps) + &vs(host, route)
}

fn vs(host: &str, route: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{}}}\nspec:\n  hosts: [{host}]\n  http:\n{route}---\n",
        host.replace('.', "-")
    )
}

/// A DestinationRule with `loadBalancer: ROUND_ROBIN` for `host`, for tests
/// that need every endpoint to get a first try (Istio's default is
/// LEAST_REQUEST, which picks among idle hosts at random).
fn round_robin(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: rr-{}}}\nspec:\n  host: {host}\n  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}\n---\n",
        host.replace('.', "-")
    )
}

/// The access-log entry of the request with `path` (waits for `n` entries).
async fn entry(proxy: &Proxy, n: usize, path: &str) -> serde_json::Value {
    proxy
        .log_entries(n)
        .await
        .into_iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no access-log entry for {path}"))
}

fn flags(e: &serde_json::Value) -> Vec<String> {
    e["response_flags"]
        .as_str()
        .unwrap_or("-")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Poll (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

// ---------------------------------------------------------------- timeouts

#[tokio::test]
async fn route_timeout_gives_504_ut_upstream_request_timeout() {
    let up = slow("slow", Duration::from_millis(1000)).await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - timeout: 100ms\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let t = Instant::now();
    let got = get(proxy.addr(), "a.test", "/t").await;
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "upstream request timeout");
    let e = entry(&proxy, 1, "/t").await;
    assert_eq!(e["response_flags"], "UT");
    assert_eq!(e["response_code_details"], "upstream_response_timeout");
    assert_eq!(up.hits(), 1, "a route timeout is not retried by default");
}

#[tokio::test]
async fn no_timeout_when_route_timeout_is_unset() {
    let up = slow("slow", Duration::from_millis(300)).await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "slow");
}

#[tokio::test]
async fn per_try_timeout_is_retried_then_504_ut() {
    let up = slow("slow", Duration::from_millis(2000)).await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - retries: {attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/p").await;
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "upstream request timeout");
    eventually("three tries", || up.hits() == 3).await;
    let f = flags(&entry(&proxy, 1, "/p").await);
    assert!(f.contains(&"UT".into()), "{f:?}");
    assert!(f.contains(&"URX".into()), "{f:?}");
}

#[tokio::test]
async fn route_timeout_caps_all_tries() {
    let up = slow("slow", Duration::from_millis(2000)).await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - timeout: 300ms\n    retries: {attempts: 5, perTryTimeout: 200ms, retryOn: 5xx}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let t = Instant::now();
    let got = get(proxy.addr(), "a.test", "/").await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "upstream request timeout");
    let hits = up.hits();
    assert!(
        (1..=2).contains(&hits),
        "the 300ms route timeout leaves room for at most 2 tries of 200ms, saw {hits}"
    );
}

// ----------------------------------------------------------------- retries

/// Istio's `DefaultPolicy()` (pilot/pkg/networking/core/route/retry/retry.go):
/// with no `retries` block, 2 retries on connect-failure (among others) and
/// the previous-hosts predicate, so a dead endpoint is skipped transparently.
#[tokio::test]
async fn istio_default_retry_policy_retries_connect_failure_on_another_endpoint() {
    let dead = dead_addr().await;
    let live = Upstream::named("live").await;
    let proxy = Proxy::start(
        &(config(
            "a.test",
            &[dead, live.addr],
            "  - route: [{destination: {host: a.test}}]\n",
        ) + &round_robin("a.test")),
    )
    .await;
    // Round robin over two endpoints: at least one of these tries `dead` first.
    for _ in 0..3 {
        let got = get(proxy.addr(), "a.test", "/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "live");
    }
    assert_eq!(live.hits(), 3);
}

/// Envoy sets UF/UT on the downstream stream info only when the failure is
/// final (router.cc `onUpstreamAbort`); a retried failure followed by a
/// success logs no flag.
#[tokio::test]
async fn a_retried_failure_that_then_succeeds_logs_no_response_flag() {
    let dead = dead_addr().await;
    let live = Upstream::named("live").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[dead, live.addr],
        "  - route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    for _ in 0..2 {
        assert_eq!(get(proxy.addr(), "a.test", "/").await.status, 200);
    }
    let log = proxy.log_entries(2).await;
    assert!(log.iter().all(|e| e["response_flags"] == "-"), "{log:?}");
}

#[tokio::test]
async fn a_retry_replays_the_request_body() {
    let dead = dead_addr().await;
    let live = Upstream::named("live").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[dead, live.addr],
        "  - route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let c = h1_client();
    for i in 0..2 {
        let body = format!("payload {i}");
        let got = send(&c, proxy.addr(), "POST", "a.test", "/", &[], &body).await;
        assert_eq!(got.status, 200);
        assert_eq!(live.last().body, body);
    }
    let got = get(proxy.addr(), "a.test", "/").await;
    assert_eq!(got.status, 200);
    let seen = live.last();
    assert!(seen.body.is_empty());
    assert!(
        !seen.headers.contains_key("transfer-encoding"),
        "a GET without a body stays without one"
    );
}

/// retry.go since Istio 1.24: the default policy has no retriable status
/// codes, so an upstream 503 reaches the client after one try.
#[tokio::test]
async fn istio_default_retry_policy_does_not_retry_upstream_503() {
    let up = Upstream::status("busy", 503).await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "busy");
    assert_eq!(up.hits(), 1);
    assert_eq!(entry(&proxy, 1, "/").await["response_flags"], "-");
}

#[tokio::test]
async fn retry_on_5xx_retries_attempts_times_then_urx() {
    let up = Upstream::status("broken", 500).await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - retries: {attempts: 3, retryOn: 5xx}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/r").await;
    assert_eq!(got.status, 500, "the last upstream response is passed on");
    assert_eq!(got.text(), "broken");
    assert_eq!(up.hits(), 4, "1 try + 3 retries");
    let f = flags(&entry(&proxy, 1, "/r").await);
    assert!(f.contains(&"URX".into()), "{f:?}");
}

#[tokio::test]
async fn retry_on_bare_status_code_retries_that_status() {
    let up503 = Upstream::status("busy", 503).await;
    let up500 = Upstream::status("broken", 500).await;
    let yaml = config(
        "a.test",
        &[up503.addr],
        "  - retries: {attempts: 2, retryOn: \"503\"}\n    route: [{destination: {host: a.test}}]\n",
    ) + &config(
        "b.test",
        &[up500.addr],
        "  - retries: {attempts: 2, retryOn: \"503\"}\n    route: [{destination: {host: b.test}}]\n",
    );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "a.test", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(up503.hits(), 3, "503 is retriable: 1 try + 2 retries");
    let got = get(proxy.addr(), "b.test", "/").await;
    assert_eq!(got.status, 500);
    assert_eq!(up500.hits(), 1, "only 503 is listed");
}

#[tokio::test]
async fn attempts_zero_disables_retries() {
    let dead = dead_addr().await;
    let live = Upstream::named("live").await;
    let proxy = Proxy::start(
        &(config(
            "a.test",
            &[dead, live.addr],
            "  - retries: {attempts: 0}\n    route: [{destination: {host: a.test}}]\n",
        ) + &round_robin("a.test")),
    )
    .await;
    // Round robin: one of two requests goes to the dead endpoint.
    let a = get(proxy.addr(), "a.test", "/1").await;
    let b = get(proxy.addr(), "a.test", "/2").await;
    let (failed, path, ok) = if a.status == 503 {
        (a, "/1", b)
    } else {
        (b, "/2", a)
    };
    assert_eq!(ok.status, 200);
    assert_eq!(failed.status, 503);
    assert!(
        failed.text().starts_with(
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        ),
        "{}",
        failed.text()
    );
    assert_eq!(entry(&proxy, 2, path).await["response_flags"], "UF");
    assert_eq!(live.hits(), 1);
}

#[tokio::test]
async fn retries_go_to_a_different_host() {
    let bad = Upstream::status("bad", 503).await;
    let good = Upstream::named("good").await;
    let proxy = Proxy::start(&(config(
        "a.test",
        &[bad.addr, good.addr],
        "  - retries: {attempts: 1, retryOn: \"503\"}\n    route: [{destination: {host: a.test}}]\n",
    ) + &round_robin("a.test")))
    .await;
    for _ in 0..4 {
        let got = get(proxy.addr(), "a.test", "/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "good");
    }
    assert!(bad.hits() >= 1, "round robin sent some first tries to bad");
}

#[tokio::test]
async fn connect_failure_after_all_default_retries_is_503_uf_urx() {
    let dead = dead_addr().await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[dead],
        "  - route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/").await;
    assert_eq!(got.status, 503);
    assert!(
        got.text()
            .starts_with("upstream connect error or disconnect/reset before headers"),
        "{}",
        got.text()
    );
    assert_eq!(entry(&proxy, 1, "/").await["response_flags"], "UF,URX");
}

// --------------------------------------------------------- fault injection

#[tokio::test]
async fn fault_abort_http_status_answers_without_calling_upstream() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/f").await;
    assert_eq!(got.status, 418);
    assert_eq!(got.text(), "fault filter abort");
    assert_eq!(up.hits(), 0);
    assert_eq!(entry(&proxy, 1, "/f").await["response_flags"], "FI");
}

both_http2_servers!(fault_abort_grpc_status_gives_grpc_status_to_grpc_callers);
async fn fault_abort_grpc_status_gives_grpc_status_to_grpc_callers() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = h2_send(
        proxy.addr(),
        "POST",
        "a.test",
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc"), ("te", "trailers")],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("grpc-status"), Some("14"));
    assert_eq!(up.hits(), 0);
    assert_eq!(
        entry(&proxy, 1, "/pkg.Svc/Call").await["response_flags"],
        "FI"
    );
}

both_http2_servers!(fault_abort_http_status_to_a_grpc_caller_is_a_grpc_local_reply);
/// A gRPC request on a `httpStatus` abort gets Envoy's gRPC local reply
/// (`Utility::sendLocalReply`: HTTP 200, `grpc-status` from
/// `httpToGrpcStatus`, the body text as `grpc-message`), not HTTP/2 500
/// text/plain; the access log names the route's cluster, as Envoy's does
/// (it picks the cluster with the route, before the fault filter). #14
async fn fault_abort_http_status_to_a_grpc_caller_is_a_grpc_local_reply() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - fault: {abort: {httpStatus: 500, percentage: {value: 100}}}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = h2_send(
        proxy.addr(),
        "POST",
        "a.test",
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc"), ("te", "trailers")],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/grpc"));
    assert_eq!(got.header("grpc-status"), Some("2"));
    assert_eq!(got.header("grpc-message"), Some("fault filter abort"));
    assert!(got.body.is_empty());
    assert_eq!(up.hits(), 0);
    let e = entry(&proxy, 1, "/pkg.Svc/Call").await;
    assert_eq!(e["response_flags"], "FI");
    assert_eq!(e["upstream_cluster"], "outbound|80||a.test");
    assert_eq!(e["upstream_host"], serde_json::Value::Null);
}

/// Envoy's `abortStatus`: a `grpcStatus` abort is sent with HTTP 200, so a
/// caller that is not gRPC gets 200 "fault filter abort". #14
#[tokio::test]
async fn fault_abort_grpc_status_to_a_plain_http_caller_is_200() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let got = get(proxy.addr(), "a.test", "/plain").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "fault filter abort");
    assert_eq!(got.header("grpc-status"), None);
    assert_eq!(up.hits(), 0);
    let e = entry(&proxy, 1, "/plain").await;
    assert_eq!(e["response_flags"], "FI");
    assert_eq!(e["upstream_cluster"], "outbound|80||a.test");
}

#[tokio::test]
async fn fault_delay_holds_the_request_at_least_the_delay() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    let t = Instant::now();
    let got = get(proxy.addr(), "a.test", "/d").await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "up");
    assert_eq!(up.hits(), 1);
    assert_eq!(entry(&proxy, 1, "/d").await["response_flags"], "DI");
}

#[tokio::test]
async fn fault_percentage_zero_never_fires() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        "a.test",
        &[up.addr],
        "  - fault:\n      abort: {httpStatus: 500, percentage: {value: 0}}\n      delay: {fixedDelay: 5s, percentage: {value: 0}}\n    route: [{destination: {host: a.test}}]\n",
    ))
    .await;
    for _ in 0..20 {
        let got = get(proxy.addr(), "a.test", "/z").await;
        assert_eq!(got.status, 200);
    }
    assert_eq!(up.hits(), 20);
    let log = proxy.log_entries(20).await;
    assert!(log.iter().all(|e| e["response_flags"] == "-"));
}

// ----------------------------------------------------------------- mirrors

fn two_hosts(primary: &Upstream, shadow: &Upstream, route: &str) -> String {
    service_entry("shadow.test", 80, "HTTP", &[(shadow.addr, &[])])
        + &config("a.test", &[primary.addr], route)
}

#[tokio::test]
async fn mirror_receives_a_copy_and_the_client_gets_the_primary_response() {
    let primary = Upstream::named("primary").await;
    let shadow = Upstream::named("shadow").await;
    let proxy = Proxy::start(&two_hosts(
        &primary,
        &shadow,
        "  - route: [{destination: {host: a.test}}]\n    mirror: {host: shadow.test}\n    mirrorPercentage: {value: 100}\n",
    ))
    .await;
    let got = send(
        &h1_client(),
        proxy.addr(),
        "POST",
        "a.test",
        "/m?q=1",
        &[],
        "payload",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "primary");
    eventually("the mirror gets a copy", || shadow.hits() == 1).await;
    let copy = shadow.last();
    assert_eq!(copy.method, "POST");
    assert_eq!(copy.uri, "/m?q=1");
    assert_eq!(copy.body, "payload");
    assert_eq!(
        copy.headers["host"], "a.test",
        "no -shadow suffix since Istio 1.28"
    );
}

#[tokio::test]
async fn slow_mirror_does_not_delay_the_client() {
    let primary = Upstream::named("primary").await;
    // The mirror answers only once the test has its response: if the client
    // waited for the mirror, this would never finish.
    let (release, gate) = tokio::sync::watch::channel(false);
    let shadow = Upstream::start(
        "shadow",
        Arc::new(move |_| {
            let mut gate = gate.clone();
            Box::pin(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), gate.wait_for(|r| *r)).await;
                Response::new(Full::new(Bytes::from("shadow")))
            })
        }),
    )
    .await;
    let proxy = Proxy::start(&two_hosts(
        &primary,
        &shadow,
        "  - route: [{destination: {host: a.test}}]\n    mirror: {host: shadow.test}\n    mirrorPercentage: {value: 100}\n",
    ))
    .await;
    for _ in 0..3 {
        let got = get(proxy.addr(), "a.test", "/").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.text(), "primary");
    }
    eventually("the mirror got every copy", || shadow.hits() == 3).await;
    let _ = release.send(true);
}

#[tokio::test]
async fn mirror_percentage_zero_never_mirrors() {
    let primary = Upstream::named("primary").await;
    let shadow = Upstream::named("shadow").await;
    // A second route mirrors everything to the same upstream: once its copy
    // has arrived, copies of the earlier requests would have too.
    let proxy = Proxy::start(&two_hosts(
        &primary,
        &shadow,
        "  - match: [{uri: {prefix: /sentinel}}]\n    route: [{destination: {host: a.test}}]\n    mirror: {host: shadow.test}\n  - route: [{destination: {host: a.test}}]\n    mirror: {host: shadow.test}\n    mirrorPercentage: {value: 0}\n",
    ))
    .await;
    for _ in 0..10 {
        assert_eq!(get(proxy.addr(), "a.test", "/zero").await.status, 200);
    }
    assert_eq!(get(proxy.addr(), "a.test", "/sentinel").await.status, 200);
    eventually("the sentinel copy", || shadow.hits() >= 1).await;
    let paths: Vec<String> = shadow
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.uri.clone())
        .collect();
    assert_eq!(paths, ["/sentinel"]);
    assert_eq!(primary.hits(), 11);
}

#[tokio::test]
async fn mirrors_list_copies_to_every_mirror() {
    let primary = Upstream::named("primary").await;
    let s1 = Upstream::named("s1").await;
    let s2 = Upstream::named("s2").await;
    let yaml = service_entry("s1.test", 80, "HTTP", &[(s1.addr, &[])])
        + &service_entry("s2.test", 80, "HTTP", &[(s2.addr, &[])])
        + &config(
            "a.test",
            &[primary.addr],
            "  - route: [{destination: {host: a.test}}]\n    mirrors:\n    - destination: {host: s1.test}\n    - destination: {host: s2.test}\n      percentage: {value: 100}\n",
        );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "a.test", "/ml").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "primary");
    eventually("both mirrors get a copy", || {
        s1.hits() == 1 && s2.hits() == 1
    })
    .await;
    assert_eq!(s1.last().uri, "/ml");
    assert_eq!(s2.last().uri, "/ml");
}
