//! HTTPS gateway servers (TLS termination) with real TLS clients: rustls
//! here, and `curl`/`openssl` where installed. Certificates are made by
//! rcgen for each test into a tempdir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::{GatewayProxy, Upstream, both_http2_servers, service_entry};

const LABELS: &[(&str, &str)] = &[("istio", "ingressgateway")];

/// A CA and what it signed, as PEM files in a tempdir.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub(crate) fn new(cn: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS SANs, and URIs for names with `://`),
    /// written as `<file>.pem` and `<file>-key.pem`.
    pub(crate) fn leaf(&self, file: &str, cn: &str, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = names
            .iter()
            .map(|n| {
                if n.contains("://") {
                    SanType::URI(rcgen::string::Ia5String::try_from(*n).unwrap())
                } else {
                    SanType::DnsName(rcgen::string::Ia5String::try_from(*n).unwrap())
                }
            })
            .collect();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.path(&format!("{file}.pem")),
            self.path(&format!("{file}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    pub(crate) fn path(&self, name: &str) -> String {
        let p: PathBuf = self.dir.path().join(name);
        p.display().to_string()
    }

    pub(crate) fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }
}

/// A client identity: its chain and key from PEM files.
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn client_cert((cert, key): &(String, String)) -> ClientCert {
    use rustls::pki_types::pem::PemObject;
    ClientCert {
        chain: CertificateDer::pem_file_iter(cert)
            .unwrap()
            .map(Result::unwrap)
            .collect(),
        key: PrivateKeyDer::from_pem_file(key).unwrap(),
    }
}

/// How a test client connects.
struct Dial<'a> {
    /// Trusted roots.
    roots: Vec<CertificateDer<'static>>,
    /// The name verified; sent as SNI unless `no_sni`.
    name: &'a str,
    no_sni: bool,
    alpn: &'a [&'a [u8]],
    client: Option<&'a ClientCert>,
    /// Offer TLS 1.2 only.
    tls12_only: bool,
}

impl<'a> Dial<'a> {
    fn to(roots: &[CertificateDer<'static>], name: &'a str) -> Dial<'a> {
        Dial {
            roots: roots.to_vec(),
            name,
            no_sni: false,
            alpn: &[b"http/1.1"],
            client: None,
            tls12_only: false,
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Connect and finish the TLS handshake (`Err`: the handshake failed or
/// the proxy closed the connection).
async fn connect(
    addr: SocketAddr,
    d: &Dial<'_>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for r in &d.roots {
        roots.add(r.clone()).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if d.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let b = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match d.client {
        Some(c) => b
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    config.enable_sni = !d.no_sni;
    config.alpn_protocols = d.alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(d.name.to_string()).unwrap();
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 reports a refused client certificate after the handshake:
    // the first read sees the alert.
    use tokio::io::AsyncReadExt;
    let mut probe = [0u8; 0];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(0), tls.read(&mut probe)).await;
    Ok(tls)
}

/// One response over an established TLS connection.
struct Reply {
    status: u16,
    body: String,
    version: http::Version,
}

/// Send `GET https://host/path` with `headers` over a new connection.
async fn request(
    addr: SocketAddr,
    d: &Dial<'_>,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let tls = connect(addr, d).await?;
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let mut req = Request::builder()
        .uri(format!("https://{host}{path}"))
        .header("host", host);
    if h2 {
        req = Request::builder()
            .uri(format!("https://{host}{path}"))
            .version(http::Version::HTTP_2);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    let version = resp.version();
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        version,
    })
}

/// A Gateway `ingress` in `istio-system` with `servers` (YAML list items).
fn gateway(servers: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
{servers}---
"
    )
}

/// A VirtualService bound to the gateway: `host` → `dest`.
fn vs(name: &str, host: &str, dest: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{host}]
  gateways: [istio-system/ingress]
  http:
  - route: [{{destination: {{host: {dest}}}}}]
---
"
    )
}

fn https_server(hosts: &str, tls: &str) -> String {
    format!(
        "  - port: {{number: 443, name: https-{n}, protocol: HTTPS}}
    hosts: [{hosts}]
    tls: {{{tls}}}
",
        n = hosts.len() + tls.len()
    )
}

fn simple(cert: &(String, String)) -> String {
    format!(
        "mode: SIMPLE, serverCertificate: {}, privateKey: {}",
        cert.0, cert.1
    )
}

