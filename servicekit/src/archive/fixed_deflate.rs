//! Deflate blocks with the fixed codes, from back-references already known.
//!
//! When the reply repeats bytes of the upload (a signed module's body), the
//! upload's own back-references ([`super::inflate`]) say where its repeats
//! are. Coding them with deflate's fixed codes needs no search and no code
//! tables: on the bench's machine code, the client's level-6 repeats coded
//! this way give a smaller reply than zlib's level 1 does, at a fraction of
//! its CPU (BENCHMARKS.md, issue 20). Each back-reference is checked
//! against the bytes before it is used, so a stale or misplaced one costs
//! compression, never correctness.

use super::deflate_codes::{DIST_BASE, DIST_EXTRA, LEN_BASE, LEN_EXTRA};
use super::inflate::Backref;

/// A deflate bit stream being written, least significant bit first.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    count: u32,
}

impl Bits<'_> {
    /// Appends the low `count` (at most 32) bits of `bits`.
    #[inline(always)]
    fn put(&mut self, bits: u32, count: u32) {
        self.acc |= u64::from(bits) << self.count;
        self.count += count;
        if self.count >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.count -= 32;
        }
    }

    /// Pads to a byte boundary and writes out what is held.
    fn finish(self) {
        let bytes = self.count.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
    }
}

/// `code`'s low `len` bits reversed: Huffman codes are sent most
/// significant bit first into a stream packed least significant first.
const fn reversed(code: u32, len: u32) -> u32 {
    code.reverse_bits() >> (32 - len)
}

/// A symbol's fixed code (RFC 1951, 3.2.6), reversed for sending, with its
/// length in bits 16-23.
const fn fixed_litlen(sym: u32) -> u32 {
    let (code, len) = match sym {
        0..=143 => (0x30 + sym, 8),
        144..=255 => (0x190 + sym - 144, 9),
        256..=279 => (sym - 256, 7),
        _ => (0xc0 + sym - 280, 8),
    };
    reversed(code, len) | len << 16
}

/// Literal byte `b`, ready to send: bits, and their count in bits 16-23.
static LITERALS: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = fixed_litlen(b as u32);
        b += 1;
    }
    t
};

/// A length's code and extra bits, ready to send (count in bits 16-23).
static LENGTHS: [u32; 259] = {
    let mut t = [0u32; 259];
    let mut i = 0;
    while i < 29 {
        let mut len = LEN_BASE[i];
        // 258 has its own code (285); 284's range would reach it too.
        let end = if i == 27 {
            258
        } else {
            LEN_BASE[i] + (1 << LEN_EXTRA[i])
        };
        while len < end {
            let code = fixed_litlen(257 + i as u32);
            let code_len = code >> 16;
            let bits = (code & 0xffff) | (len - LEN_BASE[i]) << code_len;
            t[len as usize] = bits | (code_len + LEN_EXTRA[i]) << 16;
            len += 1;
        }
        i += 1;
    }
    t
};

/// The distance code of `dist` (1 to 32,768).
#[inline(always)]
fn dist_symbol(dist: u32) -> usize {
    // Codes 2k and 2k+1 split the range [2^(k+1)+1, 2^(k+2)] in halves.
    let d = dist - 1;
    if d < 4 {
        return d as usize;
    }
    let top = 31 - d.leading_zeros(); // d's highest set bit, >= 2
    (2 * top + ((d >> (top - 1)) & 1)) as usize
}

