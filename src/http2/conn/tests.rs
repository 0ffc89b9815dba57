use super::*;
use crate::http2::frame::{FrameHeader, flag, kind, write};
use crate::http2::hpack::Encoder;

/// A client: frames into a buffer.
struct Client(BytesMut);

impl Client {
    fn new() -> Client {
        let mut b = BytesMut::new();
        b.extend_from_slice(PREFACE);
        write::settings(&mut b, &Settings::default());
        Client(b)
    }

    /// A GET request's HEADERS frame (HPACK by strait's encoder: the
    /// static table and literals).
    fn get(&mut self, stream: u32, end_stream: bool) -> &mut Client {
        let mut block = BytesMut::new();
        let e = Encoder::default();
        e.field(&mut block, b":method", b"GET");
        e.field(&mut block, b":scheme", b"http");
        e.field(&mut block, b":path", b"/");
        e.field(&mut block, b":authority", b"example.com");
        write::headers(&mut self.0, stream, &block, end_stream, true);
        self
    }

    fn raw(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> &mut Client {
        FrameHeader {
            len: payload.len() as u32,
            kind,
            flags,
            stream,
        }
        .write(&mut self.0);
        self.0.extend_from_slice(payload);
        self
    }
}

fn conn() -> Connection {
    let mut c = Connection::new(Config::default());
    c.output().clear();
    c
}

fn run(c: &mut Connection, client: &mut Client) -> (Result<(), Error>, Vec<Event>) {
    let mut events = Vec::new();
    let r = c.recv(&mut client.0, &mut events);
    (r, events)
}

/// The frames this side wrote since the last call.
fn sent(c: &mut Connection) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let out = c.output().split();
    let mut rest = &out[..];
    let mut v = Vec::new();
    while let Some(h) = FrameHeader::parse(rest) {
        let n = HEADER_LEN + h.len as usize;
        v.push((h.kind, h.flags, h.stream, rest[HEADER_LEN..n].to_vec()));
        rest = &rest[n..];
    }
    v
}

fn goaway_code(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<ErrorCode> {
    frames
        .iter()
        .find(|f| f.0 == kind::GOAWAY)
        .map(|f| ErrorCode(u32::from_be_bytes(f.3[4..8].try_into().unwrap())))
}

#[test]
fn starts_with_settings_and_a_connection_window() {
    let mut c = Connection::new(Config::default());
    let f = sent(&mut c);
    assert_eq!(f[0].0, kind::SETTINGS);
    assert_eq!((f[1].0, f[1].2), (kind::WINDOW_UPDATE, 0));
    assert_eq!(
        u32::from_be_bytes(f[1].3[..].try_into().unwrap()),
        1024 * 1024 - 65_535
    );
}

#[test]
fn the_preface_and_first_settings_are_required() {
    let mut c = conn();
    let mut bad = Client(BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]));
    let (r, _) = run(&mut c, &mut bad);
    assert_eq!(r.unwrap_err().code(), ErrorCode::PROTOCOL_ERROR);
    assert_eq!(goaway_code(&sent(&mut c)), Some(ErrorCode::PROTOCOL_ERROR));

    // The preface in pieces is fine.
    let mut c = conn();
    let mut client = Client::new();
    let all = client.0.split();
    for b in all.iter() {
        client.0.extend_from_slice(&[*b]);
        assert!(run(&mut c, &mut client).0.is_ok());
    }
    assert_eq!(sent(&mut c)[0].0, kind::SETTINGS); // the ACK

    let mut c = conn();
    let mut client = Client(BytesMut::from(&PREFACE[..]));
    client.raw(kind::PING, 0, 0, b"12345678");
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::PROTOCOL_ERROR
    );
}

#[test]
fn a_request_and_its_response() {
    let mut c = conn();
    let mut client = Client::new();
    client
        .get(1, false)
        .raw(kind::DATA, flag::END_STREAM, 1, b"body");
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(matches!(events[0], Event::Settings(_)));
    match &events[1] {
        Event::Request {
            stream: 1,
            head,
            end_stream: false,
        } => {
            assert_eq!(head.path(), Some(&b"/"[..]));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&events[2], Event::Data { stream: 1, data, end_stream: true } if &data[..] == b"body")
    );
    let acks = sent(&mut c);
    assert_eq!((acks[0].0, acks[0].1), (kind::SETTINGS, flag::ACK));
    c.send_response(1, 200, &HeaderList::new(), false);
    assert_eq!(c.send_data(1, b"hello", true), 5);
    let f = sent(&mut c);
    assert_eq!(
        (f[0].0, f[0].1, f[0].2),
        (kind::HEADERS, flag::END_HEADERS, 1)
    );
    assert_eq!(
        (f[1].0, f[1].1, &f[1].3[..]),
        (kind::DATA, flag::END_STREAM, &b"hello"[..])
    );
    assert_eq!(c.active_streams(), 0);
}

