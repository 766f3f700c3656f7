//! Safe extraction against crafted tarballs: every rejection rule, a gzip bomb,
//! truncation; after each, nothing exists outside the work dir and the work
//! dir is gone once dropped.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use servicekit::archive::{extract_tar_gz, pack_tar_gz, ArchiveError, ArchiveLimits};
use servicekit::WorkDir;
use tar::{EntryType, Header};

/// Appends an entry with a raw, unvalidated name (the tar crate's safe setters
/// refuse the hostile names we need).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn gz(tar_bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(tar_bytes).unwrap();
    e.finish().unwrap()
}

fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    gz(&b.into_inner().unwrap())
}

/// Extracts into a fresh WorkDir under a fresh base holding a sentinel file,
/// returns the outcome; checks that the base holds nothing but the sentinel
/// and the work dir, and that dropping the work dir leaves only the sentinel.
fn extract_checked(data: &[u8], limits: ArchiveLimits) -> Result<Vec<String>, ArchiveError> {
    let base = tempfile::tempdir().unwrap();
    fs::write(base.path().join("sentinel"), b"keep").unwrap();
    let work = WorkDir::create(base.path()).unwrap();
    let result = extract_tar_gz(data, work.path(), &limits);
    let mut outside: Vec<_> = fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    let work_name = work
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut expected = vec!["sentinel".to_string(), work_name];
    expected.sort();
    assert_eq!(
        outside, expected,
        "something was written outside the work dir"
    );
    let listing = list_tree(work.path());
    drop(work);
    let left: Vec<_> = fs::read_dir(base.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "work dir not removed");
    assert_eq!(fs::read(base.path().join("sentinel")).unwrap(), b"keep");
    result.map(|_| listing)
}

fn list_tree(root: &Path) -> Vec<String> {
    let mut all = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
            }
            all.push(p.strip_prefix(root).unwrap().display().to_string());
        }
    }
    all.sort();
    all
}

fn limits() -> ArchiveLimits {
    ArchiveLimits::default()
}

fn unsafe_path(result: Result<Vec<String>, ArchiveError>) -> String {
    match result {
        Err(ArchiveError::UnsafePath { path, reason }) => format!("{path}: {reason}"),
        other => panic!("expected UnsafePath, got {other:?}"),
    }
}

#[test]
fn extracts_a_normal_tree_with_inside_links() {
    let data = archive(|b| {
        raw_entry(b, "./", EntryType::Directory, None, b"");
        raw_entry(b, "./lib/modules/6.1/", EntryType::Directory, None, b"");
        raw_entry(
            b,
            "./lib/modules/6.1/a.ko",
            EntryType::Regular,
            None,
            b"module",
        );
        raw_entry(
            b,
            "lib/modules/6.1/kernel/b.ko",
            EntryType::Regular,
            None,
            b"bee",
        );
        raw_entry(
            b,
            "lib/modules/6.1/kernel/up",
            EntryType::Symlink,
            Some("../a.ko"),
            b"",
        );
        raw_entry(
            b,
            "lib/modules/6.1/same",
            EntryType::Link,
            Some("lib/modules/6.1/a.ko"),
            b"",
        );
    });
    let listing = extract_checked(&data, limits()).unwrap();
    assert_eq!(
        listing,
        [
            "lib",
            "lib/modules",
            "lib/modules/6.1",
            "lib/modules/6.1/a.ko",
            "lib/modules/6.1/kernel",
            "lib/modules/6.1/kernel/b.ko",
            "lib/modules/6.1/kernel/up",
            "lib/modules/6.1/same",
        ]
    );
}

#[test]
fn rejects_absolute_member_names() {
    let data = archive(|b| raw_entry(b, "/etc/evil", EntryType::Regular, None, b"x"));
    assert!(unsafe_path(extract_checked(&data, limits())).contains("absolute"));
}

#[test]
fn rejects_member_escaping_workdir() {
    for name in ["../evil", "a/../../evil", "./../evil"] {
        let data = archive(|b| raw_entry(b, name, EntryType::Regular, None, b"x"));
        assert!(
            unsafe_path(extract_checked(&data, limits())).contains(".."),
            "{name}"
        );
    }
}

#[test]
fn rejects_symlinks_pointing_outside() {
    for (name, target) in [
        ("abs", "/etc/passwd"),
        ("up", "../outside"),
        ("d/up2", "../../outside"),
        ("mid", "d/../../outside"),
        ("empty", ""),
    ] {
        let data = archive(|b| raw_entry(b, name, EntryType::Symlink, Some(target), b""));
        let msg = unsafe_path(extract_checked(&data, limits()));
        assert!(msg.contains("symlink"), "{name} -> {target}: {msg}");
    }
}

