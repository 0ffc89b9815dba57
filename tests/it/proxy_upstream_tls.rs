//! TLS origination (DestinationRule `trafficPolicy.tls`) against a real
//! rustls upstream with certificates made by rcgen for each test.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::support::*;

/// A CA, a server certificate for `backend.test` and a client certificate,
/// written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: Vec<u8>,
}

impl Pki {
    fn new(server_names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let names: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(names)
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["client.test".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
        std::fs::write(
            dir.path().join("client-key.pem"),
            client_key.serialize_pem(),
        )
        .unwrap();
        // A CA that signed nothing here.
        let other_key = KeyPair::generate().unwrap();
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        other
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Other CA");
        std::fs::write(
            dir.path().join("other-ca.pem"),
            other.self_signed(&other_key).unwrap().pem(),
        )
        .unwrap();
        Pki {
            ca_der: ca_cert.der().clone(),
            server_chain: vec![server.der().clone()],
            server_key: server_key.serialize_der(),
            dir,
        }
    }

    fn path(&self, name: &str) -> String {
        let p: PathBuf = self.dir.path().join(name);
        p.display().to_string()
    }
}

/// What the TLS upstream saw of each connection.
#[derive(Debug, Clone, Default)]
struct TlsSeen {
    sni: Option<String>,
    client_cert: bool,
    alpn: Option<Vec<u8>>,
}

struct TlsUpstream {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<TlsSeen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsUpstream {
    /// Serves HTTP/1.1 and h2 over TLS, answering 200 "tls"; with
    /// `require_client_cert` only clients with a certificate from the CA.
    async fn start(pki: &Pki, require_client_cert: bool) -> TlsUpstream {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key.clone()));
        let mut config = builder
            .with_single_cert(pki.server_chain.clone(), key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let (_, conn) = tls.get_ref();
                    s.lock().unwrap().push(TlsSeen {
                        sni: conn.server_name().map(str::to_string),
                        client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                    });
                    let svc = service_fn(|_req: Request<Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"tls"))))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        TlsUpstream { addr, seen, task }
    }

    fn seen(&self) -> Vec<TlsSeen> {
        self.seen.lock().unwrap().clone()
    }
}

fn config(up: &TlsUpstream, protocol: &str, tls: &str) -> String {
    service_entry("backend.test", 80, protocol, &[(up.addr, &[])])
        + &format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend}}
spec:
  host: backend.test
  trafficPolicy:
    tls:
{tls}
"
        )
}

#[tokio::test]
async fn simple_with_ca_certificates_originates_tls() {
    let pki = Pki::new(&["backend.test"]);
    let up = TlsUpstream::start(&pki, false).await;
    let yaml = config(
        &up,
        "HTTP",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {}",
            pki.path("ca.pem")
        ),
    );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "tls");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].sni.as_deref(),
        Some("backend.test"),
        "SNI defaults to the authority's host"
    );
    assert_eq!(seen[0].alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(!seen[0].client_cert);
    // The connection is kept alive and reused.
    let got = get(proxy.addr(), "backend.test", "/again").await;
    assert_eq!(got.status, 200);
}

