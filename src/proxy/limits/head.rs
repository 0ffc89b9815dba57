//! An HTTP/1 request head over the head limit, and hyper's answer to it.

/// An HTTP/1 request head over `max` bytes, counted as Envoy counts
/// `max_request_headers_kb` (names and values, the request line as its
/// pseudo-headers). hyper's own check is its read-buffer cap, which a head
/// arriving in one read can pass by the buffer's rounding; HTTP/2 header
/// lists are bounded exactly by h2 (SETTINGS_MAX_HEADER_LIST_SIZE).
pub fn head_too_large(req: &crate::proxy::exchange::RequestParts, max: usize) -> bool {
    if req.version >= http::Version::HTTP_2 {
        return false;
    }
    let uri = &req.uri;
    let mut size = req.method.as_str().len()
        + uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    for (name, value) in req.headers.iter() {
        size += name.len() + value.len();
        if size > max {
            return true;
        }
    }
    size > max
}

/// What hyper answers to an over-long head itself: 431, and the connection
/// closes (nothing after the head can be trusted as the next request).
pub fn head_too_large_response() -> crate::proxy::exchange::Reply {
    let mut r = crate::proxy::exchange::Reply::with_status(
        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        crate::proxy::body::empty(),
    );
    r.headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}
