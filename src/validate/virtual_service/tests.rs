use super::*;
use crate::load::{LoadOptions, load_str};
use crate::validate::Severity;

/// Validate the first VirtualService of `yaml` (loaded by the real loader).
fn check(yaml: &str) -> Vec<Finding> {
    let set = load_str(yaml, "t.yaml", &LoadOptions::default());
    assert!(
        set.problems.is_empty(),
        "schema problems: {:?}",
        set.problems
    );
    let vs = set.virtual_services.first().expect("one VirtualService");
    validate(vs)
}

/// A mesh VS for `reviews` with the given `http` rules (YAML, indented 2).
fn http(rules: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: t\n  namespace: default\nspec:\n  hosts: [reviews]\n  http:\n{rules}"
    )
}

fn errors(f: &[Finding]) -> Vec<&str> {
    f.iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| f.message.as_str())
        .collect()
}

fn warnings(f: &[Finding]) -> Vec<&str> {
    f.iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(|f| f.message.as_str())
        .collect()
}

fn has(f: &[Finding], path: &str, needle: &str) -> bool {
    f.iter()
        .any(|f| f.path == path && f.message.contains(needle))
}

const ROUTE: &str = "    route:\n    - destination: {host: reviews}\n";
const RULE: &str = "  - route:\n    - destination: {host: reviews}\n";

#[test]
fn valid_route_has_no_findings() {
    let f = check(&http(RULE));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn weights_are_relative_90_plus_20_is_valid() {
    let f = check(&http(
        "  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 90\n    - destination: {host: reviews, subset: v2}\n      weight: 20\n",
    ));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn negative_weight_is_rejected() {
    let f = check(&http(
        "  - route:\n    - destination: {host: reviews}\n      weight: -1\n    - destination: {host: ratings}\n      weight: 10\n",
    ));
    assert!(
        has(&f, "spec.http[0].route[0].weight", "weight -1 < 0"),
        "{f:?}"
    );
}

#[test]
fn all_zero_weights_rejected_with_several_destinations() {
    let f = check(&http(
        "  - route:\n    - destination: {host: reviews}\n      weight: 0\n    - destination: {host: ratings}\n",
    ));
    assert!(
        has(&f, "spec.http[0].route", "total destination weight = 0"),
        "{f:?}"
    );
}

#[test]
fn single_destination_weight_zero_is_valid() {
    let f = check(&http(
        "  - route:\n    - destination: {host: reviews}\n      weight: 0\n",
    ));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn timeout_zero_is_rejected() {
    let f = check(&http(&format!("  - timeout: 0s\n{ROUTE}")));
    assert!(
        has(
            &f,
            "spec.http[0].timeout",
            "duration must be greater than 1ms"
        ),
        "{f:?}"
    );
    assert!(errors(&f)[0].contains("omit timeout"), "{f:?}");
}

#[test]
fn timeout_sub_millisecond_precision_is_rejected() {
    let f = check(&http(&format!("  - timeout: 1500us\n{ROUTE}")));
    assert!(has(&f, "spec.http[0].timeout", "ms precision"), "{f:?}");
}

#[test]
fn retries_attempts_zero_with_retry_on_is_rejected() {
    let f = check(&http(&format!(
        "  - retries: {{attempts: 0, retryOn: 5xx}}\n{ROUTE}"
    )));
    assert!(
        has(&f, "spec.http[0].retries.attempts", "attempts are set to 0"),
        "{f:?}"
    );
}

#[test]
fn retries_negative_attempts_rejected() {
    let f = check(&http(&format!("  - retries: {{attempts: -2}}\n{ROUTE}")));
    assert!(errors(&f).contains(&"attempts cannot be negative"), "{f:?}");
}

#[test]
fn unknown_retry_on_token_rejected() {
    let f = check(&http(&format!(
        "  - retries: {{attempts: 3, retryOn: \"5xx,connect-failures\"}}\n{ROUTE}"
    )));
    assert_eq!(errors(&f).len(), 1, "{f:?}");
    assert!(errors(&f)[0].starts_with("\"connect-failures\" is not a valid retryOn policy"));
}

#[test]
fn bare_status_code_in_retry_on_is_valid() {
    let f = check(&http(&format!(
        "  - retries: {{attempts: 3, perTryTimeout: 2s, retryOn: \"503,gateway-error,reset-before-request\"}}\n{ROUTE}"
    )));
    assert!(f.is_empty(), "{f:?}");
    // 599 is not a status code Go knows.
    let f = check(&http(&format!(
        "  - retries: {{attempts: 3, retryOn: \"599\"}}\n{ROUTE}"
    )));
    assert_eq!(errors(&f).len(), 1, "{f:?}");
}

#[test]
fn wildcard_host_rejected_for_mesh() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [\"*\"]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    let f = check(y);
    assert!(
        has(&f, "spec.hosts[0]", "wildcard host * is not allowed"),
        "{f:?}"
    );
    let gw = y.replace("spec:\n", "spec:\n  gateways: [istio-system/ingress]\n");
    assert!(check(&gw).is_empty());
}

#[test]
fn duplicate_overlapping_hosts_rejected() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [\"*.foo.com\", a.foo.com]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    let f = check(y);
    assert!(
        has(
            &f,
            "spec.hosts[1]",
            "duplicate hosts in virtual service: *.foo.com & a.foo.com"
        ),
        "{f:?}"
    );
}

#[test]
fn invalid_host_rejected_but_ip_accepted() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [\"a b\", 10.0.0.1]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    let f = check(y);
    assert_eq!(errors(&f).len(), 1, "{f:?}");
    assert!(
        has(&f, "spec.hosts[0]", "domain name \"a b\" invalid"),
        "{f:?}"
    );
}

#[test]
fn no_routes_at_all_rejected() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [reviews]\n";
    assert!(errors(&check(y)).contains(&"http, tcp or tls must be provided in virtual service"));
}

#[test]
fn delegate_vs_cannot_have_gateways_tls_or_tcp() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  gateways: [gw]\n  tcp:\n  - route:\n    - destination: {host: reviews}\n";
    let e = check(y);
    let e = errors(&e);
    assert!(
        e.contains(&"delegate virtual service must have no gateways specified"),
        "{e:?}"
    );
    assert!(
        e.contains(&"delegate virtual service must have no tcp route specified"),
        "{e:?}"
    );
}

#[test]
fn delegate_route_cannot_contain_delegate_and_root_no_route() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  http:\n  - delegate: {name: x}\n";
    assert!(errors(&check(y)).contains(&"delegate HTTP route cannot contain delegate"));
    let root = http(
        "  - name: r\n    delegate: {name: x}\n    route:\n    - destination: {host: reviews}\n",
    );
    let root = root.replace("  http:\n", "  gateways: [gw]\n  http:\n");
    assert!(errors(&check(&root)).contains(&"root HTTP route r must not specify route"));
}

