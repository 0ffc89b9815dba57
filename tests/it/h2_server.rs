//! strait's own HTTP/2 server (`proxy::h2_server`, issue #15) as a client
//! sees it: the SETTINGS it sends carry the downstream limits, bodies larger
//! than the flow-control windows stream both ways, streams of one
//! connection are served at once, a client RST_STREAM cancels the request
//! upstream, DATA that disagrees with `content-length` resets the stream
//! (h2's rule, as under hyper), and the keep-alive PING.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use strait::proxy::DownstreamLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use crate::support::*;

/// Generous bound on any single network wait (a hang fails, it never stalls CI).
const BOUND: Duration = Duration::from_secs(10);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const ACK: u8 = 0x1;

fn config(up: SocketAddr) -> String {
    service_entry("a.test", 80, "HTTP", &[(up, &[])])
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a.test]\n  http:\n  - route: [{destination: {host: a.test}}]\n"
}

async fn proxy_with(up: SocketAddr, limits: DownstreamLimits) -> Proxy {
    Proxy::start_with_limits(&config(up), limits).await
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The next frame as (type, flags, payload); `None` once closed.
async fn next_frame(s: &mut TcpStream) -> Option<(u8, u8, Vec<u8>)> {
    let mut head = [0u8; 9];
    timeout(BOUND, s.read_exact(&mut head)).await.ok()?.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    timeout(BOUND, s.read_exact(&mut payload))
        .await
        .ok()?
        .ok()?;
    Some((head[3], head[4], payload))
}

/// A raw connection past the preface and an empty SETTINGS frame.
async fn raw_h2(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    s
}

/// An h2c connection through hyper's client (flow control handled).
async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    sender
}

fn post(path: &str, body: Bytes) -> Request<Full<Bytes>> {
    Request::post(format!("http://a.test{path}"))
        .version(http::Version::HTTP_2)
        .body(Full::new(body))
        .unwrap()
}

both_http2_servers!(the_settings_carry_the_downstream_limits);
async fn the_settings_carry_the_downstream_limits() {
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        max_concurrent_streams: 7,
        http2_stream_window_kb: 128,
        buffer_limit_kb: 2048,
        http2_max_frame_size: 32 * 1024,
        max_request_headers_kb: 16,
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let mut s = raw_h2(proxy.addr()).await;
    let mut settings = Vec::new();
    let mut conn_window = None;
    while settings.is_empty() || conn_window.is_none() {
        let (kind, flags, payload) = next_frame(&mut s).await.expect("server frames");
        if kind == SETTINGS && flags & ACK == 0 {
            settings = payload
                .chunks_exact(6)
                .map(|c| {
                    let id = u16::from_be_bytes([c[0], c[1]]);
                    (id, u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
                })
                .collect();
        } else if kind == WINDOW_UPDATE {
            let inc = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            conn_window = Some(65_535 + inc);
        }
    }
    let get = |id: u16| settings.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    assert_eq!(get(0x3), Some(7), "MAX_CONCURRENT_STREAMS: {settings:?}");
    assert_eq!(get(0x4), Some(128 * 1024), "INITIAL_WINDOW_SIZE");
    assert_eq!(get(0x5), Some(32 * 1024), "MAX_FRAME_SIZE");
    assert_eq!(get(0x6), Some(16 * 1024), "MAX_HEADER_LIST_SIZE");
    assert_eq!(conn_window, Some(2048 * 1024), "the connection window");
}

both_http2_servers!(bodies_larger_than_the_windows_stream_both_ways);
async fn bodies_larger_than_the_windows_stream_both_ways() {
    let up = Upstream::start(
        "echo",
        Arc::new(|seen: Seen| Box::pin(async move { Response::new(Full::new(seen.body)) })),
    )
    .await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    // Four times the 1 MiB connection window, 64 times the stream window.
    let body: Bytes = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let mut sender = h2c(proxy.addr()).await;
    let resp = timeout(BOUND, sender.send_request(post("/echo", body.clone())))
        .await
        .expect("answered in time")
        .expect("answered");
    assert_eq!(resp.status(), 200);
    let got = timeout(BOUND, resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "the echoed body differs");
}

both_http2_servers!(streams_of_one_connection_are_served_at_once);
async fn streams_of_one_connection_are_served_at_once() {
    // The upstream answers only once all N requests are in flight together.
    const N: usize = 20;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let up = Upstream::start(
        "barrier",
        Arc::new(move |_| {
            let b = barrier.clone();
            Box::pin(async move {
                b.wait().await;
                Response::new(Full::new(Bytes::from_static(b"ok")))
            })
        }),
    )
    .await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    let sender = h2c(proxy.addr()).await;
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..N {
        let mut s = sender.clone();
        calls.spawn(async move { s.send_request(post(&format!("/{i}"), Bytes::new())).await });
    }
    for _ in 0..N {
        let r = timeout(BOUND, calls.join_next())
            .await
            .expect("every stream answered in time")
            .unwrap()
            .unwrap()
            .expect("answered");
        assert_eq!(r.status(), 200);
    }
}

both_http2_servers!(a_client_reset_cancels_the_request_upstream);
async fn a_client_reset_cancels_the_request_upstream() {
    // A raw HTTP/1.1 upstream that never answers: it reports the request's
    // arrival and then the proxy closing its connection.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let (arrived_tx, arrived) = tokio::sync::oneshot::channel();
    let (gone_tx, gone) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = arrived_tx.send(());
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        let _ = gone_tx.send(());
    });
    let proxy = proxy_with(up, DownstreamLimits::default()).await;
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(conn);
    let req = Request::get("http://a.test/hang").body(()).unwrap();
    let (_resp, mut stream) = client.send_request(req, true).expect("request sent");
    timeout(BOUND, arrived)
        .await
        .expect("the request reached the upstream")
        .unwrap();
    stream.send_reset(h2::Reason::CANCEL);
    timeout(BOUND, gone)
        .await
        .expect("the reset request's upstream connection is closed")
        .unwrap();
}

