//! HPACK (RFC 7541): [`Decoder`] for requests' field blocks, [`Encoder`]
//! for responses'.

mod decoder;
mod encoder;
pub mod huffman;
mod table;

pub use decoder::{Decoder, Fields, HpackError, Limits, Line};
pub use encoder::{Encoder, Huffman};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod differential;
