use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::*;
use crate::compile::gateway::{GatewayListeners, PortKind};
use crate::compile::{ProxyIdentity, compile as compile_snapshot};
use crate::load::{LoadOptions, load_str};

/// A CA (`ca.pem`) and a server certificate for `web.example.com`
/// (`web.pem`, `web-key.pem`) in a tempdir.
struct Files {
    dir: tempfile::TempDir,
    ca: String,
    cert: String,
    key: String,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["web.example.com".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let f = Files {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
        dir,
    };
    std::fs::write(f.path("ca.pem"), &f.ca).unwrap();
    std::fs::write(f.path("web.pem"), &f.cert).unwrap();
    std::fs::write(f.path("web-key.pem"), &f.key).unwrap();
    f
}

impl Files {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

fn listeners(yaml: &str) -> GatewayListeners {
    let cfg = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
    let listeners = compile_snapshot(
        &cfg,
        &ProxyIdentity {
            namespace: "istio-system".into(),
            labels: [("istio".to_string(), "ingressgateway".to_string())].into(),
            gateway: true,
            ..ProxyIdentity::default()
        },
    )
    .gateway;
    std::sync::Arc::into_inner(listeners).expect("the only snapshot")
}

fn gateway(tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [web.example.com]
    tls: {{{tls}}}
---
"
    )
}

fn only_problem(l: &GatewayListeners) -> String {
    assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
    l.problems[0].to_string()
}

#[test]
fn simple_server_compiles_with_alpn_and_certificate_info() {
    let f = files();
    let l = listeners(&gateway(&format!(
        "mode: SIMPLE, serverCertificate: {}, privateKey: {}",
        f.path("web.pem"),
        f.path("web-key.pem")
    )));
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let PortKind::Https(servers) = &l.ports[&443].kind else {
        panic!("an HTTPS port")
    };
    let s = &servers[0];
    assert_eq!(s.sni, ["web.example.com"]);
    assert_eq!(
        s.tls.config.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert_eq!(
        s.tls.certificate.source,
        format!("file {}", f.path("web.pem"))
    );
    assert_eq!(s.tls.certificate.dns_names, ["web.example.com"]);
}

/// A missing or broken file is a problem naming the Gateway, the field
/// path and the file; `run` refuses it and a reload keeps the last good.
#[test]
fn missing_or_broken_files_name_the_field_and_the_file() {
    let f = files();
    let missing = f.path("nope.pem");
    let l = listeners(&gateway(&format!(
        "mode: SIMPLE, serverCertificate: {missing}, privateKey: {}",
        f.path("web-key.pem")
    )));
    let p = only_problem(&l);
    assert!(
        p.starts_with(
            "Gateway istio-system/ingress: spec.servers[0].tls.serverCertificate: cannot read "
        ) && p.contains(&missing),
        "{p}"
    );
    assert!(l.ports.is_empty());
    std::fs::write(f.path("garbage.pem"), "not a key").unwrap();
    let l = listeners(&gateway(&format!(
        "mode: SIMPLE, serverCertificate: {}, privateKey: {}",
        f.path("web.pem"),
        f.path("garbage.pem")
    )));
    let p = only_problem(&l);
    assert!(
        p.contains("spec.servers[0].tls.privateKey") && p.contains("garbage.pem"),
        "{p}"
    );
    // The CA's certificate with the server's key: not a pair.
    let l = listeners(&gateway(&format!(
        "mode: SIMPLE, serverCertificate: {}, privateKey: {}",
        f.path("ca.pem"),
        f.path("web-key.pem")
    )));
    let p = only_problem(&l);
    assert!(
        p.contains("tls.serverCertificate") && p.contains("do not make a usable pair"),
        "{p}"
    );
}

#[test]
fn mutual_needs_a_ca() {
    let f = files();
    let l = listeners(&gateway(&format!(
        "mode: MUTUAL, serverCertificate: {}, privateKey: {}",
        f.path("web.pem"),
        f.path("web-key.pem")
    )));
    assert!(
        only_problem(&l).contains(
            "spec.servers[0].tls.caCertificates: mode MUTUAL verifies client certificates"
        )
    );
}

#[test]
fn protocol_versions_rustls_cannot_speak_are_refused() {
    let f = files();
    let base = format!(
        "mode: SIMPLE, serverCertificate: {}, privateKey: {}",
        f.path("web.pem"),
        f.path("web-key.pem")
    );
    let l = listeners(&gateway(&format!("{base}, minProtocolVersion: TLSV1_1")));
    let p = only_problem(&l);
    assert!(
        p.contains("tls.minProtocolVersion: TLSV1_1 is not supported") && p.contains("TLSV1_2"),
        "{p}"
    );
    let l = listeners(&gateway(&format!(
        "{base}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_3"
    )));
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let l = listeners(&gateway(&format!(
        "{base}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2"
    )));
    assert!(only_problem(&l).contains("tls.maxProtocolVersion"));
}

#[test]
fn cipher_suites_map_openssl_names_and_refuse_what_rustls_lacks() {
    use rustls::crypto::ring::cipher_suite as cs;
    let got = cipher_suites(&[
        "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]".into(),
        "ECDHE-RSA-AES256-GCM-SHA384".into(),
    ])
    .unwrap()
    .unwrap();
    assert!(got.contains(&cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256));
    assert!(got.contains(&cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256));
    assert!(got.contains(&cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384));
    assert!(!got.contains(&cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
    // TLS 1.3 suites are not configurable in Envoy: all stay.
    assert!(got.contains(&cs::TLS13_AES_128_GCM_SHA256));
    let e =
        cipher_suites(&["ECDHE-RSA-AES128-GCM-SHA256".into(), "AES128-SHA".into()]).unwrap_err();
    assert_eq!(e.field, "tls.cipherSuites[1]");
    assert!(e.message.contains("not supported"), "{}", e.message);
    let e = cipher_suites(&["BOGUS".into()]).unwrap_err();
    assert!(
        e.message.contains("unknown cipher suite BOGUS"),
        "{}",
        e.message
    );
}

fn secret(name: &str, ty: &str, data: &[(&str, &str)]) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let data: Vec<String> = data
        .iter()
        .map(|(k, v)| format!("  {k}: {}\n", b64(v)))
        .collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: istio-system}}\ntype: {ty}\ndata:\n{}---\n",
        data.concat()
    )
}