#[tokio::test]
async fn simple_https_server_terminates_tls_and_routes_bound_virtual_services() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server("'web.example.com'", &simple(&cert))),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let addr = gw.port(443);
    let roots = [pki.ca_der()];
    let d = Dial::to(&roots, "web.example.com");
    let r = request(
        addr,
        &d,
        "web.example.com",
        "/x",
        &[
            ("x-forwarded-proto", "http"),
            ("x-forwarded-client-cert", "Hash=forged"),
        ],
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "web"));
    assert_eq!(r.version, http::Version::HTTP_11);
    let seen = web.last();
    // Envoy on a gateway (use_remote_address) sets the scheme it saw; with
    // SANITIZE_SET (Istio's gateway default) a client's XFCC is dropped.
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert!(!seen.headers.contains_key("x-forwarded-client-cert"));
    // A host the server does not serve: its route table has no such host.
    let r = request(addr, &d, "other.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let log = gw.proxy.log_entries(2).await;
    assert_eq!(log[0]["response_code"], 200, "{log:?}");
}

both_http2_servers!(alpn_h2_serves_http2_over_tls);
/// ALPN `h2` (pilot `util.ALPNHttp` on HTTPS servers): an HTTP/2 client
/// gets HTTP/2 over TLS; one offering only `http/1.1` gets HTTP/1.1.
async fn alpn_h2_serves_http2_over_tls() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server("'web.example.com'", &simple(&cert))),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "web.example.com");
    d.alpn = &[b"h2", b"http/1.1"];
    let tls = connect(gw.port(443), &d).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);
    let r = request(gw.port(443), &d, "web.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "web"));
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(web.last().headers["x-forwarded-proto"], "https");
}

