//! Protocol handling as a client sees it: HTTP/1.1 keep-alive, chunked and
//! 100-continue request bodies, Upgrade pass-through, protocol translation
//! between h1 and h2c, gRPC unary and bidirectional streaming, and hostile
//! HTTP/1.1 input (reliability.md §5 rows 9–12).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, Request, Response, Version};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::support::*;

/// Generous bound on any single network wait (a hang fails, it never stalls CI).
const BOUND: Duration = Duration::from_secs(10);

fn vs(host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{}}}\nspec:\n  hosts: [{host}]\n  http:\n  - route: [{{destination: {{host: {host}}}}}]\n---\n",
        host.replace('.', "-")
    )
}

/// A proxy with one HTTP/1.1 service `a.test` (port 80) backed by `up`.
async fn proxy_for(up: SocketAddr, protocol: &str) -> Proxy {
    Proxy::start(&(service_entry("a.test", 80, protocol, &[(up, &[])]) + &vs("a.test"))).await
}

/// A body fed from a channel (frames arrive as the test sends them).
struct ChanBody(mpsc::Receiver<Frame<Bytes>>);

impl http_body::Body for ChanBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

async fn connect(addr: SocketAddr) -> TcpStream {
    timeout(BOUND, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Read one response head (through the blank line) from a raw stream.
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert!(buf.len() < 64 * 1024, "response head too long");
        let n = timeout(BOUND, s.read(&mut byte))
            .await
            .expect("response head in time")
            .expect("read");
        if n == 0 {
            break;
        }
        buf.push(byte[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Read until the peer closes; `true` if it closed (EOF or reset) in time.
async fn closes(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..1024 {
        match timeout(BOUND, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

// -------------------------------------------------------------- HTTP/1.1

#[tokio::test]
async fn http1_keep_alive_serves_several_requests_on_one_connection() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(connect(proxy.addr()).await))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        sender.ready().await.expect("the connection stays open");
        let req = Request::get(format!("/k{i}"))
            .header("host", "a.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.expect("answered");
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "up");
    }
    assert_eq!(up.hits(), 3);
}

#[tokio::test]
async fn chunked_request_body_larger_than_retry_buffer_reaches_upstream_intact() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(connect(proxy.addr()).await))
            .await
            .unwrap();
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(4);
    let req = Request::post("/upload")
        .header("host", "a.test")
        .body(ChanBody(rx))
        .unwrap();
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 3 * 1024 * 1024;
    let expected: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
    let chunks = expected.clone();
    tokio::spawn(async move {
        for c in chunks.chunks(CHUNK) {
            if tx
                .send(Frame::data(Bytes::copy_from_slice(c)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let resp = timeout(BOUND, sender.send_request(req))
        .await
        .expect("in time")
        .expect("answered");
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.body.len(), TOTAL);
    assert!(seen.body == expected[..], "the body arrived intact");
}

#[tokio::test]
async fn expect_100_continue_gets_100_then_the_body_is_forwarded() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let mut s = connect(proxy.addr()).await;
    s.write_all(
        b"POST /c HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 100 Continue"), "{head}");
    s.write_all(b"hello").await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(up.last().body, "hello");
}

/// A raw TCP upstream that answers an Upgrade with 101 and then echoes.
async fn echo_upgrade_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                h.lock().unwrap().push(head);
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn websocket_upgrade_passes_through_and_bytes_echo() {
    let (up, heads) = echo_upgrade_upstream().await;
    let proxy = proxy_for(up, "HTTP").await;
    let mut s = connect(proxy.addr()).await;
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    let up_head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(up_head.contains("upgrade: websocket"), "{up_head}");
    assert!(up_head.contains("sec-websocket-key"), "{up_head}");
    for msg in [&b"ping"[..], b"second message"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        timeout(BOUND, s.read_exact(&mut got))
            .await
            .expect("echo in time")
            .expect("echo");
        assert_eq!(got, msg);
    }
}

// ------------------------------------------------------ protocol translation

both_http2_servers!(h2c_client_to_http1_upstream);
async fn h2c_client_to_http1_upstream() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let got = h2_send(proxy.addr(), "POST", "a.test", "/h2", &[], "body").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "up");
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.body, "body");
    assert_eq!(seen.headers["host"], "a.test");
}

#[tokio::test]
async fn http1_client_to_http2_upstream_speaks_h2c() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP2").await;
    let got = send(
        &h1_client(),
        proxy.addr(),
        "POST",
        "a.test",
        "/h1",
        &[],
        "body",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.text(), "up");
    let seen = up.last();
    assert_eq!(seen.version, Version::HTTP_2);
    assert_eq!(seen.body, "body");
    assert_eq!(seen.uri, "http://a.test/h1");
}

