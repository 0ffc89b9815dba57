//! What the watchers have seen, converted on arrival (sans-IO): one
//! [`Stream`] per watch (a kind, in one namespace or all) with the watch's
//! sync state for readiness and the admin API. Services, EndpointSlices,
//! Pods and Nodes go straight into one live [`Index`] (compact converted
//! forms, Pod label sets shared; no Kubernetes object kept), which compile
//! reads as the service registry; Istio resources, Services (for analysis
//! and `/config_dump`) and Secrets are decoded by the files' own loader
//! into a typed set each (no `managedFields`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::Value;

use super::kinds::KindSpec;
use crate::config::{ConfigSet, Kind, Meta, Resource};
use crate::kubernetes::{EndpointChanges, Index, RegistryService};
use crate::load::{LoadOptions, Loader};
use crate::model::k8s::{EndpointSliceSpec, NodeSpec, PodSpec, ServiceSpec};
use crate::source::EndpointUpdate;

/// `(namespace, name)`.
type Key = (String, String);

/// An object as a watcher hands it over.
#[derive(Debug)]
pub enum Object {
    /// A whole object as JSON (Istio kinds, Services, Secrets; every kind
    /// when the store keeps everything).
    Value(Value),
    /// Metadata only (a Pod or Node watched as `PartialObjectMetadata`).
    Meta(Meta),
    /// An EndpointSlice, already typed.
    Slice(Meta, EndpointSliceSpec),
}

impl Object {
    fn key(&self) -> Key {
        match self {
            Object::Value(v) => key_of(v),
            Object::Meta(m) | Object::Slice(m, _) => (m.namespace.clone(), m.name.clone()),
        }
    }

    fn resource_version(&self) -> Option<&str> {
        match self {
            Object::Value(v) => v["metadata"]["resourceVersion"].as_str(),
            Object::Meta(m) | Object::Slice(m, _) => m.resource_version.as_deref(),
        }
    }
}

/// One watch's objects and state.
#[derive(Debug)]
pub struct Stream {
    pub kind: &'static KindSpec,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub namespace: Option<String>,
    /// Objects kept loaded: Istio kinds, Services and Secrets (and every
    /// kind when the store keeps everything).
    objects: BTreeMap<Key, Box<ConfigSet>>,
    /// Filled during a (re)list; swapped in whole when it ends, so objects
    /// deleted while the watch was away disappear.
    relisting: Option<BTreeMap<Key, Box<ConfigSet>>>,
    /// The keys a (re)list has delivered so far: what the index holds in
    /// the watch's scope besides (an indexed kind), and what is recorded
    /// as rejected besides, is gone when it ends.
    relisted: Option<HashSet<Key>>,
    /// Listed at least once (or found not installed).
    pub synced: bool,
    /// The last list failed with 404: an Istio CRD not installed.
    pub not_installed: bool,
    /// The resourceVersion of the last object seen.
    pub resource_version: String,
    pub events: u64,
    /// Completed lists (the first, and each after a 410 or lost watch).
    pub relists: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Objects that could not be loaded, with why.
    rejected: BTreeMap<Key, Vec<String>>,
}

/// Every stream and the index, behind one lock (taken per event and per
/// rebuild, never on the request path).
#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: Vec<Stream>,
    /// Services, slices, Pods and Nodes, converted.
    index: Index,
    /// Keep every object loaded as well (`check --use-kube` analyzes Pods
    /// with their annotations); `run` keeps the index only.
    keep_all: bool,
    /// When the last change was applied to the store.
    last_change: Option<SystemTime>,
    /// Bumped when a Service, Istio resource or anything but endpoints changes.
    config_generation: u64,
    /// Bumped when an EndpointSlice, Pod or Node changes endpoints.
    endpoint_generation: u64,
}

/// What a rebuild needs to know besides the objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generations {
    pub config: u64,
    pub endpoints: u64,
}

