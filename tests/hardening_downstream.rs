//! Hostile downstream clients (reliability.md §5 cases 9 and 14–20): each
//! attack runs against a real strait listener on 127.0.0.1 with short
//! configured limits, and each test checks that a canary request on another
//! connection is still served and that the process's open descriptors come
//! back to their baseline once the attacker is gone. HTTP/1 attacks use raw
//! sockets; HTTP/2 attacks hand-encode frames, since a well-behaved client
//! library refuses to send them.
//!
//! The tests hold one lock so the descriptor and memory counts of the test
//! process belong to one test at a time.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use strait::proxy::DownstreamLimits;
use support::*;

/// Generous bound on any single wait (a hang fails, it never stalls CI).
const BOUND: Duration = Duration::from_secs(5);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn config(up: SocketAddr) -> String {
    service_entry("a.test", 80, "HTTP", &[(up, &[])])
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a.test]\n  http:\n  - route: [{destination: {host: a.test}}]\n---\n"
}

async fn proxy_with(up: SocketAddr, limits: DownstreamLimits) -> Proxy {
    Proxy::start_with_limits(&config(up), limits).await
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss() -> u64 {
    strait::proxy::limits::resident_bytes().unwrap_or(0)
}

/// Wait (bounded) until the open descriptors are back near `baseline`.
async fn fds_back_to(baseline: usize) {
    let slack = (baseline / 10).max(8);
    let deadline = Instant::now() + BOUND;
    while open_fds() > baseline + slack {
        assert!(
            Instant::now() < deadline,
            "open fds stayed at {} (baseline {baseline})",
            open_fds()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Wait (bounded) until the proxy has `n` open downstream connections.
async fn connections_become(proxy: &Proxy, n: usize) {
    let deadline = Instant::now() + BOUND;
    while proxy.running.shared.open_connections() != n {
        assert!(
            Instant::now() < deadline,
            "open connections stayed at {} (want {n})",
            proxy.running.shared.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn canary(proxy: &Proxy) {
    let got = timeout(BOUND, get(proxy.addr(), "a.test", "/canary"))
        .await
        .expect("canary in time");
    assert_eq!(got.status, 200, "the canary is served");
}

async fn h2_canary(proxy: &Proxy) {
    let got = timeout(
        BOUND,
        h2_send(proxy.addr(), "GET", "a.test", "/canary", &[], ""),
    )
    .await
    .expect("h2 canary in time");
    assert_eq!(got.status, 200, "the HTTP/2 canary is served");
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(BOUND, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Read one response head (through the blank line); empty if the peer closed.
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match timeout(BOUND, s.read(&mut byte)).await {
            Ok(Ok(1)) => buf.push(byte[0]),
            Ok(_) => break,
            Err(_) => panic!("no response head in time"),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Read until the peer closes; the time it took, or `None` if it stayed open.
async fn closed_within(s: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = bound.checked_sub(start.elapsed())?;
        match timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// An upstream that answers 200 after `delay` (the slow service of a test).
async fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::start(
        "slow",
        Arc::new(move |_| {
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                Response::new(Full::new(Bytes::from_static(b"late")))
            })
        }),
    )
    .await
}

// ------------------------------------------------------------ HTTP/2 frames

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PROTOCOL_ERROR: u32 = 0x1;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const COMPRESSION_ERROR: u32 = 0x9;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal header field without indexing, new name.
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

/// `GET /` for `a.test`, from HPACK's static table; `path: false` leaves
/// out `:path` (a malformed request the server must reset).
fn request_block(path: bool) -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http
    if path {
        b.push(0x84); // :path /
    }
    b.push(0x01); // :authority, literal value
    hpack_int(&mut b, 0, 7, 6);
    b.extend_from_slice(b"a.test");
    b
}

struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl Frame {
    fn error_code(&self) -> u32 {
        let at = if self.kind == GOAWAY { 4 } else { 0 };
        self.payload
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Next frame from the server; `None` once it closed (or after `BOUND`).
async fn next_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    timeout(BOUND, s.read_exact(&mut head)).await.ok()?.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    timeout(BOUND, s.read_exact(&mut payload))
        .await
        .ok()?
        .ok()?;
    Some(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// Connect, exchange SETTINGS; returns the server's settings.
async fn h2_connect(addr: SocketAddr) -> (TcpStream, Vec<(u16, u32)>) {
    let mut s = connect(addr).await;
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    loop {
        let f = next_frame(&mut s).await.expect("server SETTINGS");
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            let settings = f
                .payload
                .chunks_exact(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect();
            s.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            return (s, settings);
        }
    }
}

/// Write `bytes` from a task that gives up after `BOUND` (a server that
/// stops reading must not hang the test) and ignores a closed connection.
fn write_in_background(
    w: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
) -> tokio::task::JoinHandle<tokio::net::tcp::OwnedWriteHalf> {
    tokio::spawn(async move {
        let mut w = w;
        let _ = timeout(BOUND, w.write_all(&bytes)).await;
        w
    })
}

/// Read frames until GOAWAY or close; returns the GOAWAY code (if any) and
/// the RST_STREAM frames seen as `(stream, code)`.
async fn until_goaway(r: &mut TcpStream) -> (Option<u32>, Vec<(u32, u32)>) {
    let mut resets = Vec::new();
    for _ in 0..100_000 {
        match next_frame(r).await {
            None => return (None, resets),
            Some(f) if f.kind == GOAWAY => return (Some(f.error_code()), resets),
            Some(f) if f.kind == RST_STREAM => resets.push((f.stream, f.error_code())),
            Some(_) => {}
        }
    }
    (None, resets)
}

// ------------------------------------------------------------------ case 9

both_http2_servers!(case_09_request_headers_over_60_kib_or_100_headers_are_431_never_forwarded);
/// Envoy's `max_request_headers_kb` (60) and `max_headers_count` (100):
/// over either, 431 and nothing reaches the upstream.
async fn case_09_request_headers_over_60_kib_or_100_headers_are_431_never_forwarded() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    canary(&proxy).await;
    let baseline = open_fds();

    let big = "x".repeat(61 * 1024);
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    for raw in [
        format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n"),
        // Host plus 100 more: 101 headers.
        format!("GET / HTTP/1.1\r\nHost: a.test\r\n{many}\r\n"),
    ] {
        let mut s = connect(proxy.addr()).await;
        s.write_all(raw.as_bytes()).await.unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 431"), "{head}");
        assert!(closed_within(&mut s, BOUND).await.is_some());
    }
    // At the limits: 100 headers in all, a head just under 60 KiB.
    let ninety_nine: String = (0..99).map(|i| format!("X-H{i}: v\r\n")).collect();
    let under = "x".repeat(58 * 1024);
    for raw in [
        format!("GET / HTTP/1.1\r\nHost: a.test\r\n{ninety_nine}\r\n"),
        format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {under}\r\n\r\n"),
    ] {
        let mut s = connect(proxy.addr()).await;
        s.write_all(raw.as_bytes()).await.unwrap();
        let head = read_head(&mut s).await;
        // Forwarded (the test upstream, plain hyper, may itself refuse the
        // 100 headers plus the proxy's own additions with 431).
        assert!(
            head.contains("x-envoy-upstream-service-time"),
            "forwarded: {head}"
        );
    }
    let hits = up.hits();
    assert!(
        (2..=3).contains(&hits),
        "only in-limit requests arrived: {hits}"
    );

    // HTTP/2: a header list over the limit gets 431 on that stream (h2
    // answers it), and the connection stays usable.
    let (mut s, settings) = h2_connect(proxy.addr()).await;
    assert!(
        settings.contains(&(0x6, 60 * 1024)),
        "SETTINGS_MAX_HEADER_LIST_SIZE advertised: {settings:?}"
    );
    let mut block = request_block(true);
    hpack_literal(&mut block, "x-big", "y".repeat(61 * 1024).as_bytes());
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = block.chunks(16 * 1024).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let (kind, flags) = match (i, last) {
            (0, true) => (HEADERS, END_STREAM | END_HEADERS),
            (0, false) => (HEADERS, END_STREAM),
            (_, true) => (CONTINUATION, END_HEADERS),
            (_, false) => (CONTINUATION, 0),
        };
        out.extend(frame(kind, flags, 1, c));
    }
    out.extend(frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        3,
        &request_block(true),
    ));
    s.write_all(&out).await.unwrap();
    let mut answered = Vec::new();
    while answered.len() < 2 {
        let f = next_frame(&mut s).await.expect("responses on both streams");
        if f.kind == HEADERS {
            answered.push((f.stream, f.payload.clone()));
        }
        assert_ne!(
            f.kind, GOAWAY,
            "the connection survives an oversized header list"
        );
    }
    answered.sort();
    // HPACK static index 8 is `:status 200`; 431 is a literal.
    assert_ne!(answered[0].1.first(), Some(&0x88), "stream 1 is not a 200");
    // h2 Huffman-codes every value: "431" is 011010 011001 00001 + EOS
    // padding (RFC 7541 Appendix B), a 3-byte string.
    assert!(
        answered[0]
            .1
            .windows(4)
            .any(|w| w == [0x83, 0x69, 0x90, 0xff]),
        "stream 1 answered 431: {:02x?}",
        answered[0].1
    );
    assert_eq!(answered[1].1.first(), Some(&0x88), "stream 3 is served");
    drop(s);
    assert_eq!(
        up.hits(),
        hits + 1,
        "the oversized HTTP/2 request never arrived"
    );

    canary(&proxy).await;
    fds_back_to(baseline).await;
}

/// The limits are the operator's: a 16 KiB head limit rejects a 20 KiB head.
#[tokio::test]
async fn case_09_max_request_headers_kb_is_configurable() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        max_request_headers_kb: 16,
        max_request_headers: 10,
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let big = "x".repeat(20 * 1024);
    let many: String = (0..10).map(|i| format!("X-H{i}: v\r\n")).collect();
    for raw in [
        format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: a.test\r\n{many}\r\n"),
    ] {
        let mut s = connect(proxy.addr()).await;
        s.write_all(raw.as_bytes()).await.unwrap();
        assert!(read_head(&mut s).await.starts_with("HTTP/1.1 431"));
    }
    canary(&proxy).await;
    assert_eq!(up.hits(), 1);
}

// ----------------------------------------------------------------- case 14

both_http2_servers!(case_14_slowloris_is_closed_at_the_header_timeout);
/// Slowloris: a head trickled byte by byte is cut at the header timeout
/// (Envoy `request_headers_timeout`, nginx 408/close); so is a connection
/// that never sends a byte, and an HTTP/2 preface that never completes.
async fn case_14_slowloris_is_closed_at_the_header_timeout() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        request_headers_timeout: Some(Duration::from_millis(400)),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    canary(&proxy).await;
    let baseline = open_fds();

    let mut silent = connect(proxy.addr()).await;
    let mut preface = connect(proxy.addr()).await;
    preface.write_all(&PREFACE[..10]).await.unwrap();
    let mut trickle = connect(proxy.addr()).await;
    trickle
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        .await
        .unwrap();
    let trickler = tokio::spawn(async move {
        // One header line every 50 ms, bounded: the attack, not a wait.
        for i in 0..60 {
            if trickle
                .write_all(format!("X-{i}: v\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        trickle
    });
    // Served while the attack runs.
    canary(&proxy).await;
    for (name, s) in [("silent", &mut silent), ("h2 preface", &mut preface)] {
        let took = closed_within(s, Duration::from_secs(3)).await;
        assert!(took.is_some(), "{name} connection closed at the timeout");
    }
    let mut trickle = timeout(BOUND, trickler).await.unwrap().unwrap();
    let mut rest = Vec::new();
    let _ = timeout(BOUND, trickle.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 408"),
        "closed or 408, got {rest:?}"
    );
    assert_eq!(up.hits(), 2, "only the canaries arrived");
    assert!(proxy.running.shared.downstream.rq_header_timeout.get() >= 2);
    connections_become(&proxy, 0).await;
    canary(&proxy).await;
    fds_back_to(baseline).await;
}

/// Envoy starts `request_headers_timeout` at a head's first byte: a
/// keep-alive connection waiting between requests is not cut by it (only
/// by the idle timeout), but a later head trickled on it is.
#[tokio::test]
async fn case_14_header_timeout_runs_from_the_heads_first_byte_not_while_keep_alive_waits() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let header_timeout = Duration::from_millis(300);
    let limits = DownstreamLimits {
        request_headers_timeout: Some(header_timeout),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let mut s = connect(proxy.addr()).await;
    let request = b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n";
    s.write_all(request).await.unwrap();
    assert!(read_head(&mut s).await.starts_with("HTTP/1.1 200"));
    // The behaviour under test is a timeout: wait past it, idle.
    tokio::time::sleep(header_timeout * 3).await;
    s.write_all(request).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the waiting keep-alive connection is still served: {head:?}"
    );
    let before = proxy.running.shared.downstream.rq_header_timeout.get();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(took.is_some(), "the unfinished head is cut at the timeout");
    assert_eq!(up.hits(), 2, "only the complete requests arrived");
    assert_eq!(
        proxy.running.shared.downstream.rq_header_timeout.get(),
        before + 1
    );
}
// ----------------------------------------------------------------- case 15

/// Slow POST: a body that stops arriving ends at the stream idle timeout
/// with Envoy's 408 "stream timeout", flag SI; the upstream request is
/// abandoned.
#[tokio::test]
async fn case_15_slow_post_gets_408_si_at_the_stream_idle_timeout() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        stream_idle_timeout: Some(Duration::from_millis(300)),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    canary(&proxy).await;
    let baseline = open_fds();

    let mut s = connect(proxy.addr()).await;
    s.write_all(b"POST /slow HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let started = Instant::now();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(3), "at the timeout");
    assert!(
        closed_within(&mut s, BOUND).await.is_some(),
        "the unread body closes the connection"
    );
    canary(&proxy).await;
    let entries = proxy.log_entries(3).await;
    let slow = entries
        .iter()
        .find(|e| e["path"] == "/slow")
        .expect("the slow request is logged");
    assert_eq!(slow["response_code"], 408);
    assert_eq!(slow["response_flags"], "SI");
    assert_eq!(slow["response_code_details"], "stream_idle_timeout");
    assert_eq!(proxy.running.shared.downstream.rq_idle_timeout.get(), 1);
    fds_back_to(baseline).await;
}

/// Envoy's `maybeRequestTimeoutCode`: once the whole request has arrived,
/// a stream idle timeout waiting on the upstream is 504, still flag SI.
#[tokio::test]
async fn case_15_stream_idle_after_the_request_arrived_is_504_si() {
    let _serial = SERIAL.lock().await;
    let up = slow_upstream(Duration::from_secs(3)).await;
    let limits = DownstreamLimits {
        stream_idle_timeout: Some(Duration::from_millis(300)),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let started = Instant::now();
    let got = timeout(BOUND, get(proxy.addr(), "a.test", "/wait"))
        .await
        .unwrap();
    assert_eq!(got.status, 504);
    assert_eq!(got.text(), "stream timeout");
    assert!(started.elapsed() < Duration::from_secs(2), "at the timeout");
    let entries = proxy.log_entries(1).await;
    assert_eq!(entries[0]["response_flags"], "SI");
}

/// Slow read: a client that never reads a large response is cut at the
/// stream idle timeout, and what the proxy buffered for it stays bounded.
#[tokio::test]
async fn case_15_slow_read_is_closed_and_buffering_stays_bounded() {
    let _serial = SERIAL.lock().await;
    const BODY: usize = 32 << 20;
    let big = Bytes::from(vec![b'z'; BODY]);
    let up = Upstream::start(
        "big",
        Arc::new(move |_| {
            let b = big.clone();
            Box::pin(async move { Response::new(Full::new(b)) })
        }),
    )
    .await;
    let limits = DownstreamLimits {
        stream_idle_timeout: Some(Duration::from_millis(300)),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    canary(&proxy).await;
    let baseline = open_fds();
    let rss_before = rss();

    let mut s = connect(proxy.addr()).await;
    // A small receive buffer, never read until the proxy gives up.
    s.write_all(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let deadline = Instant::now() + BOUND;
    while proxy.running.shared.downstream.rq_idle_timeout.get() == 0 {
        assert!(Instant::now() < deadline, "the stalled reader is cut");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let grew = rss().saturating_sub(rss_before);
    assert!(
        grew < 3 * BODY as u64,
        "bounded buffering: RSS grew {grew} bytes for a {BODY}-byte body"
    );
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(Ok(n)) = timeout(BOUND, s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got += n;
    }
    assert!(
        got < BODY,
        "the response was cut, not delivered ({got} bytes)"
    );
    canary(&proxy).await;
    fds_back_to(baseline).await;
}

// ----------------------------------------------------------------- case 16

/// Connection flood over `--max-connections`: the excess is accepted and
/// closed at once (Envoy's downstream_cx_overflow), the proxy keeps the
/// limit, and serves again once the flood goes away.
#[tokio::test]
async fn case_16_connection_flood_over_max_connections_is_refused_and_recovers() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        max_connections: 20,
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    canary(&proxy).await;
    connections_become(&proxy, 0).await;
    let baseline = open_fds();
    let rss_before = rss();

    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect(proxy.addr()).await);
    }
    connections_become(&proxy, 20).await;
    let mut refused = 0;
    for _ in 0..30 {
        let mut s = connect(proxy.addr()).await;
        if closed_within(&mut s, BOUND).await.is_some() {
            refused += 1;
        }
    }
    assert_eq!(refused, 30, "every connection over the limit is closed");
    assert_eq!(proxy.running.shared.downstream.cx_overflow.get(), 30);
    assert_eq!(proxy.running.shared.open_connections(), 20);
    let grew = rss().saturating_sub(rss_before);
    assert!(grew < 32 << 20, "memory under budget: grew {grew} bytes");
    // Even a saturated proxy answers its admin listener.
    let admin = get(proxy.running.admin, "admin", "/stats/prometheus").await;
    assert!(
        admin
            .text()
            .contains("envoy_listener_downstream_cx_overflow_total 30"),
        "{}",
        admin.text()
    );

    drop(held);
    connections_become(&proxy, 0).await;
    canary(&proxy).await;
    fds_back_to(baseline).await;
}

/// The overload guard (Envoy's overload manager `stop_accepting_requests`):
/// over the memory limit, new requests on open connections get 503 "envoy
/// overloaded" with flag OM and new connections are refused; below it,
/// service resumes.
#[tokio::test]
async fn case_16_overload_guard_sheds_with_503_om_and_recovers() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        memory_sample_interval: Duration::from_millis(10),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let shared = proxy.running.shared.clone();
    let mut kept = connect(proxy.addr()).await;
    let req = b"GET /kept HTTP/1.1\r\nHost: a.test\r\n\r\n";
    kept.write_all(req).await.unwrap();
    assert!(read_head(&mut kept).await.starts_with("HTTP/1.1 200"));
    let mut body = [0u8; 2];
    kept.read_exact(&mut body).await.unwrap();

    shared.overload.set_limit(Some(1));
    let deadline = Instant::now() + BOUND;
    while !shared.overload.active() {
        assert!(Instant::now() < deadline, "the guard turns on");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    kept.write_all(req).await.unwrap();
    let head = read_head(&mut kept).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let mut body = [0u8; 16];
    kept.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"envoy overloaded");
    let mut fresh = connect(proxy.addr()).await;
    assert!(
        closed_within(&mut fresh, BOUND).await.is_some(),
        "new connections are refused while overloaded"
    );
    assert!(shared.downstream.cx_overload_reject.get() >= 1);
    let entries = proxy.log_entries(2).await;
    assert_eq!(entries[1]["response_flags"], "OM");
    assert_eq!(entries[1]["response_code"], 503);

    shared.overload.set_limit(None);
    let deadline = Instant::now() + BOUND;
    while shared.overload.active() {
        assert!(Instant::now() < deadline, "the guard turns off");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    canary(&proxy).await;
    assert_eq!(up.hits(), 2, "shed requests never reached the upstream");
}

// ----------------------------------------------------------------- case 17

both_http2_servers!(case_17_rapid_reset_gets_goaway_enhance_your_calm);
/// HTTP/2 Rapid Reset (CVE-2023-44487): HEADERS then RST_STREAM, over and
/// over. Past h2's pending-accept reset budget (20) the proxy sends GOAWAY
/// ENHANCE_YOUR_CALM and closes; the work done stays bounded.
async fn case_17_rapid_reset_gets_goaway_enhance_your_calm() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    h2_canary(&proxy).await;
    let baseline = open_fds();

    let (s, _) = h2_connect(proxy.addr()).await;
    let (mut r, w) = s.into_split();
    let mut flood = Vec::new();
    for i in 0..2000u32 {
        let id = 2 * i + 1;
        flood.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            id,
            &request_block(true),
        ));
        flood.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
    }
    let writer = write_in_background(w, flood);
    let mut buf = Vec::new();
    let mut goaway = None;
    for _ in 0..100_000 {
        let mut head = [0u8; 9];
        if timeout(BOUND, r.read_exact(&mut head)).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        buf.resize(len, 0);
        if !matches!(timeout(BOUND, r.read_exact(&mut buf)).await, Ok(Ok(_))) {
            break;
        }
        if head[3] == GOAWAY {
            goaway = Some(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]));
            break;
        }
    }
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM));
    let _ = writer.await;
    assert!(
        up.hits() < 200,
        "bounded work: {} of 2000 reset streams reached the upstream",
        up.hits()
    );
    drop(r);
    h2_canary(&proxy).await;
    fds_back_to(baseline).await;
}

// ----------------------------------------------------------------- case 18

both_http2_servers!(case_18_continuation_flood_is_a_connection_error_memory_flat);
/// CONTINUATION flood (CVE-2024-27919 memory, CVE-2024-30255 CPU): a header
/// block that never ends. h2 caps CONTINUATION frames at about
/// max_header_list_size / max_frame_size (h2#758): GOAWAY, memory flat.
async fn case_18_continuation_flood_is_a_connection_error_memory_flat() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    h2_canary(&proxy).await;
    let baseline = open_fds();
    let rss_before = rss();

    for payload_len in [1024usize, 0] {
        let (s, _) = h2_connect(proxy.addr()).await;
        let (r, w) = s.into_split();
        let mut flood = frame(HEADERS, END_STREAM, 1, &request_block(true));
        let mut field = Vec::new();
        if payload_len > 0 {
            hpack_literal(&mut field, "x-f", &vec![b'f'; payload_len - 8]);
        }
        for _ in 0..20_000 {
            flood.extend(frame(CONTINUATION, 0, 1, &field));
        }
        let writer = write_in_background(w, flood);
        let mut rs = r.reunite(writer.await.unwrap()).unwrap();
        let (goaway, _) = until_goaway(&mut rs).await;
        assert!(
            matches!(
                goaway,
                Some(ENHANCE_YOUR_CALM) | Some(COMPRESSION_ERROR) | Some(PROTOCOL_ERROR)
            ),
            "connection error for {payload_len}-byte CONTINUATIONs, got {goaway:?}"
        );
        assert!(closed_within(&mut rs, BOUND).await.is_some());
    }
    let grew = rss().saturating_sub(rss_before);
    assert!(grew < 16 << 20, "memory flat: grew {grew} bytes");
    assert_eq!(up.hits(), 1, "only the canary arrived");
    h2_canary(&proxy).await;
    fds_back_to(baseline).await;
}

