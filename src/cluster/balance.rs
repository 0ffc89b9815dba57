//! Load balancers for a DestinationRule's `loadBalancer` (§2.5), with
//! Envoy's algorithms:
//!
//! - `LEAST_REQUEST` (Istio's default for unset and `UNSPECIFIED`;
//!   deprecated `LEAST_CONN` means the same): with equal weights, power of
//!   two choices (two random hosts, the one with fewer active requests
//!   wins, ties keep the first); with unequal weights, earliest-deadline-
//!   first scheduling on `weight / (active + 1)` (Envoy's
//!   `active_request_bias` 1.0).
//! - `ROUND_ROBIN`: rotation with equal weights, EDF on the endpoint
//!   weights otherwise.
//! - `RANDOM`: uniform, or weighted by endpoint weight.
//! - `PASSTHROUGH` (Envoy `ORIGINAL_DST`): forwarding to the address the
//!   caller originally dialled needs iptables interception, which strait
//!   does not do; picking fails with [`PickError::Passthrough`] and the
//!   request gets a 503 saying so.
//! - `consistentHash`: `hash.rs`'s ring hash (default, 1024 entries) or
//!   Maglev table over the hosts' `ip:port` and weights, through
//!   [`HashTable`]; a request without a hash key gets a random hash (as
//!   Envoy). Hosts that cannot be used are skipped with
//!   [`HashTable::pick_excluding`] (walking the ring / Envoy's Maglev
//!   retry mutation). If the table cannot be built (Maglev size not
//!   prime) hosts are picked at random by weight.
//!
//! Slow start (`warmup` / `warmupDurationSecs`, ROUND_ROBIN and
//! LEAST_REQUEST only, see [`SlowStart::from_lb`]): a host's weight is
//! multiplied by [`SlowStart::factor`] of the time since it joined
//! ([`Host::added`]), as Envoy's `applySlowStartFactor` does through the EDF
//! weights. While any host is in its window the EDF scheduler is used even
//! with equal weights (Envoy's `noHostsAreInSlowStart` pivot); the weight
//! is recomputed each time the host is rescheduled, so nothing is
//! allocated per request for it.
//!
//! Every pick considers only hosts that are available ([`Pick::eligible`],
//! outlier detection's mask, and the locality group) and not in the
//! request's `avoid` list (Envoy's `previous_hosts` retry predicate); when
//! avoiding leaves nothing, the avoid list is ignored.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Host;
use super::hash::HashRing;
use super::random;
use crate::compile::cluster_policy::SlowStart;
use crate::compile::cluster_policy::{BalancerKind, ClusterPolicy};

/// Envoy's default `choice_count` for the least-request balancer.
pub const CHOICE_COUNT: usize = 2;

/// A consistent-hash lookup table (ring hash or Maglev) built over a
/// cluster's hosts: `pick` maps a request hash to an index into
/// `ClusterState::hosts`.
pub trait HashTable: Send + Sync + fmt::Debug {
    fn pick(&self, hash: u64) -> usize;

    /// The host for `hash` among those `skip` does not reject.
    fn pick_excluding(&self, hash: u64, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        Some(self.pick(hash)).filter(|&i| !skip(i))
    }
}

impl HashTable for HashRing {
    fn pick(&self, hash: u64) -> usize {
        HashRing::pick(self, hash).unwrap_or(usize::MAX)
    }

    fn pick_excluding(&self, hash: u64, skip: &dyn Fn(usize) -> bool) -> Option<usize> {
        HashRing::pick_excluding(self, hash, skip)
    }
}

/// What one pick needs to know about the request.
#[derive(Clone, Copy, Debug)]
pub struct Pick<'a> {
    pub now: Instant,
    /// Hosts already tried by this request (skipped when possible).
    pub avoid: &'a [Arc<Host>],
    /// The request's hash for consistent hashing (`None`: no hash key).
    pub hash: Option<u64>,
    /// Per host index, whether outlier detection lets it be picked
    /// (`None`: every host).
    pub eligible: Option<&'a [bool]>,
    /// Locality load balancing's choice: only hosts `i` with
    /// `groups[i] == chosen` (a priority or a locality, see
    /// `ClusterState::pick`). `None`: every host.
    pub group: Option<(&'a [u32], u32)>,
}

