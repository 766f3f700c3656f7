//! Gzip decoding that can log where the compressor found repeats.
//!
//! svc-kmod re-compresses every byte of a tarball it signs, and the modules
//! go back unchanged but for what is appended. The client's gzip had already
//! found their repeated strings (at level 6, for `tar -czf`); searching for
//! them again at level 1 cost 37 % of svc-kmod's CPU on real modules
//! (issue 20). This decoder gives the bytes zlib gives and, when asked, logs
//! every back-reference (where in the decompressed stream, how long, how far
//! back), so the reply's compressor can reuse them
//! ([`super::fixed_deflate`]).
//!
//! It is RFC 1951 and 1952 as zlib reads them: the same checks (code sets
//! neither over-subscribed nor incomplete, distances within the member's
//! output, stored lengths, CRC-32 and length of every member), members read
//! back to back, and nothing after the last member but another member. Its
//! errors are `InvalidData`, which the archive gate reports as a damaged
//! upload (400).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use flate2::Crc;

use super::deflate_codes::{DIST_BASE, DIST_EXTRA, LEN_BASE, LEN_EXTRA};
use super::ArchiveError;

/// Bytes of history a back-reference may reach (RFC 1951).
const WINDOW: usize = 32 * 1024;

/// Bytes decoded at a time, after the window.
const CHUNK: usize = 256 * 1024;

/// The longest back-reference.
const MAX_MATCH: usize = 258;

/// Decoding stops for the reader once this much of the buffer is used, so
/// that one more back-reference always fits.
const FILL_LIMIT: usize = WINDOW + CHUNK;

/// Compressed bytes read from the source at a time.
const INPUT_BYTES: usize = 128 * 1024;

/// Back-references the log keeps at most before dropping the oldest: 8 MiB,
/// enough for every repeat of the largest module kept in memory. Entries no
/// one asks for (a large file spooled to disk) must not grow it without end.
const LOG_CAPACITY: usize = 512 * 1024;

/// One back-reference: `len` bytes at `pos` repeat those `dist` bytes
/// earlier. Positions are relative to a stretch of the stream (a module, a
/// reply member): 8 bytes each, as many are held at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backref {
    /// Where the repeat starts.
    pub pos: u32,
    /// Its length, 3 to 258.
    pub len: u16,
    /// How far back its source is, 1 to 32,768.
    pub dist: u16,
}

/// A back-reference as logged: `pos` is an offset in the decompressed
/// stream.
#[derive(Debug, Clone, Copy)]
struct Logged {
    pos: u64,
    len: u16,
    dist: u16,
}

/// The back-references a [`GzipDecoder`] found, for the reader of the
/// stream to take as it reads. Shared by handle.
#[derive(Debug, Clone, Default)]
pub struct BackrefLog(Arc<Mutex<VecDeque<Logged>>>);

impl BackrefLog {
    fn append(&self, found: &mut Vec<Logged>) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.extend(found.drain(..));
        let excess = log.len().saturating_sub(LOG_CAPACITY);
        log.drain(..excess);
    }

    /// The back-references lying wholly in `start..end` of the stream,
    /// source included, with positions relative to `start`; forgets every
    /// one that begins before `end`. `None` if there are more than `max`
    /// (the caller's bound on what it will hold), or if the stretch is
    /// 4 GiB or longer.
    pub fn take(&self, start: u64, end: u64, max: usize) -> Option<Vec<Backref>> {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let upto = log.partition_point(|b| b.pos < end);
        let mut taken = Vec::with_capacity(upto.min(max));
        let mut too_many = end.saturating_sub(start) > u64::from(u32::MAX);
        for b in log.drain(..upto) {
            let within = b.pos >= start + u64::from(b.dist) && b.pos + u64::from(b.len) <= end;
            if within && !too_many {
                if taken.len() == max {
                    too_many = true;
                    taken = Vec::new();
                    continue;
                }
                taken.push(Backref {
                    pos: (b.pos - start) as u32,
                    len: b.len,
                    dist: b.dist,
                });
            }
        }
        (!too_many).then_some(taken)
    }
}

/// The order code-length code lengths are sent in (RFC 1951, 3.2.7).
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// A decoded code, as table entries hold it: the code's length in bits
/// 0-4, then what the symbol means, so that one look-up gives all of it.
/// Zero means "no such code".
const CODE_LEN_MASK: u32 = 0x1f;
/// A literal: the byte in bits 9-16.
const LITERAL: u32 = 1 << 31;
/// A length or distance: the base in bits 9-24 and the count of extra
/// bits in bits 5-8.
const BASE: u32 = 1 << 30;
/// The end of the block.
const END_OF_BLOCK: u32 = 1 << 29;
/// A symbol the format reserves (literal/length 286-287, distance 30-31).
const RESERVED: u32 = 1 << 28;

