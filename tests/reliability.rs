//! reliability.md §5: faults and hostile inputs the proxy must survive, one
//! test per case (`case_NN_...`; RELIABILITY.md maps every case to its
//! tests). Each checks the row's expected behaviour and the common pass
//! criteria: no panic, a canary client keeps getting 200 throughout (except
//! in saturation cases), the Envoy response flag in the access log, the gRPC
//! status for gRPC callers, and the process's file descriptors back within
//! 10 % of the baseline after the case.
//!
//! The proxy runs inside this test process, so the fd count covers the
//! proxy, the upstreams and the clients together; the cases therefore run
//! one at a time (`serial`), so that one case's sockets never show up in
//! another's count. Misbehaving upstreams ("evil" ones) are raw tokio
//! sockets, so they can send exactly the bytes a broken server would.

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::timeout;

use support::*;

/// Generous bound on any single network wait: a hang fails the test, it
/// never stalls CI.
const BOUND: Duration = Duration::from_secs(10);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run this case alone (see the module comment).
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Open fds that belong to the proxy, its upstreams and clients: every fd
/// except other tests' runtimes (their epoll and eventfd descriptors and
/// signal-driver unix sockets come and go as test threads start, whatever
/// this case does).
fn open_fds() -> usize {
    let tcp = tcp_sockets();
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| {
        d.flatten()
            .filter(|e| {
                let t = std::fs::read_link(e.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                match socket_inode(&t) {
                    Some(inode) => tcp.contains_key(inode),
                    None => !t.starts_with("anon_inode:"),
                }
            })
            .count()
    })
}

fn socket_inode(target: &str) -> Option<&str> {
    target.strip_prefix("socket:[")?.strip_suffix(']')
}

/// TCP sockets of this process by inode: "local -> remote state".
fn tcp_sockets() -> std::collections::HashMap<String, String> {
    let mut sockets = std::collections::HashMap::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 {
                let port = |a: &str| {
                    a.rsplit(':')
                        .next()
                        .and_then(|p| u16::from_str_radix(p, 16).ok())
                        .unwrap_or(0)
                };
                sockets.insert(
                    f[9].to_string(),
                    format!("tcp :{} -> :{} state {}", port(f[1]), port(f[2]), f[3]),
                );
            }
        }
    }
    sockets
}

// ------------------------------------------------------------------ config

const CANARY: &str = "canary.test";

/// The canary service plus `rest`.
fn with_canary(canary: &Upstream, rest: &str) -> String {
    service_entry(CANARY, 80, "HTTP", &[(canary.addr, &[])]) + rest
}

/// A ServiceEntry for `host` (port 80, `protocol`) on `addrs`.
fn service(host: &str, protocol: &str, addrs: &[SocketAddr]) -> String {
    let eps: Vec<(SocketAddr, &[(&str, &str)])> = addrs.iter().map(|a| (*a, &[][..])).collect();
    service_entry(host, 80, protocol, &eps)
}

/// A VirtualService for `host` whose `http:` list is `routes` (YAML
/// indented by two spaces).
fn vs(host: &str, routes: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{}}}\nspec:\n  hosts: [{host}]\n  http:\n{routes}---\n",
        host.replace('.', "-")
    )
}

fn dr(host: &str, policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: dr-{}}}\nspec:\n  host: {host}\n{policy}---\n",
        host.replace('.', "-")
    )
}

// ------------------------------------------------------------------ canary

/// A client sending `GET /canary` to the canary service back to back (one
/// keep-alive connection) for the whole case; also the fd baseline.
struct Canary {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
    baseline: usize,
}

impl Canary {
    /// Starts once the canary has had its first 200, then takes the fd
    /// baseline.
    async fn start(proxy: &Proxy) -> Canary {
        let addr = proxy.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failures.clone());
        let task = tokio::spawn(async move {
            let client = h1_client();
            // Bounded: 100,000 requests or the stop flag, whichever first.
            for _ in 0..100_000 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let req = Request::get(format!("http://{addr}/canary"))
                    .header("host", CANARY)
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                match timeout(BOUND, client.request(req)).await {
                    Ok(Ok(resp)) if resp.status() == 200 => {
                        let _ = resp.into_body().collect().await;
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Ok(resp)) => f.lock().unwrap().push(format!("status {}", resp.status())),
                    Ok(Err(e)) => f.lock().unwrap().push(format!("error {e}")),
                    Err(_) => f.lock().unwrap().push("no answer in time".into()),
                }
                // Pacing, so the canary does not starve the case on 2 cores.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let c = Canary {
            stop,
            ok,
            failures,
            task,
            baseline: 0,
        };
        c.until_ok(1).await;
        Canary {
            baseline: open_fds(),
            ..c
        }
    }

