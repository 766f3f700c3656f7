//! The reply's gzip stream, as independent gzip members of about 512 KiB
//! of input each, compressed on every core, each 64 KiB block of a member
//! stored (not deflated) when a sample of it would not shrink.
//!
//! Signed artifacts are often incompressible (random-looking module bodies,
//! encrypted images); deflating them at level 1 cost a core for nothing
//! (36 % of svc-kmod's samples on random-content modules, issue 20).
//! Compressible ones (real `.ko` files) kept one thread busy deflating
//! while the others waited for it. Independent members need no shared
//! dictionary, so each is compressed by whichever thread is free and they
//! are written in order. Concatenated members are one valid gzip file for
//! GNU tar, gzip and Python's tarfile (tested).
//!
//! Bytes written with their back-references known
//! ([`ChunkedGzWriter::write_with_backrefs`]: svc-kmod's module bodies,
//! with the upload's) are coded from those with the fixed codes, in blocks
//! of their own, instead of being searched at level 1.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, Crc, FlushCompress};

use super::fixed_deflate::write_fixed_block;
use super::inflate::Backref;

/// Input bytes per member.
pub const MEMBER_BYTES: usize = 512 * 1024;

/// Input bytes judged at a time: each block of a member is deflated or
/// stored on its own, as one deflate stream may mix both. Signed files are
/// often part code, part random (an image and its appended signature, a
/// TA with encrypted sections), and tar headers sit among random module
/// bodies: judged whole, such a member was deflated entirely, at a cost of
/// 28 % of svc-optee's samples, for the gain of its few compressible parts.
const BLOCK_BYTES: usize = 64 * 1024;

/// Bytes of each block whose byte counts judge it (from its middle).
const SAMPLE_BYTES: usize = 4 * 1024;

/// A block whose sample's byte entropy exceeds this many bits per byte is
/// stored: Huffman coding alone could not shrink it by 3 %. (A 4 KiB sample
/// of random bytes measures ~7.95.) (Trying level 1 on samples instead cost
/// 7 % of svc-kmod's CPU on random content; counting bytes costs next to
/// nothing. Data that only LZ matches would shrink, such as a random block
/// repeated, is stored: rare in signed artifacts, and still correct.)
const STORE_ABOVE_BITS_PER_BYTE: f64 = 7.76;

/// Members being compressed at once per thread: enough to keep every thread
/// busy while the writer waits for the oldest, few enough that memory stays
/// at a few MiB (each member holds its input and output).
const IN_FLIGHT_PER_THREAD: usize = 2;

/// Compression threads per reply at most: concurrent replies (up to
/// `DIGSIGSERVER_MAX_JOBS`, the number of cores by default) each have their
/// own, so threads and buffers grow with jobs × this, not with cores².
const MAX_THREADS_PER_REPLY: usize = 4;

/// Bytes of `block` that `refs` (sorted, positions in the member) would
/// copy.
fn matched(refs: &[Backref], block: std::ops::Range<usize>) -> usize {
    let first = refs.partition_point(|r| (r.pos as usize) < block.start);
    refs[first..]
        .iter()
        .take_while(|r| (r.pos as usize) < block.end)
        .map(|r| usize::from(r.len).min(block.end - r.pos as usize))
        .sum()
}

/// A gzip writer of independent members (see the module documentation).
pub struct ChunkedGzWriter<W: Write> {
    out: W,
    level: u32,
    pending: Vec<u8>,
    /// Back-references known in the pending bytes (from
    /// [`Self::write_with_backrefs`]): sorted, positions in the member.
    pending_refs: Vec<Backref>,
    members: u64,
    /// Compresses the last member on the caller's thread (the only one of
    /// a reply shorter than a member, which then starts no threads), and
    /// every member if no thread can be started.
    local: Option<MemberCompressor>,
    threads: Threads,
    /// Buffers back from the pool, reused for the next members.
    spare: Vec<Vec<u8>>,
    spare_refs: Vec<Vec<Backref>>,
    stored: u64,
}

