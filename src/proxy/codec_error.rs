//! Requests hyper refuses before they reach the handler (a request head it
//! cannot parse, one over the size limit): hyper answers them itself, and
//! strait logs them as Envoy logs its codec errors, with flag DPE, so a
//! client sending broken HTTP shows up in the access log.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::Shared;
use super::access_log::{Entry, format_time};
use super::flags::Flags;

/// Log the connection error `err` if it is a request hyper answered itself.
pub fn log(
    shared: &Shared,
    local: SocketAddr,
    remote: SocketAddr,
    started: SystemTime,
    err: &(dyn std::error::Error + 'static),
) {
    if !shared.access_log.enabled() {
        return;
    }
    let Some((code, details)) = refused(err) else {
        return;
    };
    log_refusal(shared, local, remote, started, code, details);
}

/// Log a request refused before it reached the request path (strait's own
/// HTTP/1.1 codec, or hyper), with flag DPE.
pub fn log_refusal(
    shared: &Shared,
    local: SocketAddr,
    remote: SocketAddr,
    started: SystemTime,
    code: u16,
    details: &str,
) {
    if !shared.access_log.enabled() {
        return;
    }
    shared.access_log.log(&Entry {
        start_time: format_time(started),
        method: "-".into(),
        path: "-".into(),
        protocol: "HTTP/1.1",
        response_code: code,
        response_flags: Flags::DOWNSTREAM_PROTOCOL_ERROR,
        response_code_details: details.into(),
        downstream_local_address: local.to_string(),
        downstream_remote_address: remote.to_string(),
        ..Default::default()
    });
}

/// The status hyper sent for a parse error (its `Server::on_error`), with
/// Envoy's details; `None` for errors hyper answers with nothing.
fn refused(err: &(dyn std::error::Error + 'static)) -> Option<(u16, &'static str)> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if !h.is_parse() || h.is_parse_version_h2() {
                return None;
            }
            if h.is_parse_too_large() {
                return Some(if h.to_string().contains("URI") {
                    (414, "http1.codec_error")
                } else {
                    (431, "http1.headers_too_large")
                });
            }
            return Some((400, "http1.codec_error"));
        }
        cur = e.source();
    }
    None
}
