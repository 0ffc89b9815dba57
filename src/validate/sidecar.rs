//! Sidecar validation: Istio's `ValidateSidecar`,
//! `validateSidecarIngressPortAndBind`,
//! `validateSidecarEgressPortBindAndCaptureMode` and
//! `validateSidecarOutboundTrafficPolicy` (`pkg/config/validation/validation.go`).

use std::collections::{BTreeMap, BTreeSet};

use super::destination_rule::connection_pool;
use super::gateway::{namespace_slash_hostname, tls_options};
use super::service_entry::{port_name, protocol, unix_address};
use super::{Finding, common};
use crate::config::Resource;
use crate::model::{
    CaptureMode, IstioEgressListener, IstioIngressListener, OutboundTrafficPolicy,
    OutboundTrafficPolicyMode, Protocol, ServerTLSMode, Sidecar, SidecarPort, names,
};

const UNIX_PREFIX: &str = "unix://";

/// `ValidateSidecar`.
pub fn validate(r: &Resource<Sidecar>) -> Vec<Finding> {
    let sc = &r.spec;
    let mut out = Vec::new();
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        out.push(Finding::error(
            "spec",
            "sidecar: empty configuration provided; set ingress, egress, outboundTrafficPolicy or inboundConnectionPool",
        ));
        return out;
    }
    if let Some(sel) = &sc.workload_selector {
        common::workload_selector(
            "spec.workloadSelector.labels",
            &sel.labels,
            "Sidecar",
            &mut out,
        );
    }
    let mut ports = BTreeSet::new();
    for (i, l) in sc.ingress.iter().enumerate() {
        ingress(&format!("spec.ingress[{i}]"), l, &mut ports, &mut out);
    }
    if let Some(cp) = &sc.inbound_connection_pool {
        connection_pool("spec.inboundConnectionPool", cp, &mut out);
    }
    egress(&sc.egress, r.namespace(), &mut out);
    if let Some(tp) = &sc.outbound_traffic_policy {
        outbound_traffic_policy("spec.outboundTrafficPolicy", tp, &mut out);
    }
    out
}

/// The ingress loop of `ValidateSidecar`.
fn ingress(
    path: &str,
    l: &IstioIngressListener,
    ports: &mut BTreeSet<u32>,
    out: &mut Vec<Finding>,
) {
    let Some(port) = &l.port else {
        out.push(Finding::error(
            format!("{path}.port"),
            "sidecar: port is required for ingress listeners",
        ));
        return;
    };
    if port.target_port.is_some_and(|t| t > 0) {
        out.push(Finding::error(
            format!("{path}.port.targetPort"),
            "targetPort has no impact on Sidecars; remove it",
        ));
    }
    let bind = l.bind.as_deref().unwrap_or("");
    ingress_port_and_bind(path, port, bind, out);
    let number = port.number.unwrap_or(0);
    if !ports.insert(number) {
        out.push(Finding::error(
            format!("{path}.port.number"),
            "sidecar: ports on IP bound listeners must be unique",
        ));
    }
    if let Some(ep) = l.default_endpoint.as_deref()
        && !ep.is_empty()
    {
        default_endpoint(&format!("{path}.defaultEndpoint"), ep, out);
    }
    let proto = Protocol::parse(port.protocol.as_deref().unwrap_or(""));
    if let Some(tls) = &l.tls {
        let p = format!("{path}.tls");
        let mut unsupported = |cond: bool, field: &str, msg: &str| {
            if cond {
                out.push(Finding::error(format!("{p}.{field}"), msg.to_string()));
            }
        };
        unsupported(
            !tls.subject_alt_names.is_empty(),
            "subjectAltNames",
            "sidecar: subjectAltNames is not supported in ingress tls",
        );
        unsupported(
            tls.https_redirect == Some(true),
            "httpsRedirect",
            "sidecar: httpsRedirect is not supported",
        );
        unsupported(
            tls.credential_name
                .as_deref()
                .is_some_and(|s| !s.is_empty()),
            "credentialName",
            "sidecar: credentialName is not currently supported",
        );
        unsupported(
            !tls.credential_names.is_empty(),
            "credentialNames",
            "sidecar: credentialNames is not currently supported",
        );
        unsupported(
            !tls.tls_certificates.is_empty(),
            "tlsCertificates",
            "sidecar: tlsCertificates is not currently supported",
        );
        let mode = tls.mode.unwrap_or_default();
        if matches!(
            mode,
            ServerTLSMode::IstioMutual | ServerTLSMode::AutoPassthrough
        ) {
            let m = if mode == ServerTLSMode::IstioMutual {
                "ISTIO_MUTUAL"
            } else {
                "AUTO_PASSTHROUGH"
            };
            out.push(Finding::error(
                format!("{p}.mode"),
                format!("configuration is invalid: cannot set mode to {m} in sidecar ingress tls"),
            ));
        }
        if !proto.is_tls() {
            out.push(Finding::error(
                &p,
                "sidecar: ingress tls is only supported on HTTPS/TLS ports; set port.protocol to HTTPS or TLS",
            ));
        }
        tls_options(&p, tls, out);
    }
    if let Some(cp) = &l.connection_pool {
        connection_pool(&format!("{path}.connectionPool"), cp, out);
        if cp.http.is_some() && !proto.is_http() {
            out.push(Finding::warning(
                format!("{path}.connectionPool.http"),
                format!(
                    "sidecar: HTTP connection pool settings are configured for port {number} ({}) but its protocol is not HTTP ({}); only TCP settings will apply",
                    names::go_quote(port.name.as_deref().unwrap_or("")),
                    port.protocol.as_deref().unwrap_or("")
                ),
            ));
        }
    }
}

