//! The kinds the Kubernetes source watches, and nothing more (least
//! privilege: `deploy/kubernetes` grants `list` and `watch` on exactly these).

/// One watched kind.
#[derive(Debug, PartialEq, Eq)]
pub struct KindSpec {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// Watched as metadata only (`PartialObjectMetadata`): labels are all
    /// a proxy needs of Pods and Nodes.
    pub metadata_only: bool,
    /// An Istio CRD: may not be installed (404), which counts as empty.
    pub optional: bool,
    /// Changes only endpoints (not routes or services).
    pub endpoints_only: bool,
    /// Watched in the proxy's own namespace only, and only by a gateway
    /// (`--gateway`): Secrets for `credentialName`, which Istio reads in
    /// the gateway workload's namespace (IST0161; CVE-2021-34824 keeps a
    /// gateway to its own namespace's Secrets). The RBAC for it is a Role
    /// in that namespace, not the ClusterRole.
    pub own_namespace: bool,
}

impl KindSpec {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn istio(kind: &'static str, plural: &'static str) -> KindSpec {
    KindSpec {
        group: "networking.istio.io",
        version: "v1",
        kind,
        plural,
        namespaced: true,
        metadata_only: false,
        optional: true,
        endpoints_only: false,
        own_namespace: false,
    }
}

pub const KINDS: &[KindSpec] = &[
    istio("VirtualService", "virtualservices"),
    istio("DestinationRule", "destinationrules"),
    istio("ServiceEntry", "serviceentries"),
    istio("WorkloadEntry", "workloadentries"),
    istio("Gateway", "gateways"),
    istio("Sidecar", "sidecars"),
    KindSpec {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        metadata_only: false,
        optional: false,
        endpoints_only: false,
        own_namespace: false,
    },
    KindSpec {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        namespaced: true,
        metadata_only: false,
        optional: false,
        endpoints_only: true,
        own_namespace: false,
    },
    KindSpec {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        metadata_only: true,
        optional: false,
        endpoints_only: true,
        own_namespace: false,
    },
    KindSpec {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        metadata_only: true,
        optional: false,
        endpoints_only: true,
        own_namespace: false,
    },
    KindSpec {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        namespaced: true,
        metadata_only: false,
        optional: false,
        endpoints_only: false,
        own_namespace: true,
    },
];
