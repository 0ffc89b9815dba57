use super::*;
use http::header::{self, HeaderMap, HeaderName};

/// The `HeaderMap` version the list version replaced (responses were
/// stripped by it until #15), kept as the reference it must agree with.
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which are present; most messages carry
    // at most `Connection`, so each removal below is of a name known there.
    let mut found = [false; 8];
    for k in h.keys() {
        if let Some(i) = hop_by_hop_index(k) {
            found[i] = true;
        }
    }
    if !found.contains(&true) {
        return;
    }
    // Names the `Connection` header lists (RFC 9110 §7.6.1), besides the
    // usual `keep-alive` and `close` tokens, which need no lookup.
    let mut listed: Vec<HeaderName> = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for name in s.split(',').map(str::trim) {
            if name.is_empty()
                || name.eq_ignore_ascii_case("keep-alive")
                || (keep_upgrade && name.eq_ignore_ascii_case("upgrade"))
            {
                continue;
            }
            if name.eq_ignore_ascii_case("close") && !h.contains_key("close") {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                listed.push(n);
            }
        }
    }
    for n in listed {
        h.remove(n);
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        let keep = match i {
            CONNECTION_AT | UPGRADE_AT => keep_upgrade,
            TE_AT => h
                .get(header::TE)
                .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers")),
            _ => false,
        };
        if found[i] && !keep {
            h.remove(n);
        }
    }
}

/// Headers never forwarded (`TE` except `trailers`; `Connection` and
/// `Upgrade` kept for an upgrade).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];
/// The name's place in `HOP_BY_HOP`: one match on the name (a length
/// switch, then one comparison) instead of eight `HeaderName` comparisons
/// per header.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    index_of(name.as_str().as_bytes())
}

#[test]
fn hop_by_hop_headers_are_removed() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
    h.insert("x-secret", "1".parse().unwrap());
    h.insert(header::TE, "gzip".parse().unwrap());
    h.insert("keep-alive", "timeout=5".parse().unwrap());
    h.insert("x-keep", "1".parse().unwrap());
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key("x-secret"));
    assert!(!h.contains_key(header::TE));
    assert!(!h.contains_key(header::CONNECTION));
    assert!(h.contains_key("x-keep"));
    let mut h = HeaderMap::new();
    h.insert(header::TE, "trailers".parse().unwrap());
    strip_hop_by_hop(&mut h, false);
    assert!(h.contains_key(header::TE), "gRPC needs te: trailers");
}

/// The list version strips exactly what the map version strips.
#[test]
fn the_list_and_the_map_strip_alike() {
    let cases: &[&[(&str, &str)]] = &[
        &[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("te", "gzip"),
            ("keep-alive", "timeout=5"),
            ("x-keep", "1"),
        ],
        &[("te", "trailers"), ("x-a", "1")],
        &[
            ("connection", "Upgrade"),
            ("connection", "X-Other"),
            ("upgrade", "websocket"),
            ("x-other", "1"),
            ("proxy-authorization", "s"),
            ("transfer-encoding", "chunked"),
        ],
        &[("connection", "close"), ("close", "x")],
        &[("x-a", "1"), ("connection", "keep-alive"), ("x-b", "2")],
        &[
            ("connection", "Keep-Alive"),
            ("connection", "x-c"),
            ("x-c", "3"),
        ],
        &[("connection", "close")],
        &[("connection", "te"), ("te", "trailers")],
        &[("host", "a"), ("x-b", "2")],
    ];
    for lines in cases {
        for keep_upgrade in [false, true] {
            let mut map = HeaderMap::new();
            let mut list = HeaderList::new();
            for (n, v) in *lines {
                let (n, v) = (
                    HeaderName::from_static(n),
                    http::HeaderValue::from_static(v),
                );
                map.append(n.clone(), v.clone());
                list.append(n, v);
            }
            strip_hop_by_hop(&mut map, keep_upgrade);
            strip_hop_by_hop_list(&mut list, keep_upgrade);
            let from_map: Vec<(String, String)> = map
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let from_list: Vec<(String, String)> = list
                .iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(n).into(),
                        String::from_utf8_lossy(v).into(),
                    )
                })
                .collect();
            assert_eq!(from_list, from_map, "{lines:?} keep_upgrade={keep_upgrade}");
        }
    }
}

#[test]
fn hop_by_hop_index_agrees_with_the_table() {
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        assert_eq!(hop_by_hop_index(n), Some(i), "{n}");
    }
    assert_eq!(hop_by_hop_index(&header::HOST), None);
    assert_eq!(hop_by_hop_index(&HeaderName::from_static("x-te")), None);
}

#[test]
fn an_upgrade_keeps_connection_and_upgrade_only() {
    let mut h = HeaderMap::new();
    h.append(header::CONNECTION, "Upgrade".parse().unwrap());
    h.append(header::CONNECTION, "X-Other".parse().unwrap());
    h.insert(header::UPGRADE, "websocket".parse().unwrap());
    h.insert("x-other", "1".parse().unwrap());
    h.insert("proxy-authorization", "secret".parse().unwrap());
    h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
    strip_hop_by_hop(&mut h, true);
    assert!(h.contains_key(header::UPGRADE));
    assert!(h.contains_key(header::CONNECTION));
    assert!(
        !h.contains_key("x-other"),
        "listed in a second Connection line"
    );
    assert!(!h.contains_key("proxy-authorization"));
    assert!(!h.contains_key(header::TRANSFER_ENCODING));
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key(header::UPGRADE));
    assert!(!h.contains_key(header::CONNECTION));
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, "close".parse().unwrap());
    h.insert("close", "x".parse().unwrap());
    strip_hop_by_hop(&mut h, false);
    assert!(h.is_empty(), "{h:?}");
}
