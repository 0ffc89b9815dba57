//! A fake Kubernetes API server for tests (dev-only: never in the release
//! binary). It implements the part of the API contract strait relies on,
//! per the Kubernetes API concepts documentation
//! (kubernetes.io/docs/reference/using-api/api-concepts):
//!
//! - one increasing `resourceVersion` over every object, like etcd's revision;
//! - list with `limit`/`continue`, `resourceVersion=0` (any semantic) and
//!   `resourceVersionMatch=NotOlderThan`, equality `labelSelector`;
//! - watch (`watch=1|true`): newline-delimited `ADDED`/`MODIFIED`/`DELETED`
//!   events replayed from the requested resourceVersion, `BOOKMARK`s with
//!   `allowWatchBookmarks`, `sendInitialEvents`, `timeoutSeconds`, and an
//!   in-stream `ERROR` 410 Expired (HTTP 200) when the version is compacted;
//! - metadata-only responses (`Accept: …;as=PartialObjectMetadata[List]`) and
//!   server-side `Table`s (what `kubectl get` asks for);
//! - namespaced and cluster-wide paths for services, pods, nodes,
//!   `discovery.k8s.io/v1` endpointslices and the `networking.istio.io/v1`
//!   kinds (a CRD can be "not installed": 404), and the discovery documents
//!   kubectl needs (`/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`, `/version`);
//! - faults: drop streams, stall them, fail lists with 500/429, truncate an
//!   event line, compact history; and a request log for assertions.
// A test binary's module: `pub` is its interface to the tests.
#![allow(unreachable_pub)]
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// A resource type the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// What `kubectl get svc` resolves through discovery.
    pub short_names: &'static [&'static str],
}

impl ResourceType {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn rt(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
) -> ResourceType {
    ResourceType {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        namespaced,
        short_names,
    }
}

pub const TYPES: &[ResourceType] = &[
    rt("", "services", "service", "Service", true, &["svc"]),
    rt("", "pods", "pod", "Pod", true, &["po"]),
    rt("", "nodes", "node", "Node", false, &["no"]),
    rt("", "secrets", "secret", "Secret", true, &[]),
    rt(
        DISCOVERY,
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        &[],
    ),
    rt(
        ISTIO,
        "virtualservices",
        "virtualservice",
        "VirtualService",
        true,
        &["vs"],
    ),
    rt(
        ISTIO,
        "destinationrules",
        "destinationrule",
        "DestinationRule",
        true,
        &["dr"],
    ),
    rt(
        ISTIO,
        "serviceentries",
        "serviceentry",
        "ServiceEntry",
        true,
        &["se"],
    ),
    rt(
        ISTIO,
        "workloadentries",
        "workloadentry",
        "WorkloadEntry",
        true,
        &["we"],
    ),
    rt(ISTIO, "gateways", "gateway", "Gateway", true, &["gw"]),
    rt(ISTIO, "sidecars", "sidecar", "Sidecar", true, &[]),
];

const DISCOVERY: &str = "discovery.k8s.io";
const ISTIO: &str = "networking.istio.io";

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub accept: String,
    /// How long the fake took to answer (a list; a watch's first response).
    pub took: Duration,
}

impl Logged {
    pub fn is_watch(&self) -> bool {
        matches!(
            self.query.get("watch").map(String::as_str),
            Some("1" | "true")
        )
    }
}

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    kind: &'static str,
    ty: ResourceType,
    object: Value,
}

/// (type plural, namespace, name).
type ObjKey = (&'static str, String, String);

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<ObjKey, Value>,
    history: Vec<Event>,
    /// Versions at or below this are compacted away.
    compacted: u64,
    not_installed: HashSet<&'static str>,
    /// (status, how many more lists fail).
    list_fault: Option<(u16, usize)>,
    truncate_next: bool,
    /// The server is gone: new connections are closed at once and
    /// requests on open ones get 503.
    down: bool,
    log: Vec<Logged>,
    /// Event lines handed to streams (replays and live).
    sent: usize,
}

/// What open watch streams are told besides new events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Control {
    /// Bumped to drop every open stream (abruptly).
    drop_gen: u64,
    /// Bumped to send a BOOKMARK on streams that allow them.
    bookmark_gen: u64,
    stalled: bool,
}

