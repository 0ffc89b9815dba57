//! `strait demo`: the bundled example on real loopback traffic. Starts a
//! small upstream for every endpoint of the example (answering with its
//! labels), runs the proxy on the example config, sends requests and prints
//! where they went.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::pipeline::{self, Rejection, compile_for, load_valid};
use crate::proxy::access_log::AccessLog;

#[derive(Clone, Debug)]
pub struct DemoArgs {
    /// `None`: the built-in example.
    pub config: Option<PathBuf>,
    pub requests: usize,
    pub host: String,
    /// `--serve`: keep running with a trickle of traffic and the live
    /// page on this admin address.
    pub serve: Option<SocketAddr>,
}

/// An upstream that answers every request with `labels` as JSON and the
/// `version` label in `x-version`.
pub async fn label_server(listener: TcpListener, labels: BTreeMap<String, String>) {
    failing_label_server(listener, labels, None).await
}

/// [`label_server`] that, when `failing` is `Some(n)`, hangs up without an
/// answer on every n-th request it accepts from the moment `failing` is
/// switched on (the proxy reports 503 UC: an upstream connection
/// terminated before the response, which Istio's default retry policy
/// does not retry).
pub async fn failing_label_server(
    listener: TcpListener,
    labels: BTreeMap<String, String>,
    failing: Option<(Arc<std::sync::atomic::AtomicBool>, u64)>,
) {
    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = Bytes::from(serde_json::to_vec(&labels).unwrap_or_default());
    let version = labels.get("version").cloned().unwrap_or_default();
    let labels = Arc::new((body, version));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let labels = labels.clone();
        let failing = failing.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<Incoming>| {
                let labels = labels.clone();
                let fail = failing.as_ref().is_some_and(|(on, n)| {
                    on.load(std::sync::atomic::Ordering::Relaxed)
                        && seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n == n - 1
                });
                async move {
                    if fail {
                        return Err("hang up");
                    }
                    let mut r = Response::new(Full::new(labels.0.clone()));
                    if let Ok(v) = http::HeaderValue::from_str(&labels.1) {
                        r.headers_mut().insert("x-version", v);
                    }
                    Ok::<_, &'static str>(r)
                }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// examples/bookinfo, inside the binary so `strait demo` works anywhere.
pub const EXAMPLE: [(&str, &str); 3] = [
    (
        "examples/bookinfo/reviews-service.yaml",
        include_str!("../../examples/bookinfo/reviews-service.yaml"),
    ),
    (
        "examples/bookinfo/reviews-destination-rule.yaml",
        include_str!("../../examples/bookinfo/reviews-destination-rule.yaml"),
    ),
    (
        "examples/bookinfo/reviews-virtual-service.yaml",
        include_str!("../../examples/bookinfo/reviews-virtual-service.yaml"),
    ),
];

/// The built-in example, loaded and validated as `run` would.
fn built_in() -> Result<crate::config::ConfigSet, Rejection> {
    let opts = crate::load::LoadOptions {
        namespace: Some("default".into()),
        ..Default::default()
    };
    let mut config = crate::config::ConfigSet::default();
    for (name, text) in EXAMPLE {
        config.extend(crate::load::load_str(text, name, &opts));
    }
    pipeline::validate(&config, "default")?;
    Ok(config)
}

pub fn run(args: DemoArgs) -> i32 {
    let mut out = std::io::stdout();
    let loaded = match &args.config {
        Some(dir) => load_valid(std::slice::from_ref(dir), "default").map(|(c, _)| c),
        None => built_in(),
    };
    let config = match loaded {
        Ok(c) => c,
        Err(rejection) => {
            let _ = writeln!(std::io::stderr(), "{rejection}");
            return super::exit::rejected(&rejection);
        }
    };
    let source = args.config.as_ref().map_or_else(
        || "the built-in bookinfo example".to_string(),
        |d| d.display().to_string(),
    );
    let snapshot = compile_for(&config, "default", &BTreeMap::new());
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    else {
        return super::exit::FAILURE;
    };
    rt.block_on(async move {
        // One upstream per distinct endpoint address. With --serve, `v2`
        // starts failing once the table is printed, so the page has a red
        // figure to show.
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut started = BTreeMap::new();
        for c in snapshot.clusters.values() {
            for e in &c.endpoints {
                if started.contains_key(&*e.authority) {
                    continue;
                }
                let addr: SocketAddr = match e.authority.parse() {
                    Ok(a) => a,
                    Err(_) => continue,
                };
                match TcpListener::bind(addr).await {
                    Ok(l) => {
                        let fails = (args.serve.is_some()
                            && e.labels.get("version").is_some_and(|v| v == "v2"))
                        .then(|| (failing.clone(), 6));
                        tokio::spawn(failing_label_server(l, (*e.labels).clone(), fails));
                        started.insert(e.authority.to_string(), (*e.labels).clone());
                    }
                    Err(err) => {
                        let _ = writeln!(std::io::stderr(), "Error: cannot start the demo upstream on {addr}: {err}");
                        return super::exit::FAILURE;
                    }
                }
            }
        }
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let admin = args.serve.unwrap_or(loopback);
        let running = match crate::proxy::start(snapshot, loopback, admin, AccessLog::off()).await {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "Error: cannot start the proxy: {e}");
                return super::exit::FAILURE;
            }
        };
        let _ = writeln!(
            out,
            "strait demo: {} through the proxy on {}; upstreams: {}",
            source,
            running.listen,
            started.keys().cloned().collect::<Vec<_>>().join(", ")
        );
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let classes: [(&str, Option<&str>, usize); 2] = [
            ("anonymous", None, args.requests),
            ("end-user: jason", Some("jason"), (args.requests / 10).max(1)),
        ];
        let _ = writeln!(out, "\n{:<18} {:>8} {:>8} {:>8}", "requests", "version", "count", "share");
        for (label, user, n) in classes {
            let counts = send_all(&client, running.listen, &args.host, user, n).await;
            let mut first = true;
            for (version, count) in &counts {
                let _ = writeln!(
                    out,
                    "{:<18} {:>8} {:>8} {:>7.1}%",
                    if first { format!("{n} {label}") } else { String::new() },
                    version,
                    count,
                    100.0 * *count as f64 / n as f64
                );
                first = false;
            }
        }
        let _ = writeln!(
            out,
            "\nThe VirtualService sends end-user: jason to v2 and splits everyone else 90/10 between v1 and v2."
        );
        if args.serve.is_some() {
            {
                let mut st = running.shared.status.lock().unwrap_or_else(|p| p.into_inner());
                st.options = running.shared.snapshot.load().identity.clone();
            }
            running.shared.record_config(
                Arc::new(config),
                crate::proxy::access_log::format_time(std::time::SystemTime::now()),
                match &args.config {
                    Some(dir) => vec![dir.display().to_string()],
                    // The built-in example's files, as they are named in it.
                    None => EXAMPLE.iter().map(|(name, _)| name.to_string()).collect(),
                },
            );
            failing.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = writeln!(
                out,
                "\nServing: the live page is at http://{}/ (20 requests a second, one in ten as jason; v2 hangs up on one request in six). Ctrl-C to stop.",
                running.admin
            );
            let _ = out.flush();
            let trickle = tokio::spawn(trickle(client, running.listen, args.host.clone()));
            super::run::wait_for_signal().await;
            trickle.abort();
        }
        running.shutdown();
        super::exit::OK
    })
}

