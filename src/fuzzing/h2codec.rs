//! The `h2codec` fuzz target: raw bytes through strait's HTTP/2 codec
//! (`crate::http2`) as a server reads a connection after the preface:
//! frames parsed one by one, HEADERS and CONTINUATION fragments gathered
//! into field blocks (bounded, as the connection will bound them against
//! CONTINUATION floods), each block HPACK-decoded with one connection's
//! decoder and checked as a request head or trailers. The same bytes are
//! also decoded as one bare field block and as one Huffman string.
//!
//! Invariants beyond "no panic": a frame never claims more bytes than the
//! input holds; a head or trailers that pass re-encode (strait's encoder)
//! and decode to the same fields; a block decoded under a small list limit
//! keeps exactly the first fields the unlimited decode finds; a Huffman
//! string that decodes encodes and decodes back to itself.

use bytes::BytesMut;

use crate::header_list::HeaderList;
use crate::http2::frame::{self, Frame};
use crate::http2::head::{self, Options};
use crate::http2::hpack::{Decoder, Encoder, Fields, Huffman, Limits, huffman};

/// The largest field block gathered (CONTINUATION flood bound).
const MAX_BLOCK: usize = 64 * 1024;

type List = Vec<(Vec<u8>, Vec<u8>)>;

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> List {
    it.map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
}

/// `list` through strait's encoder as trailers, then a fresh decoder:
/// the same fields must come back.
fn round_trip(list: &HeaderList, huffman: Huffman) {
    let mut out = BytesMut::new();
    Encoder { huffman }.trailers(&mut out, 1, list, frame::DEFAULT_MAX_FRAME_SIZE);
    let mut block = Vec::new();
    let mut rest = &out[..];
    while let Ok(Some((f, n))) = frame::parse(rest, frame::DEFAULT_MAX_FRAME_SIZE) {
        match f {
            Frame::Headers { fragment, .. } | Frame::Continuation { fragment, .. } => {
                block.extend_from_slice(fragment);
            }
            other => panic!("the encoder wrote {other:?}"),
        }
        rest = rest.get(n..).unwrap_or_default();
    }
    assert!(rest.is_empty(), "the encoder wrote a partial frame");
    let mut f = Fields::new(Limits {
        max_list_size: usize::MAX,
        max_fields: usize::MAX,
    });
    Decoder::default()
        .decode(&block, &mut f)
        .expect("strait's own block decodes");
    assert_eq!(
        owned(f.iter()),
        owned(list.iter()),
        "round trip changed fields"
    );
}

/// One gathered field block through the connection's decoder and the
/// head checks.
fn block(d: &mut Decoder, fields: &mut Fields, block: &[u8], first: bool) -> bool {
    if d.decode(block, fields).is_err() {
        return false;
    }
    let opts = Options {
        connect_protocol: block.len().is_multiple_of(2),
        reject_surrounding_whitespace: block.len().is_multiple_of(3),
    };
    if first {
        if let Ok(mut h) = head::request(fields, &opts) {
            let list = h.take_headers();
            round_trip(&list, Huffman::IfShorter);
        }
    } else if let Ok(list) = head::trailers(fields, &opts) {
        round_trip(&list, Huffman::Never);
    }
    true
}

/// Frames in `data` until it ends or a connection error.
fn frames(data: &[u8]) {
    // Input-derived settings: the first frame's length bytes pick them.
    let max = if data.first().is_some_and(|b| b & 1 == 1) {
        64
    } else {
        frame::DEFAULT_MAX_FRAME_SIZE
    };
    let table = if data.get(2).is_some_and(|b| b % 4 == 3) {
        256
    } else {
        4096
    };
    let mut d = Decoder::new(table);
    let mut fields = Fields::new(Limits {
        max_list_size: 2048,
        max_fields: 50,
    });
    let mut pending: Option<(u32, Vec<u8>)> = None;
    let mut seen_streams = std::collections::BTreeSet::new();
    let mut rest = data;
    loop {
        let (f, n) = match frame::parse(rest, max) {
            Ok(Some(x)) => x,
            Ok(None) | Err(crate::http2::Error::Connection { .. }) => return,
            Err(crate::http2::Error::Stream { .. }) => {
                // The frame is skipped; its length is in its header.
                let Some(h) = frame::FrameHeader::parse(rest) else {
                    return;
                };
                let n = frame::HEADER_LEN + h.len as usize;
                rest = rest.get(n..).unwrap_or_default();
                continue;
            }
        };
        assert!(
            (frame::HEADER_LEN..=rest.len()).contains(&n),
            "a frame of {n} bytes"
        );
        rest = rest.get(n..).unwrap_or_default();
        match (f, pending.take()) {
            (
                Frame::Headers {
                    stream,
                    end_headers,
                    fragment,
                    ..
                },
                None,
            ) => {
                let b = fragment.to_vec();
                if end_headers {
                    let first = seen_streams.insert(stream);
                    if !block(&mut d, &mut fields, &b, first) {
                        return;
                    }
                } else {
                    pending = Some((stream, b));
                }
            }
            (
                Frame::Continuation {
                    stream,
                    end_headers,
                    fragment,
                },
                Some((s, mut b)),
            ) if s == stream => {
                // RFC 9113 §4.3 / CVE-2024-27316: a bounded block.
                if b.len() + fragment.len() > MAX_BLOCK {
                    return;
                }
                b.extend_from_slice(fragment);
                if end_headers {
                    let first = seen_streams.insert(stream);
                    if !block(&mut d, &mut fields, &b, first) {
                        return;
                    }
                } else {
                    pending = Some((s, b));
                }
            }
            // §6.10: anything else inside a block, or a CONTINUATION
            // outside one, is a connection error.
            (_, Some(_)) | (Frame::Continuation { .. }, None) => return,
            _ => {}
        }
    }
}

/// Raw bytes through the HTTP/2 codec; panics on a broken invariant.
pub fn h2codec(data: &[u8]) {
    frames(data);

    // The whole input as one field block, with and without a small limit.
    let mut all = Fields::new(Limits {
        max_list_size: usize::MAX,
        max_fields: usize::MAX,
    });
    let mut small = Fields::new(Limits {
        max_list_size: 300,
        max_fields: 8,
    });
    let whole = Decoder::new(4096).decode(data, &mut all);
    let limited = Decoder::new(4096).decode(data, &mut small);
    assert_eq!(whole, limited, "a list limit changed the decoding outcome");
    if whole.is_ok() {
        let kept = owned(small.iter());
        let full = owned(all.iter());
        assert_eq!(
            kept[..],
            full[..kept.len()],
            "the limited list is not a prefix"
        );
        assert_eq!(small.over_limit(), kept.len() < full.len());
    }

    // The whole input as a Huffman string.
    let mut text = Vec::new();
    if huffman::decode(data, &mut text).is_ok() {
        let mut coded = Vec::new();
        huffman::encode(&text, &mut coded);
        assert_eq!(coded.len(), huffman::encoded_len(&text));
        let mut back = Vec::new();
        huffman::decode(&coded, &mut back).expect("strait's own Huffman decodes");
        assert_eq!(back, text);
    }
}
