//! Request and response heads: parsed by `httparse` into byte ranges of the
//! head's own buffer, with the message framing decided once (RFC 9112 §6.1–
//! §6.3) and Envoy's refusals for the shapes that smuggle requests.

use crate::header_list::HeaderList;
use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

/// Bounds on a head, Envoy's `max_request_headers_kb` and
/// `max_headers_count` (the same defaults, 60 KiB and 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Largest head, counted as Envoy counts it: the method, the target and
    /// every header's name and value.
    pub max_head_bytes: usize,
    /// Most header lines.
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 60 * 1024,
            max_headers: 100,
        }
    }
}

impl HeadLimits {
    /// The most raw bytes buffered while looking for a head's end: room for
    /// the counted bytes plus the separators and line ends of every line. A
    /// longer unterminated head cannot fit the counted limit unless padded
    /// with whitespace, and is refused as too large.
    fn max_raw(&self) -> usize {
        self.max_head_bytes
            .saturating_mul(2)
            .saturating_add(self.max_headers.saturating_mul(4))
            .saturating_add(1024)
    }
}

/// Why a message is refused: the status and Envoy's response code details
/// a client is answered with. The connection closes after any of them:
/// nothing after a refused head can be trusted as the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an HTTP/1.x message: a bad request or status line, header syntax,
    /// a bare LF line end, an invalid Content-Length, bad chunked framing.
    Malformed,
    /// Content-Length together with Transfer-Encoding (Envoy's
    /// `allow_chunked_length: false`).
    ContentLengthAndChunked,
    /// A Transfer-Encoding other than exactly one `chunked`.
    TransferEncoding,
    /// A head over [`HeadLimits`].
    TooLarge,
    /// A request target longer than hyper accepts (65,534 bytes).
    UriTooLong,
}

impl Refusal {
    /// The HTTP status of the local reply.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Malformed | Refusal::ContentLengthAndChunked => 400,
            Refusal::TransferEncoding => 501,
            Refusal::TooLarge => 431,
            Refusal::UriTooLong => 414,
        }
    }

    /// Envoy's `%RESPONSE_CODE_DETAILS%`.
    pub fn details(self) -> &'static str {
        match self {
            Refusal::Malformed | Refusal::UriTooLong => "http1.codec_error",
            Refusal::ContentLengthAndChunked => "http1.content_length_and_chunked_not_allowed",
            Refusal::TransferEncoding => "http1.invalid_transfer_encoding",
            Refusal::TooLarge => "http1.headers_too_large",
        }
    }
}

/// The HTTP/1 minor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a request without Content-Length or Transfer-Encoding; a
    /// response to HEAD; 1xx, 204 and 304 responses).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding ([`super::chunked`]).
    Chunked,
    /// A response body read until the connection closes.
    UntilClose,
}

