//! strait's HPACK encoder and decoder on a typical response and request
//! head (issue #15): whether Huffman coding pays for itself on the
//! response side. Run with `cargo bench --bench hpack`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderName, HeaderValue};
use strait::header_list::HeaderList;
use strait::http2::hpack::{Decoder, Encoder, Fields, Huffman, Limits};

/// A proxied response head as strait sends it (Envoy's added fields).
fn response() -> HeaderList {
    [
        ("content-type", "application/json"),
        ("content-length", "1234"),
        ("date", "Sun, 06 Dec 2026 02:48:31 GMT"),
        ("x-envoy-upstream-service-time", "3"),
        ("server", "istio-envoy"),
        ("cache-control", "no-cache, no-store"),
        ("x-request-id", "6f1d7e0a-4b2c-4d7e-9a1f-2b3c4d5e6f70"),
    ]
    .into_iter()
    .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
    .collect()
}

fn encode(c: &mut Criterion) {
    let head = response();
    let mut out = BytesMut::with_capacity(1 << 16);
    for (name, huffman) in [
        ("if_shorter", Huffman::IfShorter),
        ("never", Huffman::Never),
    ] {
        let e = Encoder { huffman };
        out.clear();
        e.response(&mut out, 1, 200, &head, false, 16_384);
        eprintln!("response head, Huffman {name}: {} octets", out.len());
        c.bench_function(&format!("hpack_encode_response_huffman_{name}"), |b| {
            b.iter(|| {
                out.clear();
                e.response(&mut out, black_box(1), 200, black_box(&head), false, 16_384);
                black_box(out.len())
            })
        });
    }
}

fn decode(c: &mut Criterion) {
    // A request as h2 (hyper's client) sends it after the first: indexed
    // fields from the dynamic table, plus a Huffman-coded path.
    let mut enc = Vec::new();
    let first: [(&[u8], &[u8]); 6] = [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"reviews.default.svc.cluster.local:9080"),
        (b":path", b"/reviews/0"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
    ];
    // Literals with incremental indexing, plain strings.
    for (n, v) in first {
        enc.push(0x40);
        enc.push(n.len() as u8);
        enc.extend_from_slice(n);
        enc.push(v.len() as u8);
        enc.extend_from_slice(v);
    }
    let mut d = Decoder::default();
    let mut f = Fields::new(Limits::default());
    c.bench_function("hpack_decode_request_literals", |b| {
        b.iter(|| {
            let mut d = Decoder::default();
            d.decode(black_box(&enc), &mut f).unwrap();
            black_box(f.len())
        })
    });
    d.decode(&enc, &mut f).unwrap();
    // The next request: all six from the dynamic table.
    let indexed = [0xbfu8, 0xbe, 0xc3, 0xc2, 0xc1, 0xc0];
    c.bench_function("hpack_decode_request_indexed", |b| {
        b.iter(|| {
            d.decode(black_box(&indexed), &mut f).unwrap();
            black_box(f.len())
        })
    });
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
