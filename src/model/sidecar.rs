//! `networking.istio.io` Sidecar (`sidecar.proto`).

use serde::{Deserialize, Serialize};

use crate::model::{ConnectionPoolSettings, Destination, ServerTLSSettings, WorkloadSelector};

/// `Sidecar`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sidecar {
    /// Unset means every workload in the namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// `IstioIngressListener`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioIngressListener {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// `127.0.0.1:P`, `[::1]:P`, `0.0.0.0:P`, `[::]:P` or `unix://path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTLSSettings>,
    /// Highest-precedence inbound limits; replaces lower levels wholesale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// `IstioEgressListener`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioEgressListener {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// `ns/dnsName`; a `~`-prefixed namespace excludes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// `SidecarPort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Parsed case-insensitively with `Protocol::parse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deprecated; rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// `CaptureMode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    #[default]
    Default,
    Iptables,
    None,
}

/// `OutboundTrafficPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    /// Unset means the MeshConfig default (ALLOW_ANY).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficPolicyMode>,
    /// Hidden; only with ALLOW_ANY.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// `OutboundTrafficPolicy.Mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    #[default]
    RegistryOnly,
    AllowAny,
    /// MeshConfig only; rejected in a Sidecar.
    AllowAnyDynamicDns,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ratings_sidecar() {
        let sc: Sidecar = serde_json::from_value(json!({
            "workloadSelector": {"labels": {"app": "ratings"}},
            "ingress": [{
                "port": {"number": 9080, "protocol": "HTTPS", "name": "somename"},
                "defaultEndpoint": "unix:///var/run/someuds.sock",
                "tls": {"mode": "SIMPLE", "privateKey": "/etc/k.pem", "serverCertificate": "/etc/c.pem"},
                "connectionPool": {"http": {"http1MaxPendingRequests": 10}}
            }],
            "egress": [
                {"port": {"number": 9080, "protocol": "HTTP", "name": "egresshttp"},
                 "hosts": ["prod-us1/*"]},
                {"bind": "127.0.0.1", "captureMode": "NONE", "hosts": ["*/*", "~/foo.com"]}
            ],
            "inboundConnectionPool": {"tcp": {"maxConnections": 50}},
            "outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {"host": "egress", "port": {"number": 443}}}
        }))
        .unwrap();
        assert_eq!(
            sc.workload_selector.as_ref().unwrap().labels["app"],
            "ratings"
        );
        assert_eq!(sc.ingress[0].port.as_ref().unwrap().number, Some(9080));
        assert_eq!(sc.egress[1].capture_mode, Some(CaptureMode::None));
        let otp = sc.outbound_traffic_policy.as_ref().unwrap();
        assert_eq!(otp.mode, Some(OutboundTrafficPolicyMode::AllowAny));
        assert_eq!(
            otp.egress_proxy.as_ref().unwrap().host.as_deref(),
            Some("egress")
        );
        let again: Sidecar = serde_json::from_value(serde_json::to_value(&sc).unwrap()).unwrap();
        assert_eq!(again, sc);
    }

    #[test]
    fn localhost_is_rejected() {
        let err = serde_json::from_value::<Sidecar>(json!({"localhost": {}})).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `localhost`"),
            "{err}"
        );
    }
}
