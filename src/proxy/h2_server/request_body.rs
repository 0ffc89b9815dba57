//! A request body read from its HTTP/2 stream, as hyper's `Incoming` reads
//! one (`body/incoming.rs`, `Kind::H2`): flow-control capacity is released
//! as data is handed on, trailers follow the data, and a RST_STREAM with
//! NO_ERROR ends the body early without failing it (RFC 9113 §8.1). h2
//! itself checks DATA against `content-length` (a mismatch resets the
//! stream with PROTOCOL_ERROR), as under hyper.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

pub(super) struct RequestBody {
    /// None: a body that is empty whatever the stream carries (CONNECT).
    recv: Option<h2::RecvStream>,
    data_done: bool,
    /// Bytes `content-length` says are still to come (None: unknown).
    remaining: Option<u64>,
}

impl RequestBody {
    pub(super) fn new(recv: h2::RecvStream, headers: &HeaderMap) -> RequestBody {
        // HEADERS with END_STREAM: no body (h2 has refused a non-zero
        // content-length on it). The stream is let go at once, so the
        // request path's `is_end_stream` questions take no lock of h2's.
        if recv.is_end_stream() {
            return RequestBody::empty();
        }
        let remaining = content_length(headers);
        RequestBody {
            recv: Some(recv),
            data_done: false,
            remaining,
        }
    }

    pub(super) fn empty() -> RequestBody {
        RequestBody {
            recv: None,
            data_done: true,
            remaining: Some(0),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        let Some(recv) = this.recv.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.data_done {
            match ready!(recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = recv.flow_control().release_capacity(data.len());
                    if let Some(r) = this.remaining.as_mut() {
                        *r = r.saturating_sub(data.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(e)) if e.reason() == Some(h2::Reason::NO_ERROR) => {
                    return Poll::Ready(None);
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.data_done = true,
            }
        }
        match ready!(recv.poll_trailers(cx)) {
            Ok(t) => Poll::Ready(t.map(|t| Ok(Frame::trailers(t)))),
            Err(e) if e.reason() == Some(h2::Reason::NO_ERROR) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.as_ref().is_none_or(h2::RecvStream::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// The request's `content-length` as hyper reads it
/// (`headers::content_length_parse_all`): every value, comma-separated
/// lists included, must be the same number; anything else is unknown.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|b| *b == b',') {
            let n = digits(part.trim_ascii())?;
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

/// Decimal digits only (no sign, no spaces), without overflow.
fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |n, d| {
        let d = d.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::CONTENT_LENGTH, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn content_length_is_read_as_hyper_reads_it() {
        assert_eq!(content_length(&headers(&[])), None);
        assert_eq!(content_length(&headers(&["42"])), Some(42));
        assert_eq!(content_length(&headers(&["42", "42"])), Some(42));
        assert_eq!(content_length(&headers(&["42, 42"])), Some(42));
        assert_eq!(content_length(&headers(&["42", "43"])), None);
        assert_eq!(content_length(&headers(&["+42"])), None);
        assert_eq!(content_length(&headers(&[""])), None);
        assert_eq!(content_length(&headers(&["18446744073709551616"])), None);
    }
}
