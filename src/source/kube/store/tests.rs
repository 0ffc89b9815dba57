use super::super::kinds::KINDS;
use super::*;
use serde_json::json;

fn kind(name: &str) -> &'static KindSpec {
    KINDS.iter().find(|k| k.kind == name).unwrap()
}

fn vs(name: &str, host: &str) -> Object {
    Object::Value(
        json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl"}]},
               "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]}}),
    )
}

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

fn service(name: &str) -> Object {
    Object::Value(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}))
}

fn slice(name: &str, service: &str, pod: &str) -> Object {
    let spec: EndpointSliceSpec = serde_json::from_value(json!({
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.1.0.1"], "nodeName": "n1",
                       "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}}]}))
    .unwrap();
    Object::Slice(
        meta(
            "default",
            name,
            &[(crate::kubernetes::convert::SERVICE_NAME_LABEL, service)],
        ),
        spec,
    )
}

/// Services, slices, Pods and Nodes as `run` watches them.
fn core() -> Store {
    let store = Store::new([
        (kind("Service"), None),
        (kind("EndpointSlice"), None),
        (kind("Pod"), None),
        (kind("Node"), None),
    ]);
    for s in 0..4 {
        store.init(s);
    }
    store.init_apply(0, service("reviews"));
    store.init_apply(1, slice("reviews-a", "reviews", "p1"));
    store.init_apply(2, Object::Meta(meta("default", "p1", &[("version", "v1")])));
    store.init_apply(
        3,
        Object::Meta(meta("", "n1", &[("topology.kubernetes.io/region", "us")])),
    );
    for s in 0..4 {
        store.init_done(s);
    }
    store
}

#[test]
fn a_relist_replaces_the_objects_so_deleted_ones_disappear() {
    let store = Store::new([(kind("VirtualService"), None)]);
    store.init(0);
    store.init_apply(0, vs("a", "a.example.com"));
    store.init_apply(0, vs("b", "b.example.com"));
    assert!(!store.synced());
    store.init_done(0);
    assert!(store.synced());
    assert_eq!(store.config().virtual_services.len(), 2);
    // b was deleted while the watch was away (410): the relist lacks it.
    store.init(0);
    store.init_apply(0, vs("a", "a.example.com"));
    assert_eq!(
        store.config().virtual_services.len(),
        2,
        "until the list ends"
    );
    store.init_done(0);
    let c = store.config();
    assert_eq!(c.virtual_services.len(), 1);
    assert_eq!(c.virtual_services[0].meta.name, "a");
    // No file: messages name the resource as istioctl does for a cluster.
    assert!(c.virtual_services[0].origin.reference(None).is_none());
}

#[test]
fn endpoint_kinds_bump_only_the_endpoint_generation() {
    let store = core();
    let g0 = store.generations();
    assert!(store.apply(1, slice("reviews-b", "reviews", "p1")));
    let g1 = store.generations();
    assert_eq!(g1.config, g0.config);
    assert_ne!(g1.endpoints, g0.endpoints);
    assert!(store.apply(0, service("ratings")));
    assert_ne!(store.generations().config, g1.config);
}

/// Core kinds go into the index, not the loaded set (Services are kept
/// loaded for analysis, outside it); a Node's labels give its endpoints'
/// locality (a cluster-scoped object has no namespace).
#[test]
fn core_kinds_are_indexed_and_nodes_give_locality() {
    let store = core();
    let c = store.config();
    assert!(c.services.is_empty() && c.pods.is_empty());
    assert!(c.endpoint_slices.is_empty() && c.nodes.is_empty());
    assert_eq!(store.services().len(), 1);
    assert_eq!(store.state()["watches"][2]["objects"], 1, "one Pod");
    assert!(store.rejected().is_empty(), "{:?}", store.rejected());
    let (registry, _) = store.registry("cluster.local");
    assert_eq!(registry.len(), 1);
    let e = &registry[0].endpoints[0];
    assert_eq!(e.locality, "us//");
    assert_eq!(e.label("version"), Some("v1"));
    let (pods, nodes) = store.pods_and_nodes();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].meta.labels["version"], "v1");
    assert_eq!(nodes[0].meta.labels["topology.kubernetes.io/region"], "us");
    // A Node as the loader reads it from a full object (namespace null).
    let store = Store::new([(kind("Node"), None)]);
    store.init(0);
    store.init_apply(
        0,
        Object::Value(json!({"metadata": {"name": "n2", "namespace": null,
            "labels": {"topology.kubernetes.io/zone": "z"}}})),
    );
    store.init_done(0);
    assert!(store.rejected().is_empty(), "{:?}", store.rejected());
}

/// A Pod update that leaves its labels alone (its status changed) is no
/// change; a label change names exactly the Services its slices serve.
#[test]
fn only_label_changes_count_and_name_their_services() {
    let store = core();
    let (_, since) = store.registry("cluster.local");
    let g = store.generations();
    assert!(!store.apply(2, Object::Meta(meta("default", "p1", &[("version", "v1")]))));
    assert_eq!(store.generations(), g);
    assert!(store.apply(2, Object::Meta(meta("default", "p1", &[("version", "v2")]))));
    let (update, now) = store.endpoint_update(since, "cluster.local");
    assert!(now > since);
    let EndpointUpdate::Services(changed) = update else {
        panic!("one Service changed, not all");
    };
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].endpoints[0].label("version"), Some("v2"));
    let (update, _) = store.endpoint_update(now, "cluster.local");
    assert!(matches!(update, EndpointUpdate::Services(v) if v.is_empty()));
    // A Node's locality touches every Service.
    assert!(store.apply(
        3,
        Object::Meta(meta("", "n1", &[("topology.kubernetes.io/region", "eu")]))
    ));
    assert!(matches!(
        store.endpoint_update(now, "cluster.local").0,
        EndpointUpdate::All(_)
    ));
}