/// What literal/length symbol `sym` means, as an entry without its length.
const fn litlen_meaning(sym: usize) -> u32 {
    if sym < 256 {
        LITERAL | (sym as u32) << 9
    } else if sym == 256 {
        END_OF_BLOCK
    } else if sym - 257 < LEN_BASE.len() {
        BASE | LEN_BASE[sym - 257] << 9 | LEN_EXTRA[sym - 257] << 5
    } else {
        RESERVED
    }
}

/// What distance symbol `sym` means, as an entry without its length.
const fn dist_meaning(sym: usize) -> u32 {
    if sym < DIST_BASE.len() {
        BASE | DIST_BASE[sym] << 9 | DIST_EXTRA[sym] << 5
    } else {
        RESERVED
    }
}

/// Literal/length codes up to this long decode with one table look-up;
/// longer ones (rare symbols) bit by bit. (Measured on the bench's modules:
/// 10 and 12 bits were slower; the table is rebuilt for every block.)
const LITLEN_BITS: u32 = 11;

/// The same for distance codes, of which there are only 30.
const DIST_BITS: u32 = 8;

/// The same for the code-length code, whose codes are at most 7 bits.
const CLEN_BITS: u32 = 7;

/// A Huffman code, canonical as deflate defines it, with a table of
/// `SLOTS` entries (a power of two).
struct Huffman<const SLOTS: usize> {
    /// Indexed by the next `log2(SLOTS)` bits: the entry (see
    /// [`CODE_LEN_MASK`]), or 0 where the code is longer (or there is none).
    fast: Box<[u32; SLOTS]>,
    /// Codes of each length.
    counts: [u16; 16],
    /// Symbols in canonical order.
    symbols: Vec<u16>,
    /// What each symbol means.
    meaning: fn(usize) -> u32,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

type LitlenCode = Huffman<{ 1 << LITLEN_BITS }>;
type DistCode = Huffman<{ 1 << DIST_BITS }>;
type ClenCode = Huffman<{ 1 << CLEN_BITS }>;

impl<const SLOTS: usize> Huffman<SLOTS> {
    const BITS: u32 = SLOTS.trailing_zeros();

    fn empty(meaning: fn(usize) -> u32) -> Self {
        Self {
            fast: Box::new([0; SLOTS]),
            counts: [0; 16],
            symbols: Vec::new(),
            meaning,
        }
    }

