use super::*;
use crate::compile::{Snapshot, compile as compile_snapshot};
use crate::load::{LoadOptions, load_str};
use crate::route::RequestView;

fn gateway_snap(yaml: &str, labels: &[(&str, &str)]) -> Snapshot {
    let cfg = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
    compile_snapshot(
        &cfg,
        &ProxyIdentity {
            namespace: "istio-system".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gateway: true,
            ..ProxyIdentity::default()
        },
    )
}

/// The cluster a GET to `authority` on gateway port `port` is sent to,
/// `None` for no route (404 NR).
fn routed(s: &Snapshot, port: u16, authority: &str, path: &str) -> Option<String> {
    let headers = crate::header_list::HeaderList::new();
    let view = RequestView {
        method: "GET",
        scheme: "http",
        authority,
        path,
        query: None,
        headers: &headers,
    };
    let route = s.gateway.http(port)?.vhost(authority)?.select(&view)?;
    match &route.action {
        Action::Forward(c) => Some(c[0].name.to_string()),
        Action::Redirect(r) => Some(format!("redirect {:?}", r.scheme)),
        Action::Direct { status, .. } => Some(format!("direct {status}")),
    }
}

const SERVICES: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.example.com]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.2}]
---
";

fn gateway(ns: &str, name: &str, selector: &str, servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{{selector}}}\n  servers:\n{servers}---\n"
    )
}

fn http_server(port: u16, hosts: &str) -> String {
    format!(
        "  - port: {{number: {port}, name: http-{port}, protocol: HTTP}}\n    hosts: [{hosts}]\n"
    )
}

fn vs(ns: &str, name: &str, hosts: &str, gateways: &str, body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{hosts}]\n  gateways: [{gateways}]\n{body}---\n"
    )
}

const TO_WEB: &str = "  http:\n  - route: [{destination: {host: web.example.com}}]\n";

#[test]
fn gateway_selector_must_match_the_workload_labels_and_empty_selects_all() {
    let yaml = format!(
        "{SERVICES}{}{}{}",
        gateway(
            "istio-system",
            "ingress",
            "istio: ingressgateway",
            &http_server(80, "'*'")
        ),
        gateway(
            "istio-system",
            "egress",
            "istio: egressgateway",
            &http_server(81, "'*'")
        ),
        gateway("istio-system", "any", "", &http_server(82, "'*'")),
    );
    let s = gateway_snap(&yaml, &[("istio", "ingressgateway")]);
    let ports: Vec<u16> = s.gateway.ports.keys().copied().collect();
    assert_eq!(ports, vec![80, 82]);
    assert!(s.gateway.problems.is_empty());
}

#[test]
fn sidecar_mode_has_no_gateway_listeners() {
    let yaml = format!(
        "{SERVICES}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'"))
    );
    let cfg = load_str(&yaml, "t.yaml", &LoadOptions::default());
    let s = compile_snapshot(&cfg, &ProxyIdentity::default());
    assert!(s.gateway.ports.is_empty());
}

#[test]
fn gateway_reference_short_name_resolves_in_the_virtual_service_namespace() {
    assert_eq!(resolve_gateway_name("gw", "web"), "web/gw");
    assert_eq!(resolve_gateway_name("./gw", "web"), "web/gw");
    assert_eq!(
        resolve_gateway_name("istio-system/gw", "web"),
        "istio-system/gw"
    );
    assert_eq!(
        resolve_gateway_name("gw.istio-system.svc.cluster.local", "web"),
        "istio-system/gw"
    );
    assert_eq!(resolve_gateway_name("mesh", "web"), "mesh");
    // A VirtualService in `default` naming `gw` means default/gw, not the
    // Gateway istio-system/gw: nothing binds.
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'")),
        vs("default", "web", "web.example.com", "gw", TO_WEB),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(routed(&s, 80, "web.example.com", "/"), None);
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'")),
        vs(
            "default",
            "web",
            "web.example.com",
            "istio-system/gw",
            TO_WEB
        ),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(
        routed(&s, 80, "web.example.com", "/").as_deref(),
        Some("outbound|8080||web.example.com")
    );
}

