//! Downstream limits and the overload guard: what one client, or many, may
//! cost the proxy before it says no.
//!
//! Every hyper and h2 limit is set explicitly from [`Limits`], because their
//! defaults have changed between releases and have had bugs (hyper#3782 left
//! `max_local_error_reset_streams` off). The defaults follow Envoy's
//! (`max_request_headers_kb`, `max_headers_count`, `idle_timeout`,
//! `stream_idle_timeout`) and its edge guide (100 concurrent streams, 64 KiB
//! stream window, 1 MiB connection window).
//!
//! Timers cost nothing per byte: reads and writes store a coarse timestamp
//! ([`ConnState`]), and one watchdog per connection compares it with the
//! deadlines ([`Watchdog`]). Memory is sampled by one background task
//! ([`Overload::sample`]), never on the request path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::sniff::{self, Watcher};

const KIB: usize = 1024;

/// Downstream limits, all explicit. `None` timeouts are off (Envoy's `0s`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
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
        }
    }
}

impl Limits {
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
        // h2 panics on windows over 2^31-1 and frame sizes outside RFC
        // 9113's range: clamp here too, so unvalidated limits never panic.
        const MAX_WINDOW: usize = (1 << 31) - 1;
        let window = self
            .http2_stream_window_kb
            .saturating_mul(KIB)
            .clamp(1, MAX_WINDOW) as u32;
        let conn_window = self
            .buffer_limit_kb
            .saturating_mul(KIB)
            .clamp(1, MAX_WINDOW) as u32;
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.max_concurrent_streams)
            // h2 also bounds CONTINUATION frames by this over the frame size
            // (h2#758): a header block never grows past it.
            .max_header_list_size(u32::try_from(self.max_header_bytes()).unwrap_or(u32::MAX))
            .max_frame_size(self.http2_max_frame_size.clamp(16_384, 16_777_215))
            .initial_stream_window_size(window)
            .initial_connection_window_size(conn_window)
            .adaptive_window(false)
            .max_send_buf_size(window as usize)
            .max_pending_accept_reset_streams(self.http2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(self.http2_max_local_error_reset_streams)
            .keep_alive_interval(self.http2_keepalive_interval)
            .keep_alive_timeout(Duration::from_secs(20));
        builder
    }
}

/// An HTTP/1 request head over `max` bytes, counted as Envoy counts
/// `max_request_headers_kb` (names and values, the request line as its
/// pseudo-headers). hyper's own check is its read-buffer cap, which a head
/// arriving in one read can pass by the buffer's rounding; HTTP/2 header
/// lists are bounded exactly by h2 (SETTINGS_MAX_HEADER_LIST_SIZE).
pub fn head_too_large<B>(req: &http::Request<B>, max: usize) -> bool {
    if req.version() >= http::Version::HTTP_2 {
        return false;
    }
    let uri = req.uri();
    let mut size = req.method().as_str().len()
        + uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    for (name, value) in req.headers() {
        size += name.as_str().len() + value.len();
        if size > max {
            return true;
        }
    }
    size > max
}

/// What hyper answers to an over-long head itself: 431, and the connection
/// closes (nothing after the head can be trusted as the next request).
pub fn head_too_large_response() -> http::Response<super::body::Body> {
    let mut r = http::Response::new(super::body::empty());
    *r.status_mut() = http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}

/// Milliseconds since the first call, from one process-wide base: cheap to
/// store in an atomic on every read and write.
fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the watchdog knows of one downstream connection.
#[derive(Debug)]
pub struct ConnState {
    accepted_ms: u64,
    last_io_ms: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// When the HTTP/1 request head being read began (0: none is), set by
    /// the raw-head watcher for a head that spans reads.
    head_since_ms: AtomicU64,
}

impl Default for ConnState {
    fn default() -> Self {
        let now = now_ms();
        ConnState {
            accepted_ms: now,
            last_io_ms: AtomicU64::new(now),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            head_since_ms: AtomicU64::new(0),
        }
    }
}

