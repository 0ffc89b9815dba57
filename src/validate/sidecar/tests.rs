use super::*;
use crate::validate::Severity;

fn sc(spec: &str) -> Vec<Finding> {
    let set = crate::load::load_str(
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: s\n  namespace: default\nspec:\n{spec}"
        ),
        "t.yaml",
        &crate::load::LoadOptions::default(),
    );
    let r = set
        .sidecars
        .first()
        .unwrap_or_else(|| panic!("no Sidecar loaded: {set:?}"));
    validate(r)
}

fn has(fs: &[Finding], sev: Severity, path: &str, msg: &str) -> bool {
    fs.iter()
        .any(|f| f.severity == sev && f.path == path && f.message.contains(msg))
}

use Severity::{Error as E, Warning as W};

#[test]
fn realistic_sidecar_is_valid() {
    let fs = sc(r#"
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTPS, name: somename}
    defaultEndpoint: "unix:///var/run/someuds.sock"
    tls: {mode: SIMPLE, privateKey: /etc/k.pem, serverCertificate: /etc/c.pem}
  - port: {number: 9090, protocol: HTTP, name: http}
    defaultEndpoint: "127.0.0.1:8080"
    connectionPool: {http: {http1MaxPendingRequests: 10}}
  egress:
  - port: {number: 9080, protocol: HTTP, name: egresshttp}
    hosts: [prod-us1/*]
  - hosts: ["./*", istio-system/*, "~/foo.com"]
  inboundConnectionPool: {tcp: {maxConnections: 50}}
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.example.com, port: {number: 443}}}
"#);
    assert!(fs.is_empty(), "{fs:#?}");
}

#[test]
fn sidecar_empty_configuration_is_rejected() {
    assert!(has(
        &sc("  workloadSelector: {labels: {app: a}}\n"),
        E,
        "spec",
        "empty configuration"
    ));
}

#[test]
fn sidecar_workload_selector_without_labels_warns() {
    let fs = sc("  workloadSelector: {}\n  egress: [{hosts: [\"*/*\"]}]\n");
    assert!(fs.iter().any(|f| f.severity == W), "{fs:#?}");
}

#[test]
fn sidecar_ingress_needs_port_and_unique_ports() {
    let fs = sc(
        "  ingress:\n  - defaultEndpoint: \"127.0.0.1:80\"\n  - port: {number: 80, protocol: HTTP, name: a, targetPort: 8}\n  - port: {number: 80, protocol: FOO, name: b}\n",
    );
    assert!(has(&fs, E, "spec.ingress[0].port", "port is required"));
    assert!(has(
        &fs,
        E,
        "spec.ingress[1].port.targetPort",
        "no impact on Sidecars"
    ));
    assert!(has(&fs, E, "spec.ingress[2].port.number", "must be unique"));
    assert!(has(
        &fs,
        E,
        "spec.ingress[2].port.protocol",
        "unsupported protocol: FOO"
    ));
}

#[test]
fn sidecar_default_endpoint_forms() {
    let fs = sc(
        "  ingress:\n  - {port: {number: 80, protocol: HTTP, name: a}, defaultEndpoint: \"10.0.0.1:80\"}\n  - {port: {number: 81, protocol: HTTP, name: b}, defaultEndpoint: \"127.0.0.1\"}\n  - {port: {number: 82, protocol: HTTP, name: c}, defaultEndpoint: \"[::1]:8080\"}\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.ingress[0].defaultEndpoint",
        "must be of form"
    ));
    assert!(has(
        &fs,
        E,
        "spec.ingress[1].defaultEndpoint",
        "missing port"
    ));
    assert!(
        !fs.iter().any(|f| f.path.starts_with("spec.ingress[2]")),
        "{fs:#?}"
    );
}

#[test]
fn sidecar_ingress_tls_restrictions() {
    let fs = sc(
        "  ingress:\n  - port: {number: 80, protocol: HTTP, name: a}\n    tls: {mode: ISTIO_MUTUAL, credentialName: c, subjectAltNames: [x]}\n",
    );
    let p = "spec.ingress[0].tls";
    assert!(has(
        &fs,
        E,
        &format!("{p}.mode"),
        "cannot set mode to ISTIO_MUTUAL"
    ));
    assert!(has(
        &fs,
        E,
        &format!("{p}.credentialName"),
        "not currently supported"
    ));
    assert!(has(
        &fs,
        E,
        &format!("{p}.subjectAltNames"),
        "not supported"
    ));
    assert!(has(&fs, E, p, "only supported on HTTPS/TLS ports"));
}

