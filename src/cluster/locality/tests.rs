use super::*;
use crate::compile::cluster_policy::effective_setting;
use crate::model::{LocalityDistribute, LocalityFailover, LocalityLoadBalancerSetting};

// The cases are written as Istio's `localityLbSetting`; compile turns it
// into the `LocalitySetting` the balancer reads, as these do.
fn priorities(
    proxy: &Locality,
    endpoints: &[EndpointLocality],
    setting: &LocalityLoadBalancerSetting,
    outlier_enabled: bool,
) -> Vec<u32> {
    super::priorities(proxy, endpoints, &setting.into(), outlier_enabled)
}

fn priorities_with_labels(
    proxy: &Locality,
    proxy_labels: &BTreeMap<String, String>,
    endpoints: &[EndpointLocality],
    setting: &LocalityLoadBalancerSetting,
    outlier_enabled: bool,
) -> Vec<u32> {
    super::priorities_with_labels(
        proxy,
        proxy_labels,
        endpoints,
        &setting.into(),
        outlier_enabled,
    )
}

fn distribute_weights(
    proxy: &Locality,
    endpoints: &[EndpointLocality],
    setting: &LocalityLoadBalancerSetting,
) -> Vec<u32> {
    super::distribute_weights(proxy, endpoints, &setting.into())
}

fn ep(locality: &str) -> EndpointLocality {
    EndpointLocality {
        locality: Locality::parse(locality),
        labels: BTreeMap::new(),
        weight: 1,
    }
}

fn ep_labels(locality: &str, labels: &[(&str, &str)]) -> EndpointLocality {
    EndpointLocality {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..ep(locality)
    }
}

fn failover(from: &str, to: &str) -> LocalityFailover {
    LocalityFailover {
        from: Some(from.into()),
        to: Some(to.into()),
    }
}

fn enabled() -> LocalityLoadBalancerSetting {
    LocalityLoadBalancerSetting {
        enabled: Some(true),
        ..Default::default()
    }
}

#[test]
fn parse_and_display() {
    let l = Locality::parse("us-east/us-east-1a/rack1");
    assert_eq!(
        (l.region.as_str(), l.zone.as_str(), l.subzone.as_str()),
        ("us-east", "us-east-1a", "rack1")
    );
    assert_eq!(l.to_string(), "us-east/us-east-1a/rack1");
    assert_eq!(Locality::parse("r").to_string(), "r");
    assert_eq!(Locality::parse("r/z").zone, "z");
    assert_eq!(Locality::parse(""), Locality::default());
    assert!(Locality::parse("").is_empty());
    assert_eq!(Locality::parse("r/z/s/extra").subzone, "s");
}

#[test]
fn locality_match_rules() {
    let l = Locality::parse("r1/z1/s1");
    assert!(l.matches("r1"));
    assert!(l.matches("r1/z1"));
    assert!(l.matches("r1/z1/s1"));
    assert!(l.matches("r1/*"));
    assert!(l.matches("*"));
    assert!(l.matches("r1/z1/*"));
    assert!(!l.matches("r2"));
    assert!(!l.matches("r1/z2"));
    assert!(!l.matches("r1/z1/s2"));
    // An empty region is not a wildcard.
    assert!(!l.matches(""));
}

#[test]
fn default_failover_by_locality_proximity() {
    let proxy = Locality::parse("r1/z1/s1");
    let eps = [
        ep("r1/z1/s1"),
        ep("r1/z1/s2"),
        ep("r1/z2/s1"),
        ep("r2/z1/s1"),
    ];
    assert_eq!(priorities(&proxy, &eps, &enabled(), true), vec![0, 1, 2, 3]);
    // Dense: missing levels are skipped.
    let eps = [ep("r1/z1/s1"), ep("r2/z9")];
    assert_eq!(priorities(&proxy, &eps, &enabled(), true), vec![0, 1]);
    let eps = [ep("r1/z2"), ep("r3")];
    assert_eq!(priorities(&proxy, &eps, &enabled(), true), vec![0, 1]);
}

#[test]
fn failover_needs_outlier_detection_and_enabled() {
    let proxy = Locality::parse("r1/z1/s1");
    let eps = [ep("r1/z1/s1"), ep("r2")];
    assert_eq!(priorities(&proxy, &eps, &enabled(), false), vec![0, 0]);
    let off = LocalityLoadBalancerSetting {
        enabled: Some(false),
        ..Default::default()
    };
    assert_eq!(priorities(&proxy, &eps, &off, true), vec![0, 0]);
    // `enabled` unset counts as on.
    let unset = LocalityLoadBalancerSetting::default();
    assert_eq!(priorities(&proxy, &eps, &unset, true), vec![0, 1]);
}

