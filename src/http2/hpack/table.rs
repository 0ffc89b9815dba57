//! The static table (RFC 7541 Appendix A) and the decoder's dynamic table
//! (§2.3.2, §4).

use std::collections::VecDeque;

/// Appendix A; index 1 is the first entry.
pub(super) const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// An entry's overhead in the table's size (§4.1).
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// The dynamic table: entries' bytes in one buffer (oldest first, evicted
/// ones a dead prefix until compacted), no allocation per entry.
#[derive(Debug, Default)]
pub(super) struct DynamicTable {
    bytes: Vec<u8>,
    /// The evicted prefix of `bytes`.
    dead: usize,
    /// Newest first (index 62 is `entries[0]`).
    entries: VecDeque<Entry>,
    /// §4.1's size: each entry's name, value and 32.
    size: usize,
    max_size: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the name starts in `bytes`; the value follows it.
    at: usize,
    name_len: usize,
    value_len: usize,
}

impl DynamicTable {
    pub(super) fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            max_size,
            ..DynamicTable::default()
        }
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The entry `i` places from the newest (0 is the newest).
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let e = self.entries.get(i)?;
        let name_end = e.at + e.name_len;
        Some((
            self.bytes.get(e.at..name_end)?,
            self.bytes.get(name_end..name_end + e.value_len)?,
        ))
    }

    /// §4.3: a new maximum; entries evicted until the table fits it.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// §4.4: add an entry, evicting the oldest to make room; an entry
    /// larger than the maximum empties the table and is not added.
    pub(super) fn insert(&mut self, name: &[u8], value: &[u8]) {
        let entry_size = name.len() + value.len() + ENTRY_OVERHEAD;
        if entry_size > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - entry_size);
        self.compact();
        let at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.entries.push_front(Entry {
            at,
            name_len: name.len(),
            value_len: value.len(),
        });
        self.size += entry_size;
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some(e) = self.entries.pop_back() else {
                break;
            };
            self.size -= e.name_len + e.value_len + ENTRY_OVERHEAD;
            self.dead = e.at + e.name_len + e.value_len;
        }
        if self.entries.is_empty() {
            self.bytes.clear();
            self.dead = 0;
            self.size = 0;
        }
    }

    /// Drop the dead prefix once it is most of the buffer: the buffer
    /// stays within twice the live bytes, each byte moved O(1) times.
    fn compact(&mut self) {
        if self.dead == 0 || self.dead < self.bytes.len() / 2 {
            return;
        }
        self.bytes.drain(..self.dead);
        for e in &mut self.entries {
            e.at = e.at.saturating_sub(self.dead);
        }
        self.dead = 0;
    }
}
