use super::*;
use serde_json::json;

fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> Meta {
    Meta {
        namespace: ns.into(),
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Meta::default()
    }
}

fn svc_spec() -> ServiceSpec {
    serde_json::from_value(json!({
        "clusterIP": "10.96.0.10",
        "selector": {"app": "reviews"},
        "ports": [{"name": "http", "port": 9080, "targetPort": "web"},
                  {"name": "grpc-api", "port": 9090}]
    }))
    .unwrap()
}

fn slice_meta(name: &str) -> Meta {
    meta("default", name, &[(convert::SERVICE_NAME_LABEL, "reviews")])
}

fn slice_spec(v: serde_json::Value) -> EndpointSliceSpec {
    serde_json::from_value(v).unwrap()
}

fn base() -> Index {
    let mut ix = Index::default();
    ix.apply_service(&meta("default", "reviews", &[]), &svc_spec());
    ix.apply_slice(
        &slice_meta("reviews-abc"),
        &slice_spec(json!({
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.1.0.1"], "nodeName": "n1",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "reviews-v1"}},
                {"addresses": ["10.1.0.2"], "nodeName": "n2",
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "reviews-v2"}}
            ]
        })),
    );
    ix.apply_pod(
        &meta(
            "default",
            "reviews-v1",
            &[("app", "reviews"), ("version", "v1")],
        ),
        None,
    );
    ix.apply_pod(
        &meta(
            "default",
            "reviews-v2",
            &[
                ("app", "reviews"),
                ("version", "v2"),
                (convert::LABEL_LOCALITY, "eu/eu-1/a"),
            ],
        ),
        None,
    );
    ix.apply_node(&meta(
        "",
        "n1",
        &[(convert::LABEL_REGION, "us"), (convert::LABEL_ZONE, "us-1")],
    ));
    ix
}

fn only(ix: &Index) -> RegistryService {
    let mut r = ix.registry("cluster.local");
    assert_eq!(r.len(), 1);
    r.remove(0)
}

/// `endpointslice.go` `updateEndpointCacheForSlice` + `endpoint_builder.go`:
/// the slice's port (the resolved targetPort) under the Service port's
/// name; Pod labels plus topology labels; locality from the Pod label,
/// else the Node's labels.
#[test]
fn slice_endpoints_with_pod_labels_and_locality() {
    let r = only(&base());
    assert_eq!(r.host, "reviews.default.svc.cluster.local");
    assert_eq!(r.service.vips, ["10.96.0.10"]);
    assert_eq!(r.endpoints.len(), 2);
    let v1 = &r.endpoints[0];
    assert_eq!(v1.address, "10.1.0.1");
    assert_eq!(v1.ports, BTreeMap::from([("http".to_string(), 8080)]));
    let labels = v1.labels();
    assert_eq!(labels["version"], "v1");
    assert_eq!(labels[convert::LABEL_REGION], "us");
    assert_eq!(labels[convert::LABEL_HOSTNAME], "n1");
    for (k, v) in &labels {
        assert_eq!(v1.label(k), Some(v.as_str()), "{k}");
    }
    assert_eq!(v1.locality, "us/us-1/");
    let v2 = &r.endpoints[1];
    assert_eq!(v2.locality, "eu/eu-1/a", "the Pod's own label wins");
    assert_eq!(v2.labels()[convert::LABEL_SUBZONE], "a");
    // n2 is unknown: no locality from it.
    assert_eq!(v2.labels()[convert::LABEL_HOSTNAME], "n2");
    assert!(v2.selected_by(&BTreeMap::from([
        ("version".to_string(), "v2".to_string()),
        (convert::LABEL_ZONE.to_string(), "eu-1".to_string()),
    ])));
    assert!(!v2.selected_by(&BTreeMap::from([(
        convert::LABEL_REGION.to_string(),
        "us".to_string()
    )])));
}

