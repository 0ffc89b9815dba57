//! A read-side watcher on HTTP/1.1 connections for request-smuggling shapes
//! that hyper silently normalises, and that Envoy's codec refuses:
//! - a request carrying both Content-Length and Transfer-Encoding: hyper
//!   (per RFC 9112 §6.3) drops the Content-Length and decodes the body as
//!   chunked; Envoy answers 400 (`allow_chunked_length: false`);
//! - a Transfer-Encoding other than exactly `chunked` that hyper still
//!   decodes as chunked (`chunked, chunked` over two lines, `gzip, chunked`):
//!   Envoy answers 501, as the Pingora CVE-2026-2835 fix does;
//! - a bare LF as a line end in the head, which hyper (httparse) accepts and
//!   other parsers do not (RFC 9112 §2.2 only allows it, HTTP Garden).
//!
//! The watcher follows message framing on the bytes hyper reads and records
//! the first problem in a per-connection code the request handler checks.
//!
//! Whenever the watcher is unsure (HTTP/2, an upgrade, a head it cannot parse,
//! a head larger than hyper accepts) it stops watching: hyper itself rejects
//! malformed input, so stopping never lets a smuggling shape through that
//! hyper would accept with a Content-Length it kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::limits::ConnState;

/// Where the watcher is in the byte stream.
#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping a fixed-length body.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data plus its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until an empty one.
    Trailers(Vec<u8>),
    /// Not watching any more.
    Off,
}

/// Largest head or line the watcher buffers (hyper's limit is lower).
const MAX_BUFFER: usize = 128 * 1024;

/// The per-connection problem code: 0 while the connection is clean.
pub type Flag = Arc<AtomicU8>;

/// Content-Length together with Transfer-Encoding.
pub const CONTENT_LENGTH_AND_CHUNKED: u8 = 1;
/// A Transfer-Encoding other than exactly one `chunked`.
pub const INVALID_TRANSFER_ENCODING: u8 = 2;
/// A bare LF ending a line of the head.
pub const BARE_LF: u8 = 3;

/// The local reply for a problem code (Envoy's status and details).
pub fn local_reply(code: u8) -> super::local_reply::LocalReply {
    use super::local_reply::LocalReply;
    match code {
        INVALID_TRANSFER_ENCODING => LocalReply {
            status: http::StatusCode::NOT_IMPLEMENTED,
            body: "Not Implemented",
            ..LocalReply::bad_request("http1.invalid_transfer_encoding")
        },
        BARE_LF => LocalReply::bad_request("http1.codec_error"),
        _ => LocalReply::bad_request("http1.content_length_and_chunked_not_allowed"),
    }
}

#[derive(Debug)]
pub struct Watcher {
    state: State,
    flag: Flag,
    /// Told when a head spans reads (the header timeout's clock).
    clock: Option<Arc<ConnState>>,
    /// Whether the clock was last told a head is in progress.
    timing: bool,
}

impl Watcher {
    pub fn new(flag: Flag) -> Watcher {
        Watcher {
            state: State::Head(Vec::new()),
            flag,
            clock: None,
            timing: false,
        }
    }

    /// Also start `state`'s header clock when a request head's first bytes
    /// arrive without its end, and stop it when the head is complete.
    pub fn with_clock(mut self, state: Arc<ConnState>) -> Watcher {
        self.clock = Some(state);
        self
    }

    /// Feed bytes read from the client.
    pub fn feed(&mut self, data: &[u8]) {
        self.feed_bytes(data);
        if let Some(clock) = &self.clock {
            let timing = matches!(&self.state, State::Head(buf) if !buf.is_empty());
            // Only transitions reach the shared state (most reads hold a
            // whole head and start nothing).
            if timing != self.timing {
                self.timing = timing;
                if timing {
                    clock.head_started();
                } else {
                    clock.head_done();
                }
            }
        }
    }

