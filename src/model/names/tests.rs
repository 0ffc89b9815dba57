use super::*;

#[test]
fn dns1123_label_allows_uppercase_as_istio_does() {
    assert!(is_dns1123_label("Reviews-V1"));
    assert!(is_dns1123_label("a"));
    assert!(is_dns1123_label("1"));
}

#[test]
fn dns1123_label_rejects_bad_edges_and_chars() {
    for s in ["", "-a", "a-", "a_b", "a.b", "é", "*"] {
        assert!(!is_dns1123_label(s), "{s}");
    }
}

#[test]
fn dns1123_label_length_cap_is_63() {
    assert!(is_dns1123_label(&"a".repeat(63)));
    assert!(!is_dns1123_label(&"a".repeat(64)));
}

#[test]
fn wildcard_label_forms() {
    for s in ["*", "*x", "*-x", "x", "*a-b"] {
        assert!(is_wildcard_dns1123_label(s), "{s}");
    }
    for s in ["**", "*-", "x*", "*--", "-x", ""] {
        assert!(!is_wildcard_dns1123_label(s), "{s}");
    }
    assert!(is_wildcard_dns1123_label(&format!("*{}", "a".repeat(62))));
    assert!(!is_wildcard_dns1123_label(&format!("*{}", "a".repeat(63))));
}

#[test]
fn wildcard_domain_accepts_istio_forms() {
    for s in [
        "*",
        "*.foo.com",
        "*foo.com",
        "*-foo.com",
        "foo.com",
        "foo.com.",
        "Foo.COM",
        "reviews",
        "123",
        "*.",
    ] {
        assert_eq!(validate_wildcard_domain(s), Ok(()), "{s}");
    }
}

