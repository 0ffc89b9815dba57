//! One HTTP request through the proxy: route selection on the snapshot,
//! fault injection, the route's action, and the access-log entry.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Uri, Version};

use super::Shared;
use super::access_log::{Entry, format_time};
use super::body::{self, Body, Counted};
pub use super::exchange::{Authority, ConnInfo, Outcome, Reply, RequestParts};
use super::exchange::{GRPC_STATUS, hit};
use super::flags::Flags;
use super::forward;
use super::limits::{self, IdleClock, IdleReset, StreamIdle, within_stream_idle};
use super::local_reply::{self, LocalReply};
use crate::compile::Snapshot;
use crate::header_list::{HeaderList, as_text};
use crate::route::{AbortKind, Action, Cors, Redirect, RequestView, Route, rewrite};

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn header_str(h: &HeaderList, name: &str) -> Option<String> {
    h.get_str(name).map(str::to_string)
}

/// Envoy's `Grpc::Common::hasGrpcContentType`: `application/grpc` or
/// `application/grpc+…` (`application/grpc-web` is not gRPC).
pub fn is_grpc(h: &HeaderList) -> bool {
    h.get("content-type").is_some_and(|v| {
        v.strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+')
    })
}

/// The request body as the request path takes it, its byte counter, and
/// its stream idle clock: shared with the body when its data resets it,
/// else the request's own (`timeout`: `None` when off or kept elsewhere).
#[allow(clippy::type_complexity)]
fn request_body<B>(
    incoming: B,
    empty_body: bool,
    timeout: Option<std::time::Duration>,
) -> (
    Body,
    Option<Arc<std::sync::atomic::AtomicU64>>,
    Option<Arc<StreamIdle>>,
    Option<StreamIdle>,
)
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: body::StreamError + Into<body::BoxError>,
{
    if empty_body {
        // Ended: nothing of it is left to read (`Empty` boxes nothing).
        drop(incoming);
        let idle = timeout.map(|t| StreamIdle::new(t, true));
        return (body::empty(), None, None, idle);
    }
    let idle = StreamIdle::start(timeout, false);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = counter.clone();
    let incoming = body::boxed(Counted::new(
        IdleReset::new(incoming, idle.clone()),
        move |d| c.store(d.bytes, Ordering::Relaxed),
    ));
    (incoming, Some(counter), idle, None)
}

