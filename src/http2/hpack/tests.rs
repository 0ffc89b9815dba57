use super::huffman;
use super::*;
use crate::header_list::HeaderList;
use bytes::BytesMut;
use http::{HeaderName, HeaderValue};

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let h: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    h.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn big() -> Limits {
    Limits {
        max_list_size: usize::MAX,
        max_fields: usize::MAX,
    }
}

fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
    let mut f = Fields::new(big());
    d.decode(block, &mut f)?;
    Ok(f.iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect())
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The dynamic table, newest first, and its size.
fn table(d: &Decoder) -> (Vec<(String, String)>, usize) {
    let (size, n) = d.table_size();
    let entries = (0..n)
        .map(|i| {
            let (a, b) = d.table_entry(i).unwrap();
            (
                String::from_utf8_lossy(a).into_owned(),
                String::from_utf8_lossy(b).into_owned(),
            )
        })
        .collect();
    (entries, size)
}

#[test]
fn rfc_7541_c2_single_representations() {
    let mut d = Decoder::default();
    let got = decode(
        &mut d,
        &hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"),
    );
    assert_eq!(got.unwrap(), pairs(&[("custom-key", "custom-header")]));
    assert_eq!(table(&d), (pairs(&[("custom-key", "custom-header")]), 55));

    let mut d = Decoder::default();
    let got = decode(&mut d, &hex("040c 2f73 616d 706c 652f 7061 7468"));
    assert_eq!(got.unwrap(), pairs(&[(":path", "/sample/path")]));
    assert_eq!(table(&d), (vec![], 0));

    let got = decode(&mut d, &hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
    assert_eq!(got.unwrap(), pairs(&[("password", "secret")]));
    assert_eq!(table(&d), (vec![], 0));

    assert_eq!(
        decode(&mut d, &hex("82")).unwrap(),
        pairs(&[(":method", "GET")])
    );
    assert_eq!(table(&d), (vec![], 0));
}

/// C.3 and C.4: the same three requests, plain and Huffman-coded.
fn requests(blocks: [&str; 3]) {
    let mut d = Decoder::default();
    let first = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    assert_eq!(decode(&mut d, &hex(blocks[0])).unwrap(), pairs(&first));
    assert_eq!(table(&d), (pairs(&[(":authority", "www.example.com")]), 57));

    let mut second = first.to_vec();
    second.push(("cache-control", "no-cache"));
    assert_eq!(decode(&mut d, &hex(blocks[1])).unwrap(), pairs(&second));
    assert_eq!(
        table(&d),
        (
            pairs(&[
                ("cache-control", "no-cache"),
                (":authority", "www.example.com")
            ]),
            110
        )
    );

    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];
    assert_eq!(decode(&mut d, &hex(blocks[2])).unwrap(), pairs(&third));
    assert_eq!(
        table(&d),
        (
            pairs(&[
                ("custom-key", "custom-value"),
                ("cache-control", "no-cache"),
                (":authority", "www.example.com")
            ]),
            164
        )
    );
}

#[test]
fn rfc_7541_c3_requests_without_huffman() {
    requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn rfc_7541_c4_requests_with_huffman() {
    requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

/// C.5 and C.6: three responses with a 256-octet table (evictions).
fn responses(blocks: [&str; 3]) {
    let mut d = Decoder::new(256);
    let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    let loc = "https://www.example.com";
    let first = [
        (":status", "302"),
        ("cache-control", "private"),
        ("date", date1),
        ("location", loc),
    ];
    assert_eq!(decode(&mut d, &hex(blocks[0])).unwrap(), pairs(&first));
    assert_eq!(
        table(&d),
        (
            pairs(&[
                ("location", loc),
                ("date", date1),
                ("cache-control", "private"),
                (":status", "302")
            ]),
            222
        )
    );
    let mut second = first;
    second[0] = (":status", "307");
    assert_eq!(decode(&mut d, &hex(blocks[1])).unwrap(), pairs(&second));
    assert_eq!(
        table(&d),
        (
            pairs(&[
                (":status", "307"),
                ("location", loc),
                ("date", date1),
                ("cache-control", "private")
            ]),
            222
        )
    );
    let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
    let third = [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", date2),
        ("location", loc),
        ("content-encoding", "gzip"),
        ("set-cookie", cookie),
    ];
    assert_eq!(decode(&mut d, &hex(blocks[2])).unwrap(), pairs(&third));
    assert_eq!(
        table(&d),
        (
            pairs(&[
                ("set-cookie", cookie),
                ("content-encoding", "gzip"),
                ("date", date2)
            ]),
            215
        )
    );
}

#[test]
fn rfc_7541_c5_responses_without_huffman() {
    responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ]);
}

