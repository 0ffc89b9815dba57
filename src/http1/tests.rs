use bytes::BytesMut;

use super::chunked::{Chunk, Decoder, write_chunk, write_end};
use super::head::{RequestReader, ResponseReader};
use super::*;

fn req(text: &[u8]) -> Result<Option<RequestHead>, Refusal> {
    parse_request(&mut BytesMut::from(text), &HeadLimits::default())
}

fn refused(text: &[u8]) -> Refusal {
    match req(text) {
        Err(r) => r,
        other => panic!("{:?}: accepted {other:?}", String::from_utf8_lossy(text)),
    }
}

#[test]
/// Names are lowercased in the head itself, as Envoy's HTTP/1 codec keys
/// them (its default `header_key_format` writes them lowercase upstream).
fn a_request_head_keeps_its_headers_in_order_names_lowercase() {
    let mut buf =
        BytesMut::from(&b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\nNEXT"[..]);
    let h = parse_request(&mut buf, &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(h.method(), http::Method::GET);
    assert_eq!(h.target(), b"/a?b=1");
    assert_eq!(h.version, Version::Http11);
    let headers: Vec<_> = h.headers().collect();
    assert_eq!(
        headers,
        [
            (&b"host"[..], &b"x"[..]),
            (&b"x-a"[..], &b"1"[..]),
            (&b"x-a"[..], &b"2"[..])
        ]
    );
    assert_eq!(h.header(b"x-A"), Some(&b"1"[..]));
    assert_eq!(h.body, Framing::Empty);
    assert!(h.keep_alive);
    // What follows the head stays for the body or the next request.
    assert_eq!(&buf[..], b"NEXT");
}

#[test]
fn an_incomplete_head_waits_and_blank_lines_before_it_are_dropped() {
    let limits = HeadLimits::default();
    let mut reader = RequestReader::default();
    let mut buf = BytesMut::new();
    let full = b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    // Byte by byte, as a slow client sends it.
    let mut head = None;
    for &b in full.iter() {
        buf.extend_from_slice(&[b]);
        if let Some(h) = reader.read(&mut buf, &limits).unwrap() {
            head = Some(h);
        }
    }
    let head = head.unwrap();
    assert_eq!(head.body, Framing::Length(3));
    assert_eq!(&buf[..], b"abc");
}

#[test]
fn keep_alive_follows_the_version_and_connection_tokens() {
    let ka = |t: &[u8]| req(t).unwrap().unwrap().keep_alive;
    assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n"));
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

#[test]
fn expect_and_upgrade_are_read_from_the_head() {
    let h = req(b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.expect_continue);
    let h = req(b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.upgrade);
    // An Upgrade header the Connection header does not name is not one.
    let h = req(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.upgrade);
}

/// reliability.md case 11 (Envoy `allow_chunked_length: false`; the
/// Pingora CVE-2026-2835 fix): never resolved by guessing.
#[test]
fn content_length_with_transfer_encoding_and_odd_codings_are_refused() {
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Refusal::ContentLengthAndChunked
    );
    for te in [
        &b"Transfer-Encoding: gzip, chunked"[..],
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: chunked, identity",
        b"Transfer-Encoding: xchunked",
        b"Transfer-Encoding: identity",
        b"Transfer-Encoding: ",
    ] {
        let text = [b"POST / HTTP/1.1\r\n", te, b"\r\n\r\n"].concat();
        assert_eq!(refused(&text), Refusal::TransferEncoding, "{te:?}");
    }
    assert_eq!(Refusal::TransferEncoding.status(), 501);
    assert_eq!(Refusal::ContentLengthAndChunked.status(), 400);
    // A space before the colon is not a header line at all.
    assert_eq!(
        refused(b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n"),
        Refusal::Malformed
    );
    let h = req(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.body, Framing::Chunked);
}

#[test]
fn content_length_values_must_be_digits_and_agree() {
    let body = |t: &[u8]| req(t).map(|h| h.unwrap().body);
    assert_eq!(
        body(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"),
        Ok(Framing::Length(5))
    );
    assert_eq!(
        body(b"POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n"),
        Ok(Framing::Length(7))
    );
    for cl in [
        &b"5, 6"[..],
        b"5, 5",
        b"+5",
        b"-1",
        b"0x5",
        b"5 5",
        b"",
        b"99999999999999999999",
    ] {
        let text = [&b"POST / HTTP/1.1\r\nContent-Length: "[..], cl, b"\r\n\r\n"].concat();
        assert_eq!(refused(&text), Refusal::Malformed, "{cl:?}");
    }
}

#[test]
fn a_bare_lf_anywhere_in_the_head_is_refused() {
    assert_eq!(
        refused(b"GET / HTTP/1.1\nHost: x\r\n\r\n"),
        Refusal::Malformed
    );
    assert_eq!(
        refused(b"GET / HTTP/1.1\r\nHost: x\n\r\n"),
        Refusal::Malformed
    );
    assert_eq!(refused(b"GET / HTTP/1.1\n\n"), Refusal::Malformed);
    // A body may hold any bytes.
    assert!(req(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n\n\n").is_ok());
}

#[test]
fn heads_over_the_limits_are_431_counted_as_envoy_counts() {
    let limits = HeadLimits {
        max_head_bytes: 100,
        max_headers: 3,
    };
    let parse = |t: &[u8]| parse_request(&mut BytesMut::from(t), &limits);
    let four = b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\n\r\n";
    assert_eq!(parse(four).unwrap_err(), Refusal::TooLarge);
    assert!(
        matches!(parse(&four[..four.len() - 11]), Ok(None)),
        "incomplete"
    );
    assert!(
        parse(b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\n\r\n")
            .unwrap()
            .is_some()
    );
    let long = [&b"GET / HTTP/1.1\r\nx: "[..], &[b'v'; 100], b"\r\n\r\n"].concat();
    assert_eq!(parse(&long).unwrap_err(), Refusal::TooLarge);
    // Unterminated and already past what could fit.
    let endless = [&b"GET / HTTP/1.1\r\nx: "[..], &[b'v'; 2000]].concat();
    assert_eq!(parse(&endless).unwrap_err(), Refusal::TooLarge);
    assert_eq!(Refusal::TooLarge.status(), 431);
    // Past the stack's slots: the vector path.
    let many = HeadLimits {
        max_head_bytes: 64 * 1024,
        max_headers: 300,
    };
    let mut text = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..300 {
        text.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
    }
    text.extend_from_slice(b"\r\n");
    let h = parse_request(&mut BytesMut::from(&text[..]), &many)
        .unwrap()
        .unwrap();
    assert_eq!(h.header_count(), 300);
    assert_eq!(h.header(b"H299"), Some(&b"v"[..]));
}

#[test]
fn malformed_request_lines_and_header_lines_are_refused() {
    for text in [
        &b"GET / HTTP/1.2x\r\n\r\n"[..],
        b"GET T/ HTTP/1.1\r\n\r\n",
        b"GET http:/a/b HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"G\x01T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
        b"GET / HTTP/1.1\r\nx\x00y: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nx: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
    ] {
        assert_eq!(refused(text), Refusal::Malformed, "{text:?}");
    }
}

#[test]
fn response_framing_follows_rfc_9112_section_6_3() {
    let get = http::Method::GET;
    let body = |t: &[u8], m: &http::Method| {
        parse_response(&mut BytesMut::from(t), &HeadLimits::default(), m)
            .unwrap()
            .unwrap()
            .body
    };
    assert_eq!(
        body(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", &get),
        Framing::Length(4)
    );
    assert_eq!(
        body(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
            &http::Method::HEAD
        ),
        Framing::Empty
    );
    assert_eq!(
        body(b"HTTP/1.1 204 No Content\r\n\r\n", &get),
        Framing::Empty
    );
    assert_eq!(
        body(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
            &get
        ),
        Framing::Empty
    );
    assert_eq!(body(b"HTTP/1.1 100 Continue\r\n\r\n", &get), Framing::Empty);
    assert_eq!(
        body(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            &get
        ),
        Framing::Chunked
    );
    assert_eq!(
        body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", &get),
        Framing::UntilClose
    );
    assert_eq!(body(b"HTTP/1.1 200 OK\r\n\r\n", &get), Framing::UntilClose);
    // Ambiguous lengths are refused (strait's UPE).
    for text in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 4, 4\r\n\r\n",
    ] {
        assert!(parse_response(&mut BytesMut::from(text), &HeadLimits::default(), &get).is_err());
    }
    let mut buf = BytesMut::from(&b"HTTP/1.1 503 Busy Now\r\nContent-Length: 0\r\n\r\n"[..]);
    let h = ResponseReader::default()
        .read(&mut buf, &HeadLimits::default(), &get)
        .unwrap()
        .unwrap();
    assert_eq!((h.status, h.reason()), (503, &b"Busy Now"[..]));
    assert!(h.keep_alive);
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\n\r\n"[..]);
    let h = parse_response(&mut buf, &HeadLimits::default(), &get)
        .unwrap()
        .unwrap();
    assert!(!h.keep_alive, "a body until close ends the connection");
}

type Lines = Vec<(Vec<u8>, Vec<u8>)>;

fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Result<(Vec<u8>, Lines), Refusal> {
    let mut buf = BytesMut::from(input);
    let mut body = Vec::new();
    while let Some(chunk) = decoder.decode(&mut buf)? {
        match chunk {
            Chunk::Data(d) => body.extend_from_slice(&d),
            Chunk::End(t) => {
                let trailers = t.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
                return Ok((body, trailers));
            }
        }
    }
    Err(Refusal::Malformed)
}

#[test]
fn chunked_bodies_decode_with_extensions_and_trailers() {
    let mut d = Decoder::new(HeadLimits::default());
    let (body, trailers) = decode_all(
        &mut d,
        b"5;a=b\r\nhello\r\n6 \r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT",
    )
    .unwrap();
    assert_eq!(body, b"hello world");
    assert_eq!(trailers, [(b"X-T".to_vec(), b"1".to_vec())]);
    assert!(d.is_done());
    let mut d = Decoder::new(HeadLimits::default());
    assert_eq!(
        decode_all(&mut d, b"000A\r\n0123456789\r\n0\r\n\r\n")
            .unwrap()
            .0,
        b"0123456789"
    );
}

#[test]
fn chunked_bodies_decode_the_same_a_byte_at_a_time() {
    let input = b"5;a=b\r\nhello\r\n6 \r\n world\r\n0\r\nX-T: 1\r\n\r\n";
    let mut d = Decoder::new(HeadLimits::default());
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut ended = false;
    for &b in input.iter() {
        buf.extend_from_slice(&[b]);
        while let Some(chunk) = d.decode(&mut buf).unwrap() {
            match chunk {
                Chunk::Data(data) => body.extend_from_slice(&data),
                Chunk::End(t) => {
                    assert_eq!(t.get(b"x-t"), Some(&b"1"[..]));
                    ended = true;
                }
            }
        }
    }
    assert!(ended);
    assert_eq!(body, b"hello world");
}

/// reliability.md case 10: malformed chunked bodies are refused.
#[test]
fn malformed_chunked_bodies_are_refused() {
    for input in [
        &b"Z\r\n"[..],
        b"\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"5;a\rb\r\nhello\r\n",
        b"5;a\nb\r\nhello\r\n",
        b" 5\r\nhello\r\n",
        b"0\r\nX-T: 1\n\r\n",
        b"0\r\nbad trailer\r\n\r\n",
    ] {
        let mut d = Decoder::new(HeadLimits::default());
        assert_eq!(
            decode_all(&mut d, input),
            Err(Refusal::Malformed),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // 16 hex digits is the largest size line.
    let mut d = Decoder::new(HeadLimits::default());
    let mut buf = BytesMut::from(&b"FFFFFFFFFFFFFFFF\r\nab"[..]);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Chunk::Data(bytes::Bytes::from_static(b"ab"))))
    );
}

#[test]
fn the_encoder_writes_what_the_decoder_reads() {
    let mut out = BytesMut::new();
    write_chunk(&mut out, b"hello");
    write_chunk(&mut out, b"");
    write_chunk(&mut out, &[b'x'; 300]);
    write_end(&mut out, [(&b"grpc-status"[..], &b"0"[..])]);
    assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
    let mut d = Decoder::new(HeadLimits::default());
    let (body, trailers) = decode_all(&mut d, &out).unwrap();
    assert_eq!(body.len(), 305);
    assert_eq!(trailers, [(b"grpc-status".to_vec(), b"0".to_vec())]);
}

#[test]
fn written_heads_parse_back() {
    let mut out = BytesMut::new();
    write::request_head(
        &mut out,
        "POST",
        b"/p?q",
        Version::Http11,
        [(&b"host"[..], &b"a"[..]), (b"content-length", b"0")],
    );
    assert_eq!(
        &out[..],
        b"POST /p?q HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n"
    );
    let h = parse_request(&mut out, &HeadLimits::default())
        .unwrap()
        .unwrap();
    assert_eq!(h.header(b"Host"), Some(&b"a"[..]));
    let mut out = BytesMut::new();
    write::response_head(
        &mut out,
        Version::Http11,
        404,
        b"",
        [(&b"a"[..], &b"b"[..])],
    );
    assert_eq!(&out[..], b"HTTP/1.1 404 Not Found\r\na: b\r\n\r\n");
    let mut out = BytesMut::new();
    write::response_head(&mut out, Version::Http10, 299, b"", []);
    assert_eq!(&out[..], b"HTTP/1.0 299 \r\n\r\n");
    // Three digits, zero-padded as `{:03}` would (the codec never sees a
    // status outside 100-999, but writes any).
    for (status, line) in [(200, "200 OK"), (7, "007 "), (1234, "1234 ")] {
        let mut out = BytesMut::new();
        write::response_head(&mut out, Version::Http11, status, b"", []);
        assert_eq!(out, format!("HTTP/1.1 {line}\r\n\r\n").as_bytes());
    }
}

/// Found by the `h1codec` fuzz target: a trailer section longer than the
/// limit is refused as too large whether it arrives whole (its end in
/// view) or a few bytes at a time (refused before its end arrives).
#[test]
fn an_oversized_trailer_section_is_refused_however_it_arrives() {
    let limits = HeadLimits {
        max_head_bytes: 64,
        max_headers: 20,
    };
    let mut input = b"0\r\nJ\r\n".to_vec();
    input.extend_from_slice(&[b'a'; 100]);
    input.extend_from_slice(b"\r\n\r\n");
    let mut whole = Decoder::new(limits);
    assert_eq!(
        whole.decode(&mut BytesMut::from(&input[..])),
        Err(Refusal::TooLarge)
    );
    let mut trickled = Decoder::new(limits);
    let mut buf = BytesMut::new();
    let mut result = Ok(None);
    for piece in input.chunks(7) {
        buf.extend_from_slice(piece);
        result = trickled.decode(&mut buf);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(Refusal::TooLarge));
}

#[test]
/// The word-at-a-time lowercase is `make_ascii_lowercase`: every byte value
/// in every lane of a word, and the tail bytes after the words.
fn names_lowercase_a_word_at_a_time_as_a_byte_at_a_time() {
    for len in [1usize, 3, 4, 5, 7, 8, 9, 15, 16, 17] {
        for b in 0..=255u8 {
            for at in 0..len {
                let mut name: Vec<u8> = (0..len).map(|i| b"Content-Length!"[i % 15]).collect();
                name[at] = b;
                let mut want = name.clone();
                want.make_ascii_lowercase();
                super::head::make_lowercase(&mut name);
                assert_eq!(name, want, "byte {b:#x} at {at} of {len}");
            }
        }
    }
}
