//! The HPACK encoder: a response head or trailers from strait's header
//! list straight into HEADERS (and CONTINUATION) frames in the
//! connection's output buffer.
//!
//! No dynamic table (as HAProxy's encoder): a field is the static table's
//! index where name and value match, else a literal without indexing
//! (RFC 7541 §6.2.2) with the static table's name index where the name is
//! there. Nothing is hashed and the encoder keeps no state, so the peer's
//! SETTINGS_HEADER_TABLE_SIZE never matters (our use of its table is 0).

use bytes::{BufMut, BytesMut};

use super::huffman;
use crate::header_list::HeaderList;
use crate::http2::frame::{FrameHeader, HEADER_LEN, flag, kind};

/// When string literals are Huffman-coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Huffman {
    /// When it makes the string shorter (a length pass first).
    #[default]
    IfShorter,
    /// Never: plain copies.
    Never,
}

/// The response-side encoder (stateless apart from its choice of
/// Huffman coding).
#[derive(Debug, Clone, Copy, Default)]
pub struct Encoder {
    pub huffman: Huffman,
}

/// The static table index of a name (RFC 7541 Appendix A), the first
/// entry that has it.
fn static_name(name: &[u8]) -> Option<usize> {
    Some(match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    })
}

/// The static index of a whole field, for the few entries with a value.
fn static_field(name: &[u8], value: &[u8]) -> Option<usize> {
    Some(match (name, value) {
        (b":method", b"GET") => 2,
        (b":method", b"POST") => 3,
        (b":path", b"/") => 4,
        (b":path", b"/index.html") => 5,
        (b":scheme", b"http") => 6,
        (b":scheme", b"https") => 7,
        (b"accept-encoding", b"gzip, deflate") => 16,
        _ => return None,
    })
}

fn status_index(status: u16) -> Option<usize> {
    Some(match status {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => return None,
    })
}

/// An integer with an N-bit prefix (§5.1), the first octet's high bits
/// `high`.
pub(super) fn integer(out: &mut impl BufMut, high: u8, prefix: u8, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.put_u8(high | value as u8);
        return;
    }
    out.put_u8(high | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.put_u8(rest as u8);
}

impl Encoder {
    /// A string literal (§5.2).
    fn string(&self, out: &mut BytesMut, s: &[u8]) {
        if self.huffman == Huffman::IfShorter {
            let coded = huffman::encoded_len(s);
            if coded < s.len() {
                integer(out, 0x80, 7, coded);
                huffman::encode(s, out);
                return;
            }
        }
        integer(out, 0, 7, s.len());
        out.put_slice(s);
    }

    /// One field into a field block.
    pub fn field(&self, out: &mut BytesMut, name: &[u8], value: &[u8]) {
        if let Some(i) = static_field(name, value) {
            integer(out, 0x80, 7, i);
            return;
        }
        match static_name(name) {
            Some(i) => integer(out, 0, 4, i),
            None => {
                out.put_u8(0);
                self.string(out, name);
            }
        }
        self.string(out, value);
    }

    /// `:status` into a field block.
    pub fn status(&self, out: &mut BytesMut, status: u16) {
        match status_index(status) {
            Some(i) => integer(out, 0x80, 7, i),
            None => {
                integer(out, 0, 4, 8);
                let digits = [
                    b'0' + (status / 100 % 10) as u8,
                    b'0' + (status / 10 % 10) as u8,
                    b'0' + (status % 10) as u8,
                ];
                // Coded even at equal length (digits take 5 or 6 bits: never
                // longer), as the hpack crate codes every literal: the same
                // octets as the `h2` server for a status the table lacks.
                if self.huffman == Huffman::IfShorter {
                    integer(out, 0x80, 7, huffman::encoded_len(&digits));
                    huffman::encode(&digits, out);
                } else {
                    self.string(out, &digits);
                }
            }
        }
    }

    /// A response head as HEADERS (+ CONTINUATION) frames on `stream`
    /// appended to `out`: `:status`, then `headers` in order (already
    /// without connection-specific fields, RFC 9113 §8.2.2; names
    /// lowercase). `max_frame_size` is the peer's SETTINGS_MAX_FRAME_SIZE.
    pub fn response(
        &self,
        out: &mut BytesMut,
        stream: u32,
        status: u16,
        headers: &HeaderList,
        end_stream: bool,
        max_frame_size: u32,
    ) {
        let start = begin(out);
        self.status(out, status);
        for (name, value) in headers.iter() {
            self.field(out, name, value);
        }
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        frame(out, start, stream, flags, max_frame_size);
    }

    /// Trailers (RFC 9113 §8.1): a HEADERS frame that ends the stream, no
    /// pseudo-header.
    pub fn trailers(
        &self,
        out: &mut BytesMut,
        stream: u32,
        trailers: &HeaderList,
        max_frame_size: u32,
    ) {
        let start = begin(out);
        for (name, value) in trailers.iter() {
            self.field(out, name, value);
        }
        frame(out, start, stream, flag::END_STREAM, max_frame_size);
    }
}

/// Room for a HEADERS frame header; where the frame starts.
fn begin(out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_bytes(0, HEADER_LEN);
    start
}

/// Fill in the HEADERS frame header at `start` for the block after it,
/// split into CONTINUATION frames past `max_frame_size` (§4.3: one block,
/// frames of no other kind or stream between them).
fn frame(out: &mut BytesMut, start: usize, stream: u32, flags: u8, max_frame_size: u32) {
    let max = (max_frame_size as usize).max(1);
    let block_len = out.len() - start - HEADER_LEN;
    let first = block_len.min(max);
    // The block's tail moves out to make room for the frame headers (rare:
    // heads are far below 16 KiB).
    let tail = (block_len > max).then(|| out.split_off(start + HEADER_LEN + first));
    let end_headers = if tail.is_none() { flag::END_HEADERS } else { 0 };
    let mut h = [0u8; HEADER_LEN];
    FrameHeader {
        len: first as u32,
        kind: kind::HEADERS,
        flags: flags | end_headers,
        stream,
    }
    .write(&mut &mut h[..]);
    out[start..start + HEADER_LEN].copy_from_slice(&h);
    if let Some(tail) = tail {
        let mut chunks = tail.chunks(max).peekable();
        while let Some(c) = chunks.next() {
            let last = chunks.peek().is_none();
            crate::http2::frame::write::continuation(out, stream, c, last);
        }
    }
}