#[test]
fn distribute_disables_failover() {
    let proxy = Locality::parse("r1/z1");
    let setting = LocalityLoadBalancerSetting {
        distribute: vec![LocalityDistribute {
            from: Some("r1/*".into()),
            to: [("r1/*".to_string(), 100)].into(),
        }],
        ..Default::default()
    };
    let eps = [ep("r1/z1"), ep("r2")];
    assert_eq!(priorities(&proxy, &eps, &setting, true), vec![0, 0]);
}

#[test]
fn explicit_region_failover() {
    let proxy = Locality::parse("us-east/z1");
    let setting = LocalityLoadBalancerSetting {
        failover: vec![
            failover("us-east", "eu-west"),
            failover("us-west", "us-east"),
        ],
        ..Default::default()
    };
    let eps = [
        ep("us-east/z1"),
        ep("us-east/z2"),
        ep("eu-west/z1"),
        ep("ap-south/z1"),
        ep(""),
    ];
    // Same zone 0, same region 1, the failover region 2, any other 3.
    assert_eq!(
        priorities(&proxy, &eps, &setting, true),
        vec![0, 1, 2, 3, 3]
    );
    // A rule for another region does not apply.
    let proxy = Locality::parse("ap-south/z1");
    assert_eq!(
        priorities(&proxy, &eps, &setting, true),
        vec![1, 1, 1, 0, 1]
    );
}

#[test]
fn empty_proxy_locality_prefers_endpoints_without_locality() {
    // Istio compares the (empty) proxy locality literally.
    let eps = [ep("r1/z1"), ep("")];
    assert_eq!(
        priorities(&Locality::default(), &eps, &enabled(), true),
        vec![1, 0]
    );
}

#[test]
fn failover_priority_by_labels() {
    let proxy = Locality::parse("r1/z1");
    let proxy_labels: BTreeMap<String, String> = [
        ("topology.istio.io/network".to_string(), "n1".to_string()),
        ("version".to_string(), "v1".to_string()),
    ]
    .into();
    let setting = LocalityLoadBalancerSetting {
        failover_priority: vec![
            "topology.istio.io/network".into(),
            "topology.kubernetes.io/region".into(),
            "topology.kubernetes.io/zone".into(),
        ],
        ..Default::default()
    };
    let eps = [
        ep_labels("r1/z1", &[(LABEL_NETWORK, "n1")]), // all match: 0
        ep_labels("r1/z2", &[(LABEL_NETWORK, "n1")]), // zone differs: raw 1
        ep_labels("r2/z1", &[(LABEL_NETWORK, "n1")]), // region differs: raw 2
        ep_labels("r1/z1", &[(LABEL_NETWORK, "n2")]), // network differs: raw 3
        ep_labels("r1/z1", &[]),                      // no network label: raw 3
    ];
    let got = priorities_with_labels(&proxy, &proxy_labels, &eps, &setting, true);
    assert_eq!(got, vec![0, 1, 2, 3, 3]);
    // Needs outlier detection too.
    let got = priorities_with_labels(&proxy, &proxy_labels, &eps, &setting, false);
    assert_eq!(got, vec![0; 5]);
    // Without extra proxy labels the network key compares "" with the endpoint's.
    let got = priorities(&proxy, &eps, &setting, true);
    assert_eq!(got, vec![1, 1, 1, 1, 0]);
}

#[test]
fn failover_priority_with_value_override() {
    let proxy = Locality::parse("r1/z1");
    let setting = LocalityLoadBalancerSetting {
        failover_priority: vec!["version=v2".into(), "app".into()],
        ..Default::default()
    };
    let labels: BTreeMap<String, String> = [
        ("version".to_string(), "v1".to_string()),
        ("app".to_string(), "a".to_string()),
    ]
    .into();
    let eps = [
        ep_labels("r1/z1", &[("version", "v1"), ("app", "a")]), // version != v2: raw 2
        ep_labels("r1/z1", &[("version", "v2"), ("app", "a")]), // all: 0
        ep_labels("r1/z1", &[("version", "v2"), ("app", "b")]), // raw 1
    ];
    let got = priorities_with_labels(&proxy, &labels, &eps, &setting, true);
    assert_eq!(got, vec![2, 0, 1]);
}

