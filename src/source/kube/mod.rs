//! The Kubernetes API source, beside `source::file`: kube-rs watchers
//! (list, then watch with bookmarks; a 410 relists; errors back off and
//! retry forever) for the Istio kinds, Services, EndpointSlices, Pods and
//! Nodes as metadata only, and for a gateway its own namespace's Secrets. Each object is converted on arrival by the
//! files' own loader ([`store`]); `load` hands the pipeline what is held,
//! with `--config` files layered over it.

pub mod kinds;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::mpsc;

use self::kinds::{KINDS, KindSpec};
use self::store::{Object, Store};
use super::file::FileSource;
use super::{Changes, EndpointUpdate, Source, Watch};
use crate::config::{ConfigSet, Meta};
use crate::kubernetes::RegistryService;
use crate::load::LoadOptions;
use crate::model::k8s::EndpointSliceSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How to reach the API server, as kubectl finds it.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// A kubeconfig file (else `KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig (else its current context).
    pub context: Option<String>,
}

/// A client for the cluster `connect` names, and the server's URL.
pub async fn client(connect: &Connect) -> Result<(kube::Client, String), String> {
    let options = kube::config::KubeConfigOptions {
        context: connect.context.clone(),
        ..Default::default()
    };
    let config = match &connect.kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None if connect.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| format!("kubeconfig: {e}"))?,
        None => kube::Config::infer().await.map_err(|e| {
            format!("no Kubernetes configuration found (KUBECONFIG, ~/.kube/config or in-cluster service account): {e}")
        })?,
    };
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| format!("cannot create the Kubernetes client: {e}"))?;
    Ok((client, server))
}

/// The cluster's resources, watched; `--config` files layered over them.
pub struct KubeSource {
    client: kube::Client,
    streams: Vec<(&'static KindSpec, Option<String>)>,
    store: Arc<Store>,
    files: FileSource,
    /// The Services, slices, Pods and Nodes of the layered files' last
    /// load, applied over the cluster's when the registry is built.
    file_objects: std::sync::Mutex<Option<ConfigSet>>,
    server: String,
}

impl KubeSource {
    /// Watch every kind, in `namespaces` only when given (namespaced kinds;
    /// Nodes are cluster-scoped).
    pub fn new(
        client: kube::Client,
        server: String,
        namespaces: &[String],
        files: FileSource,
    ) -> KubeSource {
        Self::with_secrets(client, server, namespaces, None, files)
    }

