//! strait's own HTTP/2 server codec (issue #15), sans-IO: bytes in,
//! frames and header lists out, no I/O, no hashing, no allocation per
//! header. Not yet wired into the proxy (`proxy::h2_server` still runs on
//! the `h2` crate).
//!
//! - [`frame`]: frames of RFC 9113 §4 and §6 parsed from a byte slice, each
//!   malformation classified as a connection or stream error (§5.4), and
//!   writers appending frames to an output buffer.

pub mod error;
pub mod frame;

pub use error::{Error, ErrorCode};
