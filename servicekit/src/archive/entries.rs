//! The one gate every uploaded tarball goes through: limits, entry types and
//! name rules are checked here, once, for extraction and for the kernel
//! module signer's streaming alike.

use std::io::{self, BufReader, Read};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use tar::EntryType;

use super::{gzip_reader, safe_relative_path, ArchiveError, ArchiveLimits, CappedReader};

/// The decompressed stream entries are read from.
pub type Decoded<I> = CappedReader<MultiGzDecoder<BufReader<I>>>;

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
    tripped: Arc<AtomicBool>,
    limit: u64,
}

impl<R: Read> CheckedEntry<'_, R> {
    /// What a failure reading this entry's data means: the decompressed size
    /// limit (413), or a damaged stream (400).
    pub fn read_error(&self, err: io::Error) -> ArchiveError {
        classify(&self.tripped, self.limit, err)
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        matches!(self.kind, EntryType::Regular | EntryType::Continuous)
    }
}

fn classify(tripped: &AtomicBool, limit: u64, err: io::Error) -> ArchiveError {
    if tripped.load(Ordering::Relaxed) {
        ArchiveError::TooLarge { limit }
    } else {
        ArchiveError::Corrupt(err.to_string())
    }
}

/// Reads the gzip tarball `input` once, front to back, calling `visit` with
/// every entry that passes the checks, in order; `visit` may stop early with
/// `ControlFlow::Break`. After the tar's end, the rest of the gzip stream is
/// read to its end, so a damaged trailer (CRC-32, length) is refused even
/// though no entry needed those bytes.
pub fn for_each_checked_entry<I, E>(
    input: I,
    limits: &ArchiveLimits,
    mut visit: impl FnMut(CheckedEntry<'_, Decoded<I>>) -> Result<ControlFlow<()>, E>,
) -> Result<EntryCounts, E>
where
    I: Read,
    E: From<ArchiveError>,
{
    let tripped = Arc::new(AtomicBool::new(false));
    let limit = limits.max_bytes;
    let decoded = CappedReader::new(
        gzip_reader(input)?,
        limits.max_stream_bytes(),
        tripped.clone(),
    );
    let mut archive = tar::Archive::new(decoded);
    let fail = |e: io::Error| E::from(classify(&tripped, limit, e));
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
        let refused = match kind {
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
        if let Some(what) = refused {
            return Err(ArchiveError::UnsupportedEntry {
                path: raw.display().to_string(),
                kind: what,
            }
            .into());
        }
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
            limit,
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