#[tokio::test]
async fn http2_port_offers_h2() {
    let pki = Pki::new(&["backend.test"]);
    let up = TlsUpstream::start(&pki, false).await;
    let yaml = config(
        &up,
        "HTTP2",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {}",
            pki.path("ca.pem")
        ),
    );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(up.seen()[0].alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn simple_with_the_wrong_ca_is_uf_with_the_tls_reason() {
    let pki = Pki::new(&["backend.test"]);
    let up = TlsUpstream::start(&pki, false).await;
    let yaml = config(
        &up,
        "HTTP",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {}",
            pki.path("other-ca.pem")
        ),
    );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 503);
    let log = proxy.log_entries(1).await;
    // Istio's default retry policy retries connect failures: UF,URX.
    assert!(
        log[0]["response_flags"].as_str().unwrap().starts_with("UF"),
        "{}",
        log[0]
    );
    let reason = log[0]["upstream_transport_failure_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.starts_with("TLS_error:") && reason.contains("UnknownIssuer"),
        "{reason}"
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() {
    let pki = Pki::new(&["somewhere.else"]);
    let up = TlsUpstream::start(&pki, false).await;
    let yaml = config(
        &up,
        "HTTP",
        "      mode: SIMPLE\n      insecureSkipVerify: true",
    );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
}

#[tokio::test]
async fn sni_and_subject_alt_names() {
    // The certificate is for `real.backend` only.
    let pki = Pki::new(&["real.backend"]);
    let up = TlsUpstream::start(&pki, false).await;
    let ca = pki.path("ca.pem");

    // Verified against the authority: wrong name.
    let proxy = Proxy::start(&config(
        &up,
        "HTTP",
        &format!("      mode: SIMPLE\n      caCertificates: {ca}"),
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 503);
    let log = proxy.log_entries(1).await;
    let reason = log[0]["upstream_transport_failure_reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("not valid for name"), "{reason}");
    drop(proxy);

    // `sni` is sent and verified.
    let proxy = Proxy::start(&config(
        &up,
        "HTTP",
        &format!("      mode: SIMPLE\n      caCertificates: {ca}\n      sni: real.backend"),
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        up.seen().last().unwrap().sni.as_deref(),
        Some("real.backend")
    );
    drop(proxy);

    // `subjectAltNames` replaces the names checked; SNI stays the authority.
    let proxy = Proxy::start(&config(
        &up,
        "HTTP",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {ca}\n      subjectAltNames: [real.backend]"
        ),
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        up.seen().last().unwrap().sni.as_deref(),
        Some("backend.test")
    );
}

#[tokio::test]
async fn mutual_presents_the_client_certificate() {
    let pki = Pki::new(&["backend.test"]);
    let up = TlsUpstream::start(&pki, true).await;
    let proxy = Proxy::start(&config(
        &up,
        "HTTP",
        &format!(
            "      mode: MUTUAL\n      caCertificates: {}\n      clientCertificate: {}\n      privateKey: {}",
            pki.path("ca.pem"),
            pki.path("client.pem"),
            pki.path("client-key.pem")
        ),
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(up.seen()[0].client_cert);

    // SIMPLE against the same upstream: it refuses the handshake.
    let proxy = Proxy::start(&config(
        &up,
        "HTTP",
        &format!(
            "      mode: SIMPLE\n      caCertificates: {}",
            pki.path("ca.pem")
        ),
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert!(got.status == 503, "{}", got.status);
}

#[tokio::test]
async fn unreadable_certificate_file_is_uf_naming_the_file() {
    let pki = Pki::new(&["backend.test"]);
    let up = TlsUpstream::start(&pki, false).await;
    let missing = pki.path("missing-ca.pem");
    let proxy = Proxy::start(&config(
        &up,
        "HTTP",
        &format!("      mode: SIMPLE\n      caCertificates: {missing}"),
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 503);
    let log = proxy.log_entries(1).await;
    // Istio's default retry policy retries connect failures: UF,URX.
    assert!(
        log[0]["response_flags"].as_str().unwrap().starts_with("UF"),
        "{}",
        log[0]
    );
    let reason = log[0]["upstream_transport_failure_reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains(&missing), "{reason}");
    assert!(up.seen().is_empty(), "no connection is attempted");
}

#[tokio::test]
async fn istio_mutual_is_refused_never_plaintext() {
    let plain = Upstream::named("plain").await;
    let yaml = service_entry("backend.test", 80, "HTTP", &[(plain.addr, &[])])
        + "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend.test
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
";
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 503);
    assert_eq!(plain.hits(), 0);
    let log = proxy.log_entries(1).await;
    let reason = log[0]["upstream_transport_failure_reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("ISTIO_MUTUAL"), "{reason}");
}

#[test]
fn run_refuses_istio_mutual_and_credential_name_at_load_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dr.yaml");
    let yaml = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend}
spec:
  hosts: [backend.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend.test
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - name: v1
    trafficPolicy:
      tls: {mode: SIMPLE, credentialName: backend-ca}
";
    std::fs::write(&path, yaml).unwrap();
    let text = strait::pipeline::load_valid(std::slice::from_ref(&path), "default")
        .expect_err("refused at load time")
        .to_string();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("IST0106")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("Error [IST0106] (DestinationRule default/backend ")
            && lines
                .iter()
                .any(|l| l.contains("spec.trafficPolicy.tls.mode") && l.contains("ISTIO_MUTUAL"))
            && lines.iter().any(|l| l.contains("credentialName")),
        "{text}"
    );
    // Without those fields the same config loads.
    std::fs::write(
        &path,
        yaml.replace("{mode: ISTIO_MUTUAL}", "{mode: DISABLE}")
            .replace(", credentialName: backend-ca", ""),
    )
    .unwrap();
    assert!(strait::pipeline::load_valid(&[path], "default").is_ok());
}
