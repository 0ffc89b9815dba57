use super::*;
use crate::validate::Severity;

fn load(yaml: &str) -> crate::config::ConfigSet {
    crate::load::load_str(yaml, "t.yaml", &crate::load::LoadOptions::default())
}

fn se_with(spec: &str, opts: &Options) -> Vec<Finding> {
    let set = load(&format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se\n  namespace: default\nspec:\n{spec}"
    ));
    let r = set
        .service_entries
        .first()
        .unwrap_or_else(|| panic!("no ServiceEntry loaded: {set:?}"));
    validate(r, opts)
}

fn se(spec: &str) -> Vec<Finding> {
    se_with(spec, &Options::default())
}

fn we(spec: &str) -> Vec<Finding> {
    let set = load(&format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: we\n  namespace: default\nspec:\n{spec}"
    ));
    let r = set
        .workload_entries
        .first()
        .unwrap_or_else(|| panic!("no WorkloadEntry loaded: {set:?}"));
    validate_workload_entry(r)
}

fn has(fs: &[Finding], sev: Severity, path: &str, msg: &str) -> bool {
    fs.iter()
        .any(|f| f.severity == sev && f.path == path && f.message.contains(msg))
}

use Severity::{Error as E, Warning as W};

#[test]
fn realistic_service_entry_is_valid() {
    let fs = se(r#"
  hosts: [api.example.com]
  addresses: [240.0.0.1]
  ports:
  - {number: 443, name: https, protocol: TLS}
  - {number: 27018, name: mongo, protocol: MONGO, targetPort: 27017}
  location: MESH_EXTERNAL
  resolution: DNS
  endpoints:
  - {address: db.example.com, ports: {mongo: 7777}, labels: {app: mongo}}
  exportTo: ["*"]
"#);
    assert!(fs.is_empty(), "{fs:#?}");
}

#[test]
fn service_entry_needs_hosts() {
    let fs = se("  ports: [{number: 80, name: http, protocol: HTTP}]\n");
    assert!(has(&fs, E, "spec.hosts", "at least one host"));
}

#[test]
fn service_entry_star_host_rejected() {
    let fs = se("  hosts: [\"*\"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n");
    assert!(has(&fs, E, "spec.hosts[0]", "invalid host *"));
}

#[test]
fn partial_wildcard_host_warns_unless_dynamic_dns() {
    let fs = se("  hosts: [\"foo*.com\"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n");
    assert!(has(&fs, W, "spec.hosts[0]", "partial wildcard"));
    let fs = se(
        "  hosts: [\"*foo.com\"]\n  resolution: DYNAMIC_DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    );
    assert!(!fs.iter().any(|f| f.message.contains("partial")), "{fs:#?}");
}

#[test]
fn workload_selector_and_endpoints_are_exclusive() {
    let fs = se(
        "  hosts: [a.example]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: a}}\n  endpoints: [{address: 1.1.1.1}]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.workloadSelector",
        "only one of WorkloadSelector"
    ));
}

#[test]
fn addresses_must_be_ips_and_cidr_only_for_none_or_static() {
    let fs = se(
        "  hosts: [a.example]\n  addresses: [10.0.0.0/8, not-an-ip]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    );
    assert!(has(&fs, E, "spec.addresses[1]", "not a valid IP"));
    assert!(has(
        &fs,
        E,
        "spec.addresses",
        "CIDR addresses are allowed only"
    ));
}

#[test]
fn port_names_and_numbers_must_be_unique() {
    let fs = se(
        "  hosts: [a.example]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 80, name: http, protocol: HTTP}\n",
    );
    assert!(has(&fs, E, "spec.ports[1].name", "already defined"));
    assert!(has(
        &fs,
        E,
        "spec.ports[1].number",
        "service entry port 80 already defined"
    ));
}

#[test]
fn port_name_protocol_and_number_are_checked() {
    let fs = se(
        "  hosts: [a.example]\n  ports:\n  - {number: 70000, name: \"bad name\", protocol: HTTP3, targetPort: 0}\n",
    );
    assert!(has(&fs, E, "spec.ports[0].name", "invalid port name"));
    assert!(has(
        &fs,
        E,
        "spec.ports[0].protocol",
        "unsupported protocol: HTTP3"
    ));
    assert!(has(&fs, E, "spec.ports[0].number", "1..65535"));
}

#[test]
fn tcp_port_without_addresses_warns_unless_auto_allocated() {
    let spec = "  hosts: [a.example]\n  resolution: DNS\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n";
    assert!(has(
        &se(spec),
        W,
        "spec.ports[0].protocol",
        "addresses are required"
    ));
    let auto = Options {
        auto_allocate_addresses: true,
    };
    assert!(se_with(spec, &auto).is_empty());
}

#[test]
fn none_resolution_rejects_endpoints() {
    let fs = se(
        "  hosts: [a.example]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 1.1.1.1}]\n",
    );
    assert!(has(&fs, E, "spec.endpoints", "resolution type none"));
}

#[test]
fn static_endpoints_must_be_ips_with_known_ports() {
    let fs = se(
        "  hosts: [a.example]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: foo.example, ports: {grpc: 9090}}\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.endpoints[0].address",
        "not a valid IP address"
    ));
    assert!(has(
        &fs,
        E,
        "spec.endpoints[0].ports.grpc",
        "not defined by the service entry"
    ));
}

#[test]
fn unix_endpoint_needs_exactly_one_port() {
    let fs = se(
        "  hosts: [a.example]\n  resolution: STATIC\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 81, name: http2, protocol: HTTP}\n  endpoints: [{address: \"unix:///var/run/a.sock\"}]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.endpoints[0].address",
        "exactly 1 service port"
    ));
}