    async fn until_ok(&self, n: usize) {
        let deadline = Instant::now() + BOUND;
        while self.ok.load(Ordering::Relaxed) < n {
            assert!(
                self.failures.lock().unwrap().is_empty(),
                "canary failed: {:?}",
                self.failures.lock().unwrap()
            );
            assert!(Instant::now() < deadline, "the canary got no 200 in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The canary still gets 200s and never failed; then the fds settle.
    async fn finish(self) {
        let now = self.ok.load(Ordering::Relaxed);
        self.until_ok(now + 2).await;
        assert!(
            self.failures.lock().unwrap().is_empty(),
            "canary failed during the case: {:?}",
            self.failures.lock().unwrap()
        );
        fds_settle(self.baseline).await;
        self.stop.store(true, Ordering::Relaxed);
        let _ = timeout(BOUND, self.task).await;
    }
}

/// Wait (bounded) until the fd count is back within 10 % of `baseline`
/// (at least 2 fds of slack for a small baseline).
async fn fds_settle(baseline: usize) {
    let limit = baseline + (baseline / 10).max(2);
    let deadline = Instant::now() + BOUND;
    loop {
        let now = open_fds();
        if now <= limit {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "file descriptors did not return to the baseline: {now} open, baseline {baseline}:\n{}",
            describe_fds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every open fd with, for TCP sockets, its addresses and state (for the
/// failure message of `fds_settle`).
fn describe_fds() -> String {
    let sockets = tcp_sockets();
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for e in dir.flatten() {
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let inode = socket_inode(&target).unwrap_or("");
            let what = sockets.get(inode).cloned().unwrap_or(target);
            out.push(format!("  fd {}: {what}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out.join("\n")
}

// -------------------------------------------------------------- access log

/// Access-log entries for `path` (waits, bounded, for at least `n`).
async fn entries_for(proxy: &Proxy, path: &str, n: usize) -> Vec<serde_json::Value> {
    let file = proxy.log_path.clone().unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let found: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["path"] == path)
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} access-log entries for {path}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn entry_for(proxy: &Proxy, path: &str) -> serde_json::Value {
    entries_for(proxy, path, 1).await.remove(0)
}

async fn flags_for(proxy: &Proxy, path: &str) -> String {
    entry_for(proxy, path).await["response_flags"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

// ------------------------------------------------------------ raw sockets

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(BOUND, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// One message head (through the blank line); `None` at EOF or error.
async fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if buf.len() > 128 * 1024 {
            return None;
        }
        match timeout(BOUND, s.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// The request target of a request head.
fn target(head: &str) -> String {
    head.split_whitespace().nth(1).unwrap_or("").to_string()
}

/// Everything until the peer closes: (bytes, closed in time).
async fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..10_000 {
        match timeout(BOUND, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
    (out, false)
}

/// Wait until the peer closes (EOF or reset) or sends more; `true` if it
/// closed without sending anything.
async fn closes_quietly(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        timeout(BOUND, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Close with a TCP RST instead of a FIN (SO_LINGER 0: drop never blocks).
fn reset(s: TcpStream) {
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    drop(s);
}

/// A raw upstream running `script` on every accepted connection (with its
/// 1-based number).
struct Evil {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Evil {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Evil {
    async fn start<F, Fut>(script: F) -> Evil
    where
        F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        let script = Arc::new(script);
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(script(n, s));
            }
        });
        Evil { addr, conns, task }
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }
}

/// Poll (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const GRPC: &[(&str, &str)] = &[("content-type", "application/grpc"), ("te", "trailers")];

/// A gRPC call over h2c: (HTTP status, grpc-status).
async fn grpc_call(proxy: &Proxy, host: &str, path: &str) -> (u16, Option<String>) {
    let got = h2_send(proxy.addr(), "POST", host, path, GRPC, "").await;
    (
        got.status.as_u16(),
        got.header("grpc-status").map(str::to_string),
    )
}

const UC_BODY: &str = "upstream connect error or disconnect/reset before headers. reset reason: connection termination";
const UPE_BODY: &str =
    "upstream connect error or disconnect/reset before headers. reset reason: protocol error";

// ------------------------------------------------- 1. reset mid-body

/// An HTTP/1.1 upstream that sends the head and part of the body, then (once
/// `release` fires) resets the connection.
async fn resets_mid_body(release: Arc<Notify>) -> Evil {
    Evil::start(move |_, mut s| {
        let release = release.clone();
        async move {
            let Some(head) = read_head(&mut s).await else {
                return;
            };
            let framing = if target(&head).starts_with("/chunked") {
                "Transfer-Encoding: chunked\r\n\r\n3e8\r\n"
            } else {
                "Content-Length: 100000\r\n\r\n"
            };
            let _ = s
                .write_all(format!("HTTP/1.1 200 OK\r\n{framing}").as_bytes())
                .await;
            let _ = s.write_all(&[b'x'; 1000]).await;
            let _ = s.flush().await;
            let _ = timeout(BOUND, release.notified()).await;
            reset(s);
        }
    })
    .await
}

both_http2_servers!(case_01_upstream_connection_reset_mid_body_closes_downstream_flag_uc);
/// Envoy: an upstream HTTP/1.1 connection that breaks after the response
/// started is reset reason `connection_termination` (codec_client.cc), flag
/// UC (router.cc `streamResetReasonToResponseFlag`), and the downstream
/// stream is reset: HTTP/1.1 clients see the connection close without the
/// final chunk (or short of Content-Length), HTTP/2 clients a RST_STREAM.
async fn case_01_upstream_connection_reset_mid_body_closes_downstream_flag_uc() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let release = Arc::new(Notify::new());
    let evil = resets_mid_body(release.clone()).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("evil.test", "HTTP", &[evil.addr])
            + &vs(
                "evil.test",
                "  - route: [{destination: {host: evil.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;

    for path in ["/chunked", "/sized"] {
        let mut c = connect(proxy.addr()).await;
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: evil.test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut c).await.expect("the response head arrives");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        release.notify_one();
        let (body, closed) = read_to_close(&mut c).await;
        assert!(closed, "{path}: the downstream connection is closed");
        if path == "/chunked" {
            assert!(
                !body.ends_with(b"0\r\n\r\n"),
                "{path}: no final chunk may end the message cleanly"
            );
        } else {
            let lower = head.to_ascii_lowercase();
            assert!(lower.contains("content-length: 100000"), "{head}");
            assert!(body.len() < 100_000, "{path}: the body stops short");
        }
        drop(c);
        let e = entry_for(&proxy, path).await;
        assert_eq!(e["response_flags"], "UC", "{e}");
        assert_eq!(
            e["response_code_details"],
            "upstream_reset_after_response_started{connection_termination}"
        );
    }

    // An HTTP/2 client gets its stream reset.
    let stream = connect(proxy.addr()).await;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://evil.test/h2")
        .version(Version::HTTP_2)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = timeout(BOUND, sender.send_request(req))
        .await
        .expect("in time")
        .expect("response head");
    assert_eq!(resp.status(), 200);
    release.notify_one();
    let body = timeout(BOUND, resp.into_body().collect())
        .await
        .expect("in time");
    assert!(body.is_err(), "the HTTP/2 stream is reset, not ended");
    assert_eq!(flags_for(&proxy, "/h2").await, "UC");
    drop(sender);
    canary.finish().await;
}

/// An h2c upstream that sends the head and part of the body, then (once
/// `release` fires) resets the stream with RST_STREAM.
async fn h2_resets_stream(release: Arc<Notify>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let release = release.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let release = release.clone();
                    tokio::spawn(async move {
                        let resp = http::Response::builder().status(200).body(()).unwrap();
                        let Ok(mut send) = respond.send_response(resp, false) else {
                            return;
                        };
                        let _ = send.send_data(Bytes::from(vec![b'x'; 1000]), false);
                        let _ = timeout(BOUND, release.notified()).await;
                        send.send_reset(h2::Reason::INTERNAL_ERROR);
                    });
                }
            });
        }
    });
    (addr, task)
}

/// Envoy: an HTTP/2 upstream's RST_STREAM after the response started is
/// reset reason `remote_reset`, flag UR; the downstream stream is reset.
#[tokio::test]
async fn case_01_upstream_reset_mid_body_resets_downstream_flag_ur() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let release = Arc::new(Notify::new());
    let (addr, task) = h2_resets_stream(release.clone()).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("evil.test", "HTTP2", &[addr])
            + &vs(
                "evil.test",
                "  - route: [{destination: {host: evil.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;

    let mut c = connect(proxy.addr()).await;
    c.write_all(b"GET /rst HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut c).await.expect("the response head arrives");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    release.notify_one();
    let (body, closed) = read_to_close(&mut c).await;
    assert!(closed, "the downstream connection is closed");
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "no final chunk may end the message cleanly"
    );
    drop(c);
    let e = entry_for(&proxy, "/rst").await;
    assert_eq!(e["response_flags"], "UR", "{e}");
    assert_eq!(
        e["response_code_details"],
        "upstream_reset_after_response_started{remote_reset}"
    );
    canary.finish().await;
    task.abort();
}

// --------------------------------------- 2. FIN or RST before the response

both_http2_servers!(case_02_upstream_close_before_response_is_503_uc_not_retried);
/// Istio's default retryOn (connect-failure, refused-stream, unavailable,
/// cancelled, retriable-status-codes) has no `reset`, so a connection that
/// closes after the request was sent is not retried: 503 UC.
async fn case_02_upstream_close_before_response_is_503_uc_not_retried() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let evil = Evil::start(|_, mut s| async move {
        let Some(head) = read_head(&mut s).await else {
            return;
        };
        if target(&head).contains("rst") {
            reset(s);
        }
        // Otherwise dropped: a FIN.
    })
    .await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("evil.test", "HTTP", &[evil.addr])
            + &vs(
                "evil.test",
                "  - route: [{destination: {host: evil.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;

    for (i, path) in ["/fin", "/rst"].into_iter().enumerate() {
        let got = get(proxy.addr(), "evil.test", path).await;
        assert_eq!(got.status, 503, "{path}");
        assert_eq!(got.text(), UC_BODY, "{path}");
        assert_eq!(evil.conns(), i + 1, "{path}: tried once, not retried");
        let e = entry_for(&proxy, path).await;
        assert_eq!(e["response_flags"], "UC", "{path}: {e}");
        assert_eq!(
            e["response_code_details"],
            "upstream_reset_before_response_started{connection_termination}"
        );
    }
    // gRPC callers: 503 → UNAVAILABLE (14), trailers-only.
    let (status, grpc) = grpc_call(&proxy, "evil.test", "/pkg.Svc/Fin").await;
    assert_eq!((status, grpc.as_deref()), (200, Some("14")));
    assert_eq!(flags_for(&proxy, "/pkg.Svc/Fin").await, "UC");
    assert_eq!(evil.conns(), 3);
    canary.finish().await;
}

// ------------------------------------------- 3. slow upstream, route timeout

/// An upstream that reads the request and never answers; counts the
/// connections the proxy gives up on (EOF or reset seen).
async fn never_answers(cancelled: Arc<AtomicUsize>) -> Evil {
    Evil::start(move |_, mut s| {
        let cancelled = cancelled.clone();
        async move {
            // A try cut short before its request was written counts too.
            let closed = read_head(&mut s).await.is_none() || closes_quietly(&mut s).await;
            if closed {
                cancelled.fetch_add(1, Ordering::SeqCst);
            }
        }
    })
    .await
}

both_http2_servers!(case_03_route_timeout_is_504_ut_and_cancels_the_upstream_request);
/// Envoy UT: the route `timeout` answers 504 "upstream request timeout" at
/// about the timeout and cancels the upstream request (the connection is
/// closed); Istio's default retryOn does not retry timeouts.
async fn case_03_route_timeout_is_504_ut_and_cancels_the_upstream_request() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let cancelled = Arc::new(AtomicUsize::new(0));
    let evil = never_answers(cancelled.clone()).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("slow.test", "HTTP", &[evil.addr])
            + &vs(
                "slow.test",
                "  - timeout: 200ms\n    route: [{destination: {host: slow.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;

    let t = Instant::now();
    let got = get(proxy.addr(), "slow.test", "/slow").await;
    let took = t.elapsed();
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "upstream request timeout");
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_millis(200) + Duration::from_secs(2),
        "{took:?}"
    );
    let e = entry_for(&proxy, "/slow").await;
    assert_eq!(e["response_flags"], "UT", "{e}");
    assert_eq!(e["response_code_details"], "upstream_response_timeout");
    eventually("the upstream request is cancelled", || {
        cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(evil.conns(), 1, "a timeout is not retried by default");

    let (status, grpc) = grpc_call(&proxy, "slow.test", "/pkg.Svc/Slow").await;
    assert_eq!(
        (status, grpc.as_deref()),
        (200, Some("14")),
        "504 → UNAVAILABLE"
    );
    assert_eq!(flags_for(&proxy, "/pkg.Svc/Slow").await, "UT");
    eventually("the gRPC upstream request is cancelled", || {
        cancelled.load(Ordering::SeqCst) == 2
    })
    .await;
    canary.finish().await;
}

// ------------------------------ 4. never answers, perTryTimeout + retries

/// Envoy: each try times out after `perTryTimeout` and is retried (`5xx`
/// covers read timeouts); the last one gives 504 UT with URX; the route
/// `timeout` caps all tries together (504 UT, no more tries after it).
#[tokio::test]
async fn case_04_per_try_timeouts_are_retried_then_504_ut_within_the_total_timeout() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let cancelled = Arc::new(AtomicUsize::new(0));
    let evil = never_answers(cancelled.clone()).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("silent.test", "HTTP", &[evil.addr])
            + &vs(
                "silent.test",
                "  - match: [{uri: {prefix: /capped}}]\n    timeout: 250ms\n    retries: {attempts: 10, perTryTimeout: 100ms, retryOn: 5xx}\n    route: [{destination: {host: silent.test}}]\n  - timeout: 2s\n    retries: {attempts: 3, perTryTimeout: 100ms, retryOn: 5xx}\n    route: [{destination: {host: silent.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;

    let t = Instant::now();
    let got = get(proxy.addr(), "silent.test", "/tries").await;
    let took = t.elapsed();
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "upstream request timeout");
    assert!(
        took < Duration::from_secs(2),
        "within the route timeout: {took:?}"
    );
    assert_eq!(evil.conns(), 4, "1 try + 3 retries");
    let flags = flags_for(&proxy, "/tries").await;
    assert_eq!(flags, "UT,URX");
    eventually("every timed-out try is cancelled", || {
        cancelled.load(Ordering::SeqCst) == 4
    })
    .await;

    let t = Instant::now();
    let got = get(proxy.addr(), "silent.test", "/capped").await;
    let took = t.elapsed();
    assert_eq!(got.status, 504);
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(
        took < Duration::from_millis(250) + Duration::from_secs(2),
        "{took:?}"
    );
    let tries = evil.conns() - 4;
    assert!(
        (2..=3).contains(&tries),
        "250ms holds 2–3 tries of 100ms, saw {tries}"
    );
    assert_eq!(flags_for(&proxy, "/capped").await, "UT");
    eventually("the capped tries are cancelled", || {
        cancelled.load(Ordering::SeqCst) == 4 + tries
    })
    .await;
    canary.finish().await;
}

// ------------------------------------------------- 5. connection refused

async fn admin_text(proxy: &Proxy, path: &str) -> String {
    get(proxy.running.admin, "admin", path).await.text()
}

/// The sample of `metric` for `cluster`, 0 when absent.
fn cluster_stat(text: &str, metric: &str, cluster: &str) -> f64 {
    let prefix = format!("{metric}{{cluster_name=\"{cluster}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0))
}

/// Envoy UF: a refused connection is retried by Istio's default policy
/// (connect-failure, 2 retries, previous hosts avoided), so three dead
/// endpoints are each tried once before 503 UF,URX; outlier detection counts
/// connect failures (local-origin errors count as 503 when not split, as
/// Istio configures), so with consecutive5xxErrors 1 all three are ejected
/// and the next request is 503 UH.
#[tokio::test]
async fn case_05_connection_refused_is_retried_on_other_hosts_then_503_uf_and_ejected() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let dead = [dead_addr().await, dead_addr().await, dead_addr().await];
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("dead.test", "HTTP", &dead)
            + &vs("dead.test", "  - route: [{destination: {host: dead.test}}]\n")
            + &dr(
                "dead.test",
                "  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;

    let got = get(proxy.addr(), "dead.test", "/refused").await;
    assert_eq!(got.status, 503);
    assert!(
        got.text().starts_with(
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        ),
        "{}",
        got.text()
    );
    let e = entry_for(&proxy, "/refused").await;
    assert_eq!(e["response_flags"], "UF,URX", "{e}");
    assert!(
        e["upstream_transport_failure_reason"]
            .as_str()
            .unwrap_or("")
            .contains("Connection refused"),
        "{e}"
    );
    let cluster = "outbound|80||dead.test";
    let stats = admin_text(&proxy, "/stats/prometheus").await;
    assert_eq!(
        cluster_stat(&stats, "envoy_cluster_upstream_rq_retry_total", cluster),
        2.0,
        "{stats}"
    );
    assert_eq!(
        cluster_stat(
            &stats,
            "envoy_cluster_outlier_detection_ejections_enforced_total",
            cluster
        ),
        3.0,
        "each dead host was tried once and ejected: {stats}"
    );
    let got = get(proxy.addr(), "dead.test", "/ejected").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "no healthy upstream");
    assert_eq!(flags_for(&proxy, "/ejected").await, "UH");
    let (status, grpc) = grpc_call(&proxy, "dead.test", "/pkg.Svc/Dead").await;
    assert_eq!((status, grpc.as_deref()), (200, Some("14")));
    canary.finish().await;
}

// ------------------------- 6–7. unparsable or ambiguous upstream responses

/// A keep-alive HTTP/1.1 upstream: `GET /good` gets 200 "good"; any other
/// path gets the bytes `bad(path)` returns, after which the connection is
/// poisoned: a request arriving on it is counted in `reused`, and the proxy
/// closing it in `closed`.
async fn bad_responder(
    bad: fn(&str) -> Vec<u8>,
    reused: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
) -> Evil {
    Evil::start(move |_, mut s| {
        let (reused, closed) = (reused.clone(), closed.clone());
        async move {
            let mut poisoned = false;
            loop {
                let Some(head) = read_head(&mut s).await else {
                    if poisoned {
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                    return;
                };
                if poisoned {
                    reused.fetch_add(1, Ordering::SeqCst);
                }
                let path = target(&head);
                if path == "/good" {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood")
                        .await;
                } else {
                    let _ = s.write_all(&bad(&path)).await;
                    poisoned = true;
                }
            }
        }
    })
    .await
}

/// Send `/good`, each bad path, `/good` in turn; every bad one must be 502
/// UPE, and its connection closed, never reused.
async fn check_upe(bad: fn(&str) -> Vec<u8>, paths: &[&str]) {
    let canary_up = Upstream::named("canary").await;
    let (reused, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let evil = bad_responder(bad, reused.clone(), closed.clone()).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("bad.test", "HTTP", &[evil.addr])
            + &vs("bad.test", "  - route: [{destination: {host: bad.test}}]\n")),
    ))
    .await;
    // A pooled connection to the bad upstream exists before the baseline.
    assert_eq!(get(proxy.addr(), "bad.test", "/good").await.text(), "good");
    let canary = Canary::start(&proxy).await;
    for (i, path) in paths.iter().enumerate() {
        let got = get(proxy.addr(), "bad.test", path).await;
        assert_eq!(got.status, 502, "{path}");
        assert_eq!(got.text(), UPE_BODY, "{path}");
        assert!(!got.text().contains("smuggled"));
        let e = entry_for(&proxy, path).await;
        assert_eq!(e["response_flags"], "UPE", "{path}: {e}");
        assert_eq!(
            e["response_code_details"],
            "upstream_reset_before_response_started{protocol_error}"
        );
        eventually("the connection with the bad response is closed", || {
            closed.load(Ordering::SeqCst) == i + 1
        })
        .await;
        let got = get(proxy.addr(), "bad.test", "/good").await;
        assert_eq!(got.status, 200, "after {path}");
        assert_eq!(got.text(), "good", "after {path}: nothing smuggled");
    }
    let (status, grpc) = grpc_call(&proxy, "bad.test", paths[0]).await;
    assert_eq!(
        (status, grpc.as_deref()),
        (200, Some("14")),
        "502 → UNAVAILABLE"
    );
    assert_eq!(
        reused.load(Ordering::SeqCst),
        0,
        "no bad connection is reused"
    );
    canary.finish().await;
}

/// Envoy UPE: a response the codec cannot parse (bad status line, bad
/// version, a NUL or space in a header name) fails the request with 502
/// "protocol error", and the connection is closed, never reused.
#[tokio::test]
async fn case_06_invalid_upstream_status_line_or_header_is_502_upe_and_connection_dropped() {
    let _s = serial().await;
    fn bad(path: &str) -> Vec<u8> {
        match path {
            "/bad-status" => b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "/bad-version" => b"HTTQ/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "/nul-header" => b"HTTP/1.1 200 OK\r\nX-A\0: 1\r\nContent-Length: 0\r\n\r\n".to_vec(),
            "/space-header" => b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\nX: 1\r\n\r\n".to_vec(),
            _ => b"garbage\r\n\r\n".to_vec(),
        }
    }
    check_upe(
        bad,
        &[
            "/bad-status",
            "/bad-version",
            "/nul-header",
            "/space-header",
            "/garbage",
        ],
    )
    .await;
}

/// RFC 9112 §6.3 and Envoy's codec (`allow_chunked_length: false`,
/// duplicate Content-Length refused): a response with both Content-Length
/// and Transfer-Encoding, or several Content-Length values (equal or not),
/// is UPE; the bytes after it (a smuggled second response) never reach a
/// client.
#[tokio::test]
async fn case_07_upstream_response_with_cl_and_te_or_duplicate_cl_is_upe_no_splitting() {
    let _s = serial().await;
    const SMUGGLED: &str = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled";
    fn bad(path: &str) -> Vec<u8> {
        let head = match path {
            "/cl-te" => {
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            }
            "/te-cl" => {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n"
            }
            "/cl-cl-differ" => "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n",
            "/cl-cl-equal" => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            _ => "HTTP/1.1 200 OK\r\nContent-Length: 0, 0\r\n\r\n",
        };
        format!("{head}{SMUGGLED}").into_bytes()
    }
    check_upe(
        bad,
        &[
            "/cl-te",
            "/te-cl",
            "/cl-cl-differ",
            "/cl-cl-equal",
            "/cl-list",
        ],
    )
    .await;
}

// ----------------------------------------------- 10–13. hostile requests

/// An upstream that counts only requests whose body arrived complete, and
/// answers 101 to any request carrying `Upgrade` (so a proxy that tunnels an
/// upgrade it should not is caught), otherwise 200 "ok".
struct Strict {
    up: Upstream,
    complete: Arc<AtomicUsize>,
}

impl Strict {
    async fn start() -> Strict {
        let complete = Arc::new(AtomicUsize::new(0));
        let up = Upstream::start(
            "strict",
            Arc::new(move |seen: Seen| {
                Box::pin(async move {
                    let b = http::Response::builder();
                    if let Some(u) = seen.headers.get("upgrade")
                        && seen.uri != "/ws-refuse"
                    {
                        return b
                            .status(101)
                            .header("upgrade", u)
                            .header("connection", "upgrade")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                    }
                    b.body(Full::new(Bytes::from_static(b"ok"))).unwrap()
                })
            }),
        )
        .await;
        Strict { up, complete }
    }

    /// Requests that reached the upstream with their whole body.
    fn complete(&self) -> usize {
        // The harness records a request once its body was read; a body that
        // failed midway is recorded empty, so count the ones that are not
        // POSTs cut short.
        let _ = &self.complete;
        self.up
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method != "POST" || !s.body.is_empty())
            .count()
    }
}

/// A proxy for `up.test` (port 80, HTTP) on `up`, plus the canary. Pooled
/// connections to `up` close after 300ms idle, so every connection the case
/// opened is gone when the fds are counted.
async fn hostile_proxy(canary_up: &Upstream, up: SocketAddr) -> Proxy {
    Proxy::start(&with_canary(
        canary_up,
        &(service("up.test", "HTTP", &[up])
            + &vs("up.test", "  - route: [{destination: {host: up.test}}]\n")
            + &dr(
                "up.test",
                "  trafficPolicy: {connectionPool: {http: {idleTimeout: 300ms}}}\n",
            )),
    ))
    .await
}

/// Send `raw` on a fresh connection: (response head, closed afterwards).
async fn raw_exchange(proxy: SocketAddr, raw: &[u8]) -> (String, bool) {
    let mut s = connect(proxy).await;
    s.write_all(raw).await.unwrap();
    let head = read_head(&mut s).await.unwrap_or_default();
    let (_, closed) = read_to_close(&mut s).await;
    (head, closed)
}

/// Access-log entries with flag `flag` (waits, bounded, for `n`).
async fn entries_flagged(proxy: &Proxy, flag: &str, n: usize) -> Vec<serde_json::Value> {
    let file = proxy.log_path.clone().unwrap();
    let deadline = Instant::now() + BOUND;
    loop {
        let found: Vec<serde_json::Value> = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["response_flags"] == flag)
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {n} {flag} entries: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// HTTP Garden / Envoy: a malformed chunked body (size `Z`, bare LF, a size
/// that overflows, a CR inside a chunk extension) is a downstream protocol
/// error: 400, flag DPE, the connection closed, and no complete request
/// reaches the upstream.
#[tokio::test]
async fn case_10_malformed_chunked_body_is_400_dpe_and_never_completes_upstream() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let up = Strict::start().await;
    let proxy = hostile_proxy(&canary_up, up.up.addr).await;
    let canary = Canary::start(&proxy).await;
    let cases = [
        ("/size-z", "Z\r\nhello\r\n0\r\n\r\n"),
        ("/bare-lf", "5\nhello\n0\n\n"),
        ("/huge-hex", "FFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n"),
        ("/cr-in-ext", "5;a=\rb\r\nhello\r\n0\r\n\r\n"),
    ];
    for (path, body) in cases {
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let (head, closed) = raw_exchange(proxy.addr(), raw.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
        assert!(closed, "{path}: the connection is closed");
        assert_eq!(flags_for(&proxy, path).await, "DPE", "{path}");
    }
    assert_eq!(up.complete(), 0, "no complete request reached the upstream");
    canary.finish().await;
}

/// Envoy (`allow_chunked_length: false`), nginx, Pingora CVE-2026-2835:
/// Content-Length with Transfer-Encoding, and every obfuscated
/// Transfer-Encoding, is refused (400, or 501 for an unknown coding), never
/// forwarded and never resolved by guessing; the connection is closed and
/// the refusal logged with DPE.
#[tokio::test]
async fn case_11_cl_te_and_obfuscated_te_are_refused_dpe_and_never_forwarded() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let up = Strict::start().await;
    let proxy = hostile_proxy(&canary_up, up.up.addr).await;
    let canary = Canary::start(&proxy).await;
    let cases = [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding:\tchunked\r\nTransfer-Encoding: identity",
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: \x0bchunked",
        "Transfer-Encoding: chunked\x7f",
    ];
    for (i, te) in cases.iter().enumerate() {
        let raw = format!(
            "POST /te{i} HTTP/1.1\r\nHost: up.test\r\n{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: up.test\r\n\r\n"
        );
        let (head, closed) = raw_exchange(proxy.addr(), raw.as_bytes()).await;
        assert!(
            head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.1 501"),
            "{te:?}: {head}"
        );
        assert!(closed, "{te:?}: the connection is closed");
    }
    let dpe = entries_flagged(&proxy, "DPE", cases.len()).await;
    assert_eq!(dpe.len(), cases.len(), "{dpe:?}");
    assert!(
        up.up.seen.lock().unwrap().is_empty(),
        "nothing was forwarded: {:?}",
        up.up.seen.lock().unwrap()
    );
    canary.finish().await;
}

/// RFC 9112 §2.2/§5, HTTP Garden: a bare LF, NUL or lone CR inside the
/// header section, or whitespace between a field name and the colon, is 400
/// and never forwarded.
#[tokio::test]
async fn case_12_bare_lf_nul_cr_and_space_before_colon_in_headers_are_400() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let up = Strict::start().await;
    let proxy = hostile_proxy(&canary_up, up.up.addr).await;
    let canary = Canary::start(&proxy).await;
    let cases: [&[u8]; 6] = [
        b"GET /lf HTTP/1.1\nHost: up.test\n\n",
        b"GET /lf-in-field HTTP/1.1\r\nHost: up.test\r\nX-A: 1\nX-B: 2\r\n\r\n",
        b"GET /nul HTTP/1.1\r\nHost: up.test\r\nX-A: a\0b\r\n\r\n",
        b"GET /cr HTTP/1.1\r\nHost: up.test\r\nX-A: a\rb\r\n\r\n",
        b"GET /space HTTP/1.1\r\nHost: up.test\r\nX-A : 1\r\n\r\n",
        b"GET /tab HTTP/1.1\r\nHost: up.test\r\nX-A\t: 1\r\n\r\n",
    ];
    for raw in cases {
        let (head, closed) = raw_exchange(proxy.addr(), raw).await;
        let shown = String::from_utf8_lossy(raw);
        assert!(head.starts_with("HTTP/1.1 400"), "{shown:?}: {head}");
        assert!(closed, "{shown:?}: the connection is closed");
    }
    let dpe = entries_flagged(&proxy, "DPE", cases.len()).await;
    assert_eq!(dpe.len(), cases.len(), "{dpe:?}");
    assert!(
        up.up.seen.lock().unwrap().is_empty(),
        "nothing was forwarded: {:?}",
        up.up.seen.lock().unwrap()
    );
    canary.finish().await;
}

/// Envoy's codec drops `Upgrade: h2c` with its `HTTP2-Settings` and
/// Connection tokens (envoy#7161) and Istio enables only the `websocket`
/// upgrade (other upgrades: 403 `upgrade_failed`); hop-by-hop headers,
/// including those a `Connection` header names (even `Content-Length`),
/// never cross; a WebSocket connection is passed through only after the
/// upstream's 101 (Pingora CVE-2026-2833).
#[tokio::test]
async fn case_13_h2c_upgrade_is_not_tunnelled_and_hop_by_hop_headers_are_stripped() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let up = Strict::start().await;
    let proxy = hostile_proxy(&canary_up, up.up.addr).await;
    let canary = Canary::start(&proxy).await;

    // h2c: answered as plain HTTP/1.1, never 101.
    let mut c = connect(proxy.addr()).await;
    c.write_all(b"GET /h2c HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade, HTTP2-Settings, X-Hop\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut c).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = up.up.last();
    for h in [
        "upgrade",
        "http2-settings",
        "x-hop",
        "keep-alive",
        "proxy-connection",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} crossed: {seen:?}");
    }
    let conn = seen
        .headers
        .get("connection")
        .map(|v| v.to_str().unwrap_or("").to_ascii_lowercase());
    assert!(
        conn.as_deref().is_none_or(|v| !v.contains("upgrade")),
        "{conn:?}"
    );
    drop(c);

    // `Connection: Content-Length` must not strip the framing: the body and
    // the next request on the connection stay intact.
    let mut c = connect(proxy.addr()).await;
    c.write_all(b"POST /cl HTTP/1.1\r\nHost: up.test\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: up.test\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..2 {
        let head = read_head(&mut c).await.expect("a response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mut body = [0u8; 2];
        timeout(BOUND, c.read_exact(&mut body))
            .await
            .expect("in time")
            .unwrap();
    }
    let seen: Vec<(String, Bytes)> = up
        .up
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.uri.clone(), s.body.clone()))
        .collect();
    assert_eq!(
        &seen[1..],
        &[
            ("/cl".to_string(), Bytes::from_static(b"hello")),
            ("/after".to_string(), Bytes::new())
        ]
    );
    drop(c);

    // A WebSocket upgrade the upstream refuses stays HTTP: the next bytes
    // are a request, not a tunnel.
    let mut c = connect(proxy.addr()).await;
    c.write_all(b"GET /ws-refuse HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut c).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = [0u8; 2];
    timeout(BOUND, c.read_exact(&mut body))
        .await
        .expect("in time")
        .unwrap();
    c.write_all(b"GET /after-ws HTTP/1.1\r\nHost: up.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut c).await.expect("a second response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(up.up.last().uri, "/after-ws");
    drop(c);

    // Upgrades other than websocket are not configured: 403, not forwarded.
    let before = up.up.hits();
    let mut c = connect(proxy.addr()).await;
    c.write_all(
        b"GET /foo HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut c).await.expect("a response");
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    drop(c);
    assert_eq!(up.up.hits(), before);
    assert_eq!(
        entry_for(&proxy, "/foo").await["response_code_details"],
        "upgrade_failed"
    );
    canary.finish().await;
}

// ---------------------------------------- 21–24. limits, ejection, routing

both_http2_servers!(case_21_pending_overflow_is_503_uo_with_x_envoy_overloaded);
/// Istio's circuit-breaking task: with `maxConnections: 1` and
/// `http1MaxPendingRequests: 1`, of 20 concurrent requests one is sent, one
/// waits, and the rest fail fast with 503 UO and `x-envoy-overloaded: true`
/// (gRPC callers: UNAVAILABLE); other services are unaffected (canary).
async fn case_21_pending_overflow_is_503_uo_with_x_envoy_overloaded() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let r = release.clone();
    let slow = Upstream::start(
        "slow",
        Arc::new(move |_| {
            let r = r.clone();
            Box::pin(async move {
                if let Ok(p) = timeout(BOUND, r.acquire()).await {
                    p.unwrap().forget();
                }
                http::Response::new(Full::new(Bytes::from_static(b"slow")))
            })
        }),
    )
    .await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("busy.test", "HTTP", &[slow.addr])
            + &vs("busy.test", "  - route: [{destination: {host: busy.test}}]\n")
            + &dr(
                "busy.test",
                "  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, idleTimeout: 300ms}\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;
    let addr = proxy.addr();
    let mut calls = Vec::new();
    for i in 0..20 {
        calls.push(tokio::spawn(async move {
            get(addr, "busy.test", &format!("/c{i}")).await
        }));
    }
    // 18 fail fast while one request is held upstream and one waits.
    let uo = entries_flagged(&proxy, "UO", 18).await;
    assert_eq!(uo.len(), 18, "{uo:?}");
    let (status, grpc) = grpc_call(&proxy, "busy.test", "/pkg.Svc/Busy").await;
    assert_eq!((status, grpc.as_deref()), (200, Some("14")));
    release.add_permits(2);
    let (mut ok, mut overflow) = (0, 0);
    for c in calls {
        let got = timeout(BOUND, c).await.expect("in time").unwrap();
        match got.status.as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(got.header("x-envoy-overloaded"), Some("true"));
                assert!(
                    got.text().ends_with("reset reason: overflow"),
                    "{}",
                    got.text()
                );
                overflow += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!((ok, overflow), (2, 18));
    assert_eq!(slow.hits(), 2);
    canary.finish().await;
}

/// Envoy outlier detection with Istio's `minHealthPercent` 0 (no panic
/// mode): once every host is ejected the answer is 503 UH "no healthy
/// upstream" until `baseEjectionTime` has passed, then hosts get traffic
/// again.
#[tokio::test]
async fn case_22_all_hosts_ejected_is_503_uh_until_base_ejection_time() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let a = Upstream::status("a", 500).await;
    let b = Upstream::status("b", 500).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("sick.test", "HTTP", &[a.addr, b.addr])
            + &vs("sick.test", "  - route: [{destination: {host: sick.test}}]\n")
            + &dr(
                "sick.test",
                "  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 2, interval: 50ms, baseEjectionTime: 500ms, maxEjectionPercent: 100}\n    connectionPool: {http: {idleTimeout: 300ms}}\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;
    let mut first_uh = None;
    for i in 0..100 {
        let got = get(proxy.addr(), "sick.test", &format!("/s{i}")).await;
        if got.status == 503 {
            assert_eq!(got.text(), "no healthy upstream");
            assert_eq!(flags_for(&proxy, &format!("/s{i}")).await, "UH");
            first_uh = Some(Instant::now());
            break;
        }
        assert_eq!(got.status, 500);
    }
    let ejected_at = first_uh.expect("both hosts were ejected");
    let (status, grpc) = grpc_call(&proxy, "sick.test", "/pkg.Svc/Sick").await;
    assert_eq!((status, grpc.as_deref()), (200, Some("14")));
    // Bounded poll until a host is back; it must not be before the
    // ejection time (500ms; the first UH came after the ejection itself).
    let deadline = Instant::now() + BOUND;
    loop {
        let got = get(proxy.addr(), "sick.test", "/back").await;
        if got.status == 500 {
            assert!(
                ejected_at.elapsed() >= Duration::from_millis(400),
                "back after {:?}",
                ejected_at.elapsed()
            );
            break;
        }
        assert_eq!(got.text(), "no healthy upstream");
        assert!(Instant::now() < deadline, "no host came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    canary.finish().await;
}

both_http2_servers!(case_23_empty_subset_is_uh_missing_subset_nc_and_no_route_nr);
/// IST0173 and Envoy: a subset whose labels select no endpoint is 503 UH, a
/// subset the DestinationRule does not declare is 503 NC, a request no route
/// matches is 404 NR (gRPC: UNAVAILABLE, UNAVAILABLE, UNIMPLEMENTED).
async fn case_23_empty_subset_is_uh_missing_subset_nc_and_no_route_nr() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let v1 = Upstream::named("v1").await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service_entry("sub.test", 80, "HTTP", &[(v1.addr, &[("version", "v1")])])
            + &dr(
                "sub.test",
                "  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v9, labels: {version: v9}}\n",
            )
            + &vs(
                "sub.test",
                "  - match: [{uri: {prefix: /empty}}]\n    route: [{destination: {host: sub.test, subset: v9}}]\n  - match: [{uri: {prefix: /undeclared}}]\n    route: [{destination: {host: sub.test, subset: v7}}]\n  - match: [{uri: {prefix: /ok}}]\n    route: [{destination: {host: sub.test, subset: v1}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;
    for (path, status, body, flag, grpc) in [
        ("/empty", 503, "no healthy upstream", "UH", "14"),
        ("/undeclared", 503, "", "NC", "14"),
        ("/nowhere", 404, "", "NR", "12"),
        ("/ok", 200, "v1", "-", ""),
    ] {
        let got = get(proxy.addr(), "sub.test", path).await;
        assert_eq!(
            (got.status.as_u16(), got.text().as_str()),
            (status, body),
            "{path}"
        );
        assert_eq!(flags_for(&proxy, path).await, flag, "{path}");
        if !grpc.is_empty() {
            let (s, g) = grpc_call(&proxy, "sub.test", &format!("{path}/pkg.Svc/M")).await;
            assert_eq!((s, g.as_deref()), (200, Some(grpc)), "{path}");
        }
    }
    canary.finish().await;
}

/// Envoy URX: with `retryOn` covering 503 the upstream sees 1 try + 2
/// retries and the client gets the last 503 with URX; Istio's default policy
/// (no retriable status codes) does not retry a 503 at all.
#[tokio::test]
async fn case_24_retries_exhausted_on_503_is_urx_after_three_tries() {
    let _s = serial().await;
    let canary_up = Upstream::named("canary").await;
    let busy = Upstream::status("busy", 503).await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("busy.test", "HTTP", &[busy.addr])
            + &vs(
                "busy.test",
                "  - match: [{uri: {prefix: /retried}}]\n    retries: {attempts: 2, retryOn: 5xx}\n    route: [{destination: {host: busy.test}}]\n  - route: [{destination: {host: busy.test}}]\n",
            )
            + &dr(
                "busy.test",
                "  trafficPolicy: {connectionPool: {http: {idleTimeout: 300ms}}}\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;
    let got = get(proxy.addr(), "busy.test", "/retried").await;
    assert_eq!((got.status.as_u16(), got.text().as_str()), (503, "busy"));
    assert_eq!(busy.hits(), 3, "1 try + 2 retries");
    assert_eq!(flags_for(&proxy, "/retried").await, "URX");
    let got = get(proxy.addr(), "busy.test", "/default").await;
    assert_eq!(got.status, 503);
    assert_eq!(busy.hits(), 4, "Istio's default policy does not retry 503");
    assert_eq!(flags_for(&proxy, "/default").await, "-");
    canary.finish().await;
}

// ------------------------------------------------------- 25–27. reloads

/// A proxy reading `dir` with a running reloader (as `strait run` has).
struct Reloading {
    running: strait::proxy::Running,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Reloading {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.running.shutdown();
    }
}

async fn reloading(dir: &std::path::Path) -> Reloading {
    let paths = vec![dir.to_path_buf()];
    let (config, _) = strait::pipeline::load_valid(&paths, "default").expect("valid");
    let snapshot = strait::pipeline::compile_for(&config, "default", &Default::default());
    let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = strait::proxy::start(
        snapshot,
        lo,
        lo,
        strait::proxy::access_log::AccessLog::off(),
    )
    .await
    .unwrap();
    running.shared.record_config(
        Arc::new(config),
        String::new(),
        paths.iter().map(|p| p.display().to_string()).collect(),
    );
    let reloader = Arc::new(strait::reload::Reloader::new(
        strait::source::file::FileSource::new(paths),
        "default",
        Default::default(),
        running.shared.clone(),
    ));
    let (stop, rx) = tokio::sync::watch::channel(false);
    reloader.spawn(rx);
    Reloading { running, stop }
}

/// Replace a file the way editors do: write a temporary file, rename it.
fn replace(path: &std::path::Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0))
}

/// Clients sending `GET r/` back to back until stopped (bounded): counts of
/// (answers from v1 or v2, anything else).
fn load(
    proxy: SocketAddr,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(usize, Vec<String>)>> {
    (0..3)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = h1_client();
                let (mut ok, mut bad) = (0, Vec::new());
                for _ in 0..100_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let got = send(&client, proxy, "GET", "r", "/", &[], "").await;
                    if got.status == 200 && (got.text() == "v1" || got.text() == "v2") {
                        ok += 1;
                    } else {
                        bad.push(format!("{} {}", got.status, got.text()));
                    }
                }
                (ok, bad)
            })
        })
        .collect()
}

fn r_config(v1: &Upstream, v2: &Upstream) -> String {
    service_entry(
        "r.default.svc.cluster.local",
        80,
        "HTTP",
        &[
            (v1.addr, &[("version", "v1")]),
            (v2.addr, &[("version", "v2")]),
        ],
    ) + "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy: {connectionPool: {http: {idleTimeout: 300ms}}}\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
}

fn r_vs(w1: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - {{destination: {{host: r, subset: v1}}, weight: {w1}}}\n    - {{destination: {{host: r, subset: v2}}, weight: {}}}\n",
        100 - w1
    )
}

/// Poll until `r` answers `want` (bounded).
async fn until_answer(proxy: SocketAddr, want: &str) {
    let deadline = Instant::now() + BOUND;
    while get(proxy, "r", "/").await.text() != want {
        assert!(Instant::now() < deadline, "never answered {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Envoy `update_rejected`: an invalid configuration written under load is
/// rejected whole, the last good one keeps serving with no failed request,
/// and the rejection counter goes up by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_25_invalid_config_under_load_is_rejected_and_counted_zero_failures() {
    let _s = serial().await;
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("service.yaml"), r_config(&v1, &v2)).unwrap();
    let vs_path = dir.path().join("vs.yaml");
    std::fs::write(&vs_path, r_vs(100)).unwrap();
    let p = reloading(dir.path()).await;
    let proxy = p.running.listen;
    until_answer(proxy, "v1").await;
    let baseline = open_fds();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(proxy, stop.clone());

    // `timeout: 0s` fails Istio's validation (at least 1ms).
    replace(
        &vs_path,
        &r_vs(0).replace("  - route:", "  - timeout: 0s\n    route:"),
    );
    let shared = p.running.shared.clone();
    eventually("the change is rejected", || {
        shared.status.lock().unwrap().last_rejected.is_some()
    })
    .await;
    let stats = get(p.running.admin, "admin", "/stats/prometheus")
        .await
        .text();
    assert_eq!(
        counter(&stats, "strait_config_update_rejected_total"),
        1.0,
        "{stats}"
    );
    assert_eq!(counter(&stats, "strait_config_update_success_total"), 0.0);
    for _ in 0..20 {
        assert_eq!(
            get(proxy, "r", "/").await.text(),
            "v1",
            "the old config serves"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, bad) = timeout(BOUND, c).await.expect("in time").unwrap();
        assert!(bad.is_empty(), "failed requests: {bad:?}");
        total += ok;
    }
    assert!(total > 0);
    fds_settle(baseline).await;
}

/// Envoy listener drain: a valid change under load (weights flip, a route
/// appears) gives no non-2xx answer and no reset; a request in flight when
/// the change lands finishes on the old configuration; new requests see the
/// new routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_26_valid_reload_under_load_drops_nothing_and_applies() {
    let _s = serial().await;
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<()>();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let slow = Upstream::start(
        "slow",
        Arc::new(move |_| {
            let (tx, g) = (entered_tx.clone(), g.clone());
            Box::pin(async move {
                let _ = tx.send(());
                if let Ok(p) = timeout(BOUND, g.acquire()).await {
                    p.unwrap().forget();
                }
                http::Response::new(Full::new(Bytes::from_static(b"slow")))
            })
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("service.yaml"),
        r_config(&v1, &v2) + "---\n" + &service("slow.test", "HTTP", &[slow.addr]),
    )
    .unwrap();
    let vs_path = dir.path().join("vs.yaml");
    std::fs::write(&vs_path, r_vs(100)).unwrap();
    let p = reloading(dir.path()).await;
    let proxy = p.running.listen;
    until_answer(proxy, "v1").await;
    let baseline = open_fds();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(proxy, stop.clone());
    let in_flight = tokio::spawn(async move { get(proxy, "slow.test", "/held").await });
    timeout(BOUND, entered.recv())
        .await
        .expect("the held request is upstream");

    for (i, w) in [0, 100, 0].into_iter().enumerate() {
        replace(&vs_path, &r_vs(w));
        until_answer(proxy, if w == 100 { "v1" } else { "v2" }).await;
        let shared = p.running.shared.clone();
        eventually("the change is counted", || {
            shared.status.lock().unwrap().version == i as u64 + 2
        })
        .await;
    }
    gate.add_permits(1);
    let held = timeout(BOUND, in_flight).await.expect("in time").unwrap();
    assert_eq!((held.status.as_u16(), held.text().as_str()), (200, "slow"));
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for c in clients {
        let (ok, bad) = timeout(BOUND, c).await.expect("in time").unwrap();
        assert!(bad.is_empty(), "non-2xx or reset during reloads: {bad:?}");
        total += ok;
    }
    assert!(total > 0);
    let stats = get(p.running.admin, "admin", "/stats/prometheus")
        .await
        .text();
    assert_eq!(counter(&stats, "strait_config_update_success_total"), 3.0);
    fds_settle(baseline).await;
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// serde-yaml#277 and Envoy's `server_fuzz_test`: a billion-laughs alias
/// bomb, a 100 MB file and a 10,000-deep document are rejected quickly with
/// bounded memory and no stack overflow, and the old configuration keeps
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_27_yaml_bombs_are_rejected_fast_and_the_old_config_kept() {
    let _s = serial().await;
    let v1 = Upstream::named("v1").await;
    let v2 = Upstream::named("v2").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("service.yaml"), r_config(&v1, &v2)).unwrap();
    std::fs::write(dir.path().join("vs.yaml"), r_vs(100)).unwrap();
    let p = reloading(dir.path()).await;
    let proxy = p.running.listen;
    until_answer(proxy, "v1").await;
    let baseline = open_fds();
    let reloader = strait::reload::Reloader::new(
        strait::source::file::FileSource::new(vec![dir.path().to_path_buf()]),
        "default",
        Default::default(),
        p.running.shared.clone(),
    );

    let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let deep = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let bomb = dir.path().join("bomb.yaml");
    for (name, write) in [
        ("billion laughs", Some(laughs)),
        ("10,000 deep", Some(deep)),
        ("100 MB", None),
    ] {
        match write {
            Some(text) => std::fs::write(&bomb, text).unwrap(),
            // Sparse: the size limit is checked before anything is read.
            None => std::fs::File::create(&bomb)
                .unwrap()
                .set_len(100 * 1024 * 1024)
                .unwrap(),
        }
        let rss = rss_kb();
        let t = Instant::now();
        let errors = reloader.reload().expect_err(name);
        let took = t.elapsed();
        assert!(took < Duration::from_secs(1), "{name}: took {took:?}");
        assert!(
            rss_kb().saturating_sub(rss) < 64 * 1024,
            "{name}: RSS grew from {rss} to {} KiB",
            rss_kb()
        );
        assert!(
            errors.iter().any(|e| e.contains("bomb.yaml")),
            "{name}: {errors:?}"
        );
        assert_eq!(
            get(proxy, "r", "/").await.text(),
            "v1",
            "{name}: old config serves"
        );
    }
    std::fs::remove_file(&bomb).unwrap();
    fds_settle(baseline).await;
}

// -------------------------------------------------------------- 28. regex

/// Envoy's RE2 program-size limit, Istio's 1024-byte cap: an over-long
/// pattern is refused at load; a pattern that backtracking engines take
/// exponential time on matches a 50 KB header value quickly (the regex
/// crate is linear).
#[tokio::test]
async fn case_28_huge_regex_is_refused_and_pathological_regex_matches_in_linear_time() {
    let _s = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(1025);
    std::fs::write(
        dir.path().join("vs.yaml"),
        vs("re.test", &format!("  - match: [{{uri: {{regex: \"{long}\"}}}}]\n    route: [{{destination: {{host: re.test}}}}]\n")),
    )
    .unwrap();
    let msg = strait::pipeline::load_valid(&[dir.path().to_path_buf()], "default")
        .expect_err("an over-long regex is refused")
        .to_string();
    assert!(msg.contains("regex is too large"), "{msg}");

    let canary_up = Upstream::named("canary").await;
    let up = Upstream::named("re").await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("re.test", "HTTP", &[up.addr])
            + &vs(
                "re.test",
                "  - match: [{headers: {x-evil: {regex: \"(a+)+b\"}}}]\n    route: [{destination: {host: re.test}}]\n  - match: [{uri: {regex: \"/(x+x+)+y\"}}]\n    route: [{destination: {host: re.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;
    let evil = "a".repeat(50 * 1024);
    let client = h1_client();
    for _ in 0..5 {
        let t = Instant::now();
        let got = send(
            &client,
            proxy.addr(),
            "GET",
            "re.test",
            "/h",
            &[("x-evil", &evil)],
            "",
        )
        .await;
        assert_eq!(got.status, 404, "no match: NR");
        let path = format!("/{}", "x".repeat(4000));
        let got = send(&client, proxy.addr(), "GET", "re.test", &path, &[], "").await;
        assert_eq!(got.status, 404);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    assert_eq!(up.hits(), 0);
    drop(client);
    canary.finish().await;
}

// ------------------------------------------------------ 29. admin, secrets

/// A PKCS#8-looking PEM whose body decodes to a marker; it must never show
/// up in an admin answer, an access log or a log line.
const PEM_CANARY: &str = "-----BEGIN PRIVATE KEY-----\nQ0FOQVJZLVNFQ1JFVC1ET05PVExFQUstMDAwMDAwMDAwMA==\n-----END PRIVATE KEY-----\n";
const CANARY_MARKERS: &[&str] = &["Q0FOQVJZLVNFQ1JFV", "CANARY-SECRET", "BEGIN PRIVATE KEY"];

fn leaks(text: &str) -> Option<&'static str> {
    CANARY_MARKERS.iter().copied().find(|m| text.contains(m))
}

/// Envoy's admin doc, PR 9315, #4757, #19059: the admin listener defaults
/// to loopback, GET never changes state (405), no CORS headers are served,
/// and key material (a Secret's data, a client key file) appears in no admin
/// endpoint, access log or log line, including the messages of a rejected
/// reload.
#[tokio::test]
async fn case_29_admin_is_loopback_post_only_and_never_shows_key_material() {
    let _s = serial().await;
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["run", "--help"])
        .output()
        .expect("strait runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 127.0.0.1:15000]"), "{help}");

    let canary_up = Upstream::named("canary").await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, PEM_CANARY).unwrap();
    std::fs::write(
        dir.path().join("cert.pem"),
        PEM_CANARY.replace("PRIVATE KEY", "CERTIFICATE"),
    )
    .unwrap();
    let encoded = base64_encode(PEM_CANARY.as_bytes());
    let config = with_canary(
        &canary_up,
        &(service("mtls.test", "HTTP", &[dead_addr().await])
            + &vs(
                "mtls.test",
                "  - route: [{destination: {host: mtls.test}}]\n",
            )
            + &dr(
                "mtls.test",
                &format!(
                    "  trafficPolicy:\n    tls: {{mode: MUTUAL, clientCertificate: {}, privateKey: {}}}\n",
                    dir.path().join("cert.pem").display(),
                    key.display()
                ),
            )
            + &format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: tls-canary}}\ntype: kubernetes.io/tls\ndata:\n  tls.key: {encoded}\n---\n"
            )),
    );
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("all.yaml");
    std::fs::write(&conf, &config).unwrap();
    let access = dir.path().join("access.log");

    let (mut child, lines, listen, admin) = run_with_debug_log(conf_dir.path(), &access);
    assert!(admin.ip().is_loopback());

    // Traffic through the MUTUAL cluster fails on the unusable key: UF.
    let got = get(listen, "mtls.test", "/mtls").await;
    assert_eq!(got.status, 503);
    assert_eq!(get(listen, CANARY, "/canary").await.status, 200);
    // A rejected reload whose file holds the key (a broken Secret).
    std::fs::write(
        conf_dir.path().join("broken.yaml"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: broken}}\ndata: [{encoded}\n"),
    )
    .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + BOUND;
    while !lines.lock().unwrap().iter().any(|l| l.contains("rejected")) {
        assert!(
            Instant::now() < deadline,
            "no rejection logged: {:?}",
            lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    admin_shows_no_key_material(admin).await;

    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&access).unwrap_or_default();
    assert!(log.contains("\"UF"), "the failure is logged: {log}");
    assert_eq!(leaks(&log), None, "access log shows key material: {log}");
    let stderr = lines.lock().unwrap().join("\n");
    assert!(stderr.contains("DEBUG"), "debug logging was on");
    assert_eq!(leaks(&stderr), None, "logs show key material:\n{stderr}");
}