/// `validateSidecarIngressPortAndBind`.
fn ingress_port_and_bind(path: &str, port: &SidecarPort, bind: &str, out: &mut Vec<Finding>) {
    if let Some(n) = port.name.as_deref()
        && !n.is_empty()
    {
        port_name(&format!("{path}.port.name"), n, out);
    }
    protocol(
        &format!("{path}.port.protocol"),
        port.protocol.as_deref().unwrap_or(""),
        out,
    );
    if let Err(e) = names::validate_port(port.number.unwrap_or(0)) {
        out.push(Finding::error(format!("{path}.port.number"), e));
    }
    ip_bind(&format!("{path}.bind"), bind, out);
}

fn ip_bind(path: &str, bind: &str, out: &mut Vec<Finding>) {
    if !bind.is_empty() && !names::is_ip(bind) {
        out.push(Finding::error(path, format!("{bind} is not a valid IP")));
    }
}

/// The `defaultEndpoint` check of `ValidateSidecar` (Go `net.SplitHostPort`).
fn default_endpoint(path: &str, ep: &str, out: &mut Vec<Finding>) {
    if let Some(uds) = ep.strip_prefix(UNIX_PREFIX) {
        if let Err(e) = unix_address(uds) {
            out.push(Finding::error(path, e));
        }
        return;
    }
    let (host, port) = match split_host_port(ep) {
        Ok(hp) => hp,
        Err(e) => {
            out.push(Finding::error(path, e));
            ("", "")
        }
    };
    if !host.is_empty() && !["127.0.0.1", "0.0.0.0", "::1", "::"].contains(&host) {
        out.push(Finding::error(
            path,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
        ));
    }
    match port.parse::<i64>() {
        Err(_) => out.push(Finding::error(
            path,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
        )),
        Ok(p) if !(1..=65535).contains(&p) => out.push(Finding::error(
            path,
            format!("port number {p} must be in the range 1..65535"),
        )),
        Ok(_) => {}
    }
}

/// Go's `net.SplitHostPort`, with its error texts.
fn split_host_port(s: &str) -> Result<(&str, &str), String> {
    let err = |why: &str| format!("address {s}: {why}");
    if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(err("missing ']' in address"));
        };
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let Some(port) = after.strip_prefix(':') else {
            return Err(err(if after.is_empty() {
                "missing port in address"
            } else {
                "unexpected ']' in address"
            }));
        };
        return Ok((host, port));
    }
    let Some(i) = s.rfind(':') else {
        return Err(err("missing port in address"));
    };
    let host = &s[..i];
    if host.contains(':') {
        return Err(err("too many colons in address"));
    }
    Ok((host, &s[i + 1..]))
}

