//! reliability.md case 8: TCP half-close through a tcp route. A FIN from
//! either side is propagated (Envoy's tcp_proxy shuts down the write side
//! toward the peer) and the other direction keeps flowing until its own FIN.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{GatewayProxy, service_entry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const LIMIT: Duration = Duration::from_secs(10);

fn config(upstream: SocketAddr) -> String {
    format!(
        "{}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: gateway}}
  servers:
  - port: {{number: 9000, name: tcp, protocol: TCP}}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: raw, namespace: istio-system}}
spec:
  hosts: ['*']
  gateways: [gw]
  tcp:
  - route: [{{destination: {{host: raw.internal}}}}]
---
",
        service_entry("raw.internal", 9000, "TCP", &[(upstream, &[])])
    )
}

async fn gateway(upstream: SocketAddr) -> GatewayProxy {
    GatewayProxy::start(&config(upstream), &[("istio", "gateway")]).await
}

#[tokio::test]
async fn case_08_tcp_half_close_downstream_fin_reaches_upstream_and_response_still_flows() {
    // The upstream reads to EOF (the client's FIN, propagated), then
    // answers and closes: the answer must still reach the half-closed client.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(format!("got {} bytes", got.len()).as_bytes())
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    let gw = gateway(upstream).await;
    let mut c = TcpStream::connect(gw.port(9000)).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    c.shutdown().await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(LIMIT, c.read_to_string(&mut answer))
        .await
        .expect("the upstream saw the FIN and answered")
        .unwrap();
    assert_eq!(answer, "got 5 bytes");
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(e["response_flags"], "-");
    assert_eq!(
        (e["bytes_received"].as_u64(), e["bytes_sent"].as_u64()),
        (Some(5), Some(11))
    );
    assert!(e["connection_termination_details"].is_null(), "{e}");
}

#[tokio::test]
async fn case_08_tcp_half_close_upstream_fin_reaches_client_and_request_still_flows() {
    // The upstream sends a banner and its FIN at once, then keeps reading:
    // the client sees EOF after the banner and can still send.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(b"banner").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        let _ = tx.send(got);
    });
    let gw = gateway(upstream).await;
    let mut c = TcpStream::connect(gw.port(9000)).await.unwrap();
    let mut banner = Vec::new();
    tokio::time::timeout(LIMIT, c.read_to_end(&mut banner))
        .await
        .expect("the upstream's FIN reached the client")
        .unwrap();
    assert_eq!(banner, b"banner");
    c.write_all(b"after your FIN").await.unwrap();
    c.shutdown().await.unwrap();
    let got = tokio::time::timeout(LIMIT, rx)
        .await
        .expect("the upstream saw the client's FIN")
        .unwrap();
    assert_eq!(got, b"after your FIN");
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(
        (e["bytes_received"].as_u64(), e["bytes_sent"].as_u64()),
        (Some(14), Some(6))
    );
}