impl<'a> Pick<'a> {
    pub fn new(now: Instant, avoid: &'a [Arc<Host>]) -> Pick<'a> {
        Pick {
            now,
            avoid,
            hash: None,
            eligible: None,
            group: None,
        }
    }
}

/// Why no host was picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PickError {
    /// No host is available (503 UH).
    NoHost,
    /// `PASSTHROUGH` (original destination) is not supported.
    Passthrough,
}

impl BalancerKind {
    /// Istio's spelling, for the admin API and logs.
    pub fn name(self) -> &'static str {
        match self {
            BalancerKind::LeastRequest => "LEAST_REQUEST",
            BalancerKind::RoundRobin => "ROUND_ROBIN",
            BalancerKind::Random => "RANDOM",
            BalancerKind::Passthrough => "PASSTHROUGH",
            BalancerKind::ConsistentHash => "CONSISTENT_HASH",
        }
    }
}

/// One cluster's load balancer, built over its host list (indexes into
/// that list are stable for the balancer's life).
#[derive(Debug)]
pub enum Balancer {
    LeastRequest {
        /// Present when endpoint weights differ or slow start is on.
        edf: Option<Mutex<Edf>>,
        /// Equal weights: the EDF is used only while a host is warming.
        weighted: bool,
        slow: Option<SlowStart>,
    },
    RoundRobin {
        cursor: AtomicUsize,
        /// One rotation per locality group ([`Pick::group`]; ids are
        /// below the host count), as Envoy keeps one per locality.
        group_cursors: Vec<AtomicUsize>,
        /// Present when endpoint weights differ or slow start is on.
        edf: Option<Mutex<Edf>>,
        weighted: bool,
        slow: Option<SlowStart>,
    },
    Random {
        weighted: bool,
    },
    ConsistentHash {
        /// The ring or Maglev table; `None` when it could not be built.
        table: Option<Arc<dyn HashTable>>,
    },
    Passthrough,
}

fn weights_differ(hosts: &[Arc<Host>]) -> bool {
    hosts.windows(2).any(|w| w[0].weight() != w[1].weight())
}

impl Balancer {
    pub fn new(policy: &ClusterPolicy, hosts: &[Arc<Host>]) -> Balancer {
        let weighted = weights_differ(hosts);
        let slow = policy.slow_start;
        let now = Instant::now();
        let edf = weighted || slow.is_some();
        match policy.lb {
            BalancerKind::LeastRequest => Balancer::LeastRequest {
                edf: edf.then(|| {
                    Mutex::new(Edf::new(hosts.len(), |i| {
                        lr_weight(&hosts[i], slow.as_ref(), now)
                    }))
                }),
                weighted,
                slow,
            },
            BalancerKind::RoundRobin => Balancer::RoundRobin {
                // Envoy starts each balancer at a random position so that
                // proxies do not all hit the first host together.
                cursor: AtomicUsize::new(if hosts.is_empty() {
                    0
                } else {
                    random::random_range(0..hosts.len())
                }),
                group_cursors: (0..hosts.len())
                    .map(|_| AtomicUsize::new(random::random_range(0..hosts.len())))
                    .collect(),
                edf: edf.then(|| {
                    Mutex::new(Edf::new(hosts.len(), |i| {
                        rr_weight(&hosts[i], slow.as_ref(), now)
                    }))
                }),
                weighted,
                slow,
            },
            BalancerKind::Random => Balancer::Random { weighted },
            BalancerKind::Passthrough => Balancer::Passthrough,
            BalancerKind::ConsistentHash => Balancer::ConsistentHash {
                table: policy.hash.and_then(|algorithm| {
                    let addrs: Vec<(&str, u32)> = hosts
                        .iter()
                        .map(|h| (&**h.authority(), h.weight()))
                        .collect();
                    match HashRing::build(algorithm, &addrs) {
                        Ok(ring) => Some(Arc::new(ring) as Arc<dyn HashTable>),
                        Err(e) => {
                            tracing::warn!(
                                error = %e,
                                "consistentHash table not built: hosts are picked at random"
                            );
                            None
                        }
                    }
                }),
            },
        }
    }