#[test]
fn route_redirect_and_direct_response_are_exclusive() {
    let f = check(&http(
        "  - redirect: {uri: /x}\n    directResponse: {status: 200}\n    route:\n    - destination: {host: reviews}\n",
    ));
    let e = errors(&f);
    assert!(
        e.contains(&"HTTP route cannot contain both route and redirect"),
        "{e:?}"
    );
    assert!(
        e.contains(&"HTTP route rule cannot contain both direct_response and redirect"),
        "{e:?}"
    );
    let f = check(&http("  - name: x\n"));
    assert!(errors(&f).contains(&"HTTP route, redirect or direct_response is required"));
}

#[test]
fn mirror_and_mirrors_are_exclusive() {
    let f = check(&http(&format!(
        "  - mirror: {{host: a}}\n    mirrors:\n    - destination: {{host: b}}\n{ROUTE}"
    )));
    assert!(errors(&f).contains(&"HTTP route cannot contain both mirror and mirrors"));
}

#[test]
fn mirror_percent_is_deprecated_and_capped() {
    let f = check(&http(&format!(
        "  - mirror: {{host: a}}\n    mirrorPercent: 101\n{ROUTE}"
    )));
    assert!(
        has(
            &f,
            "spec.http[0].mirrorPercent",
            "max value of 100 (it has 101)"
        ),
        "{f:?}"
    );
    assert!(
        warnings(&f)
            .iter()
            .any(|w| w.contains("deprecated setting \"mirrorPercent\""))
    );
    let f = check(&http(&format!(
        "  - mirror: {{host: a}}\n    mirrorPercentage: {{value: 150}}\n{ROUTE}"
    )));
    assert!(
        errors(&f).contains(&"mirror_percentage must have a max value of 100 (it has 150.000000)"),
        "{f:?}"
    );
}