/// A byte range of the head's buffer (a head is at most a few hundred KiB,
/// so `u32` offsets halve the header list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The range of `part`, a subslice of `base`.
    fn of(base: &[u8], part: &[u8]) -> Span {
        // Pointer arithmetic on addresses only (no dereference): `part`
        // was produced by httparse from `base`.
        let start = (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn get(self, bytes: &[u8]) -> &[u8] {
        bytes
            .get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// httparse's lines as ranges of `base` (the slices it parsed them from),
/// in the list the request path carries: built once, no intermediate
/// vector. Its base is set when the head is frozen (`Fields::frozen`).
fn list_of(base: &[u8], parsed: &[httparse::Header<'_>]) -> HeaderList {
    HeaderList::from_ranges(
        Bytes::new(),
        parsed.iter().map(|h| {
            let (n, v) = (Span::of(base, h.name.as_bytes()), Span::of(base, h.value));
            (n.start..n.end, v.start..v.end)
        }),
    )
}

/// A header list: a head's, or a chunked body's trailers.
#[derive(Debug, Clone)]
pub struct Fields {
    bytes: Bytes,
    /// The lines, ranges of `bytes`; taken by the request path
    /// ([`RequestHead::take_header_list`]).
    list: HeaderList,
}

impl PartialEq for Fields {
    fn eq(&self, other: &Fields) -> bool {
        self.bytes == other.bytes && self.iter().eq(other.iter())
    }
}

impl Eq for Fields {}

impl Fields {
    /// The lines `parsed` found in `bytes` (httparse's slices of it).
    pub(super) fn new(bytes: Bytes, parsed: &[httparse::Header<'_>]) -> Fields {
        let list = list_of(&bytes, parsed);
        Fields::frozen(bytes, list)
    }

    /// The head's frozen bytes with the lines `list_of` found in them.
    fn frozen(bytes: Bytes, mut list: HeaderList) -> Fields {
        list.set_base(bytes.clone());
        Fields { bytes, list }
    }

    /// Every line in order, names as sent.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The lines as a header map for the request path, values sharing the
    /// head's bytes (no copy); a name or value `http` refuses is malformed.
    pub fn to_header_map(&self) -> Result<http::HeaderMap, Refusal> {
        self.list.to_header_map().map_err(|_| Refusal::Malformed)
    }
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct RequestHead {
    fields: Fields,
    method: http::Method,
    target: Span,
    uri: http::Uri,
    /// The minor version.
    pub version: Version,
    /// How the body is delimited.
    pub body: Framing,
    /// Whether the connection may carry another request after this one
    /// (HTTP/1.1 unless `Connection: close`; HTTP/1.0 with `keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` header.
    pub upgrade: bool,
}

impl RequestHead {
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The request target as sent (origin form `/p?q`, absolute form, `*`).
    pub fn target(&self) -> &[u8] {
        self.target.get(&self.fields.bytes)
    }

    /// The target as a URI (a fragment is dropped, as hyper drops it).
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// Every header line in order, names lowercase.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter()
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields.get(name)
    }

    /// The header lines as a header map (see [`Fields::to_header_map`]).
    pub fn header_map(&self) -> Result<http::HeaderMap, Refusal> {
        self.fields.to_header_map()
    }

    /// The header lines, moved out for the request path (no copy): the
    /// head has none left after this.
    pub fn take_header_list(&mut self) -> HeaderList {
        std::mem::take(&mut self.fields.list)
    }

    /// How many header lines.
    pub fn header_count(&self) -> usize {
        self.fields.len()
    }

    /// The head as received, through its empty line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.fields.bytes
    }
}

/// A parsed response head.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    fields: Fields,
    /// The status code.
    pub status: u16,
    reason: Span,
    /// The minor version.
    pub version: Version,
    /// How the body is delimited (given the request's method).
    pub body: Framing,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

impl ResponseHead {
    /// The reason phrase as sent.
    pub fn reason(&self) -> &[u8] {
        self.reason.get(&self.fields.bytes)
    }

    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter()
    }

    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields.get(name)
    }

    /// The lines, moved out for the request path (no copy): the head has
    /// none left after this.
    pub fn take_header_list(&mut self) -> HeaderList {
        std::mem::take(&mut self.fields.list)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.fields.bytes
    }
}

/// Where a head ends in `buf` (the index after its empty line), looking
/// from `from`: the first `\n\r\n` or `\n\n`. Sets `bare_lf` when a line
/// it passes ends in LF without CR (RFC 9112 §2.2 allows accepting it;
/// Envoy and HTTP Garden's parsers refuse it), so `\n\n` only ends heads
/// that are refused. One pass over the line ends.
fn head_end(buf: &[u8], from: usize, bare_lf: &mut bool) -> Option<usize> {
    // A head has a few lines: jumping from LF to LF (memchr) is cheap.
    for lf in memchr::memchr_iter(b'\n', buf.get(from..)?).map(|p| from + p) {
        if lf == 0 || buf[lf - 1] != b'\r' {
            *bare_lf = true;
        }
        match buf.get(lf + 1) {
            Some(b'\n') => {
                *bare_lf = true;
                return Some(lf + 2);
            }
            Some(b'\r') => match buf.get(lf + 2) {
                Some(b'\n') => return Some(lf + 3),
                Some(_) => {}
                // Too few bytes after this LF to tell: wait for more.
                None => return None,
            },
            Some(_) => {}
            None => return None,
        }
    }
    None
}

/// An incremental head reader for one connection: remembers how far the
/// buffer was searched, so a head trickled a byte per read stays linear.
#[derive(Debug, Default)]
pub struct HeadReader {
    searched: usize,
    /// A bare LF was seen in the head being read.
    bare_lf: bool,
}

impl HeadReader {
    /// Take a complete head off the front of `buf`: `Ok(None)` while more
    /// bytes are needed. Blank lines before a head are dropped (RFC 9112
    /// §2.2).
    fn take(
        &mut self,
        buf: &mut BytesMut,
        limits: &HeadLimits,
    ) -> Result<Option<BytesMut>, Refusal> {
        if self.searched == 0 {
            let blank = buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            // `advance`, not `split_to`: no shared buffer made for nothing.
            if blank > 0 {
                bytes::Buf::advance(buf, blank);
            }
            if buf.is_empty() {
                return Ok(None);
            }
            self.bare_lf = false;
        }
        // A terminator may straddle the previous search's end.
        let from = self.searched.saturating_sub(2);
        match head_end(buf, from, &mut self.bare_lf) {
            // However it arrived (a head read whole may end within the
            // bytes a trickled one is refused at).
            Some(end) if end > limits.max_raw() => Err(Refusal::TooLarge),
            Some(end) => {
                self.searched = 0;
                if self.bare_lf {
                    return Err(Refusal::Malformed);
                }
                Ok(Some(buf.split_to(end)))
            }
            None if buf.len() > limits.max_raw() => Err(Refusal::TooLarge),
            None => {
                self.searched = buf.len();
                Ok(None)
            }
        }
    }
}

/// Parse a request head off the front of `buf` with a fresh reader (see
/// [`RequestReader`] for a connection's incremental one).
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<Option<RequestHead>, Refusal> {
    RequestReader::default().read(buf, limits)
}

/// Reads request heads off a connection's buffer.
#[derive(Debug, Default)]
pub struct RequestReader {
    head: HeadReader,
}

/// httparse's header slots on the stack; heads with more lines (a limit
/// over the default) parse again into a vector.
const STACK_HEADERS: usize = 128;

impl RequestReader {
    /// The next request head, `Ok(None)` while incomplete.
    pub fn read(
        &mut self,
        buf: &mut BytesMut,
        limits: &HeadLimits,
    ) -> Result<Option<RequestHead>, Refusal> {
        let Some(bytes) = self.head.take(buf, limits)? else {
            return Ok(None);
        };
        request_from(bytes, limits).map(Some)
    }
}

fn request_from(mut bytes: BytesMut, limits: &HeadLimits) -> Result<RequestHead, Refusal> {
    let line = parse_request_line(&bytes, limits)?;
    lowercase_names(&mut bytes, &line.headers);
    let bytes = bytes.freeze();
    let RequestLine {
        method,
        target,
        minor,
        headers,
    } = line;
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let fields = Fields::frozen(bytes, headers);
    let framing = FramingHeaders::of(&fields)?;
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
    // framing.
    if version == Version::Http10 && framing.transfer_encoding {
        return Err(Refusal::Malformed);
    }
    let body = framing.request_body()?;
    // The target as the request path reads it (hyper's check: origin,
    // absolute, authority or asterisk form, valid characters); a slice of
    // the head, not a copy.
    let uri = http::Uri::from_maybe_shared(
        fields
            .bytes
            .slice(target.start as usize..target.end as usize),
    )
    .map_err(|_| Refusal::Malformed)?;
    Ok(RequestHead {
        uri,
        keep_alive: framing.keep_alive(version),
        expect_continue: framing.expect_continue,
        upgrade: framing.connection_upgrade && fields.get(b"upgrade").is_some(),
        fields,
        method,
        target,
        version,
        body,
    })
}

/// A request head's line and header ranges, parsed and counted against
/// the limits.
struct RequestLine {
    method: http::Method,
    target: Span,
    minor: u8,
    headers: HeaderList,
}

fn parse_request_line(bytes: &[u8], limits: &HeadLimits) -> Result<RequestLine, Refusal> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut vec_slots;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers < STACK_HEADERS {
        &mut slots[..=limits.max_headers]
    } else {
        vec_slots = Vec::new();
        vec_slots.resize_with(limits.max_headers.saturating_add(1), MaybeUninit::uninit);
        &mut vec_slots
    };
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(bytes, slots) {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        _ => return Err(Refusal::Malformed),
    }
    if req.headers.len() > limits.max_headers {
        return Err(Refusal::TooLarge);
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::Malformed);
    };
    if path.len() > 65_534 {
        return Err(Refusal::UriTooLong);
    }
    let mut counted = method.len() + path.len();
    for h in req.headers.iter() {
        counted += h.name.len() + h.value.len();
    }
    if counted > limits.max_head_bytes {
        return Err(Refusal::TooLarge);
    }
    Ok(RequestLine {
        method: http::Method::from_bytes(method.as_bytes()).map_err(|_| Refusal::Malformed)?,
        target: Span::of(bytes, path.as_bytes()),
        minor,
        headers: list_of(bytes, req.headers),
    })
}