/// Two HTTPS servers on one port: the ClientHello's SNI picks the server
/// (its certificate and its own route table), as Envoy's filter chain
/// match on `server_names` does (pilot gives each HTTPS server a filter
/// chain with its hosts as `server_names` and its own RDS route).
#[tokio::test]
async fn sni_picks_the_server_certificate_and_route_table() {
    let a = Upstream::named("a").await;
    let b = Upstream::named("b").await;
    let pki = Pki::new("Test CA");
    let ca = pki.leaf("a", "a", &["a.example.com"]);
    let cb = pki.leaf("b", "b", &["*.b.example.com"]);
    let yaml = format!(
        "{}{}{}{}{}",
        gateway(&format!(
            "{}{}",
            https_server("'a.example.com'", &simple(&ca)),
            https_server("'*.b.example.com'", &simple(&cb))
        )),
        service_entry("a.internal", 8080, "HTTP", &[(a.addr, &[])]),
        service_entry("b.internal", 8080, "HTTP", &[(b.addr, &[])]),
        vs("a", "a.example.com", "a.internal"),
        vs("b", "'*.b.example.com'", "b.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let addr = gw.port(443);
    let roots = [pki.ca_der()];
    let r = request(
        addr,
        &Dial::to(&roots, "a.example.com"),
        "a.example.com",
        "/",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.body, "a");
    // The wildcard server's certificate verifies for x.b.example.com.
    let r = request(
        addr,
        &Dial::to(&roots, "x.b.example.com"),
        "x.b.example.com",
        "/",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.body, "b");
    // SNI a, Host of b: a's route table has no vhost for it (Envoy: 404 NR).
    let r = request(
        addr,
        &Dial::to(&roots, "a.example.com"),
        "x.b.example.com",
        "/",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
}

/// No SNI, or an SNI no server names: Envoy finds no filter chain and
/// closes the connection, unless a server has host `*`, whose chain has no
/// `server_names` (pilot listener.go: `fullWildcardFound`) and takes both.
#[tokio::test]
async fn unknown_or_missing_sni_closes_unless_a_server_has_host_star() {
    let a = Upstream::named("a").await;
    let any = Upstream::named("any").await;
    let pki = Pki::new("Test CA");
    let ca = pki.leaf("a", "a", &["a.example.com"]);
    let cany = pki.leaf("any", "any", &["a.example.com", "other.example.com"]);
    let named_only = format!(
        "{}{}{}",
        gateway(&https_server("'a.example.com'", &simple(&ca))),
        service_entry("a.internal", 8080, "HTTP", &[(a.addr, &[])]),
        vs("a", "a.example.com", "a.internal"),
    );
    let gw = GatewayProxy::start(&named_only, LABELS).await;
    let roots = [pki.ca_der()];
    let mut no_sni = Dial::to(&roots, "a.example.com");
    no_sni.no_sni = true;
    assert!(connect(gw.port(443), &no_sni).await.is_err());
    let unknown = Dial::to(&roots, "other.example.com");
    assert!(connect(gw.port(443), &unknown).await.is_err());
    drop(gw);

    let with_star = format!(
        "{}{}{}{}{}",
        gateway(&format!(
            "{}{}",
            https_server("'a.example.com'", &simple(&ca)),
            https_server("'*'", &simple(&cany))
        )),
        service_entry("a.internal", 8080, "HTTP", &[(a.addr, &[])]),
        service_entry("any.internal", 8080, "HTTP", &[(any.addr, &[])]),
        vs("a", "a.example.com", "a.internal"),
        vs("any", "'*'", "any.internal"),
    );
    let gw = GatewayProxy::start(&with_star, LABELS).await;
    // No SNI: the `*` server's certificate (it verifies for
    // other.example.com, which a's does not) and route table.
    let mut no_sni = Dial::to(&roots, "other.example.com");
    no_sni.no_sni = true;
    let r = request(gw.port(443), &no_sni, "other.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.body, "any", "no SNI: the chain without server_names");
    let r = request(gw.port(443), &unknown, "other.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.body, "any");
    let r = request(
        gw.port(443),
        &Dial::to(&roots, "a.example.com"),
        "a.example.com",
        "/",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(r.body, "a", "an exact server name wins over the catch-all");
}

/// MUTUAL: a client certificate from `caCertificates` is required; it
/// reaches the upstream as Envoy's `x-forwarded-client-cert` with Istio's
/// gateway details (Hash, Cert, Subject, URI, DNS; pilot
/// `buildGatewayConnectionManager`), a client's own XFCC dropped.
#[tokio::test]
async fn mutual_requires_a_client_certificate_from_the_ca_and_forwards_xfcc() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let good = client_cert(&pki.leaf("client", "client", &["client.test", "spiffe://test/client"]));
    let stranger = client_cert(&other.leaf("client", "client", &["client.test"]));
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server(
            "'web.example.com'",
            &format!(
                "{}, caCertificates: {}",
                simple(&cert).replace("SIMPLE", "MUTUAL"),
                pki.path("ca.pem")
            )
        )),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "web.example.com");
    assert!(
        request(gw.port(443), &d, "web.example.com", "/", &[])
            .await
            .is_err(),
        "no client certificate"
    );
    d.client = Some(&stranger);
    assert!(
        request(gw.port(443), &d, "web.example.com", "/", &[])
            .await
            .is_err(),
        "a certificate from another CA"
    );
    d.client = Some(&good);
    let r = request(
        gw.port(443),
        &d,
        "web.example.com",
        "/",
        &[("x-forwarded-client-cert", "Hash=forged")],
    )
    .await
    .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "web"));
    let xfcc = web.last().headers["x-forwarded-client-cert"]
        .to_str()
        .unwrap()
        .to_string();
    let hash = ring_sha256_hex(&good.chain[0]);
    assert!(
        xfcc.starts_with(&format!(
            "Hash={hash};Cert=\"-----BEGIN%20CERTIFICATE-----%0A"
        )),
        "{xfcc}"
    );
    assert!(
        xfcc.ends_with("\";Subject=\"CN=client\";URI=spiffe://test/client;DNS=client.test"),
        "{xfcc}"
    );
    assert!(!xfcc.contains("forged"));
}

fn ring_sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// OPTIONAL_MUTUAL: a client without a certificate is served (no XFCC);
/// one with a certificate is verified and forwarded.
#[tokio::test]
async fn optional_mutual_serves_clients_with_and_without_certificates() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let good = client_cert(&pki.leaf("client", "client", &["client.test"]));
    let stranger = client_cert(&other.leaf("client", "client", &["client.test"]));
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server(
            "'web.example.com'",
            &format!(
                "{}, caCertificates: {}",
                simple(&cert).replace("SIMPLE", "OPTIONAL_MUTUAL"),
                pki.path("ca.pem")
            )
        )),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "web.example.com");
    let r = request(gw.port(443), &d, "web.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(!web.last().headers.contains_key("x-forwarded-client-cert"));
    d.client = Some(&good);
    let r = request(gw.port(443), &d, "web.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        web.last().headers["x-forwarded-client-cert"]
            .to_str()
            .unwrap()
            .contains(";DNS=client.test")
    );
    d.client = Some(&stranger);
    assert!(
        request(gw.port(443), &d, "web.example.com", "/", &[])
            .await
            .is_err()
    );
}

/// MUTUAL with `subjectAltNames`: the client certificate must also carry
/// one of them (Envoy `match_typed_subject_alt_names`).
#[tokio::test]
async fn mutual_subject_alt_names_restrict_client_certificates() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let allowed = client_cert(&pki.leaf("c1", "c1", &["spiffe://test/allowed"]));
    let other = client_cert(&pki.leaf("c2", "c2", &["spiffe://test/other"]));
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server(
            "'web.example.com'",
            &format!(
                "{}, caCertificates: {}, subjectAltNames: ['spiffe://test/allowed']",
                simple(&cert).replace("SIMPLE", "MUTUAL"),
                pki.path("ca.pem")
            )
        )),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "web.example.com");
    d.client = Some(&allowed);
    let r = request(gw.port(443), &d, "web.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    d.client = Some(&other);
    assert!(
        request(gw.port(443), &d, "web.example.com", "/", &[])
            .await
            .is_err()
    );
}

