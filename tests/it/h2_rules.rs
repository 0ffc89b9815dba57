//! Downstream HTTP/2 rules a client can see, pinned on both servers (issue
//! #15, before the codec server became the default), each with its source:
//! Envoy's `max_headers_count` on HTTP/2, RFC 9113 §8.1.1's content-length
//! rule, §6.8's graceful GOAWAY, flow control with a slow upstream, frames
//! for a stream already reset; and, on the codec server, Envoy's
//! premature-reset rule.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use strait::proxy::DownstreamLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use crate::support::*;

const BOUND: Duration = Duration::from_secs(10);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn config(up: SocketAddr) -> String {
    service_entry("a.test", 80, "HTTP", &[(up, &[])])
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a.test]\n  http:\n  - route: [{destination: {host: a.test}}]\n"
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A frame: (type, flags, stream, payload).
type Frame = (u8, u8, u32, Vec<u8>);

/// The next frame; `None` once closed (or nothing within `BOUND`).
async fn next_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    timeout(BOUND, s.read_exact(&mut head)).await.ok()?.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    timeout(BOUND, s.read_exact(&mut payload))
        .await
        .ok()?
        .ok()?;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    Some((head[3], head[4], stream, payload))
}

/// The next frame that is not the handshake's, SETTINGS answered and
/// PINGs other than the server's own answered too (`pings`: whether to
/// answer a server PING).
async fn next_app_frame(s: &mut TcpStream, pings: bool) -> Option<Frame> {
    loop {
        let f = next_frame(s).await?;
        match f {
            (SETTINGS, flags, ..) if flags & ACK == 0 => {
                s.write_all(&frame(SETTINGS, ACK, 0, &[])).await.ok()?;
            }
            (SETTINGS, ..) | (WINDOW_UPDATE, ..) => {}
            (PING, 0, _, ref p) if pings => {
                s.write_all(&frame(PING, ACK, 0, p)).await.ok()?;
            }
            f => return Some(f),
        }
    }
}

async fn raw_h2(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    s.write_all(&hello).await.unwrap();
    s
}

/// A request head for `a.test`: `method` and `/`, then `extra` literal
/// fields `x-h<i>: v` (HPACK literals without indexing, new names).
fn block(method: &str, extra: usize) -> Vec<u8> {
    let mut b = match method {
        "GET" => vec![0x82],
        _ => vec![0x83], // POST
    };
    b.extend([0x86, 0x84, 0x01, 6]); // http, /, :authority
    b.extend_from_slice(b"a.test");
    for i in 0..extra {
        let name = format!("x-h{i}");
        b.push(0x00);
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.extend([1, b'v']);
    }
    b
}

/// A response head's `:status`, decoded with the connection's HPACK
/// decoder (h2 indexes a repeated 431 in its dynamic table).
fn status(decoder: &mut strait::http2::hpack::Decoder, head: &[u8]) -> Option<u16> {
    let mut fields = strait::http2::hpack::Fields::new(Default::default());
    decoder.decode(head, &mut fields).ok()?;
    let value = fields.iter().find(|(n, _)| *n == b":status")?.1;
    std::str::from_utf8(value).ok()?.parse().ok()
}

