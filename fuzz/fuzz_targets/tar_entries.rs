//! The archive gate and extraction on arbitrary tar bytes (gzip-wrapped
//! here, as uploads are): no panic, and nothing written beside the tree.
//! (The limits themselves are pinned by servicekit's archive tests.)
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use servicekit::archive::{extract_tar_gz, ArchiveLimits};

fuzz_target!(|tar: &[u8]| {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(tar).unwrap();
    let data = gz.finish().unwrap();
    let base = tempfile_dir();
    let dest = base.join("tree");
    std::fs::create_dir(&dest).unwrap();
    let limits = ArchiveLimits {
        max_bytes: 1 << 20,
        max_entries: 1000,
        max_ratio: 200,
    };
    let _ = extract_tar_gz(&data[..], &dest, &limits);
    // Nothing may appear beside the tree.
    let outside: Vec<_> = std::fs::read_dir(&base).unwrap().collect();
    assert_eq!(outside.len(), 1, "an entry escaped the tree");
    std::fs::remove_dir_all(&base).ok();
});

fn tempfile_dir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "digsig-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).unwrap();
    dir
}
