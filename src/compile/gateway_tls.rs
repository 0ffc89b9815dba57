//! TLS termination of `HTTPS` Gateway servers (`ServerTLSSettings` with
//! mode SIMPLE, MUTUAL or OPTIONAL_MUTUAL) → one rustls `ServerConfig` per
//! server, built when the snapshot is compiled (certificates, keys and CAs
//! are read then, through `source::certs`; never on the request path), as
//! pilot's `BuildListenerTLSContext` builds Envoy's `DownstreamTlsContext`:
//! ALPN `h2`, `http/1.1` (`util.ALPNHttp`); a client certificate required
//! for MUTUAL, verified when sent for OPTIONAL_MUTUAL; TLS 1.2–1.3 unless
//! `minProtocolVersion`/`maxProtocolVersion` say otherwise.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};

use crate::config::{ConfigSet, Resource};
use crate::model::{self, ServerTLSMode, ServerTLSSettings, TLSProtocol};

/// The ALPN protocols an HTTPS gateway server offers (pilot `util.ALPNHttp`).
pub const ALPN_HTTP: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// `credentialName` CA convention (`securitymodel.SdsCaSuffix`): the CA of
/// credential `x` is Secret `x-cacert`, else `x`'s own `ca.crt`/`cacert`.
pub const CA_SUFFIX: &str = "-cacert";

/// The compiled TLS of one HTTPS server.
pub struct ServerTls {
    pub mode: ServerTLSMode,
    pub config: Arc<ServerConfig>,
    /// The same without ALPN, for a client offering only protocols we do
    /// not speak: BoringSSL (Envoy) then goes on without ALPN where rustls
    /// would fail the handshake (`no_application_protocol`).
    pub config_no_alpn: Arc<ServerConfig>,
    /// The serving certificate, for `explain` and the admin API.
    pub certificate: CertificateInfo,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .field("certificate", &self.certificate)
            .finish_non_exhaustive()
    }
}

/// What a serving certificate is and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateInfo {
    /// `file /etc/certs/tls.crt` or `Secret istio-system/cred`.
    pub source: String,
    /// The leaf's subject (RFC 4514).
    pub subject: String,
    /// The leaf's DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// The leaf's `notAfter` (RFC 2822).
    pub not_after: String,
}

/// A server TLS setting strait cannot build, with the field path relative
/// to the server (`tls.serverCertificate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem {
    pub field: String,
    pub message: String,
}

fn problem(field: &str, message: impl Into<String>) -> TlsProblem {
    TlsProblem {
        field: format!("tls.{field}"),
        message: message.into(),
    }
}