// ----------------------------------------------------------------- case 19

both_http2_servers!(case_19_made_you_reset_gets_goaway_enhance_your_calm);
/// MadeYouReset (CVE-2025-8671): requests the server itself must reset
/// (here: no `:path`). Past h2's local-reset budget (1024, set explicitly:
/// hyper#3782 once left it off) the proxy sends GOAWAY ENHANCE_YOUR_CALM;
/// none reach the upstream.
async fn case_19_made_you_reset_gets_goaway_enhance_your_calm() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    h2_canary(&proxy).await;
    let baseline = open_fds();

    let (s, _) = h2_connect(proxy.addr()).await;
    let (mut r, w) = s.into_split();
    let mut flood = Vec::new();
    for i in 0..1500u32 {
        flood.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            2 * i + 1,
            &request_block(false),
        ));
    }
    let writer = write_in_background(w, flood);
    let mut resets = 0usize;
    let mut goaway = None;
    for _ in 0..100_000 {
        let mut head = [0u8; 9];
        if !matches!(timeout(BOUND, r.read_exact(&mut head)).await, Ok(Ok(_))) {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        if !matches!(timeout(BOUND, r.read_exact(&mut payload)).await, Ok(Ok(_))) {
            break;
        }
        match head[3] {
            RST_STREAM => resets += 1,
            GOAWAY => {
                goaway = Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
                break;
            }
            _ => {}
        }
    }
    let _ = writer.await;
    assert_eq!(goaway, Some(ENHANCE_YOUR_CALM), "after {resets} resets");
    assert!(resets <= 1024, "at most the budget of resets: {resets}");
    assert_eq!(up.hits(), 1, "malformed requests never reach the upstream");
    drop(r);
    h2_canary(&proxy).await;
    fds_back_to(baseline).await;
}

