//! An upstream for `scripts/soak.sh`: HTTP/1.1 and h2c on one port, answering
//! every request with 200 and its name, and a gRPC-like unary method
//! (`POST` with `content-type: application/grpc`) that echoes the request's
//! length-prefixed message with `grpc-status: 0` in the trailers.
//!
//! Usage: `soak_upstream ADDR NAME` (e.g. `127.0.0.1:18081 v1`). Killing and
//! restarting it on the same address is how the soak simulates a flapping
//! endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Out = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn serve(name: &'static str, req: Request<Incoming>) -> Result<Response<Out>, Infallible> {
    let grpc = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if grpc {
        // Echo the message (already length-prefixed), then the status.
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let out = Unary {
            data: Some(body),
            trailers: Some(trailers),
        }
        .boxed();
        return Ok(Response::builder()
            .header("content-type", "application/grpc")
            .body(out)
            .unwrap());
    }
    Ok(Response::builder()
        .header("x-upstream", name)
        .body(Full::new(Bytes::from_static(name.as_bytes())).boxed())
        .unwrap())
}

/// One data frame, then trailers: a unary gRPC response body.
struct Unary {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for Unary {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(name)) = (args.next(), args.next()) else {
        eprintln!("usage: soak_upstream ADDR NAME   (e.g. 127.0.0.1:18081 v1)");
        std::process::exit(64);
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak_upstream: bad address {addr:?}: {e}; use IP:PORT");
            std::process::exit(64);
        }
    };
    let name: &'static str = Box::leak(name.into_boxed_str());
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("soak_upstream: cannot listen on {addr}: {e}; is another one still running?");
            std::process::exit(1);
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let svc = service_fn(move |req| serve(name, req));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
