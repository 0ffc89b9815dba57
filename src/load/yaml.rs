//! YAML text → JSON values, one per document, with the line of every field.
//!
//! Istio reads YAML through `sigs.k8s.io/yaml` (go-yaml v2 → JSON), so scalars
//! resolve as YAML 1.1 does there: unquoted `yes`/`no`/`on`/`off` are booleans.
//! Built on saphyr-parser's event stream so that hostile input is bounded here:
//! nesting depth, node count (alias expansion included) and document count.

use std::borrow::Cow;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Number, Value};

use crate::config::LineIndex;

/// Bounds on what one input may cost. Exceeding any is an error, never a hang.
#[derive(Clone, Debug)]
pub struct InputLimits {
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Most documents in one file.
    pub max_documents: usize,
    /// Deepest nesting of mappings and sequences.
    pub max_depth: usize,
    /// Most nodes built from one file, counting every node an alias copies.
    pub max_nodes: usize,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits {
            max_file_bytes: 64 * 1024 * 1024,
            max_documents: 100_000,
            max_depth: 128,
            max_nodes: 5_000_000,
        }
    }
}

/// One parsed YAML document.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    pub lines: LineIndex,
    /// Line where the document's content starts (1-based).
    pub line: usize,
    /// Paths of unquoted YAML 1.1 booleans (`yes`, `on`…), to explain type errors.
    pub yaml11_bools: Vec<String>,
    /// Line of the first field recorded, kept even when `lines` is not built.
    first_line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

enum Frame {
    Map {
        map: Map<String, Value>,
        /// Entries from `<<` merge keys; explicit keys override them.
        merged: Map<String, Value>,
        key: Option<String>,
        key_line: usize,
        path: String,
        anchor: usize,
        /// The node count when the mapping started (its size, alias copies
        /// included, is the difference at its end: no walk over the tree).
        nodes_before: usize,
        /// Where the mapping started (char index), to tell an implicit
        /// single-pair mapping in a flow sequence.
        start: usize,
        /// The implicit pair was go-yaml's plain scalar `K:` (see
        /// [`Builder::colon_ends_flow_scalar`]): the mapping is that string.
        as_scalar: Option<Value>,
    },
    Seq {
        items: Vec<Value>,
        path: String,
        anchor: usize,
        nodes_before: usize,
    },
}

/// Alias copies may add at most this many times the nodes a file writes
/// out, plus [`ALIAS_FLOOR`].
const ALIAS_RATIO: usize = 100;
const ALIAS_FLOOR: usize = 10_000;

struct Builder<'a, 'f> {
    limits: &'a InputLimits,
    /// Build each document's [`LineIndex`]. Off for loading: a path string
    /// per node is most of the parse, and lines are only needed for messages,
    /// so [`line_indexes`] builds them again when one is asked for.
    paths: bool,
    /// Fail on any alias (a second half of a split file).
    no_aliases: bool,
    stack: Vec<Frame>,
    anchors: Vec<(usize, Value, usize)>,
    nodes: usize,
    /// The part of `nodes` that alias copies added.
    alias_nodes: usize,
    doc: Option<Document>,
    /// Documents finished so far (the limit counts them).
    docs: usize,
    /// Takes each document as it ends, so that a file's values never all
    /// live at once.
    sink: &'f mut dyn FnMut(Document),
    /// The text parsed (spans index it by character).
    text: &'a str,
    /// Char indexes are byte offsets.
    ascii: bool,
    /// Byte offset of each line's start, built the first time a span must
    /// be mapped to bytes in a non-ASCII text.
    line_starts: Option<Vec<usize>>,
}

fn err(span: &Span, message: impl Into<String>) -> YamlError {
    YamlError {
        line: span.start.line(),
        message: message.into(),
    }
}

/// Parse every document of `text`. Empty documents are skipped.
pub fn parse_documents(text: &str, limits: &InputLimits) -> Result<Vec<Document>, YamlError> {
    let mut docs = Vec::new();
    parse(text, limits, true, &mut |d| docs.push(d))?;
    Ok(docs)
}

/// [`parse_documents`] without the line indexes (`Document::lines` is
/// empty; `line` and `yaml11_bools` are as there). Errors are the same.
pub fn parse_documents_without_lines(
    text: &str,
    limits: &InputLimits,
) -> Result<Vec<Document>, YamlError> {
    let mut docs = Vec::new();
    parse_each_without_lines(text, limits, &mut |d| docs.push(d))?;
    Ok(docs)
}

