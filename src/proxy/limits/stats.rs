//! The downstream counters.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

/// Downstream counters, named as Istio exports Envoy's.
#[derive(Debug, Clone, Default)]
pub struct DownstreamStats {
    pub cx_active: Gauge,
    pub cx_overflow: Counter,
    pub cx_overload_reject: Counter,
    pub cx_idle_timeout: Counter,
    pub rq_header_timeout: Counter,
    pub rq_idle_timeout: Counter,
    pub rq_overload_close: Counter,
    pub overload_active: Gauge,
    pub pre_cx_timeout: Counter,
}

impl DownstreamStats {
    /// Count a connection the watchdog ends, by why.
    pub fn count_expired(&self, why: super::Expired) {
        match why {
            super::Expired::Idle => self.cx_idle_timeout.inc(),
            super::Expired::NoRequest => self.rq_header_timeout.inc(),
            super::Expired::StreamsIdle => self.rq_idle_timeout.inc(),
        };
    }

    pub fn register(&self, metrics: &mut crate::metrics::Metrics) {
        let m = metrics;
        m.register(
            "envoy_http_downstream_cx_active",
            "Open downstream connections",
            self.cx_active.clone(),
        );
        m.register(
            "envoy_listener_downstream_cx_overflow",
            "Downstream connections closed at accept: --max-connections reached",
            self.cx_overflow.clone(),
        );
        m.register(
            "envoy_listener_downstream_cx_overload_reject",
            "Downstream connections closed at accept: over --memory-limit",
            self.cx_overload_reject.clone(),
        );
        m.register(
            "envoy_http_downstream_cx_idle_timeout",
            "Downstream connections closed by --idle-timeout",
            self.cx_idle_timeout.clone(),
        );
        m.register(
            "envoy_http_downstream_rq_header_timeout",
            "Downstream connections closed by --request-headers-timeout",
            self.rq_header_timeout.clone(),
        );
        m.register(
            "envoy_http_downstream_rq_idle_timeout",
            "Requests ended by --stream-idle-timeout",
            self.rq_idle_timeout.clone(),
        );
        m.register(
            "envoy_http_downstream_rq_overload_close",
            "Requests shed with 503 over --memory-limit",
            self.rq_overload_close.clone(),
        );
        m.register(
            "envoy_listener_downstream_pre_cx_timeout",
            "Connections closed before a TLS ClientHello arrived (listener filters timeout)",
            self.pre_cx_timeout.clone(),
        );
        m.register(
            "envoy_overload_stop_accepting_requests_active",
            "1 while the overload guard sheds requests and refuses connections",
            self.overload_active.clone(),
        );
    }
}