#[test]
fn rejects_writing_through_a_symlink_to_an_inside_directory() {
    // "sub/link -> .." stays inside, but "sub/link/../x" would resolve outside
    // if followed; we never follow a symlink as a parent.
    let data = archive(|b| {
        raw_entry(b, "sub/", EntryType::Directory, None, b"");
        raw_entry(b, "sub/link", EntryType::Symlink, Some(".."), b"");
        raw_entry(b, "sub/link/file", EntryType::Regular, None, b"x");
    });
    assert!(unsafe_path(extract_checked(&data, limits())).contains("parent"));
}

#[test]
fn a_later_file_replaces_a_symlink_instead_of_writing_through_it() {
    let data = archive(|b| {
        raw_entry(b, "target", EntryType::Regular, None, b"original");
        raw_entry(b, "link", EntryType::Symlink, Some("target"), b"");
        raw_entry(b, "link", EntryType::Regular, None, b"replacement");
    });
    let base = tempfile::tempdir().unwrap();
    extract_tar_gz(&data[..], base.path(), &limits()).unwrap();
    assert_eq!(fs::read(base.path().join("target")).unwrap(), b"original");
    assert_eq!(fs::read(base.path().join("link")).unwrap(), b"replacement");
    assert!(!fs::symlink_metadata(base.path().join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn rejects_hard_links_outside_or_to_nothing() {
    for target in ["../../etc/passwd", "/etc/passwd", "not-extracted-yet"] {
        let data = archive(|b| raw_entry(b, "hl", EntryType::Link, Some(target), b""));
        let err = extract_checked(&data, limits()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::UnsafePath { .. }),
            "{target}: {err:?}"
        );
    }
}

#[test]
fn rejects_device_nodes_and_fifos() {
    for (kind, word) in [
        (EntryType::Char, "device node"),
        (EntryType::Block, "device node"),
        (EntryType::Fifo, "FIFO"),
    ] {
        let data = archive(|b| raw_entry(b, "dev/x", kind, None, b""));
        match extract_checked(&data, limits()) {
            Err(ArchiveError::UnsupportedEntry { kind, .. }) => assert_eq!(kind, word),
            other => panic!("{word}: {other:?}"),
        }
    }
}

#[test]
fn gzip_bomb_hits_the_byte_limit() {
    // 64 MiB of zeros compresses to ~64 KB.
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut h = Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(64 * 1024 * 1024);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, std::io::repeat(0).take_bytes(64 * 1024 * 1024))
        .unwrap();
    let data = b.into_inner().unwrap().finish().unwrap();
    assert!(data.len() < 2 * 1024 * 1024);
    let small = ArchiveLimits {
        max_bytes: 4 * 1024 * 1024,
        max_entries: 100,
        max_ratio: 0,
    };
    let err = extract_checked(&data, small).unwrap_err();
    assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err:?}");
}

#[test]
fn decompressed_stream_is_capped_even_when_headers_lie() {
    // Headers claim nothing, but the stream goes on: junk after end-of-archive
    // is not read, so use many empty entries to exceed the stream cap instead.
    let data = archive(|b| {
        for i in 0..200 {
            raw_entry(b, &format!("f{i}"), EntryType::Regular, None, b"");
        }
    });
    let tight = ArchiveLimits {
        max_bytes: 0,
        max_entries: 50,
        max_ratio: 0,
    };
    let err = extract_checked(&data, tight).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::TooManyEntries { .. } | ArchiveError::TooLarge { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn too_many_entries() {
    let data = archive(|b| {
        for i in 0..20 {
            raw_entry(b, &format!("f{i}"), EntryType::Regular, None, b"x");
        }
    });
    let err = extract_checked(
        &data,
        ArchiveLimits {
            max_bytes: 1 << 20,
            max_entries: 10,
            max_ratio: 0,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooManyEntries { limit: 10 }),
        "{err:?}"
    );
}

#[test]
fn truncated_gzip_is_corrupt() {
    let data = archive(|b| raw_entry(b, "f", EntryType::Regular, None, &[7u8; 100_000]));
    let err = extract_checked(&data[..data.len() / 2], limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt(_)), "{err:?}");
}

#[test]
fn not_gzip_says_so() {
    let err = extract_checked(b"PK\x03\x04 this is a zip", limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::NotGzip), "{err:?}");
    let err = extract_checked(b"\x1f", limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::NotGzip), "{err:?}");
}

#[test]
fn an_empty_upload_is_called_empty_not_corrupt() {
    let err = extract_checked(b"", limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Empty), "{err:?}");
    assert!(err.to_string().contains("empty (0 bytes)"), "{err}");
}

