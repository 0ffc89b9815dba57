//! HTTP/2 frames (RFC 9113 §4 and §6): parsed from a byte slice into views
//! of it (no copy), each malformation classified as §5.4 and §6 say; and
//! writers that append frames to an output buffer.
//!
//! The parser is for a server: a PUSH_PROMISE is a connection error
//! (§8.4: a client cannot push). Checks that need the connection's state
//! (stream states, a CONTINUATION's place in a header block, flow control)
//! are the connection layer's; everything one frame shows on its own is
//! checked here.

use bytes::BufMut;

use super::error::{Error, ErrorCode};

/// The frame header's size (§4.1).
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value and lower bound (§6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// SETTINGS_MAX_FRAME_SIZE's upper bound, 2^24-1 (§6.5.2).
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window and WINDOW_UPDATE increment, 2^31-1
/// (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// The initial flow-control window of a connection and of each stream
/// (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;

/// Frame types (§6; unknown types are ignored, §4.1).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6; each meaningful only on the types named).
pub mod flag {
    /// DATA, HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE.
    pub const PADDED: u8 = 0x8;
    /// HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// The 9-byte frame header (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The payload's length (24 bits).
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier, the reserved bit cleared (§4.1: ignored on
    /// receipt).
    pub stream: u32,
}

impl FrameHeader {
    /// The header at the start of `b`; `None` until 9 bytes are there.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW,
        })
    }

    /// Append the header to `out` (`len` is cut to 24 bits, the stream's
    /// reserved bit cleared).
    pub fn write(&self, out: &mut impl BufMut) {
        let len = self.len.to_be_bytes();
        out.put_slice(&[len[1], len[2], len[3], self.kind, self.flags]);
        out.put_u32(self.stream & MAX_WINDOW);
    }

    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// A HEADERS frame's or PRIORITY frame's priority fields (§5.3.2 of RFC
/// 7540, deprecated by RFC 9113 §5.3.2 but still parsed: their length
/// counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub exclusive: bool,
    pub dependency: u32,
    /// The weight minus one, as sent.
    pub weight: u8,
}

impl Priority {
    fn parse(b: &[u8; 5]) -> Priority {
        let dep = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Priority {
            exclusive: dep & !MAX_WINDOW != 0,
            dependency: dep & MAX_WINDOW,
            weight: b[4],
        }
    }
}

/// SETTINGS parameters (§6.5.2; RFC 8441 §3; RFC 9218 §2.1).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
    pub const NO_RFC7540_PRIORITIES: u16 = 0x9;
}

/// What one SETTINGS frame set, each parameter's last value (§6.5: they
/// are processed in order, so the last one wins); unknown parameters are
/// ignored (§6.5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    pub header_table_size: Option<u32>,
    pub enable_push: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
    pub enable_connect_protocol: Option<bool>,
    pub no_rfc7540_priorities: Option<bool>,
}

impl Settings {
    /// The parameters of a SETTINGS payload, validated (§6.5.2).
    fn parse(payload: &[u8]) -> Result<Settings, Error> {
        let mut s = Settings::default();
        for p in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([p[0], p[1]]);
            let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            let flag = |reason| match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(Error::connection(ErrorCode::PROTOCOL_ERROR, reason)),
            };
            match id {
                setting::HEADER_TABLE_SIZE => s.header_table_size = Some(v),
                setting::ENABLE_PUSH => {
                    s.enable_push = Some(flag("SETTINGS_ENABLE_PUSH other than 0 or 1")?);
                }
                setting::MAX_CONCURRENT_STREAMS => s.max_concurrent_streams = Some(v),
                setting::INITIAL_WINDOW_SIZE if v > MAX_WINDOW => {
                    return Err(Error::connection(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                    ));
                }
                setting::INITIAL_WINDOW_SIZE => s.initial_window_size = Some(v),
                setting::MAX_FRAME_SIZE
                    if !(DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&v) =>
                {
                    return Err(Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1",
                    ));
                }
                setting::MAX_FRAME_SIZE => s.max_frame_size = Some(v),
                setting::MAX_HEADER_LIST_SIZE => s.max_header_list_size = Some(v),
                setting::ENABLE_CONNECT_PROTOCOL => {
                    s.enable_connect_protocol =
                        Some(flag("SETTINGS_ENABLE_CONNECT_PROTOCOL other than 0 or 1")?);
                }
                setting::NO_RFC7540_PRIORITIES => {
                    s.no_rfc7540_priorities =
                        Some(flag("SETTINGS_NO_RFC7540_PRIORITIES other than 0 or 1")?);
                }
                _ => {}
            }
        }
        Ok(s)
    }

    /// The parameters that are set, in the order `write` sends them.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u32)> {
        let b = |v: Option<bool>| v.map(u32::from);
        [
            (setting::HEADER_TABLE_SIZE, self.header_table_size),
            (setting::ENABLE_PUSH, b(self.enable_push)),
            (setting::MAX_CONCURRENT_STREAMS, self.max_concurrent_streams),
            (setting::INITIAL_WINDOW_SIZE, self.initial_window_size),
            (setting::MAX_FRAME_SIZE, self.max_frame_size),
            (setting::MAX_HEADER_LIST_SIZE, self.max_header_list_size),
            (
                setting::ENABLE_CONNECT_PROTOCOL,
                b(self.enable_connect_protocol),
            ),
            (
                setting::NO_RFC7540_PRIORITIES,
                b(self.no_rfc7540_priorities),
            ),
        ]
        .into_iter()
        .filter_map(|(id, v)| Some((id, v?)))
    }
}

