//! The gateway's listener set follows the configuration: a Gateway server
//! port added by a reload opens its listener, a removed one stops accepting
//! while its open connections drain, and `GET /listeners` shows the set.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{self, GatewayProxy, Upstream, get, service_entry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LABELS: &[(&str, &str)] = &[("istio", "ingressgateway")];

fn gateway(extra_server: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['*']
{extra_server}---
"
    )
}

const TCP_SERVER: &str = "  - port: {number: 5432, name: db, protocol: TCP}
    hosts: ['*']
";

/// A TCP upstream that echoes until EOF.
async fn tcp_echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn config(web: SocketAddr, db: SocketAddr, extra_server: &str) -> String {
    format!(
        "{}{}{}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: istio-system}}
spec:
  hosts: ['*']
  gateways: [ingress]
  http:
  - route: [{{destination: {{host: web.internal}}}}]
  tcp:
  - match: [{{port: 5432}}]
    route: [{{destination: {{host: db.internal}}}}]
",
        gateway(extra_server),
        service_entry("web.internal", 80, "HTTP", &[(web, &[])]),
        service_entry("db.internal", 5432, "TCP", &[(db, &[])]),
    )
}

async fn echo_once(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .expect("echo within 10s")
        .expect("echo");
    buf
}

async fn admin_listeners(gw: &GatewayProxy) -> serde_json::Value {
    let r = get(gw.proxy.running.admin, "admin", "/listeners").await;
    assert_eq!(r.status, 200);
    serde_json::from_str(&r.text()).expect("/listeners is JSON")
}

/// Wait (bounded) until the load loop has done `n` more requests.
async fn progress(done: &AtomicUsize, n: usize) {
    let start = done.load(Ordering::Relaxed);
    for _ in 0..1000 {
        if done.load(Ordering::Relaxed) >= start + n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the load loop made no progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_added_and_removed_on_reload_while_traffic_flows() {
    let web = Upstream::named("web").await;
    let db = tcp_echo().await;
    let gw = GatewayProxy::start_with_ports(&config(web.addr, db, ""), LABELS, &[5432]).await;
    assert_eq!(gw.live_port(5432), None, "not configured yet");
    let http = gw.port(80);

    // Traffic on port 80 through every reload; bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            let client = support::h1_client();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut failures = Vec::new();
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() > deadline {
                    break;
                }
                let r = support::send(&client, http, "GET", "a.example.com", "/", &[], "").await;
                if r.status != 200 {
                    failures.push(r.status);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        })
    };
    progress(&done, 20).await;

    // Added: the TCP port opens and proxies.
    gw.install(&config(web.addr, db, TCP_SERVER));
    let tcp = gw
        .live_port(5432)
        .expect("port 5432 listens after the reload");
    let mut held = TcpStream::connect(tcp)
        .await
        .expect("connect to the new port");
    assert_eq!(echo_once(&mut held, b"one").await, b"one");
    let listed = admin_listeners(&gw).await;
    let gateway_5432 = listed["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["server_port"] == 5432)
        .unwrap_or_else(|| panic!("5432 in /listeners: {listed:#}"));
    assert_eq!(gateway_5432["protocol"], "TCP");
    assert_eq!(gateway_5432["tls_mode"], "NONE");
    assert_eq!(gateway_5432["address"], tcp.to_string());
    assert_eq!(
        gateway_5432["servers"],
        serde_json::json!(["istio-system/ingress#1 (db)"])
    );
    let names: Vec<&str> = listed["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sidecar", "admin", "gateway_80", "gateway_5432"]);
    progress(&done, 20).await;

    // Removed: no new connections; the open one drains (keeps flowing).
    gw.install(&config(web.addr, db, ""));
    assert_eq!(gw.live_port(5432), None);
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(tcp).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the removed port still accepts");
    assert_eq!(echo_once(&mut held, b"two").await, b"two");
    drop(held);
    progress(&done, 20).await;

    // Added again: bound anew.
    gw.install(&config(web.addr, db, TCP_SERVER));
    let again = gw.live_port(5432).expect("bound again");
    let mut s = TcpStream::connect(again).await.unwrap();
    assert_eq!(echo_once(&mut s, b"three").await, b"three");
    progress(&done, 20).await;

    stop.store(true, Ordering::Relaxed);
    let failures = load.await.unwrap();
    assert!(
        failures.is_empty(),
        "port 80 failed during reloads: {failures:?}"
    );
    assert!(done.load(Ordering::Relaxed) >= 80);
}

#[tokio::test]
async fn a_port_that_cannot_be_bound_on_reload_is_reported_and_the_rest_serves() {
    let web = Upstream::named("web").await;
    let db = tcp_echo().await;
    // Another socket holds the address port 5432 maps to.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let yaml = config(web.addr, db, "");
    let proxy = support::Proxy::start_as(
        &yaml,
        strait::compile::ProxyIdentity {
            labels: LABELS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            gateway: true,
            ..Default::default()
        },
    )
    .await;
    let bind = strait::proxy::gateway::Bind {
        ports: [(80, 0), (5432, taken)].into_iter().collect(),
        ..Default::default()
    };
    let listeners = strait::proxy::gateway::start(
        &proxy.running.shared,
        &bind,
        proxy.running.shutdown_signal(),
    )
    .unwrap();
    let gw = GatewayProxy { proxy, listeners };
    gw.install(&config(web.addr, db, TCP_SERVER));
    assert_eq!(gw.live_port(5432), None);
    let listed = admin_listeners(&gw).await;
    let failed = &listed["failed"][0];
    assert_eq!(failed["server_port"], 5432, "{listed:#}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{taken}")) && error.contains("--gateway-port 5432="),
        "{error}"
    );
    // The rest of the configuration is live.
    assert_eq!(get(gw.port(80), "a.example.com", "/").await.status, 200);
    // Freed: the next reload binds it.
    drop(squatter);
    gw.install(&config(web.addr, db, TCP_SERVER));
    assert_eq!(
        gw.live_port(5432).map(|a| a.port()),
        Some(taken),
        "bound on the next reload"
    );
    assert_eq!(admin_listeners(&gw).await["failed"], serde_json::json!([]));
}