    pub fn kind(&self) -> BalancerKind {
        match self {
            Balancer::LeastRequest { .. } => BalancerKind::LeastRequest,
            Balancer::RoundRobin { .. } => BalancerKind::RoundRobin,
            Balancer::Random { .. } => BalancerKind::Random,
            Balancer::ConsistentHash { .. } => BalancerKind::ConsistentHash,
            Balancer::Passthrough => BalancerKind::Passthrough,
        }
    }

    /// The index in `hosts` of the host for this request.
    pub fn pick(&self, hosts: &[Arc<Host>], p: &Pick<'_>) -> Result<usize, PickError> {
        if matches!(self, Balancer::Passthrough) {
            return Err(PickError::Passthrough);
        }
        let available = |i: usize| {
            p.eligible.is_none_or(|m| m.get(i) != Some(&false))
                && p.group.is_none_or(|(g, chosen)| g.get(i) == Some(&chosen))
        };
        let fresh = |i: usize| available(i) && !p.avoid.iter().any(|a| Arc::ptr_eq(a, &hosts[i]));
        if !p.avoid.is_empty()
            && let Some(i) = self.choose(hosts, p, &fresh)
        {
            return Ok(i);
        }
        self.choose(hosts, p, &available).ok_or(PickError::NoHost)
    }

    fn choose(
        &self,
        hosts: &[Arc<Host>],
        p: &Pick<'_>,
        ok: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        let n = hosts.len();
        if n == 0 {
            return None;
        }
        let (now, hash) = (p.now, p.hash);
        match self {
            Balancer::LeastRequest {
                edf: Some(edf),
                weighted,
                slow,
            } if *weighted || warming(hosts, slow.as_ref(), now) => {
                lock(edf).pick(ok, |i| lr_weight(&hosts[i], slow.as_ref(), now))
            }
            Balancer::LeastRequest { .. } => {
                let m = (0..n).filter(|&i| ok(i)).count();
                if m == 0 {
                    return None;
                }
                let mut best: Option<usize> = None;
                for _ in 0..CHOICE_COUNT {
                    let i = nth(n, ok, random::random_range(0..m))?;
                    if best.is_none_or(|b| hosts[i].active() < hosts[b].active()) {
                        best = Some(i);
                    }
                }
                best
            }
            Balancer::RoundRobin {
                edf: Some(edf),
                weighted,
                slow,
                ..
            } if *weighted || warming(hosts, slow.as_ref(), now) => {
                lock(edf).pick(ok, |i| rr_weight(&hosts[i], slow.as_ref(), now))
            }
            Balancer::RoundRobin {
                cursor,
                group_cursors,
                ..
            } => {
                let cursor = p
                    .group
                    .and_then(|(_, g)| group_cursors.get(g as usize))
                    .unwrap_or(cursor);
                (0..n)
                    .map(|_| cursor.fetch_add(1, Ordering::Relaxed) % n)
                    .find(|&i| ok(i))
            }
            Balancer::Random { weighted } => random(hosts, ok, *weighted),
            Balancer::ConsistentHash { table } => {
                if let Some(t) = table
                    && let Some(i) = t
                        .pick_excluding(hash.unwrap_or_else(random::random), &|i| !(i < n && ok(i)))
                {
                    return Some(i);
                }
                random(hosts, ok, true)
            }
            Balancer::Passthrough => None,
        }
    }
}

