//! TLS on the sidecar listener (`--listen`): a ClientHello is told from
//! HTTP by its first byte, as Istio's protocol sniffing tells them apart,
//! and routed by SNI, untouched, to the service of that host (a
//! ServiceEntry with a `TLS` or `HTTPS` port) or to what a VirtualService
//! `tls` rule says. The clients verify the upstream's own certificate.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::gateway_passthrough::{TlsUpstream, closed, dial, greeting};
use crate::gateway_tls::{Pki, installed};
use crate::support::{Proxy, Upstream, get, service_entry};

/// A ServiceEntry `api.example.com:443` (TLS) to `api`, an HTTP service
/// `web.internal` beside it, and `extra`.
fn config(api: &TlsUpstream, web: &Upstream, extra: &str) -> String {
    format!(
        "{}{}{extra}",
        service_entry("api.example.com", 443, "TLS", &[(api.addr, &[])]),
        service_entry("web.internal", 80, "HTTP", &[(web.addr, &[])]),
    )
}

#[tokio::test]
async fn a_client_hello_reaches_the_tls_service_of_its_sni_and_http_still_works() {
    let pki = Pki::new("Upstream CA");
    let api = TlsUpstream::start(&pki, "api", &["api.example.com"]).await;
    let web = Upstream::named("web").await;
    let proxy = Proxy::start(&config(&api, &web, "")).await;

    let mut tls = dial(proxy.addr(), &[pki.ca_der()], Some("api.example.com"))
        .await
        .expect("the upstream's certificate verifies through the sidecar");
    assert_eq!(greeting(&mut tls).await, "hello from api");
    drop(tls);
    // The same listener serves HTTP as before.
    let r = get(proxy.addr(), "web.internal", "/").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "web"));

    let log = proxy.log_entries(2).await;
    let e = log
        .iter()
        .find(|e| e["requested_server_name"] == "api.example.com")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(e["upstream_cluster"], "outbound|443||api.example.com");
    assert_eq!(e["route_name"], "outbound|443||api.example.com");
    assert_eq!(e["upstream_host"], api.addr.to_string());
    assert_eq!(e["response_flags"], "-");

    // The live /explain of an https URL is the TLS route its SNI picks.
    let r = get(
        proxy.running.admin,
        "admin",
        "/explain?url=https://api.example.com/",
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(v["tls"]["route"], "outbound|443||api.example.com", "{v}");
    assert_eq!(
        v["destinations"][0]["endpoint_health"][0]["address"],
        api.addr.to_string(),
        "{v}"
    );
}

/// A VirtualService `tls` rule for the host sends its SNI elsewhere
/// (pilot: a matching `tls` rule replaces the service's own chain).
#[tokio::test]
async fn a_tls_rule_routes_the_sni_to_another_destination() {
    let pki = Pki::new("Upstream CA");
    let api = TlsUpstream::start(&pki, "api", &["api.example.com"]).await;
    let canary = TlsUpstream::start(&pki, "canary", &["api.example.com"]).await;
    let web = Upstream::named("web").await;
    let extra = format!(
        "{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{{port: 443, sniHosts: [api.example.com]}}]
    route: [{{destination: {{host: canary.internal}}}}]
---
",
        service_entry("canary.internal", 443, "TLS", &[(canary.addr, &[])]),
    );
    let proxy = Proxy::start(&config(&api, &web, &extra)).await;
    let mut tls = dial(proxy.addr(), &[pki.ca_der()], Some("api.example.com"))
        .await
        .unwrap();
    assert_eq!(greeting(&mut tls).await, "hello from canary");
    assert_eq!((api.served(), canary.served()), (0, 1));
    drop(tls);
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["route_name"], "default/api#tls[0]");
    assert_eq!(log[0]["upstream_cluster"], "outbound|443||canary.internal");
}

/// No chain for the SNI, or no SNI: closed, logged NR
/// `filter_chain_not_found` (Envoy's outbound listener has no filter chain
/// for it; Istio's default passthrough cluster needs the original
/// destination, which strait's listener does not have).
#[tokio::test]
async fn unknown_or_missing_sni_is_closed_and_logged_nr() {
    let pki = Pki::new("Upstream CA");
    let api = TlsUpstream::start(&pki, "api", &["api.example.com"]).await;
    let web = Upstream::named("web").await;
    let proxy = Proxy::start(&config(&api, &web, "")).await;
    let roots = [pki.ca_der()];
    assert!(
        dial(proxy.addr(), &roots, Some("other.example.com"))
            .await
            .is_err()
    );
    assert!(dial(proxy.addr(), &roots, None).await.is_err());
    // Half a ClientHello then FIN: closed, nothing logged (Envoy closes the
    // socket before a connection exists).
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(&[22, 3, 1, 0, 200, 1]).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed(s).await);
    let log = proxy.log_entries(2).await;
    assert_eq!(api.served(), 0);
    assert_eq!(log.len(), 2, "{log:?}");
    for e in &log {
        assert_eq!(e["response_flags"], "NR", "{e}");
        assert_eq!(e["response_code_details"], "filter_chain_not_found", "{e}");
    }
    assert_eq!(log[0]["requested_server_name"], "other.example.com");
    assert!(log[1]["requested_server_name"].is_null());
}

/// A ServiceEntry with `resolution: DNS`: the endpoint's name is resolved
/// at connect time, and curl (`--connect-to`, as a client whose DNS points
/// at the sidecar) gets the upstream's HTTPS answer through it.
#[tokio::test]
async fn curl_reaches_an_https_service_entry_with_dns_resolution() {
    let pki = Pki::new("Upstream CA");
    let api = TlsUpstream::https(&pki, "api", &["api.example.com"]).await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{{number: 443, name: https, protocol: HTTPS}}]
  endpoints: [{{address: localhost, ports: {{https: {}}}}}]
---
",
        api.addr.port()
    );
    let proxy = Proxy::start(&yaml).await;
    let mut tls = dial(proxy.addr(), &[pki.ca_der()], Some("api.example.com"))
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    use tokio::io::AsyncReadExt;
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut answer))
        .await
        .expect("an answer within 10s");
    assert!(answer.ends_with("hello from api"), "{answer}");

    if !installed("curl") {
        return;
    }
    let (port, ca) = (proxy.addr().port(), pki.path("ca.pem"));
    let out = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &ca])
            .args([
                "--connect-to",
                &format!("api.example.com:443:127.0.0.1:{port}"),
            ])
            .arg("https://api.example.com/")
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
    .await
    .unwrap();
    assert_eq!(out, "hello from api");
    assert_eq!(api.served(), 2);
}
