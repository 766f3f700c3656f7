//! Writing an uploaded tarball's entries to disk, under the rules in the
//! module documentation of [`super`] plus those of the file system: no entry
//! written through a symlink (each parent is checked with `lstat` as it is
//! walked, files are created with `O_EXCL | O_NOFOLLOW`), symlinks only to
//! relative targets inside the tree, hard links only to files already
//! extracted. Modes keep their permission bits (never setuid/setgid/sticky);
//! ownership is never restored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use tar::EntryType;

use super::paths::check_symlink_target;
use super::{for_each_checked_entry, safe_relative_path, ArchiveError, ArchiveLimits};

/// What an extraction produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExtractSummary {
    /// Entries extracted.
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
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
    let mut summary = ExtractSummary::default();
    let mut dir_modes = Vec::new();
    for_each_checked_entry(input, limits, |mut checked| {
        summary.entries += 1;
        let raw = checked.raw.clone();
        let Some(rel) = checked.rel.clone() else {
            return Ok(ControlFlow::Continue(())); // the tree's root
        };
        let path = dest.join(&rel);
        let parent = rel.parent().unwrap_or(Path::new(""));
        ensure_dirs(dest, parent, &raw)?;
        let header = checked.entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o777;
        let mtime = header.mtime().unwrap_or(0);
        match checked.kind {
            EntryType::Directory => {
                ensure_dirs(dest, &rel, &raw)?;
                // Applied at the end: a read-only directory must stay writable
                // while its members are extracted.
                dir_modes.push((path, mode, mtime));
            }
            EntryType::Symlink => {
                let target = checked
                    .entry
                    .link_name()
                    .map_err(|e| checked.read_error(e))?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                check_symlink_target(&rel, &target)?;
                clear_slot(&path, &raw)?;
                std::os::unix::fs::symlink(&target, &path)?;
            }
            EntryType::Link => {
                let target = checked
                    .entry
                    .link_name()
                    .map_err(|e| checked.read_error(e))?
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
            _ => {
                // A regular file.
                clear_slot(&path, &raw)?;
                // O_NOFOLLOW from libc: its value differs between
                // architectures (x86-64 0o400000, aarch64 0o100000).
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)?;
                summary.bytes += copy_entry(&mut checked, &mut file)?;
                file.set_permissions(fs::Permissions::from_mode(mode))?;
                set_mtime(&file, mtime);
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    for (path, mode, mtime) in dir_modes.into_iter().rev() {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o700))?;
        if let Ok(dir) = File::open(&path) {
            set_mtime(&dir, mtime);
        }
    }
    Ok(summary)
}

fn copy_entry<R: Read>(
    checked: &mut super::CheckedEntry<'_, R>,
    out: &mut File,
) -> Result<u64, ArchiveError> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut written = 0u64;
    loop {
        let n = match checked.entry.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(checked.read_error(e)),
        };
        if n == 0 {
            return Ok(written);
        }
        out.write_all(&buf[..n])?;
        written += n as u64;
    }
}

fn set_mtime(file: &File, mtime: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    let _ = file.set_times(fs::FileTimes::new().set_modified(time));
}
