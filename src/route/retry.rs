//! Retry policy as Istio builds it for Envoy
//! (`pilot/pkg/networking/core/route/retry/retry.go`, current Istio: the
//! default retriable status codes are empty since 1.24, so an upstream 503 is
//! not retried by default).

use std::time::Duration;

use crate::model::HTTPRetry;

/// Which failures a retry is allowed for (Envoy `retry_on` tokens).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub five_xx: bool,
    pub gateway_error: bool,
    pub reset: bool,
    pub reset_before_request: bool,
    pub connect_failure: bool,
    pub retriable_4xx: bool,
    pub refused_stream: bool,
    pub retriable_status_codes: bool,
    pub grpc_cancelled: bool,
    pub grpc_deadline_exceeded: bool,
    pub grpc_internal: bool,
    pub grpc_resource_exhausted: bool,
    pub grpc_unavailable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (`attempts`).
    pub num_retries: u32,
    pub retry_on: RetryOn,
    pub retriable_status_codes: Vec<u16>,
    pub per_try_timeout: Option<Duration>,
    /// Envoy's `retry_back_off.base_interval` (default 25ms); the cap is 10×.
    pub base_interval: Duration,
    /// `previous_hosts` predicate: prefer hosts not tried yet.
    pub avoid_previous_hosts: bool,
    /// `host_selection_retry_max_attempts`.
    pub host_selection_attempts: u32,
    /// The `retryOn` text Envoy gets, for `explain`.
    pub retry_on_text: String,
}

const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

impl RetryPolicy {
    /// Istio's `DefaultPolicy()`: 2 retries on connect-failure, refused-stream,
    /// unavailable, cancelled and retriable-status-codes (none), previous-hosts.
    pub fn istio_default() -> RetryPolicy {
        RetryPolicy {
            num_retries: 2,
            retry_on: parse_retry_on(DEFAULT_RETRY_ON).0,
            retriable_status_codes: Vec::new(),
            per_try_timeout: None,
            base_interval: Duration::from_millis(25),
            avoid_previous_hosts: true,
            host_selection_attempts: 5,
            retry_on_text: DEFAULT_RETRY_ON.to_string(),
        }
    }

    /// Istio's `ConvertPolicy`: `None` means retries are disabled
    /// (`attempts: 0`). `consistent_hash` drops the previous-hosts default.
    pub fn from_istio(retries: Option<&HTTPRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
        let mut out = RetryPolicy::istio_default();
        if consistent_hash {
            out.avoid_previous_hosts = false;
        }
        let Some(r) = retries else {
            return Some(out);
        };
        let attempts = r.attempts.unwrap_or(0);
        if attempts <= 0 {
            return None;
        }
        out.num_retries = attempts as u32;
        if let Some(text) = r.retry_on.as_deref().filter(|s| !s.is_empty()) {
            let (on, codes, mut joined) = parse_retry_on(text);
            out.retry_on = on;
            if !codes.is_empty() && !joined.contains("retriable-status-codes") {
                out.retry_on.retriable_status_codes = true;
                if !joined.is_empty() {
                    joined.push(',');
                }
                joined.push_str("retriable-status-codes");
            }
            out.retriable_status_codes = codes;
            out.retry_on_text = joined;
        }
        if let Some(t) = &r.per_try_timeout {
            out.per_try_timeout = Some(t.as_std());
        }
        if let Some(b) = r.retry_ignore_previous_hosts {
            out.avoid_previous_hosts = b;
        }
        if let Some(b) = &r.backoff {
            out.base_interval = b.as_std();
        }
        Some(out)
    }

    /// Envoy's backoff before retry `n` (1-based): a random duration in
    /// `[0, base × 2^(n-1))`, capped at 10 × base ("fully jittered").
    pub fn backoff(&self, n: u32, unit_random: f64) -> Duration {
        let base = self.base_interval.as_secs_f64();
        let cap = base * 10.0;
        let ceiling = (base * 2f64.powi(n.saturating_sub(1).min(30) as i32)).min(cap);
        Duration::from_secs_f64(ceiling * unit_random.clamp(0.0, 1.0))
    }

    /// Whether an upstream response status may be retried.
    pub fn retries_status(&self, status: u16, grpc_status: Option<u32>) -> bool {
        let on = &self.retry_on;
        (on.five_xx && (500..600).contains(&status))
            || (on.gateway_error && matches!(status, 502..=504))
            || (on.retriable_4xx && status == 409)
            || (on.retriable_status_codes && self.retriable_status_codes.contains(&status))
            || grpc_status.is_some_and(|g| {
                (on.grpc_cancelled && g == 1)
                    || (on.grpc_deadline_exceeded && g == 4)
                    || (on.grpc_resource_exhausted && g == 8)
                    || (on.grpc_internal && g == 13)
                    || (on.grpc_unavailable && g == 14)
            })
    }

