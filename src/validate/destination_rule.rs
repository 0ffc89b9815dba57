//! DestinationRule validation: Istio's `ValidateDestinationRule`
//! (`pkg/config/validation/validation.go`), `ValidateTLS` and
//! `ValidateLocalityLbSetting` (`pkg/config/validation/agent/validation.go`),
//! plus the CRD schema rules (durations ≥ 1ms, ranges, maxItems, oneofs).

use std::collections::BTreeSet;

use super::{Finding, common};
use crate::config::Resource;
use crate::model::{
    ClientTLSMode, ClientTLSSettings, ConnectionPoolSettings, ConsistentHashLB, DestinationRule,
    Duration, H2UpgradePolicy, LoadBalancerSettings, LocalityFailover, LocalityLoadBalancerSetting,
    OutlierDetection, PortTrafficPolicy, RetryBudget, Subset, TrafficPolicy, TunnelSettings,
    WarmupConfiguration, ZoneAwareLoadBalancerSetting, names,
};

/// CRD `portLevelSettings` maxItems.
const MAX_PORT_LEVEL_SETTINGS: usize = 4096;
/// CRD `workloadSelector.matchLabels` maxProperties.
const MAX_SELECTOR_LABELS: usize = 4096;
/// Topology labels that cannot be combined with `failover` (`pilot/pkg/serviceregistry/util/label`).
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// `ValidateDestinationRule`.
pub fn validate(r: &Resource<DestinationRule>) -> Vec<Finding> {
    let spec = &r.spec;
    let ns = r.namespace();
    let mut out = Vec::new();

    host("spec.host", spec.host.as_deref().unwrap_or(""), &mut out);
    if let Some(tp) = &spec.traffic_policy {
        traffic_policy("spec.trafficPolicy", tp, ns, &mut out);
    }
    subsets(&spec.subsets, ns, &mut out);
    common::export_to(
        "spec.exportTo",
        &spec.export_to,
        ns,
        false,
        spec.workload_selector.is_some(),
        &mut out,
    );
    if let Some(sel) = &spec.workload_selector {
        workload_selector("spec.workloadSelector.matchLabels", sel, &mut out);
    }
    out
}

/// `agent.ValidateWildcardDomain(rule.Host)`.
fn host(path: &str, h: &str, out: &mut Vec<Finding>) {
    if let Err(e) = names::validate_wildcard_domain(h) {
        out.push(Finding::error(
            path,
            format!("{e}; use a service name, an FQDN or a wildcard such as *.example.com"),
        ));
    }
}

/// Subset loop of `ValidateDestinationRule` and `validateSubset`.
fn subsets(subsets: &[Subset], ns: &str, out: &mut Vec<Finding>) {
    let mut seen = BTreeSet::new();
    for (i, s) in subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        let name = s.name.as_deref().unwrap_or("");
        if !seen.insert(name) {
            out.push(Finding::error(
                format!("{path}.name"),
                format!("duplicate subset names: {name}; give every subset a distinct name"),
            ));
        }
        subset_name(&format!("{path}.name"), name, out);
        for e in names::label_errors(&s.labels) {
            out.push(Finding::error(format!("{path}.labels"), e));
        }
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(&format!("{path}.trafficPolicy"), tp, ns, out);
        }
    }
}

/// `validateSubsetName`.
fn subset_name(path: &str, name: &str, out: &mut Vec<Finding>) {
    if name.is_empty() {
        out.push(Finding::error(path, "subset name cannot be empty"));
    } else if !names::is_dns1123_label(name) {
        out.push(Finding::error(
            path,
            format!(
                "subset name is invalid: {name}; use a DNS label (letters, digits and '-', at most 63 characters)"
            ),
        ));
    }
}

/// `validateTrafficPolicy`.
fn traffic_policy(path: &str, tp: &TrafficPolicy, ns: &str, out: &mut Vec<Finding>) {
    if tp.outlier_detection.is_none()
        && tp.connection_pool.is_none()
        && tp.load_balancer.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none()
    {
        out.push(Finding::error(
            path,
            "traffic policy must have at least one field; remove the empty trafficPolicy",
        ));
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        out.push(Finding::error(
            path,
            "tunnel and proxyProtocol must not be set together",
        ));
        return;
    }
    if let Some(od) = &tp.outlier_detection {
        outlier_detection(&format!("{path}.outlierDetection"), od, out);
    }
    if let Some(cp) = &tp.connection_pool {
        connection_pool(&format!("{path}.connectionPool"), cp, out);
    }
    if let Some(lb) = &tp.load_balancer {
        load_balancer(
            &format!("{path}.loadBalancer"),
            lb,
            tp.outlier_detection.as_deref(),
            out,
        );
    }
    if let Some(tls) = &tp.tls {
        client_tls(&format!("{path}.tls"), tls, ns, out);
    }
    port_traffic_policies(
        &format!("{path}.portLevelSettings"),
        &tp.port_level_settings,
        ns,
        out,
    );
    if let Some(t) = &tp.tunnel {
        tunnel(&format!("{path}.tunnel"), t, out);
    }
    if let Some(rb) = &tp.retry_budget {
        retry_budget(&format!("{path}.retryBudget"), rb, out);
    }
}