    /// As [`KubeSource::new`], for a gateway: Secrets (`credentialName`)
    /// are watched too, in `secrets_namespace` only (the gateway's own).
    pub fn with_secrets(
        client: kube::Client,
        server: String,
        namespaces: &[String],
        secrets_namespace: Option<&str>,
        files: FileSource,
    ) -> KubeSource {
        let mut streams: Vec<(&'static KindSpec, Option<String>)> = Vec::new();
        for k in KINDS {
            if k.own_namespace {
                if let Some(ns) = secrets_namespace {
                    streams.push((k, Some(ns.to_string())));
                }
            } else if k.namespaced && !namespaces.is_empty() {
                for ns in namespaces {
                    streams.push((k, Some(ns.clone())));
                }
            } else {
                streams.push((k, None));
            }
        }
        KubeSource {
            client,
            store: Arc::new(Store::new(streams.clone())),
            streams,
            files,
            file_objects: std::sync::Mutex::new(None),
            server,
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// List every kind once (`check --use-kube`), then stop watching. On
    /// timeout, the kinds that did not list.
    pub async fn sync(&self, timeout: std::time::Duration) -> Result<(), String> {
        // Analysis reads Pods and Nodes as loaded resources (annotations too).
        self.store.keep_all();
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let tasks = self.start(tx);
        let _stop = Guard {
            tasks,
            _files: None,
        };
        // The first signal comes once every kind has listed.
        match tokio::time::timeout(timeout, rx.recv()).await {
            Ok(Some(())) => Ok(()),
            _ => {
                let state = self.store.state();
                let pending: Vec<String> = state["watches"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|w| w["synced"] != true)
                    .map(|w| {
                        format!(
                            "{}: {}",
                            w["kind"].as_str().unwrap_or(""),
                            w["lastError"].as_str().unwrap_or("no answer")
                        )
                    })
                    .collect();
                Err(pending.join("; "))
            }
        }
    }

    /// Start the watchers (they run until the guard is dropped): `changes`
    /// is signalled once every kind has synced, then on every change.
    fn start(&self, changes: Changes) -> Vec<tokio::task::JoinHandle<()>> {
        self.streams
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, (kind, ns))| {
                let ar = ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk(kind.group, kind.version, kind.kind),
                    kind.plural,
                );
                let w = Watcher {
                    stream: i,
                    kind,
                    store: self.store.clone(),
                    changes: changes.clone(),
                };
                let client = self.client.clone();
                let keep_all = self.store.keeps_all();
                if kind.metadata_only {
                    let api: Api<PartialObjectMeta<DynamicObject>> = match &ns {
                        Some(ns) => Api::namespaced_with(client, ns, &ar),
                        None => Api::all_with(client, &ar),
                    };
                    let to: fn(PartialObjectMeta<DynamicObject>) -> Object = if keep_all {
                        metadata_value
                    } else {
                        metadata_object
                    };
                    tokio::spawn(w.run(api, to))
                } else {
                    let api: Api<DynamicObject> = match &ns {
                        Some(ns) => Api::namespaced_with(client, ns, &ar),
                        None => Api::all_with(client, &ar),
                    };
                    let to: fn(DynamicObject) -> Object =
                        if kind.kind == "EndpointSlice" && !keep_all {
                            slice_object
                        } else {
                            object_value
                        };
                    tokio::spawn(w.run(api, to))
                }
            })
            .collect()
    }
}

/// A full object as JSON.
fn object_value(o: DynamicObject) -> Object {
    Object::Value(serde_json::to_value(o).unwrap_or_default())
}

/// The parts of a watched object's metadata strait keeps.
fn meta(m: ObjectMeta) -> Meta {
    Meta {
        name: m.name.unwrap_or_default(),
        namespace: m.namespace.unwrap_or_default(),
        labels: m.labels.unwrap_or_default(),
        resource_version: m.resource_version,
        ..Meta::default()
    }
}

/// An EndpointSlice, typed straight from the object (no JSON round trip);
/// one that does not decode goes through the loader, which says why.
fn slice_object(o: DynamicObject) -> Object {
    use serde::Deserialize as _;
    match EndpointSliceSpec::deserialize(&o.data) {
        Ok(spec) => Object::Slice(meta(o.metadata), spec),
        Err(_) => object_value(o),
    }
}

/// Metadata only: name, namespace, labels (all a Pod or Node gives strait).
fn metadata_object(o: PartialObjectMeta<DynamicObject>) -> Object {
    Object::Meta(meta(o.metadata))
}

/// Metadata only, as JSON for the loader (keeping every object loaded).
fn metadata_value(o: PartialObjectMeta<DynamicObject>) -> Object {
    let m = o.metadata;
    // Absent fields stay absent: a `null` map is not metadata the loader
    // reads (a Pod without annotations would be rejected).
    let mut meta = serde_json::Map::new();
    let fields = [
        ("name", m.name.map(Value::from)),
        ("namespace", m.namespace.map(Value::from)),
        ("resourceVersion", m.resource_version.map(Value::from)),
        ("labels", m.labels.map(|l| serde_json::json!(l))),
        ("annotations", m.annotations.map(|a| serde_json::json!(a))),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            meta.insert(k.into(), v);
        }
    }
    Object::Value(serde_json::json!({ "metadata": meta }))
}

/// The first retry's delay after a watch error (client-go's reflector's).
const BACKOFF_MIN: Duration = Duration::from_millis(800);
/// The longest delay between retries, jitter included. client-go's
/// reflector (and kube-rs's `default_backoff`) doubles up to 30 s and
/// kube-rs's jitter adds up to as much again, so a proxy could serve a
/// stale configuration for up to a minute after the API server is back;
/// strait caps it at 5 s.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Quiet time (no error) after which the delays start again from
/// [`BACKOFF_MIN`] (kube-rs's default).
const BACKOFF_RESET: Duration = Duration::from_secs(120);

/// A watch's retry delays: [`BACKOFF_MIN`] doubling, each jittered up
/// (the doubled delay is the upper bound, half of it the lower), capped
/// at [`BACKOFF_MAX`]; never ends.
fn backoff() -> impl Backoff {
    ResetTimerBackoff::new(Capped::default(), BACKOFF_RESET)
}

