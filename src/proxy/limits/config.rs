//! The downstream limits and the connection builder that applies them.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

pub(super) const KIB: usize = 1024;

/// Downstream limits, all explicit. `None` timeouts are off (Envoy's `0s`).
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamLimits {
    /// Largest request head (request line and headers; for HTTP/2 the
    /// decoded header list), Envoy's `max_request_headers_kb` (60). Over it:
    /// 431 on HTTP/1, the stream or connection reset on HTTP/2.
    pub max_request_headers_kb: usize,
    /// Most request headers, Envoy's `max_headers_count` (100). Over it: 431.
    pub max_request_headers: usize,
    /// A request head must be complete this long after its first byte
    /// (slowloris), and a new connection must bring its first request
    /// within it. Envoy's `request_headers_timeout` (off by default there;
    /// 60 s is nginx's `client_header_timeout`) also starts at the first
    /// byte: a keep-alive connection waiting for its next request is timed
    /// by `idle_timeout` only. The connection watchdog enforces it, with the
    /// raw-head watcher marking when a head spans reads.
    pub request_headers_timeout: Option<Duration>,
    /// A connection with no request in flight and no bytes either way for
    /// this long is closed (GOAWAY on HTTP/2): Envoy's HTTP connection
    /// manager `idle_timeout`, 1 h, as in Istio sidecars.
    pub idle_timeout: Option<Duration>,
    /// A request with no activity for this long ends: 408 while the request
    /// is still arriving, 504 once it has (Envoy's `stream_idle_timeout`,
    /// 5 min, flag SI); after response headers, the stream is reset.
    pub stream_idle_timeout: Option<Duration>,
    /// Open downstream connections; more are accepted and closed at once,
    /// counted in `envoy_listener_downstream_cx_overflow` (Envoy's
    /// `global_downstream_max_connections`).
    pub max_connections: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS (Envoy's edge guide: 100);
    /// streams beyond it are refused with RST_STREAM(REFUSED_STREAM).
    pub max_concurrent_streams: u32,
    /// Bytes buffered per connection before back-pressure, Envoy's
    /// `per_connection_buffer_limit_bytes` (1 MiB): the HTTP/2 connection
    /// window. The HTTP/1 read buffer is bounded by the head limit.
    pub buffer_limit_kb: usize,
    /// HTTP/2 initial stream window and per-stream send buffer (Envoy's edge
    /// guide: 64 KiB).
    pub http2_stream_window_kb: usize,
    /// HTTP/2 SETTINGS_MAX_FRAME_SIZE (the RFC 9113 minimum, 16 KiB).
    pub http2_max_frame_size: u32,
    /// Streams the client may reset before the proxy accepted them (Rapid
    /// Reset, CVE-2023-44487); beyond: GOAWAY ENHANCE_YOUR_CALM. h2's fixed
    /// default, 20.
    pub http2_max_pending_accept_reset_streams: usize,
    /// Streams the proxy may reset because of client errors (MadeYouReset,
    /// CVE-2025-8671); beyond: GOAWAY ENHANCE_YOUR_CALM. h2's default, 1024.
    pub http2_max_local_error_reset_streams: usize,
    /// HTTP/2 keep-alive PING interval (off, as in Envoy); a PING not answered
    /// within 20 s closes the connection.
    pub http2_keepalive_interval: Option<Duration>,
    /// Resident memory at which the overload guard sheds new requests with
    /// 503 "envoy overloaded" (flag OM) and refuses new connections, until
    /// memory is back under it. Off by default, as Envoy's overload manager.
    pub memory_limit: Option<u64>,
    /// How often resident memory is sampled (Envoy's edge example: 250 ms).
    pub memory_sample_interval: Duration,
    /// `/ready` answers 503 until the first configuration is installed
    /// (the Kubernetes source: until every kind has synced once).
    pub start_unready: bool,
    /// How long a connection may take to send its TLS ClientHello where
    /// the SNI picks the route (passthrough ports, TLS on the sidecar
    /// listener): Envoy's `listener_filters_timeout`, 15 s when unset, as
    /// on Istio's gateway listeners; on expiry the connection is closed
    /// (`continue_on_listener_filters_timeout` false), counted in
    /// `envoy_listener_downstream_pre_cx_timeout`.
    pub listener_filters_timeout: Option<Duration>,
    /// Which server speaks downstream HTTP/2 (h2c and h2 by ALPN): strait's
    /// own codec (the default since issue #15) or the `h2` crate's, kept as
    /// the way back for now (`STRAIT_HTTP2_SERVER=h2`, `--http2-server h2`).
    pub http2_server: Http2Server,
}

/// The downstream HTTP/2 server (see [`DownstreamLimits::http2_server`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http2Server {
    /// `proxy::h2_server`, on the `h2` crate.
    H2,
    /// `proxy::h2_codec_server`, on strait's codec (`crate::http2`).
    #[default]
    Codec,
}

