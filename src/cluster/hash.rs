//! Consistent-hash load balancing (`ConsistentHashLB`), as Envoy runs it.
//!
//! Two halves, both pure:
//! - [`HashRing`]: the host lookup structure, either Envoy's ketama ring
//!   (`RING_HASH`) or its Maglev table (`MAGLEV`), built from
//!   `(address, weight)` pairs. Addresses should be written as Envoy's
//!   `Address::asString()` does (`10.0.0.1:8080`, `[::1]:8080`) so that the
//!   same endpoints land on the same ring positions as under Envoy.
//! - [`HashKey`]: the request hash policy (Envoy `RouteAction.HashPolicy`),
//!   computing a request's 64-bit hash from a header, a cookie (generating
//!   one when absent and a TTL is set), the source IP or a query parameter.
//!
//! Every hash is xxHash64 with seed 0, as Envoy's `HashUtil::xxHash64`; there
//! is no randomness anywhere, so results are identical across runs and
//! processes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use xxhash_rust::xxh64::{Xxh64, xxh64};

use crate::model::ConsistentHashLB;

/// Envoy `RingHashLoadBalancer::DefaultMinRingSize`; also what Istio sets.
pub const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy `RingHashLoadBalancer::DefaultMaxRingSize` (8M). Istio never sets it.
pub const DEFAULT_MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Envoy `MaglevTable::DefaultTableSize`, the paper's recommended prime.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;

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

/// Which consistent-hash algorithm a cluster uses, with its size parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    RingHash { minimum_ring_size: u64 },
    Maglev { table_size: u64 },
}

impl HashAlgorithm {
    /// Mirrors Istio `ApplyRingHashLoadBalancer` (cluster_traffic_policy.go):
    /// `maglev` → MAGLEV (table size only when non-zero, else Envoy's 65537);
    /// `ringHash` → RING_HASH (minimum size only when non-zero, else 1024);
    /// neither → RING_HASH with the deprecated `minimumRingSize` or 1024.
    pub fn from_policy(policy: &ConsistentHashLB) -> HashAlgorithm {
        if let Some(maglev) = &policy.maglev {
            let table_size = maglev
                .table_size
                .filter(|&n| n != 0)
                .unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE);
            return HashAlgorithm::Maglev { table_size };
        }
        let minimum_ring_size = match &policy.ring_hash {
            Some(ring) => ring.minimum_ring_size,
            None => policy.minimum_ring_size,
        }
        .filter(|&n| n != 0)
        .unwrap_or(DEFAULT_MIN_RING_SIZE);
        HashAlgorithm::RingHash { minimum_ring_size }
    }
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

/// The request hash policy: Envoy `RouteAction.HashPolicy`, as Istio builds
/// it from `ConsistentHashLB.hash_key` (`consistentHashToHashPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName` (lower-cased, as Envoy's `LowerCaseString`). Envoy can
    /// also hash pseudo-headers such as `:authority`; an `http::HeaderMap`
    /// does not hold them, so such a name finds no value here.
    Header(String),
    /// `httpCookie`.
    Cookie {
        name: String,
        path: Option<String>,
        /// Set: a cookie is generated when absent (`0` makes it a session cookie).
        ttl: Option<Duration>,
        /// `attributes` (Istio 1.28): `(name, value)`, appended to `Set-Cookie`.
        attributes: Vec<(String, String)>,
    },
    /// `useSourceIp`.
    SourceIp,
    /// `httpQueryParameterName`.
    QueryParameter(String),
}

/// The outcome of hashing one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashResult {
    /// `None`: no key in the request; Envoy then picks a random host.
    pub hash: Option<u64>,
    /// A generated cookie, to add as a `Set-Cookie` response header.
    pub set_cookie: Option<HeaderValue>,
}

