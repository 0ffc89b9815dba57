//! YAML text → [`ConfigSet`]: dispatch on `apiVersion`/`kind`, `kind: List`,
//! the default namespace, large files parsed in two halves. Sources
//! (`crate::source`) read the text and hand it over; the one I/O left here
//! is reading a file back, lazily, when a message first needs a field's line.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use xxhash_rust::xxh64::xxh64;

use super::decode::decode;
use super::yaml::{
    Document, InputLimits, line_indexes, parse_each_without_lines, parse_head, parse_tail,
    split_point,
};
use crate::config::{
    ConfigSet, FileLines, Kind, LineIndex, LoadError, Meta, Origin, Resource, SchemaProblem,
};
use crate::model::k8s;

/// How to load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Namespace for resources without `metadata.namespace`; `None` keeps it
    /// empty (what Istio's analyzer test harness does).
    pub namespace: Option<String>,
    pub limits: InputLimits,
}

/// Load YAML text; `file` names it in messages.
pub fn load_str(text: &str, file: &str, opts: &LoadOptions) -> ConfigSet {
    let mut loader = Loader::new(opts);
    loader.text(text, file, None);
    loader.finish()
}

/// Turns texts into one [`ConfigSet`], in load order.
pub struct Loader<'a> {
    opts: &'a LoadOptions,
    set: ConfigSet,
    seq: usize,
    /// Files at least this large are parsed in two halves at once.
    split_min: usize,
}

/// Below this, a second thread costs more than half a parse saves.
const SPLIT_MIN_BYTES: usize = 256 * 1024;

/// Move a part's load order after the parts before it.
fn shift_seq(set: &mut ConfigSet, by: usize) {
    macro_rules! shift {
        ($($f:ident),*) => { $( for r in &mut set.$f { r.seq += by; } )* };
    }
    crate::config::resource_lists!(shift);
}

impl<'a> Loader<'a> {
    pub fn new(opts: &'a LoadOptions) -> Self {
        Loader {
            opts,
            set: ConfigSet::default(),
            seq: 0,
            split_min: SPLIT_MIN_BYTES,
        }
    }