#[test]
fn dns_without_endpoints_needs_fqdn_hosts() {
    let fs = se(
        "  hosts: [\"foo*\"]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    );
    assert!(has(&fs, E, "spec.hosts[0]", "hosts must be FQDN"));
}

#[test]
fn dns_round_robin_allows_one_endpoint() {
    let fs = se(
        "  hosts: [a.example]\n  resolution: DNS_ROUND_ROBIN\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: a.b}, {address: c.d}]\n",
    );
    assert!(has(&fs, E, "spec.endpoints", "0 or 1 endpoint"));
}

#[test]
fn dns_endpoint_must_be_ip_or_fqdn() {
    let fs = se(
        "  hosts: [a.example]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: \"bad host\"}]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.endpoints[0].address",
        "not a valid FQDN or an IP"
    ));
}

#[test]
fn multiple_hosts_with_tcp_port_rejected() {
    let fs = se(
        "  hosts: [a.example, b.example]\n  resolution: DNS\n  addresses: [240.0.0.1]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n",
    );
    assert!(has(
        &fs,
        E,
        "spec.ports[0].protocol",
        "multiple hosts provided"
    ));
    assert!(has(&fs, W, "spec.hosts", "more than one host"));
}

#[test]
fn dynamic_dns_constraints() {
    let fs = se(
        "  hosts: [a.example]\n  resolution: DYNAMIC_DNS\n  addresses: [1.1.1.1]\n  ports: [{number: 5432, name: pg, protocol: TCP}]\n",
    );
    assert!(has(&fs, E, "spec.hosts[0]", "wildcard hosts"));
    assert!(has(&fs, E, "spec.addresses", "DYNAMIC_DNS"));
    assert!(has(&fs, E, "spec.ports[0].protocol", "only HTTP, TLS"));
}

#[test]
fn service_entry_export_to_none_and_someone() {
    let fs = se(
        "  hosts: [a.example]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  exportTo: [\"~\", ns1]\n",
    );
    assert!(has(&fs, E, "spec.exportTo", "no one (~) and someone"));
}

#[test]
fn realistic_workload_entry_is_valid() {
    let fs = we(
        "  address: 2.2.2.2\n  ports: {http: 8080}\n  labels: {app: details}\n  network: vm-net\n  serviceAccount: details\n",
    );
    assert!(fs.is_empty(), "{fs:#?}");
    assert!(we("  address: vm1.example.com\n").is_empty());
}

#[test]
fn workload_entry_address_is_required() {
    assert!(has(
        &we("  labels: {app: a}\n"),
        E,
        "spec.address",
        "address is required"
    ));
    assert!(has(
        &we("  network: n1\n"),
        W,
        "spec.address",
        "address is unset with network"
    ));
}

#[test]
fn workload_entry_address_and_ports_are_checked() {
    let fs = we("  address: \"bad host\"\n  ports: {\"Bad_Name\": 0}\n");
    assert!(has(
        &fs,
        E,
        "spec.address",
        "not a valid FQDN or an IP address"
    ));
    assert!(has(&fs, E, "spec.ports.Bad_Name", "invalid port name"));
    assert!(has(&fs, E, "spec.ports.Bad_Name", "1..65535"));
    let fs = we("  address: \"unix://relative\"\n  ports: {http: 80}\n");
    assert!(has(&fs, E, "spec.address", "absolute path"));
    assert!(has(&fs, E, "spec.ports", "must not include ports"));
}
