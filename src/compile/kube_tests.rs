//! Kubernetes Services in compile: endpoints from EndpointSlices and Pods,
//! subsets over Pod labels, VIP, alias and headless domains.

use super::*;
use crate::load::{LoadOptions, load_str};
use crate::route::{Action, RequestView};

/// A `kubectl get svc,endpointslices,pods,nodes -o yaml` style dump.
const CLUSTER: &str = r#"
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: reviews, namespace: default}
  spec:
    clusterIP: 10.96.0.10
    selector: {app: reviews}
    ports:
    - {name: http, port: 9080, targetPort: web}
    - {name: tcp-admin, port: 9999}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: reviews-abcde
    namespace: default
    labels: {kubernetes.io/service-name: reviews}
  addressType: IPv4
  ports: [{name: http, port: 8080, protocol: TCP}]
  endpoints:
  - addresses: [10.1.0.1]
    conditions: {ready: true}
    nodeName: n1
    targetRef: {kind: Pod, namespace: default, name: reviews-v1-x}
  - addresses: [10.1.0.2]
    conditions: {ready: true}
    targetRef: {kind: Pod, namespace: default, name: reviews-v2-x}
  - addresses: [10.1.0.3]
    conditions: {ready: false, terminating: false}
    targetRef: {kind: Pod, namespace: default, name: reviews-v2-y}
  - addresses: [10.1.0.4]
    targetRef: {kind: Pod, namespace: default, name: reviews-v2-unknown}
- apiVersion: v1
  kind: Pod
  metadata: {name: reviews-v1-x, namespace: default, labels: {app: reviews, version: v1}}
  spec: {nodeName: n1}
- apiVersion: v1
  kind: Pod
  metadata: {name: reviews-v2-x, namespace: default, labels: {app: reviews, version: v2}}
- apiVersion: v1
  kind: Pod
  metadata: {name: reviews-v2-y, namespace: default, labels: {app: reviews, version: v2}}
- apiVersion: v1
  kind: Node
  metadata: {name: n1, labels: {topology.kubernetes.io/region: us, topology.kubernetes.io/zone: us-1}}
- apiVersion: v1
  kind: Service
  metadata: {name: reviews-ext, namespace: other}
  spec: {type: ExternalName, externalName: reviews.default.svc.cluster.local}
- apiVersion: v1
  kind: Service
  metadata: {name: db, namespace: default}
  spec:
    clusterIP: None
    ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: us, labels: {topology.kubernetes.io/region: us}}
"#;