/// Writes `data[range]` as one fixed-code deflate block (not the last),
/// then an empty stored block, so `out` ends at a byte boundary as after a
/// zlib sync flush. Back-references come from `refs` (sorted, positions in
/// `data`), checked before use; any other run of one repeated byte becomes
/// a back-reference to the byte before it; the rest are literals.
/// `data[..range.start]` is output the decoder already holds (the same
/// deflate stream), which back-references may reach.
pub fn write_fixed_block(
    data: &[u8],
    range: std::ops::Range<usize>,
    refs: &[Backref],
    out: &mut Vec<u8>,
) {
    // Nine bits per literal at most (a copy costs less than the bytes it
    // stands for), plus the block's header and end.
    out.reserve(range.len() + range.len() / 8 + 16);
    let mut bits = Bits {
        out,
        acc: 0,
        count: 0,
    };
    bits.put(0b010, 3); // BFINAL 0, BTYPE 01 (fixed codes)
    let first = refs.partition_point(|r| (r.pos as usize) < range.start);
    let mut refs = refs[first..].iter().peekable();
    let mut i = range.start;
    while i < range.end {
        // The next usable back-reference at or after `i`.
        let next_ref = loop {
            match refs.peek() {
                Some(r) if (r.pos as usize) < i => {
                    refs.next();
                }
                Some(r) => break r.pos as usize,
                None => break range.end,
            }
        };
        if next_ref == i {
            let r = refs.next().expect("peeked");
            let (len, dist) = (usize::from(r.len), usize::from(r.dist));
            let len = len.min(range.end - i);
            if len >= 3 && dist <= i && data[i - dist..i - dist + len] == data[i..i + len] {
                put_match(&mut bits, len as u32, dist as u32);
                i += len;
                continue;
            }
        }
        // Literals up to the next back-reference, runs of one byte coded
        // as copies of the byte before them.
        let stop = next_ref.min(range.end).max(i + 1);
        while i < stop {
            let b = data[i];
            if i > 0
                && i + 3 <= range.end
                && data[i - 1] == b
                && data[i + 1] == b
                && data[i + 2] == b
            {
                let mut run = 3;
                while run < 258 && i + run < range.end && data[i + run] == b {
                    run += 1;
                }
                put_match(&mut bits, run as u32, 1);
                i += run;
                continue;
            }
            let code = LITERALS[usize::from(b)];
            bits.put(code & 0xffff, code >> 16);
            i += 1;
        }
    }
    bits.put(0, 7); // end of block: code 256 is seven zero bits
    bits.put(0, 3); // BFINAL 0, BTYPE 00 (stored), then LEN 0, NLEN !0
    bits.finish();
    out.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
}

#[inline(always)]
fn put_match(bits: &mut Bits<'_>, len: u32, dist: u32) {
    let l = LENGTHS[len as usize];
    bits.put(l & 0xffff, l >> 16);
    let sym = dist_symbol(dist);
    let extra = DIST_EXTRA[sym];
    let code = reversed(sym as u32, 5) | (dist - DIST_BASE[sym]) << 5;
    bits.put(code, 5 + extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A raw deflate stream of non-final blocks, ended by an empty final
    /// block, decoded by zlib.
    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut whole = stream.to_vec();
        whole.extend_from_slice(&[0x03, 0x00]); // final fixed block, EOB
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&whole[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn distance_codes_match_the_table() {
        for dist in 1..=32768u32 {
            let sym = dist_symbol(dist);
            assert!(DIST_BASE[sym] <= dist, "{dist}");
            assert!(dist < DIST_BASE[sym] + (1 << DIST_EXTRA[sym]), "{dist}");
        }
    }

    #[test]
    fn every_length_and_distance_decodes_back() {
        // A pattern long enough for any distance, then copies of every
        // length from many distances.
        let mut data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut refs = Vec::new();
        let mut x = 12345u32;
        for len in 3..=258usize {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let dist = 1 + (x >> 8) as usize % 32768;
            let at = data.len();
            for k in 0..len {
                let b = data[at + k - dist];
                data.push(b);
            }
            refs.push(Backref {
                pos: at as u32,
                len: len as u16,
                dist: dist as u16,
            });
        }
        let mut out = Vec::new();
        write_fixed_block(&data, 0..data.len(), &refs, &mut out);
        assert_eq!(inflate(&out), data);
        assert!(out.len() < data.len());
    }

    #[test]
    fn wrong_back_references_cost_size_not_bytes() {
        let data: Vec<u8> = (0..100_000u32)
            .map(|i| (i % 97) as u8 ^ (i >> 12) as u8)
            .collect();
        let bogus: Vec<Backref> = (0..1000u64)
            .map(|i| Backref {
                pos: (i * 97 + 5) as u32,
                len: 200 - (i % 190) as u16,
                dist: 13,
            })
            .collect();
        let mut out = Vec::new();
        write_fixed_block(&data, 0..data.len(), &bogus, &mut out);
        assert_eq!(inflate(&out), data);
    }

    #[test]
    fn a_later_range_may_reach_into_what_came_before() {
        let data: Vec<u8> = [
            &b"0123456789abcdef".repeat(8)[..],
            &[7u8; 300],
            b"0123456789abcdef",
        ]
        .concat();
        let mid = 128;
        let refs = [Backref {
            pos: (data.len() - 16) as u32,
            len: 16,
            dist: (data.len() - 16) as u16,
        }];
        let mut first = Vec::new();
        write_fixed_block(&data, 0..mid, &[], &mut first);
        let mut second = Vec::new();
        write_fixed_block(&data, mid..data.len(), &refs, &mut second);
        // The run of 7s and the far copy both became back-references.
        assert!(second.len() < 20, "{} bytes", second.len());
        first.extend_from_slice(&second);
        assert_eq!(inflate(&first), data);
    }
}
