//! The `http1` fuzz target: raw client bytes into a real strait listener on
//! 127.0.0.1 (the raw-head watcher, hyper's HTTP/1.1 and h2c parsing, then
//! strait's request path to a loopback upstream), and the same bytes into
//! the watcher alone, whole and in pieces.

use std::convert::Infallible;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::proxy::access_log::{AccessLog, Format};
use crate::proxy::sniff::Watcher;
use crate::proxy::{self, Running};

/// Threads of the harness's runtime; a panic on one of them is a finding
/// even though tokio catches it.
const THREAD_NAME: &str = "strait-fuzz-rt";

/// How long a response may take before the client gives up waiting and
/// half-closes anyway (only coverage depends on it, never the verdict).
const FIRST_BYTE_WAIT: Duration = Duration::from_millis(100);

/// After the client's FIN, strait must close the connection within this.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// Panics seen on the harness's threads.
static PANICS: AtomicUsize = AtomicUsize::new(0);

struct Env {
    listen: SocketAddr,
    running: Running,
    /// Kept registered: see `env`.
    _sigpipe: Option<tokio::signal::unix::Signal>,
    _runtime: tokio::runtime::Runtime,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(THREAD_NAME) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info);
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .expect("a tokio runtime for the fuzz harness");
        // A fuzz target's `main` is libFuzzer's, which leaves SIGPIPE fatal
        // (Rust's own `main` ignores it, as strait's does): hyper's vectored
        // writes to a client that already left would kill the fuzzer.
        // Catching it with tokio's handler needs no `unsafe`.
        let sigpipe = runtime.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe()).ok()
        });
        let running = runtime.block_on(async {
            let upstream = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind the fuzz upstream on 127.0.0.1");
            let port = upstream.local_addr().expect("upstream address").port();
            tokio::spawn(serve_upstream(upstream));
            let config = crate::load::load_str(
                &super::mesh_yaml(port),
                "mesh.yaml",
                &crate::load::LoadOptions {
                    namespace: Some("default".into()),
                    ..Default::default()
                },
            );
            let snapshot = crate::compile::compile(&config, &Default::default());
            // Text access log to nowhere: the log line is built from the
            // request's raw strings, so it is part of what is fuzzed.
            let log =
                AccessLog::to_path("/dev/null", Format::Text).unwrap_or_else(|_| AccessLog::off());
            let lo: SocketAddr = "127.0.0.1:0".parse().expect("loopback address");
            proxy::start(snapshot, lo, lo, log)
                .await
                .expect("start strait on 127.0.0.1")
        });
        Env {
            listen: running.listen,
            running,
            _sigpipe: sigpipe,
            _runtime: runtime,
        }
    })
}

/// The loopback upstream: reads the whole body, answers `/status/NNN` with
/// that status and anything else with 200 (HTTP/1.1 and h2c).
async fn serve_upstream(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Without it small responses wait for delayed ACKs (40 ms each).
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(|req: Request<Incoming>| async move {
                let status = req
                    .uri()
                    .path()
                    .strip_prefix("/status/")
                    .and_then(|s| s.parse::<u16>().ok())
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(StatusCode::OK);
                let (_, body) = req.into_parts();
                let read = Limited::new(body, 1 << 20).collect().await.is_ok();
                let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                *resp.status_mut() = if read {
                    status
                } else {
                    StatusCode::BAD_REQUEST
                };
                Ok::<_, Infallible>(resp)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Send `data` as one client connection's bytes and read what comes back.
/// Panics when strait panicked, kept the connection open after the
/// client's FIN, or left a connection task behind.
pub fn http1(data: &[u8]) {
    watcher_agrees_with_itself(data);
    let env = env();
    let panics_before = PANICS.load(Ordering::SeqCst);
    std::hint::black_box(exchange(env.listen, data));
    // The connection task ends right after the socket closes; give it a
    // bounded moment to notice.
    let deadline = Instant::now() + CLOSE_BOUND;
    while env.running.shared.open_connections() > 0 {
        assert!(
            Instant::now() < deadline,
            "a downstream connection task outlived its closed connection by {CLOSE_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics_before,
        "strait panicked while serving this input (see the panic message above)"
    );
}

/// What the client received.
fn exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        panic!("strait's listener on {addr} refused a connection");
    };
    let _ = s.set_nodelay(true);
    // Close with RST so thousands of runs leave no TIME_WAIT sockets behind.
    let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    // strait may answer and close before reading everything (400s): a
    // failed write is an answer, not a finding.
    let _ = s.write_all(data);
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    if expects_response(data) {
        let _ = s.set_read_timeout(Some(FIRST_BYTE_WAIT));
        match s.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return received,
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + CLOSE_BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "strait kept the connection open {CLOSE_BOUND:?} after the client's FIN"
        );
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut buf) {
            Ok(0) => return received,
            // Bounded: the responses to one input, never more than a few MiB.
            Ok(n) if received.len() < 4 << 20 => received.extend_from_slice(&buf[..n]),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return received,
        }
    }
}

