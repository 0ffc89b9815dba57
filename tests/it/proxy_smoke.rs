//! The harness itself and the basic path: a request reaches the upstream a
//! VirtualService picks, over HTTP/1.1 and h2c.

use crate::support::*;

both_http2_servers!(routes_to_the_subset_the_virtual_service_picks);
async fn routes_to_the_subset_the_virtual_service_picks() {
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let yaml = service_entry(
        "reviews.default.svc.cluster.local",
        9080,
        "HTTP",
        &[
            (v1.addr, &[("version", "v1")]),
            (v2.addr, &[("version", "v2")]),
        ],
    ) + "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
";
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "reviews:9080", "/x").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "v2");
    assert_eq!(v1.hits(), 0);
    assert_eq!(
        v2.last().headers["host"],
        "reviews:9080",
        "the upstream sees the original authority"
    );
    let got = h2_send(
        proxy.addr(),
        "GET",
        "reviews.default.svc.cluster.local:9080",
        "/y",
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "v2");
    let log = proxy.log_entries(2).await;
    assert_eq!(
        log[0]["upstream_cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(log[0]["response_flags"], "-");
    assert_eq!(log[1]["protocol"], "HTTP/2");
}