/// The compression threads, started with the first member that is not
/// the last.
enum Threads {
    /// No member has needed them yet.
    NotStarted,
    /// Compressing members in the background.
    Running(Pool),
    /// None could be started: every member is compressed on the caller's
    /// thread.
    Unavailable,
}

/// A gzip member's header: deflate, no name, no time, unknown OS (as
/// flate2's GzEncoder writes it).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// One thread's compressor, reused for every member so nothing is
/// allocated per member.
struct MemberCompressor {
    deflate: Compress,
}

/// The last block of every member: an empty stored block with BFINAL set
/// (written byte-aligned: 3 header bits, padding, LEN 0, NLEN !0).
const FINAL_EMPTY_BLOCK: [u8; 5] = [0x01, 0x00, 0x00, 0xff, 0xff];

impl MemberCompressor {
    fn new(level: u32) -> Self {
        Self {
            deflate: Compress::new(Compression::new(level), false),
        }
    }

    /// Whether deflate would shrink `block`, judged by the byte entropy of
    /// a sample from its middle.
    fn worth_deflating(block: &[u8]) -> bool {
        if block.len() <= 2 * SAMPLE_BYTES {
            return true;
        }
        let start = (block.len() - SAMPLE_BYTES) / 2;
        let mut counts = [0u32; 256];
        for &b in &block[start..start + SAMPLE_BYTES] {
            counts[b as usize] += 1;
        }
        let total = SAMPLE_BYTES as f64;
        let entropy: f64 = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = f64::from(c) / total;
                -p * p.log2()
            })
            .sum();
        entropy <= STORE_ABOVE_BITS_PER_BYTE
    }

    /// Replaces `member` with `data` as one whole gzip member; tells whether
    /// every block of it was stored.
    ///
    /// A block worth deflating that `refs` mostly cover (a signed
    /// module's body) is coded from them with the fixed codes
    /// ([`write_fixed_block`]): no search, and on real modules a smaller
    /// result than level 1's.
    ///
    /// One deflate stream may hold deflated and stored blocks in any order.
    /// Each run of blocks worth deflating goes through the compressor,
    /// fresh (so its matches never reach back across a stored block, whose
    /// bytes the compressor never saw) and sync-flushed at the run's end
    /// (so it ends byte-aligned, with no final block); blocks not worth it
    /// are written as stored blocks by hand; an empty final block ends the
    /// stream.
    fn compress(
        &mut self,
        data: &[u8],
        refs: &[Backref],
        member: &mut Vec<u8>,
    ) -> io::Result<bool> {
        member.clear();
        member.extend_from_slice(&GZIP_HEADER);
        let mut all_stored = true;
        let mut in_run = false;
        for (index, block) in data.chunks(BLOCK_BYTES).enumerate() {
            let start = index * BLOCK_BYTES;
            let span = start..start + block.len();
            let deflate = Self::worth_deflating(block);
            // Fixed codes pay where the known back-references copy at least
            // half the block (real modules from `tar -czf`: ~80 %); a
            // block with fewer (another file, a module whose references
            // were not kept, an upload compressed at a low level) is
            // searched at level 1 instead.
            if deflate && 2 * matched(refs, span.clone()) >= block.len() {
                all_stored = false;
                if in_run {
                    self.feed(&[], member, FlushCompress::Sync)?;
                    in_run = false;
                }
                write_fixed_block(data, span, refs, member);
            } else if deflate {
                all_stored = false;
                if !in_run {
                    self.deflate.reset();
                    in_run = true;
                }
                self.feed(block, member, FlushCompress::None)?;
            } else {
                if in_run {
                    self.feed(&[], member, FlushCompress::Sync)?;
                    in_run = false;
                }
                write_stored(block, member);
            }
        }
        if in_run {
            self.feed(&[], member, FlushCompress::Sync)?;
        }
        member.extend_from_slice(&FINAL_EMPTY_BLOCK);
        let mut crc = Crc::new();
        crc.update(data);
        member.extend_from_slice(&crc.sum().to_le_bytes());
        member.extend_from_slice(&crc.amount().to_le_bytes());
        Ok(all_stored && !data.is_empty())
    }

    /// Compresses all of `input` into `member`; with `Sync`, until the
    /// compressor holds nothing back.
    fn feed(
        &mut self,
        mut input: &[u8],
        member: &mut Vec<u8>,
        flush: FlushCompress,
    ) -> io::Result<()> {
        loop {
            if member.capacity() - member.len() < 64 * 1024 {
                member.reserve(256 * 1024);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, member, flush)
                .map_err(io::Error::other)?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Room left over means the compressor wrote all it had.
            if input.is_empty() && member.capacity() > member.len() {
                return Ok(());
            }
        }
    }
}

