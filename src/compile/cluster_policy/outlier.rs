//! A cluster's outlier-detection settings (Envoy's `DetectorConfig` plus the
//! cluster's `healthy_panic_threshold`), as Istio's `applyOutlierDetection`
//! (pilot `cluster_traffic_policy.go`) and Envoy's defaulting make them
//! from `trafficPolicy.outlierDetection`. The detector is
//! `cluster::outlier`.

use std::time::Duration;

use crate::model::OutlierDetection;

/// Envoy `DEFAULT_CONSECUTIVE_5XX`.
pub const DEFAULT_CONSECUTIVE_5XX: u32 = 5;
/// Envoy `DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE`.
pub const DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE: u32 = 5;
/// Envoy `DEFAULT_INTERVAL_MS`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Envoy `DEFAULT_BASE_EJECTION_TIME_MS`.
pub const DEFAULT_BASE_EJECTION_TIME: Duration = Duration::from_secs(30);
/// Envoy `DEFAULT_MAX_EJECTION_TIME_MS`; Istio never sets `max_ejection_time`.
pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);
/// Envoy `DEFAULT_MAX_EJECTION_PERCENT`.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Envoy's `healthy_panic_threshold` default, used only when Istio leaves the
/// field unset (a negative `minHealthPercent`, which validation rejects).
pub const ENVOY_DEFAULT_PANIC_THRESHOLD: u32 = 50;

/// Effective outlier-detection settings of one cluster (Envoy's
/// `DetectorConfig` plus the cluster's `healthy_panic_threshold`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlierConfig {
    /// `consecutive_5xx`; 0 disables the detector (Istio also sets its
    /// enforcement to 0).
    pub consecutive_5xx: u32,
    /// `consecutive_gateway_failure`; 0 = disabled. When the DR leaves it
    /// unset Envoy still detects at 5 but Istio leaves the enforcement at
    /// Envoy's default 0%, so no host is ever ejected for it: modelled as 0.
    pub consecutive_gateway_errors: u32,
    /// `split_external_local_origin_errors`.
    pub split_external_local_origin_errors: bool,
    /// `consecutive_local_origin_failure`; only used when split.
    pub consecutive_local_origin_failures: u32,
    /// Sweep interval (un-ejection and multiplier decay happen only on sweeps).
    pub interval: Duration,
    /// Ejection time = `min(base × multiplier, max_ejection_time)`.
    pub base_ejection_time: Duration,
    /// Envoy `max_ejection_time`: Istio leaves it unset, so
    /// `max(300s, base_ejection_time)`.
    pub max_ejection_time: Duration,
    /// 0–100.
    pub max_ejection_percent: u32,
    /// Cluster `healthy_panic_threshold`, 0–100; 0 = panic mode never.
    pub min_health_percent: u32,
    /// `outlierDetectionHttpErrorCodes` (Envoy HTTP protocol options
    /// `outlier_detection` matcher). Empty: only 5xx count. Otherwise a
    /// response whose status is listed is reported to the detector as a 500
    /// and every other response as a 200 (envoy#39947 reports a match "as a
    /// 5xx"; 500 rather than the real code is our reading, so a listed 503
    /// does not count toward consecutiveGatewayErrors).
    pub http_error_codes: Vec<u16>,
}

impl Default for OutlierConfig {
    /// The effective config of an empty `outlierDetection: {}` block.
    fn default() -> Self {
        OutlierConfig {
            consecutive_5xx: DEFAULT_CONSECUTIVE_5XX,
            consecutive_gateway_errors: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failures: DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE,
            interval: DEFAULT_INTERVAL,
            base_ejection_time: DEFAULT_BASE_EJECTION_TIME,
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
            max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
            min_health_percent: 0,
            http_error_codes: Vec::new(),
        }
    }
}

/// Envoy reads durations as whole milliseconds (`PROTOBUF_GET_MS_OR_DEFAULT`).
fn millis(d: &crate::model::Duration) -> Duration {
    Duration::from_millis((d.nanos.max(0) / 1_000_000) as u64)
}

