//! Forwarding to a cluster: destination by weight, endpoint choice, request
//! rewriting, the retry loop with per-try and route timeouts, mirrors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;

use super::Shared;
use super::body::{self, Body, Prefixed, Replayable};
use super::flags::Flags;
use super::handler::{ConnInfo, Outcome, buffer_body, hit, strip_hop_by_hop};
use super::local_reply::LocalReply;
use super::upstream::SendError;
use crate::cluster::outlier::Outcome as HostOutcome;
use crate::cluster::{ClusterState, Host, HostGuard, Permit, Pick, PickError, Registry};
use crate::compile::{Cluster, Snapshot};
use crate::metrics::Metrics;
use crate::route::{Action, Route, RouteMatch, StrMatch, UpstreamProtocol, WeightedCluster};

const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const UPSTREAM_SERVICE_TIME: http::HeaderName =
    http::HeaderName::from_static("x-envoy-upstream-service-time");

/// Largest request body kept in memory so it can be retried or mirrored
/// (Envoy's default per-request buffer limit is 1 MiB).
pub const RETRY_BUFFER_LIMIT: usize = 1024 * 1024;

/// What a forwarded request holds until its response body ends: the
/// cluster's `http2MaxRequests` permit, the `upstream_rq_active` gauge, and
/// the chosen host's active-request count (for least-request balancing).
pub struct InFlight {
    _permit: Permit,
    gauge: prometheus_client::metrics::gauge::Gauge,
    host: Option<HostGuard>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The outcome of one upstream attempt.
enum Attempt {
    Response(Response<Body>),
    Failed(LocalReply),
}

/// The request body: replayable bytes, a stream replayable while its copy
/// fits the buffer limit, or a one-shot stream.
enum ReqBody {
    Buffered(Bytes),
    Replay(Replayable),
    Stream(Option<Body>),
}

impl ReqBody {
    fn take(&mut self) -> Option<Body> {
        match self {
            ReqBody::Buffered(b) => Some(if b.is_empty() {
                body::empty()
            } else {
                body::full(b.clone())
            }),
            ReqBody::Replay(r) => r.reader(),
            ReqBody::Stream(s) => s.take(),
        }
    }

    fn downstream_error(&self) -> Option<body::DownstreamError> {
        match self {
            ReqBody::Replay(r) => r.downstream_error(),
            _ => None,
        }
    }

    fn replayable(&self) -> bool {
        match self {
            ReqBody::Buffered(_) => true,
            ReqBody::Replay(r) => r.replayable(),
            ReqBody::Stream(_) => false,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn forward(
    shared: &Arc<Shared>,
    snap: &Arc<Snapshot>,
    route: &Route,
    clusters: &[WeightedCluster],
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
    body: Body,
    authority: &str,
    grpc: bool,
    outcome: &mut Outcome,
) -> Response<Body> {
    // Envoy's codec ignores h2c upgrades (envoy#7161): the request goes on
    // as plain HTTP/1.1 without Upgrade and HTTP2-Settings (their Connection
    // tokens go with the Connection header).
    if parts.version != Version::HTTP_2
        && parts
            .headers
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"h2c"))
    {
        parts.headers.remove(header::UPGRADE);
        parts.headers.remove("http2-settings");
    }
    // Istio enables only the websocket upgrade (`upgrade_configs`); Envoy
    // refuses any other with 403 before it reaches an upstream.
    if parts.version != Version::HTTP_2
        && parts
            .headers
            .get(header::UPGRADE)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        let r = LocalReply {
            status: http::StatusCode::FORBIDDEN,
            body: "",
            flags: Flags::NONE,
            details: "upgrade_failed".into(),
            transport_failure: None,
        };
        outcome.local(&r);
        return r.response(grpc);
    }
    let total = Action::total_weight(clusters);
    let roll = if total > 1 {
        rand::random_range(0..total)
    } else {
        0
    };
    let Some(dest) = Action::pick(clusters, roll) else {
        let r = LocalReply::no_cluster();
        outcome.local(&r);
        return r.response(grpc);
    };
    dest.picked.add();
    outcome.upstream_cluster = Some(dest.name.clone());
    let Some(cluster) = snap.clusters.get(&dest.cluster) else {
        let r = LocalReply::no_cluster();
        outcome.local(&r);
        return r.response(grpc);
    };
    outcome.cluster = Some(cluster.clone());
    let stats = Metrics::cluster(&cluster.name);
    let state = shared.clusters.state_for(cluster);
    if state.hosts.is_empty() {
        let r = LocalReply::no_healthy_upstream();
        outcome.local(&r);
        return r.response(grpc);
    }
    // Envoy's `max_requests` circuit breaker: fail fast, never queue.
    let Some(permit) = state.limits.try_request() else {
        shared
            .metrics
            .upstream_rq_pending_overflow
            .get_or_create(&stats)
            .inc();
        let r = LocalReply::overflow();
        outcome.local(&r);
        return r.response(grpc);
    };
    let hot = shared.metrics.cluster_hot(&cluster.metric, &cluster.name);
    let gauge = hot.upstream_rq_active;
    gauge.inc();
    outcome.in_flight = Some(InFlight {
        _permit: permit,
        gauge,
        host: None,
    });

