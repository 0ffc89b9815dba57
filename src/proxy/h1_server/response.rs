//! A response written to the client: the head straight from the response's
//! header list into the connection's output buffer, the body framed as
//! hyper's server frames it (its Content-Length, else a known length, else
//! chunked on HTTP/1.1 and until close on HTTP/1.0), flushed whenever the
//! body has nothing more ready.

use std::cell::RefCell;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use http::header::HeaderValue;
use http_body::Body as HttpBody;
use http_body_util::BodyExt;

use super::Connection;
use crate::header_list::HeaderList;
use crate::http1::{self as codec, chunked};
use crate::proxy::body::Body;
use crate::proxy::exchange::Reply;

/// Output buffered before it is written even while the body has more
/// ready (bounds what one connection holds).
const FLUSH_AT: usize = 64 * 1024;

/// The output buffer's first allocation: a response head and a small body.
const OUT_SIZE: usize = 4 * 1024;

/// What the response's framing depends on in its request.
pub(super) struct RequestFacts {
    pub(super) version: codec::Version,
    /// A HEAD request: the response has no body on the wire.
    pub(super) head: bool,
    /// The request lets the connection carry another.
    pub(super) keep_alive: bool,
}

/// How the body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304): frames are read and dropped.
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 without a length: the connection's end ends it.
    UntilClose,
}

/// A header line to add: name and value.
type Field<'a> = (&'a [u8], &'a [u8]);

/// How the body goes on the wire, and the header that says so when the
/// response has none (hyper's server rules; `no_body`: HEAD, 1xx, 204, 304).
fn framing<'a>(
    headers: &HeaderList,
    body: &Body,
    req: &RequestFacts,
    no_body: bool,
    digits: &'a mut [u8; 20],
) -> (Framing, Option<Field<'a>>) {
    if no_body {
        (Framing::None, None)
    } else if let Some(n) = content_length(headers) {
        (Framing::Length(n), None)
    } else if headers.contains("transfer-encoding") {
        if req.version == codec::Version::Http11 {
            (Framing::Chunked, None)
        } else {
            // HTTP/1.0 has no chunked coding: the header is dropped.
            (Framing::UntilClose, None)
        }
    } else if let Some(n) = exact_length(body) {
        (
            Framing::Length(n),
            Some((b"content-length", format_u64(digits, n))),
        )
    } else if req.version == codec::Version::Http11 {
        (Framing::Chunked, Some((b"transfer-encoding", b"chunked")))
    } else {
        (Framing::UntilClose, None)
    }
}

