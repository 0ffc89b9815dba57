use super::*;
use crate::model::{ConsistentHashLB, LoadBalancerSettings, SimpleLB, WarmupConfiguration};

const W: Duration = Duration::from_secs(10);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn at_start_the_floor_applies() {
    assert!(close(slow_start_factor(Duration::ZERO, W, 10.0, 1.0), 0.1));
    // Without a floor, 1ms of the window.
    assert!(close(
        slow_start_factor(Duration::ZERO, W, 0.0, 1.0),
        0.0001
    ));
}

#[test]
fn mid_window_is_linear_with_aggression_one() {
    assert!(close(
        slow_start_factor(Duration::from_secs(5), W, 10.0, 1.0),
        0.5
    ));
    assert!(close(
        slow_start_factor(Duration::from_millis(2500), W, 10.0, 1.0),
        0.25
    ));
    // Below the floor the floor wins.
    assert!(close(
        slow_start_factor(Duration::from_millis(500), W, 10.0, 1.0),
        0.1
    ));
}

#[test]
fn aggression_bends_the_curve() {
    // 0.25^(1/2) = 0.5: aggression > 1 ramps faster early.
    assert!(close(
        slow_start_factor(Duration::from_millis(2500), W, 0.0, 2.0),
        0.5
    ));
    // 0.5^(1/0.5) = 0.25: aggression < 1 ramps slower.
    assert!(close(
        slow_start_factor(Duration::from_secs(5), W, 0.0, 0.5),
        0.25
    ));
    // Invalid aggression falls back to linear.
    assert!(close(
        slow_start_factor(Duration::from_secs(5), W, 0.0, 0.0),
        0.5
    ));
    assert!(close(
        slow_start_factor(Duration::from_secs(5), W, 0.0, f64::NAN),
        0.5
    ));
}

#[test]
fn end_of_window_and_after_is_full_weight() {
    assert_eq!(slow_start_factor(W, W, 10.0, 1.0), 1.0);
    assert_eq!(slow_start_factor(W * 3, W, 10.0, 2.0), 1.0);
    assert_eq!(
        slow_start_factor(Duration::ZERO, Duration::ZERO, 10.0, 1.0),
        1.0
    );
    // Just before the end: almost full.
    let f = slow_start_factor(W - Duration::from_millis(1), W, 10.0, 1.0);
    assert!(f < 1.0 && f > 0.999);
}

#[test]
fn milliseconds_are_truncated() {
    // 1.9ms counts as 1ms, as Envoy's duration_cast<milliseconds>.
    let f = slow_start_factor(
        Duration::from_micros(1900),
        Duration::from_millis(100),
        0.0,
        1.0,
    );
    assert!(close(f, 0.01));
}

#[test]
fn from_lb_settings() {
    let dur = |s: &str| Some(crate::model::Duration::parse(s).unwrap());
    let lb = LoadBalancerSettings {
        simple: Some(SimpleLB::RoundRobin),
        warmup: Some(WarmupConfiguration {
            duration: dur("30s"),
            minimum_percent: Some(20.0),
            aggression: None,
        }),
        ..Default::default()
    };
    let s = SlowStart::from_lb(&lb).unwrap();
    assert_eq!(
        s,
        SlowStart {
            window: Duration::from_secs(30),
            min_percent: 20.0,
            aggression: 1.0
        }
    );
    assert!(close(s.factor(Duration::from_secs(15)), 0.5));
    assert!(close(s.factor(Duration::from_secs(1)), 0.2));

    let legacy = LoadBalancerSettings {
        warmup_duration_secs: dur("10s"),
        ..Default::default()
    };
    let s = SlowStart::from_lb(&legacy).unwrap();
    assert_eq!((s.window, s.min_percent, s.aggression), (W, 10.0, 1.0));

    let random = LoadBalancerSettings {
        simple: Some(SimpleLB::Random),
        ..legacy.clone()
    };
    assert_eq!(SlowStart::from_lb(&random), None);
    let hashed = LoadBalancerSettings {
        consistent_hash: Some(ConsistentHashLB::default()),
        ..legacy
    };
    assert_eq!(SlowStart::from_lb(&hashed), None);
    assert_eq!(SlowStart::from_lb(&LoadBalancerSettings::default()), None);
}
