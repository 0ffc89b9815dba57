//! Responses the proxy makes itself, with Envoy's status, body text and
//! response-code details, converted to a gRPC status for gRPC callers (as
//! Envoy's local replies are).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};

use super::body;
use super::exchange::{GRPC_STATUS, Reply};
use super::flags::Flags;

/// A locally generated reply.
#[derive(Debug, Clone)]
pub struct LocalReply {
    pub status: StatusCode,
    pub body: &'static str,
    pub flags: Flags,
    /// `%RESPONSE_CODE_DETAILS%`.
    pub details: String,
    /// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`.
    pub transport_failure: Option<String>,
    /// The `grpc-status` a gRPC caller gets, when not the one mapped from
    /// `status` (a fault abort's `grpcStatus`).
    pub grpc_status: Option<u32>,
}

impl LocalReply {
    pub fn no_route() -> LocalReply {
        LocalReply {
            status: StatusCode::NOT_FOUND,
            body: "",
            flags: Flags::NO_ROUTE_FOUND,
            details: "route_not_found".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    pub fn no_cluster() -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "",
            flags: Flags::NO_CLUSTER_FOUND,
            details: "cluster_not_found".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    pub fn no_healthy_upstream() -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "no healthy upstream",
            flags: Flags::NO_HEALTHY_UPSTREAM,
            details: "no_healthy_upstream".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// Circuit breaking (`http2MaxRequests` exceeded, or `maxConnections`
    /// reached with the `http1MaxPendingRequests` queue full): Envoy's
    /// connection pool fails the stream with reset reason `overflow`
    /// (counted as `upstream_rq_pending_overflow`); the reply carries
    /// `x-envoy-overloaded: true`.
    pub fn overflow() -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            flags: Flags::UPSTREAM_OVERFLOW,
            details: "upstream_reset_before_response_started{overflow}".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// `loadBalancer.simple: PASSTHROUGH` needs the address the caller
    /// originally dialled (iptables interception), which strait does not
    /// have. Envoy's ORIGINAL_DST balancer finds no host in that case (UH).
    pub fn passthrough_unsupported() -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "loadBalancer PASSTHROUGH (original destination) is not supported by strait: it needs iptables interception",
            flags: Flags::NO_HEALTHY_UPSTREAM,
            details: "passthrough_lb_unsupported".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    pub fn connect_failure(reason: &str) -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            flags: Flags::UPSTREAM_CONNECTION_FAILURE,
            details: "upstream_reset_before_response_started{connection_failure}".into(),
            transport_failure: Some(reason.to_string()),
            grpc_status: None,
        }
    }