both_http2_servers!(more_fields_than_max_request_headers_get_431_and_are_never_forwarded);
/// Envoy's `max_headers_count` applies to HTTP/2 (`http2/codec_impl.cc`,
/// `saveHeader`: the header map's size, pseudo-headers included, over
/// the count refuses the request; Envoy then resets the stream, where
/// strait answers 431 as for a list over `max_request_headers_kb`). A
/// request still open after the 431 is reset NO_ERROR (Envoy's
/// `doEndStream`, RFC 9113 §8.1); nothing reaches the upstream.
async fn more_fields_than_max_request_headers_get_431_and_are_never_forwarded() {
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        max_request_headers: 10,
        ..DownstreamLimits::default()
    };
    let proxy = Proxy::start_with_limits(&config(up.addr), limits).await;
    let mut s = raw_h2(proxy.addr()).await;
    let mut out = Vec::new();
    // Four pseudo-headers and six fields: at the count.
    out.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &block("GET", 6),
    ));
    // And seven: over it, with and without a body to come.
    out.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &block("GET", 7),
    ));
    out.extend(frame(HEADERS, END_HEADERS, 5, &block("POST", 7)));
    s.write_all(&out).await.unwrap();
    let mut hpack = strait::http2::hpack::Decoder::new(4096);
    let mut heads = std::collections::BTreeMap::new();
    let mut resets = Vec::new();
    let mut ended = std::collections::BTreeSet::new();
    while ended.len() < 3 {
        let (kind, flags, stream, payload) = next_app_frame(&mut s, true)
            .await
            .expect("answers on all three");
        match kind {
            HEADERS => {
                heads.insert(stream, status(&mut hpack, &payload));
            }
            RST_STREAM => {
                resets.push((stream, u32::from_be_bytes(payload[..4].try_into().unwrap())));
                ended.insert(stream);
            }
            GOAWAY => panic!("the connection survives"),
            _ => {}
        }
        if flags & END_STREAM != 0 && kind != RST_STREAM && stream != 5 {
            ended.insert(stream);
        }
    }
    assert_eq!(heads.get(&1), Some(&Some(200)), "at the count: served");
    assert_eq!(heads.get(&3), Some(&Some(431)));
    assert_eq!(heads.get(&5), Some(&Some(431)));
    assert_eq!(resets, vec![(5, 0)], "only the open request, NO_ERROR");
    drop(s);
    assert_eq!(up.hits(), 1, "the refused requests never arrived");
}

/// An upstream that answers with the body it received (and records it).
async fn echo() -> Upstream {
    Upstream::start(
        "echo",
        Arc::new(|seen: Seen| Box::pin(async move { Response::new(Full::new(seen.body)) })),
    )
    .await
}

