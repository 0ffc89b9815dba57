//! The codec's settings from the downstream limits: the same values
//! `h2_server::settings` gives the `h2` builder, so either server
//! advertises and enforces the same limits.

use crate::http2::conn::Config;
use crate::http2::hpack::Limits;
use crate::proxy::limits::DownstreamLimits;

/// The codec's configuration for `limits`.
pub(super) fn config(limits: &DownstreamLimits) -> Config {
    let h2 = limits.http2();
    let max_list_size = h2.max_header_list_size as usize;
    let defaults = Config::default();
    Config {
        max_concurrent_streams: h2.max_concurrent_streams,
        stream_window: h2.stream_window,
        connection_window: h2.connection_window,
        max_frame_size: h2.max_frame_size,
        limits: Limits {
            max_list_size,
            // Envoy's `max_headers_count` applies to HTTP/2 too
            // (`http2/codec_impl.cc`, `saveHeader`: the stream's header
            // map, pseudo-headers included, over the count is refused, as
            // over `max_request_headers_kb`); trailers count the same way.
            max_fields: limits.max_request_headers.max(1),
        },
        max_header_block: max_list_size.saturating_mul(2).max(16 * 1024),
        max_pending_accept_reset_streams: h2.max_pending_accept_reset_streams,
        max_local_error_reset_streams: h2.max_local_error_reset_streams,
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_h2_servers() {
        let c = config(&DownstreamLimits::default());
        assert_eq!(c.max_concurrent_streams, 100);
        assert_eq!(c.stream_window, 64 * 1024);
        assert_eq!(c.connection_window, 1024 * 1024);
        assert_eq!(c.limits.max_list_size, 60 * 1024);
        assert_eq!(c.max_pending_accept_reset_streams, 20);
        assert_eq!(c.max_local_error_reset_streams, 1024);
        assert_eq!(c.limits.max_fields, 100, "Envoy's max_headers_count");
        let wild = DownstreamLimits {
            max_request_headers_kb: usize::MAX,
            buffer_limit_kb: usize::MAX,
            http2_stream_window_kb: 0,
            http2_max_frame_size: 1,
            max_concurrent_streams: 0,
            ..DownstreamLimits::default()
        };
        let c = config(&wild);
        assert_eq!(c.max_frame_size, 16_384);
        assert_eq!(c.stream_window, 1);
    }
}
