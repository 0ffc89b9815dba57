//! Consistent-hash load balancing (`ConsistentHashLB`), as Envoy runs it.
//!
//! Two halves, both pure:
//! - [`HashRing`]: the host lookup structure, either Envoy's ketama ring
//!   (`RING_HASH`) or its Maglev table (`MAGLEV`), built from
//!   `(address, weight)` pairs. Addresses should be written as Envoy's
//!   `Address::asString()` does (`10.0.0.1:8080`, `[::1]:8080`) so that the
//!   same endpoints land on the same ring positions as under Envoy.
//! - the request hash policy ([`HashKey`], Envoy `RouteAction.HashPolicy`)
//!   lives in `route::hash_policy`: it is compiled per route and cluster.
//!
//! Every hash is xxHash64 with seed 0, as Envoy's `HashUtil::xxHash64`; there
//! is no randomness anywhere, so results are identical across runs and
//! processes.

use xxhash_rust::xxh64::xxh64;

use crate::compile::cluster_policy::HashAlgorithm;
pub use crate::route::hash_policy::{HashKey, HashResult};

/// Envoy `RingHashLoadBalancer::DefaultMaxRingSize` (8M). Istio never sets it.
pub const DEFAULT_MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Why a hash lookup structure could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Envoy `MaglevLoadBalancer` constructor: "The table size of maglev must
    /// be prime number" (the cluster is rejected; there is no fallback).
    #[error("The table size of maglev must be prime number (got {0})")]
    MaglevTableSizeNotPrime(u64),
    /// Envoy `RingHashLoadBalancer` constructor: "ring hash: minimum_ring_size
    /// (N) > maximum_ring_size (8388608)"; Istio never sets the maximum.
    #[error("ring hash: minimum_ring_size ({0}) > maximum_ring_size (8388608)")]
    MinimumRingSizeTooLarge(u64),
}

#[derive(Debug, Clone)]
enum Table {
    /// Sorted `(hash, host index)` entries.
    Ring(Vec<(u64, usize)>),
    /// `table[hash % len]` is a host index.
    Maglev(Vec<u32>),
}

/// A consistent-hash lookup structure over a slice of hosts; lookups return
/// indexes into the slice it was built from.
///
/// Hosts with weight 0 get no entries (Envoy requires weights ≥ 1, so it
/// never sees them). Envoy builds the structure from the *healthy* hosts of a
/// priority only, rebuilding it when health changes; callers wanting exact
/// Envoy behaviour after an ejection rebuild over the remaining hosts, and use
/// [`HashRing::pick_excluding`] to skip hosts for a single request.
#[derive(Debug, Clone)]
pub struct HashRing {
    table: Table,
}

/// Normalized weights as Envoy's `normalizeHostWeights`
/// (thread_aware_lb_impl.cc): `weight / sum`, plus min and max.
fn normalize(hosts: &[(&str, u32)]) -> (Vec<(usize, f64)>, f64, f64) {
    let sum: u64 = hosts.iter().map(|&(_, w)| u64::from(w)).sum();
    let mut out = Vec::with_capacity(hosts.len());
    let mut min = 1.0f64;
    let mut max = 0.0f64;
    if sum == 0 {
        return (out, min, max);
    }
    for (i, &(_, w)) in hosts.iter().enumerate() {
        if w == 0 {
            continue;
        }
        let nw = f64::from(w) / sum as f64;
        min = min.min(nw);
        max = max.max(nw);
        out.push((i, nw));
    }
    (out, min, max)
}

/// Trial division; table sizes are below Istio's 5000011 limit, so this is cheap.
/// Mirrors Envoy `Primes::isPrime`.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

impl HashRing {
    /// Builds the structure `algorithm` names, failing where Envoy rejects
    /// the cluster (non-prime Maglev table, minimum ring above 8M).
    pub fn build(algorithm: HashAlgorithm, hosts: &[(&str, u32)]) -> Result<HashRing, HashError> {
        match algorithm {
            HashAlgorithm::RingHash { minimum_ring_size } => {
                if minimum_ring_size > DEFAULT_MAX_RING_SIZE {
                    return Err(HashError::MinimumRingSizeTooLarge(minimum_ring_size));
                }
                Ok(HashRing::ring_hash(hosts, minimum_ring_size))
            }
            HashAlgorithm::Maglev { table_size } => HashRing::maglev(hosts, table_size),
        }
    }