/// The certificate material of a server.
struct Material {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    source: String,
    /// Where the key came from, and its field.
    key_source: (String, &'static str),
    /// The client CA, with the field it came from (MUTUAL, OPTIONAL_MUTUAL).
    ca: Option<Vec<CertificateDer<'static>>>,
    crls: Vec<CertificateRevocationListDer<'static>>,
}

/// Build the TLS of server `server` of Gateway `gw` (an HTTPS server whose
/// mode terminates TLS).
pub fn build(
    config: &ConfigSet,
    gw: &Resource<model::Gateway>,
    tls: &ServerTLSSettings,
) -> Result<ServerTls, TlsProblem> {
    let mode = tls.mode.unwrap_or_default();
    if !matches!(
        mode,
        ServerTLSMode::Simple | ServerTLSMode::Mutual | ServerTLSMode::OptionalMutual
    ) {
        return Err(problem(
            "mode",
            format!(
                "mode {} is not supported on an HTTPS server; strait terminates SIMPLE, MUTUAL and OPTIONAL_MUTUAL",
                mode_name(mode)
            ),
        ));
    }
    for (set, field) in [
        (
            !tls.verify_certificate_spki.is_empty(),
            "verifyCertificateSpki",
        ),
        (
            !tls.verify_certificate_hash.is_empty(),
            "verifyCertificateHash",
        ),
    ] {
        if set {
            return Err(problem(
                field,
                "not supported by strait; remove it and pin the client CA with caCertificates",
            ));
        }
    }
    let verify_client = mode != ServerTLSMode::Simple;
    let material = material(config, gw, tls, verify_client)?;
    let versions = versions(tls)?;
    let suites = cipher_suites(&tls.cipher_suites)?;
    let base = rustls::crypto::ring::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites.unwrap_or(base.cipher_suites.clone()),
        ..base
    });
    if let Err(e) = provider
        .key_provider
        .load_private_key(material.key.clone_key())
    {
        let (what, field) = &material.key_source;
        return Err(problem(
            field,
            format!("{what}: not a usable private key: {e}"),
        ));
    }
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            problem(
                "cipherSuites",
                format!("no cipher suite usable with the protocol versions: {e}"),
            )
        })?;
    let builder = match material.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(ca);
            if added == 0 {
                return Err(problem(
                    ca_field(tls),
                    "no usable CA certificate in it (PEM `CERTIFICATE` blocks)",
                ));
            }
            let mut v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(material.crls);
            if mode == ServerTLSMode::OptionalMutual {
                v = v.allow_unauthenticated();
            }
            let inner = v.build().map_err(|e| {
                problem(ca_field(tls), format!("cannot verify clients with it: {e}"))
            })?;
            let verifier: Arc<dyn ClientCertVerifier> = if tls.subject_alt_names.is_empty() {
                inner
            } else {
                Arc::new(SanVerifier {
                    inner,
                    names: tls.subject_alt_names.clone(),
                })
            };
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let cert_field = if tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
    {
        "credentialName"
    } else {
        "serverCertificate"
    };
    let certificate = describe(&material.chain, material.source.clone());
    let mut config = builder
        .with_single_cert(material.chain, material.key)
        .map_err(|e| {
            problem(
                cert_field,
                format!(
                    "{}: the certificate and private key do not make a usable pair: {e}",
                    material.source
                ),
            )
        })?;
    let config_no_alpn = Arc::new(config.clone());
    config.alpn_protocols = ALPN_HTTP.iter().map(|p| p.to_vec()).collect();
    Ok(ServerTls {
        mode,
        config: Arc::new(config),
        config_no_alpn,
        certificate,
    })
}

/// Istio's name of a `tls.mode`.
pub fn mode_name(m: ServerTLSMode) -> &'static str {
    match m {
        ServerTLSMode::Passthrough => "PASSTHROUGH",
        ServerTLSMode::Simple => "SIMPLE",
        ServerTLSMode::Mutual => "MUTUAL",
        ServerTLSMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        ServerTLSMode::IstioMutual => "ISTIO_MUTUAL",
        ServerTLSMode::OptionalMutual => "OPTIONAL_MUTUAL",
    }
}

fn ca_field(tls: &ServerTLSSettings) -> &'static str {
    if tls
        .ca_certificates
        .as_deref()
        .is_some_and(|c| !c.is_empty())
    {
        "caCertificates"
    } else {
        "credentialName"
    }
}

/// The certificate, key and client CA: from `credentialName` (a Secret in
/// the gateway's namespace) when set, else from the files.
fn material(
    config: &ConfigSet,
    gw: &Resource<model::Gateway>,
    tls: &ServerTLSSettings,
    verify_client: bool,
) -> Result<Material, TlsProblem> {
    let credential = credential(tls)?;
    let ns = gw.namespace();
    let mut m = match credential {
        Some(name) => from_secret(config, ns, name)?,
        None => from_files(tls)?,
    };
    if !verify_client {
        return Ok(m);
    }
    m.ca = Some(client_ca(config, ns, tls, credential)?);
    m.crls = crls(tls)?;
    Ok(m)
}

/// The one credential a server names (`credentialName`, or a single
/// `credentialNames` entry); more than one certificate is refused.
fn credential(tls: &ServerTLSSettings) -> Result<Option<&str>, TlsProblem> {
    if tls.credential_names.len() > 1 || tls.tls_certificates.len() > 1 {
        let field = if tls.credential_names.len() > 1 {
            "credentialNames"
        } else {
            "tlsCertificates"
        };
        return Err(problem(
            field,
            "more than one certificate per server is not supported by strait; use one, or one server per certificate with different hosts",
        ));
    }
    Ok(tls.credential_name.as_deref().filter(|c| !c.is_empty()).or(
        match tls.credential_names.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        },
    ))
}