/// The running fake.
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// The latest resourceVersion, to wake watchers.
    rv_tx: watch::Sender<u64>,
    control: watch::Sender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn type_of(api_version: &str, kind: &str) -> Option<ResourceType> {
    TYPES
        .iter()
        .copied()
        .find(|t| t.kind == kind && t.api_version() == api_version)
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "details": {}, "code": code})
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake api");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            // Kubernetes never starts at 0; strait must not assume it.
            rv: 100,
            ..State::default()
        }));
        let (rv_tx, _) = watch::channel(100u64);
        let (control, _) = watch::channel(Control::default());
        let shared = Shared {
            state: state.clone(),
            rv: rv_tx.clone(),
            control: control.clone(),
            addr,
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if shared.state.lock().unwrap().down {
                    // Gone: the connection is closed at once.
                    drop(stream);
                    continue;
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(shared.handle(req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeApi {
            addr,
            state,
            rv_tx,
            control,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at the fake (plain HTTP, no credentials).
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: default}}\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// Create or replace an object (from its `apiVersion`/`kind`); returns
    /// its new resourceVersion.
    pub fn apply(&self, mut obj: Value) -> u64 {
        let api_version = obj["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let ty = type_of(&api_version, &kind).expect("a kind the fake serves");
        let ns = if ty.namespaced {
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("a name")
            .to_string();
        let mut st = self.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let key = (ty.plural, ns.clone(), name.clone());
        let existed = st.objects.get(&key).cloned();
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        if ty.namespaced {
            meta.insert("namespace".into(), ns.clone().into());
        }
        meta.insert("resourceVersion".into(), rv.to_string().into());
        let (uid, created) = match &existed {
            Some(old) => (
                old["metadata"]["uid"].clone(),
                old["metadata"]["creationTimestamp"].clone(),
            ),
            None => (
                format!("00000000-0000-0000-0000-{rv:012}").into(),
                "2026-01-01T00:00:00Z".into(),
            ),
        };
        meta.insert("uid".into(), uid);
        meta.insert("creationTimestamp".into(), created);
        let kind = if existed.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.objects.insert(key, obj.clone());
        st.history.push(Event {
            rv,
            kind,
            ty,
            object: obj,
        });
        drop(st);
        self.rv_tx.send_replace(rv);
        rv
    }

    /// Delete an object; `false` if there was none.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) -> bool {
        let ty = *TYPES.iter().find(|t| t.plural == plural).expect("a type");
        let ns = if ty.namespaced { namespace } else { "" };
        let mut st = self.state.lock().unwrap();
        let Some(mut obj) = st
            .objects
            .remove(&(ty.plural, ns.to_string(), name.to_string()))
        else {
            return false;
        };
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = rv.to_string().into();
        st.history.push(Event {
            rv,
            kind: "DELETED",
            ty,
            object: obj,
        });
        drop(st);
        self.rv_tx.send_replace(rv);
        true
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state.lock().unwrap().rv
    }

    /// Drop all history: a watch from an older version gets 410 Expired,
    /// and open streams behind it are ended with one.
    pub fn compact(&self) {
        let mut st = self.state.lock().unwrap();
        st.compacted = st.rv;
        st.history.clear();
        let rv = st.rv;
        drop(st);
        // Wake watchers so that those behind see the compaction.
        self.rv_tx.send_replace(rv);
    }

    /// Mark an Istio CRD (by plural) installed or not (404 and absent from
    /// discovery when not).
    pub fn set_installed(&self, plural: &'static str, installed: bool) {
        let mut st = self.state.lock().unwrap();
        if installed {
            st.not_installed.remove(plural);
        } else {
            st.not_installed.insert(plural);
        }
    }

    /// The next `times` lists answer `code` (500, 429 with Retry-After, 403…).
    pub fn fail_lists(&self, code: u16, times: usize) {
        self.state.lock().unwrap().list_fault = (times > 0).then_some((code, times));
    }

    /// The next event line sent on any stream is cut in half, and that
    /// stream dropped.
    pub fn truncate_next_event(&self) {
        self.state.lock().unwrap().truncate_next = true;
    }

    /// Take the server away (every open stream dropped, new connections
    /// closed at once, requests on kept-alive ones answered 503) or bring
    /// it back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
        if down {
            self.drop_watches();
        }
    }

    /// Drop every open watch stream mid-flight (no terminating chunk).
    pub fn drop_watches(&self) {
        self.control.send_modify(|c| c.drop_gen += 1);
    }

    /// Stop (or resume) sending anything on open streams.
    pub fn stall_watches(&self, stalled: bool) {
        self.control.send_modify(|c| c.stalled = stalled);
    }

    /// Send a BOOKMARK at the current version on streams that allow them.
    pub fn bookmark(&self) {
        self.control.send_modify(|c| c.bookmark_gen += 1);
    }

    /// Live event lines handed to watch streams so far.
    pub fn events_sent(&self) -> usize {
        self.state.lock().unwrap().sent
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    rv: watch::Sender<u64>,
    control: watch::Sender<Control>,
    addr: SocketAddr,
}

type Body = http_body_util::Either<http_body_util::Full<Bytes>, Stream>;

fn json_response(code: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(http_body_util::Either::Left(http_body_util::Full::new(
        Bytes::from(serde_json::to_vec(v).unwrap()),
    )));
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        &status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    )
}

/// What the client asked the object form to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Full,
    Metadata,
    Table,
}

fn form(accept: &str) -> Form {
    // kubectl lists its preferences in order; the first we can serve wins.
    for part in accept.split(',') {
        if part.contains("as=Table") {
            return Form::Table;
        }
        if part.contains("as=PartialObjectMetadata") {
            return Form::Metadata;
        }
        if part.trim().starts_with("application/json") {
            return Form::Full;
        }
    }
    Form::Full
}

fn metadata_only(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": obj["metadata"].clone()})
}

fn matches_selector(obj: &Value, selector: Option<&String>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|term| {
        let (k, v, neg) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v, false)
        } else {
            return obj["metadata"]["labels"].get(term.trim()).is_some();
        };
        let has = obj["metadata"]["labels"][k.trim()].as_str() == Some(v.trim());
        has != neg
    })
}