#[test]
fn rfc_7541_c6_responses_with_huffman() {
    responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}

#[test]
fn integers_per_rfc_7541_c1() {
    let mut v = Vec::new();
    encoder::integer(&mut v, 0, 5, 10);
    assert_eq!(v, [0b0000_1010]);
    v.clear();
    encoder::integer(&mut v, 0, 5, 1337);
    assert_eq!(v, [0b0001_1111, 0b1001_1010, 0b0000_1010]);
    v.clear();
    encoder::integer(&mut v, 0, 8, 42);
    assert_eq!(v, [42]);
    for (bytes, prefix, want) in [
        (&[0b0000_1010u8][..], 5u8, 10usize),
        (&[0b0001_1111, 0b1001_1010, 0b0000_1010], 5, 1337),
        (&[0x7f, 0x80, 0x80, 0x80, 0x7f], 7, 127 + (0x7f << 21)),
    ] {
        let mut pos = 0;
        assert_eq!(decoder::integer(bytes, &mut pos, prefix), Ok(want));
        assert_eq!(pos, bytes.len());
    }
    for n in [
        0usize,
        1,
        14,
        15,
        16,
        127,
        128,
        255,
        4096,
        16_384,
        (1 << 28) - 1,
    ] {
        for prefix in [4u8, 5, 6, 7] {
            let mut v = Vec::new();
            encoder::integer(&mut v, 0, prefix, n);
            let mut pos = 0;
            assert_eq!(
                decoder::integer(&v, &mut pos, prefix),
                Ok(n),
                "{n} {prefix}"
            );
        }
    }
}

fn err(block: &[u8]) -> HpackError {
    decode(&mut Decoder::default(), block).unwrap_err()
}