#[test]
fn stream_ids_are_odd_and_increasing() {
    let mut c = conn();
    let mut client = Client::new();
    client.get(2, true);
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::PROTOCOL_ERROR
    );
    // A lower id than one already opened: an old stream, ignored.
    let mut c = conn();
    let mut client = Client::new();
    client.get(5, true).get(3, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        1
    );
    // DATA or WINDOW_UPDATE or RST_STREAM on an idle stream.
    for k in [kind::DATA, kind::WINDOW_UPDATE, kind::RST_STREAM] {
        let mut c = conn();
        let mut client = Client::new();
        client.raw(k, 0, 7, &[0, 0, 0, 1]);
        assert_eq!(
            run(&mut c, &mut client).0.unwrap_err().code(),
            ErrorCode::PROTOCOL_ERROR,
            "{k}"
        );
    }
}

#[test]
fn streams_over_the_limit_are_refused() {
    let mut c = Connection::new(Config {
        max_concurrent_streams: 2,
        ..Config::default()
    });
    c.output().clear();
    let mut client = Client::new();
    client.get(1, true).get(3, true).get(5, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Request { .. }))
            .count(),
        2
    );
    let f = sent(&mut c);
    let rst = f.iter().find(|f| f.0 == kind::RST_STREAM).unwrap();
    assert_eq!((rst.2, &rst.3[..]), (5, &7u32.to_be_bytes()[..]));
}