    /// Decodes each document of a file (or of its part whose first line is
    /// line `shift + 1`) as it is parsed.
    fn decoder<'s>(
        &'s mut self,
        name: &'s Arc<str>,
        lines: &'s Arc<FileLines>,
        shift: usize,
    ) -> impl FnMut(Document) + 's {
        let mut i = 0;
        move |doc: Document| {
            let index = Arc::new(LineIndex::deferred(lines.clone(), i));
            i += 1;
            self.document(
                doc.value,
                name,
                doc.line + shift,
                &index,
                "",
                &doc.yaml11_bools,
            );
        }
    }

    /// Parse and decode the two halves of a large file on two threads.
    /// False (and nothing loaded) when the file cannot be split, either
    /// half fails to parse, the second has an alias, or the halves together
    /// pass a limit: the caller then parses the whole file as one, which
    /// gives every error exactly as it always has.
    fn text_in_halves(
        &mut self,
        text: &str,
        name: &Arc<str>,
        path: Option<&Path>,
        kept: Option<Arc<str>>,
        head_lines: &Arc<FileLines>,
    ) -> bool {
        if std::thread::available_parallelism().map_or(true, |n| n.get() < 2) {
            return false;
        }
        let Some((at, line)) = split_point(text, self.split_min) else {
            return false;
        };
        let (head, tail) = text.split_at(at);
        let tail_lines = Arc::new(self.file_lines(text, path, kept, Some((at, line))));
        let opts = self.opts;
        let part = |seq: usize| Loader {
            opts,
            set: ConfigSet::default(),
            seq,
            split_min: usize::MAX,
        };
        let (first, second) = std::thread::scope(|s| {
            let second = std::thread::Builder::new()
                .name("strait-load".into())
                .spawn_scoped(s, || {
                    let mut l = part(0);
                    let counts = parse_tail(
                        tail,
                        &opts.limits,
                        &mut l.decoder(name, &tail_lines, line - 1),
                    );
                    counts.map(|c| (c, l.seq, l.set)).ok()
                });
            let mut l = part(self.seq);
            let counts = parse_head(head, &opts.limits, &mut l.decoder(name, head_lines, 0));
            let first = counts.map(|c| (c, l.seq, l.set)).ok();
            let second = match second {
                Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(_) => None,
            };
            (first, second)
        });
        let (Some((c1, seq1, mut set1)), Some((c2, seq2, mut set2))) = (first, second) else {
            return false;
        };
        let limits = &self.opts.limits;
        if c1.documents + c2.documents > limits.max_documents
            || c1.nodes + c2.nodes > limits.max_nodes
        {
            return false;
        }
        shift_seq(&mut set2, seq1);
        set1.extend(set2);
        self.seq = seq1 + seq2;
        self.set.extend(set1);
        true
    }

    /// An input that could not be read (`file` names it).
    pub fn error(&mut self, file: &str, line: Option<usize>, message: String) {
        self.set.load_errors.push(LoadError {
            file: file.to_string(),
            line,
            message,
        });
    }

    /// The loaded set.
    pub fn finish(mut self) -> ConfigSet {
        self.set.replace_duplicates();
        self.set.shrink_to_fit();
        self.set
    }

    /// One object read from an API (already JSON, no file): decoded as a
    /// file's document is, so its messages are the same; it has no file
    /// and no lines, so messages name it `Kind namespace/name` alone, as
    /// istioctl does for a cluster's resources. Problems that stop it
    /// loading are reported under `label`.
    pub fn object(&mut self, value: Value, label: &str) {
        let before = self.set.load_errors.len();
        let none: Arc<str> = Arc::from("");
        self.document(value, &none, 0, &Arc::new(LineIndex::default()), "", &[]);
        for e in &mut self.set.load_errors[before..] {
            e.file = label.to_string();
            e.line = None;
        }
    }

    /// `path`: the file `text` was read from, read again for line numbers
    /// instead of keeping the text (10 MB for 10,000 services) for the rare
    /// message that needs one.
    pub fn text(&mut self, text: &str, file: &str, path: Option<&Path>) {
        self.set.files.push(file.to_string());
        let name: Arc<str> = Arc::from(file);
        let kept: Option<Arc<str>> = path.is_none().then(|| Arc::from(text));
        let file_lines = Arc::new(self.file_lines(text, path, kept.clone(), None));
        if self.text_in_halves(text, &name, path, kept, &file_lines) {
            return;
        }
        // Each document is decoded as soon as it is parsed (its value tree
        // dropped right after), into a set of this file's own: a file that
        // turns out not to parse contributes nothing but its error.
        let mut staged = Loader {
            opts: self.opts,
            set: ConfigSet::default(),
            seq: self.seq,
            split_min: self.split_min,
        };
        let mut i = 0;
        let parsed = parse_each_without_lines(text, &self.opts.limits, &mut |doc| {
            let lines = Arc::new(LineIndex::deferred(file_lines.clone(), i));
            i += 1;
            staged.document(doc.value, &name, doc.line, &lines, "", &doc.yaml11_bools);
        });
        match parsed {
            Ok(()) => {
                self.seq = staged.seq;
                self.set.extend(staged.set);
            }
            Err(e) => self.error(file, Some(e.line), format!("invalid YAML: {}", e.message)),
        }
    }

    /// The lazily built line indexes of a file's documents, or of those
    /// after byte `tail.0` (line `tail.1`) when only that part was parsed.
    fn file_lines(
        &self,
        text: &str,
        path: Option<&Path>,
        kept: Option<Arc<str>>,
        tail: Option<(usize, usize)>,
    ) -> FileLines {
        let limits = self.opts.limits.clone();
        let (from, first_line) = tail.unwrap_or((0, 1));
        let index = move |t: &str| {
            t.get(from..)
                .map(|t| line_indexes(t, &limits))
                .unwrap_or_default()
                .into_iter()
                .map(|l| l.shifted(first_line - 1))
                .collect()
        };
        match path {
            None => {
                let source: Arc<str> = kept.unwrap_or_else(|| Arc::from(text));
                FileLines::new(move || index(&source))
            }
            Some(path) => {
                let path = path.to_path_buf();
                let (len, hash) = (text.len(), xxh64(text.as_bytes(), 0));
                FileLines::new(move || match std::fs::read(&path) {
                    // Only the very text that was loaded: a file changed
                    // since gets no field lines, and messages fall back to
                    // each resource's first line.
                    Ok(b) if b.len() == len && xxh64(&b, 0) == hash => {
                        std::str::from_utf8(&b).map_or_else(|_| Vec::new(), &index)
                    }
                    _ => Vec::new(),
                })
            }
        }
    }

    /// One object; `prefix` is its path inside the document (`items[3].` for
    /// a `kind: List` entry).
    fn document(
        &mut self,
        value: Value,
        file: &Arc<str>,
        line: usize,
        lines: &Arc<LineIndex>,
        prefix: &str,
        yaml11: &[String],
    ) {
        let Value::Object(mut obj) = value else {
            return self.error(
                file,
                Some(line),
                "document is not a mapping; expected a Kubernetes resource".into(),
            );
        };
        let text = |key: &str| {
            obj.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (api_version, kind_name) = (text("apiVersion"), text("kind"));
        if kind_name.is_empty() {
            return self.error(file, Some(line), "resource has no `kind`".into());
        }
        let lines = if prefix.is_empty() {
            lines.clone()
        } else {
            Arc::new(lines.sub_index(prefix))
        };
        // A document's own line is already its first field's.
        let line = if prefix.is_empty() {
            line
        } else {
            lines.min_line().unwrap_or(line)
        };
        let typed_list = kind_name
            .strip_suffix("List")
            .filter(|k| !k.is_empty() && matches!(obj.get("items"), Some(Value::Array(_))));
        if kind_name == "List" || typed_list.is_some() {
            if let Some(Value::Array(items)) = obj.remove("items") {
                let at = Place {
                    file,
                    line,
                    lines: &lines,
                    prefix,
                    yaml11,
                };
                self.list_items(items, typed_list, &api_version, &at);
            }
            return;
        }
        let Some(kind) = self.kind_of(&obj, &api_version, &kind_name, file, line) else {
            return;
        };
        let origin = Origin {
            file: file.clone(),
            line,
            lines,
        };
        let (ctx, spec) = self.context(&mut obj, kind, api_version, origin, prefix, yaml11);
        self.push(ctx, spec, obj);
    }

    /// The entries of a `kind: List` (or a typed list such as the API
    /// server's `PodList`), each a document of its own.
    fn list_items(
        &mut self,
        items: Vec<Value>,
        typed_list: Option<&str>,
        api_version: &str,
        at: &Place<'_>,
    ) {
        for (i, mut item) in items.into_iter().enumerate() {
            // The API server's `PodList` items carry no kind or
            // apiVersion of their own: they are the list's.
            if let (Some(k), Value::Object(m)) = (typed_list, &mut item)
                && !m.contains_key("kind")
            {
                m.insert("kind".into(), k.into());
                m.entry("apiVersion").or_insert(api_version.into());
            }
            let p = format!("{}items[{i}].", at.prefix);
            self.document(item, at.file, at.line, at.lines, &p, at.yaml11);
        }
    }

    /// The kind of a resource strait reads; `None` for a kind it does not
    /// use (counted in `skipped`) or one no API server serves (an error).
    fn kind_of(
        &mut self,
        obj: &serde_json::Map<String, Value>,
        api_version: &str,
        kind_name: &str,
        file: &Arc<str>,
        line: usize,
    ) -> Option<Kind> {
        match Kind::check_type(api_version, kind_name) {
            Ok(Some(kind)) => Some(kind),
            Ok(None) => {
                tracing::debug!(file = %file, line, kind = %kind_name, api_version = %api_version, "skipping a kind strait does not use");
                *self
                    .set
                    .skipped
                    .entry(format!("{api_version} {kind_name}"))
                    .or_default() += 1;
                None
            }
            Err(message) => {
                let name = obj
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                self.error(file, Some(line), format!("{kind_name} {name}: {message}"));
                None
            }
        }
    }

    /// A resource's metadata (its namespace defaulted), status and YAML 1.1
    /// notes, taken out of `obj`; its `spec` beside them.
    fn context(
        &mut self,
        obj: &mut serde_json::Map<String, Value>,
        kind: Kind,
        api_version: String,
        origin: Origin,
        prefix: &str,
        yaml11: &[String],
    ) -> (Ctx, Value) {
        let mut meta: Meta = match obj.get("metadata") {
            Some(m) => Meta::deserialize(m).unwrap_or_else(|e| {
                self.error(
                    &origin.file,
                    Some(origin.line),
                    format!("invalid metadata: {e}"),
                );
                Meta::default()
            }),
            None => Meta::default(),
        };
        if meta.namespace.is_empty()
            && !kind.cluster_scoped()
            && let Some(ns) = &self.opts.namespace
        {
            meta.namespace = ns.clone();
        }
        let status = obj.remove("status");
        let spec = obj
            .remove("spec")
            .unwrap_or(Value::Object(Default::default()));
        let yaml11: Vec<String> = yaml11
            .iter()
            .filter_map(|p| p.strip_prefix(prefix).map(str::to_string))
            .collect();
        let ctx = Ctx {
            kind,
            api_version,
            meta,
            status,
            origin,
            yaml11,
        };
        (ctx, spec)
    }

    /// Decode `spec` (or, for the kinds that keep their data beside
    /// `metadata`, the rest of `obj`) into its list of the set.
    fn push(&mut self, mut ctx: Ctx, spec: Value, mut obj: serde_json::Map<String, Value>) {
        let set = &mut self.set;
        let seq = &mut self.seq;
        match ctx.kind {
            Kind::VirtualService => ctx.push(spec, set, seq, |s| &mut s.virtual_services),
            Kind::DestinationRule => ctx.push(spec, set, seq, |s| &mut s.destination_rules),
            Kind::ServiceEntry => ctx.push(spec, set, seq, |s| &mut s.service_entries),
            Kind::WorkloadEntry => ctx.push(spec, set, seq, |s| &mut s.workload_entries),
            Kind::Gateway => ctx.push(spec, set, seq, |s| &mut s.gateways),
            Kind::Sidecar => ctx.push(spec, set, seq, |s| &mut s.sidecars),
            Kind::Service => ctx.push_lenient(spec, set, seq, |s| &mut s.services),
            Kind::Pod => ctx.push_lenient(spec, set, seq, |s| &mut s.pods),
            Kind::Namespace => ctx.push_lenient(spec, set, seq, |s| &mut s.namespaces),
            Kind::Node => ctx.push_lenient(spec, set, seq, |s| &mut s.nodes),
            Kind::KubernetesGateway => {
                ctx.push_lenient(spec, set, seq, |s| &mut s.kubernetes_gateways)
            }
            Kind::RequestAuthentication => {
                ctx.push_lenient(spec, set, seq, |s| &mut s.request_authentications)
            }
            Kind::Secret => {
                // A Secret's data lives beside metadata, not under `spec`.
                obj.remove("metadata");
                ctx.push_lenient(Value::Object(obj), set, seq, |s| &mut s.secrets)
            }
            Kind::EndpointSlice => {
                // So do an EndpointSlice's endpoints and ports.
                obj.remove("metadata");
                ctx.push_lenient(Value::Object(obj), set, seq, |s| &mut s.endpoint_slices)
            }
            Kind::Deployment => {
                // Analysis needs workload labels: a Deployment counts as one pod.
                let d: k8s::DeploymentSpec = serde_json::from_value(spec).unwrap_or_default();
                let template = d.template.unwrap_or_default();
                ctx.meta.labels = template.metadata.unwrap_or_default().labels;
                ctx.kind = Kind::Pod;
                let pod = template.spec.unwrap_or_default();
                ctx.push_value(pod, set, seq, |s| &mut s.pods)
            }
        }
    }
}