// ------------------------------------------------------------------- gRPC

fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.extend_from_slice(&[0]);
    b.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    b.extend_from_slice(msg);
    b.freeze()
}

/// Split complete length-prefixed messages off the front of `buf`.
fn grpc_messages(buf: &mut BytesMut) -> Vec<Bytes> {
    let mut out = Vec::new();
    while buf.len() >= 5 {
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        if buf.len() < 5 + len {
            break;
        }
        buf.advance(5);
        out.push(buf.split_to(len).freeze());
    }
    out
}

/// An h2c gRPC server echoing every message as soon as it arrives, then
/// `grpc-status: 0` in the trailers.
async fn grpc_echo_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let (tx, rx) = mpsc::channel(16);
                    let mut body = req.into_body();
                    tokio::spawn(async move {
                        let mut buf = BytesMut::new();
                        while let Some(Ok(frame)) = body.frame().await {
                            if let Ok(d) = frame.into_data() {
                                buf.extend_from_slice(&d);
                                for m in grpc_messages(&mut buf) {
                                    let _ = tx.send(Frame::data(grpc_frame(&m))).await;
                                }
                            }
                        }
                        let mut t = HeaderMap::new();
                        t.insert("grpc-status", "0".parse().unwrap());
                        let _ = tx.send(Frame::trailers(t)).await;
                    });
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/grpc")
                            .body(ChanBody(rx))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// Open a gRPC call through the proxy; the request body is fed by the
/// returned sender, the response arrives on the returned handle.
async fn grpc_call(
    proxy: SocketAddr,
    path: &str,
) -> (
    mpsc::Sender<Frame<Bytes>>,
    tokio::task::JoinHandle<hyper::Result<Response<Incoming>>>,
) {
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(connect(proxy).await))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel(16);
    let req = Request::post(format!("http://g.test{path}"))
        .version(Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(ChanBody(rx))
        .unwrap();
    (
        tx,
        tokio::spawn(async move { sender.send_request(req).await }),
    )
}

