//! Gateway `TLS` (and `HTTPS`) servers with `tls.mode: PASSTHROUGH`: the
//! ClientHello's SNI picks a VirtualService `tls` route and the TLS stream
//! reaches a real TLS upstream untouched: the clients here verify the
//! *upstream's* certificate (its own CA, which the gateway never sees), so
//! a gateway that terminated TLS would fail every handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::gateway_tls::{Pki, installed};
use crate::support::{GatewayProxy, Upstream, get, service_entry};

const LABELS: &[(&str, &str)] = &[("istio", "ingressgateway")];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server with its own certificate for `names`: after the
/// handshake it says `hello from <name>\n`, then echoes until EOF (or, as
/// an HTTPS server, answers one request with `hello from <name>`).
pub(crate) struct TlsUpstream {
    pub(crate) addr: SocketAddr,
    /// Handshakes completed.
    served: Arc<AtomicUsize>,
}

impl TlsUpstream {
    pub(crate) async fn start(pki: &Pki, name: &str, names: &[&str]) -> TlsUpstream {
        Self::start_as(pki, name, names, false).await
    }

    /// An HTTPS server: one `200 hello from <name>` per connection.
    pub(crate) async fn https(pki: &Pki, name: &str, names: &[&str]) -> TlsUpstream {
        Self::start_as(pki, name, names, true).await
    }

    async fn start_as(pki: &Pki, name: &str, names: &[&str], https: bool) -> TlsUpstream {
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = pki.leaf(name, name, names);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let (count, name) = (served.clone(), name.to_string());
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let (acceptor, count, name) = (acceptor.clone(), count.clone(), name.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(s).await else {
                        return;
                    };
                    count.fetch_add(1, Ordering::SeqCst);
                    if https {
                        answer_one_request(&mut tls, &name).await;
                        return;
                    }
                    let _ = tls
                        .write_all(format!("hello from {name}\n").as_bytes())
                        .await;
                    let _ = tls.flush().await;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let _ = tls.flush().await;
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsUpstream { addr, served }
    }

    pub(crate) fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

async fn answer_one_request(tls: &mut tokio_rustls::server::TlsStream<TcpStream>, name: &str) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match tls.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = format!("hello from {name}");
    let _ = tls
        .write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await;
    let _ = tls.shutdown().await;
}

/// A TLS client trusting `roots` only, sending SNI `sni` (none if `None`).
pub(crate) async fn dial(
    addr: SocketAddr,
    roots: &[CertificateDer<'static>],
    sni: Option<&str>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("a.example.com").to_string()).unwrap();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())
}

/// The upstream's greeting line and one echoed message.
pub(crate) async fn greeting(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while tokio::time::timeout(Duration::from_secs(10), tls.read(&mut b))
        .await
        .expect("the upstream speaks within 10s")
        .expect("read")
        == 1
    {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    tls.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut echo))
        .await
        .expect("echo within 10s")
        .expect("echo");
    assert_eq!(&echo, b"ping");
    String::from_utf8(line).unwrap()
}

/// Whether the proxy closed `s` (EOF or reset) rather than keep it.
pub(crate) async fn closed(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

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

const PASSTHROUGH_443: &str = "  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ['*.example.com']
    tls: {mode: PASSTHROUGH}
";

/// A VirtualService bound to the gateway with `tls` rules `body`.
fn tls_vs(body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: sni, namespace: istio-system}}
spec:
  hosts: ['*.example.com']
  gateways: [ingress]
  tls:
{body}---
"
    )
}

const TWO_ROUTES: &str = "  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: a.internal}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: b.internal}}]
";

