//! Services, endpoints and clusters: ServiceEntries (with inline endpoints
//! or WorkloadEntries picked by `workloadSelector`) and the DestinationRule
//! subsets that split them into Envoy clusters.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::cluster_policy::ClusterPolicy;
use super::{Cluster, Endpoint, ProxyIdentity, ServiceInfo, ServicePortInfo};
use crate::config::{ConfigSet, Resource};
use crate::model::{
    DestinationRule, Protocol, Resolution, ServiceEntry, WorkloadEntry, host, selector_matches,
};
use crate::route::{ClusterKey, UpstreamProtocol};

/// Whether a resource with `export_to` in namespace `ns` is visible to a
/// proxy in `proxy_ns` (empty exportTo is the mesh default `*`).
pub fn visible(export_to: &[String], ns: &str, proxy_ns: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || (e == "." && ns == proxy_ns) || e == proxy_ns)
}

/// Every service visible to the proxy, by FQDN (first definition wins).
pub fn services(config: &ConfigSet, opts: &ProxyIdentity) -> Vec<Arc<ServiceInfo>> {
    let kube = crate::kubernetes::Index::from_config(config).registry(&opts.domain);
    services_and_endpoints_with(config, &kube, opts).0
}

/// A service's endpoints, borrowed from the configuration (or the
/// Kubernetes registry) while compiling (the snapshot keeps them per
/// cluster only, not a copy per service).
pub type ServiceEndpoints<'a> = Vec<Ep<'a>>;

/// One endpoint of a service while compiling.
#[derive(Debug)]
pub enum Ep<'a> {
    /// A WorkloadEntry, or a ServiceEntry's inline endpoint.
    Entry(Cow<'a, WorkloadEntry>),
    /// A Kubernetes endpoint from the registry: its label set (shared by
    /// the index) goes into the clusters as it is, never copied.
    Kube(&'a crate::kubernetes::Endpoint),
}

impl Ep<'_> {
    /// A subset's `labels ⊆` the endpoint's (a Kubernetes endpoint's with
    /// the topology labels Istio adds, `AugmentLabels`).
    fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        match self {
            Ep::Entry(we) => selector_matches(selector, &we.labels),
            Ep::Kube(e) => e.selected_by(selector),
        }
    }
}

/// [`services`], and each one's endpoints (same order) for [`clusters`],
/// with the Kubernetes registry given: ServiceEntry hosts first, then
/// Kubernetes Services whose host no ServiceEntry declared.
pub fn services_and_endpoints_with<'a>(
    config: &'a ConfigSet,
    kube: &'a [crate::kubernetes::RegistryService],
    opts: &ProxyIdentity,
) -> (Vec<Arc<ServiceInfo>>, Vec<ServiceEndpoints<'a>>) {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    let mut out_endpoints = Vec::new();
    for se in &config.service_entries {
        if !visible(&se.spec.export_to, se.namespace(), &opts.namespace) {
            continue;
        }
        let endpoints = endpoints_of(se, &config.workload_entries);
        for h in &se.spec.hosts {
            if seen.contains_key(h) {
                continue;
            }
            let ports = se
                .spec
                .ports
                .iter()
                .filter_map(|p| {
                    let number = u16::try_from(p.number?).ok().filter(|n| *n > 0)?;
                    Some(ServicePortInfo {
                        number,
                        name: p.name.clone().unwrap_or_default(),
                        protocol: Protocol::parse(p.protocol.as_deref().unwrap_or("")),
                        target_port: p.target_port.and_then(|t| u16::try_from(t).ok()),
                    })
                })
                .collect();
            let dns_self = matches!(
                se.spec.resolution,
                Some(Resolution::Dns) | Some(Resolution::DnsRoundRobin)
            ) && endpoints.is_empty()
                && !host::is_wildcard(h);
            let svc = Arc::new(ServiceInfo {
                fqdn: h.clone(),
                namespace: se.namespace().to_string(),
                name: short_name(h),
                ports,
                source: se.key(),
                kubernetes: false,
                // Istio's service address (`convertServices`): the
                // sidecar's TCP listeners bind to it.
                vips: se.spec.addresses.clone(),
                aliases: Vec::new(),
                headless: false,
            });
            out_endpoints.push(if dns_self {
                vec![Ep::Entry(Cow::Owned(WorkloadEntry {
                    address: Some(h.clone()),
                    ..Default::default()
                }))]
            } else {
                endpoints
                    .iter()
                    .map(|e| Ep::Entry(Cow::Borrowed(*e)))
                    .collect()
            });
            seen.insert(h.clone(), out.len());
            out.push(svc);
        }
    }
    for ks in kube {
        let export: Vec<String> = ks.service.export_to.clone();
        if seen.contains_key(&ks.host) || !visible(&export, &ks.namespace, &opts.namespace) {
            continue;
        }
        let svc = Arc::new(ServiceInfo {
            fqdn: ks.host.clone(),
            namespace: ks.namespace.clone(),
            name: ks.name.clone(),
            ports: ks
                .service
                .ports
                .iter()
                .map(|p| ServicePortInfo {
                    number: p.number,
                    name: p.name.clone(),
                    protocol: p.protocol,
                    target_port: None,
                })
                .collect(),
            source: format!("{}/{}", ks.namespace, ks.name),
            kubernetes: true,
            vips: ks.service.vips.clone(),
            aliases: ks.aliases.clone(),
            headless: ks.service.resolution == crate::kubernetes::Resolution::Passthrough,
        });
        out_endpoints.push(kube_endpoints(ks));
        seen.insert(ks.host.clone(), out.len());
        out.push(svc);
    }
    (out, out_endpoints)
}

