//! TLS termination on HTTPS gateway ports: read the ClientHello first
//! (`LazyConfigAcceptor`), let its SNI pick the server as Envoy's filter
//! chain match does (`compile::gateway::select_server`: the server's
//! certificate, client verification and route table), finish the
//! handshake with that server's `ServerConfig` from the live snapshot, then
//! serve HTTP/1.1 or h2 (ALPN) with the same connection code as every
//! listener. A reload swaps the `ServerConfig` for new handshakes; open
//! connections keep theirs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::server::Acceptor;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::LazyConfigAcceptor;

use super::Shared;
use super::access_log::{Entry, format_time};
use super::exchange::{ConnInfo, TlsConn};
use crate::compile::gateway::select_server;
use crate::compile::gateway_tls::{ALPN_HTTP, SanKind, subject_alt_names};
use crate::flags::Flags;

/// How long a client may take from connect to a finished handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Terminate TLS on an accepted connection of HTTPS gateway port `port`
/// and serve it, in its own task.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    stream: TcpStream,
    remote: SocketAddr,
    port: u16,
    shutdown: &watch::Receiver<bool>,
) {
    let alive = shared.connection_guard();
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(remote);
    let (shared, builder, shutdown) = (shared.clone(), builder.clone(), shutdown.clone());
    tokio::spawn(super::clock::Clocked::new(async move {
        let peer = Peer {
            local,
            remote,
            port,
        };
        serve(shared, builder, stream, peer, shutdown, alive).await;
    }));
}

/// Where a connection came from and to which gateway port.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub port: u16,
}

/// Terminate TLS on `stream` (a TCP stream, or one whose ClientHello was
/// read already and is replayed, on a port where passthrough routes sit
/// beside HTTPS servers) and serve HTTP over it until it ends.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stream: S,
    peer: Peer,
    shutdown: watch::Receiver<bool>,
    alive: Arc<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Peer {
        local,
        remote,
        port,
    } = peer;
    let started = std::time::Instant::now();
    let start_time = format_time(std::time::SystemTime::now());
    let timeout = shared
        .limits
        .request_headers_timeout
        .unwrap_or(HANDSHAKE_TIMEOUT);
    let tls = match tokio::time::timeout(timeout, handshake(&shared, stream, port)).await {
        Ok(Ok(t)) => t,
        Ok(Err(Failed::NoServer(sni))) => {
            // Istio's listener access log records connections no filter
            // chain takes (response flag NR).
            if shared.access_log.enabled() {
                shared.access_log.log(&Entry {
                    start_time,
                    method: "-".into(),
                    path: "-".into(),
                    protocol: "-",
                    response_flags: Flags::NO_ROUTE_FOUND,
                    response_code_details: "filter_chain_not_found".into(),
                    duration: started.elapsed().as_millis() as u64,
                    downstream_local_address: local.to_string(),
                    downstream_remote_address: remote.to_string(),
                    requested_server_name: sni,
                    ..Default::default()
                });
            }
            return;
        }
        Ok(Err(Failed::Handshake(why))) => {
            tracing::debug!(%remote, port, "TLS handshake not completed: {why}");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, port, "TLS handshake timed out");
            return;
        }
    };
    let (stream, conn_tls, tcp) = tls;
    if tcp {
        let _alive = alive;
        serve_tcp(&shared, stream, peer, conn_tls).await;
        return;
    }
    let mut conn = ConnInfo::new(local, remote);
    conn.gateway_port = Some(port);
    conn.tls = Some(Arc::new(conn_tls));
    // h2 by ALPN goes to strait's HTTP/2 server; anything else to hyper's
    // auto builder (HTTP/1.1, or a preface sent without ALPN).
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        Box::pin(super::serve_h2(shared, stream, conn, shutdown, alive)).await;
    } else {
        super::serve_http(shared, builder, stream, conn, shutdown, alive).await;
    }
}

/// Why a connection was not served.
enum Failed {
    /// No server takes the SNI (or its absence).
    NoServer(Option<String>),
    Handshake(String),
}