#[test]
fn header_match_names_and_empty_prefix() {
    let f = check(&http(&format!(
        "  - match:\n    - headers:\n        \"bad header\": {{exact: x}}\n        end-user: {{prefix: \"\"}}\n        \":method\": {{exact: GET}}\n      uri: {{prefix: \"\"}}\n{ROUTE}"
    )));
    assert!(
        has(
            &f,
            "spec.http[0].match[0].headers.bad header",
            "is not a valid header name"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].match[0].headers.end-user",
            "prefix string match should not be empty"
        ),
        "{f:?}"
    );
    assert_eq!(
        errors(&f).len(),
        2,
        "empty uri prefix and :method are fine: {f:?}"
    );
}

#[test]
fn bad_regex_rejected_and_without_headers_star_exempt() {
    let f = check(&http(&format!(
        "  - match:\n    - uri: {{regex: \"(\"}}\n      withoutHeaders:\n        x: {{regex: \"*\"}}\n{ROUTE}"
    )));
    assert_eq!(errors(&f).len(), 1, "{f:?}");
    assert!(
        has(&f, "spec.http[0].match[0].uri", "Istio uses RE2 style"),
        "{f:?}"
    );
}

#[test]
fn string_match_oneof_rejected() {
    let f = check(&http(&format!(
        "  - match:\n    - uri: {{exact: /a, prefix: /b}}\n{ROUTE}"
    )));
    assert!(
        errors(&f)
            .iter()
            .any(|e| e.contains("only one of exact, prefix or regex")),
        "{f:?}"
    );
}

#[test]
fn match_port_labels_and_source_namespace() {
    let f = check(&http(&format!(
        "  - match:\n    - port: 70000\n      sourceLabels: {{\"bad key!\": v}}\n      sourceNamespace: \"Not_A_Label\"\n{ROUTE}"
    )));
    assert!(
        has(&f, "spec.http[0].match[0].port", "port number 70000"),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|x| x.path == "spec.http[0].match[0].sourceLabels"),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].match[0].sourceNamespace",
            "sourceNamespace match Not_A_Label is invalid"
        ),
        "{f:?}"
    );
}

#[test]
fn jwt_claim_routing_rejected_for_mesh_only() {
    let rules = format!(
        "  - match:\n    - headers:\n        \"@request.auth.claims.group\": {{exact: admin}}\n{ROUTE}"
    );
    let f = check(&http(&rules));
    assert!(
        errors(&f)
            .iter()
            .any(|e| e.starts_with("JWT claim based routing (key: @request.auth.claims.group)")),
        "{f:?}"
    );
    let gw = http(&rules).replace("  http:\n", "  gateways: [istio-system/ingress]\n  http:\n");
    assert!(check(&gw).is_empty());
}

#[test]
fn gateway_name_formats() {
    let base = http(RULE);
    let f = check(&base.replace(
        "  http:\n",
        "  gateways: [\"/gw\", \"ns/Bad_Name\"]\n  http:\n",
    ));
    let e = errors(&f);
    assert!(
        e.contains(&"config namespace and gateway name cannot be empty"),
        "{e:?}"
    );
    assert!(
        e.contains(&"invalid value for gateway name: \"Bad_Name\""),
        "{e:?}"
    );
    let f = check(&base.replace("  http:\n", "  gateways: [gw.istio-system]\n  http:\n"));
    assert!(errors(&f).is_empty(), "{f:?}");
    assert!(
        warnings(&f)[0].contains("prefer the <namespace>/<name> format: \"istio-system/gw\""),
        "{f:?}"
    );
}

