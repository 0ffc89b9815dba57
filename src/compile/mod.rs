//! `ConfigSet` → immutable [`Snapshot`]: the routing table a sidecar in
//! `--namespace` would get, plus its clusters. Pure: no I/O, no runtime.
//! Invalid bits are skipped, never fatal (validation reports them first).

pub mod cluster_policy;
pub mod gateway;
pub mod gateway_tls;
pub mod policy;
pub mod routes;
pub mod services;
pub mod sidecar_tcp;
pub mod sni;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::ConfigSet;
use crate::model::Protocol;
use crate::route::{ClusterKey, RouteTable, UpstreamProtocol};

/// Who the proxy is: its namespace and labels decide which config applies.
#[derive(Clone, Debug)]
pub struct ProxyIdentity {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub domain: String,
    pub root_namespace: String,
    /// The proxy's own locality, `region/zone/subzone` (empty: unknown; no
    /// locality load balancing then).
    pub locality: String,
    /// Run as the gateway workload with these labels: the Gateways that
    /// select it become listeners (`Snapshot::gateway`).
    pub gateway: bool,
}

impl ProxyIdentity {
    /// A proxy in `namespace` with `labels` (the gateway workload with
    /// those labels when `gateway`), in a cluster with DNS `domain` suffix,
    /// at `locality` (empty: unknown); the root namespace is Istio's. The
    /// one place an identity is made from what a proxy is told (`strait
    /// run`, `strait explain`, a reload, the pipeline's own checks).
    pub fn new(
        namespace: &str,
        labels: &BTreeMap<String, String>,
        gateway: bool,
        domain: &str,
        locality: &str,
    ) -> ProxyIdentity {
        ProxyIdentity {
            namespace: namespace.to_string(),
            labels: labels.clone(),
            domain: domain.to_string(),
            locality: locality.to_string(),
            gateway,
            ..ProxyIdentity::default()
        }
    }

    /// A sidecar in `namespace` with `labels`, everything else the default.
    pub fn sidecar(namespace: &str, labels: &BTreeMap<String, String>) -> ProxyIdentity {
        let d = ProxyIdentity::default();
        ProxyIdentity::new(namespace, labels, false, &d.domain, &d.locality)
    }
}

impl Default for ProxyIdentity {
    fn default() -> Self {
        ProxyIdentity {
            namespace: "default".into(),
            labels: BTreeMap::new(),
            domain: "cluster.local".into(),
            root_namespace: "istio-system".into(),
            locality: String::new(),
            gateway: false,
        }
    }
}

/// One service of the registry (a ServiceEntry host).
#[derive(Debug)]
pub struct ServiceInfo {
    pub fqdn: String,
    pub namespace: String,
    /// Short name (`destination_service_name`).
    pub name: String,
    pub ports: Vec<ServicePortInfo>,
    /// `namespace/name` of the ServiceEntry or Service.
    pub source: String,
    /// A Kubernetes Service: an endpoint serves only the ports its
    /// EndpointSlice names (no targetPort fallback).
    pub kubernetes: bool,
    /// Cluster IPs a request may address the service by (Envoy's vhost
    /// domains include the VIP, `generateVirtualHostDomains`).
    pub vips: Vec<String>,
    /// Hosts of ExternalName Services aliasing this one.
    pub aliases: Vec<String>,
    /// A headless Kubernetes Service: `*.<host>` (per-pod names) routes too.
    pub headless: bool,
}