impl ConnState {
    fn touch(&self) {
        self.last_io_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The first bytes of an HTTP/1 request head arrived without its end:
    /// the header timeout runs from now (Envoy's `request_headers_timeout`
    /// starts at the first byte of the headers, not while a keep-alive
    /// connection waits).
    pub fn head_started(&self) {
        let _ = self.head_since_ms.compare_exchange(
            0,
            now_ms().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The head being read is complete (or no longer watched).
    pub fn head_done(&self) {
        self.head_since_ms.store(0, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn head_in_progress(&self) -> bool {
        self.head_since_ms.load(Ordering::Relaxed) != 0
    }

    /// A request began; the guard ends it (drop it when the response ends).
    pub fn request(self: &Arc<Self>) -> ConnRequest {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        ConnRequest(self.clone())
    }
}

/// A request in flight on its connection (see [`ConnState::request`]).
#[derive(Debug)]
pub struct ConnRequest(Arc<ConnState>);

impl Drop for ConnRequest {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A downstream connection whose reads and writes mark it active, and
/// whose reads are shown to the raw-head watcher (request smuggling shapes,
/// the header timeout's clock): one wrapper, one pass per read.
pub struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
    watcher: Watcher,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, state: Arc<ConnState>, smuggling: sniff::Flag) -> Self {
        Tracked {
            inner,
            watcher: Watcher::new(smuggling).with_clock(state.clone()),
            state,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.touch();
            let this = &mut *self;
            this.watcher.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No first request, or no complete HTTP/1 head since its first byte,
    /// within the request-headers timeout: close gracefully (GOAWAY),
    /// briefly.
    NoRequest,
    /// Requests in flight but no bytes either way past the stream idle
    /// timeout (a client that stopped reading, or every stream stalled):
    /// close now.
    StreamsIdle,
    /// Nothing in flight past the idle timeout: close gracefully (GOAWAY).
    Idle,
}

/// Per-connection deadlines, checked by sleeping until the nearest one.
pub struct Watchdog {
    state: Arc<ConnState>,
    header_ms: Option<u64>,
    idle_ms: Option<u64>,
    streams_ms: Option<u64>,
    /// Never sleep longer than this, so a rule that starts to apply while
    /// asleep (a request began) is checked at most this late.
    max_sleep_ms: u64,
}

impl Watchdog {
    pub fn new(limits: &Limits, state: Arc<ConnState>) -> Watchdog {
        // The request path answers 408/504 at the stream idle timeout; the
        // connection-level rule must come later so that answer goes first.
        let streams_ms = limits
            .stream_idle_timeout
            .map(|t| ms(t).saturating_add(ms(t) / 4).saturating_add(50));
        let header_ms = limits.request_headers_timeout.map(ms);
        let idle_ms = limits.idle_timeout.map(ms);
        let shortest = [header_ms, idle_ms, streams_ms]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(15_000);
        Watchdog {
            state,
            header_ms,
            idle_ms,
            streams_ms,
            max_sleep_ms: (shortest / 4).clamp(5, 15_000),
        }
    }

    /// The verdict now, or how long to sleep before asking again.
    fn check(&self, now: u64) -> Result<u64, Expired> {
        let s = &self.state;
        let last = s.last_io_ms.load(Ordering::Relaxed);
        let idle_for = now.saturating_sub(last);
        let mut next = self.max_sleep_ms;
        if s.requests.load(Ordering::Relaxed) == 0
            && let Some(t) = self.header_ms
        {
            // From accept, not from the last byte: a trickle must not reset it.
            let age = now.saturating_sub(s.accepted_ms);
            if age >= t {
                return Err(Expired::NoRequest);
            }
            next = next.min(t - age);
        }
        let head_since = s.head_since_ms.load(Ordering::Relaxed);
        if head_since != 0
            && let Some(t) = self.header_ms
        {
            let age = now.saturating_sub(head_since);
            if age >= t {
                return Err(Expired::NoRequest);
            }
            next = next.min(t - age);
        }
        let (rule, verdict) = if s.in_flight.load(Ordering::Relaxed) > 0 {
            (self.streams_ms, Expired::StreamsIdle)
        } else {
            (self.idle_ms, Expired::Idle)
        };
        if let Some(t) = rule {
            if idle_for >= t {
                return Err(verdict);
            }
            next = next.min(t - idle_for);
        }
        Ok(next.max(1))
    }

    /// Resolves when the connection should end.
    pub async fn expired(&self) -> Expired {
        if self.header_ms.is_none() && self.idle_ms.is_none() && self.streams_ms.is_none() {
            return std::future::pending().await;
        }
        loop {
            match self.check(now_ms()) {
                Err(e) => return e,
                Ok(wait) => tokio::time::sleep(Duration::from_millis(wait)).await,
            }
        }
    }
}

/// One request's stream idle clock: reset by request body data, checked
/// while the proxy waits for the response.
#[derive(Debug)]
pub struct StreamIdle {
    timeout: Duration,
    last_ms: AtomicU64,
    request_complete: AtomicBool,
}

impl StreamIdle {
    /// `None` when the timeout is off.
    pub fn start(timeout: Option<Duration>, request_complete: bool) -> Option<Arc<StreamIdle>> {
        timeout.map(|timeout| {
            Arc::new(StreamIdle {
                timeout,
                last_ms: AtomicU64::new(now_ms()),
                request_complete: AtomicBool::new(request_complete),
            })
        })
    }

    fn touch(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The whole request has arrived (408 before, 504 after).
    pub fn request_complete(&self) -> bool {
        self.request_complete.load(Ordering::Relaxed)
    }
}

/// Run `fut` (route and forward) unless the stream goes idle first; the
/// error says whether the request had fully arrived.
pub async fn within_stream_idle<F: Future>(
    fut: F,
    idle: Option<&StreamIdle>,
) -> Result<F::Output, bool> {
    let Some(idle) = idle else {
        return Ok(fut.await);
    };
    tokio::pin!(fut);
    let sleep = tokio::time::sleep(idle.timeout);
    tokio::pin!(sleep);
    let timeout = ms(idle.timeout);
    loop {
        tokio::select! {
            biased;
            out = &mut fut => return Ok(out),
            () = &mut sleep => {
                let quiet = now_ms().saturating_sub(idle.last_ms.load(Ordering::Relaxed));
                if quiet >= timeout {
                    return Err(idle.request_complete());
                }
                let wait = Duration::from_millis(timeout - quiet);
                sleep.as_mut().reset(tokio::time::Instant::now() + wait);
            }
        }
    }
}

/// A request body whose frames reset its stream's idle clock.
pub struct IdleReset<B> {
    inner: B,
    idle: Option<Arc<StreamIdle>>,
}

impl<B> IdleReset<B> {
    pub fn new(inner: B, idle: Option<Arc<StreamIdle>>) -> Self {
        IdleReset { inner, idle }
    }
}

impl<B> HttpBody for IdleReset<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let (Poll::Ready(ready), Some(idle)) = (&r, &self.idle) {
            idle.touch();
            if ready.is_none() || self.inner.is_end_stream() {
                idle.request_complete.store(true, Ordering::Relaxed);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Downstream counters, named as Istio exports Envoy's.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub cx_active: Gauge,
    pub cx_overflow: Counter,
    pub cx_overload_reject: Counter,
    pub cx_idle_timeout: Counter,
    pub rq_header_timeout: Counter,
    pub rq_idle_timeout: Counter,
    pub rq_overload_close: Counter,
    pub overload_active: Gauge,
    pub pre_cx_timeout: Counter,
}

impl Stats {
    pub fn register(&self, metrics: &mut crate::metrics::Metrics) {
        let m = metrics;
        m.register(
            "envoy_http_downstream_cx_active",
            "Open downstream connections",
            self.cx_active.clone(),
        );
        m.register(
            "envoy_listener_downstream_cx_overflow",
            "Downstream connections closed at accept: --max-connections reached",
            self.cx_overflow.clone(),
        );
        m.register(
            "envoy_listener_downstream_cx_overload_reject",
            "Downstream connections closed at accept: over --memory-limit",
            self.cx_overload_reject.clone(),
        );
        m.register(
            "envoy_http_downstream_cx_idle_timeout",
            "Downstream connections closed by --idle-timeout",
            self.cx_idle_timeout.clone(),
        );
        m.register(
            "envoy_http_downstream_rq_header_timeout",
            "Downstream connections closed by --request-headers-timeout",
            self.rq_header_timeout.clone(),
        );
        m.register(
            "envoy_http_downstream_rq_idle_timeout",
            "Requests ended by --stream-idle-timeout",
            self.rq_idle_timeout.clone(),
        );
        m.register(
            "envoy_http_downstream_rq_overload_close",
            "Requests shed with 503 over --memory-limit",
            self.rq_overload_close.clone(),
        );
        m.register(
            "envoy_listener_downstream_pre_cx_timeout",
            "Connections closed before a TLS ClientHello arrived (listener filters timeout)",
            self.pre_cx_timeout.clone(),
        );
        m.register(
            "envoy_overload_stop_accepting_requests_active",
            "1 while the overload guard sheds requests and refuses connections",
            self.overload_active.clone(),
        );
    }
}

/// The overload guard's state, written only by the sampler.
#[derive(Debug, Default)]
pub struct Overload {
    /// Bytes; 0 is off.
    limit: AtomicU64,
    rss: AtomicU64,
    active: AtomicBool,
}

impl Overload {
    pub fn new(limit: Option<u64>) -> Overload {
        Overload {
            limit: AtomicU64::new(limit.unwrap_or(0)),
            ..Overload::default()
        }
    }

    /// New requests get 503 and new connections are refused.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Change the memory limit at run time (`None`: off); the next sample
    /// applies it.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(0), Ordering::Relaxed);
    }

    /// The last resident-memory sample, in bytes.
    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    /// Take one sample and update the state; returns whether it is active.
    pub fn sample(&self, stats: &Stats) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        let active = if limit == 0 {
            false
        } else {
            match resident_bytes() {
                Some(rss) => {
                    self.rss.store(rss, Ordering::Relaxed);
                    rss >= limit
                }
                // Unreadable: keep the previous state rather than flap.
                None => self.active(),
            }
        };
        if self.active.swap(active, Ordering::Relaxed) != active {
            if active {
                tracing::warn!(
                    rss = self.rss(),
                    limit,
                    "overloaded: shedding new requests and refusing connections until memory is under --memory-limit"
                );
            } else {
                tracing::info!(rss = self.rss(), limit, "no longer overloaded");
            }
        }
        stats.overload_active.set(i64::from(active));
        active
    }
}

/// This process's resident memory (Linux `/proc/self/status` VmRSS).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Parse a byte size: plain bytes or with a K/M/G (KiB, MiB, GiB) suffix,
/// `Ki`/`Mi`/`Gi` (Kubernetes style) or `KB`/`MB`/`GB` accepted alike.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("{s:?} is not a size: use bytes or a number with K, M or G (e.g. 512M)")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kb" | "kib" => 1 << 10,
        "m" | "mi" | "mb" | "mib" => 1 << 20,
        "g" | "gi" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?} has an unknown unit: use K, M or G (e.g. 512M)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
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
        let l = Limits::default();
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
        let bad = Limits {
            max_request_headers_kb: 4,
            ..Limits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .contains("--max-request-headers-kb")
        );
        let bad = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert!(bad.validate().unwrap_err().contains("--max-connections"));
        let bad = Limits {
            memory_limit: Some(0),
            ..Limits::default()
        };
        assert!(bad.validate().unwrap_err().contains("--memory-limit"));
    }

    #[test]
    fn unvalidated_extremes_build_without_panicking() {
        let wild = Limits {
            max_request_headers_kb: usize::MAX,
            buffer_limit_kb: usize::MAX,
            http2_stream_window_kb: 0,
            http2_max_frame_size: 1,
            max_concurrent_streams: 0,
            ..Limits::default()
        };
        assert!(wild.validate().is_err());
        let _ = wild.builder();
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2Gi").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("99999999999999G").is_err());
    }

    #[test]
    fn resident_memory_is_readable_here() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().unwrap() > 0);
        }
    }

