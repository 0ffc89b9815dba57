use super::*;
use crate::compile::Endpoint;
use crate::model::{LoadBalancerSettings, SimpleLB, TrafficPolicy};
use std::time::Duration;

/// The compiled policy of a DestinationRule with `lb` (`None`: none).
fn policy(lb: Option<&LoadBalancerSettings>) -> ClusterPolicy {
    ClusterPolicy::new(Some(&TrafficPolicy {
        load_balancer: lb.map(|l| Box::new(l.clone())),
        ..Default::default()
    }))
}

fn hosts(weights: &[u32]) -> Vec<Arc<Host>> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            Arc::new(Host::new(Endpoint {
                authority: format!("10.0.0.{i}:80").into(),
                labels: Default::default(),
                weight: *w,
                metric: 0,
                locality: None,
            }))
        })
        .collect()
}

fn lb(simple: SimpleLB) -> LoadBalancerSettings {
    LoadBalancerSettings {
        simple: Some(simple),
        ..Default::default()
    }
}

fn counts(b: &Balancer, h: &[Arc<Host>], n: usize) -> Vec<usize> {
    let mut c = vec![0; h.len()];
    for _ in 0..n {
        c[b.pick(h, &Pick::new(Instant::now(), &[])).unwrap()] += 1;
    }
    c
}

#[test]
fn default_lb_algorithm_is_least_request() {
    assert_eq!(BalancerKind::of(None), BalancerKind::LeastRequest);
    assert_eq!(
        BalancerKind::of(Some(&Default::default())),
        BalancerKind::LeastRequest
    );
    assert_eq!(
        BalancerKind::of(Some(&lb(SimpleLB::Unspecified))),
        BalancerKind::LeastRequest
    );
    assert_eq!(
        BalancerKind::of(Some(&lb(SimpleLB::LeastConn))),
        BalancerKind::LeastRequest
    );
    assert_eq!(
        BalancerKind::of(Some(&lb(SimpleLB::RoundRobin))),
        BalancerKind::RoundRobin
    );
    let ch = LoadBalancerSettings {
        consistent_hash: Some(Default::default()),
        ..Default::default()
    };
    assert_eq!(BalancerKind::of(Some(&ch)), BalancerKind::ConsistentHash);
}

#[test]
fn round_robin_rotates_evenly() {
    let h = hosts(&[1, 1, 1]);
    let b = Balancer::new(&policy(Some(&lb(SimpleLB::RoundRobin))), &h);
    assert_eq!(counts(&b, &h, 300), vec![100, 100, 100]);
}

#[test]
fn weighted_round_robin_follows_weights_exactly() {
    let h = hosts(&[1, 3]);
    let b = Balancer::new(&policy(Some(&lb(SimpleLB::RoundRobin))), &h);
    assert_eq!(counts(&b, &h, 400), vec![100, 300]);
}

#[test]
fn weighted_random_follows_weights() {
    let h = hosts(&[1, 9]);
    let b = Balancer::new(&policy(Some(&lb(SimpleLB::Random))), &h);
    let c = counts(&b, &h, 2000);
    // Expected 200 / 1800; the bounds are many standard deviations wide.
    assert!(c[0] > 80 && c[0] < 350, "{c:?}");
}

#[test]
fn least_request_prefers_the_idle_host() {
    let h = hosts(&[1, 1]);
    let b = Balancer::new(&policy(None), &h);
    let _busy: Vec<_> = (0..5).map(|_| h[0].begin()).collect();
    let c = counts(&b, &h, 400);
    // Two choices: host 0 wins only when both draws are host 0 (1/4).
    assert!(c[1] > c[0] * 2, "{c:?}");
}

#[test]
fn weighted_least_request_divides_weight_by_active_requests() {
    let h = hosts(&[2, 1]);
    let b = Balancer::new(&policy(None), &h);
    assert!(matches!(b, Balancer::LeastRequest { edf: Some(_), .. }));
    assert_eq!(counts(&b, &h, 300), vec![200, 100]);
    // Host 0 with 3 active requests has effective weight 2/4 < 1.
    let _busy: Vec<_> = (0..3).map(|_| h[0].begin()).collect();
    let c = counts(&b, &h, 300);
    assert!(c[1] > c[0], "{c:?}");
}

#[test]
fn previous_hosts_are_avoided_while_there_is_another_choice() {
    for simple in [
        SimpleLB::RoundRobin,
        SimpleLB::Random,
        SimpleLB::LeastRequest,
    ] {
        let h = hosts(&[1, 1, 1]);
        let b = Balancer::new(&policy(Some(&lb(simple))), &h);
        let avoid = vec![h[0].clone(), h[1].clone()];
        for _ in 0..50 {
            assert_eq!(b.pick(&h, &Pick::new(Instant::now(), &avoid)), Ok(2));
        }
        let all = h.clone();
        assert!(b.pick(&h, &Pick::new(Instant::now(), &all)).is_ok());
    }
}

fn slow_lb(simple: SimpleLB, window: &str) -> LoadBalancerSettings {
    serde_json::from_value(serde_json::json!({
        "simple": simple,
        "warmup": {"duration": window, "minimumPercent": 10},
    }))
    .unwrap()
}

