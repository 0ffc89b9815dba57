//! ServiceEntry and WorkloadEntry validation: Istio's `ValidateServiceEntry`,
//! `ValidateWorkloadEntry` and `validateWorkloadEntry`
//! (`pkg/config/validation/validation.go`), plus the CRD schema limits.

use std::collections::BTreeSet;

use super::{Finding, Options, common};
use crate::config::Resource;
use crate::model::{
    Location, Protocol, Resolution, ServiceEntry, ServicePort, WorkloadEntry, names,
};

/// `UnixAddressPrefix`.
const UNIX_PREFIX: &str = "unix://";
/// CRD maxItems.
const MAX_HOSTS: usize = 256;
const MAX_ADDRESSES: usize = 256;
const MAX_ADDRESS_LEN: usize = 64;
const MAX_PORTS: usize = 256;
const MAX_ENDPOINTS: usize = 4096;
const MAX_WE_PORTS: usize = 128;
const MAX_WE_LABELS: usize = 256;
const MAX_SERVICE_ACCOUNT_LEN: usize = 253;

fn resolution_name(r: Resolution) -> &'static str {
    match r {
        Resolution::None => "NONE",
        Resolution::Static => "STATIC",
        Resolution::Dns => "DNS",
        Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
        Resolution::DynamicDns => "DYNAMIC_DNS",
    }
}

/// `ValidateServiceEntry`.
pub fn validate(r: &Resource<ServiceEntry>, opts: &Options) -> Vec<Finding> {
    let se = &r.spec;
    let res = se.resolution.unwrap_or_default();
    let mut out = Vec::new();

    if let Some(sel) = &se.workload_selector {
        common::workload_selector(
            "spec.workloadSelector.labels",
            &sel.labels,
            "ServiceEntry",
            &mut out,
        );
        if !se.endpoints.is_empty() {
            out.push(Finding::error(
                "spec.workloadSelector",
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry; remove one",
            ));
        }
    }
    hosts(se, res, &mut out);
    addresses(se, res, &mut out);
    let port_names = ports(se, res, opts, &mut out);
    if se.endpoints.len() > MAX_ENDPOINTS {
        out.push(Finding::error(
            "spec.endpoints",
            format!("at most {MAX_ENDPOINTS} endpoints are allowed"),
        ));
    }
    resolution(r, res, &port_names, &mut out);
    multiple_hosts_tcp(se, res, &mut out);
    common::export_to(
        "spec.exportTo",
        &se.export_to,
        r.namespace(),
        true,
        false,
        &mut out,
    );
    out
}

/// Host loop of `ValidateServiceEntry` (plus CRD maxItems).
fn hosts(se: &ServiceEntry, res: Resolution, out: &mut Vec<Finding>) {
    if se.hosts.is_empty() {
        out.push(Finding::error(
            "spec.hosts",
            "service entry must have at least one host",
        ));
    }
    if se.hosts.len() > MAX_HOSTS {
        out.push(Finding::error(
            "spec.hosts",
            format!("at most {MAX_HOSTS} hosts are allowed"),
        ));
    }
    for (i, h) in se.hosts.iter().enumerate() {
        let p = format!("spec.hosts[{i}]");
        if h == "*" {
            out.push(Finding::error(
                p,
                "invalid host *; a ServiceEntry cannot capture all hosts, list the external hosts (e.g. *.example.com)",
            ));
            continue;
        }
        if let Err(e) = names::validate_wildcard_domain(h) {
            out.push(Finding::error(&p, e));
        }
        if res != Resolution::DynamicDns
            && let Err(e) = partial_wildcard(h)
        {
            out.push(Finding::warning(&p, e));
        }
    }
}

/// `agent.ValidatePartialWildCard`.
fn partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        Err(format!(
            "partial wildcard {} not allowed",
            names::go_quote(host)
        ))
    } else {
        Ok(())
    }
}