fn key_of(value: &Value) -> Key {
    let m = &value["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    (s(&m["namespace"]), s(&m["name"]))
}

/// One object → its loaded set (errors in `load_errors`).
fn decode(value: Value, label: &str) -> ConfigSet {
    let opts = LoadOptions::default();
    let mut loader = Loader::new(&opts);
    loader.object(value, label);
    loader.finish()
}

impl Store {
    /// A store for `streams` that keeps Services, slices, Pods and Nodes in
    /// the index only (what `run` needs).
    pub fn new(streams: impl IntoIterator<Item = (&'static KindSpec, Option<String>)>) -> Store {
        let streams = streams
            .into_iter()
            .map(|(kind, namespace)| Stream {
                kind,
                namespace,
                objects: BTreeMap::new(),
                relisting: None,
                relisted: None,
                synced: false,
                not_installed: false,
                resource_version: String::new(),
                events: 0,
                relists: 0,
                errors: 0,
                last_error: None,
                rejected: BTreeMap::new(),
            })
            .collect();
        Store {
            inner: Mutex::new(Inner {
                streams,
                ..Inner::default()
            }),
        }
    }

    /// Keep every object loaded too (`check --use-kube`); before the
    /// watchers start.
    pub fn keep_all(&self) {
        self.with(|i| i.keep_all = true);
    }

    /// Whether every object is kept loaded (then watchers hand over
    /// [`Object::Value`]s only).
    pub fn keeps_all(&self) -> bool {
        self.with(|i| i.keep_all)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A (re)list begins.
    pub fn init(&self, stream: usize) {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.relisting = Some(BTreeMap::new());
            s.relisted = Some(HashSet::new());
        });
    }

    /// One object of a list: indexed at once (it is newer than what the
    /// index holds), kept loaded when the list ends.
    pub fn init_apply(&self, stream: usize, object: Object) {
        self.with(|i| {
            let key = object.key();
            let converted = i.convert(stream, object);
            let s = &mut i.streams[stream];
            if let Converted::Loaded(set) = converted {
                s.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key.clone(), set);
            }
            if let Some(r) = &mut s.relisted {
                r.insert(key);
            }
        });
    }

    /// The list is complete: it replaces what was there. True when that
    /// changed what is served.
    pub fn init_done(&self, stream: usize) -> bool {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.objects = s.relisting.take().unwrap_or_default();
            let listed = s.relisted.take().unwrap_or_default();
            s.relists += 1;
            // The list converted every object again (recording anew which
            // it rejects); one rejected before and deleted while the watch
            // was away is no longer listed. Pruned here, not at the list's
            // start, so `rejected` is never half a list.
            s.rejected.retain(|k, _| listed.contains(k));
            s.synced = true;
            s.not_installed = false;
            let kind = s.kind;
            if indexed_kind(kind) {
                let held = i.index.keys(kind.kind, s.namespace.as_deref());
                for (ns, name) in held.iter().filter(|k| !listed.contains(*k)) {
                    unindex(&mut i.index, kind, ns, name);
                }
            }
            // A list always counts: it may hold what the watch missed.
            i.changed(kind.endpoints_only);
            true
        })
    }

    /// An object added or modified. True when that changed what is served
    /// (a Pod's status alone does not: its labels and node are the same).
    pub fn apply(&self, stream: usize, object: Object) -> bool {
        self.with(|i| {
            let key = object.key();
            let before = i.index.generations();
            match i.convert(stream, object) {
                Converted::Loaded(set) => {
                    i.streams[stream].objects.insert(key, set);
                }
                Converted::Indexed => {}
                Converted::Rejected => {
                    // No longer served as it was.
                    let s = &mut i.streams[stream];
                    s.objects.remove(&key);
                    let kind = s.kind;
                    unindex(&mut i.index, kind, &key.0, &key.1);
                }
            }
            i.after_event(stream, before)
        })
    }

    /// An object deleted. True when that changed what is served.
    pub fn delete(&self, stream: usize, object: &Object) -> bool {
        self.with(|i| {
            let before = i.index.generations();
            let key = object.key();
            let s = &mut i.streams[stream];
            s.events += 1;
            s.objects.remove(&key);
            s.rejected.remove(&key);
            let kind = s.kind;
            unindex(&mut i.index, kind, &key.0, &key.1);
            i.after_event(stream, before)
        })
    }

    /// A watch or list error. `not_found`: the kind is not served (an Istio
    /// CRD not installed), which counts as an empty, synced kind. True when
    /// it is newly found not installed (to be said once, and rebuilt).
    pub fn error(&self, stream: usize, message: String, not_found: bool) -> bool {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.errors += 1;
            s.last_error = Some(message);
            if not_found && s.kind.optional && !s.not_installed {
                s.not_installed = true;
                s.synced = true;
                s.relisting = None;
                s.relisted = None;
                let had = !s.objects.is_empty();
                s.objects.clear();
                if had {
                    i.changed(false);
                }
                return true;
            }
            false
        })
    }

    /// Something besides the watches changed (a layered file): the next
    /// rebuild is a full one.
    pub fn touch(&self) {
        self.with(|i| i.changed(false));
    }

    /// Every stream has listed once.
    pub fn synced(&self) -> bool {
        self.with(|i| i.streams.iter().all(|s| s.synced))
    }

    pub fn generations(&self) -> Generations {
        self.with(|i| Generations {
            config: i.config_generation,
            endpoints: i.endpoint_generation,
        })
    }

    /// Everything the watches hold loaded, as one set: Istio resources and
    /// Secrets (and every kind when keeping everything). Services are not
    /// in it (compile reads them from the registry, analysis from
    /// [`Store::services`]): a rebuild copies no 10,000 Services.
    pub fn config(&self) -> ConfigSet {
        let mut out = ConfigSet::default();
        self.with(|i| {
            for s in &i.streams {
                if s.kind.kind == "Service" && !i.keep_all {
                    continue;
                }
                for set in s.objects.values() {
                    out.extend((**set).clone());
                }
            }
        });
        // Load order within each kind: by stream, then namespace and name.
        macro_rules! number {
            ($($f:ident),*) => { $( for (n, r) in out.$f.iter_mut().enumerate() { r.seq = n; } )* };
        }
        crate::config::resource_lists!(number);
        out
    }

    /// The Services, as loaded resources for analysis.
    pub fn services(&self) -> Vec<Resource<ServiceSpec>> {
        self.with(|i| {
            let mut out: Vec<Resource<ServiceSpec>> = i
                .streams
                .iter()
                .filter(|s| s.kind.kind == "Service")
                .flat_map(|s| s.objects.values())
                .flat_map(|set| set.services.iter().cloned())
                .collect();
            for (n, r) in out.iter_mut().enumerate() {
                r.seq = n;
            }
            out
        })
    }

    /// The Pods and Nodes the index holds, as loaded resources for
    /// analysis: labels (and a Node's topology labels from its locality)
    /// only, as a metadata-only watch sees them.
    pub fn pods_and_nodes(&self) -> (Vec<Resource<PodSpec>>, Vec<Resource<NodeSpec>>) {
        fn resource<T: Default>(kind: Kind, meta: Meta) -> Resource<T> {
            Resource {
                kind,
                api_version: "v1".to_string(),
                meta,
                spec: T::default(),
                status: None,
                origin: Default::default(),
                seq: 0,
            }
        }
        self.with(|i| {
            let mut pods: Vec<Resource<PodSpec>> = i
                .index
                .pods()
                .map(|((ns, name), p)| {
                    resource(
                        Kind::Pod,
                        Meta {
                            name: name.clone(),
                            namespace: ns.clone(),
                            labels: (*p.labels).clone(),
                            ..Meta::default()
                        },
                    )
                })
                .collect();
            pods.sort_by(|a, b| {
                (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name))
            });
            let mut nodes: Vec<Resource<NodeSpec>> = i
                .index
                .nodes()
                .map(|(name, locality)| {
                    let labels = crate::kubernetes::convert::augment_labels(
                        &BTreeMap::new(),
                        locality,
                        None,
                    );
                    resource(
                        Kind::Node,
                        Meta {
                            name: name.to_string(),
                            labels,
                            ..Meta::default()
                        },
                    )
                })
                .collect();
            nodes.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
            for (n, p) in pods.iter_mut().enumerate() {
                p.seq = n;
            }
            for (n, p) in nodes.iter_mut().enumerate() {
                p.seq = n;
            }
            (pods, nodes)
        })
    }

    /// The live registry (every Kubernetes Service with its endpoints) and
    /// the index's endpoint generation it reflects.
    pub fn registry(&self, domain: &str) -> (Vec<RegistryService>, u64) {
        self.with(|i| (i.index.registry(domain), i.index.generations().1))
    }

    /// The index as it is now (to layer file objects over).
    pub fn index(&self) -> Index {
        self.with(|i| i.index.clone())
    }

    /// What endpoints changed after index generation `since`, and the
    /// generation now.
    pub fn endpoint_update(&self, since: u64, domain: &str) -> (EndpointUpdate, u64) {
        self.with(|i| {
            let now = i.index.generations().1;
            let update = match i.index.endpoint_changes(since) {
                EndpointChanges::All => EndpointUpdate::All(i.index.registry(domain)),
                EndpointChanges::Services(keys) => {
                    EndpointUpdate::Services(i.index.registry_of(&keys, domain))
                }
            };
            (update, now)
        })
    }

    /// Objects that could not be loaded, one line each.
    pub fn rejected(&self) -> Vec<String> {
        self.with(|i| {
            i.streams
                .iter()
                .flat_map(|s| s.rejected.values().flatten().cloned())
                .collect()
        })
    }

    /// Each watch's state, for `/config_dump`.
    pub fn state(&self) -> Value {
        self.with(|i| {
            let streams: Vec<Value> = i
                .streams
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "kind": s.kind.kind,
                        "apiVersion": s.kind.api_version(),
                        "namespace": s.namespace,
                        "synced": s.synced,
                        "notInstalled": s.not_installed,
                        "resourceVersion": s.resource_version,
                        "objects": if indexed_kind(s.kind) {
                            i.index.count(s.kind.kind, s.namespace.as_deref())
                        } else {
                            s.objects.len()
                        },
                        "events": s.events,
                        "relists": s.relists,
                        "errors": s.errors,
                        "lastError": s.last_error,
                    })
                })
                .collect();
            serde_json::json!({
                "synced": i.streams.iter().all(|s| s.synced),
                "lastChangeUnixSeconds": i.last_change.map(unix_seconds),
                "watches": streams,
            })
        })
    }

    /// Per-kind counters for metrics, summed over namespaces; and when the
    /// last change was applied.
    pub fn counters(&self) -> (Vec<KindCounters>, Option<SystemTime>) {
        self.with(|i| {
            let mut out: Vec<KindCounters> = Vec::new();
            for s in &i.streams {
                let at = match out.iter().position(|c| c.kind == s.kind.kind) {
                    Some(at) => at,
                    None => {
                        out.push(KindCounters {
                            kind: s.kind.kind,
                            ..KindCounters::default()
                        });
                        out.len() - 1
                    }
                };
                let c = &mut out[at];
                c.events += s.events;
                c.relists += s.relists;
                c.errors += s.errors;
            }
            (out, i.last_change)
        })
    }
}

