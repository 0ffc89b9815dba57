//! A decoded field block checked as an HTTP/2 request head or trailers
//! (RFC 9113 §8.1-§8.3), the pseudo-headers kept apart from strait's
//! [`HeaderList`] of the regular fields, both ranges of one buffer.
//!
//! Leading or trailing whitespace in a value (§8.2.1 makes it a
//! malformation) is accepted by default and passed on as is: Envoy turns
//! nghttp2's check off (envoyproxy/envoy#23267: rejecting broke
//! deployments), the `h2` crate and hyper accept it, and so does strait's
//! current HTTP/2 server. [`Options::reject_surrounding_whitespace`] turns
//! the RFC's rule on.

use std::ops::Range;

use bytes::Bytes;

use super::error::{Error, ErrorCode};
use super::hpack::Fields;
use crate::header_list::HeaderList;

/// Choices the connection makes for every head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// This side sent SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441):
    /// `:protocol` is allowed on CONNECT.
    pub connect_protocol: bool,
    /// Refuse values with leading or trailing SP or HTAB (RFC 9113 §8.2.1);
    /// off by default as in Envoy (see the module comment).
    pub reject_surrounding_whitespace: bool,
}

/// What makes a head malformed (RFC 9113 §8.1.1): a stream error
/// PROTOCOL_ERROR, which upstream code answers as a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// An empty name, or a byte outside `tchar` (RFC 9110 §5.6.2).
    InvalidName,
    /// An uppercase name (§8.2.1).
    UppercaseName,
    /// NUL, CR, LF or another control byte in a value (§8.2.1), or
    /// surrounding whitespace when refused.
    InvalidValue,
    /// `connection`, `keep-alive`, `proxy-connection`, `transfer-encoding`,
    /// `upgrade`, or a `te` other than `trailers` (§8.2.2).
    ConnectionSpecific,
    /// A pseudo-header after a regular field (§8.3).
    PseudoAfterRegular,
    /// A pseudo-header twice (§8.3.1).
    DuplicatePseudo,
    /// A pseudo-header a request does not have (`:status` included,
    /// §8.3).
    UnknownPseudo,
    /// A pseudo-header in trailers (§8.1).
    PseudoInTrailers,
    /// `:method`, `:scheme` or `:path` missing, or CONNECT without
    /// `:authority` (§8.3.1, §8.5).
    MissingPseudo,
    /// CONNECT with `:scheme` or `:path` (§8.5).
    ConnectWithPath,
    /// `:protocol` without CONNECT or without SETTINGS_ENABLE_CONNECT_PROTOCOL
    /// (RFC 8441 §4).
    Protocol,
    /// An empty `:path`, or one neither `*` (OPTIONS) nor starting with `/`
    /// for http(s) (§8.3.1); a `:method` that is not a token.
    InvalidPseudo,
}

impl Malformed {
    pub fn reason(self) -> &'static str {
        match self {
            Malformed::InvalidName => "invalid field name",
            Malformed::UppercaseName => "uppercase field name",
            Malformed::InvalidValue => "invalid field value",
            Malformed::ConnectionSpecific => "connection-specific field",
            Malformed::PseudoAfterRegular => "pseudo-header after a regular field",
            Malformed::DuplicatePseudo => "duplicate pseudo-header",
            Malformed::UnknownPseudo => "unknown pseudo-header",
            Malformed::PseudoInTrailers => "pseudo-header in trailers",
            Malformed::MissingPseudo => "missing pseudo-header",
            Malformed::ConnectWithPath => "CONNECT with :scheme or :path",
            Malformed::Protocol => ":protocol not allowed",
            Malformed::InvalidPseudo => "invalid pseudo-header value",
        }
    }
}

/// Why a head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed(Malformed),
    /// Over SETTINGS_MAX_HEADER_LIST_SIZE or the field count: the `h2`
    /// crate (strait's server today) answers 431 and resets the stream
    /// REFUSED_STREAM; so does [`Refusal::error`].
    TooLarge,
}