/// Address loop of `ValidateServiceEntry` (plus CRD limits).
fn addresses(se: &ServiceEntry, res: Resolution, out: &mut Vec<Finding>) {
    if se.addresses.len() > MAX_ADDRESSES {
        out.push(Finding::error(
            "spec.addresses",
            format!("at most {MAX_ADDRESSES} addresses are allowed"),
        ));
    }
    let mut cidr = false;
    for (i, a) in se.addresses.iter().enumerate() {
        let p = format!("spec.addresses[{i}]");
        cidr |= a.contains('/');
        if let Err(e) = names::validate_ip_subnet(a) {
            out.push(Finding::error(&p, e));
        }
        if a.len() > MAX_ADDRESS_LEN {
            out.push(Finding::error(
                &p,
                format!("address is longer than {MAX_ADDRESS_LEN} characters"),
            ));
        }
    }
    if cidr && !matches!(res, Resolution::None | Resolution::Static) {
        out.push(Finding::error(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        ));
    }
}

/// Port loop of `ValidateServiceEntry`; returns the port names.
fn ports(
    se: &ServiceEntry,
    res: Resolution,
    opts: &Options,
    out: &mut Vec<Finding>,
) -> BTreeSet<String> {
    if se.ports.len() > MAX_PORTS {
        out.push(Finding::error(
            "spec.ports",
            format!("at most {MAX_PORTS} ports are allowed"),
        ));
    }
    let mut port_names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let p = format!("spec.ports[{i}]");
        let name = port.name.as_deref().unwrap_or("");
        let number = port.number.unwrap_or(0);
        let proto = port.protocol.as_deref().unwrap_or("");
        if !port_names.insert(name.to_string()) {
            out.push(Finding::error(
                format!("{p}.name"),
                format!(
                    "service entry port name {} already defined",
                    names::go_quote(name)
                ),
            ));
        }
        if !numbers.insert(number) {
            out.push(Finding::error(
                format!("{p}.number"),
                format!("service entry port {number} already defined"),
            ));
        }
        if let Some(tp) = port.target_port
            && tp != 0
        {
            common::port(&format!("{p}.targetPort"), Some(tp), out);
            if res == Resolution::None {
                out.push(Finding::warning(
                    format!("{p}.targetPort"),
                    "targetPort has no effect when resolution mode is NONE",
                ));
            }
        }
        if se.addresses.is_empty()
            && !opts.auto_allocate_addresses
            && (proto.is_empty() || proto == "TCP")
        {
            out.push(Finding::warning(
                format!("{p}.protocol"),
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not enabled; \
                 add spec.addresses or declare an HTTP/TLS protocol",
            ));
        }
        port_name(&format!("{p}.name"), name, out);
        protocol(&format!("{p}.protocol"), proto, out);
        if let Err(e) = names::validate_port(number) {
            out.push(Finding::error(format!("{p}.number"), e));
        }
    }
    port_names
}

/// `ValidatePortName`.
pub(super) fn port_name(path: &str, name: &str, out: &mut Vec<Finding>) {
    if !names::is_dns1123_label(name) {
        out.push(Finding::error(
            path,
            format!("invalid port name: {name}; use a DNS label such as http-web"),
        ));
    }
}

/// `ValidateProtocol`: empty means sniffed.
pub(super) fn protocol(path: &str, proto: &str, out: &mut Vec<Finding>) {
    if !proto.is_empty() && Protocol::parse(proto) == Protocol::Unsupported {
        out.push(Finding::error(
            path,
            format!(
                "unsupported protocol: {proto}; use one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, MYSQL, REDIS"
            ),
        ));
    }
}