/// Serve one request. Never fails: every error becomes a response.
pub async fn handle<B>(
    shared: Arc<Shared>,
    conn: ConnInfo,
    mut parts: RequestParts,
    incoming: B,
) -> Reply
where
    B: http_body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: body::StreamError + Into<body::BoxError>,
{
    if !conn.head_checked
        && limits::head_too_large(
            &parts,
            shared.limits.max_request_headers_kb.saturating_mul(1024),
        )
    {
        return limits::head_too_large_response();
    }
    let started = super::clock::now();
    // Istio's sidecar generates x-request-id when the client did not.
    if !parts.headers.contains(X_REQUEST_ID.as_str()) {
        parts.headers.append(X_REQUEST_ID, request_id());
    }
    let grpc = is_grpc(&parts.headers);
    // Shares the request's bytes: no copy of the authority per request.
    let host = match parts.uri.authority() {
        Some(a) => Some(Authority::Uri(a.clone())),
        None => parts
            .headers
            .get_shared("host")
            .and_then(|b| HeaderValue::from_maybe_shared(b).ok())
            .map(Authority::Header),
    };
    let authority = host.as_ref().and_then(Authority::as_str);
    let mut entry = log_entry(&shared, &conn, &parts, authority);
    let mut outcome = Outcome::new();
    let conn_request = conn.state.request();
    let timeout = shared.limits.stream_idle_timeout;
    // A request without a body (most) has no bytes to count and no data to
    // reset its idle clock: its body goes unwrapped and its clock lives in
    // this future, not shared.
    let empty_body = http_body::Body::is_end_stream(&incoming);
    // On strait's HTTP/1.1 server, the connection's patrol keeps it (no
    // timer per request).
    let patrolled = empty_body && timeout.is_some() && conn.state.patrolled();
    let (incoming, bytes_in, shared_idle, own_idle) =
        request_body(incoming, empty_body, timeout.filter(|_| !patrolled));
    let idle = match own_idle.as_ref().or(shared_idle.as_deref()) {
        Some(idle) => IdleClock::Timer(idle),
        None if patrolled => IdleClock::Patrol(&conn.state),
        None => IdleClock::Off,
    };
    let mut response = respond(
        &shared,
        &conn,
        &mut parts,
        incoming,
        authority.and(host.as_ref()),
        grpc,
        idle,
        &mut outcome,
    )
    .await;
    let response_code = response.status.as_u16();
    if let Some(e) = entry.as_mut() {
        fill_entry(e, &outcome, response_code);
    }
    let mut flags = outcome.flags;
    let body_out = std::mem::replace(&mut response.body, body::empty());
    // A trailers-only gRPC response carries its status in the headers.
    let header_grpc_status = response
        .headers
        .get(GRPC_STATUS.as_str())
        .and_then(as_text)
        .and_then(|v| v.parse().ok());
    // The endpoint's version label when one served the request (Istio's
    // `destination_version` is the upstream peer's), else `unknown`.
    let host = outcome.in_flight.as_ref().and_then(|f| f.host.as_ref());
    let destination = match (&outcome.cluster, host) {
        (Some(c), Some(h)) => c.metric_of(&h.host().endpoint).clone(),
        (Some(c), None) => c.metric.clone(),
        (None, _) => crate::metrics::Destination::unknown(),
    };
    let logger = shared.clone();
    let in_flight = outcome.in_flight.take();
    let logged = Counted::new(body_out, move |done| {
        // The exchange is over: release the request's permit and host.
        drop(in_flight);
        drop(conn_request);
        // Envoy's `onUpstreamReset` after the response started: the
        // upstream's reset reason names the flag (UR, UC); a body dropped
        // unfinished means the client went away (DC).
        let late_reset = match (done.complete, done.reset) {
            (true, _) => None,
            (false, None) => {
                flags.insert(Flags::DOWNSTREAM_CONNECTION_TERMINATION);
                None
            }
            (false, Some(r)) => {
                flags.insert(match r {
                    body::Reset::Remote => Flags::UPSTREAM_REMOTE_RESET,
                    body::Reset::ConnectionTermination => Flags::UPSTREAM_CONNECTION_TERMINATION,
                });
                Some(r)
            }
        };
        let bytes_received = bytes_in.map_or(0, |b| b.load(Ordering::Relaxed));
        let elapsed = super::clock::now().saturating_duration_since(started);
        logger.metrics.record(&crate::metrics::Record {
            destination: &destination,
            grpc,
            response_code,
            grpc_status: done.grpc_status.or(header_grpc_status),
            flags,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            request_bytes: bytes_received,
            response_bytes: done.bytes,
        });
        if let Some(mut e) = entry {
            if let Some(r) = late_reset {
                e.response_code_details =
                    format!("upstream_reset_after_response_started{{{}}}", r.reason());
            }
            e.response_flags = flags;
            e.bytes_sent = done.bytes;
            e.bytes_received = bytes_received;
            e.duration = elapsed.as_millis() as u64;
            logger.access_log.log(&e);
        }
    });
    response.body = body::boxed(logged);
    response
}

