//! The last few minutes of traffic, one sample a second, turned from the
//! counters the request path already keeps (Istio's request metrics per
//! destination cluster, and each route's [`Picks`](crate::route::Picks)).
//! Pure: the sampler feeds it totals; nothing here touches a request.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::metrics::BUCKETS;
use crate::proxy::flags::Flags;

/// Seconds of history kept.
pub const WINDOW: u64 = 300;
/// Seconds the figures (share, rps, error rate, p50/p99) cover.
pub const MINUTE: u64 = 60;
/// Seconds per point of the time series (30 points over [`WINDOW`]).
pub const STEP: u64 = 10;

/// One second of one destination cluster: only seconds with traffic are
/// stored, so an idle cluster costs an empty queue.
#[derive(Clone, Debug, Default, PartialEq)]
struct Tick {
    requests: u64,
    /// Failed requests by response flags (`-` when the upstream itself
    /// answered 5xx without a flag).
    errors: Vec<(Flags, u64)>,
    /// Requests per duration bucket (not cumulative; the last is `+Inf`).
    buckets: Vec<u64>,
}

/// What a series looked like at the previous sample.
#[derive(Clone, Debug, Default)]
struct Last {
    requests: u64,
    buckets: Vec<u64>,
}

/// A failed request, as the page counts it: a 5xx, or any response flag
/// (a fault abort's 4xx is FI, a client that went away is DC).
pub fn is_error(code: u16, flags: Flags) -> bool {
    code >= 500 || !flags.is_empty()
}

#[derive(Default)]
pub struct History {
    /// The current sample's number (seconds since the sampler started).
    now: u64,
    last: HashMap<(Arc<str>, u16, Flags), Last>,
    clusters: HashMap<Arc<str>, VecDeque<(u64, Tick)>>,
    last_picks: HashMap<String, u64>,
    picks: HashMap<String, VecDeque<(u64, u64)>>,
    /// The configuration version of the last sample (`None` before one).
    version: Option<u64>,
}

/// The figures of one destination over the last minute.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub requests: u64,
    /// Seconds the figures cover (less than a minute just after start).
    pub seconds: u64,
    pub errors: u64,
    /// Failed requests by response flags, most first.
    pub by_flags: Vec<(Flags, u64)>,
    /// Latency percentiles in ms (None without requests).
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Requests per [`STEP`] over the last [`WINDOW`], oldest first.
    pub series: Vec<u64>,
    /// Failed requests per [`STEP`], like `series`.
    pub error_series: Vec<u64>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1) as f64
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

