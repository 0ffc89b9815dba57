use std::sync::Arc;

use super::*;

/// The bytes a rustls client sends first (a real ClientHello, one record).
fn rustls_hello(sni: Option<&str>) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.enable_sni = sni.is_some();
    let name =
        rustls_pki_types::ServerName::try_from(sni.unwrap_or("ignored.test").to_string()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A ClientHello body with `extensions` (type, data) and nothing odd.
fn body(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([7u8; 32]);
    b.push(0); // session id
    b.extend([0, 2, 0x13, 0x01]); // one suite
    b.extend([1, 0]); // null compression
    let mut ext = Vec::new();
    for (t, d) in extensions {
        ext.extend(t.to_be_bytes());
        ext.extend((d.len() as u16).to_be_bytes());
        ext.extend(d);
    }
    b.extend((ext.len() as u16).to_be_bytes());
    b.extend(ext);
    b
}

fn sni_ext(name: &[u8]) -> (u16, Vec<u8>) {
    let mut entry = vec![0u8];
    entry.extend((name.len() as u16).to_be_bytes());
    entry.extend(name);
    let mut d = (entry.len() as u16).to_be_bytes().to_vec();
    d.extend(entry);
    (0, d)
}

/// The handshake message for `body`, split into records of at most
/// `fragment` bytes.
fn records(body: &[u8], fragment: usize) -> Vec<u8> {
    let mut msg = vec![1u8];
    msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    let mut out = Vec::new();
    for chunk in msg.chunks(fragment) {
        out.extend([22, 3, 1]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend(chunk);
    }
    out
}

#[test]
fn a_rustls_client_hello_gives_its_sni() {
    let hello = rustls_hello(Some("api.example.com"));
    assert_eq!(
        inspect(&hello),
        Inspect::Tls {
            sni: Some("api.example.com".into())
        }
    );
    assert_eq!(inspect(&rustls_hello(None)), Inspect::Tls { sni: None });
}

#[test]
fn every_truncation_asks_for_more() {
    let hello = rustls_hello(Some("api.example.com"));
    for n in 0..hello.len() {
        assert_eq!(inspect(&hello[..n]), Inspect::NeedMore, "{n} bytes");
    }
    // Bytes after the ClientHello (early data, a second record) are the
    // upstream's business.
    let mut more = hello.clone();
    more.extend([23, 3, 3, 0, 1, 0]);
    assert!(matches!(inspect(&more), Inspect::Tls { sni: Some(_) }));
}

#[test]
fn a_client_hello_over_several_records_is_reassembled() {
    let b = body(&[sni_ext(b"split.example.com"), (0x0a, vec![0, 2, 0, 29])]);
    for fragment in [1, 3, 7, 40] {
        let bytes = records(&b, fragment);
        assert_eq!(
            inspect(&bytes),
            Inspect::Tls {
                sni: Some("split.example.com".into())
            },
            "fragments of {fragment}"
        );
        assert_eq!(inspect(&bytes[..bytes.len() - 1]), Inspect::NeedMore);
    }
}

#[test]
fn no_server_name_extension_is_tls_without_sni() {
    assert_eq!(
        inspect(&records(&body(&[(0x0a, vec![0, 2, 0, 29])]), 1000)),
        Inspect::Tls { sni: None }
    );
    // No extensions block at all.
    let mut b = body(&[]);
    b.truncate(b.len() - 2);
    assert_eq!(inspect(&records(&b, 1000)), Inspect::Tls { sni: None });
}

#[test]
fn plain_text_and_garbage_are_not_tls_at_once() {
    for bytes in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"G",
        b"PRI * HTTP/2.0",
        b"\x16\x02",
        b"\x17\x03\x03\x00\x05hello",
        b"\x16\x03\x01\x00\x00",
        b"\x16\x03\x01\x40\x01",
    ] {
        assert_eq!(inspect(bytes), Inspect::NotTls, "{bytes:?}");
    }
    // A handshake record that is not a ClientHello (a ServerHello).
    let mut server_hello = records(&body(&[]), 1000);
    server_hello[5] = 2;
    assert_eq!(inspect(&server_hello), Inspect::NotTls);
    // Not a handshake record in the middle of a ClientHello.
    let mut bytes = records(&body(&[sni_ext(b"a.test")]), 10);
    bytes[15] = 21;
    assert_eq!(inspect(&bytes), Inspect::NotTls);
}

#[test]
fn malformed_hellos_are_served_as_without_sni() {
    let bad = [
        // Two server_name extensions.
        body(&[sni_ext(b"a.test"), sni_ext(b"b.test")]),
        // An empty, an oversized and a NUL-carrying host name.
        body(&[sni_ext(b"")]),
        body(&[sni_ext(&[b'a'; 256])]),
        body(&[sni_ext(b"a\0b.test")]),
        // Not a host_name.
        {
            let (t, mut d) = sni_ext(b"a.test");
            d[2] = 1;
            body(&[(t, d)])
        },
        // The extensions block longer than what follows.
        {
            let mut b = body(&[sni_ext(b"a.test")]);
            b.pop();
            b
        },
        // Bytes after the extensions block.
        {
            let mut b = body(&[sni_ext(b"a.test")]);
            b.push(0);
            b
        },
    ];
    for b in &bad {
        assert_eq!(inspect(&records(b, 1000)), Inspect::NotTls, "{b:?}");
    }
    // Truncated inside the hello body (the handshake length says less).
    let mut short = records(&body(&[sni_ext(b"a.test")]), 1000);
    short[8] -= 3;
    short[4] -= 3;
    short.truncate(short.len() - 3);
    assert_eq!(inspect(&short), Inspect::NotTls);
    // A 255-byte name is fine.
    let long = String::from_utf8(vec![b'a'; 255]).unwrap();
    assert_eq!(
        inspect(&records(&body(&[sni_ext(long.as_bytes())]), 1000)),
        Inspect::Tls { sni: Some(long) }
    );
}

/// Envoy 1.35 and later (envoyproxy/envoy#39903, #40911): a ClientHello
/// over BoringSSL's 16 KiB, or not complete within 16 KiB read, is
/// "interpreted as plain text": no SNI, never closed for its size.
#[test]
fn oversized_hellos_are_plain_text_as_in_envoy_1_35() {
    // A handshake length over 16 KiB: plain text from its header.
    let mut bytes = vec![22, 3, 1, 0, 4, 1, 0, 64, 1];
    assert_eq!(inspect(&bytes), Inspect::NotTls);
    // Just under the limit, in one record: parsed, its SNI taken.
    let fits = body(&[sni_ext(b"a.test"), (0x15, vec![0; MAX_HELLO - 200])]);
    bytes = records(&fits, 16 * 1024);
    assert!(bytes.len() <= MAX_BUFFERED, "{}", bytes.len());
    assert_eq!(
        inspect(&bytes),
        Inspect::Tls {
            sni: Some("a.test".into())
        }
    );
    // A post-quantum-sized hello (a few KiB) is nowhere near it.
    let pq = records(&body(&[sni_ext(b"a.test"), (0x15, vec![0; 2500])]), 1200);
    assert_eq!(
        inspect(&pq),
        Inspect::Tls {
            sni: Some("a.test".into())
        }
    );
    // 20 KiB with a valid SNI: plain text, the SNI not looked at.
    let big = records(
        &body(&[sni_ext(b"a.test"), (0x15, vec![0; 20_000])]),
        16 * 1024,
    );
    assert_eq!(inspect(&big), Inspect::NotTls);
    // A hello sent in 1-byte records takes six bytes per byte: cut once
    // the read bound is reached, as plain text.
    let tiny = records(&body(&[(0x15, vec![0; 5_000])]), 1);
    assert!(tiny.len() > MAX_BUFFERED);
    assert_eq!(inspect(&tiny[..MAX_BUFFERED]), Inspect::NotTls);
    assert_eq!(inspect(&tiny[..MAX_BUFFERED - 1]), Inspect::NeedMore);
}

/// Mutations of real ClientHellos (bytes flipped, inserted, cut) never
/// panic, and a decided prefix keeps its answer as bytes are added.
#[test]
fn mutated_hellos_never_panic_and_decided_prefixes_hold() {
    let seeds = [
        rustls_hello(Some("api.example.com")),
        records(&body(&[sni_ext(b"a.test"), (0x0a, vec![0, 2, 0, 29])]), 9),
    ];
    for i in 0..3000u32 {
        let mut b = seeds[(i % 2) as usize].clone();
        for _ in 0..1 + rand::random_range(0..4) {
            let at = rand::random_range(0..b.len());
            match rand::random_range(0..3) {
                0 => b[at] ^= 1 << rand::random_range(0..8),
                1 => b.insert(at, rand::random()),
                _ => b.truncate(at.max(1)),
            }
        }
        let whole = inspect(&b);
        for n in 0..b.len() {
            let part = inspect(&b[..n]);
            if part != Inspect::NeedMore {
                assert_eq!(part, whole, "{n} of {b:?}");
                break;
            }
        }
    }
}
