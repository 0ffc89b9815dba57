//! The decoder against an independent HPACK implementation, `loona-hpack`
//! (the maintained fork of `hpack`; the `h2` crate's decoder is private):
//! the same sequences of field blocks, generated and then mutated, go
//! through both, which must decode the same fields or both refuse.
//!
//! Deliberate differences, counted and allowed:
//! - a table size update after a field: RFC 7541 §4.2 puts updates at the
//!   start of a block; strait refuses (as the `h2` crate does), loona
//!   accepts it anywhere;
//! - a block that ends with a size update: loona refuses it; RFC 7541 has
//!   no such rule and strait (like `h2`) accepts it.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::huffman;
use super::tests::{Rng, random_list};
use super::{Decoder, Fields, HpackError, Limits};

type List = Vec<(Vec<u8>, Vec<u8>)>;

fn ours(d: &mut Decoder, f: &mut Fields, block: &[u8]) -> Result<List, HpackError> {
    d.decode(block, f)?;
    Ok(f.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect())
}

/// loona's answer; `None` if it panicked (reported, not a failure of
/// strait's decoder).
fn theirs(d: &mut loona_hpack::Decoder<'static>, block: &[u8]) -> Option<Result<List, String>> {
    catch_unwind(AssertUnwindSafe(|| {
        d.decode(block).map_err(|e| format!("{e:?}"))
    }))
    .ok()
}

/// A string literal, Huffman-coded or not.
fn string(rng: &mut Rng, out: &mut Vec<u8>, s: &[u8]) {
    if rng.below(2) == 0 {
        let mut c = Vec::new();
        huffman::encode(s, &mut c);
        super::encoder::integer(out, 0x80, 7, c.len());
        out.extend(c);
    } else {
        super::encoder::integer(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// A block of every representation (§6), with indexes into both tables
/// (some past their end) and size updates at the start.
fn random_block(rng: &mut Rng, table_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(3).saturating_sub(1) {
        super::encoder::integer(&mut out, 0x20, 5, [0, 64, 256, 4096, 4097][rng.below(5)]);
    }
    for (name, value) in random_list(rng) {
        let index = 1 + rng.below(61 + table_len + 1);
        match rng.below(6) {
            0 => super::encoder::integer(&mut out, 0x80, 7, index),
            kind => {
                let (high, prefix) = match kind {
                    1 | 2 => (0x40, 6),
                    3 => (0x10, 4),
                    _ => (0x00, 4),
                };
                if rng.below(2) == 0 {
                    super::encoder::integer(&mut out, high, prefix, index);
                } else {
                    out.push(high);
                    string(rng, &mut out, &name);
                }
                string(rng, &mut out, &value);
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, block: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(block.len() + 1);
        match rng.below(5) {
            0 if at < block.len() => block[at] ^= 1 << rng.below(8),
            1 if at < block.len() => block[at] = rng.next() as u8,
            2 => block.insert(at, rng.next() as u8),
            3 if at < block.len() => {
                block.remove(at);
            }
            _ => block.truncate(at),
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    both_ok: usize,
    both_refused: usize,
    late_update: usize,
    trailing_update: usize,
    loona_panicked: usize,
}

/// Runs one block through both decoders; whether they can go on (their
/// tables still in step).
fn compare(
    ours_d: &mut Decoder,
    theirs_d: &mut loona_hpack::Decoder<'static>,
    f: &mut Fields,
    block: &[u8],
    tally: &mut Tally,
) -> bool {
    let a = ours(ours_d, f, block);
    let Some(b) = theirs(theirs_d, block) else {
        tally.loona_panicked += 1;
        return false;
    };
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "different fields for block {block:02x?}");
            tally.both_ok += 1;
            true
        }
        (Err(_), Err(_)) => {
            tally.both_refused += 1;
            false
        }
        (Err(HpackError::SizeUpdateNotFirst), Ok(_)) => {
            tally.late_update += 1;
            false
        }
        (Ok(_), Err(e)) if e.contains("SizeUpdateAtEnd") => {
            tally.trailing_update += 1;
            false
        }
        (a, b) => panic!("decoders disagree on block {block:02x?}: strait {a:?}, loona {b:?}"),
    }
}

fn fresh() -> (Decoder, loona_hpack::Decoder<'static>) {
    let mut theirs = loona_hpack::Decoder::new();
    theirs.set_max_allowed_table_size(4096);
    (Decoder::new(4096), theirs)
}

#[test]
fn decoders_agree_on_generated_and_mutated_blocks() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut f = Fields::new(Limits {
        max_list_size: usize::MAX,
        max_fields: usize::MAX,
    });
    let mut tally = Tally::default();
    for _ in 0..300 {
        // Sequences of blocks sharing a dynamic table; after any
        // refusal both start over.
        let (mut a, mut b) = fresh();
        for _ in 0..20 {
            let mut block = random_block(&mut rng, a.table_size().1);
            if rng.below(3) == 0 {
                mutate(&mut rng, &mut block);
            }
            if !compare(&mut a, &mut b, &mut f, &block, &mut tally) {
                (a, b) = fresh();
            }
        }
    }
    // Blocks from loona's encoder (incremental indexing everywhere) and
    // from strait's (static table only), through both decoders.
    let mut enc = loona_hpack::Encoder::new();
    let (mut a, mut b) = fresh();
    for _ in 0..500 {
        let list = random_list(&mut rng);
        let block = enc.encode(list.iter().map(|(n, v)| (&n[..], &v[..])));
        assert!(compare(&mut a, &mut b, &mut f, &block, &mut tally));
        assert_eq!(ours(&mut a, &mut f, &[]).unwrap(), vec![]);
    }
    eprintln!("{tally:?}");
    assert!(tally.both_ok > 3000, "{tally:?}");
    assert!(tally.both_refused > 300, "{tally:?}");
}

#[test]
fn the_known_differences_are_what_they_say() {
    let (mut a, mut b) = fresh();
    let mut f = Fields::new(Limits::default());
    // A size update after a field.
    let late = [0x82, 0x20, 0x82];
    assert_eq!(
        ours(&mut a, &mut f, &late),
        Err(HpackError::SizeUpdateNotFirst)
    );
    assert!(theirs(&mut b, &late).unwrap().is_ok());
    // A block of only a size update.
    let (mut a, mut b) = fresh();
    assert_eq!(ours(&mut a, &mut f, &[0x20]), Ok(vec![]));
    assert!(theirs(&mut b, &[0x20]).unwrap().is_err());
}
