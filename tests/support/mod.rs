//! Test harness: real upstream servers and a real proxy on 127.0.0.1
//! ephemeral ports, and clients that see what a user sees.
// Shared by every test binary, each using a part: `pub` is its interface.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use strait::load::{LoadOptions, load_str};
use strait::proxy::access_log::{AccessLog, Format};

/// What an upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Handler =
    Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>> + Send + Sync>;

/// A real HTTP server (HTTP/1.1 and h2c) on 127.0.0.1.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub count: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// An upstream answering with `handler`.
    pub async fn start(name: &str, handler: Handler) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(name, listener, handler)
    }

    pub fn serve(name: &str, listener: TcpListener, handler: Handler) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (count.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (c, s, h) = (c.clone(), s.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (c, s, h) = (c.clone(), s.clone(), h.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                version: parts.version,
                                headers: parts.headers,
                                body,
                            };
                            c.fetch_add(1, Ordering::SeqCst);
                            s.lock().unwrap().push(seen.clone());
                            Ok::<_, Infallible>(h(seen).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            name: name.to_string(),
            count,
            seen,
            task,
        }
    }

    /// Answers 200 with body `name` and header `x-upstream: name`.
    pub async fn named(name: &str) -> Upstream {
        let n = name.to_string();
        Self::start(
            name,
            Arc::new(move |_| {
                let n = n.clone();
                Box::pin(async move {
                    Response::builder()
                        .header("x-upstream", n.as_str())
                        .body(Full::new(Bytes::from(n)))
                        .unwrap()
                })
            }),
        )
        .await
    }

    /// Always answers `status`.
    pub async fn status(name: &str, status: u16) -> Upstream {
        let n = name.to_string();
        Self::start(
            name,
            Arc::new(move |_| {
                let n = n.clone();
                Box::pin(async move {
                    Response::builder()
                        .status(status)
                        .header("x-upstream", n.as_str())
                        .body(Full::new(Bytes::from(n)))
                        .unwrap()
                })
            }),
        )
        .await
    }

    pub fn hits(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Every request seen so far, in order.
    #[allow(dead_code)]
    pub fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

/// An address nothing listens on (bound, then closed).
pub async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// A ServiceEntry for `host` on `port` (`protocol`) with endpoints
/// `(address, labels)`; ports map by name `p` to each endpoint's own port.
pub fn service_entry(
    host: &str,
    port: u16,
    protocol: &str,
    endpoints: &[(SocketAddr, &[(&str, &str)])],
) -> String {
    let mut s = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se-{}\nspec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - number: {port}\n    name: p\n    protocol: {protocol}\n  endpoints:\n",
        host.replace('.', "-")
    );
    for (addr, labels) in endpoints {
        s.push_str(&format!(
            "  - address: {}\n    ports: {{p: {}}}\n    labels: {{",
            addr.ip(),
            addr.port()
        ));
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        s.push_str(&l.join(", "));
        s.push_str("}\n");
    }
    s.push_str("---\n");
    s
}

tokio::task_local! {
    /// The downstream HTTP/2 server of the proxies a test starts, when
    /// [`both_http2_servers!`] picks one.
    static HTTP2_SERVER: strait::proxy::Http2Server;
}

/// Run `test` with every proxy it starts serving HTTP/2 on `server`.
pub async fn with_http2_server<F: Future>(
    server: strait::proxy::Http2Server,
    test: F,
) -> F::Output {
    HTTP2_SERVER.scope(server, test).await
}

/// `both_http2_servers!(name);` beside `async fn name()`: runs that test
/// on each downstream HTTP/2 server, as `name::h2` (the `h2` crate's) and
/// `name::codec` (strait's codec, the default), assertions unchanged.
macro_rules! both_http2_servers {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn h2() {
                crate::support::with_http2_server(strait::proxy::Http2Server::H2, super::$name())
                    .await
            }

            #[tokio::test]
            async fn codec() {
                crate::support::with_http2_server(strait::proxy::Http2Server::Codec, super::$name())
                    .await
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_http2_servers;

/// A running proxy built from YAML (namespace `default`).
pub struct Proxy {
    pub running: strait::proxy::Running,
    pub log_path: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.running.shutdown();
    }
}

impl Proxy {
    pub async fn start(yaml: &str) -> Proxy {
        Self::start_with(yaml, BTreeMap::new()).await
    }

    pub async fn start_with(yaml: &str, labels: BTreeMap<String, String>) -> Proxy {
        Self::start_as(
            yaml,
            strait::compile::ProxyIdentity {
                labels,
                ..Default::default()
            },
        )
        .await
    }

    /// A proxy with identity `options` (its namespace must be `default`).
    pub async fn start_as(yaml: &str, options: strait::compile::ProxyIdentity) -> Proxy {
        Self::start_as_with_limits(yaml, options, strait::proxy::DownstreamLimits::default()).await
    }

    /// A proxy with downstream `limits` other than the defaults.
    pub async fn start_with_limits(yaml: &str, limits: strait::proxy::DownstreamLimits) -> Proxy {
        Self::start_as_with_limits(yaml, Default::default(), limits).await
    }

    pub async fn start_as_with_limits(
        yaml: &str,
        options: strait::compile::ProxyIdentity,
        limits: strait::proxy::DownstreamLimits,
    ) -> Proxy {
        let cfg = load_str(
            yaml,
            "test.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
        assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
        let snapshot = strait::compile::compile(&cfg, &options);
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("access.log");
        let log = AccessLog::to_path(log_path.to_str().unwrap(), Format::Json).unwrap();
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let limits = strait::proxy::DownstreamLimits {
            http2_server: HTTP2_SERVER.try_with(|s| *s).unwrap_or(limits.http2_server),
            ..limits
        };
        let running = strait::proxy::start_with_limits(snapshot, lo, lo, log, limits)
            .await
            .expect("proxy starts");
        Proxy {
            running,
            log_path: Some(log_path),
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.listen
    }

    /// A proxy whose `--listen` is bound to `ip` (any of 127/8) on a free
    /// port, then given the configuration `yaml` makes of that address
    /// (installed as a reload installs it): a ServiceEntry can name the
    /// listener's own address and port.
    pub async fn start_at(ip: &str, yaml: impl Fn(SocketAddr) -> String) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("access.log");
        let log = AccessLog::to_path(log_path.to_str().unwrap(), Format::Json).unwrap();
        let listen: SocketAddr = format!("{ip}:0").parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let snapshot = strait::compile::compile(&Default::default(), &Default::default());
        let running = strait::proxy::start(snapshot, listen, lo, log)
            .await
            .expect("proxy starts");
        let proxy = Proxy {
            running,
            log_path: Some(log_path),
            _dir: dir,
        };
        proxy.install(&yaml(proxy.addr()));
        proxy
    }

    /// Compile `yaml` for this proxy's identity and install it, as a
    /// reload does.
    pub fn install(&self, yaml: &str) {
        let cfg = load_str(
            yaml,
            "test.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
        assert!(cfg.problems.is_empty(), "{:?}", cfg.problems);
        let shared = &self.running.shared;
        let options = shared.snapshot.load().identity.clone();
        shared.install(strait::compile::compile(&cfg, &options));
    }

    /// Access-log entries written so far (waits until at least `n` exist).
    pub async fn log_entries(&self, n: usize) -> Vec<serde_json::Value> {
        let path = self.log_path.as_ref().unwrap();
        for _ in 0..200 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let entries: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if entries.len() >= n {
                return entries;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} access-log entries");
    }
}

/// A response as the client saw it.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn h1_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Send a request through the proxy with `Host: host`.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    proxy: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = client
        .request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .expect("the proxy answers");
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default(),
    }
}

pub async fn get(proxy: SocketAddr, host: &str, path: &str) -> Got {
    send(&h1_client(), proxy, "GET", host, path, &[], "").await
}

/// Send an HTTP/2 (h2c prior knowledge) request to the proxy with
/// `:authority = authority`.
pub async fn h2_send(
    proxy: SocketAddr,
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let stream = tokio::net::TcpStream::connect(proxy)
        .await
        .expect("connect to the proxy");
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .version(http::Version::HTTP_2)
        .uri(format!("http://{authority}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender
        .send_request(b.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .expect("the proxy answers over h2");
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default(),
    }
}

/// A proxy running as a gateway workload (`strait run --gateway`) with
/// `labels`, every Gateway server port bound on 127.0.0.1 to a free port.
pub struct GatewayProxy {
    pub proxy: Proxy,
    pub listeners: Vec<strait::proxy::gateway::Listening>,
}

impl GatewayProxy {
    pub async fn start(yaml: &str, labels: &[(&str, &str)]) -> GatewayProxy {
        Self::start_with_ports(yaml, labels, &[]).await
    }

    /// As `start`, with server ports `later` (which a reload may add) also
    /// mapped to free ports.
    pub async fn start_with_ports(
        yaml: &str,
        labels: &[(&str, &str)],
        later: &[u16],
    ) -> GatewayProxy {
        Self::start_with_limits(
            yaml,
            labels,
            later,
            strait::proxy::DownstreamLimits::default(),
        )
        .await
    }

    /// As `start_with_ports`, with downstream `limits`.
    pub async fn start_with_limits(
        yaml: &str,
        labels: &[(&str, &str)],
        later: &[u16],
        limits: strait::proxy::DownstreamLimits,
    ) -> GatewayProxy {
        let proxy = Proxy::start_as_with_limits(
            yaml,
            strait::compile::ProxyIdentity {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                gateway: true,
                ..Default::default()
            },
            limits,
        )
        .await;
        let shared = proxy.running.shared.clone();
        let ports = shared
            .snapshot
            .load()
            .gateway
            .ports
            .keys()
            .chain(later)
            .map(|p| (*p, 0))
            .collect();
        let bind = strait::proxy::gateway::Bind {
            ports,
            ..Default::default()
        };
        let listeners =
            strait::proxy::gateway::start(&shared, &bind, proxy.running.shutdown_signal())
                .expect("gateway ports bind");
        GatewayProxy { proxy, listeners }
    }

    /// Compile `yaml` for this gateway and install it, as a reload does.
    pub fn install(&self, yaml: &str) {
        let cfg = load_str(
            yaml,
            "test.yaml",
            &LoadOptions {
                namespace: Some("default".into()),
                ..Default::default()
            },
        );
        assert!(cfg.load_errors.is_empty(), "{:?}", cfg.load_errors);
        let shared = &self.proxy.running.shared;
        let options = shared.snapshot.load().identity.clone();
        shared.install(strait::compile::compile(&cfg, &options));
    }

    /// Where server port `server_port` listens now (after reloads).
    pub fn live_port(&self, server_port: u16) -> Option<SocketAddr> {
        self.proxy
            .running
            .shared
            .gateway
            .get()?
            .listening()
            .into_iter()
            .find(|l| l.server_port == server_port)
            .map(|l| l.address)
    }

    /// Where Gateway server port `server_port` listens.
    pub fn port(&self, server_port: u16) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.server_port == server_port)
            .unwrap_or_else(|| panic!("no gateway listener for port {server_port}"))
            .address
    }
}

/// A server-first TCP upstream: it greets with its name before the client
/// says anything (as MySQL does), then echoes until EOF.
pub async fn server_first(name: &'static str) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(name.as_bytes()).await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// Connect and read what comes first without sending anything: the
/// upstream's greeting through the proxy, or nothing when it closes.
pub async fn greeting(addr: SocketAddr) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to strait");
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("strait forwards the greeting or closes")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