    // Consistent hashing: the request's hash, and a generated cookie for
    // the client's response (Envoy's `addDownstreamSetCookie`).
    let hashed = state.hash_key.as_ref().map(|k| {
        k.compute_for_connection(&parts.headers, parts.uri.query(), conn.remote, conn.local)
    });
    let request_hash = hashed.as_ref().and_then(|h| h.hash);
    let set_cookie = hashed.and_then(|h| h.set_cookie);

    // The upstream request's head, shared by every try (the request's own
    // headers are not read again).
    let upgrade = parts.headers.contains_key(header::UPGRADE) && parts.version != Version::HTTP_2;
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop(&mut headers, upgrade);
    headers.remove(header::HOST);
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    route.request_headers.apply(&mut headers);
    dest.request_headers.apply(&mut headers);
    let new_authority = route
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.clone())
        .or_else(|| dest.authority.clone())
        .unwrap_or_else(|| {
            HeaderValue::from_str(authority).unwrap_or(HeaderValue::from_static(""))
        });
    let path_and_query = match rewrite_path(route, parts.uri.path(), parts.uri.query()) {
        Some(p) => match PathAndQuery::from_maybe_shared(Bytes::from(p)) {
            Ok(p) => p,
            Err(_) => {
                let r = LocalReply::bad_request("invalid_upstream_request");
                outcome.local(&r);
                return r.response(grpc);
            }
        },
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };

    let mut req_body = if upgrade {
        ReqBody::Stream(Some(body))
    } else if route.mirrors.is_empty() {
        // Streamed as it arrives (gRPC and other bidirectional streams never
        // wait for the end of the request), copied for retries.
        ReqBody::Replay(Replayable::new(body, RETRY_BUFFER_LIMIT))
    } else {
        // Mirrors get a copy of the complete body.
        match buffer_body(body, RETRY_BUFFER_LIMIT).await {
            Ok(Ok(b)) => ReqBody::Buffered(b),
            Ok(Err((prefix, rest))) => {
                ReqBody::Stream(Some(body::boxed(Prefixed::new(prefix, rest))))
            }
            Err(()) => {
                outcome
                    .flags
                    .insert(Flags::DOWNSTREAM_CONNECTION_TERMINATION);
                outcome.details = "downstream_remote_disconnect".into();
                let mut r = Response::new(body::empty());
                *r.status_mut() = http::StatusCode::BAD_REQUEST;
                return r;
            }
        }
    };

    if let ReqBody::Buffered(b) = &req_body {
        mirror(
            shared,
            snap,
            route,
            parts,
            &headers,
            &new_authority,
            &path_and_query,
            b,
        );
    }

