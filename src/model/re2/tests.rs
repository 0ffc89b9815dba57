use super::*;

fn m(p: &str, s: &str) -> bool {
    compile_full_match(p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .is_match(s)
}

fn err(p: &str) -> String {
    compile_full_match(p)
        .err()
        .unwrap_or_else(|| panic!("{p} should be rejected"))
}

#[test]
fn envoy_full_match_semantics() {
    assert!(m("/v1/.*", "/v1/x"));
    assert!(!m("v1", "/v1"));
    assert!(!m("/v1", "/v1/x"));
    assert!(m("a|b", "b"));
    assert!(!m("a|b", "ab"));
    assert!(m("", ""));
}

#[test]
fn perl_classes_are_ascii_only_like_re2() {
    assert!(!m(r"\d", "٣"));
    assert!(m(r"\d", "7"));
    assert!(m(r"\D", "٣"));
    assert!(!m(r"\w", "é"));
    assert!(m(r"\W", "é"));
    assert!(!m(r"[\d]", "٣"));
    assert!(!m(r"[\w]", "é"));
    // Go's \s is [\t\n\f\r ]: no vertical tab, no Unicode spaces.
    assert!(m(r"\s", " "));
    assert!(!m(r"\s", "\x0b"));
    assert!(!m(r"\s", "\u{a0}"));
    assert!(m(r"[^\s]", "\x0b"));
}

#[test]
fn word_boundary_is_ascii() {
    assert!(m(r".*\bx", "éx"));
    assert!(!m(r"a\bb", "ab"));
    assert!(m(r"a\Bb", "ab"));
}

#[test]
fn quote_meta_is_literal() {
    assert!(m(r"\Q.*\E", ".*"));
    assert!(!m(r"\Q.*\E", "ab"));
    assert!(m(r"a\Q+?", "a+?")); // unterminated \Q runs to the end
    assert!(m(r"\Qab\E*", "abbb")); // only the last literal is repeated
}

#[test]
fn perl_class_inside_brackets_with_dash() {
    assert!(m(r"[\d-]+", "1-2"));
    assert!(!m(r"[\d-]", "x"));
    assert!(m(r"[\D]", "x"));
    assert!(!m(r"[\D]", "5"));
}

#[test]
fn case_insensitive_flag() {
    assert!(m("(?i)abc", "ABC"));
    assert!(m("a(?i)bc", "aBC"));
    assert!(!m("a(?i)bc", "ABC"));
    assert!(m("(?i:a)b", "Ab"));
    assert!(!m("(?i:a)b", "AB"));
    assert!(!m("(?i-i)a", "A"));
    assert!(m("(?ii)a", "A"));
    assert!(m("(?)a", "a"));
}

#[test]
fn flag_group_after_atom_does_not_steal_the_repetition() {
    assert!(m("a(?i)*", "aaa"));
    assert!(m("a(?i)*", ""));
}

#[test]
fn ungreedy_flag_is_applied() {
    let re = compile_full_match("(?U)(a+)(a*)").unwrap();
    let c = re.captures("aaa").unwrap();
    assert_eq!(&c[1], "a");
    let re = compile_full_match("(?U)(a+?)(a*)").unwrap();
    assert_eq!(&re.captures("aaa").unwrap()[1], "aaa");
    let re = compile_full_match("(a+)(a*)").unwrap();
    assert_eq!(&re.captures("aaa").unwrap()[1], "aaa");
}

#[test]
fn too_long_pattern_rejected() {
    assert_eq!(
        err(&"a".repeat(1025)),
        "regex is too large, max length allowed is 1024"
    );
    assert!(compile_full_match(&"a".repeat(1024)).is_ok());
}

#[test]
fn brackets_hold_literal_set_operators_as_in_re2() {
    // Rust would read these as set operations; Go/RE2 read characters.
    assert!(m("[a&&b]", "&"));
    assert!(m("[a&&b]", "b"));
    assert!(!m("[a&&b]", "c"));
    assert!(m("[a~~b]", "~"));
    assert!(m("[a[b]", "["));
    assert!(m("[]a]", "]"));
    assert!(m("[^]a]", "b"));
    assert!(m("[a-]", "-"));
    assert!(m("[--a]", "0"));
    assert!(
        err("[a--b]").starts_with("error parsing regexp: invalid character class range: `a--`")
    );
}

#[test]
fn backreference_rejected() {
    assert_eq!(
        err(r"(a)\1"),
        format!("error parsing regexp: invalid escape sequence: `\\1`{RE2_HINT}")
    );
}

#[test]
fn re2_only_and_rust_only_escapes() {
    assert!(err(r"\C").starts_with("error parsing regexp: invalid escape sequence: `\\C`"));
    assert!(err(r"\Z").contains("invalid escape sequence: `\\Z`"));
    assert!(err(r"\u0041").contains("invalid escape sequence: `\\u`"));
    assert!(m(r"\<a\>", "<a>"));
    assert!(m(r"\0", "\0"));
    assert!(m(r"\101", "A"));
    assert!(m(r"\x41\x{42}", "AB"));
    assert!(m(r"[\x{41}-\x{43}]", "B"));
    assert!(m(r"\a\f\t\n\r\v", "\x07\x0c\t\n\r\x0b"));
    assert!(err(r"\x{110000}").contains("invalid escape sequence"));
    assert!(err(r"\xg1").contains("invalid escape sequence"));
    assert_eq!(
        err("a\\"),
        format!("error parsing regexp: trailing backslash at end of expression: ``{RE2_HINT}")
    );
}

#[test]
fn braces_that_are_not_repeats_are_literals() {
    assert!(m("a{,5}", "a{,5}"));
    assert!(m("a{01}", "a{01}"));
    assert!(m("a{x}", "a{x}"));
    assert!(m("{", "{"));
    assert!(m(r"a\b{start}", "a{start}")); // `\b` then a literal brace
    assert!(m("a{2}", "aa"));
    assert!(m("a{2,}", "aaaa"));
    assert!(m("a{1,2}?b", "ab"));
}

#[test]
fn repeat_counts_follow_go() {
    assert!(err("a{1001}").contains("invalid repeat count: `{1001}`"));
    assert!(err("a{2,1}").contains("invalid repeat count: `{2,1}`"));
    assert!(err("(a{500}){3}").contains("invalid repeat count: `{3}`"));
    assert!(err("((a{10})*){101}").contains("invalid repeat count"));
    assert!(compile_full_match("(a{500}){2}").is_ok());
    assert!(compile_full_match("(a{1000}){0}").is_ok());
    assert!(compile_full_match("a{1000}").is_ok());
}

#[test]
fn stacked_or_missing_repetition_rejected() {
    assert!(err("a**").contains("invalid nested repetition operator: `**`"));
    assert!(err("a*??").contains("invalid nested repetition operator: `*??`"));
    assert!(err("x{2}{3}").contains("invalid nested repetition operator: `{2}{3}`"));
    assert!(err("*a").contains("missing argument to repetition operator: `*`"));
    assert!(err("a|*").contains("missing argument to repetition operator: `*`"));
    assert!(err("(+)").contains("missing argument to repetition operator: `+`"));
    assert!(m("(a*)*", ""));
    assert!(m("^*a", "a"));
}

#[test]
fn groups_and_flags_follow_go() {
    assert!(m("(?P<name>a)(?<n2>b)", "ab"));
    assert!(m("(?P<1a>x)", "x")); // Go allows a leading digit; Rust would not
    assert!(m("(?P<a>x)(?P<a>y)", "xy")); // Go allows duplicate names
    assert!(err("(?P<a-b>x)").contains("invalid named capture: `(?P<a-b>`"));
    assert!(err("(?x)a").contains("invalid or unsupported Perl syntax: `(?x`"));
    assert!(err("(?=a)").contains("invalid or unsupported Perl syntax: `(?=`"));
    assert!(err("(?i-)a").contains("invalid or unsupported Perl syntax: `(?i-)`"));
    assert!(err("(?u)a").contains("invalid or unsupported Perl syntax"));
    assert!(err("(a").contains("missing closing ): `(a`"));
    assert!(err("a)").contains("unexpected ): `a)`"));
    assert!(err("[a").contains("missing closing ]: `[a`"));
    assert!(err("[]").contains("missing closing ]: `[]`"));
}

#[test]
fn posix_and_unicode_classes() {
    assert!(m("[[:alpha:]]+", "abC"));
    assert!(m("[[:^digit:]]", "x"));
    assert!(err("[[:foo:]]").contains("invalid character class range: `[:foo:]`"));
    assert!(m(r"\p{Greek}", "α"));
    assert!(m(r"\pL", "é"));
    assert!(m(r"\p{^Greek}", "a"));
    assert!(!m(r"\P{^Greek}", "a"));
    assert!(m(r"[\p{Greek}x]", "x"));
    assert!(
        err(r"\p{NoSuchScript}").contains("invalid character class range: `\\p{NoSuchScript}`")
    );
}

#[test]
fn literals_with_rust_meta_meaning_are_escaped() {
    assert!(m("a#b c", "a#b c"));
    assert!(m("a&b~c-d", "a&b~c-d"));
    assert!(m("]}", "]}"));
}

#[test]
fn validate_accepts_what_compiles() {
    assert_eq!(validate("/api/v[0-9]+/.*"), Ok(()));
    assert!(validate("(").unwrap_err().ends_with(RE2_HINT));
}
