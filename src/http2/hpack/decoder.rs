//! The HPACK decoder (RFC 7541 §3, §6): a field block into one buffer of
//! the names and values it holds and their byte ranges (no allocation
//! per field), bounded by SETTINGS_MAX_HEADER_LIST_SIZE.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use super::huffman;
use super::table::{DynamicTable, ENTRY_OVERHEAD, STATIC};
use crate::http2::error::{Error, ErrorCode};

/// Why a field block cannot be decoded: each is a connection error
/// COMPRESSION_ERROR (RFC 9113 §4.3: the decoder's state is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer longer than 4 continuation octets (§5.1: "excessively
    /// large" encodings are an error; 2^28 bounds every real length).
    IntegerOverflow,
    /// Index 0, or past the end of the tables (§2.3.3).
    BadIndex,
    /// A Huffman string holding EOS or padded wrongly (§5.2).
    Huffman,
    /// A dynamic table size update after a field (§4.2).
    SizeUpdateNotFirst,
    /// A size update above SETTINGS_HEADER_TABLE_SIZE (§6.3).
    SizeUpdateTooLarge,
    /// A block after this side lowered SETTINGS_HEADER_TABLE_SIZE that
    /// does not start with a size update (§4.2).
    SizeUpdateMissing,
}

impl HpackError {
    pub fn reason(self) -> &'static str {
        match self {
            HpackError::Truncated => "HPACK: truncated field block",
            HpackError::IntegerOverflow => "HPACK: integer too large",
            HpackError::BadIndex => "HPACK: invalid table index",
            HpackError::Huffman => "HPACK: invalid Huffman string",
            HpackError::SizeUpdateNotFirst => "HPACK: table size update after a field",
            HpackError::SizeUpdateTooLarge => {
                "HPACK: table size update above SETTINGS_HEADER_TABLE_SIZE"
            }
            HpackError::SizeUpdateMissing => "HPACK: expected a table size update",
        }
    }
}

impl From<HpackError> for Error {
    fn from(e: HpackError) -> Error {
        Error::connection(ErrorCode::COMPRESSION_ERROR, e.reason())
    }
}

/// Bounds on one decoded field list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2): the sum of each
    /// field's name, value and 32 octets.
    pub max_list_size: usize,
    /// Most fields (Envoy's `max_headers_count`).
    pub max_fields: usize,
}

impl Default for Limits {
    /// strait's downstream defaults: 60 KiB, 100 fields.
    fn default() -> Limits {
        Limits {
            max_list_size: 60 * 1024,
            max_fields: 100,
        }
    }
}

/// A field's name and value: byte ranges of the decoded buffer.
pub type Line = (Range<u32>, Range<u32>);

/// A decoded field list: names and values in one buffer, in order. Over
/// its [`Limits`] the rest of the block is still decoded (the dynamic
/// table must stay in step with the peer's) but no longer kept, and
/// [`Fields::over_limit`] says so.
#[derive(Debug, Default)]
pub struct Fields {
    buf: BytesMut,
    lines: Vec<Line>,
    list_size: usize,
    over_limit: bool,
    limits: Limits,
}

/// How much of a fresh buffer to reserve: heads after it share the
/// allocation (`BytesMut::split`) until it is used up.
const BUF_CHUNK: usize = 4096;

impl Fields {
    pub fn new(limits: Limits) -> Fields {
        Fields {
            limits,
            ..Fields::default()
        }
    }

    /// Forget the last block's fields (the buffer's spare room is kept).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lines.clear();
        self.list_size = 0;
        self.over_limit = false;
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Whether the block went over the limits (its fields are then
    /// incomplete).
    pub fn over_limit(&self) -> bool {
        self.over_limit
    }

    /// RFC 9113 §6.5.2's size of the fields kept, and of the first one
    /// over the limit.
    pub fn list_size(&self) -> usize {
        self.list_size
    }

    /// The field at `i`: (name, value).
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let (n, v) = self.lines.get(i)?;
        Some((
            self.buf.get(n.start as usize..n.end as usize)?,
            self.buf.get(v.start as usize..v.end as usize)?,
        ))
    }