/// Where a document sits: its file, first line, field lines, path inside
/// the document (`items[3].`) and the YAML 1.1 readings noted in it.
struct Place<'a> {
    file: &'a Arc<str>,
    line: usize,
    lines: &'a Arc<LineIndex>,
    prefix: &'a str,
    yaml11: &'a [String],
}

struct Ctx {
    kind: Kind,
    api_version: String,
    meta: Meta,
    status: Option<Value>,
    origin: Origin,
    yaml11: Vec<String>,
}

impl Ctx {
    fn push<T: DeserializeOwned>(
        self,
        spec: Value,
        set: &mut ConfigSet,
        seq: &mut usize,
        list: fn(&mut ConfigSet) -> &mut Vec<Resource<T>>,
    ) {
        let decoded = decode::<T>(self.kind, spec, "spec", &self.yaml11);
        let reference = crate::config::ResourceRef {
            kind: self.kind,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
            origin: self.origin.clone(),
        };
        for (path, message) in decoded.problems {
            set.problems.push(SchemaProblem {
                resource: reference.clone(),
                path,
                message,
            });
        }
        if let Some(spec) = decoded.value {
            self.push_value(spec, set, seq, list);
        }
    }

    fn push_lenient<T: DeserializeOwned + Default>(
        self,
        spec: Value,
        set: &mut ConfigSet,
        seq: &mut usize,
        list: fn(&mut ConfigSet) -> &mut Vec<Resource<T>>,
    ) {
        let spec = serde_json::from_value(spec).unwrap_or_else(|e| {
            tracing::debug!(resource = %self.meta.name, error = %e, "lenient decode fell back to defaults");
            T::default()
        });
        self.push_value(spec, set, seq, list);
    }