    /// Envoy `RingHashLoadBalancer::Ring::Ring` (ring_hash_lb.cc) with the
    /// default `XX_HASH` function and `maximum_ring_size` 8M.
    ///
    /// `scale = min(ceil(min_weight * min_ring_size) / min_weight, max)`, so the
    /// least-weighted host gets a whole number of entries; each host then
    /// gets `scale * weight` entries (running sums keep the total at
    /// `ceil(scale)`), entry `i` hashed as xxHash64 of `"<address>_<i>"`.
    /// The ring is sorted by hash. A minimum above 8M is clamped here (Envoy
    /// rejects it; [`HashRing::build`] does too).
    pub fn ring_hash(hosts: &[(&str, u32)], minimum_ring_size: u64) -> HashRing {
        HashRing::ring_hash_bounded(hosts, minimum_ring_size, DEFAULT_MAX_RING_SIZE)
    }

    fn ring_hash_bounded(hosts: &[(&str, u32)], minimum_ring_size: u64, max: u64) -> HashRing {
        let (weights, min_nw, _) = normalize(hosts);
        if weights.is_empty() {
            return HashRing {
                table: Table::Ring(Vec::new()),
            };
        }
        let min_ring = minimum_ring_size.min(max) as f64;
        let scale = ((min_nw * min_ring).ceil() / min_nw).min(max as f64);
        let ring_size = scale.ceil() as usize;
        let mut ring = Vec::with_capacity(ring_size);
        let mut current = 0.0f64;
        let mut target = 0.0f64;
        let mut key = String::new();
        for &(index, nw) in &weights {
            let address = hosts[index].0;
            target += scale * nw;
            let mut i = 0u64;
            while current < target {
                key.clear();
                key.push_str(address);
                key.push('_');
                key.push_str(&i.to_string());
                ring.push((xxh64(key.as_bytes(), 0), index));
                i += 1;
                current += 1.0;
            }
        }
        ring.sort_by_key(|&(hash, _)| hash);
        HashRing {
            table: Table::Ring(ring),
        }
    }