both_http2_servers!(a_body_that_disagrees_with_content_length_is_never_forwarded_as_complete);
/// RFC 9113 §8.1.1: a request whose DATA adds up to more or less than its
/// `content-length` is malformed, a stream error PROTOCOL_ERROR (h2's
/// rule, and the codec server's); the request is not forwarded as
/// complete (the upstream never gets a whole body), whether the stream
/// ends with DATA or with trailers, and the connection goes on.
async fn a_body_that_disagrees_with_content_length_is_never_forwarded_as_complete() {
    let up = echo().await;
    let proxy = Proxy::start_with_limits(&config(up.addr), DownstreamLimits::default()).await;
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(conn);
    for (announced, sent, trailers) in [(10usize, 3usize, false), (10, 3, true), (3, 10, false)] {
        let req = Request::post("http://a.test/cl")
            .header("content-length", announced)
            .body(())
            .unwrap();
        let (resp, mut stream) = client.send_request(req, false).expect("request sent");
        stream
            .send_data(Bytes::from(vec![b'x'; sent]), !trailers)
            .expect("data sent");
        if trailers {
            let mut t = http::HeaderMap::new();
            t.insert("x-t", http::HeaderValue::from_static("1"));
            stream.send_trailers(t).expect("trailers sent");
        }
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
    // The connection still serves a body that agrees.
    let req = Request::post("http://a.test/ok")
        .header("content-length", 3)
        .body(())
        .unwrap();
    let (resp, mut stream) = client.send_request(req, false).expect("request sent");
    stream.send_data(Bytes::from_static(b"xyz"), true).unwrap();
    let resp = timeout(BOUND, resp).await.unwrap().expect("served");
    assert_eq!(resp.status(), 200);
    for seen in up.all() {
        assert!(
            seen.uri.ends_with("/ok") || seen.body.len() < 3,
            "a malformed request arrived whole: {} {:?}",
            seen.uri,
            seen.body
        );
    }
}

/// An upstream that answers 200 `done` for each permit `release` is
/// given, telling `arrived` when a request is in.
async fn held() -> (
    Upstream,
    Arc<tokio::sync::Notify>,
    Arc<tokio::sync::Semaphore>,
) {
    let arrived = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (a, r) = (arrived.clone(), release.clone());
    let up = Upstream::start(
        "held",
        Arc::new(move |_| {
            let (a, r) = (a.clone(), r.clone());
            Box::pin(async move {
                a.notify_one();
                r.acquire().await.expect("open").forget();
                Response::new(Full::new(Bytes::from_static(b"done")))
            })
        }),
    )
    .await;
    (up, arrived, release)
}

fn goaway_last_stream(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff
}

both_http2_servers!(
    a_drain_says_goaway_twice_with_a_ping_between_and_serves_streams_opened_meanwhile
);
/// RFC 9113 §6.8: "A server that is attempting to gracefully shut down a
/// connection SHOULD send an initial GOAWAY frame with the last stream
/// identifier set to 2^31-1 and a NO_ERROR code ... After allowing time for
/// any in-flight stream creation (at least one round-trip time), the server
/// can send another GOAWAY frame with an updated last stream identifier."
/// The `h2` crate waits that round trip with a PING; Envoy sends the same
/// first GOAWAY (`shutdownNotice`) and the final one at its
/// `drain_timeout`. A stream opened between the two is served.
async fn a_drain_says_goaway_twice_with_a_ping_between_and_serves_streams_opened_meanwhile() {
    let (up, arrived, release) = held().await;
    let proxy = Proxy::start_with_limits(&config(up.addr), DownstreamLimits::default()).await;
    let mut s = raw_h2(proxy.addr()).await;
    s.write_all(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        &block("GET", 0),
    ))
    .await
    .unwrap();
    timeout(BOUND, arrived.notified())
        .await
        .expect("the request reached the upstream");
    proxy.running.shutdown();
    let (kind, _, _, payload) = next_app_frame(&mut s, false)
        .await
        .expect("the first GOAWAY");
    assert_eq!(kind, GOAWAY);
    assert_eq!(goaway_last_stream(&payload), (1 << 31) - 1);
    assert_eq!(&payload[4..8], &[0, 0, 0, 0], "NO_ERROR");
    let (kind, flags, _, ping) = next_app_frame(&mut s, false).await.expect("a PING");
    assert_eq!((kind, flags), (PING, 0));
    // A stream the client opened before it read the GOAWAY, then the ACK.
    s.write_all(&frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &block("GET", 0),
    ))
    .await
    .unwrap();
    timeout(BOUND, arrived.notified())
        .await
        .expect("stream 3 reached the upstream");
    s.write_all(&frame(PING, ACK, 0, &ping)).await.unwrap();
    let (kind, _, _, payload) = next_app_frame(&mut s, true)
        .await
        .expect("the final GOAWAY");
    assert_eq!(kind, GOAWAY);
    assert_eq!(goaway_last_stream(&payload), 3);
    release.add_permits(2);
    let mut done = std::collections::BTreeSet::new();
    while let Some((kind, flags, stream, _)) = next_app_frame(&mut s, true).await {
        if kind == DATA && flags & END_STREAM != 0 {
            done.insert(stream);
        }
    }
    assert_eq!(
        done,
        [1, 3].into(),
        "both streams answered before the close"
    );
}

/// An HTTP/1.1 upstream that reads nothing until `go`, then reads one
/// request with a `content-length` body and answers with the byte count
/// and a checksum of the body.
async fn paused_counter(go: Arc<tokio::sync::Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        go.notified().await;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let head_end = loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the request head");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("a content-length");
        let (mut count, mut sum) = (0usize, 0u64);
        let take = |bytes: &[u8], count: &mut usize, sum: &mut u64| {
            for &b in bytes {
                *sum = sum.wrapping_mul(31).wrapping_add(u64::from(b));
            }
            *count += bytes.len();
        };
        take(&buf[head_end..], &mut count, &mut sum);
        while count < length {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the whole body");
            take(&chunk[..n], &mut count, &mut sum);
        }
        let body = format!("{count} {sum}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        let _ = s.read(&mut chunk).await;
    });
    addr
}

