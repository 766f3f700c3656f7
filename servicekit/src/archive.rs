//! Safe handling of the gzip tarballs clients send, and repacking of results.
//!
//! Extraction streams: the archive is read once, front to back, and never held
//! in memory whole. Every entry is checked before anything is written:
//!
//! - names must be relative and free of `..`; a leading `./` is fine;
//! - no entry is written through a symlink: each parent directory is checked
//!   with `lstat` as it is walked, and files are created with `O_EXCL`;
//! - symlinks may only point inside the tree (relative, `..` only as leading
//!   components, never climbing above the tree);
//! - hard links may only point at a regular file already extracted;
//! - device nodes, FIFOs and sparse files are refused;
//! - total bytes and entry count are capped, and so is the decompressed stream
//!   itself, so a gzip bomb ends as [`ArchiveError::TooLarge`], not a full disk.
//!
//! Modes keep their permission bits (never setuid/setgid/sticky); ownership is
//! never restored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use tar::EntryType;

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

/// Why an archive was refused. All but `Io` are the client's to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
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

/// What an extraction produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExtractSummary {
    /// Entries extracted.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Opens a gzip stream, checking the magic bytes first so "not gzip" is told
/// apart from "damaged gzip". Members are decoded back to back (`pigz` and our
/// own parallel compressor write several).
pub fn gzip_reader<R: Read>(input: R) -> Result<MultiGzDecoder<BufReader<R>>, ArchiveError> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    if head.len() < 2 || head[0] != 0x1f || head[1] != 0x8b {
        return Err(ArchiveError::NotGzip);
    }
    Ok(MultiGzDecoder::new(input))
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

/// Checks an entry name and returns it as a clean relative path (no `.`
/// components). `None` means the name is only `.`/`./` (the tree's root).
pub fn safe_relative_path(raw: &Path) -> Result<Option<PathBuf>, ArchiveError> {
    let unsafe_path = |reason| ArchiveError::UnsafePath {
        path: raw.display().to_string(),
        reason,
    };
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("'..' is not allowed in member names")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path("absolute member names are not allowed"))
            }
        }
    }
    Ok(if clean.as_os_str().is_empty() {
        None
    } else {
        Some(clean)
    })
}

/// Checks that a symlink at `entry` (clean, relative) pointing at `target`
/// stays inside the tree: relative, `..` only before any normal component
/// (so no `..` can follow a component that is itself a symlink), never above
/// the tree's root.
fn check_symlink_target(entry: &Path, target: &Path) -> Result<(), ArchiveError> {
    let refuse = |reason| ArchiveError::UnsafePath {
        path: format!("{} -> {}", entry.display(), target.display()),
        reason,
    };
    let mut depth = entry.components().count() as i64 - 1;
    let mut seen_normal = false;
    let mut any = false;
    for component in target.components() {
        any = true;
        match component {
            Component::Normal(_) => seen_normal = true,
            Component::CurDir => {}
            Component::ParentDir if seen_normal => {
                return Err(refuse("symlink targets may use '..' only at their start"))
            }
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(refuse("symlink points outside the archive"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("symlink points to an absolute path"))
            }
        }
    }
    if !any {
        return Err(refuse("symlink has an empty target"));
    }
    Ok(())
}