both_http2_servers!(data_longer_than_content_length_resets_the_stream_with_protocol_error);
async fn data_longer_than_content_length_resets_the_stream_with_protocol_error() {
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(conn);
    for (announced, sent) in [(3usize, 10usize), (10, 3)] {
        let req = Request::post("http://a.test/cl")
            .header("content-length", announced)
            .body(())
            .unwrap();
        let (resp, mut stream) = client.send_request(req, false).expect("request sent");
        stream
            .send_data(Bytes::from(vec![b'x'; sent]), true)
            .expect("data sent");
        let err = timeout(BOUND, resp)
            .await
            .expect("an answer in time")
            .expect_err("the stream is reset");
        assert_eq!(
            err.reason(),
            Some(h2::Reason::PROTOCOL_ERROR),
            "{announced} announced, {sent} sent: {err}"
        );
    }
}

both_http2_servers!(an_idle_connection_is_pinged_at_the_keepalive_interval);
async fn an_idle_connection_is_pinged_at_the_keepalive_interval() {
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        http2_keepalive_interval: Some(Duration::from_millis(100)),
        ..DownstreamLimits::default()
    };
    let proxy = proxy_with(up.addr, limits).await;
    let mut s = raw_h2(proxy.addr()).await;
    // Two PINGs in a row, each answered: the connection stays open.
    for _ in 0..2 {
        loop {
            let (kind, flags, payload) = next_frame(&mut s).await.expect("a PING, not a close");
            if kind == SETTINGS && flags & ACK == 0 {
                s.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
            } else if kind == PING && flags & ACK == 0 {
                s.write_all(&frame(PING, ACK, 0, &payload)).await.unwrap();
                break;
            }
        }
    }
}

both_http2_servers!(without_a_keepalive_interval_no_ping_is_sent);
async fn without_a_keepalive_interval_no_ping_is_sent() {
    let up = Upstream::named("up").await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    let mut s = raw_h2(proxy.addr()).await;
    let mut quiet = async || {
        while let Some((kind, flags, _)) = next_frame(&mut s).await {
            assert!(kind != PING || flags & ACK != 0, "an unexpected PING");
        }
    };
    // Nothing but the handshake's frames within a while.
    let _ = timeout(Duration::from_millis(300), quiet()).await;
}

/// `GET /` for `a.test` from HPACK's static table and one literal.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 6]; // GET, http, /, :authority
    b.extend_from_slice(b"a.test");
    b
}

both_http2_servers!(a_drain_sends_goaway_and_lets_the_stream_in_flight_finish);
async fn a_drain_sends_goaway_and_lets_the_stream_in_flight_finish() {
    const HEADERS: u8 = 0x1;
    const DATA: u8 = 0x0;
    const GOAWAY: u8 = 0x7;
    const END_STREAM: u8 = 0x1;
    let (arrived, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let (a, r) = (arrived.clone(), release.clone());
    let up = Upstream::start(
        "held",
        Arc::new(move |_| {
            let (a, r) = (a.clone(), r.clone());
            Box::pin(async move {
                a.notify_one();
                r.notified().await;
                Response::new(Full::new(Bytes::from_static(b"done")))
            })
        }),
    )
    .await;
    let proxy = proxy_with(up.addr, DownstreamLimits::default()).await;
    let mut s = raw_h2(proxy.addr()).await;
    s.write_all(&frame(HEADERS, 0x4 | END_STREAM, 1, &get_block()))
        .await
        .unwrap();
    timeout(BOUND, arrived.notified())
        .await
        .expect("the request reached the upstream");
    proxy.running.shutdown();
    loop {
        let (kind, flags, payload) = next_frame(&mut s).await.expect("GOAWAY before close");
        assert!(kind != HEADERS, "no response before the upstream answers");
        if kind == SETTINGS && flags & ACK == 0 {
            s.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
        } else if kind == PING && flags & ACK == 0 {
            s.write_all(&frame(PING, ACK, 0, &payload)).await.unwrap();
        } else if kind == GOAWAY {
            break;
        }
    }
    release.notify_one();
    // The stream still gets its whole response, then the connection closes.
    let (mut status, mut body) = (false, Vec::new());
    while let Some((kind, flags, payload)) = next_frame(&mut s).await {
        match kind {
            HEADERS => status = payload.first() == Some(&0x88), // :status 200
            DATA => {
                body.extend_from_slice(&payload);
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            PING if flags & ACK == 0 => {
                s.write_all(&frame(PING, ACK, 0, &payload)).await.unwrap();
            }
            _ => {}
        }
    }
    assert!(status, "a 200 response head");
    assert_eq!(body, b"done");
    let mut rest = Vec::new();
    let closed = timeout(BOUND, async {
        loop {
            match next_frame(&mut s).await {
                None => return,
                Some((PING, 0, p)) => {
                    let _ = s.write_all(&frame(PING, ACK, 0, &p)).await;
                }
                Some((kind, _, _)) => rest.push(kind),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the drained connection closes; frames after: {rest:?}"
    );
}
