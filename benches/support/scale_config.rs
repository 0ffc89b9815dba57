//! The 10,000-service configuration of issue #6, shared by the benches and
//! `examples/scale.rs` (which writes it to a file for `strait run`).

/// `n` services, each with a ServiceEntry, a DestinationRule with two
/// subsets and a VirtualService with three match rules and a weighted split.
pub(crate) fn config(n: usize) -> String {
    let mut s = String::with_capacity(n * 1400);
    for i in 0..n {
        s.push_str(&format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc{i}}}
spec:
  hosts: [svc{i}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.3.1, labels: {{version: v1}}}}
  - {{address: 127.0.3.2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc{i}}}
spec:
  host: svc{i}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc{i}}}
spec:
  hosts: [svc{i}]
  http:
  - name: canary
    match: [{{headers: {{x-canary: {{exact: 'true'}}}}}}]
    route: [{{destination: {{host: svc{i}, subset: v2}}}}]
  - name: api
    match: [{{uri: {{prefix: /api/}}, method: {{exact: POST}}}}]
    route: [{{destination: {{host: svc{i}, subset: v1}}}}]
  - name: split
    route:
    - {{destination: {{host: svc{i}, subset: v1}}, weight: 90}}
    - {{destination: {{host: svc{i}, subset: v2}}, weight: 10}}
---
"
        ));
    }
    s
}
