//! The loaded configuration: typed resources with their metadata and the place
//! in the source each came from. Produced by `load`, read by `validate`,
//! `analyze` and `compile`. No I/O here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use crate::model::{self, k8s};

/// The resource kinds strait understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    VirtualService,
    DestinationRule,
    ServiceEntry,
    WorkloadEntry,
    Gateway,
    Sidecar,
    Service,
    Pod,
    Namespace,
    Secret,
    Node,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    Deployment,
    /// `gateway.networking.k8s.io` Gateway (only its existence and listeners matter).
    KubernetesGateway,
    /// `security.istio.io` RequestAuthentication (only its selector matters).
    RequestAuthentication,
}

impl Kind {
    /// Kind from `apiVersion` group and `kind`; `None` for kinds strait skips.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        Some(match (group, kind) {
            ("networking.istio.io", "VirtualService") => Kind::VirtualService,
            ("networking.istio.io", "DestinationRule") => Kind::DestinationRule,
            ("networking.istio.io", "ServiceEntry") => Kind::ServiceEntry,
            ("networking.istio.io", "WorkloadEntry") => Kind::WorkloadEntry,
            ("networking.istio.io", "Gateway") => Kind::Gateway,
            ("networking.istio.io", "Sidecar") => Kind::Sidecar,
            ("security.istio.io", "RequestAuthentication") => Kind::RequestAuthentication,
            ("gateway.networking.k8s.io", "Gateway") => Kind::KubernetesGateway,
            ("", "Service") => Kind::Service,
            ("", "Pod") => Kind::Pod,
            ("", "Namespace") => Kind::Namespace,
            ("", "Secret") => Kind::Secret,
            ("", "Node") => Kind::Node,
            ("discovery.k8s.io", "EndpointSlice") => Kind::EndpointSlice,
            ("apps", "Deployment") => Kind::Deployment,
            _ => return None,
        })
    }

    /// [`Kind::from_type`], but telling a kind strait does not use (skipped)
    /// from one no API server would accept: a misspelt kind, or a version
    /// the group does not serve. kubectl refuses those ("no matches for
    /// kind"); strait refuses them too, with the likely fix.
    pub fn check_type(api_version: &str, kind: &str) -> Result<Option<Kind>, String> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        if let Some(k) = Kind::from_type(api_version, kind) {
            let served = k.served_versions();
            if !served.contains(&version) {
                return Err(format!(
                    "no matches for kind {kind:?} in version {api_version:?}: {} serves {}; use `apiVersion: {}`",
                    if group.is_empty() {
                        "the core API group"
                    } else {
                        group
                    },
                    if served.len() == 1 {
                        format!("only {}", served[0])
                    } else {
                        format!("versions {}", served.join(", "))
                    },
                    k.api_version(),
                ));
            }
            return Ok(Some(k));
        }
        let Some((_, kinds, complete)) = GROUP_KINDS.iter().find(|(g, _, _)| *g == group) else {
            return Ok(None);
        };
        if kinds.contains(&kind) {
            return Ok(None);
        }
        let lower = kind.to_ascii_lowercase();
        let near = kinds
            .iter()
            .map(|k| {
                (
                    strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()),
                    *k,
                )
            })
            .filter(|(d, k)| *d <= 2.max(k.len() / 5))
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| k);
        match near {
            Some(k) => Err(format!(
                "no matches for kind {kind:?} in version {api_version:?}; did you mean {k}?"
            )),
            // An Istio group's kinds are all known: anything else is a typo.
            None if *complete => Err(format!(
                "no matches for kind {kind:?} in version {api_version:?}; {} has {}",
                group,
                kinds.join(", ")
            )),
            None => Ok(None),
        }
    }

    /// Versions the API server serves for this kind (Istio's CRDs; Kubernetes).
    pub fn served_versions(self) -> &'static [&'static str] {
        match self {
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::ServiceEntry
            | Kind::WorkloadEntry
            | Kind::Gateway
            | Kind::Sidecar => &["v1", "v1beta1", "v1alpha3"],
            Kind::RequestAuthentication => &["v1", "v1beta1"],
            Kind::KubernetesGateway => &["v1", "v1beta1"],
            _ => &["v1"],
        }
    }

    /// The preferred `apiVersion` for this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::VirtualService
            | Kind::DestinationRule
            | Kind::ServiceEntry
            | Kind::WorkloadEntry
            | Kind::Gateway
            | Kind::Sidecar => "networking.istio.io/v1",
            Kind::RequestAuthentication => "security.istio.io/v1",
            Kind::KubernetesGateway => "gateway.networking.k8s.io/v1",
            Kind::Deployment => "apps/v1",
            _ => "v1",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::Gateway | Kind::KubernetesGateway => "Gateway",
            Kind::Sidecar => "Sidecar",
            Kind::Service => "Service",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::Secret => "Secret",
            Kind::Node => "Node",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Deployment => "Deployment",
            Kind::RequestAuthentication => "RequestAuthentication",
        }
    }

    /// Cluster-scoped kinds never take a default namespace.
    pub fn cluster_scoped(self) -> bool {
        matches!(self, Kind::Namespace | Kind::Node)
    }
}