impl HashKey {
    /// The hash key of a `ConsistentHashLB`, `None` when it has none
    /// (`useSourceIp: false` counts as none, as Istio emits no policy).
    pub fn from_policy(policy: &ConsistentHashLB) -> Option<HashKey> {
        if let Some(name) = &policy.http_header_name {
            return Some(HashKey::Header(name.to_ascii_lowercase()));
        }
        if let Some(cookie) = &policy.http_cookie {
            return Some(HashKey::Cookie {
                name: cookie.name.clone().unwrap_or_default(),
                path: cookie.path.clone().filter(|p| !p.is_empty()),
                ttl: cookie.ttl.as_ref().map(|d| d.as_std()),
                attributes: cookie
                    .attributes
                    .iter()
                    .map(|a| {
                        (
                            a.name.clone().unwrap_or_default(),
                            a.value.clone().unwrap_or_default(),
                        )
                    })
                    .collect(),
            });
        }
        if policy.use_source_ip == Some(true) {
            return Some(HashKey::SourceIp);
        }
        if let Some(name) = &policy.http_query_parameter_name {
            return Some(HashKey::QueryParameter(name.clone()));
        }
        None
    }

    /// Hashes a request. `query` is the query string without the `?`;
    /// `source` is the downstream peer IP.
    ///
    /// A generated cookie is derived from `source` alone (port 0, unspecified
    /// local address): see [`compute_for_connection`](Self::compute_for_connection)
    /// for Envoy's exact per-connection value.
    pub fn compute(&self, headers: &HeaderMap, query: Option<&str>, source: IpAddr) -> HashResult {
        self.compute_for_connection(
            headers,
            query,
            SocketAddr::new(source, 0),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        )
    }

    /// [`compute`](Self::compute) with the full connection addresses, which
    /// Envoy's router (`Filter::addDownstreamSetCookie`) hashes to make the
    /// value of a generated cookie: 16 lower-case hex digits of
    /// `xxHash64(remote.asString() + local.asString())`, so every stream of
    /// one connection gets the same cookie.
    pub fn compute_for_connection(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> HashResult {
        match self {
            HashKey::Header(name) => HashResult {
                hash: header_hash(headers, name),
                set_cookie: None,
            },
            HashKey::Cookie {
                name,
                path,
                ttl,
                attributes,
            } => {
                let value = parse_cookie_value(headers, name);
                match (value, ttl) {
                    (Some(v), _) => HashResult {
                        hash: Some(xxh64(v.as_bytes(), 0)),
                        set_cookie: None,
                    },
                    (None, Some(ttl)) => {
                        let seed = format!("{remote}{local}");
                        let value = format!("{:016x}", xxh64(seed.as_bytes(), 0));
                        let header = make_set_cookie_value(
                            name,
                            &value,
                            path.as_deref().unwrap_or(""),
                            ttl.as_secs(),
                            attributes,
                        );
                        HashResult {
                            hash: Some(xxh64(value.as_bytes(), 0)),
                            set_cookie: HeaderValue::from_str(&header).ok(),
                        }
                    }
                    (None, None) => HashResult::default(),
                }
            }
            HashKey::SourceIp => HashResult {
                // Envoy `IpHashMethod`: the address without port, as
                // `addressAsString()` formats it (RFC 5952 for IPv6).
                hash: Some(xxh64(remote.ip().to_string().as_bytes(), 0)),
                set_cookie: None,
            },
            HashKey::QueryParameter(name) => HashResult {
                hash: query
                    .and_then(|q| first_query_value(q, name))
                    .map(|v| xxh64(v.as_bytes(), 0)),
                set_cookie: None,
            },
        }
    }
}

/// Envoy `HeaderHashMethod::evaluate`: all values of the header, sorted (so
/// order does not matter), hashed as one stream (no separators).
fn header_hash(headers: &HeaderMap, name: &str) -> Option<u64> {
    let mut values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
    if values.is_empty() {
        return None;
    }
    values.sort();
    let mut hasher = Xxh64::new(0);
    for v in values {
        hasher.update(v);
    }
    Some(hasher.digest())
}

/// Envoy `Utility::parseCookieValue`: the first `name=value` pair in any
/// `Cookie` header, split on `;`, leading spaces skipped, surrounding double
/// quotes removed. An empty value counts as absent (Envoy returns "").
fn parse_cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    for header in headers.get_all(http::header::COOKIE) {
        let Ok(text) = std::str::from_utf8(header.as_bytes()) else {
            continue;
        };
        for part in text.split(';') {
            let Some(eq) = part.find('=') else { continue };
            let key = part[..eq].trim_start_matches(' ');
            if key != name {
                continue;
            }
            let mut v = &part[eq + 1..];
            if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v = &v[1..v.len() - 1];
            }
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

/// Envoy `Utility::makeSetCookieValue` with `httponly = true`:
/// `name="value"; Max-Age=N; Path=p; attr=v; HttpOnly` (Max-Age omitted for a
/// zero TTL, Path omitted when empty, an attribute without value as its name).
fn make_set_cookie_value(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: u64,
    attributes: &[(String, String)],
) -> String {
    let mut out = format!("{name}=\"{value}\"");
    if max_age_secs != 0 {
        out.push_str(&format!("; Max-Age={max_age_secs}"));
    }
    if !path.is_empty() {
        out.push_str(&format!("; Path={path}"));
    }
    for (n, v) in attributes {
        if v.is_empty() {
            out.push_str(&format!("; {n}"));
        } else {
            out.push_str(&format!("; {n}={v}"));
        }
    }
    out.push_str("; HttpOnly");
    out
}

/// Envoy `QueryParamsMulti::parseQueryString(...).getFirstValue(name)`:
/// `&`-separated, split at the first `=`, no percent-decoding; a parameter
/// without `=` has the empty value.
fn first_query_value<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HTTPCookie, MagLev, RingHash};

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
    fn header_key() {
        let key = HashKey::Header("x-user".into());
        let r = key.compute(&headers(&[("x-user", "alice")]), None, SRC);
        assert_eq!(r.hash, Some(xxh64(b"alice", 0)));
        assert_eq!(r.set_cookie, None);
        assert_eq!(key.compute(&headers(&[]), None, SRC).hash, None);
        // Multiple values: order-independent, hashed as one stream.
        let a = key.compute(&headers(&[("x-user", "b"), ("x-user", "a")]), None, SRC);
        let b = key.compute(&headers(&[("x-user", "a"), ("x-user", "b")]), None, SRC);
        assert_eq!(a.hash, b.hash);
        assert_eq!(a.hash, Some(xxh64(b"ab", 0)));
        // Pseudo-headers are not in an http::HeaderMap: no key, no panic.
        let authority = HashKey::Header(":authority".into());
        assert_eq!(authority.compute(&headers(&[]), None, SRC).hash, None);
    }