both_http2_servers!(case_19_window_update_zero_is_a_connection_error);
/// WINDOW_UPDATE with a zero increment: h2 treats it as a connection error
/// (GOAWAY PROTOCOL_ERROR), so it cannot be looped into server resets.
async fn case_19_window_update_zero_is_a_connection_error() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    let (mut s, _) = h2_connect(proxy.addr()).await;
    let mut out = frame(HEADERS, END_HEADERS, 1, &request_block(true));
    out.extend(frame(WINDOW_UPDATE, 0, 1, &0u32.to_be_bytes()));
    s.write_all(&out).await.unwrap();
    let (goaway, resets) = until_goaway(&mut s).await;
    assert!(
        goaway == Some(PROTOCOL_ERROR) || resets.iter().any(|(_, c)| *c == PROTOCOL_ERROR),
        "PROTOCOL_ERROR, got {goaway:?} {resets:?}"
    );
    h2_canary(&proxy).await;
}

both_http2_servers!(case_19_ping_and_settings_floods_stay_bounded);
/// PING and SETTINGS floods (CVE-2019-9512/9515) from a client that does
/// not read the answers: h2 keeps one answer pending and stops reading, so
/// memory stays flat; the proxy keeps serving others.
async fn case_19_ping_and_settings_floods_stay_bounded() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    h2_canary(&proxy).await;
    let baseline = open_fds();
    let rss_before = rss();

    for (kind, payload) in [(PING, vec![7u8; 8]), (SETTINGS, Vec::new())] {
        let (s, _) = h2_connect(proxy.addr()).await;
        let (r, w) = s.into_split();
        let one = frame(kind, 0, 0, &payload);
        let flood: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * 100_000)
            .collect();
        let writer = write_in_background(w, flood);
        // The answers are read only now, after the flood was sent (or the
        // proxy stopped reading it).
        let w = writer.await.unwrap();
        let mut rs = r.reunite(w).unwrap();
        let f = next_frame(&mut rs).await;
        assert!(
            f.is_none()
                || f.as_ref().is_some_and(|f| f.kind == kind
                    || f.kind == GOAWAY
                    || f.kind == WINDOW_UPDATE
                    || f.kind == SETTINGS),
            "acks, GOAWAY or close"
        );
        h2_canary(&proxy).await;
        drop(rs);
    }
    let grew = rss().saturating_sub(rss_before);
    assert!(grew < 32 << 20, "memory flat: grew {grew} bytes");
    fds_back_to(baseline).await;
}