#[test]
fn mesh_only_virtual_service_does_not_bind_to_a_gateway() {
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'")),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: default}\nspec:\n  hosts: [web.example.com]\n  http:\n  - route: [{destination: {host: web.example.com}}]\n---\n",
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(routed(&s, 80, "web.example.com", "/"), None);
    // ... and the port falls back to Istio's blackhole virtual host.
    let t = s.gateway.http(80).unwrap();
    assert_eq!(t.vhosts.len(), 1);
    assert_eq!(t.vhosts[0].name, "blackhole:80");
}

#[test]
fn server_host_namespace_part_filters_which_virtual_services_bind() {
    // `./web.example.com` is the Gateway's namespace; `default/...` binds
    // only VirtualServices in `default`.
    let yaml = format!(
        "{SERVICES}{}{}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            &format!(
                "{}{}",
                http_server(80, "./web.example.com"),
                http_server(81, "default/web.example.com")
            )
        ),
        vs(
            "default",
            "web",
            "web.example.com",
            "istio-system/gw",
            TO_WEB
        ),
        vs(
            "istio-system",
            "web2",
            "web.example.com",
            "gw",
            "  http:\n  - directResponse: {status: 418}\n"
        ),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(
        routed(&s, 80, "web.example.com", "/").as_deref(),
        Some("direct 418 I'm a teapot")
    );
    assert_eq!(
        routed(&s, 81, "web.example.com", "/").as_deref(),
        Some("outbound|8080||web.example.com")
    );
    assert_eq!(
        sanitize_server_hosts(&["*/*".into(), "x".into()], "ns"),
        vec!["*".to_string()]
    );
    assert_eq!(
        sanitize_server_hosts(
            &["./a.com".into(), "*/b.com".into(), "c/d.com".into()],
            "ns"
        ),
        vec!["ns/a.com", "b.com", "c/d.com"]
    );
}

#[test]
fn gateway_vhost_is_the_host_intersection_and_ignores_the_port() {
    // Server `*.example.com` with VirtualService host `web.example.com`:
    // vhost `web.example.com`; `other.example.com` gets no route.
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            &http_server(80, "'*.example.com'")
        ),
        vs("istio-system", "web", "web.example.com", "gw", TO_WEB),
    );
    let s = gateway_snap(&yaml, &[]);
    for authority in [
        "web.example.com",
        "WEB.example.com:8080",
        "web.example.com:80",
    ] {
        assert_eq!(
            routed(&s, 80, authority, "/").as_deref(),
            Some("outbound|8080||web.example.com"),
            "{authority}"
        );
    }
    assert_eq!(routed(&s, 80, "other.example.com", "/"), None);
    assert_eq!(
        intersection(
            &["*.example.com".into()],
            &["a.example.com".into(), "b.org".into()]
        ),
        vec!["a.example.com"]
    );
    assert_eq!(
        intersection(&["a.example.com".into()], &["*.example.com".into()]),
        vec!["a.example.com"]
    );
    assert_eq!(intersection(&["*".into()], &["*".into()]), vec!["*"]);
    // `*.example.com` does not cover `example.com`.
    assert!(intersection(&["*.example.com".into()], &["example.com".into()]).is_empty());
}

#[test]
fn gateway_merges_virtual_services_for_one_host_with_catch_all_routes_last() {
    let yaml = format!(
        "{SERVICES}{}{}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'")),
        vs(
            "istio-system",
            "a",
            "web.example.com",
            "gw",
            "  http:\n  - route: [{destination: {host: web.example.com}}]\n"
        ),
        vs(
            "istio-system",
            "b",
            "web.example.com",
            "gw",
            "  http:\n  - match: [{uri: {prefix: /api}}]\n    directResponse: {status: 204}\n"
        ),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(
        routed(&s, 80, "web.example.com", "/api/x").as_deref(),
        Some("direct 204 No Content")
    );
    assert_eq!(
        routed(&s, 80, "web.example.com", "/").as_deref(),
        Some("outbound|8080||web.example.com")
    );
}