/// Creates (or accepts) every directory from `root` down to `root/rel`,
/// refusing to pass through anything that is not a real directory.
fn ensure_dirs(root: &Path, rel: &Path, shown: &Path) -> Result<(), ArchiveError> {
    let mut path = root.to_path_buf();
    for part in rel.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ArchiveError::UnsafePath {
                    path: shown.display().to_string(),
                    reason: "a parent of this member is a symlink or a file in the archive",
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new().mode(0o755).create(&path)?
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes whatever non-directory sits at `path`, so a later duplicate entry
/// replaces it (as tar does) instead of writing through it.
fn clear_slot(path: &Path, shown: &Path) -> Result<(), ArchiveError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(ArchiveError::UnsafePath {
            path: shown.display().to_string(),
            reason: "a directory of the same name is already in the archive",
        }),
        Ok(_) => Ok(fs::remove_file(path)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Extracts a gzip tarball from `input` into `dest` (which must exist),
/// enforcing every rule in the module documentation.
pub fn extract_tar_gz<R: Read>(
    input: R,
    dest: &Path,
    limits: &ArchiveLimits,
) -> Result<ExtractSummary, ArchiveError> {
    let tripped = Arc::new(AtomicBool::new(false));
    let decoded = CappedReader::new(
        gzip_reader(input)?,
        limits.max_stream_bytes(),
        tripped.clone(),
    );
    let mut archive = tar::Archive::new(decoded);
    let over_limit = |e: io::Error| {
        if tripped.load(Ordering::Relaxed) {
            ArchiveError::TooLarge {
                limit: limits.max_bytes,
            }
        } else {
            ArchiveError::Corrupt(e.to_string())
        }
    };
    let mut summary = ExtractSummary::default();
    let mut dir_modes = Vec::new();
    for entry in archive.entries().map_err(over_limit)? {
        let mut entry = entry.map_err(over_limit)?;
        summary.entries += 1;
        if summary.entries > limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let raw = entry.path().map_err(over_limit)?.into_owned();
        let kind = entry.header().entry_type();
        let kind_name = match kind {
            EntryType::Char | EntryType::Block => Some("device node"),
            EntryType::Fifo => Some("FIFO"),
            EntryType::GNUSparse => Some("sparse file"),
            _ => None,
        };
        if let Some(kind_name) = kind_name {
            return Err(ArchiveError::UnsupportedEntry {
                path: raw.display().to_string(),
                kind: kind_name,
            });
        }
        let rel = match safe_relative_path(&raw)? {
            Some(rel) => rel,
            None if kind.is_dir() => continue,
            None => {
                return Err(ArchiveError::UnsafePath {
                    path: raw.display().to_string(),
                    reason: "only a directory may be named '.'",
                })
            }
        };
        let path = dest.join(&rel);
        let parent = rel.parent().unwrap_or(Path::new(""));
        ensure_dirs(dest, parent, &raw)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mtime = entry.header().mtime().unwrap_or(0);
        match kind {
            EntryType::Directory => {
                ensure_dirs(dest, &rel, &raw)?;
                // Applied at the end: a read-only directory must stay writable
                // while its members are extracted.
                dir_modes.push((path, mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let size = entry.size();
                summary.bytes = summary.bytes.saturating_add(size);
                if summary.bytes > limits.max_bytes {
                    return Err(ArchiveError::TooLarge {
                        limit: limits.max_bytes,
                    });
                }
                clear_slot(&path, &raw)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc_o_nofollow())
                    .open(&path)?;
                copy_entry(&mut entry, &mut file, &over_limit)?;
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                set_mtime(&file, mtime);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(over_limit)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                check_symlink_target(&rel, &target)?;
                clear_slot(&path, &raw)?;
                std::os::unix::fs::symlink(&target, &path)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(over_limit)?
                    .ok_or_else(|| {
                        ArchiveError::Corrupt(format!("hard link {} has no target", raw.display()))
                    })?
                    .into_owned();
                let refuse = |reason| ArchiveError::UnsafePath {
                    path: format!("{} => {}", raw.display(), target.display()),
                    reason,
                };
                let target_rel = safe_relative_path(&target)?
                    .ok_or_else(|| refuse("hard link to the tree's root"))?;
                let target_path = dest.join(&target_rel);
                ensure_dirs(dest, target_rel.parent().unwrap_or(Path::new("")), &raw)?;
                match fs::symlink_metadata(&target_path) {
                    Ok(meta) if meta.is_file() => {}
                    _ => {
                        return Err(refuse(
                            "hard links may only point at a file earlier in the archive",
                        ))
                    }
                }
                clear_slot(&path, &raw)?;
                fs::hard_link(&target_path, &path)?;
            }
            // pax and GNU long-name records are consumed by the tar reader;
            // anything else carries no file-system content.
            _ => {}
        }
    }
    for (path, mode, mtime) in dir_modes.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))?;
        if let Ok(dir) = File::open(&path) {
            set_mtime(&dir, mtime);
        }
    }
    Ok(summary)
}

fn libc_o_nofollow() -> i32 {
    // O_NOFOLLOW on Linux; with O_EXCL this is belt and braces.
    0o400000
}

fn copy_entry<R: Read>(
    entry: &mut R,
    out: &mut File,
    read_err: &dyn Fn(io::Error) -> ArchiveError,
) -> Result<(), ArchiveError> {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = entry.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

fn set_mtime(file: &File, mtime: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    let _ = file.set_times(fs::FileTimes::new().set_modified(time));
}

/// Packs the tree at `src` as a gzip tarball written to `out`, in the shape
/// upstream's `tar -czf out.tar.gz .` gives: names start with `./`, entries in
/// sorted order, modes, mtimes and symlinks kept, owner root.
pub fn pack_tar_gz<W: Write>(src: &Path, out: W, level: u32) -> io::Result<W> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = src.join(&rel);
        let name = Path::new(".").join(&rel); // "." for the root itself
        append_path(&mut builder, &full, &name)?;
        if fs::symlink_metadata(&full)?.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&full)?
                .map(|e| e.map(|e| rel.join(e.file_name())))
                .collect::<io::Result<_>>()?;
            children.sort();
            // Depth-first, in sorted order: push in reverse.
            stack.extend(children.into_iter().rev());
        }
    }
    builder.into_inner()?.finish()
}