/// `endpointslice.go` `getPod`: an endpoint whose Pod is not known yet is
/// skipped, and appears when the Pod arrives; a Pod relabel moves it.
#[test]
fn endpoint_waits_for_its_pod_and_follows_relabels() {
    let mut ix = base();
    ix.delete_pod("default", "reviews-v2");
    assert_eq!(only(&ix).endpoints.len(), 1);
    let before = ix.generations();
    ix.apply_pod(
        &meta(
            "default",
            "reviews-v2",
            &[("app", "reviews"), ("version", "v3")],
        ),
        None,
    );
    assert!(ix.endpoints_changed(before), "only endpoints changed");
    let r = only(&ix);
    assert_eq!(r.endpoints.len(), 2);
    assert_eq!(r.endpoints[1].label("version"), Some("v3"));
    // The same labels again (a status-only update) change nothing.
    let before = ix.generations();
    ix.apply_pod(
        &meta(
            "default",
            "reviews-v2",
            &[("app", "reviews"), ("version", "v3")],
        ),
        None,
    );
    assert_eq!(ix.generations(), before);
}

/// Duplicates of an (address, port name) across slices are merged, the
/// first slice winning (`endpointslice.go` endpoint cache dedup);
/// terminating endpoints are dropped, not-ready ones kept as such.
#[test]
fn duplicates_merged_and_terminating_dropped() {
    let mut ix = base();
    ix.apply_slice(
        &slice_meta("reviews-xyz"),
        &slice_spec(json!({
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 9999}, {"name": "grpc-api", "port": 9090}],
            "endpoints": [
                {"addresses": ["10.1.0.1"],
                 "targetRef": {"kind": "Pod", "namespace": "default", "name": "reviews-v1"}},
                {"addresses": ["10.1.0.7"], "conditions": {"ready": false, "terminating": false}},
                {"addresses": ["10.1.0.8"], "conditions": {"ready": false, "terminating": true}}
            ]
        })),
    );
    let r = only(&ix);
    let addrs: Vec<&str> = r.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addrs, ["10.1.0.1", "10.1.0.2", "10.1.0.7"]);
    assert_eq!(
        r.endpoints[0].ports,
        BTreeMap::from([("http".to_string(), 8080), ("grpc-api".to_string(), 9090)])
    );
    assert_eq!(r.endpoints[2].health, Health::NotReady);
    assert!(
        r.endpoints[2].labels().is_empty(),
        "no targetRef: no Pod labels"
    );
    ix.delete_slice("default", "reviews-xyz");
    assert_eq!(only(&ix).endpoints.len(), 2);
}

/// `push_context.go` `resolveServiceAliases`: ExternalName Services are
/// aliases of the concrete Service (through chains; loops dropped) and no
/// registry entries of their own.
#[test]
fn external_names_become_aliases() {
    let mut ix = base();
    let ext = |target: &str| -> ServiceSpec {
        serde_json::from_value(json!({"type": "ExternalName", "externalName": target})).unwrap()
    };
    ix.apply_service(
        &meta("other", "alias1", &[]),
        &ext("reviews.default.svc.cluster.local"),
    );
    ix.apply_service(
        &meta("other", "alias2", &[]),
        &ext("alias1.other.svc.cluster.local"),
    );
    ix.apply_service(
        &meta("other", "loop1", &[]),
        &ext("loop2.other.svc.cluster.local"),
    );
    ix.apply_service(
        &meta("other", "loop2", &[]),
        &ext("loop1.other.svc.cluster.local"),
    );
    let r = only(&ix);
    assert_eq!(
        r.aliases,
        [
            "alias1.other.svc.cluster.local",
            "alias2.other.svc.cluster.local"
        ]
    );
}

#[test]
fn deletes_and_resets() {
    let mut ix = base();
    let before = ix.generations();
    ix.delete_service("default", "reviews");
    assert!(
        !ix.endpoints_changed(before),
        "a Service change is not endpoint-only"
    );
    assert!(ix.registry("cluster.local").is_empty());
    let mut ix = base();
    ix.reset_pods([&meta("default", "reviews-v1", &[("version", "v1")])]);
    assert_eq!(only(&ix).endpoints.len(), 1);
    ix.reset_nodes(std::iter::empty());
    assert_eq!(only(&ix).endpoints[0].locality, "");
    ix.reset_slices(std::iter::empty());
    assert!(only(&ix).endpoints.is_empty());
    ix.reset_services(std::iter::empty());
    assert!(ix.is_empty());
    ix.delete_node("n1");
}