/// `validatePortTrafficPolicies` plus the CRD maxItems.
fn port_traffic_policies(path: &str, pls: &[PortTrafficPolicy], ns: &str, out: &mut Vec<Finding>) {
    if pls.len() > MAX_PORT_LEVEL_SETTINGS {
        out.push(Finding::error(
            path,
            format!(
                "portLevelSettings has {} entries, at most {MAX_PORT_LEVEL_SETTINGS} are allowed",
                pls.len()
            ),
        ));
    }
    for (i, p) in pls.iter().enumerate() {
        let path = format!("{path}[{i}]");
        match &p.port {
            None => out.push(Finding::error(
                format!("{path}.port"),
                "portTrafficPolicy must have valid port; set port.number",
            )),
            Some(sel) => match sel.number {
                None | Some(0) => out.push(Finding::error(
                    format!("{path}.port.number"),
                    "portTrafficPolicy must have valid port; set port.number",
                )),
                n => common::port(&format!("{path}.port.number"), n, out),
            },
        }
        if p.outlier_detection.is_none()
            && p.connection_pool.is_none()
            && p.load_balancer.is_none()
            && p.tls.is_none()
        {
            out.push(Finding::error(
                &path,
                "port traffic policy must have at least one field: loadBalancer, connectionPool, outlierDetection or tls",
            ));
            continue;
        }
        if let Some(od) = &p.outlier_detection {
            outlier_detection(&format!("{path}.outlierDetection"), od, out);
        }
        if let Some(cp) = &p.connection_pool {
            connection_pool(&format!("{path}.connectionPool"), cp, out);
        }
        if let Some(lb) = &p.load_balancer {
            load_balancer(
                &format!("{path}.loadBalancer"),
                lb,
                p.outlier_detection.as_deref(),
                out,
            );
        }
        if let Some(tls) = &p.tls {
            client_tls(&format!("{path}.tls"), tls, ns, out);
        }
    }
}

/// `validateTunnelSettings`.
fn tunnel(path: &str, t: &TunnelSettings, out: &mut Vec<Finding>) {
    if let Some(p) = t.protocol.as_deref()
        && !p.is_empty()
        && p != "CONNECT"
        && p != "POST"
    {
        out.push(Finding::error(
            format!("{path}.protocol"),
            "tunnel protocol must be \"CONNECT\" or \"POST\"",
        ));
    }
    let target = t.target_host.as_deref().unwrap_or("");
    if let Err(fqdn) = names::validate_fqdn(target)
        && !names::is_ip(target)
    {
        out.push(Finding::error(
            format!("{path}.targetHost"),
            format!(
                "tunnel target host must be valid FQDN or IP address: {fqdn}; {target} is not a valid IP"
            ),
        ));
    }
    if let Err(e) = names::validate_port(t.target_port.unwrap_or(0)) {
        out.push(Finding::error(
            format!("{path}.targetPort"),
            format!("tunnel target port is invalid: {e}"),
        ));
    }
}

/// `RetryBudget`: CRD range of `percent`, duration of `budgetInterval` (0 allowed).
fn retry_budget(path: &str, rb: &RetryBudget, out: &mut Vec<Finding>) {
    if let Some(p) = rb.percent
        && !(0.0..=100.0).contains(&p)
    {
        out.push(Finding::error(
            format!("{path}.percent"),
            format!("percentage {p} is not in range 0..100"),
        ));
    }
    if let Some(d) = &rb.budget_interval
        && d.nanos < 0
    {
        out.push(Finding::error(
            format!("{path}.budgetInterval"),
            format!("duration must not be negative (got {})", d.text),
        ));
    }
}