/// The `switch serviceEntry.Resolution` of `ValidateServiceEntry`.
fn resolution(
    r: &Resource<ServiceEntry>,
    res: Resolution,
    port_names: &BTreeSet<String>,
    out: &mut Vec<Finding>,
) {
    let se = &r.spec;
    match res {
        Resolution::None => {
            if !se.endpoints.is_empty() {
                out.push(Finding::error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                ));
            }
            if se.workload_selector.is_some() {
                out.push(Finding::warning(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                ));
            }
        }
        Resolution::Static => {
            for (i, ep) in se.endpoints.iter().enumerate() {
                workload_entry(
                    &format!("spec.endpoints[{i}]"),
                    ep,
                    Some(port_names),
                    false,
                    out,
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => dns(se, res, port_names, out),
        Resolution::DynamicDns => dynamic_dns(r, out),
    }
}

/// The DNS / DNS_ROUND_ROBIN branch.
fn dns(se: &ServiceEntry, res: Resolution, port_names: &BTreeSet<String>, out: &mut Vec<Finding>) {
    let rn = resolution_name(res);
    if se.endpoints.is_empty() {
        for (i, h) in se.hosts.iter().enumerate() {
            let bare = h.strip_prefix("*.").unwrap_or(h);
            if names::validate_fqdn(bare).is_err() {
                out.push(Finding::error(
                    format!("spec.hosts[{i}]"),
                    format!(
                        "hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode {rn}"
                    ),
                ));
            }
        }
    }
    if res == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
        out.push(Finding::error(
            "spec.endpoints",
            format!("there must only be 0 or 1 endpoint for resolution mode {rn}"),
        ));
    }
    for (i, ep) in se.endpoints.iter().enumerate() {
        let p = format!("spec.endpoints[{i}]");
        let addr = ep.address.as_deref().unwrap_or("");
        if !names::is_ip(addr) && names::validate_fqdn(addr).is_err() {
            out.push(Finding::error(
                format!("{p}.address"),
                format!(
                    "endpoint address {} is not a valid FQDN or an IP address",
                    names::go_quote(addr)
                ),
            ));
        }
        for e in names::label_errors(&ep.labels) {
            out.push(Finding::error(format!("{p}.labels"), e));
        }
        endpoint_ports(&p, ep, Some(port_names), out);
    }
    if se.workload_selector.is_some() {
        out.push(Finding::warning(
            "spec.workloadSelector",
            format!("workloadSelector should not be set when resolution mode is {rn}"),
        ));
    }
    if !se.addresses.is_empty()
        && se.hosts.len() > 1
        && se
            .ports
            .iter()
            .any(|p| Protocol::parse(p.protocol.as_deref().unwrap_or("")).is_tcp())
    {
        out.push(Finding::warning(
            "spec.hosts",
            "service entry can not have more than one host specified simultaneously with address and tcp port",
        ));
    }
}

/// DYNAMIC_DNS constraints (newer `ValidateServiceEntry`).
fn dynamic_dns(r: &Resource<ServiceEntry>, out: &mut Vec<Finding>) {
    let se = &r.spec;
    for (i, h) in se.hosts.iter().enumerate() {
        if !h.starts_with('*') {
            out.push(Finding::error(
                format!("spec.hosts[{i}]"),
                "DYNAMIC_DNS resolution requires wildcard hosts (e.g. *.example.com)",
            ));
        }
    }
    if !se.addresses.is_empty() {
        out.push(Finding::error(
            "spec.addresses",
            "addresses are not supported with DYNAMIC_DNS resolution",
        ));
    }
    if !se.endpoints.is_empty() {
        out.push(Finding::error(
            "spec.endpoints",
            "endpoints are not supported with DYNAMIC_DNS resolution",
        ));
    }
    for (i, p) in se.ports.iter().enumerate() {
        let proto = Protocol::parse(p.protocol.as_deref().unwrap_or(""));
        if !matches!(
            proto,
            Protocol::Http | Protocol::Tls | Protocol::Grpc | Protocol::Http2
        ) {
            out.push(Finding::error(
                format!("spec.ports[{i}].protocol"),
                "DYNAMIC_DNS resolution supports only HTTP, TLS, GRPC and HTTP2 ports",
            ));
        }
    }
    if se.location == Some(Location::MeshInternal)
        && r.meta.labels.contains_key("istio.io/use-waypoint")
    {
        out.push(Finding::error(
            "spec.location",
            "DYNAMIC_DNS resolution is not supported for MESH_INTERNAL services with a waypoint",
        ));
    }
}

/// "multiple hosts and TCP is invalid unless the resolution type is NONE".
fn multiple_hosts_tcp(se: &ServiceEntry, res: Resolution, out: &mut Vec<Finding>) {
    if res == Resolution::None || se.hosts.len() <= 1 {
        return;
    }
    let bad = se.ports.iter().position(|p: &ServicePort| {
        let proto = Protocol::parse(p.protocol.as_deref().unwrap_or(""));
        !proto.is_http() && !proto.is_tls()
    });
    if let Some(i) = bad {
        out.push(Finding::error(
            format!("spec.ports[{i}].protocol"),
            "multiple hosts provided with non-HTTP, non-TLS ports; split the hosts into separate ServiceEntries or use HTTP/TLS ports",
        ));
    }
}

/// `ValidateWorkloadEntry`.
pub fn validate_workload_entry(r: &Resource<WorkloadEntry>) -> Vec<Finding> {
    let mut out = Vec::new();
    workload_entry("spec", &r.spec, None, true, &mut out);
    out
}

/// `validateWorkloadEntry` plus the CRD limits; `service_ports` is set for
/// ServiceEntry endpoints.
fn workload_entry(
    path: &str,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<String>>,
    allow_fqdn: bool,
    out: &mut Vec<Finding>,
) {
    let addr = we.address.as_deref().unwrap_or("");
    let network = we.network.as_deref().unwrap_or("");
    if addr.is_empty() {
        if network.is_empty() {
            out.push(Finding::error(
                format!("{path}.address"),
                "address is required",
            ));
            return;
        }
        out.push(Finding::warning(
            format!("{path}.address"),
            format!("address is unset with network {}", names::go_quote(network)),
        ));
    }
    let mut unix = false;
    if let Some(uds) = addr.strip_prefix(UNIX_PREFIX) {
        unix = true;
        if let Err(e) = unix_address(uds) {
            out.push(Finding::error(format!("{path}.address"), e));
        }
        if !we.ports.is_empty() {
            out.push(Finding::error(
                format!("{path}.ports"),
                format!("unix endpoint {addr} must not include ports"),
            ));
        }
    } else if !addr.is_empty() && !names::is_ip(addr) {
        if !allow_fqdn {
            out.push(Finding::error(
                format!("{path}.address"),
                format!(
                    "endpoint address {} is not a valid IP address",
                    names::go_quote(addr)
                ),
            ));
        } else if names::validate_fqdn(addr).is_err() {
            out.push(Finding::error(
                format!("{path}.address"),
                format!(
                    "endpoint address {} is not a valid FQDN or an IP address",
                    names::go_quote(addr)
                ),
            ));
        }
    }
    endpoint_ports(path, we, service_ports, out);
    for e in names::label_errors(&we.labels) {
        out.push(Finding::error(format!("{path}.labels"), e));
    }
    if we.labels.len() > MAX_WE_LABELS {
        out.push(Finding::error(
            format!("{path}.labels"),
            format!("at most {MAX_WE_LABELS} labels are allowed"),
        ));
    }
    if we
        .service_account
        .as_deref()
        .is_some_and(|s| s.len() > MAX_SERVICE_ACCOUNT_LEN)
    {
        out.push(Finding::error(
            format!("{path}.serviceAccount"),
            format!("serviceAccount is longer than {MAX_SERVICE_ACCOUNT_LEN} characters"),
        ));
    }
    if unix && service_ports.is_some_and(|p| p.len() != 1) {
        out.push(Finding::error(
            format!("{path}.address"),
            "exactly 1 service port required for unix endpoints",
        ));
    }
}

/// The `for name, port := range we.Ports` loop (plus CRD maxProperties).
fn endpoint_ports(
    path: &str,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<String>>,
    out: &mut Vec<Finding>,
) {
    if we.ports.len() > MAX_WE_PORTS {
        out.push(Finding::error(
            format!("{path}.ports"),
            format!("at most {MAX_WE_PORTS} ports are allowed"),
        ));
    }
    for (name, port) in &we.ports {
        let p = format!("{path}.ports.{name}");
        if service_ports.is_some_and(|s| !s.contains(name)) {
            out.push(Finding::error(
                &p,
                format!(
                    "endpoint port {port} is not defined by the service entry; endpoint ports are keyed by service port name"
                ),
            ));
        }
        port_name(&p, name, out);
        if let Err(e) = names::validate_port(*port) {
            out.push(Finding::error(&p, e));
        }
    }
}

/// `ValidateUnixAddress`.
pub(super) fn unix_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if addr.starts_with('@') {
        return Ok(());
    }
    if !addr.starts_with('/') || addr.ends_with('/') {
        return Err(format!("{addr} is not an absolute path to a file"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