fn append_path<W: Write>(
    builder: &mut tar::Builder<W>,
    full: &Path,
    name: &Path,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let meta = fs::symlink_metadata(full)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    header.set_uid(0);
    header.set_gid(0);
    let mut name = name.as_os_str().as_bytes().to_vec();
    if meta.is_dir() && !name.ends_with(b"/") {
        name.push(b'/');
    }
    if meta.is_file() {
        append_raw(builder, &mut header, &name, None, File::open(full)?)
    } else if meta.file_type().is_symlink() {
        let target = fs::read_link(full)?;
        header.set_size(0);
        append_raw(
            builder,
            &mut header,
            &name,
            Some(target.as_os_str().as_bytes()),
            io::empty(),
        )
    } else {
        header.set_size(0);
        append_raw(builder, &mut header, &name, None, io::empty())
    }
}

/// Appends an entry with its name (and link target) written byte for byte.
///
/// The tar crate's path setters drop `.` components, but upstream's replies
/// (and so its clients' `tar -x ... ./lib/modules`) use `./` names. Names or
/// targets longer than the header fields get GNU long-name records, as GNU
/// tar writes them.
pub fn append_raw<W: Write, R: Read>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: R,
) -> io::Result<()> {
    fn long_record<W: Write>(
        builder: &mut tar::Builder<W>,
        kind: EntryType,
        value: &[u8],
    ) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let gnu = h.as_gnu_mut().expect("gnu header");
        let tag = b"././@LongLink";
        gnu.name[..tag.len()].copy_from_slice(tag);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(kind);
        let mut body = value.to_vec();
        body.push(0);
        h.set_size(body.len() as u64);
        h.set_cksum();
        builder.append(&h, &body[..])
    }
    let name_field_len = header.as_old().name.len();
    if name.len() > name_field_len {
        long_record(builder, EntryType::GNULongName, name)?;
    }
    let take = name.len().min(name_field_len);
    let old = header.as_old_mut();
    old.name = [0; 100];
    old.name[..take].copy_from_slice(&name[..take]);
    if let Some(link) = link {
        if link.len() > old.linkname.len() {
            long_record(builder, EntryType::GNULongLink, link)?;
        }
        let old = header.as_old_mut();
        let take = link.len().min(old.linkname.len());
        old.linkname = [0; 100];
        old.linkname[..take].copy_from_slice(&link[..take]);
    }
    header.set_cksum();
    builder.append(header, data)
}
