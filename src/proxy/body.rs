//! Body types of the request path: one boxed body for everything, a body
//! that replays a buffered prefix before the rest of a stream, and a body that
//! counts bytes and reports when the stream ends (for the access log).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response strait builds.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn boxed<B>(b: B) -> Body
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// Buffered bytes first, then the rest of the original stream.
pub struct Prefixed<B> {
    prefix: Option<Bytes>,
    rest: B,
}

impl<B> Prefixed<B> {
    pub fn new(prefix: Bytes, rest: B) -> Self {
        Prefixed {
            prefix: (!prefix.is_empty()).then_some(prefix),
            rest,
        }
    }
}

impl<B> HttpBody for Prefixed<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }
}

/// What a finished (or abandoned) body stream reports.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub bytes: u64,
    /// The stream ended normally (false: dropped or failed midway).
    pub complete: bool,
    /// `grpc-status` from the trailers, if any.
    pub grpc_status: Option<u32>,
    /// The stream itself failed (as opposed to being dropped by the
    /// consumer): how Envoy would name that reset.
    pub reset: Option<Reset>,
}

/// A body stream that failed midway, in Envoy's reset reasons: an HTTP/2
/// RST_STREAM from the peer is a remote reset (flag UR); anything else (the
/// connection closed or broke) is a connection termination (UC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    Remote,
    ConnectionTermination,
}

impl Reset {
    /// Classify a body error by walking its source chain for h2's error.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Reset {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(h2e) = err.downcast_ref::<h2::Error>() {
                return if h2e.is_reset() && h2e.is_remote() {
                    Reset::Remote
                } else {
                    Reset::ConnectionTermination
                };
            }
            cur = err.source();
        }
        Reset::ConnectionTermination
    }

    /// `%RESPONSE_CODE_DETAILS%` reason, as Envoy's `resetReasonToString`.
    pub fn reason(self) -> &'static str {
        match self {
            Reset::Remote => "remote_reset",
            Reset::ConnectionTermination => "connection_termination",
        }
    }
}

/// Errors a [`Counted`] body can classify (`Box<dyn Error>` itself is not an
/// `Error`, so this bridges both the boxed and hyper's own error).
pub trait StreamError {
    fn as_error(&self) -> &(dyn std::error::Error + 'static);
}

impl StreamError for BoxError {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self.as_ref()
    }
}

impl StreamError for std::io::Error {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }
}

impl StreamError for h2::Error {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }
}

impl StreamError for hyper::Error {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }
}

/// Counts data bytes and calls `on_done` exactly once: at end of stream, on
/// error, or when dropped early (the client went away).
pub struct Counted<B: HttpBody, F: FnOnce(Done)> {
    inner: B,
    bytes: u64,
    grpc_status: Option<u32>,
    reset: Option<Reset>,
    on_done: Option<F>,
}

impl<B: HttpBody, F: FnOnce(Done)> Counted<B, F> {
    pub fn new(inner: B, on_done: F) -> Self {
        Counted {
            inner,
            bytes: 0,
            grpc_status: None,
            reset: None,
            on_done: Some(on_done),
        }
    }

    fn finish(&mut self, complete: bool) {
        if let Some(f) = self.on_done.take() {
            f(Done {
                bytes: self.bytes,
                complete,
                grpc_status: self.grpc_status,
                reset: self.reset,
            });
        }
    }
}

impl<B: HttpBody, F: FnOnce(Done)> Drop for Counted<B, F> {
    fn drop(&mut self) {
        // A body hyper never polled because it was empty is still complete.
        let complete = self.inner.is_end_stream();
        self.finish(complete);
    }
}

impl<B, F> HttpBody for Counted<B, F>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: StreamError,
    F: FnOnce(Done) + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                } else if let Some(t) = frame.trailers_ref() {
                    self.grpc_status = t
                        .get(super::exchange::GRPC_STATUS)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.reset = Some(Reset::of(e.as_error()));
                self.finish(false);
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Pending => {}
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

/// A request body shared by every try of one request, as Envoy's router
/// keeps it: the first try streams it from the client (nothing waits for the
/// end of the body, so bidirectional streams work) while a copy of up to
/// `limit` bytes is kept; a retry replays the copy and then continues the
/// client's stream. Past the limit the body can no longer be replayed.
#[derive(Clone)]
pub struct Replayable {
    state: std::sync::Arc<std::sync::Mutex<ReplayState>>,
}

struct ReplayState {
    inner: Body,
    copy: Vec<Bytes>,
    copied: usize,
    limit: usize,
    overflow: bool,
    /// The client's stream has ended (`trailers` are its last frame, if any).
    done: bool,
    trailers: Option<http::HeaderMap>,
    /// Bumped for every try; readers of earlier tries stop.
    generation: u64,
    /// How the client's stream failed, if it did.
    downstream_error: Option<DownstreamError>,
}

/// A client's request body that failed midway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamError {
    /// Bytes that are not valid HTTP framing (a malformed chunk): Envoy's
    /// codec error, 400 with flag DPE.
    Protocol,
    /// The client went away or reset the stream: flag DC.
    Disconnect,
}