#[test]
fn http_servers_of_several_gateways_on_one_port_share_the_route_table() {
    let yaml = format!(
        "{SERVICES}{}{}{}{}",
        gateway("istio-system", "a", "", &http_server(80, "a.example.com")),
        gateway("istio-system", "b", "", &http_server(80, "b.example.com")),
        vs(
            "istio-system",
            "va",
            "a.example.com",
            "a",
            "  http:\n  - directResponse: {status: 201}\n"
        ),
        vs(
            "istio-system",
            "vb",
            "b.example.com",
            "b",
            "  http:\n  - directResponse: {status: 202}\n"
        ),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(s.gateway.ports[&80].servers.len(), 2);
    assert_eq!(
        routed(&s, 80, "a.example.com", "/").as_deref(),
        Some("direct 201 Created")
    );
    assert_eq!(
        routed(&s, 80, "b.example.com", "/").as_deref(),
        Some("direct 202 Accepted")
    );
}

#[test]
fn match_gateways_overrides_source_labels_and_port_must_be_the_server_port() {
    let body = "  http:\n  - match: [{gateways: [mesh]}]\n    directResponse: {status: 500}\n  - match: [{port: 81}]\n    directResponse: {status: 501}\n  - match: [{gateways: [gw], sourceLabels: {app: nope}}]\n    directResponse: {status: 202}\n";
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'")),
        vs("istio-system", "web", "web.example.com", "gw", body),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(
        routed(&s, 80, "web.example.com", "/").as_deref(),
        Some("direct 202 Accepted")
    );
}

#[test]
fn https_redirect_answers_every_plain_text_request_with_301() {
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [web.example.com]\n    tls: {httpsRedirect: true}\n"
        ),
        vs("istio-system", "web", "web.example.com", "gw", TO_WEB),
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(
        routed(&s, 80, "web.example.com", "/").as_deref(),
        Some("redirect Some(\"https\")")
    );
}

#[test]
fn tcp_server_takes_first_matching_tcp_rule_of_the_first_bound_virtual_service() {
    let body = "  tcp:\n  - match: [{port: 9999}]\n    route: [{destination: {host: web.example.com}}]\n  - match: [{port: 5432}]\n    route:\n    - {destination: {host: db.example.com}, weight: 75}\n    - {destination: {host: web.example.com, port: {number: 8080}}, weight: 25}\n  - route: [{destination: {host: web.example.com}}]\n";
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            "  - port: {number: 5432, name: tcp, protocol: TCP}\n    hosts: ['*']\n"
        ),
        vs("istio-system", "db", "db.example.com", "gw", body),
    );
    let s = gateway_snap(&yaml, &[]);
    let PortKind::Tcp(Some(r)) = &s.gateway.ports[&5432].kind else {
        panic!("a TCP route")
    };
    assert_eq!(r.rule_index, 1);
    assert_eq!(r.virtual_service, "istio-system/db");
    let d: Vec<(String, u32)> = r
        .destinations
        .iter()
        .map(|d| (d.cluster.name.to_string(), d.cluster.weight))
        .collect();
    assert_eq!(
        d,
        vec![
            ("outbound|5432||db.example.com".to_string(), 75),
            ("outbound|8080||web.example.com".to_string(), 25)
        ]
    );
    assert_eq!(
        r.destinations[0].idle_timeout,
        Some(DEFAULT_TCP_IDLE_TIMEOUT)
    );
}

#[test]
fn tcp_idle_timeout_comes_from_the_top_level_destination_rule_policy() {
    let body = "  tcp:\n  - route: [{destination: {host: db.example.com}}]\n";
    let dr = |t: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: db, namespace: default}}\nspec:\n  host: db.example.com\n  trafficPolicy: {{connectionPool: {{tcp: {{idleTimeout: {t}}}}}}}\n---\n"
        )
    };
    for (t, want) in [("5s", Some(Duration::from_secs(5))), ("0s", None)] {
        let yaml = format!(
            "{SERVICES}{}{}{}",
            gateway(
                "istio-system",
                "gw",
                "",
                "  - port: {number: 5432, name: tcp, protocol: MONGO}\n    hosts: [db.example.com]\n"
            ),
            vs("istio-system", "db", "db.example.com", "gw", body),
            dr(t),
        );
        let s = gateway_snap(&yaml, &[]);
        let PortKind::Tcp(Some(r)) = &s.gateway.ports[&5432].kind else {
            panic!("MONGO is proxied as TCP")
        };
        assert_eq!(r.destinations[0].idle_timeout, want, "{t}");
    }
}