/// The egress loop of `ValidateSidecar`.
fn egress(listeners: &[IstioEgressListener], ns: &str, out: &mut Vec<Finding>) {
    let mut ports = BTreeSet::new();
    let mut uds = BTreeSet::new();
    let mut catch_all = false;
    for (i, l) in listeners.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        match &l.port {
            None => {
                if catch_all {
                    out.push(Finding::error(
                        &path,
                        "sidecar: egress can have only one listener with empty port",
                    ));
                    continue;
                }
                if i + 1 == listeners.len() {
                    catch_all = true;
                } else {
                    out.push(Finding::error(
                        &path,
                        "sidecar: the egress listener with empty port should be the last listener in the list",
                    ));
                }
            }
            Some(port) => {
                if port.target_port.is_some_and(|t| t > 0) {
                    out.push(Finding::error(
                        format!("{path}.port.targetPort"),
                        "targetPort has no impact on Sidecars; remove it",
                    ));
                }
                let bind = l.bind.as_deref().unwrap_or("");
                egress_port_bind_capture(&path, port, bind, l.capture_mode, out);
                let n = port.number.unwrap_or(0);
                if n == 0 {
                    if !uds.insert(bind.to_string()) {
                        out.push(Finding::error(
                            format!("{path}.bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        ));
                    }
                } else if !ports.insert(n) {
                    out.push(Finding::error(
                        format!("{path}.port.number"),
                        "sidecar: ports on IP bound listeners must be unique",
                    ));
                }
            }
        }
        egress_hosts(&path, &l.hosts, ns, out);
    }
}

/// `validateSidecarEgressPortBindAndCaptureMode`.
fn egress_port_bind_capture(
    path: &str,
    port: &SidecarPort,
    bind: &str,
    capture: Option<CaptureMode>,
    out: &mut Vec<Finding>,
) {
    if let Some(n) = port.name.as_deref()
        && !n.is_empty()
    {
        port_name(&format!("{path}.port.name"), n, out);
    }
    protocol(
        &format!("{path}.port.protocol"),
        port.protocol.as_deref().unwrap_or(""),
        out,
    );
    if port.number.unwrap_or(0) == 0 {
        match bind.strip_prefix(UNIX_PREFIX) {
            None => out.push(Finding::error(
                format!("{path}.bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            )),
            Some(uds) => {
                if let Err(e) = unix_address(uds) {
                    out.push(Finding::error(format!("{path}.bind"), e));
                }
            }
        }
        if !matches!(
            capture.unwrap_or_default(),
            CaptureMode::Default | CaptureMode::None
        ) {
            out.push(Finding::error(
                format!("{path}.captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            ));
        }
    } else {
        common::port(&format!("{path}.port.number"), port.number, out);
        ip_bind(&format!("{path}.bind"), bind, out);
    }
}

/// Egress host checks: form, duplicates and `*/*` (warnings).
fn egress_hosts(path: &str, hosts: &[String], ns: &str, out: &mut Vec<Finding>) {
    if hosts.is_empty() {
        out.push(Finding::error(
            format!("{path}.hosts"),
            "sidecar: egress listener must contain at least one host; e.g. \"./*\" and \"istio-system/*\"",
        ));
        return;
    }
    let mut by_ns: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (i, h) in hosts.iter().enumerate() {
        let p = format!("{path}.hosts[{i}]");
        if let Some((n, svc)) = h.split_once('/') {
            let n = if n == "." { ns } else { n };
            let set = by_ns.entry(n).or_default();
            let dup = if svc != "*" {
                set.contains(svc) || set.contains("*")
            } else {
                !set.is_empty()
            };
            if dup {
                out.push(Finding::warning(&p, format!("duplicated egress host: {h}")));
            }
            set.insert(svc);
        }
        for e in namespace_slash_hostname(h, false) {
            out.push(Finding::error(&p, e));
        }
    }
    if by_ns.get("*").is_some_and(|s| s.contains("*")) && by_ns.len() != 1 {
        out.push(Finding::warning(
            format!("{path}.hosts"),
            "`*/*` host select all resources, no other hosts can be added",
        ));
    }
}

/// `validateSidecarOutboundTrafficPolicy`.
fn outbound_traffic_policy(path: &str, tp: &OutboundTrafficPolicy, out: &mut Vec<Finding>) {
    let mode = tp.mode.unwrap_or_default();
    if mode == OutboundTrafficPolicyMode::AllowAnyDynamicDns {
        out.push(Finding::error(
            format!("{path}.mode"),
            "sidecar: ALLOW_ANY_DYNAMIC_DNS mode is only supported in MeshConfig",
        ));
    }
    let Some(proxy) = &tp.egress_proxy else {
        return;
    };
    let pp = format!("{path}.egressProxy");
    if mode != OutboundTrafficPolicyMode::AllowAny {
        out.push(Finding::error(
            &pp,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        ));
        return;
    }
    if let Err(e) = names::validate_fqdn(proxy.host.as_deref().unwrap_or("")) {
        out.push(Finding::error(format!("{pp}.host"), e));
    }
    match &proxy.port {
        None => out.push(Finding::error(
            format!("{pp}.port"),
            "sidecar: egress_proxy port must be non-nil",
        )),
        Some(p) => {
            if let Err(e) = names::validate_port(p.number.unwrap_or(0)) {
                out.push(Finding::error(format!("{pp}.port.number"), e));
            }
        }
    }
    if let Some(s) = proxy.subset.as_deref()
        && !s.is_empty()
        && !names::is_dns1123_label(s)
    {
        out.push(Finding::error(
            format!("{pp}.subset"),
            format!("subset name is invalid: {s}"),
        ));
    }
}

#[cfg(test)]
mod tests;
