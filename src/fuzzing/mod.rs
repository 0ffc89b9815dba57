//! Fuzzing entry points (reliability case 31). The cargo-fuzz targets in
//! `fuzz/` and the corpus replay in `tests/it/fuzz_corpus.rs` call these same
//! functions, so every input a fuzzer found keeps being checked by
//! `cargo test`. Each function takes arbitrary bytes and must neither panic
//! nor hang; they panic only to report a broken invariant.

mod h1codec;
mod h2codec;
mod h2conn;
mod http1;

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::analyze::{self, Context, MeshConfig};
use crate::cluster::Registry;
use crate::cluster::balance::Pick;
use crate::compile::{self, ProxyIdentity, Snapshot};
use crate::config::ConfigSet;
use crate::explain;
use crate::load::{self, LoadOptions};
use crate::route::{Action, RequestView};
use crate::validate;

pub use h1codec::h1codec;
pub use h2codec::h2codec;
pub use h2conn::h2conn;
pub use http1::http1;

/// The first bytes of a connection on a TLS-inspecting listener (gateway
/// passthrough ports, TLS on the sidecar listener): `client_hello::inspect`
/// on the whole input and on input-derived prefixes, which must agree once
/// decided (more bytes never change a ClientHello already read, nor bytes
/// already found not to be one); then the SNI through Envoy's filter chain
/// match over a fixed set of chains.
pub fn client_hello(data: &[u8]) {
    use crate::proxy::client_hello::{Inspect, inspect};
    let whole = inspect(data);
    // At most 64 prefixes: inspect is linear, inputs up to 64 KiB.
    let step = usize::from(data.first().copied().unwrap_or(1))
        .max(data.len() / 64)
        .max(1);
    let mut n = 0;
    while n < data.len() {
        let part = inspect(&data[..n]);
        if matches!(part, Inspect::Tls { .. } | Inspect::NotTls) {
            assert_eq!(
                part, whole,
                "a decided prefix of {n} bytes changed its answer"
            );
            break;
        }
        n += step;
    }
    let sni = match &whole {
        Inspect::Tls { sni } => sni.as_deref(),
        _ => None,
    };
    let chains: [Vec<String>; 4] = [
        compile::sni::server_names(&["a.example.com".into()]),
        compile::sni::server_names(&["*.example.com".into()]),
        compile::sni::server_names(&["*.b.example.com".into(), "c.test".into()]),
        compile::sni::server_names(&[]),
    ];
    let picked = compile::sni::select(chains.iter().map(|c| (c.as_slice(), c)), sni);
    std::hint::black_box(picked);
}

/// The mesh the `route` and `http1` targets use (`__PORT__` is the
/// upstream's port).
const MESH: &str = include_str!("mesh.yaml");

/// Separates a `route` input's request from an optional config of its own.
pub const CONFIG_SEPARATOR: &str = "\n%%\n";

/// Istio YAML through everything `strait check` and `strait run` do with it:
/// load (YAML, decode), validate, analyze (and render the messages), compile
/// for a sidecar in `default`, and build the per-cluster runtime state.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let opts = LoadOptions {
        namespace: Some("default".into()),
        ..LoadOptions::default()
    };
    let set = load::load_str(&text, "fuzz.yaml", &opts);
    for e in &set.load_errors {
        std::hint::black_box(e.to_string());
    }
    check_and_compile(&set);
}

fn check_and_compile(set: &ConfigSet) -> (Snapshot, Registry) {
    std::hint::black_box(validate::all(set, &validate::Options::default()));
    let mesh = MeshConfig::default();
    let messages = analyze::run(&Context::new(set, &mesh), &[]).unwrap_or_default();
    for m in &messages {
        std::hint::black_box(m.to_string());
    }
    let snapshot = compile::compile(
        set,
        &ProxyIdentity {
            locality: "us/east/a".into(),
            ..ProxyIdentity::default()
        },
    );
    let registry = Registry::new();
    registry.reconcile(&snapshot);
    (snapshot, registry)
}

/// A compiled mesh with its runtime cluster state.
struct Mesh {
    config: ConfigSet,
    snapshot: Snapshot,
    registry: Registry,
}

impl Mesh {
    fn load(text: &str) -> Mesh {
        let config = load::load_str(
            text,
            "mesh.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..LoadOptions::default()
            },
        );
        let (snapshot, registry) = check_and_compile(&config);
        Mesh {
            config,
            snapshot,
            registry,
        }
    }
}

fn builtin_mesh() -> &'static Mesh {
    static MESH_ONCE: OnceLock<Mesh> = OnceLock::new();
    MESH_ONCE.get_or_init(|| Mesh::load(&mesh_yaml(1)))
}

/// The built-in mesh with its endpoints on `port`.
pub fn mesh_yaml(port: u16) -> String {
    MESH.replace("__PORT__", &port.to_string())
}

