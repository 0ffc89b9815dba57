//! The converted state of every Kubernetes object strait reads, keyed by
//! object, with `apply`/`delete`/`reset` per kind as linkerd's kubert index
//! keeps it. A file load fills it from a `ConfigSet`; a watcher will apply
//! events one at a time. [`Index::registry`] turns it into services with
//! their endpoints; endpoints depend only on slices, pods and nodes, so a
//! change there need not touch anything else ([`Index::endpoints_changed`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::convert::{self, Health, PodMeta, Resolution, Service, Slice};
use crate::config::{ConfigSet, Meta};
use crate::model::k8s::{EndpointSliceSpec, PodSpec, ServiceSpec};

/// `(namespace, name)`.
pub type Key = (String, String);

type Labels = Arc<BTreeMap<String, String>>;

/// Converted objects by key.
#[derive(Clone, Debug, Default)]
pub struct Index {
    services: BTreeMap<Key, Arc<Service>>,
    slices: BTreeMap<Key, Arc<Slice>>,
    pods: HashMap<Key, PodMeta>,
    /// Node name → locality (`region/zone/subzone`, empty for none).
    nodes: HashMap<String, Arc<str>>,
    /// Bumped on every change that can change endpoints.
    endpoint_generation: u64,
    /// Bumped on every change to a Service.
    service_generation: u64,
}

/// A service of the Kubernetes registry, ready for compile and analysis.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryService {
    /// `name.namespace.svc.<domain suffix>`.
    pub host: String,
    pub name: String,
    pub namespace: String,
    pub service: Arc<Service>,
    /// Hosts of ExternalName Services that alias this one (Istio's
    /// `Attributes.Aliases`), resolved through chains.
    pub aliases: Vec<String>,
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint address with every Service port it serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    /// Service port name → endpoint port (the resolved targetPort).
    pub ports: BTreeMap<String, u16>,
    /// Pod labels plus the topology labels Istio adds.
    pub labels: Arc<BTreeMap<String, String>>,
    /// `region/zone/subzone`, empty when unknown.
    pub locality: String,
    pub health: Health,
}

impl Index {
    /// Everything Kubernetes in a loaded configuration (the file source).
    /// Pods stand-ins built from Deployments (`apps/v1`) are not Pods.
    pub fn from_config(config: &ConfigSet) -> Index {
        let mut index = Index::default();
        for s in &config.services {
            index.apply_service(&s.meta, &s.spec);
        }
        for s in &config.endpoint_slices {
            index.apply_slice(&s.meta, &s.spec);
        }
        for p in config.pods.iter().filter(|p| p.api_version == "v1") {
            index.apply_pod(&p.meta, Some(&p.spec));
        }
        for n in &config.nodes {
            index.apply_node(&n.meta);
        }
        index
    }