impl Shared {
    fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k), decode(v))
            })
            .collect();
        let accept = req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let logged = Logged {
            method: req.method().to_string(),
            path: path.clone(),
            query: query.clone(),
            accept: accept.clone(),
            took: Duration::ZERO,
        };
        let is_watch = logged.is_watch();
        let logged_at = {
            let mut st = self.state.lock().unwrap();
            st.log.push(logged);
            let at = st.log.len() - 1;
            if st.down {
                return json_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &status(503, "ServiceUnavailable", "the API server is down"),
                );
            }
            at
        };
        if req.method() != http::Method::GET {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &status(405, "MethodNotAllowed", "the fake API server is read-only"),
            );
        }
        if let Some(doc) = self.discovery(&path) {
            return json_response(StatusCode::OK, &doc);
        }
        let Some((ty, ns)) = self.route(&path) else {
            return not_found();
        };
        let t = std::time::Instant::now();
        let r = if is_watch {
            self.watch(ty, ns, &query, form(&accept))
        } else {
            self.list(ty, ns, &query, form(&accept))
        };
        let took = t.elapsed();
        if let Some(l) = self.state.lock().unwrap().log.get_mut(logged_at) {
            l.took = took;
        }
        r
    }

    fn installed(&self) -> Vec<ResourceType> {
        let st = self.state.lock().unwrap();
        TYPES
            .iter()
            .copied()
            .filter(|t| !st.not_installed.contains(t.plural))
            .collect()
    }

    fn discovery(&self, path: &str) -> Option<Value> {
        let installed = self.installed();
        let resources = |group: &str| -> Value {
            installed
                .iter()
                .filter(|t| t.group == group)
                .map(|t| {
                    json!({"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                           "kind": t.kind, "verbs": ["get", "list", "watch"],
                           "shortNames": t.short_names})
                })
                .collect()
        };
        let path = path.trim_end_matches('/');
        Some(match path {
            "/version" => json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
                                  "platform": "linux/amd64", "goVersion": "go1.24.0",
                                  "compiler": "gc", "buildDate": "2026-01-01T00:00:00Z",
                                  "gitCommit": "0000000", "gitTreeState": "clean"}),
            "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.addr.to_string()}]}),
            "/apis" => {
                let mut groups: Vec<&str> = installed
                    .iter()
                    .map(|t| t.group)
                    .filter(|g| !g.is_empty())
                    .collect();
                groups.dedup();
                let groups: Vec<Value> = groups
                    .iter()
                    .map(|g| {
                        let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                        json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                    })
                    .collect();
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            }
            "/api/v1" => {
                json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources("")})
            }
            _ => {
                let rest = path.strip_prefix("/apis/")?;
                let (group, version) = rest.split_once('/')?;
                if version != "v1" || version.contains('/') {
                    return None;
                }
                if !installed.iter().any(|t| t.group == group) {
                    return None;
                }
                json!({"kind": "APIResourceList", "apiVersion": "v1",
                       "groupVersion": format!("{group}/v1"), "resources": resources(group)})
            }
        })
    }

    /// `/api/v1[/namespaces/NS]/PLURAL` or `/apis/G/v1[/namespaces/NS]/PLURAL`.
    fn route(&self, path: &str) -> Option<(ResourceType, Option<String>)> {
        let rest = if let Some(r) = path.strip_prefix("/api/v1/") {
            ("", r)
        } else {
            let r = path.strip_prefix("/apis/")?;
            let (g, r) = r.split_once('/')?;
            let r = r.strip_prefix("v1/")?;
            (g, r)
        };
        let (group, rest) = rest;
        let parts: Vec<&str> = rest.split('/').collect();
        let (ns, plural) = match parts.as_slice() {
            [plural] => (None, *plural),
            ["namespaces", ns, plural] => (Some(ns.to_string()), *plural),
            _ => return None,
        };
        let ty = self
            .installed()
            .into_iter()
            .find(|t| t.group == group && t.plural == plural)?;
        if ns.is_some() && !ty.namespaced {
            return None;
        }
        Some((ty, ns))
    }

    /// The objects of one type (in one namespace), in key order, as
    /// references: a page of a large list clones only what it sends.
    fn selected<'a>(
        st: &'a State,
        ty: ResourceType,
        ns: &'a Option<String>,
        query: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let from = (ty.plural, ns.clone().unwrap_or_default(), String::new());
        st.objects
            .range(from..)
            .take_while(move |((p, o_ns, _), _)| {
                *p == ty.plural && ns.as_ref().is_none_or(|n| n == o_ns)
            })
            .filter(move |(_, o)| matches_selector(o, query.get("labelSelector")))
            .map(|(_, o)| o)
    }

    fn list(
        &self,
        ty: ResourceType,
        ns: Option<String>,
        query: &BTreeMap<String, String>,
        form: Form,
    ) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        if let Some((code, n)) = st.list_fault {
            st.list_fault = (n > 1).then_some((code, n - 1));
            let reason = match code {
                429 => "TooManyRequests",
                403 => "Forbidden",
                _ => "InternalError",
            };
            let mut r = json_response(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &status(code, reason, "injected fault"),
            );
            if code == 429 {
                r.headers_mut().insert("retry-after", "1".parse().unwrap());
            }
            return r;
        }
        // A continue token is `<list version>/<items already sent>`.
        let (list_rv, skip) = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(c) => {
                let Some((rv, skip)) = c
                    .split_once('/')
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<usize>().ok()?)))
                else {
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &status(400, "BadRequest", "invalid continue token"),
                    );
                };
                if rv < st.compacted {
                    return json_response(
                        StatusCode::GONE,
                        &status(
                            410,
                            "Expired",
                            "The provided continue parameter is too old to display a consistent list result.",
                        ),
                    );
                }
                (rv, skip)
            }
            None => (st.rv, 0),
        };
        let limit = query
            .get("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let body = {
            let mut selected = Self::selected(&st, ty, &ns, query).skip(skip);
            let page: Vec<&Value> = selected.by_ref().take(limit).collect();
            let more = selected.next().is_some();
            let mut meta = json!({"resourceVersion": list_rv.to_string()});
            if more {
                meta["continue"] = format!("{list_rv}/{}", skip + page.len()).into();
            }
            // Serialized from the stored objects, under the lock: no copy of
            // a 30,000-object list is made first.
            match form {
                Form::Full => serde_json::to_vec(&ListBody {
                    kind: format!("{}List", ty.kind),
                    api_version: ty.api_version(),
                    metadata: meta,
                    items: Items(&page, false),
                }),
                Form::Metadata => serde_json::to_vec(&ListBody {
                    kind: "PartialObjectMetadataList".into(),
                    api_version: "meta.k8s.io/v1".into(),
                    metadata: meta,
                    items: Items(&page, true),
                }),
                Form::Table => {
                    let items: Vec<Value> = page.iter().copied().cloned().collect();
                    serde_json::to_vec(&table(&items, meta))
                }
            }
        };
        drop(st);
        let mut r = Response::new(http_body_util::Either::Left(http_body_util::Full::new(
            Bytes::from(body.unwrap_or_default()),
        )));
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    }

    fn watch(
        &self,
        ty: ResourceType,
        ns: Option<String>,
        query: &BTreeMap<String, String>,
        form: Form,
    ) -> Response<Body> {
        let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        let stream = WatchStream {
            shared: self.clone(),
            tx,
            ty,
            ns,
            bookmarks: query.get("allowWatchBookmarks").map(String::as_str) == Some("true"),
            deadline: query
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(|t| tokio::time::Instant::now() + Duration::from_secs(t)),
            query: query.clone(),
            form,
        };
        tokio::spawn(stream.run());
        let mut r = Response::new(http_body_util::Either::Right(Stream { rx }));
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    }
}

