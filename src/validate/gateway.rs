//! Gateway validation: Istio's `ValidateGateway`, `validateServer`,
//! `validateServerPort`, `validateServerBind` and `validateTLSOptions`
//! (`pkg/config/validation/validation.go`), host rules from
//! `agent.ValidateNamespaceSlashWildcardHostname`, plus CRD limits.

use std::collections::BTreeSet;

use super::Finding;
use super::service_entry::unix_address;
use crate::config::Resource;
use crate::model::{Gateway, Port, Protocol, Server, ServerTLSMode, ServerTLSSettings, names};

const UNIX_PREFIX: &str = "unix://";

/// `security.ValidCipherSuites` (Envoy's supported names).
const VALID_CIPHERS: [&str; 15] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// `ValidateGateway`.
pub fn validate(r: &Resource<Gateway>) -> Vec<Finding> {
    let mut out = Vec::new();
    let name = r.name();
    if !names::is_dns1123_label(name) {
        out.push(Finding::error(
            "metadata.name",
            format!(
                "invalid gateway name: {}; use a DNS label (no dots)",
                names::go_quote(name)
            ),
        ));
    }
    if r.spec.servers.is_empty() {
        out.push(Finding::error(
            "spec.servers",
            "gateway must have at least one server",
        ));
    }
    for (i, s) in r.spec.servers.iter().enumerate() {
        server(&format!("spec.servers[{i}]"), s, &mut out);
    }
    let mut port_names = BTreeSet::new();
    for (i, s) in r.spec.servers.iter().enumerate() {
        let Some(port) = &s.port else { continue };
        let pname = port.name.as_deref().unwrap_or("");
        if !port_names.insert(pname) {
            out.push(Finding::error(
                format!("spec.servers[{i}].port.name"),
                format!("port names in servers must be unique: duplicate name {pname}"),
            ));
        }
        let proto = Protocol::parse(port.protocol.as_deref().unwrap_or(""));
        if !proto.is_http() && s.tls.as_ref().and_then(|t| t.https_redirect) == Some(true) {
            out.push(Finding::warning(
                format!("spec.servers[{i}].tls.httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            ));
        }
    }
    out
}

/// `validateServer`.
fn server(path: &str, s: &Server, out: &mut Vec<Finding>) {
    if s.hosts.is_empty() {
        out.push(Finding::error(
            format!("{path}.hosts"),
            "server config must contain at least one host",
        ));
    }
    for (i, h) in s.hosts.iter().enumerate() {
        for e in namespace_slash_hostname(h, true) {
            out.push(Finding::error(format!("{path}.hosts[{i}]"), e));
        }
    }
    let bind = s.bind.as_deref().unwrap_or("");
    let before = out.len();
    server_port(&format!("{path}.port"), s.port.as_ref(), bind, out);
    let port_ok = out.len() == before;
    server_bind(path, s.port.as_ref(), bind, out);
    if let Some(tls) = &s.tls {
        tls_options(&format!("{path}.tls"), tls, out);
    }
    if port_ok && let Some(port) = &s.port {
        let p = Protocol::parse(port.protocol.as_deref().unwrap_or(""));
        match &s.tls {
            None if p.is_tls() => out.push(Finding::error(
                format!("{path}.tls"),
                "server must have TLS settings for HTTPS/TLS protocols; add tls (e.g. mode: SIMPLE with credentialName)",
            )),
            Some(tls) if !p.is_tls() => {
                if p.is_http() {
                    let passthrough = matches!(
                        tls.mode.unwrap_or_default(),
                        ServerTLSMode::Passthrough | ServerTLSMode::AutoPassthrough
                    );
                                    if !passthrough
                        || set(&tls.ca_certificates)
                        || set(&tls.private_key)
                        || set(&tls.server_certificate)
                    {
                        out.push(Finding::error(
                            format!("{path}.tls"),
                            "server cannot have TLS settings for plain text HTTP ports; only httpsRedirect is allowed, use protocol HTTPS to terminate TLS",
                        ));
                    }
                } else {
                    out.push(Finding::error(
                        format!("{path}.tls"),
                        "server cannot have TLS settings for non HTTPS/TLS ports",
                    ));
                }
            }
            _ => {}
        }
    }
}

/// `validateServerPort`.
fn server_port(path: &str, port: Option<&Port>, bind: &str, out: &mut Vec<Finding>) {
    let Some(port) = port else {
        out.push(Finding::error(path, "port is required"));
        return;
    };
    let proto = port.protocol.as_deref().unwrap_or("");
    if Protocol::parse(proto) == Protocol::Unsupported {
        out.push(Finding::error(
            format!("{path}.protocol"),
            format!(
                "invalid protocol {}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                names::go_quote(proto)
            ),
        ));
    }
    let number = port.number.unwrap_or(0);
    if (number > 0 || !bind.starts_with(UNIX_PREFIX))
        && let Err(e) = names::validate_port(number)
    {
        out.push(Finding::error(format!("{path}.number"), e));
    }
    if port.target_port.is_some_and(|t| t > 0) {
        out.push(Finding::error(
            format!("{path}.targetPort"),
            "targetPort has no impact on Gateways; remove it",
        ));
    }
    if port.name.as_deref().unwrap_or("").is_empty() {
        out.push(Finding::error(
            format!("{path}.name"),
            format!("port name must be set: number:{number} protocol:{proto:?}"),
        ));
    }
}

/// `validateServerBind`.
fn server_bind(path: &str, port: Option<&Port>, bind: &str, out: &mut Vec<Finding>) {
    if let Some(uds) = bind.strip_prefix(UNIX_PREFIX) {
        if let Err(e) = unix_address(uds) {
            out.push(Finding::error(format!("{path}.bind"), e));
        }
        if let Some(p) = port
            && p.number.unwrap_or(0) != 0
        {
            out.push(Finding::error(
                format!("{path}.port.number"),
                "port number must be 0 for unix domain socket",
            ));
        }
    } else if !bind.is_empty() && !names::is_ip(bind) {
        out.push(Finding::error(
            format!("{path}.bind"),
            format!("{bind} is not a valid IP"),
        ));
    }
}

/// `validateTLSOptions` (shared with Sidecar ingress listeners).
pub(super) fn tls_options(path: &str, tls: &ServerTLSSettings, out: &mut Vec<Finding>) {
    let mode = tls.mode.unwrap_or_default();
    let cred = set(&tls.credential_name);
    let creds = !tls.credential_names.is_empty();
    let certs = !tls.tls_certificates.is_empty();
    let files = set(&tls.server_certificate) || set(&tls.private_key);

    if matches!(
        tls.min_protocol_version,
        Some(crate::model::TLSProtocol::TlsV1_0 | crate::model::TLSProtocol::TlsV1_1)
    ) && tls.cipher_suites.is_empty()
    {
        out.push(Finding::warning(
            format!("{path}.minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        ));
    }
    ciphers(&format!("{path}.cipherSuites"), &tls.cipher_suites, out);
    // CRD: credentialNames and tlsCertificates hold 1–2 entries.
    for (len, field) in [
        (tls.credential_names.len(), "credentialNames"),
        (tls.tls_certificates.len(), "tlsCertificates"),
    ] {
        if len > 2 {
            out.push(Finding::error(
                format!("{path}.{field}"),
                format!("{field} may hold at most 2 entries (one RSA and one ECDSA certificate)"),
            ));
        }
    }
    if [cred, creds, files, certs].iter().filter(|b| **b).count() > 1 {
        out.push(Finding::error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        ));
    }

    if mode == ServerTLSMode::IstioMutual {
        istio_mutual(path, tls, cred || creds, certs, out);
        return;
    }
    if matches!(
        mode,
        ServerTLSMode::Passthrough | ServerTLSMode::AutoPassthrough
    ) && (set(&tls.ca_crl) || files || set(&tls.ca_certificates) || cred || creds || certs)
    {
        let m = if mode == ServerTLSMode::Passthrough {
            "PASSTHROUGH"
        } else {
            "AUTO_PASSTHROUGH"
        };
        out.push(Finding::warning(
            path,
            format!("{m} mode does not use certificates, they will be ignored"),
        ));
    }
    let terminating = matches!(
        mode,
        ServerTLSMode::Simple | ServerTLSMode::Mutual | ServerTLSMode::OptionalMutual
    );
    if terminating && (cred || creds) {
        if set(&tls.ca_crl) {
            out.push(Finding::error(
                format!("{path}.caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            ));
        }
        return;
    }
    if terminating {
        terminating_certificates(path, tls, mode, certs, out);
    }
    if set(&tls.ca_crl) && mode == ServerTLSMode::Simple {
        out.push(Finding::error(
            format!("{path}.caCrl"),
            "CRL is not supported with SIMPLE TLS",
        ));
    }
}

/// A string field given and not empty.
fn set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

/// ISTIO_MUTUAL takes its certificates from the mesh: any given is an error.
fn istio_mutual(
    path: &str,
    tls: &ServerTLSSettings,
    cred: bool,
    certs: bool,
    out: &mut Vec<Finding>,
) {
    for (v, what, field) in [
        (
            set(&tls.server_certificate),
            "server certificate",
            "serverCertificate",
        ),
        (set(&tls.private_key), "private key", "privateKey"),
        (set(&tls.ca_certificates), "CA bundle", "caCertificates"),
        (cred, "credentialName", "credentialName"),
        (certs, "tlsCertificates", "tlsCertificates"),
    ] {
        if v {
            out.push(Finding::error(
                format!("{path}.{field}"),
                format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
            ));
        }
    }
}

/// SIMPLE, MUTUAL or OPTIONAL_MUTUAL without a credentialName: the
/// certificate, key (and for MUTUAL the CA bundle) must be given.
fn terminating_certificates(
    path: &str,
    tls: &ServerTLSSettings,
    mode: ServerTLSMode,
    certs: bool,
    out: &mut Vec<Finding>,
) {
    let mode_name = if mode == ServerTLSMode::Simple {
        "SIMPLE"
    } else {
        "MUTUAL"
    };
    if certs {
        for (i, c) in tls.tls_certificates.iter().enumerate() {
            if !set(&c.server_certificate) {
                out.push(Finding::error(
                    format!("{path}.tlsCertificates[{i}].serverCertificate"),
                    format!("{mode_name} TLS requires a server certificate"),
                ));
            }
            if !set(&c.private_key) {
                out.push(Finding::error(
                    format!("{path}.tlsCertificates[{i}].privateKey"),
                    format!("{mode_name} TLS requires a private key"),
                ));
            }
        }
    } else {
        if !set(&tls.server_certificate) {
            out.push(Finding::error(
                format!("{path}.serverCertificate"),
                format!(
                    "{mode_name} TLS requires a server certificate; set serverCertificate or credentialName"
                ),
            ));
        }
        if !set(&tls.private_key) {
            out.push(Finding::error(
                format!("{path}.privateKey"),
                format!("{mode_name} TLS requires a private key; set privateKey or credentialName"),
            ));
        }
    }
    if mode != ServerTLSMode::Simple && !set(&tls.ca_certificates) {
        out.push(Finding::error(
            format!("{path}.caCertificates"),
            "MUTUAL TLS requires a client CA bundle; set caCertificates or credentialName",
        ));
    }
}

/// The cipher-suite warnings of `validateTLSOptions`.
fn ciphers(path: &str, suites: &[String], out: &mut Vec<Finding>) {
    let mut invalid = BTreeSet::new();
    let mut valid = BTreeSet::new();
    let mut dup = BTreeSet::new();
    for c in suites {
        if !VALID_CIPHERS.contains(&c.as_str()) {
            invalid.insert(c.as_str());
        } else if !valid.insert(c.as_str()) {
            dup.insert(c.as_str());
        }
    }
    let list = |s: &BTreeSet<&str>| s.iter().copied().collect::<Vec<_>>().join(" ");
    if !invalid.is_empty() {
        out.push(Finding::warning(
            path,
            format!("ignoring invalid cipher suites: [{}]", list(&invalid)),
        ));
    }
    if !dup.is_empty() {
        out.push(Finding::warning(
            path,
            format!("ignoring duplicate cipher suites: [{}]", list(&dup)),
        ));
    }
}

/// `agent.ValidateNamespaceSlashWildcardHostname` (gateway and sidecar forms).
pub(super) fn namespace_slash_hostname(host: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    let Some((ns, name)) = host.split_once('/') else {
        if is_gateway {
            return hostname_part(host, true);
        }
        errs.push("host must be of form namespace/dnsName".to_string());
        return errs;
    };
    if ns.is_empty() || name.is_empty() {
        errs.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    let ok = ns == "*" || ns == "." || (!is_gateway && ns == "~") || names::is_dns1123_label(ns);
    if !ok {
        let kind = if is_gateway { "gateway" } else { "sidecar" };
        errs.push(format!(
            "invalid namespace value {} in {kind}",
            names::go_quote(ns)
        ));
    }
    errs.extend(hostname_part(name, is_gateway));
    errs
}

/// `validateSidecarOrGatewayHostnamePart`.
fn hostname_part(h: &str, is_gateway: bool) -> Vec<String> {
    let mut errs = Vec::new();
    if h != "*" && !h.contains('.') {
        errs.push(format!(
            "short names (non FQDN) are not allowed: {h}; use the FQDN, e.g. {h}.<namespace>.svc.cluster.local"
        ));
    }
    if let Err(e) = names::validate_wildcard_domain(h) {
        // A gateway also accepts an IP; the sidecar reports the error twice in Istio, once here.
        if !is_gateway || !names::is_ip(h) {
            errs.push(e);
        }
    }
    if h.contains('*') && h.len() != 1 && !h.starts_with("*.") {
        errs.push(format!(
            "partial wildcard {} not allowed",
            names::go_quote(h)
        ));
    }
    errs
}

#[cfg(test)]
mod tests;
