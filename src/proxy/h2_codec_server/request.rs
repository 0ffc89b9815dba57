//! A request head from the codec as the request path takes it: the
//! pseudo-headers into `http`'s method and URI as the `h2` crate builds
//! them (`server.rs`, `convert_poll_message`), the regular fields moved
//! as they are (no `HeaderMap`), and `content-length` read as h2 reads it.

use http::uri::{self, Authority, PathAndQuery, Scheme};
use http::{Method, Uri};

use crate::http2::head::RequestHead;
use crate::proxy::exchange::RequestParts;

/// The request's parts; `Err` where h2 finds the head malformed (a stream
/// error PROTOCOL_ERROR): a method, authority, scheme or path `http`
/// refuses.
pub(super) fn parts(head: &mut RequestHead) -> Result<RequestParts, ()> {
    let method = Method::from_bytes(head.method()).map_err(|_| ())?;
    let mut parts = uri::Parts::default();
    if let Some(a) = head.authority_shared() {
        parts.authority = Some(Authority::from_maybe_shared(a).map_err(|_| ())?);
    }
    // h2 checks the scheme but keeps it only beside an authority: a URI
    // with a scheme and no authority cannot be built.
    if let Some(s) = head.scheme() {
        let scheme = Scheme::try_from(s).map_err(|_| ())?;
        if parts.authority.is_some() {
            parts.scheme = Some(scheme);
        }
    }
    if let Some(p) = head.path_shared() {
        parts.path_and_query = Some(PathAndQuery::from_maybe_shared(p).map_err(|_| ())?);
    }
    let uri = Uri::from_parts(parts).map_err(|_| ())?;
    Ok(RequestParts {
        method,
        uri,
        version: http::Version::HTTP_2,
        headers: head.take_headers(),
        extensions: http::Extensions::new(),
    })
}

/// The request's `content-length` as h2 reads it (its first value, plain
/// digits, at most 19 of them: `frame::parse_u64`); `Err`: malformed, the
/// stream is reset PROTOCOL_ERROR.
pub(super) fn content_length(parts: &RequestParts) -> Result<Option<u64>, ()> {
    let Some(v) = parts.headers.get("content-length") else {
        return Ok(None);
    };
    if v.len() > 19 {
        return Err(());
    }
    v.iter()
        .try_fold(0u64, |n, d| {
            let d = d.checked_sub(b'0').filter(|d| *d < 10)?;
            Some(n * 10 + u64::from(d))
        })
        .map(Some)
        .ok_or(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_list::HeaderList;

    fn with_length(values: &[&'static str]) -> RequestParts {
        let mut headers = HeaderList::new();
        for v in values {
            headers.append(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static(v),
            );
        }
        RequestParts {
            method: Method::POST,
            uri: Uri::from_static("/"),
            version: http::Version::HTTP_2,
            headers,
            extensions: http::Extensions::new(),
        }
    }

    #[test]
    fn content_length_is_read_as_h2_reads_it() {
        assert_eq!(content_length(&with_length(&[])), Ok(None));
        assert_eq!(content_length(&with_length(&["42"])), Ok(Some(42)));
        // The first value only.
        assert_eq!(content_length(&with_length(&["42", "x"])), Ok(Some(42)));
        assert_eq!(content_length(&with_length(&[""])), Ok(Some(0)));
        assert_eq!(content_length(&with_length(&["42, 42"])), Err(()));
        assert_eq!(content_length(&with_length(&["+42"])), Err(()));
        assert_eq!(
            content_length(&with_length(&["99999999999999999999"])),
            Err(())
        );
    }
}