    fn dog(limits: &Limits) -> (Watchdog, Arc<ConnState>) {
        let st = Arc::new(ConnState::default());
        (Watchdog::new(limits, st.clone()), st)
    }

    #[test]
    fn first_request_deadline_counts_from_accept() {
        let l = Limits {
            request_headers_timeout: Some(Duration::from_millis(100)),
            ..Limits::default()
        };
        let (w, st) = dog(&l);
        let t0 = st.accepted_ms;
        assert!(w.check(t0 + 50).is_ok());
        // Bytes trickling in do not extend it.
        st.last_io_ms.store(t0 + 99, Ordering::Relaxed);
        assert_eq!(w.check(t0 + 100), Err(Expired::NoRequest));
        // Once a request came, only a head in progress is timed.
        let r = st.request();
        assert!(w.check(t0 + 100).is_ok());
        drop(r);
        assert!(
            w.check(t0 + 10_000).is_ok(),
            "a waiting keep-alive connection"
        );
    }

    #[test]
    fn a_later_head_is_timed_from_its_first_byte() {
        let l = Limits {
            request_headers_timeout: Some(Duration::from_millis(100)),
            ..Limits::default()
        };
        let (w, st) = dog(&l);
        drop(st.request());
        st.head_started();
        let since = st.head_since_ms.load(Ordering::Relaxed);
        // Started again by more bytes of the same head: still the first.
        st.head_started();
        assert_eq!(st.head_since_ms.load(Ordering::Relaxed), since);
        assert!(w.check(since + 99).is_ok());
        assert_eq!(w.check(since + 100), Err(Expired::NoRequest));
        st.head_done();
        assert!(w.check(since + 100).is_ok());
    }

    #[test]
    fn idle_rules_depend_on_requests_in_flight() {
        let l = Limits {
            idle_timeout: Some(Duration::from_millis(1000)),
            stream_idle_timeout: Some(Duration::from_millis(100)),
            ..Limits::default()
        };
        let (w, st) = dog(&l);
        let r = st.request();
        let t0 = st.last_io_ms.load(Ordering::Relaxed);
        // In flight: the stream rule, after the request path's own timer.
        assert!(w.check(t0 + 100).is_ok());
        assert_eq!(w.check(t0 + 200), Err(Expired::StreamsIdle));
        drop(r);
        // Nothing in flight: the connection idle timeout.
        assert!(w.check(t0 + 200).is_ok());
        assert_eq!(w.check(t0 + 1000), Err(Expired::Idle));
    }
}