impl Refusal {
    /// The stream error the connection sends (after a 431 response for
    /// `TooLarge`).
    pub fn error(self, stream: u32) -> Error {
        match self {
            Refusal::Malformed(m) => Error::stream(stream, ErrorCode::PROTOCOL_ERROR, m.reason()),
            Refusal::TooLarge => Error::stream(
                stream,
                ErrorCode::REFUSED_STREAM,
                "header list over SETTINGS_MAX_HEADER_LIST_SIZE",
            ),
        }
    }
}

impl From<Malformed> for Refusal {
    fn from(m: Malformed) -> Refusal {
        Refusal::Malformed(m)
    }
}

type Span = Range<u32>;

/// A request head: the pseudo-headers and the regular fields.
#[derive(Debug, Clone)]
pub struct RequestHead {
    base: Bytes,
    method: Span,
    scheme: Option<Span>,
    authority: Option<Span>,
    path: Option<Span>,
    protocol: Option<Span>,
    headers: HeaderList,
}

impl RequestHead {
    fn get(&self, s: &Span) -> &[u8] {
        self.base
            .get(s.start as usize..s.end as usize)
            .unwrap_or_default()
    }

    pub fn method(&self) -> &[u8] {
        self.get(&self.method)
    }

    pub fn scheme(&self) -> Option<&[u8]> {
        self.scheme.as_ref().map(|s| self.get(s))
    }

    pub fn authority(&self) -> Option<&[u8]> {
        self.authority.as_ref().map(|s| self.get(s))
    }

    pub fn path(&self) -> Option<&[u8]> {
        self.path.as_ref().map(|s| self.get(s))
    }

    /// `:authority`, sharing the head's buffer (no copy).
    pub fn authority_shared(&self) -> Option<Bytes> {
        self.shared(self.authority.as_ref()?)
    }

    /// `:path`, sharing the head's buffer (no copy).
    pub fn path_shared(&self) -> Option<Bytes> {
        self.shared(self.path.as_ref()?)
    }

    fn shared(&self, s: &Span) -> Option<Bytes> {
        (s.start <= s.end && s.end as usize <= self.base.len())
            .then(|| self.base.slice(s.start as usize..s.end as usize))
    }

    /// RFC 8441's `:protocol` (extended CONNECT).
    pub fn protocol(&self) -> Option<&[u8]> {
        self.protocol.as_ref().map(|s| self.get(s))
    }

    pub fn headers(&self) -> &HeaderList {
        &self.headers
    }

    /// The regular fields, moved out for the request path (no copy).
    pub fn take_headers(&mut self) -> HeaderList {
        std::mem::take(&mut self.headers)
    }
}

/// `tchar` (RFC 9110 §5.6.2) without uppercase letters, which HTTP/2
/// forbids in names (§8.2.1).
const fn name_table() -> [u8; 256] {
    // 0: invalid, 1: valid, 2: uppercase.
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_lowercase() || b.is_ascii_digit() {
            1
        } else if b.is_ascii_uppercase() {
            2
        } else {
            match b {
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^'
                | b'_' | b'`' | b'|' | b'~' => 1,
                _ => 0,
            }
        };
        c += 1;
    }
    t
}

static NAME: [u8; 256] = name_table();

fn check_name(name: &[u8]) -> Result<(), Malformed> {
    if name.is_empty() {
        return Err(Malformed::InvalidName);
    }
    for &b in name {
        match NAME[b as usize] {
            1 => {}
            2 => return Err(Malformed::UppercaseName),
            _ => return Err(Malformed::InvalidName),
        }
    }
    Ok(())
}

/// §8.2.1: no NUL, CR or LF; no other control byte either (as nghttp2
/// and the `http` crate, which strait's header lists end in).
fn check_value(value: &[u8], opts: &Options) -> Result<(), Malformed> {
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Malformed::InvalidValue);
    }
    if opts.reject_surrounding_whitespace
        && (value.first().is_some_and(|&b| b == b' ' || b == b'\t')
            || value.last().is_some_and(|&b| b == b' ' || b == b'\t'))
    {
        return Err(Malformed::InvalidValue);
    }
    Ok(())
}

