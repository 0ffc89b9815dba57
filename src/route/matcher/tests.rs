use super::*;
use crate::header_list::HeaderList;

fn view<'a>(path: &'a str, query: Option<&'a str>, headers: &'a HeaderList) -> RequestView<'a> {
    RequestView {
        method: "GET",
        scheme: "http",
        authority: "reviews:9080",
        path,
        query,
        headers,
    }
}

#[test]
fn prefix_is_a_plain_string_prefix() {
    let m = RouteMatch {
        uri: Some(StrMatch::Prefix("/foo".into())),
        ..Default::default()
    };
    let h = HeaderList::new();
    assert!(
        m.matches(&view("/foobar", None, &h)),
        "Envoy prefix /foo matches /foobar"
    );
    assert!(!m.matches(&view("/fo", None, &h)));
}

#[test]
fn ignore_uri_case_applies_to_exact_and_prefix() {
    let m = RouteMatch {
        uri: Some(StrMatch::Exact("/Login".into())),
        ignore_uri_case: true,
        ..Default::default()
    };
    let h = HeaderList::new();
    assert!(m.matches(&view("/LOGIN", None, &h)));
}

#[test]
fn headers_are_anded_and_missing_header_fails() {
    let m = RouteMatch {
        headers: vec![HeaderMatch {
            name: HeaderName::from_static("end-user").into(),
            matcher: StrMatch::Exact("jason".into()),
        }],
        ..Default::default()
    };
    let mut h = HeaderList::new();
    assert!(!m.matches(&view("/", None, &h)));
    h.insert(
        HeaderName::from_static("end-user"),
        "jason".parse().unwrap(),
    );
    assert!(m.matches(&view("/", None, &h)));
    let err = m.check(&view("/", None, &HeaderList::new())).unwrap_err();
    assert_eq!(err, Miss::Header(0));
    assert_eq!(
        m.describe_miss(err),
        (
            "headers.end-user".to_string(),
            "exact \"jason\"".to_string()
        )
    );
}

#[test]
fn pseudo_headers_match_the_request_line() {
    let m = |name, matcher| RouteMatch {
        headers: vec![HeaderMatch {
            name: HeaderKey::Pseudo(name),
            matcher,
        }],
        ..Default::default()
    };
    let h = HeaderList::new();
    assert!(m(":method", StrMatch::Exact("GET".into())).matches(&view("/", None, &h)));
    assert!(!m(":method", StrMatch::Exact("POST".into())).matches(&view("/", None, &h)));
    assert!(m(":path", StrMatch::Exact("/a?b=1".into())).matches(&view("/a", Some("b=1"), &h)));
    assert!(!m(":status", StrMatch::Present).matches(&view("/", None, &h)));
}

#[test]
fn without_headers_treats_missing_as_empty() {
    let absent = |matcher| RouteMatch {
        without_headers: vec![HeaderMatch {
            name: HeaderName::from_static("x-canary").into(),
            matcher,
        }],
        ..Default::default()
    };
    let h = HeaderList::new();
    assert!(
        absent(StrMatch::Present).matches(&view("/", None, &h)),
        "absent header passes a presence withoutHeaders"
    );
    assert!(absent(StrMatch::Exact("yes".into())).matches(&view("/", None, &h)));
    assert!(
        !absent(StrMatch::Exact(String::new())).matches(&view("/", None, &h)),
        "missing counts as empty"
    );
    let mut h = HeaderList::new();
    h.insert(HeaderName::from_static("x-canary"), "yes".parse().unwrap());
    assert!(!absent(StrMatch::Exact("yes".into())).matches(&view("/", None, &h)));
}

#[test]
fn query_exact_empty_matches_bare_key() {
    let m = RouteMatch {
        query_params: vec![("debug".into(), StrMatch::Exact(String::new()))],
        ..Default::default()
    };
    let h = HeaderList::new();
    assert!(m.matches(&view("/", Some("debug"), &h)));
    assert!(m.matches(&view("/", Some("a=1&debug="), &h)));
    assert!(!m.matches(&view("/", Some("debug=1"), &h)));
    assert!(!m.matches(&view("/", None, &h)));
}

#[test]
fn multiple_header_values_are_joined_with_commas() {
    let m = RouteMatch {
        headers: vec![HeaderMatch {
            name: HeaderName::from_static("x-a").into(),
            matcher: StrMatch::Exact("1,2".into()),
        }],
        ..Default::default()
    };
    let mut h = HeaderList::new();
    h.append(HeaderName::from_static("x-a"), "1".parse().unwrap());
    h.append(HeaderName::from_static("x-a"), "2".parse().unwrap());
    assert!(m.matches(&view("/", None, &h)));
}