#[tokio::test]
async fn sni_routes_the_tls_stream_untouched_to_its_upstream() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let b = TlsUpstream::start(&pki, "b", &["b.example.com"]).await;
    let yaml = format!(
        "{}{}{}{}",
        gateway(PASSTHROUGH_443),
        tls_vs(TWO_ROUTES),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
        service_entry("b.internal", 443, "TLS", &[(b.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut to_a = dial(gw.port(443), &roots, Some("a.example.com"))
        .await
        .expect("the upstream's certificate verifies through the gateway");
    assert_eq!(greeting(&mut to_a).await, "hello from a");
    let mut to_b = dial(gw.port(443), &roots, Some("b.example.com"))
        .await
        .unwrap();
    assert_eq!(greeting(&mut to_b).await, "hello from b");
    assert_eq!((a.served(), b.served()), (1, 1));
    drop((to_a, to_b));

    let log = gw.proxy.log_entries(2).await;
    let a_entry = log
        .iter()
        .find(|e| e["requested_server_name"] == "a.example.com")
        .expect("a.example.com logged");
    assert_eq!(a_entry["route_name"], "istio-system/sni#tls[0]");
    assert_eq!(a_entry["upstream_cluster"], "outbound|443||a.internal");
    assert_eq!(a_entry["upstream_host"], a.addr.to_string());
    assert_eq!(a_entry["response_flags"], "-");
    assert!(
        a_entry["bytes_received"].as_u64().unwrap() > 100,
        "{a_entry}"
    );

    let listeners = get(gw.proxy.running.admin, "admin", "/listeners").await;
    let v: serde_json::Value = serde_json::from_str(&listeners.text()).unwrap();
    let l443 = v["listeners"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["server_port"] == 443))
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(l443["protocol"], "TLS");
    assert_eq!(l443["tls_mode"], "PASSTHROUGH");
}

/// Envoy closes a connection no filter chain matches, and Istio's listener
/// access log records it with flag NR: an unknown SNI, no SNI, and plain
/// text (the TLS inspector finds no ClientHello: no SNI) where no chain is
/// without `server_names`.
#[tokio::test]
async fn unknown_sni_no_sni_and_plain_text_are_closed_and_logged_nr() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let yaml = format!(
        "{}{}{}",
        gateway(PASSTHROUGH_443),
        tls_vs(
            "  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a.internal}}]\n"
        ),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let unknown = dial(gw.port(443), &roots, Some("c.example.com")).await;
    assert!(unknown.is_err(), "unknown SNI must not be served");
    let none = dial(gw.port(443), &roots, None).await;
    assert!(none.is_err(), "no SNI must not be served");
    let mut plain = TcpStream::connect(gw.port(443)).await.unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
        .await
        .unwrap();
    assert!(closed(plain).await, "plain HTTP must be closed");
    assert_eq!(a.served(), 0);

    let log = gw.proxy.log_entries(3).await;
    assert_eq!(log.len(), 3, "{log:?}");
    for e in &log {
        assert_eq!(e["response_flags"], "NR", "{e}");
        assert_eq!(e["response_code_details"], "filter_chain_not_found", "{e}");
        assert!(e["upstream_cluster"].is_null(), "{e}");
    }
    let names: Vec<&serde_json::Value> = log.iter().map(|e| &e["requested_server_name"]).collect();
    assert!(
        names.contains(&&serde_json::json!("c.example.com")),
        "{names:?}"
    );
    assert_eq!(names.iter().filter(|n| n.is_null()).count(), 2, "{names:?}");
}

/// A passthrough stream goes through the destination's cluster state:
/// with `outlierDetection`, a host whose connect fails is ejected at
/// once (Envoy counts a connect failure as a 5xx-class error for
/// `consecutive5xxErrors` when local-origin errors are not split, Istio's
/// default), so of ten round-robin connections over a dead and a live
/// host only one fails (UF); without it, every other one would.
#[tokio::test]
async fn outlier_detection_ejects_a_dead_passthrough_endpoint() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let dead = crate::support::dead_addr().await;
    let yaml = format!(
        "{}{}{}apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: a, namespace: default}}
spec:
  host: a.internal
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
    outlierDetection: {{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 5m, maxEjectionPercent: 100}}
---
",
        gateway(PASSTHROUGH_443),
        tls_vs(
            "  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a.internal}}]\n"
        ),
        service_entry("a.internal", 443, "TLS", &[(dead, &[]), (a.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut failed = 0;
    for _ in 0..10 {
        match dial(gw.port(443), &roots, Some("a.example.com")).await {
            Ok(mut tls) => assert_eq!(greeting(&mut tls).await, "hello from a"),
            Err(_) => failed += 1,
        }
    }
    assert_eq!(
        failed, 1,
        "the dead host is ejected after its first failure"
    );
    let log = gw.proxy.log_entries(10).await;
    let uf: Vec<_> = log.iter().filter(|e| e["response_flags"] == "UF").collect();
    assert_eq!(uf.len(), 1, "{log:?}");
    assert_eq!(uf[0]["upstream_host"], dead.to_string());
}

/// A raw ClientHello for `sni` padded to `pad` bytes of extension, in
/// 16 KiB records.
fn padded_hello(sni: &str, pad: usize) -> Vec<u8> {
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    let mut entry = vec![0u8];
    entry.extend((name.len() as u16).to_be_bytes());
    entry.extend(name);
    ext.extend([0u8, 0]);
    ext.extend(((entry.len() + 2) as u16).to_be_bytes());
    ext.extend((entry.len() as u16).to_be_bytes());
    ext.extend(entry);
    ext.extend([0u8, 0x15]);
    ext.extend((pad as u16).to_be_bytes());
    ext.extend(vec![0u8; pad]);
    let mut body = vec![3u8, 3];
    body.extend([7u8; 32]);
    body.extend([0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend((ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut msg = vec![1u8];
    msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    let mut out = Vec::new();
    for chunk in msg.chunks(16 * 1024) {
        out.extend([22, 3, 1]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend(chunk);
    }
    out
}

/// The Envoy of current Istio (1.35 and later: envoyproxy/envoy#39903,
/// #40911) inspects at most 16 KiB of ClientHello; a larger one is plain
/// text for the filter chain match: no SNI, so the `a.example.com` route
/// does not take it (NR), where the same SNI in a small hello is routed.
#[tokio::test]
async fn a_client_hello_over_16_kib_is_plain_text_without_sni() {
    let a = tcp_upstream_counting().await;
    let yaml = format!(
        "{}{}{}",
        gateway(PASSTHROUGH_443),
        tls_vs(
            "  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a.internal}}]\n"
        ),
        service_entry("a.internal", 443, "TLS", &[(a.0, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let mut small = TcpStream::connect(gw.port(443)).await.unwrap();
    small
        .write_all(&padded_hello("a.example.com", 1000))
        .await
        .unwrap();
    let mut big = TcpStream::connect(gw.port(443)).await.unwrap();
    big.write_all(&padded_hello("a.example.com", 20_000))
        .await
        .unwrap();
    assert!(closed(big).await, "an oversized hello is not routed");
    let log = gw.proxy.log_entries(1).await;
    assert_eq!(log[0]["response_flags"], "NR", "{log:?}");
    assert!(log[0]["requested_server_name"].is_null(), "{log:?}");
    // The small one reached the upstream with its bytes.
    let mut got = 0;
    for _ in 0..500 {
        got = a.1.load(std::sync::atomic::Ordering::SeqCst);
        if got > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(got > 1000, "{got}");
    drop(small);
}

/// A TCP upstream counting the bytes it receives.
async fn tcp_upstream_counting() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = n.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    count.fetch_add(k, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (addr, n)
}

/// `sniHosts: ['*']` is a filter chain without `server_names` (pilot
/// `toFilterChainMatch`): it takes any SNI and none.
#[tokio::test]
async fn a_star_sni_route_takes_any_sni_and_none() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let b = TlsUpstream::start(&pki, "b", &["a.example.com"]).await;
    let yaml = format!(
        "{}{}{}{}",
        gateway(&PASSTHROUGH_443.replace("'*.example.com'", "'*'")),
        tls_vs(
            "  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a.internal}}]\n  - match: [{sniHosts: ['*']}]\n    route: [{destination: {host: b.internal}}]\n"
        )
        .replace("hosts: ['*.example.com']", "hosts: ['*']"),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
        service_entry("b.internal", 443, "TLS", &[(b.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    let mut exact = dial(gw.port(443), &roots, Some("a.example.com"))
        .await
        .unwrap();
    assert_eq!(greeting(&mut exact).await, "hello from a");
    let mut none = dial(gw.port(443), &roots, None).await.unwrap();
    assert_eq!(greeting(&mut none).await, "hello from b");
}

/// Weights split connections as the tcp_proxy's weighted clusters do.
#[tokio::test]
async fn weighted_destinations_split_connections() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["w.example.com"]).await;
    let b = TlsUpstream::start(&pki, "b", &["w.example.com"]).await;
    let yaml = format!(
        "{}{}{}{}",
        gateway(PASSTHROUGH_443),
        tls_vs(
            "  - match: [{sniHosts: [w.example.com]}]\n    route:\n    - {destination: {host: a.internal}, weight: 50}\n    - {destination: {host: b.internal}, weight: 50}\n"
        ),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
        service_entry("b.internal", 443, "TLS", &[(b.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let roots = [pki.ca_der()];
    // 40 connections at 50/50: one side getting none has odds 2^-39.
    for _ in 0..40 {
        let mut tls = dial(gw.port(443), &roots, Some("w.example.com"))
            .await
            .unwrap();
        let hello = greeting(&mut tls).await;
        assert!(
            hello == "hello from a" || hello == "hello from b",
            "{hello}"
        );
    }
    assert_eq!(a.served() + b.served(), 40);
    assert!(
        a.served() > 0 && b.served() > 0,
        "{} / {}",
        a.served(),
        b.served()
    );
}

/// An HTTPS server terminating TLS and a PASSTHROUGH server on one port
/// (pilot merges TLS servers whatever their mode): the SNI decides which.
#[tokio::test]
async fn terminating_and_passthrough_servers_share_a_port() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let web = Upstream::named("web").await;
    let front = Pki::new("Gateway CA");
    let (cert, key) = front.leaf("web", "web", &["web.test"]);
    let servers = format!(
        "  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [web.test]
    tls: {{mode: SIMPLE, serverCertificate: {cert}, privateKey: {key}}}
{PASSTHROUGH_443}"
    );
    let yaml = format!(
        "{}{}{}{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: istio-system}}
spec:
  hosts: [web.test]
  gateways: [ingress]
  http:
  - route: [{{destination: {{host: web.internal}}}}]
---
",
        gateway(&servers),
        tls_vs(
            "  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a.internal}}]\n"
        ),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
        service_entry("web.internal", 8080, "HTTP", &[(web.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let mut through = dial(gw.port(443), &[pki.ca_der()], Some("a.example.com"))
        .await
        .unwrap();
    assert_eq!(greeting(&mut through).await, "hello from a");
    let mut terminated = dial(gw.port(443), &[front.ca_der()], Some("web.test"))
        .await
        .expect("the gateway's own certificate for web.test");
    terminated
        .write_all(b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        terminated.read_to_string(&mut response),
    )
    .await
    .expect("a response within 10s");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("web"), "{response}");
}

/// A reload that adds a passthrough port opens it while a passthrough
/// connection on another port keeps flowing.
#[tokio::test]
async fn a_reload_adds_a_passthrough_port_while_connections_flow() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let se = service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]);
    let routes = tls_vs(
        "  - match: [{sniHosts: [a.example.com]}]\n    route: [{destination: {host: a.internal}}]\n",
    );
    let first = PASSTHROUGH_443.replace("number: 443", "number: 8443");
    let yaml = format!("{}{routes}{se}", gateway(&first));
    let gw = GatewayProxy::start_with_ports(&yaml, LABELS, &[443]).await;
    assert_eq!(gw.live_port(443), None);
    let roots = [pki.ca_der()];
    let mut open = dial(gw.port(8443), &roots, Some("a.example.com"))
        .await
        .unwrap();
    assert_eq!(greeting(&mut open).await, "hello from a");

    gw.install(&format!(
        "{}{routes}{se}",
        gateway(&format!("{first}{PASSTHROUGH_443}"))
    ));
    let added = gw.live_port(443).expect("443 listens after the reload");
    let mut new = dial(added, &roots, Some("a.example.com")).await.unwrap();
    assert_eq!(greeting(&mut new).await, "hello from a");
    // The connection opened before the reload still echoes.
    open.write_all(b"more").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), open.read_exact(&mut echo))
        .await
        .expect("echo within 10s")
        .unwrap();
    assert_eq!(&echo, b"more");
}

/// A client that sends no complete ClientHello is closed when Envoy's
/// `listener_filters_timeout` runs out (Istio leaves it unset on gateway
/// listeners, so Envoy's 15 s default applies, pilot `buildGatewayListener`;
/// `continue_on_listener_filters_timeout` is false: the socket is closed,
/// no connection created, `downstream_pre_cx_timeout` counted). The test
/// shortens it; what it checks is the close and the counter.
#[tokio::test]
async fn a_client_hello_that_never_completes_is_closed_at_the_listener_filters_timeout() {
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let yaml = format!(
        "{}{}{}",
        gateway(PASSTHROUGH_443),
        tls_vs(TWO_ROUTES),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
    );
    let limits = strait::proxy::DownstreamLimits {
        listener_filters_timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let gw = GatewayProxy::start_with_limits(&yaml, LABELS, &[], limits).await;
    let mut s = TcpStream::connect(gw.port(443)).await.unwrap();
    // A handshake record header announcing 512 bytes, then nothing.
    s.write_all(&[22, 3, 1, 2, 0, 1]).await.unwrap();
    assert!(closed(s).await);
    assert_eq!(gw.proxy.running.shared.downstream.pre_cx_timeout.get(), 1);
    assert_eq!(a.served(), 0);
}

/// openssl s_client through the gateway verifies the upstream's
/// certificate chain for the SNI it sends.
#[tokio::test]
async fn openssl_s_client_reaches_the_upstream_by_servername() {
    if !installed("openssl") {
        return;
    }
    let pki = Pki::new("Upstream CA");
    let a = TlsUpstream::start(&pki, "a", &["a.example.com"]).await;
    let yaml = format!(
        "{}{}{}",
        gateway(PASSTHROUGH_443),
        tls_vs(TWO_ROUTES),
        service_entry("a.internal", 443, "TLS", &[(a.addr, &[])]),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let port = gw.port(443).port();
    let ca = pki.path("ca.pem");
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-servername",
                "a.example.com",
                "-verify_hostname",
                "a.example.com",
                "-CAfile",
                &ca,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("CN=a") || out.contains("CN = a"), "{out}");
    assert_eq!(a.served(), 1);
}