    #[test]
    fn header_key_from_policy_is_lowercased() {
        let p = ConsistentHashLB {
            http_header_name: Some("X-User".into()),
            ..Default::default()
        };
        assert_eq!(
            HashKey::from_policy(&p),
            Some(HashKey::Header("x-user".into()))
        );
        assert_eq!(HashKey::from_policy(&ConsistentHashLB::default()), None);
        let p = ConsistentHashLB {
            use_source_ip: Some(false),
            ..Default::default()
        };
        assert_eq!(HashKey::from_policy(&p), None);
    }

    fn cookie_key(ttl: Option<Duration>, path: Option<&str>) -> HashKey {
        HashKey::Cookie {
            name: "session".into(),
            path: path.map(String::from),
            ttl,
            attributes: vec![],
        }
    }

    #[test]
    fn cookie_present_is_hashed() {
        let key = cookie_key(Some(Duration::from_secs(60)), None);
        let h = headers(&[("cookie", "a=1; session=\"xyz\"; b=2")]);
        let r = key.compute(&h, None, SRC);
        assert_eq!(r.hash, Some(xxh64(b"xyz", 0)));
        assert_eq!(r.set_cookie, None);
        // Second Cookie header, unquoted.
        let h = headers(&[("cookie", "a=1"), ("cookie", "session=xyz")]);
        assert_eq!(key.compute(&h, None, SRC).hash, Some(xxh64(b"xyz", 0)));
    }

    #[test]
    fn cookie_absent_without_ttl_is_random() {
        let key = cookie_key(None, None);
        let r = key.compute(&headers(&[("cookie", "other=1")]), None, SRC);
        assert_eq!(r, HashResult::default());
        // An empty value counts as absent.
        let r = key.compute(&headers(&[("cookie", "session=")]), None, SRC);
        assert_eq!(r, HashResult::default());
    }

