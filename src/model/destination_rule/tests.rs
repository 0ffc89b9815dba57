use super::*;
use serde_json::json;

#[test]
fn reviews_dr() {
    let dr: DestinationRule = serde_json::from_value(json!({
            "host": "reviews.prod.svc.cluster.local",
            "trafficPolicy": {
                "loadBalancer": {"simple": "LEAST_REQUEST",
                                 "localityLbSetting": {"enabled": true,
                                     "distribute": [{"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}],
                                     "failoverPriority": ["topology.istio.io/network"]}},
                "connectionPool": {
                    "tcp": {"maxConnections": 100, "connectTimeout": "30ms",
                            "tcpKeepalive": {"time": "7200s", "interval": "75s", "probes": 9}},
                    "http": {"http2MaxRequests": 1000, "maxRequestsPerConnection": 10,
                             "h2UpgradePolicy": "UPGRADE", "http2KeepAlive": {"interval": "30s", "timeout": "5s"}}
                },
                "outlierDetection": {"consecutive5xxErrors": 7, "interval": "5m", "baseEjectionTime": "15m",
                                     "consecutiveErrors": 3, "outlierDetectionHttpErrorCodes": [503]},
                "tls": {"mode": "ISTIO_MUTUAL"},
                "portLevelSettings": [
                    {"port": {"number": 80}, "loadBalancer": {"simple": "ROUND_ROBIN"}},
                    {"port": {"number": 9080},
                     "loadBalancer": {"consistentHash": {"httpCookie": {"name": "user", "ttl": "0s",
                                                         "attributes": [{"name": "SameSite", "value": "Strict"}]},
                                                         "maglev": {"tableSize": 65537}}},
                     "tls": {"mode": "SIMPLE", "sni": "reviews.example", "insecureSkipVerify": false}}
                ],
                "proxyProtocol": {"version": "V2"},
                "tunnel": {"protocol": "POST", "targetHost": "10.0.0.1", "targetPort": 8443},
                "retryBudget": {"percent": 25.0, "minRetryConcurrency": 5, "budgetInterval": "1s"}
            },
            "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"},
                 "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}}}
            ],
            "exportTo": ["."],
            "workloadSelector": {"matchLabels": {"app": "productpage"}}
        }))
        .unwrap();
    let tp = dr.traffic_policy.as_ref().unwrap();
    assert_eq!(
        tp.load_balancer.as_ref().unwrap().simple,
        Some(SimpleLB::LeastRequest)
    );
    let od = tp.outlier_detection.as_ref().unwrap();
    assert_eq!(od.consecutive_5xx_errors, Some(7));
    assert_eq!(od.base_ejection_time.as_ref().unwrap().text, "15m");
    assert_eq!(
        tp.tls.as_ref().unwrap().mode,
        Some(ClientTLSMode::IstioMutual)
    );
    let pls = &tp.port_level_settings;
    assert_eq!(pls[1].port.as_ref().unwrap().number, Some(9080));
    let ch = pls[1]
        .load_balancer
        .as_ref()
        .unwrap()
        .consistent_hash
        .as_ref()
        .unwrap();
    assert_eq!(ch.maglev.as_ref().unwrap().table_size, Some(65537));
    assert_eq!(ch.http_cookie.as_ref().unwrap().attributes.len(), 1);
    let http = tp.connection_pool.as_ref().unwrap().http.as_ref().unwrap();
    assert_eq!(http.h2_upgrade_policy, Some(H2UpgradePolicy::Upgrade));
    assert_eq!(
        tp.proxy_protocol.as_ref().unwrap().version,
        Some(ProxyProtocolVersion::V2)
    );
    assert_eq!(tp.retry_budget.as_ref().unwrap().percent, Some(25.0));
    assert_eq!(dr.subsets[1].name.as_deref(), Some("v2"));
    assert_eq!(
        dr.workload_selector.as_ref().unwrap().match_labels["app"],
        "productpage"
    );
    // Serialization keeps the proto names, e.g. `consecutive5xxErrors`.
    let v = serde_json::to_value(&dr).unwrap();
    assert_eq!(
        v["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"],
        json!(7)
    );
    let again: DestinationRule = serde_json::from_value(v).unwrap();
    assert_eq!(again, dr);
}

#[test]
fn rejects_labels_selector_and_bad_enum() {
    let err = serde_json::from_value::<DestinationRule>(
        json!({"host": "a", "workloadSelector": {"labels": {"app": "x"}}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `labels`"), "{err}");
    let err = serde_json::from_value::<DestinationRule>(
        json!({"host": "a", "trafficPolicy": {"loadBalancer": {"simple": "LEAST_CONNECTIONS"}}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown variant"), "{err}");
}
