//! Decoding of the static Huffman code of HPACK (RFC 7541, Appendix B).
//!
//! The code is canonical: within each bit length, codes are consecutive and
//! ordered by symbol, and each length starts right after the previous one.
//! So the bit length of every symbol is enough to rebuild all the codes.

use std::sync::OnceLock;

/// Bit length of the code of each symbol: bytes 0..=255, then EOS (256).
const CODE_BITS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00..
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10..
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20..
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30..
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40..
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50..
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60..
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70..
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80..
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90..
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0..
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0..
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0..
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0..
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0..
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0..
    30, // EOS
];

/// The end-of-string symbol, which must never appear in an encoded string.
const EOS: u16 = 256;
/// Shortest code length in the table.
const MIN_BITS: u32 = 5;
/// Longest code length in the table (the EOS code).
const MAX_BITS: u32 = 30;

/// Why a Huffman-coded string could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum HuffmanError {
    /// The end-of-string code appeared as a symbol.
    #[error("the string contains the end-of-string symbol")]
    Eos,
    /// More than 7 bits were left over after the last symbol.
    #[error("the string ends with more than 7 bits that do not form a symbol")]
    PaddingTooLong,
    /// The left-over bits were not all ones.
    #[error("the padding at the end of the string is not made of one bits")]
    BadPadding,
}

/// Per-length lookup data for canonical decoding.
#[derive(Debug)]
struct Canonical {
    /// First code of each bit length (index = length).
    first: [u32; 31],
    /// Number of codes of each bit length.
    count: [u32; 31],
    /// Position in `symbols` of the first symbol of each bit length.
    start: [u32; 31],
    /// All symbols ordered by (bit length, symbol).
    symbols: [u16; 257],
}

impl Canonical {
    /// Builds the lookup data from `CODE_BITS`.
    fn build() -> Self {
        let mut count = [0u32; 31];
        for &bits in &CODE_BITS {
            count[usize::from(bits)] += 1;
        }
        let (mut first, mut start) = ([0u32; 31], [0u32; 31]);
        let (mut code, mut pos) = (0u32, 0u32);
        for len in 1..31 {
            code = (code + count[len - 1]) << 1;
            first[len] = code;
            pos += count[len - 1];
            start[len] = pos;
        }
        let mut symbols = [0u16; 257];
        let mut next = start;
        for (sym, &bits) in (0u16..).zip(CODE_BITS.iter()) {
            let slot = &mut next[usize::from(bits)];
            symbols[*slot as usize] = sym;
            *slot += 1;
        }
        Self {
            first,
            count,
            start,
            symbols,
        }
    }

    /// Decodes the symbol at the top of the `nbits` low bits of `acc`, if they
    /// hold a complete code; returns the symbol and its bit length.
    fn next_symbol(&self, acc: u64, nbits: u32) -> Option<(u16, u32)> {
        for len in MIN_BITS..=nbits.min(MAX_BITS) {
            let code = (acc >> (nbits - len)) as u32;
            let rank = code.wrapping_sub(self.first[len as usize]);
            if rank < self.count[len as usize] {
                let sym = self.symbols[(self.start[len as usize] + rank) as usize];
                return Some((sym, len));
            }
        }
        None
    }
}

/// The lookup data, built on first use.
fn canonical() -> &'static Canonical {
    static TABLE: OnceLock<Canonical> = OnceLock::new();
    TABLE.get_or_init(Canonical::build)
}

