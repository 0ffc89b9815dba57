use super::*;

fn parse(s: &str) -> Vec<Document> {
    parse_documents(s, &InputLimits::default()).expect("parses")
}

#[test]
fn multi_document_with_lines() {
    let docs = parse(
        "# comment\n---\napiVersion: v1\nkind: A\n---\n---\nkind: B\nspec:\n  http:\n  - route:\n    - destination:\n        host: reviews\n",
    );
    assert_eq!(docs.len(), 2, "empty document skipped");
    assert_eq!(docs[0].line, 3);
    assert_eq!(docs[1].value["kind"], "B");
    assert_eq!(
        docs[1]
            .lines
            .line_of("spec.http[0].route[0].destination.host"),
        Some(12)
    );
    assert_eq!(docs[1].lines.line_of("spec.http[0]"), Some(10));
    assert_eq!(
        docs[1]
            .lines
            .line_of("spec.http[0].route[0].destination.nope"),
        Some(11)
    );
}

/// Istio's validation test data writes `addresses: [1.2.3.4, 001:db8::]`:
/// two strings to Kubernetes (go-yaml ends a flow plain scalar only at
/// `: `, `,`, `[`, `]`, `{`, `}`), a mapping to a YAML 1.2 parser.
#[test]
fn flow_plain_scalars_end_where_go_yaml_ends_them() {
    let d = &parse(
        "addresses: [1.2.3.4, 001:db8::]\nb: [a:, x, c::d]\nc: {k:, m: v}\nd: [2001:db8::1, fe80::]\ne: [k: v, 'q:']\nf: [é, ü:]\ng: [x:]\n",
    )[0];
    let v = &d.value;
    assert_eq!(v["addresses"], serde_json::json!(["1.2.3.4", "001:db8::"]));
    assert_eq!(v["b"], serde_json::json!(["a:", "x", "c::d"]));
    assert_eq!(v["c"], serde_json::json!({"k:": null, "m": "v"}));
    assert_eq!(v["d"], serde_json::json!(["2001:db8::1", "fe80::"]));
    // A real pair (`: ` with a blank) and quoted scalars are unchanged.
    assert_eq!(v["e"], serde_json::json!([{"k": "v"}, "q:"]));
    // Non-ASCII text before the scalar (spans count characters).
    assert_eq!(v["f"], serde_json::json!(["é", "ü:"]));
    assert_eq!(v["g"], serde_json::json!(["x:"]));
    // In block context `a:,` is one scalar to both.
    let d = &parse("h: a:,\n")[0];
    assert_eq!(d.value["h"], "a:,");
}

#[test]
fn scalars_resolve_as_go_yaml_v2() {
    let d =
        &parse("a: 1\nb: 1.5\nc: yes\nd: 'yes'\ne: ~\nf: 0x10\ng: abc\nh: 90\ni: -3\nj: \"5\"\n")
            [0];
    let v = &d.value;
    assert_eq!(v["a"], 1);
    assert_eq!(v["b"], 1.5);
    assert_eq!(v["c"], true);
    assert_eq!(v["d"], "yes");
    assert!(v["e"].is_null());
    assert_eq!(v["f"], 16);
    assert_eq!(v["g"], "abc");
    assert_eq!(v["i"], -3);
    assert_eq!(v["j"], "5");
    assert_eq!(d.yaml11_bools, vec!["c".to_string()]);
}

#[test]
fn duplicate_keys_are_rejected() {
    let e = parse_documents("a: 1\na: 2\n", &InputLimits::default()).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("already defined"), "{}", e.message);
}

#[test]
fn merge_keys_and_aliases() {
    let d = &parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\n")[0];
    assert_eq!(d.value["other"]["x"], 1);
    assert_eq!(d.value["other"]["y"], 3);
    assert_eq!(d.value["list"][0]["y"], 2);
}

#[test]
fn alias_bomb_is_bounded() {
    let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        s.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            std::iter::repeat_n(prev.as_str(), 10)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let e = parse_documents(&s, &InputLimits::default()).unwrap_err();
    assert!(e.message.contains("alias bomb"), "{}", e.message);
}