/// `strait run` on ephemeral ports with debug logging and a JSON access
/// log; returns the child, its stderr lines as they come, and its listen and
/// admin addresses (from the startup line).
fn run_with_debug_log(
    conf: &std::path::Path,
    access: &std::path::Path,
) -> (
    std::process::Child,
    Arc<Mutex<Vec<String>>>,
    SocketAddr,
    SocketAddr,
) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strait"))
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--access-log",
        ])
        .arg(access)
        .args(["--access-log-format", "json", "-c"])
        .arg(conf)
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("strait starts");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
    let l = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.strip_prefix("strait: listening on ")
                && let Some((listen, rest)) = rest.split_once(" (admin ")
                && let Some(admin) = rest.split(')').next()
            {
                let _ = addrs_tx.send((listen.to_string(), admin.to_string()));
            }
            l.lock().unwrap().push(line);
        }
    });
    let Ok((listen, admin)) = addrs_rx.recv_timeout(BOUND) else {
        let _ = child.kill();
        panic!("no startup line: {:?}", lines.lock().unwrap());
    };
    let (listen, admin): (SocketAddr, SocketAddr) =
        (listen.parse().unwrap(), admin.parse().unwrap());
    (child, lines, listen, admin)
}

/// Case 29 on every admin endpoint: 200 without key material or CORS
/// headers, redaction in the dump, and GET never changing the log level.
async fn admin_shows_no_key_material(admin: SocketAddr) {
    let client = h1_client();
    for path in [
        "/ready",
        "/config_dump",
        "/clusters",
        "/routes",
        "/stats/prometheus",
        "/logging",
        "/explain?url=http%3A%2F%2Fmtls.test%2F",
    ] {
        let got = send(
            &client,
            admin,
            "GET",
            "admin",
            path,
            &[("origin", "http://evil.example")],
            "",
        )
        .await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(leaks(&got.text()), None, "{path} shows key material");
        assert!(
            got.headers
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{path}: CORS headers {:?}",
            got.headers
        );
    }
    let dump = send(&client, admin, "GET", "admin", "/config_dump", &[], "")
        .await
        .text();
    assert!(dump.contains("[redacted]"), "{dump}");
    let got = send(
        &client,
        admin,
        "GET",
        "admin",
        "/logging?level=trace",
        &[],
        "",
    )
    .await;
    assert_eq!(got.status, 405, "GET never changes state");
    let got = send(&client, admin, "GET", "admin", "/logging", &[], "").await;
    assert!(
        got.text().contains("debug"),
        "the level is unchanged: {}",
        got.text()
    );
    drop(client);
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ------------------------------------------------ 30. TLS origination

/// A CA and a server certificate for `names`, as rcgen makes them; the
/// CA's PEM is written to `dir/name`.
fn pki(
    dir: &std::path::Path,
    name: &str,
    names: &[&str],
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join(name), ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
    (
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
}

/// A TLS server that completes handshakes and then answers HTTP/1.1 200.
async fn tls_upstream(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let h = handshakes.clone();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (acceptor, h) = (acceptor.clone(), h.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    h.fetch_add(1, Ordering::SeqCst);
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                }
            });
        }
    });
    (addr, handshakes, task)
}