/// [`parse_documents_without_lines`], handing each document to `each` as
/// soon as it ends instead of returning them all: the caller decodes one
/// value tree at a time (a 10 MB file's trees are hundreds of MB). On an
/// error `each` has seen the documents before it, and the error is the one
/// [`parse_documents`] returns.
pub fn parse_each_without_lines(
    text: &str,
    limits: &InputLimits,
    each: &mut dyn FnMut(Document),
) -> Result<(), YamlError> {
    // An error message may name the path of the mapping: the full parse says
    // it exactly as it always has. Errors are rare, so parsing twice is cheap.
    parse(text, limits, false, each).or_else(|_| parse(text, limits, true, &mut |_| {}))
}

/// The line index of every document [`parse_documents`] returns, in order;
/// empty when `text` does not parse.
pub fn line_indexes(text: &str, limits: &InputLimits) -> Vec<LineIndex> {
    let mut lines = Vec::new();
    match parse(text, limits, true, &mut |d| lines.push(d.lines)) {
        Ok(()) => lines,
        Err(_) => Vec::new(),
    }
}

/// What a parse of part of a file counted, to check the file's limits
/// over its parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartCounts {
    pub documents: usize,
    pub nodes: usize,
}

/// Where `text` may be parsed as two independent halves: the start of a
/// line `---` (a document start, which YAML forbids inside any node) near
/// the middle, with its 1-based line number. `None` for short texts and for
/// texts with directives (`%YAML`, `%TAG` apply to the documents after
/// them).
pub fn split_point(text: &str, min_len: usize) -> Option<(usize, usize)> {
    if text.len() < min_len || text.starts_with('%') || text.contains("\n%") {
        return None;
    }
    let mut at = text.len() / 2;
    loop {
        // Bytes: the middle may fall inside a multi-byte character.
        let found = memchr::memmem::find(text.as_bytes().get(at..)?, b"\n---\n")?;
        let start = at + found + 1;
        // Not the very last line: the second half must hold a document.
        if start + 4 < text.len() {
            let line = 1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..start]).count();
            return Some((start, line));
        }
        at = start;
    }
}

/// Parse the first part of a split file: as [`parse_each_without_lines`]
/// on its prefix, except that it never re-parses for an error message
/// (the caller parses the whole file again on any error).
pub fn parse_head(
    text: &str,
    limits: &InputLimits,
    each: &mut dyn FnMut(Document),
) -> Result<PartCounts, YamlError> {
    parse_counted(text, limits, false, false, each)
}

/// Parse the second part of a split file (`text` starts at a `---` line).
/// Refuses any alias (the alias bound counts over the whole file) and any
/// error: the caller parses the whole file again.
pub fn parse_tail(
    text: &str,
    limits: &InputLimits,
    each: &mut dyn FnMut(Document),
) -> Result<PartCounts, YamlError> {
    parse_counted(text, limits, false, true, each)
}

fn parse(
    text: &str,
    limits: &InputLimits,
    paths: bool,
    sink: &mut dyn FnMut(Document),
) -> Result<(), YamlError> {
    parse_counted(text, limits, paths, false, sink).map(|_| ())
}