#[test]
fn header_operations_rules() {
    let f = check(&http(&format!(
        "  - headers:\n      request:\n        set: {{\":path\": /x, x-a: \"50%\"}}\n        remove: [host]\n      response:\n        add: {{\":status\": \"200\"}}\n{ROUTE}"
    )));
    assert!(
        has(
            &f,
            "spec.http[0].headers.request.set.:path",
            "header cannot have \":\" prefix"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].headers.request.set.x-a",
            "header value configuration"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].headers.request.remove[0]",
            "cannot set Host header"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].headers.response.add.:status",
            "header cannot have \":\" prefix"
        ),
        "{f:?}"
    );
    let ok = check(&http(&format!(
        "  - headers:\n      request:\n        set: {{x-a: \"%HOSTNAME% 100%%\", \":authority\": a.com}}\n{ROUTE}"
    )));
    assert!(ok.is_empty(), "{ok:?}");
}

#[test]
fn authority_set_twice_rejected() {
    let f = check(&http(&format!(
        "  - rewrite: {{authority: a.com}}\n    headers:\n      request:\n        set: {{host: b.com}}\n{ROUTE}"
    )));
    assert!(errors(&f).iter().any(|e| e.starts_with("authority header cannot be set multiple times: have \"a.com\", attempting to set \"b.com\"")), "{f:?}");
}

#[test]
fn cors_rules() {
    let f = check(&http(&format!(
        "  - corsPolicy:\n      allowOrigins: [{{exact: \"\"}}, {{regex: \"(\"}}]\n      allowMethods: [GET, FETCH]\n      allowHeaders: [\"*\", \"a b\"]\n      maxAge: 1500ms\n{ROUTE}"
    )));
    assert!(
        has(
            &f,
            "spec.http[0].corsPolicy.allowOrigins[0]",
            "is not a valid match type for CORS allow origins"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].corsPolicy.allowOrigins[1]",
            "\"corsPolicy.allowOrigins\""
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].corsPolicy.allowMethods[1]",
            "\"FETCH\" is not a supported HTTP method"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].corsPolicy.allowHeaders[1]",
            "header name a b is not a valid header name"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].corsPolicy.maxAge",
            "accurate only to seconds precision"
        ),
        "{f:?}"
    );
    assert_eq!(errors(&f).len(), 5, "{f:?}");
}

#[test]
fn fault_percentage_range_is_zero_or_tiny_to_hundred() {
    let rule = |v: &str| {
        http(&format!(
            "  - fault:\n      abort: {{httpStatus: 503, percentage: {{value: {v}}}}}\n{ROUTE}"
        ))
    };
    assert!(check(&rule("0")).is_empty());
    assert!(check(&rule("0.0001")).is_empty());
    assert!(check(&rule("100")).is_empty());
    let f = check(&rule("0.00001"));
    assert!(
        errors(&f).contains(&"percentage 1e-05 is neither 0.0, nor in range [0.0001, 100.0]"),
        "{f:?}"
    );
    assert_eq!(errors(&check(&rule("100.5"))).len(), 1);
}

#[test]
fn fault_abort_rules() {
    let f = check(&http(&format!(
        "  - fault:\n      abort: {{httpStatus: 700}}\n{ROUTE}"
    )));
    assert!(
        errors(&f).contains(&"HTTP status 700 is not in range 200-599"),
        "{f:?}"
    );
    let f = check(&http(&format!(
        "  - fault:\n      abort: {{grpcStatus: \"14\"}}\n{ROUTE}"
    )));
    assert!(
        errors(&f)[0].starts_with("gRPC status \"14\" is not supported"),
        "{f:?}"
    );
    assert!(
        check(&http(&format!(
            "  - fault:\n      abort: {{grpcStatus: UNAVAILABLE}}\n{ROUTE}"
        )))
        .is_empty()
    );
    let f = check(&http(&format!(
        "  - fault:\n      abort: {{http2Error: x}}\n{ROUTE}"
    )));
    assert!(
        errors(&f).contains(&"HTTP/2 abort fault injection not supported yet"),
        "{f:?}"
    );
    let f = check(&http(&format!(
        "  - fault:\n      abort: {{percentage: {{value: 5}}}}\n{ROUTE}"
    )));
    assert!(
        errors(&f).is_empty()
            && warnings(&f)[0].starts_with("abort configured, but error type not set"),
        "{f:?}"
    );
    let f = check(&http(&format!(
        "  - fault:\n      abort: {{httpStatus: 503, grpcStatus: OK}}\n{ROUTE}"
    )));
    assert!(
        errors(&f)
            .iter()
            .any(|e| e.starts_with("only one of httpStatus")),
        "{f:?}"
    );
}

