//! A message's header list as the request path carries it: the lines in
//! order, names lowercase, most of them byte ranges of the head they were
//! parsed from (no hashing, no copy, no allocation per line on the way in).
//! Lookups by name are rare and short, so they scan; the few lines the
//! proxy adds or replaces are `http` names and values.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// A header list (see the module comment).
#[derive(Debug, Clone, Default)]
pub struct HeaderList {
    /// The head the `Span` lines index.
    base: Bytes,
    fields: Vec<Field>,
}

#[derive(Debug, Clone)]
struct Field {
    name: Name,
    value: Value,
}

/// A byte range of the list's `base` (heads are far below 4 GiB).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn get(self, base: &[u8]) -> &[u8] {
        base.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
enum Name {
    Span(Span),
    Header(HeaderName),
}

#[derive(Debug, Clone)]
enum Value {
    Span(Span),
    Header(HeaderValue),
}

/// A line `http` refuses as a header name or value (on the way to a
/// client that needs a `HeaderMap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHeader;

impl HeaderList {
    pub fn new() -> HeaderList {
        HeaderList::default()
    }

    /// The lines of a parsed head: `lines` are (name, value) byte ranges of
    /// `base`, names already lowercase and both already checked as header
    /// names and values (the HTTP/1 codec's job).
    pub fn from_ranges(
        base: Bytes,
        lines: impl ExactSizeIterator<Item = (std::ops::Range<u32>, std::ops::Range<u32>)>,
    ) -> HeaderList {
        let mut fields = Vec::with_capacity(lines.len() + EXTRA);
        for (n, v) in lines {
            fields.push(Field {
                name: Name::Span(Span {
                    start: n.start,
                    end: n.end,
                }),
                value: Value::Span(Span {
                    start: v.start,
                    end: v.end,
                }),
            });
        }
        HeaderList { base, fields }
    }

    /// Give the list the head its ranges index: `from_ranges` is called
    /// on a head still being lowercased in place, before it is frozen.
    pub fn set_base(&mut self, base: Bytes) {
        self.base = base;
    }

    /// The byte ranges of the names that are ranges of the head.
    pub fn name_ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.fields.iter().filter_map(|f| match f.name {
            Name::Span(s) => Some(s.start as usize..s.end as usize),
            Name::Header(_) => None,
        })
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn name_of<'a>(&'a self, f: &'a Field) -> &'a [u8] {
        match &f.name {
            Name::Span(s) => s.get(&self.base),
            Name::Header(h) => h.as_str().as_bytes(),
        }
    }

    fn value_of<'a>(&'a self, f: &'a Field) -> &'a [u8] {
        match &f.value {
            Value::Span(s) => s.get(&self.base),
            Value::Header(v) => v.as_bytes(),
        }
    }

