//! The few Kubernetes kinds analysis needs. Unlike the Istio types these are
//! lenient: unknown fields are ignored and every field has a default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `core/v1` `ServiceSpec` (the parts analysis uses).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    pub selector: BTreeMap<String, String>,
    pub ports: Vec<ServicePortK8s>,
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub external_name: Option<String>,
    #[serde(rename = "clusterIP", alias = "clusterIp")]
    pub cluster_ip: Option<String>,
    /// Dual-stack addresses; the first equals `clusterIP`.
    #[serde(rename = "clusterIPs", alias = "clusterIps")]
    pub cluster_ips: Vec<String>,
    pub publish_not_ready_addresses: bool,
}

/// `core/v1` `ServicePort`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePortK8s {
    pub name: Option<String>,
    pub port: u32,
    /// A number or the name of a container port; unset means `port`.
    pub target_port: Option<IntOrString>,
    /// Kubernetes L4 protocol (`TCP`, `UDP`, `SCTP`); unset means TCP.
    pub protocol: Option<String>,
    pub node_port: Option<u32>,
    pub app_protocol: Option<String>,
}

/// Kubernetes `intstr.IntOrString`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

/// `discovery.k8s.io/v1` `EndpointSlice`: like a Secret, its fields sit
/// beside `metadata` (there is no `spec`); the loader feeds the whole object
/// minus metadata here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointSliceSpec {
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: Option<String>,
    pub endpoints: Vec<SliceEndpoint>,
    pub ports: Vec<SlicePort>,
}

/// `discovery.k8s.io/v1` `Endpoint`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SliceEndpoint {
    pub addresses: Vec<String>,
    pub conditions: EndpointConditions,
    pub target_ref: Option<ObjectReference>,
    pub node_name: Option<String>,
    pub hostname: Option<String>,
    pub zone: Option<String>,
}

/// `discovery.k8s.io/v1` `EndpointConditions`: unset means unknown, which
/// consumers read as `ready`/`serving` true and `terminating` false.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

/// `core/v1` `ObjectReference` (the parts a slice's `targetRef` uses).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectReference {
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// `discovery.k8s.io/v1` `EndpointPort`: `name` is the Service port's name,
/// `port` the already resolved `targetPort`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SlicePort {
    pub name: Option<String>,
    pub port: Option<i64>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

/// `core/v1` `PodSpec` (only what analysis uses).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    pub node_name: Option<String>,
    pub service_account_name: Option<String>,
    pub containers: Vec<Container>,
}

/// `core/v1` `Container` (only what analysis uses).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: Option<String>,
    pub image: Option<String>,
    pub ports: Vec<ContainerPort>,
}

/// `core/v1` `ContainerPort`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: Option<u32>,
    pub protocol: Option<String>,
}

/// `core/v1` `NamespaceSpec`; namespace labels come from metadata.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceSpec {}

/// `core/v1` `Secret`: `type`/`data`/`stringData` are top-level fields of
/// the object (there is no `spec`); the loader feeds the whole object
/// minus metadata here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SecretSpec {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Values are base64 as written.
    pub data: BTreeMap<String, String>,
    pub string_data: BTreeMap<String, String>,
}

impl SecretSpec {
    /// The data decoded from base64 (`stringData` merged over it, as the
    /// API server does); an undecodable value counts as empty.
    pub fn decoded(&self) -> BTreeMap<&str, Vec<u8>> {
        use base64::Engine as _;
        let mut out: BTreeMap<&str, Vec<u8>> = self
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
        for (k, v) in &self.string_data {
            out.insert(k.as_str(), v.as_bytes().to_vec());
        }
        out
    }
}

/// `core/v1` `NodeSpec`; node labels come from metadata.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeSpec {}

/// `apps/v1` `DeploymentSpec` (only the pod template).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeploymentSpec {
    pub template: Option<PodTemplate>,
}

/// `core/v1` `PodTemplateSpec`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTemplate {
    pub metadata: Option<PodTemplateMeta>,
    pub spec: Option<PodSpec>,
}

/// The metadata of a pod template (labels only).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTemplateMeta {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// `gateway.networking.k8s.io` `GatewaySpec` (listeners only).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubernetesGatewaySpec {
    pub gateway_class_name: Option<String>,
    pub listeners: Vec<Listener>,
}

/// Gateway API `Listener`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Listener {
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u32>,
    pub protocol: Option<String>,
}

/// `security.istio.io` `RequestAuthentication` (selection fields only; JWT
/// rules are ignored).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RequestAuthenticationSpec {
    pub selector: Option<LabelSelector>,
    pub target_ref: Option<serde_json::Value>,
    pub target_refs: Vec<serde_json::Value>,
}

/// A lenient `matchLabels` selector (`istio.type.v1beta1.WorkloadSelector`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_target_ports() {
        let svc: ServiceSpec = serde_json::from_value(json!({
            "selector": {"app": "reviews"},
            "type": "ClusterIP",
            "clusterIP": "10.96.0.12",
            "sessionAffinity": "None",
            "ports": [
                {"name": "http", "port": 9080, "targetPort": 9080, "appProtocol": "http"},
                {"name": "grpc", "port": 9090, "targetPort": "grpc-port", "protocol": "TCP", "nodePort": 30090},
                {"port": 80}
            ]
        }))
        .unwrap();
        assert_eq!(svc.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(svc.cluster_ip.as_deref(), Some("10.96.0.12"));
        assert_eq!(svc.ports[0].target_port, Some(IntOrString::Int(9080)));
        assert_eq!(
            svc.ports[1].target_port,
            Some(IntOrString::String("grpc-port".into()))
        );
        assert_eq!(svc.ports[1].node_port, Some(30090));
        assert_eq!(svc.ports[2].target_port, None);
        assert_eq!(svc.ports[0].app_protocol.as_deref(), Some("http"));
    }

    #[test]
    fn secret_deployment_gateway_requestauthn() {
        let s: SecretSpec = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}
        }))
        .unwrap();
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(s.data.len(), 2);

        let d: DeploymentSpec = serde_json::from_value(json!({
            "replicas": 2,
            "template": {"metadata": {"labels": {"app": "reviews", "version": "v1"}},
                         "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"containerPort": 9080}]}]}}
        }))
        .unwrap();
        let t = d.template.unwrap();
        assert_eq!(t.metadata.unwrap().labels["version"], "v1");
        assert_eq!(t.spec.unwrap().node_name.as_deref(), Some("n1"));

        let g: KubernetesGatewaySpec = serde_json::from_value(json!({
            "gatewayClassName": "istio",
            "listeners": [{"name": "http", "hostname": "*.example.com", "port": 80, "protocol": "HTTP",
                           "allowedRoutes": {"namespaces": {"from": "All"}}}]
        }))
        .unwrap();
        assert_eq!(g.listeners[0].port, Some(80));

        let ra: RequestAuthenticationSpec = serde_json::from_value(json!({
            "selector": {"matchLabels": {"app": "httpbin"}},
            "jwtRules": [{"issuer": "x"}]
        }))
        .unwrap();
        assert_eq!(ra.selector.unwrap().match_labels["app"], "httpbin");
        let _: NamespaceSpec =
            serde_json::from_value(json!({"finalizers": ["kubernetes"]})).unwrap();
        let _: NodeSpec = serde_json::from_value(json!({"podCIDR": "10.0.0.0/24"})).unwrap();
    }
}