/// The subject CN of the certificate a new connection is served.
async fn served_cn(addr: SocketAddr, d: &Dial<'_>) -> Option<String> {
    let tls = connect(addr, d).await.ok()?;
    let der = tls.get_ref().1.peer_certificates()?.first()?.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}

/// Rotation: certificate files changing on disk are picked up by the file
/// watcher's reload for new handshakes while an open connection keeps
/// serving; a broken key is rejected like any invalid configuration and
/// the last good certificate keeps serving.
#[tokio::test]
async fn rotated_certificate_files_serve_new_handshakes_without_dropping_connections() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "first", &["web.example.com"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server("'web.example.com'", &simple(&cert))),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let conf = tempfile::tempdir().unwrap();
    let conf_path = conf.path().join("gw.yaml");
    std::fs::write(&conf_path, &yaml).unwrap();
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let shared = gw.proxy.running.shared.clone();
    let reloader = Arc::new(strait::reload::Reloader::new(
        strait::source::file::FileSource::new(vec![conf_path.clone()]),
        "default",
        LABELS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        shared.clone(),
    ));
    // The first load tells the source which certificate files to watch.
    reloader.reload().expect("the configuration loads");
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    reloader.clone().spawn(stop_rx);

    let addr = gw.port(443);
    let roots = [pki.ca_der()];
    let d = Dial::to(&roots, "web.example.com");
    assert_eq!(served_cn(addr, &d).await.as_deref(), Some("first"));
    // A kept-alive connection, open across the rotation.
    let tls = connect(addr, &d).await.unwrap();
    let (mut open, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = || {
        Request::builder()
            .uri("/")
            .header("host", "web.example.com")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    assert_eq!(open.send_request(get()).await.unwrap().status(), 200);

    // Rotate: write the new certificate and key over the old files.
    let next = pki.leaf("next", "second", &["web.example.com"]);
    std::fs::copy(&next.0, &cert.0).unwrap();
    std::fs::copy(&next.1, &cert.1).unwrap();
    let mut served = None;
    for _ in 0..100 {
        served = served_cn(addr, &d).await;
        if served.as_deref() == Some("second") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        served.as_deref(),
        Some("second"),
        "the watcher reloaded the rotated files"
    );
    let r = open
        .send_request(get())
        .await
        .expect("the open connection still serves");
    assert_eq!(r.status(), 200);

    // A broken key: rejected, naming the field and the file; "second" serves.
    std::fs::write(
        &cert.1,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let errors = reloader.reload().expect_err("a broken key is rejected");
    let text = errors.join("\n");
    assert!(
        text.contains("Gateway istio-system/ingress: spec.servers[0].tls.privateKey")
            && text.contains(&cert.1),
        "{text}"
    );
    assert!(shared.status.lock().unwrap().last_rejected.is_some());
    assert_eq!(served_cn(addr, &d).await.as_deref(), Some("second"));
    assert_eq!(open.send_request(get()).await.unwrap().status(), 200);
}

/// `tool` on the PATH, or why the test skips.
pub(crate) fn installed(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!(
            "skipped: `{tool}` is not installed (the rustls tests above cover the same behaviour)"
        );
    }
    found
}

both_http2_servers!(curl_and_openssl_clients_are_served);
/// Real clients: curl (HTTP/1.1 and HTTP/2 by ALPN, with and without a
/// client certificate) and openssl s_client (SNI, ALPN, verification).
async fn curl_and_openssl_clients_are_served() {
    if !installed("curl") || !installed("openssl") {
        return;
    }
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let client = pki.leaf("client", "client", &["client.test"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server(
            "'web.example.com'",
            &format!(
                "{}, caCertificates: {}",
                simple(&cert).replace("SIMPLE", "OPTIONAL_MUTUAL"),
                pki.path("ca.pem")
            )
        )),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let port = gw.port(443).port();
    let ca = pki.path("ca.pem");
    let curl = |extra: Vec<String>| {
        let mut args = vec![
            "-sS".to_string(),
            "--max-time".into(),
            "10".into(),
            "--resolve".into(),
            format!("web.example.com:{port}:127.0.0.1"),
            "--cacert".into(),
            ca.clone(),
            "-w".into(),
            " %{http_code} %{http_version}".into(),
        ];
        args.extend(extra);
        args.push(format!("https://web.example.com:{port}/"));
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args(&args)
                .output()
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    };
    assert_eq!(curl(vec!["--http1.1".into()]).await.unwrap(), "web 200 1.1");
    assert_eq!(curl(vec!["--http2".into()]).await.unwrap(), "web 200 2");
    let with_cert = curl(vec![
        "--cert".into(),
        client.0.clone(),
        "--key".into(),
        client.1.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(with_cert, "web 200 2");
    let xfcc = web.last().headers["x-forwarded-client-cert"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        xfcc.contains("Subject=\"CN=client\"") && xfcc.ends_with(";DNS=client.test"),
        "{xfcc}"
    );

    let s_client = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-servername",
                "web.example.com",
                "-CAfile",
                &ca,
                "-alpn",
                "h2,http/1.1",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(
        s_client.contains("Verify return code: 0 (ok)"),
        "{s_client}"
    );
    assert!(s_client.contains("ALPN protocol: h2"), "{s_client}");
}

both_http2_servers!(grpc_over_tls_reaches_an_h2c_upstream_with_trailers);
/// gRPC over TLS: ALPN h2 to the gateway, h2c to a GRPC upstream; the
/// message and the `grpc-status` trailer come back.
async fn grpc_over_tls_reaches_an_h2c_upstream_with_trailers() {
    use http_body_util::BodyExt as _;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let body = Full::new(body).with_trailers(async move { Some(Ok(trailers)) });
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(body)
                                .unwrap(),
                        )
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("g", "g", &["g.example.com"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server("'g.example.com'", &simple(&cert))),
        service_entry("g.internal", 9000, "GRPC", &[(up, &[])]),
        vs("g", "g.example.com", "g.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "g.example.com");
    d.alpn = &[b"h2"];
    let tls = connect(gw.port(443), &d).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let msg = Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
    let req = Request::post("https://g.example.com/echo.Echo/Unary")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(msg.clone()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), msg);
}

/// `strait explain --gateway https://...`: the HTTPS server SNI picks, its
/// certificate, then the route in that server's table; an SNI no server
/// names is said to close the connection.
#[test]
fn explain_shows_the_https_server_and_certificate_chosen_by_sni() {
    let pki = Pki::new("Test CA");
    let a = pki.leaf("a", "a", &["a.example.com"]);
    let b = pki.leaf("b", "b", &["b.example.com"]);
    let yaml = format!(
        "{}{}{}{}{}",
        gateway(&format!(
            "{}{}",
            https_server("'a.example.com'", &simple(&a)),
            https_server(
                "'b.example.com'",
                &simple(&b).replace("SIMPLE", "MUTUAL").replace(
                    "privateKey",
                    &format!("caCertificates: {}, privateKey", pki.path("ca.pem"))
                )
            )
        )),
        service_entry(
            "a.internal",
            8080,
            "HTTP",
            &[("127.0.0.1:1".parse().unwrap(), &[])]
        ),
        service_entry(
            "b.internal",
            8080,
            "HTTP",
            &[("127.0.0.1:2".parse().unwrap(), &[])]
        ),
        vs("a", "a.example.com", "a.internal"),
        vs("b", "b.example.com", "b.internal"),
    );
    let path = pki.path("gw.yaml");
    std::fs::write(&path, yaml).unwrap();
    let explain = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
            .args([
                "explain",
                "-c",
                &path,
                "--gateway",
                "--labels",
                "istio=ingressgateway",
            ])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain(&["https://b.example.com/x"]);
    assert!(text.contains("Gateway port:    443 (HTTPS)"), "{text}");
    assert!(text.contains("SNI:             b.example.com"), "{text}");
    assert!(
        text.contains("Server:          istio-system/ingress spec.servers[1] (tls.mode MUTUAL)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Certificate:     file {}", b.0)),
        "{text}"
    );
    assert!(text.contains("DNS b.example.com"), "{text}");
    assert!(text.contains("outbound|8080||b.internal"), "{text}");
    // SNI a with Host b: a's server, whose route table has no host b.
    let text = explain(&["--sni", "a.example.com", "https://b.example.com/x"]);
    assert!(text.contains("spec.servers[0]"), "{text}");
    assert!(text.contains("404 NR"), "{text}");
    let text = explain(&["--sni", "c.example.com", "https://c.example.com/"]);
    assert!(
        text.contains("no HTTPS server on port 443 matches SNI \"c.example.com\""),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&explain(&["-o", "json", "https://a.example.com/"])).unwrap();
    assert_eq!(
        json["gateway"]["server"],
        "istio-system/ingress spec.servers[0]"
    );
    assert_eq!(
        json["gateway"]["certificate"]["dns_names"][0],
        "a.example.com"
    );
}

/// `credentialName`: a `kubernetes.io/tls` Secret in the gateway's
/// namespace, read from the configuration, serves the handshake; for
/// MUTUAL its CA comes from `<name>-cacert` (pilot `GetCaCert`).
#[tokio::test]
async fn credential_name_secret_from_the_configuration_serves_tls_and_mtls() {
    use base64::Engine as _;
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let (cert, key) = pki.leaf("web", "from-secret", &["web.example.com"]);
    let client = client_cert(&pki.leaf("client", "client", &["client.test"]));
    let b64 = |p: &str| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    let secrets = format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: web-cred, namespace: istio-system}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: web-cred-cacert, namespace: istio-system}}
data: {{ca.crt: {}}}
---
",
        b64(&cert),
        b64(&key),
        b64(&pki.path("ca.pem"))
    );
    let yaml = format!(
        "{secrets}{}{}{}",
        gateway(&https_server(
            "'web.example.com'",
            "mode: MUTUAL, credentialName: web-cred"
        )),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "web.example.com");
    d.client = Some(&client);
    assert_eq!(
        served_cn(gw.port(443), &d).await.as_deref(),
        Some("from-secret")
    );
    let r = request(gw.port(443), &d, "web.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "web"));
    d.client = None;
    assert!(
        request(gw.port(443), &d, "web.example.com", "/", &[])
            .await
            .is_err()
    );
    // /config_dump lists the Secrets without their data (as `run` records
    // the configuration it serves).
    let cfg = strait::load::load_str(
        &yaml,
        "gw.yaml",
        &strait::load::LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let shared = &gw.proxy.running.shared;
    shared.record_config(Arc::new(cfg), "now".into(), vec!["gw.yaml".into()]);
    let dump = crate::support::get(gw.proxy.running.admin, "admin", "/config_dump")
        .await
        .text();
    let v: serde_json::Value = serde_json::from_str(&dump).unwrap();
    let secrets: Vec<&serde_json::Value> = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "Secret")
        .collect();
    assert_eq!(secrets.len(), 2, "{dump}");
    assert!(secrets.iter().all(|s| s["data"] == "[redacted]"), "{dump}");
    let key_b64 = b64(&key);
    assert!(!dump.contains(&key_b64[..40]), "the key leaked: {dump}");
}