#[test]
fn gzip_of_something_not_tar_is_corrupt() {
    let err = extract_checked(&gz(&[0x55u8; 2000]), limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt(_)), "{err:?}");
}

#[test]
fn packs_like_upstream_tar_czf_dot() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("lib/modules")).unwrap();
    fs::write(src.path().join("lib/modules/a.ko"), b"A").unwrap();
    std::os::unix::fs::symlink("a.ko", src.path().join("lib/modules/l")).unwrap();
    let out = pack_tar_gz(src.path(), Vec::new(), 1).unwrap();
    // GNU tar, not our code, reads it back.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.tar.gz");
    fs::write(&file, out).unwrap();
    let listed = Command::new("tar").arg("-tzf").arg(&file).output().unwrap();
    assert!(listed.status.success());
    let names = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(
        names,
        "./\n./lib/\n./lib/modules/\n./lib/modules/a.ko\n./lib/modules/l\n"
    );
    let x = Command::new("tar")
        .args(["-x", "--no-same-owner", "-f"])
        .arg(&file)
        .arg("-C")
        .arg(dir.path())
        .arg("./lib/modules")
        .status()
        .unwrap();
    assert!(x.success());
    assert_eq!(fs::read(dir.path().join("lib/modules/l")).unwrap(), b"A");
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}

/// `data` with the gzip trailer's CRC-32 changed: the deflate stream and the
/// tar inside are intact, only the checksum says the data is not what was sent.
fn with_bad_crc(mut data: Vec<u8>) -> Vec<u8> {
    let at = data.len() - 8;
    data[at] ^= 0xff;
    data
}

#[test]
fn a_wrong_crc_in_the_gzip_trailer_is_corrupt_even_when_the_tar_is_whole() {
    let data = archive(|b| raw_entry(b, "f", EntryType::Regular, None, b"content"));
    assert_eq!(extract_checked(&data, limits()).unwrap(), vec!["f"]);
    let err = extract_checked(&with_bad_crc(data), limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt(_)), "{err:?}");
}

#[test]
fn huge_long_name_and_pax_records_are_refused_from_their_header() {
    // 1 MB of "name": the tar reader would buffer it whole.
    let long = "d/".repeat(512 * 1024);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.set_size(7);
    h.set_entry_type(EntryType::Regular);
    h.set_mode(0o644);
    b.append_data(&mut h, &long, &b"content"[..]).unwrap(); // GNU long-name record
    let err = extract_checked(&gz(&b.into_inner().unwrap()), limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::MetadataTooLarge { size, .. } if size > 1_000_000),
        "{err:?}"
    );

    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("path", long.as_bytes())])
        .unwrap();
    raw_entry(&mut b, "f", EntryType::Regular, None, b"content");
    let err = extract_checked(&gz(&b.into_inner().unwrap()), limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::MetadataTooLarge { .. }),
        "{err:?}"
    );
}

#[test]
fn names_too_long_for_the_file_system_are_the_clients_mistake() {
    // A very deep tree: each component is fine, the whole path is not.
    let deep = format!("{}f", "dir/".repeat(1100));
    let data = archive(|b| {
        let mut h = Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    });
    let err = extract_checked(&data, limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::NameTooLong { .. }), "{err:?}");
    // One component longer than NAME_MAX.
    let wide = format!("d/{}", "n".repeat(300));
    let data = archive(|b| {
        let mut h = Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        b.append_data(&mut h, &wide, &b"x"[..]).unwrap();
    });
    let err = extract_checked(&data, limits()).unwrap_err();
    assert!(matches!(err, ArchiveError::NameTooLong { .. }), "{err:?}");
    assert!(
        servicekit::ServiceError::from(err)
            .status()
            .is_client_error(),
        "a client's name must not be a 500"
    );
}

#[test]
fn a_gzip_bomb_is_stopped_by_its_ratio_long_before_the_size_limit() {
    // 1 GiB of zeros in one entry: about 1 MB compressed, 1000:1.
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    let mut h = Header::new_gnu();
    h.set_path("lib/modules/v/zeros.ko").unwrap();
    h.set_size(1 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, std::io::Read::take(std::io::repeat(0), 1 << 30))
        .unwrap();
    let data = b.into_inner().unwrap().finish().unwrap();
    let err = extract_checked(&data, limits()).unwrap_err();
    assert!(
        matches!(err, ArchiveError::TooCompressed { ratio: 200 }),
        "{err:?}"
    );
    assert_eq!(servicekit::ServiceError::from(err).status().as_u16(), 413);
}
