use super::*;
use crate::load::{LoadOptions, load_str};

fn snapshot(yaml: &str) -> Snapshot {
    let cfg = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    crate::compile::compile(&cfg, &Default::default())
}

fn se(addrs: &[&str]) -> String {
    let mut s = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: r}\nspec:\n  hosts: [r.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints:\n".to_string();
    for a in addrs {
        s.push_str(&format!("  - address: {a}\n"));
    }
    s
}

const DR_RR: &str = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n";

fn key() -> ClusterKey {
    ClusterKey {
        port: 80,
        subset: String::new(),
        host: "r.default.svc.cluster.local".into(),
    }
}

#[test]
fn reconcile_keeps_unchanged_clusters_and_the_hosts_that_stayed() {
    let reg = Registry::new();
    reg.reconcile(&snapshot(&se(&["10.0.0.1", "10.0.0.2"])));
    let a = reg.get(&key()).expect("cluster state");
    assert_eq!(a.balancer.kind(), BalancerKind::LeastRequest);
    let _busy = a.hosts[1].begin();

    reg.reconcile(&snapshot(&se(&["10.0.0.1", "10.0.0.2"])));
    let b = reg.get(&key()).unwrap();
    assert!(Arc::ptr_eq(&a, &b), "nothing changed: same state");

    reg.reconcile(&snapshot(&se(&["10.0.0.2", "10.0.0.3"])));
    let c = reg.get(&key()).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(Arc::ptr_eq(&c.hosts[0], &a.hosts[1]), "10.0.0.2 stayed");
    assert_eq!(c.hosts[0].active(), 1);
    assert!(Arc::ptr_eq(&a.limits, &c.limits), "policy unchanged");

    reg.reconcile(&snapshot(&(se(&["10.0.0.2", "10.0.0.3"]) + DR_RR)));
    let d = reg.get(&key()).unwrap();
    assert_eq!(d.balancer.kind(), BalancerKind::RoundRobin);
    assert!(!Arc::ptr_eq(&c.limits, &d.limits), "policy changed");
    assert!(Arc::ptr_eq(&c.hosts[0], &d.hosts[0]));

    reg.reconcile(&snapshot(""));
    assert!(reg.get(&key()).is_none());
}

const DR_OD: &str = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}}\n";

#[test]
fn outlier_state_is_kept_across_endpoint_reloads_and_reset_by_config_changes() {
    let reg = Registry::new();
    reg.reconcile(&snapshot(&se(&["10.0.0.1", "10.0.0.2"])));
    assert!(
        reg.get(&key()).unwrap().outlier.is_none(),
        "off without a block"
    );

    reg.reconcile(&snapshot(&(se(&["10.0.0.1", "10.0.0.2"]) + DR_OD)));
    let a = reg.get(&key()).unwrap();
    let now = Instant::now();
    let bad = a.hosts[1].clone();
    let e = reg.record(&a, &key(), &bad, outlier::HostOutcome::Status(500), now);
    assert_eq!(e.map(|e| e.host), Some(1));
    assert_eq!(a.host_health(now), vec![(false, 0), (true, 1)]);
    let picked = a.pick(&Pick::new(now, &[])).unwrap();
    assert!(
        Arc::ptr_eq(&picked, &a.hosts[0]),
        "the ejected host is skipped"
    );

    // Endpoints change, outlier config does not: 10.0.0.2 moves to
    // index 0 and stays ejected; the new host starts healthy.
    reg.reconcile(&snapshot(&(se(&["10.0.0.2", "10.0.0.3"]) + DR_OD)));
    let b = reg.get(&key()).unwrap();
    assert!(Arc::ptr_eq(
        b.outlier.as_ref().unwrap(),
        a.outlier.as_ref().unwrap()
    ));
    assert_eq!(b.host_health(now), vec![(true, 1), (false, 0)]);
    let fresh = b.hosts[1].clone();
    assert_eq!(
        reg.record(&b, &key(), &fresh, outlier::HostOutcome::Status(503), now)
            .map(|e| e.host),
        Some(1)
    );
    assert_eq!(
        b.pick(&Pick::new(now, &[])).err(),
        Some(PickError::NoHost),
        "all ejected: UH"
    );

    // A changed outlier config starts fresh.
    let changed = DR_OD.replace("consecutive5xxErrors: 1", "consecutive5xxErrors: 2");
    reg.reconcile(&snapshot(&(se(&["10.0.0.2", "10.0.0.3"]) + &changed)));
    let c = reg.get(&key()).unwrap();
    assert!(!Arc::ptr_eq(
        c.outlier.as_ref().unwrap(),
        b.outlier.as_ref().unwrap()
    ));
    assert_eq!(c.host_health(now), vec![(false, 0), (false, 0)]);
}

/// `r` with endpoints `(address, locality)`, a DestinationRule with
/// `policy`, compiled for a proxy in `at`.
fn located(eps: &[(&str, &str)], policy: &str, at: &str) -> Snapshot {
    let mut yaml = se(&[]);
    for (a, l) in eps {
        yaml.push_str(&format!("  - {{address: {a}, locality: {l}}}\n"));
    }
    yaml.push_str(&format!("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r}}\nspec:\n  host: r\n  trafficPolicy: {policy}\n"));
    let cfg = load_str(
        &yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.load_errors.is_empty() && cfg.problems.is_empty());
    crate::compile::compile(
        &cfg,
        &ProxyIdentity {
            locality: at.into(),
            ..Default::default()
        },
    )
}