async fn grpc_response(
    pending: tokio::task::JoinHandle<hyper::Result<Response<Incoming>>>,
) -> Response<Incoming> {
    let resp = timeout(BOUND, pending)
        .await
        .expect("response headers in time")
        .unwrap()
        .expect("the proxy answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    resp
}

/// The next gRPC message, or the trailers once the stream is done.
async fn next_message(body: &mut Incoming, buf: &mut BytesMut) -> Result<Bytes, HeaderMap> {
    loop {
        if let Some(m) = grpc_messages(buf).into_iter().next() {
            return Ok(m);
        }
        let frame = timeout(BOUND, body.frame())
            .await
            .expect("a frame in time")
            .expect("the stream carries trailers")
            .expect("no stream error");
        match frame.into_data() {
            Ok(d) => buf.extend_from_slice(&d),
            Err(f) => return Err(f.into_trailers().expect("data or trailers")),
        }
    }
}

async fn grpc_proxy() -> Proxy {
    let up = grpc_echo_upstream().await;
    Proxy::start(&(service_entry("g.test", 80, "GRPC", &[(up, &[])]) + &vs("g.test"))).await
}

both_http2_servers!(grpc_unary_call_through_proxy_gets_message_and_grpc_status_trailer);
async fn grpc_unary_call_through_proxy_gets_message_and_grpc_status_trailer() {
    let proxy = grpc_proxy().await;
    let (tx, pending) = grpc_call(proxy.addr(), "/echo.Echo/Unary").await;
    tx.send(Frame::data(grpc_frame(b"hello"))).await.unwrap();
    drop(tx);
    let mut body = grpc_response(pending).await.into_body();
    let mut buf = BytesMut::new();
    assert_eq!(next_message(&mut body, &mut buf).await.unwrap(), "hello");
    let trailers = next_message(&mut body, &mut buf).await.unwrap_err();
    assert_eq!(trailers["grpc-status"], "0");
}

both_http2_servers!(grpc_bidirectional_streaming_exchanges_messages_one_by_one);
async fn grpc_bidirectional_streaming_exchanges_messages_one_by_one() {
    let proxy = grpc_proxy().await;
    let (tx, pending) = grpc_call(proxy.addr(), "/echo.Echo/Bidi").await;
    // Ping-pong: each message is sent only after the previous echo came
    // back, so nothing may wait for the end of the request stream.
    tx.send(Frame::data(grpc_frame(b"one"))).await.unwrap();
    let mut body = grpc_response(pending).await.into_body();
    let mut buf = BytesMut::new();
    assert_eq!(next_message(&mut body, &mut buf).await.unwrap(), "one");
    for m in ["two", "three"] {
        tx.send(Frame::data(grpc_frame(m.as_bytes())))
            .await
            .unwrap();
        assert_eq!(next_message(&mut body, &mut buf).await.unwrap(), m);
    }
    drop(tx);
    let trailers = next_message(&mut body, &mut buf).await.unwrap_err();
    assert_eq!(trailers["grpc-status"], "0");
}

// ---------------------------------------------------------- hostile input

both_http2_servers!(direct_responses_and_redirects_to_grpc_callers_are_grpc_local_replies);
/// Send `raw` on a fresh connection; return the response head and whether
/// the proxy closed the connection afterwards.
/// Envoy sends a route's direct response and redirect through
/// `sendLocalReply`: a gRPC caller gets HTTP 200, `grpc-status` mapped from
/// the status (`httpToGrpcStatus`: 503 → 14, 301 → 2), the body text as the
/// percent-encoded `grpc-message` and the headers already set (`Location`);
/// `application/grpc-web` is not gRPC (`hasGrpcContentType`). #14
async fn direct_responses_and_redirects_to_grpc_callers_are_grpc_local_replies() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start(&(service_entry("a.test", 80, "HTTP", &[(up.addr, &[])])
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-a}\nspec:\n  hosts: [a.test]\n  http:\n  - match: [{uri: {prefix: /down}}]\n    directResponse: {status: 503, body: {string: \"down 100%\"}}\n  - match: [{uri: {prefix: /old}}]\n    redirect: {uri: /new}\n  - route: [{destination: {host: a.test}}]\n---\n"))
    .await;
    let grpc = [("content-type", "application/grpc"), ("te", "trailers")];
    let got = h2_send(proxy.addr(), "POST", "a.test", "/down", &grpc, "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/grpc"));
    assert_eq!(got.header("grpc-status"), Some("14"));
    assert_eq!(got.header("grpc-message"), Some("down 100%25"));
    assert!(got.body.is_empty());

    let got = h2_send(proxy.addr(), "POST", "a.test", "/old", &grpc, "").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("grpc-status"), Some("2"));
    assert_eq!(got.header("location"), Some("http://a.test/new"));

    let web = [("content-type", "application/grpc-web")];
    let got = h2_send(proxy.addr(), "POST", "a.test", "/down", &web, "").await;
    assert_eq!(got.status, 503);
    assert_eq!(got.text(), "down 100%");
    assert_eq!(got.header("grpc-status"), None);
    assert_eq!(up.hits(), 0);
}

