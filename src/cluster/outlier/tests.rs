use super::*;

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
fn hit(d: &OutlierDetector, host: usize, o: HostOutcome, n: usize, now: Instant) -> Vec<Ejection> {
    (0..n).filter_map(|_| d.record(host, o, now)).collect()
}

#[test]
fn five_consecutive_5xx_eject_by_default_and_four_do_not() {
    // 10 hosts: the default 10% allows exactly one ejection.
    let (d, t0) = detector(OutlierConfig::default(), 10);
    assert!(hit(&d, 3, HostOutcome::Status(500), 4, t0).is_empty());
    assert!(!d.is_ejected(3, t0));
    let e = d.record(3, HostOutcome::Status(503), t0).unwrap();
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
    hit(&d, 2, HostOutcome::Status(500), 5, at);
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
    assert!(hit(&d, 0, HostOutcome::Status(500), 4, t0).is_empty());
    assert!(d.record(0, HostOutcome::Status(404), t0).is_none());
    assert!(hit(&d, 0, HostOutcome::Status(500), 4, t0).is_empty());
    assert!(d.record(0, HostOutcome::Success, t0).is_none());
    assert!(hit(&d, 0, HostOutcome::Status(500), 4, t0).is_empty());
    assert!(!d.is_ejected(0, t0));
    assert_eq!(hit(&d, 0, HostOutcome::Status(500), 1, t0).len(), 1);
}

#[test]
fn consecutive_gateway_errors_only_count_502_503_504() {
    let c = cfg(|c| {
        c.consecutive_5xx = 0;
        c.consecutive_gateway_errors = 3;
    });
    let (d, t0) = detector(c, 10);
    // 500 is a 5xx but not a gateway error: it resets the gateway count.
    assert!(hit(&d, 0, HostOutcome::Status(500), 10, t0).is_empty());
    for code in [502, 503, 500, 504, 502] {
        assert!(d.record(0, HostOutcome::Status(code), t0).is_none());
    }
    let e = d.record(0, HostOutcome::Status(503), t0).unwrap();
    assert_eq!(e.kind, EjectionKind::ConsecutiveGatewayFailure);
}

#[test]
fn gateway_errors_are_off_by_default_so_503s_eject_through_5xx() {
    let (d, t0) = detector(OutlierConfig::default(), 10);
    let e = hit(&d, 0, HostOutcome::Status(503), 5, t0);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, EjectionKind::Consecutive5xx);
}

#[test]
fn without_split_local_origin_failures_count_as_5xx_and_gateway_errors() {
    let (d, t0) = detector(OutlierConfig::default(), 10);
    for o in [
        HostOutcome::LocalOriginFailure,
        HostOutcome::Timeout,
        HostOutcome::Reset,
        HostOutcome::Status(500),
    ] {
        assert!(d.record(0, o, t0).is_none());
    }
    let e = d.record(0, HostOutcome::LocalOriginFailure, t0).unwrap();
    assert_eq!(e.kind, EjectionKind::Consecutive5xx);

    let c = cfg(|c| {
        c.consecutive_5xx = 0;
        c.consecutive_gateway_errors = 3;
    });
    let (d, t0) = detector(c, 10);
    assert!(d.record(1, HostOutcome::Timeout, t0).is_none());
    assert!(d.record(1, HostOutcome::Reset, t0).is_none());
    let e = d.record(1, HostOutcome::LocalOriginFailure, t0).unwrap();
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
        assert!(d.record(0, HostOutcome::Status(500), t0).is_none());
        assert!(d.record(0, HostOutcome::LocalOriginFailure, t0).is_none());
    }
    let e = d.record(0, HostOutcome::Status(500), t0).unwrap();
    assert_eq!(e.kind, EjectionKind::Consecutive5xx);

    assert!(d.record(1, HostOutcome::LocalOriginFailure, t0).is_none());
    assert!(d.record(1, HostOutcome::Timeout, t0).is_none());
    // Second ejection in a 10-host cluster at 10%: refused.
    assert!(d.record(1, HostOutcome::Reset, t0).is_none());
    assert_eq!(d.ejections_overflow(), 1);

    let c = cfg(|c| {
        c.split_external_local_origin_errors = true;
        c.consecutive_local_origin_failures = 3;
    });
    let (d, t0) = detector(c, 10);
    assert!(hit(&d, 2, HostOutcome::LocalOriginFailure, 2, t0).is_empty());
    let e = d.record(2, HostOutcome::Timeout, t0).unwrap();
    assert_eq!(e.kind, EjectionKind::ConsecutiveLocalOriginFailure);
}

#[test]
fn ejection_lasts_base_times_ejections_and_the_sweep_uneject_it() {
    let (d, t0) = detector(OutlierConfig::default(), 10);
    assert_eq!(
        hit(&d, 0, HostOutcome::Status(500), 5, t0)[0].duration,
        Duration::from_secs(30)
    );
    assert!(d.is_ejected(0, at(t0, 29)));
    assert!(!d.is_ejected(0, at(t0, 30)));
    // Ejected again straight away: twice as long.
    let e = hit(&d, 0, HostOutcome::Status(500), 5, at(t0, 30));
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
    hit(&d, 4, HostOutcome::Status(500), 5, at(t0, 3));
    assert!(d.sweep(at(t0, 33)).is_empty());
    assert!(d.is_ejected(4, at(t0, 39)));
    assert_eq!(d.sweep(at(t0, 40)), vec![4]);
    assert!(!d.is_ejected(4, at(t0, 40)));
}