#[derive(Debug, Clone)]
pub struct ServicePortInfo {
    pub number: u16,
    pub name: String,
    pub protocol: Protocol,
    pub target_port: Option<u16>,
}

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ip:port` or `hostname:port` (DNS resolution at connect time).
    pub authority: Arc<str>,
    /// Shared by the clusters of a service and their hosts: one copy per
    /// WorkloadEntry instead of one per cluster and per host.
    pub labels: Arc<BTreeMap<String, String>>,
    pub weight: u32,
    /// Its cluster's `destination_*` metric labels for the requests it
    /// serves: 0 for [`Cluster::metric`] (no `version` label), else one
    /// plus the index in [`Cluster::version_metrics`] (set per cluster).
    pub metric: u32,
    /// `region/zone/subzone`, from the WorkloadEntry.
    pub locality: Option<String>,
}

/// An Envoy cluster: one service port, optionally narrowed to a subset.
#[derive(Debug)]
pub struct Cluster {
    pub key: ClusterKey,
    pub name: Arc<str>,
    pub protocol: UpstreamProtocol,
    pub service: Arc<ServiceInfo>,
    pub subset: String,
    pub endpoints: Vec<Endpoint>,
    /// The DestinationRule policy in effect for this cluster (port and
    /// subset merged as Istio does), compiled.
    pub policy: Arc<cluster_policy::ClusterPolicy>,
    /// The DestinationRule it came from (`namespace/name`).
    pub destination_rule: Option<String>,
    /// The `destination_*` metric labels of a request that reached no
    /// endpoint (`destination_version="unknown"`: Istio takes the version
    /// from the upstream peer), built once.
    pub metric: crate::metrics::Destination,
    /// The labels of a request an endpoint served, one per distinct
    /// endpoint `version` label (Istio's `destination_version`); endpoints
    /// without one use `metric`.
    pub version_metrics: Box<[crate::metrics::Destination]>,
}

impl Cluster {
    /// The metric labels of a request `endpoint` (of this cluster) served.
    pub fn metric_of(&self, endpoint: &Endpoint) -> &crate::metrics::Destination {
        (endpoint.metric as usize)
            .checked_sub(1)
            .and_then(|i| self.version_metrics.get(i))
            .unwrap_or(&self.metric)
    }

    /// Every metric label set of this cluster.
    pub fn metrics(&self) -> impl Iterator<Item = &crate::metrics::Destination> {
        std::iter::once(&self.metric).chain(self.version_metrics.iter())
    }
}

/// Clusters by key. Keys come from configuration, not from requests, so a
/// fast non-keyed hash is safe, and it is on every request's path.
pub type ClusterMap = HashMap<ClusterKey, Arc<Cluster>, rustc_hash::FxBuildHasher>;

/// Everything the request path reads, immutable once built.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The proxy identity this snapshot was compiled for.
    pub identity: ProxyIdentity,
    /// Shared with the next snapshot when only endpoints changed.
    pub routes: Arc<RouteTable>,
    pub clusters: ClusterMap,
    pub services: Vec<Arc<ServiceInfo>>,
    /// The gateway listeners (empty unless `identity.gateway`); shared as
    /// the routes are.
    pub gateway: Arc<gateway::GatewayListeners>,
    /// The sidecar listener's TLS routes, picked by SNI
    /// (`sni::sidecar_routes`); shared as the routes are.
    pub tls: Arc<Vec<sni::TlsRoute>>,
    /// The sidecar listener's TCP services, picked by the connection's
    /// destination address (`sidecar_tcp::sidecar_listeners`); shared as
    /// the routes are.
    pub tcp: Arc<sidecar_tcp::TcpListeners>,
}

/// Build the snapshot for a proxy described by `opts`.
pub fn compile(config: &ConfigSet, opts: &ProxyIdentity) -> Snapshot {
    let kube = crate::kubernetes::Index::from_config(config).registry(&opts.domain);
    compile_with(config, &kube, opts)
}

/// [`compile`] with the Kubernetes registry given (the Kubernetes source
/// keeps it live) instead of built from `config`'s Services.
pub fn compile_with(
    config: &ConfigSet,
    kube: &[crate::kubernetes::RegistryService],
    opts: &ProxyIdentity,
) -> Snapshot {
    let (services, endpoints) = services::services_and_endpoints_with(config, kube, opts);
    let clusters = services::clusters(config, &services, &endpoints, opts);
    let routes = routes::route_table(config, &services, &clusters, opts);
    let tls = sni::sidecar_routes(config, &services, &clusters, opts);
    let tcp = sidecar_tcp::sidecar_listeners(config, &services, &clusters, opts);
    let gateway = if opts.gateway {
        gateway::compile(config, &services, &clusters, opts)
    } else {
        gateway::GatewayListeners::default()
    };
    Snapshot {
        identity: opts.clone(),
        routes: Arc::new(routes),
        clusters,
        services,
        gateway: Arc::new(gateway),
        tls: Arc::new(tls),
        tcp: Arc::new(tcp),
    }
}

/// An endpoint-only change (EndpointSlices, Pod labels, Nodes): services,
/// endpoints and clusters are built again, the route tables and gateway
/// listeners of `previous` are kept, not recompiled, as Istio pushes such
/// a change as incremental EDS rather than a full push
/// (`pilot/pkg/xds/eds.go`). Routes name clusters by key, and the keys,
/// policies and names come from Services and DestinationRules, which did
/// not change.
pub fn compile_endpoints(
    config: &ConfigSet,
    opts: &ProxyIdentity,
    previous: &Snapshot,
) -> Snapshot {
    let kube = crate::kubernetes::Index::from_config(config).registry(&opts.domain);
    compile_endpoints_with(config, &kube, opts, previous)
}

/// [`compile_endpoints`] with the Kubernetes registry given.
pub fn compile_endpoints_with(
    config: &ConfigSet,
    kube: &[crate::kubernetes::RegistryService],
    opts: &ProxyIdentity,
    previous: &Snapshot,
) -> Snapshot {
    let (services, endpoints) = services::services_and_endpoints_with(config, kube, opts);
    let clusters = services::clusters(config, &services, &endpoints, opts);
    Snapshot {
        identity: opts.clone(),
        routes: previous.routes.clone(),
        clusters,
        services,
        gateway: previous.gateway.clone(),
        tls: previous.tls.clone(),
        tcp: previous.tcp.clone(),
    }
}

/// The endpoints of a few Kubernetes Services changed (`changed`: their
/// registry entries now): only their clusters are built again; every
/// other cluster, the services, route tables and gateway listeners are
/// `previous`'s, shared (Istio's incremental EDS push for the Services a
/// slice or Pod event touched, `pilot/pkg/xds/eds.go`
/// `EDSUpdate`). `config` is the one `previous` was compiled from (its
/// DestinationRules split the clusters into subsets). A Service that no
/// cluster serves (a ServiceEntry declares its host, or it is not visible
/// to the proxy) is skipped, as a full compile skips it.
pub fn update_endpoints(
    config: &ConfigSet,
    changed: &[crate::kubernetes::RegistryService],
    opts: &ProxyIdentity,
    previous: &Snapshot,
) -> Snapshot {
    let mut clusters = previous.clusters.clone();
    let dr_index = services::DrIndex::new(config, opts);
    // Kubernetes services by host; built only when many changed (one scan
    // each is cheaper for a few).
    let by_host: Option<HashMap<&str, &Arc<ServiceInfo>>> = (changed.len() > 8).then(|| {
        previous
            .services
            .iter()
            .filter(|s| s.kubernetes)
            .map(|s| (s.fqdn.as_str(), s))
            .collect()
    });
    let endpoints: Vec<services::ServiceEndpoints<'_>> =
        changed.iter().map(services::kube_endpoints).collect();
    let mut label_sets = services::LabelSets::new();
    for (ks, eps) in changed.iter().zip(&endpoints) {
        let svc = match &by_host {
            Some(m) => m.get(ks.host.as_str()).copied(),
            None => previous
                .services
                .iter()
                .find(|s| s.kubernetes && s.fqdn == ks.host),
        };
        let Some(svc) = svc else { continue };
        // The same service and rules: the same cluster keys, replaced.
        let mut fresh = ClusterMap::default();
        services::service_clusters(&dr_index, svc, eps, opts, &mut label_sets, &mut fresh);
        clusters.extend(fresh);
    }
    Snapshot {
        identity: opts.clone(),
        routes: previous.routes.clone(),
        clusters,
        services: previous.services.clone(),
        gateway: previous.gateway.clone(),
        tls: previous.tls.clone(),
        tcp: previous.tcp.clone(),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod kube_tests;