/// Whether strait should answer before the client half-closes: the first
/// request head is complete (or broken, which hyper answers with 400) and
/// so is its body. hyper drops a request whose connection reads EOF before
/// the response, so half-closing early would skip the request path.
fn expects_response(data: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return false,
        Err(_) => return true,
    };
    let body = &data[head_len..];
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return body.windows(5).any(|w| w == b"0\r\n\r\n");
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            return std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .is_none_or(|n| body.len() >= n);
        }
    }
    true
}

/// The raw-head watcher must reach the same verdict however the bytes are
/// split across reads.
fn watcher_agrees_with_itself(data: &[u8]) {
    let whole = Arc::new(AtomicU8::new(0));
    Watcher::new(whole.clone()).feed(data);
    let pieces = Arc::new(AtomicU8::new(0));
    let mut w = Watcher::new(pieces.clone());
    // Piece sizes from the input itself, so a finding replays exactly.
    let mut seed = xxhash_rust::xxh64::xxh64(data, 1);
    let mut rest = data;
    while !rest.is_empty() {
        let n = ((seed % 64) as usize + 1).min(rest.len());
        seed = seed.rotate_right(6) ^ 0x9e37_79b9_7f4a_7c15;
        w.feed(&rest[..n]);
        rest = &rest[n..];
    }
    assert_eq!(
        whole.load(Ordering::Acquire),
        pieces.load(Ordering::Acquire),
        "the raw-head watcher's verdict depends on how the bytes were split"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(data: &[u8]) -> String {
        let received = exchange(env().listen, data);
        String::from_utf8_lossy(&received).into_owned()
    }

    /// The harness must reach strait's whole request path, not stop at the
    /// parser: a routed request gets the upstream's answer and a local
    /// reply gets strait's, before the client half-closes.
    #[test]
    fn harness_reaches_the_upstream_and_local_replies() {
        // `/status/` routes to v1 only; `/` would take the 70/20/10 split,
        // whose v3 subset has no endpoints (503 UH one time in ten).
        let r = answer(b"GET /status/200 HTTP/1.1\r\nHost: shop\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.ends_with("ok"), "upstream body: {r}");
        let r = answer(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "direct response: {r}");
        let r = answer(b"GET /nc HTTP/1.1\r\nHost: shop\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503"), "undeclared subset: {r}");
        let r = answer(
            b"POST / HTTP/1.1\r\nHost: shop\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 400"), "CL with TE: {r}");
    }

    #[test]
    fn incomplete_input_is_not_waited_for() {
        assert!(!expects_response(b"GET / HTTP/1.1\r\nHost: shop\r\n"));
        assert!(!expects_response(
            b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"
        ));
        assert!(expects_response(b"\x00\x01 garbage\r\n\r\n"));
        assert!(expects_response(b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n"));
    }
}
