//! The converted state of every Kubernetes object strait reads, keyed by
//! object, with `apply`/`delete`/`reset` per kind as linkerd's kubert index
//! keeps it. A file load fills it from a `ConfigSet`; the API watcher
//! (`source::kube`) keeps one live, applying each event as it arrives.
//! [`Index::registry`] turns it into services with their endpoints;
//! endpoints depend only on slices, pods and nodes, and the index knows
//! which Services' endpoints each change touched
//! ([`Index::endpoint_changes`]), so a change there rebuilds only those.

use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// Pod label sets, one copy per distinct set: the Pods of a workload
    /// carry the same labels.
    label_sets: HashSet<Labels>,
    /// Service → the names of its slices (same namespace), sorted.
    slices_of: HashMap<Key, Vec<String>>,
    /// Pod → the slices naming it.
    pod_slices: HashMap<Key, Vec<Key>>,
    /// The endpoint generation at which each Service's endpoints last
    /// changed (a slice of it, or a Pod one of its slices names).
    changed_at: HashMap<Key, u64>,
    /// Every Service's endpoints changed at this endpoint generation (a
    /// Node's locality, a relist).
    all_changed_at: u64,
    /// Bumped on every change that can change endpoints.
    endpoint_generation: u64,
    /// Bumped on every change to a Service.
    service_generation: u64,
}

/// Which Services' endpoints changed since an endpoint generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointChanges {
    /// Too many to tell (a Node, a relist): rebuild every Service's.
    All,
    /// These Services (`(namespace, name)`, sorted).
    Services(Vec<Key>),
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
    /// The Pod's own labels, shared (the index keeps one copy per distinct
    /// set); `None` for an address without a Pod.
    pub pod_labels: Option<Labels>,
    /// `region/zone/subzone`, empty when unknown.
    pub locality: String,
    /// The Pod's node (its `kubernetes.io/hostname` label).
    pub node: Option<String>,
    pub health: Health,
}

impl Endpoint {
    /// Istio's labels of the endpoint (`AugmentLabels`): the Pod's, plus
    /// region, zone and subzone from the locality and the node's hostname;
    /// none for an address without a Pod (no topology Istio knows without
    /// one: strait has no cluster or network labels).
    pub fn labels(&self) -> BTreeMap<String, String> {
        match &self.pod_labels {
            Some(p) => convert::augment_labels(p, &self.locality, self.node.as_deref()),
            None => BTreeMap::new(),
        }
    }

    /// One label of [`Endpoint::labels`], without building them.
    pub fn label(&self, key: &str) -> Option<&str> {
        let pod = self.pod_labels.as_ref()?;
        let mut parts = self.locality.splitn(3, '/');
        for topology in [
            convert::LABEL_REGION,
            convert::LABEL_ZONE,
            convert::LABEL_SUBZONE,
        ] {
            let part = parts.next().filter(|v| !v.is_empty());
            if key == topology && part.is_some() {
                return part;
            }
        }
        if key == convert::LABEL_HOSTNAME
            && let Some(n) = self.node.as_deref().filter(|n| !n.is_empty())
        {
            return Some(n);
        }
        pod.get(key).map(String::as_str)
    }

    /// `selector ⊆` [`Endpoint::labels`] (a DestinationRule subset).
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(k, v)| self.label(k) == Some(v.as_str()))
    }
}

impl Index {
    /// Everything Kubernetes in a loaded configuration (the file source).
    /// Pods stand-ins built from Deployments (`apps/v1`) are not Pods.
    pub fn from_config(config: &ConfigSet) -> Index {
        let mut index = Index::default();
        index.apply_config(config);
        index
    }

