use super::*;
use crate::compile::cluster_policy::{DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MIN_RING_SIZE};
use crate::model::ConsistentHashLB;
use crate::model::{MagLev, RingHash};
use http::HeaderValue;
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
    for ((before, after), min_pct) in both(&HOSTS).iter().zip(both(&two).iter()).zip(thresholds) {
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

fn headers(pairs: &[(&str, &str)]) -> crate::header_list::HeaderList {
    let mut h = crate::header_list::HeaderList::new();
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
