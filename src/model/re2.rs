//! Istio regexes: RE2 syntax, full-match, at most 1024 bytes.
//!
//! Istio validates `StringMatch.regex` (and CORS origins, `regexRewrite`, ...)
//! with Go's `regexp.Compile` (`validateStringRegexp` in
//! `pkg/config/validation/validation.go`), after rejecting patterns longer than
//! 1024 bytes. Envoy then runs them with RE2 `FullMatch`. Go's `regexp/syntax`
//! and RE2 share one grammar; Rust's `regex` differs, so patterns are
//! translated by a port of Go's parser (`regexp/syntax/parse.go`) that both
//! enforces Go's rules (and Go's error texts) and emits equivalent Rust syntax:
//!
//! - `\d \s \w \b` (and negations) are ASCII-only, as in RE2; Go's `\s` is
//!   `[\t\n\f\r ]` (no `\v`).
//! - `\Q...\E` quoting is supported; `\C` is rejected as Go does.
//! - Inside brackets `[` is a literal and `&&`, `--`, `~~` are plain characters
//!   (Rust would read nested classes and set operations).
//! - A `{` that does not start a valid `{n}`, `{n,}`, `{n,m}` (no leading
//!   zeros) is a literal; counts above 1000, or nested counts whose product
//!   exceeds 1000, are errors; stacked repetition (`a**`, `a{2}{3}`) is an error.
//! - Escaped punctuation is always literal (`\<` is `<`, not a word start);
//!   octal escapes `\0`, `\012` are supported; `\u`, `\Z`, back-references are
//!   rejected.
//! - Flag groups accept only `i m s U`; `U` is applied by emitting lazy or
//!   greedy repetitions directly. Group names are validated Go's way and then
//!   dropped (numbering is unchanged).

use regex::{Regex, RegexBuilder};

/// Istio rejects longer patterns before compiling (istio/istio#36143).
pub const MAX_REGEX_LEN: usize = 1024;

/// Suffix Istio appends to a regex compile error.
pub const RE2_HINT: &str =
    "; Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)";

/// Compiled-program cap so hostile patterns fail fast.
const SIZE_LIMIT: usize = 8 << 20;

/// Go's `maxRepeat` / RE2's `kMaxRepeat`.
const MAX_REPEAT: u64 = 1000;

/// Compile `pattern` with RE2 semantics as a full match (`^(?:…)$`).
///
/// Errors: `regex is too large, max length allowed is 1024` for patterns over
/// 1024 bytes; `<Go regexp error>; Istio uses RE2 style ...` for syntax Go
/// rejects; a size-limit message when the translated program is too large for
/// this process (Go would accept such a pattern; see [`validate`]).
pub fn compile_full_match(pattern: &str) -> Result<Regex, String> {
    match build(pattern) {
        Ok(re) => Ok(re),
        Err(BuildError::Invalid(e)) | Err(BuildError::TooBig(e)) => Err(e),
    }
}

/// Istio's validity check for a regex (the caller handles empty patterns and
/// the `"<where>": ` prefix). A pattern that Go accepts but whose compiled
/// program exceeds our size limit is still valid here.
pub fn validate(pattern: &str) -> Result<(), String> {
    match build(pattern) {
        Ok(_) | Err(BuildError::TooBig(_)) => Ok(()),
        Err(BuildError::Invalid(e)) => Err(e),
    }
}

/// Translate RE2/Go syntax to equivalent Rust `regex` syntax (not anchored).
/// The error is Go's `regexp.Compile` error text.
pub fn translate(pattern: &str) -> Result<String, String> {
    Translator::new(pattern).run()
}

enum BuildError {
    Invalid(String),
    TooBig(String),
}

fn build(pattern: &str) -> Result<Regex, BuildError> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(BuildError::Invalid(format!(
            "regex is too large, max length allowed is {MAX_REGEX_LEN}"
        )));
    }
    let tr = translate(pattern).map_err(|e| BuildError::Invalid(format!("{e}{RE2_HINT}")))?;
    RegexBuilder::new(&format!("^(?:{tr})$"))
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(n) => {
                BuildError::TooBig(format!("regex program exceeds the size limit of {n} bytes"))
            }
            other => {
                // Only reachable for what the translator leaves to Rust
                // (e.g. unknown Unicode property names).
                let msg = other.to_string();
                let last = msg
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                BuildError::Invalid(format!(
                    "error parsing regexp: {last}: `{pattern}`{RE2_HINT}"
                ))
            }
        })
}