/// The certificate and key of Secret `ns/name`.
fn from_secret(config: &ConfigSet, ns: &str, name: &str) -> Result<Material, TlsProblem> {
    let secret = find_secret(config, ns, name).ok_or_else(|| {
        problem(
            "credentialName",
            format!(
                "Secret {ns}/{name} not found: the credential must be a Secret in the gateway's namespace ({ns}), in the configuration files or, with --kubernetes, the cluster (strait watches its own --namespace's Secrets)"
            ),
        )
    })?;
    let data = secret.spec.decoded();
    let has = |k: &str| data.get(k).is_some_and(|v| !v.is_empty());
    // pilot/pkg/credentials/kube/secrets.go `ExtractCertInfo`.
    let (cert, key) = if has("cert") && has("key") {
        ("cert", "key")
    } else if has("tls.crt") && has("tls.key") {
        ("tls.crt", "tls.key")
    } else {
        return Err(problem(
            "credentialName",
            format!(
                "Secret {ns}/{name} has no certificate: it needs keys `tls.crt` and `tls.key` (type kubernetes.io/tls) or `cert` and `key` (generic), not empty"
            ),
        ));
    };
    let source = format!("Secret {ns}/{name}");
    let key_source = format!("{source} key {key}");
    Ok(Material {
        chain: certs(
            &data[cert],
            "credentialName",
            &format!("{source} key {cert}"),
        )?,
        key: private_key(&data[key], "credentialName", &key_source)?,
        key_source: (key_source, "credentialName"),
        source,
        ca: None,
        crls: Vec::new(),
    })
}

/// The certificate and key of the `serverCertificate`/`privateKey` files
/// (or the one `tlsCertificates` entry).
fn from_files(tls: &ServerTLSSettings) -> Result<Material, TlsProblem> {
    let (cert_path, key_path) = match tls.tls_certificates.first() {
        Some(c) if tls.server_certificate.as_deref().unwrap_or("").is_empty() => (
            c.server_certificate.as_deref().unwrap_or(""),
            c.private_key.as_deref().unwrap_or(""),
        ),
        _ => (
            tls.server_certificate.as_deref().unwrap_or(""),
            tls.private_key.as_deref().unwrap_or(""),
        ),
    };
    if cert_path.is_empty() || key_path.is_empty() {
        let field = if cert_path.is_empty() {
            "serverCertificate"
        } else {
            "privateKey"
        };
        return Err(problem(
            field,
            "an HTTPS server needs serverCertificate and privateKey files, or a credentialName",
        ));
    }
    let cert_bytes = read("serverCertificate", cert_path)?;
    let key_bytes = read("privateKey", key_path)?;
    Ok(Material {
        chain: certs(&cert_bytes, "serverCertificate", cert_path)?,
        key: private_key(&key_bytes, "privateKey", key_path)?,
        key_source: (key_path.to_string(), "privateKey"),
        source: format!("file {cert_path}"),
        ca: None,
        crls: Vec::new(),
    })
}

/// The client CA of a server that verifies client certificates: the
/// `caCertificates` file, else the credential's CA Secret.
fn client_ca(
    config: &ConfigSet,
    ns: &str,
    tls: &ServerTLSSettings,
    credential: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let mode = mode_name(tls.mode.unwrap_or_default());
    let ca_path = tls.ca_certificates.as_deref().unwrap_or("");
    if !ca_path.is_empty() {
        return certs(&read("caCertificates", ca_path)?, "caCertificates", ca_path);
    }
    let Some(name) = credential else {
        return Err(problem(
            "caCertificates",
            format!(
                "mode {mode} verifies client certificates: set caCertificates to a CA file, or use a credentialName with a CA"
            ),
        ));
    };
    // pilot `GetCaCert`: `<name>-cacert`, else the credential itself.
    let ca_name = format!("{name}{CA_SUFFIX}");
    let (secret, secret_name) = find_secret(config, ns, &ca_name)
        .map(|s| (s, ca_name.as_str()))
        .or_else(|| find_secret(config, ns, name).map(|s| (s, name)))
        .ok_or_else(|| {
            problem(
                "credentialName",
                format!("Secret {ns}/{name} not found: the credential must be a Secret in the gateway's namespace ({ns})"),
            )
        })?;
    let data = secret.spec.decoded();
    let key = ["cacert", "ca.crt"]
        .into_iter()
        .find(|k| data.get(k).is_some_and(|v| !v.is_empty()))
        .ok_or_else(|| {
            problem(
                "credentialName",
                format!(
                    "mode {mode} needs a client CA: add `ca.crt` (or `cacert`) to Secret {ns}/{secret_name}, or create Secret {ns}/{name}{CA_SUFFIX} with it"
                ),
            )
        })?;
    certs(
        &data[key],
        "credentialName",
        &format!("Secret {ns}/{secret_name} key {key}"),
    )
}