    /// Whether a connection failure may be retried.
    pub fn retries_connect_failure(&self) -> bool {
        let on = &self.retry_on;
        on.connect_failure || on.five_xx || on.gateway_error || on.reset || on.reset_before_request
    }

    /// Whether a reset (or close) after the request was sent may be retried.
    pub fn retries_reset(&self) -> bool {
        let on = &self.retry_on;
        on.reset || on.five_xx || on.gateway_error
    }

    /// Whether a per-try timeout may be retried.
    pub fn retries_timeout(&self) -> bool {
        let on = &self.retry_on;
        on.five_xx || on.gateway_error || on.reset
    }
}

/// Istio's `parseRetryOn`: integers that are HTTP status codes go to the
/// status list, everything else is an Envoy token.
fn parse_retry_on(text: &str) -> (RetryOn, Vec<u16>, String) {
    let mut on = RetryOn::default();
    let mut codes = Vec::new();
    let mut tokens = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Ok(code) = part.parse::<u16>()
            && http::StatusCode::from_u16(code).is_ok_and(|s| s.canonical_reason().is_some())
        {
            codes.push(code);
            continue;
        }
        tokens.push(part);
        match part {
            "5xx" => on.five_xx = true,
            "gateway-error" => on.gateway_error = true,
            "reset" => on.reset = true,
            "reset-before-request" => on.reset_before_request = true,
            "connect-failure" => on.connect_failure = true,
            "retriable-4xx" => on.retriable_4xx = true,
            "refused-stream" => on.refused_stream = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            "cancelled" => on.grpc_cancelled = true,
            "deadline-exceeded" => on.grpc_deadline_exceeded = true,
            "internal" => on.grpc_internal = true,
            "resource-exhausted" => on.grpc_resource_exhausted = true,
            "unavailable" => on.grpc_unavailable = true,
            _ => {}
        }
    }
    (on, codes, tokens.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Duration as IstioDuration;

    /// Pins retry.go `DefaultPolicy` as of Istio ≥ 1.24: no 503 retry.
    #[test]
    fn istio_default_retry_policy_when_retries_absent() {
        let p = RetryPolicy::from_istio(None, false).expect("retries on by default");
        assert_eq!(p.num_retries, 2);
        assert_eq!(
            p.retry_on_text,
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
        );
        assert!(
            p.retriable_status_codes.is_empty(),
            "503 is not retried by default since Istio 1.24"
        );
        assert!(!p.retries_status(503, None));
        assert!(
            p.retries_status(200, Some(14)),
            "gRPC unavailable is retried"
        );
        assert!(p.retries_connect_failure());
        assert!(p.avoid_previous_hosts);
        assert_eq!(p.host_selection_attempts, 5);
        assert_eq!(p.per_try_timeout, None);
    }

    #[test]
    fn consistent_hash_drops_previous_hosts_predicate() {
        assert!(
            !RetryPolicy::from_istio(None, true)
                .unwrap()
                .avoid_previous_hosts
        );
    }

    #[test]
    fn attempts_zero_disables_retries() {
        let r = HTTPRetry {
            attempts: Some(0),
            ..Default::default()
        };
        assert_eq!(RetryPolicy::from_istio(Some(&r), false), None);
    }

    #[test]
    fn bare_status_codes_add_retriable_status_codes() {
        let r = HTTPRetry {
            attempts: Some(3),
            retry_on: Some("gateway-error,503".into()),
            per_try_timeout: Some(IstioDuration::parse("2s").unwrap()),
            ..Default::default()
        };
        let p = RetryPolicy::from_istio(Some(&r), false).unwrap();
        assert_eq!(p.num_retries, 3);
        assert_eq!(p.retriable_status_codes, vec![503]);
        assert_eq!(p.retry_on_text, "gateway-error,retriable-status-codes");
        assert!(p.retries_status(503, None));
        assert!(p.retries_status(502, None));
        assert!(!p.retries_status(500, None));
        assert!(!p.retries_connect_failure() || p.retry_on.gateway_error);
        assert_eq!(p.per_try_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn retry_on_unset_keeps_default_tokens() {
        let r = HTTPRetry {
            attempts: Some(5),
            ..Default::default()
        };
        let p = RetryPolicy::from_istio(Some(&r), false).unwrap();
        assert_eq!(p.num_retries, 5);
        assert_eq!(p.retry_on_text, DEFAULT_RETRY_ON);
    }

    #[test]
    fn backoff_is_jittered_exponential_capped_at_ten_times_base() {
        let p = RetryPolicy::istio_default();
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(25));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(50));
        assert_eq!(p.backoff(10, 1.0), Duration::from_millis(250));
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
    }
}
