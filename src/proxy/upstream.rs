//! Upstream connections: HTTP/1.1 keep-alive reuse and one multiplexed
//! HTTP/2 (h2c prior knowledge) connection per endpoint, over plain TCP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::body::Body;
use crate::route::UpstreamProtocol;

/// Idle HTTP/1.1 connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 128;

/// Why an upstream exchange failed before response headers.
#[derive(Debug, Clone)]
pub enum SendError {
    /// Could not connect (refused, unreachable, timed out): Envoy's UF.
    Connect(String),
    /// The connection closed or reset before response headers: UC / UR.
    /// `sent` is false when the request never left (safe to retry always).
    Reset { reason: String, sent: bool },
    /// The upstream answered with something that is not HTTP: UPE.
    Protocol(String),
}

impl SendError {
    pub fn reason(&self) -> &str {
        match self {
            SendError::Connect(r) | SendError::Protocol(r) => r,
            SendError::Reset { reason, .. } => reason,
        }
    }
}

#[derive(Default)]
struct Pools {
    h1: HashMap<Arc<str>, Vec<http1::SendRequest<Body>>>,
    h2: HashMap<Arc<str>, http2::SendRequest<Body>>,
}

pub struct Upstreams {
    pools: Mutex<Pools>,
    pub connect_timeout: Duration,
}

impl Upstreams {
    pub fn new(connect_timeout: Duration) -> Upstreams {
        Upstreams {
            pools: Mutex::new(Pools::default()),
            connect_timeout,
        }
    }

    /// Send one request to `endpoint` and wait for the response headers.
    pub async fn send(
        &self,
        endpoint: &Arc<str>,
        protocol: UpstreamProtocol,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        match protocol {
            UpstreamProtocol::Http1 => self.send_h1(endpoint, req).await,
            UpstreamProtocol::H2c => self.send_h2(endpoint, req).await,
        }
    }

    async fn connect(&self, endpoint: &str) -> Result<TcpStream, SendError> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(endpoint)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(s)
            }
            Ok(Err(e)) => Err(SendError::Connect(connect_reason(&e))),
            Err(_) => Err(SendError::Connect("connection timeout".into())),
        }
    }

    fn idle_h1(&self, endpoint: &Arc<str>) -> Option<http1::SendRequest<Body>> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let list = pools.h1.get_mut(endpoint)?;
        // Busy connections (a response body still streaming) stay listed
        // until they are ready again; closed ones go.
        list.retain(|s| !s.is_closed());
        let pos = list.iter().position(|s| s.is_ready())?;
        Some(list.swap_remove(pos))
    }

    fn put_h1(&self, endpoint: &Arc<str>, s: http1::SendRequest<Body>) {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let list = pools.h1.entry(endpoint.clone()).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(s);
        }
    }

    async fn send_h1(
        &self,
        endpoint: &Arc<str>,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = match self.idle_h1(endpoint) {
            Some(s) => s,
            None => self.handshake_h1(endpoint).await?,
        };
        match sender.send_request(req).await {
            Ok(resp) => {
                // Keep-alive: the sender becomes ready again once this
                // response's body has been read; `idle_h1` checks that.
                if !resp
                    .headers()
                    .get(http::header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
                {
                    self.put_h1(endpoint, sender);
                }
                Ok(resp)
            }
            Err(e) => Err(classify(&e)),
        }
    }

    async fn handshake_h1(
        &self,
        endpoint: &Arc<str>,
    ) -> Result<http1::SendRequest<Body>, SendError> {
        let stream = self.connect(endpoint).await?;
        let (sender, conn) = http1::Builder::new()
            .preserve_header_case(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream HTTP/1.1 connection ended");
            }
        });
        Ok(sender)
    }

    async fn send_h2(
        &self,
        endpoint: &Arc<str>,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, SendError> {
        let existing = {
            let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            pools.h2.get(endpoint).filter(|s| !s.is_closed()).cloned()
        };
        let mut sender = match existing {
            Some(s) => s,
            None => {
                let stream = self.connect(endpoint).await?;
                let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                    .handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| SendError::Connect(e.to_string()))?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                    }
                });
                let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
                pools.h2.insert(endpoint.clone(), sender.clone());
                sender
            }
        };
        if sender.ready().await.is_err() {
            return Err(SendError::Reset {
                reason: "connection closed".into(),
                sent: false,
            });
        }
        sender.send_request(req).await.map_err(|e| classify(&e))
    }
}

fn connect_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "delayed connect error: Connection refused".into(),
        std::io::ErrorKind::TimedOut => "connection timeout".into(),
        _ => e.to_string(),
    }
}

/// Map hyper's error to what Envoy would call it.
fn classify(e: &hyper::Error) -> SendError {
    if e.is_canceled() {
        return SendError::Reset {
            reason: "connection closed before the request was sent".into(),
            sent: false,
        };
    }
    if e.is_parse() || e.is_parse_status() || e.is_parse_too_large() {
        return SendError::Protocol(e.to_string());
    }
    SendError::Reset {
        reason: e.to_string(),
        sent: true,
    }
}