/// Kinds of the API groups whose kinds strait reads: a kind near one of
/// these is a likely typo. `true`: the list is the whole group (Istio's), so
/// any other kind in it is refused.
const GROUP_KINDS: &[(&str, &[&str], bool)] = &[
    (
        "networking.istio.io",
        &[
            "VirtualService",
            "DestinationRule",
            "ServiceEntry",
            "WorkloadEntry",
            "WorkloadGroup",
            "Gateway",
            "Sidecar",
            "EnvoyFilter",
            "ProxyConfig",
        ],
        true,
    ),
    (
        "security.istio.io",
        &[
            "AuthorizationPolicy",
            "PeerAuthentication",
            "RequestAuthentication",
        ],
        true,
    ),
    (
        "",
        &[
            "Service",
            "Pod",
            "Namespace",
            "Secret",
            "Node",
            "ConfigMap",
            "ServiceAccount",
            "Endpoints",
            "Event",
            "LimitRange",
            "ResourceQuota",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "PodTemplate",
            "ReplicationController",
            "Binding",
            "ComponentStatus",
        ],
        false,
    ),
    (
        "apps",
        &[
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "ControllerRevision",
        ],
        false,
    ),
];

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Line of each field inside one YAML document, keyed by field path
/// (`spec.http[0].route[1].destination.host`). Lines are 1-based.
///
/// Loading leaves it [`LineIndex::deferred`]: the paths are built from the
/// file's text the first time a line is asked for (a message is printed),
/// not for every node of every file loaded.
#[derive(Clone, Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    deferred: Option<Deferred>,
}

#[derive(Clone, Debug)]
struct Deferred {
    file: Arc<FileLines>,
    /// Which document of the file.
    doc: usize,
    /// Where the resource sits in it (`items[2].` in a `kind: List`).
    prefix: String,
}

/// The line indexes of one file's documents, built on first use.
pub struct FileLines {
    build: Box<dyn Fn() -> Vec<LineIndex> + Send + Sync>,
    docs: std::sync::OnceLock<Vec<LineIndex>>,
}

impl FileLines {
    /// `build` returns every document's index, in document order.
    pub fn new(build: impl Fn() -> Vec<LineIndex> + Send + Sync + 'static) -> Self {
        FileLines {
            build: Box::new(build),
            docs: std::sync::OnceLock::new(),
        }
    }

    fn doc(&self, i: usize) -> Option<&LineIndex> {
        self.docs.get_or_init(|| (self.build)()).get(i)
    }
}

impl fmt::Debug for FileLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileLines")
            .field("built", &self.docs.get().is_some())
            .finish()
    }
}

impl LineIndex {
    /// Document `doc` of `file`, built when first asked.
    pub fn deferred(file: Arc<FileLines>, doc: usize) -> LineIndex {
        LineIndex {
            lines: HashMap::new(),
            deferred: Some(Deferred {
                file,
                doc,
                prefix: String::new(),
            }),
        }
    }

    /// Every line moved down by `by` (an index built from a file's tail).
    pub fn shifted(mut self, by: usize) -> LineIndex {
        for l in self.lines.values_mut() {
            *l += by;
        }
        self
    }

