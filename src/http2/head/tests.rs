use super::*;
use crate::http2::hpack::{Decoder, Limits};

/// A field block of literal fields without indexing, in order.
fn block(fields: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (n, v) in fields {
        b.push(0x00);
        b.push(n.len() as u8);
        b.extend_from_slice(n);
        b.push(v.len() as u8);
        b.extend_from_slice(v);
    }
    b
}

fn fields(list: &[(&[u8], &[u8])]) -> Fields {
    let mut f = Fields::new(Limits::default());
    Decoder::default().decode(&block(list), &mut f).unwrap();
    f
}

fn req(list: &[(&[u8], &[u8])]) -> Result<RequestHead, Refusal> {
    request(&mut fields(list), &Options::default())
}

fn bad(list: &[(&[u8], &[u8])]) -> Malformed {
    match req(list) {
        Err(Refusal::Malformed(m)) => m,
        other => panic!("expected a malformed head, got {other:?}"),
    }
}

const GET: [(&[u8], &[u8]); 4] = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/a?b"),
];

fn with(extra: &[(&'static [u8], &'static [u8])]) -> Vec<(&'static [u8], &'static [u8])> {
    let mut v = GET.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn a_request_head_keeps_pseudo_headers_apart() {
    let mut h = req(&with(&[
        (b"accept", b"*/*"),
        (b"te", b"trailers"),
        (b"x", b" padded "),
    ]))
    .unwrap();
    assert_eq!(h.method(), b"GET");
    assert_eq!(h.scheme(), Some(&b"https"[..]));
    assert_eq!(h.authority(), Some(&b"example.com"[..]));
    assert_eq!(h.path(), Some(&b"/a?b"[..]));
    assert_eq!(h.protocol(), None);
    let list = h.take_headers();
    let got: Vec<_> = list.iter().collect();
    assert_eq!(
        got,
        [
            (&b"accept"[..], &b"*/*"[..]),
            (b"te", b"trailers"),
            (b"x", b" padded ")
        ]
    );
    assert!(list.to_header_map().is_ok());
    // :authority is optional (Host may stand in).
    let no_authority = [GET[0], GET[1], GET[3], (b"host", b"h")];
    assert!(req(&no_authority).is_ok());
}

#[test]
fn names_must_be_lowercase_tokens() {
    assert_eq!(bad(&with(&[(b"Accept", b"x")])), Malformed::UppercaseName);
    assert_eq!(bad(&with(&[(b"a b", b"x")])), Malformed::InvalidName);
    assert_eq!(bad(&with(&[(b"a:b", b"x")])), Malformed::InvalidName);
    assert_eq!(bad(&with(&[(b"", b"x")])), Malformed::InvalidName);
    assert_eq!(bad(&with(&[(b"a\x00", b"x")])), Malformed::InvalidName);
    assert_eq!(
        bad(&with(&[(b"caf\xc3\xa9", b"x")])),
        Malformed::InvalidName
    );
    assert!(req(&with(&[(b"x-a_b.c~!#$%&'*+^`|9", b"x")])).is_ok());
}

#[test]
fn values_must_not_hold_control_bytes() {
    for v in [&b"a\x00b"[..], b"a\rb", b"a\nb", b"\x01", b"a\x7f"] {
        assert_eq!(bad(&with(&[(b"x", v)])), Malformed::InvalidValue, "{v:?}");
        let mut list = GET.to_vec();
        list[3] = (b":path", v);
        assert_eq!(bad(&list), Malformed::InvalidValue, "{v:?}");
    }
    assert!(req(&with(&[(b"x", b"tab\there \x80\xff")])).is_ok());
    assert!(req(&with(&[(b"x", b"")])).is_ok());
}

#[test]
fn surrounding_whitespace_is_refused_only_when_asked() {
    let strict = Options {
        reject_surrounding_whitespace: true,
        ..Options::default()
    };
    for v in [&b" a"[..], b"a ", b"\ta", b"a\t", b" "] {
        assert!(req(&with(&[(b"x", v)])).is_ok());
        assert_eq!(
            request(&mut fields(&with(&[(b"x", v)])), &strict).unwrap_err(),
            Refusal::Malformed(Malformed::InvalidValue)
        );
    }
    assert!(request(&mut fields(&with(&[(b"x", b"a b")])), &strict).is_ok());
}

#[test]
fn connection_specific_fields_are_malformed() {
    for n in [
        &b"connection"[..],
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
    ] {
        assert_eq!(bad(&with(&[(n, b"x")])), Malformed::ConnectionSpecific);
    }
    assert_eq!(
        bad(&with(&[(b"te", b"gzip")])),
        Malformed::ConnectionSpecific
    );
    assert_eq!(
        bad(&with(&[(b"te", b"trailers, gzip")])),
        Malformed::ConnectionSpecific
    );
    assert!(req(&with(&[(b"te", b"Trailers")])).is_ok());
}

#[test]
fn pseudo_headers_come_first_once_and_known() {
    let mut late = with(&[(b"accept", b"x")]);
    late.swap(3, 4);
    assert_eq!(bad(&late), Malformed::PseudoAfterRegular);
    assert_eq!(bad(&with(&[(b":path", b"/")])), Malformed::DuplicatePseudo);
    assert_eq!(
        bad(&with(&[(b"a", b"1"), (b":protocol", b"x")])),
        Malformed::PseudoAfterRegular
    );
    let mut dup = GET.to_vec();
    dup.insert(1, (b":method", b"GET"));
    assert_eq!(bad(&dup), Malformed::DuplicatePseudo);
    let mut unknown = GET.to_vec();
    unknown.insert(0, (b":status", b"200"));
    assert_eq!(bad(&unknown), Malformed::UnknownPseudo);
    unknown[0] = (b":foo", b"x");
    assert_eq!(bad(&unknown), Malformed::UnknownPseudo);
}

#[test]
fn required_pseudo_headers() {
    for missing in [0, 1, 3] {
        let mut list = GET.to_vec();
        list.remove(missing);
        assert_eq!(bad(&list), Malformed::MissingPseudo, "without {missing}");
    }
    let mut empty_path = GET.to_vec();
    empty_path[3] = (b":path", b"");
    assert_eq!(bad(&empty_path), Malformed::InvalidPseudo);
    empty_path[3] = (b":path", b"a/b");
    assert_eq!(bad(&empty_path), Malformed::InvalidPseudo);
    empty_path[3] = (b":path", b"*");
    assert_eq!(bad(&empty_path), Malformed::InvalidPseudo);
    empty_path[0] = (b":method", b"OPTIONS");
    assert!(req(&empty_path).is_ok());
    let mut bad_method = GET.to_vec();
    bad_method[0] = (b":method", b"G T");
    assert_eq!(bad(&bad_method), Malformed::InvalidPseudo);
    bad_method[0] = (b":method", b"");
    assert_eq!(bad(&bad_method), Malformed::InvalidPseudo);
}

#[test]
fn connect_has_only_an_authority() {
    let connect: [(&[u8], &[u8]); 2] = [(b":method", b"CONNECT"), (b":authority", b"h:443")];
    let h = req(&connect).unwrap();
    assert_eq!(
        (h.method(), h.path(), h.scheme()),
        (&b"CONNECT"[..], None, None)
    );
    assert_eq!(bad(&connect[..1]), Malformed::MissingPseudo);
    assert_eq!(
        bad(&[connect[0], connect[1], (b":path", b"/")]),
        Malformed::ConnectWithPath
    );
    assert_eq!(
        bad(&[connect[0], connect[1], (b":scheme", b"https")]),
        Malformed::ConnectWithPath
    );
}

#[test]
fn extended_connect_needs_the_setting() {
    let ws: [(&[u8], &[u8]); 5] = [
        (b":method", b"CONNECT"),
        (b":protocol", b"websocket"),
        (b":scheme", b"https"),
        (b":path", b"/chat"),
        (b":authority", b"h"),
    ];
    assert_eq!(bad(&ws), Malformed::Protocol);
    let on = Options {
        connect_protocol: true,
        ..Options::default()
    };
    let h = request(&mut fields(&ws), &on).unwrap();
    assert_eq!(h.protocol(), Some(&b"websocket"[..]));
    assert_eq!(h.path(), Some(&b"/chat"[..]));
    assert_eq!(
        request(&mut fields(&ws[..4]), &on).unwrap_err(),
        Refusal::Malformed(Malformed::MissingPseudo)
    );
    let mut get = ws;
    get[0] = (b":method", b"GET");
    assert_eq!(
        request(&mut fields(&get), &on).unwrap_err(),
        Refusal::Malformed(Malformed::Protocol)
    );
}

#[test]
fn trailers_have_no_pseudo_headers() {
    let list = trailers(
        &mut fields(&[(b"grpc-status", b"0"), (b"x", b"y")]),
        &Options::default(),
    )
    .unwrap();
    assert_eq!(list.get("grpc-status"), Some(&b"0"[..]));
    assert_eq!(list.len(), 2);
    assert_eq!(
        trailers(&mut fields(&[(b":path", b"/")]), &Options::default()).unwrap_err(),
        Refusal::Malformed(Malformed::PseudoInTrailers)
    );
    assert_eq!(
        trailers(
            &mut fields(&[(b"connection", b"close")]),
            &Options::default()
        )
        .unwrap_err(),
        Refusal::Malformed(Malformed::ConnectionSpecific)
    );
    assert!(
        trailers(&mut fields(&[]), &Options::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn oversized_heads_are_refused_before_validation() {
    let mut f = Fields::new(Limits {
        max_list_size: 100,
        max_fields: 100,
    });
    Decoder::default()
        .decode(&block(&with(&[(b"x", &[b'a'; 100])])), &mut f)
        .unwrap();
    assert_eq!(
        request(&mut f, &Options::default()).unwrap_err(),
        Refusal::TooLarge
    );
    let e = Refusal::TooLarge.error(3);
    assert_eq!(
        (e.code(), e.is_connection_error()),
        (ErrorCode::REFUSED_STREAM, false)
    );
    let e = Refusal::Malformed(Malformed::InvalidName).error(3);
    assert_eq!(
        e,
        Error::stream(3, ErrorCode::PROTOCOL_ERROR, "invalid field name")
    );
}