// ----------------------------------------------------------------- case 20

both_http2_servers!(case_20_streams_over_max_concurrent_streams_are_refused_rest_served);
/// More streams than SETTINGS_MAX_CONCURRENT_STREAMS (100, Envoy's edge
/// guide): the excess is refused with RST_STREAM(REFUSED_STREAM), the first
/// 100 are served.
async fn case_20_streams_over_max_concurrent_streams_are_refused_rest_served() {
    let _serial = SERIAL.lock().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let up = Upstream::start(
        "gated",
        Arc::new(move |_| {
            let g = g.clone();
            Box::pin(async move {
                // Held until the test has seen the refusals (bounded).
                let _ = timeout(BOUND, g.acquire()).await;
                Response::new(Full::new(Bytes::from_static(b"ok")))
            })
        }),
    )
    .await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    let baseline = open_fds();

    let (mut s, settings) = h2_connect(proxy.addr()).await;
    assert!(
        settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 100)),
        "advertised: {settings:?}"
    );
    let mut out = Vec::new();
    for i in 0..150u32 {
        out.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            2 * i + 1,
            &request_block(true),
        ));
    }
    s.write_all(&out).await.unwrap();
    let mut refused = Vec::new();
    while refused.len() < 50 {
        let f = next_frame(&mut s).await.expect("the refusals");
        assert_ne!(f.kind, GOAWAY, "no connection error");
        if f.kind == RST_STREAM {
            assert_eq!(f.error_code(), REFUSED_STREAM);
            refused.push(f.stream);
        }
    }
    refused.sort_unstable();
    assert_eq!(
        refused,
        (100..150u32).map(|i| 2 * i + 1).collect::<Vec<_>>()
    );
    gate.add_permits(1000);
    let mut served = std::collections::BTreeSet::new();
    while served.len() < 100 {
        let f = next_frame(&mut s).await.expect("the responses");
        if f.kind == HEADERS {
            assert_eq!(f.payload.first(), Some(&0x88), ":status 200");
            served.insert(f.stream);
        }
        if f.kind == DATA && f.flags & END_STREAM != 0 {
            // Keep the connection window open for the rest.
            continue;
        }
    }
    assert_eq!(served, (0..100u32).map(|i| 2 * i + 1).collect());
    drop(s);
    h2_canary(&proxy).await;
    connections_become(&proxy, 0).await;
    // The 100 served streams left up to 100 pooled upstream connections
    // (two descriptors each in this process, client and server side).
    fds_back_to(baseline + 200).await;
}

