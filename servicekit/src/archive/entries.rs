//! The one gate every uploaded tarball goes through: limits, entry types and
//! name rules are checked here, once, for extraction and for the kernel
//! module signer's streaming alike.

use std::io::{self, BufReader, Read};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use tar::EntryType;

use super::inflate::{BackrefLog, GzipDecoder};
use super::limits::{CountingReader, Tripped};
use super::tar_guard::{TarHeaderGuard, MAX_METADATA_RECORD};
use super::{gzip_reader, safe_relative_path, ArchiveError, ArchiveLimits, CappedReader};

/// The decompressed stream entries are read from.
pub type Decoded<I> = TarHeaderGuard<CappedReader<Gunzip<CountingReader<I>>>>;

/// The gzip decoder under the tar reader: zlib's, or ours where the
/// compressor's back-references are wanted ([`for_each_checked_entry_logged`]).
pub enum Gunzip<I> {
    /// zlib-rs, the faster at decoding alone.
    Zlib(MultiGzDecoder<BufReader<I>>),
    /// Logs back-references as it decodes.
    Logging(GzipDecoder<I>),
}

impl<I: Read> Read for Gunzip<I> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Gunzip::Zlib(d) => d.read(buf),
            Gunzip::Logging(d) => d.read(buf),
        }
    }
}

/// Longest member name accepted, in bytes (Linux's PATH_MAX less room for
/// the work dir it is extracted under).
pub const MAX_NAME_BYTES: usize = libc::PATH_MAX as usize - 512;

/// Longest single path component (Linux's NAME_MAX, the same on every
/// architecture).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// What the stream held, counted as it was read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EntryCounts {
    /// Entries seen (of every type).
    pub entries: u64,
    /// Bytes of content they declared.
    pub bytes: u64,
}

/// An entry that passed the checks, its data not yet read.
pub struct CheckedEntry<'a, R: Read> {
    /// The tar entry; read its data from it.
    pub entry: tar::Entry<'a, R>,
    /// The name as found in the archive (for messages).
    pub raw: PathBuf,
    /// The name as a clean relative path; `None` only for a directory named
    /// `.` (the tree's root).
    pub rel: Option<PathBuf>,
    /// Regular/Continuous, Directory, Symlink or Link: nothing else passes.
    pub kind: EntryType,
    tripped: Arc<Tripped>,
    refused: Arc<AtomicU64>,
    limits: ArchiveLimits,
}

impl<R: Read> CheckedEntry<'_, R> {
    /// What a failure reading this entry's data means: the decompressed size
    /// limit (413), or a damaged stream (400).
    pub fn read_error(&self, err: io::Error) -> ArchiveError {
        classify(&self.tripped, &self.refused, &self.limits, err)
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        matches!(self.kind, EntryType::Regular | EntryType::Continuous)
    }
}

fn classify(
    tripped: &Tripped,
    refused: &AtomicU64,
    limits: &ArchiveLimits,
    err: io::Error,
) -> ArchiveError {
    let refused_size = refused.load(Ordering::Relaxed);
    if tripped.size.load(Ordering::Relaxed) {
        ArchiveError::TooLarge {
            limit: limits.max_bytes,
        }
    } else if tripped.ratio.load(Ordering::Relaxed) {
        ArchiveError::TooCompressed {
            ratio: limits.max_ratio,
        }
    } else if refused_size > 0 {
        ArchiveError::MetadataTooLarge {
            size: refused_size,
            max: MAX_METADATA_RECORD,
        }
    } else {
        ArchiveError::Corrupt(err.to_string())
    }
}

/// Refuses a name no file system here could hold (a client's mistake, not
/// the server's: 400, not "File name too long" as a 500).
fn check_name_length(raw: &std::path::Path) -> Result<(), ArchiveError> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = raw.as_os_str().as_bytes();
    let too_long = bytes.len() > MAX_NAME_BYTES
        || raw
            .components()
            .any(|c| c.as_os_str().len() > MAX_COMPONENT_BYTES);
    if too_long {
        return Err(ArchiveError::NameTooLong {
            path: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
        });
    }
    Ok(())
}

