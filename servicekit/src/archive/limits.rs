//! Caps on what one archive may hold, and the reader that counts
//! decompressed bytes as they are produced.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Caps for one extraction. Defaults are generous (multi-GB, 100k entries):
/// real bootloader and module trees are far smaller, gzip bombs far larger.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Most bytes of file content an archive may hold.
    pub max_bytes: u64,
    /// Most entries (files, directories, links) an archive may hold.
    pub max_entries: u64,
    /// Most decompressed bytes per compressed byte, beyond the first
    /// [`RATIO_ALLOWANCE`] (0: no ratio limit). A gzip bomb expands about
    /// 1000:1; real trees of modules, bootloaders and TAs 2:1 to 20:1.
    pub max_ratio: u64,
}

/// Decompressed bytes every archive may produce before the ratio counts, so
/// small, very regular archives are never refused for it.
pub const RATIO_ALLOWANCE: u64 = 64 << 20;

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024 * 1024,
            max_entries: 100_000,
            max_ratio: 200,
        }
    }
}

impl ArchiveLimits {
    /// The most decompressed bytes a conforming archive can take: content plus
    /// headers, padding and long-name records for every entry.
    pub fn max_stream_bytes(&self) -> u64 {
        self.max_bytes
            .saturating_add(self.max_entries.saturating_mul(4 * 512))
            .saturating_add(1024 * 1024)
    }
}

/// Counts the bytes read through it (the compressed side of a decoder).
pub struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> CountingReader<R> {
    /// Wraps `inner`, adding every byte read to `count`.
    pub fn new(inner: R, count: Arc<AtomicU64>) -> Self {
        Self { inner, count }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Which cap a [`CappedReader`] hit.
#[derive(Debug, Default)]
pub struct Tripped {
    /// The decompressed size cap.
    pub size: AtomicBool,
    /// The ratio to the compressed bytes read so far.
    pub ratio: AtomicBool,
}

/// Reader that fails once more than `limit` bytes have come through, or more
/// than `ratio` times the compressed bytes behind them (past an allowance),
/// counted as they are produced; it remembers which, so the caller can
/// report a limit, not "corrupt".
pub struct CappedReader<R> {
    inner: R,
    remaining: u64,
    produced: u64,
    compressed: Arc<AtomicU64>,
    ratio: u64,
    tripped: Arc<Tripped>,
}

impl<R: Read> CappedReader<R> {
    /// Wraps `inner`; `compressed` counts the bytes behind it (see
    /// [`CountingReader`]); `tripped` says which cap was hit.
    pub fn new(
        inner: R,
        limits: &ArchiveLimits,
        compressed: Arc<AtomicU64>,
        tripped: Arc<Tripped>,
    ) -> Self {
        Self {
            inner,
            remaining: limits.max_stream_bytes(),
            produced: 0,
            compressed,
            ratio: limits.max_ratio,
            tripped,
        }
    }

    fn over_ratio(&self) -> bool {
        self.ratio > 0
            && self.produced
                > RATIO_ALLOWANCE.saturating_add(
                    self.compressed
                        .load(Ordering::Relaxed)
                        .saturating_mul(self.ratio),
                )
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_capped(buf)?;
        self.produced += n as u64;
        if self.over_ratio() {
            self.tripped.ratio.store(true, Ordering::Relaxed);
            return Err(io::Error::other("decompression ratio limit exceeded"));
        }
        Ok(n)
    }
}

impl<R: Read> CappedReader<R> {
    fn read_capped(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Allow a clean EOF exactly at the cap; anything more trips it.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.tripped.size.store(true, Ordering::Relaxed);
                    Err(io::Error::other("decompressed size limit exceeded"))
                }
            };
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        self.remaining -= n as u64;
        Ok(n)
    }
}