#[test]
fn every_error_is_a_compression_error() {
    // Integers: truncated, and five continuation octets.
    assert_eq!(err(&[0xff]), HpackError::Truncated);
    assert_eq!(err(&[0xff, 0x80]), HpackError::Truncated);
    assert_eq!(
        err(&[0xff, 0x80, 0x80, 0x80, 0x80, 0x01]),
        HpackError::IntegerOverflow
    );
    assert_eq!(
        err(&[0x3f, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        HpackError::IntegerOverflow
    );
    // Indexes: 0, past the static table, past the dynamic table.
    assert_eq!(err(&[0x80]), HpackError::BadIndex);
    assert_eq!(err(&[0xbe]), HpackError::BadIndex);
    assert_eq!(err(&[0x7e, 0x01, b'v']), HpackError::BadIndex);
    assert_eq!(err(&[0x0f, 0x2f, 0x01, b'v']), HpackError::BadIndex);
    // Strings: longer than the block; no value; bad Huffman.
    assert_eq!(err(&[0x40, 0x05, b'a', b'b']), HpackError::Truncated);
    assert_eq!(err(&[0x40, 0x01, b'a']), HpackError::Truncated);
    assert_eq!(err(&[0x04]), HpackError::Truncated);
    assert_eq!(err(&[0x04, 0x81, 0x00]), HpackError::Huffman);
    assert_eq!(err(&[0x04, 0x81, 0xff]), HpackError::Huffman);
    assert_eq!(
        err(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]),
        HpackError::Huffman
    );
    // Size updates: after a field, above the setting.
    assert_eq!(err(&[0x82, 0x20]), HpackError::SizeUpdateNotFirst);
    assert_eq!(err(&[0x3f, 0xe2, 0x1f]), HpackError::SizeUpdateTooLarge);
    let e: crate::http2::Error = HpackError::Huffman.into();
    assert_eq!(e.code(), crate::http2::ErrorCode::COMPRESSION_ERROR);
    assert!(e.is_connection_error());
}

#[test]
fn size_updates_at_the_start_of_a_block() {
    let mut d = Decoder::default();
    // Two updates, then a field; the table takes the last size.
    decode(&mut d, &hex("3f e1 1f 20 4001 61 0162")).unwrap();
    assert_eq!(table(&d), (vec![], 0));
    decode(&mut d, &hex("3f e1 1f 4001 61 0162")).unwrap();
    assert_eq!(table(&d), (pairs(&[("a", "b")]), 34));
    // Shrinking evicts; a block of only an update is fine.
    assert_eq!(decode(&mut d, &[0x20]).unwrap(), vec![]);
    assert_eq!(table(&d), (vec![], 0));
    // An entry larger than the table empties it and is not kept.
    decode(&mut d, &hex("3f 11 4001 61 0162")).unwrap();
    assert_eq!(table(&d), (pairs(&[("a", "b")]), 34));
    // c: 16 octets is 49 > 48.
    let mut block = hex("4001 63 10");
    block.extend([b'd'; 16]);
    decode(&mut d, &block).unwrap();
    assert_eq!(table(&d), (vec![], 0));
    assert_eq!(
        decode(&mut d, &hex("be")).unwrap_err(),
        HpackError::BadIndex
    );
}

#[test]
fn a_lowered_setting_needs_an_update_first() {
    let mut d = Decoder::default();
    decode(&mut d, &hex("4001 61 0162")).unwrap();
    d.set_max_size(100);
    assert_eq!(
        decode(&mut d, &hex("82")).unwrap_err(),
        HpackError::SizeUpdateMissing
    );
    let mut d2 = Decoder::default();
    decode(&mut d2, &hex("4001 61 0162")).unwrap();
    d2.set_max_size(100);
    assert_eq!(
        decode(&mut d2, &hex("3f 45 be")).unwrap(),
        pairs(&[("a", "b")])
    );
    assert_eq!(
        decode(&mut d2, &hex("3f 46")).unwrap_err(),
        HpackError::SizeUpdateTooLarge
    );
    // Raising it needs no update.
    let mut d3 = Decoder::new(100);
    d3.set_max_size(4096);
    decode(&mut d3, &hex("82")).unwrap();
}

#[test]
fn the_list_limit_stops_keeping_fields_but_decoding_goes_on() {
    let mut d = Decoder::default();
    let mut f = Fields::new(Limits {
        max_list_size: 32 + 2 + 32 + 2,
        max_fields: 100,
    });
    // a:b (34), c:d (34), then e:f with indexing: over, yet in the table.
    d.decode(&hex("0001 61 0162 0001 63 0164 4001 65 0166"), &mut f)
        .unwrap();
    assert!(f.over_limit());
    assert_eq!(f.len(), 2);
    assert_eq!(table(&d), (pairs(&[("e", "f")]), 34));
    // An indexed field of a large entry is counted before any copy.
    let mut f = Fields::new(Limits {
        max_list_size: 100,
        max_fields: 100,
    });
    let mut d = Decoder::default();
    let mut block = vec![0x40, 0x01, b'k', 0x7f, 0x81, 0x0f];
    block.extend(std::iter::repeat_n(b'v', 2000));
    block.extend(std::iter::repeat_n(0xbe, 1000));
    d.decode(&block, &mut f).unwrap();
    assert!(f.over_limit());
    assert_eq!(f.len(), 0);
    // The field count limit.
    let mut f = Fields::new(Limits {
        max_list_size: 1 << 20,
        max_fields: 3,
    });
    Decoder::default().decode(&[0x82; 4], &mut f).unwrap();
    assert!(f.over_limit());
    assert_eq!(f.len(), 3);
    // A fresh block clears the flag.
    Decoder::default().decode(&[0x82; 2], &mut f).unwrap();
    assert!(!f.over_limit());
}

#[test]
fn taken_fields_leave_room_for_the_next_block() {
    let mut d = Decoder::default();
    let mut f = Fields::new(big());
    d.decode(
        &hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"),
        &mut f,
    )
    .unwrap();
    let (base, lines) = f.take();
    let got: Vec<_> = lines
        .map(|(n, v)| {
            (
                base[n.start as usize..n.end as usize].to_vec(),
                base[v.start as usize..v.end as usize].to_vec(),
            )
        })
        .collect();
    assert_eq!(
        got[3],
        (b":authority".to_vec(), b"www.example.com".to_vec())
    );
    assert!(f.is_empty());
    d.decode(&hex("be"), &mut f).unwrap();
    assert_eq!(
        f.get(0).unwrap(),
        (&b":authority"[..], &b"www.example.com"[..])
    );
    // The first block's bytes are untouched by the second.
    assert_eq!(&base[..7], b":method");
}

fn list(fields: &[(&str, &str)]) -> HeaderList {
    fields
        .iter()
        .map(|(n, v)| {
            (
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            )
        })
        .collect()
}

/// Decode the frames `out` holds: (flags of the first, the block).
fn unframe(out: &[u8]) -> (u8, Vec<u8>) {
    use crate::http2::frame::{Frame, MAX_MAX_FRAME_SIZE, parse};
    let mut rest = out;
    let mut block = Vec::new();
    let mut first_flags = None;
    while !rest.is_empty() {
        let (f, n) = parse(rest, MAX_MAX_FRAME_SIZE).unwrap().unwrap();
        let h = crate::http2::frame::FrameHeader::parse(rest).unwrap();
        first_flags.get_or_insert(h.flags);
        match f {
            Frame::Headers { fragment, .. } | Frame::Continuation { fragment, .. } => {
                block.extend_from_slice(fragment)
            }
            other => panic!("{other:?}"),
        }
        rest = &rest[n..];
    }
    (first_flags.unwrap(), block)
}

#[test]
fn encoder_uses_the_static_table_and_no_dynamic_table() {
    let e = Encoder::default();
    let mut out = BytesMut::new();
    let headers = list(&[
        ("content-type", "text/html"),
        ("x-custom", "1"),
        ("accept-encoding", "gzip, deflate"),
    ]);
    e.response(&mut out, 1, 200, &headers, false, 16_384);
    let (flags, block) = unframe(&out);
    assert_eq!(flags, crate::http2::frame::flag::END_HEADERS);
    // :status 200 indexed; content-type by name index 31 (0x0f 0x10).
    assert_eq!(&block[..3], &[0x88, 0x0f, 0x10]);
    assert_eq!(*block.last().unwrap(), 0x90);
    let mut d = Decoder::default();
    assert_eq!(
        decode(&mut d, &block).unwrap(),
        pairs(&[
            (":status", "200"),
            ("content-type", "text/html"),
            ("x-custom", "1"),
            ("accept-encoding", "gzip, deflate")
        ])
    );
    assert_eq!(table(&d), (vec![], 0));
    // Other statuses: name index 8 and a literal.
    for status in [100u16, 101, 302, 418, 503, 999] {
        let mut out = BytesMut::new();
        e.response(&mut out, 3, status, &HeaderList::new(), true, 16_384);
        let (flags, block) = unframe(&out);
        assert_eq!(flags, 0x5);
        assert_eq!(block[0], 0x08);
        assert_eq!(
            decode(&mut d, &block).unwrap(),
            pairs(&[(":status", &status.to_string())])
        );
    }
}

#[test]
fn huffman_is_used_only_when_shorter() {
    let mut out = BytesMut::new();
    let e = Encoder::default();
    e.field(&mut out, b"x-a", b"aaaaaaaa");
    // "x-a" takes 18 bits coded: plain; the value 40 bits: coded.
    assert_eq!(&out[..6], &[0x00, 0x03, b'x', b'-', b'a', 0x85]);
    out.clear();
    // Bytes with long codes stay plain.
    e.field(&mut out, b"x-b", &[0xf0, 0xf1, 0xf2]);
    assert_eq!(&out[out.len() - 4..], &[0x03, 0xf0, 0xf1, 0xf2]);
    out.clear();
    Encoder {
        huffman: Huffman::Never,
    }
    .field(&mut out, b"x-a", b"aaaaaaaa");
    assert_eq!(&out[..5], &[0x00, 0x03, b'x', b'-', b'a']);
}

#[test]
fn large_heads_continue_in_continuation_frames() {
    let long = "v".repeat(40_000);
    let headers = list(&[("x-long", &long), ("x-after", "1")]);
    let e = Encoder {
        huffman: Huffman::Never,
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(b"before");
    e.response(&mut out, 5, 200, &headers, true, 16_384);
    assert_eq!(&out[..6], b"before");
    let frames = &out[6..];
    let (flags, block) = unframe(frames);
    // END_STREAM on the HEADERS frame, END_HEADERS only on the last.
    assert_eq!(flags, 0x1);
    assert_eq!(frames.len(), block.len() + 9 * 3);
    let got = decode(&mut Decoder::default(), &block).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].1.len(), 40_000);
}

