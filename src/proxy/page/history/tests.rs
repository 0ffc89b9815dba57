use super::*;

fn cumulative(values_ms: &[f64]) -> Vec<u64> {
    let mut b: Vec<u64> = BUCKETS
        .iter()
        .map(|le| values_ms.iter().filter(|v| **v <= *le).count() as u64)
        .collect();
    b.push(values_ms.len() as u64);
    b
}

#[test]
fn deltas_per_second_add_up_to_the_last_minute() {
    let c: Arc<str> = "outbound|9080|v1|reviews".into();
    let mut h = History::default();
    let mut all = Vec::new();
    for sec in 0..70u64 {
        h.tick();
        // Two requests a second, 3 ms each.
        all.extend([3.0, 3.0]);
        h.observe_series(&c, 200, Flags::NONE, 2 * (sec + 1), || cumulative(&all));
    }
    let s = h.stats(&c);
    assert_eq!(s.seconds, 60);
    assert_eq!(s.requests, 120);
    assert!((s.rps() - 2.0).abs() < 1e-9);
    assert_eq!(s.errors, 0);
    // 3 ms falls in (1, 5]: the median interpolates to 3.
    assert_eq!(s.p50, Some(3.0));
    assert_eq!(s.series.iter().sum::<u64>(), 140);
}

#[test]
fn errors_are_broken_down_by_flag() {
    let c: Arc<str> = "c".into();
    let mut h = History::default();
    h.tick();
    h.observe_series(&c, 200, Flags::NONE, 90, || cumulative(&[1.0; 90]));
    h.observe_series(&c, 503, Flags::NO_HEALTHY_UPSTREAM, 6, || {
        cumulative(&[1.0; 6])
    });
    h.observe_series(&c, 503, Flags::NONE, 4, || cumulative(&[1.0; 4]));
    h.observe_series(&c, 404, Flags::NONE, 7, || cumulative(&[1.0; 7]));
    let s = h.stats(&c);
    assert_eq!(s.requests, 107);
    assert_eq!(s.errors, 10);
    assert_eq!(
        s.by_flags,
        vec![(Flags::NO_HEALTHY_UPSTREAM, 6), (Flags::NONE, 4)]
    );
    assert!((s.error_rate() - 10.0 / 107.0).abs() < 1e-9);
}

#[test]
fn an_unchanged_total_reads_no_buckets_and_old_samples_expire() {
    let c: Arc<str> = "c".into();
    let mut h = History::default();
    h.tick();
    h.observe_series(&c, 200, Flags::NONE, 5, || cumulative(&[1.0; 5]));
    for _ in 0..MINUTE {
        h.tick();
        h.observe_series(&c, 200, Flags::NONE, 5, || panic!("not read"));
    }
    assert_eq!(h.stats(&c).requests, 0, "a minute later");
    assert_eq!(
        h.stats(&c).series.iter().sum::<u64>(),
        5,
        "still in the window"
    );
    for _ in 0..WINDOW {
        h.tick();
    }
    h.expire(|_| true, |_| true);
    assert_eq!(h.stats(&c).series.iter().sum::<u64>(), 0);
    h.expire(|_| false, |_| false);
    assert!(h.clusters.is_empty() && h.last.is_empty());
}

#[test]
fn a_total_that_went_down_starts_again_from_zero() {
    let c: Arc<str> = "c".into();
    let mut h = History::default();
    h.tick();
    h.observe_series(&c, 200, Flags::NONE, 50, || cumulative(&[1.0; 50]));
    h.tick();
    h.observe_series(&c, 200, Flags::NONE, 3, || cumulative(&[1.0; 3]));
    assert_eq!(h.stats(&c).requests, 53);
}

#[test]
fn route_picks_give_the_observed_split() {
    let mut h = History::default();
    for sec in 1..=10u64 {
        h.tick();
        h.observe_picks("r0/v1", 18 * sec);
        h.observe_picks("r0/v2", 2 * sec);
    }
    let (a, b) = (h.picks("r0/v1"), h.picks("r0/v2"));
    assert_eq!((a, b), (180, 20));
    assert_eq!(h.picks("r0/v3"), 0);
}

#[test]
fn quantiles_interpolate_as_prometheus_does() {
    // 100 requests in (10, 25]: p50 at 17.5, p99 at 24.85.
    let mut b = vec![0u64; BUCKETS.len() + 1];
    b[4] = 100;
    assert_eq!(quantile(0.5, &b), Some(17.5));
    assert!((quantile(0.99, &b).unwrap() - 24.85).abs() < 1e-9);
    // Everything beyond the last bound: the highest finite bound.
    let mut inf = vec![0u64; BUCKETS.len() + 1];
    inf[BUCKETS.len()] = 3;
    assert_eq!(quantile(0.5, &inf), Some(3_600_000.0));
    assert_eq!(quantile(0.5, &[0; 20]), None);
}
