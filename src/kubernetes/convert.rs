//! One Kubernetes object → its compact converted form, as Istio's kube
//! registry converts it. Pure functions; the [`super::Index`] keeps the
//! results.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::Protocol;
use crate::model::k8s::{EndpointSliceSpec, ServicePortK8s, ServiceSpec};

/// Label of a slice's owning Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label of a slice imported from another cluster (MCS); Istio ignores them.
pub const MCS_SERVICE_NAME_LABEL: &str = "multicluster.kubernetes.io/service-name";
/// A Service's `exportTo` annotation.
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// Labels Istio adds to an endpoint (`pilot/pkg/serviceregistry/util/label/label.go`).
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
pub const LABEL_SUBZONE: &str = "topology.istio.io/subzone";
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// A Pod's own locality (`pkg/model/proxy.go` `GetLocalityLabel`).
pub const LABEL_LOCALITY: &str = "topology.istio.io/locality";
pub const LABEL_LOCALITY_OLD: &str = "istio-locality";
const LABEL_REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
const LABEL_ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";

/// How a Service's traffic is resolved (Istio's `model.Resolution`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A ClusterIP Service: load-balanced over its endpoints.
    ClientSideLb,
    /// Headless (`clusterIP: None`): Istio passes the connection to the
    /// address the client resolved; strait balances over the same ready
    /// endpoints the DNS name resolves to.
    Passthrough,
    /// `type: ExternalName`: an alias of the host named (Istio's `Alias`).
    Alias(String),
}

/// A Service, converted (`pilot/pkg/serviceregistry/kube/conversion.go`
/// `ConvertService`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub ports: Vec<Port>,
    /// Cluster IPs (empty for headless and ExternalName Services).
    pub vips: Vec<String>,
    pub resolution: Resolution,
    /// `networking.istio.io/exportTo`, split and trimmed (empty: everywhere).
    pub export_to: Vec<String>,
}

/// One Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
}

/// `ConvertService`: ports with Istio's protocols, VIPs and resolution.
pub fn service(spec: &ServiceSpec, annotations: &BTreeMap<String, String>) -> Service {
    let mut resolution = Resolution::ClientSideLb;
    if spec.type_.as_deref() == Some("ExternalName")
        && let Some(name) = spec.external_name.as_deref().filter(|n| !n.is_empty())
    {
        resolution = Resolution::Alias(name.trim_end_matches('.').to_ascii_lowercase());
    }
    let mut vips = Vec::new();
    match spec.cluster_ip.as_deref() {
        // Headless Services are not load-balanced by kube-proxy; Istio
        // passes them through (this wins over ExternalName, as in Istio).
        Some("None") => resolution = Resolution::Passthrough,
        Some(ip) if !ip.is_empty() => {
            if spec.cluster_ips.len() > 1 {
                vips.extend(spec.cluster_ips.iter().cloned());
            } else {
                vips.push(ip.to_string());
            }
        }
        _ => {}
    }
    let ports = spec
        .ports
        .iter()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().unwrap_or_default(),
                number: u16::try_from(p.port).ok().filter(|n| *n > 0)?,
                protocol: port_protocol(p),
            })
        })
        .collect();
    let export_to = annotations
        .get(EXPORT_TO_ANNOTATION)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Service {
        ports,
        vips,
        resolution,
        export_to,
    }
}

fn port_protocol(p: &ServicePortK8s) -> Protocol {
    convert_protocol(
        p.port,
        p.name.as_deref().unwrap_or(""),
        p.protocol.as_deref().unwrap_or("TCP"),
        p.app_protocol.as_deref(),
    )
}

/// Istio's `ConvertProtocol` (`pkg/config/kube/conversion.go`): UDP wins;
/// then `appProtocol` (with Kubernetes' `kubernetes.io/h2c|ws|wss`), else the
/// port name; a `grpc-web` prefix, else the part before the first `-`; an
/// unknown name on a well-known port (SMTP, DNS, MySQL, MongoDB) is TCP,
/// anywhere else it is left to sniffing (`Unsupported`).
pub fn convert_protocol(port: u32, name: &str, l4: &str, app_protocol: Option<&str>) -> Protocol {
    if l4 == "UDP" {
        return Protocol::Udp;
    }
    let mut name = name;
    if let Some(app) = app_protocol {
        match app {
            "kubernetes.io/h2c" => return Protocol::Http2,
            "kubernetes.io/ws" => return Protocol::Http,
            "kubernetes.io/wss" => return Protocol::Https,
            _ => name = app,
        }
    }
    if name
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"))
    {
        return Protocol::GrpcWeb;
    }
    let prefix = name.split('-').next().unwrap_or(name);
    match Protocol::parse(prefix) {
        Protocol::Unsupported if matches!(port, 25 | 53 | 3306 | 27017) => Protocol::Tcp,
        // `Parse` knows no `grpc-web` without the check above, and no
        // `http_proxy` for Services either way; keep what it says.
        p => p,
    }
}

