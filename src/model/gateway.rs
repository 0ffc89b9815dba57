//! `networking.istio.io` Gateway (`gateway.proto`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Gateway`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gateway {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods; empty selects all workloads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// `Server`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// `[namespace/]dnsName`; the namespace part filters binding VirtualServices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTLSSettings>,
    /// Hidden; not implemented by Istio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `Port`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Parsed case-insensitively with `Protocol::parse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated; rejected on Gateways.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// `ServerTLSSettings` (also used by `Sidecar` ingress listeners).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTLSSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// Unset means PASSTHROUGH (proto value 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTLSMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_credential_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TLSCertificate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Unset means TLSV1_2 minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TLSProtocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TLSProtocol>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// `ServerTLSSettings.TLSCertificate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TLSCertificate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// Hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// `ServerTLSSettings.TLSmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTLSMode {
    #[default]
    Passthrough,
    Simple,
    Mutual,
    AutoPassthrough,
    IstioMutual,
    OptionalMutual,
}

/// `ServerTLSSettings.TLSProtocol`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
pub enum TLSProtocol {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn https_gateway() {
        let gw: Gateway = serde_json::from_value(json!({
            "selector": {"istio": "ingressgateway"},
            "servers": [
                {"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                 "hosts": ["*"], "tls": {"httpsRedirect": true}},
                {"port": {"number": 443, "name": "https-bookinfo", "protocol": "HTTPS"},
                 "hosts": ["bookinfo/bookinfo.example.com"],
                 "name": "bookinfo-https",
                 "tls": {"mode": "MUTUAL", "credentialName": "bookinfo-cred",
                         "minProtocolVersion": "TLSV1_2", "maxProtocolVersion": "TLSV1_3",
                         "cipherSuites": ["ECDHE-RSA-AES256-GCM-SHA384"],
                         "subjectAltNames": ["client.example.com"],
                         "verifyCertificateSpki": ["abc="]}},
                {"port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                 "hosts": ["*.local"], "tls": {"mode": "AUTO_PASSTHROUGH"}},
                {"port": {"number": 8443, "name": "https-files", "protocol": "HTTPS"},
                 "hosts": ["files.example.com"],
                 "tls": {"mode": "SIMPLE", "tlsCertificates": [
                     {"serverCertificate": "/etc/certs/rsa.pem", "privateKey": "/etc/certs/rsa.key"}]}}
            ]
        }))
        .unwrap();
        assert_eq!(gw.selector["istio"], "ingressgateway");
        assert_eq!(
            gw.servers[0].tls.as_ref().unwrap().https_redirect,
            Some(true)
        );
        let tls = gw.servers[1].tls.as_ref().unwrap();
        assert_eq!(tls.mode, Some(ServerTLSMode::Mutual));
        assert_eq!(tls.min_protocol_version, Some(TLSProtocol::TlsV1_2));
        assert!(tls.min_protocol_version < tls.max_protocol_version);
        assert_eq!(
            gw.servers[2].tls.as_ref().unwrap().mode,
            Some(ServerTLSMode::AutoPassthrough)
        );
        assert_eq!(
            gw.servers[3].tls.as_ref().unwrap().tls_certificates.len(),
            1
        );
        assert_eq!(
            serde_json::to_value(&gw.servers[0].port).unwrap(),
            json!({"number": 80, "name": "http", "protocol": "HTTP"})
        );
    }

    #[test]
    fn unknown_tls_field_is_rejected() {
        let err = serde_json::from_value::<Gateway>(json!({
            "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                         "hosts": ["*"], "tls": {"mode": "SIMPLE", "credentialname": "x"}}]
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `credentialname`"),
            "{err}"
        );
    }
}
