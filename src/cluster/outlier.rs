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

use crate::compile::cluster_policy::OutlierConfig;

/// What happened to one request (or TCP connection) on one upstream host.
///
/// Envoy splits these into external-origin results (the upstream answered)
/// and local-origin ones (Envoy could not talk to it). Connect failures,
/// timeouts and resets are local origin; any upstream status is external.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostOutcome {
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
    pub fn record(&self, host: usize, outcome: HostOutcome, now: Instant) -> Option<Ejection> {
        let mut st = self.lock_at(now);
        if host >= st.hosts.len() {
            return None;
        }
        let split = self.config.split_external_local_origin_errors;
        // Detections in Envoy's posting order; each is handled like
        // `onConsecutiveErrorWorker`.
        let mut detected: Vec<EjectionKind> = Vec::new();
        match outcome {
            HostOutcome::Status(code) => {
                if split {
                    st.hosts[host].consecutive_local_origin = 0;
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
            HostOutcome::Success => {
                self.http_code(&mut st.hosts[host], 200, &mut detected);
                if split {
                    st.hosts[host].consecutive_local_origin = 0;
                }
            }
            HostOutcome::LocalOriginFailure | HostOutcome::Reset | HostOutcome::Timeout => {
                if split {
                    let h = &mut st.hosts[host];
                    h.consecutive_local_origin += 1;
                    if h.consecutive_local_origin == self.config.consecutive_local_origin_failures {
                        detected.push(EjectionKind::ConsecutiveLocalOriginFailure);
                    }
                } else {
                    let code = if outcome == HostOutcome::Timeout {
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
mod tests;