    /// The byte range of field `i`'s value in the buffer [`Fields::take`]
    /// hands out.
    pub fn value_range(&self, i: usize) -> Option<Range<u32>> {
        self.lines.get(i).map(|(_, v)| v.clone())
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.lines.iter().map(|(n, v)| {
            (
                self.buf
                    .get(n.start as usize..n.end as usize)
                    .unwrap_or_default(),
                self.buf
                    .get(v.start as usize..v.end as usize)
                    .unwrap_or_default(),
            )
        })
    }

    /// The buffer, frozen, and the fields' ranges of it; `self` is left
    /// empty, its spare buffer room kept for the next block.
    pub fn take(&mut self) -> (Bytes, std::vec::Drain<'_, Line>) {
        let base = self.buf.split().freeze();
        self.list_size = 0;
        self.over_limit = false;
        (base, self.lines.drain(..))
    }

    /// Make room for `n` more bytes.
    fn reserve(&mut self, n: usize) {
        if self.buf.capacity() - self.buf.len() < n {
            self.buf.reserve(n.max(BUF_CHUNK));
        }
    }

    /// Count the field whose name and value were just written from
    /// `start` (the name ends at `value_at`); drop its bytes if it does
    /// not fit the limits.
    fn finish(&mut self, start: usize, value_at: usize) {
        let end = self.buf.len();
        self.list_size = self
            .list_size
            .saturating_add(end - start)
            .saturating_add(ENTRY_OVERHEAD);
        let fits = !self.over_limit
            && self.list_size <= self.limits.max_list_size
            && self.lines.len() < self.limits.max_fields;
        let ranges = (
            u32::try_from(start),
            u32::try_from(value_at),
            u32::try_from(end),
        );
        match ranges {
            (Ok(s), Ok(m), Ok(e)) if fits => self.lines.push((s..m, m..e)),
            _ => {
                self.over_limit = true;
                self.buf.truncate(start);
            }
        }
    }

    fn push_copy(&mut self, name: &[u8], value: &[u8]) {
        if self.over_limit {
            return;
        }
        self.reserve(name.len() + value.len());
        let start = self.buf.len();
        self.buf.put_slice(name);
        let value_at = self.buf.len();
        self.buf.put_slice(value);
        self.finish(start, value_at);
    }

    fn bytes(&self, r: Range<usize>) -> &[u8] {
        self.buf.get(r).unwrap_or_default()
    }
}

/// The decoder of one connection's field blocks (its dynamic table).
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// SETTINGS_HEADER_TABLE_SIZE as this side advertised it: the most a
    /// size update may ask for.
    max_size: usize,
    /// The maximum was lowered: the next block must start with an update.
    update_required: bool,
}

impl Default for Decoder {
    /// The protocol's initial table size, 4096 octets (RFC 9113 §6.5.2).
    fn default() -> Decoder {
        Decoder::new(4096)
    }
}

/// The representations (§6), told by the first octet's high bits.
enum Kind {
    Indexed,
    Incremental,
    SizeUpdate,
    /// Without indexing or never indexed (§6.2.2, §6.2.3): the same to a
    /// decoder.
    NotIndexed,
}

fn kind(b: u8) -> Kind {
    if b & 0x80 != 0 {
        Kind::Indexed
    } else if b & 0x40 != 0 {
        Kind::Incremental
    } else if b & 0x20 != 0 {
        Kind::SizeUpdate
    } else {
        Kind::NotIndexed
    }
}

/// An integer with an N-bit prefix (§5.1) at `pos`, which is moved past
/// it.
pub(super) fn integer(block: &[u8], pos: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let mask = (1usize << prefix) - 1;
    let first = *block.get(*pos).ok_or(HpackError::Truncated)?;
    *pos += 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok(value);
    }
    for shift in [0, 7, 14, 21] {
        let b = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HpackError::IntegerOverflow)
}

