//! A response head as hyper's HTTP/2 server sends it (`proto::h2::server`,
//! `H2Stream::poll2`), on strait's header list (`h2_server::response` does
//! the same on a `HeaderMap`): connection-specific headers stripped,
//! `date` added when missing, and `content-length` from a body of known
//! length.

use http::HeaderValue;
use http::header::{CONTENT_LENGTH, DATE};

use crate::header_list::HeaderList;

/// RFC 9110 §7.6.1's connection headers, illegal in HTTP/2 (RFC 9113
/// §8.2.2): hyper's `CONNECTION_HEADERS`, `te` (whatever its value:
/// "trailers" is a request's) and `connection` itself.
fn connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"transfer-encoding"
            | b"upgrade"
            | b"te"
    )
}

/// Make `headers` a valid HTTP/2 response head, as hyper does before
/// `send_response`; `length`: the body's exact length, if known and the
/// body is not empty already. One pass over the names finds what is there
/// (most heads have nothing to strip).
pub(super) fn prepare(headers: &mut HeaderList, length: Option<u64>) {
    let (mut has_date, mut has_length, mut strip) = (false, false, false);
    for (name, _) in headers.iter() {
        match name {
            b"date" => has_date = true,
            b"content-length" => has_length = true,
            n if connection_specific(n) => strip = true,
            _ => {}
        }
    }
    if strip {
        strip_connection_headers(headers);
        // `connection` may have named either.
        has_date = headers.contains("date");
        has_length = headers.contains("content-length");
    }
    if !has_date {
        headers.append(DATE, crate::proxy::h1_server::date());
    }
    if !has_length && let Some(len) = length {
        headers.append(CONTENT_LENGTH, HeaderValue::from(len));
    }
}

/// hyper's `strip_connection_headers` for a response: the connection
/// headers and every header `connection` names (rare: a copy of the
/// names is fine here).
fn strip_connection_headers(headers: &mut HeaderList) {
    let named: Vec<Vec<u8>> = headers
        .get_all("connection")
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|n| n.trim_ascii().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    headers.retain(|name, _| !connection_specific(name) && !named.iter().any(|n| n == name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(lines: &[(&'static str, &'static str)]) -> HeaderList {
        lines
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn connection_headers_and_those_named_by_connection_are_stripped() {
        let mut h = list(&[
            ("connection", "close, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ]);
        prepare(&mut h, None);
        let mut left: Vec<_> = h.iter().map(|(n, _)| n.to_vec()).collect();
        left.sort_unstable();
        assert_eq!(left, [b"date".to_vec(), b"x-kept".to_vec()]);
    }

    #[test]
    fn content_length_is_added_only_when_missing_and_date_is_kept() {
        let mut h = list(&[("date", "Mon, 01 Jan 2024 00:00:00 GMT")]);
        prepare(&mut h, Some(5));
        assert_eq!(h.get("content-length"), Some(&b"5"[..]));
        assert_eq!(h.get("date"), Some(&b"Mon, 01 Jan 2024 00:00:00 GMT"[..]));
        let mut h = list(&[("content-length", "7")]);
        prepare(&mut h, Some(5));
        assert_eq!(h.get_all("content-length").count(), 1);
        assert_eq!(h.get("content-length"), Some(&b"7"[..]));
        // Named by `connection`: stripped, then added as for a head without.
        let mut h = list(&[
            ("connection", "content-length, date"),
            ("content-length", "7"),
            ("date", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ]);
        prepare(&mut h, Some(5));
        assert_eq!(h.get("content-length"), Some(&b"5"[..]));
        assert_ne!(h.get("date"), Some(&b"Mon, 01 Jan 2024 00:00:00 GMT"[..]));
        let mut h = HeaderList::new();
        prepare(&mut h, None);
        assert!(!h.contains("content-length"));
    }
}
