//! The request hash policy: Envoy `RouteAction.HashPolicy`, as Istio builds
//! it from a DestinationRule's `ConsistentHashLB.hash_key`. Computes a
//! request's 64-bit hash from a header, a cookie (generating one when absent
//! and a TTL is set), the source IP or a query parameter. Every hash is
//! xxHash64 with seed 0, as Envoy's `HashUtil::xxHash64`, so results are
//! identical across runs and processes. The host lookup (ring, Maglev)
//! is `cluster::hash`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
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
    pub fn compute(&self, headers: &HeaderMap, query: Option<&str>, source: IpAddr) -> HashResult {
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
        headers: &HeaderMap,
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
fn header_hash(headers: &HeaderMap, name: &str) -> Option<u64> {
    let mut values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
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
fn parse_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    for header in headers.get_all(http::header::COOKIE) {
        let Ok(text) = std::str::from_utf8(header.as_bytes()) else {
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
mod tests {
    use super::*;
    use crate::model::HTTPCookie;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));

    #[test]
    fn header_key() {
        let key = HashKey::Header("x-user".into());
        let r = key.compute(&headers(&[("x-user", "alice")]), None, SRC);
        assert_eq!(r.hash, Some(xxh64(b"alice", 0)));
        assert_eq!(r.set_cookie, None);
        assert_eq!(key.compute(&headers(&[]), None, SRC).hash, None);
        // Multiple values: order-independent, hashed as one stream.
        let a = key.compute(&headers(&[("x-user", "b"), ("x-user", "a")]), None, SRC);
        let b = key.compute(&headers(&[("x-user", "a"), ("x-user", "b")]), None, SRC);
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.hash, Some(xxh64(b"ab", 0)));
        // Pseudo-headers are not in an http::HeaderMap: no key, no panic.
        let authority = HashKey::Header(":authority".into());
        assert_eq!(authority.compute(&headers(&[]), None, SRC).hash, None);
    }

    #[test]
    fn header_key_from_policy_is_lowercased() {
        let p = ConsistentHashLB {
            http_header_name: Some("X-User".into()),
            ..Default::default()
        };
        assert_eq!(
            HashKey::from_policy(&p),
            Some(HashKey::Header("x-user".into()))
        );
        assert_eq!(HashKey::from_policy(&ConsistentHashLB::default()), None);
        let p = ConsistentHashLB {
            use_source_ip: Some(false),
            ..Default::default()
        };
        assert_eq!(HashKey::from_policy(&p), None);
    }

    fn cookie_key(ttl: Option<Duration>, path: Option<&str>) -> HashKey {
        HashKey::Cookie {
            name: "session".into(),
            path: path.map(String::from),
            ttl,
            attributes: vec![],
        }
    }

    #[test]
    fn cookie_present_is_hashed() {
        let key = cookie_key(Some(Duration::from_secs(60)), None);
        let h = headers(&[("cookie", "a=1; session=\"xyz\"; b=2")]);
        let r = key.compute(&h, None, SRC);
        assert_eq!(r.hash, Some(xxh64(b"xyz", 0)));
        assert_eq!(r.set_cookie, None);
        // Second Cookie header, unquoted.
        let h = headers(&[("cookie", "a=1"), ("cookie", "session=xyz")]);
        assert_eq!(key.compute(&h, None, SRC).hash, Some(xxh64(b"xyz", 0)));
    }

    #[test]
    fn cookie_absent_without_ttl_is_random() {
        let key = cookie_key(None, None);
        let r = key.compute(&headers(&[("cookie", "other=1")]), None, SRC);
        assert_eq!(r, HashResult::default());
        // An empty value counts as absent.
        let r = key.compute(&headers(&[("cookie", "session=")]), None, SRC);
        assert_eq!(r, HashResult::default());
    }

    #[test]
    fn cookie_generated_when_absent_with_ttl() {
        let key = cookie_key(Some(Duration::from_secs(3600)), Some("/api"));
        let remote: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let local: SocketAddr = "10.0.0.9:8080".parse().unwrap();
        let r = key.compute_for_connection(&headers(&[]), None, remote, local);
        let value = format!("{:016x}", xxh64(b"10.1.2.3:4000010.0.0.9:8080", 0));
        assert_eq!(value.len(), 16);
        assert_eq!(r.hash, Some(xxh64(value.as_bytes(), 0)));
        assert_eq!(
            r.set_cookie.unwrap().to_str().unwrap(),
            format!("session=\"{value}\"; Max-Age=3600; Path=/api; HttpOnly")
        );
        // The client sending it back hashes to the same value.
        let back = headers(&[("cookie", &format!("session={value}"))]);
        assert_eq!(key.compute(&back, None, SRC).hash, r.hash);
        // Same connection, same cookie.
        let again = key.compute_for_connection(&headers(&[]), None, remote, local);
        assert_eq!(again.hash, r.hash);
    }

    #[test]
    fn session_cookie_and_attributes() {
        let key = HashKey::Cookie {
            name: "s".into(),
            path: None,
            ttl: Some(Duration::ZERO),
            attributes: vec![
                ("SameSite".into(), "Strict".into()),
                ("Secure".into(), String::new()),
            ],
        };
        let r = key.compute(&headers(&[]), None, SRC);
        assert!(r.hash.is_some());
        let v = r.set_cookie.unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("s=\""), "{v}");
        assert!(v.ends_with("\"; SameSite=Strict; Secure; HttpOnly"), "{v}");
        assert!(!v.contains("Max-Age"));
    }

    #[test]
    fn cookie_from_policy() {
        let p = ConsistentHashLB {
            http_cookie: Some(HTTPCookie {
                name: Some("user".into()),
                path: Some("/".into()),
                ttl: Some(crate::model::Duration::parse("1.5s").unwrap()),
                attributes: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(
            HashKey::from_policy(&p),
            Some(HashKey::Cookie {
                name: "user".into(),
                path: Some("/".into()),
                ttl: Some(Duration::from_millis(1500)),
                attributes: vec![],
            })
        );
        // Envoy keeps whole seconds of the TTL.
        let r = HashKey::from_policy(&p)
            .unwrap()
            .compute(&headers(&[]), None, SRC);
        assert!(
            r.set_cookie
                .unwrap()
                .to_str()
                .unwrap()
                .contains("; Max-Age=1; Path=/;")
        );
    }

    #[test]
    fn source_ip_key() {
        let key = HashKey::SourceIp;
        assert_eq!(
            key.compute(&headers(&[]), None, SRC).hash,
            Some(xxh64(b"10.1.2.3", 0))
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            key.compute(&headers(&[]), None, v6).hash,
            Some(xxh64(b"2001:db8::1", 0))
        );
        let p = ConsistentHashLB {
            use_source_ip: Some(true),
            ..Default::default()
        };
        assert_eq!(HashKey::from_policy(&p), Some(HashKey::SourceIp));
    }

    #[test]
    fn query_parameter_key() {
        let key = HashKey::QueryParameter("user".into());
        let h = headers(&[]);
        assert_eq!(
            key.compute(&h, Some("a=1&user=bob&user=eve"), SRC).hash,
            Some(xxh64(b"bob", 0))
        );
        assert_eq!(key.compute(&h, Some("user"), SRC).hash, Some(xxh64(b"", 0)));
        // Not percent-decoded, as Envoy's parseQueryString.
        assert_eq!(
            key.compute(&h, Some("user=a%20b"), SRC).hash,
            Some(xxh64(b"a%20b", 0))
        );
        assert_eq!(key.compute(&h, Some("users=x"), SRC).hash, None);
        assert_eq!(key.compute(&h, None, SRC).hash, None);
        let p = ConsistentHashLB {
            http_query_parameter_name: Some("user".into()),
            ..Default::default()
        };
        assert_eq!(HashKey::from_policy(&p), Some(key));
    }
}