/// A string literal (§5.2) at `pos`, appended to `out.buf`.
fn string(block: &[u8], pos: &mut usize, out: &mut Fields) -> Result<(), HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::Truncated)?;
    let raw = block.get(*pos..end).ok_or(HpackError::Truncated)?;
    *pos = end;
    if huffman {
        // At most 8 symbols per 5 octets (the shortest code is 5 bits).
        out.reserve(len.saturating_add(len / 5 * 3).saturating_add(1));
        huffman::decode(raw, &mut out.buf).map_err(|_| HpackError::Huffman)
    } else {
        out.reserve(len);
        out.buf.put_slice(raw);
        Ok(())
    }
}

impl Decoder {
    /// A decoder whose table may grow to `max_size` octets (this side's
    /// SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(max_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_size),
            max_size,
            update_required: false,
        }
    }

    /// The peer acknowledged a new SETTINGS_HEADER_TABLE_SIZE. A lower one
    /// must be taken up by a size update at the start of the next block
    /// (§4.2).
    pub fn set_max_size(&mut self, max_size: usize) {
        if max_size < self.table.max_size() {
            self.update_required = true;
        }
        self.max_size = max_size;
    }

    /// The dynamic table's size (§4.1) and entry count.
    pub fn table_size(&self) -> (usize, usize) {
        (self.table.size(), self.table.len())
    }

    /// The dynamic table's entry `i` places from the newest.
    pub fn table_entry(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.table.get(i)
    }

    /// The entry at a 1-based index of the static and dynamic tables.
    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            0 => Err(HpackError::BadIndex),
            1..=61 => Ok(STATIC[index - 1]),
            _ => self.table.get(index - 62).ok_or(HpackError::BadIndex),
        }
    }

    /// Decode one whole field block (a HEADERS frame's fragment and its
    /// CONTINUATIONs' together) into `out`, which is cleared first.
    pub fn decode(&mut self, block: &[u8], out: &mut Fields) -> Result<(), HpackError> {
        out.clear();
        let mut pos = 0;
        let mut fields_seen = false;
        if self.update_required && block.first().is_none_or(|&b| b & 0xe0 != 0x20) {
            return Err(HpackError::SizeUpdateMissing);
        }
        while let Some(&b) = block.get(pos) {
            match kind(b) {
                Kind::Indexed => {
                    let index = integer(block, &mut pos, 7)?;
                    let (name, value) = self.entry(index)?;
                    out.push_copy(name, value);
                }
                Kind::SizeUpdate => {
                    if fields_seen {
                        return Err(HpackError::SizeUpdateNotFirst);
                    }
                    let size = integer(block, &mut pos, 5)?;
                    if size > self.max_size {
                        return Err(HpackError::SizeUpdateTooLarge);
                    }
                    self.table.set_max_size(size);
                    self.update_required = false;
                }
                k @ (Kind::Incremental | Kind::NotIndexed) => {
                    let incremental = matches!(k, Kind::Incremental);
                    let index = integer(block, &mut pos, if incremental { 6 } else { 4 })?;
                    let start = out.buf.len();
                    if index == 0 {
                        string(block, &mut pos, out)?;
                    } else {
                        let (name, _) = self.entry(index)?;
                        out.reserve(name.len());
                        out.buf.put_slice(name);
                    }
                    let value_at = out.buf.len();
                    string(block, &mut pos, out)?;
                    if incremental {
                        let end = out.buf.len();
                        self.table
                            .insert(out.bytes(start..value_at), out.bytes(value_at..end));
                    }
                    out.finish(start, value_at);
                }
            }
            if !matches!(kind(b), Kind::SizeUpdate) {
                fields_seen = true;
            }
        }
        Ok(())
    }
}