#[test]
fn fault_delay_rules() {
    let f = check(&http(&format!("  - fault: {{}}\n{ROUTE}")));
    assert!(
        errors(&f).contains(&"HTTP fault injection must have an abort and/or a delay"),
        "{f:?}"
    );
    let f = check(&http(&format!(
        "  - fault:\n      delay: {{fixedDelay: 0s}}\n{ROUTE}"
    )));
    assert!(
        has(
            &f,
            "spec.http[0].fault.delay.fixedDelay",
            "greater than 1ms"
        ),
        "{f:?}"
    );
    let f = check(&http(&format!(
        "  - fault:\n      delay: {{exponentialDelay: 1s}}\n{ROUTE}"
    )));
    assert!(
        errors(&f)[0].starts_with("exponentialDelay not supported yet"),
        "{f:?}"
    );
}

#[test]
fn redirect_rules() {
    let red = |r: &str| check(&http(&format!("  - redirect: {r}\n")));
    assert!(
        errors(&red("{redirectCode: 302}"))
            .contains(&"redirect must specify URI, authority, scheme, or port")
    );
    assert!(
        errors(&red("{uri: /a, redirectCode: 200}"))
            .contains(&"200 is not a valid redirect code, must be 3xx")
    );
    assert!(
        errors(&red("{scheme: ftp}"))
            .contains(&"invalid redirect scheme, must be \"http\" or \"https\"")
    );
    assert!(errors(&red("{port: 70000}"))[0].contains("port number 70000"));
    assert!(
        errors(&red("{port: 80, derivePort: FROM_REQUEST_PORT}"))
            .contains(&"only one of port or derivePort may be set")
    );
    assert!(red("{uri: /a, redirectCode: 308}").is_empty());
    assert!(
        errors(&red("{uri: /a, prefixRewrite: /b}"))
            .contains(&"redirect may only specify one of uri or prefix_rewrite")
    );
    let f = check(&http(
        "  - match:\n    - uri: {exact: /a}\n    redirect: {prefixRewrite: /b}\n",
    ));
    assert!(
        errors(&f)
            .contains(&"redirect prefix_rewrite requires all URI matches to use prefix match type"),
        "{f:?}"
    );
}

#[test]
fn direct_response_rules() {
    let f = check(&http("  - directResponse: {status: 700}\n"));
    assert!(
        has(&f, "spec.http[0].directResponse.status", "HTTP status 700"),
        "{f:?}"
    );
    let f = check(&http("  - directResponse: {body: {string: ok}}\n"));
    assert!(
        errors(&f).contains(&"HTTP status 0 is not in range 200-599"),
        "status is required: {f:?}"
    );
    let big = "x".repeat(200 * 1024);
    let f = check(&http(&format!(
        "  - directResponse: {{status: 200, body: {{string: {big}}}}}\n"
    )));
    assert!(
        errors(&f).is_empty() && warnings(&f)[0].starts_with("large direct_responses"),
        "{f:?}"
    );
    let f = check(&http(
        "  - directResponse: {status: 200, body: {string: a, bytes: YQ==}}\n",
    ));
    assert!(
        errors(&f).contains(&"only one of string or bytes may be set"),
        "{f:?}"
    );
}

#[test]
fn rewrite_rules() {
    let rw = |r: &str| check(&http(&format!("  - rewrite: {r}\n{ROUTE}")));
    assert!(
        errors(&rw("{uri: /a, uriRegexRewrite: {match: a, rewrite: b}}"))
            .contains(&"rewrite may only contain one of URI or UriRegexRewrite")
    );
    assert!(errors(&rw("{}"))[0].starts_with("rewrite must specify at least one of URI"));
    assert!(
        errors(&rw("{uriRegexRewrite: {match: a}}"))[0].contains("requires both Rewrite and Match")
    );
    assert!(
        errors(&rw("{uriRegexRewrite: {match: \"(\", rewrite: b}}"))[0]
            .contains("\"HTTPRewrite.UriRegexRewrite.Match\"")
    );
    assert!(rw("{uriRegexRewrite: {match: \"^/a/(.*)\", rewrite: \"/\\\\1\"}}").is_empty());
}

