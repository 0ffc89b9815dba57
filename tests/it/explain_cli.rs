//! `strait explain` as a user runs it.

use std::path::Path;
use std::process::Command;

fn explain(args: &[&str]) -> (i32, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bookinfo");
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .arg("explain")
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .expect("strait runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn json_report_has_the_documented_keys() {
    let (code, out) = explain(&[
        "-o",
        "json",
        "-H",
        "end-user: jason",
        "http://reviews:9080/reviews/1",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["virtual_service"], "default/reviews");
    assert_eq!(v["route"]["index"], 0);
    assert_eq!(v["route"]["name"], "jason");
    let d = &v["destinations"][0];
    assert_eq!(d["host"], "reviews.default.svc.cluster.local");
    assert_eq!(d["subset"], "v2");
    assert_eq!(d["port"], 9080);
    assert_eq!(d["weight"], 100);
    assert_eq!(
        d["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(d["policy"]["loadBalancer"]["simple"], "LEAST_REQUEST");
    assert_eq!(d["endpoints"][0], "127.0.1.2:9080");
    assert!(v["timeout"].is_string());
    assert!(v["retries"].as_str().unwrap().contains("2 retries"));
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
}

#[test]
fn text_report_names_the_failed_condition() {
    let (code, out) = explain(&["http://reviews:9080/"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("[0] jason            no match: headers.end-user wanted exact \"jason\""),
        "{out}"
    );
    assert!(out.contains("[1] split            MATCH"), "{out}");
}

#[test]
fn a_bad_header_is_a_usage_error() {
    let (code, _) = explain(&["-H", "no-colon", "http://reviews:9080/"]);
    assert_eq!(code, 64);
}

/// Issue #14: with two `VirtualService default/reviews` (two steps of an
/// Istio task in one directory) explain showed the first as if alone; it
/// explains the later one, the one the proxy serves, and says the earlier
/// one was replaced.
#[test]
fn a_replaced_virtual_service_is_not_explained_and_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let vs = |subset: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews}}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews, subset: {subset}}}}}]\n"
        )
    };
    std::fs::write(
        dir.path().join("0-reviews.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n",
    )
    .unwrap();
    let (first, second) = (dir.path().join("1-v1.yaml"), dir.path().join("2-v2.yaml"));
    std::fs::write(&first, vs("v1")).unwrap();
    std::fs::write(&second, vs("v2")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .args(["explain", "-o", "json", "-c"])
        .arg(dir.path())
        .arg("http://reviews:9080/")
        .output()
        .expect("strait runs");
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["destinations"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["destinations"][0]["subset"], "v2", "{v}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "VirtualService default/reviews is defined twice: the one in {}:1 replaces the one in {}:1",
            second.display(),
            first.display()
        )),
        "{err}"
    );
}

