//! Heads written straight into a connection's output buffer: no
//! intermediate header map, no per-header allocation.

use std::fmt::Write as _;

use bytes::BytesMut;

use super::head::Version;

/// `METHOD target HTTP/1.x` and the header lines, then the empty line.
/// Names and values are written as given: the caller has stripped
/// hop-by-hop headers and set the framing ones.
pub fn request_head<'a>(
    out: &mut BytesMut,
    method: &str,
    target: &[u8],
    version: Version,
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) {
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target);
    out.extend_from_slice(match version {
        Version::Http10 => b" HTTP/1.0\r\n",
        Version::Http11 => b" HTTP/1.1\r\n",
    });
    fields(out, headers);
}

/// `HTTP/1.x status reason` and the header lines, then the empty line. An
/// empty `reason` writes the status code's canonical one.
pub fn response_head<'a>(
    out: &mut BytesMut,
    version: Version,
    status: u16,
    reason: &[u8],
    headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) {
    out.extend_from_slice(match version {
        Version::Http10 => b"HTTP/1.0 ",
        Version::Http11 => b"HTTP/1.1 ",
    });
    if status < 1000 {
        // Three digits by hand: `write!` runs the formatting machinery
        // for every response.
        let d = |n: u16| b'0' + (n % 10) as u8;
        out.extend_from_slice(&[d(status / 100), d(status / 10), d(status), b' ']);
    } else {
        let _ = write!(out, "{status} ");
    }
    if reason.is_empty() {
        let canonical = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        out.extend_from_slice(canonical.as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    fields(out, headers);
}

fn fields<'a>(out: &mut BytesMut, headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    for (name, value) in headers {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}