/// Decodes the Huffman-coded `src` and appends the bytes to `dst`.
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let table = canonical();
    dst.reserve(src.len() * 8 / 5);
    // `acc` holds the `nbits` not yet decoded bits; always below 30 + 8.
    let (mut acc, mut nbits) = (0u64, 0u32);
    for &byte in src {
        acc = (acc << 8) | u64::from(byte);
        nbits += 8;
        while let Some((sym, len)) = table.next_symbol(acc, nbits) {
            if sym == EOS {
                return Err(HuffmanError::Eos);
            }
            dst.push(sym as u8);
            nbits -= len;
            acc &= (1u64 << nbits) - 1;
        }
    }
    if nbits > 7 {
        Err(HuffmanError::PaddingTooLong)
    } else if acc != (1u64 << nbits) - 1 {
        Err(HuffmanError::BadPadding)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test-only encoder: the code of `sym` as (bits, length).
    fn code_of(sym: u16) -> (u32, u32) {
        let t = canonical();
        let len = u32::from(CODE_BITS[usize::from(sym)]);
        let begin = t.start[len as usize] as usize;
        let rank = t.symbols[begin..].iter().position(|&s| s == sym).unwrap();
        (t.first[len as usize] + rank as u32, len)
    }

    /// Test-only encoder: Huffman-codes `src`, padding with one bits.
    fn encode(src: &[u8]) -> Vec<u8> {
        let (mut out, mut acc, mut nbits) = (Vec::new(), 0u64, 0u32);
        for &b in src {
            let (code, len) = code_of(u16::from(b));
            acc = (acc << len) | u64::from(code);
            nbits += len;
            while nbits >= 8 {
                nbits -= 8;
                out.push((acc >> nbits) as u8);
            }
        }
        if nbits > 0 {
            out.push(((acc << (8 - nbits)) as u8) | (0xff >> nbits));
        }
        out
    }

    fn decoded(src: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        let mut out = Vec::new();
        decode(src, &mut out).map(|()| out)
    }

    #[test]
    fn codes_match_rfc_samples() {
        // A few codes read from RFC 7541 Appendix B.
        assert_eq!(code_of(0), (0x1ff8, 13));
        assert_eq!(code_of(b'0'.into()), (0x0, 5));
        assert_eq!(code_of(b'a'.into()), (0x3, 5));
        assert_eq!(code_of(b' '.into()), (0x14, 6));
        assert_eq!(code_of(b'A'.into()), (0x21, 6));
        assert_eq!(code_of(b'~'.into()), (0x1ffd, 13));
        assert_eq!(code_of(10), (0x3ffffffc, 30));
        assert_eq!(code_of(255), (0x3ffffee, 26));
        assert_eq!(code_of(EOS), (0x3fffffff, 30));
        // The code is complete: the Kraft sum is exactly one.
        let kraft: u64 = CODE_BITS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
    }

    #[test]
    fn rfc_strings() {
        assert_eq!(
            decoded(&[
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff
            ]),
            Ok(b"www.example.com".to_vec())
        );
        assert_eq!(decoded(&[0x64, 0x02]), Ok(b"302".to_vec()));
        assert_eq!(encode(b"no-cache"), [0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]);
        assert_eq!(decoded(&[]), Ok(Vec::new()));
    }

    #[test]
    fn every_byte_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(decoded(&encode(&[b])), Ok(vec![b]), "byte {b}");
            assert_eq!(decoded(&encode(&[b, b'a', b])), Ok(vec![b, b'a', b]));
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decoded(&encode(&all)), Ok(all));
    }

    #[test]
    fn bad_input_is_rejected() {
        // EOS (30 one bits) followed by two bits of padding.
        assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
        // 'a' (00011) then EOS then padding.
        assert_eq!(
            decoded(&[0x1f, 0xff, 0xff, 0xff, 0xff]),
            Err(HuffmanError::Eos)
        );
        // A full byte of one bits as padding.
        assert_eq!(decoded(&[0xff]), Err(HuffmanError::PaddingTooLong));
        // '0' (00000) then padding 000 instead of 111.
        assert_eq!(decoded(&[0x00]), Err(HuffmanError::BadPadding));
        // '0' then padding 101.
        assert_eq!(decoded(&[0x05]), Err(HuffmanError::BadPadding));
        // '0' then 11 bits of padding.
        assert_eq!(decoded(&[0x07, 0xff]), Err(HuffmanError::PaddingTooLong));
    }
}