fn pick_counts(st: &ClusterState, n: usize) -> Vec<usize> {
    let mut c = vec![0; st.hosts.len()];
    for _ in 0..n {
        let h = st.pick(&Pick::new(Instant::now(), &[])).unwrap();
        c[st.index_of(&h).unwrap()] += 1;
    }
    c
}

const OD1: &str = "outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}";

#[test]
fn locality_failover_prefers_the_local_priority_and_fails_over_on_ejection() {
    let eps = [("10.0.0.1", "us-west/b"), ("10.0.0.2", "us-east/a")];
    let reg = Registry::new();
    reg.reconcile(&located(&eps, &format!("{{{OD1}}}"), "us-east/a"));
    let st = reg.get(&key()).unwrap();
    assert_eq!(st.locality, Some(LocalityLb::Priorities(vec![1, 0])));
    assert_eq!(pick_counts(&st, 50), vec![0, 50]);
    let now = Instant::now();
    let local = st.hosts[1].clone();
    assert!(
        reg.record(&st, &key(), &local, outlier::HostOutcome::Status(500), now)
            .is_some()
    );
    assert_eq!(pick_counts(&st, 50), vec![50, 0], "failover to us-west/b");

    // Without outlier detection Istio sets no failover priorities.
    reg.reconcile(&located(
        &eps,
        "{loadBalancer: {simple: ROUND_ROBIN}}",
        "us-east/a",
    ));
    let st = reg.get(&key()).unwrap();
    assert_eq!(st.locality, None);
    assert_eq!(pick_counts(&st, 50), vec![25, 25]);

    // Locality LB disabled, or a proxy of unknown locality: none.
    let off = format!("{{{OD1}, loadBalancer: {{localityLbSetting: {{enabled: false}}}}}}");
    reg.reconcile(&located(&eps, &off, "us-east/a"));
    assert_eq!(reg.get(&key()).unwrap().locality, None);
    reg.reconcile(&located(&eps, &format!("{{{OD1}}}"), ""));
    assert_eq!(reg.get(&key()).unwrap().locality, None);
    // A changed proxy locality rebuilds the state.
    reg.reconcile(&located(&eps, &format!("{{{OD1}}}"), "us-west/b"));
    assert_eq!(
        reg.get(&key()).unwrap().locality,
        Some(LocalityLb::Priorities(vec![0, 1]))
    );
}

#[test]
fn locality_distribute_splits_traffic_by_locality_weight() {
    let eps = [
        ("10.0.0.1", "us-east/a"),
        ("10.0.0.2", "us-west/b"),
        ("10.0.0.3", "us-east/a"),
    ];
    let policy = "{loadBalancer: {simple: ROUND_ROBIN, localityLbSetting: {distribute: [{from: us-east/*, to: {\"us-east/a\": 80, \"us-west/b\": 20}}]}}}";
    let reg = Registry::new();
    reg.reconcile(&located(&eps, policy, "us-east/a"));
    let st = reg.get(&key()).unwrap();
    assert_eq!(
        st.locality,
        Some(LocalityLb::Distribute {
            locality: vec![0, 1, 0],
            weights: vec![80, 20]
        })
    );
    let c = pick_counts(&st, 2000);
    // Expected 800 / 400 / 800; the bounds are many deviations wide.
    assert!(c[1] > 280 && c[1] < 520, "{c:?}");
    assert!(
        c[0].abs_diff(c[2]) <= 1,
        "round robin within us-east/a: {c:?}"
    );
    // A proxy the rule does not apply to: natural weights, no locality step.
    reg.reconcile(&located(&eps, policy, "eu/x"));
    assert_eq!(reg.get(&key()).unwrap().locality, None);
}

#[test]
fn host_guard_counts_active_requests() {
    let h = Arc::new(Host::new(Endpoint {
        authority: "10.0.0.1:80".into(),
        labels: Default::default(),
        weight: 0,
        metric: 0,
        locality: None,
    }));
    assert_eq!(h.weight(), 1);
    let g1 = h.begin();
    let g2 = h.begin();
    assert_eq!(h.active(), 2);
    drop(g1);
    assert_eq!(g2.host().active(), 1);
    drop(g2);
    assert_eq!(h.active(), 0);
}

/// A reconcile knows a cluster an endpoint update shared unchanged (the
/// same compiled `Arc`) without comparing endpoints; another allocation,
/// even with equal endpoints, is compared, and then remembered.
#[test]
fn a_state_remembers_the_compiled_cluster_it_serves() {
    let reg = Registry::new();
    let first = snapshot(&se(&["10.0.0.1"]));
    reg.reconcile(&first);
    let a = reg.get(&key()).unwrap();
    assert!(a.built_for(&first.clusters[&key()]));
    let equal = snapshot(&se(&["10.0.0.1"]));
    assert!(!a.built_for(&equal.clusters[&key()]), "another allocation");
    reg.reconcile(&equal);
    assert!(Arc::ptr_eq(&a, &reg.get(&key()).unwrap()), "equal: kept");
    assert!(a.built_for(&equal.clusters[&key()]), "and remembered");
    let changed = snapshot(&se(&["10.0.0.2"]));
    reg.reconcile(&changed);
    let b = reg.get(&key()).unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert!(b.built_for(&changed.clusters[&key()]));
    assert_eq!(&*b.hosts[0].endpoint.authority, "10.0.0.2:80");
}
