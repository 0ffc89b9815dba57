//! The admin listener, modelled on Envoy's (`/ready` for now).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::Shared;
use super::body::{self, Body};

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let page = super::page::Page::start(shared.clone(), shutdown.clone());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let shared = shared.clone();
        let page = page.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), page.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    page: Arc<super::page::Page>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let reply = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(body::full(text));
        *r.status_mut() = status;
        r
    };
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => {
            let mut r = Response::new(body::full(
                page.html(&shared, req.uri().query().unwrap_or("")),
            ));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        (&Method::GET, "/page.json") => json(&page.json(&shared)),
        (&Method::GET, "/ready") => {
            if shared.ready.load(Ordering::Acquire) {
                reply(StatusCode::OK, "LIVE\n")
            } else {
                reply(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
            }
        }
        (&Method::GET, "/config_dump") => json(&config_dump(&shared)),
        (&Method::GET, "/stats/prometheus") => {
            refresh_gauges(&shared);
            let mut r = Response::new(body::full(shared.metrics.encode()));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        (&Method::GET, "/stats") => {
            refresh_gauges(&shared);
            text(
                StatusCode::OK,
                crate::metrics::envoy_stats(&shared.metrics.encode()),
            )
        }
        (&Method::GET, "/clusters") => json(&clusters(&shared)),
        (&Method::GET, "/routes") => json(&routes(&shared)),
        (&Method::GET, "/listeners") => json(&listeners(&shared)),
        (&Method::GET, "/explain") => explain(&shared, req.uri().query().unwrap_or("")),
        // A GET must never look like it changed something: Envoy's admin
        // takes mutations by POST only.
        (&Method::GET, "/logging")
            if req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("level="))) =>
        {
            reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "changing the log level needs POST /logging?level=...\n",
            )
        }
        (&Method::GET, "/logging") => text(
            StatusCode::OK,
            format!("level: {}", crate::logging::level()),
        ),
        (&Method::POST, "/logging") => {
            let level = req
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("level="))
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                });
            match level {
                None => text(
                    StatusCode::BAD_REQUEST,
                    "use POST /logging?level=debug".into(),
                ),
                Some(l) => match crate::logging::set_level(&l) {
                    Ok(()) => text(StatusCode::OK, format!("level: {l}")),
                    Err(e) => text(StatusCode::BAD_REQUEST, e),
                },
            }
        }
        (
            _,
            "/" | "/page.json" | "/ready" | "/config_dump" | "/clusters" | "/routes" | "/listeners"
            | "/explain" | "/logging" | "/stats/prometheus" | "/stats",
        ) => reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        _ => reply(
            StatusCode::NOT_FOUND,
            "not found; endpoints: / (the live page) /page.json /ready /config_dump /clusters /routes /listeners /explain?url=... /stats /stats/prometheus /logging\n",
        ),
    })
}

/// Every listener: the sidecar's (`--listen`), the admin's, and the
/// gateway's ports (`--gateway`) with the servers each serves, then the
/// gateway ports that should listen but could not be bound.
fn listeners(shared: &Shared) -> serde_json::Value {
    use serde_json::json;
    let mut out = Vec::new();
    if let Some((listen, admin)) = shared.addresses.get() {
        out.push(json!({
            "name": "sidecar",
            "address": listen.to_string(),
            "protocol": "sniffed (HTTP/1.1, h2c, TLS by SNI)",
            "tls_mode": "PASSTHROUGH",
        }));
        out.push(json!({
            "name": "admin",
            "address": admin.to_string(),
            "protocol": "HTTP",
            "tls_mode": "NONE",
        }));
    }
    let mut failed = Vec::new();
    if let Some(g) = shared.gateway.get() {
        for l in g.listening() {
            out.push(json!({
                "name": format!("gateway_{}", l.server_port),
                "address": l.address.to_string(),
                "protocol": l.protocol,
                "tls_mode": l.tls_mode,
                "server_port": l.server_port,
                "gateways": l.gateways,
                "servers": l.servers,
            }));
        }
        failed = g.failed();
    }
    json!({ "listeners": out, "failed": failed })
}

