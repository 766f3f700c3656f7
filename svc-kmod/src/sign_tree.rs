//! Signing every `*.ko` in a gzip tarball, streaming it through once.
//!
//! The tarball is never unpacked to disk and never held whole in memory: a
//! reader walks the entries, modules go to one signing thread per core, and a
//! writer puts entries back in their original order into a new gzip tarball.
//! At most a few modules per core are in flight, so memory does not grow with
//! the tarball. Entries other than modules (directories, `modules.*` files,
//! symlinks such as `build`) pass through with their mode, mtime and link
//! target; names get upstream's `./` prefix, which the bbclass client's
//! `tar -x ... ./lib/modules` relies on.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{mpsc, Arc};

use servicekit::archive::inflate::{Backref, BackrefLog};
use servicekit::archive::{
    append_raw, append_raw_with, for_each_checked_entry_logged, ArchiveLimits, CheckedEntry,
};
use servicekit::ServiceError;
use tar::EntryType;

use crate::signer::{ModuleSigner, SigningContext};

/// What a signing run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SignSummary {
    /// Modules signed.
    pub modules: u64,
    /// Entries copied in all (modules included).
    pub entries: u64,
}

/// Non-module files larger than this wait for the writer in a temp file in
/// the request's work dir rather than in memory (a tree may carry a large
/// firmware blob or debug file beside its modules).
const SPOOL_THRESHOLD: u64 = 4 << 20;

/// One entry on its way from reader to writer.
struct Item {
    header: tar::Header,
    name: Vec<u8>,
    link: Option<Vec<u8>>,
    data: Payload,
    is_module: bool,
}

/// An entry's contents: in memory, or spooled to an unlinked temp file.
enum Payload {
    Memory(Vec<u8>),
    Spooled(std::fs::File, u64),
}

/// A module on its way to a signer: small ones in memory, with the
/// upload's back-references in them (see [`BYTES_PER_BACKREF`]), larger
/// ones in a temp file in the work dir, so memory does not grow with module
/// size.
enum Module {
    Memory(Vec<u8>, Vec<Backref>),
    Spooled(tempfile::NamedTempFile),
}

/// A signed module: its unsigned body in memory (with its back-references)
/// or in a file, plus the bytes to append (signature, trailer, magic).
enum Signed {
    Memory(Vec<u8>, Vec<Backref>, Vec<u8>),
    Spooled(tempfile::NamedTempFile, Vec<u8>),
}

/// A module's back-references are kept for the reply's compressor if there
/// is at most one per this many bytes (8 bytes each: memory at most the
/// module's size); a module with more compresses at level 1 instead. Real
/// ones have about one per 12 bytes.
const BYTES_PER_BACKREF: u64 = 8;

/// ... and if the module is no larger than this, so that the modules in
/// flight (a few per core) hold at most a few MiB of them each. The few
/// larger real modules compress at level 1.
const BACKREFS_MAX_MODULE: u64 = 1 << 20;

impl Module {
    fn sign(self, context: &mut SigningContext<'_>) -> Result<Signed, String> {
        match self {
            Module::Memory(mut module, refs) => context
                .sign_in_place(&mut module)
                .map(|suffix| Signed::Memory(module, refs, suffix))
                .map_err(|e| e.to_string()),
            Module::Spooled(file) => context
                .sign_spooled(file.path())
                .map(|suffix| Signed::Spooled(file, suffix))
                .map_err(|e| e.to_string()),
        }
    }
}

