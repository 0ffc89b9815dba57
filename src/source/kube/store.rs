//! What the watchers have seen, converted on arrival (sans-IO): one
//! [`Stream`] per watch (a kind, in one namespace or all), each object
//! decoded by the same loader as a file's document into a compact typed
//! set (no `managedFields`, no full Kubernetes object kept), with the
//! watch's sync state for readiness and the admin API.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::Value;

use super::kinds::KindSpec;
use crate::config::ConfigSet;
use crate::load::{LoadOptions, Loader};

/// `(namespace, name)`.
type Key = (String, String);

/// One watch's objects and state.
#[derive(Debug)]
pub struct Stream {
    pub kind: &'static KindSpec,
    /// `None`: every namespace (or a cluster-scoped kind).
    pub namespace: Option<String>,
    objects: BTreeMap<Key, ConfigSet>,
    /// Filled during a (re)list; swapped in whole when it ends, so objects
    /// deleted while the watch was away disappear.
    relisting: Option<BTreeMap<Key, ConfigSet>>,
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

/// Every stream, behind one lock (taken per event and per rebuild, never
/// on the request path).
#[derive(Debug, Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    streams: Vec<Stream>,
    /// When the last change was applied to the store.
    last_change: Option<SystemTime>,
    /// Bumped when a Service, Istio resource or anything but endpoints changes.
    config_generation: u64,
    /// Bumped when an EndpointSlice, Pod or Node changes.
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
    pub fn new(streams: impl IntoIterator<Item = (&'static KindSpec, Option<String>)>) -> Store {
        let streams = streams
            .into_iter()
            .map(|(kind, namespace)| Stream {
                kind,
                namespace,
                objects: BTreeMap::new(),
                relisting: None,
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

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// A (re)list begins.
    pub fn init(&self, stream: usize) {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.relisting = Some(BTreeMap::new());
        });
    }

    /// One object of a list.
    pub fn init_apply(&self, stream: usize, value: Value) {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.events += 1;
            if let Some((key, set)) = s.convert(value) {
                s.relisting
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key, set);
            }
        });
    }

    /// The list is complete: it replaces what was there.
    pub fn init_done(&self, stream: usize) {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.objects = s.relisting.take().unwrap_or_default();
            s.relists += 1;
            s.rejected.retain(|k, _| !s.objects.contains_key(k));
            s.synced = true;
            s.not_installed = false;
            let endpoints = s.kind.endpoints_only;
            i.changed(endpoints);
        });
    }

    /// An object added or modified.
    pub fn apply(&self, stream: usize, value: Value) {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.events += 1;
            let key = key_of(&value);
            match s.convert(value) {
                Some((key, set)) => {
                    s.objects.insert(key, set);
                }
                None => {
                    s.objects.remove(&key);
                }
            }
            let endpoints = s.kind.endpoints_only;
            i.changed(endpoints);
        });
    }

    /// An object deleted.
    pub fn delete(&self, stream: usize, value: &Value) {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.events += 1;
            let key = key_of(value);
            s.objects.remove(&key);
            s.rejected.remove(&key);
            let endpoints = s.kind.endpoints_only;
            i.changed(endpoints);
        });
    }

    /// A watch or list error. `not_found`: the kind is not served (an Istio
    /// CRD not installed), which counts as an empty, synced kind. True when
    /// that changed what is served.
    pub fn error(&self, stream: usize, message: String, not_found: bool) -> bool {
        self.with(|i| {
            let s = &mut i.streams[stream];
            s.errors += 1;
            s.last_error = Some(message);
            if not_found && s.kind.optional && !s.not_installed {
                s.not_installed = true;
                s.synced = true;
                s.relisting = None;
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

    /// Everything the watches hold, as one loaded set.
    pub fn config(&self) -> ConfigSet {
        let mut out = ConfigSet::default();
        self.with(|i| {
            for s in &i.streams {
                for set in s.objects.values() {
                    out.extend(set.clone());
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
                        "objects": s.objects.len(),
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

impl Inner {
    fn changed(&mut self, endpoints_only: bool) {
        self.last_change = Some(SystemTime::now());
        if endpoints_only {
            self.endpoint_generation += 1;
        } else {
            self.config_generation += 1;
        }
    }
}

impl Stream {
    /// Strip what strait never reads and decode. `None` when it cannot be
    /// loaded (recorded in `rejected`, logged) or is ignored.
    fn convert(&mut self, mut value: Value) -> Option<(Key, ConfigSet)> {
        if let Some(rv) = value["metadata"]["resourceVersion"].as_str() {
            self.resource_version = rv.to_string();
        }
        strip(&mut value, self.kind);
        let key = key_of(&value);
        let label = if key.0.is_empty() {
            format!("{} {}", self.kind.kind, key.1)
        } else {
            format!("{} {}/{}", self.kind.kind, key.0, key.1)
        };
        let set = decode(value, &label);
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
        Some((key, set))
    }
}

/// Drop the fields strait never reads: `managedFields` (half of most
/// objects), kubectl's last-applied copy, and `status` except where an
/// analyzer reads it (a ServiceEntry's `status.addresses`).
fn strip(value: &mut Value, kind: &KindSpec) {
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    obj.insert("apiVersion".into(), kind.api_version().into());
    obj.insert("kind".into(), kind.kind.into());
    if kind.kind != "ServiceEntry" {
        obj.remove("status");
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        meta.remove("ownerReferences");
        meta.remove("uid");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::kinds::KINDS;
    use super::*;
    use serde_json::json;

    fn kind(name: &str) -> &'static KindSpec {
        KINDS.iter().find(|k| k.kind == name).unwrap()
    }

    fn vs(name: &str, host: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl"}]},
               "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host}}]}]}})
    }

    #[test]
    fn a_relist_replaces_the_objects_so_deleted_ones_disappear() {
        let store = Store::new([(kind("VirtualService"), None)]);
        store.init(0);
        store.init_apply(0, vs("a", "a.example.com"));
        store.init_apply(0, vs("b", "b.example.com"));
        assert!(!store.synced());
        store.init_done(0);
        assert!(store.synced());
        assert_eq!(store.config().virtual_services.len(), 2);
        // b was deleted while the watch was away (410): the relist lacks it.
        store.init(0);
        store.init_apply(0, vs("a", "a.example.com"));
        assert_eq!(
            store.config().virtual_services.len(),
            2,
            "until the list ends"
        );
        store.init_done(0);
        let c = store.config();
        assert_eq!(c.virtual_services.len(), 1);
        assert_eq!(c.virtual_services[0].meta.name, "a");
        // No file: messages name the resource as istioctl does for a cluster.
        assert!(c.virtual_services[0].origin.reference(None).is_none());
    }

    #[test]
    fn endpoint_kinds_bump_only_the_endpoint_generation() {
        let store = Store::new([
            (kind("VirtualService"), None),
            (kind("EndpointSlice"), None),
        ]);
        let g0 = store.generations();
        store.apply(
            1,
            json!({"metadata": {"name": "s-1", "namespace": "default",
                    "labels": {"kubernetes.io/service-name": "s"}},
                   "addressType": "IPv4", "endpoints": [], "ports": []}),
        );
        let g1 = store.generations();
        assert_eq!(g1.config, g0.config);
        assert_ne!(g1.endpoints, g0.endpoints);
        store.apply(0, vs("a", "a.example.com"));
        assert_ne!(store.generations().config, g1.config);
    }

    #[test]
    fn a_missing_crd_counts_as_synced_and_empty_but_a_core_kind_does_not() {
        let store = Store::new([(kind("Sidecar"), None), (kind("Service"), None)]);
        assert!(store.error(0, "404".into(), true));
        assert!(!store.error(1, "404".into(), true));
        assert!(!store.synced());
        store.init(1);
        store.init_done(1);
        assert!(store.synced());
        assert_eq!(store.state()["watches"][0]["notInstalled"], true);
    }

    #[test]
    fn managed_fields_and_status_are_dropped_on_arrival() {
        let mut v = vs("a", "a.example.com");
        v["status"] = json!({"conditions": []});
        v["metadata"]["annotations"] =
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{}", "keep": "1"});
        strip(&mut v, kind("VirtualService"));
        assert!(v["metadata"].get("managedFields").is_none());
        assert!(v.get("status").is_none());
        assert_eq!(v["metadata"]["annotations"], json!({"keep": "1"}));
        assert_eq!(v["apiVersion"], "networking.istio.io/v1");
    }
}
