//! digsig's own gzip decoder (servicekit::archive::inflate) on arbitrary
//! deflate data: no panic, no hang, the bytes zlib gives (as far as each
//! decodes before refusing damage), and every back-reference it logs holds.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use servicekit::archive::inflate::{BackrefLog, GzipDecoder};

/// Everything a decoder gives before its end or its first error.
fn drain(mut r: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < 1 << 22 {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fuzz_target!(|deflate: &[u8]| {
    // A gzip header and the fuzzer's bytes as the deflate stream (its
    // trailer, if any, is the fuzzer's too).
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend_from_slice(deflate);
    let theirs = drain(flate2::read::MultiGzDecoder::new(&gz[..]));
    let log = BackrefLog::default();
    let ours = drain(GzipDecoder::new(&gz[..], Some(log.clone())).unwrap());
    // Each stops where it finds damage, after decoding ahead by its own
    // buffer: one output must start the other.
    let n = ours.len().min(theirs.len());
    assert!(ours[..n] == theirs[..n], "decoded bytes differ");
    for r in log.take(0, ours.len() as u64, usize::MAX).unwrap_or_default() {
        let (at, len, dist) = (r.pos as usize, usize::from(r.len), usize::from(r.dist));
        if at + len <= ours.len() {
            assert!(dist <= at && (0..len).all(|k| ours[at + k] == ours[at + k - dist]));
        }
    }
});
