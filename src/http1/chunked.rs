//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder that
//! hands out body bytes as they arrive and refuses what Envoy refuses (a
//! size that is not hex or overflows, a bare LF, data not followed by CRLF,
//! a CR or LF inside an extension, trailers over the head limits), and the
//! encoder.

use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use super::head::{Fields, HeadLimits, Refusal};

/// Chunk extensions a body may carry in all, as hyper bounds them: they are
/// skipped, so only their size matters.
const MAX_EXTENSION_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `digits` so far.
    Size { size: u64, digits: u8 },
    /// Spaces or tabs after the size.
    SizeSpace { size: u64 },
    /// Inside `;ext`, up to the CR.
    Extension { size: u64 },
    /// After the size line's CR.
    SizeLf { size: u64 },
    /// Data bytes left in the chunk.
    Data(u64),
    /// After the data: its CR.
    DataCr,
    /// After the data's CR: its LF.
    DataLf,
    /// After the last chunk: the trailer section, searched up to `searched`.
    Trailers { searched: usize },
    /// The body ended.
    Done,
}

/// What [`Decoder::decode`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// Body bytes (part of a chunk, or a whole one).
    Data(Bytes),
    /// The last chunk, with its trailer fields (empty without any).
    End(Fields),
}

/// Decodes one chunked body off the front of a connection's buffer,
/// leaving whatever follows it (a pipelined message) in place.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    limits: HeadLimits,
    extension_bytes: usize,
}

impl Decoder {
    /// A decoder whose trailers are bounded by `limits`.
    pub fn new(limits: HeadLimits) -> Decoder {
        Decoder {
            state: State::Size { size: 0, digits: 0 },
            limits,
            extension_bytes: 0,
        }
    }

    /// Whether the last chunk and trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next piece of the body from the front of `buf`: `Ok(None)` when
    /// `buf` holds nothing more to decode (read more, unless
    /// [`Decoder::is_done`]).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, Refusal> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(buf.len() as u64);
                    self.state = if n == left {
                        State::DataCr
                    } else {
                        State::Data(left - n)
                    };
                    return Ok(Some(Chunk::Data(buf.split_to(n as usize).freeze())));
                }
                State::Trailers { searched } => return self.trailers(buf, searched),
                _ => {
                    let Some(&byte) = buf.first() else {
                        return Ok(None);
                    };
                    self.state = self.step(byte)?;
                    let _ = buf.split_to(1);
                }
            }
        }
    }

    /// One byte of a size line or of a data chunk's line end.
    fn step(&mut self, byte: u8) -> Result<State, Refusal> {
        Ok(match (self.state, byte) {
            (State::Size { size, digits }, b) if b.is_ascii_hexdigit() => {
                if digits >= 16 {
                    return Err(Refusal::Malformed);
                }
                let d = (b as char).to_digit(16).unwrap_or(0);
                State::Size {
                    size: (size << 4) | u64::from(d),
                    digits: digits + 1,
                }
            }
            (State::Size { digits: 0, .. }, _) => return Err(Refusal::Malformed),
            (State::Size { size, .. } | State::SizeSpace { size }, b' ' | b'\t') => {
                State::SizeSpace { size }
            }
            (State::Size { size, .. } | State::SizeSpace { size }, b';') => {
                State::Extension { size }
            }
            (
                State::Size { size, .. } | State::SizeSpace { size } | State::Extension { size },
                b'\r',
            ) => State::SizeLf { size },
            (State::Extension { size }, b) => {
                self.extension_bytes += 1;
                if b == b'\n' || self.extension_bytes > MAX_EXTENSION_BYTES {
                    return Err(Refusal::Malformed);
                }
                State::Extension { size }
            }
            (State::SizeLf { size: 0 }, b'\n') => State::Trailers { searched: 0 },
            (State::SizeLf { size }, b'\n') => State::Data(size),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { size: 0, digits: 0 },
            _ => return Err(Refusal::Malformed),
        })
    }

    /// The trailer section: field lines up to an empty line.
    fn trailers(&mut self, buf: &mut BytesMut, searched: usize) -> Result<Option<Chunk>, Refusal> {
        if buf.starts_with(b"\r\n") {
            let _ = buf.split_to(2);
            self.state = State::Done;
            return Ok(Some(Chunk::End(Fields::new(Bytes::new(), &[]))));
        }
        let from = searched.saturating_sub(3);
        let end = buf
            .get(from..)
            .and_then(|b| b.windows(4).position(|w| w == b"\r\n\r\n"))
            .map(|p| from + p + 4);
        let Some(end) = end else {
            if buf.len() > self.limits.max_head_bytes || buf.first().is_some_and(|&b| b == b'\n') {
                return Err(if buf.len() > self.limits.max_head_bytes {
                    Refusal::TooLarge
                } else {
                    Refusal::Malformed
                });
            }
            self.state = State::Trailers {
                searched: buf.len(),
            };
            return Ok(None);
        };
        // However it arrived: a section read whole may end past where a
        // trickled one is refused for its size.
        if end > self.limits.max_head_bytes {
            return Err(Refusal::TooLarge);
        }
        let block = buf.split_to(end).freeze();
        if block
            .iter()
            .enumerate()
            .any(|(i, &c)| c == b'\n' && (i == 0 || block[i - 1] != b'\r'))
        {
            return Err(Refusal::Malformed);
        }
        let mut slots = vec![httparse::EMPTY_HEADER; self.limits.max_headers.saturating_add(1)];
        let parsed = match httparse::parse_headers(&block, &mut slots) {
            Ok(httparse::Status::Complete((n, parsed))) if n == block.len() => parsed,
            Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
            _ => return Err(Refusal::Malformed),
        };
        if parsed.len() > self.limits.max_headers {
            return Err(Refusal::TooLarge);
        }
        let fields = Fields::new(block.clone(), parsed);
        self.state = State::Done;
        Ok(Some(Chunk::End(fields)))
    }
}

/// Write one chunk of `data` (nothing for empty data: an empty chunk would
/// end the body).
pub fn write_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Write the last chunk and `trailers`.
pub fn write_end<'a>(out: &mut BytesMut, trailers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    out.extend_from_slice(b"0\r\n");
    for (name, value) in trailers {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}
