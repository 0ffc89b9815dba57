//! A cluster read offline: `kubectl get svc,endpointslices,pods,nodes -A -o
//! yaml` (a `kind: List`) plus Istio YAML gives the same endpoints a cluster
//! would (`pilot/pkg/serviceregistry/kube`), and `run`, `explain` and `check`
//! all read it.

use std::process::Command;

use crate::support::*;
use tokio::net::TcpListener;

/// An upstream on its own loopback address (a pod IP).
async fn pod(name: &str, ip: &str) -> Upstream {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind 127.0.0.x");
    let n = name.to_string();
    Upstream::serve(
        name,
        listener,
        std::sync::Arc::new(move |_| {
            let n = n.clone();
            Box::pin(async move { http::Response::new(http_body_util::Full::new(n.into())) })
        }),
    )
}

/// One slice per pod (each pod's own port), as a dump may hold several
/// slices per Service.
fn slice(name: &str, up: &Upstream, pod: &str, ready: bool) -> String {
    format!(
        "- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata:
    name: {name}
    namespace: default
    labels: {{kubernetes.io/service-name: reviews, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}}
    managedFields: [{{manager: kube-controller-manager}}]
  addressType: IPv4
  ports: [{{name: http, port: {port}, protocol: TCP}}]
  endpoints:
  - addresses: [\"{ip}\"]
    conditions: {{ready: {ready}, serving: {ready}, terminating: false}}
    nodeName: node-1
    targetRef: {{kind: Pod, namespace: default, name: {pod}, uid: 0b6c}}
",
        ip = up.addr.ip(),
        port = up.addr.port(),
    )
}

fn pod_yaml(name: &str, version: &str) -> String {
    format!(
        "- apiVersion: v1
  kind: Pod
  metadata:
    name: {name}
    namespace: default
    labels: {{app: reviews, version: {version}, pod-template-hash: 7d9f}}
  spec: {{nodeName: node-1, containers: [{{name: reviews, image: reviews}}]}}
  status: {{phase: Running, podIP: 10.244.0.5}}
"
    )
}

struct Cluster {
    v1: Upstream,
    v2: Upstream,
    unready: Upstream,
    yaml: String,
}

async fn cluster() -> Cluster {
    let v1 = pod("v1", "127.0.0.2").await;
    let v2 = pod("v2", "127.0.0.3").await;
    let unready = pod("v2-unready", "127.0.0.4").await;
    let mut yaml = String::from(
        "apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
- apiVersion: v1
  kind: Service
  metadata: {name: reviews, namespace: default, labels: {app: reviews}}
  spec:
    type: ClusterIP
    clusterIP: 10.96.7.7
    clusterIPs: [10.96.7.7]
    selector: {app: reviews}
    ports: [{name: http, port: 9080, protocol: TCP, targetPort: 9080}]
  status: {loadBalancer: {}}
- apiVersion: v1
  kind: Node
  metadata:
    name: node-1
    labels: {topology.kubernetes.io/region: us-east1, topology.kubernetes.io/zone: us-east1-b}
",
    );
    yaml.push_str(&slice("reviews-aaaaa", &v1, "reviews-v1-1", true));
    yaml.push_str(&slice("reviews-bbbbb", &v2, "reviews-v2-1", true));
    yaml.push_str(&slice("reviews-ccccc", &unready, "reviews-v2-2", false));
    yaml.push_str(&pod_yaml("reviews-v1-1", "v1"));
    yaml.push_str(&pod_yaml("reviews-v2-1", "v2"));
    yaml.push_str(&pod_yaml("reviews-v2-2", "v2"));
    yaml.push_str(
        "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
",
    );
    Cluster {
        v1,
        v2,
        unready,
        yaml,
    }
}

#[tokio::test]
async fn dumped_cluster_splits_by_pod_labels_and_skips_not_ready_endpoints() {
    let c = cluster().await;
    let proxy = Proxy::start(&c.yaml).await;
    let n = 300;
    for _ in 0..n {
        let got = get(proxy.addr(), "reviews.default.svc.cluster.local:9080", "/").await;
        assert_ne!(got.text(), "v2-unready");
    }
    let (v1, v2) = (c.v1.hits(), c.v2.hits());
    assert_eq!(v1 + v2, n, "every request reached a ready pod");
    assert_eq!(c.unready.hits(), 0, "a not-ready endpoint gets no traffic");
    // 90/10 over 300 requests: v2 gets none with probability 0.9^300 ≈ 2e-14,
    // more than a third with negligible probability.
    assert!(v2 > 0 && v2 < n / 3, "v1 {v1}, v2 {v2}");
}

/// A request addressed to the Service's clusterIP:port routes as the
/// Service's host (Envoy's vhost domains include the VIP).
#[tokio::test]
async fn cluster_ip_routes_as_the_service_host() {
    let c = cluster().await;
    let proxy = Proxy::start(&c.yaml).await;
    for _ in 0..20 {
        let got = get(proxy.addr(), "10.96.7.7:9080", "/").await;
        assert!(matches!(got.text().as_str(), "v1" | "v2"), "{}", got.text());
    }
    assert_eq!(c.v1.hits() + c.v2.hits(), 20);
}

fn strait(args: &[&str], file: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(args)
        .arg(file)
        .output()
        .expect("strait runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `explain` and `check` read the same dump.
#[tokio::test]
async fn explain_and_check_read_the_dump() {
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, &c.yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["explain", "-o", "json", "-c"])
        .arg(&file)
        .arg("http://10.96.7.7:9080/")
        .output()
        .expect("strait runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["virtual_service"], "default/reviews");
    assert_eq!(
        v["destinations"][0]["host"],
        "reviews.default.svc.cluster.local"
    );
    let (code, stdout, stderr) = strait(&["check"], &file);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// `--domain-suffix`: Service hosts are `name.ns.svc.<suffix>`, and short
/// names in Istio resources resolve with it (Istio's cluster domain).
#[tokio::test]
async fn domain_suffix_names_service_hosts() {
    let c = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, &c.yaml).unwrap();
    let explain = |suffix: &str, url: &str| {
        Command::new(env!("CARGO_BIN_EXE_strait"))
            .args(["explain", "-o", "json", "--domain-suffix", suffix, "-c"])
            .arg(&file)
            .arg(url)
            .output()
            .expect("strait runs")
    };
    let out = explain(
        "corp.internal",
        "http://reviews.default.svc.corp.internal:9080/",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["virtual_service"], "default/reviews");
    assert_eq!(
        v["destinations"][0]["host"],
        "reviews.default.svc.corp.internal"
    );
    let bad = explain("not a suffix", "http://reviews:9080/");
    assert_eq!(bad.status.code(), Some(64), "a usage error (EX_USAGE)");
}