    /// Envoy `MaglevTable::constructMaglevTableInternal` and
    /// `OriginalMaglevTable::constructImplementationInternals` (maglev_lb.cc).
    ///
    /// Hosts are sorted by address; each gets `offset = xxHash64(addr, 0) % M`
    /// and `skip = xxHash64(addr, 1) % (M - 1) + 1`, and the table is filled
    /// round by round with permutation `(offset + skip * next) % M`, a host
    /// taking a slot in a round only when `round * weight >= target`
    /// (weighted Maglev). `table_size` must be prime, as Envoy requires.
    pub fn maglev(hosts: &[(&str, u32)], table_size: u64) -> Result<HashRing, HashError> {
        if !is_prime(table_size) {
            return Err(HashError::MaglevTableSizeNotPrime(table_size));
        }
        let (weights, _, max_nw) = normalize(hosts);
        if weights.is_empty() {
            return Ok(HashRing {
                table: Table::Maglev(Vec::new()),
            });
        }
        struct Entry {
            index: usize,
            offset: u64,
            skip: u64,
            weight: f64,
            target: f64,
            next: u64,
        }
        let mut sorted: Vec<(&str, usize, f64)> = weights
            .iter()
            .map(|&(index, nw)| (hosts[index].0, index, nw))
            .collect();
        // Envoy sorts (address, host pointer, weight) tuples; the address decides.
        sorted.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        let mut entries: Vec<Entry> = sorted
            .iter()
            .map(|&(address, index, weight)| Entry {
                index,
                offset: xxh64(address.as_bytes(), 0) % table_size,
                skip: xxh64(address.as_bytes(), 1) % (table_size - 1) + 1,
                weight,
                target: 0.0,
                next: 0,
            })
            .collect();
        const EMPTY: u32 = u32::MAX;
        let size = table_size as usize;
        let mut table = vec![EMPTY; size];
        let permutation = |e: &Entry| -> usize {
            ((u128::from(e.offset) + u128::from(e.skip) * u128::from(e.next))
                % u128::from(table_size)) as usize
        };
        let mut filled = 0usize;
        let mut iteration = 1u64;
        while filled < size {
            for entry in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                if (iteration as f64) * entry.weight < entry.target {
                    continue;
                }
                entry.target += max_nw;
                let mut c = permutation(entry);
                while table[c] != EMPTY {
                    entry.next += 1;
                    c = permutation(entry);
                }
                table[c] = entry.index as u32;
                entry.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Ok(HashRing {
            table: Table::Maglev(table),
        })
    }

    /// Number of ring entries or table slots.
    pub fn len(&self) -> usize {
        match &self.table {
            Table::Ring(r) => r.len(),
            Table::Maglev(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries/slots each host index owns (for stats and tests).
    pub fn entries_per_host(&self, hosts: usize) -> Vec<usize> {
        let mut counts = vec![0usize; hosts];
        match &self.table {
            Table::Ring(r) => r.iter().for_each(|&(_, i)| counts[i] += 1),
            Table::Maglev(t) => t.iter().for_each(|&i| counts[i as usize] += 1),
        }
        counts
    }

    /// Envoy `RingHashLoadBalancer::Ring::chooseHost` (the ketama search: the
    /// first entry whose hash is ≥ `hash`, wrapping to the first entry) or
    /// `OriginalMaglevTable::chooseHost` (`table[hash % size]`).
    pub fn pick(&self, hash: u64) -> Option<usize> {
        match &self.table {
            Table::Ring(ring) => ring.get(ring_start(ring, hash)?).map(|&(_, i)| i),
            Table::Maglev(table) if table.is_empty() => None,
            Table::Maglev(table) => Some(table[(hash % table.len() as u64) as usize] as usize),
        }
    }

    /// Like [`pick`](Self::pick), but skips hosts for which `skip` is true
    /// (ejected, or already tried). `None` when every host is skipped.
    ///
    /// Ring: walks forward from the chosen entry, wrapping, as Envoy's
    /// `chooseHost(h, attempt)` does with `(midp + attempt) % size`.
    /// Maglev: first tries Envoy's retry mutation `hash ^ (!0 - attempt + 1)`
    /// for a bounded number of attempts, then walks the table linearly so that
    /// an acceptable host is always found when one exists.
    pub fn pick_excluding(&self, hash: u64, skip: impl Fn(usize) -> bool) -> Option<usize> {
        match &self.table {
            Table::Ring(ring) => {
                let start = ring_start(ring, hash)?;
                (0..ring.len())
                    .map(|step| ring[(start + step) % ring.len()].1)
                    .find(|&i| !skip(i))
            }
            Table::Maglev(table) => {
                if table.is_empty() {
                    return None;
                }
                let size = table.len() as u64;
                const MUTATED_ATTEMPTS: u64 = 32;
                for attempt in 0..=MUTATED_ATTEMPTS {
                    let h = if attempt == 0 {
                        hash
                    } else {
                        hash ^ (!0u64).wrapping_sub(attempt).wrapping_add(1)
                    };
                    let i = table[(h % size) as usize] as usize;
                    if !skip(i) {
                        return Some(i);
                    }
                }
                let start = (hash % size) as usize;
                (0..table.len())
                    .map(|step| table[(start + step) % table.len()] as usize)
                    .find(|&i| !skip(i))
            }
        }
    }
}

/// Index of the first ring entry with hash ≥ `hash`, wrapping to 0.
fn ring_start(ring: &[(u64, usize)], hash: u64) -> Option<usize> {
    if ring.is_empty() {
        return None;
    }
    let i = ring.partition_point(|&(h, _)| h < hash);
    Some(if i == ring.len() { 0 } else { i })
}

#[cfg(test)]
mod tests;
