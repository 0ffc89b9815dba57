//! Request matching as Envoy does it for Istio's `HTTPMatchRequest`: fields
//! ANDed; exact and prefix case-sensitive (URI aside with `ignoreUriCase`);
//! regexes RE2 and full-match; headers with several values joined by `,`.

use http::HeaderName;

use crate::header_list::{HeaderList, as_text};
use regex::Regex;

/// The parts of a request that matching reads, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Raw query string (after `?`), if any.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderList,
}

/// A compiled `StringMatch`.
#[derive(Debug, Clone)]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    /// `{}` or `regex: "*"` on a header or query parameter: presence only.
    Present,
}

impl StrMatch {
    pub fn matches(&self, v: &str) -> bool {
        match self {
            StrMatch::Exact(e) => v == e,
            StrMatch::Prefix(p) => v.starts_with(p.as_str()),
            StrMatch::Regex(r) => r.is_match(v),
            StrMatch::Present => true,
        }
    }

    fn matches_ignore_case(&self, v: &str) -> bool {
        match self {
            StrMatch::Exact(e) => v.eq_ignore_ascii_case(e),
            StrMatch::Prefix(p) => {
                v.len() >= p.len() && v.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            other => other.matches(v),
        }
    }

    /// Human form for `explain` and logs.
    pub fn describe(&self) -> String {
        match self {
            StrMatch::Exact(e) => format!("exact {e:?}"),
            StrMatch::Prefix(p) => format!("prefix {p:?}"),
            StrMatch::Regex(r) => format!("regex {:?}", r.as_str()),
            StrMatch::Present => "present".into(),
        }
    }
}

/// A header a match reads: a regular header or a request pseudo-header
/// (`:method`, `:scheme`, `:authority`, `:path` with its query; `:status`
/// is never on a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderKey {
    Header(HeaderName),
    Pseudo(&'static str),
}

impl From<HeaderName> for HeaderKey {
    fn from(n: HeaderName) -> HeaderKey {
        HeaderKey::Header(n)
    }
}

impl std::fmt::Display for HeaderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderKey::Header(n) => f.write_str(n.as_str()),
            HeaderKey::Pseudo(p) => f.write_str(p),
        }
    }
}

/// One header (or withoutHeaders) condition.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    pub name: HeaderKey,
    pub matcher: StrMatch,
}

/// A compiled `HTTPMatchRequest` (or the catch-all when every field is empty).
#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub uri: Option<StrMatch>,
    pub ignore_uri_case: bool,
    pub scheme: Option<StrMatch>,
    pub method: Option<StrMatch>,
    pub authority: Option<StrMatch>,
    pub headers: Vec<HeaderMatch>,
    pub without_headers: Vec<HeaderMatch>,
    pub query_params: Vec<(String, StrMatch)>,
}

/// Which condition of a match failed first (for `explain`); cheap to make,
/// so the request path can use the same check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    Uri,
    Scheme,
    Method,
    Authority,
    /// Index into `headers`.
    Header(usize),
    /// Index into `without_headers`.
    WithoutHeader(usize),
    /// Index into `query_params`.
    QueryParam(usize),
}

