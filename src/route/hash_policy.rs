//! The request hash policy: Envoy `RouteAction.HashPolicy`, as Istio builds
//! it from a DestinationRule's `ConsistentHashLB.hash_key`. Computes a
//! request's 64-bit hash from a header, a cookie (generating one when absent
//! and a TTL is set), the source IP or a query parameter. Every hash is
//! xxHash64 with seed 0, as Envoy's `HashUtil::xxHash64`, so results are
//! identical across runs and processes. The host lookup (ring, Maglev)
//! is `cluster::hash`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::HeaderValue;

use crate::header_list::HeaderList;
use xxhash_rust::xxh64::{Xxh64, xxh64};

use crate::model::ConsistentHashLB;
/// The request hash policy: Envoy `RouteAction.HashPolicy`, as Istio builds
/// it from `ConsistentHashLB.hash_key` (`consistentHashToHashPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName` (lower-cased, as Envoy's `LowerCaseString`). Envoy can
    /// also hash pseudo-headers such as `:authority`; an `http::HeaderMap`
    /// does not hold them, so such a name finds no value here.
    Header(String),
    /// `httpCookie`.
    Cookie {
        name: String,
        path: Option<String>,
        /// Set: a cookie is generated when absent (`0` makes it a session cookie).
        ttl: Option<Duration>,
        /// `attributes` (Istio 1.28): `(name, value)`, appended to `Set-Cookie`.
        attributes: Vec<(String, String)>,
    },
    /// `useSourceIp`.
    SourceIp,
    /// `httpQueryParameterName`.
    QueryParameter(String),
}

/// The outcome of hashing one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashResult {
    /// `None`: no key in the request; Envoy then picks a random host.
    pub hash: Option<u64>,
    /// A generated cookie, to add as a `Set-Cookie` response header.
    pub set_cookie: Option<HeaderValue>,
}

impl HashKey {
    /// The hash key of a `ConsistentHashLB`, `None` when it has none
    /// (`useSourceIp: false` counts as none, as Istio emits no policy).
    pub fn from_policy(policy: &ConsistentHashLB) -> Option<HashKey> {
        if let Some(name) = &policy.http_header_name {
            return Some(HashKey::Header(name.to_ascii_lowercase()));
        }
        if let Some(cookie) = &policy.http_cookie {
            return Some(HashKey::Cookie {
                name: cookie.name.clone().unwrap_or_default(),
                path: cookie.path.clone().filter(|p| !p.is_empty()),
                ttl: cookie.ttl.as_ref().map(|d| d.as_std()),
                attributes: cookie
                    .attributes
                    .iter()
                    .map(|a| {
                        (
                            a.name.clone().unwrap_or_default(),
                            a.value.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
            });
        }
        if policy.use_source_ip == Some(true) {
            return Some(HashKey::SourceIp);
        }
        if let Some(name) = &policy.http_query_parameter_name {
            return Some(HashKey::QueryParameter(name.clone()));
        }
        None
    }

    /// Hashes a request. `query` is the query string without the `?`;
    /// `source` is the downstream peer IP.
    ///
    /// A generated cookie is derived from `source` alone (port 0, unspecified
    /// local address): see [`compute_for_connection`](Self::compute_for_connection)
    /// for Envoy's exact per-connection value.
    pub fn compute(&self, headers: &HeaderList, query: Option<&str>, source: IpAddr) -> HashResult {
        self.compute_for_connection(
            headers,
            query,
            SocketAddr::new(source, 0),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        )
    }

    /// [`compute`](Self::compute) with the full connection addresses, which
    /// Envoy's router (`Filter::addDownstreamSetCookie`) hashes to make the
    /// value of a generated cookie: 16 lower-case hex digits of
    /// `xxHash64(remote.asString() + local.asString())`, so every stream of
    /// one connection gets the same cookie.
    pub fn compute_for_connection(
        &self,
        headers: &HeaderList,
        query: Option<&str>,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> HashResult {
        match self {
            HashKey::Header(name) => HashResult {
                hash: header_hash(headers, name),
                set_cookie: None,
            },
            HashKey::Cookie {
                name,
                path,
                ttl,
                attributes,
            } => {
                let value = parse_cookie_value(headers, name);
                match (value, ttl) {
                    (Some(v), _) => HashResult {
                        hash: Some(xxh64(v.as_bytes(), 0)),
                        set_cookie: None,
                    },
                    (None, Some(ttl)) => {
                        let seed = format!("{remote}{local}");
                        let value = format!("{:016x}", xxh64(seed.as_bytes(), 0));
                        let header = make_set_cookie_value(
                            name,
                            &value,
                            path.as_deref().unwrap_or(""),
                            ttl.as_secs(),
                            attributes,
                        );
                        HashResult {
                            hash: Some(xxh64(value.as_bytes(), 0)),
                            set_cookie: HeaderValue::from_str(&header).ok(),
                        }
                    }
                    (None, None) => HashResult::default(),
                }
            }
            HashKey::SourceIp => HashResult {
                // Envoy `IpHashMethod`: the address without port, as
                // `addressAsString()` formats it (RFC 5952 for IPv6).
                hash: Some(xxh64(remote.ip().to_string().as_bytes(), 0)),
                set_cookie: None,
            },
            HashKey::QueryParameter(name) => HashResult {
                hash: query
                    .and_then(|q| first_query_value(q, name))
                    .map(|v| xxh64(v.as_bytes(), 0)),
                set_cookie: None,
            },
        }
    }
}

/// Envoy `HeaderHashMethod::evaluate`: all values of the header, sorted (so
/// order does not matter), hashed as one stream (no separators).
fn header_hash(headers: &HeaderList, name: &str) -> Option<u64> {
    let mut values: Vec<&[u8]> = headers.get_all(name).collect();
    if values.is_empty() {
        return None;
    }
    values.sort();
    let mut hasher = Xxh64::new(0);
    for v in values {
        hasher.update(v);
    }
    Some(hasher.digest())
}

/// Envoy `Utility::parseCookieValue`: the first `name=value` pair in any
/// `Cookie` header, split on `;`, leading spaces skipped, surrounding double
/// quotes removed. An empty value counts as absent (Envoy returns "").
fn parse_cookie_value(headers: &HeaderList, name: &str) -> Option<String> {
    for header in headers.get_all("cookie") {
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for part in text.split(';') {
            let Some(eq) = part.find('=') else { continue };
            let key = part[..eq].trim_start_matches(' ');
            if key != name {
                continue;
            }
            let mut v = &part[eq + 1..];
            if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v = &v[1..v.len() - 1];
            }
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

/// Envoy `Utility::makeSetCookieValue` with `httponly = true`:
/// `name="value"; Max-Age=N; Path=p; attr=v; HttpOnly` (Max-Age omitted for a
/// zero TTL, Path omitted when empty, an attribute without value as its name).
fn make_set_cookie_value(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    attributes: &[(String, String)],
) -> String {
    let mut out = format!("{name}=\"{value}\"");
    if max_age_secs != 0 {
        out.push_str(&format!("; Max-Age={max_age_secs}"));
    }
    if !path.is_empty() {
        out.push_str(&format!("; Path={path}"));
    }
    for (n, v) in attributes {
        if v.is_empty() {
            out.push_str(&format!("; {n}"));
        } else {
            out.push_str(&format!("; {n}={v}"));
        }
    }
    out.push_str("; HttpOnly");
    out
}

/// Envoy `QueryParamsMulti::parseQueryString(...).getFirstValue(name)`:
/// `&`-separated, split at the first `=`, no percent-decoding; a parameter
/// without `=` has the empty value.
fn first_query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