/// `strait explain` run on `yaml` (a file of its own) with `args`.
fn explain_yaml(yaml: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strait"))
        .arg("explain")
        .arg("-c")
        .arg(&path)
        .args(args)
        .output()
        .expect("strait runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const TLS_MESH: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com, pay.example.com]
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: canary, namespace: default}
spec:
  hosts: [canary.internal]
  resolution: STATIC
  ports: [{number: 443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.7}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api.example.com]
  tls:
  - match: [{port: 8443, sniHosts: [api.example.com]}, {sniHosts: [api.example.com]}]
    route: [{destination: {host: canary.internal}}]
---
";

/// An `https://` URL (or `--sni`) without `--gateway` is a TLS connection
/// to the sidecar listener: the TLS route its SNI picks, as the proxy
/// picks it, and the destinations.
#[test]
fn https_urls_and_sni_explain_the_sidecars_tls_route() {
    let text = explain_yaml(TLS_MESH, &["https://api.example.com/"]);
    assert!(text.contains("SNI:             api.example.com"), "{text}");
    assert!(
        text.contains("TLS route:       default/api#tls[0] (server names: api.example.com)"),
        "{text}"
    );
    assert!(text.contains("VirtualService:  default/api"), "{text}");
    assert!(
        text.contains(
            "Chosen route:    [0] tls[0].match[1] -> TLS passthrough (routed by SNI, not terminated)"
        ),
        "{text}"
    );
    assert!(
        text.contains("weight 100  outbound|443||canary.internal"),
        "{text}"
    );
    assert!(text.contains("endpoints: 127.0.0.7:443"), "{text}");
    // The other host of the ServiceEntry: its own route.
    let json: serde_json::Value = serde_json::from_str(&explain_yaml(
        TLS_MESH,
        &["-o", "json", "--sni", "pay.example.com", "http://ignored/"],
    ))
    .unwrap();
    assert_eq!(json["tls"]["route"], "outbound|443||pay.example.com");
    assert_eq!(json["tls"]["sni"], "pay.example.com");
    assert!(json["virtual_service"].is_null());
    assert_eq!(
        json["destinations"][0]["cluster"],
        "outbound|443||pay.example.com"
    );
    let text = explain_yaml(TLS_MESH, &["--sni", "other.example.com", "http://x/"]);
    assert!(
        text.contains("Problem: no TLS route takes SNI \"other.example.com\": the connection is closed (NR filter_chain_not_found)"),
        "{text}"
    );
}

const TCP_MESH: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.internal]
  addresses: [240.0.0.0/16]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.8, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.internal]
  tcp:
  - match: [{destinationSubnets: [240.0.9.0/24]}]
    route: [{destination: {host: db.internal, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db.internal
  subsets: [{name: v2, labels: {version: v2}}]
---
";

/// A `tcp://address:port` URL is a TCP connection to the sidecar
/// listener: the listener and chain its destination picks, as the proxy
/// picks them (`sidecar_tcp` tests the proxy side).
#[test]
fn tcp_urls_explain_the_sidecars_tcp_route_by_destination() {
    let text = explain_yaml(TCP_MESH, &["tcp://240.0.9.1:5432"]);
    assert!(text.contains("Destination:     240.0.9.1:5432"), "{text}");
    assert!(
        text.contains("TCP listener:    0.0.0.0:5432 (service db.internal)"),
        "{text}"
    );
    assert!(
        text.contains("TCP route:       default/db#tcp[0] (destination subnets: 240.0.9.0/24)"),
        "{text}"
    );
    assert!(
        text.contains("weight 100  outbound|5432|v2|db.internal"),
        "{text}"
    );
    // Another address of the service: its own cluster; by host name, the
    // service's first address.
    for url in ["tcp://240.0.1.1:5432", "tcp://db.internal:5432"] {
        let json: serde_json::Value =
            serde_json::from_str(&explain_yaml(TCP_MESH, &["-o", "json", url])).unwrap();
        assert_eq!(json["tcp"]["route"], "outbound|5432||db.internal", "{url}");
        assert!(json["virtual_service"].is_null());
    }
    let text = explain_yaml(TCP_MESH, &["tcp://10.0.0.1:5432"]);
    assert!(
        text.contains("Problem: 10.0.0.1:5432 is no TCP service's address and port"),
        "{text}"
    );
}

/// On a gateway PASSTHROUGH port, the SNI picks a `tls` route (or an
/// HTTPS server beside it); none: closed, NR.
#[test]
fn gateway_passthrough_ports_explain_the_tls_route_chosen_by_sni() {
    let yaml = format!(
        "{TLS_MESH}apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: ingress, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 443, name: tls, protocol: TLS}}
    hosts: ['*.example.com']
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: sni, namespace: istio-system}}
spec:
  hosts: ['*.example.com']
  gateways: [ingress]
  tls:
  - match: [{{sniHosts: [api.example.com]}}]
    route: [{{destination: {{host: canary.internal}}}}]
  - match: [{{sniHosts: ['*.example.com']}}]
    route: [{{destination: {{host: api.example.com}}}}]
---
"
    );
    fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--gateway", "--labels", "istio=ingressgateway"];
        v.extend_from_slice(extra);
        v
    }
    let text = explain_yaml(&yaml, &with(&["https://pay.example.com/"]));
    assert!(text.contains("Gateway port:    443 (TLS)"), "{text}");
    assert!(text.contains("SNI:             pay.example.com"), "{text}");
    assert!(
        text.contains("TLS route:       istio-system/sni#tls[1] (server names: *.example.com)"),
        "{text}"
    );
    assert!(text.contains("outbound|443||api.example.com"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&explain_yaml(
        &yaml,
        &with(&[
            "-o",
            "json",
            "--sni",
            "api.example.com",
            "--port",
            "443",
            "http://x/",
        ]),
    ))
    .unwrap();
    assert_eq!(json["gateway"]["tls_mode"], "PASSTHROUGH");
    assert_eq!(json["tls"]["route"], "istio-system/sni#tls[0]");
    assert_eq!(json["route"]["index"], 0);
    let text = explain_yaml(
        &yaml,
        &with(&["--sni", "example.org", "https://example.org/"]),
    );
    assert!(
        text.contains("no filter chain on port 443 takes SNI \"example.org\""),
        "{text}"
    );
    assert!(text.contains("NR filter_chain_not_found"), "{text}");
}