    pub fn connection_termination() -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            flags: Flags::UPSTREAM_CONNECTION_TERMINATION,
            details: "upstream_reset_before_response_started{connection_termination}".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    pub fn protocol_error() -> LocalReply {
        LocalReply {
            status: StatusCode::BAD_GATEWAY,
            body: "upstream connect error or disconnect/reset before headers. reset reason: protocol error",
            flags: Flags::UPSTREAM_PROTOCOL_ERROR,
            details: "upstream_reset_before_response_started{protocol_error}".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    pub fn timeout() -> LocalReply {
        LocalReply {
            status: StatusCode::GATEWAY_TIMEOUT,
            body: "upstream request timeout",
            flags: Flags::UPSTREAM_REQUEST_TIMEOUT,
            details: "upstream_response_timeout".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// Envoy's fault filter `abortWithStatus`: a local reply with the
    /// abort's HTTP status, so a gRPC caller gets HTTP 200 with the status
    /// mapped by `httpToGrpcStatus` (500 → 2 UNKNOWN).
    pub fn fault_abort(status: StatusCode) -> LocalReply {
        LocalReply {
            status,
            body: "fault filter abort",
            flags: Flags::FAULT_INJECTED,
            details: "fault_filter_abort".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// A fault abort with Istio's `grpcStatus`: Envoy's `abortStatus` sends
    /// it with HTTP 200, so a gRPC caller gets that `grpc-status` and any
    /// other caller a plain 200 "fault filter abort".
    pub fn fault_abort_grpc(code: u32) -> LocalReply {
        LocalReply {
            grpc_status: Some(code),
            ..LocalReply::fault_abort(StatusCode::OK)
        }
    }

    /// Envoy's stream idle timeout (`stream_idle_timeout`, flag SI): 408
    /// while the request is still arriving, 504 once it has
    /// (`Http::Utility::maybeRequestTimeoutCode`).
    pub fn stream_idle_timeout(request_complete: bool) -> LocalReply {
        LocalReply {
            status: if request_complete {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::REQUEST_TIMEOUT
            },
            body: "stream timeout",
            flags: Flags::STREAM_IDLE_TIMEOUT,
            details: "stream_idle_timeout".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// Envoy's overload manager `stop_accepting_requests` action: 503
    /// "envoy overloaded", flag OM, details `overload`, and no
    /// `x-envoy-overloaded` header (that one is the router's, for UO).
    pub fn overloaded() -> LocalReply {
        LocalReply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: "envoy overloaded",
            flags: Flags::OVERLOAD_MANAGER,
            details: "overload".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// The client went away while its request body was being read (Envoy:
    /// a downstream reset, flag DC).
    pub fn downstream_disconnect() -> LocalReply {
        LocalReply {
            flags: Flags::DOWNSTREAM_CONNECTION_TERMINATION,
            ..LocalReply::bad_request("downstream_remote_disconnect")
        }
    }

    /// An `Upgrade` other than `websocket`: Istio enables only that one
    /// (`upgrade_configs`) and Envoy refuses any other with 403.
    pub fn upgrade_failed() -> LocalReply {
        LocalReply {
            status: StatusCode::FORBIDDEN,
            body: "",
            flags: Flags::NONE,
            details: "upgrade_failed".into(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    pub fn bad_request(details: &str) -> LocalReply {
        LocalReply {
            status: StatusCode::BAD_REQUEST,
            body: "Bad Request",
            flags: Flags::DOWNSTREAM_PROTOCOL_ERROR,
            details: details.to_string(),
            transport_failure: None,
            grpc_status: None,
        }
    }

    /// The response a client sees; gRPC callers get HTTP 200 with
    /// `grpc-status`/`grpc-message` (Envoy's `httpToGrpcStatus`).
    pub fn response(&self, grpc: bool) -> Reply {
        let mut r = if grpc {
            let status = self
                .grpc_status
                .unwrap_or_else(|| http_to_grpc(self.status.as_u16()));
            grpc_response(status, self.body.as_bytes())
        } else {
            self.http_response()
        };
        // Envoy's router adds it to overflow replies, gRPC ones included.
        if self.flags.contains(Flags::UPSTREAM_OVERFLOW) {
            r.headers.insert(
                HeaderName::from_static("x-envoy-overloaded"),
                HeaderValue::from_static("true"),
            );
        }
        r
    }

    fn http_response(&self) -> Reply {
        let mut r = Reply::with_status(
            self.status,
            if self.body.is_empty() {
                body::empty()
            } else {
                body::full(Bytes::from_static(self.body.as_bytes()))
            },
        );
        if !self.body.is_empty() {
            r.headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        r
    }
}

/// A trailers-only gRPC response carrying `status`, and `message` (a local
/// reply's body text) percent-encoded as `grpc-message` (Envoy's
/// `Utility::sendLocalReply`).
pub fn grpc_response(status: u32, message: &[u8]) -> Reply {
    let mut r = Reply::new(body::empty());
    let h = &mut r.headers;
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(GRPC_STATUS, HeaderValue::from(status));
    if let Some(v) = grpc_message_value(message) {
        h.insert(GRPC_MESSAGE, v);
    }
    r
}

/// `grpc-message` for a body text; none for an empty one. Envoy drops the
/// one trailing newline a formatted body ends with.
fn grpc_message_value(text: &[u8]) -> Option<HeaderValue> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    HeaderValue::from_str(&grpc_message(text)).ok()
}

/// The bytes gRPC's `grpc-message` escapes (PROTOCOL-HTTP2.md, Envoy's
/// `PercentEncoding::encode`): below space, `~` and above, and `%`.
const GRPC_MESSAGE_ESCAPED: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b'~').add(b'%');

fn grpc_message(text: &[u8]) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_encode(text, GRPC_MESSAGE_ESCAPED).into()
}

/// A response the proxy built itself (a direct response, a redirect) as a
/// gRPC caller gets it: Envoy sends both through `sendLocalReply`, which
/// keeps the headers already set (`Location`, header operations), makes the
/// status 200 with `grpc-status` mapped from the HTTP status and carries the
/// body text as `grpc-message`.
pub fn into_grpc(mut r: Reply, body_text: &[u8]) -> Reply {
    let status = http_to_grpc(r.status.as_u16());
    r.status = StatusCode::OK;
    r.body = body::empty();
    let h = &mut r.headers;
    h.remove(header::CONTENT_LENGTH.as_str());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(GRPC_STATUS, HeaderValue::from(status));
    h.remove(GRPC_MESSAGE.as_str());
    if let Some(v) = grpc_message_value(body_text) {
        h.insert(GRPC_MESSAGE, v);
    }
    r
}

const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn http_to_grpc(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_callers_get_unavailable_for_503() {
        let r = LocalReply::no_healthy_upstream().response(true);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers.get_str("grpc-status").unwrap(), "14");
        assert_eq!(
            r.headers.get_str("grpc-message").unwrap(),
            "no healthy upstream"
        );
    }

    #[test]
    fn overflow_replies_say_overloaded_to_grpc_callers_too() {
        for grpc in [false, true] {
            let r = LocalReply::overflow().response(grpc);
            assert_eq!(r.headers.get_str("x-envoy-overloaded").unwrap(), "true");
        }
        let r = LocalReply::overflow().response(true);
        assert_eq!(r.headers.get_str("grpc-status").unwrap(), "14");
    }

    #[test]
    fn stream_idle_timeout_is_408_until_the_request_is_complete_then_504() {
        let r = LocalReply::stream_idle_timeout(false).response(false);
        assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
        let r = LocalReply::stream_idle_timeout(true).response(false);
        assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            LocalReply::stream_idle_timeout(true).flags.to_string(),
            "SI"
        );
    }

    #[test]
    fn overload_manager_replies_are_503_envoy_overloaded_flag_om() {
        let l = LocalReply::overloaded();
        assert_eq!(l.flags.to_string(), "OM");
        let r = l.response(false);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!r.headers.contains("x-envoy-overloaded"));
    }

    #[test]
    fn fault_abort_http_status_is_mapped_for_grpc_callers() {
        // Envoy's fault filter sends its abort through sendLocalReply.
        let r = LocalReply::fault_abort(StatusCode::INTERNAL_SERVER_ERROR).response(true);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.headers.get_str("content-type").unwrap(),
            "application/grpc"
        );
        assert_eq!(r.headers.get_str("grpc-status").unwrap(), "2");
        assert_eq!(
            r.headers.get_str("grpc-message").unwrap(),
            "fault filter abort"
        );
    }

    #[test]
    fn fault_abort_grpc_status_is_200_for_other_callers() {
        // Envoy's `abortStatus`: a gRPC status abort is sent as HTTP 200.
        let l = LocalReply::fault_abort_grpc(14);
        assert_eq!(
            l.response(true).headers.get_str("grpc-status").unwrap(),
            "14"
        );
        let r = l.response(false);
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers.get_str("content-type").unwrap(), "text/plain");
    }

    #[test]
    fn grpc_message_is_percent_encoded_as_envoy_does() {
        let r = grpc_response(2, "50% ~ caf\u{e9}\n".as_bytes());
        assert_eq!(
            r.headers.get_str("grpc-message").unwrap(),
            "50%25 %7E caf%C3%A9"
        );
    }

    #[test]
    fn http_status_maps_to_grpc_status_as_envoy_does() {
        // Envoy `Grpc::Utility::httpToGrpcStatus`.
        for (http, grpc) in [
            (400, 13),
            (401, 16),
            (403, 7),
            (404, 12),
            (429, 14),
            (502, 14),
            (503, 14),
            (504, 14),
            (500, 2),
            (408, 2),
            (301, 2),
        ] {
            assert_eq!(http_to_grpc(http), grpc, "{http}");
        }
    }

    #[test]
    fn no_route_is_404_with_empty_body() {
        let r = LocalReply::no_route().response(false);
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(!r.headers.contains("content-type"));
    }
}