impl std::str::FromStr for Http2Server {
    type Err = String;

    fn from_str(s: &str) -> Result<Http2Server, String> {
        match s {
            "h2" => Ok(Http2Server::H2),
            "codec" => Ok(Http2Server::Codec),
            _ => Err(format!(
                "unknown HTTP/2 server {s:?}: use \"codec\" (the default) or \"h2\""
            )),
        }
    }
}

impl Http2Server {
    /// The environment variable that picks the server at start.
    pub const ENV: &'static str = "STRAIT_HTTP2_SERVER";

    /// From [`Http2Server::ENV`] (unset or empty: the default).
    pub fn from_env() -> Result<Http2Server, String> {
        match std::env::var(Self::ENV) {
            Ok(v) if !v.is_empty() => v.parse().map_err(|e| format!("{}: {e}", Self::ENV)),
            _ => Ok(Http2Server::default()),
        }
    }
}

impl Default for DownstreamLimits {
    fn default() -> Self {
        DownstreamLimits {
            max_request_headers_kb: 60,
            max_request_headers: 100,
            request_headers_timeout: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(3600)),
            stream_idle_timeout: Some(Duration::from_secs(300)),
            max_connections: 10_000,
            max_concurrent_streams: 100,
            buffer_limit_kb: 1024,
            http2_stream_window_kb: 64,
            http2_max_frame_size: 16 * 1024,
            http2_max_pending_accept_reset_streams: 20,
            http2_max_local_error_reset_streams: 1024,
            http2_keepalive_interval: None,
            memory_limit: None,
            memory_sample_interval: Duration::from_millis(250),
            start_unready: false,
            listener_filters_timeout: Some(Duration::from_secs(15)),
            http2_server: Http2Server::Codec,
        }
    }
}

impl DownstreamLimits {
    /// Reject values hyper or h2 would panic on or silently ignore.
    pub fn validate(&self) -> Result<(), String> {
        if !(8..=8192).contains(&self.max_request_headers_kb) {
            return Err(format!(
                "--max-request-headers-kb {} is out of range: use 8 to 8192 (Envoy's bounds are 1 to 8192; hyper needs at least 8)",
                self.max_request_headers_kb
            ));
        }
        if !(1..=10_000).contains(&self.max_request_headers) {
            return Err(format!(
                "--max-request-headers {} is out of range: use 1 to 10000",
                self.max_request_headers
            ));
        }
        if self.max_connections == 0 {
            return Err("--max-connections must be at least 1".into());
        }
        if self.max_concurrent_streams == 0 {
            return Err("--max-concurrent-streams must be at least 1".into());
        }
        if !(64..=1024 * 1024).contains(&self.buffer_limit_kb) {
            return Err(format!(
                "--buffer-limit-kb {} is out of range: use 64 (the HTTP/2 default window) to 1048576",
                self.buffer_limit_kb
            ));
        }
        if self.http2_stream_window_kb == 0 || self.http2_stream_window_kb > self.buffer_limit_kb {
            return Err(format!(
                "the HTTP/2 stream window ({} KiB) must be between 1 KiB and the buffer limit ({} KiB)",
                self.http2_stream_window_kb, self.buffer_limit_kb
            ));
        }
        if !(16_384..=16_777_215).contains(&self.http2_max_frame_size) {
            return Err(format!(
                "the HTTP/2 max frame size {} is outside RFC 9113's 16384..=16777215",
                self.http2_max_frame_size
            ));
        }
        if self.memory_limit == Some(0) {
            return Err(
                "--memory-limit must be above 0 (leave it unset to turn the guard off)".into(),
            );
        }
        Ok(())
    }

    fn max_header_bytes(&self) -> usize {
        self.max_request_headers_kb.saturating_mul(KIB)
    }

