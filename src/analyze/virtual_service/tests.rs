use super::*;
use crate::analyze::{MeshConfig, message::sorted_deduped};
use crate::load::{LoadOptions, load_str};

/// Run one analyzer over `yaml` (default namespace `default`) and render
/// its messages as istioctl prints them.
fn run(analyzer: &dyn Analyzer, yaml: &str) -> Vec<String> {
    let config = load_str(
        yaml,
        "t.yaml",
        &LoadOptions {
            namespace: Some("default".into()),
            ..Default::default()
        },
    );
    let mesh = MeshConfig::default();
    let ctx = Context::new(&config, &mesh);
    let mut out = Vec::new();
    analyzer.analyze(&ctx, &mut out);
    sorted_deduped(out)
        .iter()
        .map(ToString::to_string)
        .collect()
}

const REVIEWS_SVC: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  ports:
  - port: 9080
    name: http
---
";

const TWO_PORT_SVC: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: ratings
spec:
  ports:
  - port: 80
    name: http
  - port: 443
    name: https
---
";

// --- DestinationHostAnalyzer -------------------------------------------

/// Issue #14: a ServiceEntry `hosts: [reviews]` next to a VirtualService
/// routing to `reviews` (Istio: `reviews.default.svc.cluster.local`)
/// never attach, in Istio as in strait; IST0101 says why.
#[test]
fn a_short_service_entry_host_is_taught() {
    let out = run(
        &DestinationHostAnalyzer,
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.0.1}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n",
    );
    let m = out
        .iter()
        .find(|m| m.contains("Referenced host not found"))
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(
            m.contains("(ServiceEntry default/reviews has host \"reviews\", but ServiceEntry hosts are not expanded: in namespace default a VirtualService's \"reviews\" means \"reviews.default.svc.cluster.local\""),
            "{m}"
        );
}

#[test]
fn short_host_resolves_in_vs_namespace() {
    let yaml = format!(
        "{REVIEWS_SVC}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: other
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
"
    );
    assert_eq!(
        run(&DestinationHostAnalyzer, &yaml),
        vec![
            "Error [IST0101] (VirtualService other/reviews t.yaml:31) Referenced host not found: \"reviews\""
        ]
    );
}

#[test]
fn fqdn_host_reaches_service_in_another_namespace() {
    let yaml = format!(
        "{REVIEWS_SVC}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: front
  namespace: other
spec:
  tcp:
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
  tls:
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
"
    );
    assert!(run(&DestinationHostAnalyzer, &yaml).is_empty());
}

#[test]
fn multi_port_service_needs_port() {
    let yaml = format!(
        "{TWO_PORT_SVC}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  http:
  - route:
    - destination:
        host: ratings
    - destination:
        host: ratings
        port:
          number: 443
"
    );
    assert_eq!(
        run(&DestinationHostAnalyzer, &yaml),
        vec![
            "Error [IST0112] (VirtualService default/ratings t.yaml:21) This VirtualService routes to a service \"ratings\" that exposes multiple ports [80 443]. Specifying a port in the destination is required to disambiguate."
        ]
    );
}

#[test]
fn unknown_destination_port_is_host_port_not_found() {
    let yaml = format!(
        "{REVIEWS_SVC}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  http:
  - route:
    - destination:
        host: reviews
        port:
          number: 9999
"
    );
    assert_eq!(
        run(&DestinationHostAnalyzer, &yaml),
        vec![
            "Error [IST0101] (VirtualService default/reviews t.yaml:18) Referenced host:port not found: \"reviews:9999\""
        ]
    );
}

#[test]
fn mirror_and_mirrors_hosts_are_checked() {
    let yaml = format!(
        "{REVIEWS_SVC}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  http:
  - route:
    - destination:
        host: reviews
    mirror:
      host: shadow
    mirrors:
    - destination:
        host: shadow2
"
    );
    assert_eq!(
        run(&DestinationHostAnalyzer, &yaml),
        vec![
            "Error [IST0101] (VirtualService default/reviews t.yaml:20) Referenced mirror host not found: \"shadow\"",
            "Error [IST0101] (VirtualService default/reviews t.yaml:23) Referenced mirror host not found: \"shadow2\"",
        ]
    );
}

#[test]
fn empty_route_destination_is_an_empty_host() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
spec:
  http:
  - route:
    - {}
";
    assert_eq!(
        run(&DestinationHostAnalyzer, yaml),
        vec![
            "Error [IST0101] (VirtualService default/broken t.yaml:8) Referenced host not found: \"\""
        ]
    );
}

#[test]
fn service_entry_wildcard_host_is_found() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: eu
spec:
  hosts: ['*.eu.example.com']
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: eu
spec:
  tls:
  - route:
    - destination:
        host: api.eu.example.com
";
    assert!(run(&DestinationHostAnalyzer, yaml).is_empty());
}

