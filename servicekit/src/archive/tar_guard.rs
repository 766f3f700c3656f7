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
    /// The body of the pax record being passed, kept (at most
    /// [`MAX_METADATA_RECORD`]) because its `size=` sets the next entry's
    /// size, as the tar reader applies it.
    pax: Option<Vec<u8>>,
    /// A `size=` from the last pax record, for the next entry.
    pax_size: Option<u64>,
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
            pax: None,
            pax_size: None,
            refused,
        }
    }

    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.pos < self.next_header {
                let skip = (self.next_header - self.pos).min(bytes.len() as u64) as usize;
                if let Some(pax) = self.pax.as_mut() {
                    pax.extend_from_slice(&bytes[..skip]);
                }
                self.pos += skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            if let Some(pax) = self.pax.take() {
                self.pax_size = pax_size(&pax).or(self.pax_size);
            }
            let take = (BLOCK as usize - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            self.pos += take as u64;
            bytes = &bytes[take..];
            if self.header.len() == BLOCK as usize {
                let size = if self.header.iter().all(|&b| b == 0) {
                    0 // end-of-archive blocks
                } else {
                    let kind = self.header[156];
                    let metadata = matches!(kind, b'L' | b'K' | b'x' | b'g');
                    let size = match (metadata, self.pax_size.take()) {
                        // The tar reader takes a pax size over the header's.
                        (false, Some(size)) => Some(size),
                        _ => header_size(&self.header),
                    };
                    let Some(size) = size else {
                        return Err(io::Error::other("a tar header's size does not parse"));
                    };
                    if metadata && size > MAX_METADATA_RECORD {
                        self.refused.store(size.max(1), Ordering::Relaxed);
                        return Err(io::Error::other("tar metadata record too large"));
                    }
                    if kind == b'x' {
                        self.pax = Some(Vec::with_capacity(size as usize));
                    }
                    size
                };
                self.next_header = size
                    .div_ceil(BLOCK)
                    .checked_mul(BLOCK)
                    .and_then(|padded| self.pos.checked_add(padded))
                    .ok_or_else(|| io::Error::other("a tar entry's size is out of range"))?;
                self.header.clear();
            }
        }
        Ok(())
    }
}

/// The size field of a tar header as the tar reader reads it: octal
/// digits, or GNU's base-256 form (its last 8 bytes, big-endian). `None`
/// when it does not fit a u64.
fn header_size(header: &[u8]) -> Option<u64> {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        return Some(u64::from_be_bytes(field[4..12].try_into().unwrap()));
    }
    field
        .iter()
        .skip_while(|&&b| b == b' ')
        .take_while(|&&b| (b'0'..=b'7').contains(&b))
        .try_fold(0u64, |n, &b| {
            n.checked_mul(8)?.checked_add(u64::from(b - b'0'))
        })
}

/// The `size=` of a pax extended header's body (`<len> <key>=<value>\n`
/// records), if it has one.
fn pax_size(body: &[u8]) -> Option<u64> {
    let mut rest = body;
    let mut size = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return size;
        }
        let record = &rest[space + 1..len];
        if let Some(value) = record.strip_prefix(b"size=") {
            let value = value.strip_suffix(b"\n").unwrap_or(value);
            size = std::str::from_utf8(value).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    size
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
        assert_eq!(header_size(&h), Some(1000));
        h[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(header_size(&h), Some(65536));
        // The tar reader ignores bytes 1-3 of a base-256 field; so do we.
        h[124..136].copy_from_slice(&[0x80, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 2, 0]);
        assert_eq!(header_size(&h), Some(512));
        h[124..136].copy_from_slice(b"77777777777777777777"[..12].try_into().unwrap());
        assert_eq!(header_size(&h), Some(0o777777777777));
    }

    #[test]
    fn pax_size_records_are_read() {
        assert_eq!(
            pax_size(b"30 mtime=1700000000.123456789\n13 size=4096\n"),
            Some(4096)
        );
        assert_eq!(pax_size(b"19 path=a/b/c/d.ko\n"), None);
    }
}