fn json(v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(body::full(
        serde_json::to_string_pretty(v).unwrap_or_default() + "\n",
    ));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// The live configuration (deterministic order; Secret data redacted).
fn config_dump(shared: &Shared) -> serde_json::Value {
    let st = shared
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let c = &st.config;
    let mut configs: Vec<(String, String, String, serde_json::Value)> = Vec::new();
    macro_rules! add {
        ($list:expr) => {
            for r in &$list {
                configs.push((
                    r.kind.to_string(),
                    r.meta.namespace.clone(),
                    r.meta.name.clone(),
                    serde_json::json!({
                        "kind": r.kind.to_string(),
                        "apiVersion": r.api_version,
                        "metadata": {"name": r.meta.name, "namespace": r.meta.namespace},
                        "source": r.origin.source(),
                        "active": true,
                        "spec": serde_json::to_value(&r.spec).unwrap_or_default(),
                    }),
                ));
            }
        };
    }
    add!(c.virtual_services);
    add!(c.destination_rules);
    add!(c.service_entries);
    add!(c.workload_entries);
    add!(c.gateways);
    add!(c.sidecars);
    add!(c.services);
    for s in &c.secrets {
        configs.push((
            "Secret".into(),
            s.meta.namespace.clone(),
            s.meta.name.clone(),
            serde_json::json!({"kind": "Secret", "metadata": {"name": s.meta.name, "namespace": s.meta.namespace}, "data": "[redacted]"}),
        ));
    }
    // Resources a later one with the same name replaced: listed, inactive.
    for d in &c.replaced {
        let r = &d.resource;
        configs.push((
            r.kind.to_string(),
            r.namespace.clone(),
            r.name.clone(),
            serde_json::json!({
                "kind": r.kind.to_string(),
                "metadata": {"name": r.name, "namespace": r.namespace},
                "source": r.origin.source(),
                "active": false,
                "replacedBy": d.by.source(),
            }),
        ));
    }
    // Same name: the active one first, then the replaced in load order.
    configs.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    serde_json::json!({
        "version_info": st.version.to_string(),
        "last_updated": st.loaded_at,
        "paths": st.paths,
        "last_rejected": st.last_rejected,
        "rejected": st.rejected,
        "endpoint_updates": st.endpoint_updates,
        "source": shared.source_state.get().map(|f| f()),
        "configs": configs.into_iter().map(|c| c.3).collect::<Vec<_>>(),
    })
}

/// Bring the `ejections_active` gauges up to date (un-ejection happens
/// lazily, when the detector is next consulted).
/// Gauges whose values live elsewhere (ejections end lazily, connections
/// belong to the pools): read them at scrape time.
fn refresh_gauges(shared: &Shared) {
    if let Some(state) = shared.source_state.get() {
        shared.source_stats.refresh(&state());
    }
    for (name, open) in shared.upstreams.open_connections_by_cluster() {
        shared
            .metrics
            .upstream_cx_active
            .get_or_create(&crate::metrics::Metrics::cluster(&name))
            .set(open as i64);
    }
    let now = std::time::Instant::now();
    for st in shared.clusters.all().values() {
        if let Some(od) = &st.outlier {
            shared
                .metrics
                .outlier_detection_ejections_active
                .get_or_create(&crate::metrics::Metrics::cluster(&st.name))
                .set(od.ejected_count(now) as i64);
        }
    }
}

fn clusters(shared: &Shared) -> serde_json::Value {
    let now = std::time::Instant::now();
    let snap = shared.snapshot.load();
    let states = shared.clusters.all();
    let mut list: Vec<_> = snap.clusters.values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    serde_json::Value::Array(
        list.iter()
            .map(|c| {
                let state = states.get(&c.key);
                let endpoints: Vec<serde_json::Value> = match state {
                    Some(st) => st
                        .hosts
                        .iter()
                        .zip(st.host_health(now))
                        .map(|(h, (ejected, ejections))| {
                            let e = &h.endpoint;
                            serde_json::json!({
                                "address": &*e.authority,
                                "labels": e.labels,
                                "locality": e.locality,
                                "weight": e.weight,
                                "health": if ejected { "ejected" } else { "healthy" },
                                "ejections": ejections,
                                "active_requests": h.active(),
                            })
                        })
                        .collect(),
                    None => c
                        .endpoints
                        .iter()
                        .map(|e| {
                            serde_json::json!({
                                "address": &*e.authority,
                                "labels": e.labels,
                                "locality": e.locality,
                                "weight": e.weight,
                                "health": "healthy",
                                "ejections": 0,
                                "active_requests": 0,
                            })
                        })
                        .collect(),
                };
                let mut v = serde_json::json!({
                    "name": &*c.name,
                    "endpoints": endpoints,
                });
                if let Some(st) = state {
                    v["lb_policy"] = st.balancer.kind().name().into();
                    // Envoy's circuit-breaker thresholds, all four (Istio:
                    // tcp.maxConnections, http.http1MaxPendingRequests,
                    // http.http2MaxRequests, http.maxRetries).
                    let pool = &c.policy.pool;
                    v["circuit_breakers"] = serde_json::json!({
                        "max_connections": pool.max_connections,
                        "max_pending_requests": pool.max_pending,
                        "max_requests": st.limits.requests.max(),
                        "active_requests": st.limits.requests.count(),
                        "max_retries": st.limits.retries.max(),
                        "active_retries": st.limits.retries.count(),
                    });
                    if let Some(od) = &st.outlier {
                        v["outlier_detection"] = serde_json::json!({
                            "ejections_enforced_total": od.ejections_total(),
                            "ejections_overflow": od.ejections_overflow(),
                            "ejections_active": od.ejected_count(now),
                        });
                    }
                }
                v
            })
            .collect(),
    )
}

fn routes(shared: &Shared) -> serde_json::Value {
    let snap = shared.snapshot.load();
    serde_json::Value::Array(
        snap.routes
            .vhosts
            .iter()
            .map(|v| {
                serde_json::json!({
                    "name": v.name,
                    "virtual_service": v.virtual_service,
                    "routes": v.routes.iter().map(|r| serde_json::json!({
                        "name": &*r.name,
                        "index": r.rule_index,
                        "match": route_match(&r.matcher),
                        "timeout_ms": r.timeout.map(|t| t.as_millis() as u64),
                        "retries": r.retry.as_ref().map(|p| serde_json::json!({
                            "attempts": p.num_retries,
                            "retry_on": p.retry_on_text,
                            "per_try_timeout_ms": p.per_try_timeout.map(|t| t.as_millis() as u64),
                        })),
                        "fault": r.fault.as_ref().map(|f| serde_json::json!({
                            "delay": f.delay.map(|(d, frac)| serde_json::json!({"ms": d.as_millis() as u64, "percent": f64::from(frac) / 10_000.0})),
                            "abort": f.abort.map(|(k, frac)| serde_json::json!({
                                "status": match k {
                                    crate::route::AbortKind::Http(s) => format!("HTTP {}", s.as_u16()),
                                    crate::route::AbortKind::Grpc(c) => format!("gRPC {c}"),
                                },
                                "percent": f64::from(frac) / 10_000.0,
                            })),
                        })),
                        "action": match &r.action {
                            crate::route::Action::Forward(c) => serde_json::json!({
                                "route": c.iter().map(|w| serde_json::json!({"cluster": &*w.name, "weight": w.weight})).collect::<Vec<_>>()
                            }),
                            crate::route::Action::Redirect(rd) => serde_json::json!({"redirect": rd.status.as_u16()}),
                            crate::route::Action::Direct { status, .. } => serde_json::json!({"direct_response": status.as_u16()}),
                        },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A route's match conditions (empty: matches everything), so that two
/// routes to the same place are told apart.
fn route_match(m: &crate::route::RouteMatch) -> serde_json::Value {
    let mut o = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&crate::route::StrMatch>| {
        if let Some(v) = v {
            o.insert(k.into(), v.describe().into());
        }
    };
    put("uri", m.uri.as_ref());
    put("scheme", m.scheme.as_ref());
    put("method", m.method.as_ref());
    put("authority", m.authority.as_ref());
    let headers = |l: &[crate::route::matcher::HeaderMatch]| -> serde_json::Value {
        l.iter()
            .map(|h| {
                let name = match &h.name {
                    crate::route::matcher::HeaderKey::Header(n) => n.as_str().to_string(),
                    crate::route::matcher::HeaderKey::Pseudo(p) => p.to_string(),
                };
                (name, serde_json::Value::from(h.matcher.describe()))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    if !m.headers.is_empty() {
        o.insert("headers".into(), headers(&m.headers));
    }
    if !m.without_headers.is_empty() {
        o.insert("without_headers".into(), headers(&m.without_headers));
    }
    if !m.query_params.is_empty() {
        o.insert(
            "query_params".into(),
            m.query_params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.describe())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
    }
    if m.ignore_uri_case {
        o.insert("ignore_uri_case".into(), true.into());
    }
    o.into()
}

/// `/explain?url=<url>&method=GET&header=Name:%20value`: `strait explain`
/// on the live configuration.
fn explain(shared: &Shared, query: &str) -> Response<Body> {
    let mut url = None;
    let mut method = "GET".to_string();
    let mut headers = Vec::new();
    for kv in query.split('&') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "url" => url = Some(v),
            "method" => method = v,
            "header" => headers.push(v),
            _ => {}
        }
    }
    match explain_request(url, &method, &headers) {
        Ok(req) => json(&explain_live(shared, &req).1),
        Err(e) => text(StatusCode::BAD_REQUEST, e),
    }
}

/// The request `/explain` (and the page's explain form) describes.
pub(super) fn explain_request(
    url: Option<String>,
    method: &str,
    header_lines: &[String],
) -> Result<crate::explain::Request, String> {
    let mut headers = http::HeaderMap::new();
    for h in header_lines {
        let (n, val) = crate::explain::parse_header(h)?;
        headers.append(n, val);
    }
    let Some(url) = url else {
        return Err("missing url parameter: /explain?url=http://host:port/path".into());
    };
    crate::explain::Request::parse(method, &url, headers)
}

/// `strait explain` on the live configuration, and its JSON with what only
/// the running proxy knows: host health.
pub(super) fn explain_live(
    shared: &Shared,
    req: &crate::explain::Request,
) -> (crate::explain::Report, serde_json::Value) {
    let st = shared
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let snap = shared.snapshot.load();
    let mut report = crate::explain::explain(&st.config, &snap, &st.options, req);
    let mut v = serde_json::to_value(&report).unwrap_or_default();
    let states = shared.clusters.all();
    let now = std::time::Instant::now();
    let mut problems: Vec<String> = Vec::new();
    if let Some(dests) = v.get_mut("destinations").and_then(|d| d.as_array_mut()) {
        for (d, rd) in dests.iter_mut().zip(&report.destinations) {
            let Some(st) = snap
                .clusters
                .values()
                .find(|c| *c.name == *rd.cluster)
                .and_then(|c| states.get(&c.key))
            else {
                continue;
            };
            let health = st.host_health(now);
            if !health.is_empty() && health.iter().all(|(ejected, _)| *ejected) {
                problems.push(format!(
                    "every endpoint of {} is ejected by outlier detection: requests get 503 UH until an ejection ends",
                    rd.cluster
                ));
            }
            let (requests, max_requests) = (st.limits.requests.count(), st.limits.requests.max());
            if requests >= max_requests {
                problems.push(format!(
                    "{} has {requests} requests in flight, its http2MaxRequests: new requests get 503 UO",
                    rd.cluster
                ));
            }
            d["circuit_breakers"] = serde_json::json!({
                "active_requests": requests,
                "max_requests": max_requests,
                "active_retries": st.limits.retries.count(),
                "max_retries": st.limits.retries.max(),
            });
            d["endpoint_health"] = serde_json::Value::Array(
                st.hosts
                    .iter()
                    .zip(health)
                    .map(|(h, (ejected, n))| {
                        serde_json::json!({
                            "address": &**h.authority(),
                            "health": if ejected { "ejected" } else { "healthy" },
                            "ejections": n,
                            "active_requests": h.active(),
                        })
                    })
                    .collect(),
            );
        }
    }
    if let Some(p) = v.get_mut("problems").and_then(|p| p.as_array_mut()) {
        p.extend(problems.iter().cloned().map(serde_json::Value::String));
    }
    report.problems.extend(problems);
    (report, v)
}

fn text(status: StatusCode, msg: String) -> Response<Body> {
    let mut r = Response::new(body::full(msg + "\n"));
    *r.status_mut() = status;
    r
}