#[test]
fn destination_rules() {
    let f = check(&http(
        "  - route:\n    - destination: {host: \"*\"}\n    - destination: {host: reviews, subset: \"v_1\", port: {number: 0}}\n      weight: 1\n    - weight: 1\n",
    ));
    assert!(
        has(
            &f,
            "spec.http[0].route[0].destination.host",
            "invalid destination host *"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].route[1].destination.subset",
            "subset name is invalid: v_1"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.http[0].route[1].destination.port.number",
            "port number 0"
        ),
        "{f:?}"
    );
    assert!(
        has(&f, "spec.http[0].route[2]", "destination is required"),
        "{f:?}"
    );
}

#[test]
fn tls_route_rules() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [\"*.example.com\"]\n  gateways: [ns/gw]\n  tls:\n  - match:\n    - sniHosts: [a.example.com, other.com, 10.0.0.1]\n      destinationSubnets: [10.0.0.0/33]\n    - port: 443\n  - route:\n    - destination: {host: a.example.com}\n";
    let f = check(y);
    assert!(
        has(
            &f,
            "spec.tls[0].match[0].sniHosts[1]",
            "SNI host \"other.com\" is not a compatible subset"
        ),
        "{f:?}"
    );
    assert!(
        f.iter().any(
            |x| x.severity == Severity::Warning && x.path == "spec.tls[0].match[0].sniHosts[2]"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.tls[0].match[0].destinationSubnets[0]",
            "is not a valid CIDR block"
        ),
        "{f:?}"
    );
    assert!(
        has(
            &f,
            "spec.tls[0].match[1]",
            "TLS match must have at least one SNI host"
        ),
        "{f:?}"
    );
    assert!(has(&f, "spec.tls[0]", "TLS route is required"), "{f:?}");
    assert!(
        has(
            &f,
            "spec.tls[1]",
            "TLS route must have at least one match condition"
        ),
        "{f:?}"
    );
}

#[test]
fn tcp_route_rules() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [mongo]\n  tcp:\n  - match:\n    - destinationSubnets: [not-an-ip]\n      port: 70000\n";
    let f = check(y);
    assert!(
        has(
            &f,
            "spec.tcp[0].match[0].destinationSubnets[0]",
            "not-an-ip is not a valid IP"
        ),
        "{f:?}"
    );
    assert!(
        has(&f, "spec.tcp[0].match[0].port", "port number 70000"),
        "{f:?}"
    );
    assert!(has(&f, "spec.tcp[0]", "TCP route is required"), "{f:?}");
}

#[test]
fn export_to_rules_apply() {
    let y = http(RULE).replace("  http:\n", "  exportTo: [\"*\", ns1]\n  http:\n");
    assert!(
        errors(&check(&y))
            .iter()
            .any(|e| e.contains("both public (*) and non-public"))
    );
}

// --- unreachable rules / ineffective matches -------------------------

fn notes(f: &[Finding]) -> Vec<&Note> {
    f.iter()
        .map(|f| &f.note)
        .filter(|n| **n != Note::Plain)
        .collect()
}

#[test]
fn route_after_catch_all_is_unreachable() {
    let f = check(&http(&format!(
        "  - route:\n    - destination: {{host: reviews}}\n  - name: late\n    match:\n    - uri: {{prefix: /a}}\n    - uri: {{prefix: /b}}\n{ROUTE}"
    )));
    assert_eq!(
        notes(&f),
        vec![&Note::UnreachableRule {
            rule: "\"late\"".into(),
            reason: "route without matches defined before".into()
        }]
    );
    assert_eq!(f[0].path, "spec.http[1]");
}

#[test]
fn two_catch_alls_only_the_last_may_have_no_matches() {
    let f = check(&http(&format!(
        "{}{}",
        ROUTE.replacen("    ", "  - ", 1),
        ROUTE.replacen("    ", "  - ", 1)
    )));
    assert_eq!(
        notes(&f),
        vec![&Note::UnreachableRule {
            rule: "#1".into(),
            reason: "only the last rule can have no matches".into()
        }]
    );
}

