//! strait's own HTTP/2 server codec (issue #15), sans-IO: bytes in,
//! frames and header lists out, no I/O, no hashing, no allocation per
//! header. Serves downstream HTTP/2 in `proxy::h2_codec_server`, the
//! default (`STRAIT_HTTP2_SERVER=h2` picks `proxy::h2_server`, on the `h2`
//! crate, instead).
//!
//! - [`frame`]: frames of RFC 9113 §4 and §6 parsed from a byte slice, each
//!   malformation classified as a connection or stream error (§5.4), and
//!   writers appending frames to an output buffer.
//! - [`hpack`]: RFC 7541 header compression: the decoder (straight into
//!   strait's [`HeaderList`](crate::header_list::HeaderList)) and the
//!   encoder (from it, without a dynamic table).
//! - [`conn`]: one connection's state without I/O: the preface, SETTINGS,
//!   stream states, header blocks, flow control both ways, PING, GOAWAY,
//!   and the flood limits (CONTINUATION, control frames, Rapid Reset,
//!   stream errors); bytes in, events out, responses in, bytes out.
//! - [`head`]: a request's or trailers' field block checked as RFC 9113
//!   §8.2-§8.3 require, pseudo-headers kept apart.
//!
//! Fuzzed by `fuzz/fuzz_targets/h2codec.rs` (through `fuzzing::h2codec`);
//! the decoder is checked against an independent HPACK implementation in
//! `hpack/differential.rs`.

pub mod conn;
pub mod error;
pub mod frame;
pub mod head;
pub mod hpack;

pub use error::{Error, ErrorCode};