async fn handshake<S>(
    shared: &Shared,
    stream: S,
    port: u16,
) -> Result<(tokio_rustls::server::TlsStream<S>, TlsConn, bool), Failed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
        .await
        .map_err(|e| Failed::Handshake(format!("reading the ClientHello: {e}")))?;
    let hello = start.client_hello();
    let sni = hello.server_name().map(str::to_string);
    let speaks_ours = hello
        .alpn()
        .is_none_or(|mut offered| offered.any(|p| ALPN_HTTP.contains(&p)));
    let (config, gateway, server, tcp) = {
        let snapshot = shared.snapshot.load();
        // No filter chain matches (or the port no longer serves HTTPS):
        // Envoy closes the connection.
        let Some(s) = snapshot
            .gateway
            .https(port)
            .and_then(|servers| select_server(servers, sni.as_deref()))
        else {
            return Err(Failed::NoServer(sni));
        };
        // Istio offers ALPN (`h2`, `http/1.1`) on HTTPS servers only.
        let tcp = s.tcp.is_some();
        let config = if speaks_ours && !tcp {
            s.tls.config.clone()
        } else {
            s.tls.config_no_alpn.clone()
        };
        (config, s.server.gateway.clone(), s.server.index, tcp)
    };
    let stream = start
        .into_stream(config)
        .await
        .map_err(|e| Failed::Handshake(format!("SNI {sni:?}: {e}")))?;
    let xfcc = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(xfcc);
    Ok((
        stream,
        TlsConn {
            gateway,
            server,
            sni,
            xfcc,
        },
        tcp,
    ))
}

/// The decrypted stream of a `TLS` server terminating TLS goes through its
/// `tcp` route's tcp_proxy (pilot `buildGatewayNetworkFiltersFromTCPRoutes`
/// behind the server's TLS context), logged with the SNI.
async fn serve_tcp<S>(
    shared: &Shared,
    stream: tokio_rustls::server::TlsStream<S>,
    peer: Peer,
    tls: TlsConn,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let snapshot = shared.snapshot.load_full();
    let mut conn = super::tcp::Conn::at(peer.local, peer.remote);
    conn.entry.requested_server_name = tls.sni.clone();
    let chosen = snapshot.gateway.https(peer.port).and_then(|servers| {
        servers
            .iter()
            .find(|s| s.server.gateway == tls.gateway && s.server.index == tls.server)
    });
    let Some(route) = chosen.and_then(|s| s.tcp.as_ref()) else {
        // Reloaded away between the handshake and here.
        conn.no_route(shared);
        return;
    };
    let route = super::tcp::Route {
        name: format!("{}#tcp[{}]", route.virtual_service, route.rule_index),
        destinations: &route.destinations,
    };
    let limits = shared.tcp.clone();
    super::tcp::forward(shared, &limits, &snapshot, stream, conn, route, Vec::new()).await;
}

/// Envoy's URL encoding of the PEM certificate: all but unreserved bytes.
const PEM_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `x-forwarded-client-cert` for a verified client certificate as Istio's
/// gateways set it (`SANITIZE_SET` with `set_current_client_cert_details`
/// Subject, Cert, URI and DNS, pilot `buildGatewayConnectionManager`), in
/// Envoy's order: `Hash` (SHA-256 of the DER, hex), `Cert` (URL-encoded
/// PEM), `Subject` (RFC 2253), then one `URI=` and one `DNS=` per SAN.
pub fn xfcc(cert: &CertificateDer<'_>) -> Option<HeaderValue> {
    let hash = ring::digest::digest(&ring::digest::SHA256, cert);
    let mut out = String::from("Hash=");
    for b in hash.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    let pem = rustls_pem(cert);
    out.push_str(";Cert=\"");
    out.extend(utf8_percent_encode(&pem, PEM_ENCODE));
    out.push('"');
    let subject = x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| rfc2253(c.subject()))
        .unwrap_or_default();
    out.push_str(";Subject=\"");
    out.push_str(&subject.replace('"', "\\\""));
    out.push('"');
    let sans = subject_alt_names(cert);
    for kind in [SanKind::Uri, SanKind::Dns] {
        for (_, n) in sans.iter().filter(|(k, _)| *k == kind) {
            out.push_str(if kind == SanKind::Uri {
                ";URI="
            } else {
                ";DNS="
            });
            out.push_str(n);
        }
    }
    HeaderValue::from_str(&out).ok()
}

fn rustls_pem(cert: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(cert);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// A distinguished name as OpenSSL's `XN_FLAG_RFC2253` prints it: the last
/// RDN first, `,` between them, `+` within one.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let oid = atv.attr_type();
                    let key =
                        x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                            .map(str::to_string)
                            .unwrap_or_else(|_| oid.to_id_string());
                    let value = atv.as_str().map(escape_rdn).unwrap_or_default();
                    format!("{key}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn escape_rdn(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == v.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