/// One frame, its payload borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        end_stream: bool,
        /// The data, padding removed.
        data: &'a [u8],
        /// The whole payload's length, padding included: what flow control
        /// counts (§6.1).
        flow_len: u32,
    },
    /// A HEADERS frame. Its `priority` may name the stream itself, a
    /// stream error (§5.3.1 of RFC 7540) that the connection layer raises
    /// only after the field block is decoded: the block must still reach
    /// the HPACK decoder (RFC 9113 §4.3).
    Headers {
        stream: u32,
        end_stream: bool,
        end_headers: bool,
        priority: Option<Priority>,
        /// The field block fragment, padding removed.
        fragment: &'a [u8],
    },
    Priority {
        stream: u32,
        priority: Priority,
    },
    RstStream {
        stream: u32,
        code: ErrorCode,
    },
    Settings(Settings),
    SettingsAck,
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: &'a [u8],
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        end_headers: bool,
        fragment: &'a [u8],
    },
    /// A frame of a type this codec does not know (§4.1: ignored, except
    /// inside a header block, §6.10, which the connection layer checks).
    Unknown {
        kind: u8,
        stream: u32,
    },
}

fn conn(code: ErrorCode, reason: &'static str) -> Error {
    Error::connection(code, reason)
}

/// The first frame in `buf`, and the bytes it took: `Ok(None)` until the
/// whole frame is there. A frame longer than `max_frame_size` (the
/// SETTINGS_MAX_FRAME_SIZE this side advertised) is refused as soon as its
/// header is read, so a peer never makes the connection buffer more than
/// one frame of that size.
pub fn parse(buf: &[u8], max_frame_size: u32) -> Result<Option<(Frame<'_>, usize)>, Error> {
    let Some(h) = FrameHeader::parse(buf) else {
        return Ok(None);
    };
    // §4.2: any frame over the limit is a connection error here, as h2 and
    // nghttp2 treat it (a DATA frame's too: it counts against the
    // connection's window).
    if h.len > max_frame_size {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame longer than SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    let end = HEADER_LEN + h.len as usize;
    let Some(payload) = buf.get(HEADER_LEN..end) else {
        return Ok(None);
    };
    Ok(Some((parse_payload(h, payload)?, end)))
}

/// A frame from its header and whole payload (`payload.len()` is
/// `h.len`).
pub fn parse_payload(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    match h.kind {
        kind::DATA => data(h, payload),
        kind::HEADERS => headers(h, payload),
        kind::PRIORITY => priority(h, payload),
        kind::RST_STREAM => rst_stream(h, payload),
        kind::SETTINGS => settings(h, payload),
        // §8.4: a client cannot push; RFC 9113 §6.6 makes receiving one
        // with push disabled (a server never enables it) PROTOCOL_ERROR.
        kind::PUSH_PROMISE => Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "PUSH_PROMISE from a client",
        )),
        kind::PING => ping(h, payload),
        kind::GOAWAY => goaway(h, payload),
        kind::WINDOW_UPDATE => window_update(h, payload),
        kind::CONTINUATION => {
            if h.stream == 0 {
                return Err(conn(ErrorCode::PROTOCOL_ERROR, "CONTINUATION on stream 0"));
            }
            Ok(Frame::Continuation {
                stream: h.stream,
                end_headers: h.has(flag::END_HEADERS),
                fragment: payload,
            })
        }
        kind => Ok(Frame::Unknown {
            kind,
            stream: h.stream,
        }),
    }
}

