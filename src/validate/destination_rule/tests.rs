use super::*;
use crate::validate::Severity;

fn run(yaml: &str) -> Vec<Finding> {
    let set = crate::load::load_str(yaml, "t.yaml", &crate::load::LoadOptions::default());
    let r = set
        .destination_rules
        .first()
        .unwrap_or_else(|| panic!("no DestinationRule loaded: {set:?}"));
    validate(r)
}

fn dr(spec: &str) -> Vec<Finding> {
    run(&format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\n  namespace: default\nspec:\n{spec}"
    ))
}

fn has(fs: &[Finding], path: &str, msg: &str) -> bool {
    fs.iter()
        .any(|f| f.path == path && f.message.contains(msg) && f.severity == Severity::Error)
}

fn has_warning(fs: &[Finding], path: &str, msg: &str) -> bool {
    fs.iter()
        .any(|f| f.path == path && f.message.contains(msg) && f.severity == Severity::Warning)
}

#[test]
fn realistic_destination_rule_is_valid() {
    let fs = dr(r#"
  host: reviews.prod.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
      localityLbSetting:
        enabled: true
        distribute:
        - from: us-west/zone1/*
          to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s}
      http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m}
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer:
        consistentHash:
          httpCookie: {name: user, ttl: 0s}
          maglev: {tableSize: 65537}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#);
    assert!(fs.is_empty(), "{fs:#?}");
}

#[test]
fn invalid_host_is_rejected() {
    let fs = dr("  host: foo..bar\n");
    assert!(has(&fs, "spec.host", "invalid"), "{fs:#?}");
    assert!(dr("  host: \"*\"\n").is_empty(), "Istio accepts `*`");
}

#[test]
fn subset_names_must_be_unique() {
    let fs = dr("  host: r\n  subsets:\n  - name: v1\n  - name: v1\n");
    assert!(has(
        &fs,
        "spec.subsets[1].name",
        "duplicate subset names: v1"
    ));
}

#[test]
fn subset_name_must_be_dns_label() {
    let fs = dr("  host: r\n  subsets:\n  - name: v1.0\n  - labels: {a: b}\n");
    assert!(has(&fs, "spec.subsets[0].name", "subset name is invalid"));
    assert!(has(
        &fs,
        "spec.subsets[1].name",
        "subset name cannot be empty"
    ));
}

#[test]
fn subset_labels_must_be_valid() {
    let fs = dr("  host: r\n  subsets:\n  - name: v1\n    labels: {\"a b\": x}\n");
    assert!(has(&fs, "spec.subsets[0].labels", "invalid tag key"));
}

#[test]
fn empty_traffic_policy_is_rejected() {
    let fs = dr("  host: r\n  trafficPolicy: {}\n");
    assert!(has(&fs, "spec.trafficPolicy", "at least one field"));
    let fs = dr("  host: r\n  subsets:\n  - name: v1\n    trafficPolicy: {}\n");
    assert!(has(
        &fs,
        "spec.subsets[0].trafficPolicy",
        "at least one field"
    ));
}

#[test]
fn tunnel_and_proxy_protocol_are_exclusive() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    tunnel: {targetHost: a.b, targetPort: 8443}\n    proxyProtocol: {version: V1}\n",
    );
    assert!(has(&fs, "spec.trafficPolicy", "must not be set together"));
}

#[test]
fn tunnel_settings_are_checked() {
    let fs = dr("  host: r\n  trafficPolicy:\n    tunnel: {protocol: GET, targetHost: \"a b\"}\n");
    assert!(has(&fs, "spec.trafficPolicy.tunnel.protocol", "CONNECT"));
    assert!(has(
        &fs,
        "spec.trafficPolicy.tunnel.targetHost",
        "FQDN or IP"
    ));
    assert!(has(
        &fs,
        "spec.trafficPolicy.tunnel.targetPort",
        "port number 0"
    ));
}

#[test]
fn port_level_settings_need_a_port() {
    let fs = dr("  host: r\n  trafficPolicy:\n    portLevelSettings:\n    - tls: {mode: SIMPLE}\n");
    assert!(has(
        &fs,
        "spec.trafficPolicy.portLevelSettings[0].port",
        "must have valid port"
    ));
}

#[test]
fn port_level_settings_need_a_field() {
    let fs = dr("  host: r\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n");
    assert!(has(
        &fs,
        "spec.trafficPolicy.portLevelSettings[0]",
        "at least one field"
    ));
}

#[test]
fn empty_connection_pool_is_rejected() {
    let fs = dr("  host: r\n  trafficPolicy:\n    connectionPool: {}\n");
    assert!(has(
        &fs,
        "spec.trafficPolicy.connectionPool",
        "at least one field"
    ));
}

#[test]
fn negative_connection_limits_are_rejected() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    connectionPool:\n      http: {http1MaxPendingRequests: -1}\n      tcp: {maxConnections: -5}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests",
        "http1 max pending requests must be non-negative"
    ));
    assert!(has(
        &fs,
        "spec.trafficPolicy.connectionPool.tcp.maxConnections",
        "max connections must be non-negative"
    ));
}

#[test]
fn connection_pool_durations_need_1ms_but_tcp_idle_timeout_may_be_zero() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: 0s, idleTimeout: 0s}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout",
        "greater than 1ms"
    ));
    assert!(
        !fs.iter().any(|f| f.path.ends_with("idleTimeout")),
        "{fs:#?}"
    );
}

#[test]
fn use_client_protocol_conflicts_with_upgrade() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    connectionPool:\n      http: {useClientProtocol: true, h2UpgradePolicy: UPGRADE}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.connectionPool.http.useClientProtocol",
        "H2UpgradePolicy is UPGRADE"
    ));
}

#[test]
fn http2_keepalive_needs_interval_and_timeout() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    connectionPool:\n      http: {http2KeepAlive: {interval: 10s}}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout",
        "timeout is required"
    ));
}

#[test]
fn local_origin_failures_need_split_errors() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    outlierDetection: {consecutiveLocalOriginFailures: 3}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
        "split external local origin errors"
    ));
    let ok = dr(
        "  host: r\n  trafficPolicy:\n    outlierDetection: {consecutiveLocalOriginFailures: 3, splitExternalLocalOriginErrors: true}\n",
    );
    assert!(ok.is_empty(), "{ok:#?}");
}

#[test]
fn outlier_percentages_and_codes_are_ranged() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    outlierDetection: {maxEjectionPercent: 101, minHealthPercent: -1, outlierDetectionHttpErrorCodes: [503, 600]}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
        "percentage 101 is not in range 0..100"
    ));
    assert!(has(
        &fs,
        "spec.trafficPolicy.outlierDetection.minHealthPercent",
        "not in range"
    ));
    assert!(has(
        &fs,
        "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes[1]",
        "100..599"
    ));
}

#[test]
fn consecutive_errors_is_deprecated_warning() {
    let fs = dr("  host: r\n  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 5}\n");
    assert!(has_warning(
        &fs,
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "deprecated"
    ));
}

#[test]
fn http_cookie_needs_name_and_unique_attributes() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie:\n          ttl: 0s\n          attributes: [{name: a}, {name: a}, {value: x}]\n",
    );
    let p = "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie";
    assert!(has(
        &fs,
        &format!("{p}.name"),
        "name required for HttpCookie"
    ));
    assert!(has(
        &fs,
        &format!("{p}.attributes[1].name"),
        "duplicate cookie attribute"
    ));
    assert!(has(
        &fs,
        &format!("{p}.attributes[2].name"),
        "cannot be empty"
    ));
}

#[test]
fn minimum_ring_size_conflicts_with_hash_algorithm() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, minimumRingSize: 1024, ringHash: {minimumRingSize: 1024}}\n",
    );
    let p = "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize";
    assert!(has(&fs, p, "only one of MinimumRingSize"));
    assert!(has_warning(&fs, p, "deprecated"));
}

#[test]
fn maglev_table_size_must_be_prime() {
    let p = "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize";
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}\n",
    );
    assert!(has(&fs, p, "prime"));
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, maglev: {tableSize: 5000011}}\n",
    );
    assert!(has(&fs, p, "less than 5000011"));
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true, maglev: {}}\n",
    );
    assert!(has(&fs, p, "must be set"));
}

#[test]
fn locality_distribute_weights_must_sum_to_100() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    outlierDetection: {interval: 1s}\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: a/b/*\n          to: {\"a/b/*\": 60, \"a/c/*\": 30}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
        "total locality weight 90 != 100"
    ));
}

#[test]
fn locality_weights_must_be_1_to_100() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - from: a\n          to: {\"a\": 0, \"b\": 100}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to",
        "range [1, 100]"
    ));
}

#[test]
fn locality_distribute_and_failover_are_exclusive() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute: [{from: a, to: {b: 100}}]\n        failover: [{from: a, to: b}]\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer.localityLbSetting",
        "'distribute' and 'failover'"
    ));
}

#[test]
fn locality_overlap_and_wildcards_are_rejected() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        distribute:\n        - {from: \"us/*\", to: {x: 100}}\n        - {from: us/z1, to: {x: 100}}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute",
        "overlap"
    ));
    assert!(
        localities(&["a/*/b".into()])
            .unwrap_err()
            .contains("wildcard")
    );
    assert!(localities(&["a//b".into()]).unwrap_err().contains("empty"));
    assert!(localities(&["a/b".into(), "a/c".into()]).is_ok());
}