/// One kind's watch counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindCounters {
    pub kind: &'static str,
    pub events: u64,
    /// Completed lists (the first, and each after a 410 or lost watch).
    pub relists: u64,
    pub errors: u64,
}

/// Seconds since the epoch.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Whether a kind lives in the index.
fn indexed_kind(kind: &KindSpec) -> bool {
    matches!(kind.kind, "Service" | "EndpointSlice" | "Pod" | "Node")
}

/// Remove an object of `kind` from the index.
fn unindex(index: &mut Index, kind: &KindSpec, ns: &str, name: &str) {
    match kind.kind {
        "Service" => index.delete_service(ns, name),
        "EndpointSlice" => index.delete_slice(ns, name),
        "Pod" => index.delete_pod(ns, name),
        "Node" => index.delete_node(name),
        _ => {}
    }
}

impl Inner {
    fn changed(&mut self, endpoints_only: bool) {
        self.last_change = Some(SystemTime::now());
        if endpoints_only {
            self.endpoint_generation += 1;
        } else {
            self.config_generation += 1;
        }
    }

    /// Count an applied or deleted object as a change when it changed the
    /// index (endpoint kinds) or is of any other kind.
    fn after_event(&mut self, stream: usize, before: (u64, u64)) -> bool {
        let kind = self.streams[stream].kind;
        if !indexed_kind(kind) || kind.kind == "Service" {
            self.changed(false);
            return true;
        }
        if self.index.generations() == before {
            return false;
        }
        self.changed(true);
        true
    }

