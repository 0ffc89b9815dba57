//! The traffic policy in effect for one destination (host, port, subset),
//! merged exactly as Istio does (`util.MergeSubsetTrafficPolicy`,
//! `pilot/pkg/networking/util/util.go`).

use crate::model::{DestinationRule, PortTrafficPolicy, TrafficPolicy};

/// The `portLevelSettings` entry for `port`, as a policy of its four blocks.
fn port_entry(p: &TrafficPolicy, port: u16) -> Option<TrafficPolicy> {
    p.port_level_settings
        .iter()
        .find(|e| e.port.as_ref().and_then(|s| s.number) == Some(u32::from(port)))
        .map(from_port)
}

fn from_port(e: &PortTrafficPolicy) -> TrafficPolicy {
    TrafficPolicy {
        load_balancer: e.load_balancer.clone(),
        connection_pool: e.connection_pool.clone(),
        outlier_detection: e.outlier_detection.clone(),
        tls: e.tls.clone(),
        ..TrafficPolicy::default()
    }
}

/// The top-level policy for `port`: a matching port entry *replaces* it
/// (omitted blocks fall back to defaults, not to the top level; tunnel,
/// proxyProtocol and retryBudget are dropped).
fn for_port(p: &TrafficPolicy, port: u16) -> TrafficPolicy {
    port_entry(p, port).unwrap_or_else(|| TrafficPolicy {
        port_level_settings: Vec::new(),
        ..p.clone()
    })
}

/// The effective policy for traffic to `port` of the DR's host, through
/// `subset` when the route names one. `None` means all defaults.
pub fn effective(dr: &DestinationRule, port: u16, subset: Option<&str>) -> Option<TrafficPolicy> {
    let eff = dr.traffic_policy.as_ref().map(|p| for_port(p, port));
    let sub_policy = subset
        .and_then(|s| dr.subsets.iter().find(|x| x.name.as_deref() == Some(s)))
        .and_then(|s| s.traffic_policy.as_ref());
    let Some(sub) = sub_policy else {
        return eff;
    };
    let (sub, has_port_level) = match port_entry(sub, port) {
        Some(p) => (p, true),
        None => ((**sub).clone(), false),
    };
    let Some(mut out) = eff else {
        return Some(TrafficPolicy {
            port_level_settings: Vec::new(),
            ..sub
        });
    };
    // Whole blocks override; a subset port entry resets the blocks it omits.
    if sub.connection_pool.is_some() || has_port_level {
        out.connection_pool = sub.connection_pool;
    }
    if sub.outlier_detection.is_some() || has_port_level {
        out.outlier_detection = sub.outlier_detection;
    }
    if sub.load_balancer.is_some() || has_port_level {
        out.load_balancer = sub.load_balancer;
    }
    if sub.tls.is_some() || has_port_level {
        out.tls = sub.tls;
    }
    if sub.tunnel.is_some() {
        out.tunnel = sub.tunnel;
    }
    if sub.proxy_protocol.is_some() {
        out.proxy_protocol = sub.proxy_protocol;
    }
    if sub.retry_budget.is_some() {
        out.retry_budget = sub.retry_budget;
    }
    Some(out)
}

/// Settings strait refuses (never silently plaintext): the field and why.
pub fn unsupported_tls(tls: &crate::model::ClientTLSSettings) -> Option<String> {
    if tls.mode == Some(crate::model::ClientTLSMode::IstioMutual) {
        return Some(
            "ISTIO_MUTUAL is not supported yet: strait has no Istio workload certificates; use SIMPLE or MUTUAL with certificate files".into(),
        );
    }
    if tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
    {
        return Some(
            "credentialName is not supported: Kubernetes secrets are not available outside Kubernetes; use caCertificates, clientCertificate and privateKey files".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SimpleLB;
    use serde_json::json;

    fn dr(v: serde_json::Value) -> DestinationRule {
        serde_json::from_value(v).expect("valid DestinationRule spec")
    }

    fn lb(p: &Option<TrafficPolicy>) -> Option<SimpleLB> {
        p.as_ref()?.load_balancer.as_ref()?.simple
    }

    #[test]
    fn port_level_settings_replace_the_top_level_for_that_port() {
        let d = dr(json!({"host": "r", "trafficPolicy": {
            "loadBalancer": {"simple": "RANDOM"},
            "connectionPool": {"tcp": {"maxConnections": 10}},
            "portLevelSettings": [{"port": {"number": 9080}, "loadBalancer": {"simple": "ROUND_ROBIN"}}]}}));
        let p = effective(&d, 9080, None);
        assert_eq!(lb(&p), Some(SimpleLB::RoundRobin));
        assert!(
            p.as_ref().unwrap().connection_pool.is_none(),
            "omitted blocks fall back to defaults, not to the top level"
        );
        let other = effective(&d, 80, None);
        assert_eq!(lb(&other), Some(SimpleLB::Random));
        assert!(other.unwrap().connection_pool.is_some());
    }

    #[test]
    fn subset_policy_overrides_per_whole_block() {
        let d = dr(json!({"host": "r",
            "trafficPolicy": {"loadBalancer": {"simple": "RANDOM", "localityLbSetting": {"enabled": true}},
                              "connectionPool": {"tcp": {"maxConnections": 10}}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"},
                         "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}]}));
        let p = effective(&d, 9080, Some("v1")).unwrap();
        let l = p.load_balancer.as_ref().unwrap();
        assert_eq!(l.simple, Some(SimpleLB::RoundRobin));
        assert!(
            l.locality_lb_setting.is_none(),
            "the subset's block replaces the whole top-level block"
        );
        assert!(
            p.connection_pool.is_some(),
            "blocks the subset leaves out are inherited"
        );
    }

    #[test]
    fn subset_policy_applies_only_when_the_route_names_the_subset() {
        let d = dr(json!({"host": "r",
            "subsets": [{"name": "v1", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}}]}));
        assert_eq!(effective(&d, 9080, None), None);
        assert_eq!(
            lb(&effective(&d, 9080, Some("v1"))),
            Some(SimpleLB::RoundRobin)
        );
    }

    #[test]
    fn subset_port_entry_resets_omitted_blocks() {
        let d = dr(json!({"host": "r",
            "trafficPolicy": {"loadBalancer": {"simple": "RANDOM"}, "connectionPool": {"tcp": {"maxConnections": 10}}},
            "subsets": [{"name": "v1", "trafficPolicy": {"portLevelSettings": [
                {"port": {"number": 9080}, "outlierDetection": {"consecutive5xxErrors": 3}}]}}]}));
        let p = effective(&d, 9080, Some("v1")).unwrap();
        assert!(p.outlier_detection.is_some());
        assert!(
            p.load_balancer.is_none(),
            "a subset port entry resets the blocks it omits"
        );
        assert!(p.connection_pool.is_none());
    }
}
