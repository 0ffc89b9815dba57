//! strait as an Istio gateway: Gateway servers become listeners, bound
//! VirtualServices route HTTP by host and TCP by `tcp` rules, with Envoy's
//! response flags in the access log.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{
    GatewayProxy, Upstream, dead_addr, get, greeting, server_first, service_entry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GATEWAY: &str = "
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['*.example.com']
  - port: {number: 5432, name: tcp, protocol: TCP}
    hosts: ['*']
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 81, name: http, protocol: HTTP}
    hosts: ['*']
---
";

const LABELS: &[(&str, &str)] = &[("istio", "ingressgateway")];

fn tcp_vs(routes: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: db, namespace: istio-system}}\nspec:\n  hosts: [db.example.com]\n  gateways: [ingress]\n  tcp:\n  - match: [{{port: 5432}}]\n    route:\n{routes}---\n"
    )
}

#[tokio::test]
async fn http_gateway_routes_bound_virtual_services_by_host() {
    let web = Upstream::named("web").await;
    let api = Upstream::named("api").await;
    let yaml = format!(
        "{GATEWAY}{}{}{}",
        service_entry("web.example.com", 8080, "HTTP", &[(web.addr, &[])]),
        service_entry("api.internal", 9090, "HTTP", &[(api.addr, &[])]),
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web.example.com]
  gateways: [istio-system/ingress]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: api.internal}}]
  - route: [{destination: {host: web.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: default}
spec:
  hosts: [shop.example.com]
  http:
  - route: [{destination: {host: web.example.com}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: off-server, namespace: default}
spec:
  hosts: [web.other.org]
  gateways: [istio-system/ingress]
  http:
  - route: [{destination: {host: web.example.com}}]
---
",
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    // Only the ingress Gateway selects these labels.
    let ports: Vec<u16> = gw.listeners.iter().map(|l| l.server_port).collect();
    assert_eq!(ports, vec![80, 5432]);
    let http = gw.port(80);
    let r = get(http, "web.example.com", "/").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "web"));
    // Istio gateways ignore the port in the Host header.
    let r = get(http, &format!("web.example.com:{}", http.port()), "/api/v1").await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "api"));
    // Bound only to `mesh`: not on the gateway.
    assert_eq!(get(http, "shop.example.com", "/").await.status, 404);
    // Bound, but its host is not among the server's hosts.
    assert_eq!(get(http, "web.other.org", "/").await.status, 404);
    let entries = gw.proxy.log_entries(4).await;
    let flags: Vec<&str> = entries
        .iter()
        .map(|e| e["response_flags"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(flags, vec!["-", "-", "NR", "NR"]);
    assert_eq!(web.hits() + api.hits(), 2);
}

#[tokio::test]
async fn http_gateway_port_without_bound_virtual_service_is_404_nr() {
    let gw = GatewayProxy::start(GATEWAY, LABELS).await;
    let r = get(gw.port(80), "anything.example.com", "/").await;
    assert_eq!(r.status, 404);
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(e["response_flags"], "NR");
}

#[tokio::test]
async fn tcp_gateway_splits_connections_by_weight() {
    let a = server_first("a").await;
    let b = server_first("b").await;
    let yaml = format!(
        "{GATEWAY}{}{}{}",
        service_entry("db-a.internal", 5432, "TCP", &[(a, &[])]),
        service_entry("db-b.internal", 5432, "TCP", &[(b, &[])]),
        tcp_vs(
            "    - {destination: {host: db-a.internal}, weight: 50}\n    - {destination: {host: db-b.internal}, weight: 50}\n"
        ),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let addr = gw.port(5432);
    let (mut seen_a, mut seen_b) = (0, 0);
    for _ in 0..40 {
        match greeting(addr).await.as_str() {
            "a" => seen_a += 1,
            "b" => seen_b += 1,
            other => panic!("unexpected greeting {other:?}"),
        }
    }
    assert!(seen_a > 0 && seen_b > 0, "a={seen_a} b={seen_b}");
    // Bytes flow both ways through the tcp_proxy.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut hello = [0u8; 1];
    s.read_exact(&mut hello).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    s.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
    drop(s);
    let entries = gw.proxy.log_entries(41).await;
    assert!(entries.iter().all(|e| e["response_flags"] == "-"));
    assert!(entries.iter().all(|e| {
        e["upstream_cluster"]
            .as_str()
            .unwrap()
            .starts_with("outbound|5432||db-")
    }));
    // The greeting only; the echoed connection also received 4 bytes.
    assert_eq!(entries.iter().filter(|e| e["bytes_sent"] == 1).count(), 40);
    assert!(
        entries
            .iter()
            .any(|e| e["bytes_sent"] == 5 && e["bytes_received"] == 4)
    );
    let metrics = gw.proxy.running.shared.metrics.encode();
    let opened = metrics
        .lines()
        .filter(|l| l.starts_with("istio_tcp_connections_opened_total{"))
        .count();
    assert_eq!(opened, 2, "one series per destination service:\n{metrics}");
    assert!(metrics.contains("istio_tcp_received_bytes_total{"));
}

#[tokio::test]
async fn tcp_gateway_connect_failure_closes_with_uf() {
    let dead = dead_addr().await;
    let yaml = format!(
        "{GATEWAY}{}{}",
        service_entry("db.internal", 5432, "TCP", &[(dead, &[])]),
        tcp_vs("    - destination: {host: db.internal}\n"),
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    assert_eq!(greeting(gw.port(5432)).await, "", "closed without data");
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(e["response_flags"], "UF");
    assert_eq!(e["upstream_host"], dead.to_string());
    assert!(
        e["upstream_transport_failure_reason"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{e}"
    );
}

#[tokio::test]
async fn tcp_gateway_without_matching_rule_closes_with_nr() {
    let a = server_first("a").await;
    // The only rule matches port 9999, not the server's 5432.
    let yaml = format!(
        "{GATEWAY}{}{}",
        service_entry("db.internal", 5432, "TCP", &[(a, &[])]),
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: istio-system}
spec:
  hosts: [db.example.com]
  gateways: [ingress]
  tcp:
  - match: [{port: 9999}]
    route: [{destination: {host: db.internal}}]
---
",
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    assert_eq!(greeting(gw.port(5432)).await, "");
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(e["response_flags"], "NR");
}

#[tokio::test]
async fn tcp_gateway_max_connections_overflow_is_uo() {
    let a = server_first("a").await;
    let yaml = format!(
        "{GATEWAY}{}{}{}",
        service_entry("db.internal", 5432, "TCP", &[(a, &[])]),
        tcp_vs("    - destination: {host: db.internal}\n"),
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.internal
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
---
",
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let addr = gw.port(5432);
    let mut held = TcpStream::connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    held.read_exact(&mut b).await.unwrap();
    assert_eq!(greeting(addr).await, "", "over maxConnections: closed");
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(e["response_flags"], "UO");
    drop(held);
    // The unit comes back when the held connection closes.
    let mut got = String::new();
    for _ in 0..100 {
        got = greeting(addr).await;
        if got == "a" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got, "a");
}

#[tokio::test]
async fn tcp_gateway_idle_timeout_from_destination_rule_closes_both_sides() {
    let a = server_first("a").await;
    let yaml = format!(
        "{GATEWAY}{}{}{}",
        service_entry("db.internal", 5432, "TCP", &[(a, &[])]),
        tcp_vs("    - destination: {host: db.internal}\n"),
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.internal
  trafficPolicy: {connectionPool: {tcp: {idleTimeout: 200ms}}}
---
",
    );
    let gw = GatewayProxy::start(&yaml, LABELS).await;
    let mut s = TcpStream::connect(gw.port(5432)).await.unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).await.unwrap(), 1);
    // Idle: the proxy closes well within a generous bound.
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed by the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    let e = &gw.proxy.log_entries(1).await[0];
    assert_eq!(e["connection_termination_details"], "idle_timeout");
}

/// `strait run --gateway` as an operator runs it: the startup lines name
/// every gateway port and where it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_gateway_flag_serves_gateway_ports() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let web = Upstream::named("web").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    let yaml = format!(
        "{GATEWAY}{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: istio-system}}
spec:
  hosts: [web.example.com]
  gateways: [ingress]
  http:
  - route: [{{destination: {{host: web.example.com}}}}]
---
",
        service_entry("web.example.com", 8080, "HTTP", &[(web.addr, &[])]),
    );
    std::fs::write(&path, yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--gateway", "--labels", "istio=ingressgateway"])
        .args(["--gateway-port", "80=0", "--gateway-port", "5432=0"])
        .arg("-c")
        .arg(&path)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("strait starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut http: Option<SocketAddr> = None;
    let mut ports = Vec::new();
    for _ in 0..50 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.strip_prefix("strait: gateway port ") {
            let (port, rest) = rest.split_once(' ').unwrap();
            let addr = rest.split(" listening on ").nth(1).unwrap();
            let addr: SocketAddr = addr.split_once(' ').unwrap().0.parse().unwrap();
            ports.push(port.to_string());
            if port == "80" {
                http = Some(addr);
            }
        }
        if line.starts_with("strait: listening on ") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(ports, vec!["80", "5432"]);
    let r = get(http.expect("port 80 is bound"), "web.example.com", "/").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "web"));
}

/// An AUTO_PASSTHROUGH server (SNI-DNAT to mesh clusters, which strait
/// does not have) is refused at startup, naming the Gateway, the field and
/// what to use instead, rather than silently not listening.
#[test]
fn run_with_gateway_flag_refuses_auto_passthrough_servers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(
        &path,
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: ['*']
    tls: {mode: AUTO_PASSTHROUGH}
",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--gateway", "--labels", "istio=ingressgateway", "-c"])
        .arg(&path)
        .output()
        .expect("strait runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(79), "{stderr}");
    assert!(
        stderr.contains("Gateway istio-system/ingress: spec.servers[0].tls.mode: AUTO_PASSTHROUGH"),
        "{stderr}"
    );
}
