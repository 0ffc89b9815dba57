//! Envoy outlier detection (passive health checking) for one cluster, as
//! Istio configures it from `DestinationRule.trafficPolicy.outlierDetection`.
//!
//! The model follows Envoy's `source/common/upstream/outlier_detection_impl.cc`
//! and Istio's `applyOutlierDetection` (pilot `cluster_traffic_policy.go`).
//! Only the consecutive detectors exist here: Istio sets the success-rate
//! enforcement to 0 and never configures failure-percentage detection.
//!
//! Pure and deterministic: no I/O, no clock reads. Every time-dependent call
//! takes `now: Instant`.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

/// What happened to one request (or TCP connection) on one upstream host.
///
/// Envoy splits these into external-origin results (the upstream answered)
/// and local-origin ones (Envoy could not talk to it). Connect failures,
/// timeouts and resets are local origin; any upstream status is external.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status (external origin). With
    /// split errors this also reports a successful connection.
    Status(u16),
    /// Connect failure or connect timeout (`LocalOriginConnectFailed`,
    /// mapped to 503 when not split).
    LocalOriginFailure,
    /// Request timeout, global or per try (`LocalOriginTimeout`, mapped to
    /// 504 when not split).
    Timeout,
    /// Upstream reset after connecting; Envoy's router reports it as
    /// `LocalOriginConnectFailed` (503 when not split).
    Reset,
    /// A transaction without an HTTP status succeeded (TCP proxy:
    /// `ExtOriginRequestSuccess`), treated as a 200 plus connect success.
    Success,
}

/// Which consecutive detector ejected a host (Envoy `OutlierEjectionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EjectionKind {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
    ConsecutiveLocalOriginFailure,
}

/// An ejection that [`OutlierDetector::record`] just performed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    pub host: usize,
    pub kind: EjectionKind,
    /// How long the host stays out, at least (un-ejection waits for the
    /// first sweep at or after `now + duration`).
    pub duration: Duration,
    /// Times this host has been ejected since it joined the cluster.
    pub num_ejections: u32,
}

/// An ejected host, as [`OutlierDetector::host_ejection`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostEjection {
    pub since: Instant,
    /// The interval sweep that will return the host (Envoy un-ejects on
    /// its interval timer, at or after `since + ejection time`).
    pub until: Instant,
    pub kind: EjectionKind,
    pub num_ejections: u32,
}

impl EjectionKind {
    /// Envoy's name for the detector (`outlier_detection` event log).
    pub fn name(self) -> &'static str {
        match self {
            EjectionKind::Consecutive5xx => "CONSECUTIVE_5XX",
            EjectionKind::ConsecutiveGatewayFailure => "CONSECUTIVE_GATEWAY_FAILURE",
            EjectionKind::ConsecutiveLocalOriginFailure => "CONSECUTIVE_LOCAL_ORIGIN_FAILURE",
        }
    }
}

#[derive(Clone, Debug, Default)]
struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    consecutive_local_origin: u32,
    ejected: bool,
    num_ejections: u32,
    /// Envoy `ejectTimeBackoff`: +1 per ejection (capped), −1 per sweep the
    /// host spends healthy at least one interval after its un-ejection.
    multiplier: u32,
    last_ejection: Option<Instant>,
    last_unejection: Option<Instant>,
    /// Which detector ejected the host last (for the admin page).
    last_kind: Option<EjectionKind>,
}

#[derive(Debug)]
struct State {
    hosts: Vec<HostState>,
    /// The next interval-timer firing: `epoch + k × interval`.
    next_sweep: Instant,
    ejections_total: u64,
    ejections_overflow: u64,
}