#[test]
fn multiplier_decays_one_step_per_healthy_interval() {
    let (d, t0) = detector(OutlierConfig::default(), 10);
    hit(&d, 0, HostOutcome::Status(500), 5, t0);
    hit(&d, 0, HostOutcome::Status(500), 5, at(t0, 30)); // multiplier 2
    assert_eq!(d.sweep(at(t0, 90)), vec![0]);
    // Un-ejected at 90: the sweeps at 100 and 110 each take one step off.
    d.sweep(at(t0, 100));
    assert_eq!(d.host_ejections(0), Some((2, 1)));
    d.sweep(at(t0, 10_000));
    assert_eq!(d.host_ejections(0), Some((2, 0)));
    let e = hit(&d, 0, HostOutcome::Status(500), 5, at(t0, 10_001));
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
        last = hit(&d, 0, HostOutcome::Status(500), 5, now)[0].duration;
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
    assert!(hit(&d, 0, HostOutcome::Status(500), 5, t0).is_empty());
    assert_eq!(d.ejected_count(t0), 0);
    assert_eq!(d.ejections_overflow(), 1);
    // The counter was reset by the refused detection: 5 more to retry.
    assert!(hit(&d, 0, HostOutcome::Status(500), 4, t0).is_empty());
    assert_eq!(d.ejections_overflow(), 1);
}

#[test]
fn max_ejection_percent_allows_one_of_three_at_34_but_not_two() {
    let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 34), 3);
    assert_eq!(hit(&d, 0, HostOutcome::Status(500), 5, t0).len(), 1);
    assert!(hit(&d, 1, HostOutcome::Status(500), 5, t0).is_empty());
    assert_eq!(d.ejected_count(t0), 1);
    // Default 10% of 10 hosts: one, not two.
    let (d, t0) = detector(OutlierConfig::default(), 10);
    assert_eq!(hit(&d, 0, HostOutcome::Status(500), 5, t0).len(), 1);
    assert!(hit(&d, 1, HostOutcome::Status(500), 5, t0).is_empty());
}

#[test]
fn max_ejection_percent_100_ejects_all_and_no_panic_means_503_uh() {
    let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 100), 3);
    for h in 0..3 {
        assert_eq!(hit(&d, h, HostOutcome::Status(502), 5, t0).len(), 1);
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
    hit(&d, 0, HostOutcome::Status(500), 5, t0);
    assert!(!d.panic(t0)); // 75% healthy
    assert_eq!(d.eligible(t0), Some(vec![false, true, true, true]));
    hit(&d, 1, HostOutcome::Status(500), 5, t0);
    assert!(d.panic(t0)); // 50% < 60%
    assert_eq!(d.eligible(t0), Some(vec![true; 4]));
    // Ejected hosts keep counting while in panic, without re-ejection.
    assert!(hit(&d, 0, HostOutcome::Status(500), 20, t0).is_empty());
}

#[test]
fn http_error_codes_replace_the_5xx_rule() {
    let c = cfg(|c| c.http_error_codes = vec![429]);
    let (d, t0) = detector(c, 10);
    assert!(hit(&d, 0, HostOutcome::Status(503), 20, t0).is_empty());
    assert!(hit(&d, 0, HostOutcome::Status(429), 4, t0).is_empty());
    assert!(d.record(0, HostOutcome::Status(500), t0).is_none()); // resets
    assert!(hit(&d, 0, HostOutcome::Status(429), 4, t0).is_empty());
    assert_eq!(hit(&d, 0, HostOutcome::Status(429), 1, t0).len(), 1);
    // Local-origin failures are not responses: they still count.
    let c = cfg(|c| c.http_error_codes = vec![429]);
    let (d, t0) = detector(c, 10);
    assert_eq!(hit(&d, 1, HostOutcome::LocalOriginFailure, 5, t0).len(), 1);
}

#[test]
fn retain_carries_state_to_new_indices() {
    let (d, t0) = detector(cfg(|c| c.max_ejection_percent = 100), 3);
    hit(&d, 1, HostOutcome::Status(500), 5, t0);
    hit(&d, 2, HostOutcome::Status(500), 4, t0);
    d.retain(&[Some(1), None, Some(2), Some(2)]);
    assert_eq!(d.host_count(), 4);
    assert_eq!(d.available(t0), vec![false, true, true, true]);
    // Old host 2's four 5xx came along; the duplicate started fresh.
    assert_eq!(hit(&d, 2, HostOutcome::Status(500), 1, t0).len(), 1);
    assert!(hit(&d, 3, HostOutcome::Status(500), 1, t0).is_empty());
    // The carried ejection still expires on schedule.
    assert!(!d.is_ejected(0, at(t0, 30)));
    assert!(d.record(9, HostOutcome::Status(500), t0).is_none());
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
                        HostOutcome::Success
                    } else {
                        HostOutcome::Status(500)
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
    hit(&d, 0, HostOutcome::Status(500), 5, t0);
    let started = std::time::Instant::now();
    // 30 days ≈ 2.6e9 virtual sweeps; only the few that matter run.
    assert!(!d.is_ejected(0, at(t0, 30 * 86_400)));
    assert_eq!(d.host_ejections(0), Some((1, 0)));
    assert!(started.elapsed() < Duration::from_secs(1));
}