#[test]
fn tcp_server_without_a_matching_virtual_service_has_no_route() {
    // The VirtualService's host is not among the server's hosts.
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            "  - port: {number: 5432, name: tcp, protocol: TCP}\n    hosts: [other.example.com]\n"
        ),
        vs(
            "istio-system",
            "db",
            "db.example.com",
            "gw",
            "  tcp:\n  - route: [{destination: {host: db.example.com}}]\n"
        ),
    );
    let s = gateway_snap(&yaml, &[]);
    assert!(matches!(s.gateway.ports[&5432].kind, PortKind::Tcp(None)));
    assert!(picks_host(
        &["ns/*.example.com".into()],
        &["a.example.com".into()],
        "ns"
    ));
    assert!(!picks_host(
        &["ns/*.example.com".into()],
        &["a.example.com".into()],
        "other"
    ));
}

#[test]
fn conflicting_protocol_on_a_port_skips_the_later_server() {
    let yaml = format!(
        "{SERVICES}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n  - port: {number: 80, name: tcp, protocol: TCP}\n    hosts: ['*']\n"
        ),
    );
    let s = gateway_snap(&yaml, &[]);
    let p = &s.gateway.ports[&80];
    assert_eq!(p.protocol, Protocol::Http);
    assert_eq!(p.servers.len(), 1);
}

const TLS_SERVICES: &str = "
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tls, namespace: default}
spec:
  hosts: [a.example.com, b.example.com, c.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.3}]
---
";

/// The passthrough port's chains as `(route name, match index, names,
/// clusters with weights)`.
/// A chain as `(route name, match index, names, clusters with weights)`.
type ChainView = (String, usize, Vec<String>, Vec<(String, u32)>);

fn chains(s: &Snapshot, port: u16) -> Vec<ChainView> {
    let PortKind::Passthrough(p) = &s.gateway.ports[&port].kind else {
        panic!("a passthrough port: {:?}", s.gateway.ports[&port].kind)
    };
    p.routes
        .iter()
        .map(|r| {
            (
                r.name(),
                r.match_index,
                r.sni.clone(),
                r.destinations
                    .iter()
                    .map(|d| (d.cluster.name.to_string(), d.cluster.weight))
                    .collect(),
            )
        })
        .collect()
}

/// pilot `buildGatewayNetworkFiltersFromTLSRoutes`: one filter chain per
/// `tls` match whose `port`/`gateways` apply, in VirtualService order; a
/// match repeating an SNI host of an earlier chain is skipped
/// (`CheckDuplicates`); HTTPS servers in PASSTHROUGH mode are served the
/// same way (`IsPassThroughServer`).
#[test]
fn passthrough_servers_get_one_chain_per_applicable_tls_match() {
    let body = "  tls:
  - match:
    - {sniHosts: [a.example.com], port: 8443}
    - {sniHosts: [a.example.com], port: 443}
    - {sniHosts: [B.example.com], gateways: [istio-system/other]}
    - {sniHosts: [b.example.com], gateways: [gw]}
    route:
    - {destination: {host: a.example.com}, weight: 80}
    - {destination: {host: b.example.com}, weight: 20}
  - match: [{sniHosts: [a.example.com, c.example.com]}]
    route: [{destination: {host: c.example.com}}]
  - match: [{sniHosts: [c.example.com]}]
";
    for protocol in ["TLS", "HTTPS"] {
        let yaml = format!(
            "{TLS_SERVICES}{}{}",
            gateway(
                "istio-system",
                "gw",
                "",
                &format!(
                    "  - port: {{number: 443, name: tls, protocol: {protocol}}}\n    hosts: ['*.example.com']\n    tls: {{mode: PASSTHROUGH}}\n"
                )
            ),
            vs("istio-system", "tls", "'*.example.com'", "gw", body),
        );
        let s = gateway_snap(&yaml, &[]);
        assert!(s.gateway.problems.is_empty(), "{:?}", s.gateway.problems);
        assert_eq!(s.gateway.ports[&443].kind.tls_mode(), "PASSTHROUGH");
        assert_eq!(
            chains(&s, 443),
            vec![
                (
                    "istio-system/tls#tls[0]".to_string(),
                    1,
                    vec!["a.example.com".to_string()],
                    vec![
                        ("outbound|443||a.example.com".to_string(), 80),
                        ("outbound|443||b.example.com".to_string(), 20)
                    ]
                ),
                (
                    "istio-system/tls#tls[0]".to_string(),
                    3,
                    vec!["b.example.com".to_string()],
                    vec![
                        ("outbound|443||a.example.com".to_string(), 80),
                        ("outbound|443||b.example.com".to_string(), 20)
                    ]
                ),
            ],
            "{protocol}: the second rule repeats a.example.com, the third has no route"
        );
    }
}