/// Reads the gzip tarball `input` once, front to back, calling `visit` with
/// every entry that passes the checks, in order; `visit` may stop early with
/// `ControlFlow::Break`. After the tar's end, the rest of the gzip stream is
/// read to its end, so a damaged trailer (CRC-32, length) is refused even
/// though no entry needed those bytes.
pub fn for_each_checked_entry<I, E>(
    input: I,
    limits: &ArchiveLimits,
    visit: impl FnMut(CheckedEntry<'_, Decoded<I>>) -> Result<ControlFlow<()>, E>,
) -> Result<EntryCounts, E>
where
    I: Read,
    E: From<ArchiveError>,
{
    walk(input, limits, None, visit)
}

/// [`for_each_checked_entry`], decoding with [`GzipDecoder`] so that the
/// compressor's back-references go to `log` as the stream is read: each
/// entry's are there once its data is read, at the offsets
/// `tar::Entry::raw_file_position` gives.
pub fn for_each_checked_entry_logged<I, E>(
    input: I,
    limits: &ArchiveLimits,
    log: BackrefLog,
    visit: impl FnMut(CheckedEntry<'_, Decoded<I>>) -> Result<ControlFlow<()>, E>,
) -> Result<EntryCounts, E>
where
    I: Read,
    E: From<ArchiveError>,
{
    walk(input, limits, Some(log), visit)
}

fn walk<I, E>(
    input: I,
    limits: &ArchiveLimits,
    log: Option<BackrefLog>,
    mut visit: impl FnMut(CheckedEntry<'_, Decoded<I>>) -> Result<ControlFlow<()>, E>,
) -> Result<EntryCounts, E>
where
    I: Read,
    E: From<ArchiveError>,
{
    let tripped = Arc::new(Tripped::default());
    let refused = Arc::new(AtomicU64::new(0));
    let compressed = Arc::new(AtomicU64::new(0));
    let limit = limits.max_bytes;
    let counted = CountingReader::new(input, compressed.clone());
    let gunzip = match log {
        None => Gunzip::Zlib(gzip_reader(counted)?),
        Some(log) => Gunzip::Logging(GzipDecoder::new(counted, Some(log))?),
    };
    let decoded = TarHeaderGuard::new(
        CappedReader::new(gunzip, limits, compressed, tripped.clone()),
        refused.clone(),
    );
    let mut archive = tar::Archive::new(decoded);
    let fail = |e: io::Error| E::from(classify(&tripped, &refused, limits, e));
    let mut counts = EntryCounts::default();
    for entry in archive.entries().map_err(fail)? {
        let entry = entry.map_err(fail)?;
        counts.entries += 1;
        if counts.entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: limits.max_entries,
            }
            .into());
        }
        let raw = entry.path().map_err(fail)?.into_owned();
        let kind = entry.header().entry_type();
        let forbidden = match kind {
            EntryType::Char | EntryType::Block => Some("device node"),
            EntryType::Fifo => Some("FIFO"),
            EntryType::GNUSparse => Some("sparse file"),
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link => None,
            // pax and GNU long-name records are consumed by the tar reader;
            // anything else carries no file-system content.
            _ => continue,
        };
        if let Some(what) = forbidden {
            return Err(ArchiveError::UnsupportedEntry {
                path: raw.display().to_string(),
                kind: what,
            }
            .into());
        }
        check_name_length(&raw)?;
        let rel = safe_relative_path(&raw)?;
        if rel.is_none() && kind != EntryType::Directory {
            return Err(ArchiveError::UnsafePath {
                path: raw.display().to_string(),
                reason: "only a directory may be named '.'",
            }
            .into());
        }
        counts.bytes = counts.bytes.saturating_add(entry.size());
        if counts.bytes > limits.max_bytes {
            return Err(ArchiveError::TooLarge { limit }.into());
        }
        let checked = CheckedEntry {
            entry,
            raw,
            rel,
            kind,
            tripped: tripped.clone(),
            refused: refused.clone(),
            limits: *limits,
        };
        if visit(checked)?.is_break() {
            return Ok(counts);
        }
    }
    // The tar reader stops at the end-of-archive marker; the gzip trailer
    // (and any record padding) comes after it. Reading on to the end makes
    // the decoder check the CRC-32 and length of every member, still under
    // the decompressed-size cap.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(fail)?;
    Ok(counts)
}