/// The `caCrl` file's revocation lists, if one is named.
fn crls(tls: &ServerTLSSettings) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsProblem> {
    let Some(crl_path) = tls.ca_crl.as_deref().filter(|p| !p.is_empty()) else {
        return Ok(Vec::new());
    };
    let bytes = read("caCrl", crl_path)?;
    let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| problem("caCrl", format!("{crl_path}: not a PEM CRL: {e}")))?;
    if crls.is_empty() {
        return Err(problem(
            "caCrl",
            format!("{crl_path}: no `X509 CRL` PEM block"),
        ));
    }
    Ok(crls)
}

fn find_secret<'a>(
    config: &'a ConfigSet,
    ns: &str,
    name: &str,
) -> Option<&'a Resource<model::k8s::SecretSpec>> {
    config
        .secrets
        .iter()
        .find(|s| s.name() == name && s.namespace() == ns)
}

fn read(field: &str, path: &str) -> Result<Vec<u8>, TlsProblem> {
    crate::source::certs::read(path).map_err(|e| problem(field, e))
}

fn certs(
    bytes: &[u8],
    field: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| problem(field, format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(problem(
            field,
            format!("{what}: no PEM `CERTIFICATE` block in it"),
        ));
    }
    for c in &certs {
        if x509_parser::parse_x509_certificate(c).is_err() {
            return Err(problem(
                field,
                format!("{what}: a certificate in it does not parse as X.509"),
            ));
        }
    }
    Ok(certs)
}

