//! Where endpoints come from (WorkloadEntries picked by a ServiceEntry's
//! workloadSelector, DNS names) and a client that goes away mid-response (DC).

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn workload_entries_selected_by_the_service_entry_are_endpoints_with_ports_by_name() {
    let a = Upstream::named("we-a").await;
    let b = Upstream::named("other-ns").await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: vm}}
spec:
  hosts: [vm.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: vm}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vm-1}}
spec:
  address: {}
  ports: {{http: {}}}
  labels: {{app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vm-elsewhere, namespace: other}}
spec:
  address: {}
  ports: {{http: {}}}
  labels: {{app: vm}}
",
        a.addr.ip(),
        a.addr.port(),
        b.addr.ip(),
        b.addr.port()
    );
    let proxy = Proxy::start(&yaml).await;
    for _ in 0..5 {
        assert_eq!(get(proxy.addr(), "vm", "/").await.text(), "we-a");
    }
    assert_eq!(
        b.hits(),
        0,
        "WorkloadEntries in other namespaces are not selected"
    );
}

#[tokio::test]
async fn dns_endpoints_are_resolved_when_connecting() {
    let up = Upstream::named("by-name").await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext}}
spec:
  hosts: [ext.example.test]
  resolution: DNS
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: localhost, ports: {{http: {}}}}}]
",
        up.addr.port()
    );
    let proxy = Proxy::start(&yaml).await;
    let got = get(proxy.addr(), "ext.example.test", "/").await;
    assert_eq!(got.text(), "by-name");
    let log = proxy.log_entries(1).await;
    assert_eq!(
        log[0]["upstream_host"],
        format!("localhost:{}", up.addr.port())
    );
}

#[tokio::test]
async fn client_gone_before_the_response_ended_is_logged_dc() {
    // A raw upstream: headers promising 1000 bytes, five of them, then silence.
    let release = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = release.clone();
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nfirst")
                .await;
            hold.notified().await;
        }
    });
    let yaml = service_entry("slow.default.svc.cluster.local", 80, "HTTP", &[(addr, &[])]);
    let proxy = Proxy::start(&yaml).await;
    let mut client = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: slow\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    for _ in 0..100 {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("the proxy streams the first bytes")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
        if got.ends_with(b"first") {
            break;
        }
    }
    drop(client);
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["response_code"], 200);
    assert!(
        log[0]["response_flags"].as_str().unwrap().contains("DC"),
        "{}",
        log[0]
    );
    release.notify_one();
}