/// Reads a gzip tarball from `input`, signs every regular `*.ko` file, and
/// writes the result as a gzip tarball to `output` at compression `level`.
/// Large non-module files are spooled in `spool_dir` (the request's work dir).
///
/// Module bodies go back unchanged, so the upload's own back-references in
/// them (where the client's gzip found repeats) are handed to the reply's
/// compressor rather than searched for again.
pub fn sign_tarball<R: Read, W: Write + Send>(
    input: R,
    output: W,
    signer: &ModuleSigner,
    limits: &ArchiveLimits,
    level: u32,
    spool_dir: &Path,
) -> Result<(SignSummary, W), ServiceError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);

    std::thread::scope(|scope| {
        // reader -> workers (modules) and reader -> writer (everything, in order)
        let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Module)>(workers * 2);
        let work_rx = Arc::new(std::sync::Mutex::new(work_rx));
        let (done_tx, done_rx) = mpsc::sync_channel::<(u64, Result<Signed, String>)>(workers * 2);
        let (order_tx, order_rx) = mpsc::sync_channel::<(u64, Item)>(workers * 4);

        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut context = signer.context().map_err(|e| e.to_string());
                loop {
                    let next = work_rx.lock().unwrap().recv();
                    let Ok((seq, module)) = next else { return };
                    let signed = match &mut context {
                        Ok(context) => module.sign(context),
                        Err(e) => Err(e.clone()),
                    };
                    if done_tx.send((seq, signed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        // Only the workers hold the receiver now: if they all stop (the
        // writer failed), the reader's next send fails instead of blocking.
        drop(work_rx);

        let writer = scope.spawn(move || write_ordered(order_rx, done_rx, output, level));

        let mut summary = SignSummary::default();
        let mut seq = 0u64;
        let log = BackrefLog::default();
        let read_result =
            for_each_checked_entry_logged(input, limits, log.clone(), |mut checked| {
                seq += 1;
                summary.entries += 1;
                let kind = checked.kind;
                let name = match &checked.rel {
                    Some(rel) => dotted(rel, kind == EntryType::Directory),
                    None => b"./".to_vec(),
                };
                let read_err = |c: &CheckedEntry<'_, _>, e| ServiceError::from(c.read_error(e));
                let link = checked.entry.link_name_bytes().map(|l| l.into_owned());
                let is_file = checked.is_file();
                let is_module = is_file && checked.raw.extension().is_some_and(|e| e == "ko");
                let header = fresh_header(checked.entry.header(), kind);
                let size = checked.entry.size();
                let start = checked.entry.raw_file_position();
                let mut data = Payload::Memory(Vec::new());
                if is_module {
                    summary.modules += 1;
                    let module = if size > SPOOL_THRESHOLD {
                        let mut file = tempfile::NamedTempFile::new_in(spool_dir)
                            .map_err(|e| ServiceError::internal_from("cannot spool a module", e))?;
                        spool(&mut checked, &mut file)?;
                        Module::Spooled(file)
                    } else {
                        let mut module = Vec::with_capacity(size as usize);
                        if let Err(e) = checked.entry.read_to_end(&mut module) {
                            return Err(read_err(&checked, e));
                        }
                        let max = if size <= BACKREFS_MAX_MODULE {
                            (size / BYTES_PER_BACKREF) as usize
                        } else {
                            0
                        };
                        let refs = log.take(start, start + size, max).unwrap_or_default();
                        Module::Memory(module, refs)
                    };
                    if work_tx.send((seq, module)).is_err() {
                        return Ok(ControlFlow::Break(()));
                    }
                } else if is_file && size > SPOOL_THRESHOLD {
                    let mut file = tempfile::tempfile_in(spool_dir)
                        .map_err(|e| ServiceError::internal_from("cannot spool a large file", e))?;
                    let len = spool(&mut checked, &mut file)?;
                    io::Seek::rewind(&mut file)
                        .map_err(|e| ServiceError::internal_from("cannot spool a large file", e))?;
                    data = Payload::Spooled(file, len);
                } else if is_file {
                    let mut bytes = Vec::with_capacity(size as usize);
                    if let Err(e) = checked.entry.read_to_end(&mut bytes) {
                        return Err(read_err(&checked, e));
                    }
                    data = Payload::Memory(bytes);
                }
                // Whatever was logged for this entry and before is not wanted.
                log.take(start, start + size, 0);
                let item = Item {
                    header,
                    name,
                    link,
                    data,
                    is_module,
                };
                if order_tx.send((seq, item)).is_err() {
                    return Ok(ControlFlow::Break(()));
                }
                Ok(ControlFlow::Continue(()))
            })
            .map(|_| summary);
        drop(work_tx);
        drop(order_tx);
        let written = writer.join().expect("writer thread panicked");
        let summary = read_result?;
        let output = written?;
        Ok((summary, output))
    })
}

/// Copies an entry's data to a spool file: a failed read is the upload's
/// (400, or 413 at a limit), a failed write the server's (507 when the disk
/// is full).
fn spool<R: Read>(
    checked: &mut CheckedEntry<'_, R>,
    out: &mut impl Write,
) -> Result<u64, ServiceError> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match checked.entry.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) => return Err(checked.read_error(e).into()),
        };
        out.write_all(&buf[..n])
            .map_err(|e| ServiceError::internal_from("spooling a large member", e))?;
        total += n as u64;
    }
}

