use super::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .write(&mut v);
    v.extend_from_slice(payload);
    v
}

fn one(bytes: &[u8]) -> Result<Frame<'_>, Error> {
    let (f, n) = parse(bytes, DEFAULT_MAX_FRAME_SIZE)?.expect("a whole frame");
    assert_eq!(n, bytes.len());
    Ok(f)
}

fn conn_err(code: ErrorCode) -> impl Fn(Result<Frame<'_>, Error>) {
    move |r| match r {
        Err(Error::Connection { code: c, .. }) => assert_eq!(c, code),
        other => panic!("expected connection error {code:?}, got {other:?}"),
    }
}

fn stream_err(stream: u32, code: ErrorCode) -> impl Fn(Result<Frame<'_>, Error>) {
    move |r| match r {
        Err(Error::Stream {
            stream: s, code: c, ..
        }) => assert_eq!((s, c), (stream, code)),
        other => panic!("expected stream error {code:?}, got {other:?}"),
    }
}

#[test]
fn header_round_trips_and_clears_the_reserved_bit() {
    let mut v = Vec::new();
    let h = FrameHeader {
        len: 0x12_3456,
        kind: 7,
        flags: 0xa5,
        stream: 0x7fff_fffe,
    };
    h.write(&mut v);
    assert_eq!(v.len(), HEADER_LEN);
    assert_eq!(FrameHeader::parse(&v), Some(h));
    v[5] |= 0x80;
    assert_eq!(FrameHeader::parse(&v).unwrap().stream, 0x7fff_fffe);
    assert_eq!(FrameHeader::parse(&v[..8]), None);
}

#[test]
fn incomplete_frames_wait_and_oversized_ones_are_refused_at_once() {
    let f = frame(kind::DATA, 0, 1, b"hello");
    for n in 0..f.len() {
        assert_eq!(parse(&f[..n], DEFAULT_MAX_FRAME_SIZE), Ok(None));
    }
    let mut big = Vec::new();
    FrameHeader {
        len: DEFAULT_MAX_FRAME_SIZE + 1,
        kind: kind::DATA,
        flags: 0,
        stream: 1,
    }
    .write(&mut big);
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(
        parse(&big, DEFAULT_MAX_FRAME_SIZE).map(|o| o.unwrap().0),
    );
    // Within a larger advertised limit it just waits.
    assert_eq!(parse(&big, MAX_MAX_FRAME_SIZE), Ok(None));
}

#[test]
fn data_with_and_without_padding() {
    assert_eq!(
        one(&frame(kind::DATA, flag::END_STREAM, 3, b"abc")),
        Ok(Frame::Data {
            stream: 3,
            end_stream: true,
            data: b"abc",
            flow_len: 3
        })
    );
    assert_eq!(
        one(&frame(kind::DATA, flag::PADDED, 3, b"\x02abcXX")),
        Ok(Frame::Data {
            stream: 3,
            end_stream: false,
            data: b"abc",
            flow_len: 6
        })
    );
    // All padding, no data.
    assert_eq!(
        one(&frame(kind::DATA, flag::PADDED, 3, b"\x02XX")),
        Ok(Frame::Data {
            stream: 3,
            end_stream: false,
            data: b"",
            flow_len: 3
        })
    );
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::DATA, flag::PADDED, 3, b"\x03XX")));
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::DATA, flag::PADDED, 3, b"")));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::DATA, 0, 0, b"abc")));
}

#[test]
fn headers_with_padding_and_priority() {
    let all = flag::PADDED | flag::PRIORITY | flag::END_HEADERS | flag::END_STREAM;
    assert_eq!(
        one(&frame(
            kind::HEADERS,
            all,
            5,
            b"\x01\x80\x00\x00\x03\x0f\x82P"
        )),
        Ok(Frame::Headers {
            stream: 5,
            end_stream: true,
            end_headers: true,
            priority: Some(Priority {
                exclusive: true,
                dependency: 3,
                weight: 15
            }),
            fragment: b"\x82",
        })
    );
    assert_eq!(
        one(&frame(kind::HEADERS, 0, 5, b"\x82")),
        Ok(Frame::Headers {
            stream: 5,
            end_stream: false,
            end_headers: false,
            priority: None,
            fragment: b"\x82",
        })
    );
    // Self-dependency parses: the block must still be decoded.
    assert!(matches!(
        one(&frame(
            kind::HEADERS,
            flag::PRIORITY,
            5,
            b"\x00\x00\x00\x05\x0f"
        )),
        Ok(Frame::Headers {
            priority: Some(Priority { dependency: 5, .. }),
            ..
        })
    ));
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::HEADERS, flag::PRIORITY, 5, b"\0\0\0")));
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY,
        5,
        b"\x00\0\0\0",
    )));
    // Padding longer than what is left after the priority fields.
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY,
        5,
        b"\x02\0\0\0\x01\x0fX",
    )));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::HEADERS, 0, 0, b"\x82")));
}

