//! Gateway analyzers (`pkg/config/analysis/analyzers/gateway`).

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use super::message::{
    CONFLICTING_GATEWAYS, GATEWAY_DUPLICATE_CERTIFICATE, GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    INVALID_GATEWAY_CREDENTIAL, REFERENCED_RESOURCE_NOT_FOUND, go_list, q,
};
use super::{Analyzer, Context, Message};
use crate::config::Resource;
use crate::model::k8s::{IntOrString, SecretSpec};
use crate::model::{self, ServerTLSSettings, selector_matches};

/// Kubernetes `labels.SelectorFromSet(set).String()`: `k1=v1,k2=v2`, sorted.
pub(crate) fn selector_string(sel: &BTreeMap<String, String>) -> String {
    sel.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Field path of the selector's first label (`util.GatewaySelector`).
fn selector_path(sel: &BTreeMap<String, String>) -> String {
    match sel.keys().next() {
        Some(k) => format!("spec.selector.{k}"),
        None => "spec.selector".to_string(),
    }
}

fn selector_not_found(gw: &Resource<model::Gateway>) -> Message {
    let s = selector_string(&gw.spec.selector);
    Message::new(
        &REFERENCED_RESOURCE_NOT_FOUND,
        gw.reference(),
        Some(selector_path(&gw.spec.selector)),
        format!("Referenced selector not found: {}", q(&s)),
    )
}

/// IST0138: the same certificate on gateways serving the same workloads.
pub struct CertificateAnalyzer;

impl Analyzer for CertificateAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.CertificateAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks a gateway certificate"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let gws = &ctx.config.gateways;
        for cur in gws {
            for other in gws {
                if other.key() == cur.key() {
                    continue;
                }
                // `getGatewaysWithSelector`: the other selector must contain
                // all of ours (every gateway when ours is empty).
                if !selector_matches(&cur.spec.selector, &other.spec.selector) {
                    continue;
                }
                for cs in &cur.spec.servers {
                    for os in &other.spec.servers {
                        let (Some(a), Some(b)) = (cs.tls.as_ref(), os.tls.as_ref()) else {
                            continue;
                        };
                        if have_same_certificate(a, b) {
                            out.push(Message::new(
                                &GATEWAY_DUPLICATE_CERTIFICATE,
                                cur.reference(),
                                Some("metadata.name".to_string()),
                                format!(
                                    "Duplicate certificate in multiple gateways {} may cause 404s if clients re-use HTTP2 connections.",
                                    go_list(&[cur.key(), other.key()])
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
}

fn have_same_certificate(a: &ServerTLSSettings, b: &ServerTLSSettings) -> bool {
    let s = |v: &Option<String>| v.as_deref().unwrap_or("").to_string();
    let (ac, bc) = (s(&a.credential_name), s(&b.credential_name));
    if !ac.is_empty() && !bc.is_empty() {
        return ac == bc;
    }
    if ac.is_empty() && bc.is_empty() {
        let (acert, bcert) = (s(&a.server_certificate), s(&b.server_certificate));
        if !acert.is_empty() && acert == bcert {
            let (ak, bk) = (s(&a.private_key), s(&b.private_key));
            return !ak.is_empty() && ak == bk;
        }
    }
    false
}

type Labels = BTreeMap<String, String>;
/// Host → bind of one server.
type HostsBind = BTreeMap<String, String>;

/// IST0145: gateways on the same workloads and port claiming the same host.
pub struct ConflictingGatewayAnalyzer;

impl Analyzer for ConflictingGatewayAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.ConflictingGatewayAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks a gateway's selector, port number and hosts"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        // `initGatewaysMap`: (selector string, port) → gateway → host → bind.
        // A later server of one gateway on the same key replaces an earlier one.
        let mut map: BTreeMap<(String, u32), (Labels, BTreeMap<String, HostsBind>)> =
            BTreeMap::new();
        for gw in &ctx.config.gateways {
            let sel = selector_string(&gw.spec.selector);
            for server in &gw.spec.servers {
                let port = server.port.as_ref().and_then(|p| p.number).unwrap_or(0);
                let bind = server.bind.clone().unwrap_or_default();
                let hb: HostsBind = server
                    .hosts
                    .iter()
                    .map(|h| (h.clone(), bind.clone()))
                    .collect();
                let entry = map
                    .entry((sel.clone(), port))
                    .or_insert_with(|| (gw.spec.selector.clone(), BTreeMap::new()));
                entry.1.insert(gw.key(), hb);
            }
        }
        let pods = &ctx.config.pods;
        for gw in &ctx.config.gateways {
            let sel = selector_string(&gw.spec.selector);
            let mut hit: Vec<&(String, u32)> = Vec::new();
            for (key, (xsel_map, _)) in &map {
                let xsel = &key.0;
                let matched = if *xsel == sel {
                    true
                } else if xsel.contains(&sel) || sel.contains(xsel.as_str()) {
                    pods.iter().any(|p| {
                        selector_matches(&gw.spec.selector, &p.meta.labels)
                            && selector_matches(xsel_map, &p.meta.labels)
                    })
                } else {
                    false
                };
                if matched {
                    hit.push(key);
                }
            }
            if !sel.is_empty() && hit.is_empty() {
                out.push(selector_not_found(gw));
                continue;
            }
            for (i, server) in gw.spec.servers.iter().enumerate() {
                let port = server.port.as_ref().and_then(|p| p.number).unwrap_or(0);
                let bind = server.bind.as_deref().unwrap_or("");
                let mut others: Vec<String> = Vec::new();
                for key in &hit {
                    if key.1 != port {
                        continue;
                    }
                    let Some((_, gateways)) = map.get(*key) else {
                        continue;
                    };
                    for (name, hosts_bind) in gateways {
                        // `model.CheckDuplicates`: an identical host with the same bind.
                        if *name != gw.key()
                            && server
                                .hosts
                                .iter()
                                .any(|h| hosts_bind.get(h).is_some_and(|b| b == bind))
                        {
                            others.push(name.clone());
                        }
                    }
                }
                if others.is_empty() {
                    continue;
                }
                others.sort();
                out.push(Message::new(
                    &CONFLICTING_GATEWAYS,
                    gw.reference(),
                    Some(format!("spec.servers[{i}].port")),
                    format!(
                        "Conflict with gateways {} (workload selector {sel}, port {port}, hosts {}).",
                        others.join(","),
                        server.hosts.join(",")
                    ),
                ));
            }
        }
    }
}

/// IST0101 (no gateway workload) and IST0162 (port missing on the Service).
pub struct IngressGatewayPortAnalyzer;

impl Analyzer for IngressGatewayPortAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.IngressGatewayPortAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks a gateway's ports against the gateway's Kubernetes service ports"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for gw in &ctx.config.gateways {
            let mut service_ports: BTreeSet<u32> = BTreeSet::new();
            let mut matches = 0usize;
            for pod in &ctx.config.pods {
                if !selector_matches(&gw.spec.selector, &pod.meta.labels) {
                    continue;
                }
                matches += 1;
                for svc in &ctx.config.services {
                    if svc.namespace() != pod.namespace()
                        || !selector_matches(&svc.spec.selector, &pod.meta.labels)
                    {
                        continue;
                    }
                    for p in &svc.spec.ports {
                        if p.protocol.as_deref() != Some("TCP") {
                            continue;
                        }
                        // The gateway may listen on the Service port or on
                        // its numeric target port.
                        service_ports.insert(p.port);
                        if let Some(IntOrString::Int(t)) = p.target_port
                            && let Ok(t) = u32::try_from(t)
                        {
                            service_ports.insert(t);
                        }
                    }
                }
            }
            if matches == 0 {
                out.push(selector_not_found(gw));
                continue;
            }
            let sel = selector_string(&gw.spec.selector);
            for server in &gw.spec.servers {
                let Some(port) = server.port.as_ref() else {
                    continue;
                };
                let number = port.number.unwrap_or(0);
                if !service_ports.contains(&number) {
                    out.push(Message::new(
                        &GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                        gw.reference(),
                        Some(selector_path(&gw.spec.selector)),
                        format!(
                            "The gateway is listening on a target port (port {number}) that is not defined in the Service associated with its workload instances (Pod selector {sel}). If you need to access the gateway port through the gateway Service, it will not be available."
                        ),
                    ));
                }
            }
        }
    }
}

/// IST0101 (credentialName secret missing) and IST0161 (secret invalid).
pub struct SecretAnalyzer;

impl Analyzer for SecretAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.SecretAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks a gateway's referenced secrets for correctness"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for gw in &ctx.config.gateways {
            // The namespace of the first selected workload, not of the Gateway.
            let gw_ns = ctx
                .config
                .pods
                .iter()
                .find(|p| selector_matches(&gw.spec.selector, &p.meta.labels))
                .map(|p| p.namespace())
                .unwrap_or("");
            if gw_ns.is_empty() {
                out.push(selector_not_found(gw));
                continue;
            }
            for (i, server) in gw.spec.servers.iter().enumerate() {
                let cn = server
                    .tls
                    .as_ref()
                    .and_then(|t| t.credential_name.as_deref())
                    .unwrap_or("");
                if cn.is_empty() {
                    continue;
                }
                let (ns, name) = cn.split_once('/').unwrap_or((gw_ns, cn));
                let path = Some(format!("spec.servers[{i}].tls.credentialName"));
                let secret = ctx
                    .config
                    .secrets
                    .iter()
                    .find(|s| s.namespace() == ns && s.name() == name);
                match secret {
                    None => out.push(Message::new(
                        &REFERENCED_RESOURCE_NOT_FOUND,
                        gw.reference(),
                        path,
                        format!("Referenced credentialName not found: {}", q(cn)),
                    )),
                    Some(s) if !is_valid_secret(&s.spec) => out.push(Message::new(
                        &INVALID_GATEWAY_CREDENTIAL,
                        gw.reference(),
                        path,
                        format!(
                            "The credential referenced by the Gateway {} in namespace {gw_ns} is invalid, which can cause the traffic not to work as expected.",
                            gw.name()
                        ),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
}

/// strait's own analyzer (istioctl cannot see the files of a gateway
/// pod): the certificate, key, CA and CRL files that a Gateway server
/// terminating TLS names, read where strait runs, as `strait run` reads
/// them. IST0101 for a file that is not there, IST0161 (the words of the
/// Secret check, with the field and file) for one that cannot be read or
/// is no usable certificate, key or CRL. Needs `Context::read_file`.
pub struct CertificateFileAnalyzer;

/// What a referenced file must hold.
#[derive(Clone, Copy)]
enum FileKind {
    Certificates,
    PrivateKey,
    Crl,
}

impl Analyzer for CertificateFileAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.CertificateFileAnalyzer"
    }
    fn description(&self) -> &'static str {
        "Checks the certificate and key files a gateway's TLS servers reference (strait: read where strait runs)"
    }
    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let Some(read) = ctx.read_file else {
            return;
        };
        for gw in &ctx.config.gateways {
            for (i, server) in gw.spec.servers.iter().enumerate() {
                for (field, file, kind) in referenced_files(server) {
                    let path = Some(format!("spec.servers[{i}].tls.{field}"));
                    let why = match read(file) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            out.push(Message::new(
                                &REFERENCED_RESOURCE_NOT_FOUND,
                                gw.reference(),
                                path,
                                format!("Referenced {field} file not found: {}", q(file)),
                            ));
                            continue;
                        }
                        Err(e) => e.to_string(),
                        Ok(bytes) => match usable(&bytes, kind) {
                            Ok(()) => continue,
                            Err(why) => format!("{file}: {why}"),
                        },
                    };
                    out.push(Message::new(
                        &INVALID_GATEWAY_CREDENTIAL,
                        gw.reference(),
                        path,
                        format!(
                            "The credential referenced by the Gateway {} in namespace {} is invalid, which can cause the traffic not to work as expected ({field}: {why}).",
                            gw.name(),
                            gw.namespace()
                        ),
                    ));
                }
            }
        }
    }
}