/// Header names lowercase in the head itself, as `http` and Envoy keep
/// them: lookups compare bytes, and what is forwarded is lowercase as
/// Envoy's HTTP/1 codec writes it.
fn lowercase_names(bytes: &mut [u8], headers: &HeaderList) {
    for r in headers.name_ranges() {
        if let Some(name) = bytes.get_mut(r) {
            make_lowercase(name);
        }
    }
}

/// `make_ascii_lowercase`, a word at a time (a byte at a time was ~400
/// instructions a request for its and its response's names). The last
/// word overlaps the one before it: lowercasing twice changes nothing.
pub(super) fn make_lowercase(name: &mut [u8]) {
    let n = name.len();
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            lowercase_at::<8>(name, at);
            at += 8;
        }
        if at < n {
            lowercase_at::<8>(name, n - 8);
        }
    } else if n >= 4 {
        lowercase_at::<4>(name, 0);
        lowercase_at::<4>(name, n - 4);
    } else {
        name.make_ascii_lowercase();
    }
}

/// Lowercase the `N` (at most 8) bytes of `name` from `at`.
fn lowercase_at<const N: usize>(name: &mut [u8], at: usize) {
    let Some(bytes) = name.get_mut(at..at + N) else {
        return;
    };
    let mut word = [0u8; 8];
    word[..N].copy_from_slice(bytes);
    let lower = lowercase_word(u64::from_le_bytes(word)).to_le_bytes();
    bytes.copy_from_slice(&lower[..N]);
}