    /// The connection builder with every limit set.
    pub fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // The connection watchdog enforces `request_headers_timeout`
            // from the head's first byte; hyper's timer would start
            // whenever a keep-alive connection waits (closing idle ones)
            // and cost a boxed timer per request.
            .header_read_timeout(None)
            // hyper-util's auto builder has no max_header_size: the read
            // buffer cap is the head limit (431 past it), which also bounds
            // what one HTTP/1 connection buffers of a body.
            .max_buf_size(self.max_header_bytes().clamp(8 * KIB, usize::MAX / 2))
            .max_headers(self.max_request_headers.clamp(1, 10_000))
            .keep_alive(true);
        let h2 = self.http2();
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(h2.max_concurrent_streams)
            .max_header_list_size(h2.max_header_list_size)
            .max_frame_size(h2.max_frame_size)
            .initial_stream_window_size(h2.stream_window)
            .initial_connection_window_size(h2.connection_window)
            .adaptive_window(false)
            .max_send_buf_size(h2.stream_window as usize)
            .max_pending_accept_reset_streams(h2.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(h2.max_local_error_reset_streams)
            .keep_alive_interval(h2.keepalive_interval)
            .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
        builder
    }

    /// The HTTP/2 settings, clamped: h2 panics on windows over 2^31-1 and
    /// frame sizes outside RFC 9113's range, so unvalidated limits never
    /// panic. Every HTTP/2 server (hyper's, `proxy::h2_codec_server`,
    /// `proxy::h2_server`) applies these.
    pub(crate) fn http2(&self) -> Http2Settings {
        const MAX_WINDOW: usize = (1 << 31) - 1;
        Http2Settings {
            max_concurrent_streams: self.max_concurrent_streams,
            // h2 also bounds CONTINUATION frames by this over the frame size
            // (h2#758): a header block never grows past it.
            max_header_list_size: u32::try_from(self.max_header_bytes()).unwrap_or(u32::MAX),
            max_frame_size: self.http2_max_frame_size.clamp(16_384, 16_777_215),
            stream_window: self
                .http2_stream_window_kb
                .saturating_mul(KIB)
                .clamp(1, MAX_WINDOW) as u32,
            connection_window: self
                .buffer_limit_kb
                .saturating_mul(KIB)
                .clamp(1, MAX_WINDOW) as u32,
            max_pending_accept_reset_streams: self.http2_max_pending_accept_reset_streams,
            max_local_error_reset_streams: self.http2_max_local_error_reset_streams,
            keepalive_interval: self.http2_keepalive_interval,
        }
    }
}

/// A keep-alive PING not answered within this closes the connection.
pub(crate) const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The HTTP/2 connection settings of [`DownstreamLimits`], clamped to what
/// h2 accepts. The per-stream send buffer is the stream window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Http2Settings {
    pub max_concurrent_streams: u32,
    pub max_header_list_size: u32,
    pub max_frame_size: u32,
    pub stream_window: u32,
    pub connection_window: u32,
    pub max_pending_accept_reset_streams: usize,
    pub max_local_error_reset_streams: usize,
    pub keepalive_interval: Option<Duration>,
}

/// The open-file soft limit, when it can be read (Linux).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_envoys_and_valid() {
        let l = DownstreamLimits::default();
        l.validate().unwrap();
        // Envoy max_request_headers_kb and max_headers_count.
        assert_eq!(l.max_request_headers_kb, 60);
        assert_eq!(l.max_request_headers, 100);
        // Envoy HCM idle_timeout 1 h and stream_idle_timeout 5 min.
        assert_eq!(l.idle_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(l.stream_idle_timeout, Some(Duration::from_secs(300)));
        // Envoy edge guide: 100 streams, 64 KiB stream / 1 MiB connection window.
        assert_eq!(l.max_concurrent_streams, 100);
        assert_eq!(l.http2_stream_window_kb, 64);
        assert_eq!(l.buffer_limit_kb, 1024);
    }

    #[test]
    fn invalid_limits_name_the_flag() {
        let bad = DownstreamLimits {
            max_request_headers_kb: 4,
            ..DownstreamLimits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("--max-request-headers-kb")
        );
        let bad = DownstreamLimits {
            max_connections: 0,
            ..DownstreamLimits::default()
        };
        assert!(bad.validate().unwrap_err().contains("--max-connections"));
        let bad = DownstreamLimits {
            memory_limit: Some(0),
            ..DownstreamLimits::default()
        };
        assert!(bad.validate().unwrap_err().contains("--memory-limit"));
    }

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
        assert!(wild.validate().is_err());
        let _ = wild.builder();
    }
}