impl OutlierConfig {
    /// Istio's `applyOutlierDetection` followed by Envoy's defaulting. Call
    /// only when the `outlierDetection` block is present: without it there
    /// is no detector at all.
    pub fn from_istio(od: &OutlierDetection) -> OutlierConfig {
        let d = OutlierConfig::default();
        let split = od.split_external_local_origin_errors.unwrap_or(false);
        // Istio copies interval/baseEjectionTime only when set; validation
        // requires ≥ 1ms, the clamp only keeps the sweep loop finite.
        let interval = od
            .interval
            .as_ref()
            .map(millis)
            .unwrap_or(d.interval)
            .max(Duration::from_millis(1));
        let base_ejection_time = od
            .base_ejection_time
            .as_ref()
            .map(millis)
            .unwrap_or(d.base_ejection_time)
            .max(Duration::from_millis(1));
        OutlierConfig {
            consecutive_5xx: od.consecutive_5xx_errors.unwrap_or(d.consecutive_5xx),
            consecutive_gateway_errors: od.consecutive_gateway_errors.unwrap_or(0),
            split_external_local_origin_errors: split,
            // Istio sets it only when split and > 0; otherwise Envoy's 5.
            consecutive_local_origin_failures: match od.consecutive_local_origin_failures {
                Some(n) if split && n > 0 => n,
                _ => DEFAULT_CONSECUTIVE_LOCAL_ORIGIN_FAILURE,
            },
            interval,
            base_ejection_time,
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME.max(base_ejection_time),
            // Istio sets it only when > 0; Envoy caps at 100.
            max_ejection_percent: match od.max_ejection_percent {
                Some(p) if p > 0 => (p as u32).min(100),
                _ => d.max_ejection_percent,
            },
            // Istio sets healthy_panic_threshold whenever minHealthPercent
            // ≥ 0 (unset reads as 0); a negative value leaves Envoy's 50.
            min_health_percent: match od.min_health_percent {
                None => 0,
                Some(p) if p >= 0 => (p as u32).min(100),
                Some(_) => ENVOY_DEFAULT_PANIC_THRESHOLD,
            },
            http_error_codes: {
                let mut codes: Vec<u16> = od
                    .outlier_detection_http_error_codes
                    .iter()
                    .filter_map(|&c| u16::try_from(c).ok())
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                codes
            },
        }
    }

    /// Ejection time for a host whose multiplier (Envoy `ejectTimeBackoff`)
    /// is `multiplier`.
    pub fn ejection_time(&self, multiplier: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(multiplier)
            .min(self.max_ejection_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dur(text: &str) -> Option<crate::model::Duration> {
        Some(crate::model::Duration::parse(text).unwrap())
    }

    #[test]
    fn empty_block_takes_envoy_defaults_and_istio_panic_threshold_zero() {
        let c = OutlierConfig::from_istio(&OutlierDetection::default());
        assert_eq!(c.consecutive_5xx, 5);
        assert_eq!(c.consecutive_gateway_errors, 0);
        assert!(!c.split_external_local_origin_errors);
        assert_eq!(c.consecutive_local_origin_failures, 5);
        assert_eq!(c.interval, Duration::from_secs(10));
        assert_eq!(c.base_ejection_time, Duration::from_secs(30));
        assert_eq!(c.max_ejection_time, Duration::from_secs(300));
        assert_eq!(c.max_ejection_percent, 10);
        assert_eq!(c.min_health_percent, 0);
        assert!(c.http_error_codes.is_empty());
        assert_eq!(c, OutlierConfig::default());
    }

    #[test]
    fn istio_mapping_quirks() {
        let od = OutlierDetection {
            consecutive_5xx_errors: Some(0),
            consecutive_gateway_errors: Some(3),
            split_external_local_origin_errors: Some(true),
            consecutive_local_origin_failures: Some(0),
            interval: dur("1.5s"),
            base_ejection_time: dur("400s"),
            max_ejection_percent: Some(0),
            min_health_percent: Some(40),
            outlier_detection_http_error_codes: vec![503, 429, 429],
            ..Default::default()
        };
        let c = OutlierConfig::from_istio(&od);
        assert_eq!(c.consecutive_5xx, 0);
        assert_eq!(c.consecutive_gateway_errors, 3);
        // Istio only copies consecutiveLocalOriginFailures when > 0.
        assert_eq!(c.consecutive_local_origin_failures, 5);
        assert_eq!(c.interval, Duration::from_millis(1500));
        // max_ejection_time defaults to max(300s, base).
        assert_eq!(c.max_ejection_time, Duration::from_secs(400));
        // maxEjectionPercent 0 is "unset" for Istio.
        assert_eq!(c.max_ejection_percent, 10);
        assert_eq!(c.min_health_percent, 40);
        assert_eq!(c.http_error_codes, vec![429, 503]);
    }

    #[test]
    fn ejection_time_is_capped_by_max_ejection_time() {
        let c = OutlierConfig::default();
        assert_eq!(c.ejection_time(1), Duration::from_secs(30));
        assert_eq!(c.ejection_time(2), Duration::from_secs(60));
        assert_eq!(c.ejection_time(11), Duration::from_secs(300));
    }
}