    /// Rebuilds the code from code lengths, refusing an over-subscribed set
    /// and an incomplete one, but for a single code of one bit, as zlib
    /// does (`allow_single`; the code-length code never allows it).
    fn build(&mut self, lengths: &[u8], allow_single: bool, what: &str) -> io::Result<()> {
        self.counts = [0; 16];
        for &l in lengths {
            self.counts[l as usize] += 1;
        }
        self.counts[0] = 0;
        let mut left: i32 = 1;
        let mut max = 0;
        for len in 1..16 {
            left <<= 1;
            left -= i32::from(self.counts[len]);
            if left < 0 {
                return Err(invalid(&format!("invalid {what} (over-subscribed)")));
            }
            if self.counts[len] > 0 {
                max = len;
            }
        }
        if left > 0 && !(allow_single && max <= 1) {
            return Err(invalid(&format!("invalid {what} (incomplete)")));
        }
        let mut offsets = [0u16; 16];
        for len in 1..15 {
            offsets[len + 1] = offsets[len] + self.counts[len];
        }
        self.symbols.clear();
        self.symbols.resize(lengths.len(), 0);
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                self.symbols[offsets[l as usize] as usize] = sym as u16;
                offsets[l as usize] += 1;
            }
        }
        // A complete code sets every slot, below: an entry, or 0 where a
        // longer code starts. Only an incomplete one leaves slots to clear.
        if left > 0 {
            self.fast.fill(0);
        }
        let mut code = 0u32;
        let mut index = 0usize;
        for len in 1..16 {
            for _ in 0..self.counts[len as usize] {
                let rev = code.reverse_bits() >> (32 - len);
                if len <= Self::BITS {
                    let entry = (self.meaning)(usize::from(self.symbols[index])) | len;
                    let mut slot = rev as usize;
                    while slot < SLOTS {
                        self.fast[slot] = entry;
                        slot += 1 << len;
                    }
                } else {
                    self.fast[rev as usize & (SLOTS - 1)] = 0;
                }
                code += 1;
                index += 1;
            }
            code <<= 1;
        }
        Ok(())
    }

    /// Decodes one code from the low bits of `bits`: its entry, 0 if none.
    #[inline(always)]
    fn decode(&self, bits: u64) -> u32 {
        self.decode_with(&self.fast, bits)
    }

    /// [`Self::decode`] with the table passed in, so that a hot loop can
    /// hold its address in a register.
    #[inline(always)]
    fn decode_with(&self, fast: &[u32; SLOTS], bits: u64) -> u32 {
        let e = fast[bits as usize & (SLOTS - 1)];
        if e != 0 {
            return e;
        }
        self.decode_slow(bits)
    }

    /// Bit by bit, for codes longer than the table's.
    #[cold]
    fn decode_slow(&self, bits: u64) -> u32 {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16u32 {
            code |= ((bits >> (len - 1)) & 1) as i32;
            let count = i32::from(self.counts[len as usize]);
            if code - first < count {
                let sym = self.symbols[(index + code - first) as usize];
                return (self.meaning)(usize::from(sym)) | len;
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        0
    }
}

/// Compressed input, read a bit at a time (least significant first).
struct BitInput<R> {
    src: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    src_done: bool,
    bits: u64,
    count: u32,
    /// Zero bytes put in the bit buffer past the end of the input, so that
    /// decoding need not check for the end at every symbol. Using any of
    /// them means the stream was cut short.
    padding: u32,
}

impl<R: Read> BitInput<R> {
    /// Reads more input; false at its end.
    fn fill(&mut self) -> io::Result<bool> {
        if self.src_done {
            return Ok(false);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.src_done = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// At least 56 bits in the buffer, zeros past the input's end.
    #[inline(always)]
    fn refill(&mut self) -> io::Result<()> {
        if self.end - self.pos >= 8 {
            let word = u64::from_le_bytes(self.buf[self.pos..self.pos + 8].try_into().unwrap());
            self.bits |= word << self.count;
            let bytes = (63 - self.count) / 8;
            self.pos += bytes as usize;
            self.count += bytes * 8;
            return Ok(());
        }
        self.refill_slow()
    }

    #[cold]
    fn refill_slow(&mut self) -> io::Result<()> {
        while self.count < 56 {
            if self.pos == self.end && !self.fill()? {
                // Only a stream cut short decodes this far past its end.
                self.padding += 1;
                if self.padding > 16 {
                    return Err(truncated());
                }
                self.count += 8;
                continue;
            }
            self.bits |= u64::from(self.buf[self.pos]) << self.count;
            self.pos += 1;
            self.count += 8;
        }
        Ok(())
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.bits >>= n;
        self.count -= n;
    }

    /// `n` (at most 32) bits, refilling first.
    fn take(&mut self, n: u32) -> io::Result<u32> {
        if self.count < n {
            self.refill()?;
        }
        let v = (self.bits & ((1u64 << n) - 1)) as u32;
        self.consume(n);
        self.check_padding()?;
        Ok(v)
    }

    /// An error if decoding used bits past the input's end.
    fn check_padding(&self) -> io::Result<()> {
        if self.count < self.padding * 8 {
            return Err(truncated());
        }
        Ok(())
    }

    /// Clears the bit buffer above its count. [`Self::refill`] leaves
    /// there bits of the bytes it will read next (setting them again is
    /// harmless); they must go before those bytes are read directly.
    fn forget_lookahead(&mut self) {
        if self.count == 0 {
            self.bits = 0;
        }
    }

    /// Drops the bits left of the current byte.
    fn align(&mut self) {
        let n = self.count % 8;
        self.consume(n);
    }

    /// The next whole byte (after [`Self::align`]); `None` at the input's
    /// end.
    fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.count >= 8 + self.padding * 8 {
            let b = self.bits as u8;
            self.consume(8);
            return Ok(Some(b));
        }
        if self.count > self.padding * 8 {
            return Err(invalid("misaligned gzip stream"));
        }
        if self.pos == self.end && !self.fill()? {
            return Ok(None);
        }
        // Padding is only ever added at the input's end.
        debug_assert_eq!(self.padding, 0);
        self.forget_lookahead();
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    fn need_byte(&mut self) -> io::Result<u8> {
        self.byte()?.ok_or_else(truncated)
    }
}

fn truncated() -> io::Error {
    invalid("the gzip stream ends early (truncated upload?)")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a member's header (or the end of the stream).
    Member,
    /// Before a block's header.
    Block,
    /// In a stored block, with this many bytes left.
    Stored(usize),
    /// In a Huffman-coded block.
    Codes,
    /// After the last block of a member.
    Trailer,
    Done,
    /// An error was returned: every later read returns one too (the
    /// buffer may hold bytes decoded past the damage).
    Failed,
}

/// Decoded bytes: a window of history, then those not yet read.
struct Output {
    buf: Vec<u8>,
    /// How much of `buf` is decoded.
    len: usize,
    /// Where in `buf` the current member starts (0 if before the window).
    member_floor: usize,
    /// The stream offset of `buf[0]`.
    base: u64,
}

/// A gzip stream's decompressed bytes (see the module documentation).
pub struct GzipDecoder<R> {
    input: BitInput<R>,
    state: State,
    last_block: bool,
    fixed: (LitlenCode, DistCode),
    dynamic: (LitlenCode, DistCode),
    use_fixed: bool,
    out: Output,
    /// Where in `out` the reader has got to.
    read_pos: usize,
    crc: Crc,
    /// How much of `out` the CRC covers.
    crc_pos: usize,
    /// Bytes of the current member.
    member_len: u64,
    log: Option<BackrefLog>,
    found: Vec<Logged>,
}

/// The fixed codes of RFC 1951, 3.2.6.
fn fixed_codes() -> (LitlenCode, DistCode) {
    let mut lengths = [0u8; 288];
    lengths[..144].fill(8);
    lengths[144..256].fill(9);
    lengths[256..280].fill(7);
    lengths[280..].fill(8);
    let mut litlen = LitlenCode::empty(litlen_meaning);
    litlen
        .build(&lengths, false, "fixed code")
        .expect("the fixed code is complete");
    let mut dist = DistCode::empty(dist_meaning);
    dist.build(&[5u8; 32], false, "fixed code")
        .expect("the fixed code is complete");
    (litlen, dist)
}

impl<R: Read> GzipDecoder<R> {
    /// Starts decoding `src`, telling "empty" and "not gzip" apart from
    /// damage (as [`super::gzip_reader`] does). With `log`, back-references
    /// are logged there.
    pub fn new(src: R, log: Option<BackrefLog>) -> Result<Self, ArchiveError> {
        let mut input = BitInput {
            src,
            buf: vec![0; INPUT_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
            src_done: false,
            bits: 0,
            count: 0,
            padding: 0,
        };
        while input.end < 2 {
            let more = input
                .fill()
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
            if !more {
                break;
            }
        }
        match &input.buf[..input.end] {
            [] => return Err(ArchiveError::Empty),
            [0x1f, 0x8b, ..] => {}
            _ => return Err(ArchiveError::NotGzip),
        }
        Ok(Self {
            input,
            state: State::Member,
            last_block: false,
            fixed: fixed_codes(),
            dynamic: (
                LitlenCode::empty(litlen_meaning),
                DistCode::empty(dist_meaning),
            ),
            use_fixed: false,
            out: Output {
                buf: vec![0; FILL_LIMIT + MAX_MATCH + 16],
                len: 0,
                member_floor: 0,
                base: 0,
            },
            read_pos: 0,
            crc: Crc::new(),
            crc_pos: 0,
            member_len: 0,
            log,
            found: Vec::new(),
        })
    }

    /// Reads a member's header; false at the clean end of the stream.
    fn member_header(&mut self) -> io::Result<bool> {
        self.input.align();
        let Some(id1) = self.input.byte()? else {
            return Ok(false);
        };
        // FHCRC covers every header byte before it, as zlib checks it.
        let mut crc = Crc::new();
        crc.update(&[id1]);
        let mut next = |input: &mut BitInput<R>| -> io::Result<u8> {
            let b = input.need_byte()?;
            crc.update(&[b]);
            Ok(b)
        };
        let mut head = [id1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for b in &mut head[1..] {
            *b = next(&mut self.input)?;
        }
        if head[0] != 0x1f || head[1] != 0x8b {
            return Err(invalid("invalid gzip header (data after the last member?)"));
        }
        if head[2] != 8 {
            return Err(invalid("unsupported gzip compression method"));
        }
        let flags = head[3];
        if flags & 0xe0 != 0 {
            return Err(invalid("invalid gzip header flags"));
        }
        if flags & 0x04 != 0 {
            let len = u16::from_le_bytes([next(&mut self.input)?, next(&mut self.input)?]);
            for _ in 0..len {
                next(&mut self.input)?;
            }
        }
        for flag in [0x08, 0x10] {
            if flags & flag != 0 {
                while next(&mut self.input)? != 0 {}
            }
        }
        if flags & 0x02 != 0 {
            let want = crc.sum() as u16;
            let got = u16::from_le_bytes([self.input.need_byte()?, self.input.need_byte()?]);
            if got != want {
                return Err(invalid("gzip header CRC mismatch"));
            }
        }
        Ok(true)
    }

    fn block_header(&mut self) -> io::Result<()> {
        let head = self.input.take(3)?;
        self.last_block = head & 1 == 1;
        self.state = match head >> 1 {
            0 => {
                self.input.align();
                let mut le = [0u8; 4];
                for b in &mut le {
                    *b = self.input.need_byte()?;
                }
                let len = u16::from_le_bytes([le[0], le[1]]);
                if len != !u16::from_le_bytes([le[2], le[3]]) {
                    return Err(invalid("invalid stored block lengths"));
                }
                State::Stored(usize::from(len))
            }
            1 => {
                self.use_fixed = true;
                State::Codes
            }
            2 => {
                self.dynamic_header()?;
                self.use_fixed = false;
                State::Codes
            }
            _ => return Err(invalid("invalid block type")),
        };
        Ok(())
    }

    /// Reads a dynamic block's code descriptions (RFC 1951, 3.2.7).
    fn dynamic_header(&mut self) -> io::Result<()> {
        let nlen = self.input.take(5)? as usize + 257;
        let ndist = self.input.take(5)? as usize + 1;
        let ncode = self.input.take(4)? as usize + 4;
        if nlen > 286 || ndist > 30 {
            return Err(invalid("too many length or distance symbols"));
        }
        let mut clens = [0u8; 19];
        for &i in &CLEN_ORDER[..ncode] {
            clens[i] = self.input.take(3)? as u8;
        }
        let mut clcode = ClenCode::empty(|sym| LITERAL | (sym as u32) << 9);
        clcode.build(&clens, false, "code lengths set")?;
        let mut lengths = [0u8; 286 + 30];
        let mut i = 0;
        while i < nlen + ndist {
            self.input.refill()?;
            let e = clcode.decode(self.input.bits);
            if e == 0 {
                return Err(invalid("invalid code lengths set"));
            }
            self.input.consume(e & CODE_LEN_MASK);
            let sym = (e >> 9) & 0xff;
            let (value, repeat) = match sym {
                0..=15 => (sym as u8, 1),
                16 => {
                    if i == 0 {
                        return Err(invalid("invalid bit length repeat"));
                    }
                    (lengths[i - 1], 3 + self.input.take(2)? as usize)
                }
                17 => (0, 3 + self.input.take(3)? as usize),
                _ => (0, 11 + self.input.take(7)? as usize),
            };
            if i + repeat > nlen + ndist {
                return Err(invalid("invalid bit length repeat"));
            }
            lengths[i..i + repeat].fill(value);
            i += repeat;
        }
        self.input.check_padding()?;
        if lengths[256] == 0 {
            return Err(invalid("invalid code -- missing end-of-block"));
        }
        self.dynamic
            .0
            .build(&lengths[..nlen], true, "literal/lengths set")?;
        self.dynamic
            .1
            .build(&lengths[nlen..nlen + ndist], true, "distances set")?;
        Ok(())
    }

    /// Copies a stored block's bytes, as many as fit.
    fn stored(&mut self, left: usize) -> io::Result<usize> {
        let room = FILL_LIMIT - self.out.len;
        let mut n = left.min(room);
        let mut copied = 0;
        // Whole bytes already in the bit buffer come first.
        while copied < n && self.input.count >= 8 {
            self.input.check_padding()?;
            let b = self.input.need_byte()?;
            self.out.buf[self.out.len] = b;
            self.out.len += 1;
            copied += 1;
        }
        n -= copied;
        if n > 0 {
            self.input.forget_lookahead();
        }
        while n > 0 {
            if self.input.pos == self.input.end && !self.input.fill()? {
                return Err(truncated());
            }
            let take = n.min(self.input.end - self.input.pos);
            let from = &self.input.buf[self.input.pos..self.input.pos + take];
            self.out.buf[self.out.len..self.out.len + take].copy_from_slice(from);
            self.input.pos += take;
            self.out.len += take;
            copied += take;
            n -= take;
        }
        Ok(left - copied)
    }

    /// Decodes a Huffman-coded block until it ends (true) or the output
    /// buffer fills (false).
    fn codes(&mut self) -> io::Result<bool> {
        let (litlen, dist) = if self.use_fixed {
            (&self.fixed.0, &self.fixed.1)
        } else {
            (&self.dynamic.0, &self.dynamic.1)
        };
        let input = &mut self.input;
        loop {
            let mut hot = Hot {
                bits: input.bits,
                count: input.count,
                pos: input.pos,
                len: self.out.len,
            };
            let run = if self.log.is_some() {
                decode_run::<true>
            } else {
                decode_run::<false>
            };
            let stop = run(
                &mut hot,
                &input.buf[..input.end],
                &mut self.out.buf,
                litlen,
                dist,
                self.out.member_floor,
                self.out.base,
                &mut self.found,
            );
            (input.bits, input.count, input.pos) = (hot.bits, hot.count, hot.pos);
            self.out.len = hot.len;
            match stop {
                Stop::NeedInput => input.refill_slow()?,
                Stop::Bad(what) => return Err(invalid(what)),
                Stop::BlockEnd | Stop::Full => {
                    input.check_padding()?;
                    return Ok(matches!(stop, Stop::BlockEnd));
                }
            }
        }
    }

    fn update_crc(&mut self) {
        let new = &self.out.buf[self.crc_pos..self.out.len];
        self.crc.update(new);
        self.member_len += new.len() as u64;
        self.crc_pos = self.out.len;
    }

    fn trailer(&mut self) -> io::Result<()> {
        self.update_crc();
        self.input.align();
        let mut le = [0u8; 8];
        for b in &mut le {
            *b = self.input.need_byte()?;
        }
        let crc = u32::from_le_bytes([le[0], le[1], le[2], le[3]]);
        let size = u32::from_le_bytes([le[4], le[5], le[6], le[7]]);
        if crc != self.crc.sum() {
            return Err(invalid("corrupt gzip stream: CRC-32 mismatch"));
        }
        if size != self.member_len as u32 {
            return Err(invalid("corrupt gzip stream: length mismatch"));
        }
        Ok(())
    }

    /// Keeps the last window of output and makes room after it.
    fn slide(&mut self) {
        let out = &mut self.out;
        if out.len <= WINDOW {
            return;
        }
        let shift = out.len - WINDOW;
        out.buf.copy_within(shift..out.len, 0);
        out.len = WINDOW;
        out.base += shift as u64;
        out.member_floor = out.member_floor.saturating_sub(shift);
        self.read_pos -= shift;
        self.crc_pos -= shift;
    }

    /// Decodes until the buffer is full or the stream ends.
    fn decode_more(&mut self) -> io::Result<()> {
        self.slide();
        while self.out.len < FILL_LIMIT {
            match self.state {
                State::Member => {
                    if !self.member_header()? {
                        self.state = State::Done;
                        break;
                    }
                    self.crc = Crc::new();
                    self.member_len = 0;
                    self.out.member_floor = self.out.len;
                    self.last_block = false;
                    self.state = State::Block;
                }
                State::Block if self.last_block => self.state = State::Trailer,
                State::Block => self.block_header()?,
                State::Stored(left) => {
                    let left = self.stored(left)?;
                    self.state = if left == 0 {
                        State::Block
                    } else {
                        State::Stored(left)
                    };
                }
                State::Codes => {
                    if self.codes()? {
                        self.state = State::Block;
                    }
                }
                State::Trailer => {
                    self.trailer()?;
                    self.state = State::Member;
                }
                State::Done | State::Failed => break,
            }
        }
        self.update_crc();
        if let Some(log) = &self.log {
            log.append(&mut self.found);
        }
        Ok(())
    }
}

/// The hot loop's state, in and out.
struct Hot {
    bits: u64,
    count: u32,
    /// Where in the input.
    pos: usize,
    /// How much of the output buffer is decoded.
    len: usize,
}

/// Why [`decode_run`] stopped.
enum Stop {
    BlockEnd,
    /// The output buffer reached [`FILL_LIMIT`].
    Full,
    /// Fewer than 8 input bytes are left and the bit buffer may not hold a
    /// whole symbol: the caller refills it.
    NeedInput,
    Bad(&'static str),
}

/// Decodes symbols of one block from `input` into `out`: the inner loop of
/// [`GzipDecoder`], a function of its own so that its slices are known not
/// to overlap and its state stays in registers.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn decode_run<const LOG: bool>(
    hot: &mut Hot,
    input: &[u8],
    out: &mut [u8],
    litlen: &LitlenCode,
    dist: &DistCode,
    floor: usize,
    base: u64,
    found: &mut Vec<Logged>,
) -> Stop {
    let (lit_fast, dist_fast) = (&*litlen.fast, &*dist.fast);
    let (mut bits, mut count, mut pos, mut olen) = (hot.bits, hot.count, hot.pos, hot.len);
    let stop = loop {
        if olen >= FILL_LIMIT {
            break Stop::Full;
        }
        // At least 48 bits: a length's code and extra bits and its
        // distance's code and extra bits (15 + 5 + 15 + 13).
        if input.len() - pos >= 8 {
            let word = u64::from_le_bytes(input[pos..pos + 8].try_into().unwrap());
            bits |= word << count;
            pos += ((63 - count) >> 3) as usize;
            count |= 56;
        } else if count < 48 {
            break Stop::NeedInput;
        }
        let e = litlen.decode_with(lit_fast, bits);
        let n = e & CODE_LEN_MASK;
        bits >>= n;
        count -= n;
        if e & LITERAL != 0 {
            out[olen] = (e >> 9) as u8;
            olen += 1;
            // A second literal, if its code is in the bits left.
            if count >= LITLEN_BITS {
                let e = lit_fast[bits as usize & ((1 << LITLEN_BITS) - 1)];
                if e & LITERAL != 0 {
                    out[olen] = (e >> 9) as u8;
                    olen += 1;
                    bits >>= e & CODE_LEN_MASK;
                    count -= e & CODE_LEN_MASK;
                }
            }
            continue;
        }
        if e & BASE == 0 {
            if e & END_OF_BLOCK != 0 {
                break Stop::BlockEnd;
            }
            break Stop::Bad("invalid literal/length code");
        }
        let extra = (e >> 5) & 0xf;
        let len = ((e >> 9) & 0xffff) as usize + (bits & ((1 << extra) - 1)) as usize;
        bits >>= extra;
        count -= extra;
        let e = dist.decode_with(dist_fast, bits);
        if e & BASE == 0 {
            break Stop::Bad("invalid distance code");
        }
        let n = e & CODE_LEN_MASK;
        bits >>= n;
        count -= n;
        let extra = (e >> 5) & 0xf;
        let d = ((e >> 9) & 0xffff) as usize + (bits & ((1 << extra) - 1)) as usize;
        bits >>= extra;
        count -= extra;
        if d > olen - floor {
            break Stop::Bad("invalid distance too far back");
        }
        let at = olen;
        let from = at - d;
        if d >= 16 {
            // Sixteen bytes at a time, each chunk's source written before
            // it is read; the last may run past `len` into the slack.
            // (32 at a time was no faster on the bench's modules.)
            let mut k = 0;
            while k < len {
                let chunk: [u8; 16] = out[from + k..from + k + 16].try_into().unwrap();
                out[at + k..at + k + 16].copy_from_slice(&chunk);
                k += 16;
            }
        } else if d >= 8 {
            let mut k = 0;
            while k < len {
                let chunk: [u8; 8] = out[from + k..from + k + 8].try_into().unwrap();
                out[at + k..at + k + 8].copy_from_slice(&chunk);
                k += 8;
            }
        } else {
            // The source repeats with period `d`: copy whole periods,
            // doubling.
            let mut done = 0;
            while done < len {
                let n = (len - done).min(d + done);
                out.copy_within(from..from + n, at + done);
                done += n;
            }
        }
        olen += len;
        if LOG {
            found.push(Logged {
                pos: base + at as u64,
                len: len as u16,
                dist: d as u16,
            });
        }
    };
    *hot = Hot {
        bits,
        count,
        pos,
        len: olen,
    };
    stop
}

impl<R: Read> Read for GzipDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.state == State::Failed {
            return Err(invalid("the gzip stream was found damaged before"));
        }
        while self.read_pos == self.out.len {
            if self.state == State::Done {
                return Ok(0);
            }
            if let Err(e) = self.decode_more() {
                self.state = State::Failed;
                return Err(e);
            }
        }
        let n = buf.len().min(self.out.len - self.read_pos);
        buf[..n].copy_from_slice(&self.out.buf[self.read_pos..self.read_pos + n]);
        self.read_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(data: &[u8], level: u32) -> Vec<u8> {
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(level));
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    /// Machine-code-like test data: repeats near and far, runs, noise.
    fn sample(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            match next() % 4 {
                0 if data.len() > 40_000 => {
                    let from = data.len() - 1 - (next() % 40_000) as usize;
                    let n = 3 + (next() % 300) as usize;
                    for i in 0..n {
                        let b = data[from + i % (data.len() - from)];
                        data.push(b);
                    }
                }
                1 => {
                    data.extend(std::iter::repeat((next() % 4) as u8).take((next() % 600) as usize))
                }
                _ => data.extend((0..(next() % 64)).map(|_| (next() % 7) as u8 * 37)),
            }
        }
        data.truncate(len);
        data
    }

    fn decode_all(gz: &[u8], log: Option<BackrefLog>) -> io::Result<Vec<u8>> {
        let mut d = GzipDecoder::new(gz, log).map_err(io::Error::other)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn gives_what_zlib_gives_at_every_level_and_over_members() {
        for (i, level) in [0u32, 1, 6, 9].into_iter().enumerate() {
            let data = sample(700_000 + i * 12_345, 7 + i as u64);
            assert_eq!(
                decode_all(&gzip(&data, level), None)
                    .unwrap_or_else(|e| panic!("level {level}: {e}")),
                data,
                "level {level}"
            );
        }
        let (a, b) = (sample(100_000, 1), sample(300_000, 2));
        let mut two = gzip(&a, 6);
        two.extend(gzip(&b, 1));
        assert_eq!(decode_all(&two, None).unwrap(), [a, b].concat());
        assert_eq!(decode_all(&gzip(b"", 6), None).unwrap(), b"");
    }

    #[test]
    fn reads_what_gnu_gzip_writes() {
        // Another encoder than the one the tests otherwise use: GNU gzip,
        // as `tar -czf` runs it, at its fastest and its best.
        let data = sample(500_000, 11);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, &data).unwrap();
        for level in ["-1", "-9"] {
            let out = std::process::Command::new("gzip")
                .args([level, "-c", "-n"])
                .arg(&plain)
                .output()
                .unwrap();
            assert!(out.status.success());
            assert!(
                decode_all(&out.stdout, None).unwrap() == data,
                "gzip {level}"
            );
        }
    }

    #[test]
    fn logs_every_back_reference_and_each_one_holds() {
        let data = sample(900_000, 3);
        let log = BackrefLog::default();
        let out = decode_all(&gzip(&data, 6), Some(log.clone())).unwrap();
        assert_eq!(out, data);
        let all = log.take(0, data.len() as u64, usize::MAX).unwrap();
        assert!(all.len() > 10_000, "{} back-references", all.len());
        let mut covered = 0;
        for b in &all {
            let (at, len, d) = (b.pos as usize, b.len as usize, b.dist as usize);
            assert!(len >= 3 && d >= 1 && d <= at);
            for i in 0..len {
                assert_eq!(data[at + i], data[at + i - d], "{b:?}");
            }
            covered += len;
        }
        assert!(
            covered > data.len() / 2,
            "{covered} of {} bytes",
            data.len()
        );
        // Taken once: a second take finds nothing.
        assert_eq!(log.take(0, data.len() as u64, usize::MAX).unwrap(), vec![]);
    }

    #[test]
    fn a_range_takes_only_what_lies_wholly_in_it() {
        let data = sample(400_000, 4);
        let log = BackrefLog::default();
        decode_all(&gzip(&data, 6), Some(log.clone())).unwrap();
        let (start, end) = (150_000u64, 250_000u64);
        let part = log.take(start, end, usize::MAX).unwrap();
        assert!(!part.is_empty());
        for b in &part {
            assert!(
                b.pos >= u32::from(b.dist) && u64::from(b.pos + u32::from(b.len)) <= end - start
            );
        }
        // Those before `end` are gone; a bound refuses rather than truncates.
        assert_eq!(log.take(0, end, usize::MAX).unwrap(), vec![]);
        assert_eq!(log.take(end, 400_000, 5), None);
    }

    #[test]
    fn damage_is_invalid_data_never_a_panic() {
        let data = sample(200_000, 5);
        let good = gzip(&data, 6);
        let mut crc = good.clone();
        let at = crc.len() - 8;
        crc[at] ^= 1;
        let mut size = good.clone();
        let at = size.len() - 1;
        size[at] ^= 1;
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"junk after");
        for (what, bad) in [
            ("crc", crc),
            ("size", size),
            ("cut", good[..good.len() / 2].to_vec()),
            ("cut trailer", good[..good.len() - 3].to_vec()),
            ("garbage", garbage),
        ] {
            let err = decode_all(&bad, None).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
        }
        // Damage anywhere, in streams of every block type: no panic, no
        // hang, and up to where each decoder stops, the bytes zlib gives.
        let mut streams = vec![gzip(&sample(3000, 6), 9), gzip(&sample(3000, 8), 1)];
        streams.push(gzip(&sample(3000, 9), 0));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for small in &streams {
            for i in 10..small.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bad = small.clone();
                    bad[i] ^= flip;
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let j = 10 + (x as usize) % (small.len() - 10);
                    bad[j] ^= (x >> 32) as u8;
                    agrees_with_zlib(&bad);
                }
                agrees_with_zlib(&small[..i]);
            }
        }
    }

    /// Decodes `gz` with both decoders until each ends or refuses it: one
    /// output must start the other.
    fn agrees_with_zlib(gz: &[u8]) {
        fn drain(mut r: impl Read) -> Vec<u8> {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = r.read(&mut buf) {
                out.extend_from_slice(&buf[..n]);
            }
            out
        }
        let theirs = drain(flate2::read::MultiGzDecoder::new(gz));
        let ours = drain(GzipDecoder::new(gz, None).unwrap());
        let n = ours.len().min(theirs.len());
        assert!(ours[..n] == theirs[..n], "decoded bytes differ");
    }

    #[test]
    fn a_header_crc_is_checked_and_errors_stick() {
        let data = sample(50_000, 12);
        let plain = gzip(&data, 6);
        // The same member with FHCRC set and the header's CRC-16 after it.
        let mut head = plain[..10].to_vec();
        head[3] |= 0x02;
        let mut crc = Crc::new();
        crc.update(&head);
        let mut good = head.clone();
        good.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
        good.extend_from_slice(&plain[10..]);
        assert!(decode_all(&good, None).unwrap() == data);
        let mut bad = good.clone();
        bad[10] ^= 1;
        let err = decode_all(&bad, None).unwrap_err();
        assert!(err.to_string().contains("header CRC"), "{err}");
        // Once a read has failed, no later one returns bytes.
        let mut cut = GzipDecoder::new(&plain[..plain.len() / 2], None).unwrap();
        let mut out = Vec::new();
        assert!(cut.read_to_end(&mut out).is_err());
        assert!(cut.read(&mut [0u8; 64]).is_err());
    }

    #[test]
    fn tells_empty_and_not_gzip_apart() {
        assert!(matches!(
            GzipDecoder::new(&b""[..], None),
            Err(ArchiveError::Empty)
        ));
        assert!(matches!(
            GzipDecoder::new(&b"plain text"[..], None),
            Err(ArchiveError::NotGzip)
        ));
    }
}