fn go_err(code: &str, expr: &str) -> String {
    format!("error parsing regexp: {code}: `{expr}`")
}

const INVALID_ESCAPE: &str = "invalid escape sequence";
const INVALID_RANGE: &str = "invalid character class range";
const INVALID_PERL_OP: &str = "invalid or unsupported Perl syntax";
const INVALID_NAMED_CAPTURE: &str = "invalid named capture";
const INVALID_REPEAT_OP: &str = "invalid nested repetition operator";
const INVALID_REPEAT_SIZE: &str = "invalid repeat count";
const MISSING_BRACKET: &str = "missing closing ]";
const MISSING_PAREN: &str = "missing closing )";
const MISSING_REPEAT_ARG: &str = "missing argument to repetition operator";
const TRAILING_BACKSLASH: &str = "trailing backslash at end of expression";
const UNEXPECTED_PAREN: &str = "unexpected )";

/// Never matches: what a Go literal surrogate code point amounts to.
const NOTHING: &str = r"[^\x{0}-\x{10FFFF}]";

/// Go's POSIX class names (`posixGroup`).
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A literal code point outside brackets.
fn lit(v: u32) -> String {
    match char::from_u32(v) {
        None => NOTHING.to_string(),
        Some(c) if c.is_ascii_alphanumeric() || !c.is_ascii() => c.to_string(),
        Some(_) => format!("\\x{{{v:X}}}"),
    }
}

/// A code point inside brackets.
fn class_lit(v: u32) -> String {
    match char::from_u32(v) {
        Some(c) if c.is_ascii_alphanumeric() => c.to_string(),
        _ => format!("\\x{{{v:X}}}"),
    }
}