/// The files a server terminating TLS reads (none when a credential names
/// the certificate instead, or the mode does not terminate), by field.
fn referenced_files(server: &model::Server) -> Vec<(String, &str, FileKind)> {
    type Found<'a> = Vec<(String, &'a str, FileKind)>;
    fn add<'a>(out: &mut Found<'a>, field: String, file: &'a Option<String>, kind: FileKind) {
        if let Some(f) = file.as_deref().filter(|f| !f.is_empty()) {
            out.push((field, f, kind));
        }
    }
    use model::ServerTLSMode as M;
    let Some(t) = &server.tls else {
        return Vec::new();
    };
    let terminates = matches!(
        t.mode.unwrap_or_default(),
        M::Simple | M::Mutual | M::OptionalMutual
    );
    if !terminates || t.credential_name.is_some() || !t.credential_names.is_empty() {
        return Vec::new();
    }
    let mut out: Found<'_> = Vec::new();
    let o = &mut out;
    add(
        o,
        "serverCertificate".into(),
        &t.server_certificate,
        FileKind::Certificates,
    );
    add(o, "privateKey".into(), &t.private_key, FileKind::PrivateKey);
    add(
        o,
        "caCertificates".into(),
        &t.ca_certificates,
        FileKind::Certificates,
    );
    add(o, "caCrl".into(), &t.ca_crl, FileKind::Crl);
    for (j, c) in t.tls_certificates.iter().enumerate() {
        let base = format!("tlsCertificates[{j}]");
        add(
            o,
            format!("{base}.serverCertificate"),
            &c.server_certificate,
            FileKind::Certificates,
        );
        add(
            o,
            format!("{base}.privateKey"),
            &c.private_key,
            FileKind::PrivateKey,
        );
        add(
            o,
            format!("{base}.caCertificates"),
            &c.ca_certificates,
            FileKind::Certificates,
        );
    }
    out
}