both_http2_servers!(a_large_upload_to_a_stalled_upstream_is_held_back_then_completes);
/// Flow control with a slow upstream (RFC 9113 §5.2, the windows given back
/// only as the body is forwarded, Envoy's `per_connection_buffer_limit_bytes`
/// and 64 KiB stream window): while the upstream reads nothing the client
/// runs out of window well before its 16 MiB are sent; once the upstream
/// reads, the upload completes, every byte in order.
async fn a_large_upload_to_a_stalled_upstream_is_held_back_then_completes() {
    const TOTAL: usize = 16 * 1024 * 1024;
    const CHUNK: usize = 16 * 1024;
    let go = Arc::new(tokio::sync::Notify::new());
    let up = paused_counter(go.clone()).await;
    let proxy = Proxy::start_with_limits(&config(up), DownstreamLimits::default()).await;
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.expect("handshake");
    tokio::spawn(conn);
    let req = Request::post("http://a.test/upload")
        .header("content-length", TOTAL)
        .body(())
        .unwrap();
    let (resp, mut stream) = client.send_request(req, false).expect("request sent");
    let body: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
    let (mut sent, mut held_at) = (0usize, None);
    while sent < TOTAL {
        stream.reserve_capacity(CHUNK.min(TOTAL - sent));
        let wait = std::future::poll_fn(|cx| stream.poll_capacity(cx));
        // No window for a while: held back. The upstream may read now.
        let cap = match (held_at, timeout(Duration::from_millis(300), wait).await) {
            (_, Ok(cap)) => cap,
            (None, Err(_)) => {
                held_at = Some(sent);
                go.notify_one();
                continue;
            }
            (Some(_), Err(_)) => continue,
        };
        let n = cap.expect("capacity").expect("capacity").min(TOTAL - sent);
        let data = Bytes::copy_from_slice(&body[sent..sent + n]);
        sent += n;
        stream.send_data(data, sent == TOTAL).expect("data sent");
    }
    let held_at = held_at.expect("the client was held back before the end");
    assert!(held_at < TOTAL, "held back at {held_at}");
    let resp = timeout(BOUND, resp).await.unwrap().expect("answered");
    assert_eq!(resp.status(), 200);
    let mut recv = resp.into_body();
    let mut got = Vec::new();
    while let Some(d) = timeout(BOUND, recv.data()).await.unwrap() {
        got.extend_from_slice(&d.unwrap());
    }
    let sum = body
        .iter()
        .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
    assert_eq!(String::from_utf8(got).unwrap(), format!("{TOTAL} {sum}"));
}

both_http2_servers!(frames_for_a_stream_the_proxy_reset_are_ignored);
/// RFC 9113 §5.4.2 and §6.4: after this side reset a stream, frames the
/// client sent before it saw the RST_STREAM keep arriving; they are
/// ignored (DATA still counted against the connection window), not a
/// connection error.
async fn frames_for_a_stream_the_proxy_reset_are_ignored() {
    let up = Upstream::named("up").await;
    let proxy = Proxy::start_with_limits(&config(up.addr), DownstreamLimits::default()).await;
    let mut s = raw_h2(proxy.addr()).await;
    // `content-length: 5` with END_STREAM on the head: malformed (§8.1.1),
    // reset PROTOCOL_ERROR.
    let mut head = block("POST", 0);
    head.extend([0x0f, 0x0d, 1, b'5']); // content-length (static 28), literal
    s.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &head))
        .await
        .unwrap();
    let (kind, _, stream, payload) = next_app_frame(&mut s, true).await.expect("the reset");
    assert_eq!((kind, stream), (RST_STREAM, 1));
    assert_eq!(payload, 1u32.to_be_bytes(), "PROTOCOL_ERROR");
    let mut hpack = strait::http2::hpack::Decoder::new(4096);
    let mut late = frame(DATA, 0, 1, &[b'x'; 100]);
    late.extend(frame(WINDOW_UPDATE, 0, 1, &1000u32.to_be_bytes()));
    late.extend(frame(RST_STREAM, 0, 1, &8u32.to_be_bytes()));
    late.extend(frame(DATA, END_STREAM, 1, b""));
    late.extend(frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        3,
        &block("GET", 0),
    ));
    s.write_all(&late).await.unwrap();
    loop {
        let (kind, _, stream, payload) = next_app_frame(&mut s, true).await.expect("stream 3");
        assert_ne!(kind, GOAWAY, "no connection error");
        if kind == HEADERS {
            assert_eq!((stream, status(&mut hpack, &payload)), (3, Some(200)));
            break;
        }
    }
}