/// Route selection for an arbitrary request head, as the proxy and
/// `strait explain` do it: virtual host by authority, first matching route,
/// then the weighted destination and a host from the cluster's balancer
/// (consistent hashing reads headers, cookies and the query).
///
/// The input is a request head in HTTP/1 shape, `METHOD target` then
/// `name: value` lines (target absolute, `http://host:port/path?query`, or
/// origin-form with a `host` header). After a `%%` line it may carry Istio
/// YAML to route through instead of the built-in mesh.
pub fn route(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, own_config) = match text.split_once(CONFIG_SEPARATOR) {
        Some((h, c)) => (h, Some(Mesh::load(c))),
        None => (&*text, None),
    };
    let mesh = own_config.as_ref().unwrap_or_else(|| builtin_mesh());
    let req = RawRequest::parse(head);

    // Strings exactly as they came: matching is on `&str` and must hold up
    // to anything, including what hyper would have refused.
    let headers = crate::header_list::HeaderList::from(req.headers.clone());
    let view = RequestView {
        method: req.method,
        scheme: req.scheme,
        authority: &req.authority,
        path: req.path,
        query: req.query,
        headers: &headers,
    };
    select(mesh, &view, data);

    // What the proxy really sees: hyper's parsed method and URI.
    let Some(parsed) = req.to_explain() else {
        return;
    };
    let headers = crate::header_list::HeaderList::from(parsed.headers.clone());
    let view = RequestView {
        method: &parsed.method,
        scheme: &parsed.scheme,
        authority: &parsed.authority,
        path: &parsed.path,
        query: parsed.query.as_deref(),
        headers: &headers,
    };
    select(mesh, &view, data);
    let report = explain::explain(
        &mesh.config,
        &mesh.snapshot,
        &mesh.snapshot.identity,
        &parsed,
    );
    std::hint::black_box(explain::render_text(&report));
    std::hint::black_box(serde_json::to_string(&report).ok());
}

/// Select the route, then the destination and host, as `proxy::forward`
/// does; `data` seeds the weighted roll.
fn select(mesh: &Mesh, view: &RequestView<'_>, data: &[u8]) {
    let Some(vhost) = mesh.snapshot.routes.vhost(view.authority) else {
        return;
    };
    let mut misses = Vec::new();
    let Some(route) = vhost.select_traced(view, |r, res| {
        if let Err(m) = res {
            misses.push(r.matcher.describe_miss(m));
        }
    }) else {
        return;
    };
    std::hint::black_box(misses);
    let Action::Forward(clusters) = &route.action else {
        return;
    };
    let roll = |total| xxhash_rust::xxh64::xxh64(data, 0) % total;
    let Some(dest) = Action::pick(clusters, roll) else {
        return;
    };
    let Some(state) = mesh.registry.get(&dest.cluster) else {
        return;
    };
    let remote = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7)), 40_000);
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15_001);
    let hash = state
        .policy
        .hash_key
        .as_ref()
        .map(|k| k.compute_for_connection(view.headers, view.query, remote, local));
    let pick = Pick {
        hash: hash.as_ref().and_then(|h| h.hash),
        ..Pick::new(Instant::now(), &[])
    };
    if let Ok(host) = state.pick(&pick) {
        // A second attempt avoids the first host, as retries do.
        let avoid = [host];
        let retry = Pick {
            hash: pick.hash,
            ..Pick::new(Instant::now(), &avoid)
        };
        std::hint::black_box(state.pick(&retry).ok());
    }
}

/// A request head split leniently into its parts (no validation).
struct RawRequest<'a> {
    method: &'a str,
    target: &'a str,
    scheme: &'a str,
    authority: Cow<'a, str>,
    path: &'a str,
    query: Option<&'a str>,
    headers: HeaderMap,
}

impl<'a> RawRequest<'a> {
    fn parse(head: &'a str) -> RawRequest<'a> {
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("");
        let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
        // Drop a trailing ` HTTP/1.1`, should the line carry one.
        let target = target.split(' ').next().unwrap_or("");
        let mut headers = HeaderMap::new();
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_bytes(value.trim().as_bytes()),
            ) {
                headers.append(n, v);
            }
        }
        let (scheme, rest) = match target.split_once("://") {
            Some((s, r)) => (s, r),
            None => ("http", target),
        };
        let (authority, path_query) = if target.contains("://") {
            let (a, pq) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, "/"),
            };
            (Cow::Borrowed(a), pq)
        } else {
            let host = headers
                .get(http::header::HOST)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            (Cow::Owned(host), rest)
        };
        let (path, query) = match path_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_query, None),
        };
        RawRequest {
            method,
            target,
            scheme,
            authority,
            path,
            query,
            headers,
        }
    }

    /// The request as hyper would hand it over, when it parses: method and
    /// URI validated, authority from the URI or else the `host` header.
    fn to_explain(&self) -> Option<explain::Request> {
        let method = http::Method::from_bytes(self.method.as_bytes()).ok()?;
        let uri: http::Uri = self.target.parse().ok()?;
        let authority = match uri.authority() {
            Some(a) => a.as_str().to_string(),
            None => self
                .headers
                .get(http::header::HOST)?
                .to_str()
                .ok()?
                .to_string(),
        };
        Some(explain::Request {
            method: method.as_str().to_string(),
            scheme: uri.scheme_str().unwrap_or("http").to_string(),
            authority,
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: self.headers.clone(),
        })
    }
}