/// [`backoff`] without the reset timer.
#[derive(Debug, Default)]
struct Capped {
    /// The upper bound of the next delay (zero: not started).
    ceiling: Duration,
}

impl Iterator for Capped {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.ceiling = if self.ceiling.is_zero() {
            BACKOFF_MIN * 2
        } else {
            (self.ceiling * 2).min(BACKOFF_MAX)
        };
        // Uniform in [ceiling / 2, ceiling).
        let half = self.ceiling / 2;
        Some(half + half.mul_f64(rand::random::<f64>()))
    }
}

impl Backoff for Capped {
    fn reset(&mut self) {
        self.ceiling = Duration::ZERO;
    }
}

/// One watch's loop.
struct Watcher {
    stream: usize,
    kind: &'static KindSpec,
    store: Arc<Store>,
    changes: Changes,
}

impl Watcher {
    async fn run<K>(self, api: Api<K>, to_object: fn(K) -> Object)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        // Lists from the API server's watch cache (`resourceVersion=0`), as
        // a fleet of proxies should; back off on errors ([`backoff`]) and
        // retry forever.
        let config = watcher::Config::default().any_semantic();
        let events = watcher::watcher(api, config).backoff(backoff());
        let mut events = std::pin::pin!(events);
        let s = self.stream;
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Init) => self.store.init(s),
                Ok(Event::InitApply(o)) => self.store.init_apply(s, to_object(o)),
                Ok(Event::InitDone) => {
                    self.store.init_done(s);
                    tracing::debug!(target: "strait::kubernetes", kind = self.kind.kind, "listed");
                    self.signal();
                }
                Ok(Event::Apply(o)) => {
                    if self.store.apply(s, to_object(o)) {
                        tracing::debug!(target: "strait::kubernetes", kind = self.kind.kind, "applied a change");
                        self.signal();
                    }
                }
                Ok(Event::Delete(o)) => {
                    if self.store.delete(s, &to_object(o)) {
                        tracing::debug!(target: "strait::kubernetes", kind = self.kind.kind, "applied a deletion");
                        self.signal();
                    }
                }
                Err(e) => {
                    let not_found = is_not_found(&e) && self.kind.optional;
                    if !not_found {
                        tracing::warn!(target: "strait::kubernetes", kind = self.kind.kind, error = %e, "watch error; retrying with backoff, the last configuration keeps serving");
                    }
                    if self.store.error(s, e.to_string(), not_found) {
                        // Said once, when it is found missing (the watch
                        // keeps asking, quietly).
                        tracing::warn!(target: "strait::kubernetes", kind = self.kind.kind, "{} ({}) is not installed in the cluster (the API server answers 404): read as empty until it is installed", self.kind.kind, self.kind.api_version());
                        self.signal();
                    }
                }
            }
        }
    }

    /// Nothing is rebuilt before every kind has synced once.
    fn signal(&self) {
        if self.store.synced() {
            let _ = self.changes.try_send(());
        }
    }
}

fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