    /// Convert one object of `stream`: into the index for Services,
    /// slices, Pods and Nodes; loaded for the other kinds, Services (for
    /// analysis), and everything when keeping all. A rejected object (it
    /// cannot be loaded) is recorded in `rejected` and logged.
    fn convert(&mut self, stream: usize, object: Object) -> Converted {
        let keep_all = self.keep_all;
        let s = &mut self.streams[stream];
        s.events += 1;
        if let Some(rv) = object.resource_version() {
            s.resource_version = rv.to_string();
        }
        let kind = s.kind;
        let key = object.key();
        let set = match object {
            Object::Meta(meta) => {
                s.rejected.remove(&key);
                match kind.kind {
                    "Node" => self.index.apply_node_labels(&meta.name, &meta.labels),
                    _ => {
                        self.index
                            .apply_pod_labels(&meta.namespace, &meta.name, &meta.labels, None)
                    }
                }
                return Converted::Indexed;
            }
            Object::Slice(meta, spec) => {
                s.rejected.remove(&key);
                self.index.apply_slice(&meta, &spec);
                return Converted::Indexed;
            }
            Object::Value(value) => match s.load(value) {
                Some(set) => set,
                None => return Converted::Rejected,
            },
        };
        if indexed_kind(kind) {
            index_loaded(&mut self.index, &set);
            if !keep_all && kind.kind != "Service" {
                return Converted::Indexed;
            }
        }
        Converted::Loaded(Box::new(set))
    }
}

