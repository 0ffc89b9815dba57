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
mod tests;