#[test]
fn locality_failover_rules() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: us, to: us}, {from: us/z1, to: \"eu*\"}]\n",
    );
    let p = "spec.trafficPolicy.loadBalancer.localityLbSetting";
    assert!(has(&fs, &format!("{p}.failover[0]"), "different regions"));
    assert!(has(&fs, &format!("{p}.failover[1]"), "only specify region"));
    assert!(has(&fs, &format!("{p}.failover[1]"), "'*' wildcard"));
    assert!(has_warning(
        &fs,
        p,
        "outlier detection policy must be provided"
    ));
}

#[test]
fn failover_priority_topology_label_conflicts_with_failover() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    outlierDetection: {interval: 1s}\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: us, to: eu}]\n        failoverPriority: [topology.kubernetes.io/region]\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority",
        "topology label"
    ));
}

#[test]
fn locality_and_zone_aware_are_exclusive() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      localityLbSetting: {enabled: true}\n      zoneAwareLbSetting: {enabled: true, minClusterSize: 0}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer",
        "only one of localityLbSetting"
    ));
    assert!(has(
        &fs,
        "spec.trafficPolicy.loadBalancer.zoneAwareLbSetting.minClusterSize",
        "at least 1"
    ));
}

#[test]
fn warmup_rules() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    loadBalancer:\n      warmupDurationSecs: 10s\n      warmup: {minimumPercent: 101, aggression: 0}\n",
    );
    let p = "spec.trafficPolicy.loadBalancer";
    assert!(has(&fs, p, "only one of warmupDurationSecs and warmup"));
    assert!(has(
        &fs,
        &format!("{p}.warmup.duration"),
        "duration is required"
    ));
    assert!(has(
        &fs,
        &format!("{p}.warmup.minimumPercent"),
        "less than or equal to 100"
    ));
    assert!(has(
        &fs,
        &format!("{p}.warmup.aggression"),
        "greater than 0"
    ));
}