/// An SNI no server takes is logged as Istio's listener access log does
/// (flag NR, `filter_chain_not_found`, the SNI); served requests carry the
/// SNI as `requested_server_name`. A client offering only ALPN protocols
/// strait does not speak is served without ALPN, as BoringSSL (Envoy) does.
#[tokio::test]
async fn unmatched_sni_is_logged_nr_and_foreign_alpn_is_served_without_alpn() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com", "other.example.com"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server("'web.example.com'", &simple(&cert))),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    assert!(
        connect(gw.port(443), &Dial::to(&roots, "other.example.com"))
            .await
            .is_err()
    );
    let mut d = Dial::to(&roots, "web.example.com");
    d.alpn = &[b"spdy/3"];
    let tls = connect(gw.port(443), &d)
        .await
        .expect("served without ALPN");
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    drop(tls);
    let r = request(gw.port(443), &d, "web.example.com", "/", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let log = gw.proxy.log_entries(2).await;
    let nr = log
        .iter()
        .find(|e| e["response_flags"] == "NR")
        .unwrap_or_else(|| panic!("an NR entry: {log:?}"));
    assert_eq!(nr["response_code_details"], "filter_chain_not_found");
    assert_eq!(nr["requested_server_name"], "other.example.com");
    let ok = log.iter().find(|e| e["response_code"] == 200).unwrap();
    assert_eq!(ok["requested_server_name"], "web.example.com");
}