    /// Every line in order: (lowercase name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|f| (self.name_of(f), self.value_of(f)))
    }

    /// The first value of `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        let key = name.as_bytes();
        let f = self.fields.iter().find(|f| self.name_of(f) == key)?;
        Some(self.value_of(f))
    }

    /// The first value of `name` as text, if it is visible ASCII.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(as_text)
    }

    /// The first value of `name` as bytes of its own: a share of the
    /// head's (no copy) for a parsed line.
    pub fn get_shared(&self, name: &str) -> Option<Bytes> {
        let key = name.as_bytes();
        let f = self.fields.iter().find(|f| self.name_of(f) == key)?;
        Some(match &f.value {
            Value::Span(s) => self.base.slice(s.start as usize..s.end as usize),
            Value::Header(v) => Bytes::copy_from_slice(v.as_bytes()),
        })
    }

    /// Every value of `name` (lowercase), in order.
    pub fn get_all<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s [u8]> + use<'s, 'n> {
        let name = name.as_bytes();
        self.fields
            .iter()
            .filter(move |f| self.name_of(f) == name)
            .map(|f| self.value_of(f))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Add a line at the end.
    pub fn append(&mut self, name: HeaderName, value: HeaderValue) {
        self.fields.push(Field {
            name: Name::Header(name),
            value: Value::Header(value),
        });
    }

    /// Set `name` to `value`: the first line of that name takes the value
    /// and any others go (as `HeaderMap::insert`); a line at the end if
    /// there was none.
    pub fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        let key = name.as_str().as_bytes();
        let Some(first) = self.position(key) else {
            self.append(name, value);
            return;
        };
        self.fields[first].value = Value::Header(value);
        if self.fields[first + 1..]
            .iter()
            .any(|f| self.name_of(f) == key)
        {
            let mut i = 0;
            let base = &self.base;
            self.fields.retain(|f| {
                let keep = i <= first || field_name(base, f) != key;
                i += 1;
                keep
            });
        }
    }

    /// Add `name: value` unless a line of that name is there.
    pub fn insert_if_absent(&mut self, name: HeaderName, value: HeaderValue) {
        if !self.contains(name.as_str()) {
            self.append(name, value);
        }
    }

    /// Remove every line of `name` (lowercase); whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let key = name.as_bytes();
        if self.position(key).is_none() {
            return false;
        }
        let base = &self.base;
        self.fields.retain(|f| field_name(base, f) != key);
        true
    }

    /// Remove the line at `index` (in `iter`'s order), if there is one.
    pub fn remove_at(&mut self, index: usize) {
        if index < self.fields.len() {
            self.fields.remove(index);
        }
    }

    /// Keep only the lines `keep` says yes to (name, value).
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) {
        let base = &self.base;
        self.fields
            .retain(|f| keep(field_name(base, f), field_value(base, f)));
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.fields.iter().position(|f| self.name_of(f) == key)
    }

    /// One line as `http` types, values sharing the head's bytes.
    fn http_line(&self, f: &Field) -> Result<(HeaderName, HeaderValue), InvalidHeader> {
        let name = match &f.name {
            Name::Span(s) => {
                HeaderName::from_bytes(s.get(&self.base)).map_err(|_| InvalidHeader)?
            }
            Name::Header(h) => h.clone(),
        };
        let value = match &f.value {
            Value::Span(s) => {
                HeaderValue::from_maybe_shared(self.base.slice(s.start as usize..s.end as usize))
                    .map_err(|_| InvalidHeader)?
            }
            Value::Header(v) => v.clone(),
        };
        Ok((name, value))
    }

    /// The lines as a `HeaderMap` (for hyper and h2, which need one).
    pub fn to_header_map(&self) -> Result<HeaderMap, InvalidHeader> {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for f in &self.fields {
            let (name, value) = self.http_line(f)?;
            map.append(name, value);
        }
        Ok(map)
    }

    /// The lines as a `HeaderMap`, leaving out any line `http` refuses.
    pub fn to_header_map_lossy(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.fields.len());
        for (name, value) in self.fields.iter().filter_map(|f| self.http_line(f).ok()) {
            map.append(name, value);
        }
        map
    }

    /// Roughly the bytes the lines take on the wire (names and values).
    pub fn byte_len(&self) -> usize {
        self.iter().map(|(n, v)| n.len() + v.len()).sum()
    }
}

/// Room for the lines the proxy adds to a request (x-request-id,
/// x-forwarded-proto, a few operations) without growing.
const EXTRA: usize = 4;

fn field_name<'a>(base: &'a [u8], f: &'a Field) -> &'a [u8] {
    match &f.name {
        Name::Span(s) => s.get(base),
        Name::Header(h) => h.as_str().as_bytes(),
    }
}

fn field_value<'a>(base: &'a [u8], f: &'a Field) -> &'a [u8] {
    match &f.value {
        Value::Span(s) => s.get(base),
        Value::Header(v) => v.as_bytes(),
    }
}

/// A value as text when it is visible ASCII (and spaces, tabs), as
/// `HeaderValue::to_str` accepts.
pub fn as_text(v: &[u8]) -> Option<&str> {
    if v.iter().all(|&b| b == b'\t' || (32..127).contains(&b)) {
        std::str::from_utf8(v).ok()
    } else {
        None
    }
}

impl From<HeaderMap> for HeaderList {
    /// Moves the names and values in (no copy).
    fn from(map: HeaderMap) -> HeaderList {
        let mut fields = Vec::with_capacity(map.len() + EXTRA);
        let mut last: Option<HeaderName> = None;
        for (name, value) in map {
            // `HeaderMap::into_iter` names a name's first value only.
            let name = match name {
                Some(n) => {
                    last = Some(n.clone());
                    n
                }
                None => match &last {
                    Some(n) => n.clone(),
                    None => continue,
                },
            };
            fields.push(Field {
                name: Name::Header(name),
                value: Value::Header(value),
            });
        }
        HeaderList {
            base: Bytes::new(),
            fields,
        }
    }
}

impl FromIterator<(HeaderName, HeaderValue)> for HeaderList {
    fn from_iter<I: IntoIterator<Item = (HeaderName, HeaderValue)>>(it: I) -> HeaderList {
        let mut list = HeaderList::new();
        for (n, v) in it {
            list.append(n, v);
        }
        list
    }
}

#[cfg(test)]
mod tests;