    /// Apply every Kubernetes object of a loaded configuration (files
    /// layered over a cluster's).
    pub fn apply_config(&mut self, config: &ConfigSet) {
        for s in &config.services {
            self.apply_service(&s.meta, &s.spec);
        }
        for s in &config.endpoint_slices {
            self.apply_slice(&s.meta, &s.spec);
        }
        for p in config.pods.iter().filter(|p| p.api_version == "v1") {
            self.apply_pod(&p.meta, Some(&p.spec));
        }
        for n in &config.nodes {
            self.apply_node(&n.meta);
        }
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
        let key = own(namespace, name);
        if self.services.remove(&key).is_some() {
            self.changed_at.remove(&key);
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
                self.unlink_slice(&key);
                self.endpoint_generation += 1;
                let slice = Arc::new(s);
                self.link_slice(&key, &slice);
                self.slices.insert(key, slice);
            }
            None => self.delete_slice(&meta.namespace, &meta.name),
        }
    }

    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        let key = own(namespace, name);
        if self.slices.contains_key(&key) {
            self.unlink_slice(&key);
            self.slices.remove(&key);
            self.endpoint_generation += 1;
        }
    }

    /// Record `slice` in the reverse maps, and its Service as changed.
    fn link_slice(&mut self, key: &Key, slice: &Slice) {
        let service = (key.0.clone(), slice.service.clone());
        let names = self.slices_of.entry(service.clone()).or_default();
        if let Err(at) = names.binary_search(&key.1) {
            names.reserve_exact(1);
            names.insert(at, key.1.clone());
        }
        for e in &slice.endpoints {
            if let Some(pod) = &e.pod {
                let of = self.pod_slices.entry(pod.clone()).or_default();
                if !of.contains(key) {
                    // Mostly one slice per Pod: no room for more kept.
                    of.reserve_exact(1);
                    of.push(key.clone());
                }
            }
        }
        self.changed_at.insert(service, self.endpoint_generation);
    }

    /// Remove the slice at `key` (if any) from the reverse maps, and mark
    /// its Service changed.
    fn unlink_slice(&mut self, key: &Key) {
        let Some(old) = self.slices.get(key).cloned() else {
            return;
        };
        let service = (key.0.clone(), old.service.clone());
        if let Some(names) = self.slices_of.get_mut(&service) {
            names.retain(|n| *n != key.1);
            if names.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        for e in &old.endpoints {
            if let Some(pod) = &e.pod
                && let Some(of) = self.pod_slices.get_mut(pod)
            {
                of.retain(|k| k != key);
                if of.is_empty() {
                    self.pod_slices.remove(pod);
                }
            }
        }
        self.changed_at
            .insert(service, self.endpoint_generation + 1);
    }

    /// Mark the Services whose slices name `pod` changed.
    fn pod_changed(&mut self, pod: &Key) {
        let Some(of) = self.pod_slices.get(pod) else {
            return;
        };
        for k in of {
            if let Some(s) = self.slices.get(k) {
                self.changed_at
                    .insert((k.0.clone(), s.service.clone()), self.endpoint_generation);
            }
        }
    }

    /// A Pod's metadata (and, from a file, its spec's node). Only a label
    /// or node change counts: a status-only update does not move endpoints.
    pub fn apply_pod(&mut self, meta: &Meta, spec: Option<&PodSpec>) {
        let node = spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        self.apply_pod_labels(&meta.namespace, &meta.name, &meta.labels, node);
    }

    /// [`Index::apply_pod`] from its parts (a watched Pod's metadata).
    pub fn apply_pod_labels(
        &mut self,
        namespace: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        node: Option<String>,
    ) {
        let key = own(namespace, name);
        if let Some(old) = self.pods.get(&key)
            && *old.labels == *labels
            && old.node == node
        {
            return;
        }
        let labels = self.intern(labels);
        self.pods.insert(key.clone(), PodMeta { labels, node });
        self.endpoint_generation += 1;
        self.pod_changed(&key);
    }

    /// One shared copy of a Pod label set.
    fn intern(&mut self, labels: &BTreeMap<String, String>) -> Labels {
        if let Some(l) = self.label_sets.get(labels) {
            return l.clone();
        }
        // Sets no Pod holds any more are dropped now and then.
        if self.label_sets.len() > 2 * self.pods.len() + 64 {
            self.label_sets.retain(|l| Arc::strong_count(l) > 1);
        }
        let l = Arc::new(labels.clone());
        self.label_sets.insert(l.clone());
        l
    }

    pub fn delete_pod(&mut self, namespace: &str, name: &str) {
        let key = own(namespace, name);
        if self.pods.remove(&key).is_some() {
            self.endpoint_generation += 1;
            self.pod_changed(&key);
        }
    }

    pub fn apply_node(&mut self, meta: &Meta) {
        self.apply_node_labels(&meta.name, &meta.labels);
    }

    /// [`Index::apply_node`] from its parts (a watched Node's metadata).
    pub fn apply_node_labels(&mut self, name: &str, labels: &BTreeMap<String, String>) {
        let locality: Arc<str> = convert::node_locality(labels).into();
        if self.nodes.get(name) == Some(&locality) {
            return;
        }
        self.nodes.insert(name.to_string(), locality);
        self.all_changed();
    }

    pub fn delete_node(&mut self, name: &str) {
        if self.nodes.remove(name).is_some() {
            self.all_changed();
        }
    }

    fn all_changed(&mut self) {
        self.endpoint_generation += 1;
        self.all_changed_at = self.endpoint_generation;
    }

    /// Replace every Service (a relist).
    pub fn reset_services<'a>(
        &mut self,
        all: impl IntoIterator<Item = (&'a Meta, &'a ServiceSpec)>,
    ) {
        self.services.clear();
        self.changed_at.clear();
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
        self.slices_of.clear();
        self.pod_slices.clear();
        for (m, s) in all {
            self.apply_slice(m, s);
        }
        self.all_changed();
    }

    /// Replace every Pod (a relist).
    pub fn reset_pods<'a>(&mut self, all: impl IntoIterator<Item = &'a Meta>) {
        self.pods.clear();
        for m in all {
            self.apply_pod(m, None);
        }
        self.label_sets.retain(|l| Arc::strong_count(l) > 1);
        self.all_changed();
    }

    /// Replace every Node (a relist).
    pub fn reset_nodes<'a>(&mut self, all: impl IntoIterator<Item = &'a Meta>) {
        self.nodes.clear();
        for m in all {
            self.apply_node(m);
        }
        self.all_changed();
    }

    /// The Services (or every one) whose endpoints changed after endpoint
    /// generation `since` ([`Index::generations`]).
    pub fn endpoint_changes(&self, since: u64) -> EndpointChanges {
        if self.all_changed_at > since {
            return EndpointChanges::All;
        }
        let mut keys: Vec<Key> = self
            .changed_at
            .iter()
            .filter(|(_, at)| **at > since)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        EndpointChanges::Services(keys)
    }

    /// The keys held of `kind` (`Service`, `EndpointSlice`, `Pod`,
    /// `Node`), in `namespace` only when given (a Node's is `("", name)`).
    pub fn keys(&self, kind: &str, namespace: Option<&str>) -> Vec<Key> {
        let in_ns = |k: &&Key| namespace.is_none_or(|ns| k.0 == ns);
        match kind {
            "Service" => self.services.keys().filter(in_ns).cloned().collect(),
            "EndpointSlice" => self.slices.keys().filter(in_ns).cloned().collect(),
            "Pod" => self.pods.keys().filter(in_ns).cloned().collect(),
            "Node" => self
                .nodes
                .keys()
                .map(|n| (String::new(), n.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// How many of `kind` are held, in `namespace` only when given.
    pub fn count(&self, kind: &str, namespace: Option<&str>) -> usize {
        let in_ns = |k: &&Key| namespace.is_none_or(|ns| k.0 == ns);
        match (kind, namespace) {
            ("Service", None) => self.services.len(),
            ("Service", _) => self.services.keys().filter(in_ns).count(),
            ("EndpointSlice", None) => self.slices.len(),
            ("EndpointSlice", _) => self.slices.keys().filter(in_ns).count(),
            ("Pod", None) => self.pods.len(),
            ("Pod", _) => self.pods.keys().filter(in_ns).count(),
            ("Node", _) => self.nodes.len(),
            _ => 0,
        }
    }

    /// Every Pod's labels, and every Node's locality: what analysis reads
    /// of them.
    pub fn pods(&self) -> impl Iterator<Item = (&Key, &PodMeta)> {
        self.pods.iter()
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.nodes.iter().map(|(n, l)| (n.as_str(), &**l))
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
        let aliases = self.aliases(domain);
        let mut endpoints = Endpoints::new(self);
        self.services
            .iter()
            .filter_map(|(k, s)| self.entry(k, s, domain, &aliases, &mut endpoints))
            .collect()
    }

    /// The registry entries of these Services only (those that exist and
    /// are not ExternalName aliases).
    pub fn registry_of(&self, keys: &[Key], domain: &str) -> Vec<RegistryService> {
        let aliases = self.aliases(domain);
        let mut endpoints = Endpoints::new(self);
        keys.iter()
            .filter_map(|k| {
                let s = self.services.get(k)?;
                self.entry(k, s, domain, &aliases, &mut endpoints)
            })
            .collect()
    }

    fn entry(
        &self,
        k: &Key,
        s: &Arc<Service>,
        domain: &str,
        aliases: &HashMap<String, Vec<String>>,
        endpoints: &mut Endpoints<'_>,
    ) -> Option<RegistryService> {
        if matches!(s.resolution, Resolution::Alias(_)) {
            return None;
        }
        let host = host_of(k, domain);
        Some(RegistryService {
            aliases: aliases.get(host.as_str()).cloned().unwrap_or_default(),
            host,
            name: k.1.clone(),
            namespace: k.0.clone(),
            service: s.clone(),
            endpoints: endpoints.of(k),
        })
    }

    /// Concrete host → the ExternalName hosts aliasing it, through chains;
    /// a loop resolves to nothing (Kubernetes answers NXDOMAIN).
    fn aliases(&self, domain: &str) -> HashMap<String, Vec<String>> {
        let mut raw_alias: HashMap<String, &str> = HashMap::new();
        for (k, s) in &self.services {
            if let Resolution::Alias(target) = &s.resolution {
                raw_alias.insert(host_of(k, domain), target);
            }
        }
        let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
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
                aliases
                    .entry(target.to_string())
                    .or_default()
                    .push(alias.clone());
            }
        }
        for v in aliases.values_mut() {
            v.sort();
        }
        aliases
    }

    /// Endpoints per Service from every slice (see `Endpoints::of`).
    pub fn endpoints_by_service(&self) -> HashMap<Key, Vec<Endpoint>> {
        let mut endpoints = Endpoints::new(self);
        self.slices_of
            .keys()
            .map(|k| (k.clone(), endpoints.of(k)))
            .collect()
    }
}

/// Builds Services' endpoints.
struct Endpoints<'a> {
    index: &'a Index,
}