#[test]
fn gateway_route_without_subset_ignores_subset_routing() {
    let yaml = format!(
        "{REVIEWS_SVC}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ingress
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination:
        host: reviews
"
    );
    assert_eq!(
        run(&DestinationHostAnalyzer, &yaml),
        vec![
            "Warning [IST0140] (VirtualService default/ingress t.yaml:32) Subset in virtual service default/reviews has no effect on ingress gateway default/ingress requests"
        ]
    );
}

// --- DestinationRuleAnalyzer -------------------------------------------

const REVIEWS_DR: &str = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
";

#[test]
fn subset_missing_from_destination_rule() {
    let yaml = format!(
        "{REVIEWS_DR}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
    - destination:
        host: reviews
        subset: v3
"
    );
    assert_eq!(
        run(&DestinationRuleAnalyzer, &yaml),
        vec![
            "Error [IST0101] (VirtualService default/reviews t.yaml:25) Referenced host+subset in destinationrule not found: \"reviews+v3\" (DestinationRule default/reviews declares v1, v2; a route to an undeclared subset answers 503 NC)"
        ]
    );
}

#[test]
fn subset_without_any_destination_rule() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  tcp:
  - route:
    - destination:
        host: reviews
        subset: v1
";
    assert_eq!(
        run(&DestinationRuleAnalyzer, yaml),
        vec![
            "Error [IST0101] (VirtualService default/reviews t.yaml:9) Referenced host+subset in destinationrule not found: \"reviews+v1\" (no DestinationRule declares subsets for host \"reviews\": add one with subsets, or the route answers 503 NC)"
        ]
    );
}

#[test]
fn mirror_subset_missing_from_destination_rule() {
    let yaml = format!(
        "{REVIEWS_DR}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
    mirror:
      host: reviews
      subset: v9
"
    );
    assert_eq!(
        run(&DestinationRuleAnalyzer, &yaml),
        vec![
            "Error [IST0101] (VirtualService default/reviews t.yaml:24) Referenced mirror+subset in destinationrule not found: \"reviews+v9\" (DestinationRule default/reviews declares v1, v2; a mirror to an undeclared subset sends its copies nowhere (503 NC))"
        ]
    );
}

#[test]
fn fqdn_destination_matches_short_host_destination_rule() {
    let yaml = format!(
        "{REVIEWS_DR}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: front
  namespace: other
spec:
  http:
  - route:
    - destination:
        host: reviews.default.svc.cluster.local
        subset: v2
"
    );
    assert!(run(&DestinationRuleAnalyzer, &yaml).is_empty());
}

#[test]
fn non_kubernetes_host_only_matches_destination_rule_in_vs_namespace() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ext
  namespace: infra
spec:
  host: api.example.com
  subsets: [{name: v1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ext
spec:
  http:
  - route:
    - destination:
        host: api.example.com
        subset: v1
";
    let out = run(&DestinationRuleAnalyzer, yaml);
    assert_eq!(out.len(), 1);
    assert!(
        out[0].contains("not found: \"api.example.com+v1\" (no DestinationRule"),
        "{out:?}"
    );
}

// --- ConflictingMeshGatewayHostsAnalyzer -------------------------------

#[test]
fn mesh_bound_duplicate_hosts_conflict() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
spec:
  hosts: [reviews]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: b
spec:
  hosts: [reviews.default.svc.cluster.local]
  gateways: [mesh, my-gateway]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: c
spec:
  hosts: [reviews]
  gateways: [my-gateway]
";
    let text = "The VirtualServices default/a,default/b associated with mesh gateway define the same host */reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.";
    assert_eq!(
        run(&ConflictingMeshGatewayHostsAnalyzer, yaml),
        vec![
            format!("Error [IST0109] (VirtualService default/a t.yaml:4) {text}"),
            format!("Error [IST0109] (VirtualService default/b t.yaml:11) {text}"),
        ]
    );
}

#[test]
fn private_export_scopes_do_not_conflict() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
  namespace: foo
spec:
  hosts: [api.example.com]
  exportTo: ['.']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: a
  namespace: bar
spec:
  hosts: [api.example.com]
  exportTo: ['.']
";
    assert!(run(&ConflictingMeshGatewayHostsAnalyzer, yaml).is_empty());
}

#[test]
fn exported_wildcard_host_conflicts_with_scoped_host() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: wild
  namespace: foo
spec:
  hosts: ['*.example.com']
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api
  namespace: bar
spec:
  hosts: [api.example.com]
  exportTo: ['.']
";
    let out = run(&ConflictingMeshGatewayHostsAnalyzer, yaml);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out.iter().all(|m| m.contains(
            "The VirtualServices bar/api,foo/wild associated with mesh gateway define the same host bar/api.example.com"
        )));
}

// --- GatewayAnalyzer ---------------------------------------------------

const GATEWAY: &str = "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: istio-system
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ['./own.example.com', '*/shared.example.com']
---
";