/// Each byte of `w` in `A`..=`Z` gets bit 5 set; no other byte changes.
/// A byte's low seven bits plus 0x3f carry into its top bit when it is at
/// least `A`, plus 0x25 when it is past `Z`; neither sum leaves the byte,
/// and a byte with its top bit set (not ASCII) is left alone.
const fn lowercase_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let low = w & (ONES * 0x7f);
    let from_a = low + ONES * (0x80 - b'A' as u64);
    let past_z = low + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = from_a & !past_z & !w & (ONES * 0x80);
    w | (upper >> 2)
}

/// What the framing headers of a head say.
#[derive(Debug, Default)]
struct FramingHeaders {
    /// Every Content-Length value agreed on this length.
    content_length: Option<u64>,
    /// Content-Length lines seen.
    length_lines: usize,
    /// Transfer-Encoding lines seen.
    transfer_encoding: bool,
    /// The codings of every Transfer-Encoding line are exactly `chunked`.
    only_chunked: bool,
    /// The last coding is `chunked` (what a response's framing needs).
    last_chunked: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    connection_upgrade: bool,
    /// `Expect: 100-continue`.
    expect_continue: bool,
}

impl FramingHeaders {
    fn of(fields: &Fields) -> Result<FramingHeaders, Refusal> {
        let mut f = FramingHeaders::default();
        let mut codings = 0usize;
        let mut chunked_codings = 0usize;
        // Names are lowercase already (`lowercase_names`): a match on the
        // bytes is a switch on the length and one comparison.
        for (name, value) in fields.iter() {
            debug_assert!(!name.iter().any(u8::is_ascii_uppercase));
            match name {
                b"expect" => {
                    f.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
                }
                b"content-length" => {
                    // Repeated lines of one value count as one (RFC 9110
                    // §8.6); a list in one line or differing values are
                    // refused, as hyper refuses them today.
                    f.length_lines += 1;
                    let n = content_length(value.trim_ascii()).ok_or(Refusal::Malformed)?;
                    if f.content_length.is_some_and(|m| m != n) {
                        return Err(Refusal::Malformed);
                    }
                    f.content_length = Some(n);
                }
                b"transfer-encoding" => {
                    f.transfer_encoding = true;
                    for coding in value.split(|&c| c == b',') {
                        let coding = coding.trim_ascii();
                        if coding.is_empty() {
                            continue;
                        }
                        codings += 1;
                        let chunked = coding.eq_ignore_ascii_case(b"chunked");
                        chunked_codings += usize::from(chunked);
                        f.last_chunked = chunked;
                    }
                }
                b"connection" => {
                    // The usual value alone, without splitting.
                    if value.eq_ignore_ascii_case(b"keep-alive") {
                        f.connection_keep_alive = true;
                        continue;
                    }
                    for token in value.split(|&c| c == b',') {
                        let token = token.trim_ascii();
                        if token.eq_ignore_ascii_case(b"close") {
                            f.connection_close = true;
                        } else if token.eq_ignore_ascii_case(b"keep-alive") {
                            f.connection_keep_alive = true;
                        } else if token.eq_ignore_ascii_case(b"upgrade") {
                            f.connection_upgrade = true;
                        }
                    }
                }
                _ => {}
            }
        }
        f.only_chunked = codings == 1 && chunked_codings == 1;
        Ok(f)
    }