#[test]
fn priority_frames() {
    assert_eq!(
        one(&frame(kind::PRIORITY, 0, 7, b"\x00\x00\x00\x01\x10")),
        Ok(Frame::Priority {
            stream: 7,
            priority: Priority {
                exclusive: false,
                dependency: 1,
                weight: 16
            }
        })
    );
    stream_err(7, ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::PRIORITY, 0, 7, b"\0\0\0\x01")));
    stream_err(7, ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::PRIORITY, 0, 7, b"\0\0\0\x07\x10")));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::PRIORITY, 0, 0, b"\0\0\0\x01\x10")));
}

#[test]
fn rst_stream_frames() {
    assert_eq!(
        one(&frame(kind::RST_STREAM, 0, 9, &8u32.to_be_bytes())),
        Ok(Frame::RstStream {
            stream: 9,
            code: ErrorCode::CANCEL
        })
    );
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::RST_STREAM, 0, 9, b"\0\0\0")));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::RST_STREAM, 0, 0, b"\0\0\0\x08")));
}

fn settings_payload(pairs: &[(u16, u32)]) -> Vec<u8> {
    pairs
        .iter()
        .flat_map(|(id, v)| id.to_be_bytes().into_iter().chain(v.to_be_bytes()))
        .collect()
}

#[test]
fn settings_frames_are_validated() {
    let p = settings_payload(&[
        (setting::HEADER_TABLE_SIZE, 0),
        (setting::ENABLE_PUSH, 0),
        (setting::MAX_CONCURRENT_STREAMS, 100),
        (setting::INITIAL_WINDOW_SIZE, 1),
        (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW),
        (setting::MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE),
        (setting::MAX_HEADER_LIST_SIZE, 8192),
        (setting::ENABLE_CONNECT_PROTOCOL, 1),
        (setting::NO_RFC7540_PRIORITIES, 1),
        (0xabcd, 77),
    ]);
    let expected = Settings {
        header_table_size: Some(0),
        enable_push: Some(false),
        max_concurrent_streams: Some(100),
        initial_window_size: Some(MAX_WINDOW),
        max_frame_size: Some(MAX_MAX_FRAME_SIZE),
        max_header_list_size: Some(8192),
        enable_connect_protocol: Some(true),
        no_rfc7540_priorities: Some(true),
    };
    assert_eq!(
        one(&frame(kind::SETTINGS, 0, 0, &p)),
        Ok(Frame::Settings(expected))
    );
    assert_eq!(
        one(&frame(kind::SETTINGS, 0, 0, b"")),
        Ok(Frame::Settings(Settings::default()))
    );
    assert_eq!(
        one(&frame(kind::SETTINGS, flag::ACK, 0, b"")),
        Ok(Frame::SettingsAck)
    );
    let bad = |pairs: &[(u16, u32)]| {
        one(&frame(kind::SETTINGS, 0, 0, &settings_payload(pairs))).map(|_| ())
    };
    let code = |r: Result<(), Error>| r.unwrap_err().code();
    assert_eq!(
        code(bad(&[(setting::ENABLE_PUSH, 2)])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(
        code(bad(&[(setting::INITIAL_WINDOW_SIZE, MAX_WINDOW + 1)])),
        ErrorCode::FLOW_CONTROL_ERROR
    );
    assert_eq!(
        code(bad(&[(setting::MAX_FRAME_SIZE, 16_383)])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(
        code(bad(&[(setting::MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE + 1)])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(
        code(bad(&[(setting::ENABLE_CONNECT_PROTOCOL, 2)])),
        ErrorCode::PROTOCOL_ERROR
    );
    assert_eq!(
        code(bad(&[(setting::NO_RFC7540_PRIORITIES, 7)])),
        ErrorCode::PROTOCOL_ERROR
    );
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::SETTINGS, 0, 0, &p[..7])));
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::SETTINGS, flag::ACK, 0, &p[..6])));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::SETTINGS, 0, 1, b"")));
}

#[test]
fn push_promise_from_a_client_is_a_connection_error() {
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(
        kind::PUSH_PROMISE,
        flag::END_HEADERS,
        1,
        b"\0\0\0\x02\x82",
    )));
}

#[test]
fn ping_frames() {
    assert_eq!(
        one(&frame(kind::PING, flag::ACK, 0, b"12345678")),
        Ok(Frame::Ping {
            ack: true,
            data: *b"12345678"
        })
    );
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::PING, 0, 0, b"1234567")));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::PING, 0, 1, b"12345678")));
}