/// `--serve`'s traffic: 20 requests a second, every tenth as jason, each
/// awaited in its own task (at most 64 in flight), until aborted.
async fn trickle(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
    host: String,
) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let mut every = tokio::time::interval(std::time::Duration::from_millis(50));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0u64.. {
        every.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let mut b = Request::get(format!("http://{proxy}/reviews/1")).header("host", &host);
        if n % 10 == 9 {
            b = b.header("end-user", "jason");
        }
        let Ok(req) = b.body(Empty::new()) else {
            continue;
        };
        let client = client.clone();
        tokio::spawn(async move {
            if let Ok(resp) = client.request(req).await {
                let _ = resp.into_body().collect().await;
            }
            drop(permit);
        });
    }
}

/// Send `n` requests (16 at a time) and count responses by `x-version`
/// (or by status when the proxy answered itself).
async fn send_all(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
    host: &str,
    user: Option<&str>,
    n: usize,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut done = 0;
    while done < n {
        let batch = (n - done).min(16);
        let mut tasks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let mut b = Request::get(format!("http://{proxy}/reviews/1")).header("host", host);
            if let Some(u) = user {
                b = b.header("end-user", u);
            }
            let Ok(req) = b.body(Empty::new()) else {
                continue;
            };
            tasks.push(client.request(req));
        }
        for t in tasks {
            let key = match t.await {
                Ok(resp) => {
                    let key = resp
                        .headers()
                        .get("x-version")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("HTTP {}", resp.status().as_u16()));
                    let _ = resp.into_body().collect().await;
                    key
                }
                Err(e) => format!("error: {e}"),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        done += batch;
    }
    counts
}
