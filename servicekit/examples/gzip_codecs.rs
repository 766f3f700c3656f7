//! Benchmark: digsig's own gzip decoder and fixed-code deflate against
//! zlib-rs, on any gzip file (e.g. bench/kmod.py's `modules-in.tar.gz`,
//! kept with `--keep DIR`). Prints figures; asserts nothing about speed.
//!
//! Usage: cargo run --release -p servicekit --example gzip_codecs -- FILE.gz

use std::io::Read;
use std::time::Instant;

use servicekit::archive::fixed_deflate::write_fixed_block;
use servicekit::archive::inflate::{Backref, BackrefLog, GzipDecoder};

/// svc-kmod's reply members and blocks (servicekit::archive::chunked_gzip).
const MEMBER: usize = 512 * 1024;
const BLOCK: usize = 64 * 1024;

fn main() {
    let path = std::env::args().nth(1).expect("usage: gzip_codecs FILE.gz");
    let gz = std::fs::read(&path).expect("read the file");
    let mut buf = vec![0u8; 256 * 1024];
    let mut plain = Vec::new();
    // Each reply member's back-references, as svc-kmod's writer hands them
    // over (here a member is taken whole, module bounds aside).
    let mut member_refs: Vec<Vec<Backref>> = Vec::new();
    for round in 1..=3 {
        let t = Instant::now();
        let mut zlib = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut n = 0;
        while let Ok(k @ 1..) = zlib.read(&mut buf) {
            n += k;
        }
        println!(
            "round {round}: decode, zlib-rs:               {:6.0} ms, {n} bytes",
            ms(t)
        );
        for logging in [false, true] {
            let t = Instant::now();
            let log = BackrefLog::default();
            let mut ours = GzipDecoder::new(&gz[..], logging.then(|| log.clone())).unwrap();
            plain.clear();
            member_refs.clear();
            let take = |upto: usize, member_refs: &mut Vec<Vec<Backref>>| {
                let start = (member_refs.len() * MEMBER) as u64;
                member_refs.push(log.take(start, upto as u64, usize::MAX).unwrap());
            };
            while let Ok(k @ 1..) = ours.read(&mut buf) {
                plain.extend_from_slice(&buf[..k]);
                while logging && plain.len() >= (member_refs.len() + 1) * MEMBER {
                    take((member_refs.len() + 1) * MEMBER, &mut member_refs);
                }
            }
            if logging {
                take(plain.len(), &mut member_refs);
            }
            let refs: usize = member_refs.iter().map(Vec::len).sum();
            println!("round {round}: decode, ours, logging {logging:5}: {:6.0} ms, {refs} back-references", ms(t));
        }
    }
    for round in 1..=2 {
        let t = Instant::now();
        let mut size = 0;
        let mut compress = flate2::Compress::new(flate2::Compression::new(1), false);
        for member in plain.chunks(MEMBER) {
            compress.reset();
            let mut out = Vec::with_capacity(MEMBER);
            compress
                .compress_vec(member, &mut out, flate2::FlushCompress::Finish)
                .unwrap();
            size += out.len();
        }
        let ratio = size as f64 / plain.len() as f64;
        println!(
            "round {round}: encode, zlib-rs level 1:       {:6.0} ms, ratio {ratio:.3}",
            ms(t)
        );
        let t = Instant::now();
        let mut size = 0;
        for (member, refs) in plain.chunks(MEMBER).zip(&member_refs) {
            let mut out = Vec::new();
            for at in (0..member.len()).step_by(BLOCK) {
                write_fixed_block(member, at..(at + BLOCK).min(member.len()), refs, &mut out);
            }
            size += out.len();
        }
        let ratio = size as f64 / plain.len() as f64;
        println!(
            "round {round}: encode, fixed codes, upload's: {:6.0} ms, ratio {ratio:.3}",
            ms(t)
        );
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
