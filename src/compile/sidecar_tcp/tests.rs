//! The sidecar's TCP listeners as pilot builds them
//! (`pilot/pkg/networking/core/listener.go` `buildSidecarOutboundListener`,
//! `tls.go` `buildSidecarOutboundTCPFilterChainOpts`, `matchTCP`).

use super::*;
use crate::compile::{Snapshot, compile};
use crate::load::{LoadOptions, load_str};

fn snap_as(yaml: &str, labels: &[(&str, &str)]) -> Snapshot {
    let cfg = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    let opts = ProxyIdentity {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    compile(&cfg, &opts)
}

fn snap(yaml: &str) -> Snapshot {
    snap_as(yaml, &[])
}

const DB: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.internal]
  addresses: [240.0.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.internal
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
";

fn dst(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The chain a connection to `to` takes: its route name and clusters.
fn picked(s: &Snapshot, to: &str) -> Option<(String, Vec<String>)> {
    let (_, c) = s.tcp.select(dst(to))?;
    Some((
        c.name(),
        c.destinations
            .iter()
            .map(|d| format!("{}={}", d.cluster.name, d.cluster.weight))
            .collect(),
    ))
}

#[test]
fn cidrs_parse_mask_and_contain() {
    let c = Cidr::parse("10.1.2.3/8").unwrap();
    assert_eq!(c.to_string(), "10.0.0.0/8");
    assert!(c.contains("10.200.0.1".parse().unwrap()));
    assert!(c.contains("::ffff:10.0.0.9".parse().unwrap()));
    assert!(!c.contains("11.0.0.1".parse().unwrap()));
    assert_eq!(Cidr::parse("1.2.3.4").unwrap().len, 32);
    assert_eq!(Cidr::parse("fd00::1/64").unwrap().to_string(), "fd00::/64");
    assert!(
        Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap())
    );
    for bad in ["10.0.0.0/33", "db.internal", "10.0.0.0/x", ""] {
        assert_eq!(Cidr::parse(bad), None, "{bad}");
    }
}

/// No VirtualService: the service's own cluster `outbound|5432||db.internal`
/// on a listener bound to its address and port (`!defaultRouteAdded`).
#[test]
fn a_tcp_service_address_gets_its_own_cluster() {
    let s = snap(DB);
    assert_eq!(s.tcp.listeners.len(), 1);
    let l = &s.tcp.listeners[0];
    assert_eq!(
        (l.address, l.port),
        (Some("240.0.0.1".parse().unwrap()), 5432)
    );
    assert_eq!(
        picked(&s, "240.0.0.1:5432"),
        Some((
            "outbound|5432||db.internal".to_string(),
            vec!["outbound|5432||db.internal=100".to_string()]
        ))
    );
    // Another port or address of the same IP is not this listener's.
    assert_eq!(picked(&s, "240.0.0.1:5433"), None);
    assert_eq!(picked(&s, "240.0.0.2:5432"), None);
    // The default idle timeout of Envoy's tcp_proxy, 1h.
    let (_, c) = s.tcp.select(dst("240.0.0.1:5432")).unwrap();
    assert_eq!(
        c.destinations[0].idle_timeout,
        Some(std::time::Duration::from_secs(3600))
    );
}

/// HTTP, TLS and auto-detected ports get no TCP listener; MONGO, MYSQL and
/// REDIS do (`ModelProtocolToListenerProtocol`).
#[test]
fn only_protocols_istio_proxies_as_tcp_get_listeners() {
    for (proto, tcp) in [
        ("TCP", true),
        ("MONGO", true),
        ("MYSQL", true),
        ("REDIS", true),
        ("HTTP", false),
        ("GRPC", false),
        ("TLS", false),
        ("HTTPS", false),
        ("UDP", false),
        ("", false),
    ] {
        let yaml = DB.replace("protocol: TCP", &format!("protocol: '{proto}'"));
        let s = snap(&yaml);
        assert_eq!(
            picked(&s, "240.0.0.1:5432").is_some(),
            tcp,
            "protocol {proto:?}"
        );
    }
}

/// A `tcp` rule's weighted subsets, its first applying match ending the
/// list (`break TcpLoop`): a later rule is never reached.
#[test]
fn a_tcp_rule_splits_by_weight_and_ends_the_list() {
    let yaml = format!(
        "{DB}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db.internal]
  tcp:
  - match: [{{port: 9999}}]
    route: [{{destination: {{host: db.internal, subset: v2}}}}]
  - match: [{{port: 5432}}]
    route:
    - {{destination: {{host: db.internal, subset: v1}}, weight: 80}}
    - {{destination: {{host: db.internal, subset: v2}}, weight: 20}}
  - route: [{{destination: {{host: db.internal, subset: v2}}}}]
---
"
    );
    let s = snap(&yaml);
    assert_eq!(
        picked(&s, "240.0.0.1:5432"),
        Some((
            "default/db#tcp[1]".to_string(),
            vec![
                "outbound|5432|v1|db.internal=80".to_string(),
                "outbound|5432|v2|db.internal=20".to_string()
            ]
        ))
    );
    assert_eq!(s.tcp.listeners[0].chains.len(), 1);
}

/// `sourceLabels`, `sourceNamespace` and `gateways` are matched against
/// the proxy (`matchTCP`): `gateways` without `mesh` leaves the rule out,
/// and no applying rule leaves the service's own cluster.
#[test]
fn source_labels_namespace_and_gateways_pick_the_rule() {
    let vs = |m: &str| {
        format!(
            "{DB}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db.internal]
  tcp:
  - match: [{m}]
    route: [{{destination: {{host: db.internal, subset: v2}}}}]
---
"
        )
    };
    let v2 = Some((
        "default/db#tcp[0]".to_string(),
        vec!["outbound|5432|v2|db.internal=100".to_string()],
    ));
    let own = Some((
        "outbound|5432||db.internal".to_string(),
        vec!["outbound|5432||db.internal=100".to_string()],
    ));
    let at = |m: &str, labels: &[(&str, &str)]| picked(&snap_as(&vs(m), labels), "240.0.0.1:5432");
    assert_eq!(at("{sourceLabels: {app: api}}", &[("app", "api")]), v2);
    assert_eq!(at("{sourceLabels: {app: api}}", &[("app", "web")]), own);
    assert_eq!(at("{sourceNamespace: default}", &[]), v2);
    assert_eq!(at("{sourceNamespace: other}", &[]), own);
    assert_eq!(at("{gateways: [mesh]}", &[]), v2);
    assert_eq!(at("{gateways: [istio-system/ingress]}", &[]), own);
    // A VirtualService bound to a gateway only is not the mesh's.
    let gw_only = vs("{port: 5432}").replace(
        "  hosts: [db.internal]\n  tcp:",
        "  hosts: [db.internal]\n  gateways: [istio-system/ingress]\n  tcp:",
    );
    assert_eq!(picked(&snap(&gw_only), "240.0.0.1:5432"), own);
}

/// `destinationSubnets` make a chain of their own on the destination's
/// ranges; the service's default still takes the rest of its addresses
/// (pilot keeps collecting subnets and adds the default last).
#[test]
fn destination_subnets_pick_by_the_destination_address() {
    let yaml = format!(
        "{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db.internal]
  tcp:
  - match: [{{destinationSubnets: [240.0.1.0/24]}}]
    route: [{{destination: {{host: db.internal, subset: v2}}}}]
  - match: [{{destinationSubnets: [240.0.1.7]}}]
    route: [{{destination: {{host: db.internal, subset: v1}}}}]
---
",
        DB.replace("addresses: [240.0.0.1]", "addresses: [240.0.0.0/16]")
    );
    let s = snap(&yaml);
    // A CIDR address: the port's wildcard listener, chains on ranges.
    assert_eq!(s.tcp.listeners[0].address, None);
    assert_eq!(picked(&s, "240.0.1.9:5432").unwrap().0, "default/db#tcp[0]");
    // The most specific range wins (Envoy's prefix_ranges).
    assert_eq!(picked(&s, "240.0.1.7:5432").unwrap().0, "default/db#tcp[1]");
    assert_eq!(
        picked(&s, "240.0.2.1:5432").unwrap().0,
        "outbound|5432||db.internal"
    );
    // Outside every range: not a TCP service's, sniffed as before.
    assert_eq!(picked(&s, "10.0.0.1:5432"), None);
}

/// A service without an address binds the wildcard of its port (pilot's
/// `0.0.0.0:port` listener), unless an HTTP port shares the number (then
/// Istio sniffs); a `resolution: NONE` entry without one gets none.
#[test]
fn a_service_without_an_address_takes_its_port_unless_http_shares_it() {
    let no_addr = DB.replace("  addresses: [240.0.0.1]\n", "");
    let s = snap(&no_addr);
    assert_eq!(
        picked(&s, "127.0.0.9:5432").unwrap().0,
        "outbound|5432||db.internal"
    );
    let with_http = format!(
        "{no_addr}apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web.internal]
  resolution: DNS
  ports: [{{number: 5432, name: http, protocol: HTTP}}]
---
"
    );
    assert_eq!(picked(&snap(&with_http), "127.0.0.9:5432"), None);
    // An HTTP port on the same number does not reach a bound address.
    let bound = with_http.replace(
        "  location: MESH_INTERNAL\n",
        "  addresses: [240.0.0.1]\n  location: MESH_INTERNAL\n",
    );
    assert!(picked(&snap(&bound), "240.0.0.1:5432").is_some());
    let none = no_addr.replace("resolution: STATIC", "resolution: NONE");
    assert!(snap(&none).tcp.is_empty());
}

/// Two services on one address and port: the first one's chain, the
/// second's conflicting chain dropped (`mergeTCPFilterChains`).
#[test]
fn a_second_service_on_the_same_address_is_merged_away() {
    let other = DB
        .replace("name: db, namespace", "name: db2, namespace")
        .replace("[db.internal]", "[db2.internal]")
        .replace("host: db.internal", "host: db2.internal");
    let s = snap(&format!("{DB}{other}"));
    assert_eq!(s.tcp.listeners.len(), 1);
    assert_eq!(s.tcp.listeners[0].chains.len(), 1);
    assert_eq!(
        picked(&s, "240.0.0.1:5432").unwrap().0,
        "outbound|5432||db.internal"
    );
}
