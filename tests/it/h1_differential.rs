//! The differential test of strait's HTTP/1.1 codec (`strait::http1`, issue
//! #15): the same raw request bytes through the codec and through hyper's
//! HTTP/1.1 server (httparse underneath), which serves strait's listener
//! today. Where both accept a request, the parsed heads (method, target,
//! version, headers) and the decoded body and trailers must agree. Where
//! one refuses what the other accepts, the difference must be one of the
//! deliberate choices below, each Envoy's (reliability.md cases 10-11):
//!
//! - Content-Length together with Transfer-Encoding: hyper drops the
//!   Content-Length (RFC 9112 §6.3); the codec refuses, 400
//!   (`allow_chunked_length: false`);
//! - a Transfer-Encoding other than exactly one `chunked`: hyper decodes
//!   `gzip, chunked` or two `chunked` lines as chunked; the codec answers
//!   501 (the Pingora CVE-2026-2835 fix);
//! - a bare LF ending a line of the head or of the chunked framing:
//!   httparse and hyper accept some, the codec refuses them (400,
//!   reliability.md case 10).
//!
//! The inputs: the `http1` fuzz corpus (raw client bytes) and generated
//! requests crossing request lines, framing headers, other headers, bodies
//! and line ends.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use strait::http1::chunked::{Chunk, Decoder};
use strait::http1::{Framing, HeadLimits, Refusal, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as either parser sees it, names lowercased and lines sorted
/// (hyper's `HeaderMap` keeps the order of one name's values only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    method: String,
    target: Vec<u8>,
    http10: bool,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    trailers: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
enum Verdict {
    Accepted(Message),
    /// Refused (why, for the codec), and whether by the chunked decoder.
    Refused(Option<Refusal>, bool),
    /// The input ends inside the message.
    Incomplete,
}

fn sorted<'a>(lines: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = lines
        .map(|(n, val)| {
            (
                String::from_utf8_lossy(n).to_ascii_lowercase(),
                val.to_vec(),
            )
        })
        .collect();
    v.sort();
    // hyper keeps one of repeated equal Content-Length lines; the request
    // path writes its own framing headers anyway.
    v.dedup_by(|a, b| a.0 == "content-length" && a == b);
    v
}

fn ours(input: &[u8]) -> Verdict {
    let limits = HeadLimits::default();
    let mut buf = BytesMut::from(input);
    let head = match strait::http1::parse_request(&mut buf, &limits) {
        Err(r) => return Verdict::Refused(Some(r), false),
        Ok(None) => return Verdict::Incomplete,
        Ok(Some(h)) => h,
    };
    let mut body = Vec::new();
    let mut trailers = Vec::new();
    match head.body {
        Framing::Empty => {}
        Framing::Length(n) => {
            if (buf.len() as u64) < n {
                return Verdict::Incomplete;
            }
            body.extend_from_slice(&buf[..n as usize]);
        }
        Framing::Chunked => {
            let mut d = Decoder::new(limits);
            loop {
                match d.decode(&mut buf) {
                    Err(r) => return Verdict::Refused(Some(r), true),
                    Ok(None) => return Verdict::Incomplete,
                    Ok(Some(Chunk::Data(data))) => body.extend_from_slice(&data),
                    Ok(Some(Chunk::End(t))) => {
                        trailers = sorted(t.iter());
                        break;
                    }
                }
            }
        }
        Framing::UntilClose => unreachable!("requests are never delimited by close"),
    }
    Verdict::Accepted(Message {
        method: head.method().to_string(),
        target: head.uri().to_string().into_bytes(),
        http10: head.version == Version::Http10,
        headers: sorted(head.headers()),
        body,
        trailers,
    })
}

async fn hyper(input: &[u8]) -> Verdict {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let seen: Arc<Mutex<Vec<Option<Message>>>> = Arc::default();
    let record = seen.clone();
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let record = record.clone();
        async move {
            let (parts, incoming) = req.into_parts();
            let collected = incoming.collect().await;
            let message = collected.ok().map(|c| {
                let trailers = c
                    .trailers()
                    .map(|t| sorted(t.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))))
                    .unwrap_or_default();
                Message {
                    method: parts.method.to_string(),
                    target: parts.uri.to_string().into_bytes(),
                    http10: parts.version == http::Version::HTTP_10,
                    headers: sorted(
                        parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
                    ),
                    body: c.to_bytes().to_vec(),
                    trailers,
                }
            });
            record.lock().unwrap().push(message);
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                bytes::Bytes,
            >::new()))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(TokioIo::new(server), svc);
    let task = tokio::spawn(conn);
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut response));
    assert!(read.await.is_ok(), "hyper did not finish {input:?}");
    task.abort();
    let first = seen.lock().unwrap().first().cloned();
    match first {
        Some(Some(m)) => Verdict::Accepted(m),
        Some(None) => Verdict::Incomplete,
        None if response.starts_with(b"HTTP/1.1 4") || response.starts_with(b"HTTP/1.1 5") => {
            Verdict::Refused(None, false)
        }
        None => Verdict::Incomplete,
    }
}

