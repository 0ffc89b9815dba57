use super::*;
use crate::model::HTTPCookie;

fn headers(pairs: &[(&str, &str)]) -> HeaderList {
    let mut h = HeaderList::new();
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
