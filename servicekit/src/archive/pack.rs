//! Packing a result tree as upstream's `tar -czf - .` does.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tar::EntryType;

/// Packs the tree at `src` as a gzip tarball written to `out`, in the shape
/// upstream's `tar -czf out.tar.gz .` gives: names start with `./`, entries in
/// sorted order, modes, mtimes and symlinks kept, owner root.
pub fn pack_tar_gz<W: Write>(src: &Path, out: W, level: u32) -> io::Result<W> {
    let gz = super::ChunkedGzWriter::new(out, level);
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
    mut data: R,
) -> io::Result<()> {
    append_raw_with(builder, header, name, link, |out| io::copy(&mut data, out))
}

/// [`append_raw`], with the entry's data written by `write_data` straight
/// to the archive's sink (e.g. with [`super::ChunkedGzWriter::write_with_backrefs`]);
/// it returns how many bytes it wrote, which must be the header's size.
pub fn append_raw_with<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    write_data: impl FnOnce(&mut W) -> io::Result<u64>,
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
    // What tar::Builder::append does, with the data written by the caller.
    let size = header.size()?;
    let out = builder.get_mut();
    out.write_all(header.as_bytes())?;
    let written = write_data(out)?;
    if written != size {
        return Err(io::Error::other(format!(
            "an entry's data was {written} bytes, its header says {size}"
        )));
    }
    let padding = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..padding as usize])
}