#[test]
fn malformed_heads_are_reset_and_oversized_ones_reported() {
    let mut c = conn();
    let mut client = Client::new();
    let mut block = BytesMut::new();
    Encoder::default().field(&mut block, b":method", b"GET");
    write::headers(&mut client.0, 1, &block, true, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(!events.iter().any(|e| matches!(e, Event::Request { .. })));
    let f = sent(&mut c);
    assert!(
        f.iter()
            .any(|f| f.0 == kind::RST_STREAM && f.2 == 1 && f.3 == 1u32.to_be_bytes())
    );

    let mut c = Connection::new(Config {
        limits: Limits {
            max_list_size: 200,
            max_fields: 100,
        },
        ..Config::default()
    });
    let mut client = Client::new();
    let mut block = BytesMut::new();
    let e = Encoder::default();
    for (n, v) in [
        (&b":method"[..], &b"GET"[..]),
        (b":scheme", b"http"),
        (b":path", b"/"),
    ] {
        e.field(&mut block, n, v);
    }
    e.field(&mut block, b"x-big", &[b'a'; 300]);
    write::headers(&mut client.0, 1, &block, true, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(matches!(events[1], Event::TooLarge { stream: 1 }));
    c.send_response(1, 431, &HeaderList::new(), true);
    c.reset(1, ErrorCode::REFUSED_STREAM);
}

/// Envoy's `max_headers_count` on HTTP/2 (`http2/codec_impl.cc`,
/// `saveHeader`: the header map's size, pseudo-headers included): one field
/// over the count refuses the head as too large. The 431 that answers it
/// ends the stream; a request still open (no END_STREAM) is then reset
/// NO_ERROR (Envoy's `doEndStream`, RFC 9113 §8.1), one that ended is not.
#[test]
fn a_field_over_the_count_is_too_large_and_an_open_request_is_reset_after_the_431() {
    let config = Config {
        limits: Limits {
            max_list_size: 60 * 1024,
            max_fields: 5,
        },
        ..Config::default()
    };
    let head = |extra: usize| {
        let mut block = BytesMut::new();
        let e = Encoder::default();
        for (n, v) in [
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/"),
            (b":authority", b"a.test"),
        ] {
            e.field(&mut block, n, v);
        }
        for i in 0..extra {
            e.field(&mut block, format!("x-h{i}").as_bytes(), b"v");
        }
        block
    };
    for end_stream in [true, false] {
        let mut c = Connection::new(config);
        let mut client = Client::new();
        // Four pseudo-headers and one field: at the count, taken.
        write::headers(&mut client.0, 1, &head(1), end_stream, true);
        // And two: over it.
        write::headers(&mut client.0, 3, &head(2), end_stream, true);
        let (r, events) = run(&mut c, &mut client);
        r.unwrap();
        assert!(matches!(events[1], Event::Request { stream: 1, .. }));
        assert!(matches!(events[2], Event::TooLarge { stream: 3 }));
        let _ = sent(&mut c);
        c.send_response(3, 431, &HeaderList::new(), true);
        c.reset(3, ErrorCode::NO_ERROR);
        let f = sent(&mut c);
        assert_eq!(
            (f[0].0, f[0].1 & flag::END_STREAM, f[0].2),
            (kind::HEADERS, flag::END_STREAM, 3)
        );
        if end_stream {
            assert_eq!(f.len(), 1, "nothing after the 431 of a request that ended");
        } else {
            assert_eq!(f.len(), 2);
            assert_eq!(
                (f[1].0, f[1].2, &f[1].3[..]),
                (kind::RST_STREAM, 3, &[0u8; 4][..])
            );
        }
        assert!(!c.is_open(3));
    }
}

#[test]
fn continuation_rules() {
    let mut block = BytesMut::new();
    let e = Encoder::default();
    for (n, v) in [
        (&b":method"[..], &b"GET"[..]),
        (b":scheme", b"http"),
        (b":path", b"/x"),
    ] {
        e.field(&mut block, n, v);
    }
    // A block in three pieces.
    let mut c = conn();
    let mut client = Client::new();
    client
        .raw(kind::HEADERS, flag::END_STREAM, 1, &block[..2])
        .raw(kind::CONTINUATION, 0, 1, &block[2..4])
        .raw(kind::CONTINUATION, flag::END_HEADERS, 1, &block[4..]);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(
        matches!(&events[1], Event::Request { head, end_stream: true, .. } if head.path() == Some(&b"/x"[..]))
    );
    // Another frame inside the block; a CONTINUATION of another stream;
    // one with no block open.
    for second in [
        (kind::PING, 0u32, &b"12345678"[..]),
        (kind::CONTINUATION, 3, &block[2..]),
        (kind::DATA, 1, b"x"),
    ] {
        let mut c = conn();
        let mut client = Client::new();
        client
            .raw(kind::HEADERS, 0, 1, &block[..2])
            .raw(second.0, 0, second.1, second.2);
        assert_eq!(
            run(&mut c, &mut client).0.unwrap_err().code(),
            ErrorCode::PROTOCOL_ERROR
        );
    }
    let mut c = conn();
    let mut client = Client::new();
    client.raw(kind::CONTINUATION, flag::END_HEADERS, 1, &block);
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::PROTOCOL_ERROR
    );
}

#[test]
fn a_continuation_flood_is_cut_off() {
    let mut c = conn();
    let mut client = Client::new();
    client.raw(kind::HEADERS, 0, 1, &[0x82]);
    for _ in 0..200 {
        client.raw(kind::CONTINUATION, 0, 1, &[0x82; 1000]);
    }
    let (r, _) = run(&mut c, &mut client);
    assert_eq!(r.unwrap_err().code(), ErrorCode::ENHANCE_YOUR_CALM);
    assert_eq!(
        goaway_code(&sent(&mut c)),
        Some(ErrorCode::ENHANCE_YOUR_CALM)
    );
}

#[test]
fn ping_and_settings_floods_are_bounded() {
    let mut c = conn();
    let mut client = Client::new();
    for _ in 0..2000 {
        client.raw(kind::PING, 0, 0, b"pingpong");
    }
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::ENHANCE_YOUR_CALM
    );
    // Taking the output in between keeps a steady peer going.
    let mut c = conn();
    let mut client = Client::new();
    for _ in 0..5 {
        for _ in 0..500 {
            client.raw(kind::PING, 0, 0, b"pingpong");
        }
        let (r, _) = run(&mut c, &mut client);
        r.unwrap();
        let acks = sent(&mut c);
        assert!(
            acks.iter()
                .all(|f| f.0 == kind::SETTINGS || (f.0 == kind::PING && f.1 == flag::ACK))
        );
    }
}