#[test]
fn failover_priority_then_locality_failover() {
    let proxy = Locality::parse("r1/z1");
    let labels: BTreeMap<String, String> = [("tier".to_string(), "gold".to_string())].into();
    let setting = LocalityLoadBalancerSetting {
        failover_priority: vec!["tier".into()],
        failover: vec![failover("r1", "r2")],
        ..Default::default()
    };
    let eps = [
        ep_labels("r1/z1", &[("tier", "gold")]),   // (0, 0)
        ep_labels("r2/z1", &[("tier", "gold")]),   // (0, 3)
        ep_labels("r3/z1", &[("tier", "gold")]),   // (0, 4)
        ep_labels("r1/z1", &[("tier", "silver")]), // (1, 0)
        ep_labels("r1/z2", &[("tier", "silver")]), // (1, 2)
    ];
    let got = priorities_with_labels(&proxy, &labels, &eps, &setting, true);
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    // Without `failover`, only the labels count.
    let only_labels = LocalityLoadBalancerSetting {
        failover: vec![],
        ..setting
    };
    let got = priorities_with_labels(&proxy, &labels, &eps, &only_labels, true);
    assert_eq!(got, vec![0, 0, 0, 1, 1]);
}

fn distribute(from: &str, to: &[(&str, u32)]) -> LocalityLoadBalancerSetting {
    LocalityLoadBalancerSetting {
        distribute: vec![LocalityDistribute {
            from: Some(from.into()),
            to: to.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }],
        ..Default::default()
    }
}

#[test]
fn distribute_weights_split_across_localities() {
    let proxy = Locality::parse("r1/z1/s1");
    let eps = [
        ep("r1/z1/s1"),
        ep("r1/z1/s1"),
        ep("r1/z2/s1"),
        ep("r2/z1/s1"),
    ];
    let setting = distribute("r1/z1/*", &[("r1/z1/*", 80), ("r1/z2/*", 20)]);
    // r2 is claimed by no entry: dropped.
    assert_eq!(
        distribute_weights(&proxy, &eps, &setting),
        vec![80, 80, 20, 0]
    );
}

#[test]
fn distribute_wildcard_splits_by_natural_weight() {
    let proxy = Locality::parse("r1/z1");
    // r1/z1 has 3 endpoints, r1/z2 has 1; "r1/*" gets 90, split 3:1.
    let eps = [
        ep("r1/z1"),
        ep("r1/z1"),
        ep("r1/z1"),
        ep("r1/z2"),
        ep("r2/z1"),
    ];
    let setting = distribute("r1", &[("r1/*", 90), ("r2/*", 10)]);
    let got = distribute_weights(&proxy, &eps, &setting);
    // ceil(3*90/4) = 68, ceil(1*90/4) = 23.
    assert_eq!(got, vec![68, 68, 68, 23, 10]);
}

#[test]
fn distribute_without_matching_from_keeps_natural_weights() {
    let proxy = Locality::parse("r9/z1");
    let mut eps = vec![ep("r1/z1"), ep("r1/z1"), ep("r2")];
    eps[2].weight = 5;
    let setting = distribute("r1/*", &[("r1/*", 100)]);
    assert_eq!(distribute_weights(&proxy, &eps, &setting), vec![2, 2, 5]);
    assert_eq!(distribute_weights(&proxy, &eps, &enabled()), vec![2, 2, 5]);
    let mut off = distribute("r9", &[("r1/*", 100)]);
    off.enabled = Some(false);
    assert_eq!(distribute_weights(&proxy, &eps, &off), vec![2, 2, 5]);
    // The first matching `from` wins.
    let mut two = distribute("r9", &[("r2", 100)]);
    two.distribute
        .extend(distribute("*", &[("r1/*", 100)]).distribute);
    assert_eq!(distribute_weights(&proxy, &eps, &two), vec![0, 0, 100]);
}

#[test]
fn effective_setting_precedence() {
    let dr = distribute("r1", &[("r1", 100)]);
    assert_eq!(effective_setting(Some(&dr), None), Some(dr.clone()));
    let mut off = dr.clone();
    off.enabled = Some(false);
    assert_eq!(effective_setting(Some(&off), Some(&enabled())), None);
    // The DR replaces the mesh setting entirely.
    assert_eq!(effective_setting(Some(&dr), Some(&off)), Some(dr));
    assert_eq!(effective_setting(None, None), Some(enabled()));
    assert_eq!(effective_setting(None, Some(&off)), None);
}