/// A relist of an indexed kind removes what it no longer lists.
#[test]
fn a_relist_removes_indexed_objects_it_lacks() {
    let store = core();
    store.init(1);
    assert_eq!(store.registry("cluster.local").0[0].endpoints.len(), 1);
    assert!(store.init_done(1));
    assert!(store.registry("cluster.local").0[0].endpoints.is_empty());
    assert!(store.delete(0, &service("reviews")));
    assert!(store.registry("cluster.local").0.is_empty());
    assert!(store.services().is_empty());
}

#[test]
fn a_missing_crd_counts_as_synced_and_empty_but_a_core_kind_does_not() {
    let store = Store::new([(kind("Sidecar"), None), (kind("Service"), None)]);
    assert!(store.error(0, "404".into(), true));
    assert!(!store.error(1, "404".into(), true));
    assert!(!store.synced());
    store.init(1);
    store.init_done(1);
    assert!(store.synced());
    assert_eq!(store.state()["watches"][0]["notInstalled"], true);
}

#[test]
fn managed_fields_and_status_are_dropped_on_arrival() {
    let Object::Value(mut v) = vs("a", "a.example.com") else {
        unreachable!()
    };
    v["status"] = json!({"conditions": []});
    v["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"});
    strip(&mut v, kind("VirtualService"));
    assert!(v["metadata"].get("managedFields").is_none());
    assert!(v.get("status").is_none());
    assert_eq!(v["metadata"]["annotations"], json!({"keep": "1"}));
    assert_eq!(v["apiVersion"], "networking.istio.io/v1");
}

/// A Secret keeps only the keys a `credentialName` reads (Istio's
/// `ExtractCertInfo` and CA keys): another key's value is never held.
#[test]
fn a_secret_keeps_only_its_certificate_keys() {
    let mut v = json!({"metadata": {"name": "cred", "namespace": "istio-system"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5", "ca.crt": "Y2E=", "password": "aHVudGVyMg=="},
        "stringData": {"token": "t", "cert": "c"}});
    strip(&mut v, kind("Secret"));
    let data: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(data, ["ca.crt", "tls.crt", "tls.key"]);
    let string_data: Vec<&String> = v["stringData"].as_object().unwrap().keys().collect();
    assert_eq!(string_data, ["cert"]);
    let store = Store::new([(kind("Secret"), Some("istio-system".into()))]);
    store.init(0);
    store.init_apply(0, Object::Value(v));
    store.init_done(0);
    let c = store.config();
    assert_eq!(c.secrets.len(), 1);
    assert!(!c.secrets[0].spec.data.contains_key("password"));
}

/// A relist says again which objects it rejects: one rejected before and
/// deleted while the watch was away is no longer listed as rejected; one
/// listed again is still rejected, an indexed kind's (a Service) too.
#[test]
fn a_relist_forgets_rejected_objects_it_no_longer_lists() {
    for k in ["VirtualService", "Service"] {
        a_relist_forgets_rejected(k);
    }
}

fn a_relist_forgets_rejected(k: &str) {
    let store = Store::new([(kind(k), None)]);
    let bad = || {
        // Metadata the loader cannot read: the object is rejected.
        Object::Value(json!({"metadata": {"name": "bad", "namespace": "default",
            "labels": "not a mapping"}, "spec": {}}))
    };
    store.init(0);
    store.init_apply(0, bad());
    store.init_done(0);
    assert_eq!(store.rejected().len(), 1, "{:?}", store.rejected());
    store.init(0);
    store.init_apply(0, bad());
    store.init_done(0);
    assert_eq!(
        store.rejected().len(),
        1,
        "{k}: still there: still rejected"
    );
    store.init(0);
    assert_eq!(
        store.rejected().len(),
        1,
        "a list under way changes nothing yet"
    );
    store.init_done(0);
    assert!(store.rejected().is_empty(), "{:?}", store.rejected());
}