async fn raw_exchange(proxy: SocketAddr, raw: &[u8]) -> (String, bool) {
    let mut s = connect(proxy).await;
    s.write_all(raw).await.unwrap();
    let head = read_head(&mut s).await;
    let closed = closes(&mut s).await;
    (head, closed)
}

/// The proxy still serves a normal request.
async fn canary(proxy: &Proxy) {
    let got = get(proxy.addr(), "a.test", "/canary").await;
    assert_eq!(got.status, 200, "the proxy keeps serving");
}

/// Read off a raw stream until `want` occurs `n` times.
async fn read_until(s: &mut TcpStream, want: &str, n: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches(want).count() < n {
        let read = timeout(BOUND, s.read(&mut buf))
            .await
            .expect("response in time")
            .expect("read");
        assert!(read > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..read]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Requests pipelined in one write are answered in order (RFC 9112 §9.3),
/// each forwarded once.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let mut s = connect(proxy.addr()).await;
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\nPOST /two HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a.test\r\n\r\n",
    )
    .await
    .unwrap();
    // The named upstream's body is its name.
    let text = read_until(&mut s, "\r\n\r\nup", 3).await;
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
    let seen = up.seen.lock().unwrap();
    let uris: Vec<_> = seen.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["/one", "/two", "/three"]);
    assert_eq!(&seen[1].body[..], b"abc");
}

/// An HTTP/1.0 request is answered in HTTP/1.0 and the connection closes,
/// unless it asked for keep-alive (then the answer says so): hyper's and
/// Envoy's HTTP/1.0 rules.
#[tokio::test]
async fn http10_requests_get_http10_answers_and_keep_alive_only_when_asked() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let (head, closed) =
        raw_exchange(proxy.addr(), b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(closed, "HTTP/1.0 closes by default");

    let mut s = connect(proxy.addr()).await;
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.0 200"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains("connection: keep-alive"),
            "{head}"
        );
        let mut body = [0u8; 2];
        timeout(BOUND, s.read_exact(&mut body))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&body, b"up");
    }
    assert_eq!(up.hits(), 3);
}

/// A HEAD response has no body on the wire, and the connection carries the
/// next request.
#[tokio::test]
async fn head_responses_have_no_body_and_keep_the_connection() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let mut s = connect(proxy.addr()).await;
    s.write_all(b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let next = read_head(&mut s).await;
    assert!(
        next.starts_with("HTTP/1.1 200"),
        "no body bytes before it: {next}"
    );
    assert_eq!(up.last().uri, "/next");
}

/// A request the codec refuses is in the access log as Envoy logs its codec
/// errors: the status, flag DPE and the details.
#[tokio::test]
async fn refused_requests_are_logged_with_dpe() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let raw = b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n";
    let (head, closed) = raw_exchange(proxy.addr(), raw).await;
    assert!(head.starts_with("HTTP/1.1 501"), "{head}");
    assert!(closed);
    let log = proxy.log_entries(1).await;
    assert_eq!(log[0]["response_code"], 501);
    assert_eq!(log[0]["response_flags"], "DPE");
    assert_eq!(
        log[0]["response_code_details"],
        "http1.invalid_transfer_encoding"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn malformed_request_line_is_400_and_connection_closes() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /x HTTP/9.9 extra\r\nHost: a.test\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ] {
        let (head, closed) = raw_exchange(proxy.addr(), raw).await;
        assert!(
            head.starts_with("HTTP/1.1 400"),
            "{:?} → {head}",
            String::from_utf8_lossy(raw)
        );
        assert!(closed, "the connection closes after a 400");
        canary(&proxy).await;
    }
    assert_eq!(up.hits(), 3, "only the canaries reached the upstream");
}

#[tokio::test]
async fn request_headers_over_the_limit_are_431() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    let big = "x".repeat(70 * 1024);
    let raw = format!("GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\n\r\n");
    let (head, closed) = raw_exchange(proxy.addr(), raw.as_bytes()).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert!(closed);
    canary(&proxy).await;
    assert_eq!(up.hits(), 1, "only the canary reached the upstream");
}