#[test]
fn sidecar_http_pool_on_tcp_port_warns() {
    let fs = sc(
        "  ingress:\n  - port: {number: 5432, protocol: TCP, name: pg}\n    connectionPool: {http: {maxRetries: 1}}\n",
    );
    assert!(has(
        &fs,
        W,
        "spec.ingress[0].connectionPool.http",
        "only TCP settings will apply"
    ));
}

#[test]
fn sidecar_port_less_egress_listener_must_be_last() {
    let fs = sc(
        "  egress:\n  - hosts: [\"*/*\"]\n  - port: {number: 80, protocol: HTTP, name: h}\n    hosts: [\"./*\"]\n",
    );
    assert!(has(&fs, E, "spec.egress[0]", "should be the last listener"));
}

#[test]
fn sidecar_egress_port_rules() {
    let fs = sc(
        "  egress:\n  - port: {number: 0, protocol: HTTP, name: u}\n    hosts: [\"./*\"]\n    captureMode: IPTABLES\n  - port: {number: 80, protocol: HTTP, name: a}\n    hosts: [\"./*\"]\n  - port: {number: 80, protocol: HTTP, name: b}\n    hosts: [\"./*\"]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.egress[0].bind",
        "unix domain socket bind address"
    ));
    assert!(has(&fs, E, "spec.egress[0].captureMode", "DEFAULT/NONE"));
    assert!(has(&fs, E, "spec.egress[2].port.number", "must be unique"));
}

#[test]
fn sidecar_egress_hosts_form() {
    let fs = sc("  egress:\n  - hosts: [reviews, \"ns/foo\", \"a.b/x.com\"]\n");
    let p = "spec.egress[0].hosts";
    assert!(has(
        &fs,
        E,
        &format!("{p}[0]"),
        "host must be of form namespace/dnsName"
    ));
    assert!(has(&fs, E, &format!("{p}[1]"), "short names"));
    assert!(has(&fs, E, &format!("{p}[2]"), "invalid namespace value"));
    assert!(has(&sc("  egress:\n  - {}\n"), E, p, "at least one host"));
}

#[test]
fn sidecar_duplicate_egress_hosts_warn() {
    let fs = sc("  egress:\n  - hosts: [\"*/*\", \"ns1/a.com\", \"ns1/a.com\"]\n");
    assert!(has(
        &fs,
        W,
        "spec.egress[0].hosts[2]",
        "duplicated egress host"
    ));
    assert!(has(&fs, W, "spec.egress[0].hosts", "`*/*` host select all"));
}

#[test]
fn sidecar_allow_any_dynamic_dns_rejected() {
    let fs = sc("  outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}\n");
    assert!(has(
        &fs,
        E,
        "spec.outboundTrafficPolicy.mode",
        "only supported in MeshConfig"
    ));
}

#[test]
fn sidecar_egress_proxy_rules() {
    let fs = sc("  outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: a.b}}\n");
    assert!(has(
        &fs,
        E,
        "spec.outboundTrafficPolicy.egressProxy",
        "only with ALLOW_ANY"
    ));
    let fs = sc("  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: \"bad host\"}}\n");
    assert!(has(
        &fs,
        E,
        "spec.outboundTrafficPolicy.egressProxy.host",
        "invalid"
    ));
    assert!(has(
        &fs,
        E,
        "spec.outboundTrafficPolicy.egressProxy.port",
        "non-nil"
    ));
}

#[test]
fn split_host_port_matches_go() {
    assert_eq!(split_host_port("127.0.0.1:80"), Ok(("127.0.0.1", "80")));
    assert_eq!(split_host_port("[::]:80"), Ok(("::", "80")));
    assert_eq!(split_host_port(":80"), Ok(("", "80")));
    assert!(
        split_host_port("::1:80")
            .unwrap_err()
            .contains("too many colons")
    );
}