#[test]
fn goaway_frames() {
    assert_eq!(
        one(&frame(kind::GOAWAY, 0, 0, b"\x80\0\0\x05\0\0\0\x0bbye")),
        Ok(Frame::GoAway {
            last_stream: 5,
            code: ErrorCode::ENHANCE_YOUR_CALM,
            debug: b"bye"
        })
    );
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::GOAWAY, 0, 0, b"\0\0\0\x05\0\0\0")));
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::GOAWAY, 0, 3, b"\0\0\0\x05\0\0\0\0")));
}

#[test]
fn window_update_frames() {
    assert_eq!(
        one(&frame(kind::WINDOW_UPDATE, 0, 0, &MAX_WINDOW.to_be_bytes())),
        Ok(Frame::WindowUpdate {
            stream: 0,
            increment: MAX_WINDOW
        })
    );
    // The reserved bit is ignored.
    assert_eq!(
        one(&frame(kind::WINDOW_UPDATE, 0, 3, b"\x80\0\0\x01")),
        Ok(Frame::WindowUpdate {
            stream: 3,
            increment: 1
        })
    );
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::WINDOW_UPDATE, 0, 0, b"\0\0\0\0")));
    stream_err(3, ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::WINDOW_UPDATE, 0, 3, b"\x80\0\0\0")));
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::WINDOW_UPDATE, 0, 3, b"\0\0\0\x01\0")));
    conn_err(ErrorCode::FRAME_SIZE_ERROR)(one(&frame(kind::WINDOW_UPDATE, 0, 0, b"\0\x01")));
}

#[test]
fn continuation_and_unknown_frames() {
    assert_eq!(
        one(&frame(kind::CONTINUATION, flag::END_HEADERS, 1, b"\x84")),
        Ok(Frame::Continuation {
            stream: 1,
            end_headers: true,
            fragment: b"\x84"
        })
    );
    conn_err(ErrorCode::PROTOCOL_ERROR)(one(&frame(kind::CONTINUATION, 0, 0, b"\x84")));
    assert_eq!(
        one(&frame(0xfa, 0xff, 0, b"anything")),
        Ok(Frame::Unknown {
            kind: 0xfa,
            stream: 0
        })
    );
}

#[test]
fn writers_produce_what_the_parser_reads() {
    let mut out = bytes::BytesMut::new();
    write::data(&mut out, 1, b"body", true);
    write::headers(&mut out, 3, b"\x82", false, true);
    write::continuation(&mut out, 3, b"\x84", true);
    let p = Priority {
        exclusive: true,
        dependency: 1,
        weight: 3,
    };
    write::priority(&mut out, 3, p);
    write::rst_stream(&mut out, 3, ErrorCode::CANCEL);
    let s = Settings {
        max_concurrent_streams: Some(100),
        initial_window_size: Some(65_536),
        enable_push: Some(false),
        ..Settings::default()
    };
    write::settings(&mut out, &s);
    write::settings_ack(&mut out);
    write::ping(&mut out, *b"pingpong", true);
    write::goaway(&mut out, 7, ErrorCode::NO_ERROR, b"done");
    write::window_update(&mut out, 0, 1 << 20);
    let expected = [
        Frame::Data {
            stream: 1,
            end_stream: true,
            data: b"body",
            flow_len: 4,
        },
        Frame::Headers {
            stream: 3,
            end_stream: false,
            end_headers: true,
            priority: None,
            fragment: b"\x82",
        },
        Frame::Continuation {
            stream: 3,
            end_headers: true,
            fragment: b"\x84",
        },
        Frame::Priority {
            stream: 3,
            priority: p,
        },
        Frame::RstStream {
            stream: 3,
            code: ErrorCode::CANCEL,
        },
        Frame::Settings(s),
        Frame::SettingsAck,
        Frame::Ping {
            ack: true,
            data: *b"pingpong",
        },
        Frame::GoAway {
            last_stream: 7,
            code: ErrorCode::NO_ERROR,
            debug: b"done",
        },
        Frame::WindowUpdate {
            stream: 0,
            increment: 1 << 20,
        },
    ];
    let mut rest = &out[..];
    for want in expected {
        let (got, n) = parse(rest, DEFAULT_MAX_FRAME_SIZE).unwrap().unwrap();
        assert_eq!(got, want);
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
}

#[test]
fn no_input_panics() {
    // Every short input of a few shapes, every type and flag.
    let mut buf = Vec::new();
    for kind in 0..=12u8 {
        for flags in [0u8, 0x01, 0x04, 0x08, 0x20, 0x2d, 0xff] {
            for stream in [0u32, 1, 2] {
                for len in 0..12usize {
                    buf.clear();
                    let payload: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                    buf.extend(frame(kind, flags, stream, &payload));
                    let _ = parse(&buf, DEFAULT_MAX_FRAME_SIZE);
                    let _ = parse(&buf[..buf.len() - 1], DEFAULT_MAX_FRAME_SIZE);
                    let _ = parse(&buf, 0);
                }
            }
        }
    }
}