fn parse_counted(
    text: &str,
    limits: &InputLimits,
    paths: bool,
    no_aliases: bool,
    sink: &mut dyn FnMut(Document),
) -> Result<PartCounts, YamlError> {
    let mut b = Builder {
        limits,
        paths,
        no_aliases,
        stack: Vec::new(),
        anchors: Vec::new(),
        nodes: 0,
        alias_nodes: 0,
        doc: None,
        docs: 0,
        sink,
        text,
        ascii: text.is_ascii(),
        line_starts: None,
    };
    for ev in Parser::new_from_str(text) {
        let (event, span) = ev.map_err(|e| YamlError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
        b.event(event, span)?;
    }
    Ok(PartCounts {
        documents: b.docs,
        nodes: b.nodes,
    })
}

impl Builder<'_, '_> {
    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(_) => self.document_start(&span)?,
            Event::DocumentEnd => self.document_end(),
            Event::MappingStart(anchor, _) => self.mapping_start(anchor, &span)?,
            Event::SequenceStart(anchor, _) => self.sequence_start(anchor, &span)?,
            Event::MappingEnd | Event::SequenceEnd => self.collection_end(&span)?,
            Event::Scalar(text, style, anchor, tag) => {
                self.scalar(&text, style, anchor, tag.as_deref(), &span)?;
            }
            Event::Alias(id) => self.alias(id, &span)?,
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn document_start(&mut self, span: &Span) -> Result<(), YamlError> {
        if self.docs >= self.limits.max_documents {
            return Err(err(
                span,
                format!(
                    "more than {} YAML documents in one file",
                    self.limits.max_documents
                ),
            ));
        }
        self.anchors.clear();
        self.doc = Some(Document {
            value: Value::Null,
            lines: LineIndex::default(),
            line: span.start.line(),
            yaml11_bools: Vec::new(),
            first_line: None,
        });
        Ok(())
    }

    fn document_end(&mut self) {
        if let Some(doc) = self.doc.take()
            && !doc.value.is_null()
        {
            self.docs += 1;
            (self.sink)(doc);
        }
    }

    fn mapping_start(&mut self, anchor: usize, span: &Span) -> Result<(), YamlError> {
        self.check_depth(span)?;
        let path = self.frame_path(span)?;
        let nodes_before = self.nodes;
        self.count(span, 1)?;
        self.record_line(span)?;
        self.stack.push(Frame::Map {
            map: Map::new(),
            merged: Map::new(),
            key: None,
            key_line: span.start.line(),
            path,
            anchor,
            nodes_before,
            start: span.start.index(),
            as_scalar: None,
        });
        Ok(())
    }

    fn sequence_start(&mut self, anchor: usize, span: &Span) -> Result<(), YamlError> {
        self.check_depth(span)?;
        let path = self.frame_path(span)?;
        let nodes_before = self.nodes;
        self.count(span, 1)?;
        self.record_line(span)?;
        self.stack.push(Frame::Seq {
            items: Vec::new(),
            path,
            anchor,
            nodes_before,
        });
        Ok(())
    }

    /// A mapping or sequence ends: its value goes to its parent.
    fn collection_end(&mut self, span: &Span) -> Result<(), YamlError> {
        let (value, anchor, nodes_before) = match self.stack.pop() {
            Some(Frame::Map {
                as_scalar: Some(value),
                anchor,
                nodes_before,
                ..
            }) => (value, anchor, nodes_before),
            Some(Frame::Map {
                mut map,
                merged,
                anchor,
                nodes_before,
                ..
            }) => {
                for (k, v) in merged {
                    map.entry(k).or_insert(v);
                }
                (Value::Object(map), anchor, nodes_before)
            }
            Some(Frame::Seq {
                items,
                anchor,
                nodes_before,
                ..
            }) => (Value::Array(items), anchor, nodes_before),
            None => return Err(err(span, "unbalanced YAML structure")),
        };
        if anchor != 0 {
            let size = self.nodes - nodes_before;
            self.anchors.push((anchor, value.clone(), size));
        }
        self.attach(value, span)?;
        Ok(())
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        span: &Span,
    ) -> Result<(), YamlError> {
        self.count(span, 1)?;
        let in_key_position = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
        if in_key_position {
            // Keys keep their text: JSON keys are strings, and `on:` or
            // `y:` as a key is never meant as a boolean.
            let mut key = text.to_string();
            if style == ScalarStyle::Plain && self.colon_ends_flow_scalar(span) {
                key.push(':');
                let parent_is_seq =
                    matches!(self.stack.iter().rev().nth(1), Some(Frame::Seq { .. }));
                if let Some(Frame::Map {
                    map,
                    start,
                    as_scalar,
                    ..
                }) = self.stack.last_mut()
                    && parent_is_seq
                    && map.is_empty()
                    && *start == span.start.index()
                {
                    // `[a, K:]`: go-yaml's item is the string `K:`.
                    *as_scalar = Some(resolve_scalar(&key, style, None).0);
                }
            }
            if let Some(Frame::Map {
                map,
                key: slot,
                key_line,
                path,
                ..
            }) = self.stack.last_mut()
            {
                if map.contains_key(&key) && key != "<<" {
                    return Err(err(
                        span,
                        format!("mapping key {key:?} already defined{}", at(path)),
                    ));
                }
                *slot = Some(key);
                *key_line = span.start.line();
            }
            return Ok(());
        }
        if matches!(
            self.stack.last(),
            Some(Frame::Map {
                as_scalar: Some(_),
                ..
            })
        ) {
            // The empty value of a pair that is really a scalar.
            return Ok(());
        }
        let (value, yaml11) = resolve_scalar(text, style, tag);
        if yaml11 {
            let path = self.stack_path(span)?;
            if let Some(doc) = self.doc.as_mut() {
                doc.yaml11_bools.push(path);
            }
        }
        if anchor != 0 {
            self.anchors.push((anchor, value.clone(), 1));
        }
        self.record_line(span)?;
        self.attach(value, span)?;
        Ok(())
    }

    fn alias(&mut self, id: usize, span: &Span) -> Result<(), YamlError> {
        if self.no_aliases {
            return Err(err(span, "alias in the second half of a split parse"));
        }
        let Some((_, _, size)) = self.anchors.iter().rev().find(|(a, _, _)| *a == id) else {
            return Err(err(span, "alias refers to an unknown anchor"));
        };
        // Counted before copying: a bomb fails before it is built.
        let size = *size;
        self.count(span, size)?;
        self.alias_nodes = self.alias_nodes.saturating_add(size);
        // As serde_yaml bounds alias replays by the document's own
        // size: copies may add at most ALIAS_RATIO times the nodes
        // written out (plus a floor), so a billion-laughs file fails
        // after a few thousand copied nodes instead of millions.
        let written = self.nodes - self.alias_nodes;
        if self.alias_nodes > ALIAS_FLOOR + ALIAS_RATIO.saturating_mul(written) {
            return Err(err(
                span,
                format!(
                    "YAML aliases expand to more than {ALIAS_RATIO} times the nodes written (alias bomb?)"
                ),
            ));
        }
        let Some((_, value, _)) = self.anchors.iter().rev().find(|(a, _, _)| *a == id) else {
            return Err(err(span, "alias refers to an unknown anchor"));
        };
        let value = value.clone();
        if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
            return Err(err(span, "an alias cannot be used as a mapping key"));
        }
        self.record_line(span)?;
        self.attach(value, span)?;
        Ok(())
    }

    /// Whether the plain scalar at `span` is directly followed by `:` and
    /// then `,`, `]` or `}`. YAML 1.2 (saphyr) ends the scalar there and
    /// reads a mapping (`[1.2.3.4, 001:db8::]` holds `{001:db8:: null}`);
    /// go-yaml, which `kubectl apply` reads with, ends a plain scalar in
    /// flow context only at `: `, `,`, `[`, `]`, `{` or `}`, so the `:` is
    /// part of it and Kubernetes stores two strings. Outside flow context
    /// `K:,` is one plain scalar to both, so this only matches in flow.
    fn colon_ends_flow_scalar(&mut self, span: &Span) -> bool {
        let Some(at) = self.byte_offset(span.end.line(), span.end.col(), span.end.index()) else {
            return false;
        };
        let rest = self.text.as_bytes().get(at..).unwrap_or_default();
        rest.first() == Some(&b':') && matches!(rest.get(1), Some(b',' | b']' | b'}'))
    }

    /// Byte offset of a marker: its char index in an ASCII text, else the
    /// line's start plus the bytes of `col` characters.
    fn byte_offset(&mut self, line: usize, col: usize, index: usize) -> Option<usize> {
        if self.ascii {
            return Some(index);
        }
        let text = self.text;
        let starts = self.line_starts.get_or_insert_with(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
                .collect()
        });
        let start = *starts.get(line.checked_sub(1)?)?;
        let in_line = text[start..]
            .char_indices()
            .nth(col)
            .map_or(text.len() - start, |(b, _)| b);
        Some(start + in_line)
    }

    fn check_depth(&self, span: &Span) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(err(
                span,
                format!("YAML nested deeper than {} levels", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    fn count(&mut self, span: &Span, n: usize) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            return Err(err(
                span,
                format!(
                    "YAML expands to more than {} nodes (alias bomb?)",
                    self.limits.max_nodes
                ),
            ));
        }
        Ok(())
    }

    /// The path a new frame keeps: only needed for line indexes and error
    /// messages (the latter come from a parse with paths on).
    fn frame_path(&self, span: &Span) -> Result<String, YamlError> {
        if self.paths {
            return self.child_path(span);
        }
        if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
            return Err(err(span, "complex mapping keys are not supported"));
        }
        Ok(String::new())
    }

    /// [`Self::child_path`], also when frames keep no path: built from the
    /// keys and item counts on the stack, which is what the kept paths are.
    fn stack_path(&self, span: &Span) -> Result<String, YamlError> {
        if self.paths {
            return self.child_path(span);
        }
        let mut p = String::new();
        for f in &self.stack {
            match f {
                Frame::Map { key: Some(k), .. } => p = join(&p, k),
                Frame::Map { key: None, .. } => {
                    return Err(err(span, "complex mapping keys are not supported"));
                }
                Frame::Seq { items, .. } => p = format!("{p}[{}]", items.len()),
            }
        }
        Ok(p)
    }

    /// Path of the node about to be attached to the top frame.
    fn child_path(&self, span: &Span) -> Result<String, YamlError> {
        Ok(match self.stack.last() {
            None => String::new(),
            Some(Frame::Map {
                key: Some(k), path, ..
            }) => join(path, k),
            Some(Frame::Map { key: None, .. }) => {
                return Err(err(span, "complex mapping keys are not supported"));
            }
            Some(Frame::Seq { items, path, .. }) => format!("{path}[{}]", items.len()),
        })
    }

    fn record_line(&mut self, span: &Span) -> Result<(), YamlError> {
        let line = match self.stack.last() {
            Some(Frame::Map { key_line, .. }) => *key_line,
            _ => span.start.line(),
        };
        if !self.paths {
            // Only the first line recorded is needed (the document's line).
            if self.doc.as_ref().is_some_and(|d| d.first_line.is_none())
                && !self.stack_path(span)?.is_empty()
                && let Some(doc) = self.doc.as_mut()
            {
                doc.first_line = Some(line);
            }
            return Ok(());
        }
        let path = self.child_path(span)?;
        if let Some(doc) = self.doc.as_mut()
            && !path.is_empty()
        {
            doc.first_line.get_or_insert(line);
            doc.lines.insert(path, line);
        }
        Ok(())
    }

    fn attach(&mut self, value: Value, span: &Span) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                if let Some(doc) = self.doc.as_mut() {
                    if let Value::Object(m) = &value
                        && !m.is_empty()
                    {
                        // Lines only grow along the stream: the first
                        // recorded is the smallest.
                        doc.line = doc.first_line.unwrap_or(span.start.line());
                    }
                    doc.value = value;
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, merged, key, ..
            }) => {
                let k = key.take().unwrap_or_default();
                if k == "<<" {
                    merge_into(merged, value);
                } else {
                    map.insert(k, value);
                }
            }
        }
        Ok(())
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" in {path}")
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// YAML 1.1 merge key (`<<: *base`): keys already present win.
fn merge_into(map: &mut Map<String, Value>, value: Value) {
    match value {
        Value::Object(src) => {
            for (k, v) in src {
                map.entry(k).or_insert(v);
            }
        }
        Value::Array(items) => {
            for item in items {
                merge_into(map, item);
            }
        }
        _ => {}
    }
}