    pub fn insert(&mut self, path: String, line: usize) {
        self.lines.entry(path).or_insert(line);
    }

    /// Line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        if let Some(d) = &self.deferred {
            let index = d.file.doc(d.doc)?;
            let mut p = path;
            let mut full = String::with_capacity(d.prefix.len() + path.len());
            loop {
                full.clear();
                full.push_str(&d.prefix);
                full.push_str(p);
                if let Some(l) = index.lines.get(&full) {
                    return Some(*l);
                }
                let cut = p.rfind(['.', '['])?;
                p = &p[..cut];
            }
        }
        let mut p = path;
        loop {
            if let Some(l) = self.lines.get(p) {
                return Some(*l);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    /// The entries under `prefix` (e.g. `items[2].`), re-rooted.
    pub fn sub_index(&self, prefix: &str) -> LineIndex {
        if let Some(d) = &self.deferred {
            return LineIndex {
                lines: HashMap::new(),
                deferred: Some(Deferred {
                    file: d.file.clone(),
                    doc: d.doc,
                    prefix: format!("{}{prefix}", d.prefix),
                }),
            };
        }
        LineIndex {
            lines: self
                .lines
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), *v)))
                .collect(),
            deferred: None,
        }
    }

    /// Smallest line recorded (a document's first field).
    pub fn min_line(&self) -> Option<usize> {
        match &self.deferred {
            Some(d) => d
                .file
                .doc(d.doc)?
                .lines
                .iter()
                .filter(|(k, _)| k.starts_with(&d.prefix))
                .map(|(_, v)| *v)
                .min(),
            None => self.lines.values().min().copied(),
        }
    }

    pub fn len(&self) -> usize {
        match &self.deferred {
            Some(_) => self.count(),
            None => self.lines.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count(&self) -> usize {
        let Some(d) = &self.deferred else {
            return self.lines.len();
        };
        d.file.doc(d.doc).map_or(0, |i| {
            i.lines.keys().filter(|k| k.starts_with(&d.prefix)).count()
        })
    }
}

/// Where a resource came from.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    /// Path as the user gave it (`-` for stdin); empty for built-in resources.
    pub file: Arc<str>,
    /// First line of the YAML document (1-based).
    pub line: usize,
    pub lines: Arc<LineIndex>,
}

impl Origin {
    /// Line of a field path, falling back to the document's first line.
    pub fn line_of(&self, path: &str) -> usize {
        self.lines.line_of(path).unwrap_or(self.line)
    }

    /// Where `/config_dump` says the resource came from: `file:line`, or
    /// `kubernetes` for an object read from the cluster (the Kubernetes
    /// source loads objects with no file and line 0; files start at 1).
    pub fn source(&self) -> Option<String> {
        self.reference(None)
            .or_else(|| (self.line == 0).then(|| "kubernetes".to_string()))
    }

    /// `file:line` for a field path, as istioctl prints it; `None` when the
    /// resource did not come from a file.
    pub fn reference(&self, path: Option<&str>) -> Option<String> {
        if self.file.is_empty() {
            return None;
        }
        let line = path.map_or(self.line, |p| self.line_of(p));
        Some(format!("{}:{}", self.file, line))
    }
}

/// Kubernetes object metadata (the part strait uses).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub generation: Option<i64>,
    #[serde(default)]
    pub resource_version: Option<String>,
}

/// One typed resource.
#[derive(Clone, Debug)]
pub struct Resource<T> {
    pub kind: Kind,
    pub api_version: String,
    pub meta: Meta,
    pub spec: T,
    /// `status`, kept raw (the ServiceEntry analyzer reads `status.addresses`).
    pub status: Option<serde_json::Value>,
    pub origin: Origin,
    /// Position in load order; Istio orders same-age resources by name, then
    /// namespace, but load order breaks the remaining ties deterministically.
    pub seq: usize,
}

impl<T> Resource<T> {
    /// `namespace/name`, or `name` when the resource has no namespace (Istio's
    /// `FriendlyName` without the kind).
    pub fn key(&self) -> String {
        if self.meta.namespace.is_empty() {
            self.meta.name.clone()
        } else {
            format!("{}/{}", self.meta.namespace, self.meta.name)
        }
    }