/// Whether `bytes` hold what a field of `kind` needs, as rustls will
/// load it.
fn usable(bytes: &[u8], kind: FileKind) -> Result<(), &'static str> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateRevocationListDer, PrivateKeyDer};
    match kind {
        FileKind::Certificates if !validate_certificate(bytes) => {
            Err("not a PEM certificate that is valid now")
        }
        FileKind::PrivateKey if PrivateKeyDer::from_pem_slice(bytes).is_err() => {
            Err("not a PEM private key")
        }
        FileKind::Crl => {
            let crls: Result<Vec<_>, _> =
                CertificateRevocationListDer::pem_slice_iter(bytes).collect();
            match crls {
                Ok(c) if !c.is_empty() => Ok(()),
                _ => Err("not a PEM certificate revocation list"),
            }
        }
        _ => Ok(()),
    }
}

/// Secret data decoded from base64 (`stringData` counts as the API server
/// would merge it); undecodable values count as empty.
fn secret_data(s: &SecretSpec) -> BTreeMap<&str, Vec<u8>> {
    let mut data: BTreeMap<&str, Vec<u8>> = s
        .data
        .iter()
        .map(|(k, v)| {
            let clean: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .unwrap_or_default();
            (k.as_str(), bytes)
        })
        .collect();
    for (k, v) in &s.string_data {
        data.insert(k.as_str(), v.as_bytes().to_vec());
    }
    data
}

