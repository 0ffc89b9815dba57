//! The h2 server builder with every downstream limit applied, as
//! `limits::config::builder` applies them to hyper's HTTP/2 server (which
//! passes them on to this same builder: hyper's `proto::h2::server`).

use crate::proxy::limits::DownstreamLimits;

/// An h2 server builder with the HTTP/2 limits of `limits`.
pub(super) fn builder(limits: &DownstreamLimits) -> h2::server::Builder {
    let h2 = limits.http2();
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_size)
        .max_frame_size(h2.max_frame_size)
        .initial_window_size(h2.stream_window)
        .initial_connection_window_size(h2.connection_window)
        // hyper's `max_send_buf_size`: what one stream buffers to send.
        .max_send_buffer_size(h2.stream_window as usize)
        .max_pending_accept_reset_streams(h2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(h2.max_local_error_reset_streams));
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unvalidated_extremes_build_without_panicking() {
        let wild = DownstreamLimits {
            max_request_headers_kb: usize::MAX,
            buffer_limit_kb: usize::MAX,
            http2_stream_window_kb: 0,
            http2_max_frame_size: 1,
            max_concurrent_streams: 0,
            ..DownstreamLimits::default()
        };
        let _ = builder(&wild);
    }
}