fn snap() -> Snapshot {
    let cfg = load_str(
        CLUSTER,
        "cluster.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
    assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
    compile(&cfg, &ProxyIdentity::default())
}

fn endpoints(s: &Snapshot, subset: &str, port: u16) -> Vec<String> {
    let key = ClusterKey {
        port,
        subset: subset.into(),
        host: "reviews.default.svc.cluster.local".into(),
    };
    s.clusters[&key]
        .endpoints
        .iter()
        .map(|e| e.authority.to_string())
        .collect()
}

/// Ready endpoints only (`endpoint_builder.go`: unhealthy ones are not
/// balanced to, terminating never sent); the slice's port (the resolved
/// targetPort); an endpoint whose Pod is unknown waits (`getPod`).
#[test]
fn slice_endpoints_become_cluster_hosts() {
    let s = snap();
    assert_eq!(endpoints(&s, "", 9080), ["10.1.0.1:8080", "10.1.0.2:8080"]);
    // The slice names no `tcp-admin` port: no endpoint serves it.
    assert!(endpoints(&s, "", 9999).is_empty());
}

/// Subsets select on Pod labels plus the topology labels Istio adds
/// (`label.go` `AugmentLabels`; subset ⊆ endpoint labels).
#[test]
fn subsets_select_pod_and_topology_labels() {
    let s = snap();
    assert_eq!(endpoints(&s, "v1", 9080), ["10.1.0.1:8080"]);
    assert_eq!(endpoints(&s, "v2", 9080), ["10.1.0.2:8080"]);
    assert_eq!(endpoints(&s, "us", 9080), ["10.1.0.1:8080"]);
    let key = ClusterKey {
        port: 9080,
        subset: "v1".into(),
        host: "reviews.default.svc.cluster.local".into(),
    };
    assert_eq!(
        s.clusters[&key].endpoints[0].locality.as_deref(),
        Some("us/us-1/")
    );
}

fn route_to(s: &Snapshot, authority: &str) -> Option<String> {
    let h = crate::header_list::HeaderList::new();
    let view = RequestView {
        method: "GET",
        scheme: "http",
        authority,
        path: "/",
        query: None,
        headers: &h,
    };
    let r = s.routes.vhost(authority)?.select(&view)?;
    match &r.action {
        Action::Forward(w) => Some(w[0].cluster.host.clone()),
        _ => None,
    }
}

/// `httproute.go` `generateVirtualHostDomains`: the Service VIP (with the
/// port) is a domain of its vhost, ExternalName aliases are too
/// (`Attributes.Aliases`), and a headless Service also gets `*.` domains.
#[test]
fn vip_alias_and_headless_domains() {
    let s = snap();
    let reviews = Some("reviews.default.svc.cluster.local".to_string());
    assert_eq!(route_to(&s, "10.96.0.10:9080"), reviews);
    assert_eq!(route_to(&s, "10.96.0.10:9999"), None, "TCP port: no vhost");
    assert_eq!(
        route_to(&s, "reviews-ext.other.svc.cluster.local:9080"),
        reviews
    );
    assert_eq!(route_to(&s, "reviews-ext.other:9080"), reviews);
    assert!(
        !s.services
            .iter()
            .any(|x| x.fqdn.starts_with("reviews-ext.")),
        "an alias is no service of its own"
    );
    let db = Some("db.default.svc.cluster.local".to_string());
    assert_eq!(route_to(&s, "db:80"), db);
    assert_eq!(route_to(&s, "db-0.db.default.svc.cluster.local:80"), db);
}

/// Headless Services have no VIP; a ServiceEntry for the same host wins
/// over the Service (first definition).
#[test]
fn service_entry_host_wins_over_service() {
    let yaml = format!(
        "{CLUSTER}\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: se}}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 10.9.9.9}}]\n"
    );
    let cfg = load_str(
        &yaml,
        "c.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let s = compile(&cfg, &ProxyIdentity::default());
    assert_eq!(endpoints(&s, "", 9080), ["10.9.9.9:9080"]);
}

/// An endpoint-only change through the live index (`Index::endpoint_changes`
/// → `registry_of` → `update_endpoints`, as `reload` applies it): the
/// touched Service's clusters come out as a full compile builds them, and
/// every other cluster and the route table are the live snapshot's, shared
/// (pilot's incremental EDS push, `pilot/pkg/xds/eds.go`).
#[test]
fn an_endpoint_update_rebuilds_only_the_touched_services_clusters() {
    let cfg = load_str(
        CLUSTER,
        "cluster.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let opts = ProxyIdentity::default();
    let mut index = crate::kubernetes::Index::from_config(&cfg);
    let live = compile_with(&cfg, &index.registry(&opts.domain), &opts);
    let (_, since) = index.generations();
    // reviews-v1-x is relabelled v2: it moves between subsets.
    let pod = &cfg
        .pods
        .iter()
        .find(|p| p.meta.name == "reviews-v1-x")
        .unwrap();
    let mut meta = pod.meta.clone();
    meta.labels.insert("version".into(), "v2".into());
    index.apply_pod(&meta, Some(&pod.spec));
    let crate::kubernetes::EndpointChanges::Services(keys) = index.endpoint_changes(since) else {
        panic!("one Service's endpoints changed, not all");
    };
    assert_eq!(keys, [("default".to_string(), "reviews".to_string())]);
    let updated = update_endpoints(&cfg, &index.registry_of(&keys, &opts.domain), &opts, &live);
    let full = compile_with(&cfg, &index.registry(&opts.domain), &opts);
    assert_eq!(updated.clusters.len(), full.clusters.len());
    for (key, c) in &full.clusters {
        assert_eq!(updated.clusters[key].endpoints, c.endpoints, "{key}");
    }
    assert_eq!(
        endpoints(&updated, "v2", 9080),
        ["10.1.0.1:8080", "10.1.0.2:8080"]
    );
    assert!(endpoints(&updated, "v1", 9080).is_empty());
    let db = ClusterKey {
        port: 80,
        subset: String::new(),
        host: "db.default.svc.cluster.local".into(),
    };
    assert!(Arc::ptr_eq(&live.clusters[&db], &updated.clusters[&db]));
    assert!(Arc::ptr_eq(&live.routes, &updated.routes));
}

/// A Service's ClusterIP and `tcp-` port is a sidecar TCP listener (pilot
/// binds `10.96.0.10:9999`), its `http` port is not; a short-named
/// VirtualService host is the Service's (`getConfigsForHost`).
#[test]
fn a_cluster_ip_and_tcp_port_is_a_sidecar_tcp_listener() {
    let s = snap();
    let (l, c) = s.tcp.select("10.96.0.10:9999".parse().unwrap()).unwrap();
    assert_eq!(l.address, Some("10.96.0.10".parse().unwrap()));
    assert_eq!(c.name(), "outbound|9999||reviews.default.svc.cluster.local");
    assert!(s.tcp.select("10.96.0.10:9080".parse().unwrap()).is_none());
    assert!(s.tcp.select("10.96.0.11:9999".parse().unwrap()).is_none());
    let with_vs = format!(
        "{CLUSTER}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  tcp:
  - route: [{{destination: {{host: reviews, subset: v2}}}}]
"
    );
    let cfg = load_str(
        &with_vs,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let s = compile(&cfg, &ProxyIdentity::default());
    let (_, c) = s.tcp.select("10.96.0.10:9999".parse().unwrap()).unwrap();
    assert_eq!(c.name(), "default/reviews#tcp[0]");
    assert_eq!(
        &*c.destinations[0].cluster.name,
        "outbound|9999|v2|reviews.default.svc.cluster.local"
    );
}