/// Outlier detection for one cluster of `host_count` hosts, identified by
/// index (the cluster's endpoint order).
///
/// # Time
/// Envoy un-ejects hosts and decays multipliers only when its interval timer
/// fires, every `interval` from the detector's creation. Here the timer is
/// virtual: the sweeps due at `created + k × interval` run lazily, in order,
/// inside whichever call first passes a `now` at or after them. The request
/// path therefore needs no timer task; calling [`sweep`](Self::sweep) from
/// one is allowed and gives the same result. Pass a monotonic `now`; a
/// slightly stale `now` from a racing thread is harmless.
///
/// # Concurrency
/// One short `Mutex` per cluster. An ejection decision reads state of every
/// host (how many are ejected, for maxEjectionPercent) and writes several
/// fields of one host (counters, flag, multiplier, times); Envoy gets that
/// consistency by funnelling all ejections through its main thread. Atomics
/// per field would let two threads eject past the percentage limit or lose
/// a counter reset. The critical section is a few integer operations per
/// request (plus an O(hosts) sweep once per interval), so contention is
/// negligible next to the upstream round trip. A poisoned lock is recovered:
/// the state is plain counters and stays meaningful.
///
/// # Host changes
/// Envoy keeps a host's monitor across endpoint (EDS) updates and starts new
/// hosts fresh; a cluster *config* change builds a new cluster with a new
/// detector. Mirror that: on an endpoint-only reload call
/// [`retain`](Self::retain); when the outlier config changes, build a new
/// detector.
///
/// # Request path
/// Record every outcome with [`record`](Self::record). Pick among the hosts
/// [`eligible`](Self::eligible) returns; `None` means every host is ejected
/// and panic mode is off: answer 503 with response flag `UH`.
#[derive(Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    state: Mutex<State>,
}

fn is_gateway_error(code: u16) -> bool {
    matches!(code, 502..=504)
}

/// Smallest `start + k × step` (k ≥ 0) that is ≥ `target`.
fn grid_at_or_after(start: Instant, step: Duration, target: Instant) -> Instant {
    if target <= start {
        return start;
    }
    let gap = (target - start).as_nanos();
    let step_ns = step.as_nanos().max(1);
    let k = gap.div_ceil(step_ns);
    start + Duration::from_nanos(u64::try_from(k * step_ns).unwrap_or(u64::MAX))
}

impl OutlierDetector {
    /// A detector whose interval timer starts at `now`.
    pub fn new(config: OutlierConfig, host_count: usize, now: Instant) -> OutlierDetector {
        let next_sweep = now + config.interval;
        OutlierDetector {
            config,
            state: Mutex::new(State {
                hosts: vec![HostState::default(); host_count],
                next_sweep,
                ejections_total: 0,
                ejections_overflow: 0,
            }),
        }
    }