#[test]
fn deep_nesting_is_bounded() {
    let s = "[".repeat(10_000) + &"]".repeat(10_000);
    let e = parse_documents(&s, &InputLimits::default()).unwrap_err();
    // saphyr-parser stops first (its own recursion limit), else ours does.
    assert!(
        e.message.contains("nested deeper") || e.message.contains("recursion limit"),
        "{}",
        e.message
    );
    let s = "a:\n".to_string()
        + &(1..200)
            .map(|i| format!("{}b:\n", " ".repeat(i)))
            .collect::<String>();
    let e = parse_documents(&s, &InputLimits::default()).unwrap_err();
    assert!(e.message.contains("nested deeper"), "{}", e.message);
}

#[test]
fn document_count_is_bounded() {
    let limits = InputLimits {
        max_documents: 10,
        ..InputLimits::default()
    };
    let s = "---\na: 1\n".repeat(11);
    let e = parse_documents(&s, &limits).unwrap_err();
    assert!(
        e.message.contains("more than 10 YAML documents"),
        "{}",
        e.message
    );
}

#[test]
fn parsing_without_lines_keeps_lines_flags_and_errors() {
    let text = "# c\n---\n\napiVersion: v1\nkind: A\nspec: {x: yes, l: [1, on]}\n---\n\"\": {b: 1}\nc: 2\n";
    let full = parse(text);
    let fast = parse_documents_without_lines(text, &InputLimits::default()).expect("parses");
    assert_eq!(full.len(), fast.len());
    for (f, q) in full.iter().zip(&fast) {
        assert_eq!(f.value, q.value);
        assert_eq!(f.line, q.line);
        assert_eq!(f.yaml11_bools, q.yaml11_bools);
        assert!(q.lines.is_empty());
    }
    assert_eq!(fast[0].line, 4);
    assert_eq!(fast[0].yaml11_bools, vec!["spec.x", "spec.l[1]"]);
    assert_eq!(fast[1].line, 8);
    let indexes = line_indexes(text, &InputLimits::default());
    assert_eq!(indexes[0].line_of("spec.l[1]"), Some(6));
    // The duplicate-key message names the mapping's path.
    let dup = "a:\n  b: {c: 1, c: 2}\n";
    let e = parse_documents_without_lines(dup, &InputLimits::default()).unwrap_err();
    assert_eq!(
        e,
        parse_documents(dup, &InputLimits::default()).unwrap_err()
    );
    assert!(e.message.ends_with("in a.b"), "{}", e.message);
}

#[test]
fn documents_are_handed_over_one_at_a_time_and_errors_match() {
    let text = "a: 1\n---\nb: 2\n---\n---\nc: {d: 3}\n";
    let mut seen = Vec::new();
    parse_each_without_lines(text, &InputLimits::default(), &mut |d| {
        seen.push((d.value, d.line));
    })
    .expect("parses");
    let all = parse(text);
    assert_eq!(seen.len(), all.len());
    for ((v, l), d) in seen.iter().zip(&all) {
        assert_eq!((v, *l), (&d.value, d.line));
    }
    let bad = "a: 1\n---\nb: {c: 1, c: 2}\n";
    let mut n = 0;
    let e = parse_each_without_lines(bad, &InputLimits::default(), &mut |_| n += 1).unwrap_err();
    assert_eq!(
        e,
        parse_documents(bad, &InputLimits::default()).unwrap_err()
    );
    assert_eq!(n, 1, "the document before the error was handed over");
}

#[test]
fn files_split_only_at_a_document_start_line_and_without_directives() {
    let text = "a: 1\n---\nb: 2\n---\nc: |\n  ---\n---\nd: 4\n";
    let (at, line) = split_point(text, 1).expect("splits");
    assert_eq!((&text[at..at + 4], line), ("---\n", 7));
    assert_eq!(split_point(text, text.len() + 1), None, "too short");
    assert_eq!(split_point(&format!("%YAML 1.2\n---\n{text}"), 1), None);
    assert_eq!(split_point("a: 1\nb: 2\n---\n", 1), None, "nothing after");
    let wide = "k: éééééééééé\n---\nb: 2\n";
    assert_eq!(
        split_point(wide, 1).map(|(_, l)| l),
        Some(2),
        "middle inside a character"
    );
    let mut n = 0;
    let e = parse_tail(
        "---\na: &x 1\nb: *x\n",
        &InputLimits::default(),
        &mut |_| n += 1,
    );
    assert!(e.is_err(), "aliases are refused in a second half");
}

#[test]
fn syntax_error_has_a_line() {
    let e = parse_documents("a: 1\nb: [1, 2\nc: 3\n", &InputLimits::default()).unwrap_err();
    assert!(e.line >= 2, "{e:?}");
}
