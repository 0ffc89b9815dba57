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
mod tests {
    use super::*;
    use crate::compile::cluster_policy::{DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MIN_RING_SIZE};
    use crate::model::ConsistentHashLB;
    use crate::model::{MagLev, RingHash};
    use http::{HeaderMap, HeaderValue};
    use std::net::{IpAddr, Ipv4Addr};

    const HOSTS: [(&str, u32); 3] = [("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)];

    /// Deterministic pseudo-random keys (splitmix64), no RNG dependency.
    fn keys(n: usize) -> Vec<u64> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = x;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            })
            .collect()
    }

    fn both(hosts: &[(&str, u32)]) -> [HashRing; 2] {
        [
            HashRing::ring_hash(hosts, DEFAULT_MIN_RING_SIZE),
            HashRing::maglev(hosts, DEFAULT_MAGLEV_TABLE_SIZE).unwrap(),
        ]
    }

    fn shares(ring: &HashRing, n_hosts: usize, keys: &[u64]) -> Vec<usize> {
        let mut counts = vec![0; n_hosts];
        for &k in keys {
            counts[ring.pick(k).unwrap()] += 1;
        }
        counts
    }

    #[test]
    fn xxhash_matches_reference_vectors() {
        // xxHash64 reference values (seed 0), the function Envoy uses.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
    }

    #[test]
    fn same_key_same_host_and_deterministic() {
        for ring in both(&HOSTS) {
            let again = match ring.table {
                Table::Ring(_) => HashRing::ring_hash(&HOSTS, DEFAULT_MIN_RING_SIZE),
                Table::Maglev(_) => HashRing::maglev(&HOSTS, DEFAULT_MAGLEV_TABLE_SIZE).unwrap(),
            };
            for k in keys(500) {
                assert_eq!(ring.pick(k), ring.pick(k));
                assert_eq!(ring.pick(k), again.pick(k));
            }
        }
        // Pinned values: a change in construction would move every sticky session.
        let ring = HashRing::ring_hash(&HOSTS, DEFAULT_MIN_RING_SIZE);
        let first = match &ring.table {
            Table::Ring(r) => r[0],
            _ => unreachable!(),
        };
        let expected = [0u64, 1, 2]
            .iter()
            .flat_map(|&h| {
                (0..342u64).map(move |i| {
                    (
                        xxh64(format!("{}_{}", HOSTS[h as usize].0, i).as_bytes(), 0),
                        h as usize,
                    )
                })
            })
            .min()
            .unwrap();
        assert_eq!(first, expected);
    }

    #[test]
    fn keys_spread_across_hosts() {
        let ks = keys(3000);
        for ring in both(&HOSTS) {
            let counts = shares(&ring, 3, &ks);
            for c in counts {
                assert!((700..=1300).contains(&c), "unbalanced: {c} of 3000");
            }
        }
    }

    #[test]
    fn removing_a_host_moves_mostly_its_keys() {
        let ks = keys(3000);
        let two = [HOSTS[0], HOSTS[2]];
        let to_full = [0usize, 2];
        // Ring hash: ~87% stay. Envoy sizes each host's share of a 1024 ring by
        // the host count (342 entries each for 3 hosts, 512 for 2), so the
        // survivors' new entries also capture some of each other's keys.
        // Maglev keeps every survivor's key here.
        let thresholds = [85, 99];
        for ((before, after), min_pct) in both(&HOSTS).iter().zip(both(&two).iter()).zip(thresholds)
        {
            let mut kept = 0;
            let mut others = 0;
            for &k in &ks {
                let b = before.pick(k).unwrap();
                if b == 1 {
                    continue;
                }
                others += 1;
                if to_full[after.pick(k).unwrap()] == b {
                    kept += 1;
                }
            }
            assert!(kept * 100 >= others * min_pct, "kept {kept} of {others}");
        }
    }

    #[test]
    fn weights_skew_the_share() {
        let hosts = [("10.0.0.1:80", 1), ("10.0.0.2:80", 3)];
        let ks = keys(4000);
        for ring in both(&hosts) {
            let c = shares(&ring, 2, &ks);
            let heavy = c[1] as f64 / 4000.0;
            assert!((0.65..0.85).contains(&heavy), "heavy share {heavy}");
        }
        let ring = HashRing::ring_hash(&hosts, 1024);
        let per = ring.entries_per_host(2);
        assert_eq!(per, vec![256, 768]);
    }

    #[test]
    fn minimum_ring_size_respected() {
        for min in [1u64, 10, 1024, 5000] {
            let ring = HashRing::ring_hash(&HOSTS, min);
            assert!(ring.len() as u64 >= min, "{} < {min}", ring.len());
            // Each host gets ceil(min/3) entries: equal weights, equal counts.
            let per = ring.entries_per_host(3);
            assert!(per.iter().all(|&c| c == per[0] && c > 0));
        }
        assert_eq!(HashRing::ring_hash(&HOSTS, 1024).len(), 1026);
        // Capped at the maximum ring size (Envoy's 8M by default).
        assert_eq!(HashRing::ring_hash_bounded(&HOSTS, 5000, 600).len(), 600);
    }

    #[test]
    fn maglev_table_size_must_be_prime() {
        assert_eq!(
            HashRing::maglev(&HOSTS, 65536).unwrap_err(),
            HashError::MaglevTableSizeNotPrime(65536)
        );
        assert!(HashRing::maglev(&HOSTS, 1).is_err());
        let t = HashRing::maglev(&HOSTS, 13).unwrap();
        assert_eq!(t.len(), 13);
        assert!(t.entries_per_host(3).iter().all(|&c| c >= 4));
        assert!(is_prime(65537) && is_prime(5000011) && !is_prime(5000013 * 3));
    }

    #[test]
    fn algorithm_from_policy() {
        let mut p = ConsistentHashLB::default();
        assert_eq!(
            HashAlgorithm::from_policy(&p),
            HashAlgorithm::RingHash {
                minimum_ring_size: 1024
            }
        );
        p.minimum_ring_size = Some(50);
        assert_eq!(
            HashAlgorithm::from_policy(&p),
            HashAlgorithm::RingHash {
                minimum_ring_size: 50
            }
        );
        p.minimum_ring_size = None;
        p.ring_hash = Some(RingHash {
            minimum_ring_size: Some(2048),
        });
        assert_eq!(
            HashAlgorithm::from_policy(&p),
            HashAlgorithm::RingHash {
                minimum_ring_size: 2048
            }
        );
        p.ring_hash = None;
        p.maglev = Some(MagLev { table_size: None });
        assert_eq!(
            HashAlgorithm::from_policy(&p),
            HashAlgorithm::Maglev { table_size: 65537 }
        );
        p.maglev = Some(MagLev {
            table_size: Some(251),
        });
        assert_eq!(
            HashAlgorithm::from_policy(&p),
            HashAlgorithm::Maglev { table_size: 251 }
        );
        assert!(HashRing::build(HashAlgorithm::from_policy(&p), &HOSTS).is_ok());
        let too_big = HashAlgorithm::RingHash {
            minimum_ring_size: DEFAULT_MAX_RING_SIZE + 1,
        };
        assert!(matches!(
            HashRing::build(too_big, &HOSTS),
            Err(HashError::MinimumRingSizeTooLarge(_))
        ));
    }

    #[test]
    fn empty_and_zero_weight_hosts() {
        for ring in both(&[]) {
            assert_eq!(ring.pick(42), None);
            assert_eq!(ring.pick_excluding(42, |_| false), None);
        }
        let hosts = [("a:1", 0), ("b:1", 1)];
        for ring in both(&hosts) {
            for k in keys(100) {
                assert_eq!(ring.pick(k), Some(1));
            }
        }
    }

    #[test]
    fn pick_excluding_skips_to_an_acceptable_host() {
        let ks = keys(1000);
        for ring in both(&HOSTS) {
            for &k in &ks {
                let first = ring.pick(k).unwrap();
                assert_eq!(ring.pick_excluding(k, |_| false), Some(first));
                let other = ring.pick_excluding(k, |i| i == first).unwrap();
                assert_ne!(other, first);
                assert_eq!(ring.pick_excluding(k, |i| i != 2), Some(2));
                assert_eq!(ring.pick_excluding(k, |_| true), None);
            }
        }
        // Ring: the walk lands on the next entry's host.
        let ring = HashRing::ring_hash(&HOSTS, 16);
        if let Table::Ring(r) = &ring.table {
            let (h0, i0) = r[0];
            let next = r.iter().map(|&(_, i)| i).find(|&i| i != i0).unwrap();
            assert_eq!(ring.pick(h0), Some(i0));
            assert_eq!(ring.pick_excluding(h0, |i| i == i0), Some(next));
            // Past the last entry wraps to the first.
            assert_eq!(ring.pick(r.last().unwrap().0 + 1), Some(i0));
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));

    #[test]
    fn request_hash_drives_ring_end_to_end() {
        let ring = HashRing::ring_hash(&HOSTS, DEFAULT_MIN_RING_SIZE);
        let key = HashKey::Header("x-user".into());
        let pick = |user: &str| {
            let r = key.compute(&headers(&[("x-user", user)]), None, SRC);
            ring.pick(r.hash.unwrap()).unwrap()
        };
        let users: Vec<String> = (0..300).map(|i| format!("user-{i}")).collect();
        let mut seen = [0; 3];
        for u in &users {
            assert_eq!(pick(u), pick(u));
            seen[pick(u)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 50), "{seen:?}");
    }
}
