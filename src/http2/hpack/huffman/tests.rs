use super::*;

fn enc(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode(s, &mut v);
    v
}

fn dec(s: &[u8]) -> Result<Vec<u8>, InvalidHuffman> {
    let mut v = Vec::new();
    decode(s, &mut v).map(|()| v)
}

#[test]
fn codes_match_appendix_b() {
    // A sample of Appendix B's rows: (symbol, code, length).
    for (sym, code, len) in [
        (0usize, 0x1ff8u32, 13u8),
        (b' ' as usize, 0x14, 6),
        (b'0' as usize, 0x0, 5),
        (b'a' as usize, 0x3, 5),
        (b'z' as usize, 0x7b, 7),
        (b'{' as usize, 0x7ffe, 15),
        (10, 0x3ffffffc, 30),
        (255, 0x3ffffee, 26),
        (256, 0x3fffffff, 30),
    ] {
        assert_eq!((CODES[sym], LENGTHS[sym]), (code, len), "symbol {sym}");
    }
}

#[test]
fn the_code_is_prefix_free_and_complete() {
    // Kraft's sum is exactly 1 for a complete prefix code.
    let sum: u64 = LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
    assert_eq!(sum, 1 << 30);
}

#[test]
fn rfc_7541_c4_strings() {
    for (text, hex) in [
        (&b"www.example.com"[..], "f1e3c2e5f23a6ba0ab90f4ff"),
        (b"no-cache", "a8eb10649cbf"),
        (b"custom-key", "25a849e95ba97d7f"),
        (b"custom-value", "25a849e95bb8e8b4bf"),
        (b"302", "6402"),
        (b"private", "aec3771a4b"),
    ] {
        let coded = hex_bytes(hex);
        assert_eq!(enc(text), coded, "{}", String::from_utf8_lossy(text));
        assert_eq!(encoded_len(text), coded.len());
        assert_eq!(dec(&coded).unwrap(), text);
    }
}

pub(crate) fn hex_bytes(hex: &str) -> Vec<u8> {
    let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn every_byte_round_trips() {
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(dec(&enc(&all)).unwrap(), all);
    for b in 0..=255u8 {
        assert_eq!(dec(&enc(&[b])).unwrap(), [b]);
        assert_eq!(dec(&enc(&[b, b, b])).unwrap(), [b, b, b]);
    }
    assert_eq!(dec(&[]).unwrap(), b"");
}

#[test]
fn padding_must_be_eos_bits_shorter_than_a_byte() {
    // "0" is 00000 (5 bits): padded with 111 it is valid.
    assert_eq!(dec(&[0b0000_0111]).unwrap(), b"0");
    // Padding of zeros is not EOS's prefix ("0" then "0" is 10 bits).
    assert_eq!(dec(&[0b0000_0000]), Err(InvalidHuffman));
    assert_eq!(dec(&[0b0000_0110]), Err(InvalidHuffman));
    // A whole byte of padding is too long.
    assert_eq!(dec(&[0xff]), Err(InvalidHuffman));
    assert_eq!(dec(&[0b0000_0111, 0xff]), Err(InvalidHuffman));
    // EOS itself (30 ones) inside a string.
    assert_eq!(dec(&[0xff, 0xff, 0xff, 0xfc]), Err(InvalidHuffman));
    assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(InvalidHuffman));
}

/// The encoder writing 32 bits at a time gives what a byte at a time
/// gives, at every length and alignment.
#[test]
fn word_writes_match_byte_writes() {
    fn bytewise(src: &[u8]) -> Vec<u8> {
        let (mut acc, mut n, mut out) = (0u64, 0u32, Vec::new());
        for &b in src {
            acc = (acc << LENGTHS[b as usize]) | u64::from(CODES[b as usize]);
            n += u32::from(LENGTHS[b as usize]);
            while n >= 8 {
                n -= 8;
                out.push((acc >> n) as u8);
            }
        }
        if n > 0 {
            let pad = 8 - n;
            out.push(((acc << pad) as u8) | ((1u8 << pad) - 1));
        }
        out
    }
    let mut src = Vec::new();
    for i in 0..600u32 {
        // Short and long codes mixed: ASCII, then bytes of 20+ bits.
        src.push(if i % 7 == 3 {
            (i * 31) as u8
        } else {
            b'a' + (i % 26) as u8
        });
        assert_eq!(enc(&src), bytewise(&src), "{} bytes", src.len());
    }
}