// ------------------------------------------------------------ idle timeout

both_http2_servers!(idle_timeout_closes_quiet_connections_with_goaway);
/// Envoy's HTTP connection manager `idle_timeout` (1 h by default, here
/// short): a connection with nothing in flight and no traffic is closed,
/// with GOAWAY on HTTP/2; one with a request in flight is not.
async fn idle_timeout_closes_quiet_connections_with_goaway() {
    let _serial = SERIAL.lock().await;
    let up = slow_upstream(Duration::from_millis(600)).await;
    let limits = DownstreamLimits {
        idle_timeout: Some(Duration::from_millis(300)),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;

    let (mut s, _) = h2_connect(proxy.addr()).await;
    s.write_all(&frame(
        HEADERS,
        END_STREAM | END_HEADERS,
        1,
        &request_block(true),
    ))
    .await
    .unwrap();
    // The request outlives the idle timeout: it is answered all the same.
    let mut answered = false;
    let mut goaway = None;
    for _ in 0..1000 {
        let Some(f) = next_frame(&mut s).await else {
            break;
        };
        if f.kind == HEADERS && f.stream == 1 {
            answered = true;
        }
        if f.kind == GOAWAY {
            goaway = Some(f.error_code());
            break;
        }
    }
    assert!(answered, "the request in flight was served");
    assert_eq!(goaway, Some(0), "then GOAWAY NO_ERROR once idle");
    assert!(closed_within(&mut s, BOUND).await.is_some());
    assert_eq!(proxy.running.shared.downstream.cx_idle_timeout.get(), 1);
    connections_become(&proxy, 0).await;
}

/// The drain closes the connections that wait for a request at once,
/// whatever their timeouts (none here): one that never sent a byte (the
/// sidecar listener waits for its first byte to tell TLS from HTTP) and a
/// kept-alive one between requests.
#[tokio::test]
async fn a_drain_closes_waiting_connections_with_no_timeouts() {
    let _serial = SERIAL.lock().await;
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        request_headers_timeout: None,
        idle_timeout: None,
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let mut silent = connect(proxy.addr()).await;
    let mut kept = connect(proxy.addr()).await;
    kept.write_all(b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    assert!(read_head(&mut kept).await.starts_with("HTTP/1.1 200"));
    connections_become(&proxy, 2).await;
    proxy.running.shutdown();
    for (name, s) in [("silent", &mut silent), ("kept-alive", &mut kept)] {
        let took = closed_within(s, BOUND).await;
        assert!(took.is_some(), "the {name} connection closed at the drain");
    }
    connections_become(&proxy, 0).await;
}