impl KubeSource {
    /// The layered files' Kubernetes objects, if they have any.
    fn file_objects(&self) -> Option<ConfigSet> {
        self.file_objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Source for KubeSource {
    fn load(&self, opts: &LoadOptions) -> ConfigSet {
        let mut config = self.store.config();
        if !self.files.paths.is_empty() {
            // Local files over the cluster: the later replaces the earlier.
            let files = self.files.load(opts);
            let core = ConfigSet {
                services: files.services.clone(),
                endpoint_slices: files.endpoint_slices.clone(),
                pods: files.pods.clone(),
                nodes: files.nodes.clone(),
                ..ConfigSet::default()
            };
            let any = !(core.services.is_empty()
                && core.endpoint_slices.is_empty()
                && core.pods.is_empty()
                && core.nodes.is_empty());
            *self.file_objects.lock().unwrap_or_else(|p| p.into_inner()) = any.then_some(core);
            config.extend(files);
            config.replace_duplicates();
        }
        config
    }

    fn ready(&self) -> bool {
        self.store.synced()
    }

    fn registry(&self, domain: &str) -> Option<(Vec<RegistryService>, u64)> {
        let (registry, generation) = self.store.registry(domain);
        match self.file_objects() {
            None => Some((registry, generation)),
            Some(files) => {
                let mut index = self.store.index();
                index.apply_config(&files);
                Some((index.registry(domain), generation))
            }
        }
    }

    fn endpoint_update(&self, since: u64, domain: &str) -> Option<(EndpointUpdate, u64)> {
        if self.file_objects().is_some() {
            // Rare (local files with Services or Pods): rebuild them all.
            let (registry, generation) = self.registry(domain)?;
            return Some((EndpointUpdate::All(registry), generation));
        }
        Some(self.store.endpoint_update(since, domain))
    }

    fn for_analysis(&self, config: &ConfigSet) -> Option<ConfigSet> {
        if self.store.keeps_all() {
            return None;
        }
        let mut out = config.clone();
        let (pods, nodes) = self.store.pods_and_nodes();
        // The cluster's first, so that layered files replace them.
        let services = std::mem::replace(&mut out.services, self.store.services());
        out.services.extend(services);
        let files = std::mem::replace(&mut out.pods, pods);
        out.pods.extend(files);
        let files = std::mem::replace(&mut out.nodes, nodes);
        out.nodes.extend(files);
        out.replace_duplicates();
        Some(out)
    }

    fn watch(&self, changes: Changes) -> Result<Watch, String> {
        let mut tasks = self.start(changes.clone());
        let files = if self.files.paths.is_empty() {
            None
        } else {
            // File changes count once the cluster has synced.
            let (tx, mut rx) = mpsc::channel::<()>(1);
            let w = self.files.watch(tx)?;
            let store = self.store.clone();
            tasks.push(tokio::spawn(async move {
                while rx.recv().await.is_some() {
                    // A file may hold anything: a full rebuild.
                    store.touch();
                    if store.synced() {
                        let _ = changes.try_send(());
                    }
                }
            }));
            Some(w)
        };
        Ok(Watch::new(Guard {
            tasks,
            _files: files,
        }))
    }

    fn describe(&self) -> Vec<String> {
        let mut out = vec![format!("kubernetes {}", self.server)];
        out.extend(self.files.describe());
        out
    }

    fn state(&self) -> Option<Value> {
        Some(self.store.state())
    }

    fn rejected(&self) -> Vec<String> {
        self.store.rejected()
    }

    fn generations(&self) -> Option<(u64, u64)> {
        let g = self.store.generations();
        Some((g.config, g.endpoints))
    }
}

/// Stops the watchers when dropped.
struct Guard {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _files: Option<Watch>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retry delays start at client-go's 0.8 s, never end, and never
    /// exceed 5 s however long the API server stays away; a reset starts
    /// them over.
    #[test]
    fn watch_retries_back_off_from_0_8_s_capped_at_5_s() {
        let mut b = Capped::default();
        let first = b.next().unwrap();
        assert!(first >= BACKOFF_MIN && first < BACKOFF_MIN * 2, "{first:?}");
        let delays: Vec<Duration> = b.by_ref().take(1000).collect();
        assert_eq!(delays.len(), 1000);
        assert!(delays.iter().all(|d| *d <= BACKOFF_MAX), "{delays:?}");
        assert!(
            delays[10..].iter().all(|d| *d >= BACKOFF_MAX / 2),
            "{delays:?}"
        );
        // Jittered: a fleet does not retry in step.
        assert!(delays[10..].windows(2).any(|w| w[0] != w[1]));
        b.reset();
        assert!(b.next().unwrap() < BACKOFF_MIN * 2);
        assert_eq!(BACKOFF_MAX, Duration::from_secs(5));
    }

    /// `check --use-kube` and `explain --use-kube` keep Pods and Nodes
    /// loaded: one without annotations (or labels) is still a Pod.
    #[test]
    fn metadata_without_annotations_loads() {
        let store = Store::new([(KINDS.iter().find(|k| k.kind == "Pod").unwrap(), None)]);
        store.keep_all();
        let pod = PartialObjectMeta::<DynamicObject> {
            types: None,
            metadata: ObjectMeta {
                name: Some("reviews-v1".into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), "reviews".to_string())].into()),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        };
        store.init(0);
        store.init_apply(0, metadata_value(pod));
        store.init_done(0);
        assert!(store.rejected().is_empty(), "{:?}", store.rejected());
        let pods = store.config().pods;
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].meta.labels["app"], "reviews");
    }
}
