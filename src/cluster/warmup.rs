//! Slow start (`LoadBalancerSettings.warmup` / `warmupDurationSecs`): a new
//! endpoint's weight ramps up over a window, as Envoy's `slow_start_config`.
//! Pure: time comes in as an elapsed [`Duration`].

use std::time::Duration;

use crate::compile::cluster_policy::SlowStart;

/// The weight multiplier for a host that became healthy `elapsed` ago.
///
/// Mirrors Envoy `EdfLoadBalancerBase::applySlowStartFactor` and
/// `applyAggressionFactor` (load_balancer_impl.cc): while `elapsed < window`,
/// `time_factor = max(1ms, elapsed) / window` (both in whole milliseconds)
/// and the factor is `max(time_factor^(1/aggression), min_percent / 100)`;
/// from the end of the window on it is `1.0`. `min_percent` is a percentage
/// (0–100). An aggression ≤ 0 or NaN is treated as 1.0, as Envoy does for
/// an invalid runtime value.
pub fn slow_start_factor(
    elapsed: Duration,
    window: Duration,
    min_percent: f64,
    aggression: f64,
) -> f64 {
    let elapsed_ms = elapsed.as_millis();
    let window_ms = window.as_millis();
    if elapsed_ms >= window_ms {
        return 1.0;
    }
    let aggression = if aggression <= 0.0 || aggression.is_nan() {
        1.0
    } else {
        aggression
    };
    let time_factor = elapsed_ms.max(1) as f64 / window_ms as f64;
    let ramped = if aggression == 1.0 || time_factor == 1.0 {
        time_factor
    } else {
        time_factor.powf(1.0 / aggression)
    };
    ramped.max(min_percent / 100.0)
}

impl SlowStart {
    /// [`slow_start_factor`] with this configuration.
    pub fn factor(&self, elapsed: Duration) -> f64 {
        slow_start_factor(elapsed, self.window, self.min_percent, self.aggression)
    }
}

#[cfg(test)]
mod tests;