fn private_key(
    bytes: &[u8],
    field: &str,
    what: &str,
) -> Result<PrivateKeyDer<'static>, TlsProblem> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
        problem(
            field,
            format!("{what}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

/// `minProtocolVersion`/`maxProtocolVersion`: Envoy's server defaults are
/// TLS 1.2 to 1.3; rustls has no TLS 1.0 or 1.1.
fn versions(tls: &ServerTLSSettings) -> Result<Vec<&'static SupportedProtocolVersion>, TlsProblem> {
    let min = tls.min_protocol_version.unwrap_or_default();
    let max = tls.max_protocol_version.unwrap_or_default();
    for (v, field) in [(min, "minProtocolVersion"), (max, "maxProtocolVersion")] {
        if matches!(v, TLSProtocol::TlsV1_0 | TLSProtocol::TlsV1_1) {
            return Err(problem(
                field,
                format!(
                    "{} is not supported: strait (rustls) speaks TLS 1.2 and 1.3 only; use TLSV1_2 or TLSV1_3",
                    if v == TLSProtocol::TlsV1_0 {
                        "TLSV1_0"
                    } else {
                        "TLSV1_1"
                    }
                ),
            ));
        }
    }
    let lo = if min == TLSProtocol::TlsAuto {
        TLSProtocol::TlsV1_2
    } else {
        min
    };
    let hi = if max == TLSProtocol::TlsAuto {
        TLSProtocol::TlsV1_3
    } else {
        max
    };
    if lo > hi {
        return Err(problem(
            "maxProtocolVersion",
            "is lower than minProtocolVersion; no TLS version is left",
        ));
    }
    let mut out = Vec::new();
    if lo == TLSProtocol::TlsV1_2 {
        out.push(&rustls::version::TLS12);
    }
    if hi == TLSProtocol::TlsV1_3 {
        out.push(&rustls::version::TLS13);
    }
    Ok(out)
}

/// `cipherSuites` (OpenSSL/BoringSSL names, as Envoy takes them, `[a|b]`
/// equal-preference groups flattened) → rustls suites. As in Envoy they
/// apply to TLS 1.2; TLS 1.3 suites are not configurable there and all
/// stay enabled. `None`: unset, the provider's defaults.
fn cipher_suites(names: &[String]) -> Result<Option<Vec<SupportedCipherSuite>>, TlsProblem> {
    use rustls::crypto::ring::cipher_suite as cs;
    if names.is_empty() {
        return Ok(None);
    }
    let mut out: Vec<SupportedCipherSuite> = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let flat = names
        .iter()
        .flat_map(|n| n.trim_matches(|c| c == '[' || c == ']').split('|'))
        .map(str::trim)
        .filter(|n| !n.is_empty());
    for (i, name) in flat.enumerate() {
        let suite = match name {
            "ECDHE-ECDSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-RSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-ECDSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-RSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-ECDSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-RSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-ECDSA-AES128-SHA"
            | "ECDHE-RSA-AES128-SHA"
            | "AES128-GCM-SHA256"
            | "AES128-SHA"
            | "AES256-GCM-SHA384"
            | "AES256-SHA"
            | "ECDHE-ECDSA-AES256-SHA"
            | "ECDHE-RSA-AES256-SHA"
            | "ECDHE-PSK-AES128-CBC-SHA"
            | "ECDHE-PSK-AES256-CBC-SHA"
            | "ECDHE-PSK-CHACHA20-POLY1305"
            | "PSK-AES128-CBC-SHA"
            | "PSK-AES256-CBC-SHA"
            | "DES-CBC3-SHA" => {
                return Err(TlsProblem {
                    field: format!("tls.cipherSuites[{i}]"),
                    message: format!(
                        "{name} is not supported by strait (rustls has no CBC, static-RSA or PSK suites); use ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305 or ECDHE-RSA-CHACHA20-POLY1305"
                    ),
                });
            }
            _ => {
                return Err(TlsProblem {
                    field: format!("tls.cipherSuites[{i}]"),
                    message: format!(
                        "unknown cipher suite {name}; use OpenSSL names such as ECDHE-RSA-AES128-GCM-SHA256"
                    ),
                });
            }
        };
        if !out.contains(&suite) {
            out.push(suite);
        }
    }
    Ok(Some(out))
}

/// A certificate's description for `explain` and the admin API.
fn describe(chain: &[CertificateDer<'_>], source: String) -> CertificateInfo {
    let mut info = CertificateInfo {
        source,
        subject: String::new(),
        dns_names: Vec::new(),
        not_after: String::new(),
    };
    let Some(leaf) = chain.first() else {
        return info;
    };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) {
        info.subject = cert.subject().to_string();
        info.not_after = cert.validity().not_after.to_rfc2822().unwrap_or_default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                    info.dns_names.push(d.to_string());
                }
            }
        }
    }
    info
}

/// Every subject alternative name of a certificate as text (DNS, URI,
/// email, IP), for `subjectAltNames` and `x-forwarded-client-cert`.
pub fn subject_alt_names(der: &[u8]) -> Vec<(SanKind, String)> {
    use x509_parser::extensions::GeneralName;
    let mut out = Vec::new();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return out;
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => out.push((SanKind::Dns, d.to_string())),
                GeneralName::URI(u) => out.push((SanKind::Uri, u.to_string())),
                GeneralName::RFC822Name(e) => out.push((SanKind::Email, e.to_string())),
                GeneralName::IPAddress(ip) => {
                    let ip = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip).map(std::net::IpAddr::from).ok(),
                        16 => <[u8; 16]>::try_from(*ip).map(std::net::IpAddr::from).ok(),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.push((SanKind::Ip, ip.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Uri,
    Email,
    Ip,
}

/// MUTUAL with `subjectAltNames`: the client certificate must also carry
/// one of the names (Envoy's `match_typed_subject_alt_names`, exact, any
/// SAN type), else the handshake fails as a bad certificate.
#[derive(Debug)]
struct SanVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    names: Vec<String>,
}

impl ClientCertVerifier for SanVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let sans = subject_alt_names(end_entity);
        if sans.iter().any(|(_, n)| self.names.iter().any(|w| w == n)) {
            Ok(ok)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