    fn feed_bytes(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Head(buf) => {
                    if buf.is_empty() {
                        // Empty lines before a request line are ignored
                        // (RFC 9112 §2.2), as httparse does.
                        let blank = data
                            .iter()
                            .take_while(|b| matches!(b, b'\r' | b'\n'))
                            .count();
                        data = &data[blank..];
                        if data.is_empty() {
                            return;
                        }
                    }
                    if buf.is_empty() && data.starts_with(b"PRI * HTTP/2.0") {
                        self.state = State::Off;
                        return;
                    }
                    // The usual case: the whole head in one read, checked
                    // where it lies, without a copy.
                    if buf.is_empty()
                        && let Some(end) = find(data, b"\r\n\r\n")
                    {
                        let head_len = end + 4;
                        if has_bare_lf(&data[..head_len], true) {
                            self.raise(BARE_LF);
                            self.state = State::Off;
                            return;
                        }
                        self.state = self.after_head(&data[..head_len]);
                        data = &data[head_len..];
                        continue;
                    }
                    // A head over several reads: only the new bytes, and a
                    // terminator begun in the buffered ones, are searched,
                    // so a head trickled a byte per read stays linear.
                    let checked_from = buf.len().saturating_sub(1);
                    let end = head_end(buf, data);
                    let take = end.unwrap_or(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    // Only the head: a body that follows may hold any bytes.
                    if has_bare_lf(&buf[checked_from..], checked_from == 0) {
                        self.raise(BARE_LF);
                        self.state = State::Off;
                        return;
                    }
                    if end.is_none() {
                        if buf.len() > MAX_BUFFER {
                            self.state = State::Off;
                        }
                        return;
                    }
                    let head = std::mem::take(buf);
                    // The loop goes on with what followed the head: many
                    // pipelined requests in one read cost no stack.
                    self.state = self.after_head(&head);
                }
                State::Fixed(n) => {
                    let k = (*n).min(data.len() as u64);
                    *n -= k;
                    data = &data[k as usize..];
                    if *n == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => {
                    let Some(pos) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_BUFFER {
                            self.state = State::Off;
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..=pos]);
                    data = &data[pos + 1..];
                    let text = String::from_utf8_lossy(line);
                    let size = text.trim().split(';').next().unwrap_or("").trim();
                    self.state = match u64::from_str_radix(size, 16) {
                        Ok(0) => State::Trailers(Vec::new()),
                        Ok(n) => State::ChunkData(n.saturating_add(2)),
                        Err(_) => State::Off,
                    };
                }
                State::ChunkData(n) => {
                    let k = (*n).min(data.len() as u64);
                    *n -= k;
                    data = &data[k as usize..];
                    if *n == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(line) => {
                    let Some(pos) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_BUFFER {
                            self.state = State::Off;
                        }
                        return;
                    };
                    line.extend_from_slice(&data[..=pos]);
                    data = &data[pos + 1..];
                    let empty = line.as_slice() == b"\r\n" || line.as_slice() == b"\n";
                    line.clear();
                    if empty {
                        self.state = State::Head(Vec::new());
                    }
                }
            }
        }
    }

    /// Record the connection's first problem.
    fn raise(&self, code: u8) {
        let _ = self
            .flag
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Framing of the body that follows a request head.
    fn after_head(&self, head: &[u8]) -> State {
        // Uninitialised slots: zeroing 128 headers (4 KiB) per request cost
        // more than parsing a typical head.
        let mut headers = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
        let mut req = httparse::Request::new(&mut []);
        if !matches!(
            req.parse_with_uninit_headers(head, &mut headers),
            Ok(httparse::Status::Complete(_))
        ) {
            return State::Off;
        }
        let mut content_length: Option<u64> = None;
        let mut te: Option<Vec<u8>> = None;
        let mut upgrade = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                content_length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                if content_length.is_none() {
                    return State::Off;
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Several lines are one list (RFC 9110 §5.3).
                let v = h.value.to_ascii_lowercase();
                te = Some(match te {
                    Some(mut all) => {
                        all.push(b',');
                        all.extend_from_slice(&v);
                        all
                    }
                    None => v,
                });
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if te.is_some() && content_length.is_some() {
            self.raise(CONTENT_LENGTH_AND_CHUNKED);
        }
        if let Some(te) = &te
            && !te.trim_ascii().eq_ignore_ascii_case(b"chunked")
        {
            self.raise(INVALID_TRANSFER_ENCODING);
        }
        if upgrade || req.method == Some("CONNECT") {
            return State::Off;
        }
        match (te, content_length) {
            (Some(te), _) => {
                let last = te
                    .rsplit(|b| *b == b',')
                    .next()
                    .unwrap_or(&[])
                    .trim_ascii()
                    .to_vec();
                if last == b"chunked" {
                    State::ChunkSize(Vec::new())
                } else {
                    State::Off
                }
            }
            (None, Some(0)) | (None, None) => State::Head(Vec::new()),
            (None, Some(n)) => State::Fixed(n),
        }
    }
}

/// Whether `bytes` has an LF not preceded by CR; `at_start` when `bytes`
/// begins the head (so its first byte has no predecessor).
fn has_bare_lf(bytes: &[u8], at_start: bool) -> bool {
    if at_start && bytes.first() == Some(&b'\n') {
        return true;
    }
    memchr::memchr_iter(b'\n', bytes).any(|i| i > 0 && bytes[i - 1] != b'\r')
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Where in `data` the head that `buffered` began ends (just after its
/// blank line), if it does.
fn head_end(buffered: &[u8], data: &[u8]) -> Option<usize> {
    const END: &[u8; 4] = b"\r\n\r\n";
    // A terminator straddling the two ends within data's first 3 bytes,
    // before any terminator wholly inside `data`.
    (1..=data.len().min(3))
        .find(|&k| buffered.ends_with(&END[..4 - k]) && data[..k] == END[4 - k..])
        .or_else(|| memchr::memmem::find(data, END).map(|i| i + END.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(chunks: &[&[u8]]) -> u8 {
        let flag = Flag::default();
        let mut w = Watcher::new(flag.clone());
        for c in chunks {
            w.feed(c);
        }
        flag.load(Ordering::Acquire)
    }

    fn flagged(chunks: &[&[u8]]) -> bool {
        code(chunks) != 0
    }

    #[test]
    fn the_header_clock_runs_only_while_a_head_spans_reads() {
        let state = Arc::new(ConnState::default());
        let mut w = Watcher::new(Flag::default()).with_clock(state.clone());
        w.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!state.head_in_progress(), "a head in one read");
        w.feed(b"GET / HTTP/1.1\r\nHo");
        assert!(state.head_in_progress(), "the first bytes of a head");
        w.feed(b"st: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc");
        assert!(!state.head_in_progress(), "a body is not a head");
        w.feed(b"defghi\r\n");
        assert!(!state.head_in_progress(), "blank lines between requests");
        w.feed(b"GET / HTTP/1.1\r\n");
        assert!(state.head_in_progress(), "the next head began");
        w.feed(b"Upgrade: websocket\r\nHost: a\r\n\r\n");
        assert!(
            !state.head_in_progress(),
            "no longer watched after an upgrade"
        );
    }

    #[test]
    fn transfer_encoding_other_than_one_chunked_is_flagged() {
        for te in [
            &b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"[..],
            b"Transfer-Encoding: gzip, chunked\r\n",
            b"Transfer-Encoding: identity\r\n",
        ] {
            let head = [&b"POST / HTTP/1.1\r\nHost: a\r\n"[..], te, b"\r\n"].concat();
            assert_eq!(code(&[&head]), INVALID_TRANSFER_ENCODING, "{te:?}");
        }
        assert!(!flagged(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"
        ]));
    }

    #[test]
    fn bare_lf_in_the_head_is_flagged_even_split_across_reads() {
        assert_eq!(code(&[b"GET / HTTP/1.1\nHost: a\n\n"]), BARE_LF);
        assert_eq!(
            code(&[b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\nY: 2\r\n\r\n"]),
            BARE_LF
        );
        assert_eq!(
            code(&[b"GET / HTTP/1.1\r", b"\nHost: a\n", b"\r\n"]),
            BARE_LF
        );
        assert!(!flagged(&[b"GET / HTTP/1.1\r", b"\nHost: a\r", b"\n\r\n"]));
        // A body may hold any bytes.
        assert!(!flagged(&[
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\na\nb"
        ]));
    }

    #[test]
    fn content_length_with_transfer_encoding_is_flagged() {
        assert_eq!(code(&[b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]), CONTENT_LENGTH_AND_CHUNKED);
        assert!(flagged(&[b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"]));
    }

    #[test]
    fn ordinary_keep_alive_traffic_is_not_flagged() {
        let body_mentions_headers = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 48\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(!flagged(&[body_mentions_headers]));
        let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(!flagged(&[chunked]));
        // Split at awkward places.
        let parts: Vec<&[u8]> = chunked.chunks(3).collect();
        assert!(!flagged(&parts));
    }

    #[test]
    fn smuggled_second_request_is_flagged() {
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(flagged(&[two]));
    }

    #[test]
    fn http2_preface_turns_the_watcher_off() {
        assert!(!flagged(&[
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: x\r\n\r\n"
        ]));
    }
}

#[cfg(test)]
mod fuzz_regressions {
    use super::*;

    /// One read can hold thousands of tiny pipelined requests (hyper reads
    /// up to its 60 KiB buffer at once); following them must not grow the
    /// stack with their number.
    #[test]
    fn many_pipelined_requests_in_one_read_do_not_overflow_the_stack() {
        let one: &[u8] = b"A * HTTP/1.1\r\n\r\n";
        let data: Vec<u8> = one.repeat(64 * 1024 / one.len());
        let flagged = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let flag = Arc::new(std::sync::atomic::AtomicU8::new(0));
                let mut w = Watcher::new(flag.clone());
                w.feed(&data);
                w.feed(
                    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                );
                flag.load(Ordering::Acquire) != 0
            })
            .expect("spawn")
            .join()
            .expect("the watcher overflowed a 256 KiB stack");
        assert!(flagged, "still watching after 4096 requests");
    }

    /// The terminator can straddle reads at every offset: fed one byte at
    /// a time, the watcher finds each head exactly where it does whole.
    #[test]
    fn heads_split_at_every_byte_give_the_same_verdict() {
        let cases: [&[u8]; 3] = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 48\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for data in cases {
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(
                flagged(&bytes),
                flagged(&[data]),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
        assert!(flagged(&cases[0].chunks(1).collect::<Vec<_>>()));
        assert!(!flagged(&cases[1].chunks(1).collect::<Vec<_>>()));
    }

    fn flagged(chunks: &[&[u8]]) -> bool {
        let flag = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let mut w = Watcher::new(flag.clone());
        for c in chunks {
            w.feed(c);
        }
        flag.load(Ordering::Acquire) != 0
    }
}