/// `strait run --gateway` serves an HTTPS server end to end, and refuses to
/// start when its certificate file is missing, naming the Gateway, the
/// field path and the file.
#[tokio::test]
async fn run_serves_https_and_refuses_a_missing_certificate_file() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let yaml = format!(
        "{}{}{}",
        gateway(&https_server("'web.example.com'", &simple(&cert))),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let path = pki.path("gw.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--gateway", "--labels", "istio=ingressgateway"])
        .args(["--gateway-port", "443=0", "-c", &path])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("strait starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut https: Option<SocketAddr> = None;
    for _ in 0..50 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.strip_prefix("strait: gateway port 443 ") {
            let addr = rest.split(" listening on ").nth(1).unwrap();
            https = Some(addr.split_once(' ').unwrap().0.parse().unwrap());
        }
        if line.starts_with("strait: listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let roots = [pki.ca_der()];
    let r = request(
        https.expect("port 443 is bound"),
        &Dial::to(&roots, "web.example.com"),
        "web.example.com",
        "/",
        &[],
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let r = r.unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "web"));

    std::fs::remove_file(&cert.0).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--gateway", "--labels", "istio=ingressgateway", "-c", &path])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "Gateway istio-system/ingress: spec.servers[0].tls.serverCertificate: cannot read "
        ) && stderr.contains(&cert.0),
        "{stderr}"
    );
}

