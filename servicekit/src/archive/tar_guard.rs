//! Bounding what the tar reader holds in memory: it reads GNU long-name and
//! long-link records and pax headers whole, so a 256 MB "name" would be 256
//! MB of memory. This reader sits under it, follows the header chain as the
//! bytes go by, and refuses such a record from its header, before its body
//! is read.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest long-name, long-link or pax record accepted: far above any real
/// path (Linux's PATH_MAX is 4096), far below memory trouble.
pub const MAX_METADATA_RECORD: u64 = 64 * 1024;

const BLOCK: u64 = 512;

/// Passes a tar stream through unchanged, checking each header it carries.
pub struct TarHeaderGuard<R> {
    inner: R,
    /// Offset of the next byte to come out.
    pos: u64,
    /// Offset of the next header.
    next_header: u64,
    header: Vec<u8>,
    /// The size of a refused record, for the error (0: none refused).
    refused: Arc<AtomicU64>,
}

impl<R> TarHeaderGuard<R> {
    /// Guards `inner`; `refused` gets the size of a record it refuses.
    pub fn new(inner: R, refused: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            pos: 0,
            next_header: 0,
            header: Vec::with_capacity(BLOCK as usize),
            refused,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.pos < self.next_header {
                let skip = (self.next_header - self.pos).min(bytes.len() as u64) as usize;
                self.pos += skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (BLOCK as usize - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            self.pos += take as u64;
            bytes = &bytes[take..];
            if self.header.len() == BLOCK as usize {
                let size = if self.header.iter().all(|&b| b == 0) {
                    0 // end-of-archive blocks
                } else {
                    let size = header_size(&self.header);
                    if matches!(self.header[156], b'L' | b'K' | b'x' | b'g')
                        && size > MAX_METADATA_RECORD
                    {
                        self.refused.store(size.max(1), Ordering::Relaxed);
                        return Err(io::Error::other("tar metadata record too large"));
                    }
                    size
                };
                self.next_header = self.pos + size.div_ceil(BLOCK) * BLOCK;
                self.header.clear();
            }
        }
        Ok(())
    }
}

/// The size field of a tar header: octal digits, or GNU's base-256 form.
fn header_size(header: &[u8]) -> u64 {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        // Base-256: the rest of the field, big-endian.
        return field[1..]
            .iter()
            .fold(0u64, |n, &b| n.saturating_mul(256).saturating_add(b as u64));
    }
    field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .fold(0u64, |n, &b| {
            n.saturating_mul(8).saturating_add((b - b'0') as u64)
        })
}

impl<R: Read> Read for TarHeaderGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_octal_and_base_256() {
        let mut h = vec![0u8; 512];
        h[124..136].copy_from_slice(b"00000001750\0");
        assert_eq!(header_size(&h), 1000);
        h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(header_size(&h), 65536);
    }
}
