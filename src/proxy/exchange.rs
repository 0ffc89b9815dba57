//! What one request carries through the request path's phases (route,
//! plan, attempts, response): the connection it arrived on, what the path
//! learned for the access log and metrics, and what it holds while in
//! flight. Below both `handler` and `forward`.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderName;

use super::body::Body;
use super::flags::Flags;
use super::local_reply::LocalReply;
use crate::cluster::{HostGuard, Permit};
use crate::header_list::HeaderList;

pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// A request's head as the request path carries it: `http`'s parts but
/// for the header list, which strait's HTTP/1.1 codec fills without
/// hashing or copying.
#[derive(Debug)]
pub struct RequestParts {
    pub method: http::Method,
    pub uri: http::Uri,
    pub version: http::Version,
    pub headers: HeaderList,
    pub extensions: http::Extensions,
}

impl From<http::request::Parts> for RequestParts {
    fn from(p: http::request::Parts) -> RequestParts {
        RequestParts {
            method: p.method,
            uri: p.uri,
            version: p.version,
            headers: HeaderList::from(p.headers),
            extensions: p.extensions,
        }
    }
}

/// A response as the request path carries it: `http`'s but for the header
/// list, which strait's HTTP/1.1 codec fills and writes without a
/// `HeaderMap`. Converted only where hyper or h2 need `http` types.
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub version: http::Version,
    pub headers: HeaderList,
    pub extensions: http::Extensions,
    pub body: Body,
}

impl Reply {
    /// A 200 with no headers.
    pub fn new(body: Body) -> Reply {
        Reply::with_status(http::StatusCode::OK, body)
    }

    pub fn with_status(status: http::StatusCode, body: Body) -> Reply {
        Reply {
            status,
            version: http::Version::HTTP_11,
            headers: HeaderList::new(),
            extensions: http::Extensions::new(),
            body,
        }
    }

    /// As `http` types, for hyper's and h2's servers. The lines come from
    /// strait's codec (whose byte rules are `http`'s) or from `http` types,
    /// so a line `http` refuses cannot occur; were one to, it is dropped
    /// rather than sent.
    pub fn into_http(self) -> http::Response<Body> {
        let mut r = http::Response::new(self.body);
        *r.status_mut() = self.status;
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers.to_header_map_lossy();
        *r.extensions_mut() = self.extensions;
        r
    }
}

impl From<http::Response<Body>> for Reply {
    fn from(r: http::Response<Body>) -> Reply {
        let (p, body) = r.into_parts();
        Reply {
            status: p.status,
            version: p.version,
            headers: HeaderList::from(p.headers),
            extensions: p.extensions,
            body,
        }
    }
}

/// The request's authority: the URI's (HTTP/2, absolute form) or `Host`,
/// both sharing the request's bytes.
pub enum Authority {
    Uri(http::uri::Authority),
    Header(http::HeaderValue),
}

impl Authority {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Authority::Uri(a) => Some(a.as_str()),
            Authority::Header(v) => crate::header_list::as_text(v.as_bytes()),
        }
    }

    /// As the upstream request's `Host`/`:authority` (a copy only for
    /// the URI's).
    pub fn to_value(&self) -> Option<http::HeaderValue> {
        match self {
            Authority::Uri(a) => http::HeaderValue::from_str(a.as_str()).ok(),
            Authority::Header(v) => Some(v.clone()),
        }
    }
}

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
    /// Set when TLS was terminated here (an HTTPS gateway server).
    pub tls: Option<Arc<TlsConn>>,
    /// Requests come from strait's own HTTP/1.1 codec, which bounds their
    /// heads itself (`proxy::h1_server`).
    pub head_checked: bool,
}

/// What a TLS handshake on an HTTPS gateway port decided.
#[derive(Debug)]
pub struct TlsConn {
    /// The HTTPS server it chose: Gateway `namespace/name`.
    pub gateway: String,
    /// The server's index in the Gateway's `spec.servers`.
    pub server: usize,
    /// The ClientHello's SNI (`%REQUESTED_SERVER_NAME%`).
    pub sni: Option<String>,
    /// `x-forwarded-client-cert` for the client certificate, if one was
    /// presented (Istio's gateway default `SANITIZE_SET`).
    pub xfcc: Option<http::HeaderValue>,
}

impl ConnInfo {
    pub fn new(local: SocketAddr, remote: SocketAddr) -> ConnInfo {
        ConnInfo {
            local,
            remote,
            smuggling: Arc::default(),
            gateway_port: None,
            state: Arc::default(),
            tls: None,
            head_checked: false,
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
    pub in_flight: Option<InFlight>,
}

impl Outcome {
    pub(super) fn new() -> Outcome {
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

/// What a forwarded request holds until its response body ends: the
/// cluster's `http2MaxRequests` permit, the `upstream_rq_active` gauge, and
/// the chosen host's active-request count (for least-request balancing).
pub struct InFlight {
    pub(super) _permit: Permit,
    pub(super) gauge: prometheus_client::metrics::gauge::Gauge,
    pub(super) host: Option<HostGuard>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A roll against a fraction in millionths.
pub fn hit(fraction: u32) -> bool {
    fraction >= 1_000_000
        || (fraction > 0 && crate::cluster::random::random_range(0..1_000_000u32) < fraction)
}
