use super::*;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Match {
    #[serde(default)]
    source_labels: BTreeMap<String, String>,
    port: Option<u32>,
}
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Route {
    #[serde(rename = "match", default)]
    match_: Vec<Match>,
    timeout: Option<crate::model::Duration>,
    name: Option<String>,
}
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct Spec {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    http: Vec<Route>,
}

/// Issue #14: messages name Istio's shapes, never Rust's types or
/// serde's wording, over a spread of wrong shapes in the real model.
#[test]
fn no_message_shows_rust_or_serde_wording() {
    let vs = json!({
        "hosts": "reviews",
        "gateways": [7],
        "http": [{
            "match": [{"headers": {"end-user": "jason"}, "uri": "/x", "port": -1, "ignoreUriCase": "yes"}],
            "route": {"destination": {"host": "r"}},
            "timeout": 7,
            "retries": {"attempts": "three", "perTryTimeout": 1.5},
            "fault": {"delay": {"fixedDelay": 7, "percentage": {"value": "all"}}},
            "mirrorPercentage": [],
            "headers": {"request": {"set": ["a"]}},
        }],
        "tcp": [{"route": [{"weight": "x", "destination": {"port": {"number": 70000}}}]}],
    });
    let dr = json!({
        "host": ["r"],
        "subsets": [{"name": 1, "labels": ["v1"]}],
        "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": "many", "connectTimeout": 3}, "http": {"http1MaxPendingRequests": true}}, "outlierDetection": {"consecutive5xxErrors": -2, "interval": null}},
    });
    let mut msgs: Vec<String> = Vec::new();
    let d = decode::<crate::model::VirtualService>(Kind::VirtualService, vs, "spec", &[]);
    msgs.extend(d.problems.into_iter().map(|p| p.1));
    let d = decode::<crate::model::DestinationRule>(Kind::DestinationRule, dr, "spec", &[]);
    msgs.extend(d.problems.into_iter().map(|p| p.1));
    assert!(msgs.len() >= 15, "{msgs:#?}");
    let serde_words = [
        "invalid type",
        "invalid value",
        "expected struct",
        "expected enum",
        "expected a sequence",
        "expected a map",
        "expected u",
        "expected i",
        "expected f",
        "Option<",
        "Vec<",
        "u32",
        "i64",
        "usize",
        "variant",
    ];
    for m in &msgs {
        for w in serde_words {
            assert!(!m.contains(w), "{w:?} in {m:?}");
        }
    }
    let find = |needle: &str| {
        msgs.iter()
            .find(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} in {msgs:#?}"))
    };
    assert!(
            find("spec.http[0].match[0].headers.end-user").contains(
                "got the string \"jason\", but Istio expects a StringMatch: {exact: value}, {prefix: value} or {regex: value}"
            ),
            "{msgs:#?}"
        );
    assert!(
        find("fixedDelay").contains("write \"7s\" for 7 seconds"),
        "{msgs:#?}"
    );
}

#[test]
fn every_bad_field_is_reported_and_the_rest_survives() {
    let v = json!({"hosts": ["a"], "http": [{"match": [{"sourcelabels": {"a": "b"}, "port": "x"}], "timeout": "1d", "name": "r"}], "outlierDetection": {}});
    let d = decode::<Spec>(Kind::VirtualService, v, "spec", &[]);
    let spec = d.value.expect("decoded");
    assert_eq!(spec.http[0].name.as_deref(), Some("r"));
    assert_eq!(d.problems.len(), 4, "{:#?}", d.problems);
    let msgs: Vec<&str> = d.problems.iter().map(|p| p.1.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("did you mean \"sourceLabels\"") && m.contains("case-sensitive")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("spec.http[0].match[0].port:")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("unknown unit \"d\"")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m
                .contains("belongs in a DestinationRule (spec.trafficPolicy.outlierDetection)")),
        "{msgs:#?}"
    );
}

#[test]
fn route_fields_in_a_destination_rule_point_to_the_virtual_service() {
    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Dr {
        #[allow(dead_code)]
        host: Option<String>,
    }
    let d = decode::<Dr>(
        Kind::DestinationRule,
        json!({"host": "r", "retries": {"attempts": 3}}),
        "spec",
        &[],
    );
    assert!(d.value.is_some());
    assert_eq!(d.problems[0].0, "spec.retries");
    assert!(
        d.problems[0]
            .1
            .contains("belongs in a VirtualService (spec.http[].retries)"),
        "{}",
        d.problems[0].1
    );
}

#[test]
fn yaml11_boolean_gets_a_quoting_hint() {
    let d = decode::<Spec>(
        Kind::VirtualService,
        json!({"hosts": [true]}),
        "spec",
        &["spec.hosts[0]".to_string()],
    );
    assert!(d.problems[0].1.contains("quote it"), "{}", d.problems[0].1);
}

#[test]
fn undecodable_spec_is_reported_not_panicked() {
    let d = decode::<Spec>(Kind::VirtualService, json!("oops"), "spec", &[]);
    assert!(d.value.is_none());
    assert_eq!(d.problems.len(), 1);
}
