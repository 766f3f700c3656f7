//! Safe handling of the gzip tarballs clients send, and repacking of results.
//!
//! Every tarball is read once, front to back, and never held in memory
//! whole, through one gate, [`entries::for_each_checked_entry`], which
//! enforces, before a caller sees an entry:
//!
//! - the limits ([`limits`]): entry count, content bytes, and decompressed
//!   bytes counted as they are produced, in all and per compressed byte, so
//!   a gzip bomb ends as [`ArchiveError::TooCompressed`] or
//!   [`ArchiveError::TooLarge`] early, not as a full disk or memory;
//! - the entry types: no device nodes, FIFOs or sparse files;
//! - the name rules ([`paths`]): relative, no `..`, no longer than the file
//!   system allows; long-name and pax records at most 64 KiB ([`tar_guard`],
//!   checked from their header before the tar reader buffers them);
//! - the gzip stream's integrity: it is read to its end after the tar's
//!   end-of-archive, so a damaged CRC or a truncated trailer is refused.
//!
//! [`extract`] writes entries to disk under further rules (no entry written
//! through a symlink, symlinks only inside the tree, hard links only to files
//! already extracted); the kernel module signer streams entries through
//! without extracting. [`pack`] writes results as upstream's `tar -czf - .`.

pub mod chunked_gzip;
mod deflate_codes;
pub mod entries;
pub mod extract;
pub mod fixed_deflate;
pub mod gzip;
pub mod inflate;
pub mod limits;
pub mod pack;
pub mod paths;
pub mod tar_guard;

use std::io;

pub use chunked_gzip::ChunkedGzWriter;
pub use entries::{for_each_checked_entry, for_each_checked_entry_logged, CheckedEntry};
pub use extract::{extract_tar_gz, ExtractSummary};
pub use gzip::gzip_reader;
pub use limits::{ArchiveLimits, CappedReader, CountingReader};
pub use pack::{append_raw, append_raw_with, pack_tar_gz};
pub use paths::safe_relative_path;

/// Why an archive was refused. All but `Io` are the client's to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Nothing was uploaded.
    #[error("the artifact is empty (0 bytes): attach the tarball's contents, e.g. curl -F artifact=@file.tar.gz")]
    Empty,
    /// The data does not start with the gzip magic bytes.
    #[error("not gzip-compressed (send a .tar.gz, e.g. made with `tar -czf`)")]
    NotGzip,
    /// The gzip stream or the tar inside it is damaged or truncated.
    #[error("not a complete gzip-compressed tar archive: {0}")]
    Corrupt(String),
    /// An entry name or link target would escape the working directory.
    #[error("member '{path}' is not allowed: {reason}")]
    UnsafePath {
        /// The entry's name as found in the archive.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An entry type we never extract.
    #[error("member '{path}' is a {kind}, which is not allowed in a signing artifact")]
    UnsupportedEntry {
        /// The entry's name.
        path: String,
        /// What it is ("device node", "FIFO", ...).
        kind: &'static str,
    },
    /// The archive holds more content than allowed.
    #[error("archive content exceeds the server's limit of {limit} bytes")]
    TooLarge {
        /// The limit (DIGSIGSERVER_MAX_ARTIFACT_BYTES).
        limit: u64,
    },
    /// A long-name, long-link or pax record is larger than any real name.
    #[error("a tar long-name or pax record of {size} bytes is not allowed (at most {max} bytes)")]
    MetadataTooLarge {
        /// Its declared size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A member's name is longer than the file system allows.
    #[error("member '{path}...' is not allowed: its name is longer than the file system allows")]
    NameTooLong {
        /// The start of the name.
        path: String,
    },
    /// The stream expands more than the allowed ratio: a gzip bomb.
    #[error("the artifact expands more than {ratio}:1 when decompressed (the server's limit); is it a gzip bomb?")]
    TooCompressed {
        /// The limit (DIGSIGSERVER_MAX_ARTIFACT_RATIO).
        ratio: u64,
    },
    /// The archive holds more entries than allowed.
    #[error("archive has more than the server's limit of {limit} entries")]
    TooManyEntries {
        /// The limit (DIGSIGSERVER_MAX_ARTIFACT_ENTRIES).
        limit: u64,
    },
    /// Writing the extracted tree failed on the server (disk full, ...).
    #[error("writing the extracted tree failed: {0}")]
    Io(#[from] io::Error),
}
