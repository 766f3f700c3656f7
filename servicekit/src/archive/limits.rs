//! Caps on what one archive may hold, and the reader that counts
//! decompressed bytes as they are produced.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Caps for one extraction. Defaults are generous (multi-GB, 100k entries):
/// real bootloader and module trees are far smaller, gzip bombs far larger.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Most bytes of file content an archive may hold.
    pub max_bytes: u64,
    /// Most entries (files, directories, links) an archive may hold.
    pub max_entries: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024 * 1024,
            max_entries: 100_000,
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

/// Reader that fails once more than `limit` bytes have come through, and
/// remembers that it did, so the caller can report a limit, not "corrupt".
pub struct CappedReader<R> {
    inner: R,
    remaining: u64,
    tripped: Arc<AtomicBool>,
}

impl<R: Read> CappedReader<R> {
    /// Wraps `inner`; `tripped` is set when the cap is hit.
    pub fn new(inner: R, limit: u64, tripped: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            remaining: limit,
            tripped,
        }
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // Allow a clean EOF exactly at the cap; anything more trips it.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.tripped.store(true, Ordering::Relaxed);
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
