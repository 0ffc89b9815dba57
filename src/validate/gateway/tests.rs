use super::*;
use crate::validate::Severity;

fn gw_named(name: &str, spec: &str) -> Vec<Finding> {
    let set = crate::load::load_str(
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n{spec}"
        ),
        "t.yaml",
        &crate::load::LoadOptions::default(),
    );
    let r = set
        .gateways
        .first()
        .unwrap_or_else(|| panic!("no Gateway loaded: {set:?}"));
    validate(r)
}

fn gw(spec: &str) -> Vec<Finding> {
    gw_named("gw", spec)
}

fn has(fs: &[Finding], sev: Severity, path: &str, msg: &str) -> bool {
    fs.iter()
        .any(|f| f.severity == sev && f.path == path && f.message.contains(msg))
}

use Severity::{Error as E, Warning as W};

#[test]
fn realistic_gateway_is_valid() {
    let fs = gw(r#"
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [bookinfo/bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cred, minProtocolVersion: TLSV1_2}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
  - port: {number: 8443, name: mtls, protocol: HTTPS}
    hosts: ["./files.example.com", "10.0.0.1"]
    tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}
"#);
    assert!(fs.is_empty(), "{fs:#?}");
}

#[test]
fn gateway_name_must_be_dns_label() {
    let fs = gw_named(
        "my.gw",
        "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]\n",
    );
    assert!(has(&fs, E, "metadata.name", "invalid gateway name"));
}

#[test]
fn gateway_needs_servers_and_hosts() {
    assert!(has(
        &gw("  selector: {a: b}\n"),
        E,
        "spec.servers",
        "at least one server"
    ));
    let fs = gw("  servers: [{port: {number: 80, name: http, protocol: HTTP}}]\n");
    assert!(has(&fs, E, "spec.servers[0].hosts", "at least one host"));
}

#[test]
fn gateway_host_forms() {
    let fs = gw(
        "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [reviews, \"foo*.com\", \"a.b/x.com\"]}]\n",
    );
    assert!(has(&fs, E, "spec.servers[0].hosts[0]", "short names"));
    assert!(has(&fs, E, "spec.servers[0].hosts[1]", "partial wildcard"));
    assert!(has(
        &fs,
        E,
        "spec.servers[0].hosts[2]",
        "invalid namespace value \"a.b\" in gateway"
    ));
}

#[test]
fn gateway_port_rules() {
    let fs = gw(
        "  servers:\n  - {hosts: [\"*\"]}\n  - {port: {number: 0, protocol: FOO, targetPort: 8080}, hosts: [\"*\"]}\n",
    );
    assert!(has(&fs, E, "spec.servers[0].port", "port is required"));
    assert!(has(
        &fs,
        E,
        "spec.servers[1].port.protocol",
        "invalid protocol \"FOO\""
    ));
    assert!(has(&fs, E, "spec.servers[1].port.number", "1..65535"));
    assert!(has(
        &fs,
        E,
        "spec.servers[1].port.targetPort",
        "no impact on Gateways"
    ));
    assert!(has(
        &fs,
        E,
        "spec.servers[1].port.name",
        "port name must be set"
    ));
}

#[test]
fn gateway_port_names_must_be_unique() {
    let fs = gw(
        "  servers:\n  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}\n  - {port: {number: 81, name: http, protocol: HTTP}, hosts: [\"*\"]}\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.servers[1].port.name",
        "duplicate name http"
    ));
}

#[test]
fn gateway_bind_rules() {
    let fs = gw(
        "  servers:\n  - {port: {number: 80, name: a, protocol: HTTP}, hosts: [\"*\"], bind: \"unix:///s.sock\"}\n  - {port: {number: 81, name: b, protocol: HTTP}, hosts: [\"*\"], bind: nope}\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.servers[0].port.number",
        "must be 0 for unix"
    ));
    assert!(has(&fs, E, "spec.servers[1].bind", "not a valid IP"));
}

#[test]
fn gateway_https_server_needs_tls() {
    let fs =
        gw("  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"]}]\n");
    assert!(has(&fs, E, "spec.servers[0].tls", "must have TLS settings"));
}

#[test]
fn plain_http_server_cannot_terminate_tls() {
    let fs = gw(
        "  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"], tls: {mode: SIMPLE, credentialName: c}}]\n",
    );
    assert!(has(&fs, E, "spec.servers[0].tls", "plain text HTTP ports"));
    let fs = gw(
        "  servers: [{port: {number: 5432, name: tcp, protocol: TCP}, hosts: [\"*\"], tls: {httpsRedirect: true}}]\n",
    );
    assert!(has(&fs, E, "spec.servers[0].tls", "non HTTPS/TLS ports"));
    assert!(has(
        &fs,
        W,
        "spec.servers[0].tls.httpsRedirect",
        "only be used with http"
    ));
}

#[test]
fn istio_mutual_has_no_certificates() {
    let fs = gw(
        "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: ISTIO_MUTUAL, credentialName: c}}]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.servers[0].tls.credentialName",
        "ISTIO_MUTUAL TLS cannot have"
    ));
}

#[test]
fn only_one_certificate_source() {
    let fs = gw(
        "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: SIMPLE, credentialName: c, serverCertificate: /c, privateKey: /k}}]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.servers[0].tls",
        "only one of credential_name"
    ));
}

#[test]
fn simple_and_mutual_need_certificates() {
    let fs = gw(
        "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: MUTUAL}}]\n",
    );
    let p = "spec.servers[0].tls";
    assert!(has(
        &fs,
        E,
        &format!("{p}.serverCertificate"),
        "requires a server certificate"
    ));
    assert!(has(
        &fs,
        E,
        &format!("{p}.privateKey"),
        "requires a private key"
    ));
    assert!(has(
        &fs,
        E,
        &format!("{p}.caCertificates"),
        "client CA bundle"
    ));
}

#[test]
fn crl_rules() {
    let fs = gw(
        "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k, caCrl: /crl}}]\n",
    );
    assert!(has(&fs, E, "spec.servers[0].tls.caCrl", "SIMPLE TLS"));
    let fs = gw(
        "  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: MUTUAL, credentialName: c, caCrl: /crl}}]\n",
    );
    assert!(has(&fs, E, "spec.servers[0].tls.caCrl", "credentialName"));
}

#[test]
fn passthrough_certificates_and_old_tls_warn() {
    let fs = gw(
        "  servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: [\"*\"], tls: {mode: PASSTHROUGH, serverCertificate: /c, minProtocolVersion: TLSV1_1, cipherSuites: [FOO, AES128-SHA, AES128-SHA]}}]\n",
    );
    let p = "spec.servers[0].tls";
    assert!(has(&fs, W, p, "PASSTHROUGH mode does not use certificates"));
    assert!(has(
        &fs,
        W,
        &format!("{p}.cipherSuites"),
        "invalid cipher suites: [FOO]"
    ));
    assert!(has(
        &fs,
        W,
        &format!("{p}.cipherSuites"),
        "duplicate cipher suites: [AES128-SHA]"
    ));
    assert!(!fs.iter().any(|f| f.severity == E), "{fs:#?}");
}