/// What became of an object.
enum Converted {
    /// Kept loaded (and indexed, for an indexed kind).
    Loaded(Box<ConfigSet>),
    /// In the index only.
    Indexed,
    /// It could not be loaded.
    Rejected,
}

/// Apply a loaded Service, slice, Pod or Node to the index.
fn index_loaded(index: &mut Index, set: &ConfigSet) {
    for r in &set.services {
        index.apply_service(&r.meta, &r.spec);
    }
    for r in &set.endpoint_slices {
        index.apply_slice(&r.meta, &r.spec);
    }
    for r in &set.pods {
        index.apply_pod(&r.meta, Some(&r.spec));
    }
    for r in &set.nodes {
        index.apply_node(&r.meta);
    }
}

impl Stream {
    /// Strip what strait never reads and decode. `None` when it cannot be
    /// loaded (recorded in `rejected`, logged) or is ignored.
    fn load(&mut self, mut value: Value) -> Option<ConfigSet> {
        strip(&mut value, self.kind);
        let key = key_of(&value);
        let label = if key.0.is_empty() {
            format!("{} {}", self.kind.kind, key.1)
        } else {
            format!("{} {}/{}", self.kind.kind, key.0, key.1)
        };
        let mut set = decode(value, &label);
        if !set.load_errors.is_empty() {
            let lines: Vec<String> = set
                .load_errors
                .iter()
                .map(|e| format!("Error: {e}"))
                .collect();
            for l in &lines {
                tracing::warn!(target: "strait::kubernetes", "{l}; the resource is ignored");
            }
            self.rejected.insert(key, lines);
            return None;
        }
        self.rejected.remove(&key);
        macro_rules! shrink {
            ($($f:ident),*) => { $( set.$f.shrink_to_fit(); )* };
        }
        crate::config::resource_lists!(shrink);
        Some(set)
    }
}

/// The data keys of a Secret strait reads (`credentialName`: a TLS
/// certificate, key and CA, as Istio's `pilot/pkg/credentials/kube`
/// `extractCertAndKey`/`extractRoot` read them); the rest is dropped on
/// arrival, so other secrets' values are never held.
pub const SECRET_KEYS: &[&str] = &["tls.crt", "tls.key", "ca.crt", "cacert", "cert", "key"];

/// Drop the fields strait never reads: `managedFields` (half of most
/// objects), kubectl's last-applied copy, and `status` except where an
/// analyzer reads it (a ServiceEntry's `status.addresses`); a Secret's
/// data but the keys of [`SECRET_KEYS`].
fn strip(value: &mut Value, kind: &KindSpec) {
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    obj.insert("apiVersion".into(), kind.api_version().into());
    obj.insert("kind".into(), kind.kind.into());
    if kind.kind != "ServiceEntry" {
        obj.remove("status");
    }
    if kind.kind == "Secret" {
        for field in ["data", "stringData"] {
            if let Some(d) = obj.get_mut(field).and_then(Value::as_object_mut) {
                d.retain(|k, _| SECRET_KEYS.contains(&k.as_str()));
            }
        }
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("ownerReferences");
        meta.remove("uid");
        // A cluster-scoped object (a Node) has no namespace: absent, not null.
        if meta.get("namespace").is_some_and(Value::is_null) {
            meta.remove("namespace");
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
}

#[cfg(test)]
mod tests;
