use super::*;

fn names(n: &[&str]) -> Vec<String> {
    server_names(&n.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// Envoy `FilterChainMatch.server_names`: exact first, then the longest
/// wildcard, then a chain without server names; no SNI only the last.
#[test]
fn exact_then_longest_wildcard_then_catch_all() {
    let chains = [
        names(&["*.example.com"]),
        names(&["*.b.example.com"]),
        names(&["A.b.example.com."]),
        names(&["*"]),
    ];
    let pick = |sni: Option<&str>| {
        select(
            chains.iter().enumerate().map(|(i, n)| (n.as_slice(), i)),
            sni,
        )
    };
    assert_eq!(pick(Some("a.b.example.com")), Some(2));
    assert_eq!(pick(Some("A.B.EXAMPLE.COM.")), Some(2));
    assert_eq!(pick(Some("c.b.example.com")), Some(1));
    assert_eq!(pick(Some("x.y.example.com")), Some(0));
    assert_eq!(pick(Some("example.com")), Some(3));
    assert_eq!(pick(None), Some(3));
    let no_catch_all = &chains[..3];
    let pick = |sni: Option<&str>| {
        select(
            no_catch_all
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_slice(), i)),
            sni,
        )
    };
    assert_eq!(pick(Some("example.com")), None);
    assert_eq!(pick(Some("b.example.com")), Some(0));
    assert_eq!(pick(None), None);
}

fn sidecar(yaml: &str, labels: &[(&str, &str)]) -> Vec<(String, Vec<String>, Vec<String>)> {
    let cfg = crate::load::load_str(
        yaml,
        "t.yaml",
        &crate::load::LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
    let snap = crate::compile::compile(
        &cfg,
        &ProxyIdentity {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ProxyIdentity::default()
        },
    );
    snap.tls
        .iter()
        .map(|r| {
            (
                r.name(),
                r.sni.clone(),
                r.destinations
                    .iter()
                    .map(|d| format!("{} {}", d.cluster.name, d.cluster.weight))
                    .collect(),
            )
        })
        .collect()
}

const SERVICES: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com, www.example.com]
  resolution: DNS
  ports: [{number: 8443, name: https, protocol: HTTPS}, {number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: plain, namespace: default}
spec:
  hosts: [plain.example.com]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
";

/// pilot `buildSidecarOutboundTLSFilterChainOpts` without VirtualServices:
/// every TLS or HTTPS service port gets a chain on the service's host to
/// its cluster; HTTP-only services get none.
#[test]
fn tls_service_ports_get_their_own_chain() {
    assert_eq!(
        sidecar(SERVICES, &[]),
        vec![
            (
                "outbound|443||api.example.com".to_string(),
                vec!["api.example.com".to_string()],
                vec!["outbound|443||api.example.com 100".to_string()]
            ),
            (
                "outbound|8443||web.example.com".to_string(),
                vec!["web.example.com".to_string()],
                vec!["outbound|8443||web.example.com 100".to_string()]
            ),
            (
                "outbound|8443||www.example.com".to_string(),
                vec!["www.example.com".to_string()],
                vec!["outbound|8443||www.example.com 100".to_string()]
            ),
        ]
    );
}

/// `matchTLS`: `port` must be the service port, `sourceLabels` the proxy's,
/// `gateways` (if set) must name `mesh`; a matching `tls` rule replaces the
/// service's own chain (`hasTLSMatch`); a later match on the same SNI is
/// unreachable; a match with `destinationSubnets` is left out (no original
/// destination here) but still counts as the service's TLS match.
#[test]
fn tls_rules_replace_the_services_own_chain_when_they_apply() {
    let vs = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  tls:
  - match:
    - {sniHosts: [api.example.com], port: 8443}
    - {sniHosts: [api.example.com], sourceLabels: {app: other}}
    - {sniHosts: [api.example.com], gateways: [some-gateway]}
    - {sniHosts: [api.example.com], port: 443, sourceLabels: {app: me}}
    - {sniHosts: [api.example.com]}
    route:
    - {destination: {host: web.example.com, port: {number: 8443}}, weight: 3}
    - {destination: {host: api.example.com}, weight: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  tls:
  - match: [{sniHosts: [web.example.com], destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: web.example.com}}]
---
";
    let got = sidecar(&format!("{SERVICES}{vs}"), &[("app", "me")]);
    assert_eq!(
        got,
        vec![
            (
                "default/api#tls[0]".to_string(),
                vec!["api.example.com".to_string()],
                vec![
                    "outbound|8443||web.example.com 3".to_string(),
                    "outbound|443||api.example.com 1".to_string()
                ]
            ),
            (
                "outbound|8443||www.example.com".to_string(),
                vec!["www.example.com".to_string()],
                vec!["outbound|8443||www.example.com 100".to_string()]
            ),
        ]
    );
    // Without the labels, the fourth match does not apply, the fifth does.
    let other = sidecar(&format!("{SERVICES}{vs}"), &[]);
    assert_eq!(other[0].0, "default/api#tls[0]");
    assert_eq!(other.len(), 2, "{other:?}");
}
