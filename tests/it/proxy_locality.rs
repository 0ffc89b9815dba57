//! Locality load balancing (`localityLbSetting`, istio-traffic-api.md §2.6)
//! as a client of a sidecar started with `--locality` sees it: failover
//! priorities only with outlier detection, failover when the local
//! endpoints are ejected, and `distribute` weights.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use crate::support::*;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;

const HOST: &str = "a.test";

/// A ServiceEntry for `a.test:80` with `(address, locality)` endpoints, a
/// route to it, and a DestinationRule with `policy` (flow YAML).
fn config(endpoints: &[(SocketAddr, &str)], policy: &str) -> String {
    let mut s = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: a}}\nspec:\n  hosts: [{HOST}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: p, protocol: HTTP}}]\n  endpoints:\n"
    );
    for (addr, locality) in endpoints {
        s.push_str(&format!(
            "  - {{address: {}, ports: {{p: {}}}, locality: {locality}}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    s.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: a}}\nspec:\n  hosts: [{HOST}]\n  http:\n  - route: [{{destination: {{host: {HOST}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: a}}\nspec:\n  host: {HOST}\n  trafficPolicy: {policy}\n"
    ));
    s
}

async fn proxy_in(locality: &str, yaml: &str) -> Proxy {
    Proxy::start_as(
        yaml,
        strait::compile::ProxyIdentity {
            locality: locality.into(),
            ..Default::default()
        },
    )
    .await
}

/// Requests answered by each of `names` (by response body), over `n`.
async fn shares(proxy: &Proxy, names: &[&str], n: usize) -> Vec<usize> {
    let mut c = vec![0; names.len()];
    for _ in 0..n {
        let text = get(proxy.addr(), HOST, "/").await.text();
        c[names
            .iter()
            .position(|n| *n == text)
            .expect("known upstream")] += 1;
    }
    c
}

/// An upstream answering `status` (changeable) with body `name`.
async fn switchable(name: &str, status: Arc<AtomicU16>) -> Upstream {
    let n = name.to_string();
    Upstream::start(
        name,
        Arc::new(move |_| {
            let (n, status) = (n.clone(), status.clone());
            Box::pin(async move {
                Response::builder()
                    .status(status.load(Ordering::SeqCst))
                    .body(Full::new(Bytes::from(n)))
                    .unwrap()
            })
        }),
    )
    .await
}

const OD: &str = "outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}";

/// With outlier detection, Istio gives the proxy's own locality priority
/// 0 and other regions a lower one: all traffic stays local until outlier
/// detection ejects the local endpoint, then it fails over.
#[tokio::test]
async fn traffic_stays_local_and_fails_over_when_the_local_endpoint_is_ejected() {
    let status = Arc::new(AtomicU16::new(200));
    let local = switchable("local", status.clone()).await;
    let remote = Upstream::named("remote").await;
    let yaml = config(
        &[(remote.addr, "us-west/b"), (local.addr, "us-east/a")],
        &format!("{{{OD}}}"),
    );
    let proxy = proxy_in("us-east/a", &yaml).await;
    assert_eq!(shares(&proxy, &["local", "remote"], 40).await, vec![40, 0]);

    // The local endpoint starts failing: its first 500 ejects it.
    status.store(500, Ordering::SeqCst);
    let got = get(proxy.addr(), HOST, "/").await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (500, "local"));
    assert_eq!(shares(&proxy, &["local", "remote"], 40).await, vec![0, 40]);
}

/// Without outlier detection Istio sets no failover priorities: every
/// locality shares the traffic.
#[tokio::test]
async fn without_outlier_detection_every_locality_gets_traffic() {
    let local = Upstream::named("local").await;
    let remote = Upstream::named("remote").await;
    let yaml = config(
        &[(remote.addr, "us-west/b"), (local.addr, "us-east/a")],
        "{loadBalancer: {simple: ROUND_ROBIN}}",
    );
    let proxy = proxy_in("us-east/a", &yaml).await;
    assert_eq!(shares(&proxy, &["local", "remote"], 40).await, vec![20, 20]);
}

/// `distribute` sends each locality its share of the proxy's traffic.
#[tokio::test]
async fn distribute_splits_traffic_between_localities() {
    let east = Upstream::named("east").await;
    let west = Upstream::named("west").await;
    let yaml = config(
        &[(east.addr, "us-east/a"), (west.addr, "us-west/b")],
        "{loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {distribute: [{from: us-east/a/*, to: {\"us-east/a/*\": 80, \"us-west/b/*\": 20}}]}}}",
    );
    let proxy = proxy_in("us-east/a", &yaml).await;
    let c = shares(&proxy, &["east", "west"], 500).await;
    // Expected 400 / 100 (standard deviation 9): bounds many deviations wide.
    assert!(c[1] >= 55 && c[1] <= 150, "{c:?}");
}