/// `validateOutlierDetection` plus the CRD range of the HTTP error codes.
fn outlier_detection(path: &str, od: &OutlierDetection, out: &mut Vec<Finding>) {
    common::duration(
        &format!("{path}.baseEjectionTime"),
        od.base_ejection_time.as_ref(),
        out,
    );
    if od.consecutive_errors.is_some_and(|n| n != 0) {
        out.push(Finding::warning(
            format!("{path}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        ));
    }
    if od.split_external_local_origin_errors != Some(true)
        && od.consecutive_local_origin_failures.is_some_and(|n| n > 0)
    {
        out.push(Finding::error(
            format!("{path}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false; set splitExternalLocalOriginErrors: true",
        ));
    }
    common::duration(&format!("{path}.interval"), od.interval.as_ref(), out);
    percent(
        &format!("{path}.maxEjectionPercent"),
        od.max_ejection_percent,
        out,
    );
    percent(
        &format!("{path}.minHealthPercent"),
        od.min_health_percent,
        out,
    );
    for (i, c) in od.outlier_detection_http_error_codes.iter().enumerate() {
        if !(100..=599).contains(c) {
            out.push(Finding::error(
                format!("{path}.outlierDetectionHttpErrorCodes[{i}]"),
                format!("HTTP status code {c} must be in the range 100..599"),
            ));
        }
    }
}

/// `ValidatePercent`.
fn percent(path: &str, v: Option<i32>, out: &mut Vec<Finding>) {
    if let Some(v) = v
        && !(0..=100).contains(&v)
    {
        out.push(Finding::error(
            path,
            format!("percentage {v} is not in range 0..100"),
        ));
    }
}

/// `validateConnectionPool` (shared with the Sidecar's inbound pools).
pub(super) fn connection_pool(path: &str, cp: &ConnectionPoolSettings, out: &mut Vec<Finding>) {
    if cp.http.is_none() && cp.tcp.is_none() {
        out.push(Finding::error(
            path,
            "connection pool must have at least one field: tcp or http",
        ));
        return;
    }
    if let Some(h) = &cp.http {
        let p = format!("{path}.http");
        non_negative(
            &format!("{p}.http1MaxPendingRequests"),
            h.http1_max_pending_requests,
            "http1 max pending requests",
            out,
        );
        non_negative(
            &format!("{p}.http2MaxRequests"),
            h.http2_max_requests,
            "http2 max requests",
            out,
        );
        non_negative(
            &format!("{p}.maxRequestsPerConnection"),
            h.max_requests_per_connection,
            "max requests per connection",
            out,
        );
        non_negative(
            &format!("{p}.maxRetries"),
            h.max_retries,
            "max retries",
            out,
        );
        common::duration(&format!("{p}.idleTimeout"), h.idle_timeout.as_ref(), out);
        if h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && h.use_client_protocol == Some(true)
        {
            out.push(Finding::error(
                format!("{p}.useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            ));
        }
        non_negative(
            &format!("{p}.maxConcurrentStreams"),
            h.max_concurrent_streams,
            "max concurrent streams",
            out,
        );
        if let Some(ka) = &h.http2_keep_alive {
            let kp = format!("{p}.http2KeepAlive");
            required_duration(
                &format!("{kp}.interval"),
                ka.interval.as_ref(),
                "http2 keepalive interval is required",
                out,
            );
            required_duration(
                &format!("{kp}.timeout"),
                ka.timeout.as_ref(),
                "http2 keepalive timeout is required",
                out,
            );
        }
    }
    if let Some(t) = &cp.tcp {
        let p = format!("{path}.tcp");
        non_negative(
            &format!("{p}.maxConnections"),
            t.max_connections,
            "max connections",
            out,
        );
        common::duration(
            &format!("{p}.connectTimeout"),
            t.connect_timeout.as_ref(),
            out,
        );
        common::duration(
            &format!("{p}.maxConnectionDuration"),
            t.max_connection_duration.as_ref(),
            out,
        );
        // `0s` disables the idle timeout; anything else is a normal duration.
        if let Some(d) = &t.idle_timeout
            && d.nanos != 0
        {
            common::duration(&format!("{p}.idleTimeout"), Some(d), out);
        }
        if let Some(ka) = &t.tcp_keepalive {
            common::duration(&format!("{p}.tcpKeepalive.time"), ka.time.as_ref(), out);
            common::duration(
                &format!("{p}.tcpKeepalive.interval"),
                ka.interval.as_ref(),
                out,
            );
        }
    }
}

fn non_negative(path: &str, v: Option<i32>, what: &str, out: &mut Vec<Finding>) {
    if v.is_some_and(|v| v < 0) {
        out.push(Finding::error(path, format!("{what} must be non-negative")));
    }
}

fn required_duration(path: &str, d: Option<&Duration>, missing: &str, out: &mut Vec<Finding>) {
    match d {
        None => out.push(Finding::error(path, missing)),
        Some(d) => common::duration(path, Some(d), out),
    }
}

/// `validateLoadBalancer` plus the CRD oneofs and warmup/zone-aware rules.
fn load_balancer(
    path: &str,
    lb: &LoadBalancerSettings,
    outlier: Option<&OutlierDetection>,
    out: &mut Vec<Finding>,
) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        out.push(Finding::error(
            path,
            "only one of simple or consistentHash can be set",
        ));
    }
    if let Some(ch) = &lb.consistent_hash {
        consistent_hash(&format!("{path}.consistentHash"), ch, out);
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        out.push(Finding::error(
            path,
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
        ));
    }
    if let Some(l) = &lb.locality_lb_setting {
        locality_lb(&format!("{path}.localityLbSetting"), l, outlier, out);
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        zone_aware_lb(&format!("{path}.zoneAwareLbSetting"), z, outlier, out);
    }
    common::duration(
        &format!("{path}.warmupDurationSecs"),
        lb.warmup_duration_secs.as_ref(),
        out,
    );
    if lb.warmup_duration_secs.is_some() && lb.warmup.is_some() {
        out.push(Finding::error(
            path,
            "only one of warmupDurationSecs and warmup can be set; warmupDurationSecs is deprecated, keep warmup",
        ));
    }
    if let Some(w) = &lb.warmup {
        warmup(&format!("{path}.warmup"), w, out);
    }
}

/// The consistent-hash part of `validateLoadBalancer`.
fn consistent_hash(path: &str, ch: &ConsistentHashLB, out: &mut Vec<Finding>) {
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|b| **b).count() > 1 {
        out.push(Finding::error(
            path,
            "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName can be set",
        ));
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        out.push(Finding::error(
            path,
            "only one of ringHash or maglev can be set",
        ));
    }
    if let Some(c) = &ch.http_cookie {
        let cp = format!("{path}.httpCookie");
        if c.name.as_deref().unwrap_or("").is_empty() {
            out.push(Finding::error(
                format!("{cp}.name"),
                "name required for HttpCookie",
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, a) in c.attributes.iter().enumerate() {
            let name = a.name.as_deref().unwrap_or("");
            let ap = format!("{cp}.attributes[{i}].name");
            if name.is_empty() {
                out.push(Finding::error(ap, "cookie attribute name cannot be empty"));
            } else if !seen.insert(name) {
                out.push(Finding::error(
                    ap,
                    format!("duplicate cookie attribute name: {name}"),
                ));
            }
        }
    }
    if ch.minimum_ring_size.is_some_and(|n| n != 0) {
        let mp = format!("{path}.minimumRingSize");
        out.push(Finding::warning(
            &mp,
            "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
        ));
        if ch.ring_hash.is_some() || ch.maglev.is_some() {
            out.push(Finding::error(
                mp,
                "only one of MinimumRingSize or Maglev/Ringhash can be specified",
            ));
        }
    }
    if let Some(m) = &ch.maglev {
        let tp = format!("{path}.maglev.tableSize");
        let size = m.table_size.unwrap_or(0);
        if size == 0 {
            out.push(Finding::error(&tp, "tableSize must be set for maglev"));
        }
        if size >= 5_000_011 {
            out.push(Finding::error(
                &tp,
                "tableSize must be less than 5000011 for maglev",
            ));
        }
        if !is_prime(size) {
            out.push(Finding::error(
                &tp,
                "tableSize must be a prime number for maglev (e.g. 65537)",
            ));
        }
    }
}

/// `isPrime`, copied by Istio from Envoy (note: 0 is "prime" here, 1 too).
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3u64;
    while f.saturating_mul(f) <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// `agent.ValidateLocalityLbSetting`.
fn locality_lb(
    path: &str,
    lb: &LocalityLoadBalancerSetting,
    outlier: Option<&OutlierDetection>,
    out: &mut Vec<Finding>,
) {
    if !lb.distribute.is_empty() && !lb.failover.is_empty() {
        out.push(Finding::error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        ));
        return;
    }
    if !lb.failover.is_empty()
        && let Some(l) = lb
            .failover_priority
            .iter()
            .find(|l| TOPOLOGY_LABELS.contains(&l.as_str()))
    {
        out.push(Finding::error(
            format!("{path}.failoverPriority"),
            format!(
                "can not simultaneously set 'failover' and topology label '{l}' in 'failover_priority'"
            ),
        ));
        return;
    }
    let mut srcs = Vec::new();
    for (i, d) in lb.distribute.iter().enumerate() {
        let dp = format!("{path}.distribute[{i}]");
        srcs.push(d.from.clone().unwrap_or_default());
        let mut total: u64 = 0;
        if d.to.values().any(|w| !(1..=100).contains(w)) {
            out.push(Finding::error(
                format!("{dp}.to"),
                "locality weight must be in range [1, 100]",
            ));
            return;
        }
        for w in d.to.values() {
            total += u64::from(*w);
        }
        if total != 100 {
            out.push(Finding::error(
                format!("{dp}.to"),
                format!(
                    "total locality weight {total} != 100; the weights of one 'to' must sum to 100"
                ),
            ));
            return;
        }
        let dests: Vec<String> = d.to.keys().cloned().collect();
        if let Err(e) = localities(&dests) {
            out.push(Finding::error(format!("{dp}.to"), e));
        }
    }
    if let Err(e) = localities(&srcs) {
        out.push(Finding::error(format!("{path}.distribute"), e));
    }
    if (!lb.failover.is_empty() || !lb.failover_priority.is_empty()) && outlier.is_none() {
        out.push(Finding::warning(
            path,
            "outlier detection policy must be provided for failover; add trafficPolicy.outlierDetection",
        ));
    }
    failovers(&format!("{path}.failover"), &lb.failover, out);
}

/// The failover loop of `ValidateLocalityLbSetting`.
fn failovers(path: &str, fs: &[LocalityFailover], out: &mut Vec<Finding>) {
    for (i, f) in fs.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let from = f.from.as_deref().unwrap_or("");
        let to = f.to.as_deref().unwrap_or("");
        if from == to {
            out.push(Finding::error(
                &p,
                "locality lb failover settings must specify different regions",
            ));
        }
        if from.contains('/') || to.contains('/') {
            out.push(Finding::error(
                &p,
                "locality lb failover only specify region",
            ));
        }
        if from.contains('*') || to.contains('*') {
            out.push(Finding::error(
                &p,
                "locality lb failover region should not contain '*' wildcard",
            ));
        }
    }
}

/// `validateLocalities`: at most one trailing `*`, no empty segment, no overlap.
fn localities(locs: &[String]) -> Result<(), String> {
    // Each accepted locality as (region, zone, subzone) with "*" for "all".
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for loc in locs {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Err(format!(
                "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.iter().any(|(r, _, _)| r == "*") {
            return Err(format!(
                "locality {loc} overlap with previous specified ones"
            ));
        }
        let items: Vec<&str> = loc.splitn(3, '/').collect();
        if items.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "locality {loc} must not contain empty region/zone/subzone info"
            ));
        }
        let region = items.first().copied().unwrap_or("").to_string();
        let zone = items.get(1).copied().unwrap_or("*").to_string();
        let sub = items.get(2).copied().unwrap_or("*").to_string();
        let overlap = seen.iter().any(|(r, z, s)| {
            r == &region
                && match items.len() {
                    1 => true,
                    2 => z == "*" || z == &zone,
                    _ => z == "*" || (z == &zone && (s == "*" || s == &sub)),
                }
        });
        if overlap {
            return Err(format!(
                "locality {loc} overlap with previous specified ones"
            ));
        }
        seen.push((region, zone, sub));
    }
    Ok(())
}

/// `ZoneAwareLoadBalancerSetting`: no topology labels in failoverPriority,
/// failover rules as for locality, CRD `minClusterSize >= 1`.
fn zone_aware_lb(
    path: &str,
    z: &ZoneAwareLoadBalancerSetting,
    outlier: Option<&OutlierDetection>,
    out: &mut Vec<Finding>,
) {
    for (i, l) in z.failover_priority.iter().enumerate() {
        if TOPOLOGY_LABELS.contains(&l.as_str()) {
            out.push(Finding::error(
                format!("{path}.failoverPriority[{i}]"),
                format!(
                    "zone aware lb failoverPriority can not contain topology label '{l}'; locality is already taken into account"
                ),
            ));
        }
    }
    failovers(&format!("{path}.failover"), &z.failover, out);
    if (!z.failover.is_empty() || !z.failover_priority.is_empty()) && outlier.is_none() {
        out.push(Finding::warning(
            path,
            "outlier detection policy must be provided for failover; add trafficPolicy.outlierDetection",
        ));
    }
    if z.min_cluster_size == Some(0) {
        out.push(Finding::error(
            format!("{path}.minClusterSize"),
            "minClusterSize must be at least 1",
        ));
    }
}

/// `WarmupConfiguration`.
fn warmup(path: &str, w: &WarmupConfiguration, out: &mut Vec<Finding>) {
    required_duration(
        &format!("{path}.duration"),
        w.duration.as_ref(),
        "duration is required",
        out,
    );
    if let Some(p) = w.minimum_percent {
        if p > 100.0 {
            out.push(Finding::error(
                format!("{path}.minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
            ));
        } else if p < 0.0 {
            out.push(Finding::error(
                format!("{path}.minimumPercent"),
                "minimumPercent value should be greater than or equal to 0",
            ));
        }
    }
    if w.aggression.is_some_and(|a| a <= 0.0 || a.is_nan()) {
        out.push(Finding::error(
            format!("{path}.aggression"),
            "aggression should be greater than 0",
        ));
    }
}

/// `agent.ValidateTLS` (client side).
fn client_tls(path: &str, tls: &ClientTLSSettings, ns: &str, out: &mut Vec<Finding>) {
    let cred = tls.credential_name.as_deref().unwrap_or("");
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let mode = tls.mode.unwrap_or_default();

    if let Some(rest) = cred.strip_prefix("configmap://") {
        configmap_credential(&format!("{path}.credentialName"), rest, ns, out);
    }
    if tls.insecure_skip_verify == Some(true) {
        let sans = !tls.subject_alt_names.is_empty();
        if mode == ClientTLSMode::Simple && (set(&tls.ca_certificates) || !cred.is_empty() || sans)
        {
            out.push(Finding::error(
                format!("{path}.insecureSkipVerify"),
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            ));
        }
        if mode == ClientTLSMode::Mutual && (set(&tls.ca_certificates) || sans) {
            out.push(Finding::error(
                format!("{path}.insecureSkipVerify"),
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            ));
        }
    }
    if matches!(mode, ClientTLSMode::Simple | ClientTLSMode::Mutual) && !cred.is_empty() {
        if set(&tls.client_certificate)
            || set(&tls.ca_certificates)
            || set(&tls.private_key)
            || set(&tls.ca_crl)
        {
            out.push(Finding::error(
                format!("{path}.credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            ));
        }
        return;
    }
    if mode == ClientTLSMode::Mutual {
        if !set(&tls.client_certificate) {
            out.push(Finding::error(
                format!("{path}.clientCertificate"),
                "client certificate required for mutual tls; set clientCertificate or credentialName",
            ));
        }
        if !set(&tls.private_key) {
            out.push(Finding::error(
                format!("{path}.privateKey"),
                "private key required for mutual tls; set privateKey or credentialName",
            ));
        }
    }
}

/// The `configmap://` branch of `ValidateTLS` (`credentials.ParseResourceName`).
fn configmap_credential(path: &str, rest: &str, ns: &str, out: &mut Vec<Finding>) {
    let (cm_ns, name) = match rest.split_once('/') {
        Some((n, name)) => (n, name),
        None => (ns, rest),
    };
    if name.is_empty() || cm_ns.is_empty() || name.contains('/') {
        out.push(Finding::error(
            path,
            format!(
                "invalid configmap:// credentialName: invalid resource name \"configmap://{rest}\""
            ),
        ));
    } else if cm_ns != ns || ns.is_empty() {
        out.push(Finding::error(
            path,
            format!(
                "invalid configmap:// credentialName: namespace must match the configuration namespace {}",
                names::go_quote(ns)
            ),
        ));
    }
}

/// `validateWorkloadSelector` (`matchLabels`) plus the CRD limits.
fn workload_selector(path: &str, sel: &crate::model::MatchLabelsSelector, out: &mut Vec<Finding>) {
    common::workload_selector(path, &sel.match_labels, "DestinationRule", out);
    if sel.match_labels.len() > MAX_SELECTOR_LABELS {
        out.push(Finding::error(
            path,
            format!("matchLabels has more than {MAX_SELECTOR_LABELS} entries"),
        ));
    }
    for (k, v) in &sel.match_labels {
        if v.len() > names::DNS1123_LABEL_MAX_LENGTH {
            out.push(Finding::error(
                format!("{path}.{k}"),
                format!(
                    "invalid tag value: {} (value is too long, at most 63 characters)",
                    names::go_quote(v)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
