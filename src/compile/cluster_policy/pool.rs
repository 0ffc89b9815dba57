//! A cluster's connection-pool settings (DestinationRule
//! `trafficPolicy.connectionPool`) with Istio's defaults, built once per
//! cluster.

use std::time::Duration;

use crate::model::{H2UpgradePolicy, TrafficPolicy};

/// Istio's value for every unset circuit-breaker threshold (2^32-1).
pub const UNLIMITED: usize = u32::MAX as usize;
/// Envoy's default upstream idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default HTTP/2 `max_concurrent_streams` (2^31-1).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: usize = i32::MAX as usize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// `tcp.connectTimeout`; also bounds waiting for a pooled connection.
    pub connect_timeout: Duration,
    /// `tcp.maxConnections`: cluster-wide.
    pub max_connections: usize,
    /// `http.http1MaxPendingRequests`: requests waiting for a connection.
    pub max_pending: usize,
    /// `tcp.tcpKeepalive`: `None` leaves SO_KEEPALIVE off.
    pub keepalive: Option<Keepalive>,
    /// `tcp.maxConnectionDuration`.
    pub max_connection_duration: Option<Duration>,
    /// `http.idleTimeout`, else `tcp.idleTimeout`, else 1h; `None` = `0s`.
    pub idle_timeout: Option<Duration>,
    /// `http.maxRequestsPerConnection`: 0 = unlimited.
    pub max_requests_per_connection: u32,
    /// `http.maxConcurrentStreams` (HTTP/2).
    pub max_concurrent_streams: usize,
    /// `http.h2UpgradePolicy: UPGRADE`.
    pub h2_upgrade: bool,
    /// `http.useClientProtocol`.
    pub use_client_protocol: bool,
}

/// SO_KEEPALIVE; unset values use the OS defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keepalive {
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
    pub probes: Option<u32>,
}

/// A limit field: 0, negative or unset means Istio's default.
fn limit(v: Option<i32>, default: usize) -> usize {
    match v {
        Some(n) if n > 0 => n as usize,
        _ => default,
    }
}

fn positive(d: Option<&crate::model::Duration>) -> Option<Duration> {
    d.filter(|d| d.nanos > 0).map(|d| d.as_std())
}

impl PoolSettings {
    /// The settings for a cluster with `policy` (already merged for its
    /// port and subset); `connect_timeout` is the mesh default.
    pub fn from_policy(policy: Option<&TrafficPolicy>, connect_timeout: Duration) -> PoolSettings {
        let cp = policy.and_then(|p| p.connection_pool.as_ref());
        let tcp = cp.and_then(|c| c.tcp.as_ref());
        let http = cp.and_then(|c| c.http.as_ref());
        let idle = match (
            http.and_then(|h| h.idle_timeout.as_ref()),
            tcp.and_then(|t| t.idle_timeout.as_ref()),
        ) {
            (Some(d), _) | (None, Some(d)) => positive(Some(d)),
            (None, None) => Some(DEFAULT_IDLE_TIMEOUT),
        };
        PoolSettings {
            connect_timeout: positive(tcp.and_then(|t| t.connect_timeout.as_ref()))
                .unwrap_or(connect_timeout),
            max_connections: limit(tcp.and_then(|t| t.max_connections), UNLIMITED),
            max_pending: limit(http.and_then(|h| h.http1_max_pending_requests), UNLIMITED),
            keepalive: tcp
                .and_then(|t| t.tcp_keepalive.as_ref())
                .map(|k| Keepalive {
                    time: positive(k.time.as_ref()),
                    interval: positive(k.interval.as_ref()),
                    probes: k.probes.filter(|p| *p > 0),
                }),
            max_connection_duration: positive(tcp.and_then(|t| t.max_connection_duration.as_ref())),
            idle_timeout: idle,
            max_requests_per_connection: limit(http.and_then(|h| h.max_requests_per_connection), 0)
                as u32,
            max_concurrent_streams: limit(
                http.and_then(|h| h.max_concurrent_streams),
                DEFAULT_MAX_CONCURRENT_STREAMS,
            ),
            h2_upgrade: http.and_then(|h| h.h2_upgrade_policy) == Some(H2UpgradePolicy::Upgrade),
            use_client_protocol: http.and_then(|h| h.use_client_protocol) == Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: serde_json::Value) -> PoolSettings {
        let p: TrafficPolicy = serde_json::from_value(v).unwrap();
        PoolSettings::from_policy(Some(&p), Duration::from_secs(10))
    }

    #[test]
    fn defaults_are_istios() {
        let s = PoolSettings::from_policy(None, Duration::from_secs(10));
        assert_eq!(s.connect_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, UNLIMITED);
        assert_eq!(s.max_pending, UNLIMITED);
        assert_eq!(s.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        assert_eq!(s.max_requests_per_connection, 0);
        assert_eq!(s.max_concurrent_streams, DEFAULT_MAX_CONCURRENT_STREAMS);
        assert!(s.keepalive.is_none() && !s.h2_upgrade && !s.use_client_protocol);
    }

    #[test]
    fn fields_map() {
        let s = settings(json!({"connectionPool": {
            "tcp": {"maxConnections": 3, "connectTimeout": "250ms", "maxConnectionDuration": "1m",
                    "tcpKeepalive": {"time": "30s", "probes": 4}, "idleTimeout": "5s"},
            "http": {"http1MaxPendingRequests": 2, "maxRequestsPerConnection": 1,
                     "maxConcurrentStreams": 7, "h2UpgradePolicy": "UPGRADE"}}}));
        assert_eq!(s.connect_timeout, Duration::from_millis(250));
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.max_pending, 2);
        assert_eq!(s.max_connection_duration, Some(Duration::from_secs(60)));
        assert_eq!(
            s.keepalive,
            Some(Keepalive {
                time: Some(Duration::from_secs(30)),
                interval: None,
                probes: Some(4)
            })
        );
        // tcp.idleTimeout applies to HTTP when http.idleTimeout is unset.
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.max_requests_per_connection, 1);
        assert_eq!(s.max_concurrent_streams, 7);
        assert!(s.h2_upgrade);
    }

    #[test]
    fn http_idle_timeout_wins_and_zero_disables() {
        let s = settings(json!({"connectionPool": {
            "tcp": {"idleTimeout": "5s"}, "http": {"idleTimeout": "0s"}}}));
        assert_eq!(s.idle_timeout, None);
        let s = settings(json!({"connectionPool": {"http": {"idleTimeout": "2s"}}}));
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn zero_limits_mean_default() {
        let s = settings(json!({"connectionPool": {
            "tcp": {"maxConnections": 0}, "http": {"http1MaxPendingRequests": 0}}}));
        assert_eq!(s.max_connections, UNLIMITED);
        assert_eq!(s.max_pending, UNLIMITED);
    }
}