/// The bench mesh with every request held by a 30 s fault delay: streams
/// stay unanswered until the client resets them.
fn delayed(up: SocketAddr) -> String {
    service_entry("a.test", 80, "HTTP", &[(up, &[])])
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec:\n  hosts: [a.test]\n  http:\n  - fault: {delay: {fixedDelay: 30s, percentage: {value: 100}}}\n    route: [{destination: {host: a.test}}]\n"
}

/// Envoy's premature-reset rule (`isPrematureRstStream`,
/// `maybeDrainDueToPrematureResets`; runtime keys
/// `overload.premature_reset_total_stream_count` 500 and
/// `overload.premature_reset_min_stream_lifetime_seconds` 1): a client
/// that opens streams and resets them before they are answered, each reset
/// in a later read than its stream's HEADERS (so the per-read Rapid Reset
/// bound does not see them), has its connection closed once 250 streams
/// were reset that way. The codec server only: h2 has no such rule.
#[tokio::test]
async fn codec_closes_a_connection_whose_streams_are_mostly_reset_before_an_answer() {
    let up = Upstream::named("up").await;
    let limits = DownstreamLimits {
        http2_server: strait::proxy::Http2Server::Codec,
        ..DownstreamLimits::default()
    };
    let proxy = Proxy::start_with_limits(&delayed(up.addr), limits).await;
    let mut s = raw_h2(proxy.addr()).await;
    let reset = AtomicUsize::new(0);
    let mut goaway = None;
    'batches: for batch in 0..5u32 {
        let ids: Vec<u32> = (0..100).map(|i| 2 * (batch * 100 + i) + 1).collect();
        let mut out = Vec::new();
        for &id in &ids {
            out.extend(frame(
                HEADERS,
                END_HEADERS | END_STREAM,
                id,
                &block("GET", 0),
            ));
        }
        out.extend(frame(PING, 0, 0, &[1; 8]));
        s.write_all(&out).await.unwrap();
        // The PING's ACK: the HEADERS were read before the resets.
        loop {
            match next_app_frame(&mut s, true).await {
                Some((PING, ACK, ..)) => break,
                Some((GOAWAY, _, _, p)) => {
                    goaway = Some(p);
                    break 'batches;
                }
                Some((HEADERS, _, stream, _)) => panic!("stream {stream} was answered"),
                Some(_) => {}
                None => break 'batches,
            }
        }
        let mut resets = Vec::new();
        for &id in &ids {
            resets.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        }
        if s.write_all(&resets).await.is_err() {
            break;
        }
        reset.fetch_add(ids.len(), Ordering::Relaxed);
    }
    if goaway.is_none() {
        while let Some((kind, _, _, p)) = next_app_frame(&mut s, true).await {
            if kind == GOAWAY {
                goaway = Some(p);
                break;
            }
        }
    }
    let goaway = goaway.expect("a GOAWAY");
    assert_eq!(&goaway[4..8], &11u32.to_be_bytes(), "ENHANCE_YOUR_CALM");
    // The 250th reset is in the third batch of 100.
    assert_eq!(
        reset.load(Ordering::Relaxed),
        300,
        "closed at the 250th reset"
    );
    // The connection closes after it.
    while next_app_frame(&mut s, true).await.is_some() {}
    assert_eq!(up.hits(), 0);
}