/// Host 1 joined `late` after host 0; picks at `at` after host 1 joined.
fn warm_counts(simple: SimpleLB, late: Duration, at: Duration, n: usize) -> Vec<usize> {
    let h = hosts(&[1, 1]);
    let h1 = Arc::new(Host {
        endpoint: h[1].endpoint.clone(),
        active: Default::default(),
        added: h[0].added + late,
    });
    let h = vec![h[0].clone(), h1];
    let b = Balancer::new(&policy(Some(&slow_lb(simple, "10s"))), &h);
    let now = h[1].added + at;
    let mut c = vec![0; 2];
    for _ in 0..n {
        c[b.pick(&h, &Pick::new(now, &[])).unwrap()] += 1;
    }
    c
}

#[test]
fn slow_start_scales_the_weight_of_a_host_in_its_window() {
    let slow = SlowStart::from_lb(&slow_lb(SimpleLB::RoundRobin, "10s")).unwrap();
    let h = hosts(&[4]);
    let t = h[0].added;
    let w = |after: u64| rr_weight(&h[0], Some(&slow), t + Duration::from_millis(after));
    assert!((w(0) - 0.4).abs() < 1e-9, "floor: 10% of 4");
    assert!((w(5_000) - 2.0).abs() < 1e-9, "half way: half the weight");
    assert!((w(10_000) - 4.0).abs() < 1e-9, "window over: full weight");
    assert_eq!(rr_weight(&h[0], None, t), 4.0);
    let _busy = h[0].begin();
    assert!((lr_weight(&h[0], Some(&slow), t + Duration::from_secs(5)) - 1.0).abs() < 1e-9);
    assert!(SlowStart::from_lb(&slow_lb(SimpleLB::Random, "10s")).is_none());
}

#[test]
fn a_warming_host_gets_proportionally_less_traffic() {
    let (late, zero) = (Duration::from_secs(100), Duration::ZERO);
    for simple in [SimpleLB::RoundRobin, SimpleLB::LeastRequest] {
        // Host 0 is past its window, host 1 at the 10% floor: 10 to 1.
        let c = warm_counts(simple, late, zero, 1100);
        assert!(c[1] >= 90 && c[1] <= 110, "{simple:?} {c:?}");
        // Half way through host 1's window: 2 to 1.
        let c = warm_counts(simple, late, Duration::from_secs(5), 300);
        assert!(c[1] >= 95 && c[1] <= 105, "{simple:?} {c:?}");
        // After the window: even (least request is back to two random
        // choices, which with no requests in flight is a coin flip; the
        // bounds are many standard deviations wide).
        let c = warm_counts(simple, late, Duration::from_secs(10), 300);
        assert!(c[1] >= 100 && c[1] <= 200, "{simple:?} {c:?}");
        // Both hosts joined together: equal factors, even shares.
        let c = warm_counts(simple, zero, zero, 300);
        assert!(c[1] >= 145 && c[1] <= 155, "{simple:?} {c:?}");
    }
}

#[test]
fn passthrough_and_empty_clusters_fail() {
    let h = hosts(&[1]);
    let b = Balancer::new(&policy(Some(&lb(SimpleLB::Passthrough))), &h);
    assert_eq!(
        b.pick(&h, &Pick::new(Instant::now(), &[])),
        Err(PickError::Passthrough)
    );
    let b = Balancer::new(&policy(None), &[]);
    assert_eq!(
        b.pick(&[], &Pick::new(Instant::now(), &[])),
        Err(PickError::NoHost)
    );
}

#[test]
fn consistent_hash_uses_the_plugged_table() {
    #[derive(Debug)]
    struct Fixed;
    impl HashTable for Fixed {
        fn pick(&self, hash: u64) -> usize {
            (hash % 3) as usize
        }
    }
    let h = hosts(&[1, 1, 1]);
    let b = Balancer::ConsistentHash {
        table: Some(Arc::new(Fixed)),
    };
    let p = Pick {
        hash: Some(4),
        ..Pick::new(Instant::now(), &[])
    };
    assert_eq!(b.pick(&h, &p), Ok(1));
}

#[test]
fn consistent_hash_skips_ineligible_hosts_along_the_ring() {
    let h = hosts(&[1, 1, 1]);
    let ch = LoadBalancerSettings {
        consistent_hash: Some(crate::model::ConsistentHashLB {
            http_header_name: Some("x-user".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let b = Balancer::new(&policy(Some(&ch)), &h);
    let pick = |hash: u64, eligible: Option<&[bool]>| {
        let p = Pick {
            hash: Some(hash),
            eligible,
            ..Pick::new(Instant::now(), &[])
        };
        b.pick(&h, &p).unwrap()
    };
    for hash in [1u64, 42, 1 << 40, u64::MAX / 3] {
        let first = pick(hash, None);
        assert_eq!(pick(hash, None), first, "sticky");
        let mut mask = vec![true; 3];
        mask[first] = false;
        let other = pick(hash, Some(&mask));
        assert_ne!(other, first, "the ejected host is skipped");
        assert_eq!(pick(hash, Some(&mask)), other, "deterministically");
    }
    let none = Pick {
        eligible: Some(&[false, false, false]),
        ..Pick::new(Instant::now(), &[])
    };
    assert_eq!(b.pick(&h, &none), Err(PickError::NoHost));
}
