//! One HTTP request through the proxy: route selection on the snapshot,
//! fault injection, the route's action, and the access-log entry.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::Shared;
use super::access_log::{Entry, format_time};
use super::body::{self, Body, Counted};
use super::flags::Flags;
use super::forward;
use super::limits::{self, IdleReset, StreamIdle, within_stream_idle};
use super::local_reply::{LocalReply, grpc_response};
use crate::route::{AbortKind, Action, Cors, Redirect, RequestView, Route, split_authority};

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Non-zero once the connection carried a request-smuggling shape (a
    /// `sniff` problem code).
    pub smuggling: super::sniff::Flag,
    /// The gateway server port the connection arrived on (`None`: the
    /// sidecar listener): requests use that port's route table.
    pub gateway_port: Option<u16>,
    /// Activity and requests in flight, for the connection's timeouts.
    pub state: Arc<super::limits::ConnState>,
}

impl ConnInfo {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> ConnInfo {
        ConnInfo {
            local,
            remote,
            smuggling: Arc::default(),
            gateway_port: None,
            state: Arc::default(),
        }
    }
}

/// What the request path learned, for the access log.
pub struct Outcome {
    pub flags: Flags,
    pub details: String,
    pub transport_failure: Option<String>,
    pub upstream_host: Option<Arc<str>>,
    pub upstream_cluster: Option<Arc<str>>,
    pub upstream_service_time: Option<u64>,
    pub route_name: Option<Arc<str>>,
    /// The cluster the request went to, for the metric labels.
    pub cluster: Option<Arc<crate::compile::Cluster>>,
    /// Circuit-breaker permit and host guard, held until the response body
    /// ends.
    pub in_flight: Option<forward::InFlight>,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            flags: Flags::NONE,
            details: String::new(),
            transport_failure: None,
            upstream_host: None,
            upstream_cluster: None,
            upstream_service_time: None,
            route_name: None,
            cluster: None,
            in_flight: None,
        }
    }

    pub fn local(&mut self, r: &LocalReply) {
        self.flags.insert(r.flags);
        self.details = r.details.clone();
        if r.transport_failure.is_some() {
            self.transport_failure = r.transport_failure.clone();
        }
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn header_str(h: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn is_grpc(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// Serve one request. Never fails: every error becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if limits::head_too_large(
        &req,
        shared.limits.max_request_headers_kb.saturating_mul(1024),
    ) {
        return Ok(limits::head_too_large_response());
    }
    let started = Instant::now();
    let start_time = SystemTime::now();
    let (mut parts, incoming) = req.into_parts();
    // Istio's sidecar generates x-request-id when the client did not.
    parts.headers.entry(X_REQUEST_ID).or_insert_with(request_id);
    let grpc = is_grpc(&parts.headers);
    // Shares the request's bytes: no copy of the authority per request.
    let host = match parts.uri.authority() {
        Some(a) => Some(Host::Uri(a.clone())),
        None => parts.headers.get(header::HOST).cloned().map(Host::Header),
    };
    let authority = host.as_ref().and_then(Host::as_str);
    // The access-log fields cost a dozen strings: only when a log is on.
    let mut entry = shared.access_log.enabled().then(|| Entry {
        start_time: format_time(start_time),
        method: parts.method.as_str().to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        protocol: protocol(parts.version),
        x_forwarded_for: header_str(&parts.headers, "x-forwarded-for"),
        user_agent: header_str(&parts.headers, header::USER_AGENT),
        request_id: header_str(&parts.headers, X_REQUEST_ID),
        authority: authority.map(str::to_string),
        downstream_local_address: conn.local.to_string(),
        downstream_remote_address: conn.remote.to_string(),
        ..Default::default()
    });
    let mut outcome = Outcome::new();
    let bytes_in = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let conn_request = conn.state.request();
    let idle = StreamIdle::start(
        shared.limits.stream_idle_timeout,
        http_body::Body::is_end_stream(&incoming),
    );
    let incoming = {
        let counter = bytes_in.clone();
        body::boxed(Counted::new(
            IdleReset::new(incoming, idle.clone()),
            move |d| counter.store(d.bytes, Ordering::Relaxed),
        ))
    };
    let response = match authority {
        _ if shared.overload.active() => {
            shared.downstream.rq_overload_close.inc();
            let r = LocalReply::overloaded();
            outcome.local(&r);
            r.response(grpc)
        }
        Some(a) if conn.smuggling.load(Ordering::Acquire) == 0 => {
            // Boxed: hyper moves the request's future several times (an
            // HTTP/2 stream's into its task); a pointer is cheaper to move
            // than the routing state's kilobytes.
            let routed = Box::pin(route(
                &shared,
                &conn,
                &mut parts,
                incoming,
                a,
                grpc,
                &mut outcome,
            ));
            match within_stream_idle(routed, idle.as_deref()).await {
                Ok(r) => r,
                Err(request_complete) => {
                    shared.downstream.rq_idle_timeout.inc();
                    let r = LocalReply::stream_idle_timeout(request_complete);
                    outcome.local(&r);
                    let mut resp = r.response(grpc);
                    // The rest of the request body will not be read.
                    if !request_complete && parts.version < Version::HTTP_2 {
                        resp.headers_mut()
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
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        None => {
            let r = LocalReply::bad_request("missing_host_header");
            outcome.local(&r);
            r.response(grpc)
        }
    };
    let response_code = response.status().as_u16();
    if let Some(e) = entry.as_mut() {
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
    let mut flags = outcome.flags;
    let (parts_out, body_out) = response.into_parts();
    // A trailers-only gRPC response carries its status in the headers.
    let header_grpc_status = parts_out
        .headers
        .get(GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let destination = match &outcome.cluster {
        Some(c) => c.metric.clone(),
        None => crate::metrics::Destination::unknown(),
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
        let bytes_received = bytes_in.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
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
    Ok(Response::from_parts(parts_out, body::boxed(logged)))
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The request's authority: the URI's (HTTP/2, absolute form) or `Host`.
enum Host {
    Uri(http::uri::Authority),
    Header(HeaderValue),
}

impl Host {
    fn as_str(&self) -> Option<&str> {
        match self {
            Host::Uri(a) => Some(a.as_str()),
            Host::Header(v) => v.to_str().ok(),
        }
    }
}

/// A random UUID v4, as Envoy's request-id extension generates.
fn request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[at] = b'-';
            at += 1;
        }
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static(""))
}

/// Select the route and run its action.
async fn route(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
    body: Body,
    authority: &str,
    grpc: bool,
    outcome: &mut Outcome,
) -> Response<Body> {
    let snapshot = shared.snapshot.load_full();
    // Shares the URI's bytes, so `parts` stays free to change.
    let uri = parts.uri.clone();
    let (path, query) = (uri.path(), uri.query());
    let view = RequestView {
        method: parts.method.as_str(),
        scheme: uri.scheme_str().unwrap_or("http"),
        authority,
        path,
        query,
        headers: &parts.headers,
    };
    let table = match conn.gateway_port {
        Some(port) => snapshot.gateway.http(port),
        None => Some(&snapshot.routes),
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

    let origin = header_str(&parts.headers, header::ORIGIN);
    if let (Some(cors), Some(origin)) = (&route.cors, &origin)
        && parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
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
            return match kind {
                AbortKind::Http(status) => {
                    let r = LocalReply::fault_abort(status);
                    outcome.local(&r);
                    r.response(false)
                }
                AbortKind::Grpc(code) => {
                    outcome.flags.insert(Flags::FAULT_INJECTED);
                    outcome.details = "fault_filter_abort".into();
                    grpc_response(code, "fault filter abort")
                }
            };
        }
    }

    let mut response = match &route.action {
        Action::Direct { status, body: b } => {
            outcome.details = "direct_response".into();
            let mut r = Response::new(body::full(b.clone()));
            *r.status_mut() = *status;
            if !b.is_empty() {
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }
            r
        }
        Action::Redirect(rd) => {
            outcome.details = "via_redirect".into();
            redirect(rd, route, &uri, authority, path, query)
        }
        Action::Forward(clusters) => {
            // Inline: `handle` boxes this whole future once.
            let mut r = forward::forward(
                shared, &snapshot, route, clusters, conn, parts, body, authority, grpc, outcome,
            )
            .await;
            // The chosen destination's response operations, before the
            // route's (Envoy's weighted-cluster entry, then its route).
            if let Some(dest) = outcome
                .upstream_cluster
                .as_ref()
                .and_then(|name| clusters.iter().find(|c| c.name == *name))
            {
                dest.response_headers.apply(r.headers_mut());
            }
            r
        }
    };
    route.response_headers.apply(response.headers_mut());
    if let (Some(cors), Some(origin)) = (&route.cors, &origin) {
        decorate_cors(cors, origin, response.headers_mut());
    }
    response
}

/// A roll against a fraction in millionths.
pub fn hit(fraction: u32) -> bool {
    fraction >= 1_000_000 || (fraction > 0 && rand::random_range(0..1_000_000u32) < fraction)
}

fn redirect(
    rd: &Redirect,
    route: &Route,
    uri: &Uri,
    authority: &str,
    path: &str,
    query: Option<&str>,
) -> Response<Body> {
    let scheme = rd
        .scheme
        .as_deref()
        .unwrap_or(uri.scheme_str().unwrap_or("http"));
    let (_, orig_port) = split_authority(authority);
    let port_at = authority.rfind(':').filter(|_| !authority.ends_with(']'));
    // FROM_REQUEST_PORT: Istio writes the port the route was built for, the
    // service port the request was sent to.
    let port = rd
        .port
        .or_else(|| rd.derive_port_from_request.then_some(orig_port));
    // Envoy's `processRequestHost`: the request's host keeps its port unless
    // a new port is set or the scheme changes away from that port's default.
    let request_scheme = uri.scheme_str().unwrap_or("http");
    let host = match &rd.authority {
        Some(a) => a.as_str(),
        None if port_at.is_none() => authority,
        None if port.is_some()
            || (scheme != request_scheme
                && ((request_scheme == "http" && orig_port == 80)
                    || (request_scheme == "https" && orig_port == 443))) =>
        {
            &authority[..port_at.unwrap_or(authority.len())]
        }
        None => authority,
    };
    let new_path = match (&rd.uri, &rd.prefix_rewrite) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => match route.matcher.uri_prefix() {
            Some(prefix) if path.starts_with(prefix) => format!("{p}{}", &path[prefix.len()..]),
            _ => path.to_string(),
        },
        _ => path.to_string(),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let mut location = format!("{scheme}://{host}");
    if let Some(p) = port.filter(|p| *p != default_port) {
        location.push_str(&format!(":{p}"));
    }
    location.push_str(&new_path);
    if let Some(q) = query.filter(|_| !new_path.contains('?')) {
        location.push('?');
        location.push_str(q);
    }
    let mut r = Response::new(body::empty());
    *r.status_mut() = rd.status;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn origin_allowed(cors: &Cors, origin: &str) -> bool {
    cors.allow_origins.iter().any(|m| m.matches(origin))
}

/// A CORS preflight the proxy answers itself (Envoy's CORS filter); `None`
/// forwards it upstream (unmatched origin with `unmatchedPreflights: FORWARD`).
fn preflight(cors: &Cors, origin: &str) -> Option<Response<Body>> {
    if !origin_allowed(cors, origin) {
        if cors.forward_unmatched_preflights {
            return None;
        }
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::OK;
        return Some(r);
    }
    let mut r = Response::new(body::empty());
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if let Some(v) = &cors.allow_methods {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v.clone());
    }
    if let Some(v) = &cors.allow_headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
    }
    if let Some(v) = &cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    Some(r)
}

fn decorate_cors(cors: &Cors, origin: &str, h: &mut HeaderMap) {
    if !origin_allowed(cors, origin) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if let Some(v) = &cors.expose_headers {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) never cross the proxy.
pub fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which are present; most messages carry
    // at most `Connection`, so each removal below is of a name known there.
    let mut found = [false; 8];
    for k in h.keys() {
        if let Some(i) = hop_by_hop_index(k) {
            found[i] = true;
        }
    }
    if !found.contains(&true) {
        return;
    }
    // Names the `Connection` header lists (RFC 9110 §7.6.1), besides the
    // usual `keep-alive` and `close` tokens, which need no lookup.
    let mut listed: Vec<HeaderName> = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        let Ok(s) = v.to_str() else { continue };
        for name in s.split(',').map(str::trim) {
            if name.is_empty()
                || name.eq_ignore_ascii_case("keep-alive")
                || (keep_upgrade && name.eq_ignore_ascii_case("upgrade"))
            {
                continue;
            }
            if name.eq_ignore_ascii_case("close") && !h.contains_key("close") {
                continue;
            }
            if let Ok(n) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
                listed.push(n);
            }
        }
    }
    for n in listed {
        h.remove(n);
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        let keep = match i {
            CONNECTION_AT | UPGRADE_AT => keep_upgrade,
            TE_AT => h
                .get(header::TE)
                .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers")),
            _ => false,
        };
        if found[i] && !keep {
            h.remove(n);
        }
    }
}

/// Headers never forwarded (`TE` except `trailers`; `Connection` and
/// `Upgrade` kept for an upgrade).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];
/// The name's place in `HOP_BY_HOP`: one match on the name (a length
/// switch, then one comparison) instead of eight `HeaderName` comparisons
/// per header.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "transfer-encoding" => 5,
        "upgrade" => 6,
        "te" => 7,
        _ => return None,
    })
}