/// `block` as non-final stored deflate blocks (at most 65,535 bytes each),
/// at a byte boundary.
fn write_stored(block: &[u8], member: &mut Vec<u8>) {
    for piece in block.chunks(u16::MAX as usize) {
        let len = piece.len() as u16;
        member.push(0x00); // BFINAL 0, BTYPE 00 (stored), padding
        member.extend_from_slice(&len.to_le_bytes());
        member.extend_from_slice(&(!len).to_le_bytes());
        member.extend_from_slice(piece);
    }
}

/// A member compressed by the pool: its input and back-references (for
/// reuse), the member, and whether it was stored.
type Done = io::Result<(Vec<u8>, Vec<Backref>, Vec<u8>, bool)>;

/// One job: the input and its back-references, a buffer for the member,
/// and where to send it.
type Job = (Vec<u8>, Vec<Backref>, Vec<u8>, SyncSender<Done>);

/// Compression threads, and the members they are working on in order.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    in_flight: VecDeque<Receiver<Done>>,
    limit: usize,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of up to [`MAX_THREADS_PER_REPLY`] threads; `None` if not
    /// even one could be started (e.g. at a pids limit): the writer then
    /// compresses on its own thread.
    fn start(level: u32) -> Option<Self> {
        let wanted = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_THREADS_PER_REPLY);
        let limit = wanted * IN_FLIGHT_PER_THREAD;
        let (jobs, queue) = mpsc::sync_channel::<Job>(limit);
        let queue = Arc::new(Mutex::new(queue));
        let span = tracing::Span::current();
        let threads: Vec<JoinHandle<()>> = (0..wanted)
            .map_while(|_| {
                let queue = Arc::clone(&queue);
                let span = span.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("reply-gzip".into())
                        .spawn(move || {
                            let _enter = span.enter();
                            let mut compressor = MemberCompressor::new(level);
                            loop {
                                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                                let Ok((data, refs, mut member, reply)) = next else {
                                    return;
                                };
                                let done = compressor
                                    .compress(&data, &refs, &mut member)
                                    .map(|stored| (data, refs, member, stored));
                                // The writer may have given up (an error elsewhere).
                                let _ = reply.send(done);
                            }
                        });
                spawned.ok()
            })
            .collect();
        if threads.is_empty() {
            tracing::warn!(
                "no compression thread could be started; compressing the reply on one thread"
            );
            return None;
        }
        Some(Self {
            jobs: Some(jobs),
            in_flight: VecDeque::new(),
            limit,
            threads,
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the queue ends the threads once they finish their member.
        self.jobs = None;
        self.in_flight.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl<W: Write> ChunkedGzWriter<W> {
    /// Writes to `out`, deflating compressible members at `level`.
    pub fn new(out: W, level: u32) -> Self {
        Self {
            out,
            level,
            pending: Vec::with_capacity(MEMBER_BYTES),
            pending_refs: Vec::new(),
            members: 0,
            local: None,
            threads: Threads::NotStarted,
            spare: Vec::new(),
            spare_refs: Vec::new(),
            stored: 0,
        }
    }

    /// Hands the pending bytes to the pool as the next member, first
    /// writing out the oldest members if as many as allowed are in flight.
    fn submit_member(&mut self) -> io::Result<()> {
        if let Threads::NotStarted = self.threads {
            self.threads = match Pool::start(self.level) {
                Some(pool) => Threads::Running(pool),
                None => Threads::Unavailable,
            };
        }
        let Threads::Running(pool) = &mut self.threads else {
            return self.write_here();
        };
        while pool.in_flight.len() >= pool.limit {
            let oldest = pool.in_flight.pop_front().expect("in flight");
            Self::write_done(
                &mut self.out,
                &mut self.spare,
                &mut self.spare_refs,
                &mut self.stored,
                oldest,
            )?;
        }
        let refs = std::mem::replace(
            &mut self.pending_refs,
            self.spare_refs.pop().unwrap_or_default(),
        );
        let data = std::mem::replace(
            &mut self.pending,
            self.spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(MEMBER_BYTES)),
        );
        self.pending.clear();
        let member = self.spare.pop().unwrap_or_default();
        let (reply, done) = mpsc::sync_channel(1);
        pool.jobs
            .as_ref()
            .expect("the queue is open while the writer is")
            .send((data, refs, member, reply))
            .map_err(|_| io::Error::other("the compression threads stopped"))?;
        pool.in_flight.push_back(done);
        self.members += 1;
        Ok(())
    }

    /// Compresses and writes the pending bytes as a member on this thread.
    fn write_here(&mut self) -> io::Result<()> {
        let level = self.level;
        let compressor = self
            .local
            .get_or_insert_with(|| MemberCompressor::new(level));
        let mut member = self.spare.pop().unwrap_or_default();
        self.stored +=
            u64::from(compressor.compress(&self.pending, &self.pending_refs, &mut member)?);
        self.out.write_all(&member)?;
        self.pending.clear();
        self.pending_refs.clear();
        self.spare.push(member);
        self.members += 1;
        Ok(())
    }

    /// Writes a member the pool compressed, keeping its buffers.
    fn write_done(
        out: &mut W,
        spare: &mut Vec<Vec<u8>>,
        spare_refs: &mut Vec<Vec<Backref>>,
        stored: &mut u64,
        done: Receiver<Done>,
    ) -> io::Result<()> {
        let (data, mut refs, member, was_stored) = done
            .recv()
            .map_err(|_| io::Error::other("a compression thread stopped"))??;
        out.write_all(&member)?;
        *stored += u64::from(was_stored);
        spare.push(data);
        spare.push(member);
        refs.clear();
        spare_refs.push(refs);
        Ok(())
    }

    /// Writes `data`, a copy of bytes whose back-references are known:
    /// `refs`, sorted, positions relative to `data` (e.g. from
    /// [`super::inflate::BackrefLog::take`]). Those that fit in one member
    /// are kept for its compressor, which checks each before use.
    pub fn write_with_backrefs(&mut self, data: &[u8], refs: &[Backref]) -> io::Result<()> {
        let mut done = 0;
        let mut next = 0;
        while done < data.len() {
            let offset = self.pending.len();
            let take = (MEMBER_BYTES - offset).min(data.len() - done);
            self.pending.extend_from_slice(&data[done..done + take]);
            while let Some(r) = refs.get(next) {
                let pos = r.pos as usize;
                if pos >= done + take {
                    break;
                }
                next += 1;
                // Kept if it lies in this piece, its source in this member.
                if pos < done || pos + usize::from(r.len) > done + take {
                    continue;
                }
                let at = offset + pos - done;
                if at >= usize::from(r.dist) {
                    self.pending_refs.push(Backref {
                        pos: at as u32,
                        ..*r
                    });
                }
            }
            done += take;
            if self.pending.len() == MEMBER_BYTES {
                self.submit_member()?;
            }
        }
        Ok(())
    }

    /// Writes what is pending and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        if let Threads::Running(mut pool) =
            std::mem::replace(&mut self.threads, Threads::NotStarted)
        {
            while let Some(done) = pool.in_flight.pop_front() {
                Self::write_done(
                    &mut self.out,
                    &mut self.spare,
                    &mut self.spare_refs,
                    &mut self.stored,
                    done,
                )?;
            }
        }
        if !self.pending.is_empty() || self.members == 0 {
            // The last (or only) member: not worth a round trip to a thread.
            self.write_here()?;
        }
        tracing::debug!(
            members = self.members,
            stored = self.stored,
            "reply gzip members"
        );
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ChunkedGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = MEMBER_BYTES - self.pending.len();
        let take = room.min(buf.len());
        self.pending.extend_from_slice(&buf[..take]);
        if self.pending.len() == MEMBER_BYTES {
            self.submit_member()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Members are whole units; what is pending waits for more input or
        // `finish`.
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn random(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// What GNU gzip decodes `gz` to (it checks every member's CRC).
    fn gnu_gunzip(gz: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.gz"), gz).unwrap();
        let out = std::process::Command::new("gzip")
            .args(["-d", "-c"])
            .arg(dir.path().join("m.gz"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut w = ChunkedGzWriter::new(Vec::new(), 1);
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn members_read_back_as_one_stream_and_random_data_is_stored() {
        let mut data = random(3 * MEMBER_BYTES + 1234, 7);
        data.extend(std::iter::repeat_n(b'a', 2 * MEMBER_BYTES));
        let gz = gzip(&data);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Random members stored (a few bytes more than their input), the
        // repeated ones deflated to almost nothing.
        let random_part = 3 * MEMBER_BYTES + 1234;
        assert!(
            gz.len() < random_part + random_part / 100 + 64 * 1024,
            "{}",
            gz.len()
        );
        assert!(gz.len() > random_part);
    }

    #[test]
    fn one_member_mixes_stored_and_deflated_blocks_and_gzip_reads_it() {
        // Random and repetitive blocks in turn, then a short repetitive
        // tail (a block smaller than a sample).
        let mut data = Vec::new();
        for i in 0..8u64 {
            match i % 2 {
                0 => data.extend(random(BLOCK_BYTES, i + 1)),
                _ => data
                    .extend(std::iter::repeat_n(b"mov %rax, %rbx; ", BLOCK_BYTES / 16).flatten()),
            }
        }
        data.extend(std::iter::repeat_n(b'z', 1000));
        let mut member = Vec::new();
        let all_stored = MemberCompressor::new(1)
            .compress(&data, &[], &mut member)
            .unwrap();
        assert!(!all_stored);
        // The random half stored (5 bytes of header per 65,535), the rest
        // deflated to almost nothing.
        let random_part = 4 * BLOCK_BYTES;
        assert!(member.len() > random_part, "{}", member.len());
        assert!(member.len() < random_part + 8 * 1024, "{}", member.len());
        // GNU gzip, not only our own decoder, reads it back, CRC checked.
        assert_eq!(gnu_gunzip(&member), data);
        // An all-random member is stored whole.
        let random_member = random(MEMBER_BYTES, 99);
        assert!(MemberCompressor::new(1)
            .compress(&random_member, &[], &mut member)
            .unwrap());
    }

    /// Compressible bytes with repeats near and far, as machine code has.
    fn code_like(len: usize, seed: u64) -> Vec<u8> {
        let noise = random(len, seed);
        let mut data = Vec::with_capacity(len);
        let mut i = 0;
        while data.len() < len {
            let r = usize::from(noise[i % len]);
            i += 1;
            if data.len() > 4096 && r < 160 {
                let from = data.len() - 1 - (r * 97 + usize::from(noise[(i * 7) % len])) % 4000;
                for k in 0..3 + r % 40 {
                    data.push(data[from + k]);
                }
            } else {
                data.push(b"\x48\x89\xe5\x0f\x1f\x00\xc3\x90"[r % 8] ^ (r as u8 & 0x3));
            }
        }
        data.truncate(len);
        data
    }

    #[test]
    fn known_back_references_give_a_stream_gnu_gzip_reads_and_a_smaller_one() {
        // Bodies as svc-kmod writes them: each one's back-references from
        // the upload's own gzip (level 9), between headers written plainly,
        // across member boundaries.
        let bodies: Vec<Vec<u8>> = (0..5)
            .map(|i| code_like(300_000 + i * 77_777, i as u64 + 1))
            .collect();
        let mut expected = Vec::new();
        let mut hinted = ChunkedGzWriter::new(Vec::new(), 1);
        let mut plain = ChunkedGzWriter::new(Vec::new(), 1);
        let mut used = 0;
        for (i, body) in bodies.iter().enumerate() {
            let mut up = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
            up.write_all(body).unwrap();
            let upload = up.finish().unwrap();
            let log = super::super::inflate::BackrefLog::default();
            let mut decoder =
                super::super::inflate::GzipDecoder::new(&upload[..], Some(log.clone())).unwrap();
            let mut back = Vec::new();
            decoder.read_to_end(&mut back).unwrap();
            assert_eq!(&back, body);
            let refs = log.take(0, body.len() as u64, usize::MAX).unwrap();
            used += refs.len();
            let header = format!("header {i}: {}", "-".repeat(i * 100)).into_bytes();
            for w in [&mut hinted, &mut plain] {
                w.write_all(&header).unwrap();
            }
            hinted.write_with_backrefs(body, &refs).unwrap();
            plain.write_all(body).unwrap();
            expected.extend_from_slice(&header);
            expected.extend_from_slice(body);
        }
        assert!(used > 50_000, "{used} back-references");
        let (hinted, plain) = (hinted.finish().unwrap(), plain.finish().unwrap());
        assert!(
            hinted.len() < plain.len(),
            "with back-references {} bytes, level 1 {}",
            hinted.len(),
            plain.len()
        );
        assert!(gnu_gunzip(&hinted) == expected, "GNU gzip read other bytes");
    }

    #[test]
    fn without_back_references_bytes_are_compressed_at_level_1() {
        // A module whose back-references were not kept (too large, too
        // many) must not come out as fixed-code literals.
        let body = code_like(700_000, 21);
        let mut none = ChunkedGzWriter::new(Vec::new(), 1);
        none.write_with_backrefs(&body, &[]).unwrap();
        let mut plain = ChunkedGzWriter::new(Vec::new(), 1);
        plain.write_all(&body).unwrap();
        assert!(none.finish().unwrap() == plain.finish().unwrap());
    }

    #[test]
    fn members_compressed_in_parallel_come_back_in_order() {
        // Many members, alternating compressible and not, each distinct, so
        // a member written out of order or twice changes what reads back.
        let mut data = Vec::new();
        for i in 0..40u64 {
            if i % 2 == 0 {
                data.extend(random(MEMBER_BYTES - 100, i + 1));
            } else {
                data.extend(
                    format!("member {i} ")
                        .repeat(MEMBER_BYTES / 12)
                        .into_bytes(),
                );
            }
        }
        let mut writer = ChunkedGzWriter::new(Vec::new(), 1);
        // Odd-sized writes, as tar's 512-byte records and entries arrive.
        for piece in data.chunks(100_003) {
            writer.write_all(piece).unwrap();
        }
        let gz = writer.finish().unwrap();
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "parallel members read back differently");
        assert!(gz.len() < data.len() * 3 / 4, "{}", gz.len());
    }

    #[test]
    fn an_empty_stream_is_a_valid_gzip() {
        let gz = gzip(b"");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn gnu_gzip_tar_and_python_read_a_chunked_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("d")).unwrap();
        std::fs::write(tree.join("d/random.bin"), random(3 * MEMBER_BYTES, 3)).unwrap();
        std::fs::write(tree.join("d/text.txt"), "text ".repeat(300_000)).unwrap();
        let file = std::fs::File::create(dir.path().join("out.tar.gz")).unwrap();
        let gz = crate::archive::pack_tar_gz(&tree, file, 1).unwrap();
        drop(gz);
        let path = dir.path().join("out.tar.gz");
        let ok = |cmd: &mut std::process::Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        ok(std::process::Command::new("gzip").arg("-t").arg(&path));
        let listed = ok(std::process::Command::new("tar").arg("-tzf").arg(&path));
        assert!(
            listed.contains("./d/random.bin") && listed.contains("./d/text.txt"),
            "{listed}"
        );
        let py = ok(std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, tarfile, hashlib\n\
             t = tarfile.open(sys.argv[1], 'r:gz')\n\
             print(hashlib.sha256(t.extractfile('./d/random.bin').read()).hexdigest())",
            )
            .arg(&path));
        let want: String = openssl::sha::sha256(&random(3 * MEMBER_BYTES, 3))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(py.trim(), want);
    }
}