/// The payload without its padding (§6.1, §6.2): the pad length octet is
/// first, the padding last; `fixed` bytes of other fields follow the pad
/// length. Returns (fixed fields and content, without pad length or
/// padding).
fn unpad(h: FrameHeader, payload: &[u8], fixed: usize) -> Result<&[u8], Error> {
    if !h.has(flag::PADDED) {
        if payload.len() < fixed {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "frame too short for its fields",
            ));
        }
        return Ok(payload);
    }
    let Some((&pad, rest)) = payload.split_first() else {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "padded frame without a pad length",
        ));
    };
    if rest.len() < fixed {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "frame too short for its fields",
        ));
    }
    // §6.1, §6.2: padding as long as the payload or longer, or longer than
    // what is left for the content, is PROTOCOL_ERROR.
    match rest.len().checked_sub(fixed + pad as usize) {
        Some(content) => Ok(rest.get(..fixed + content).unwrap_or_default()),
        None => Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "padding longer than the frame",
        )),
    }
}

fn data(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream == 0 {
        return Err(conn(ErrorCode::PROTOCOL_ERROR, "DATA on stream 0"));
    }
    Ok(Frame::Data {
        stream: h.stream,
        end_stream: h.has(flag::END_STREAM),
        data: unpad(h, payload, 0)?,
        flow_len: h.len,
    })
}

fn headers(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream == 0 {
        return Err(conn(ErrorCode::PROTOCOL_ERROR, "HEADERS on stream 0"));
    }
    let has_priority = h.has(flag::PRIORITY);
    let body = unpad(h, payload, if has_priority { 5 } else { 0 })?;
    let (priority, fragment) = match body.split_first_chunk::<5>() {
        Some((p, rest)) if has_priority => (Some(Priority::parse(p)), rest),
        _ => (None, body),
    };
    Ok(Frame::Headers {
        stream: h.stream,
        end_stream: h.has(flag::END_STREAM),
        end_headers: h.has(flag::END_HEADERS),
        priority,
        fragment,
    })
}

fn priority(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream == 0 {
        return Err(conn(ErrorCode::PROTOCOL_ERROR, "PRIORITY on stream 0"));
    }
    // §6.3: a length other than 5 is a stream error.
    let Ok(p) = <&[u8; 5]>::try_from(payload) else {
        return Err(Error::stream(
            h.stream,
            ErrorCode::FRAME_SIZE_ERROR,
            "PRIORITY not 5 octets long",
        ));
    };
    let priority = Priority::parse(p);
    if priority.dependency == h.stream {
        return Err(Error::stream(
            h.stream,
            ErrorCode::PROTOCOL_ERROR,
            "stream depends on itself",
        ));
    }
    Ok(Frame::Priority {
        stream: h.stream,
        priority,
    })
}

fn rst_stream(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream == 0 {
        return Err(conn(ErrorCode::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
    }
    let Ok(c) = <[u8; 4]>::try_from(payload) else {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "RST_STREAM not 4 octets long",
        ));
    };
    Ok(Frame::RstStream {
        stream: h.stream,
        code: ErrorCode(u32::from_be_bytes(c)),
    })
}

fn settings(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream != 0 {
        return Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "SETTINGS on a stream other than 0",
        ));
    }
    if h.has(flag::ACK) {
        if !payload.is_empty() {
            return Err(conn(
                ErrorCode::FRAME_SIZE_ERROR,
                "SETTINGS ACK with a payload",
            ));
        }
        return Ok(Frame::SettingsAck);
    }
    if !payload.len().is_multiple_of(6) {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "SETTINGS length not a multiple of 6",
        ));
    }
    Ok(Frame::Settings(Settings::parse(payload)?))
}

fn ping(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream != 0 {
        return Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "PING on a stream other than 0",
        ));
    }
    let Ok(data) = <[u8; 8]>::try_from(payload) else {
        return Err(conn(ErrorCode::FRAME_SIZE_ERROR, "PING not 8 octets long"));
    };
    Ok(Frame::Ping {
        ack: h.has(flag::ACK),
        data,
    })
}