const CONNECTION_AT: usize = 0;
const UPGRADE_AT: usize = 6;
const TE_AT: usize = 7;

/// Collect a body completely if it is at most `limit` bytes; otherwise
/// return what was read so far and the rest of the stream.
pub async fn buffer_body(mut body: Body, limit: usize) -> Result<Result<Bytes, (Bytes, Body)>, ()> {
    use bytes::BytesMut;
    if http_body::Body::is_end_stream(&body) {
        return Ok(Ok(Bytes::new()));
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Err((buf.freeze(), body)));
            }
        }
    }
    Ok(Ok(buf.freeze()))
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

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(header::TE, "gzip".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-keep", "1".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key(header::TE));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(h.contains_key("x-keep"));
        let mut h = HeaderMap::new();
        h.insert(header::TE, "trailers".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert!(h.contains_key(header::TE), "gRPC needs te: trailers");
    }

    #[test]
    fn hop_by_hop_index_agrees_with_the_table() {
        for (i, n) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(n), Some(i), "{n}");
        }
        assert_eq!(hop_by_hop_index(&header::HOST), None);
        assert_eq!(hop_by_hop_index(&HeaderName::from_static("x-te")), None);
    }

    #[test]
    fn an_upgrade_keeps_connection_and_upgrade_only() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, "Upgrade".parse().unwrap());
        h.append(header::CONNECTION, "X-Other".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        h.insert("x-other", "1".parse().unwrap());
        h.insert("proxy-authorization", "secret".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        strip_hop_by_hop(&mut h, true);
        assert!(h.contains_key(header::UPGRADE));
        assert!(h.contains_key(header::CONNECTION));
        assert!(
            !h.contains_key("x-other"),
            "listed in a second Connection line"
        );
        assert!(!h.contains_key("proxy-authorization"));
        assert!(!h.contains_key(header::TRANSFER_ENCODING));
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key(header::UPGRADE));
        assert!(!h.contains_key(header::CONNECTION));
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "close".parse().unwrap());
        h.insert("close", "x".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }
}