/// A regular field's name and value (§8.2).
fn check_regular(name: &[u8], value: &[u8], opts: &Options) -> Result<(), Malformed> {
    check_name(name)?;
    check_value(value, opts)?;
    match name {
        b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding" | b"upgrade" => {
            Err(Malformed::ConnectionSpecific)
        }
        // Compared as nghttp2 compares it (ASCII case-insensitive).
        b"te" if !value.eq_ignore_ascii_case(b"trailers") => Err(Malformed::ConnectionSpecific),
        _ => Ok(()),
    }
}

/// A request's field block as a head (§8.3.1, §8.5; RFC 8441 §4); the
/// fields move into it.
pub fn request(fields: &mut Fields, opts: &Options) -> Result<RequestHead, Refusal> {
    if fields.over_limit() {
        return Err(Refusal::TooLarge);
    }
    // Which pseudo-header each of the first lines is.
    let mut spans: [Option<Span>; 5] = Default::default();
    let mut pseudo = 0;
    for (i, (name, value)) in fields.iter().enumerate() {
        if let Some(p) = name.strip_prefix(b":") {
            if i != pseudo {
                return Err(Malformed::PseudoAfterRegular.into());
            }
            let slot = match p {
                b"method" => 0,
                b"scheme" => 1,
                b"authority" => 2,
                b"path" => 3,
                b"protocol" => 4,
                _ => return Err(Malformed::UnknownPseudo.into()),
            };
            check_value(value, opts)?;
            if spans[slot].is_some() {
                return Err(Malformed::DuplicatePseudo.into());
            }
            spans[slot] = fields.value_range(i);
            pseudo += 1;
        } else {
            check_regular(name, value, opts)?;
        }
    }
    let [method, scheme, authority, path, protocol] = spans;
    let (base, lines) = fields.take();
    let value = |s: &Option<Span>| {
        s.as_ref()
            .and_then(|s| base.get(s.start as usize..s.end as usize))
    };
    let Some(m) = value(&method) else {
        return Err(Malformed::MissingPseudo.into());
    };
    if m.is_empty() || m.iter().any(|&b| NAME[b as usize] == 0) {
        return Err(Malformed::InvalidPseudo.into());
    }
    let connect = m == b"CONNECT";
    if protocol.is_some() && !(connect && opts.connect_protocol) {
        return Err(Malformed::Protocol.into());
    }
    if connect && protocol.is_none() {
        // §8.5: only :authority.
        if scheme.is_some() || path.is_some() {
            return Err(Malformed::ConnectWithPath.into());
        }
        if authority.is_none() {
            return Err(Malformed::MissingPseudo.into());
        }
    } else {
        let (Some(s), Some(p)) = (value(&scheme), value(&path)) else {
            return Err(Malformed::MissingPseudo.into());
        };
        if connect && authority.is_none() {
            return Err(Malformed::MissingPseudo.into());
        }
        // §8.3.1: not empty; for http(s), `*` (OPTIONS only) or from `/`,
        // as nghttp2 checks it.
        let web = s == b"http" || s == b"https";
        let ok = match p {
            [] => false,
            b"*" => !web || m == b"OPTIONS",
            [b'/', ..] => true,
            _ => !web,
        };
        if !ok || p.iter().any(|&b| b == b' ' || b == b'\t') {
            return Err(Malformed::InvalidPseudo.into());
        }
    }
    let method = method.unwrap_or_default();
    let headers = HeaderList::from_ranges(base.clone(), lines.skip(pseudo));
    Ok(RequestHead {
        base,
        method,
        scheme,
        authority,
        path,
        protocol,
        headers,
    })
}

/// A trailers block (§8.1): regular fields only; the fields move into
/// the list.
pub fn trailers(fields: &mut Fields, opts: &Options) -> Result<HeaderList, Refusal> {
    if fields.over_limit() {
        return Err(Refusal::TooLarge);
    }
    for (name, value) in fields.iter() {
        if name.first() == Some(&b':') {
            return Err(Malformed::PseudoInTrailers.into());
        }
        check_regular(name, value, opts)?;
    }
    let (base, lines) = fields.take();
    Ok(HeaderList::from_ranges(base, lines))
}

#[cfg(test)]
mod tests;
