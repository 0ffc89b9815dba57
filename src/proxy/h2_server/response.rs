//! A response head as hyper's HTTP/2 server sends it (`proto::h2::server`,
//! `H2Stream::poll2`): connection-specific headers stripped, `date` added
//! when missing, and `content-length` from a body of known length.

use http::HeaderMap;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, HeaderName, TE, TRANSFER_ENCODING, UPGRADE};

/// RFC 9110 §7.6.1's connection headers, illegal in HTTP/2 (RFC 9113
/// §8.2.2); hyper's `CONNECTION_HEADERS`.
const CONNECTION_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Make `headers` a valid HTTP/2 response head, as hyper does before
/// `send_response`; `length`: the body's exact length, if known and the
/// body is not empty already. One pass over the names finds what is there
/// (most heads have none to strip): a lookup by name hashes it.
pub(super) fn prepare(headers: &mut HeaderMap, length: Option<u64>) {
    let (mut has_date, mut has_length, mut strip) = (false, false, false);
    for name in headers.keys() {
        if name == DATE {
            has_date = true;
        } else if name == CONTENT_LENGTH {
            has_length = true;
        } else if name == CONNECTION || name == TE || CONNECTION_HEADERS.contains(name) {
            strip = true;
        }
    }
    if strip {
        strip_connection_headers(headers);
        // `connection` may have named either.
        has_date = headers.contains_key(DATE);
        has_length = headers.contains_key(CONTENT_LENGTH);
    }
    if !has_date {
        headers.insert(DATE, crate::proxy::h1_server::date());
    }
    if !has_length && let Some(len) = length {
        headers.insert(CONTENT_LENGTH, http::HeaderValue::from(len));
    }
}

/// hyper's `strip_connection_headers` for a response: the connection
/// headers, `te` (whatever its value: "trailers" is a request's), and
/// `connection` with every header it names.
fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in &CONNECTION_HEADERS {
        headers.remove(name);
    }
    headers.remove(TE);
    if let Some(value) = headers.remove(CONNECTION)
        && let Ok(names) = value.to_str()
    {
        for name in names.split(',') {
            headers.remove(name.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_and_those_named_by_connection_are_stripped() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ] {
            h.append(n, v.parse().unwrap());
        }
        prepare(&mut h, None);
        let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["date", "x-kept"]);
    }

    #[test]
    fn content_length_is_added_only_when_missing_and_date_is_kept() {
        let mut h = HeaderMap::new();
        h.insert(DATE, "Mon, 01 Jan 2024 00:00:00 GMT".parse().unwrap());
        prepare(&mut h, Some(5));
        assert_eq!(h[CONTENT_LENGTH], "5");
        assert_eq!(h[DATE], "Mon, 01 Jan 2024 00:00:00 GMT");
        h.insert(CONTENT_LENGTH, "7".parse().unwrap());
        prepare(&mut h, Some(5));
        assert_eq!(h[CONTENT_LENGTH], "7");
        // Named by `connection`: stripped, then added as for a head without.
        h.insert(CONNECTION, "content-length, date".parse().unwrap());
        prepare(&mut h, Some(5));
        assert_eq!(h[CONTENT_LENGTH], "5");
        assert_ne!(h[DATE], "Mon, 01 Jan 2024 00:00:00 GMT");
        let mut h = HeaderMap::new();
        prepare(&mut h, None);
        assert!(!h.contains_key(CONTENT_LENGTH));
    }
}