    let downstream_upgrade = if upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };

    let retry = route.retry.as_deref();
    let deadline = route.timeout.map(|t| Instant::now() + t);
    let avoid_previous = retry.is_some_and(|r| r.avoid_previous_hosts);
    let mut tried: Vec<Arc<crate::cluster::Host>> = Vec::new();
    let mut retries_done = 0u32;
    // Envoy holds a `max_retries` unit from scheduling a retry until the
    // next retry decision or the end of the request.
    let mut retry_permit: Option<Permit> = None;
    loop {
        let avoid: &[Arc<crate::cluster::Host>] = if avoid_previous { &tried } else { &[] };
        // A retry takes the registry's current state: after a reload the
        // outlier detector is indexed by the new host list.
        let current;
        let live = if retries_done == 0 {
            &state
        } else {
            current = shared.clusters.state_for(cluster);
            &current
        };
        let pick = Pick {
            hash: request_hash,
            ..Pick::new(Instant::now(), avoid)
        };
        let host = match live.pick(&pick) {
            Ok(h) => h,
            Err(e) => {
                let r = match e {
                    PickError::Passthrough => LocalReply::passthrough_unsupported(),
                    PickError::NoHost => LocalReply::no_healthy_upstream(),
                };
                outcome.local(&r);
                return r.response(grpc);
            }
        };
        let endpoint = host.authority().clone();
        if let Some(f) = outcome.in_flight.as_mut() {
            f.host = Some(host.begin());
        }
        if avoid_previous {
            tried.push(host.clone());
        }
        outcome.upstream_host = Some(endpoint.clone());
        let Some(b) = req_body.take() else {
            let r = LocalReply::connection_termination();
            outcome.local(&r);
            return r.response(grpc);
        };
        let req = match build_request(
            parts,
            &headers,
            &new_authority,
            &path_and_query,
            cluster,
            &endpoint,
            b,
        ) {
            Some(r) => r,
            None => {
                let r = LocalReply::bad_request("invalid_upstream_request");
                outcome.local(&r);
                return r.response(grpc);
            }
        };
        let now = Instant::now();
        let remaining = deadline.map(|d| d.saturating_duration_since(now));
        let per_try = retry.and_then(|r| r.per_try_timeout);
        let limit = match (remaining, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sent_at = Instant::now();
        hot.upstream_rq_total.inc();
        let send = shared
            .upstreams
            .send(cluster, &endpoint, parts.version, req);
        let result = match limit {
            Some(l) => tokio::time::timeout(l, send).await.map_err(|_| ()),
            None => Ok(send.await),
        };
        // The client's own body failed (a malformed chunk, a disconnect):
        // not the upstream's fault, never retried, not counted against the
        // host (Envoy: a codec error or a downstream reset).
        if result.as_ref().is_ok_and(|r| r.is_err())
            && let Some(e) = req_body.downstream_error()
        {
            let r = match e {
                body::DownstreamError::Protocol => LocalReply::bad_request("http1.codec_error"),
                body::DownstreamError::Disconnect => LocalReply {
                    flags: Flags::DOWNSTREAM_CONNECTION_TERMINATION,
                    ..LocalReply::bad_request("downstream_remote_disconnect")
                },
            };
            outcome.local(&r);
            let mut resp = r.response(grpc);
            if parts.version != Version::HTTP_2 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
        let exhausted = retry.is_some_and(|r| retries_done >= r.num_retries);
        let more = retry.is_some()
            && !exhausted
            && req_body.replayable()
            && deadline.is_none_or(|d| Instant::now() < d);
        // What outlier detection learns from this attempt (Envoy's router:
        // the upstream status; resets and connect failures are local-origin
        // `LocalOriginConnectFailed`; timeouts `LocalOriginTimeout`;
        // circuit-breaker overflow is not the host's fault).
        let host_outcome = match &result {
            Ok(Ok(resp)) => Some(HostOutcome::Status(resp.status().as_u16())),
            Ok(Err(SendError::Connect(_))) => Some(HostOutcome::LocalOriginFailure),
            Ok(Err(SendError::Reset { .. } | SendError::Protocol(_))) => Some(HostOutcome::Reset),
            Ok(Err(SendError::Overflow)) => None,
            Err(()) => Some(HostOutcome::Timeout),
        };
        if let Some(o) = host_outcome {
            record_outcome(shared, &state, cluster, &stats, &host, o);
        }
        let (attempt, retriable) = match result {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let grpc_status = resp
                    .headers()
                    .get(super::handler::GRPC_STATUS)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|s| s.parse().ok());
                let retriable = retry.is_some_and(|r| r.retries_status(status, grpc_status));
                (Attempt::Response(resp), retriable)
            }
            Ok(Err(e)) => {
                let (reply, retriable) = match &e {
                    SendError::Connect(reason) => (
                        {
                            shared
                                .metrics
                                .upstream_cx_connect_fail
                                .get_or_create(&stats)
                                .inc();
                            LocalReply::connect_failure(reason)
                        },
                        retry.is_some_and(|r| r.retries_connect_failure()),
                    ),
                    SendError::Reset { sent, .. } => (
                        LocalReply::connection_termination(),
                        retry.is_some_and(|r| {
                            r.retries_reset() || (!sent && r.retries_connect_failure())
                        }),
                    ),
                    SendError::Protocol(_) => (LocalReply::protocol_error(), false),
                    SendError::Overflow => {
                        shared
                            .metrics
                            .upstream_rq_pending_overflow
                            .get_or_create(&stats)
                            .inc();
                        (LocalReply::overflow(), false)
                    }
                };
                tracing::debug!(endpoint = %endpoint, error = e.reason(), "upstream request failed");
                (Attempt::Failed(reply), retriable)
            }
            Err(()) => {
                let route_timeout = deadline.is_some_and(|d| Instant::now() >= d);
                let retriable = !route_timeout && retry.is_some_and(|r| r.retries_timeout());
                (Attempt::Failed(LocalReply::timeout()), retriable)
            }
        };
        let mut retrying = more && retriable;
        if retrying {
            // Envoy's `max_retries` circuit breaker: over the limit the retry
            // is skipped and this attempt's outcome stands (flag UO).
            // Release this request's previous retry unit first.
            drop(retry_permit.take());
            retry_permit = state.limits.try_retry();
            if retry_permit.is_none() {
                shared
                    .metrics
                    .upstream_rq_retry_overflow
                    .get_or_create(&stats)
                    .inc();
                outcome.flags.insert(Flags::UPSTREAM_OVERFLOW);
                retrying = false;
            }
        }
        if !retrying {
            // Envoy's `NoRetryLimitExceeded`: this outcome was retriable but
            // no retries are left.
            if retriable && exhausted {
                outcome.flags.insert(Flags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
            }
            return match attempt {
                Attempt::Response(mut resp) => {
                    outcome.upstream_service_time = Some(sent_at.elapsed().as_millis() as u64);
                    if resp.status().as_u16() == 101
                        && let Some(down) = downstream_upgrade
                    {
                        let up = hyper::upgrade::on(&mut resp);
                        tokio::spawn(bridge_upgrade(down, up));
                    }
                    let mut resp = finish_response(resp, outcome, upgrade);
                    if let Some(c) = set_cookie {
                        resp.headers_mut().append(header::SET_COOKIE, c);
                    }
                    resp
                }
                // Like Envoy, a retried failure leaves no response flag:
                // only the final outcome is logged.
                Attempt::Failed(reply) => {
                    outcome.local(&reply);
                    reply.response(grpc)
                }
            };
        }
        drop(attempt);
        // The failed attempt no longer counts against its host.
        if let Some(f) = outcome.in_flight.as_mut() {
            f.host = None;
        }
        retries_done += 1;
        shared.metrics.upstream_rq_retry.get_or_create(&stats).inc();
        if let Some(r) = retry {
            let mut wait = r.backoff(retries_done, rand::random::<f64>());
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_duration_since(Instant::now()));
            }
            if wait > Duration::ZERO {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Report one attempt's outcome to the cluster's outlier detection and
/// count an ejection it causes.
fn record_outcome(
    shared: &Shared,
    state: &ClusterState,
    cluster: &Cluster,
    stats: &crate::metrics::ClusterLabels,
    host: &Arc<Host>,
    o: HostOutcome,
) {
    let registry: &Registry = &shared.clusters;
    let now = Instant::now();
    if let Some(e) = registry.record(state, &cluster.key, host, o, now) {
        tracing::info!(
            cluster = %cluster.name,
            host = %host.authority(),
            kind = ?e.kind,
            duration_ms = e.duration.as_millis() as u64,
            "outlier detection ejected a host"
        );
        shared
            .metrics
            .outlier_detection_ejections_total
            .get_or_create(stats)
            .inc();
        let active = registry
            .state_for(cluster)
            .outlier
            .as_ref()
            .map_or(0, |od| od.ejected_count(now));
        shared
            .metrics
            .outlier_detection_ejections_active
            .get_or_create(stats)
            .set(active as i64);
    }
}

/// The path (and query) after the route's rewrite: `uri` replaces the
/// matched prefix (or the whole path for exact/regex matches);
/// `uriRegexRewrite` substitutes every match in the path.
/// The rewritten path and query, or `None` to send the request's own.
fn rewrite_path(route: &Route, path: &str, query: Option<&str>) -> Option<String> {
    let rw = route.rewrite.as_ref()?;
    if rw.uri.is_none() && rw.uri_regex.is_none() {
        return None;
    }
    let mut p = path.to_string();
    if let Some(new) = &rw.uri {
        p = match prefix_of(&route.matcher) {
            Some(prefix) if path.len() >= prefix.len() => {
                let rest = &path[prefix.len()..];
                // Envoy keeps a single slash when the prefix ends the path.
                if new.is_empty() && rest.is_empty() {
                    "/".to_string()
                } else {
                    format!("{new}{rest}")
                }
            }
            _ => new.clone(),
        };
        if p.is_empty() {
            p = "/".into();
        }
    }
    if let Some((re, sub)) = &rw.uri_regex {
        p = re.replace_all(&p, sub.as_str()).into_owned();
    }
    Some(match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    })
}

/// The literal prefix of a prefix URI match (case-insensitive matches keep
/// the request's own spelling).
fn prefix_of(m: &RouteMatch) -> Option<&str> {
    match &m.uri {
        Some(StrMatch::Prefix(p)) => Some(p),
        // Istio gives a rule without a uri match the prefix `/`, so a
        // rewrite to `/api` turns `/x` into `/apix` (a well-known surprise).
        None => Some("/"),
        _ => None,
    }
}

fn build_request(
    parts: &http::request::Parts,
    headers: &http::HeaderMap,
    authority: &HeaderValue,
    path_and_query: &PathAndQuery,
    cluster: &Cluster,
    _endpoint: &str,
    body: Body,
) -> Option<Request<Body>> {
    let (uri, version): (Uri, Version) = match cluster.protocol {
        UpstreamProtocol::H2c => (
            Uri::builder()
                .scheme("http")
                .authority(authority.as_bytes())
                .path_and_query(path_and_query.clone())
                .build()
                .ok()?,
            Version::HTTP_2,
        ),
        UpstreamProtocol::Http1 => (Uri::from(path_and_query.clone()), Version::HTTP_11),
    };
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = version;
    *req.headers_mut() = headers.clone();
    if version == Version::HTTP_11 {
        req.headers_mut().insert(header::HOST, authority.clone());
    }
    Some(req)
}

fn finish_response(resp: Response<Body>, outcome: &mut Outcome, upgrade: bool) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    let keep_upgrade = upgrade && parts.status == http::StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(&mut parts.headers, keep_upgrade);
    if let Some(t) = outcome.upstream_service_time {
        parts
            .headers
            .insert(UPSTREAM_SERVICE_TIME, service_time_value(t));
    }
    Response::from_parts(parts, incoming)
}