/// `./`-prefixed name bytes for a clean relative path.
fn dotted(rel: &Path, dir: bool) -> Vec<u8> {
    let mut name = b"./".to_vec();
    name.extend_from_slice(rel.as_os_str().as_bytes());
    if dir {
        name.push(b'/');
    }
    name
}

/// A new GNU header with the entry's metadata; names are set when appended.
fn fresh_header(old: &tar::Header, kind: EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(old.mode().unwrap_or(0o644));
    h.set_mtime(old.mtime().unwrap_or(0));
    h.set_uid(old.uid().unwrap_or(0));
    h.set_gid(old.gid().unwrap_or(0));
    if let Ok(Some(user)) = old.username() {
        let _ = h.set_username(user);
    }
    if let Ok(Some(group)) = old.groupname() {
        let _ = h.set_groupname(group);
    }
    h.set_size(0);
    h
}

/// Writes entries in sequence order, waiting for each module's signature.
fn write_ordered<W: Write>(
    order_rx: mpsc::Receiver<(u64, Item)>,
    done_rx: mpsc::Receiver<(u64, Result<Signed, String>)>,
    output: W,
    level: u32,
) -> Result<W, ServiceError> {
    let gz = servicekit::archive::ChunkedGzWriter::new(output, level);
    let mut builder = tar::Builder::new(gz);
    let mut signed: BTreeMap<u64, Result<Signed, String>> = BTreeMap::new();
    let io_err = |e: io::Error| ServiceError::internal_from("writing the signed tarball failed", e);
    for (seq, mut item) in order_rx {
        if item.is_module {
            let result = loop {
                if let Some(r) = signed.remove(&seq) {
                    break r;
                }
                match done_rx.recv() {
                    Ok((s, r)) => {
                        signed.insert(s, r);
                    }
                    Err(_) => return Err(ServiceError::Internal("signing workers stopped".into())),
                }
            };
            match result
                .map_err(|e| ServiceError::Internal(format!("signing a module failed: {e}")))?
            {
                Signed::Memory(body, refs, suffix) => {
                    let size = (body.len() + suffix.len()) as u64;
                    item.header.set_size(size);
                    append_raw_with(
                        &mut builder,
                        &mut item.header,
                        &item.name,
                        item.link.as_deref(),
                        |gz| {
                            gz.write_with_backrefs(&body, &refs)?;
                            gz.write_all(&suffix)?;
                            Ok(size)
                        },
                    )
                    .map_err(io_err)?;
                }
                Signed::Spooled(file, suffix) => {
                    let body = file.reopen().map_err(io_err)?;
                    let len = body.metadata().map_err(io_err)?.len();
                    item.header.set_size(len + suffix.len() as u64);
                    append_raw(
                        &mut builder,
                        &mut item.header,
                        &item.name,
                        item.link.as_deref(),
                        body.chain(&suffix[..]),
                    )
                    .map_err(io_err)?;
                    // The temp file goes now, not at the end of the request.
                    drop(file);
                }
            }
            continue;
        }
        match item.data {
            Payload::Memory(bytes) => {
                item.header.set_size(bytes.len() as u64);
                append_raw(
                    &mut builder,
                    &mut item.header,
                    &item.name,
                    item.link.as_deref(),
                    &bytes[..],
                )
            }
            Payload::Spooled(file, len) => {
                item.header.set_size(len);
                append_raw(
                    &mut builder,
                    &mut item.header,
                    &item.name,
                    item.link.as_deref(),
                    file,
                )
            }
        }
        .map_err(io_err)?;
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(io_err)
}
