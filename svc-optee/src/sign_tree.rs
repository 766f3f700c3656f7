//! Signing every TA in an extracted tree, in place, as upstream does: each
//! `<uuid>.stripped.elf` (and its `<uuid>.ta-version`) is replaced by
//! `<uuid>.ta` in the same directory; every other file is left alone.
//!
//! The whole tree is checked before anything is signed, so a bad name or
//! version is reported without half the tree rewritten. Signing runs on
//! every core; each TA streams from disk (see [`crate::ta_image`]).

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::ta_image::{TaSignError, TaSigner};
use crate::ta_names::{parse_uuid, parse_version, IMAGE_SUFFIX, SIGNED_SUFFIX, VERSION_SUFFIX};

/// A `.ta-version` file longer than this is not a version file.
const MAX_VERSION_FILE: u64 = 4096;

/// Why a tree could not be signed. Paths are relative to the tree (`./...`),
/// never the server's own.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The artifact holds no TA image at all.
    #[error("artifact contains no *{IMAGE_SUFFIX} files to sign; send the TA tree, e.g. `tar -czf tas.tar.gz ta` holding <uuid>{IMAGE_SUFFIX} and <uuid>{VERSION_SUFFIX} files")]
    NoImages,
    /// An image whose name is not `<uuid>.stripped.elf`.
    #[error("{path}: the file name before {IMAGE_SUFFIX} must be the TA's UUID (e.g. 8aaaf200-2450-11e4-abe2-0002a5d5c51b{IMAGE_SUFFIX})")]
    BadUuid {
        /// The image, relative to the tree.
        path: String,
    },
    /// A version file that does not hold a version.
    #[error("{path}: {reason}")]
    BadVersion {
        /// The version file, relative to the tree.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image or version entry that is not a regular file.
    #[error("{path} is a {kind}; it must be a regular file")]
    NotAFile {
        /// The entry, relative to the tree.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// A directory where the signed TA must go.
    #[error(
        "{path} is a directory, where the signed TA would be written; remove it from the artifact"
    )]
    OutputBlocked {
        /// The blocking directory, relative to the tree.
        path: String,
    },
    /// One image could not be signed.
    #[error("{path}: {source}")]
    Sign {
        /// The image, relative to the tree.
        path: String,
        /// Why.
        source: TaSignError,
    },
    /// Walking or rewriting the tree failed on the server.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One TA to sign, found and checked.
#[derive(Debug)]
struct Job {
    image: PathBuf,
    version_file: Option<PathBuf>,
    output: PathBuf,
    uuid: [u8; 16],
    version: u32,
}

/// Signs every TA under `root` with `signer`; returns how many it signed.
pub fn sign_tree(root: &Path, signer: &TaSigner) -> Result<usize, TreeError> {
    let mut jobs = Vec::new();
    find_jobs(root, root, &mut jobs)?;
    if jobs.is_empty() {
        return Err(TreeError::NoImages);
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let first_error = Mutex::new(None::<TreeError>);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { return };
                if let Err(e) = sign_one(root, job, signer) {
                    first_error.lock().unwrap().get_or_insert(e);
                    next.store(jobs.len(), Ordering::Relaxed); // stop the others
                    return;
                }
            });
        }
    });
    match first_error.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(jobs.len()),
    }
}

fn sign_one(root: &Path, job: &Job, signer: &TaSigner) -> Result<(), TreeError> {
    remove_if_present(&job.output)?;
    signer
        .sign_file(&job.image, &job.uuid, job.version, &job.output)
        .map_err(|source| TreeError::Sign {
            path: shown(root, &job.image),
            source,
        })?;
    fs::remove_file(&job.image)?;
    if let Some(v) = &job.version_file {
        fs::remove_file(v)?;
    }
    Ok(())
}

/// Walks `dir` (never following symlinks) collecting checked jobs.
fn find_jobs(root: &Path, dir: &Path, jobs: &mut Vec<Job>) -> Result<(), TreeError> {
    let mut entries = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            find_jobs(root, &path, jobs)?;
            continue;
        }
        let name = entry.file_name();
        let Some(stem) = name.as_bytes().strip_suffix(IMAGE_SUFFIX.as_bytes()) else {
            continue;
        };
        if !kind.is_file() {
            return Err(TreeError::NotAFile {
                path: shown(root, &path),
                kind: kind_name(&kind),
            });
        }
        let uuid = std::str::from_utf8(stem)
            .ok()
            .and_then(parse_uuid)
            .ok_or_else(|| TreeError::BadUuid {
                path: shown(root, &path),
            })?;
        let sibling = |suffix: &str| {
            let mut n = stem.to_vec();
            n.extend_from_slice(suffix.as_bytes());
            dir.join(std::ffi::OsStr::from_bytes(&n))
        };
        let version_path = sibling(VERSION_SUFFIX);
        let (version, version_file) = read_version(root, &version_path)?;
        let output = sibling(SIGNED_SUFFIX);
        if fs::symlink_metadata(&output).is_ok_and(|m| m.is_dir()) {
            return Err(TreeError::OutputBlocked {
                path: shown(root, &output),
            });
        }
        jobs.push(Job {
            image: path,
            version_file,
            output,
            uuid,
            version,
        });
    }
    Ok(())
}

/// A TA's version from its `.ta-version` file; 0 (as upstream) when absent.
fn read_version(root: &Path, path: &Path) -> Result<(u32, Option<PathBuf>), TreeError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(file = ?shown(root, path), "no ta-version file: version 0");
            return Ok((0, None));
        }
        Err(e) => return Err(e.into()),
    };
    if !meta.is_file() {
        return Err(TreeError::NotAFile {
            path: shown(root, path),
            kind: kind_name(&meta.file_type()),
        });
    }
    let mut contents = Vec::new();
    fs::File::open(path)?
        .take(MAX_VERSION_FILE)
        .read_to_end(&mut contents)?;
    let version = parse_version(&contents).map_err(|reason| TreeError::BadVersion {
        path: shown(root, path),
        reason,
    })?;
    Ok((version, Some(path.to_path_buf())))
}

/// Removes a stale signed TA (a file or a link; directories were refused).
fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `./relative/path`, as the client named it.
fn shown(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    format!("./{}", rel.display())
}

fn kind_name(kind: &fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "symbolic link"
    } else if kind.is_dir() {
        "directory"
    } else {
        "special file"
    }
}