#[test]
fn trailers_end_the_stream() {
    let mut out = BytesMut::new();
    Encoder::default().trailers(&mut out, 7, &list(&[("grpc-status", "0")]), 16_384);
    let (flags, block) = unframe(&out);
    assert_eq!(flags, 0x5);
    assert_eq!(
        decode(&mut Decoder::default(), &block).unwrap(),
        pairs(&[("grpc-status", "0")])
    );
}

/// A small deterministic generator for the round trips.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A header list of names from the static table and made up, values of
/// any visible byte.
pub(crate) fn random_list(rng: &mut Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
    const NAMES: [&[u8]; 6] = [
        b"content-type",
        b"set-cookie",
        b"x-request-id",
        b"accept-encoding",
        b"a",
        b"x-envoy-upstream-service-time",
    ];
    (0..rng.below(12))
        .map(|_| {
            let name = if rng.below(3) == 0 {
                (0..1 + rng.below(20))
                    .map(|_| b'a' + rng.below(26) as u8)
                    .collect()
            } else {
                NAMES[rng.below(NAMES.len())].to_vec()
            };
            let value = match rng.below(4) {
                0 => b"gzip, deflate".to_vec(),
                1 => (0..rng.below(50))
                    .map(|_| 0x20 + rng.below(95) as u8)
                    .collect(),
                2 => (0..rng.below(50))
                    .map(|_| 0x80 + rng.below(128) as u8)
                    .collect(),
                _ => (0..rng.below(300))
                    .map(|_| b"0123456789abcdef"[rng.below(16)])
                    .collect(),
            };
            (name, value)
        })
        .collect()
}