/// `credentialName`: a Secret in the gateway's namespace, `tls.crt`/
/// `tls.key` or generic `cert`/`key`; for MUTUAL the CA from
/// `<name>-cacert`, else the Secret's own `ca.crt` (pilot
/// credentials/kube/secrets.go `ExtractCertInfo`, `GetCaCert`).
#[test]
fn credential_name_reads_the_secret_in_the_gateway_namespace() {
    let f = files();
    let tls_secret = secret(
        "cred",
        "kubernetes.io/tls",
        &[("tls.crt", &f.cert), ("tls.key", &f.key)],
    );
    let l = listeners(&format!(
        "{tls_secret}{}",
        gateway("mode: SIMPLE, credentialName: cred")
    ));
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let s = &l.https(443).unwrap()[0];
    assert_eq!(s.tls.certificate.source, "Secret istio-system/cred");
    let generic = secret(
        "cred",
        "Opaque",
        &[("cert", &f.cert), ("key", &f.key), ("cacert", &f.ca)],
    );
    let l = listeners(&format!(
        "{generic}{}",
        gateway("mode: MUTUAL, credentialName: cred")
    ));
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    // MUTUAL without a CA anywhere; then with `cred-cacert`.
    let l = listeners(&format!(
        "{tls_secret}{}",
        gateway("mode: MUTUAL, credentialName: cred")
    ));
    assert!(only_problem(&l).contains("create Secret istio-system/cred-cacert"));
    let ca = secret("cred-cacert", "Opaque", &[("ca.crt", &f.ca)]);
    let l = listeners(&format!(
        "{tls_secret}{ca}{}",
        gateway("mode: MUTUAL, credentialName: cred")
    ));
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    // Only the gateway's namespace counts.
    let elsewhere = tls_secret.replace("namespace: istio-system", "namespace: default");
    let l = listeners(&format!(
        "{elsewhere}{}",
        gateway("mode: SIMPLE, credentialName: cred")
    ));
    assert!(
        only_problem(&l)
            .contains("spec.servers[0].tls.credentialName: Secret istio-system/cred not found")
    );
}

/// pilot merges TLS servers on one port whatever their mode
/// (`mergeGateways`: both `IsTLSServer`): an HTTPS server terminating TLS
/// and a PASSTHROUGH server share port 443, one filter chain each, the SNI
/// choosing between them.
#[test]
fn terminating_and_passthrough_servers_share_a_port_by_sni() {
    let f = files();
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [web.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: ['*.other.com']
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: other, namespace: istio-system}}
spec:
  hosts: ['*.other.com']
  gateways: [ingress]
  tls:
  - match: [{{sniHosts: ['*.other.com']}}]
    route: [{{destination: {{host: api.other.com}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: other, namespace: istio-system}}
spec:
  hosts: [api.other.com]
  resolution: STATIC
  ports: [{{number: 443, name: tls, protocol: TLS}}]
  endpoints: [{{address: 127.0.0.9}}]
---
",
        f.path("web.pem"),
        f.path("web-key.pem")
    );
    let l = listeners(&yaml);
    assert!(l.problems.is_empty(), "{:?}", l.problems);
    let port = &l.ports[&443];
    assert_eq!(port.servers.len(), 2);
    assert_eq!(port.kind.tls_mode(), "SIMPLE", "the first server's mode");
    let PortKind::Passthrough(p) = &port.kind else {
        panic!("a port with a passthrough server")
    };
    assert_eq!(p.routes.len(), 1);
    use crate::compile::gateway::Chain;
    assert!(matches!(
        p.select(Some("web.example.com")),
        Some(Chain::Terminate(_))
    ));
    assert!(matches!(
        p.select(Some("a.other.com")),
        Some(Chain::Route(_))
    ));
    assert!(p.select(Some("a.example.com")).is_none());
    assert_eq!(l.https(443).map(<[_]>::len), Some(1));

    // A tls match on the terminating server's name: pilot does not
    // deduplicate it against HTTPS servers (`buildGatewayNetworkFiltersFromTLSRoutes`'s
    // `tlsHostsByPort` holds passthrough matches only), Envoy refuses the
    // listener with two chains on `web.example.com`: refused here too.
    let clash = yaml.replace(
        "  - match: [{sniHosts: ['*.other.com']}]\n",
        "  - match: [{sniHosts: ['*.other.com']}]\n    route: [{destination: {host: api.other.com}}]\n  - match: [{sniHosts: [web.example.com, x.other.com]}]\n",
    );
    assert_ne!(clash, yaml);
    let l = listeners(&clash);
    assert_eq!(l.problems.len(), 1, "{:?}", l.problems);
    let p = l.problems[0].to_string();
    assert!(
        p.starts_with("Gateway istio-system/ingress: spec.servers[0].hosts: VirtualService istio-system/other spec.tls[1].match[0].sniHosts [\"web.example.com\", \"x.other.com\"] share a server name with this server on port 443"),
        "{p}"
    );
}