#[test]
fn insecure_skip_verify_conflicts_with_ca() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.tls.insecureSkipVerify",
        "InsecureSkipVerify is set true"
    ));
}

#[test]
fn credential_name_excludes_file_certificates() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: c, privateKey: /k.pem}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.tls.credentialName",
        "If credentialName is set"
    ));
}

#[test]
fn mutual_tls_needs_client_certificate() {
    let fs = dr("  host: r\n  trafficPolicy:\n    tls: {mode: MUTUAL}\n");
    assert!(has(
        &fs,
        "spec.trafficPolicy.tls.clientCertificate",
        "client certificate required for mutual tls"
    ));
    assert!(has(
        &fs,
        "spec.trafficPolicy.tls.privateKey",
        "private key required for mutual tls"
    ));
    assert!(
        dr("  host: r\n  trafficPolicy:\n    tls: {mode: MUTUAL, credentialName: c}\n").is_empty()
    );
}

#[test]
fn configmap_credential_must_be_in_own_namespace() {
    let fs = dr(
        "  host: r\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: \"configmap://other/ca\"}\n",
    );
    assert!(has(
        &fs,
        "spec.trafficPolicy.tls.credentialName",
        "namespace must match"
    ));
    assert!(
            dr("  host: r\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: \"configmap://default/ca\"}\n")
                .is_empty()
        );
}

#[test]
fn retry_budget_percent_is_ranged() {
    let fs = dr("  host: r\n  trafficPolicy:\n    retryBudget: {percent: 120}\n");
    assert!(has(
        &fs,
        "spec.trafficPolicy.retryBudget.percent",
        "not in range"
    ));
}

#[test]
fn workload_selector_dr_cannot_export_beyond_namespace() {
    let fs = dr("  host: r\n  exportTo: [other]\n  workloadSelector:\n    matchLabels: {app: x}\n");
    assert!(has(&fs, "spec.exportTo", "beyond current namespace"));
}

#[test]
fn workload_selector_wildcard_is_rejected_and_empty_warns() {
    let fs = dr("  host: r\n  workloadSelector:\n    matchLabels: {app: \"*\"}\n");
    assert!(fs.iter().any(|f| f.message.contains("wildcard")), "{fs:#?}");
    let fs = dr("  host: r\n  workloadSelector: {}\n");
    assert!(
        fs.iter().any(|f| f.severity == Severity::Warning),
        "{fs:#?}"
    );
}

#[test]
fn is_prime_matches_envoy() {
    assert!(is_prime(65537) && is_prime(2) && is_prime(3) && is_prime(5000011));
    assert!(!is_prime(65536) && !is_prime(9) && !is_prime(4));
}