impl<'a> Endpoints<'a> {
    fn new(index: &'a Index) -> Endpoints<'a> {
        Endpoints { index }
    }

    /// A Service's endpoints from its slices: address × port, the first
    /// slice (by name) to name an (address, port name) wins
    /// (`endpointslice.go` dedup); an address whose Pod is not known yet is
    /// skipped until it is (`getPod`'s "expected pod").
    fn of(&mut self, service: &Key) -> Vec<Endpoint> {
        let index = self.index;
        let Some(names) = index.slices_of.get(service) else {
            return Vec::new();
        };
        let mut per_addr: BTreeMap<&str, Endpoint> = BTreeMap::new();
        for name in names {
            let Some(slice) = index.slices.get(&(service.0.clone(), name.clone())) else {
                continue;
            };
            for e in &slice.endpoints {
                if e.health == Health::Terminating {
                    continue;
                }
                let pod = match &e.pod {
                    Some(k) => match index.pods.get(k) {
                        Some(p) => Some(p),
                        None => continue,
                    },
                    None => None,
                };
                // The Pod's node from its spec if known, else the slice's.
                let node = pod.and_then(|p| p.node.as_deref()).or(e.node.as_deref());
                let locality: String = match pod.and_then(|p| convert::pod_locality(&p.labels)) {
                    Some(l) => l,
                    None => node
                        .and_then(|n| index.nodes.get(n))
                        .map_or(String::new(), |l| l.to_string()),
                };
                for a in &e.addresses {
                    let ep = per_addr.entry(a.as_str()).or_insert_with(|| Endpoint {
                        address: a.clone(),
                        ports: BTreeMap::new(),
                        pod_labels: pod.map(|p| p.labels.clone()),
                        locality: locality.clone(),
                        node: node.map(str::to_string),
                        health: e.health,
                    });
                    for (name, port) in &slice.ports {
                        ep.ports.entry(name.clone()).or_insert(*port);
                    }
                }
            }
        }
        per_addr.into_values().collect()
    }
}

fn host_of((ns, name): &Key, domain: &str) -> String {
    format!("{name}.{ns}.svc.{domain}")
}

fn key(meta: &Meta) -> Key {
    (meta.namespace.clone(), meta.name.clone())
}

fn own(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

#[cfg(test)]
mod tests;