impl DownstreamError {
    /// hyper's body decoder reports bad framing (chunk sizes, extensions,
    /// trailers) as `InvalidInput`/`InvalidData` I/O errors, and a body cut
    /// short as `UnexpectedEof`.
    fn of(e: &(dyn std::error::Error + 'static)) -> DownstreamError {
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                )
            {
                return DownstreamError::Protocol;
            }
            cur = err.source();
        }
        DownstreamError::Disconnect
    }
}

impl Replayable {
    pub fn new(inner: Body, limit: usize) -> Replayable {
        Replayable {
            state: std::sync::Arc::new(std::sync::Mutex::new(ReplayState {
                inner,
                copy: Vec::new(),
                copied: 0,
                limit,
                overflow: false,
                done: false,
                trailers: None,
                generation: 0,
                downstream_error: None,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplayState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How the client's body stream failed, if it did.
    pub fn downstream_error(&self) -> Option<DownstreamError> {
        self.lock().downstream_error
    }

    /// Whether another try can still get the whole body.
    pub fn replayable(&self) -> bool {
        !self.lock().overflow
    }

    /// The body for the next try (earlier tries' readers stop); `None` once
    /// the copy overflowed.
    pub fn reader(&self) -> Option<Body> {
        let mut s = self.lock();
        if s.overflow {
            return None;
        }
        s.generation += 1;
        Some(boxed(ReplayReader {
            state: self.state.clone(),
            generation: s.generation,
            next: 0,
            trailers_sent: false,
        }))
    }
}

struct ReplayReader {
    state: std::sync::Arc<std::sync::Mutex<ReplayState>>,
    generation: u64,
    next: usize,
    trailers_sent: bool,
}

impl HttpBody for ReplayReader {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut s = this.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.generation != this.generation {
            return Poll::Ready(Some(Err("request body taken by a retry".into())));
        }
        if !s.overflow && this.next < s.copy.len() {
            this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(s.copy[this.next - 1].clone()))));
        }
        if s.done {
            if !this.trailers_sent
                && let Some(t) = s.trailers.clone()
            {
                this.trailers_sent = true;
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            return Poll::Ready(None);
        }
        match Pin::new(&mut s.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    if !s.overflow {
                        s.copied += d.len();
                        if s.copied > s.limit {
                            s.overflow = true;
                            s.copy = Vec::new();
                        } else {
                            s.copy.push(d.clone());
                            this.next += 1;
                        }
                    }
                } else if let Some(t) = frame.trailers_ref() {
                    s.trailers = Some(t.clone());
                    s.done = true;
                    this.trailers_sent = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                s.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                s.downstream_error = Some(DownstreamError::of(e.as_ref()));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.generation == self.generation
            && (s.overflow || self.next >= s.copy.len())
            && if s.done {
                self.trailers_sent || s.trailers.is_none()
            } else {
                s.inner.is_end_stream()
            }
    }

    fn size_hint(&self) -> SizeHint {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let replay: u64 = if s.overflow {
            0
        } else {
            s.copy[self.next.min(s.copy.len())..]
                .iter()
                .map(|b| b.len() as u64)
                .sum()
        };
        if s.done {
            return SizeHint::with_exact(replay);
        }
        let inner = s.inner.size_hint();
        let mut h = SizeHint::new();
        h.set_lower(inner.lower() + replay);
        if let Some(u) = inner.upper() {
            h.set_upper(u + replay);
        }
        h
    }
}
/// Collect a body completely if it is at most `limit` bytes; otherwise
/// return what was read so far and the rest of the stream.
pub async fn buffer_body(mut body: Body, limit: usize) -> Result<Result<Bytes, (Bytes, Body)>, ()> {
    use bytes::BytesMut;
    if http_body::Body::is_end_stream(&body) {
        return Ok(Ok(Bytes::new()));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Err((buf.freeze(), body)));
            }
        }
    }
    Ok(Ok(buf.freeze()))
}
