//! A request body fed by the connection's task, as hyper's `Incoming`
//! reads one from h2 (`body/incoming.rs`, `Kind::H2`): DATA goes into an
//! inbox the body reads from (whatever task polls it: an upstream h2
//! connection's task reads it for hyper's client), flow control is given
//! back as the body hands data on (the stream's slot is woken to send the
//! WINDOW_UPDATE), trailers follow the data, and a RST_STREAM with
//! NO_ERROR ends the body early without failing it (RFC 9113 §8.1); any
//! other reset fails it with h2's error of that reason, so the request
//! path reads it as it reads h2's.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::header_list::HeaderList;
use crate::http2::ErrorCode;

/// What the connection delivered and the body has not yet read.
pub(super) struct Inbox {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderList>,
    /// The client ended the stream (after `data` and `trailers`).
    end: bool,
    /// The stream was reset with this code.
    reset: Option<ErrorCode>,
    /// Bytes read and not yet given back to the connection's windows.
    released: usize,
    /// The body is gone: what arrives is given back at once.
    dropped: bool,
    reader: Option<Waker>,
    /// The stream's slot: woken when there are bytes to give back.
    slot: Waker,
}

pub(super) type Shared = Arc<Mutex<Inbox>>;

/// A poisoned inbox holds plain bytes, still usable.
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, Inbox> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inbox {
    pub(super) fn new(slot: Waker) -> Shared {
        Arc::new(Mutex::new(Inbox {
            data: VecDeque::new(),
            trailers: None,
            end: false,
            reset: None,
            released: 0,
            dropped: false,
            reader: None,
            slot,
        }))
    }

    /// DATA for the body; `false` if the body is gone (the caller gives the
    /// bytes back at once).
    pub(super) fn push(&mut self, data: Bytes, end: bool) -> bool {
        if self.dropped {
            return false;
        }
        if !data.is_empty() {
            self.data.push_back(data);
        }
        self.end |= end;
        self.wake_reader();
        true
    }

    pub(super) fn trailers(&mut self, trailers: HeaderList) {
        self.trailers = Some(trailers);
        self.end = true;
        self.wake_reader();
    }

    pub(super) fn reset(&mut self, code: ErrorCode) {
        self.reset = Some(code);
        self.wake_reader();
    }

    /// Bytes to give back to the windows: those read, and with `all`
    /// (the stream is leaving the connection) those still queued, which
    /// the connection no longer accounts for.
    pub(super) fn take_released(&mut self, all: bool) -> usize {
        let mut n = std::mem::take(&mut self.released);
        if all {
            n += self.data.iter().map(Bytes::len).sum::<usize>();
            // From now on reads give nothing back.
            self.dropped = true;
        }
        n
    }

    pub(super) fn is_dropped(&self) -> bool {
        self.dropped
    }

    fn wake_reader(&mut self) {
        if let Some(w) = self.reader.take() {
            w.wake();
        }
    }
}

pub(super) struct RequestBody {
    /// None: no body (HEADERS with END_STREAM, CONNECT).
    inbox: Option<Shared>,
    /// Bytes `content-length` says are still to come (None: unknown).
    remaining: Option<u64>,
}

impl RequestBody {
    pub(super) fn new(inbox: Shared, content_length: Option<u64>) -> RequestBody {
        RequestBody {
            inbox: Some(inbox),
            remaining: content_length,
        }
    }

    pub(super) fn empty() -> RequestBody {
        RequestBody {
            inbox: None,
            remaining: Some(0),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        let Some(shared) = this.inbox.as_ref() else {
            return Poll::Ready(None);
        };
        let mut inbox = lock(shared);
        if let Some(data) = inbox.data.pop_front() {
            if !inbox.dropped {
                if inbox.released == 0 {
                    inbox.slot.wake_by_ref();
                }
                inbox.released += data.len();
            }
            if let Some(r) = this.remaining.as_mut() {
                *r = r.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match inbox.reset {
            Some(ErrorCode::NO_ERROR) => return Poll::Ready(None),
            Some(code) => {
                return Poll::Ready(Some(Err(h2::Error::from(h2::Reason::from(code.0)))));
            }
            None => {}
        }
        if let Some(t) = inbox.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t.to_header_map_lossy()))));
        }
        if inbox.end {
            return Poll::Ready(None);
        }
        match &inbox.reader {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inbox.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inbox.as_ref().is_none_or(|shared| {
            let inbox = lock(shared);
            inbox.data.is_empty()
                && inbox.trailers.is_none()
                && (inbox.end || inbox.reset == Some(ErrorCode::NO_ERROR))
        })
    }

    fn size_hint(&self) -> SizeHint {
        self.remaining
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

impl Drop for RequestBody {
    /// What is queued or still coming is given back to the windows (h2
    /// does the same when a `RecvStream` is dropped).
    fn drop(&mut self) {
        if let Some(shared) = self.inbox.take() {
            let mut inbox = lock(&shared);
            inbox.dropped = true;
            let queued: usize = inbox.data.drain(..).map(|d| d.len()).sum();
            inbox.released += queued;
            inbox.slot.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests;