    #[test]
    fn cookie_generated_when_absent_with_ttl() {
        let key = cookie_key(Some(Duration::from_secs(3600)), Some("/api"));
        let remote: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let local: SocketAddr = "10.0.0.9:8080".parse().unwrap();
        let r = key.compute_for_connection(&headers(&[]), None, remote, local);
        let value = format!("{:016x}", xxh64(b"10.1.2.3:4000010.0.0.9:8080", 0));
        assert_eq!(value.len(), 16);
        assert_eq!(r.hash, Some(xxh64(value.as_bytes(), 0)));
        assert_eq!(
            r.set_cookie.unwrap().to_str().unwrap(),
            format!("session=\"{value}\"; Max-Age=3600; Path=/api; HttpOnly")
        );
        // The client sending it back hashes to the same value.
        let back = headers(&[("cookie", &format!("session={value}"))]);
        assert_eq!(key.compute(&back, None, SRC).hash, r.hash);
        // Same connection, same cookie.
        let again = key.compute_for_connection(&headers(&[]), None, remote, local);
        assert_eq!(again.hash, r.hash);
    }

    #[test]
    fn session_cookie_and_attributes() {
        let key = HashKey::Cookie {
            name: "s".into(),
            path: None,
            ttl: Some(Duration::ZERO),
            attributes: vec![
                ("SameSite".into(), "Strict".into()),
                ("Secure".into(), String::new()),
            ],
        };
        let r = key.compute(&headers(&[]), None, SRC);
        assert!(r.hash.is_some());
        let v = r.set_cookie.unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("s=\""), "{v}");
        assert!(v.ends_with("\"; SameSite=Strict; Secure; HttpOnly"), "{v}");
        assert!(!v.contains("Max-Age"));
    }

    #[test]
    fn cookie_from_policy() {
        let p = ConsistentHashLB {
            http_cookie: Some(HTTPCookie {
                name: Some("user".into()),
                path: Some("/".into()),
                ttl: Some(crate::model::Duration::parse("1.5s").unwrap()),
                attributes: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(
            HashKey::from_policy(&p),
            Some(HashKey::Cookie {
                name: "user".into(),
                path: Some("/".into()),
                ttl: Some(Duration::from_millis(1500)),
                attributes: vec![],
            })
        );
        // Envoy keeps whole seconds of the TTL.
        let r = HashKey::from_policy(&p)
            .unwrap()
            .compute(&headers(&[]), None, SRC);
        assert!(
            r.set_cookie
                .unwrap()
                .to_str()
                .unwrap()
                .contains("; Max-Age=1; Path=/;")
        );
    }

    #[test]
    fn source_ip_key() {
        let key = HashKey::SourceIp;
        assert_eq!(
            key.compute(&headers(&[]), None, SRC).hash,
            Some(xxh64(b"10.1.2.3", 0))
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            key.compute(&headers(&[]), None, v6).hash,
            Some(xxh64(b"2001:db8::1", 0))
        );
        let p = ConsistentHashLB {
            use_source_ip: Some(true),
            ..Default::default()
        };
        assert_eq!(HashKey::from_policy(&p), Some(HashKey::SourceIp));
    }

    #[test]
    fn query_parameter_key() {
        let key = HashKey::QueryParameter("user".into());
        let h = headers(&[]);
        assert_eq!(
            key.compute(&h, Some("a=1&user=bob&user=eve"), SRC).hash,
            Some(xxh64(b"bob", 0))
        );
        assert_eq!(key.compute(&h, Some("user"), SRC).hash, Some(xxh64(b"", 0)));
        // Not percent-decoded, as Envoy's parseQueryString.
        assert_eq!(
            key.compute(&h, Some("user=a%20b"), SRC).hash,
            Some(xxh64(b"a%20b", 0))
        );
        assert_eq!(key.compute(&h, Some("users=x"), SRC).hash, None);
        assert_eq!(key.compute(&h, None, SRC).hash, None);
        let p = ConsistentHashLB {
            http_query_parameter_name: Some("user".into()),
            ..Default::default()
        };
        assert_eq!(HashKey::from_policy(&p), Some(key));
    }

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