#[test]
fn missing_gateway_is_not_found_and_has_no_hosts() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web.example.com]
  gateways:
  - mesh
  - nope
";
    assert_eq!(
        run(&GatewayAnalyzer, yaml),
        vec![
            "Error [IST0101] (VirtualService default/web t.yaml:9) Referenced gateway not found: \"nope\"",
            "Warning [IST0132] (VirtualService default/web t.yaml:9) one or more host [web.example.com] defined in VirtualService default/web not found in Gateway default/nope.",
        ]
    );
}

#[test]
fn gateway_host_namespace_prefix_limits_binding() {
    let yaml = format!(
        "{GATEWAY}\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: own
  namespace: istio-system
spec:
  hosts: [own.example.com]
  gateways: [gw]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: own
spec:
  hosts: [own.example.com]
  gateways: [istio-system/gw]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shared
spec:
  hosts: [shared.example.com]
  gateways: [istio-system/gw]
"
    );
    assert_eq!(
        run(&GatewayAnalyzer, &yaml),
        vec![
            "Warning [IST0132] (VirtualService default/own t.yaml:27) one or more host [own.example.com] defined in VirtualService default/own not found in Gateway istio-system/gw."
        ]
    );
}

#[test]
fn internal_gateway_reference_is_flagged_only() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web.example.com]
  gateways: ['istio-ingress/gw~istio-autogenerated-k8s-gateway~http']
";
    assert_eq!(
        run(&GatewayAnalyzer, yaml),
        vec![
            "Warning [IST0165] (VirtualService default/web t.yaml:7) Gateway reference in VirtualService default/web is to an implementation-generated internal Gateway: istio-ingress/gw~istio-autogenerated-k8s-gateway~http."
        ]
    );
}

#[test]
fn kubernetes_gateway_listener_without_hostname_accepts_any_host() {
    let yaml = "\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: k8s
spec:
  gatewayClassName: istio
  listeners:
  - name: http
    port: 80
    protocol: HTTP
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [anything.example.com]
  gateways: [k8s]
";
    assert!(run(&GatewayAnalyzer, yaml).is_empty());
}

// --- JwtClaimRouteAnalyzer ---------------------------------------------

const GATEWAY_POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: ingress-pod
  namespace: istio-system
  labels: {istio: ingressgateway}
---
";

const JWT_VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: claims
spec:
  hosts: [own.example.com]
  gateways: [istio-system/gw]
  http:
  - match:
    - withoutHeaders:
        '@request.auth.claims.group': {exact: admin}
    route:
    - destination: {host: web}
---
";

#[test]
fn jwt_claim_routing_without_request_authentication() {
    let yaml = format!("{GATEWAY}{GATEWAY_POD}{JWT_VS}");
    assert_eq!(
        run(&JwtClaimRouteAnalyzer, &yaml),
        vec![
            "Error [IST0149] (VirtualService default/claims t.yaml:19) The virtual service uses the JWT claim based routing (key: @request.auth.claims.group) but found no request authentication for the gateway (istio-system/gw) pod (ingress-pod). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing."
        ]
    );
}

#[test]
fn jwt_claim_routing_with_request_authentication_is_fine() {
    let yaml = format!(
        "{GATEWAY}{GATEWAY_POD}{JWT_VS}\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: istio-system
spec:
  selector:
    matchLabels: {{istio: ingressgateway}}
"
    );
    assert!(run(&JwtClaimRouteAnalyzer, &yaml).is_empty());
}

#[test]
fn request_authentication_in_unrelated_namespace_does_not_count() {
    let yaml = format!(
        "{GATEWAY}{GATEWAY_POD}{JWT_VS}\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt
  namespace: elsewhere
spec: {{}}
"
    );
    assert_eq!(run(&JwtClaimRouteAnalyzer, &yaml).len(), 1);
}

// --- robustness --------------------------------------------------------

#[test]
fn odd_input_never_panics() {
    let yaml = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: odd
spec:
  hosts: ['', '*', '::1', 'a/b']
  gateways: ['', '/', 'a/b/c', './x', '*/*']
  exportTo: ['.', '']
  http:
  - route: [{}, {destination: {}}, {destination: {port: {}}}]
    mirror: {}
    mirrors: [{}, {destination: {subset: ''}}]
    match:
    - headers: {'@request.auth.claims': {}}
  tcp: [{}]
  tls: [{route: [{destination: {host: '*', subset: x}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: odd
spec:
  subsets: [{}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: x
spec:
  servers: [{hosts: ['/', '*/', './', 'a/b/c']}]
";
    for a in [
        &ConflictingMeshGatewayHostsAnalyzer as &dyn Analyzer,
        &DestinationHostAnalyzer,
        &DestinationRuleAnalyzer,
        &GatewayAnalyzer,
        &JwtClaimRouteAnalyzer,
    ] {
        let _ = run(a, yaml);
    }
}