/// `x-envoy-upstream-service-time` in milliseconds: the usual values come
/// from a table instead of an allocation per response.
fn service_time_value(ms: u64) -> HeaderValue {
    const SMALL: [&str; 32] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
    ];
    match SMALL.get(ms as usize) {
        Some(s) => HeaderValue::from_static(s),
        None => HeaderValue::from(ms),
    }
}

async fn bridge_upgrade(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (Ok(down), Ok(up)) = (down.await, up.await) else {
        return;
    };
    let mut down = hyper_util::rt::TokioIo::new(down);
    let mut up = hyper_util::rt::TokioIo::new(up);
    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
}

/// Fire-and-forget copies; their responses are read and discarded and never
/// touch the client's response.
#[allow(clippy::too_many_arguments)]
fn mirror(
    shared: &Arc<Shared>,
    snap: &Arc<Snapshot>,
    route: &Route,
    parts: &http::request::Parts,
    headers: &http::HeaderMap,
    authority: &HeaderValue,
    path_and_query: &PathAndQuery,
    body: &Bytes,
) {
    for m in &route.mirrors {
        if !hit(m.fraction) {
            continue;
        }
        let Some(cluster) = snap.clusters.get(&m.cluster).cloned() else {
            continue;
        };
        // Shadow requests go through the cluster's circuit breaker and
        // balancer too; over the limit they are dropped.
        let state = shared.clusters.state_for(&cluster);
        let Some(permit) = state.limits.try_request() else {
            continue;
        };
        let Ok(host) = state.pick(&Pick::new(Instant::now(), &[])) else {
            continue;
        };
        let guard = host.begin();
        let endpoint = host.authority().clone();
        let b = if body.is_empty() {
            body::empty()
        } else {
            body::full(body.clone())
        };
        let Some(req) = build_request(
            parts,
            headers,
            authority,
            path_and_query,
            &cluster,
            &endpoint,
            b,
        ) else {
            continue;
        };
        let shared = shared.clone();
        let version = parts.version;
        tokio::spawn(async move {
            let _held = (permit, guard);
            if let Ok(resp) = shared
                .upstreams
                .send(&cluster, &endpoint, version, req)
                .await
            {
                let _ = resp.into_body().collect().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_time_values_are_decimal_milliseconds() {
        for ms in [0, 7, 31, 32, 1500] {
            assert_eq!(service_time_value(ms), ms.to_string().as_str());
        }
    }
}