#[test]
fn rapid_reset_is_bounded() {
    let mut c = conn();
    let mut client = Client::new();
    for i in 0..30u32 {
        let id = 1 + 2 * i;
        client
            .get(id, true)
            .raw(kind::RST_STREAM, 0, id, &8u32.to_be_bytes());
    }
    let (r, _) = run(&mut c, &mut client);
    assert_eq!(r.unwrap_err().code(), ErrorCode::ENHANCE_YOUR_CALM);
    // Resets of streams the application saw are not counted.
    let mut c = conn();
    let mut client = Client::new();
    for i in 0..30u32 {
        let id = 1 + 2 * i;
        client.get(id, true);
        run(&mut c, &mut client).0.unwrap();
        client.raw(kind::RST_STREAM, 0, id, &8u32.to_be_bytes());
        let (r, events) = run(&mut c, &mut client);
        r.unwrap();
        assert!(matches!(
            events[..],
            [Event::Reset {
                code: ErrorCode::CANCEL,
                ..
            }]
        ));
    }
}

#[test]
fn receive_flow_control() {
    let mut c = Connection::new(Config {
        stream_window: 100,
        connection_window: 65_535,
        ..Config::default()
    });
    c.output().clear();
    let mut client = Client::new();
    client.raw(kind::SETTINGS, flag::ACK, 0, b"").get(1, false);
    client.raw(kind::DATA, 0, 1, &[b'x'; 100]);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(matches!(events.last(), Some(Event::Data { .. })));
    // One byte over the stream window: a stream error.
    client.raw(kind::DATA, 0, 1, b"y");
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(matches!(
        events[..],
        [Event::Reset {
            stream: 1,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }]
    ));
    // Releasing consumed data reopens the window.
    let mut c = Connection::new(Config {
        stream_window: 100,
        ..Config::default()
    });
    let mut client = Client::new();
    client
        .raw(kind::SETTINGS, flag::ACK, 0, b"")
        .get(1, false)
        .raw(kind::DATA, 0, 1, &[b'x'; 60]);
    run(&mut c, &mut client).0.unwrap();
    sent(&mut c);
    c.release(1, 60);
    let f = sent(&mut c);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].0, f[0].2, &f[0].3[..]),
        (kind::WINDOW_UPDATE, 1, &60u32.to_be_bytes()[..])
    );
    client.raw(kind::DATA, 0, 1, &[b'x'; 100]);
    run(&mut c, &mut client).0.unwrap();
}

#[test]
fn the_connection_window_is_a_connection_error() {
    let mut c = Connection::new(Config {
        connection_window: 65_535,
        ..Config::default()
    });
    let mut client = Client::new();
    client.get(1, false).get(3, false);
    for id in [1, 3] {
        for _ in 0..2 {
            client.raw(kind::DATA, 0, id, &[0; 16_000]);
        }
    }
    client.raw(kind::DATA, 0, 1, &[0; 1_536]);
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn send_flow_control_and_initial_window_changes() {
    let mut c = conn();
    let mut client = Client::new();
    client
        .raw(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 10])
        .get(1, true);
    run(&mut c, &mut client).0.unwrap();
    c.send_response(1, 200, &HeaderList::new(), false);
    assert_eq!(c.send_capacity(1), 10);
    assert_eq!(c.send_data(1, &[b'a'; 25], true), 10);
    assert_eq!(c.send_capacity(1), 0);
    // A larger initial window applies to the open stream.
    client.raw(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 20]);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::WindowUpdate { stream: 1 }))
    );
    assert_eq!(c.send_capacity(1), 10);
    client.raw(kind::WINDOW_UPDATE, 0, 1, &5u32.to_be_bytes());
    run(&mut c, &mut client).0.unwrap();
    assert_eq!(c.send_capacity(1), 15);
    assert_eq!(c.send_data(1, &[b'a'; 15], true), 15);
    assert_eq!(c.active_streams(), 0);
    // Overflows.
    client
        .get(3, true)
        .raw(kind::WINDOW_UPDATE, 0, 3, &MAX_WINDOW.to_be_bytes());
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Reset {
            stream: 3,
            code: ErrorCode::FLOW_CONTROL_ERROR
        }
    )));
    client.raw(kind::WINDOW_UPDATE, 0, 0, &MAX_WINDOW.to_be_bytes());
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::FLOW_CONTROL_ERROR
    );
}