/// `minProtocolVersion`/`maxProtocolVersion` reach the handshake: a
/// TLS 1.2-only client is refused by a `TLSV1_3` minimum, and a `TLSV1_2`
/// maximum makes a TLS 1.3 client settle on 1.2 (Envoy's
/// `tls_minimum_protocol_version`/`tls_maximum_protocol_version`).
#[tokio::test]
async fn protocol_versions_bound_the_handshake() {
    let web = Upstream::named("web").await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let config = |versions: &str| {
        format!(
            "{}{}{}",
            gateway(&https_server(
                "'web.example.com'",
                &format!("{}, {versions}", simple(&cert))
            )),
            service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
            vs("web", "web.example.com", "web.internal"),
        )
    };
    let gw = GatewayProxy::start(&config("minProtocolVersion: TLSV1_3"), LABELS).await;
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "web.example.com");
    let addr = gw.port(443);
    assert!(
        connect(addr, &d).await.is_ok(),
        "a TLS 1.3 client is served"
    );
    d.tls12_only = true;
    assert!(
        connect(addr, &d).await.is_err(),
        "a TLS 1.2-only client is refused by minProtocolVersion TLSV1_3"
    );
    gw.install(&config("maxProtocolVersion: TLSV1_2"));
    d.tls12_only = false;
    let tls = connect(addr, &d).await.expect("served at TLS 1.2");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

/// `tls.httpsRedirect` on an HTTP server: every plain-text request gets a
/// 301 to the same URL with `https` (pilot sets the virtual host's
/// `require_tls: ALL`; Envoy answers 301 before routing).
#[tokio::test]
async fn https_redirect_answers_plain_text_requests_with_301() {
    let web = Upstream::named("web").await;
    let yaml = format!(
        "{}{}{}",
        gateway(
            "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [web.example.com]\n    tls: {httpsRedirect: true}\n"
        ),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let r = crate::support::get(gw.port(80), "web.example.com", "/a?b=1").await;
    assert_eq!(r.status.as_u16(), 301);
    assert_eq!(r.header("location"), Some("https://web.example.com/a?b=1"));
    assert_eq!(web.hits(), 0, "never forwarded");
}

/// A reload that changes port 443 from an `HTTP` server to an `HTTPS` one
/// (its protocol and TLS settings) keeps the socket: a request in flight
/// on the plain-text server completes, and the next connection is served
/// over TLS (the port's listener is kept; each connection takes the port
/// kind of the snapshot live when it is accepted).
#[tokio::test]
async fn a_port_changed_from_http_to_https_keeps_requests_in_flight() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let web = Upstream::start(
        "web",
        Arc::new(move |seen: crate::support::Seen| {
            let held = held.clone();
            Box::pin(async move {
                if seen.uri.contains("slow") {
                    let _ = held.acquire().await.map(|p| p.forget());
                }
                http::Response::new(Full::new(Bytes::from_static(b"web")))
            })
        }),
    )
    .await;
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("web", "web", &["web.example.com"]);
    let rest = format!(
        "{}{}",
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
        vs("web", "web.example.com", "web.internal"),
    );
    let plain = gateway(
        "  - port: {number: 443, name: http, protocol: HTTP}\n    hosts: ['web.example.com']\n",
    );
    let gw = GatewayProxy::start(&format!("{plain}{rest}"), LABELS).await;
    let addr = gw.port(443);
    let in_flight =
        tokio::spawn(async move { crate::support::get(addr, "web.example.com", "/slow").await });
    for _ in 0..500 {
        if web.hits() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(web.hits(), 1, "the slow request reached the upstream");

    gw.install(&format!(
        "{}{rest}",
        gateway(&https_server("'web.example.com'", &simple(&cert)))
    ));
    assert_eq!(gw.live_port(443), Some(addr), "the socket is kept");
    let roots = [pki.ca_der()];
    let r = request(
        addr,
        &Dial::to(&roots, "web.example.com"),
        "web.example.com",
        "/",
        &[],
    )
    .await
    .expect("a new connection is TLS");
    assert_eq!((r.status, r.body.as_str()), (200, "web"));
    gate.add_permits(1);
    let r = in_flight.await.unwrap();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "web"));
}