/// An endpoint's readiness, from the slice's conditions
/// (`controller/endpointslice.go` `endpointHealthStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// `ready` unset or true: balanced to.
    Ready,
    /// Not ready: Istio sends it marked UNHEALTHY (Envoy does not balance
    /// to it and Istio sets the panic threshold to 0), so never balanced to.
    NotReady,
    /// Not ready and terminating (an unset `terminating` counts as true
    /// there): Istio never sends it.
    Terminating,
}

/// One endpoint of a slice: its addresses share the conditions and pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    pub addresses: Vec<String>,
    pub health: Health,
    /// `targetRef` to a Pod: (namespace, name).
    pub pod: Option<(String, String)>,
    pub node: Option<String>,
}

/// An EndpointSlice, converted: its Service and endpoints × ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The owning Service's name (same namespace as the slice).
    pub service: String,
    /// (Service port name, endpoint port).
    pub ports: Vec<(String, u16)>,
    pub endpoints: Vec<SliceEndpoint>,
}

/// Convert a slice; `None` for the ones Istio ignores: no
/// `kubernetes.io/service-name`, imported from another cluster
/// (`multicluster.kubernetes.io/service-name`), or `addressType: FQDN`.
pub fn slice(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    spec: &EndpointSliceSpec,
) -> Option<Slice> {
    if labels.contains_key(MCS_SERVICE_NAME_LABEL) || spec.address_type.as_deref() == Some("FQDN") {
        return None;
    }
    let service = labels.get(SERVICE_NAME_LABEL).filter(|s| !s.is_empty())?;
    let ports = spec
        .ports
        .iter()
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok().filter(|n| *n > 0)?;
            Some((p.name.clone().unwrap_or_default(), port))
        })
        .collect();
    let endpoints = spec
        .endpoints
        .iter()
        .map(|e| {
            let c = &e.conditions;
            let health = if c.ready.unwrap_or(true) {
                Health::Ready
            } else if c.terminating.unwrap_or(true) {
                Health::Terminating
            } else {
                Health::NotReady
            };
            let pod = e.target_ref.as_ref().and_then(|r| {
                (r.kind.as_deref() == Some("Pod")).then(|| {
                    let ns = r
                        .namespace
                        .clone()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| namespace.to_string());
                    (ns, r.name.clone().unwrap_or_default())
                })
            });
            SliceEndpoint {
                addresses: e.addresses.clone(),
                health,
                pod,
                node: e.node_name.clone().filter(|n| !n.is_empty()),
            }
        })
        .collect();
    Some(Slice {
        service: service.clone(),
        ports,
        endpoints,
    })
}

/// What an endpoint needs from its Pod: labels (shared) and, when the full
/// object is known, its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMeta {
    pub labels: Arc<BTreeMap<String, String>>,
    pub node: Option<String>,
}

/// A Node's locality, `region/zone/subzone`, from its labels
/// (`controller/controller.go` `getPodLocality`; GA labels before the beta
/// ones); empty when it has none.
pub fn node_locality(labels: &BTreeMap<String, String>) -> String {
    let get = |ga: &str, beta: Option<&str>| {
        labels
            .get(ga)
            .filter(|v| !v.is_empty())
            .or_else(|| beta.and_then(|b| labels.get(b)))
            .map_or("", String::as_str)
    };
    let region = get(LABEL_REGION, Some(LABEL_REGION_BETA));
    let zone = get(LABEL_ZONE, Some(LABEL_ZONE_BETA));
    let subzone = get(LABEL_SUBZONE, None);
    if region.is_empty() && zone.is_empty() && subzone.is_empty() {
        return String::new();
    }
    format!("{region}/{zone}/{subzone}")
}

/// A Pod's own locality label (`topology.istio.io/locality`, else
/// `istio-locality` with `.` as separator: `SanitizeLocalityLabel`).
pub fn pod_locality(labels: &BTreeMap<String, String>) -> Option<String> {
    let l = labels
        .get(LABEL_LOCALITY)
        .or_else(|| labels.get(LABEL_LOCALITY_OLD))?;
    if l.is_empty() {
        return None;
    }
    Some(if l.contains('/') {
        l.clone()
    } else {
        l.replace('.', "/")
    })
}

/// `AugmentLabels`: the Pod's labels plus region, zone, subzone (from the
/// locality) and `kubernetes.io/hostname` (the node).
pub fn augment_labels(
    pod: &BTreeMap<String, String>,
    locality: &str,
    node: Option<&str>,
) -> BTreeMap<String, String> {
    let mut out = pod.clone();
    let mut parts = locality.splitn(3, '/');
    for key in [LABEL_REGION, LABEL_ZONE, LABEL_SUBZONE] {
        if let Some(v) = parts.next().filter(|v| !v.is_empty()) {
            out.insert(key.to_string(), v.to_string());
        }
    }
    if let Some(n) = node.filter(|n| !n.is_empty()) {
        out.insert(LABEL_HOSTNAME.to_string(), n.to_string());
    }
    out
}

#[cfg(test)]
mod tests;