    pub fn apply_service(&mut self, meta: &Meta, spec: &ServiceSpec) {
        let svc = Arc::new(convert::service(spec, &meta.annotations));
        let key = key(meta);
        if self.services.get(&key).is_some_and(|s| **s == *svc) {
            return;
        }
        self.services.insert(key, svc);
        self.service_generation += 1;
    }

    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        if self.services.remove(&own(namespace, name)).is_some() {
            self.service_generation += 1;
        }
    }

    /// A slice Istio ignores (MCS, FQDN, no owner) is removed if present.
    pub fn apply_slice(&mut self, meta: &Meta, spec: &EndpointSliceSpec) {
        let key = key(meta);
        match convert::slice(&meta.namespace, &meta.labels, spec) {
            Some(s) => {
                if self.slices.get(&key).is_some_and(|old| **old == s) {
                    return;
                }
                self.slices.insert(key, Arc::new(s));
                self.endpoint_generation += 1;
            }
            None => {
                if self.slices.remove(&key).is_some() {
                    self.endpoint_generation += 1;
                }
            }
        }
    }

    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        if self.slices.remove(&own(namespace, name)).is_some() {
            self.endpoint_generation += 1;
        }
    }

    /// A Pod's metadata (and, from a file, its spec's node). Only a label
    /// or node change counts: a status-only update does not move endpoints.
    pub fn apply_pod(&mut self, meta: &Meta, spec: Option<&PodSpec>) {
        let node = spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        let key = key(meta);
        if let Some(old) = self.pods.get(&key)
            && *old.labels == meta.labels
            && old.node == node
        {
            return;
        }
        self.pods.insert(
            key,
            PodMeta {
                labels: Arc::new(meta.labels.clone()),
                node,
            },
        );
        self.endpoint_generation += 1;
    }

    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        if self.pods.remove(&own(namespace, name)).is_some() {
            self.endpoint_generation += 1;
        }
    }

    pub fn apply_node(&mut self, meta: &Meta) {
        let locality: Arc<str> = convert::node_locality(&meta.labels).into();
        if self.nodes.get(&meta.name) == Some(&locality) {
            return;
        }
        self.nodes.insert(meta.name.clone(), locality);
        self.endpoint_generation += 1;
    }

    pub fn delete_node(&mut self, name: &str) {
        if self.nodes.remove(name).is_some() {
            self.endpoint_generation += 1;
        }
    }

    /// Replace every Service (a relist).
    pub fn reset_services<'a>(
        &mut self,
        all: impl IntoIterator<Item = (&'a Meta, &'a ServiceSpec)>,
    ) {
        self.services.clear();
        for (m, s) in all {
            self.apply_service(m, s);
        }
        self.service_generation += 1;
    }

    /// Replace every slice (a relist).
    pub fn reset_slices<'a>(
        &mut self,
        all: impl IntoIterator<Item = (&'a Meta, &'a EndpointSliceSpec)>,
    ) {
        self.slices.clear();
        for (m, s) in all {
            self.apply_slice(m, s);
        }
        self.endpoint_generation += 1;
    }

    /// Replace every Pod (a relist).
    pub fn reset_pods<'a>(&mut self, all: impl IntoIterator<Item = &'a Meta>) {
        self.pods.clear();
        for m in all {
            self.apply_pod(m, None);
        }
        self.endpoint_generation += 1;
    }

    /// Replace every Node (a relist).
    pub fn reset_nodes<'a>(&mut self, all: impl IntoIterator<Item = &'a Meta>) {
        self.nodes.clear();
        for m in all {
            self.apply_node(m);
        }
        self.endpoint_generation += 1;
    }

    /// (service generation, endpoint generation): a caller that saw the same
    /// service generation last time need only rebuild endpoints.
    pub fn generations(&self) -> (u64, u64) {
        (self.service_generation, self.endpoint_generation)
    }

    /// Whether only endpoints changed since `before` ([`Index::generations`]).
    pub fn endpoints_changed(&self, before: (u64, u64)) -> bool {
        self.service_generation == before.0 && self.endpoint_generation != before.1
    }

    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Every Service as a registry entry with its endpoints; ExternalName
    /// Services become aliases of the Service they name, never entries of
    /// their own (`push_context.go` `resolveServiceAliases`).
    pub fn registry(&self, domain: &str) -> Vec<RegistryService> {
        let host_of = |(ns, name): &Key| format!("{name}.{ns}.svc.{domain}");
        let mut raw_alias: HashMap<String, &str> = HashMap::new();
        for (k, s) in &self.services {
            if let Resolution::Alias(target) = &s.resolution {
                raw_alias.insert(host_of(k), target);
            }
        }
        // Alias → concrete host, through chains; a loop resolves to nothing
        // (Kubernetes answers NXDOMAIN).
        let mut aliases: HashMap<&str, Vec<String>> = HashMap::new();
        for (alias, first) in &raw_alias {
            let mut target: &str = first;
            let mut seen = vec![alias.as_str()];
            let mut looped = false;
            while let Some(next) = raw_alias.get(target) {
                if seen.contains(&target) {
                    looped = true;
                    break;
                }
                seen.push(target);
                target = next;
            }
            if !looped {
                aliases.entry(target).or_default().push(alias.clone());
            }
        }
        for v in aliases.values_mut() {
            v.sort();
        }
        let by_service = self.endpoints_by_service();
        self.services
            .iter()
            .filter(|(_, s)| !matches!(s.resolution, Resolution::Alias(_)))
            .map(|(k, s)| {
                let host = host_of(k);
                RegistryService {
                    aliases: aliases.get(host.as_str()).cloned().unwrap_or_default(),
                    host,
                    name: k.1.clone(),
                    namespace: k.0.clone(),
                    service: s.clone(),
                    endpoints: by_service.get(k).cloned().unwrap_or_default(),
                }
            })
            .collect()
    }

    /// Endpoints per Service from every slice: address × port, the first
    /// slice (by name) to name an (address, port name) wins
    /// (`endpointslice.go` dedup); an address whose Pod is not known yet is
    /// skipped until it is (`getPod`'s "expected pod").
    pub fn endpoints_by_service(&self) -> HashMap<Key, Vec<Endpoint>> {
        let mut out: HashMap<Key, BTreeMap<&str, Endpoint>> = HashMap::new();
        // One label set per (pod, node).
        let mut labels: HashMap<(&Key, Option<&str>), Labels> = HashMap::new();
        let empty = Arc::new(BTreeMap::new());
        for ((ns, _), slice) in &self.slices {
            let per_addr = out.entry((ns.clone(), slice.service.clone())).or_default();
            for e in &slice.endpoints {
                if e.health == Health::Terminating {
                    continue;
                }
                let pod = match &e.pod {
                    Some(k) => match self.pods.get(k) {
                        Some(p) => Some((k, p)),
                        None => continue,
                    },
                    None => None,
                };
                // The Pod's node from its spec if known, else the slice's.
                let node = pod
                    .and_then(|(_, p)| p.node.as_deref())
                    .or(e.node.as_deref());
                let locality: String = match pod.and_then(|(_, p)| convert::pod_locality(&p.labels))
                {
                    Some(l) => l,
                    None => node
                        .and_then(|n| self.nodes.get(n))
                        .map_or(String::new(), |l| l.to_string()),
                };
                let endpoint_labels = match pod {
                    Some((k, p)) => labels
                        .entry((k, node))
                        .or_insert_with(|| {
                            Arc::new(convert::augment_labels(&p.labels, &locality, node))
                        })
                        .clone(),
                    // No Pod: only the topology Istio knows without one
                    // (none here: no cluster or network labels in strait).
                    None => empty.clone(),
                };
                for a in &e.addresses {
                    let ep = per_addr.entry(a.as_str()).or_insert_with(|| Endpoint {
                        address: a.clone(),
                        ports: BTreeMap::new(),
                        labels: endpoint_labels.clone(),
                        locality: locality.clone(),
                        health: e.health,
                    });
                    for (name, port) in &slice.ports {
                        ep.ports.entry(name.clone()).or_insert(*port);
                    }
                }
            }
        }
        out.into_iter()
            .map(|(k, v)| (k, v.into_values().collect()))
            .collect()
    }
}