impl RouteMatch {
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.check(req).is_ok()
    }

    /// Match, saying which condition failed first.
    pub fn check(&self, req: &RequestView<'_>) -> Result<(), Miss> {
        if let Some(m) = &self.uri {
            let ok = if self.ignore_uri_case {
                m.matches_ignore_case(req.path)
            } else {
                m.matches(req.path)
            };
            if !ok {
                return Err(Miss::Uri);
            }
        }
        if self.scheme.as_ref().is_some_and(|m| !m.matches(req.scheme)) {
            return Err(Miss::Scheme);
        }
        if self.method.as_ref().is_some_and(|m| !m.matches(req.method)) {
            return Err(Miss::Method);
        }
        if self
            .authority
            .as_ref()
            .is_some_and(|m| !m.matches(req.authority))
        {
            return Err(Miss::Authority);
        }
        for (i, h) in self.headers.iter().enumerate() {
            let ok = match header_value(req, &h.name) {
                Some(v) => h.matcher.matches(&v),
                None => false,
            };
            if !ok {
                return Err(Miss::Header(i));
            }
        }
        for (i, h) in self.without_headers.iter().enumerate() {
            // Envoy's invert_match with treat_missing_header_as_empty: a
            // missing header is "" for value matchers, absent for presence.
            let hit = match (header_value(req, &h.name), &h.matcher) {
                (None, StrMatch::Present) => false,
                (None, m) => m.matches(""),
                (Some(v), m) => m.matches(&v),
            };
            if hit {
                return Err(Miss::WithoutHeader(i));
            }
        }
        for (i, (name, m)) in self.query_params.iter().enumerate() {
            let ok = match query_value(req.query, name) {
                Some(v) => m.matches(v),
                None => false,
            };
            if !ok {
                return Err(Miss::QueryParam(i));
            }
        }
        Ok(())
    }

    /// `(field, what it wanted)` for a miss, for humans.
    pub fn describe_miss(&self, miss: Miss) -> (String, String) {
        let d = |m: &Option<StrMatch>| m.as_ref().map(StrMatch::describe).unwrap_or_default();
        match miss {
            Miss::Uri => (
                "uri".into(),
                if self.ignore_uri_case {
                    format!("{} (ignoring case)", d(&self.uri))
                } else {
                    d(&self.uri)
                },
            ),
            Miss::Scheme => ("scheme".into(), d(&self.scheme)),
            Miss::Method => ("method".into(), d(&self.method)),
            Miss::Authority => ("authority".into(), d(&self.authority)),
            Miss::Header(i) => self.headers.get(i).map_or_else(Default::default, |h| {
                (format!("headers.{}", h.name), h.matcher.describe())
            }),
            Miss::WithoutHeader(i) => {
                self.without_headers
                    .get(i)
                    .map_or_else(Default::default, |h| {
                        (
                            format!("withoutHeaders.{}", h.name),
                            format!("not {}", h.matcher.describe()),
                        )
                    })
            }
            Miss::QueryParam(i) => self
                .query_params
                .get(i)
                .map_or_else(Default::default, |(n, m)| {
                    (format!("queryParams.{n}"), m.describe())
                }),
        }
    }

    /// The URI prefix a prefix rewrite replaces (the match's prefix), if any.
    pub fn uri_prefix(&self) -> Option<&str> {
        match &self.uri {
            Some(StrMatch::Prefix(p)) => Some(p),
            _ => None,
        }
    }
}

/// A header's value; several values are joined with `,` as Envoy does.
fn header_value<'a>(req: &RequestView<'a>, key: &HeaderKey) -> Option<std::borrow::Cow<'a, str>> {
    use std::borrow::Cow;
    let name = match key {
        HeaderKey::Header(n) => n,
        HeaderKey::Pseudo(":method") => return Some(Cow::Borrowed(req.method)),
        HeaderKey::Pseudo(":scheme") => return Some(Cow::Borrowed(req.scheme)),
        HeaderKey::Pseudo(":authority") => return Some(Cow::Borrowed(req.authority)),
        HeaderKey::Pseudo(":path") => {
            return Some(match req.query {
                Some(q) => Cow::Owned(format!("{}?{q}", req.path)),
                None => Cow::Borrowed(req.path),
            });
        }
        HeaderKey::Pseudo(_) => return None,
    };
    let mut it = req.headers.get_all(name.as_str());
    let first = it.next()?;
    let first = as_text(first).unwrap_or("");
    match it.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => {
            let mut s = String::from(first);
            s.push(',');
            s.push_str(as_text(second).unwrap_or(""));
            for v in it {
                s.push(',');
                s.push_str(as_text(v).unwrap_or(""));
            }
            Some(Cow::Owned(s))
        }
    }
}

/// The first value of a query parameter, undecoded; `?key` gives `""`.
fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests;