/// A Kubernetes Service's endpoints as compile takes them. Only ready
/// endpoints are balanced to (not-ready ones are sent UNHEALTHY by Istio,
/// with a panic threshold of 0).
pub fn kube_endpoints(ks: &crate::kubernetes::RegistryService) -> ServiceEndpoints<'_> {
    ks.endpoints
        .iter()
        .filter(|e| e.health == crate::kubernetes::Health::Ready)
        .map(Ep::Kube)
        .collect()
}

/// First label of a host, as Istio's `destination_service_name`.
fn short_name(h: &str) -> String {
    h.split('.').next().unwrap_or(h).to_string()
}

/// Inline endpoints, or the same-namespace WorkloadEntries the selector picks.
fn endpoints_of<'a>(
    se: &'a Resource<ServiceEntry>,
    wes: &'a [Resource<WorkloadEntry>],
) -> Vec<&'a WorkloadEntry> {
    if let Some(sel) = &se.spec.workload_selector {
        return wes
            .iter()
            .filter(|we| {
                we.namespace() == se.namespace() && selector_matches(&sel.labels, &we.spec.labels)
            })
            .map(|we| &we.spec)
            .collect();
    }
    se.spec.endpoints.iter().collect()
}

/// The DestinationRule in effect for a service: one resource, or several
/// merged as Istio merges them.
#[derive(Debug, Clone)]
pub struct AppliedRule {
    /// `namespace/name`, or the merged names joined with `+`.
    pub name: String,
    pub spec: DestinationRule,
}

impl AppliedRule {
    pub fn key(&self) -> String {
        self.name.clone()
    }
}

/// The DestinationRule that applies to `svc` for the proxy
/// (`PushContext.destinationRule`): the proxy's namespace first, then the
/// service's, then the root namespace; in each, the most specific host wins.
/// A rule with a `workloadSelector` applies only to matching proxies in its
/// namespace, and then before rules without one. Rules for the same host in
/// the same namespace with the same selector and `exportTo` are merged:
/// subsets concatenated (the first definition of a name wins) and the first
/// top-level `trafficPolicy` kept.
pub fn destination_rule_for(
    config: &ConfigSet,
    svc: &ServiceInfo,
    opts: &ProxyIdentity,
) -> Option<AppliedRule> {
    destination_rule_in(&DrIndex::new(config, opts), svc, opts)
}

/// DestinationRules by resolved host, built once per compile so that the
/// lookup per service does not scan every rule.
pub struct DrIndex<'a> {
    exact: HashMap<String, Vec<&'a Resource<DestinationRule>>>,
    wildcards: Vec<(&'a Resource<DestinationRule>, String)>,
}

impl<'a> DrIndex<'a> {
    pub fn new(config: &'a ConfigSet, opts: &ProxyIdentity) -> DrIndex<'a> {
        let mut exact: HashMap<String, Vec<&'a Resource<DestinationRule>>> = HashMap::new();
        let mut wildcards = Vec::new();
        for dr in &config.destination_rules {
            let Some(h) = dr.spec.host.as_deref() else {
                continue;
            };
            let h = host::resolve_short_name(h, dr.namespace(), &opts.domain);
            if host::is_wildcard(&h) {
                wildcards.push((dr, h));
            } else {
                exact.entry(h).or_default().push(dr);
            }
        }
        DrIndex { exact, wildcards }
    }

    /// Rules whose host covers `fqdn`, with that host.
    fn candidates<'s>(
        &'s self,
        fqdn: &'s str,
    ) -> impl Iterator<Item = (&'a Resource<DestinationRule>, &'s str)> + 's {
        let exact = self
            .exact
            .get(fqdn)
            .into_iter()
            .flatten()
            .map(move |dr| (*dr, fqdn));
        let wild = self
            .wildcards
            .iter()
            .filter(move |(_, h)| host::subset_of(fqdn, h))
            .map(|(dr, h)| (*dr, h.as_str()));
        exact.chain(wild)
    }
}