/// A `TLS` server terminating TLS (`SIMPLE`) in front of `tcp` routes:
/// pilot's filter chain has the server's TLS context and the tcp_proxy of
/// the first matching `tcp` rule (`buildGatewayNetworkFiltersFromTCPRoutes`),
/// no ALPN offered; the decrypted bytes reach the TCP upstream. A server
/// without a matching `tcp` rule gets no filter chain: its SNI is NR.
#[tokio::test]
async fn a_tls_server_terminates_tls_in_front_of_tcp_routes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let db = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"db:").await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let pki = Pki::new("Test CA");
    let cert = pki.leaf("db", "db", &["db.example.com"]);
    let other = pki.leaf("other", "other", &["other.example.com"]);
    let yaml = format!(
        "{}{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: db, namespace: default}}
spec:
  hosts: [db.example.com]
  gateways: [istio-system/ingress]
  tcp:
  - match: [{{port: 443}}]
    route: [{{destination: {{host: db.internal}}}}]
---
",
        gateway(&format!(
            "  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: [db.example.com]
    tls: {{{}}}
  - port: {{number: 443, name: tls-other, protocol: TLS}}
    hosts: [other.example.com]
    tls: {{{}}}
",
            simple(&cert),
            simple(&other)
        )),
        service_entry("db.internal", 5432, "TCP", &[(db, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    assert!(
        gw.proxy
            .running
            .shared
            .snapshot
            .load()
            .gateway
            .problems
            .is_empty()
    );
    let roots = [pki.ca_der()];
    let mut d = Dial::to(&roots, "db.example.com");
    d.alpn = &[];
    let mut tls = connect(gw.port(443), &d)
        .await
        .expect("the TLS server is served");
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
    tls.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 7];
    tokio::time::timeout(std::time::Duration::from_secs(10), tls.read_exact(&mut got))
        .await
        .expect("the upstream answers")
        .unwrap();
    assert_eq!(&got, b"db:ping");
    drop(tls);
    // No `tcp` rule binds other.example.com: no filter chain for it.
    assert!(
        connect(gw.port(443), &Dial::to(&roots, "other.example.com"))
            .await
            .is_err()
    );
    let log = gw.proxy.log_entries(2).await;
    let served = log
        .iter()
        .find(|e| e["requested_server_name"] == "db.example.com")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(served["route_name"], "default/db#tcp[0]", "{served}");
    assert_eq!(
        served["upstream_cluster"], "outbound|5432||db.internal",
        "{served}"
    );
    assert_eq!(served["bytes_received"], 4, "{served}");
    let nr = log
        .iter()
        .find(|e| e["requested_server_name"] == "other.example.com")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(nr["response_flags"], "NR", "{nr}");
    // explain --gateway names the server and the `tcp` route it proxies to.
    let cfg = strait::load::load_str(
        &yaml,
        "gw.yaml",
        &strait::load::LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let snap = gw.proxy.running.shared.snapshot.load();
    let req = strait::explain::Request::parse("GET", "https://db.example.com/", Default::default())
        .unwrap();
    let report = strait::explain::explain_gateway(&cfg, &snap, &snap.identity, &req, None, None);
    let text = strait::explain::render_text(&report);
    assert!(text.contains("spec.servers[0]"), "{text}");
    assert!(text.contains("VirtualService:  default/db"), "{text}");
    assert!(
        text.contains("[0] tcp[0] -> TCP proxy of the decrypted stream (TLS terminated)"),
        "{text}"
    );
    assert!(text.contains("outbound|5432||db.internal"), "{text}");
}

/// `strait explain --gateway` warns about a server strait cannot build (what
/// `run` refuses, `pipeline::gateway_problems`) and still explains the
/// rest.
#[test]
fn explain_warns_about_a_server_run_would_refuse_and_explains_the_rest() {
    let pki = Pki::new("Test CA");
    let a = pki.leaf("a", "a", &["a.example.com"]);
    let missing = pki.path("missing-key.pem");
    let yaml = format!(
        "{}{}{}",
        gateway(&format!(
            "{}{}",
            https_server("'a.example.com'", &simple(&a)),
            https_server("'b.example.com'", &simple(&(a.0.clone(), missing.clone())))
        )),
        service_entry(
            "a.internal",
            8080,
            "HTTP",
            &[("127.0.0.1:1".parse().unwrap(), &[])]
        ),
        vs("a", "a.example.com", "a.internal"),
    );
    let path = pki.path("gw.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "explain",
            "-c",
            &path,
            "--gateway",
            "--labels",
            "istio=ingressgateway",
            "https://a.example.com/",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Warning: Gateway istio-system/ingress: spec.servers[1].tls.privateKey")
            && err.contains(&missing),
        "{err}"
    );
    assert!(text.contains("spec.servers[0]"), "{text}");
    assert!(text.contains("outbound|8080||a.internal"), "{text}");
}