/// One open watch: the events of its type (and namespace, label
/// selector) after its starting version, as JSON lines on `tx`.
struct WatchStream {
    shared: Shared,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    ty: ResourceType,
    ns: Option<String>,
    query: BTreeMap<String, String>,
    form: Form,
    /// `allowWatchBookmarks=true`.
    bookmarks: bool,
    /// `timeoutSeconds`: a clean end of the stream then.
    deadline: Option<tokio::time::Instant>,
}

/// What a watch replays after the version it has sent up to.
enum Replay {
    /// Event lines, whether the first is to be cut (the fake's
    /// `truncate_next_event`), and the version sent up to after them.
    Lines(Vec<Bytes>, bool, u64),
    /// That version is compacted away: 410 Expired.
    Expired(String),
}

impl WatchStream {
    async fn run(self) {
        let mut control = self.shared.control.subscribe();
        let mut rv_rx = self.shared.rv.subscribe();
        let start_control = *control.borrow_and_update();
        let (first, last) = self.initial();
        for line in first {
            if self.tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(mut last) = last else { return };
        let mut bookmark_gen = start_control.bookmark_gen;
        loop {
            let ctl = *control.borrow_and_update();
            if ctl.drop_gen != start_control.drop_gen {
                let _ = self
                    .tx
                    .send(Err(std::io::Error::other("stream dropped by the fake")))
                    .await;
                return;
            }
            if !ctl.stalled {
                let Some(now) = self.send_replay(last).await else {
                    return;
                };
                last = now;
                if self.bookmarks && ctl.bookmark_gen != bookmark_gen {
                    bookmark_gen = ctl.bookmark_gen;
                    let line = self.encode("BOOKMARK", &self.bookmark(now, false));
                    if self.tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            let sleep = async {
                match self.deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rv_rx.changed() => if r.is_err() { return },
                r = control.changed() => if r.is_err() { return },
                _ = self.tx.closed() => return,
                // timeoutSeconds: a clean end of the stream.
                _ = sleep => return,
            }
        }
    }

    /// One event or bookmark as a watch line.
    fn encode(&self, kind: &str, obj: &Value) -> Bytes {
        let obj = match self.form {
            Form::Metadata if kind != "ERROR" && kind != "BOOKMARK" => metadata_only(obj),
            _ => obj.clone(),
        };
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.ty.kind, "apiVersion": self.ty.api_version(), "metadata": meta})
    }

    /// The lines to send first, and the version replay starts after
    /// (`None`: an invalid `resourceVersion`, the stream ends).
    fn initial(&self) -> (Vec<Bytes>, Option<u64>) {
        let mut first: Vec<Bytes> = Vec::new();
        let requested = self
            .query
            .get("resourceVersion")
            .cloned()
            .unwrap_or_default();
        let initial = self.query.get("sendInitialEvents").map(String::as_str) == Some("true");
        let st = self.shared.state.lock().unwrap();
        if requested.is_empty() || requested == "0" || initial {
            // "" / "0" / sendInitialEvents: synthetic ADDED for what
            // exists now, then changes after.
            for o in Shared::selected(&st, self.ty, &self.ns, &self.query) {
                first.push(self.encode("ADDED", o));
            }
            if initial && self.bookmarks {
                first.push(self.encode("BOOKMARK", &self.bookmark(st.rv, true)));
            }
            return (first, Some(st.rv));
        }
        match requested.parse::<u64>() {
            Ok(rv) => (first, Some(rv)),
            Err(_) => {
                first.push(self.encode(
                    "ERROR",
                    &status(400, "BadRequest", "invalid resourceVersion"),
                ));
                (first, None)
            }
        }
    }

    /// The events after `last` this watch selects.
    fn replay(&self, last: u64) -> Replay {
        let mut st = self.shared.state.lock().unwrap();
        if last < st.compacted {
            return Replay::Expired(format!(
                "too old resource version: {last} ({})",
                st.compacted + 1
            ));
        }
        // History is in version order: start after `last`.
        let from = st.history.partition_point(|e| e.rv <= last);
        let lines: Vec<Bytes> = st.history[from..]
            .iter()
            .filter(|e| e.ty == self.ty)
            .filter(|e| {
                self.ns
                    .as_ref()
                    .is_none_or(|n| e.object["metadata"]["namespace"].as_str() == Some(n))
            })
            .filter(|e| matches_selector(&e.object, self.query.get("labelSelector")))
            .map(|e| self.encode(e.kind, &e.object))
            .collect();
        let truncate = !lines.is_empty() && std::mem::take(&mut st.truncate_next);
        Replay::Lines(lines, truncate, st.rv)
    }

    /// Send what happened after `last`; the version sent up to, or `None`
    /// when the stream has ended (expired, truncated, closed).
    async fn send_replay(&self, last: u64) -> Option<u64> {
        match self.replay(last) {
            Replay::Expired(msg) => {
                let line = self.encode("ERROR", &status(410, "Expired", &msg));
                let _ = self.tx.send(Ok(line)).await;
                None
            }
            Replay::Lines(lines, true, _) => {
                let l = &lines[0];
                let _ = self.tx.send(Ok(l.slice(..l.len() / 2))).await;
                let _ = self
                    .tx
                    .send(Err(std::io::Error::other("truncated by the fake")))
                    .await;
                None
            }
            Replay::Lines(lines, false, now) => {
                for l in lines {
                    self.tx.send(Ok(l)).await.ok()?;
                    self.shared.state.lock().unwrap().sent += 1;
                }
                Some(now)
            }
        }
    }
}

/// A list response, serialized from the stored objects.
#[derive(serde::Serialize)]
struct ListBody<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    metadata: Value,
    items: Items<'a>,
}

/// A page of objects, serialized in place (`true`: metadata only).
struct Items<'a>(&'a [&'a Value], bool);

/// One object as `PartialObjectMetadata`.
#[derive(serde::Serialize)]
struct MetadataOnly<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: &'a Value,
}

impl serde::Serialize for Items<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for o in self.0 {
            if self.1 {
                seq.serialize_element(&MetadataOnly {
                    kind: "PartialObjectMetadata",
                    api_version: "meta.k8s.io/v1",
                    metadata: &o["metadata"],
                })?;
            } else {
                seq.serialize_element(o)?;
            }
        }
        seq.end()
    }
}

/// A server-side `Table` (`kubectl get` without `-o`): NAME and AGE.
fn table(items: &[Value], meta: Value) -> Value {
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({"cells": [o["metadata"]["name"].clone(), "<unknown>"],
                   "object": metadata_only(o)})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
           "columnDefinitions": [
               {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
               {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}],
           "rows": rows})
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A streaming response body fed by a channel; an `Err` aborts the
/// connection (no terminating chunk), as a dropped stream would.
pub struct Stream {
    rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}
