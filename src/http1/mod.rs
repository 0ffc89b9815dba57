//! A sans-IO HTTP/1.1 codec (issue #15): the request path's own parser and
//! writer, with no I/O, no allocation per header and no hashing.
//!
//! - [`head`]: a request or response head parsed by `httparse` into the
//!   message's own header list (byte ranges into the head's buffer, looked
//!   up linearly: lookups by name are few), and the message's framing by
//!   RFC 9112 §6 with Envoy's refusals (Content-Length with
//!   Transfer-Encoding 400, a coding other than one `chunked` 501, a bare LF
//!   400, a head over the limits 431).
//! - [`chunked`]: the chunked body decoder (incremental, bounded chunk-size
//!   lines and trailers) and encoder.
//! - [`write`](mod@write): request and response heads written straight into a
//!   connection's output buffer.
//!
//! Everything here is checked against `httparse` and hyper by the
//! differential test in `tests.rs` and fuzzed by `fuzz/fuzz_targets/h1codec.rs`
//! (through `fuzzing::h1codec`).

pub mod chunked;
pub mod head;
pub mod write;

#[cfg(test)]
mod tests;

pub use head::{
    Framing, HeadLimits, Refusal, RequestHead, ResponseHead, Version, parse_request, parse_response,
};
