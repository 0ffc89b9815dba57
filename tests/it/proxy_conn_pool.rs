//! DestinationRule `connectionPool`: circuit breaking (maxConnections and
//! the pending queue, 503 UO), connections per request, idle timeout,
//! connect timeout, HTTP/2 upgrade and the client's protocol.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

use crate::support::*;

fn config(addr: std::net::SocketAddr, protocol: &str, pool: &str) -> String {
    service_entry("backend.test", 80, protocol, &[(addr, &[])])
        + &format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend}}
spec:
  host: backend.test
  trafficPolicy:
    connectionPool:
{pool}
"
        )
}

/// The pool the proxy uses for `backend.test`.
fn pool(proxy: &Proxy) -> Arc<strait::proxy::upstream::ClusterPool> {
    let shared = &proxy.running.shared;
    let snap = shared.snapshot.load();
    let cluster = snap
        .clusters
        .values()
        .find(|c| c.name.contains("backend.test"))
        .expect("the backend cluster")
        .clone();
    shared.upstreams.pool(&cluster)
}

/// Poll `f` until it holds (bounded).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

/// An HTTP/1.1 server counting accepted and closed connections.
struct Counting {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Counting {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Counting {
    async fn start() -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (accepted.clone(), closed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let c = c.clone();
                tokio::spawn(async move {
                    // `/empty`: 204 and `/zero`: an empty 200 (bodies that
                    // end before anyone reads them); anything else: "ok".
                    let svc = service_fn(|req: Request<Incoming>| async move {
                        let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                        match req.uri().path() {
                            "/empty" => {
                                *resp.body_mut() = Full::new(Bytes::new());
                                *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                            }
                            "/zero" => *resp.body_mut() = Full::new(Bytes::new()),
                            _ => {}
                        }
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    c.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Counting {
            addr,
            accepted,
            closed,
            task,
        }
    }
}

#[tokio::test]
async fn max_connections_with_a_full_pending_queue_overflows_with_uo() {
    // The upstream tells us each request's arrival and holds it until released.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<()>();
    let release = Arc::new(Semaphore::new(0));
    let r = release.clone();
    let up = Upstream::start(
        "slow",
        Arc::new(move |_| {
            let (tx, r) = (arrived_tx.clone(), r.clone());
            Box::pin(async move {
                let _ = tx.send(());
                r.acquire().await.unwrap().forget();
                Response::new(Full::new(Bytes::from_static(b"slow")))
            })
        }),
    )
    .await;
    let proxy = Proxy::start(&config(
        up.addr,
        "HTTP",
        "      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}",
    ))
    .await;
    let addr = proxy.addr();
    let first = tokio::spawn(async move { get(addr, "backend.test", "/1").await });
    arrived
        .recv()
        .await
        .expect("the first request reaches the upstream");
    let second = tokio::spawn(async move { get(addr, "backend.test", "/2").await });
    let p = pool(&proxy);
    eventually("the second request waits for a connection", || {
        p.pending() == 1
    })
    .await;
    assert_eq!(p.open_connections(), 1);

    let third = get(addr, "backend.test", "/3").await;
    assert_eq!(third.status, 503);
    assert_eq!(third.header("x-envoy-overloaded"), Some("true"));

    release.add_permits(2);
    let a = first.await.unwrap();
    // Woken when the first request's connection is put back, not at the
    // connect timeout (10 s) that bounds the wait.
    let b = tokio::time::timeout(std::time::Duration::from_secs(5), second)
        .await
        .expect("the queued request is woken by the connection put back")
        .unwrap();
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    assert_eq!(up.hits(), 2);
    let log = proxy.log_entries(3).await;
    let uo: Vec<_> = log.iter().filter(|e| e["response_flags"] == "UO").collect();
    assert_eq!(uo.len(), 1, "{log:?}");
    assert_eq!(uo[0]["path"], "/3");
    let metrics = get(proxy.running.admin, "admin", "/stats/prometheus")
        .await
        .text();
    assert!(
        metrics.lines().any(
            |l| l.starts_with("envoy_cluster_upstream_rq_pending_overflow") && l.ends_with(" 1")
        ),
        "{metrics}"
    );
    // Istio's circuit-breaking task: `pilot-agent request GET stats | grep
    // pending` shows Envoy's four pending stats. Envoy's pool counts /1
    // (waiting for its new connection) and /2 (queued at maxConnections,
    // the connection it could not open counted as upstream_cx_overflow) as
    // pending; /3 overflowed and was never sent, so upstream_rq_total
    // counts the two requests given a connection. #14
    let stats = get(proxy.running.admin, "admin", "/stats").await.text();
    let cluster = "cluster.outbound|80||backend.test.";
    let pending: Vec<&str> = stats.lines().filter(|l| l.contains("pending")).collect();
    assert_eq!(
        pending,
        [
            format!("{cluster}upstream_rq_pending_active: 0"),
            format!("{cluster}upstream_rq_pending_failure_eject: 0"),
            format!("{cluster}upstream_rq_pending_overflow: 1"),
            format!("{cluster}upstream_rq_pending_total: 2"),
        ],
        "{stats}"
    );
    for line in ["upstream_cx_overflow: 1", "upstream_rq_total: 2"] {
        assert!(
            stats.lines().any(|l| l == format!("{cluster}{line}")),
            "{line} in {stats}"
        );
    }
}

#[tokio::test]
async fn max_requests_per_connection_one_opens_a_connection_per_request() {
    let up = Counting::start().await;
    let proxy = Proxy::start(&config(
        up.addr,
        "HTTP",
        "      http: {maxRequestsPerConnection: 1}",
    ))
    .await;
    for i in 0..3 {
        let got = get(proxy.addr(), "backend.test", &format!("/{i}")).await;
        assert_eq!(got.status, 200);
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn idle_timeout_closes_pooled_connections() {
    let up = Counting::start().await;
    let proxy = Proxy::start(&config(up.addr, "HTTP", "      http: {idleTimeout: 100ms}")).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200);
    let closed = up.closed.clone();
    eventually("the idle upstream connection is closed", || {
        closed.load(Ordering::SeqCst) == 1
    })
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refused_connection_is_uf() {
    let dead = dead_addr().await;
    let proxy = Proxy::start(&config(dead, "HTTP", "      tcp: {connectTimeout: 200ms}")).await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 503);
    let log = proxy.log_entries(1).await;
    assert!(
        log[0]["response_flags"].as_str().unwrap().starts_with("UF"),
        "{}",
        log[0]
    );
    assert_eq!(
        log[0]["upstream_transport_failure_reason"],
        "delayed connect error: Connection refused"
    );
}

#[tokio::test]
async fn h2_upgrade_policy_upgrade_speaks_h2c_to_an_http_port() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        up.addr,
        "HTTP",
        "      http: {h2UpgradePolicy: UPGRADE}",
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 200);
    assert_eq!(up.last().version, http::Version::HTTP_2);
    assert_eq!(up.last().uri, "http://backend.test/");
}

both_http2_servers!(use_client_protocol_follows_the_downstream_version);
async fn use_client_protocol_follows_the_downstream_version() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&config(
        up.addr,
        "HTTP",
        "      http: {useClientProtocol: true}",
    ))
    .await;
    let got = get(proxy.addr(), "backend.test", "/h1").await;
    assert_eq!(got.status, 200);
    assert_eq!(up.last().version, http::Version::HTTP_11);
    let got = h2_send(proxy.addr(), "GET", "backend.test", "/h2", &[], "").await;
    assert_eq!(got.status, 200);
    assert_eq!(up.last().version, http::Version::HTTP_2);
}

#[tokio::test]
async fn max_connection_duration_replaces_old_connections() {
    let up = Counting::start().await;
    let proxy = Proxy::start(&config(
        up.addr,
        "HTTP",
        "      tcp: {maxConnectionDuration: 50ms}",
    ))
    .await;
    assert_eq!(get(proxy.addr(), "backend.test", "/").await.status, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    // The first connection is closed once it is older than the limit, and
    // later requests use a new one.
    eventually("the old connection is closed", || {
        up.closed.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(get(proxy.addr(), "backend.test", "/").await.status, 200);
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_max_connection_duration_keep_alive_reuses_one_connection() {
    let up = Counting::start().await;
    let proxy = Proxy::start(&config(up.addr, "HTTP", "      tcp: {maxConnections: 100}")).await;
    for _ in 0..5 {
        assert_eq!(get(proxy.addr(), "backend.test", "/").await.status, 200);
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn keep_alive_reuses_the_connection_after_bodies_that_end_at_once() {
    let up = Counting::start().await;
    let proxy = Proxy::start(&config(up.addr, "HTTP", "      tcp: {maxConnections: 100}")).await;
    let client = h1_client();
    for (method, path, status) in [
        ("GET", "/empty", 204),
        ("GET", "/zero", 200),
        ("HEAD", "/", 200),
        ("GET", "/", 200),
        ("GET", "/empty", 204),
    ] {
        let got = send(&client, proxy.addr(), method, "backend.test", path, &[], "").await;
        assert_eq!(got.status, status, "{method} {path}");
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

/// A loopback listener that never accepts, with its accept queue already
/// full: Linux then drops new SYNs, so a connect hangs until it times out.
fn unanswered_listener() -> (
    socket2::Socket,
    Vec<std::net::TcpStream>,
    std::net::SocketAddr,
) {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Fill the backlog (bounded): connects that complete go to the queue.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(c) => fillers.push(c),
            Err(_) => break,
        }
    }
    (s, fillers, addr)
}

#[tokio::test]
async fn connect_timeout_is_uf_after_the_configured_time() {
    let (_listener, _fillers, addr) = unanswered_listener();
    let proxy = Proxy::start(&config(addr, "HTTP", "      tcp: {connectTimeout: 150ms}")).await;
    let started = std::time::Instant::now();
    let got = get(proxy.addr(), "backend.test", "/").await;
    assert_eq!(got.status, 503);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "waited for the connect timeout"
    );
    let log = proxy.log_entries(1).await;
    assert!(
        log[0]["response_flags"].as_str().unwrap().starts_with("UF"),
        "{}",
        log[0]
    );
    assert!(
        log[0]["upstream_transport_failure_reason"]
            .as_str()
            .unwrap()
            .contains("timeout"),
        "{}",
        log[0]
    );
}

/// `http.maxConcurrentStreams` caps streams per upstream HTTP/2 connection:
/// more concurrent requests open more connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_opens_another_h2_connection_when_one_is_full() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (a, g) = (accepted.clone(), gate.clone());
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let g = g.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let g = g.clone();
                    async move {
                        // Hold every request until the test releases it.
                        let _ = g.acquire().await.map(|p| p.forget());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
            });
        }
    });
    let proxy = Proxy::start(&config(
        addr,
        "HTTP2",
        "      http: {maxConcurrentStreams: 1}",
    ))
    .await;
    let p = proxy.addr();
    let requests: Vec<_> = (0..3)
        .map(|_| tokio::spawn(async move { get(p, "backend.test", "/").await }))
        .collect();
    eventually(
        "three upstream connections for three concurrent streams",
        || accepted.load(Ordering::SeqCst) >= 3,
    )
    .await;
    gate.add_permits(3);
    for r in requests {
        assert_eq!(r.await.unwrap().status, 200);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    server.abort();
}