/// Perl classes, ASCII as in RE2 (`perl_groups.go`).
fn perl_class(c: char, in_class: bool) -> Option<&'static str> {
    Some(match (c, in_class) {
        ('d', false) => "[0-9]",
        ('d', true) => "0-9",
        ('D', _) => "[^0-9]",
        ('s', false) => r"[\x{9}\x{A}\x{C}\x{D}\x{20}]",
        ('s', true) => r"\x{9}\x{A}\x{C}\x{D}\x{20}",
        ('S', _) => r"[^\x{9}\x{A}\x{C}\x{D}\x{20}]",
        ('w', false) => "[0-9A-Za-z_]",
        ('w', true) => "0-9A-Za-z_",
        ('W', _) => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum Last {
    /// Start of the expression, after `(` or `|`: nothing to repeat.
    Empty,
    /// An atom with its nested-repeat weight (product of counts inside).
    Atom(u64),
    /// A repetition; `start` is where its operator began (Go's `lastRepeat`).
    Repeat { w: u64, start: usize },
}

struct Frame {
    /// Largest nested-repeat weight of any atom in this group.
    weight: u64,
    /// Go's `NonGreedy` flag to restore at `)`.
    saved_ungreedy: bool,
}

struct Translator<'a> {
    s: &'a str,
    i: usize,
    out: String,
    frames: Vec<Frame>,
    last: Last,
    /// Go's `NonGreedy` (`U`) flag; never passed to Rust.
    ungreedy: bool,
    /// Flag-only groups `(?i)` are emitted just before the next atom, so that a
    /// repetition following them still binds to the previous atom as in Go.
    pending_flags: String,
}

impl<'a> Translator<'a> {
    fn new(s: &'a str) -> Self {
        Translator {
            s,
            i: 0,
            out: String::with_capacity(s.len() * 2),
            frames: vec![Frame {
                weight: 1,
                saved_ungreedy: false,
            }],
            last: Last::Empty,
            ungreedy: false,
            pending_flags: String::new(),
        }
    }

    fn peek_at(&self, j: usize) -> Option<char> {
        self.s.get(j..).and_then(|r| r.chars().next())
    }

    fn top(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("top-level frame")
    }

    /// Fold the previous atom into its group's weight and forget it.
    fn commit(&mut self) {
        if let Last::Atom(w) | Last::Repeat { w, .. } = self.last {
            let f = self.top();
            f.weight = f.weight.max(w);
        }
        self.last = Last::Empty;
    }

    fn flush_flags(&mut self) {
        if !self.pending_flags.is_empty() {
            self.out.push_str(&self.pending_flags);
            self.pending_flags.clear();
        }
    }

    fn atom(&mut self, text: &str, weight: u64) {
        self.commit();
        self.flush_flags();
        self.out.push_str(text);
        self.last = Last::Atom(weight);
    }

    fn run(mut self) -> Result<String, String> {
        while let Some(c) = self.peek_at(self.i) {
            match c {
                '(' => self.open_paren()?,
                '|' => {
                    self.commit();
                    self.out.push('|');
                    self.i += 1;
                }
                ')' => {
                    self.commit();
                    if self.frames.len() == 1 {
                        return Err(go_err(UNEXPECTED_PAREN, self.s));
                    }
                    let f = self.frames.pop().expect("checked");
                    self.ungreedy = f.saved_ungreedy;
                    self.pending_flags.clear();
                    self.out.push(')');
                    self.last = Last::Atom(f.weight);
                    self.i += 1;
                }
                '^' => {
                    self.atom("(?:^)", 1);
                    self.i += 1;
                }
                '$' => {
                    self.atom("(?:$)", 1);
                    self.i += 1;
                }
                '.' => {
                    self.atom(".", 1);
                    self.i += 1;
                }
                '[' => {
                    let cls = self.parse_class()?;
                    self.atom(&cls, 1);
                }
                '*' | '+' | '?' => {
                    let start = self.i;
                    self.i += 1;
                    self.repeat(start, c.to_string(), None)?;
                }
                '{' => match self.parse_repeat_braces(self.i) {
                    None => {
                        self.atom(&lit('{' as u32), 1);
                        self.i += 1;
                    }
                    Some((min, max, end)) => {
                        let start = self.i;
                        if !(0..=1000).contains(&min) || max > 1000 || (max >= 0 && min > max) {
                            return Err(go_err(INVALID_REPEAT_SIZE, &self.s[start..end]));
                        }
                        self.i = end;
                        let op = match max {
                            -1 => format!("{{{min},}}"),
                            m if m == min => format!("{{{min}}}"),
                            m => format!("{{{min},{m}}}"),
                        };
                        self.repeat(start, op, Some((min as u64, max)))?;
                    }
                },
                '\\' => self.top_escape()?,
                c => {
                    self.atom(&lit(c as u32), 1);
                    self.i += c.len_utf8();
                }
            }
        }
        self.commit();
        if self.frames.len() > 1 {
            return Err(go_err(MISSING_PAREN, self.s));
        }
        Ok(self.out)
    }

    /// Go `parser.repeat`: lazy suffix, stacked-repeat check, missing argument,
    /// then the nested-count check (`repeatIsValid(re, 1000)`).
    fn repeat(
        &mut self,
        start: usize,
        op: String,
        counts: Option<(u64, i64)>,
    ) -> Result<(), String> {
        let mut lazy = false;
        if self.peek_at(self.i) == Some('?') {
            lazy = true;
            self.i += 1;
        }
        let w = match self.last {
            Last::Repeat { start: prev, .. } => {
                return Err(go_err(INVALID_REPEAT_OP, &self.s[prev..self.i]));
            }
            Last::Empty => return Err(go_err(MISSING_REPEAT_ARG, &self.s[start..self.i])),
            Last::Atom(w) => w,
        };
        let new_w = match counts {
            None => w,
            Some((min, max)) => {
                let m = if max < 0 { min } else { max as u64 };
                if m == 0 {
                    1
                } else {
                    let prod = w.saturating_mul(m);
                    if (min >= 2 || max >= 2) && prod > MAX_REPEAT {
                        return Err(go_err(INVALID_REPEAT_SIZE, &self.s[start..self.i]));
                    }
                    prod
                }
            }
        };
        self.out.push_str(&op);
        if lazy != self.ungreedy {
            self.out.push('?');
        }
        self.last = Last::Repeat { w: new_w, start };
        Ok(())
    }

    /// Go `parseRepeat`/`parseInt` at `j` (a `{`): `Some((min, max, end))`
    /// with `max == -1` for `{n,}`; `None` means the `{` is a literal.
    fn parse_repeat_braces(&self, j: usize) -> Option<(i64, i64, usize)> {
        let b = self.s.as_bytes();
        let parse_int = |mut k: usize| -> Option<(i64, usize)> {
            let st = k;
            if k >= b.len() || !b[k].is_ascii_digit() {
                return None;
            }
            if k + 1 < b.len() && b[k] == b'0' && b[k + 1].is_ascii_digit() {
                return None; // leading zeros disallowed
            }
            let mut n: i64 = 0;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            for &d in &b[st..k] {
                if n >= 100_000_000 {
                    n = -1;
                    break;
                }
                n = n * 10 + i64::from(d - b'0');
            }
            Some((n, k))
        };
        let (mut min, mut k) = parse_int(j + 1)?;
        let max;
        if k >= b.len() {
            return None;
        }
        if b[k] != b',' {
            max = min;
        } else {
            k += 1;
            if k >= b.len() {
                return None;
            }
            if b[k] == b'}' {
                max = -1;
            } else {
                let (m, k2) = parse_int(k)?;
                k = k2;
                max = m;
                if m < 0 {
                    min = -1;
                }
            }
        }
        if k >= b.len() || b[k] != b'}' {
            return None;
        }
        Some((min, max, k + 1))
    }

    fn open_paren(&mut self) -> Result<(), String> {
        let rest = &self.s[self.i..];
        if !rest.starts_with("(?") {
            self.commit();
            self.flush_flags();
            self.out.push('(');
            self.push_frame(self.ungreedy);
            self.i += 1;
            return Ok(());
        }
        let b = rest.as_bytes();
        // Named capture: (?P<name>re) or (?<name>re).
        if (b.len() > 4 && b[2] == b'P' && b[3] == b'<') || (b.len() > 3 && b[2] == b'<') {
            let begin = if b[2] == b'P' { 4 } else { 3 };
            let Some(end) = rest.find('>') else {
                return Err(go_err(INVALID_NAMED_CAPTURE, rest));
            };
            let capture = &rest[..=end];
            let name = rest.get(begin..end).unwrap_or("");
            let valid =
                !name.is_empty() && name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric());
            if !valid {
                return Err(go_err(INVALID_NAMED_CAPTURE, capture));
            }
            self.commit();
            self.flush_flags();
            self.out.push('(');
            self.push_frame(self.ungreedy);
            self.i += end + 1;
            return Ok(());
        }
        // Flags: (?flags) or (?flags:re).
        let mut on = String::new();
        let mut off = String::new();
        let mut u_on = false;
        let mut u_off = false;
        let mut negated = false;
        let mut saw_flag = false;
        let mut k = 2;
        while let Some(c) = rest[k..].chars().next() {
            k += c.len_utf8();
            match c {
                'i' | 'm' | 's' | 'U' => {
                    saw_flag = true;
                    match (c, negated) {
                        ('U', false) => u_on = true,
                        ('U', true) => u_off = true,
                        (c, false) => {
                            if !on.contains(c) {
                                on.push(c);
                            }
                        }
                        (c, true) => {
                            if !off.contains(c) {
                                off.push(c);
                            }
                        }
                    }
                }
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    // Negation wins: `(?i-i)` leaves `i` off, as in Go.
                    let on: String = on.chars().filter(|c| !off.contains(*c)).collect();
                    let flags = match (on.is_empty(), off.is_empty()) {
                        (true, true) => String::new(),
                        (false, true) => on,
                        (_, false) => format!("{on}-{off}"),
                    };
                    let new_u = if u_off {
                        false
                    } else if u_on {
                        true
                    } else {
                        self.ungreedy
                    };
                    self.i += k;
                    if c == ':' {
                        self.commit();
                        self.flush_flags();
                        self.out.push_str(&format!("(?{flags}:"));
                        self.push_frame(self.ungreedy);
                    } else {
                        if !flags.is_empty() {
                            self.pending_flags.push_str(&format!("(?{flags})"));
                        }
                        // Go resets `lastRepeat` after any token.
                        if let Last::Repeat { w, .. } = self.last {
                            self.last = Last::Atom(w);
                        }
                    }
                    self.ungreedy = new_u;
                    return Ok(());
                }
                _ => return Err(go_err(INVALID_PERL_OP, &rest[..k])),
            }
        }
        Err(go_err(INVALID_PERL_OP, rest))
    }

    fn push_frame(&mut self, saved_ungreedy: bool) {
        self.frames.push(Frame {
            weight: 1,
            saved_ungreedy,
        });
        self.last = Last::Empty;
    }

    /// A `\` outside brackets.
    fn top_escape(&mut self) -> Result<(), String> {
        let j = self.i;
        let Some(c) = self.peek_at(j + 1) else {
            return Err(go_err(TRAILING_BACKSLASH, ""));
        };
        let simple = match c {
            'A' => Some(r"(?:\A)"),
            'z' => Some(r"(?:\z)"),
            'b' => Some(r"(?-u:\b)"),
            'B' => Some(r"(?-u:\B)"),
            _ => None,
        };
        if let Some(text) = simple {
            self.atom(text, 1);
            self.i += 2;
            return Ok(());
        }
        match c {
            'C' => Err(go_err(INVALID_ESCAPE, r"\C")),
            'Q' => {
                let body = &self.s[j + 2..];
                let (lit_text, next) = match body.find(r"\E") {
                    Some(e) => (&body[..e], j + 2 + e + 2),
                    None => (body, self.s.len()),
                };
                if lit_text.is_empty()
                    && let Last::Repeat { w, .. } = self.last
                {
                    self.last = Last::Atom(w);
                }
                for ch in lit_text.chars() {
                    self.atom(&lit(ch as u32), 1);
                }
                self.i = next;
                Ok(())
            }
            'p' | 'P' => {
                let (text, next) = self.parse_unicode_class(j)?;
                self.atom(&text, 1);
                self.i = next;
                Ok(())
            }
            c if perl_class(c, false).is_some() => {
                self.atom(perl_class(c, false).unwrap_or_default(), 1);
                self.i += 2;
                Ok(())
            }
            _ => {
                let (v, next) = self.parse_escape(j)?;
                self.atom(&lit(v), 1);
                self.i = next;
                Ok(())
            }
        }
    }

    /// Go `parseEscape` at `j` (a `\`): the code point and the next index.
    fn parse_escape(&self, j: usize) -> Result<(u32, usize), String> {
        let s = self.s;
        let Some(c) = self.peek_at(j + 1) else {
            return Err(go_err(TRAILING_BACKSLASH, ""));
        };
        let mut k = j + 1 + c.len_utf8();
        let bad = |k: usize| Err(go_err(INVALID_ESCAPE, &s[j..k.min(s.len())]));
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            return Ok((c as u32, k));
        }
        let is_oct = |k: usize| matches!(s.as_bytes().get(k), Some(b'0'..=b'7'));
        match c {
            '1'..='7' | '0' => {
                // A lone non-zero digit would be a back-reference: unsupported.
                if c != '0' && !is_oct(k) {
                    return bad(k);
                }
                let mut r = c as u32 - '0' as u32;
                for _ in 0..2 {
                    if !is_oct(k) {
                        break;
                    }
                    r = r * 8 + u32::from(s.as_bytes()[k] - b'0');
                    k += 1;
                }
                Ok((r, k))
            }
            'x' => {
                let Some(c2) = self.peek_at(k) else {
                    return bad(k);
                };
                k += c2.len_utf8();
                if c2 == '{' {
                    let mut r: u32 = 0;
                    let mut nhex = 0;
                    loop {
                        let Some(h) = self.peek_at(k) else {
                            return bad(k);
                        };
                        k += h.len_utf8();
                        if h == '}' {
                            break;
                        }
                        let Some(v) = h.to_digit(16) else {
                            return bad(k);
                        };
                        r = r * 16 + v;
                        if r > 0x10FFFF {
                            return bad(k);
                        }
                        nhex += 1;
                    }
                    if nhex == 0 {
                        return bad(k);
                    }
                    Ok((r, k))
                } else {
                    let x = c2.to_digit(16);
                    let c3 = self.peek_at(k);
                    if let Some(c3) = c3 {
                        k += c3.len_utf8();
                    }
                    match (x, c3.and_then(|c| c.to_digit(16))) {
                        (Some(x), Some(y)) => Ok((x * 16 + y, k)),
                        _ => bad(k),
                    }
                }
            }
            'a' => Ok((7, k)),
            'f' => Ok((0xC, k)),
            'n' => Ok((0xA, k)),
            'r' => Ok((0xD, k)),
            't' => Ok((9, k)),
            'v' => Ok((0xB, k)),
            _ => bad(k),
        }
    }

    /// Go `parseUnicodeClass` at `j` (a `\` before `p`/`P`). Names are checked
    /// by Rust (Go's table lookup differs across Go versions); `\p{^X}` is
    /// rewritten to `\P{X}`.
    fn parse_unicode_class(&self, j: usize) -> Result<(String, usize), String> {
        let s = self.s;
        let mut negated = s.as_bytes()[j + 1] == b'P';
        let (seq_end, mut name) = match self.peek_at(j + 2) {
            None => (j + 2, ""),
            Some('{') => match s[j..].find('}') {
                None => return Err(go_err(INVALID_RANGE, &s[j..])),
                Some(e) => (j + e + 1, &s[j + 3..j + e]),
            },
            Some(c) => (j + 2 + c.len_utf8(), &s[j + 2..j + 2 + c.len_utf8()]),
        };
        let seq = &s[j..seq_end];
        if let Some(n) = name.strip_prefix('^') {
            negated = !negated;
            name = n;
        }
        let plausible = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && Regex::new(&format!(r"\p{{{name}}}")).is_ok();
        if !plausible {
            return Err(go_err(INVALID_RANGE, seq));
        }
        let p = if negated { 'P' } else { 'p' };
        Ok((format!(r"\{p}{{{name}}}"), seq_end))
    }

    /// Go `parseClass` at `self.i` (a `[`); advances past the `]`.
    fn parse_class(&mut self) -> Result<String, String> {
        let s = self.s;
        let start = self.i;
        let missing = || go_err(MISSING_BRACKET, &s[start..]);
        let mut j = start + 1;
        let mut negated = false;
        if self.peek_at(j) == Some('^') {
            negated = true;
            j += 1;
        }
        let mut items: Vec<String> = Vec::new();
        let mut first = true;
        loop {
            let Some(c) = self.peek_at(j) else {
                return Err(missing());
            };
            if c == ']' && !first {
                j += 1;
                break;
            }
            first = false;
            // POSIX [:alnum:], [:^alnum:].
            if s[j..].starts_with("[:")
                && s.len() - j > 2
                && let Some(k) = s[j + 2..].find(":]")
            {
                let full = &s[j..j + 2 + k + 2];
                let name = &s[j + 2..j + 2 + k];
                if !POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(name)) {
                    return Err(go_err(INVALID_RANGE, full));
                }
                items.push(format!("[:{name}:]"));
                j += full.len();
                continue;
            }
            if c == '\\' {
                match self.peek_at(j + 1) {
                    Some('p' | 'P') => {
                        let (text, next) = self.parse_unicode_class(j)?;
                        items.push(text);
                        j = next;
                        continue;
                    }
                    Some(p) if perl_class(p, true).is_some() => {
                        items.push(perl_class(p, true).unwrap_or_default().to_string());
                        j += 2;
                        continue;
                    }
                    _ => {}
                }
            }
            let range_start = j;
            let (lo, next) = self.class_char(j, start)?;
            j = next;
            let mut hi = lo;
            if s.len() - j >= 2 && s.as_bytes()[j] == b'-' && s.as_bytes()[j + 1] != b']' {
                let (h, next) = self.class_char(j + 1, start)?;
                j = next;
                hi = h;
                if hi < lo {
                    return Err(go_err(INVALID_RANGE, &s[range_start..j]));
                }
            }
            // Surrogates cannot occur in UTF-8 text: clip them out.
            let lo = if (0xD800..=0xDFFF).contains(&lo) {
                0xE000
            } else {
                lo
            };
            let hi = if (0xD800..=0xDFFF).contains(&hi) {
                0xD7FF
            } else {
                hi
            };
            if lo == hi {
                items.push(class_lit(lo));
            } else if lo < hi {
                items.push(format!("{}-{}", class_lit(lo), class_lit(hi)));
            }
        }
        self.i = j;
        if items.is_empty() {
            items.push(NOTHING.to_string());
        }
        Ok(format!(
            "[{}{}]",
            if negated { "^" } else { "" },
            items.concat()
        ))
    }

    /// Go `parseClassChar`: an escape or a single character.
    fn class_char(&self, j: usize, class_start: usize) -> Result<(u32, usize), String> {
        match self.peek_at(j) {
            None => Err(go_err(MISSING_BRACKET, &self.s[class_start..])),
            Some('\\') => self.parse_escape(j),
            Some(c) => Ok((c as u32, j + c.len_utf8())),
        }
    }
}

#[cfg(test)]
mod tests;
