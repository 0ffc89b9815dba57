//! The load generator of `scripts/soak.sh`: mixed HTTP/1.1, h2c and gRPC
//! requests through the proxy for a fixed time, each classified by what it
//! asked for, so expected failures are told apart from real ones:
//!
//! - `GET web.soak/ok` over HTTP/1.1 and h2c, and the unary gRPC call
//!   `grpc.soak/soak.Echo/Unary`: must succeed (200; grpc-status 0);
//! - `GET web.soak/fault/...`: a VirtualService fault aborts half with 503
//!   (flag FI): 503 is expected, 200 too;
//! - `GET flap.soak/flap`: one of its two endpoints is killed and restarted
//!   by the soak script; Istio's default retries hide refused connections,
//!   but a request in flight on the killed endpoint fails (503 UC, `reset`
//!   is not retried by default). Such failures are expected only within a
//!   window after a kill (the kill times come from `--kills FILE`).
//!
//! Usage: `soak_client --proxy ADDR --secs N [--concurrency C] [--kills FILE]`.
//! Prints `key=value` lines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    H1Ok,
    H2Ok,
    Grpc,
    Fault,
    Flap,
}

const KINDS: [Kind; 5] = [Kind::H1Ok, Kind::H2Ok, Kind::Grpc, Kind::Fault, Kind::Flap];

#[derive(Default)]
struct Tally {
    sent: BTreeMap<String, u64>,
    ok: u64,
    fault_expected: u64,
    /// (epoch ms, what) of failed `/flap` requests, judged at the end.
    flap_failures: Vec<(u64, String)>,
    unexpected: Vec<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// This worker's h2c connection to the proxy (prior knowledge), opened on
/// first use and again after it failed.
async fn h2_sender(slot: &mut Option<H2Sender>, proxy: SocketAddr) -> Result<H2Sender, String> {
    if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
        return Ok(s.clone());
    }
    let stream = tokio::net::TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    *slot = Some(sender.clone());
    Ok(sender)
}

/// One request of `kind`: `Ok(())` if it succeeded, else what went wrong.
async fn one(
    h1: &HttpClient,
    h2: &mut Option<H2Sender>,
    proxy: SocketAddr,
    kind: Kind,
    n: u64,
) -> Result<(), String> {
    let (host, path, version, grpc) = match kind {
        Kind::H1Ok => ("web.soak", "/ok".to_string(), Version::HTTP_11, false),
        Kind::H2Ok => ("web.soak", "/ok".to_string(), Version::HTTP_2, false),
        Kind::Grpc => (
            "grpc.soak",
            "/soak.Echo/Unary".to_string(),
            Version::HTTP_2,
            true,
        ),
        Kind::Fault => ("web.soak", format!("/fault/{n}"), Version::HTTP_11, false),
        Kind::Flap => ("flap.soak", "/flap".to_string(), Version::HTTP_11, false),
    };
    let mut b = Request::builder().version(version);
    if version == Version::HTTP_2 {
        b = b.uri(format!("http://{host}{path}"));
    } else {
        b = b.uri(format!("http://{proxy}{path}")).header("host", host);
    }
    let req = if grpc {
        let msg = b"soak-ping";
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        framed.extend_from_slice(msg);
        b.method("POST")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(framed)))
    } else {
        b.body(Full::new(Bytes::new()))
    }
    .map_err(|e| format!("build: {e}"))?;
    let sent = async {
        if version == Version::HTTP_2 {
            let mut sender = h2_sender(h2, proxy).await?;
            sender
                .ready()
                .await
                .map_err(|e| format!("h2 not ready: {e}"))?;
            sender
                .send_request(req)
                .await
                .map_err(|e| format!("error: {e}"))
        } else {
            h1.request(req).await.map_err(|e| format!("error: {e}"))
        }
    };
    let resp = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .map_err(|_| "no response in 10s".to_string())??;
    let status = resp.status().as_u16();
    let header_status = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let collected = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .map_err(|_| "body not complete in 10s".to_string())?
        .map_err(|e| format!("body error: {e}"))?;
    if grpc {
        let trailer_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let st = trailer_status.or(header_status);
        return if status == 200 && st.as_deref() == Some("0") {
            Ok(())
        } else {
            Err(format!("grpc {status} grpc-status {st:?}"))
        };
    }
    if status == 200 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let Some(proxy) = arg("--proxy").and_then(|p| p.parse::<SocketAddr>().ok()) else {
        eprintln!("usage: soak_client --proxy IP:PORT --secs N [--concurrency C] [--kills FILE]");
        std::process::exit(64);
    };
    let secs: u64 = arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(60);
    let concurrency: usize = arg("--concurrency")
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    let kills = arg("--kills");

    let h1: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (h1, tally, stop) = (h1.clone(), tally.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut h2 = None;
            let mut n = w as u64;
            while !stop.load(Ordering::Relaxed) {
                let kind = KINDS[(n % KINDS.len() as u64) as usize];
                let at = now_ms();
                let r = one(&h1, &mut h2, proxy, kind, n).await;
                let mut t = tally.lock().await;
                *t.sent.entry(format!("{kind:?}")).or_default() += 1;
                match (kind, r) {
                    (_, Ok(())) => t.ok += 1,
                    (Kind::Fault, Err(e)) if e == "status 503" => t.fault_expected += 1,
                    (Kind::Flap, Err(e)) => t.flap_failures.push((at, e)),
                    (k, Err(e)) => {
                        if t.unexpected.len() < 10_000 {
                            t.unexpected.push(format!("{k:?} {e}"));
                        }
                    }
                }
                n += concurrency as u64;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed().as_secs_f64();

    // A /flap failure is expected if it started within 2s after a kill.
    let kill_times: Vec<u64> = kills
        .and_then(|f| std::fs::read_to_string(f).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let t = tally.lock().await;
    let (mut flap_expected, mut flap_unexpected) = (0u64, Vec::new());
    for (at, e) in &t.flap_failures {
        if kill_times
            .iter()
            .any(|k| *at + 200 >= *k && *at <= k + 2000)
        {
            flap_expected += 1;
        } else {
            flap_unexpected.push(format!("Flap {e} at {at}"));
        }
    }
    let sent: u64 = t.sent.values().sum();
    let unexpected = t.unexpected.len() as u64 + flap_unexpected.len() as u64;
    println!("elapsed_secs={elapsed:.1}");
    println!("sent={sent}");
    println!("rate_per_sec={:.0}", sent as f64 / elapsed.max(0.001));
    for (k, v) in &t.sent {
        println!("sent_{k}={v}");
    }
    println!("succeeded={}", t.ok);
    println!("expected_failures={}", t.fault_expected + flap_expected);
    println!("expected_fault_503={}", t.fault_expected);
    println!("expected_flap_kill_window={flap_expected}");
    println!("unexpected_failures={unexpected}");
    let mut shown: BTreeMap<String, u64> = BTreeMap::new();
    for e in t.unexpected.iter().chain(flap_unexpected.iter()) {
        let key = e.split(" at ").next().unwrap_or(e).to_string();
        *shown.entry(key).or_default() += 1;
    }
    for (e, n) in shown {
        println!("unexpected_kind={e} count={n}");
    }
}