/// `kube.ExtractCertInfo` then `xds.ValidateCertificate` on the cert chain.
fn is_valid_secret(s: &SecretSpec) -> bool {
    let data = secret_data(s);
    let has_value = |k: &str| data.get(k).is_some_and(|v| !v.is_empty());
    let cert = if has_value("cert") && has_value("key") {
        &data["cert"]
    } else if has_value("tls.crt") && has_value("tls.key") {
        &data["tls.crt"]
    } else {
        return false;
    };
    validate_certificate(cert)
}

/// First PEM block (Go's `pem.Decode`): its base64 body, decoded.
fn pem_first_block(data: &[u8]) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let label = loop {
        let l = lines.next()?.trim();
        if let Some(rest) = l.strip_prefix("-----BEGIN ")
            && let Some(label) = rest.strip_suffix("-----")
        {
            break label.to_string();
        }
    };
    let end = format!("-----END {label}-----");
    let mut body = String::new();
    for l in lines {
        let l = l.trim();
        if l == end {
            return base64::engine::general_purpose::STANDARD.decode(body).ok();
        }
        if l.contains(':') {
            continue; // RFC 1421 header
        }
        body.push_str(l);
    }
    None
}

/// Decodes the first PEM block as DER certificates, all currently valid.
fn validate_certificate(data: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    let Some(der) = pem_first_block(data) else {
        return false;
    };
    let mut rest: &[u8] = &der;
    while !rest.is_empty() {
        match x509_parser::certificate::X509Certificate::from_der(rest) {
            Ok((rem, cert)) => {
                if !cert.validity().is_valid() {
                    return false;
                }
                rest = rem;
            }
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