    /// A request's body: Transfer-Encoding must be exactly `chunked` (501
    /// otherwise, as Envoy) and never with Content-Length (400).
    fn request_body(&self) -> Result<Framing, Refusal> {
        if self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(Refusal::ContentLengthAndChunked);
            }
            if !self.only_chunked {
                return Err(Refusal::TransferEncoding);
            }
            return Ok(Framing::Chunked);
        }
        Ok(match self.content_length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        })
    }

    fn keep_alive(&self, version: Version) -> bool {
        match version {
            Version::Http11 => !self.connection_close,
            Version::Http10 => self.connection_keep_alive && !self.connection_close,
        }
    }
}

/// A Content-Length value: 1*DIGIT that fits in a `u64`.
fn content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Reads response heads off an upstream connection's buffer.
#[derive(Debug, Default)]
pub struct ResponseReader {
    head: HeadReader,
}

impl ResponseReader {
    /// The next response head for a request with `method`, `Ok(None)`
    /// while incomplete. 1xx heads come back as they are (the caller reads
    /// the final head after them).
    pub fn read(
        &mut self,
        buf: &mut BytesMut,
        limits: &HeadLimits,
        method: &http::Method,
    ) -> Result<Option<ResponseHead>, Refusal> {
        let Some(bytes) = self.head.take(buf, limits)? else {
            return Ok(None);
        };
        response_from(bytes, limits, method).map(Some)
    }
}

/// Parse a response head off the front of `buf` with a fresh reader.
pub fn parse_response(
    buf: &mut BytesMut,
    limits: &HeadLimits,
    method: &http::Method,
) -> Result<Option<ResponseHead>, Refusal> {
    ResponseReader::default().read(buf, limits, method)
}

fn response_from(
    mut bytes: BytesMut,
    limits: &HeadLimits,
    method: &http::Method,
) -> Result<ResponseHead, Refusal> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    let mut vec_slots;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.max_headers < STACK_HEADERS {
        &mut slots[..=limits.max_headers]
    } else {
        vec_slots = Vec::new();
        vec_slots.resize_with(limits.max_headers.saturating_add(1), MaybeUninit::uninit);
        &mut vec_slots
    };
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, &bytes, slots)
    {
        Ok(httparse::Status::Complete(n)) if n == bytes.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        _ => return Err(Refusal::Malformed),
    }
    let (Some(status), Some(minor)) = (res.code, res.version) else {
        return Err(Refusal::Malformed);
    };
    let reason = res.reason.map_or(Span { start: 0, end: 0 }, |r| {
        Span::of(&bytes, r.as_bytes())
    });
    let headers = list_of(&bytes, res.headers);
    // Lowercase as for requests: Envoy's HTTP/1 codec forwards them so.
    lowercase_names(&mut bytes, &headers);
    let fields = Fields::frozen(bytes.freeze(), headers);
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let framing = FramingHeaders::of(&fields)?;
    // A length two parsers could read differently is refused, as strait
    // refuses it from upstreams (UPE): both framings, or several lengths.
    if framing.transfer_encoding && framing.content_length.is_some() {
        return Err(Refusal::ContentLengthAndChunked);
    }
    if framing.length_lines > 1 {
        return Err(Refusal::Malformed);
    }
    // RFC 9112 §6.3, in its order: no body for HEAD, 1xx, 204, 304; then
    // Transfer-Encoding (chunked last, else until close); then
    // Content-Length.
    let body = if *method == http::Method::HEAD
        || (100..200).contains(&status)
        || status == 204
        || status == 304
    {
        Framing::Empty
    } else if framing.transfer_encoding {
        if framing.last_chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        match framing.content_length {
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    Ok(ResponseHead {
        keep_alive: framing.keep_alive(version) && body != Framing::UntilClose,
        fields,
        status,
        reason,
        version,
        body,
    })
}