/// Write `resp`; whether the connection may carry another request.
pub(super) async fn write(
    c: &mut Connection,
    resp: Reply,
    req: &RequestFacts,
    draining: bool,
) -> bool {
    let Reply {
        status,
        headers,
        mut body,
        ..
    } = resp;
    let status = status.as_u16();
    let headers = &headers;
    let says_close = has_token(headers, b"close");
    let mut keep = req.keep_alive && !draining && !says_close;
    let no_body = req.head || status < 200 || status == 204 || status == 304;
    let mut digits = [0u8; 20];
    let (mut framing, added) = framing(headers, &body, req, no_body, &mut digits);
    let skip_te = framing == Framing::UntilClose && headers.contains("transfer-encoding");
    if framing == Framing::UntilClose {
        keep = false;
    }
    let connection: Option<Field<'_>> = match (keep, req.version) {
        (false, codec::Version::Http11) if !says_close => Some((b"connection", b"close")),
        (true, codec::Version::Http10) => Some((b"connection", b"keep-alive")),
        _ => None,
    };
    let date = (!headers.contains("date")).then(date);
    // One allocation for a head and a small body, instead of growing.
    c.out.reserve(OUT_SIZE);
    codec::write::response_head(
        &mut c.out,
        req.version,
        status,
        b"",
        headers
            .iter()
            .filter(|(n, _)| !(skip_te && *n == b"transfer-encoding"))
            .chain(added)
            .chain(connection)
            .chain(date.as_ref().map(|d| (&b"date"[..], d.as_bytes()))),
    );
    loop {
        let next = match std::future::poll_fn(|cx| {
            Poll::Ready(std::pin::Pin::new(&mut body).poll_frame(cx))
        })
        .await
        {
            Poll::Ready(next) => next,
            Poll::Pending => {
                // Nothing more ready: what is buffered goes out first.
                if c.flush().await.is_err() {
                    return false;
                }
                tokio::select! {
                    next = body.frame() => next,
                    // Dropping the body logs the client's disconnect (DC).
                    () = super::client_gone(&mut c.reader) => return false,
                }
            }
        };
        let frame = match next {
            None => break,
            Some(Ok(frame)) => frame,
            // The upstream failed midway: the client sees the connection
            // end (Envoy resets the stream) after what was sent.
            Some(Err(_)) => {
                let _ = c.flush().await;
                return false;
            }
        };
        // Trailers are dropped, as Envoy's HTTP/1 codec drops proxied
        // trailers unless `Http1ProtocolOptions.enable_trailers` is set (off
        // by default, and in Istio): the body ends with the last chunk alone.
        if let Ok(data) = frame.into_data() {
            match &mut framing {
                Framing::None => {}
                Framing::Chunked => chunked::write_chunk(&mut c.out, &data),
                Framing::UntilClose => c.out.extend_from_slice(&data),
                Framing::Length(left) => {
                    let n = (*left).min(data.len() as u64);
                    c.out.extend_from_slice(&data[..n as usize]);
                    *left -= n;
                    if n < data.len() as u64 {
                        // More than announced: never sent, and nothing
                        // after it can be framed.
                        keep = false;
                    }
                }
            }
        }
        if c.out.len() >= FLUSH_AT && c.flush().await.is_err() {
            return false;
        }
    }
    match framing {
        Framing::Chunked => chunked::write_end(&mut c.out, []),
        // Shorter than announced: the client waits for bytes that will
        // not come unless the connection ends.
        Framing::Length(left) if left > 0 => keep = false,
        _ => {}
    }
    c.flush().await.is_ok() && keep
}

/// A refused request's answer: the status, no body, the connection closed.
pub(super) fn refusal(out: &mut BytesMut, status: u16) {
    let date = date();
    codec::write::response_head(
        out,
        codec::Version::Http11,
        status,
        b"",
        [
            (&b"content-length"[..], &b"0"[..]),
            (b"connection", b"close"),
            (b"date", date.as_bytes()),
        ],
    );
}

/// The body's length when it is known before it is read.
fn exact_length(body: &Body) -> Option<u64> {
    if body.is_end_stream() {
        return Some(0);
    }
    body.size_hint().exact()
}

/// A well-formed Content-Length (one value; the request path never sends
/// two that differ).
fn content_length(headers: &HeaderList) -> Option<u64> {
    let v = headers.get("content-length")?;
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

/// Whether `Connection` lists `token`.
fn has_token(headers: &HeaderList, token: &[u8]) -> bool {
    headers
        .get_all("connection")
        .any(|v| super::contains_token(v, token))
}

/// `n` in decimal, in `buf`.
fn format_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The `Date` header hyper adds, formatted once a second per thread.
pub(in crate::proxy) fn date() -> HeaderValue {
    thread_local! {
        static CACHE: RefCell<(u64, HeaderValue)> =
            const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let mut text = BytesMut::with_capacity(29);
            text.put_slice(httpdate::fmt_http_date(now).as_bytes());
            c.1 = HeaderValue::from_maybe_shared(text.freeze())
                .unwrap_or(HeaderValue::from_static(""));
            c.0 = secs;
        }
        c.1.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_in_decimal() {
        let mut b = [0u8; 20];
        assert_eq!(format_u64(&mut b, 0), b"0");
        assert_eq!(format_u64(&mut b, 1234567), b"1234567");
        assert_eq!(format_u64(&mut b, u64::MAX), b"18446744073709551615");
    }

    #[test]
    fn the_date_is_an_http_date() {
        let d = date();
        let text = d.to_str().unwrap();
        assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
    }
}
