//! TCP services on the sidecar listener (`--listen`): a connection whose
//! destination address and port are a TCP service's (a ServiceEntry
//! `addresses` entry here; strait listens on that loopback address) is
//! proxied at once, without sniffing, through the VirtualService `tcp`
//! rules for the service's host as pilot builds a sidecar's outbound TCP
//! listener (`pilot/pkg/networking/core/listener.go`
//! `buildSidecarOutboundListener`, `tls.go`
//! `buildSidecarOutboundTCPFilterChainOpts`, `networkfilter.go`
//! `buildOutboundNetworkFiltersWithWeightedClusters`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Proxy, Upstream, dead_addr, get, greeting, server_first, service_entry};

/// `db.internal` on `address` and the listener's port with `protocol`,
/// endpoints `(address, version)`, subsets `v1` and `v2`.
fn db(address: &str, listen: SocketAddr, protocol: &str, eps: &[(SocketAddr, &str)]) -> String {
    let mut s = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db.internal]
  addresses: [{address}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: db, protocol: {protocol}}}]
  endpoints:
",
        port = listen.port()
    );
    for (a, v) in eps {
        s.push_str(&format!(
            "  - {{address: {}, ports: {{db: {}}}, labels: {{version: {v}}}}}\n",
            a.ip(),
            a.port()
        ));
    }
    s.push_str(
        "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.internal
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
",
    );
    s
}

fn vs(tcp: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db.internal]
  tcp:
{tcp}---
"
    )
}

/// No VirtualService: the service's own cluster, the upstream speaking
/// first (nothing is awaited from the client), bytes both ways, an
/// access-log entry and TCP metrics as on a gateway TCP port. A
/// destination that is no TCP service's is still sniffed: HTTP works.
#[tokio::test]
async fn a_server_first_protocol_reaches_its_service_by_destination_address() {
    let mysql = server_first("mysql").await;
    let web = Upstream::named("web").await;
    let http = service_entry("web.internal", 80, "HTTP", &[(web.addr, &[])]);
    let proxy = Proxy::start_at("127.0.2.1", |listen| {
        format!(
            "{}{http}",
            db("127.0.2.1", listen, "MYSQL", &[(mysql, "v1")])
        )
    })
    .await;
    let at = proxy.addr();
    let mut s = TcpStream::connect(at).await.unwrap();
    let mut hello = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut hello))
        .await
        .expect("the upstream's greeting, with nothing sent first")
        .unwrap();
    assert_eq!(&hello, b"mysql");
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    drop(s);
    let e = &proxy.log_entries(1).await[0];
    let cluster = format!("outbound|{}||db.internal", at.port());
    assert_eq!(e["upstream_cluster"], cluster.as_str(), "{e}");
    assert_eq!(e["route_name"], cluster.as_str(), "{e}");
    assert_eq!(e["upstream_host"], mysql.to_string(), "{e}");
    assert_eq!(e["downstream_local_address"], at.to_string(), "{e}");
    assert_eq!(e["response_flags"], "-", "{e}");
    assert_eq!(
        (e["bytes_sent"].as_u64(), e["bytes_received"].as_u64()),
        (Some(9), Some(4))
    );
    let metrics = proxy.running.shared.metrics.encode();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total{")
                && l.contains("destination_service=\"db.internal\"")),
        "{metrics}"
    );

    // The same listener with the service's address elsewhere: sniffed,
    // so HTTP is served as before.
    proxy.install(&format!(
        "{}{http}",
        db("127.0.2.2", at, "MYSQL", &[(mysql, "v1")])
    ));
    let r = get(at, "web.internal", "/").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "web"));
}