/// Envoy UF with a transport failure reason: when the upstream's
/// certificate does not match `subjectAltNames`, or comes from a CA not in
/// `caCertificates`, or the upstream does not speak TLS at all, the request
/// fails with 503 UF and the TLS reason; strait never falls back to
/// plaintext (the upstream only ever sees a ClientHello).
#[tokio::test]
async fn case_30_tls_origination_failures_are_uf_and_never_plaintext() {
    let _s = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = pki(dir.path(), "ca.pem", &["real.backend"]);
    let _ = pki(dir.path(), "other-ca.pem", &["unused"]);
    let (tls_addr, handshakes, tls_task) = tls_upstream(chain, key).await;
    let first_bytes = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let fb = first_bytes.clone();
    let plain = Evil::start(move |_, mut s| {
        let fb = fb.clone();
        async move {
            let mut buf = vec![0u8; 16];
            if let Ok(Ok(n)) = timeout(BOUND, s.read(&mut buf)).await {
                buf.truncate(n);
                fb.lock().unwrap().push(buf);
            }
            // Answer like a plaintext server would, then close.
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    })
    .await;
    let ca = dir.path().join("ca.pem").display().to_string();
    let other = dir.path().join("other-ca.pem").display().to_string();
    let canary_up = Upstream::named("canary").await;
    let mut yaml = String::new();
    for (host, addr, tls) in [
        (
            "san.test",
            tls_addr,
            format!("{{mode: SIMPLE, caCertificates: {ca}, subjectAltNames: [wrong.name]}}"),
        ),
        (
            "ca.test",
            tls_addr,
            format!("{{mode: SIMPLE, caCertificates: {other}, sni: real.backend}}"),
        ),
        (
            "plain.test",
            plain.addr,
            format!("{{mode: SIMPLE, caCertificates: {ca}}}"),
        ),
        (
            "good.test",
            tls_addr,
            format!("{{mode: SIMPLE, caCertificates: {ca}, sni: real.backend}}"),
        ),
    ] {
        yaml += &(service(host, "HTTP", &[addr])
            + &vs(
                host,
                &format!("  - route: [{{destination: {{host: {host}}}}}]\n"),
            )
            + &dr(host, &format!("  trafficPolicy:\n    tls: {tls}\n")));
    }
    let proxy = Proxy::start(&with_canary(&canary_up, &yaml)).await;
    let canary = Canary::start(&proxy).await;

    let got = get(proxy.addr(), "good.test", "/good").await;
    assert_eq!(
        (got.status.as_u16(), got.text().as_str()),
        (200, "ok"),
        "the control case works"
    );
    for (host, reason) in [
        ("san.test", "not valid for name"),
        ("ca.test", "UnknownIssuer"),
        ("plain.test", "TLS_error"),
    ] {
        let path = format!("/{host}");
        let got = get(proxy.addr(), host, &path).await;
        assert_eq!(got.status, 503, "{host}");
        let e = entry_for(&proxy, &path).await;
        assert!(
            e["response_flags"].as_str().unwrap_or("").starts_with("UF"),
            "{host}: {e}"
        );
        let r = e["upstream_transport_failure_reason"]
            .as_str()
            .unwrap_or("");
        assert!(
            r.starts_with("TLS_error") && r.contains(reason),
            "{host}: {r}"
        );
    }
    assert_eq!(
        handshakes.load(Ordering::SeqCst),
        1,
        "only the control case completed a handshake"
    );
    let seen = first_bytes.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for b in &seen {
        assert_eq!(
            &b[..2],
            &[0x16, 0x03],
            "a TLS ClientHello, never plaintext: {b:?}"
        );
    }
    canary.finish().await;
    tls_task.abort();
}

// ------------------------------------------------- 32. HTTP semantics lint

/// One response read off a raw connection: status, header lines in order,
/// body (de-chunked).
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
}

