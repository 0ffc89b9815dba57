//! Thread per core (`strait run --workers N`): each worker accepts on its own
//! SO_REUSEPORT socket, keeps its own upstream connection pools, and shares
//! the cluster-wide circuit breakers (Envoy: connection pools are per
//! worker, `max_connections` / `max_requests` count "all hosts in an
//! upstream cluster"); SIGTERM's drain stops every worker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::*;
use strait::load::{LoadOptions, load_str};
use strait::proxy::access_log::AccessLog;
use strait::proxy::workers::{Workers, start_workers};

const WORKERS: usize = 2;

/// An HTTP/1.1 upstream holding every request until released, counting its
/// connections (open now, most open at once, accepted) and requests held.
struct Gated {
    addr: SocketAddr,
    max_open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    held: Arc<AtomicUsize>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gated {
    async fn start() -> Gated {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let max_open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let (release, gate) = watch::channel(false);
        let (o, m, a, h) = (
            open.clone(),
            max_open.clone(),
            accepted.clone(),
            held.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let (o, h, gate) = (o.clone(), h.clone(), gate.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let (h, mut gate) = (h.clone(), gate.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            let _ = gate.wait_for(|open| *open).await;
                            h.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Gated {
            addr,
            max_open,
            accepted,
            held,
            release,
            task,
        }
    }
}

fn config(addr: SocketAddr, pool: &str) -> String {
    let mut s = service_entry("backend.test", 80, "HTTP", &[(addr, &[])]);
    if !pool.is_empty() {
        s.push_str(&format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend}}
spec:
  host: backend.test
  trafficPolicy:
    connectionPool: {pool}
"
        ));
    }
    s
}

async fn start(yaml: &str) -> Workers {
    let cfg = load_str(
        yaml,
        "test.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
    let snapshot = strait::compile::compile(&cfg, &Default::default());
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let w = start_workers(
        snapshot,
        lo,
        lo,
        AccessLog::off(),
        strait::proxy::DownstreamLimits::default(),
        WORKERS,
    )
    .await
    .expect("workers start");
    assert_eq!(w.threads(), WORKERS);
    w
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

/// One downstream connection accepted by each worker. Connections are
/// opened one at a time and the worker whose accept counter moved took it;
/// the kernel's SO_REUSEPORT hash picks, so keep connecting (bounded).
async fn one_per_worker(w: &Workers) -> Vec<TcpStream> {
    let stats = &w.running.shared.workers;
    let mut found: Vec<Option<TcpStream>> = (0..WORKERS).map(|_| None).collect();
    for _ in 0..200 {
        let before = stats.accepted();
        let total: u64 = before.iter().sum();
        let s = TcpStream::connect(w.running.listen).await.unwrap();
        eventually("the connection is accepted", || {
            stats.accepted().iter().sum::<u64>() > total
        })
        .await;
        let after = stats.accepted();
        let i = (0..WORKERS).find(|&i| after[i] > before[i]).unwrap();
        if found[i].is_none() {
            found[i] = Some(s);
        }
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
    }
    panic!(
        "200 connections all landed on one worker: {:?}",
        stats.accepted()
    );
}

/// Send one GET for backend.test over `stream`; the status and body.
async fn get_on(stream: TcpStream) -> (u16, String) {
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", "backend.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Connections land on every worker, each worker serves them, and the
/// admin endpoint shows each worker's accept count (Envoy's per-worker
/// `listener.<address>.worker_<N>.downstream_cx_total`).
#[tokio::test]
async fn connections_spread_over_the_workers_and_each_serves() {
    let up = Upstream::named("b").await;
    let w = start(&config(up.addr, "")).await;
    for s in one_per_worker(&w).await {
        assert_eq!(get_on(s).await, (200, "b".to_string()));
    }
    let accepted = w.running.shared.workers.accepted();
    assert!(accepted.iter().all(|&n| n > 0), "{accepted:?}");
    // The connection pools are per worker: each opened its own.
    let admin = format!("http://{}/stats/prometheus", w.running.admin);
    let text = {
        let resp = h1_client().get(admin.parse().unwrap()).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    };
    for i in 0..WORKERS {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with("envoy_listener_worker_downstream_cx_total")
                    && l.contains(&format!("envoy_worker_id=\"{i}\""))
            })
            .unwrap_or_else(|| panic!("no counter for worker {i} in:\n{text}"));
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(n > 0, "{line}");
    }
    assert_eq!(w.drain(Duration::from_secs(5)).await, 0);
}

/// `maxConnections: 1` holds across workers (Envoy counts it for the whole
/// cluster). The second worker's request waits for the one connection and
/// then uses it, although it belongs to the first worker's pool, instead of
/// opening a second or waiting for it to close.
#[tokio::test]
async fn max_connections_is_cluster_wide_across_workers() {
    let up = Gated::start().await;
    let w = start(&config(up.addr, "{tcp: {maxConnections: 1}}")).await;
    let conns = one_per_worker(&w).await;
    let shared = w.running.shared.clone();
    let cluster = shared
        .snapshot
        .load()
        .clusters
        .values()
        .find(|c| c.name.contains("backend.test"))
        .unwrap()
        .clone();
    let pool = shared.upstreams.pool(&cluster);
    let mut tasks = Vec::new();
    for s in conns {
        tasks.push(tokio::spawn(get_on(s)));
    }
    eventually("one request reaches the upstream", || {
        up.held.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the other waits for a connection", || pool.pending() == 1).await;
    assert_eq!(pool.open_connections(), 1);
    up.release.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (200, "ok".to_string()));
    }
    assert_eq!(up.max_open.load(Ordering::SeqCst), 1);
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        1,
        "the connection was reused"
    );
    assert_eq!(w.drain(Duration::from_secs(5)).await, 0);
}

/// `http2MaxRequests: 1` (Envoy `max_requests`, active requests in the
/// cluster) overflows on the other worker: 503 at once, flag UO.
#[tokio::test]
async fn max_requests_is_cluster_wide_across_workers() {
    let up = Gated::start().await;
    let w = start(&config(up.addr, "{http: {http2MaxRequests: 1}}")).await;
    let mut conns = one_per_worker(&w).await.into_iter();
    let first = tokio::spawn(get_on(conns.next().unwrap()));
    eventually("one request reaches the upstream", || {
        up.held.load(Ordering::SeqCst) == 1
    })
    .await;
    let (status, _) = get_on(conns.next().unwrap()).await;
    assert_eq!(status, 503);
    up.release.send(true).unwrap();
    assert_eq!(first.await.unwrap(), (200, "ok".to_string()));
    assert_eq!(w.drain(Duration::from_secs(5)).await, 0);
}

/// SIGTERM's drain stops accepting on every worker, lets the requests in
/// flight on each finish, then ends the worker threads.
#[tokio::test]
async fn drain_stops_every_worker_after_in_flight_requests() {
    let up = Gated::start().await;
    let w = start(&config(up.addr, "")).await;
    let listen = w.running.listen;
    let mut tasks = Vec::new();
    for s in one_per_worker(&w).await {
        tasks.push(tokio::spawn(get_on(s)));
    }
    eventually("both requests reach the upstream", || {
        up.held.load(Ordering::SeqCst) == WORKERS
    })
    .await;
    let drain = tokio::spawn(w.drain(Duration::from_secs(10)));
    // Every worker's socket closes, so nothing accepts new connections. A
    // connect can also fail on the one socket that is just closing while
    // another worker's still accepts: only refusals in a row count.
    let mut refused_in_a_row = 0;
    for _ in 0..500 {
        if TcpStream::connect(listen).await.is_err() {
            refused_in_a_row += 1;
            if refused_in_a_row == 5 {
                break;
            }
        } else {
            refused_in_a_row = 0;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert_eq!(refused_in_a_row, 5, "still accepting");
    assert!(TcpStream::connect(listen).await.is_err(), "still accepting");
    assert!(
        !drain.is_finished(),
        "drain waits for the requests in flight"
    );
    up.release.send(true).unwrap();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (200, "ok".to_string()));
    }
    assert_eq!(drain.await.unwrap(), 0);
}
