use super::*;

fn parsed() -> HeaderList {
    // "host: a\r\nx-a: 1\r\nx-a: 2\r\n"
    let base = Bytes::from_static(b"host: a\r\nx-a: 1\r\nx-a: 2\r\n");
    HeaderList::from_ranges(
        base,
        [(0..4, 6..7), (9..12, 14..15), (17..20, 22..23)].into_iter(),
    )
}

#[test]
fn lookups_read_the_heads_ranges() {
    let h = parsed();
    assert_eq!(h.len(), 3);
    assert_eq!(h.get("host"), Some(&b"a"[..]));
    assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), [b"1", b"2"]);
    assert!(!h.contains("x-b"));
    assert_eq!(h.get_str("x-a"), Some("1"));
}

#[test]
fn insert_replaces_the_first_and_drops_the_rest() {
    let mut h = parsed();
    h.insert(
        HeaderName::from_static("x-a"),
        HeaderValue::from_static("3"),
    );
    let lines: Vec<_> = h.iter().collect();
    assert_eq!(lines, [(&b"host"[..], &b"a"[..]), (b"x-a", b"3")]);
    h.insert(
        HeaderName::from_static("x-b"),
        HeaderValue::from_static("4"),
    );
    assert_eq!(h.get("x-b"), Some(&b"4"[..]));
    assert_eq!(h.len(), 3);
}

#[test]
fn remove_and_append() {
    let mut h = parsed();
    assert!(h.remove("x-a"));
    assert!(!h.remove("x-a"));
    h.append(
        HeaderName::from_static("x-a"),
        HeaderValue::from_static("5"),
    );
    h.insert_if_absent(
        HeaderName::from_static("host"),
        HeaderValue::from_static("z"),
    );
    assert_eq!(h.iter().count(), 2);
    assert_eq!(h.get("host"), Some(&b"a"[..]));
    h.retain(|n, _| n != b"host");
    assert_eq!(h.iter().collect::<Vec<_>>(), [(&b"x-a"[..], &b"5"[..])]);
}

#[test]
fn header_map_round_trip_keeps_every_value_in_order() {
    let h = parsed();
    let map = h.to_header_map().unwrap();
    assert_eq!(map.get_all("x-a").iter().collect::<Vec<_>>(), ["1", "2"]);
    let back = HeaderList::from(map);
    let lines: Vec<_> = back.iter().collect();
    assert_eq!(
        lines,
        [(&b"host"[..], &b"a"[..]), (b"x-a", b"1"), (b"x-a", b"2")]
    );
}

#[test]
fn text_is_visible_ascii_only() {
    assert_eq!(as_text(b"a b\tc"), Some("a b\tc"));
    assert_eq!(as_text(b"caf\xc3\xa9"), None);
    assert_eq!(as_text(b"\x7f"), None);
}
