//! Upstream TLS origination (DestinationRule `trafficPolicy.tls`) with
//! rustls and the `ring` provider. Certificates and keys are read once, when
//! a cluster's pool is built; a problem becomes that cluster's UF reason.

use std::fmt;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::compile::cluster_policy::{UpstreamTls, UpstreamTlsMode};

/// TLS origination for one cluster.
pub struct Origination {
    /// ALPN `http/1.1`.
    pub h1: Arc<ClientConfig>,
    /// ALPN `h2`, `http/1.1` (HTTP2/GRPC ports, upgraded connections).
    pub h2: Arc<ClientConfig>,
    /// `sni`; when unset the request authority's host is sent.
    pub sni: Option<String>,
}

impl fmt::Debug for Origination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origination")
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

impl Origination {
    /// The name sent as SNI (and verified, unless `subjectAltNames` is set).
    pub fn server_name(&self, authority_host: &str) -> Result<ServerName<'static>, String> {
        let name = self.sni.as_deref().unwrap_or(authority_host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string())
            .map_err(|e| format!("TLS_error: invalid server name {name:?}: {e}"))
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS settings' origination: `Ok(None)` is plaintext (`DISABLE` or no
/// `tls`), `Err` the reason every request of the cluster fails with.
pub fn origination(tls: Option<&UpstreamTls>) -> Result<Option<Origination>, String> {
    let Some(tls) = tls else { return Ok(None) };
    match &tls.mode {
        UpstreamTlsMode::Unsupported(reason) => return Err(reason.clone()),
        UpstreamTlsMode::Disable => return Ok(None),
        UpstreamTlsMode::Simple | UpstreamTlsMode::Mutual => {}
    }
    let provider = provider();
    let skip = tls.insecure_skip_verify;
    let verifier: Arc<dyn ServerCertVerifier> = if skip {
        Arc::new(NoVerify(provider.signature_verification_algorithms))
    } else {
        let mut roots = RootCertStore::empty();
        match tls.ca_certificates.as_deref() {
            Some(path) => {
                let certs = read_certs(path, "caCertificates")?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(format!(
                        "caCertificates file {path}: no usable CA certificate"
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS_error: {e}"))?;
        let sans = tls
            .subject_alt_names
            .iter()
            .filter_map(|s| ServerName::try_from(s.clone()).ok())
            .collect::<Vec<_>>();
        if sans.is_empty() {
            inner
        } else {
            Arc::new(SanVerifier { inner, sans })
        }
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS_error: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = if tls.mode == UpstreamTlsMode::Mutual {
        let cert_path = tls.client_certificate.as_str();
        let key_path = tls.private_key.as_str();
        if cert_path.is_empty() || key_path.is_empty() {
            return Err("MUTUAL TLS needs clientCertificate and privateKey files".to_string());
        }
        let certs = read_certs(cert_path, "clientCertificate")?;
        let key = PrivateKeyDer::from_pem_file(key_path)
            .map_err(|e| format!("cannot read privateKey file {key_path}: {e}"))?;
        builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("clientCertificate {cert_path} / privateKey {key_path}: {e}"))?
    } else {
        builder.with_no_client_auth()
    };
    let mut h1 = config.clone();
    h1.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut h2 = config;
    h2.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Origination {
        h1: Arc::new(h1),
        h2: Arc::new(h2),
        sni: tls.sni.clone(),
    }))
}

fn read_certs(path: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {field} file {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot parse {field} file {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{field} file {path}: no PEM certificate"));
    }
    Ok(certs)
}

/// `subjectAltNames`: the chain is verified as usual, and the certificate
/// must be valid for one of these names instead of the SNI.
#[derive(Debug)]
struct SanVerifier {
    inner: Arc<WebPkiServerVerifier>,
    sans: Vec<ServerName<'static>>,
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut last = rustls::Error::General("no subjectAltNames".into());
        for san in &self.sans {
            match self
                .inner
                .verify_server_cert(end_entity, intermediates, san, ocsp, now)
            {
                Ok(v) => return Ok(v),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify: true`: any certificate, but the handshake
/// signatures are still checked.
#[derive(Debug)]
struct NoVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ClientTLSMode, ClientTLSSettings};

    // The cases are written as Istio's `ClientTLSSettings`; compile turns
    // them into the `UpstreamTls` a pool reads, as this does.
    fn origination(tls: Option<&ClientTLSSettings>) -> Result<Option<Origination>, String> {
        super::origination(tls.map(UpstreamTls::from).as_ref())
    }

    fn settings(mode: ClientTLSMode) -> ClientTLSSettings {
        ClientTLSSettings {
            mode: Some(mode),
            ..Default::default()
        }
    }

    #[test]
    fn disable_and_absent_are_plaintext() {
        assert!(origination(None).unwrap().is_none());
        assert!(
            origination(Some(&settings(ClientTLSMode::Disable)))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn istio_mutual_and_credential_name_are_refused() {
        let e = origination(Some(&settings(ClientTLSMode::IstioMutual))).unwrap_err();
        assert!(e.contains("ISTIO_MUTUAL"), "{e}");
        let mut s = settings(ClientTLSMode::Simple);
        s.credential_name = Some("cacert".into());
        let e = origination(Some(&s)).unwrap_err();
        assert!(e.contains("credentialName"), "{e}");
    }

    #[test]
    fn simple_without_ca_uses_webpki_roots_and_alpn() {
        let o = origination(Some(&settings(ClientTLSMode::Simple)))
            .unwrap()
            .unwrap();
        assert_eq!(o.h1.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(o.h2.alpn_protocols[0], b"h2".to_vec());
        assert_eq!(
            o.server_name("example.com").unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
    }

    #[test]
    fn sni_overrides_the_authority() {
        let mut s = settings(ClientTLSMode::Simple);
        s.sni = Some("backend.internal".into());
        let o = origination(Some(&s)).unwrap().unwrap();
        assert_eq!(
            o.server_name("example.com").unwrap(),
            ServerName::try_from("backend.internal").unwrap()
        );
    }

    #[test]
    fn unreadable_files_name_the_file() {
        let mut s = settings(ClientTLSMode::Simple);
        s.ca_certificates = Some("/nonexistent/ca.pem".into());
        let e = origination(Some(&s)).unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let mut m = settings(ClientTLSMode::Mutual);
        m.insecure_skip_verify = Some(true);
        m.client_certificate = Some("/nonexistent/cert.pem".into());
        m.private_key = Some("/nonexistent/key.pem".into());
        let e = origination(Some(&m)).unwrap_err();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    }
}