fn lock(m: &Mutex<Edf>) -> std::sync::MutexGuard<'_, Edf> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host's endpoint weight, scaled by the slow-start factor while the
/// host is in its window (Envoy `applySlowStartFactor`).
pub fn rr_weight(h: &Host, slow: Option<&SlowStart>, now: Instant) -> f64 {
    let w = h.weight() as f64;
    match slow {
        Some(s) => w * s.factor(now.saturating_duration_since(h.added)),
        None => w,
    }
}

/// Envoy's least-request weight with `active_request_bias` 1.0, after slow
/// start.
pub fn lr_weight(h: &Host, slow: Option<&SlowStart>, now: Instant) -> f64 {
    rr_weight(h, slow, now) / (h.active() as f64 + 1.0)
}

/// Whether some host is still in its slow-start window at `now`.
fn warming(hosts: &[Arc<Host>], slow: Option<&SlowStart>, now: Instant) -> bool {
    slow.is_some_and(|s| {
        hosts
            .iter()
            .any(|h| now.saturating_duration_since(h.added) < s.window)
    })
}

/// The `k`-th index below `n` that satisfies `ok`.
fn nth(n: usize, ok: &dyn Fn(usize) -> bool, k: usize) -> Option<usize> {
    (0..n).filter(|&i| ok(i)).nth(k)
}

fn random(hosts: &[Arc<Host>], ok: &dyn Fn(usize) -> bool, weighted: bool) -> Option<usize> {
    let n = hosts.len();
    if !weighted {
        let m = (0..n).filter(|&i| ok(i)).count();
        return (m > 0).then(|| nth(n, ok, random::random_range(0..m)))?;
    }
    let total: u64 = (0..n)
        .filter(|&i| ok(i))
        .map(|i| hosts[i].weight() as u64)
        .sum();
    if total == 0 {
        return None;
    }
    let mut roll = random::random_range(0..total);
    for i in (0..n).filter(|&i| ok(i)) {
        let w = hosts[i].weight() as u64;
        if roll < w {
            return Some(i);
        }
        roll -= w;
    }
    None
}

/// Envoy's earliest-deadline-first scheduler: each host is due at
/// `now + 1 / weight`; the earliest is picked and rescheduled with its
/// weight at that moment.
#[derive(Debug)]
pub struct Edf {
    now: f64,
    seq: u64,
    heap: BinaryHeap<Reverse<Slot>>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    deadline: f64,
    seq: u64,
    idx: usize,
}

impl PartialEq for Slot {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == CmpOrdering::Equal
    }
}
impl Eq for Slot {}
impl PartialOrd for Slot {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Slot {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        self.deadline
            .total_cmp(&o.deadline)
            .then(self.seq.cmp(&o.seq))
    }
}

impl Edf {
    pub fn new(n: usize, weight: impl Fn(usize) -> f64) -> Edf {
        let mut e = Edf {
            now: 0.0,
            seq: 0,
            heap: BinaryHeap::with_capacity(n),
        };
        for i in 0..n {
            e.push(i, weight(i));
        }
        e
    }

    fn push(&mut self, idx: usize, weight: f64) {
        let w = if weight > 0.0 {
            weight
        } else {
            f64::MIN_POSITIVE
        };
        self.seq += 1;
        self.heap.push(Reverse(Slot {
            deadline: self.now + 1.0 / w,
            seq: self.seq,
            idx,
        }));
    }

    /// The earliest-due host that satisfies `ok`; hosts skipped keep their
    /// place. At most one pass over the hosts.
    pub fn pick(
        &mut self,
        ok: &dyn Fn(usize) -> bool,
        weight: impl Fn(usize) -> f64,
    ) -> Option<usize> {
        let mut skipped = Vec::new();
        let mut found = None;
        while let Some(Reverse(s)) = self.heap.pop() {
            if ok(s.idx) {
                self.now = self.now.max(s.deadline);
                found = Some(s.idx);
                break;
            }
            skipped.push(s);
        }
        for s in skipped {
            self.heap.push(Reverse(s));
        }
        if let Some(i) = found {
            self.push(i, weight(i));
        }
        found
    }
}

#[cfg(test)]
mod tests;