#[test]
fn large_data_is_split_by_the_peer_frame_size() {
    let mut c = conn();
    let mut client = Client::new();
    client
        .raw(kind::SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0])
        .get(1, true);
    client.raw(kind::WINDOW_UPDATE, 0, 0, &100_000u32.to_be_bytes());
    run(&mut c, &mut client).0.unwrap();
    sent(&mut c);
    c.send_response(1, 200, &HeaderList::new(), false);
    assert_eq!(c.send_data(1, &[0; 40_000], true), 40_000);
    let f = sent(&mut c);
    let lens: Vec<_> = f
        .iter()
        .filter(|f| f.0 == kind::DATA)
        .map(|f| (f.3.len(), f.1))
        .collect();
    assert_eq!(lens, [(16_384, 0), (16_384, 0), (7_232, flag::END_STREAM)]);
}

#[test]
fn trailers_goaway_and_ping() {
    let mut c = conn();
    let mut client = Client::new();
    client.get(1, false);
    let mut block = BytesMut::new();
    Encoder::default().field(&mut block, b"grpc-timeout", b"1S");
    write::headers(&mut client.0, 1, &block, true, true);
    client.raw(kind::PING, flag::ACK, 0, b"12345678");
    client.raw(kind::GOAWAY, 0, 0, b"\0\0\0\x01\0\0\0\0bye");
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(
        matches!(&events[2], Event::Trailers { stream: 1, trailers } if trailers.get("grpc-timeout") == Some(&b"1S"[..]))
    );
    assert!(matches!(events[3], Event::PingAck(d) if &d == b"12345678"));
    assert!(
        matches!(&events[4], Event::GoAway { last_stream: 1, debug, .. } if &debug[..] == b"bye")
    );
    // Trailers without END_STREAM are malformed.
    write::headers(&mut client.0, 1, &block, false, true);
    let (r, _) = run(&mut c, &mut client);
    r.unwrap();
    // After our GOAWAY, new streams are ignored; old ones finish.
    let mut c = conn();
    let mut client = Client::new();
    client.get(1, true);
    run(&mut c, &mut client).0.unwrap();
    c.go_away(ErrorCode::NO_ERROR);
    client.get(3, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(events.is_empty());
    c.send_response(1, 200, &HeaderList::new(), true);
    let f = sent(&mut c);
    assert_eq!(
        f.iter().map(|f| f.0).collect::<Vec<_>>(),
        [kind::SETTINGS, kind::GOAWAY, kind::HEADERS]
    );
}

#[test]
fn stream_errors_are_bounded() {
    let mut c = Connection::new(Config {
        max_local_error_reset_streams: 5,
        ..Config::default()
    });
    let mut client = Client::new();
    for i in 0..6u32 {
        client.raw(kind::PRIORITY, 0, 1 + 2 * i, &[0, 0, 0, 0]);
    }
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::ENHANCE_YOUR_CALM
    );
    // The budget's resets, then GOAWAY instead of a sixth.
    let resets = sent(&mut c)
        .iter()
        .filter(|f| f.0 == kind::RST_STREAM)
        .count();
    assert_eq!(resets, 5);
}

#[test]
fn no_input_panics() {
    // The connection fed every prefix of a busy exchange, and mutations.
    let mut client = Client::new();
    client
        .get(1, false)
        .raw(kind::DATA, flag::PADDED, 1, b"\x02abXX")
        .get(3, true);
    client
        .raw(kind::WINDOW_UPDATE, 0, 1, &[0, 0, 1, 0])
        .raw(kind::RST_STREAM, 0, 1, &[0, 0, 0, 8]);
    let all = client.0.to_vec();
    for n in 0..all.len() {
        for x in [0u8, 1, 0x80, 0xff] {
            let mut bytes = all.clone();
            bytes[n] ^= x;
            let mut c = conn();
            let mut input = BytesMut::from(&bytes[..]);
            let _ = c.recv(&mut input, &mut Vec::new());
            let mut input = BytesMut::from(&bytes[..n]);
            let _ = conn().recv(&mut input, &mut Vec::new());
        }
    }
}