#[test]
fn passthrough_routes_pick_by_sni_like_filter_chains() {
    let body = "  tls:
  - match: [{sniHosts: ['*.example.com']}]
    route: [{destination: {host: a.example.com}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: b.example.com}}]
";
    let yaml = format!(
        "{TLS_SERVICES}{}{}",
        gateway(
            "istio-system",
            "gw",
            "",
            "  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: ['*']\n    tls: {mode: PASSTHROUGH}\n"
        ),
        vs("istio-system", "tls", "'*.example.com'", "gw", body),
    );
    let s = gateway_snap(&yaml, &[]);
    let PortKind::Passthrough(p) = &s.gateway.ports[&443].kind else {
        panic!("passthrough")
    };
    let pick = |sni: Option<&str>| match p.select(sni) {
        Some(Chain::Route(r)) => Some(r.destinations[0].cluster.name.to_string()),
        Some(Chain::Terminate(_)) => panic!("no terminating server"),
        None => None,
    };
    assert_eq!(
        pick(Some("B.example.com")).as_deref(),
        Some("outbound|443||b.example.com")
    );
    assert_eq!(
        pick(Some("x.example.com")).as_deref(),
        Some("outbound|443||a.example.com")
    );
    assert_eq!(pick(Some("example.com")), None);
    assert_eq!(pick(None), None);
}

#[test]
fn unsupported_tls_modes_are_reported_with_gateway_and_field_path() {
    let servers = "  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*']
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ['*']
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 8443, name: tls, protocol: TLS}
    hosts: ['*']
    tls: {mode: ISTIO_MUTUAL}
";
    let yaml = format!("{SERVICES}{}", gateway("istio-system", "gw", "", servers));
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(
        s.gateway.ports.keys().copied().collect::<Vec<_>>(),
        vec![80]
    );
    let p: Vec<String> = s.gateway.problems.iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("Gateway istio-system/gw: spec.servers[1].tls.mode: AUTO_PASSTHROUGH"),
        "{}",
        p[0]
    );
    assert!(p[0].contains("use PASSTHROUGH"), "{}", p[0]);
    assert!(
        p[1].starts_with("Gateway istio-system/gw: spec.servers[2].tls.mode: ISTIO_MUTUAL"),
        "{}",
        p[1]
    );
}

#[test]
fn virtual_services_not_exported_to_the_gateway_namespace_do_not_bind() {
    let yaml = format!(
        "{SERVICES}{}{}",
        gateway("istio-system", "gw", "", &http_server(80, "'*'")),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: default}\nspec:\n  hosts: [web.example.com]\n  gateways: [istio-system/gw]\n  exportTo: ['.']\n  http:\n  - route: [{destination: {host: web.example.com}}]\n---\n",
    );
    let s = gateway_snap(&yaml, &[]);
    assert_eq!(routed(&s, 80, "web.example.com", "/"), None);
}
