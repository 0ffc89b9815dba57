//! Forwarding to a cluster: destination by weight, endpoint choice, request
//! rewriting, the retry loop with per-try and route timeouts, mirrors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Version;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http_body_util::BodyExt;

use super::body::{self, Body, Prefixed, Replayable, buffer_body};
use super::exchange::{
    Authority, ConnInfo, GRPC_STATUS, InFlight, Outcome, Reply, RequestParts, hit,
};
use super::flags::Flags;
use super::hop_by_hop::strip_hop_by_hop_list;
use super::local_reply::LocalReply;
use super::upstream::{Outgoing, PoolStats, SendError};
use super::{Shared, ejection};
use crate::cluster::outlier::HostOutcome;
use crate::cluster::{ClusterState, Host, Permit, Pick, PickError};
use crate::compile::{Cluster, Snapshot};
use crate::header_list::{HeaderList, as_text};
use crate::metrics::{ClusterLabels, Metrics};
use crate::route::{Action, RetryPolicy, Route, WeightedCluster, rewrite};

const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_CLIENT_CERT: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-client-cert");
const UPSTREAM_SERVICE_TIME: http::HeaderName =
    http::HeaderName::from_static("x-envoy-upstream-service-time");

/// Largest request body kept in memory so it can be retried or mirrored
/// (Envoy's default per-request buffer limit is 1 MiB).
pub const RETRY_BUFFER_LIMIT: usize = 1024 * 1024;

/// The outcome of one upstream attempt.
enum Attempt {
    Response(Reply),
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

/// What one forwarded request decided before its first try (ztunnel's
/// `build_request`): the destination cluster and its state, the request's
/// hash, and the upstream head every try shares.
struct Plan<'a> {
    cluster: &'a Arc<Cluster>,
    /// The cluster state the first try picks from.
    state: Arc<ClusterState>,
    stats: ClusterLabels,
    /// Envoy's `upstream_rq_total`, counted per attempt given a connection.
    upstream_rq_total: prometheus_client::metrics::counter::Counter,
    request_hash: Option<u64>,
    /// A generated hash cookie for the client's response.
    set_cookie: Option<HeaderValue>,
    head: Head,
    /// A websocket upgrade (HTTP/1.1).
    upgrade: bool,
}

/// The upstream request's head, shared by every try and the mirrors (the
/// method and version come from the downstream request's).
#[derive(Clone)]
struct Head {
    headers: HeaderList,
    authority: HeaderValue,
    path_and_query: PathAndQuery,
}

impl Head {
    /// One try's request, borrowing the head (no copy per try).
    fn outgoing<'a>(&'a self, method: &'a http::Method, body: Body) -> Outgoing<'a> {
        Outgoing {
            method,
            path_and_query: &self.path_and_query,
            authority: &self.authority,
            headers: &self.headers,
            body,
        }
    }
}

/// One try's result, classified: what the client gets if it is the last
/// try, what outlier detection learns from it (`None`: not the host's
/// fault) and whether the route's retry policy retries it.
struct Tried {
    attempt: Attempt,
    host_outcome: Option<HostOutcome>,
    retriable: bool,
    sent_at: Instant,
}

/// Why a try ends the request at once, never retried.
enum Stop {
    /// No host, no body left to send, or an unsendable head.
    Reply(LocalReply),
    /// The client's own body failed (a malformed chunk, a disconnect): not
    /// the upstream's fault and not counted against the host (Envoy: a
    /// codec error or a downstream reset); HTTP/1.1 closes the connection.
    ClientBody(LocalReply),
}

impl From<LocalReply> for Stop {
    fn from(r: LocalReply) -> Stop {
        Stop::Reply(r)
    }
}

