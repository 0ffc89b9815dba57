use super::*;
use serde_json::json;

fn reviews() -> serde_json::Value {
    json!({
        "hosts": ["reviews"],
        "http": [
            {
                "name": "jason",
                "match": [{"headers": {"end-user": {"exact": "jason"}}, "uri": {"prefix": "/"}}],
                "route": [{"destination": {"host": "reviews", "subset": "v2"}}],
                "timeout": "10s",
                "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure"}
            },
            {
                "route": [
                    {"destination": {"host": "reviews", "subset": "v1", "port": {"number": 9080}}, "weight": 90},
                    {"destination": {"host": "reviews", "subset": "v3"}, "weight": 10,
                     "headers": {"response": {"set": {"x-v": "3"}, "remove": ["x-internal"]}}}
                ],
                "mirror": {"host": "reviews-shadow"},
                "mirror_percent": 20,
                "fault": {"delay": {"fixedDelay": "7s", "percentage": {"value": 0.5}},
                          "abort": {"httpStatus": 503, "percentage": {"value": 1.0}}},
                "corsPolicy": {"allowOrigins": [{"exact": "https://a.example"}], "allowMethods": ["GET"],
                               "maxAge": "24h", "unmatchedPreflights": "IGNORE"}
            }
        ],
        "tcp": [{"match": [{"port": 27017, "sourceSubnet": "10.0.0.0/8"}],
                 "route": [{"destination": {"host": "mongo"}}]}],
        "tls": [{"match": [{"sniHosts": ["reviews"], "port": 443}],
                 "route": [{"destination": {"host": "reviews"}}]}]
    })
}

#[test]
fn bookinfo_reviews() {
    let vs: VirtualService = serde_json::from_value(reviews()).unwrap();
    assert_eq!(vs.hosts, vec!["reviews"]);
    let r0 = &vs.http[0];
    let m = &r0.match_[0];
    assert_eq!(m.headers["end-user"].kind(), Some(("exact", "jason")));
    assert_eq!(r0.timeout.as_ref().unwrap().nanos, 10_000_000_000);
    let retries = r0.retries.as_ref().unwrap();
    assert_eq!(retries.attempts, Some(3));
    assert_eq!(retries.per_try_timeout.as_ref().unwrap().text, "2s");
    let r1 = &vs.http[1];
    let weights: Vec<_> = r1.route.iter().map(|d| d.weight).collect();
    assert_eq!(weights, vec![Some(90), Some(10)]);
    assert_eq!(
        r1.route[0].destination.as_ref().unwrap().port,
        Some(PortSelector { number: Some(9080) })
    );
    assert_eq!(r1.mirror_percent, Some(20));
    let fault = r1.fault.as_ref().unwrap();
    assert_eq!(fault.abort.as_ref().unwrap().http_status, Some(503));
    assert_eq!(
        r1.cors_policy.as_ref().unwrap().unmatched_preflights,
        Some(UnmatchedPreflights::Ignore)
    );
    assert_eq!(vs.tcp[0].match_[0].port, Some(27017));
    assert_eq!(vs.tls[0].match_[0].sni_hosts, vec!["reviews"]);
}

#[test]
fn serialize_yields_only_what_was_set() {
    let m: HTTPMatchRequest = serde_json::from_value(
        json!({"uri": {"prefix": "/api"}, "headers": {"x": {}}, "ignoreUriCase": true}),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"uri": {"prefix": "/api"}, "headers": {"x": {}}, "ignoreUriCase": true})
    );
    let vs: VirtualService = serde_json::from_value(reviews()).unwrap();
    let again: VirtualService = serde_json::from_value(serde_json::to_value(&vs).unwrap()).unwrap();
    assert_eq!(vs, again);
}

#[test]
fn redirect_rewrite_direct_response() {
    let r: HTTPRoute = serde_json::from_value(json!({
        "redirect": {"uri": "/v2", "derivePort": "FROM_REQUEST_PORT", "redirectCode": 308},
        "rewrite": {"uriRegexRewrite": {"match": "^/a/(.*)", "rewrite": "/\\1"}},
        "directResponse": {"status": 200, "body": {"string": "ok"}},
        "delegate": {"name": "d", "namespace": "ns"}
    }))
    .unwrap();
    let redirect = r.redirect.unwrap();
    assert_eq!(
        redirect.derive_port,
        Some(RedirectPortSelection::FromRequestPort)
    );
    assert_eq!(redirect.redirect_code, Some(308));
    let rr = r.rewrite.unwrap().uri_regex_rewrite.unwrap();
    assert_eq!(rr.match_.as_deref(), Some("^/a/(.*)"));
    assert_eq!(r.direct_response.unwrap().status, Some(200));
    assert!(
        serde_json::from_value::<HTTPRoute>(json!({"redirect": {"derivePort": "BOGUS"}})).is_err()
    );
}

#[test]
fn unknown_field_is_rejected() {
    let err = serde_json::from_value::<VirtualService>(json!({
        "hosts": ["reviews"],
        "http": [{"match": [{"sourcelabels": {"app": "x"}}],
                  "route": [{"destination": {"host": "reviews"}}]}]
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `sourcelabels`"),
        "{err}"
    );
}