/// A `tcp` rule's weights over subsets (`buildOutboundNetworkFiltersWithWeightedClusters`),
/// its `port` match being the service port.
#[tokio::test]
async fn a_tcp_rule_splits_connections_over_subsets_by_weight() {
    let a = server_first("a").await;
    let b = server_first("b").await;
    let proxy = Proxy::start_at("127.0.2.3", |listen| {
        format!(
            "{}{}",
            db("127.0.2.3", listen, "TCP", &[(a, "v1"), (b, "v2")]),
            vs(&format!(
                "  - match: [{{port: {}}}]
    route:
    - {{destination: {{host: db.internal, subset: v1}}, weight: 50}}
    - {{destination: {{host: db.internal, subset: v2}}, weight: 50}}
",
                listen.port()
            ))
        )
    })
    .await;
    let (mut seen_a, mut seen_b) = (0, 0);
    for _ in 0..40 {
        match greeting(proxy.addr()).await.as_str() {
            "a" => seen_a += 1,
            "b" => seen_b += 1,
            other => panic!("unexpected greeting {other:?}"),
        }
    }
    assert!(seen_a > 0 && seen_b > 0, "a={seen_a} b={seen_b}");
    let log = proxy.log_entries(40).await;
    let port = proxy.addr().port();
    // The live /explain of the destination shows the rule the proxy took.
    let r = get(
        proxy.running.admin,
        "admin",
        &format!("/explain?url=tcp://{}", proxy.addr()),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["tcp"]["route"], "default/db#tcp[0]", "{v}");
    assert_eq!(v["destinations"].as_array().map(Vec::len), Some(2), "{v}");
    for e in &log {
        assert_eq!(e["route_name"], "default/db#tcp[0]", "{e}");
        let c = e["upstream_cluster"].as_str().unwrap();
        assert!(
            c == format!("outbound|{port}|v1|db.internal")
                || c == format!("outbound|{port}|v2|db.internal"),
            "{c}"
        );
    }
}

/// `destinationSubnets` decide by the destination address: a rule whose
/// subnets hold the listener's address takes its connections, and one
/// whose subnets do not leaves them to the service's own cluster.
#[tokio::test]
async fn destination_subnets_match_the_connections_destination() {
    let a = server_first("a").await;
    let b = server_first("b").await;
    let rule = |subnet: &str| {
        vs(&format!(
            "  - match: [{{destinationSubnets: [{subnet}]}}]
    route: [{{destination: {{host: db.internal, subset: v2}}}}]
"
        ))
    };
    let proxy = Proxy::start_at("127.0.3.7", |listen| {
        format!(
            "{}{}",
            db("127.0.3.0/24", listen, "TCP", &[(a, "v1"), (b, "v2")]),
            rule("127.0.3.7/32")
        )
    })
    .await;
    let at = proxy.addr();
    // Subset v2 only (b), never the service's cluster over both.
    for _ in 0..10 {
        assert_eq!(greeting(at).await, "b");
    }
    proxy.install(&format!(
        "{}{}",
        db("127.0.3.0/24", at, "TCP", &[(a, "v1")]),
        rule("127.0.4.0/24")
    ));
    assert_eq!(greeting(at).await, "a");
    let log = proxy.log_entries(11).await;
    assert_eq!(log[0]["route_name"], "default/db#tcp[0]");
    assert_eq!(
        log[10]["upstream_cluster"],
        format!("outbound|{}||db.internal", at.port())
    );
}

/// Failures are the gateway tcp_proxy's: a refused connect closes with
/// UF, a rule naming no known service with NC.
#[tokio::test]
async fn a_failed_upstream_is_uf_and_an_unknown_destination_nc() {
    let dead = dead_addr().await;
    let proxy = Proxy::start_at("127.0.2.4", |listen| {
        db("127.0.2.4", listen, "TCP", &[(dead, "v1")])
    })
    .await;
    let at = proxy.addr();
    assert_eq!(greeting(at).await, "");
    let e = &proxy.log_entries(1).await[0];
    assert_eq!(e["response_flags"], "UF", "{e}");
    proxy.install(&format!(
        "{}{}",
        db("127.0.2.4", at, "TCP", &[(dead, "v1")]),
        vs("  - route: [{destination: {host: nowhere.internal}}]\n")
    ));
    assert_eq!(greeting(at).await, "");
    let e = &proxy.log_entries(2).await[1];
    assert_eq!(e["response_flags"], "NC", "{e}");
}