/// The retry state of one request.
struct Retries<'a> {
    policy: Option<&'a RetryPolicy>,
    /// The route timeout's end.
    deadline: Option<Instant>,
    done: u32,
    /// Hosts tried before the last, when the policy avoids previous hosts.
    tried: Vec<Arc<Host>>,
    /// The last try's host: moved into `tried` only when another try comes
    /// (no list allocated for a request that needs one try).
    last: Option<Arc<Host>>,
    /// Envoy holds a `max_retries` unit from scheduling a retry until the
    /// next retry decision or the end of the request.
    permit: Option<Permit>,
}

/// What a request is forwarded with, fixed for its whole life: the
/// snapshot it was routed on, its route and the route's destinations, the
/// downstream connection, its authority, and whether the caller speaks gRPC
/// (local replies are shaped for it).
pub struct Forwarding<'a> {
    pub shared: &'a Arc<Shared>,
    pub snap: &'a Arc<Snapshot>,
    pub route: &'a Route,
    pub clusters: &'a [WeightedCluster],
    pub conn: &'a ConnInfo,
    pub authority: &'a str,
    /// The same, as the request carried it (its bytes shared).
    pub host: &'a Authority,
    pub grpc: bool,
}

pub async fn forward(
    req: &Forwarding<'_>,
    parts: &mut RequestParts,
    body: Body,
    outcome: &mut Outcome,
) -> Reply {
    let Forwarding {
        shared,
        snap,
        route,
        grpc,
        ..
    } = *req;
    let plan = match check_upgrade(parts).map_or_else(|| plan(req, parts, outcome), Err) {
        Ok(p) => p,
        Err(r) => {
            outcome.local(&r);
            return r.response(grpc);
        }
    };
    let mut req_body = match request_body(body, plan.upgrade, route).await {
        Ok(b) => b,
        Err(r) => {
            outcome.local(&r);
            return r.response(grpc);
        }
    };
    if let ReqBody::Buffered(b) = &req_body {
        mirror(shared, snap, route, parts, &plan.head, b);
    }
    let downstream_upgrade = if plan.upgrade {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let mut retries = Retries {
        policy: route.retry.as_deref(),
        deadline: route.timeout.map(|t| super::clock::now() + t),
        done: 0,
        tried: Vec::new(),
        last: None,
        permit: None,
    };
    loop {
        // A retry takes the registry's current state: after a reload the
        // outlier detector is indexed by the new host list.
        let current;
        let live = if retries.done == 0 {
            &plan.state
        } else {
            current = shared.clusters.state_for(plan.cluster);
            &current
        };
        let tried = match attempt(
            shared,
            &plan,
            live,
            parts,
            &mut req_body,
            &mut retries,
            outcome,
        )
        .await
        {
            Ok(t) => t,
            Err(Stop::Reply(r)) => {
                outcome.local(&r);
                return r.response(grpc);
            }
            Err(Stop::ClientBody(r)) => {
                outcome.local(&r);
                let mut resp = r.response(grpc);
                close_after(&mut resp, parts.version);
                return resp;
            }
        };
        if !retries.again(shared, &plan, &tried, &req_body, outcome) {
            return finish(tried, plan, downstream_upgrade, outcome, grpc);
        }
        drop(tried);
        // The failed attempt no longer counts against its host.
        if let Some(f) = outcome.in_flight.as_mut() {
            f.host = None;
        }
        retries.backoff(shared, &plan).await;
    }
}

/// Envoy's codec ignores h2c upgrades (envoy#7161): the request goes on as
/// plain HTTP/1.1 without Upgrade and HTTP2-Settings (their Connection
/// tokens go with the Connection header). Istio enables only the websocket
/// upgrade (`upgrade_configs`); any other is refused before it reaches an
/// upstream.
fn check_upgrade(parts: &mut RequestParts) -> Option<LocalReply> {
    if parts.version == Version::HTTP_2 {
        return None;
    }
    let upgrade = parts.headers.get("upgrade")?;
    if upgrade.eq_ignore_ascii_case(b"h2c") {
        parts.headers.remove("upgrade");
        parts.headers.remove("http2-settings");
        return None;
    }
    (!upgrade.eq_ignore_ascii_case(b"websocket")).then(LocalReply::upgrade_failed)
}

/// The plan phase: the weighted destination, its cluster (NC if absent)
/// and state (UH without hosts), the `max_requests` permit (UO), the
/// request's hash, and the upstream head (hop-by-hop headers stripped,
/// header operations applied, authority and path rewritten).
fn plan<'a>(
    req: &Forwarding<'a>,
    parts: &mut RequestParts,
    outcome: &mut Outcome,
) -> Result<Plan<'a>, LocalReply> {
    let Forwarding {
        shared,
        snap,
        route,
        clusters,
        conn,
        host,
        ..
    } = *req;
    let dest = Action::pick(clusters, |total| {
        crate::cluster::random::random_range(0..total)
    })
    .ok_or_else(LocalReply::no_cluster)?;
    dest.picked.add();
    outcome.upstream_cluster = Some(dest.name.clone());
    let cluster = snap
        .clusters
        .get(&dest.cluster)
        .ok_or_else(LocalReply::no_cluster)?;
    outcome.cluster = Some(cluster.clone());
    let stats = Metrics::cluster(&cluster.name);
    let state = shared.clusters.state_for(cluster);
    if state.hosts.is_empty() {
        return Err(LocalReply::no_healthy_upstream());
    }
    // Envoy's `max_requests` circuit breaker: fail fast, never queue.
    let Some(permit) = state.limits.try_request() else {
        shared
            .metrics
            .upstream_rq_pending_overflow
            .get_or_create(&stats)
            .inc();
        return Err(LocalReply::overflow());
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
    let hashed = state.policy.hash_key.as_ref().map(|k| {
        k.compute_for_connection(&parts.headers, parts.uri.query(), conn.remote, conn.local)
    });
    let request_hash = hashed.as_ref().and_then(|h| h.hash);
    let set_cookie = hashed.and_then(|h| h.set_cookie);
    // The upstream request's head, shared by every try (the request's own
    // headers are not read again).
    let upgrade = parts.headers.contains("upgrade") && parts.version != Version::HTTP_2;
    let mut headers = std::mem::take(&mut parts.headers);
    strip_hop_by_hop_list(&mut headers, upgrade);
    headers.remove("host");
    if let Some(tls) = &conn.tls {
        // Envoy on a gateway (`use_remote_address`, no trusted hops) says
        // how the request really came; with SANITIZE_SET it drops a
        // client's `x-forwarded-client-cert` and sets its own on mTLS.
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        headers.remove(X_FORWARDED_CLIENT_CERT.as_str());
        if let Some(v) = &tls.xfcc {
            headers.insert(X_FORWARDED_CLIENT_CERT, v.clone());
        }
    } else {
        if conn.gateway_port.is_some() {
            headers.remove(X_FORWARDED_CLIENT_CERT.as_str());
        }
        headers.insert_if_absent(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    route.request_headers.apply(&mut headers);
    dest.request_headers.apply(&mut headers);
    let new_authority = route
        .rewrite
        .as_ref()
        .and_then(|r| r.authority.clone())
        .or_else(|| dest.authority.clone())
        .or_else(|| host.to_value())
        .unwrap_or(HeaderValue::from_static(""));
    let path_and_query = match rewrite::rewritten_path(route, parts.uri.path(), parts.uri.query()) {
        Some(p) => PathAndQuery::from_maybe_shared(Bytes::from(p))
            .map_err(|_| LocalReply::bad_request("invalid_upstream_request"))?,
        None => parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    };
    Ok(Plan {
        cluster,
        state,
        stats,
        upstream_rq_total: hot.upstream_rq_total,
        request_hash,
        set_cookie,
        head: Head {
            headers,
            authority: new_authority,
            path_and_query,
        },
        upgrade,
    })
}

/// The request body as the tries need it: streamed for an upgrade, streamed
/// and copied for retries, or (with mirrors, which get a copy of the
/// complete body) buffered up to the limit.
async fn request_body(body: Body, upgrade: bool, route: &Route) -> Result<ReqBody, LocalReply> {
    if upgrade {
        return Ok(ReqBody::Stream(Some(body)));
    }
    if http_body::Body::is_end_stream(&body) {
        // No body (most requests): every try and mirror sends an empty one,
        // with no copy to keep.
        return Ok(ReqBody::Buffered(Bytes::new()));
    }
    if route.mirrors.is_empty() {
        // Streamed as it arrives (gRPC and other bidirectional streams never
        // wait for the end of the request), copied for retries.
        return Ok(ReqBody::Replay(Replayable::new(body, RETRY_BUFFER_LIMIT)));
    }
    match buffer_body(body, RETRY_BUFFER_LIMIT).await {
        Ok(Ok(b)) => Ok(ReqBody::Buffered(b)),
        Ok(Err((prefix, rest))) => Ok(ReqBody::Stream(Some(body::boxed(Prefixed::new(
            prefix, rest,
        ))))),
        Err(()) => Err(LocalReply::downstream_disconnect()),
    }
}

/// One try: pick a host, send the planned request within the per-try and
/// route timeouts, and classify what came back. `Err` ends the request
/// with that reply, never retried: no host, no body to send, an unsendable
/// head, or the client's own body failed.
async fn attempt(
    shared: &Shared,
    plan: &Plan<'_>,
    live: &ClusterState,
    parts: &RequestParts,
    req_body: &mut ReqBody,
    retries: &mut Retries<'_>,
    outcome: &mut Outcome,
) -> Result<Tried, Stop> {
    let avoid_previous = retries.policy.is_some_and(|r| r.avoid_previous_hosts);
    if let Some(h) = retries.last.take() {
        retries.tried.push(h);
    }
    let avoid: &[Arc<Host>] = if avoid_previous { &retries.tried } else { &[] };
    // One clock read for the pick, the deadline and the send time (they
    // are microseconds apart; the figures they feed are in milliseconds).
    let now = super::clock::now();
    let pick = Pick {
        hash: plan.request_hash,
        ..Pick::new(now, avoid)
    };
    let host = live.pick(&pick).map_err(|e| match e {
        PickError::Passthrough => LocalReply::passthrough_unsupported(),
        PickError::NoHost => LocalReply::no_healthy_upstream(),
    })?;
    let endpoint = host.authority().clone();
    if let Some(f) = outcome.in_flight.as_mut() {
        f.host = Some(host.begin());
    }
    if avoid_previous {
        retries.last = Some(host.clone());
    }
    outcome.upstream_host = Some(endpoint.clone());
    let b = req_body
        .take()
        .ok_or_else(LocalReply::connection_termination)?;
    let out = plan.head.outgoing(&parts.method, b);
    let remaining = retries.deadline.map(|d| d.saturating_duration_since(now));
    let per_try = retries.policy.and_then(|r| r.per_try_timeout);
    let limit = match (remaining, per_try) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let sent_at = now;
    let stats = PoolStats {
        rq_total: &plan.upstream_rq_total,
        metrics: &shared.metrics,
        labels: &plan.stats,
    };
    let send = shared
        .upstreams
        .send(plan.cluster, &endpoint, parts.version, out, &stats);
    let result = match limit {
        Some(l) => tokio::time::timeout(l, send).await.map_err(|_| ()),
        None => Ok(send.await),
    };
    if result.as_ref().is_ok_and(|r| r.is_err())
        && let Some(e) = req_body.downstream_error()
    {
        return Err(Stop::ClientBody(match e {
            body::DownstreamError::Protocol => LocalReply::bad_request("http1.codec_error"),
            body::DownstreamError::Disconnect => LocalReply::downstream_disconnect(),
        }));
    }
    let tried = classify(shared, plan, retries, &endpoint, result, sent_at);
    if let Some(o) = tried.host_outcome {
        ejection::record(shared, &plan.state, plan.cluster, &plan.stats, &host, o);
    }
    Ok(tried)
}

/// What one try's result means: the upstream status (retriable per the
/// policy's status codes), or a local reply for a connect failure, reset,
/// protocol error, overflow or timeout. Outlier detection learns the status;
/// resets and connect failures are local-origin `LocalOriginConnectFailed`,
/// timeouts `LocalOriginTimeout`; circuit-breaker overflow is not the
/// host's fault (Envoy's router).
fn classify(
    shared: &Shared,
    plan: &Plan<'_>,
    retries: &Retries<'_>,
    endpoint: &str,
    result: Result<Result<Reply, SendError>, ()>,
    sent_at: Instant,
) -> Tried {
    let retry = retries.policy;
    let (attempt, host_outcome, retriable) = match result {
        Ok(Ok(resp)) => {
            let status = resp.status.as_u16();
            let grpc_status = resp
                .headers
                .get(GRPC_STATUS.as_str())
                .and_then(as_text)
                .and_then(|s| s.parse().ok());
            let retriable = retry.is_some_and(|r| r.retries_status(status, grpc_status));
            let o = Some(HostOutcome::Status(status));
            (Attempt::Response(resp), o, retriable)
        }
        Ok(Err(e)) => {
            tracing::debug!(endpoint, error = e.reason(), "upstream request failed");
            let (reply, o, retriable) = match &e {
                SendError::Connect(reason) => {
                    shared
                        .metrics
                        .upstream_cx_connect_fail
                        .get_or_create(&plan.stats)
                        .inc();
                    (
                        LocalReply::connect_failure(reason),
                        Some(HostOutcome::LocalOriginFailure),
                        retry.is_some_and(|r| r.retries_connect_failure()),
                    )
                }
                SendError::Reset { sent, .. } => (
                    LocalReply::connection_termination(),
                    Some(HostOutcome::Reset),
                    retry.is_some_and(|r| {
                        r.retries_reset() || (!sent && r.retries_connect_failure())
                    }),
                ),
                SendError::Protocol(_) => (
                    LocalReply::protocol_error(),
                    Some(HostOutcome::Reset),
                    false,
                ),
                // Counted by the pool (`upstream_rq_pending_overflow`).
                SendError::Overflow => (LocalReply::overflow(), None, false),
            };
            (Attempt::Failed(reply), o, retriable)
        }
        Err(()) => {
            let route_timeout = retries.deadline.is_some_and(|d| super::clock::now() >= d);
            let retriable = !route_timeout && retry.is_some_and(|r| r.retries_timeout());
            let o = Some(HostOutcome::Timeout);
            (Attempt::Failed(LocalReply::timeout()), o, retriable)
        }
    };
    Tried {
        attempt,
        host_outcome,
        retriable,
        sent_at,
    }
}

impl Retries<'_> {
    /// Whether to try again after `tried`: the policy retries it, retries
    /// are left, the body can be sent again, the route timeout has not
    /// passed, and the `max_retries` circuit breaker admits one (over the
    /// limit this outcome stands, flag UO). Sets URX when a retriable
    /// outcome finds no retries left.
    fn again(
        &mut self,
        shared: &Shared,
        plan: &Plan<'_>,
        tried: &Tried,
        req_body: &ReqBody,
        outcome: &mut Outcome,
    ) -> bool {
        let exhausted = self.policy.is_some_and(|r| self.done >= r.num_retries);
        let more = self.policy.is_some()
            && !exhausted
            && req_body.replayable()
            && self.deadline.is_none_or(|d| super::clock::now() < d);
        let mut retrying = more && tried.retriable;
        if retrying {
            // Release this request's previous retry unit first.
            drop(self.permit.take());
            self.permit = plan.state.limits.try_retry();
            if self.permit.is_none() {
                shared
                    .metrics
                    .upstream_rq_retry_overflow
                    .get_or_create(&plan.stats)
                    .inc();
                outcome.flags.insert(Flags::UPSTREAM_OVERFLOW);
                retrying = false;
            }
        }
        // Envoy's `NoRetryLimitExceeded`: this outcome was retriable but no
        // retries are left.
        if !retrying && tried.retriable && exhausted {
            outcome.flags.insert(Flags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
        }
        retrying
    }

    /// Count the retry and wait its backoff (never past the route timeout).
    async fn backoff(&mut self, shared: &Shared, plan: &Plan<'_>) {
        self.done += 1;
        shared
            .metrics
            .upstream_rq_retry
            .get_or_create(&plan.stats)
            .inc();
        if let Some(r) = self.policy {
            let mut wait = r.backoff(self.done, crate::cluster::random::random::<f64>());
            if let Some(d) = self.deadline {
                wait = wait.min(d.saturating_duration_since(super::clock::now()));
            }
            if wait > Duration::ZERO {
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The last try's result as the client's response: the upstream's (an
/// accepted upgrade bridged, hop-by-hop headers stripped, the hash cookie
/// added) or the local reply. Like Envoy, a retried failure leaves no
/// response flag: only the final outcome is logged.
fn finish(
    tried: Tried,
    plan: Plan<'_>,
    downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    outcome: &mut Outcome,
    grpc: bool,
) -> Reply {
    match tried.attempt {
        Attempt::Response(mut resp) => {
            outcome.upstream_service_time = Some(
                super::clock::now()
                    .saturating_duration_since(tried.sent_at)
                    .as_millis() as u64,
            );
            if resp.status.as_u16() == 101
                && let Some(down) = downstream_upgrade
                && let Some(up) = resp.extensions.remove::<hyper::upgrade::OnUpgrade>()
            {
                tokio::spawn(bridge_upgrade(down, up));
            }
            let mut resp = finish_response(resp, outcome, plan.upgrade);
            if let Some(c) = plan.set_cookie {
                resp.headers.append(header::SET_COOKIE, c);
            }
            resp
        }
        Attempt::Failed(reply) => {
            outcome.local(&reply);
            reply.response(grpc)
        }
    }
}

/// HTTP/1.1 closes the connection after a reply to a request whose body
/// failed (what is left of it cannot be read).
fn close_after(resp: &mut Reply, version: Version) {
    if version != Version::HTTP_2 {
        resp.headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

fn finish_response(mut resp: Reply, outcome: &mut Outcome, upgrade: bool) -> Reply {
    let keep_upgrade = upgrade && resp.status == http::StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop_list(&mut resp.headers, keep_upgrade);
    if let Some(t) = outcome.upstream_service_time {
        resp.headers
            .insert(UPSTREAM_SERVICE_TIME, service_time_value(t));
    }
    resp
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
fn mirror(
    shared: &Arc<Shared>,
    snap: &Arc<Snapshot>,
    route: &Route,
    parts: &RequestParts,
    head: &Head,
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
        let Ok(host) = state.pick(&Pick::new(super::clock::now(), &[])) else {
            continue;
        };
        let guard = host.begin();
        let endpoint = host.authority().clone();
        let b = if body.is_empty() {
            body::empty()
        } else {
            body::full(body.clone())
        };
        let (head, method) = (head.clone(), parts.method.clone());
        let shared = shared.clone();
        let version = parts.version;
        tokio::spawn(async move {
            let req = head.outgoing(&method, b);
            let _held = (permit, guard);
            let labels = Metrics::cluster(&cluster.name);
            let hot = shared.metrics.cluster_hot(&cluster.metric, &cluster.name);
            let stats = PoolStats {
                rq_total: &hot.upstream_rq_total,
                metrics: &shared.metrics,
                labels: &labels,
            };
            if let Ok(resp) = shared
                .upstreams
                .send(&cluster, &endpoint, version, req, &stats)
                .await
            {
                let _ = resp.body.collect().await;
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