    pub fn config(&self) -> &OutlierConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks and runs every sweep due at or before `now`.
    fn lock_at(&self, now: Instant) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        self.catch_up(&mut st, now, &mut Vec::new());
        st
    }

    pub fn host_count(&self) -> usize {
        self.lock().hosts.len()
    }

    /// Reports one outcome for `host`. Returns the ejection it caused, if
    /// any (a consecutive threshold was reached exactly, the host was not
    /// already ejected, and maxEjectionPercent allowed it). Out-of-range
    /// hosts are ignored.
    pub fn record(&self, host: usize, outcome: Outcome, now: Instant) -> Option<Ejection> {
        let mut st = self.lock_at(now);
        if host >= st.hosts.len() {
            return None;
        }
        let split = self.config.split_external_local_origin_errors;
        // Detections in Envoy's posting order; each is handled like
        // `onConsecutiveErrorWorker`.
        let mut detected: Vec<EjectionKind> = Vec::new();
        match outcome {
            Outcome::Status(code) => {
                if split {
                    self.local_origin_success(&mut st.hosts[host]);
                }
                let code = if self.config.http_error_codes.is_empty() {
                    code
                } else if self.config.http_error_codes.binary_search(&code).is_ok() {
                    500
                } else {
                    200
                };
                self.http_code(&mut st.hosts[host], code, &mut detected);
            }
            Outcome::Success => {
                self.http_code(&mut st.hosts[host], 200, &mut detected);
                if split {
                    self.local_origin_success(&mut st.hosts[host]);
                }
            }
            Outcome::LocalOriginFailure | Outcome::Reset | Outcome::Timeout => {
                if split {
                    let h = &mut st.hosts[host];
                    h.consecutive_local_origin += 1;
                    if h.consecutive_local_origin == self.config.consecutive_local_origin_failures {
                        detected.push(EjectionKind::ConsecutiveLocalOriginFailure);
                    }
                } else {
                    let code = if outcome == Outcome::Timeout {
                        504
                    } else {
                        503
                    };
                    self.http_code(&mut st.hosts[host], code, &mut detected);
                }
            }
        }
        let mut first = None;
        for kind in detected {
            let e = self.on_consecutive_error(&mut st, host, kind, now);
            first = first.or(e);
        }
        first
    }

    /// Envoy `putHttpResponseCode`, consecutive part.
    fn http_code(&self, h: &mut HostState, code: u16, detected: &mut Vec<EjectionKind>) {
        if (500..=599).contains(&code) {
            if is_gateway_error(code) {
                h.consecutive_gateway += 1;
                if h.consecutive_gateway == self.config.consecutive_gateway_errors {
                    detected.push(EjectionKind::ConsecutiveGatewayFailure);
                }
            } else {
                h.consecutive_gateway = 0;
            }
            h.consecutive_5xx += 1;
            if h.consecutive_5xx == self.config.consecutive_5xx {
                detected.push(EjectionKind::Consecutive5xx);
            }
        } else {
            h.consecutive_5xx = 0;
            h.consecutive_gateway = 0;
        }
    }

    fn local_origin_success(&self, h: &mut HostState) {
        h.consecutive_local_origin = 0;
    }

    /// Envoy `onConsecutiveErrorWorker` + `ejectHost`.
    fn on_consecutive_error(
        &self,
        st: &mut State,
        host: usize,
        kind: EjectionKind,
        now: Instant,
    ) -> Option<Ejection> {
        // Already ejected: ignored, and the counter is *not* reset.
        if st.hosts[host].ejected {
            return None;
        }
        let active = st.hosts.iter().filter(|h| h.ejected).count();
        let max = self.config.max_ejection_percent.min(100) as f64;
        // Envoy ≥ 1.27: the percentage *after* this ejection must not exceed
        // the maximum; no "always one host" unless always_eject_one_host,
        // which Istio does not set.
        let ejected_percent = 100.0 * (active + 1) as f64 / st.hosts.len() as f64;
        let mut ejection = None;
        if ejected_percent <= max {
            // Every consecutive detector Istio can trigger has 100% enforcement.
            let h = &mut st.hosts[host];
            h.ejected = true;
            h.num_ejections += 1;
            h.last_ejection = Some(now);
            h.last_kind = Some(kind);
            let base = self.config.base_ejection_time;
            if base.saturating_mul(h.multiplier) < self.config.max_ejection_time + base {
                h.multiplier += 1;
            }
            st.ejections_total += 1;
            ejection = Some(Ejection {
                host,
                kind,
                duration: self.config.ejection_time(h.multiplier),
                num_ejections: h.num_ejections,
            });
        } else {
            st.ejections_overflow += 1;
        }
        let h = &mut st.hosts[host];
        match kind {
            EjectionKind::Consecutive5xx => h.consecutive_5xx = 0,
            EjectionKind::ConsecutiveGatewayFailure => h.consecutive_gateway = 0,
            EjectionKind::ConsecutiveLocalOriginFailure => h.consecutive_local_origin = 0,
        }
        ejection
    }

    /// Runs the sweeps due at or before `now`, skipping runs of sweeps that
    /// provably change nothing. Un-ejected hosts are appended to `unejected`.
    fn catch_up(&self, st: &mut State, now: Instant, unejected: &mut Vec<usize>) {
        let interval = self.config.interval;
        while st.next_sweep <= now {
            let t = st.next_sweep;
            self.sweep_at(st, t, unejected);
            let next = t + interval;
            // Skip ahead (never past `now`) to the first sweep that can
            // change state: an un-ejection, or a multiplier decrement.
            let decaying = st
                .hosts
                .iter()
                .any(|h| !h.ejected && h.multiplier > 0 && h.last_unejection.is_some());
            let target = if decaying {
                next
            } else {
                st.hosts
                    .iter()
                    .filter(|h| h.ejected)
                    .filter_map(|h| {
                        h.last_ejection
                            .map(|at| at + self.config.ejection_time(h.multiplier))
                    })
                    .min()
                    .unwrap_or(now + interval)
            };
            let first_after_now = grid_at_or_after(next, interval, now + Duration::from_nanos(1));
            st.next_sweep = grid_at_or_after(next, interval, target).min(first_after_now);
        }
    }

    /// Envoy `onIntervalTimer` for the consecutive detectors.
    fn sweep_at(&self, st: &mut State, t: Instant, unejected: &mut Vec<usize>) {
        for (i, h) in st.hosts.iter_mut().enumerate() {
            if !h.ejected {
                continue;
            }
            let since = h
                .last_ejection
                .map_or(Duration::MAX, |at| t.saturating_duration_since(at));
            if self.config.ejection_time(h.multiplier) <= since {
                h.ejected = false;
                h.consecutive_5xx = 0;
                h.consecutive_gateway = 0;
                h.consecutive_local_origin = 0;
                h.last_unejection = Some(t);
                unejected.push(i);
            }
        }
        for h in st.hosts.iter_mut() {
            if !h.ejected
                && h.last_unejection
                    .is_some_and(|at| t.saturating_duration_since(at) >= self.config.interval)
            {
                h.multiplier = h.multiplier.saturating_sub(1);
            }
        }
    }

    /// Runs every interval sweep due at or before `now`; returns the hosts
    /// it un-ejected. Optional: every other `now`-taking call does the same.
    pub fn sweep(&self, now: Instant) -> Vec<usize> {
        let mut unejected = Vec::new();
        let mut st = self.lock();
        self.catch_up(&mut st, now, &mut unejected);
        unejected
    }

    pub fn is_ejected(&self, host: usize, now: Instant) -> bool {
        self.lock_at(now).hosts.get(host).is_some_and(|h| h.ejected)
    }

    /// `true` per host that is not ejected.
    pub fn available(&self, now: Instant) -> Vec<bool> {
        self.lock_at(now).hosts.iter().map(|h| !h.ejected).collect()
    }

    pub fn ejected_count(&self, now: Instant) -> usize {
        self.lock_at(now).hosts.iter().filter(|h| h.ejected).count()
    }

    fn panic_of(&self, st: &State) -> bool {
        let n = st.hosts.len();
        let healthy = st.hosts.iter().filter(|h| !h.ejected).count();
        let healthy_percent = if n == 0 {
            0.0
        } else {
            100.0 * healthy as f64 / n as f64
        };
        healthy_percent < self.config.min_health_percent.min(100) as f64
    }

    /// Envoy `isHostSetInPanic`: the healthy percentage is below
    /// `minHealthPercent` (never with the Istio default 0). In panic the
    /// load balancer uses every host, ejected or not.
    pub fn panic(&self, now: Instant) -> bool {
        let st = self.lock_at(now);
        self.panic_of(&st)
    }

    /// The hosts the load balancer may pick from: the non-ejected ones, or
    /// all of them in panic mode. `None` when none is eligible (every host
    /// ejected, panic off): the request fails with 503 `UH`.
    pub fn eligible(&self, now: Instant) -> Option<Vec<bool>> {
        let st = self.lock_at(now);
        if self.panic_of(&st) {
            return Some(vec![true; st.hosts.len()]);
        }
        let mask: Vec<bool> = st.hosts.iter().map(|h| !h.ejected).collect();
        mask.contains(&true).then_some(mask)
    }

    /// Ejections performed (Envoy `outlier_detection.ejections_enforced_total`).
    pub fn ejections_total(&self) -> u64 {
        self.lock().ejections_total
    }

    /// Detections refused by maxEjectionPercent (Envoy `ejections_overflow`).
    pub fn ejections_overflow(&self) -> u64 {
        self.lock().ejections_overflow
    }

    /// Times `host` has been ejected, and its current multiplier.
    pub fn host_ejections(&self, host: usize) -> Option<(u32, u32)> {
        self.lock()
            .hosts
            .get(host)
            .map(|h| (h.num_ejections, h.multiplier))
    }

    /// The current ejection of `host`, if it is ejected at `now`: since
    /// when, the sweep that will return it, why, and how many times it was
    /// ejected (for the admin page; never on the request path).
    pub fn host_ejection(&self, host: usize, now: Instant) -> Option<HostEjection> {
        let st = self.lock_at(now);
        let h = st.hosts.get(host).filter(|h| h.ejected)?;
        let since = h.last_ejection?;
        let due = since + self.config.ejection_time(h.multiplier);
        Some(HostEjection {
            since,
            until: grid_at_or_after(st.next_sweep, self.config.interval, due),
            kind: h.last_kind?,
            num_ejections: h.num_ejections,
        })
    }

    /// Endpoint-only reload: `keep[new_index] = Some(old_index)` carries the
    /// old host's state (counters, ejection, multiplier) to its new index;
    /// `None` starts a new host fresh. Old hosts not named are dropped
    /// (their ejection with them). `keep.len()` is the new host count. An
    /// old index named twice, or out of range, starts fresh after its
    /// first use. Cluster totals and the sweep schedule are kept.
    pub fn retain(&self, keep: &[Option<usize>]) {
        let mut st = self.lock();
        let mut old: Vec<Option<HostState>> = std::mem::take(&mut st.hosts)
            .into_iter()
            .map(Some)
            .collect();
        st.hosts = keep
            .iter()
            .map(|k| {
                k.and_then(|i| old.get_mut(i).and_then(Option::take))
                    .unwrap_or_default()
            })
            .collect();
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

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    fn detector(config: OutlierConfig, hosts: usize) -> (OutlierDetector, Instant) {
        let t0 = Instant::now();
        (OutlierDetector::new(config, hosts, t0), t0)
    }

    fn cfg(f: impl FnOnce(&mut OutlierConfig)) -> OutlierConfig {
        let mut c = OutlierConfig::default();
        f(&mut c);
        c
    }

    /// Records `n` outcomes at `now`; returns the ejections they caused.
    fn hit(d: &OutlierDetector, host: usize, o: Outcome, n: usize, now: Instant) -> Vec<Ejection> {
        (0..n).filter_map(|_| d.record(host, o, now)).collect()
    }

    #[test]
    fn five_consecutive_5xx_eject_by_default_and_four_do_not() {
        // 10 hosts: the default 10% allows exactly one ejection.
        let (d, t0) = detector(OutlierConfig::default(), 10);
        assert!(hit(&d, 3, Outcome::Status(500), 4, t0).is_empty());
        assert!(!d.is_ejected(3, t0));
        let e = d.record(3, Outcome::Status(503), t0).unwrap();
        assert_eq!(
            e,
            Ejection {
                host: 3,
                kind: EjectionKind::Consecutive5xx,
                duration: Duration::from_secs(30),
                num_ejections: 1,
            }
        );
        assert!(d.is_ejected(3, t0));
        assert_eq!(d.ejected_count(t0), 1);
        assert_eq!(d.ejections_total(), 1);
    }

    /// The admin page's ejection line: since the ejecting request, until
    /// the first interval sweep at or after base ejection time (Envoy
    /// defaults: interval 10 s, baseEjectionTime 30 s), and why.
    #[test]
    fn host_ejection_reports_since_until_and_why() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        let at = t0 + Duration::from_secs(3);
        assert!(d.host_ejection(2, at).is_none());
        hit(&d, 2, Outcome::Status(500), 5, at);
        let e = d.host_ejection(2, at).unwrap();
        assert_eq!(e.since, at);
        assert_eq!(e.until, t0 + Duration::from_secs(40));
        assert_eq!(e.kind.name(), "CONSECUTIVE_5XX");
        assert_eq!(e.num_ejections, 1);
        assert!(d.host_ejection(2, t0 + Duration::from_secs(39)).is_some());
        assert!(d.host_ejection(2, t0 + Duration::from_secs(40)).is_none());
    }

    #[test]
    fn a_success_resets_the_consecutive_counters() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        assert!(hit(&d, 0, Outcome::Status(500), 4, t0).is_empty());
        assert!(d.record(0, Outcome::Status(404), t0).is_none());
        assert!(hit(&d, 0, Outcome::Status(500), 4, t0).is_empty());
        assert!(d.record(0, Outcome::Success, t0).is_none());
        assert!(hit(&d, 0, Outcome::Status(500), 4, t0).is_empty());
        assert!(!d.is_ejected(0, t0));
        assert_eq!(hit(&d, 0, Outcome::Status(500), 1, t0).len(), 1);
    }

    #[test]
    fn consecutive_gateway_errors_only_count_502_503_504() {
        let c = cfg(|c| {
            c.consecutive_5xx = 0;
            c.consecutive_gateway_errors = 3;
        });
        let (d, t0) = detector(c, 10);
        // 500 is a 5xx but not a gateway error: it resets the gateway count.
        assert!(hit(&d, 0, Outcome::Status(500), 10, t0).is_empty());
        for code in [502, 503, 500, 504, 502] {
            assert!(d.record(0, Outcome::Status(code), t0).is_none());
        }
        let e = d.record(0, Outcome::Status(503), t0).unwrap();
        assert_eq!(e.kind, EjectionKind::ConsecutiveGatewayFailure);
    }

    #[test]
    fn gateway_errors_are_off_by_default_so_503s_eject_through_5xx() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        let e = hit(&d, 0, Outcome::Status(503), 5, t0);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, EjectionKind::Consecutive5xx);
    }

    #[test]
    fn without_split_local_origin_failures_count_as_5xx_and_gateway_errors() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        for o in [
            Outcome::LocalOriginFailure,
            Outcome::Timeout,
            Outcome::Reset,
            Outcome::Status(500),
        ] {
            assert!(d.record(0, o, t0).is_none());
        }
        let e = d.record(0, Outcome::LocalOriginFailure, t0).unwrap();
        assert_eq!(e.kind, EjectionKind::Consecutive5xx);

        let c = cfg(|c| {
            c.consecutive_5xx = 0;
            c.consecutive_gateway_errors = 3;
        });
        let (d, t0) = detector(c, 10);
        assert!(d.record(1, Outcome::Timeout, t0).is_none());
        assert!(d.record(1, Outcome::Reset, t0).is_none());
        let e = d.record(1, Outcome::LocalOriginFailure, t0).unwrap();
        assert_eq!(e.kind, EjectionKind::ConsecutiveGatewayFailure);
    }

    #[test]
    fn split_counts_local_origin_failures_separately() {
        let c = cfg(|c| {
            c.split_external_local_origin_errors = true;
            c.consecutive_local_origin_failures = 3;
        });
        let (d, t0) = detector(c, 10);
        // Connect failures do not touch the 5xx counter, and an upstream
        // response (a successful connection) resets the local-origin one.
        for _ in 0..4 {
            assert!(d.record(0, Outcome::Status(500), t0).is_none());
            assert!(d.record(0, Outcome::LocalOriginFailure, t0).is_none());
        }
        let e = d.record(0, Outcome::Status(500), t0).unwrap();
        assert_eq!(e.kind, EjectionKind::Consecutive5xx);

        assert!(d.record(1, Outcome::LocalOriginFailure, t0).is_none());
        assert!(d.record(1, Outcome::Timeout, t0).is_none());
        // Second ejection in a 10-host cluster at 10%: refused.
        assert!(d.record(1, Outcome::Reset, t0).is_none());
        assert_eq!(d.ejections_overflow(), 1);

        let c = cfg(|c| {
            c.split_external_local_origin_errors = true;
            c.consecutive_local_origin_failures = 3;
        });
        let (d, t0) = detector(c, 10);
        assert!(hit(&d, 2, Outcome::LocalOriginFailure, 2, t0).is_empty());
        let e = d.record(2, Outcome::Timeout, t0).unwrap();
        assert_eq!(e.kind, EjectionKind::ConsecutiveLocalOriginFailure);
    }

    #[test]
    fn ejection_lasts_base_times_ejections_and_the_sweep_uneject_it() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        assert_eq!(
            hit(&d, 0, Outcome::Status(500), 5, t0)[0].duration,
            Duration::from_secs(30)
        );
        assert!(d.is_ejected(0, at(t0, 29)));
        assert!(!d.is_ejected(0, at(t0, 30)));
        // Ejected again straight away: twice as long.
        let e = hit(&d, 0, Outcome::Status(500), 5, at(t0, 30));
        assert_eq!(e[0].duration, Duration::from_secs(60));
        assert_eq!(e[0].num_ejections, 2);
        assert!(d.is_ejected(0, at(t0, 89)));
        assert!(!d.is_ejected(0, at(t0, 90)));
        assert_eq!(d.host_ejections(0), Some((2, 2)));
    }

    #[test]
    fn unejection_waits_for_the_interval_sweep() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        // Ejected at 3s: due back at 33s, the next sweep is at 40s.
        hit(&d, 4, Outcome::Status(500), 5, at(t0, 3));
        assert!(d.sweep(at(t0, 33)).is_empty());
        assert!(d.is_ejected(4, at(t0, 39)));
        assert_eq!(d.sweep(at(t0, 40)), vec![4]);
        assert!(!d.is_ejected(4, at(t0, 40)));
    }

    #[test]
    fn multiplier_decays_one_step_per_healthy_interval() {
        let (d, t0) = detector(OutlierConfig::default(), 10);
        hit(&d, 0, Outcome::Status(500), 5, t0);
        hit(&d, 0, Outcome::Status(500), 5, at(t0, 30)); // multiplier 2
        assert_eq!(d.sweep(at(t0, 90)), vec![0]);
        // Un-ejected at 90: the sweeps at 100 and 110 each take one step off.
        d.sweep(at(t0, 100));
        assert_eq!(d.host_ejections(0), Some((2, 1)));
        d.sweep(at(t0, 10_000));
        assert_eq!(d.host_ejections(0), Some((2, 0)));
        let e = hit(&d, 0, Outcome::Status(500), 5, at(t0, 10_001));
        assert_eq!(e[0].duration, Duration::from_secs(30));
        assert_eq!(e[0].num_ejections, 3);
    }

    #[test]
    fn multiplier_and_ejection_time_cap_at_max_ejection_time() {
        let c = cfg(|c| c.max_ejection_percent = 100);
        let (d, t0) = detector(c, 1);
        let mut now = t0;
        let mut last = Duration::ZERO;
        for _ in 0..15 {
            last = hit(&d, 0, Outcome::Status(500), 5, now)[0].duration;
            // Ejections land on sweep grid points, so the host is back
            // exactly after `last`; re-ejecting at once leaves no healthy
            // interval for the multiplier to decay.
            now += last;
            assert!(!d.is_ejected(0, now));
        }
        assert_eq!(last, Duration::from_secs(300));
        // Envoy keeps incrementing while multiplier × base < max + base.
        assert_eq!(d.host_ejections(0), Some((15, 11)));
    }

    #[test]
    fn max_ejection_percent_10_of_3_hosts_ejects_none_since_envoy_1_27() {
        // Envoy ≥ 1.27 (#27909): (ejected + 1) / hosts ≤ max; 33% > 10%.
        let (d, t0) = detector(OutlierConfig::default(), 3);
        assert!(hit(&d, 0, Outcome::Status(500), 5, t0).is_empty());
        assert_eq!(d.ejected_count(t0), 0);
        assert_eq!(d.ejections_overflow(), 1);
        // The counter was reset by the refused detection: 5 more to retry.
        assert!(hit(&d, 0, Outcome::Status(500), 4, t0).is_empty());
        assert_eq!(d.ejections_overflow(), 1);
    }

    #[test]
    fn max_ejection_percent_allows_one_of_three_at_34_but_not_two() {
        let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 34), 3);
        assert_eq!(hit(&d, 0, Outcome::Status(500), 5, t0).len(), 1);
        assert!(hit(&d, 1, Outcome::Status(500), 5, t0).is_empty());
        assert_eq!(d.ejected_count(t0), 1);
        // Default 10% of 10 hosts: one, not two.
        let (d, t0) = detector(OutlierConfig::default(), 10);
        assert_eq!(hit(&d, 0, Outcome::Status(500), 5, t0).len(), 1);
        assert!(hit(&d, 1, Outcome::Status(500), 5, t0).is_empty());
    }

    #[test]
    fn max_ejection_percent_100_ejects_all_and_no_panic_means_503_uh() {
        let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 100), 3);
        for h in 0..3 {
            assert_eq!(hit(&d, h, Outcome::Status(502), 5, t0).len(), 1);
        }
        assert_eq!(d.ejected_count(t0), 3);
        assert_eq!(d.available(t0), vec![false; 3]);
        assert!(!d.panic(t0), "minHealthPercent 0: panic mode never");
        assert_eq!(d.eligible(t0), None);
    }

    #[test]
    fn below_min_health_percent_the_cluster_panics_and_uses_all_hosts() {
        let c = cfg(|c| {
            c.max_ejection_percent = 100;
            c.min_health_percent = 60;
        });
        let (d, t0) = detector(c, 4);
        hit(&d, 0, Outcome::Status(500), 5, t0);
        assert!(!d.panic(t0)); // 75% healthy
        assert_eq!(d.eligible(t0), Some(vec![false, true, true, true]));
        hit(&d, 1, Outcome::Status(500), 5, t0);
        assert!(d.panic(t0)); // 50% < 60%
        assert_eq!(d.eligible(t0), Some(vec![true; 4]));
        // Ejected hosts keep counting while in panic, without re-ejection.
        assert!(hit(&d, 0, Outcome::Status(500), 20, t0).is_empty());
    }

    #[test]
    fn http_error_codes_replace_the_5xx_rule() {
        let c = cfg(|c| c.http_error_codes = vec![429]);
        let (d, t0) = detector(c, 10);
        assert!(hit(&d, 0, Outcome::Status(503), 20, t0).is_empty());
        assert!(hit(&d, 0, Outcome::Status(429), 4, t0).is_empty());
        assert!(d.record(0, Outcome::Status(500), t0).is_none()); // resets
        assert!(hit(&d, 0, Outcome::Status(429), 4, t0).is_empty());
        assert_eq!(hit(&d, 0, Outcome::Status(429), 1, t0).len(), 1);
        // Local-origin failures are not responses: they still count.
        let c = cfg(|c| c.http_error_codes = vec![429]);
        let (d, t0) = detector(c, 10);
        assert_eq!(hit(&d, 1, Outcome::LocalOriginFailure, 5, t0).len(), 1);
    }

    #[test]
    fn retain_carries_state_to_new_indices() {
        let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 100), 3);
        hit(&d, 1, Outcome::Status(500), 5, t0);
        hit(&d, 2, Outcome::Status(500), 4, t0);
        d.retain(&[Some(1), None, Some(2), Some(2)]);
        assert_eq!(d.host_count(), 4);
        assert_eq!(d.available(t0), vec![false, true, true, true]);
        // Old host 2's four 5xx came along; the duplicate started fresh.
        assert_eq!(hit(&d, 2, Outcome::Status(500), 1, t0).len(), 1);
        assert!(hit(&d, 3, Outcome::Status(500), 1, t0).is_empty());
        // The carried ejection still expires on schedule.
        assert!(!d.is_ejected(0, at(t0, 30)));
        assert!(d.record(9, Outcome::Status(500), t0).is_none());
    }

    #[test]
    fn concurrent_records_stay_consistent() {
        let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 100), 10);
        let ejections = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (d, ejections) = (&d, &ejections);
                s.spawn(move || {
                    for i in 0..2_000 {
                        let host = (i + t) % 10;
                        let o = if i % 7 == 0 && t == 0 {
                            Outcome::Success
                        } else {
                            Outcome::Status(500)
                        };
                        if d.record(host, o, t0).is_some() {
                            ejections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let n = ejections.into_inner();
        // No sweep ran (time stood still): each host was ejected at most
        // once, and every reported ejection is counted and still active.
        assert!(n <= 10);
        assert_eq!(d.ejections_total(), n as u64);
        assert_eq!(d.ejected_count(t0), n);
        assert!(n > 0);
    }

    #[test]
    fn long_idle_with_a_1ms_interval_skips_no_op_sweeps() {
        let c = cfg(|c| {
            c.interval = Duration::from_millis(1);
            c.max_ejection_percent = 100;
        });
        let (d, t0) = detector(c, 2);
        hit(&d, 0, Outcome::Status(500), 5, t0);
        let started = std::time::Instant::now();
        // 30 days ≈ 2.6e9 virtual sweeps; only the few that matter run.
        assert!(!d.is_ejected(0, at(t0, 30 * 86_400)));
        assert_eq!(d.host_ejections(0), Some((1, 0)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