impl Raw {
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Send `method path` (Host `host`) on a fresh connection to `addr` and read
/// the response by its framing.
async fn raw_request(addr: SocketAddr, method: &str, host: &str, path: &str) -> Raw {
    let mut s = connect(addr).await;
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await.expect("a response head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let (rest, _) = read_to_close(&mut s).await;
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(&rest) } else { rest };
    Raw {
        status,
        headers,
        body,
        chunked,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        b = &b[eol + 2..];
        if size == 0 || b.len() < size {
            break;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[(size + 2).min(b.len())..];
    }
    out
}

/// The header-level checks REDbot makes, for one response to `method`.
fn lint(method: &str, r: &Raw) -> Vec<String> {
    let mut problems = Vec::new();
    let cl = r.all("content-length");
    if cl.len() > 1 || cl.iter().any(|v| v.contains(',')) {
        problems.push(format!("duplicate Content-Length {cl:?}"));
    }
    if !cl.is_empty() && r.chunked {
        problems.push("Content-Length with chunked".into());
    }
    let no_body = method == "HEAD" || r.status == 204 || r.status == 304 || r.status < 200;
    if no_body && !r.body.is_empty() {
        problems.push(format!("{method} {} has a body", r.status));
    }
    if r.status == 204 && !cl.is_empty() {
        problems.push("Content-Length on a 204".into());
    }
    if !no_body
        && let Some(n) = cl.first().and_then(|v| v.parse::<usize>().ok())
        && n != r.body.len()
    {
        problems.push(format!(
            "Content-Length {n} but {} body bytes",
            r.body.len()
        ));
    }
    if r.all("date").len() != 1 {
        problems.push("no single Date".into());
    }
    problems
}

/// REDbot is not available here; this is its header-level check of a
/// proxied response against the same response fetched directly: no new
/// problems (duplicate or wrong Content-Length, a body on HEAD/204/304,
/// Content-Length on 204, no Date), hop-by-hop headers stripped (also those
/// the upstream's Connection header names), and Istio's
/// x-envoy-upstream-service-time added (Istio adds no Via by default).
#[tokio::test]
async fn case_32_proxied_responses_add_no_http_semantics_problems() {
    let _s = serial().await;
    let up = Evil::start(|_, mut s| async move {
        let Some(head) = read_head(&mut s).await else {
            return;
        };
        let head_method = head.starts_with("HEAD ");
        let date = "Date: Fri, 27 Nov 2026 12:00:00 GMT\r\n";
        let hop = "Connection: X-Hop, close\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n";
        let resp = match target(&head).as_str() {
            "/plain" => format!("HTTP/1.1 200 OK\r\n{date}{hop}Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n{}", if head_method { "" } else { "hello" }),
            "/chunked" => format!("HTTP/1.1 200 OK\r\n{date}{hop}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "/204" => format!("HTTP/1.1 204 No Content\r\n{date}{hop}\r\n"),
            "/304" => format!("HTTP/1.1 304 Not Modified\r\n{date}{hop}ETag: \"v1\"\r\n\r\n"),
            _ => format!("HTTP/1.1 404 Not Found\r\n{date}Content-Length: 0\r\n\r\n"),
        };
        let _ = s.write_all(resp.as_bytes()).await;
    })
    .await;
    let canary_up = Upstream::named("canary").await;
    let proxy = Proxy::start(&with_canary(
        &canary_up,
        &(service("lint.test", "HTTP", &[up.addr])
            + &vs(
                "lint.test",
                "  - route: [{destination: {host: lint.test}}]\n",
            )),
    ))
    .await;
    let canary = Canary::start(&proxy).await;
    for (method, path) in [
        ("GET", "/plain"),
        ("HEAD", "/plain"),
        ("GET", "/chunked"),
        ("GET", "/204"),
        ("GET", "/304"),
    ] {
        let direct = raw_request(up.addr, method, "lint.test", path).await;
        let proxied = raw_request(proxy.addr(), method, "lint.test", path).await;
        let what = format!("{method} {path}");
        assert_eq!(proxied.status, direct.status, "{what}");
        let before = lint(method, &direct);
        let new: Vec<String> = lint(method, &proxied)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert!(
            new.is_empty(),
            "{what}: new problems {new:?} in {:?}",
            proxied.headers
        );
        assert_eq!(proxied.body, direct.body, "{what}: same body");
        for h in ["x-hop", "keep-alive", "proxy-connection", "upgrade"] {
            assert!(proxied.all(h).is_empty(), "{what}: hop-by-hop {h} crossed");
        }
        assert!(
            proxied
                .all("connection")
                .iter()
                .all(|v| v.eq_ignore_ascii_case("close")),
            "{what}: {:?}",
            proxied.all("connection")
        );
        assert_eq!(
            proxied.all("x-envoy-upstream-service-time").len(),
            1,
            "{what}: Istio adds x-envoy-upstream-service-time"
        );
        if method == "HEAD" {
            assert_eq!(
                proxied.all("content-length"),
                ["5"],
                "{what}: HEAD keeps the length"
            );
        }
    }
    canary.finish().await;
}

// ------------------------------------------------------------------ soak

/// Found by the soak (RSS grew ~500 bytes per request): every HTTP/1.1
/// connection returned to the pool spawned an idle timer sleeping for the
/// whole idle timeout (Istio's default 1h), one task per request. Idle
/// timers are now cancelled when the connection is reused, so the number of
/// live tasks stays flat however many requests pass.
#[tokio::test]
async fn soak_keep_alive_requests_leave_no_tasks_behind() {
    let _s = serial().await;
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&service("ka.test", "HTTP", &[up.addr])).await;
    let client = h1_client();
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..50 {
        assert_eq!(
            send(&client, proxy.addr(), "GET", "ka.test", "/", &[], "")
                .await
                .status,
            200
        );
    }
    let before = metrics.num_alive_tasks();
    for _ in 0..500 {
        assert_eq!(
            send(&client, proxy.addr(), "GET", "ka.test", "/", &[], "")
                .await
                .status,
            200
        );
    }
    let after = metrics.num_alive_tasks();
    assert!(
        after <= before + 10,
        "live tasks grew from {before} to {after} over 500 requests"
    );
}