    fn push_value<T>(
        self,
        spec: T,
        set: &mut ConfigSet,
        seq: &mut usize,
        list: fn(&mut ConfigSet) -> &mut Vec<Resource<T>>,
    ) {
        *seq += 1;
        list(set).push(Resource {
            kind: self.kind,
            api_version: self.api_version,
            meta: self.meta,
            spec,
            status: self.status,
            origin: self.origin,
            seq: *seq,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kubectl get --raw` / API list responses: a typed `XList` whose items
    /// have no kind or apiVersion of their own.
    #[test]
    fn typed_api_lists_give_their_items_the_list_kind() {
        let set = crate::load::load_str(
            r#"{"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": "7"},
                "items": [{"metadata": {"name": "s", "namespace": "ns",
                           "labels": {"kubernetes.io/service-name": "svc"}},
                           "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}]}"#,
            "list.json",
            &LoadOptions::default(),
        );
        assert!(set.load_errors.is_empty(), "{:?}", set.load_errors);
        assert_eq!(set.endpoint_slices.len(), 1);
        assert_eq!(
            set.endpoint_slices[0].spec.endpoints[0].addresses,
            ["10.0.0.1"]
        );
        assert_eq!(set.endpoint_slices[0].api_version, "discovery.k8s.io/v1");
    }

    #[test]
    fn namespace_defaults_only_when_missing_and_not_cluster_scoped() {
        let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: x}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: e, namespace: other}\nspec: {host: x}\n";
        let set = load_str(
            yaml,
            "t.yaml",
            &LoadOptions {
                namespace: Some("prod".into()),
                ..LoadOptions::default()
            },
        );
        assert_eq!(set.namespaces[0].meta.namespace, "");
        assert_eq!(set.destination_rules[0].meta.namespace, "prod");
        assert_eq!(set.destination_rules[1].meta.namespace, "other");
    }

    #[test]
    fn field_lines_are_found_when_first_asked() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: x\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: e}\n  spec:\n    host: y\n    subsets:\n    - name: v1\n";
        let set = load_str(yaml, "t.yaml", &LoadOptions::default());
        let (d, e) = (&set.destination_rules[0], &set.destination_rules[1]);
        assert_eq!((d.origin.line, e.origin.line), (1, 10));
        assert_eq!(d.origin.line_of("spec.host"), 5);
        assert_eq!(
            d.origin.line_of("spec.subsets[0].name"),
            4,
            "nearest ancestor"
        );
        assert_eq!(e.origin.line_of("spec.host"), 14);
        assert_eq!(e.origin.line_of("spec.subsets[0].name"), 16);
        assert_eq!(e.origin.line_of("nowhere"), 10, "the resource's first line");
    }

    /// Issue #14: kubectl refuses a misspelt kind or a version the group
    /// does not serve ("no matches for kind"); strait does too, with the
    /// fix, instead of skipping it as a kind it does not use.
    #[test]
    fn a_misspelt_kind_or_unserved_version_is_refused_with_the_fix() {
        let doc = |api: &str, kind: &str| {
            format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: r}}\nspec: {{}}\n")
        };
        let err = |api: &str, kind: &str| {
            let set = load_str(&doc(api, kind), "t.yaml", &LoadOptions::default());
            assert_eq!(set.load_errors.len(), 1, "{api} {kind}");
            set.load_errors[0].to_string()
        };
        let e = err("networking.istio.io/v1", "VirtualSerivce");
        assert!(
            e.starts_with("t.yaml:1: VirtualSerivce r: no matches for kind"),
            "{e}"
        );
        assert!(e.ends_with("did you mean VirtualService?"), "{e}");
        let e = err("networking.istio.io/v1alpha1", "VirtualService");
        assert!(
            e.contains("networking.istio.io serves versions v1, v1beta1, v1alpha3"),
            "{e}"
        );
        assert!(
            err("networking.istio.io/v1", "Route")
                .contains("networking.istio.io has VirtualService, ")
        );
        assert!(err("v1", "Sevice").ends_with("did you mean Service?"));
        assert!(err("apps/v1", "Deploymnet").ends_with("did you mean Deployment?"));
        assert!(err("v2", "Service").contains("only v1"));
        // Kinds strait does not use are skipped, and counted.
        let text = doc("v1", "ServiceAccount")
            + "---\n"
            + &doc("rbac.authorization.k8s.io/v1", "Role")
            + "---\n"
            + &doc("networking.istio.io/v1alpha3", "EnvoyFilter")
            + "---\n"
            + &doc("apps/v1", "StatefulSet")
            + "---\n"
            + &doc("v1", "ServiceAccount");
        let set = load_str(&text, "t.yaml", &LoadOptions::default());
        assert!(set.load_errors.is_empty(), "{:?}", set.load_errors);
        assert_eq!(set.skipped.get("v1 ServiceAccount"), Some(&2));
        assert_eq!(set.skipped.len(), 4, "{:?}", set.skipped);
    }

    fn file(l: &mut Loader<'_>, path: &Path) {
        let text = std::fs::read_to_string(path).unwrap();
        l.text(&text, &path.display().to_string(), Some(path));
    }

    /// Load `text` as the file `path`, in halves or as one.
    fn load_file_as(path: &Path, halves: bool) -> ConfigSet {
        let opts = LoadOptions::default();
        let mut l = Loader::new(&opts);
        l.split_min = if halves { 1 } else { usize::MAX };
        file(&mut l, path);
        l.set
    }

    /// Everything a message or the proxy could see of a set.
    fn summary(set: &ConfigSet) -> Vec<String> {
        let mut out: Vec<String> = set.load_errors.iter().map(|e| e.to_string()).collect();
        for p in &set.problems {
            out.push(format!(
                "{} {} {} {:?}",
                p.resource.friendly_name(),
                p.path,
                p.message,
                p.resource.origin.reference(Some(&p.path))
            ));
        }
        for r in &set.virtual_services {
            out.push(format!(
                "{} {} {} {}",
                r.friendly_name(),
                r.seq,
                r.origin.line,
                r.origin.line_of("spec.http[0].route[0].destination.host")
            ));
        }
        for r in &set.destination_rules {
            out.push(format!(
                "{} {} {} {}",
                r.friendly_name(),
                r.seq,
                r.origin.line,
                r.origin.line_of("spec.host")
            ));
        }
        out
    }

    #[test]
    fn a_file_parsed_in_halves_loads_exactly_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v{i}}}\nspec:\n  hosts: [h{i}]\n  http:\n  - route:\n    - destination:\n        host: h{i}\n---\n"));
            text.push_str(&format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: d{i}}}\nspec:\n  host: h{i}\n  sbsets: []\n---\n"));
            if i == 30 {
                // In the second half: a document that is no resource, and a List.
                text.push_str("just text\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: DestinationRule\n  metadata: {name: listed}\n  spec:\n    host: l\n---\n");
            }
        }
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, &text).unwrap();
        assert!(split_point(&text, 1).is_some());
        let (one, halves) = (load_file_as(&p, false), load_file_as(&p, true));
        assert_eq!(summary(&one), summary(&halves));
        assert_eq!(one.destination_rules.len(), 41);
        assert_eq!(one.problems.len(), 40, "every sbsets reported");
        assert_eq!(one.load_errors.len(), 1, "the text document");
        // And it was parsed in halves indeed.
        let opts = LoadOptions::default();
        let mut l = Loader::new(&opts);
        l.split_min = 1;
        let name: Arc<str> = Arc::from(p.display().to_string());
        let lines = Arc::new(l.file_lines(&text, Some(&p), None, None));
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            assert!(l.text_in_halves(&text, &name, Some(&p), None, &lines));
            assert_eq!(l.set.destination_rules.len(), 41);
        }

        // An alias after the middle, a syntax error, too many documents:
        // parsed as one, with the same result and message.
        for (what, tail) in [("alias", "a: &x {b: 1}\nc: *x\n"), ("syntax", "a: [1, 2\n")] {
            let bad = format!("{text}{tail}");
            std::fs::write(&p, &bad).unwrap();
            let (one, halves) = (load_file_as(&p, false), load_file_as(&p, true));
            assert_eq!(summary(&one), summary(&halves), "{what}");
        }
        std::fs::write(&p, &text).unwrap();
        let opts = LoadOptions {
            limits: InputLimits {
                max_documents: 60,
                ..InputLimits::default()
            },
            ..LoadOptions::default()
        };
        let mut l = Loader::new(&opts);
        l.split_min = 1;
        file(&mut l, &p);
        assert_eq!(l.set.load_errors.len(), 1);
        assert!(
            l.set.load_errors[0]
                .message
                .contains("more than 60 YAML documents"),
            "{}",
            l.set.load_errors[0]
        );
        assert!(l.set.destination_rules.is_empty());
    }

    #[test]
    fn a_file_parsed_in_halves_keeps_every_kinds_load_order() {
        // The second half's load order is shifted after the first's for every
        // kind (an EndpointSlice was once missed: `config::resource_lists`
        // now names them all), so "the later one replaces the earlier" means
        // the same in halves as in one.
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s{i}, namespace: default, labels: {{kubernetes.io/service-name: r}}}}\naddressType: IPv4\nendpoints: []\n---\n"));
            text.push_str(&format!("apiVersion: v1\nkind: Service\nmetadata: {{name: r{i}, namespace: default}}\nspec: {{ports: [{{port: 80, name: http}}]}}\n---\n"));
        }
        let p = dir.path().join("s.yaml");
        std::fs::write(&p, &text).unwrap();
        let seqs = |set: &ConfigSet| {
            let mut v: Vec<(String, usize)> = set
                .endpoint_slices
                .iter()
                .map(|r| (r.key(), r.seq))
                .collect();
            v.extend(set.services.iter().map(|r| (r.key(), r.seq)));
            v
        };
        let (one, halves) = (load_file_as(&p, false), load_file_as(&p, true));
        assert_eq!(one.endpoint_slices.len(), 40);
        assert_eq!(seqs(&one), seqs(&halves));
    }

    #[test]
    fn deployment_counts_as_a_pod_with_template_labels() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews-v1, namespace: default}\nspec:\n  template:\n    metadata:\n      labels: {app: reviews, version: v1}\n    spec:\n      containers: [{name: app}]\n";
        let set = load_str(yaml, "t.yaml", &LoadOptions::default());
        assert_eq!(set.pods.len(), 1);
        assert_eq!(
            set.pods[0].meta.labels.get("version").map(String::as_str),
            Some("v1")
        );
    }
}