#[test]
fn duplicate_match_is_ineffective() {
    let f = check(&http(&format!(
        "  - name: first\n    match:\n    - name: m\n      uri: {{exact: /a}}\n{ROUTE}  - match:\n    - uri: {{exact: /a}}\n{ROUTE}"
    )));
    assert_eq!(
        notes(&f),
        vec![
            &Note::IneffectiveMatch {
                rule: "#1".into(),
                match_: "#0".into(),
                prior: "\"first\"".into()
            },
            &Note::UnreachableRule {
                rule: "#1".into(),
                reason: "all matches used by prior rules".into()
            }
        ]
    );
    assert_eq!(f[0].path, "spec.http[1].match[0]");
}

#[test]
fn match_differing_only_in_zero_values_is_duplicate() {
    // `port: 0` and `ignoreUriCase: false` are Go zero values: omitted from asJSON.
    let f = check(&http(&format!(
        "  - match:\n    - uri: {{exact: /a}}\n{ROUTE}  - match:\n    - uri: {{exact: /a}}\n      port: 0\n      ignoreUriCase: false\n    - uri: {{exact: /b}}\n{ROUTE}"
    )));
    assert_eq!(notes(&f).len(), 1, "{f:?}");
}

#[test]
fn prefix_overlap_is_ineffective() {
    let f = check(&http(&format!(
        "  - match:\n    - uri: {{prefix: /api}}\n{ROUTE}  - match:\n    - uri: {{prefix: /api/v1}}\n      method: {{exact: GET}}\n    - uri: {{prefix: /api/v2}}\n      method: {{exact: POST}}\n{ROUTE}"
    )));
    assert_eq!(
        notes(&f),
        vec![&Note::IneffectiveMatch {
            rule: "#1".into(),
            match_: "#0 of prefix /api/v1".into(),
            prior: "#0 of prefix /api on #0".into()
        }]
    );
}

#[test]
fn prefix_overlap_needs_same_port_and_headers() {
    let f = check(&http(&format!(
        "  - match:\n    - uri: {{prefix: /api}}\n      port: 80\n{ROUTE}  - match:\n    - uri: {{prefix: /api/v1}}\n    - uri: {{prefix: /api/v2}}\n      port: 80\n      headers: {{x: {{exact: z}}}}\n{ROUTE}"
    )));
    assert!(notes(&f).is_empty(), "{f:?}");
}

#[test]
fn tcp_and_tls_duplicates_use_indexes() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [a.com]\n  tls:\n  - match:\n    - sniHosts: [a.com]\n    route:\n    - destination: {host: a.com}\n  - match:\n    - sniHosts: [a.com]\n      port: 0\n    - sniHosts: [a.com]\n      port: 443\n    route:\n    - destination: {host: a.com}\n  tcp:\n  - route:\n    - destination: {host: a.com}\n  - route:\n    - destination: {host: a.com}\n";
    let f = check(y);
    assert_eq!(
        notes(&f),
        vec![
            &Note::UnreachableRule {
                rule: "#1".into(),
                reason: "only the last rule can have no matches".into()
            },
            &Note::IneffectiveMatch {
                rule: "#1".into(),
                match_: "#0".into(),
                prior: "#0".into()
            },
        ]
    );
    assert_eq!(f[1].path, "spec.tls[1].match[0]");
}

#[test]
fn go_float_formats_like_go() {
    assert_eq!(go_float(150.0), "150");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(-0.5), "-0.5");
    assert_eq!(go_float(1e6), "1e+06");
    assert_eq!(go_float(123456.0), "123456");
}

#[test]
fn envoy_header_value_syntax() {
    assert!(envoy_header_value("%REQ(x-a)%").is_ok());
    assert!(envoy_header_value("%START_TIME%%").is_err());
    assert!(envoy_header_value("abc%123").is_err());
    assert!(envoy_header_value("%DYNAMIC_METADATA([\"a\", \"b\"])%").is_ok());
}

#[test]
fn outbound_sni_host_allowed_on_gateway() {
    let y = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: t}\nspec:\n  hosts: [\"outbound_.80_._.e2e.foo.mesh\"]\n  gateways: [ns/gw]\n  tls:\n  - match:\n    - sniHosts: [\"outbound_.80_._.e2e.foo.mesh\"]\n    route:\n    - destination: {host: e2e.foo.mesh}\n";
    assert!(check(y).is_empty(), "{:?}", check(y));
    let bad = y.replace("outbound_.80_", "outbound_.xx_");
    assert!(!errors(&check(&bad)).is_empty());
}