/// Envoy (`allow_chunked_length: false`) rejects this with 400. hyper's
/// HTTP/1 parser drops Content-Length when Transfer-Encoding is present, so
/// strait watches the raw request heads (`proxy::sniff`) to catch it.
#[tokio::test]
async fn content_length_with_chunked_is_400_and_never_forwarded() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    for headers in [
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
    ] {
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: a.test\r\n{headers}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"
        );
        let (head, closed) = raw_exchange(proxy.addr(), raw.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{headers:?} → {head}");
        assert!(closed, "nothing after the bad request is read as a request");
    }
    canary(&proxy).await;
    assert_eq!(up.hits(), 1, "only the canary reached the upstream");
    assert_eq!(up.last().uri, "/canary");
}

#[tokio::test]
async fn obfuscated_transfer_encoding_is_rejected_and_never_forwarded() {
    let up = Upstream::named("up").await;
    let proxy = proxy_for(up.addr, "HTTP").await;
    for te in [
        "Transfer-Encoding: chunked, identity",
        "Transfer-Encoding : chunked",
        "Transfer-Encoding: xchunked",
        "Transfer-Encoding:\tchunked\r\nTransfer-Encoding: identity",
    ] {
        let raw = format!("POST / HTTP/1.1\r\nHost: a.test\r\n{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        let (head, closed) = raw_exchange(proxy.addr(), raw.as_bytes()).await;
        assert!(
            head.starts_with("HTTP/1.1 400") || head.starts_with("HTTP/1.1 501"),
            "{te:?} → {head}"
        );
        assert!(closed, "{te:?}: the connection closes");
        canary(&proxy).await;
    }
    assert_eq!(up.hits(), 4, "only the canaries reached the upstream");
    assert!(
        up.seen.lock().unwrap().iter().all(|s| s.uri == "/canary"),
        "no obfuscated request was forwarded"
    );
}

/// Trailers from the upstream are not sent to an HTTP/1.1 client, even one
/// that says `TE: trailers`: Envoy's HTTP/1 codec drops proxied trailers
/// unless `Http1ProtocolOptions.enable_trailers` is set (false by default,
/// and Istio does not set it). The body itself arrives whole.
#[tokio::test]
async fn http1_clients_get_the_body_without_the_upstreams_trailers() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n")
                    .await;
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let proxy = proxy_for(up, "HTTP").await;
    let mut s = connect(proxy.addr()).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nTE: trailers\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    let body = read_until(&mut s, "0\r\n\r\n", 1).await;
    assert_eq!(body, "5\r\nhello\r\n0\r\n\r\n");
    assert!(!body.contains("x-checksum"), "{body}");
}

/// A chunked request's trailers are dropped on the way up too (Envoy's
/// HTTP/1 codec, `enable_trailers` false); its body reaches the upstream
/// whole, ending with the last chunk alone.
#[tokio::test]
async fn http1_request_trailers_are_dropped_and_the_body_forwarded() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    let (tx, mut rx) = mpsc::channel::<String>(1);
    tokio::spawn(async move {
        if let Ok((mut s, _)) = l.accept().await {
            // What the upstream received, through the end of the body.
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let text = String::from_utf8_lossy(&got);
                if let Some(end) = text.find("hello\r\n0\r\n")
                    && text[end..].contains("\r\n\r\n")
                {
                    break;
                }
                match timeout(BOUND, s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = tx.send(String::from_utf8_lossy(&got).into_owned()).await;
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
        }
    });
    let proxy = proxy_for(up, "HTTP").await;
    let mut s = connect(proxy.addr()).await;
    s.write_all(b"POST /t HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n5\r\nhello\r\n0\r\nx-checksum: 42\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let got = timeout(BOUND, rx.recv()).await.unwrap().unwrap();
    assert!(got.ends_with("5\r\nhello\r\n0\r\n\r\n"), "{got}");
    assert!(!got.contains("x-checksum"), "{got}");
}