impl History {
    /// Start the next one-second sample.
    pub fn tick(&mut self) {
        self.now += 1;
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    /// One series' total at this sample. `buckets` reads its cumulative
    /// duration buckets and is called only when the total moved.
    pub fn observe_series(
        &mut self,
        cluster: &Arc<str>,
        code: u16,
        flags: Flags,
        total: u64,
        buckets: impl FnOnce() -> Vec<u64>,
    ) {
        let last = self.last.entry((cluster.clone(), code, flags)).or_default();
        if total == last.requests {
            return;
        }
        // A smaller total is a new series under the same labels (a
        // reload changed them): count it from zero.
        let (delta, base) = if total > last.requests {
            (total - last.requests, std::mem::take(&mut last.buckets))
        } else {
            (total, Vec::new())
        };
        let cumulative = buckets();
        let mut per_bucket = Vec::with_capacity(cumulative.len());
        let mut below = 0;
        for (i, c) in cumulative.iter().enumerate() {
            let before = base.get(i).copied().unwrap_or(0);
            let in_range = c.saturating_sub(before);
            per_bucket.push(in_range.saturating_sub(below));
            below = in_range;
        }
        last.requests = total;
        last.buckets = cumulative;
        let now = self.now;
        let ring = self.clusters.entry(cluster.clone()).or_default();
        if ring.back().is_none_or(|(t, _)| *t != now) {
            ring.push_back((now, Tick::default()));
        }
        let Some((_, tick)) = ring.back_mut() else {
            return;
        };
        tick.requests += delta;
        if is_error(code, flags) {
            match tick.errors.iter_mut().find(|(f, _)| *f == flags) {
                Some((_, n)) => *n += delta,
                None => tick.errors.push((flags, delta)),
            }
        }
        if tick.buckets.len() < per_bucket.len() {
            tick.buckets.resize(per_bucket.len(), 0);
        }
        for (t, d) in tick.buckets.iter_mut().zip(per_bucket) {
            *t += d;
        }
    }

    /// A route destination's pick count at this sample (`key` names the
    /// route and destination).
    pub fn observe_picks(&mut self, key: &str, total: u64) {
        let last = match self.last_picks.get_mut(key) {
            Some(l) => l,
            // A destination never picked holds no state.
            None if total == 0 => return,
            None => self.last_picks.entry(key.to_string()).or_insert(0),
        };
        if total == *last {
            return;
        }
        let delta = if total > *last { total - *last } else { total };
        *last = total;
        let now = self.now;
        let ring = self.picks.entry(key.to_string()).or_default();
        match ring.back_mut() {
            Some((t, n)) if *t == now => *n += delta,
            _ => ring.push_back((now, delta)),
        }
    }

    /// Record the configuration version of this sample; true when it
    /// differs from the last sample's (a reload: routes and clusters may
    /// be gone, and pick counters start again).
    pub fn config_changed(&mut self, version: u64) -> bool {
        self.version.replace(version) != Some(version)
    }

    /// Whether a route destination has state (it was picked).
    pub fn tracks_picks(&self, key: &str) -> bool {
        self.last_picks.contains_key(key)
    }

    /// Drop samples older than [`WINDOW`] only (nothing was removed).
    pub fn prune(&mut self) {
        self.expire_old();
    }

    fn expire_old(&mut self) {
        let oldest = self.now.saturating_sub(WINDOW);
        for ring in self.clusters.values_mut() {
            while ring.front().is_some_and(|(t, _)| *t <= oldest) {
                ring.pop_front();
            }
        }
        for ring in self.picks.values_mut() {
            while ring.front().is_some_and(|(t, _)| *t <= oldest) {
                ring.pop_front();
            }
        }
    }

    /// Drop samples older than [`WINDOW`], and the state of destinations
    /// that `keep` no longer names (gone with a reload).
    pub fn expire(
        &mut self,
        keep_cluster: impl Fn(&str) -> bool,
        keep_route: impl Fn(&str) -> bool,
    ) {
        self.expire_old();
        self.clusters.retain(|k, _| keep_cluster(k));
        self.last.retain(|(k, _, _), _| keep_cluster(k));
        self.picks.retain(|k, _| keep_route(k));
        self.last_picks.retain(|k, _| keep_route(k));
    }

    /// Requests a route sent to one destination over the last minute.
    pub fn picks(&self, key: &str) -> u64 {
        let from = self.now.saturating_sub(MINUTE);
        self.picks.get(key).map_or(0, |r| {
            r.iter().filter(|(t, _)| *t > from).map(|(_, n)| n).sum()
        })
    }

    /// A cluster's figures over the last minute, and its time series.
    pub fn stats(&self, cluster: &str) -> Stats {
        let seconds = self.now.clamp(1, MINUTE);
        let mut s = Stats {
            seconds,
            series: vec![0; (WINDOW / STEP) as usize],
            error_series: vec![0; (WINDOW / STEP) as usize],
            ..Stats::default()
        };
        let Some(ring) = self.clusters.get(cluster) else {
            return s;
        };
        let from = self.now.saturating_sub(MINUTE);
        let oldest = self.now.saturating_sub(WINDOW);
        let mut buckets: Vec<u64> = Vec::new();
        let points = (WINDOW / STEP) as usize;
        for (t, tick) in ring {
            if *t > oldest {
                // The last point holds the latest STEP seconds, now included.
                let i = points - 1 - ((self.now - t) / STEP) as usize;
                if let Some(p) = s.series.get_mut(i) {
                    *p += tick.requests;
                }
                if let Some(p) = s.error_series.get_mut(i) {
                    *p += tick.errors.iter().map(|(_, n)| n).sum::<u64>();
                }
            }
            if *t <= from {
                continue;
            }
            s.requests += tick.requests;
            for (f, n) in &tick.errors {
                s.errors += n;
                match s.by_flags.iter_mut().find(|(g, _)| g == f) {
                    Some((_, m)) => *m += n,
                    None => s.by_flags.push((*f, *n)),
                }
            }
            if buckets.len() < tick.buckets.len() {
                buckets.resize(tick.buckets.len(), 0);
            }
            for (b, n) in buckets.iter_mut().zip(&tick.buckets) {
                *b += n;
            }
        }
        s.by_flags.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
        });
        s.p50 = quantile(0.5, &buckets);
        s.p99 = quantile(0.99, &buckets);
        s
    }
}

/// Prometheus' `histogram_quantile` over per-bucket counts with
/// [`BUCKETS`] bounds: linear within the bucket the rank falls in (from 0
/// for the first); the highest finite bound when it falls in `+Inf`.
pub fn quantile(q: f64, per_bucket: &[u64]) -> Option<f64> {
    let total: u64 = per_bucket.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in per_bucket.iter().enumerate() {
        let upto = below + n;
        if (upto as f64) >= rank && *n > 0 {
            let Some(upper) = BUCKETS.get(i) else {
                return BUCKETS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            return Some(lower + (upper - lower) * ((rank - below as f64) / *n as f64));
        }
        below = upto;
    }
    BUCKETS.last().copied()
}

#[cfg(test)]
mod tests;
