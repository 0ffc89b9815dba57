use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

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
    keepalive: impl FnOnce(&mut Connection<DuplexStream, Bytes>) -> Option<KeepAlive>,
) -> (
    Served<DuplexStream, std::future::Ready<()>, Unanswered>,
    DuplexStream,
) {
    let (server, mut client) = tokio::io::duplex(64 * 1024);
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    client.write_all(&hello).await.unwrap();
    let mut conn = h2::server::Builder::new()
        .handshake::<_, Bytes>(server)
        .await
        .expect("handshake");
    let keepalive = keepalive(&mut conn);
    let served = Served::new(conn, keepalive, unanswered as Unanswered);
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