/// The head (after blank lines) and what follows it.
fn split_head(input: &[u8]) -> (&[u8], &[u8]) {
    let start = input
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(input.len());
    let input = &input[start..];
    let end = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(input.len(), |p| p + 4);
    input.split_at(end)
}

fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &c)| c == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// Why the codec may refuse what hyper accepts (the module comment's list).
fn deliberate(input: &[u8], refusal: Option<Refusal>, in_body: bool) -> bool {
    let (head, rest) = split_head(input);
    match refusal {
        Some(Refusal::ContentLengthAndChunked | Refusal::TransferEncoding) => true,
        Some(Refusal::Malformed) if in_body => has_bare_lf(rest),
        Some(Refusal::Malformed) => has_bare_lf(head),
        _ => false,
    }
}

fn generated() -> Vec<Vec<u8>> {
    let lines: &[&[u8]] = &[
        b"GET / HTTP/1.1",
        b"POST /p?q=1&r HTTP/1.1",
        b"GET http://a.example/x?y HTTP/1.1",
        b"GET http://a.example HTTP/1.1",
        b"OPTIONS * HTTP/1.1",
        b"GET / HTTP/1.0",
        b"PURGE /x HTTP/1.1",
        b"get / HTTP/1.1",
        b"GET /a b HTTP/1.1",
        b"GET / HTTP/2.0",
        b"GET / http/1.1",
        b"GET /%zz HTTP/1.1",
    ];
    let framing: &[&[u8]] = &[
        b"",
        b"Content-Length: 5\r\n",
        b"Content-Length: 5, 5\r\n",
        b"Content-Length: 5\r\nContent-Length: 6\r\n",
        b"Content-Length: 5\r\nContent-Length: 5\r\n",
        b"Content-Length: +5\r\n",
        b"Content-Length:  5 \r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: Chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding : chunked\r\n",
        b"Transfer-Encoding:\tchunked\r\n",
        b"Transfer-Encoding: chunked\x0b\r\n",
        b"Transfer-Encoding: xchunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b" Transfer-Encoding: chunked\r\n",
    ];
    let others: &[&[u8]] = &[
        b"Host: a\r\n",
        b"Host: a\r\nX-Y: \xff\xfe\r\n",
        b"Host: a\r\nX-Y: a\x01b\r\n",
        b"Host: a\r\nX-F: a\r\n b\r\n",
        b"Host: a\r\nConnection: close\r\n",
        b"host: a\r\nX-Empty:\r\n",
        b"Host: a\r\nX Y: 1\r\n",
    ];
    let bodies: &[&[u8]] = &[
        b"hello",
        b"5\r\nhello\r\n0\r\n\r\n",
        b"5;e=1\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        b"Z\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"11111111111111111\r\n",
        b"3 \r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcXX0\r\n\r\n",
    ];
    let mut cases = Vec::new();
    for line in lines {
        for f in framing {
            for body in bodies {
                cases.push([*line, b"\r\nHost: a\r\n", f, b"\r\n", body].concat());
            }
        }
    }
    for line in &lines[..3] {
        for o in others {
            for f in &framing[..3] {
                cases.push([*line, b"\r\n", o, f, b"\r\n", bodies[0]].concat());
            }
        }
    }
    // One line end at a time turned into a bare LF.
    let base = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    for (i, w) in base.windows(2).enumerate() {
        if w == b"\r\n" {
            let mut c = base.clone();
            c.remove(i);
            cases.push(c);
        }
    }
    cases
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/http1");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fuzz/corpus/http1")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[tokio::test]
async fn the_codec_and_hyper_agree_but_for_envoys_refusals() {
    let inputs: Vec<Vec<u8>> = corpus().into_iter().chain(generated()).collect();
    let mut compared = 0;
    let mut deliberate_refusals = 0;
    let mut problems = Vec::new();
    for input in &inputs {
        let (a, b) = (ours(input), hyper(input).await);
        match (&a, &b) {
            (Verdict::Accepted(x), Verdict::Accepted(y)) => {
                compared += 1;
                if x != y {
                    problems.push(format!(
                        "{:?}: parsed differently\n  ours  {x:?}\n  hyper {y:?}",
                        String::from_utf8_lossy(input)
                    ));
                }
            }
            (Verdict::Refused(r, in_body), Verdict::Accepted(_)) => {
                if deliberate(input, *r, *in_body) {
                    deliberate_refusals += 1;
                } else {
                    problems.push(format!(
                        "{:?}: the codec refuses ({r:?}) what hyper accepts",
                        String::from_utf8_lossy(input)
                    ));
                }
            }
            (Verdict::Accepted(_), Verdict::Refused(..)) => {
                problems.push(format!(
                    "{:?}: the codec accepts what hyper refuses",
                    String::from_utf8_lossy(input)
                ));
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // The comparison is not vacuous: many requests parsed by both, and the
    // deliberate refusals happened.
    assert!(compared > 300, "only {compared} requests accepted by both");
    assert!(deliberate_refusals > 50, "{deliberate_refusals}");
}
