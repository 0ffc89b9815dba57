//! A request body read straight from the downstream connection: the body
//! holds the connection's read side while the request path consumes it and
//! hands it back at its end (or when dropped), so the connection task reads
//! the next request from where the body stopped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::Reader;
use crate::http1::chunked::{Chunk, Decoder};

/// Where a finished (or abandoned) body leaves the connection's read side:
/// `complete` when the body was read to its end, so the bytes after it are
/// the next request.
#[derive(Default)]
pub(super) struct Slot(Mutex<Option<(Reader, bool)>>);

impl Slot {
    fn put(&self, reader: Reader, complete: bool) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((reader, complete));
    }

    /// The read side, if the body gave it back.
    pub(super) fn take(&self) -> Option<(Reader, bool)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// How the body is delimited on the wire.
enum Framing {
    /// Bytes left of a Content-Length body.
    Length(u64),
    Chunked(Box<Decoder>),
}

/// A request body on its connection's read side.
pub(super) struct RequestBody {
    reader: Option<Reader>,
    framing: Framing,
    slot: Arc<Slot>,
    /// What is left to send of `100 Continue` (`Expect: 100-continue`):
    /// sent when the body is first read, as hyper's server does, so a
    /// request answered without its body never asks for it.
    continue_left: &'static [u8],
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl RequestBody {
    pub(super) fn length(reader: Reader, n: u64, slot: Arc<Slot>) -> RequestBody {
        RequestBody {
            reader: Some(reader),
            framing: Framing::Length(n),
            slot,
            continue_left: &[],
        }
    }

    pub(super) fn chunked(reader: Reader, decoder: Decoder, slot: Arc<Slot>) -> RequestBody {
        RequestBody {
            reader: Some(reader),
            framing: Framing::Chunked(Box::new(decoder)),
            slot,
            continue_left: &[],
        }
    }

    /// Send `100 Continue` before the body's first byte is read.
    pub(super) fn expect_continue(mut self) -> RequestBody {
        self.continue_left = CONTINUE;
        self
    }

    /// Write what is left of `100 Continue` (the connection task writes
    /// nothing else while the request is being handled).
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(reader) = self.reader.as_ref() else {
            return Poll::Ready(Ok(()));
        };
        let stream = reader.io.as_ref();
        while !self.continue_left.is_empty() {
            std::task::ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(self.continue_left) {
                Ok(n) => self.continue_left = &self.continue_left[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    /// The body ended (`complete`) or failed: the read side goes back.
    fn finish(&mut self, complete: bool) {
        if let Some(r) = self.reader.take() {
            self.slot.put(r, complete);
        }
    }

    fn error(&mut self, kind: std::io::ErrorKind, what: &'static str) -> std::io::Error {
        self.finish(false);
        std::io::Error::new(kind, what)
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // Dropped before its end: what follows is not a request.
        let complete = matches!(self.framing, Framing::Length(0));
        self.finish(complete);
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if !this.continue_left.is_empty()
            && let Err(e) = std::task::ready!(this.poll_continue(cx))
        {
            this.finish(false);
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.framing {
                Framing::Length(0) => {
                    this.finish(true);
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if !reader.buf.is_empty() {
                        let n = (*left).min(reader.buf.len() as u64) as usize;
                        let data = reader.buf.split_to(n).freeze();
                        *left -= n as u64;
                        if *left == 0 {
                            this.finish(true);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Framing::Chunked(decoder) => match decoder.decode(&mut reader.buf) {
                    Ok(Some(Chunk::Data(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    // Trailers are dropped, as Envoy's HTTP/1 codec drops
                    // them unless `Http1ProtocolOptions.enable_trailers`
                    // (off by default, and in Istio).
                    Ok(Some(Chunk::End(_))) => {
                        this.finish(true);
                        return Poll::Ready(None);
                    }
                    // Bad framing: hyper's decoder says `InvalidData`, which
                    // the request path answers 400 DPE.
                    Err(_) => {
                        let e = this.error(std::io::ErrorKind::InvalidData, "invalid chunked body");
                        return Poll::Ready(Some(Err(e)));
                    }
                    Ok(None) => {}
                },
            }
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            match reader.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    let e = this.error(
                        std::io::ErrorKind::UnexpectedEof,
                        "the client closed the connection before the body ended",
                    );
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.finish(false);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reader.is_none() || matches!(self.framing, Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.framing {
            Framing::Length(n) => SizeHint::with_exact(*n),
            Framing::Chunked(_) => SizeHint::default(),
        }
    }
}
