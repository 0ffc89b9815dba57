//! One HTTP/2 stream: its request through the request path, then its
//! response sent. A future polled by the connection's task (no task of its
//! own); a client RST_STREAM before the response drops the request's future
//! (hyper's `H2Stream` polls `poll_reset` the same way).

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Method, Request, Response};
use http_body::Body as _;

use super::request_body::{self, RequestBody};
use super::response;
use super::send_body::SendBody;
use crate::proxy::Shared;
use crate::proxy::body::Body;
use crate::proxy::exchange::Reply;
use crate::proxy::handler::{self, ConnInfo};

/// Serve the stream `request` arrived on.
pub(super) async fn serve(
    shared: Arc<Shared>,
    conn: ConnInfo,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, recv) = request.into_parts();
    if fields(&parts) > shared.limits.max_request_headers {
        too_many_headers(respond, recv);
        return;
    }
    // CONNECT, as hyper: no request body (the stream would be a tunnel's),
    // and a CONNECT announcing one is reset.
    let (body, _tunnel) = if parts.method == Method::CONNECT {
        if request_body::content_length(&parts.headers).is_some_and(|n| n != 0) {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
        (RequestBody::empty(), Some(recv))
    } else {
        (RequestBody::new(recv, &parts.headers), None)
    };
    let answer = {
        // Boxed: the stream's future is moved three times on its way into
        // its `FuturesUnordered` node, and the request path's future is most
        // of its size. Allocated first, then built in place (no copy).
        let mut handled = Box::into_pin(Box::write(
            Box::new_uninit(),
            handler::handle(shared, conn, parts.into(), body),
        ));
        poll_fn(|cx| {
            if let Poll::Ready(r) = handled.as_mut().poll(cx) {
                return Poll::Ready(Some(into_response(r)));
            }
            respond.poll_reset(cx).map(|_| None)
        })
        .await
    };
    // None: the client reset the stream; the request is dropped.
    if let Some(answer) = answer {
        send(respond, answer).await;
    }
}

/// The head's field count as Envoy counts it for `max_headers_count` on
/// HTTP/2 (`http2/codec_impl.cc`, `saveHeader`: the header map's size,
/// pseudo-headers included); h2 has no such limit of its own.
fn fields(parts: &http::request::Parts) -> usize {
    let uri = &parts.uri;
    let pseudo = 1
        + usize::from(uri.scheme().is_some())
        + usize::from(uri.authority().is_some())
        + usize::from(uri.path_and_query().is_some());
    parts.headers.len() + pseudo
}

/// Over `max_headers_count`: 431 with nothing else, as h2 answers a list
/// over SETTINGS_MAX_HEADER_LIST_SIZE. A request still open is then reset
/// NO_ERROR (Envoy's `doEndStream`; RFC 9113 §8.1), as the codec server
/// does: h2 sends that reset itself once both halves of the stream are
/// dropped with the response sent and the request still streaming
/// (`maybe_cancel`); an explicit reset would discard the queued 431.
fn too_many_headers(mut respond: SendResponse<Bytes>, recv: RecvStream) {
    let head = Response::builder()
        .status(http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        .body(())
        .unwrap_or_default();
    let _ = respond.send_response(head, true);
    drop((respond, recv));
}

/// What `handler::handle` returns, as the response h2 sends (the one place
/// that knows its type).
fn into_response(r: Reply) -> Response<Body> {
    r.into_http()
}

/// Send the response head, then its body unless it is empty.
async fn send(mut respond: SendResponse<Bytes>, answer: Response<Body>) {
    let (mut head, body) = answer.into_parts();
    let end = body.is_end_stream();
    let length = if end { None } else { body.size_hint().exact() };
    response::prepare(&mut head.headers, length);
    match respond.send_response(Response::from_parts(head, ()), end) {
        Ok(tx) if !end => {
            let mut body = SendBody::new(tx, body);
            poll_fn(|cx| body.poll_send(cx)).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::debug!(error = %e, "sending an HTTP/2 response head failed");
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
        }
    }
}