fn key(meta: &Meta) -> Key {
    (meta.namespace.clone(), meta.name.clone())
}

fn own(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> Meta {
        Meta {
            namespace: ns.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Meta::default()
        }
    }

    fn svc_spec() -> ServiceSpec {
        serde_json::from_value(json!({
            "clusterIP": "10.96.0.10",
            "selector": {"app": "reviews"},
            "ports": [{"name": "http", "port": 9080, "targetPort": "web"},
                      {"name": "grpc-api", "port": 9090}]
        }))
        .unwrap()
    }

    fn slice_meta(name: &str) -> Meta {
        meta("default", name, &[(convert::SERVICE_NAME_LABEL, "reviews")])
    }

    fn slice_spec(v: serde_json::Value) -> EndpointSliceSpec {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Index {
        let mut ix = Index::default();
        ix.apply_service(&meta("default", "reviews", &[]), &svc_spec());
        ix.apply_slice(
            &slice_meta("reviews-abc"),
            &slice_spec(json!({
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080}],
                "endpoints": [
                    {"addresses": ["10.1.0.1"], "nodeName": "n1",
                     "targetRef": {"kind": "Pod", "namespace": "default", "name": "reviews-v1"}},
                    {"addresses": ["10.1.0.2"], "nodeName": "n2",
                     "targetRef": {"kind": "Pod", "namespace": "default", "name": "reviews-v2"}}
                ]
            })),
        );
        ix.apply_pod(
            &meta(
                "default",
                "reviews-v1",
                &[("app", "reviews"), ("version", "v1")],
            ),
            None,
        );
        ix.apply_pod(
            &meta(
                "default",
                "reviews-v2",
                &[
                    ("app", "reviews"),
                    ("version", "v2"),
                    (convert::LABEL_LOCALITY, "eu/eu-1/a"),
                ],
            ),
            None,
        );
        ix.apply_node(&meta(
            "",
            "n1",
            &[(convert::LABEL_REGION, "us"), (convert::LABEL_ZONE, "us-1")],
        ));
        ix
    }

    fn only(ix: &Index) -> RegistryService {
        let mut r = ix.registry("cluster.local");
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    /// `endpointslice.go` `updateEndpointCacheForSlice` + `endpoint_builder.go`:
    /// the slice's port (the resolved targetPort) under the Service port's
    /// name; Pod labels plus topology labels; locality from the Pod label,
    /// else the Node's labels.
    #[test]
    fn slice_endpoints_with_pod_labels_and_locality() {
        let r = only(&base());
        assert_eq!(r.host, "reviews.default.svc.cluster.local");
        assert_eq!(r.service.vips, ["10.96.0.10"]);
        assert_eq!(r.endpoints.len(), 2);
        let v1 = &r.endpoints[0];
        assert_eq!(v1.address, "10.1.0.1");
        assert_eq!(v1.ports, BTreeMap::from([("http".to_string(), 8080)]));
        assert_eq!(v1.labels["version"], "v1");
        assert_eq!(v1.labels[convert::LABEL_REGION], "us");
        assert_eq!(v1.labels[convert::LABEL_HOSTNAME], "n1");
        assert_eq!(v1.locality, "us/us-1/");
        let v2 = &r.endpoints[1];
        assert_eq!(v2.locality, "eu/eu-1/a", "the Pod's own label wins");
        assert_eq!(v2.labels[convert::LABEL_SUBZONE], "a");
        // n2 is unknown: no locality from it.
        assert_eq!(v2.labels[convert::LABEL_HOSTNAME], "n2");
    }

    /// `endpointslice.go` `getPod`: an endpoint whose Pod is not known yet is
    /// skipped, and appears when the Pod arrives; a Pod relabel moves it.
    #[test]
    fn endpoint_waits_for_its_pod_and_follows_relabels() {
        let mut ix = base();
        ix.delete_pod("default", "reviews-v2");
        assert_eq!(only(&ix).endpoints.len(), 1);
        let before = ix.generations();
        ix.apply_pod(
            &meta(
                "default",
                "reviews-v2",
                &[("app", "reviews"), ("version", "v3")],
            ),
            None,
        );
        assert!(ix.endpoints_changed(before), "only endpoints changed");
        let r = only(&ix);
        assert_eq!(r.endpoints.len(), 2);
        assert_eq!(r.endpoints[1].labels["version"], "v3");
        // The same labels again (a status-only update) change nothing.
        let before = ix.generations();
        ix.apply_pod(
            &meta(
                "default",
                "reviews-v2",
                &[("app", "reviews"), ("version", "v3")],
            ),
            None,
        );
        assert_eq!(ix.generations(), before);
    }

    /// Duplicates of an (address, port name) across slices are merged, the
    /// first slice winning (`endpointslice.go` endpoint cache dedup);
    /// terminating endpoints are dropped, not-ready ones kept as such.
    #[test]
    fn duplicates_merged_and_terminating_dropped() {
        let mut ix = base();
        ix.apply_slice(
            &slice_meta("reviews-xyz"),
            &slice_spec(json!({
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 9999}, {"name": "grpc-api", "port": 9090}],
                "endpoints": [
                    {"addresses": ["10.1.0.1"],
                     "targetRef": {"kind": "Pod", "namespace": "default", "name": "reviews-v1"}},
                    {"addresses": ["10.1.0.7"], "conditions": {"ready": false, "terminating": false}},
                    {"addresses": ["10.1.0.8"], "conditions": {"ready": false, "terminating": true}}
                ]
            })),
        );
        let r = only(&ix);
        let addrs: Vec<&str> = r.endpoints.iter().map(|e| e.address.as_str()).collect();
        assert_eq!(addrs, ["10.1.0.1", "10.1.0.2", "10.1.0.7"]);
        assert_eq!(
            r.endpoints[0].ports,
            BTreeMap::from([("http".to_string(), 8080), ("grpc-api".to_string(), 9090)])
        );
        assert_eq!(r.endpoints[2].health, Health::NotReady);
        assert!(
            r.endpoints[2].labels.is_empty(),
            "no targetRef: no Pod labels"
        );
        ix.delete_slice("default", "reviews-xyz");
        assert_eq!(only(&ix).endpoints.len(), 2);
    }

    /// `push_context.go` `resolveServiceAliases`: ExternalName Services are
    /// aliases of the concrete Service (through chains; loops dropped) and no
    /// registry entries of their own.
    #[test]
    fn external_names_become_aliases() {
        let mut ix = base();
        let ext = |target: &str| -> ServiceSpec {
            serde_json::from_value(json!({"type": "ExternalName", "externalName": target})).unwrap()
        };
        ix.apply_service(
            &meta("other", "alias1", &[]),
            &ext("reviews.default.svc.cluster.local"),
        );
        ix.apply_service(
            &meta("other", "alias2", &[]),
            &ext("alias1.other.svc.cluster.local"),
        );
        ix.apply_service(
            &meta("other", "loop1", &[]),
            &ext("loop2.other.svc.cluster.local"),
        );
        ix.apply_service(
            &meta("other", "loop2", &[]),
            &ext("loop1.other.svc.cluster.local"),
        );
        let r = only(&ix);
        assert_eq!(
            r.aliases,
            [
                "alias1.other.svc.cluster.local",
                "alias2.other.svc.cluster.local"
            ]
        );
    }

    #[test]
    fn deletes_and_resets() {
        let mut ix = base();
        let before = ix.generations();
        ix.delete_service("default", "reviews");
        assert!(
            !ix.endpoints_changed(before),
            "a Service change is not endpoint-only"
        );
        assert!(ix.registry("cluster.local").is_empty());
        let mut ix = base();
        ix.reset_pods([&meta("default", "reviews-v1", &[("version", "v1")])]);
        assert_eq!(only(&ix).endpoints.len(), 1);
        ix.reset_nodes(std::iter::empty());
        assert_eq!(only(&ix).endpoints[0].locality, "");
        ix.reset_slices(std::iter::empty());
        assert!(only(&ix).endpoints.is_empty());
        ix.reset_services(std::iter::empty());
        assert!(ix.is_empty());
        ix.delete_node("n1");
    }
}
