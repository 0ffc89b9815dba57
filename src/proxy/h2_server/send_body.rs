//! A response body streamed into its HTTP/2 stream with back-pressure, as
//! hyper's `PipeToSendStream` (`proto/h2/mod.rs`) does it: a chunk is taken
//! from the body only once the one before found send capacity (so the
//! stream buffers at most `max_send_buffer_size` beyond the chunk in hand),
//! the last DATA frame carries
//! END_STREAM, trailers end the stream, a client RST_STREAM drops the body,
//! and a body error resets the stream with the error's HTTP/2 reason.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::SendStream;
use http_body::Body as _;

use crate::proxy::body::Body;

pub(super) struct SendBody {
    tx: SendStream<Bytes>,
    body: Body,
    /// A chunk taken from the body, waiting for send capacity, and whether
    /// it is the last.
    waiting: Option<(Bytes, bool)>,
}

impl SendBody {
    pub(super) fn new(tx: SendStream<Bytes>, body: Body) -> SendBody {
        SendBody {
            tx,
            body,
            waiting: None,
        }
    }

    /// Ready when the body is sent, or will never be (reset, failed).
    pub(super) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // Registered while waiting for the body or for capacity, so a
            // client RST_STREAM wakes the stream and drops the body.
            if self.tx.poll_reset(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some((data, end)) = self.waiting.take() {
                while self.tx.capacity() == 0 {
                    match self.tx.poll_capacity(cx) {
                        Poll::Pending => {
                            self.waiting = Some((data, end));
                            return Poll::Pending;
                        }
                        Poll::Ready(Some(Ok(0))) => {}
                        Poll::Ready(Some(Ok(_))) => break,
                        // No longer streaming (reset, connection gone).
                        Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                    }
                }
                if self.tx.send_data(data, end).is_err() || end {
                    return Poll::Ready(());
                }
                continue;
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let end = self.body.is_end_stream();
                        if data.is_empty() || end {
                            // An empty chunk needs no capacity, and the last
                            // one need not wait for it: nothing follows to
                            // hold back, and h2 sends it as the window opens.
                            if self.tx.send_data(data, end).is_err() || end {
                                return Poll::Ready(());
                            }
                            continue;
                        }
                        // A claim of one byte, not the chunk (hyper#4003):
                        // h2 raises it to what is buffered in `send_data`.
                        self.tx.reserve_capacity(1);
                        self.waiting = Some((data, end));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.tx.reserve_capacity(0);
                            let _ = self.tx.send_trailers(trailers);
                            return Poll::Ready(());
                        }
                    }
                },
                Some(Err(e)) => {
                    self.tx.send_reset(reason(e.as_ref()));
                    return Poll::Ready(());
                }
                None => {
                    let _ = self.tx.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The RST_STREAM code for a failed body: the first HTTP/2 reason in its
/// error chain (an upstream stream's reset passed on), else INTERNAL_ERROR,
/// as hyper's `Error::h2_reason`.
pub(super) fn reason(e: &(dyn std::error::Error + 'static)) -> h2::Reason {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(reason) = err.downcast_ref::<h2::Error>().and_then(h2::Error::reason) {
            return reason;
        }
        cur = err.source();
    }
    h2::Reason::INTERNAL_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapped(h2::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_reset_reason_is_found_in_the_error_chain() {
        let calm = h2::Error::from(h2::Reason::ENHANCE_YOUR_CALM);
        assert_eq!(reason(&calm), h2::Reason::ENHANCE_YOUR_CALM);
        let nested = Wrapped(h2::Error::from(h2::Reason::CANCEL));
        assert_eq!(reason(&nested), h2::Reason::CANCEL);
        let io = std::io::Error::other("broken");
        assert_eq!(reason(&io), h2::Reason::INTERNAL_ERROR);
    }
}