fn goaway(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    if h.stream != 0 {
        return Err(conn(
            ErrorCode::PROTOCOL_ERROR,
            "GOAWAY on a stream other than 0",
        ));
    }
    let Some((fixed, debug)) = payload.split_first_chunk::<8>() else {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "GOAWAY shorter than 8 octets",
        ));
    };
    Ok(Frame::GoAway {
        last_stream: u32::from_be_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]) & MAX_WINDOW,
        code: ErrorCode(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]])),
        debug,
    })
}

fn window_update(h: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, Error> {
    // §6.9: the length check comes first and is a connection error on any
    // stream.
    let Ok(b) = <[u8; 4]>::try_from(payload) else {
        return Err(conn(
            ErrorCode::FRAME_SIZE_ERROR,
            "WINDOW_UPDATE not 4 octets long",
        ));
    };
    let increment = u32::from_be_bytes(b) & MAX_WINDOW;
    // §6.9: a zero increment is a stream error on a stream, a connection
    // error on the connection.
    if increment == 0 {
        return Err(if h.stream == 0 {
            conn(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        } else {
            Error::stream(h.stream, ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        });
    }
    Ok(Frame::WindowUpdate {
        stream: h.stream,
        increment,
    })
}

/// Writers: each appends one whole frame to `out`.
pub mod write {
    use super::*;

    fn header(out: &mut impl BufMut, len: usize, kind: u8, flags: u8, stream: u32) {
        FrameHeader {
            len: len as u32,
            kind,
            flags,
            stream,
        }
        .write(out);
    }

    /// A DATA frame (no padding). `data` must fit the peer's
    /// SETTINGS_MAX_FRAME_SIZE: the caller splits.
    pub fn data(out: &mut impl BufMut, stream: u32, data: &[u8], end_stream: bool) {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        header(out, data.len(), kind::DATA, flags, stream);
        out.put_slice(data);
    }

    /// A HEADERS frame with one fragment (see `hpack::Encoder` for blocks
    /// split over CONTINUATION frames).
    pub fn headers(
        out: &mut impl BufMut,
        stream: u32,
        fragment: &[u8],
        end_stream: bool,
        end_headers: bool,
    ) {
        let mut flags = if end_stream { flag::END_STREAM } else { 0 };
        if end_headers {
            flags |= flag::END_HEADERS;
        }
        header(out, fragment.len(), kind::HEADERS, flags, stream);
        out.put_slice(fragment);
    }

    pub fn continuation(out: &mut impl BufMut, stream: u32, fragment: &[u8], end_headers: bool) {
        let flags = if end_headers { flag::END_HEADERS } else { 0 };
        header(out, fragment.len(), kind::CONTINUATION, flags, stream);
        out.put_slice(fragment);
    }

    pub fn priority(out: &mut impl BufMut, stream: u32, p: Priority) {
        header(out, 5, kind::PRIORITY, 0, stream);
        let excl = if p.exclusive { !MAX_WINDOW } else { 0 };
        out.put_u32((p.dependency & MAX_WINDOW) | excl);
        out.put_u8(p.weight);
    }

    pub fn rst_stream(out: &mut impl BufMut, stream: u32, code: ErrorCode) {
        header(out, 4, kind::RST_STREAM, 0, stream);
        out.put_u32(code.0);
    }

    pub fn settings(out: &mut impl BufMut, s: &Settings) {
        let n = s.pairs().count();
        header(out, n * 6, kind::SETTINGS, 0, 0);
        for (id, v) in s.pairs() {
            out.put_u16(id);
            out.put_u32(v);
        }
    }

    pub fn settings_ack(out: &mut impl BufMut) {
        header(out, 0, kind::SETTINGS, flag::ACK, 0);
    }

    pub fn ping(out: &mut impl BufMut, data: [u8; 8], ack: bool) {
        header(out, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
        out.put_slice(&data);
    }

    pub fn goaway(out: &mut impl BufMut, last_stream: u32, code: ErrorCode, debug: &[u8]) {
        header(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
        out.put_u32(last_stream & MAX_WINDOW);
        out.put_u32(code.0);
        out.put_slice(debug);
    }

    pub fn window_update(out: &mut impl BufMut, stream: u32, increment: u32) {
        header(out, 4, kind::WINDOW_UPDATE, 0, stream);
        out.put_u32(increment & MAX_WINDOW);
    }
}

#[cfg(test)]
mod tests;