#[test]
fn encode_then_decode_is_identity() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut d = Decoder::default();
    let mut f = Fields::new(big());
    for i in 0..2000 {
        let fields = random_list(&mut rng);
        let headers: HeaderList = fields
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n).unwrap(),
                    HeaderValue::from_bytes(v).unwrap(),
                )
            })
            .collect();
        let status = 100 + rng.below(500) as u16;
        let e = Encoder {
            huffman: if i % 2 == 0 {
                Huffman::IfShorter
            } else {
                Huffman::Never
            },
        };
        let mut out = BytesMut::new();
        e.response(
            &mut out,
            1,
            status,
            &headers,
            false,
            16_384 + rng.below(100) as u32,
        );
        let (_, block) = unframe(&out);
        d.decode(&block, &mut f).unwrap();
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            f.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        let mut want = vec![(b":status".to_vec(), status.to_string().into_bytes())];
        want.extend(fields);
        assert_eq!(got, want);
        // Huffman strings too.
        for (_, v) in &want {
            let mut c = Vec::new();
            huffman::encode(v, &mut c);
            let mut back = Vec::new();
            huffman::decode(&c, &mut back).unwrap();
            assert_eq!(&back, v);
        }
    }
}

#[test]
fn no_block_panics() {
    // Every prefix and single-byte mutation of the appendix blocks.
    let blocks = [
        hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"),
        hex("4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"),
        hex("3fe11f 4001 61 0162 be 0f2f 0162 1f00 01ff"),
    ];
    let mut f = Fields::new(Limits::default());
    for b in &blocks {
        for n in 0..=b.len() {
            let _ = Decoder::new(256).decode(&b[..n], &mut f);
        }
        for i in 0..b.len() {
            for x in [0x00u8, 0x01, 0x3f, 0x7f, 0x80, 0xbf, 0xff] {
                let mut m = b.clone();
                m[i] ^= x;
                let _ = Decoder::new(256).decode(&m, &mut f);
            }
        }
    }
}
