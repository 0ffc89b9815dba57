//! The `h1codec` fuzz target: raw bytes through the HTTP/1.1 codec
//! (`crate::http1`) as a connection would read them, whole and a few bytes
//! at a time; both must find the same messages, bodies and refusals. The
//! same bytes are also read as upstream responses.

use bytes::BytesMut;

use crate::http1::chunked::{Chunk, Decoder};
use crate::http1::head::{RequestReader, ResponseReader};
use crate::http1::{Framing, HeadLimits, Refusal};

/// Each message's head bytes and body (trailers appended), then how the
/// stream ended (a refusal, or `None` for the end of the input).
type Found = (Vec<(Vec<u8>, Vec<u8>)>, Option<Refusal>);

/// What a connection reading `input` in pieces of `step` bytes finds: per
/// message its head bytes and body, then how the stream ended.
fn requests(input: &[u8], step: usize) -> Found {
    let limits = HeadLimits {
        max_head_bytes: 4096,
        max_headers: 20,
    };
    let mut reader = RequestReader::default();
    let mut buf = BytesMut::new();
    let mut chunks = input.chunks(step.max(1));
    let mut found = Vec::new();
    let mut more = |buf: &mut BytesMut| match chunks.next() {
        Some(c) => {
            buf.extend_from_slice(c);
            true
        }
        None => false,
    };
    loop {
        let head = match reader.read(&mut buf, &limits) {
            Err(r) => return (found, Some(r)),
            Ok(None) if more(&mut buf) => continue,
            Ok(None) => return (found, None),
            Ok(Some(h)) => h,
        };
        let mut body = Vec::new();
        match head.body {
            Framing::Empty => {}
            Framing::Length(n) => {
                while (buf.len() as u64) < n {
                    if !more(&mut buf) {
                        return (found, None);
                    }
                }
                body.extend_from_slice(&buf.split_to(n as usize));
            }
            Framing::Chunked => {
                let mut d = Decoder::new(limits);
                loop {
                    match d.decode(&mut buf) {
                        Err(r) => return (found, Some(r)),
                        Ok(Some(Chunk::Data(data))) => body.extend_from_slice(&data),
                        Ok(Some(Chunk::End(t))) => {
                            for (name, value) in t.iter() {
                                body.extend_from_slice(name);
                                body.extend_from_slice(value);
                            }
                            break;
                        }
                        Ok(None) if more(&mut buf) => {}
                        Ok(None) => return (found, None),
                    }
                }
            }
            Framing::UntilClose => panic!("a request delimited by close"),
        }
        found.push((head.as_bytes().to_vec(), body));
    }
}

/// Raw bytes through the codec; panics on a broken invariant.
pub fn h1codec(data: &[u8]) {
    let whole = requests(data, data.len());
    for step in [1, 7] {
        let pieces = requests(data, step);
        assert_eq!(
            whole, pieces,
            "reading {step} bytes at a time changed the result"
        );
    }
    for (head, _) in &whole.0 {
        // A head the codec accepted parses again to itself.
        let mut again = BytesMut::from(&head[..]);
        let parsed = crate::http1::parse_request(&mut again, &HeadLimits::default());
        assert!(
            matches!(&parsed, Ok(Some(h)) if h.as_bytes() == &head[..]),
            "{parsed:?}"
        );
    }
    let mut buf = BytesMut::from(data);
    let mut reader = ResponseReader::default();
    for method in [http::Method::GET, http::Method::HEAD] {
        let _ = reader.read(&mut buf, &HeadLimits::default(), &method);
    }
}
