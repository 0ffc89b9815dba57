use super::*;
use std::future::poll_fn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A socket that counts its writes.
struct Counting {
    writes: usize,
    bytes: Vec<u8>,
    /// Bytes it takes before it is full (Pending).
    room: usize,
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.room == 0 {
            return Poll::Pending;
        }
        let n = buf.len().min(self.room);
        self.writes += 1;
        self.room -= n;
        self.bytes.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn counting(room: usize) -> Counting {
    Counting {
        writes: 0,
        bytes: Vec::new(),
        room,
    }
}

#[tokio::test]
async fn corked_flushes_are_one_write_at_the_end_of_the_pass() {
    let (mut io, cork) = cork(counting(usize::MAX));
    cork.set();
    for i in 0..10u8 {
        io.write_all(&[i; 1100]).await.unwrap();
        io.flush().await.unwrap();
    }
    assert_eq!(lock(&cork.shared).io.writes, 0, "nothing written mid-pass");
    poll_fn(|cx| cork.poll_flush(cx)).await.unwrap();
    let held = lock(&cork.shared);
    assert_eq!(held.io.writes, 1);
    assert_eq!(held.io.bytes.len(), 11_000);
    assert_eq!(&held.io.bytes[1100..1103], &[1, 1, 1], "in order");
}

#[tokio::test]
async fn the_buffer_is_kept_across_passes_and_released_when_idle() {
    let (mut io, cork) = cork(counting(usize::MAX));
    cork.set();
    io.write_all(&[1; 1100]).await.unwrap();
    poll_fn(|cx| cork.poll_flush(cx)).await.unwrap();
    let kept = lock(&cork.shared).out.capacity();
    assert!(kept >= FIRST, "{kept}");
    io.write_all(&[2; 1100]).await.unwrap();
    assert_eq!(lock(&cork.shared).out.capacity(), kept, "no new allocation");
    poll_fn(|cx| cork.poll_flush(cx)).await.unwrap();
    cork.release();
    assert_eq!(lock(&cork.shared).out.capacity(), 0);
}

#[tokio::test]
async fn uncorked_writes_go_through() {
    let (mut io, cork) = cork(counting(usize::MAX));
    io.write_all(b"SETTINGS").await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(lock(&cork.shared).io.bytes, b"SETTINGS");
}

#[tokio::test]
async fn a_full_socket_stops_writes_past_the_high_mark() {
    let (mut io, cork) = cork(counting(1000));
    cork.set();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let chunk = [7u8; 16 * 1024];
    let mut taken = 0;
    loop {
        match Pin::new(&mut io).poll_write(&mut cx, &chunk) {
            Poll::Ready(Ok(n)) => taken += n,
            Poll::Pending => break,
            Poll::Ready(Err(e)) => panic!("{e}"),
        }
        assert!(taken <= HIGH + chunk.len(), "bounded");
    }
    assert!(taken >= HIGH, "held up to the mark: {taken}");
    assert_eq!(
        lock(&cork.shared).io.bytes.len(),
        1000,
        "the socket took its room"
    );
    assert!(cork.poll_flush(&mut cx).is_pending());
}

#[tokio::test]
async fn shutdown_writes_what_is_held_first() {
    let (client, server) = tokio::io::duplex(1 << 20);
    let (mut io, cork) = cork(server);
    cork.set();
    io.write_all(b"GOAWAY").await.unwrap();
    io.flush().await.unwrap();
    io.shutdown().await.unwrap();
    drop((io, cork));
    let mut got = Vec::new();
    let mut client = client;
    client.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"GOAWAY");
}