#[test]
fn wildcard_domain_star_only_in_first_label() {
    assert_eq!(
        validate_wildcard_domain("foo.*.com"),
        Err(r#"domain name "*.com" invalid (label "*" invalid)"#.to_string())
    );
    assert_eq!(
        validate_wildcard_domain("a*.com"),
        Err(r#"domain name "a*.com" invalid (label "a*" invalid)"#.to_string())
    );
}

#[test]
fn numeric_tld_rejected_with_remainder_named() {
    assert_eq!(
        validate_wildcard_domain("foo.123"),
        Err(
            r#"domain name "123" invalid (top level domain "123" cannot be all-numeric)"#
                .to_string()
        )
    );
    assert_eq!(
        validate_fqdn("1.2.3.4"),
        Err(
            r#"domain name "1.2.3.4" invalid (top level domain "4" cannot be all-numeric)"#
                .to_string()
        )
    );
    // Go's Atoi accepts a sign, but "-1" is not a DNS label either way.
    assert!(validate_fqdn("a.-1").is_err());
    // A trailing dot makes the TLD "" which Atoi rejects: accepted.
    assert_eq!(validate_fqdn("foo.123."), Ok(()));
    // Too big for Atoi, so not "numeric".
    assert_eq!(validate_fqdn("foo.123456789012345678901"), Ok(()));
}

#[test]
fn domain_length_and_emptiness() {
    assert_eq!(
        validate_wildcard_domain(""),
        Err("empty domain name not allowed".to_string())
    );
    let long = format!("{}.com", "a.".repeat(126));
    assert!(long.len() > 255);
    assert!(
        validate_wildcard_domain(&long)
            .unwrap_err()
            .contains("too long (max 255)")
    );
}

#[test]
fn domain_label_errors() {
    assert_eq!(
        validate_fqdn("foo..com"),
        Err(r#"domain name "foo..com" invalid (label "" invalid)"#.to_string())
    );
    assert_eq!(
        validate_fqdn("."),
        Err(r#"domain name "." invalid (label "" invalid)"#.to_string())
    );
    assert!(validate_fqdn(&format!("{}.com", "a".repeat(64))).is_err());
    assert_eq!(
        validate_fqdn("*.foo.com").unwrap_err(),
        r#"domain name "*.foo.com" invalid (label "*" invalid)"#
    );
}

#[test]
fn label_keys() {
    for k in ["app", "App_1.x", "istio.io/rev", "a.B-c/x", &"a".repeat(63)] {
        assert_eq!(validate_label_key(k), Ok(()), "{k}");
    }
    for k in ["", "-a", "a-", "/a", "a/", "a/b/c", "a..b/c", "é", "a b"] {
        assert_eq!(
            validate_label_key(k),
            Err(format!("invalid tag key: {}", go_quote(k))),
            "{k}"
        );
    }
    assert_eq!(
        validate_label_key(&"a".repeat(64)),
        Err(format!(
            "invalid tag key: \"{}\" (name is too long)",
            "a".repeat(64)
        ))
    );
    let prefix = format!("{}.a", "a".repeat(252));
    assert!(
        validate_label_key(&format!("{prefix}/x"))
            .unwrap_err()
            .ends_with("(DNS prefix is too long)")
    );
}

#[test]
fn label_values() {
    for v in ["", "a", "v1.2_3-x", &"a".repeat(63)] {
        assert_eq!(validate_label_value(v), Ok(()), "{v}");
    }
    for v in ["-a", "a-", "a b", "*", "é"] {
        assert_eq!(
            validate_label_value(v),
            Err(format!("invalid tag value: {}", go_quote(v)))
        );
    }
    assert!(validate_label_value(&"a".repeat(64)).is_err());
    assert_eq!(validate_label_value_istio(&"a".repeat(64)), Ok(()));
}

#[test]
fn validate_labels_reports_every_error() {
    let mut m = BTreeMap::new();
    m.insert("app".to_string(), "ok".to_string());
    m.insert("bad key".to_string(), "*".to_string());
    assert_eq!(
        validate_labels(&m),
        Err(r#"invalid tag key: "bad key"; invalid tag value: "*""#.to_string())
    );
    m.remove("bad key");
    assert_eq!(validate_labels(&m), Ok(()));
}

#[test]
fn ips_and_cidrs() {
    for s in ["1.2.3.4", "::1", "2001:db8::1", "::ffff:1.2.3.4"] {
        assert!(is_ip(s), "{s}");
    }
    for s in ["01.2.3.4", "1.2.3", "fe80::1%eth0", "a", ""] {
        assert!(!is_ip(s), "{s}");
    }
    for s in [
        "10.0.0.0/8",
        "1.2.3.4/32",
        "2001:db8::/32",
        "1.2.3.4",
        "1.2.3.4/08",
    ] {
        assert!(is_cidr_or_ip(s), "{s}");
    }
    assert_eq!(
        validate_ip_subnet("1.2.3.4/33"),
        Err("1.2.3.4/33 is not a valid CIDR block".to_string())
    );
    assert_eq!(
        validate_ip_subnet("1.2.3.4/"),
        Err("1.2.3.4/ is not a valid CIDR block".to_string())
    );
    assert_eq!(
        validate_ip_subnet("1.2.3.4/+8"),
        Err("1.2.3.4/+8 is not a valid CIDR block".to_string())
    );
    assert_eq!(
        validate_ip_subnet("1/2/3"),
        Err("1/2/3 is not a valid IP".to_string())
    );
    assert_eq!(
        validate_ip_subnet("host"),
        Err("host is not a valid IP".to_string())
    );
}

#[test]
fn ports() {
    assert_eq!(validate_port(1), Ok(()));
    assert_eq!(validate_port(65535), Ok(()));
    assert_eq!(
        validate_port(0),
        Err("port number 0 must be in the range 1..65535".to_string())
    );
    assert_eq!(
        validate_port(65536),
        Err("port number 65536 must be in the range 1..65535".to_string())
    );
}

#[test]
fn header_names_are_tokens_or_known_pseudo_headers() {
    for s in [
        ":method",
        ":scheme",
        ":authority",
        ":path",
        ":status",
        "x-foo",
        "X_Foo",
        "a!#$%&'*+-.^_`|~z",
    ] {
        assert!(is_valid_header_name(s), "{s}");
    }
    for s in ["", ":foo", ":Method", "a b", "a:b", "é", "a\"b", "(a)"] {
        assert!(!is_valid_header_name(s), "{s}");
    }
    assert_eq!(
        validate_header_name(""),
        Err("header name cannot be empty".to_string())
    );
    assert_eq!(
        validate_header_name("a b"),
        Err("header name a b is not a valid header name".to_string())
    );
}

#[test]
fn namespace_names_are_lowercase_labels() {
    assert_eq!(validate_namespace_name("istio-system"), Ok(()));
    assert_eq!(validate_namespace_name("123"), Ok(()));
    for s in ["", "Default", "a_b", "-a", "a-", "a.b"] {
        assert!(validate_namespace_name(s).is_err(), "{s}");
    }
    assert_eq!(validate_namespace_name(&"a".repeat(63)), Ok(()));
    assert_eq!(
        validate_namespace_name(&"a".repeat(64)),
        Err("must be no more than 63 characters".to_string())
    );
}

#[test]
fn go_quote_escapes_like_go() {
    assert_eq!(go_quote("a\"b\\c\n\x01"), r#""a\"b\\c\n\x01""#);
    assert_eq!(go_quote("é"), "\"é\"");
}