#[test]
fn empty_continuation_frames_are_bounded_as_h2_bounds_them() {
    let mut c = conn();
    let mut client = Client::new();
    client.raw(kind::HEADERS, 0, 1, &[0x82]);
    for _ in 0..5 {
        client.raw(kind::CONTINUATION, 0, 1, &[]);
    }
    assert!(run(&mut c, &mut client).0.is_ok(), "five are taken");
    client.raw(kind::CONTINUATION, 0, 1, &[]);
    assert_eq!(
        run(&mut c, &mut client).0.unwrap_err().code(),
        ErrorCode::ENHANCE_YOUR_CALM
    );
}

#[test]
fn refusals_of_the_application_count_with_stream_errors() {
    let mut c = Connection::new(Config {
        max_local_error_reset_streams: 2,
        ..Config::default()
    });
    let mut client = Client::new();
    client.get(1, true).get(3, true).get(5, true);
    let (r, _) = run(&mut c, &mut client);
    r.unwrap();
    let _ = sent(&mut c);
    assert!(c.refuse(1, ErrorCode::PROTOCOL_ERROR).is_ok());
    assert!(!c.is_open(1));
    assert!(c.refuse(3, ErrorCode::PROTOCOL_ERROR).is_ok());
    assert_eq!(
        c.refuse(5, ErrorCode::PROTOCOL_ERROR).unwrap_err().code(),
        ErrorCode::ENHANCE_YOUR_CALM
    );
    let f = sent(&mut c);
    assert_eq!(f.iter().filter(|f| f.0 == kind::RST_STREAM).count(), 2);
    assert_eq!(goaway_code(&f), Some(ErrorCode::ENHANCE_YOUR_CALM));
}

/// RFC 9113 §6.8's graceful shutdown, as the `h2` crate does it: GOAWAY
/// with the highest stream id and a PING; a stream opened before the
/// client saw them is still taken; the PING's ACK brings the final GOAWAY
/// with the last stream opened, after which new streams are ignored.
#[test]
fn a_graceful_shutdown_says_goaway_twice_with_a_ping_between() {
    let mut c = conn();
    let mut client = Client::new();
    client.get(1, true);
    let (r, _) = run(&mut c, &mut client);
    r.unwrap();
    let _ = sent(&mut c);
    c.go_away_gracefully();
    c.go_away_gracefully();
    let f = sent(&mut c);
    assert_eq!(f.len(), 2, "once: {f:?}");
    assert_eq!(
        (f[0].0, &f[0].3[..]),
        (kind::GOAWAY, &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0][..])
    );
    assert_eq!((f[1].0, f[1].1), (kind::PING, 0));
    assert!(!c.is_going_away());
    // A stream opened meanwhile is served.
    client.get(3, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(matches!(events[0], Event::Request { stream: 3, .. }));
    // The ACK: the final GOAWAY names stream 3; it is not an event.
    client.raw(kind::PING, flag::ACK, 0, &f[1].3);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(events.is_empty(), "{events:?}");
    let f = sent(&mut c);
    assert_eq!(
        (f[0].0, &f[0].3[..]),
        (kind::GOAWAY, &[0, 0, 0, 3, 0, 0, 0, 0][..])
    );
    assert!(c.is_going_away());
    client.get(5, true);
    let (r, events) = run(&mut c, &mut client);
    r.unwrap();
    assert!(events.is_empty(), "stream 5 came after the final GOAWAY");
}

/// §5.4.1: after a connection error's GOAWAY the connection is closed;
/// the application's responses, data and resets write nothing more, and
/// no stream is offered send capacity (found by the `h2conn` fuzz target:
/// capacity was offered that `send_data` then refused).
#[test]
fn nothing_is_written_after_a_connection_error() {
    let mut c = conn();
    let mut client = Client::new();
    client.get(1, true);
    let (r, _) = run(&mut c, &mut client);
    r.unwrap();
    let _ = sent(&mut c);
    client.raw(kind::WINDOW_UPDATE, 0, 0, &0u32.to_be_bytes());
    let (r, _) = run(&mut c, &mut client);
    assert!(r.is_err());
    assert_eq!(goaway_code(&sent(&mut c)), Some(ErrorCode::PROTOCOL_ERROR));
    assert_eq!(c.send_capacity(1), 0);
    c.send_response(1, 200, &HeaderList::new(), false);
    assert_eq!(c.send_data(1, b"late", true), 0);
    c.send_trailers(1, &HeaderList::new());
    c.reset(1, ErrorCode::CANCEL);
    assert!(sent(&mut c).is_empty());
}