/// The access-log entry's request fields (a dozen strings: only when a log
/// is on).
fn log_entry(
    shared: &Shared,
    conn: &ConnInfo,
    parts: &RequestParts,
    authority: Option<&str>,
) -> Option<Box<Entry>> {
    // Boxed: a dozen strings are no part of the request's future when the
    // log is off (nor is the wall-clock read).
    shared.access_log.enabled().then(|| {
        Box::new(Entry {
            start_time: format_time(SystemTime::now()),
            method: parts.method.as_str().to_string(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            protocol: protocol(parts.version),
            x_forwarded_for: header_str(&parts.headers, "x-forwarded-for"),
            user_agent: header_str(&parts.headers, "user-agent"),
            request_id: header_str(&parts.headers, X_REQUEST_ID.as_str()),
            authority: authority.map(str::to_string),
            downstream_local_address: conn.local.to_string(),
            downstream_remote_address: conn.remote.to_string(),
            requested_server_name: conn.tls.as_ref().and_then(|t| t.sni.clone()),
            ..Default::default()
        })
    })
}

/// The response to a request: refused under overload, after a smuggling
/// shape or without an authority; otherwise routed, within the stream idle
/// timeout.
#[allow(clippy::too_many_arguments)]
async fn respond(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    parts: &mut RequestParts,
    incoming: Body,
    host: Option<&Authority>,
    grpc: bool,
    idle: IdleClock<'_>,
    outcome: &mut Outcome,
) -> Reply {
    match host {
        _ if shared.overload.active() => {
            shared.downstream.rq_overload_close.inc();
            let r = LocalReply::overloaded();
            outcome.local(&r);
            r.response(grpc)
        }
        Some(a) if conn.smuggling.load(Ordering::Acquire) == 0 => {
            // Pinned here and lent: the routing state lives once in this
            // future (the servers box the whole request's future once).
            let routed = {
                let routed = std::pin::pin!(route(shared, conn, parts, incoming, a, grpc, outcome));
                within_stream_idle(routed, idle).await
            };
            match routed {
                Ok(r) => r,
                Err(request_complete) => {
                    shared.downstream.rq_idle_timeout.inc();
                    let r = LocalReply::stream_idle_timeout(request_complete);
                    outcome.local(&r);
                    let mut resp = r.response(grpc);
                    // The rest of the request body will not be read.
                    if !request_complete && parts.version < Version::HTTP_2 {
                        resp.headers
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    resp
                }
            }
        }
        Some(_) => {
            let r = super::sniff::local_reply(conn.smuggling.load(Ordering::Acquire));
            outcome.local(&r);
            let mut resp = r.response(grpc);
            // Nothing after a smuggling shape may be read as a request.
            resp.headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        None => {
            let r = LocalReply::bad_request("missing_host_header");
            outcome.local(&r);
            r.response(grpc)
        }
    }
}

/// The entry's response fields, from what the request path learned.
fn fill_entry(e: &mut Entry, outcome: &Outcome, response_code: u16) {
    e.response_code = response_code;
    e.route_name = outcome.route_name.as_deref().map(str::to_string);
    e.upstream_host = outcome.upstream_host.as_deref().map(str::to_string);
    e.upstream_cluster = outcome.upstream_cluster.as_deref().map(str::to_string);
    e.upstream_service_time = outcome.upstream_service_time;
    e.upstream_transport_failure_reason = outcome.transport_failure.clone();
    e.response_code_details = if outcome.details.is_empty() {
        "via_upstream".to_string()
    } else {
        outcome.details.clone()
    };
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A random UUID v4, as Envoy's request-id extension generates.
/// Its random bytes come from a per-thread batch of 2048, as Envoy's
/// `RandomGeneratorImpl::uuid` prefetches them: one call into the
/// generator per 128 requests instead of one each.
fn request_id() -> HeaderValue {
    thread_local! {
        static BATCH: std::cell::RefCell<(Bytes, usize)> =
            const { std::cell::RefCell::new((Bytes::new(), IDS_PER_BATCH)) };
    }
    let id = BATCH.with_borrow_mut(|(ids, next)| {
        if *next == IDS_PER_BATCH {
            *ids = request_id_batch();
            *next = 0;
        }
        let at = *next * UUID_LEN;
        *next += 1;
        ids.slice(at..at + UUID_LEN)
    });
    // Shares the batch's bytes (no allocation per id).
    HeaderValue::from_maybe_shared(id).unwrap_or(HeaderValue::from_static(""))
}

/// Request ids formatted at a time: one buffer and one draw of random
/// bytes for all of them (Envoy's `RandomGeneratorImpl::uuid` prefetches
/// its random bytes the same way).
const IDS_PER_BATCH: usize = 64;
const UUID_LEN: usize = 36;

/// `IDS_PER_BATCH` random (version 4) UUIDs, back to back.
fn request_id_batch() -> Bytes {
    /// Each byte's two hex digits, looked up once per byte.
    const HEX_PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 0x0f]];
            i += 1;
        }
        t
    };
    let mut random = [0u8; 16 * IDS_PER_BATCH];
    // A fresh draw per batch: ids never repeat across batches.
    rand::fill(&mut random[..]);
    let mut out = vec![b'-'; UUID_LEN * IDS_PER_BATCH];
    for (b, id) in random
        .chunks_exact_mut(16)
        .zip(out.chunks_exact_mut(UUID_LEN))
    {
        // Version 4, variant 10 (RFC 9562 §5.4).
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        // The 16 bytes' places in 8-4-4-4-12 (dashes already there).
        const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        for (&byte, at) in b.iter().zip(AT) {
            id[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
        }
    }
    Bytes::from(out)
}

/// Select the route and run its action.
async fn route(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    parts: &mut RequestParts,
    body: Body,
    host: &Authority,
    grpc: bool,
    outcome: &mut Outcome,
) -> Reply {
    // `respond` routes only requests whose authority is text.
    let authority = host.as_str().unwrap_or_default();
    let snapshot = shared.snapshot.load_full();
    // Shares the URI's bytes, so `parts` stays free to change.
    let uri = parts.uri.clone();
    let (path, query) = (uri.path(), uri.query());
    let view = RequestView {
        method: parts.method.as_str(),
        scheme: uri
            .scheme_str()
            .unwrap_or(if conn.tls.is_some() { "https" } else { "http" }),
        authority,
        path,
        query,
        headers: &parts.headers,
    };
    let table = match conn.gateway_port {
        Some(port) => snapshot.gateway.routes(
            port,
            conn.tls.as_deref().map(|t| (t.gateway.as_str(), t.server)),
        ),
        None => Some(&*snapshot.routes),
    };
    let Some(route) = table
        .and_then(|t| t.vhost(authority))
        .and_then(|vh| vh.select(&view))
    else {
        let r = LocalReply::no_route();
        outcome.local(&r);
        return r.response(grpc);
    };
    outcome.route_name = (!route.name.is_empty()).then(|| route.name.clone());

    let origin = header_str(&parts.headers, "origin");
    if let (Some(cors), Some(origin)) = (&route.cors, &origin)
        && parts.method == Method::OPTIONS
        && parts.headers.contains("access-control-request-method")
        && let Some(r) = preflight(cors, origin)
    {
        outcome.details = "cors_response".into();
        return r;
    }

    if let Some(fault) = &route.fault {
        if let Some((delay, fraction)) = fault.delay
            && hit(fraction)
        {
            outcome.flags.insert(Flags::DELAY_INJECTED);
            tokio::time::sleep(delay).await;
        }
        if let Some((kind, fraction)) = fault.abort
            && hit(fraction)
        {
            let r = match kind {
                AbortKind::Http(status) => LocalReply::fault_abort(status),
                AbortKind::Grpc(code) => LocalReply::fault_abort_grpc(code),
            };
            outcome.local(&r);
            aborted_destination(&snapshot, route, outcome);
            return r.response(grpc);
        }
    }

    let mut response = match &route.action {
        Action::Direct { status, body: b } => {
            outcome.details = "direct_response".into();
            if grpc {
                local_reply::into_grpc(Reply::with_status(*status, body::empty()), &b[..])
            } else {
                let mut r = Reply::with_status(*status, body::full(b.clone()));
                if !b.is_empty() {
                    r.headers
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                }
                r
            }
        }
        Action::Redirect(rd) => {
            outcome.details = "via_redirect".into();
            let r = redirect(rd, route, &uri, authority, path, query);
            if grpc {
                local_reply::into_grpc(r, b"")
            } else {
                r
            }
        }
        Action::Forward(clusters) => {
            // Inline: `handle` boxes this whole future once.
            let req = forward::Forwarding {
                shared,
                snap: &snapshot,
                route,
                clusters,
                conn,
                authority,
                host,
                grpc,
            };
            let mut r = forward::forward(&req, parts, body, outcome).await;
            // The chosen destination's response operations, before the
            // route's (Envoy's weighted-cluster entry, then its route).
            if let Some(dest) = outcome
                .upstream_cluster
                .as_ref()
                .and_then(|name| clusters.iter().find(|c| c.name == *name))
            {
                dest.response_headers.apply(&mut r.headers);
            }
            r
        }
    };
    route.response_headers.apply(&mut response.headers);
    if let (Some(cors), Some(origin)) = (&route.cors, &origin) {
        cors.decorate(origin, &mut response.headers);
    }
    response
}

/// A fault-aborted request's upstream cluster, as Envoy's access log and
/// Istio's metrics name it: Envoy picks a route's weighted cluster when it
/// selects the route, before the fault filter runs. Not counted as a pick
/// for the live page: nothing was sent.
fn aborted_destination(snapshot: &Snapshot, route: &Route, outcome: &mut Outcome) {
    let Action::Forward(clusters) = &route.action else {
        return;
    };
    if let Some(dest) = Action::pick(clusters, |total| {
        crate::cluster::random::random_range(0..total)
    }) {
        outcome.upstream_cluster = Some(dest.name.clone());
        outcome.cluster = snapshot.clusters.get(&dest.cluster).cloned();
    }
}

/// A redirect response to [`rewrite::redirect_location`].
fn redirect(
    rd: &Redirect,
    route: &Route,
    uri: &Uri,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Reply {
    let location = rewrite::redirect_location(rd, route, uri.scheme_str(), authority, path, query);
    let mut r = Reply::with_status(rd.status, body::empty());
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers.insert(header::LOCATION, v);
    }
    r
}

/// A CORS preflight the proxy answers itself (Envoy's CORS filter); `None`
/// forwards it upstream (unmatched origin with `unmatchedPreflights: FORWARD`).
fn preflight(cors: &Cors, origin: &str) -> Option<Reply> {
    let mut r = Reply::new(body::empty());
    r.headers = cors.preflight_headers(origin)?;
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4() {
        let v = request_id();
        let id = v.to_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    /// Drawn from batches, the ids still differ across batch ends.
    #[test]
    fn request_ids_do_not_repeat_across_batches() {
        let ids: std::collections::HashSet<_> =
            (0..IDS_PER_BATCH * 3 + 5).map(|_| request_id()).collect();
        assert_eq!(ids.len(), IDS_PER_BATCH * 3 + 5);
        assert!(
            ids.iter()
                .all(|id| id.len() == UUID_LEN && id.to_str().is_ok())
        );
    }
}
