use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};

use super::*;
use crate::proxy::limits::ConnState;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

type Unanswered = fn(Request<RecvStream>, SendResponse<Bytes>) -> std::future::Ready<()>;

/// Streams are dropped unanswered.
fn unanswered(_: Request<RecvStream>, _: SendResponse<Bytes>) -> std::future::Ready<()> {
    std::future::ready(())
}

/// A served connection whose client has sent its preface and SETTINGS
/// and will answer nothing.
async fn served(
    keepalive: impl FnOnce(&mut Connection<Corked<DuplexStream>, Bytes>) -> Option<KeepAlive>,
) -> (
    Served<DuplexStream, std::future::Ready<()>, Unanswered>,
    DuplexStream,
) {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    client.write_all(&hello).await.unwrap();
    let (server, cork) = super::super::cork::cork(server);
    let mut conn = h2::server::Builder::new()
        .handshake::<_, Bytes>(server)
        .await
        .expect("handshake");
    let keepalive = keepalive(&mut conn);
    let served = Served::new(conn, cork, keepalive, unanswered as Unanswered);
    (served, client)
}

/// The frame types in what the server wrote.
fn frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

#[tokio::test]
async fn an_unanswered_keepalive_ping_closes_the_connection_with_goaway() {
    let (served, mut client) = served(|conn| {
        let pings = conn.ping_pong()?;
        let state = Arc::new(ConnState::default());
        let (interval, timeout) = (Duration::from_millis(20), Duration::from_millis(50));
        Some(KeepAlive::new(pings, interval, timeout, state))
    })
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("closed in time");
    assert!(matches!(ended, Err(Failed::KeepAliveTimedOut)), "{ended:?}");
    let mut wrote = Vec::new();
    let _ = client.read_to_end(&mut wrote).await;
    let types = frame_types(&wrote);
    let (ping, goaway) = (0x6, 0x7);
    let at = |t| types.iter().position(|x| *x == t);
    assert!(at(ping) < at(goaway) && at(ping).is_some(), "{types:?}");
}

#[tokio::test]
async fn a_client_that_closes_ends_the_connection() {
    let (served, client) = served(|_| None).await;
    drop(client);
    let ended = tokio::time::timeout(Duration::from_secs(5), served).await;
    assert!(ended.is_ok(), "the connection ended");
}

/// A socket that counts the writes made on it.
struct CountWrites {
    inner: DuplexStream,
    writes: Arc<AtomicUsize>,
}

impl AsyncRead for CountWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if r.is_ready() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

type Answered = fn(Request<RecvStream>, SendResponse<Bytes>) -> std::future::Ready<()>;

/// Every stream answered at once with a 1,100-byte body (over h2's 256-byte
/// threshold, past which it flushes after each DATA frame).
fn answered(_: Request<RecvStream>, mut respond: SendResponse<Bytes>) -> std::future::Ready<()> {
    let mut body = respond
        .send_response(http::Response::new(()), false)
        .expect("head");
    body.send_data(Bytes::from(vec![b'x'; 1100]), true)
        .expect("body");
    std::future::ready(())
}

#[tokio::test]
async fn responses_finished_in_one_pass_leave_in_one_write() {
    let (server, client) = tokio::io::duplex(1 << 20);
    let writes = Arc::new(AtomicUsize::new(0));
    let server = CountWrites {
        inner: server,
        writes: writes.clone(),
    };
    let (server, cork) = super::super::cork::cork(server);
    let serving = tokio::spawn(async move {
        let conn = h2::server::Builder::new()
            .handshake::<_, Bytes>(server)
            .await
            .expect("handshake");
        Served::new(conn, cork, None, answered as Answered).await
    });
    let (mut sender, connection) = h2::client::handshake(client).await.expect("client");
    let driving = tokio::spawn(connection);
    // Settle the SETTINGS exchange first.
    sender = sender.ready().await.expect("ready");
    let (first, _) = sender
        .send_request(http::Request::get("http://a/").body(()).unwrap(), true)
        .expect("send");
    first.await.expect("first response");
    let before = writes.load(Ordering::Relaxed);
    // Ten requests queued before the client's task runs go out together.
    let mut pending = Vec::new();
    for _ in 0..10 {
        let request = http::Request::get("http://a/").body(()).unwrap();
        pending.push(sender.send_request(request, true).expect("send").0);
    }
    for response in pending {
        let mut body = response.await.expect("response").into_body();
        let mut got = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("data");
            got += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        assert_eq!(got, 1100);
    }
    let made = writes.load(Ordering::Relaxed) - before;
    // Uncorked, h2 writes once per response (ten or more).
    assert!(made <= 2, "{made} writes for ten responses");
    drop(sender);
    driving.abort();
    serving.abort();
}