/// [`destination_rule_for`] with a prebuilt index.
pub fn destination_rule_in(
    index: &DrIndex<'_>,
    svc: &ServiceInfo,
    opts: &ProxyIdentity,
) -> Option<AppliedRule> {
    let stage = |ns: &str, proxy_ns: bool| -> Option<AppliedRule> {
        let mut found: Vec<(&Resource<DestinationRule>, String)> = index
            .candidates(&svc.fqdn)
            .filter(|(dr, _)| dr.namespace() == ns)
            .filter(|(dr, _)| {
                proxy_ns || visible(&dr.spec.export_to, dr.namespace(), &opts.namespace)
            })
            .filter(|(dr, _)| match &dr.spec.workload_selector {
                None => true,
                Some(sel) => proxy_ns && selector_matches(&sel.match_labels, &opts.labels),
            })
            .map(|(dr, h)| (dr, h.to_string()))
            .collect();
        let best = found.iter().map(|(_, h)| specificity(h)).max()?;
        found.retain(|(_, h)| specificity(h) == best);
        // A rule selecting this proxy beats rules for every workload.
        if found
            .iter()
            .any(|(dr, _)| dr.spec.workload_selector.is_some())
        {
            found.retain(|(dr, _)| dr.spec.workload_selector.is_some());
        }
        found.sort_by_key(|(dr, _)| dr.seq);
        let (first, host) = found.first().cloned()?;
        let mut merged = first.spec.clone();
        let mut names = vec![first.key()];
        for (dr, h) in found.iter().skip(1) {
            if *h != host
                || dr.spec.export_to != first.spec.export_to
                || dr.spec.workload_selector != first.spec.workload_selector
            {
                continue;
            }
            for sub in &dr.spec.subsets {
                if !merged.subsets.iter().any(|x| x.name == sub.name) {
                    merged.subsets.push(sub.clone());
                }
            }
            if merged.traffic_policy.is_none() {
                merged.traffic_policy = dr.spec.traffic_policy.clone();
            }
            names.push(dr.key());
        }
        Some(AppliedRule {
            name: names.join("+"),
            spec: merged,
        })
    };
    stage(&opts.namespace, true)
        .or_else(|| stage(&svc.namespace, false))
        .or_else(|| stage(&opts.root_namespace, false))
}

/// Exact hosts beat wildcards; longer wildcards beat shorter ones.
fn specificity(h: &str) -> (bool, usize) {
    (!host::is_wildcard(h), h.len())
}