/// Resolve a scalar as go-yaml v2 does. Returns the value and whether it was
/// an unquoted YAML 1.1 boolean word that YAML 1.2 would read as a string.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> (Value, bool) {
    if let Some(tag) = tag
        && (tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!")
    {
        match tag.suffix.as_str() {
            "str" | "binary" | "timestamp" => return (Value::String(text.to_string()), false),
            "null" => return (Value::Null, false),
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return (Value::String(text.to_string()), false);
    }
    let s = text;
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return (Value::Null, false),
        "true" | "True" | "TRUE" => return (Value::Bool(true), false),
        "false" | "False" | "FALSE" => return (Value::Bool(false), false),
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return (Value::Bool(true), true),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return (Value::Bool(false), true);
        }
        _ => {}
    }
    if let Some(n) = parse_int(s) {
        return (Value::Number(n), false);
    }
    if let Some(f) = parse_float(s)
        && let Some(n) = Number::from_f64(f)
    {
        return (Value::Number(n), false);
    }
    (Value::String(s.to_string()), false)
}

fn parse_int(s: &str) -> Option<Number> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let cleaned: Cow<'_, str> = if body.contains('_') {
        Cow::Owned(body.replace('_', ""))
    } else {
        Cow::Borrowed(body)
    };
    let (radix, digits) = if let Some(h) = cleaned.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = cleaned.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = cleaned.strip_prefix("0b") {
        (2, b)
    } else if cleaned.len() > 1 && cleaned.starts_with('0') {
        (8, &cleaned[1..])
    } else {
        (10, &cleaned[..])
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        let v = i64::try_from(mag).ok()?;
        Some(Number::from(-v))
    } else {
        Some(Number::from(mag))
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let body = s.trim_start_matches(['-', '+']);
    let first = body.chars().next()?;
    if !(first.is_ascii_digit() || first == '.') {
        return None;
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+' | '_'))
    {
        return None;
    }
    s.replace('_', "").parse::<f64>().ok()
}

#[cfg(test)]
mod tests;
