//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B).
//!
//! The code is canonical (codes of one length are consecutive, in symbol
//! order, after all shorter ones), so Appendix B is kept as its code
//! lengths alone and the codes are derived from them at compile time;
//! `tests.rs` checks codes from the appendix. Decoding walks the code four
//! bits at a time through a state table also built at compile time: a
//! state is a node of the code tree, each step emits at most one symbol
//! (no code is shorter than 5 bits).

use bytes::BufMut;

/// The code length of each symbol, 0-255 and EOS (256): Appendix B's
/// "len in bits" column.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0
    30, // EOS
];

const EOS: usize = 256;

/// Each symbol's code, right-aligned: the canonical code of `LENGTHS`.
pub(super) const CODES: [u32; 257] = canonical_codes();

const fn canonical_codes() -> [u32; 257] {
    let mut codes = [0u32; 257];
    let mut code: u32 = 0;
    let mut len: u8 = 1;
    // Lengths in increasing order; within a length, symbols in order.
    while len <= 30 {
        let mut sym = 0;
        while sym < 257 {
            if LENGTHS[sym] == len {
                codes[sym] = code;
                code += 1;
            }
            sym += 1;
        }
        code <<= 1;
        len += 1;
    }
    codes
}

/// A decoding step's outcome flags.
const EMIT: u8 = 1;
const FAIL: u8 = 2;
/// The state reached may end the string: the root, or a path of fewer
/// than 8 one-bits (§5.2: padding is the start of EOS, at most 7 bits).
const ACCEPT: u8 = 4;

#[derive(Clone, Copy)]
struct Step {
    next: u8,
    flags: u8,
    sym: u8,
}

/// The code tree: 256 inner nodes (257 leaves). A child below 256 is an
/// inner node; 256 + s is the leaf of symbol s.
const fn tree() -> [[u16; 2]; 256] {
    let mut nodes = [[0u16; 2]; 256];
    let mut used: u16 = 1;
    let mut sym = 0;
    while sym < 257 {
        let len = LENGTHS[sym] as u32;
        let code = CODES[sym];
        let mut node = 0usize;
        let mut i = len;
        while i > 1 {
            let bit = ((code >> (i - 1)) & 1) as usize;
            if nodes[node][bit] == 0 {
                nodes[node][bit] = used;
                used += 1;
            }
            node = nodes[node][bit] as usize;
            i -= 1;
        }
        nodes[node][(code & 1) as usize] = 256 + sym as u16;
        sym += 1;
    }
    nodes
}

/// Whether each inner node is reached from the root by one-bits only,
/// fewer than 8 of them.
const fn accepting(nodes: &[[u16; 2]; 256]) -> [bool; 256] {
    let mut ok = [false; 256];
    ok[0] = true;
    let mut node = 0usize;
    let mut depth = 0;
    while depth < 7 {
        let next = nodes[node][1] as usize;
        if next >= 256 {
            break;
        }
        node = next;
        ok[node] = true;
        depth += 1;
    }
    ok
}

/// The decoding table: for each state (inner node) and nibble, the step.
const DECODE: [[Step; 16]; 256] = decode_table();

const fn decode_table() -> [[Step; 16]; 256] {
    let nodes = tree();
    let accept = accepting(&nodes);
    let mut table = [[Step {
        next: 0,
        flags: 0,
        sym: 0,
    }; 16]; 256];
    let mut state = 0;
    while state < 256 {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut flags = 0;
            let mut sym = 0;
            let mut bit = 4;
            while bit > 0 {
                let b = (nibble >> (bit - 1)) & 1;
                let child = nodes[node][b] as usize;
                if child >= 256 {
                    if child - 256 == EOS {
                        // §5.2: EOS inside a string is an error.
                        flags |= FAIL;
                        break;
                    }
                    flags |= EMIT;
                    sym = (child - 256) as u8;
                    node = 0;
                } else {
                    node = child;
                }
                bit -= 1;
            }
            if flags & FAIL == 0 && accept[node] {
                flags |= ACCEPT;
            }
            table[state][nibble] = Step {
                next: node as u8,
                flags,
                sym,
            };
            nibble += 1;
        }
        state += 1;
    }
    table
}

/// A Huffman-coded string that is not valid (RFC 7541 §5.2): it holds
/// EOS, or its padding is longer than 7 bits or not EOS's first bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidHuffman;

/// Decode `src`, appending the text to `dst`.
pub fn decode(src: &[u8], dst: &mut impl BufMut) -> Result<(), InvalidHuffman> {
    let mut state = 0usize;
    let mut flags = ACCEPT;
    for &b in src {
        for nibble in [b >> 4, b & 0xf] {
            let step = DECODE[state][nibble as usize];
            if step.flags & FAIL != 0 {
                return Err(InvalidHuffman);
            }
            if step.flags & EMIT != 0 {
                dst.put_u8(step.sym);
            }
            state = step.next as usize;
            flags = step.flags;
        }
    }
    if flags & ACCEPT == 0 {
        return Err(InvalidHuffman);
    }
    Ok(())
}

/// The length of `src` Huffman-coded, in bytes.
pub fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src.iter().map(|&b| LENGTHS[b as usize] as usize).sum();
    bits.div_ceil(8)
}

/// Append `src` Huffman-coded to `dst`, padded with EOS's first bits.
pub fn encode(src: &[u8], dst: &mut impl BufMut) {
    // Bits wait in the low end of `acc`, written 32 at a time (a quarter
    // of the buffer calls of a byte at a time): fewer than 32 + 30 are
    // held, and the bits above them are never read.
    let mut acc: u64 = 0;
    let mut n: u32 = 0;
    for &b in src {
        let len = LENGTHS[b as usize];
        acc = (acc << len) | u64::from(CODES[b as usize]);
        n += u32::from(len);
        if n >= 32 {
            n -= 32;
            dst.put_u32((acc >> n) as u32);
        }
    }
    while n >= 8 {
        n -= 8;
        dst.put_u8((acc >> n) as u8);
    }
    if n > 0 {
        let pad = 8 - n;
        dst.put_u8(((acc << pad) as u8) | ((1u8 << pad) - 1));
    }
}

#[cfg(test)]
mod tests;