/// Clusters for every port of every service: the subset-less one and one per
/// subset of the applicable DestinationRule.
pub fn clusters(
    config: &ConfigSet,
    services: &[Arc<ServiceInfo>],
    endpoints: &[ServiceEndpoints<'_>],
    opts: &ProxyIdentity,
) -> super::ClusterMap {
    let mut out = super::ClusterMap::default();
    let dr_index = DrIndex::new(config, opts);
    // Endpoint label sets, one copy each: the pods of a workload (and the
    // endpoints of every port of a service) carry the same labels.
    let mut label_sets = LabelSets::new();
    for (svc, svc_endpoints) in services.iter().zip(endpoints) {
        service_clusters(
            &dr_index,
            svc,
            svc_endpoints,
            opts,
            &mut label_sets,
            &mut out,
        );
    }
    out
}

/// Endpoint label sets shared by the clusters being built.
pub type LabelSets<'e> = HashMap<&'e BTreeMap<String, String>, Arc<BTreeMap<String, String>>>;

/// One service's clusters (every port, subset-less and per subset of its
/// DestinationRule) into `out`; a key already there is kept.
pub fn service_clusters<'e>(
    dr_index: &DrIndex<'_>,
    svc: &Arc<ServiceInfo>,
    svc_endpoints: &'e [Ep<'_>],
    opts: &ProxyIdentity,
    label_sets: &mut LabelSets<'e>,
    out: &mut super::ClusterMap,
) {
    let dr = destination_rule_in(dr_index, svc, opts);
    // The service's metric labels, shared by all its clusters.
    let metric = crate::metrics::Destination::new(&svc.fqdn, &svc.name, &svc.namespace, "unknown");
    for port in &svc.ports {
        let protocol = match port.protocol {
            Protocol::Http2 | Protocol::Grpc => UpstreamProtocol::H2c,
            _ => UpstreamProtocol::Http1,
        };
        // Each endpoint, and what a subset selects it by.
        let all: Vec<(Endpoint, &Ep<'_>)> = svc_endpoints
            .iter()
            .filter_map(|ep| match ep {
                Ep::Entry(we) => {
                    let labels = label_sets
                        .entry(&we.labels)
                        .or_insert_with(|| Arc::new(we.labels.clone()));
                    Some((endpoint(we, port, svc.kubernetes, labels)?, ep))
                }
                Ep::Kube(e) => Some((kube_endpoint(e, port)?, ep)),
            })
            .collect();
        let mut add = |subset: &str, mut eps: Vec<Endpoint>| {
            let (version_metrics, metric) = version_metrics(&metric, &mut eps);
            let key = ClusterKey {
                port: port.number,
                subset: subset.to_string(),
                host: svc.fqdn.clone(),
            };
            let c = Cluster {
                policy: ClusterPolicy::compile(dr.as_ref().and_then(|d| {
                    super::policy::effective(
                        &d.spec,
                        port.number,
                        (!subset.is_empty()).then_some(subset),
                    )
                })),
                destination_rule: dr.as_ref().map(|d| d.key()),
                metric,
                version_metrics,
                name: key.to_string().into(),
                key: key.clone(),
                protocol,
                service: svc.clone(),
                subset: subset.to_string(),
                endpoints: eps,
            };
            out.entry(key).or_insert_with(|| Arc::new(c));
        };
        add("", all.iter().map(|(e, _)| e.clone()).collect());
        if let Some(dr) = &dr {
            for s in &dr.spec.subsets {
                let Some(name) = s.name.as_deref().filter(|n| !n.is_empty()) else {
                    continue;
                };
                let eps: Vec<Endpoint> = all
                    .iter()
                    .filter(|(_, ep)| ep.selected_by(&s.labels))
                    .map(|(e, _)| e.clone())
                    .collect();
                let eps = eps.into_boxed_slice().into_vec();
                add(name, eps);
            }
        }
    }
}

/// A cluster's metric labels: one set per distinct endpoint `version`
/// label, each endpoint told its set's place; the set of a request that
/// reached no endpoint, and of endpoints without a version, has `unknown`
/// (Istio's `destination_version` is the upstream peer's `version` label).
fn version_metrics(
    service: &crate::metrics::Destination,
    eps: &mut [Endpoint],
) -> (
    Box<[crate::metrics::Destination]>,
    crate::metrics::Destination,
) {
    let mut versions: Vec<crate::metrics::Destination> = Vec::new();
    for e in eps.iter_mut() {
        e.metric = match e.labels.get("version") {
            None => 0,
            Some(v) => match versions.iter().position(|d| *d.version == *v) {
                Some(i) => i as u32 + 1,
                None => {
                    versions.push(service.with_version(v));
                    versions.len() as u32
                }
            },
        };
    }
    (versions.into_boxed_slice(), service.with_version("unknown"))
}

/// A Kubernetes endpoint for one service port: only the ports its slice
/// names (`endpoint_builder.go`: `svcPort.Name == ep.ServicePortName`).
/// Its labels are the Pod's, shared with the index and every cluster of
/// the Service (one copy per workload, not per endpoint); the topology
/// labels subsets select on are derived from the locality when needed
/// (`cluster::locality` for `failoverPriority`).
fn kube_endpoint(e: &crate::kubernetes::Endpoint, port: &ServicePortInfo) -> Option<Endpoint> {
    let p = *e.ports.get(&port.name)?;
    Some(Endpoint {
        authority: authority(&e.address, p).into(),
        labels: e.pod_labels.clone().unwrap_or_default(),
        weight: 1,
        metric: 0,
        locality: (!e.locality.is_empty()).then(|| e.locality.clone()),
    })
}

/// `address:port`, an IPv6 address in brackets.
fn authority(address: &str, port: u16) -> String {
    if address.contains(':') && !address.starts_with('[') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The endpoint address for one service port: the WorkloadEntry's port for
/// the port's name, else the service's targetPort, else its number. A
/// Kubernetes endpoint (`strict`) serves only the ports its slice names
/// (`endpoint_builder.go`: `svcPort.Name == ep.ServicePortName`).
fn endpoint(
    we: &WorkloadEntry,
    port: &ServicePortInfo,
    strict: bool,
    labels: &Arc<BTreeMap<String, String>>,
) -> Option<Endpoint> {
    let address = we.address.as_deref().filter(|a| !a.is_empty())?;
    if address.starts_with("unix://") {
        return None;
    }
    let named = we
        .ports
        .get(&port.name)
        .and_then(|p| u16::try_from(*p).ok());
    if strict && named.is_none() {
        return None;
    }
    let p = named.or(port.target_port).unwrap_or(port.number);
    Some(Endpoint {
        authority: authority(address, p).into(),
        labels: labels.clone(),
        weight: we.weight.unwrap_or(1).max(1),
        metric: 0,
        locality: we.locality.clone().filter(|l| !l.is_empty()),
    })
}