    /// `Kind namespace/name`, as istioctl prints it.
    pub fn friendly_name(&self) -> String {
        format!("{} {}", self.kind, self.key())
    }

    pub fn namespace(&self) -> &str {
        &self.meta.namespace
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn reference(&self) -> ResourceRef {
        ResourceRef {
            kind: self.kind,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// A resource identity plus its origin, detached from the spec type.
#[derive(Clone, Debug)]
pub struct ResourceRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub origin: Origin,
}

impl ResourceRef {
    pub fn friendly_name(&self) -> String {
        if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A problem found while turning a YAML document into a typed resource: a
/// field of the wrong type, an unknown field, a field in the wrong kind.
/// The resource is still loaded (without the offending field) so that
/// analysis can go on; `check` reports these as IST0106.
#[derive(Clone, Debug)]
pub struct SchemaProblem {
    pub resource: ResourceRef,
    /// Field path, e.g. `spec.http[0].match[0].sourcelabels`.
    pub path: String,
    pub message: String,
}

/// A file or document that could not be read at all (exit code 65).
#[derive(Clone, Debug)]
pub struct LoadError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Calls `$apply!(list, ...)` with every resource list of [`ConfigSet`]: the
/// one place that names them all, so code that must touch each kind (merge,
/// dedup, load order, shrink) cannot miss one added later.
macro_rules! resource_lists {
    ($apply:ident) => {
        $apply!(
            virtual_services,
            destination_rules,
            service_entries,
            workload_entries,
            gateways,
            sidecars,
            services,
            pods,
            namespaces,
            secrets,
            nodes,
            endpoint_slices,
            kubernetes_gateways,
            request_authentications
        )
    };
}
pub(crate) use resource_lists;

/// Everything loaded, in load order within each kind.
#[derive(Clone, Debug, Default)]
pub struct ConfigSet {
    pub virtual_services: Vec<Resource<model::VirtualService>>,
    pub destination_rules: Vec<Resource<model::DestinationRule>>,
    pub service_entries: Vec<Resource<model::ServiceEntry>>,
    pub workload_entries: Vec<Resource<model::WorkloadEntry>>,
    pub gateways: Vec<Resource<model::Gateway>>,
    pub sidecars: Vec<Resource<model::Sidecar>>,
    pub services: Vec<Resource<k8s::ServiceSpec>>,
    /// Pods, plus one pod per Deployment (its template's labels).
    pub pods: Vec<Resource<k8s::PodSpec>>,
    pub namespaces: Vec<Resource<k8s::NamespaceSpec>>,
    pub secrets: Vec<Resource<k8s::SecretSpec>>,
    pub nodes: Vec<Resource<k8s::NodeSpec>>,
    pub endpoint_slices: Vec<Resource<k8s::EndpointSliceSpec>>,
    pub kubernetes_gateways: Vec<Resource<k8s::KubernetesGatewaySpec>>,
    pub request_authentications: Vec<Resource<k8s::RequestAuthenticationSpec>>,
    pub problems: Vec<SchemaProblem>,
    pub load_errors: Vec<LoadError>,
    /// Files read, in order (for the "No validation issues found" line).
    pub files: Vec<String>,
    /// Documents of kinds strait does not use, by `apiVersion` `kind`, with
    /// how many (for `run`'s summary of what it loaded and ignored).
    pub skipped: BTreeMap<String, usize>,
    /// Resources a later one with the same kind, namespace and name replaced
    /// (see [`ConfigSet::replace_duplicates`]).
    pub replaced: Vec<Replaced>,
}

/// A resource dropped because a later one has the same kind, namespace and
/// name: `kubectl apply -f a.yaml -f b.yaml` leaves b's, and Istio's file
/// store for `istioctl analyze` (`pilot/pkg/config/file/store.go`,
/// `KubeSource.ApplyContent`: Update, else Create, keyed by kind and
/// namespace/name) keeps the last one it read too.
#[derive(Clone, Debug)]
pub struct Replaced {
    /// The dropped resource (its origin is where it was).
    pub resource: ResourceRef,
    /// Where the one that replaced it is.
    pub by: Origin,
}

impl fmt::Display for Replaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |o: &Origin| {
            o.reference(None)
                .unwrap_or_else(|| "built-in configuration".into())
        };
        write!(
            f,
            "{} is defined twice: the one in {} replaces the one in {} (a later resource with the same kind, namespace and name replaces the earlier, as with kubectl apply); rename one of them to keep both",
            self.resource.friendly_name(),
            at(&self.by),
            at(&self.resource.origin),
        )
    }
}

impl ConfigSet {
    /// Append another set, keeping load order.
    pub fn extend(&mut self, other: ConfigSet) {
        macro_rules! append_lists {
            ($($f:ident),*) => { $( append(&mut self.$f, other.$f); )* };
        }
        resource_lists!(append_lists);
        append(&mut self.problems, other.problems);
        append(&mut self.load_errors, other.load_errors);
        append(&mut self.files, other.files);
        append(&mut self.replaced, other.replaced);
        for (k, n) in other.skipped {
            *self.skipped.entry(k).or_default() += n;
        }
    }

    /// Leave out the resources these references name (a resource rejected
    /// alone, the rest served).
    pub fn remove(&mut self, refs: &[ResourceRef]) {
        macro_rules! retain {
            ($($f:ident),*) => { $(
                self.$f.retain(|r| !refs.iter().any(|x| {
                    x.kind == r.kind && x.name == r.meta.name && x.namespace == r.meta.namespace
                }));
            )* };
        }
        resource_lists!(retain);
    }

    /// Keep only the last of resources with the same kind, API group,
    /// namespace and name (load order), recording the others in `replaced`
    /// and dropping their schema problems: they are not part of the
    /// configuration. Unnamed resources are all kept (kubectl refuses them;
    /// their schema problems say so).
    pub fn replace_duplicates(&mut self) {
        macro_rules! dedup {
            ($($f:ident),*) => { $( dedup_list(&mut self.$f, &mut self.replaced); )* };
        }
        resource_lists!(dedup);
        if self.replaced.is_empty() {
            return;
        }
        let gone = |r: &ResourceRef| {
            self.replaced.iter().any(|d| {
                d.resource.kind == r.kind
                    && d.resource.namespace == r.namespace
                    && d.resource.name == r.name
                    && d.resource.origin.file == r.origin.file
                    && d.resource.origin.line == r.origin.line
            })
        };
        self.problems.retain(|p| !gone(&p.resource));
    }

    /// Give back the spare capacity the lists grew while loading.
    pub fn shrink_to_fit(&mut self) {
        macro_rules! shrink {
            ($($f:ident),*) => { $( self.$f.shrink_to_fit(); )* };
        }
        resource_lists!(shrink);
    }
}

/// The dedup of [`ConfigSet::replace_duplicates`] for one list.
fn dedup_list<T>(list: &mut Vec<Resource<T>>, replaced: &mut Vec<Replaced>) {
    if list.len() < 2 {
        return;
    }
    fn group<T>(r: &Resource<T>) -> &str {
        r.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
    // Index of the last resource of each identity.
    let mut last: HashMap<(Kind, &str, &str, &str), usize> = HashMap::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        if !r.meta.name.is_empty() {
            last.insert((r.kind, group(r), &r.meta.namespace, &r.meta.name), i);
        }
    }
    if last.len() == list.iter().filter(|r| !r.meta.name.is_empty()).count() {
        return;
    }
    let keep: Vec<Option<usize>> = list
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let l = *last.get(&(r.kind, group(r), &r.meta.namespace, &r.meta.name))?;
            (l != i).then_some(l)
        })
        .collect();
    for (i, by) in keep.iter().enumerate() {
        if let Some(by) = by {
            replaced.push(Replaced {
                resource: list[i].reference(),
                by: list[*by].origin.clone(),
            });
        }
    }
    let mut i = 0;
    list.retain(|_| {
        i += 1;
        keep[i - 1].is_none()
    });
}

/// `a.extend(b)`, taking `b` whole when `a` is empty (no copy of a large list).
fn append<T>(a: &mut Vec<T>, b: Vec<T>) {
    if a.is_empty() {
        *a = b;
    } else {
        a.extend(b);
    }
}
