//! The reply's gzip stream, as independent gzip members of about 512 KiB
//! of input each, and each member stored (not deflated) when a sample of it
//! does not shrink.
//!
//! Signed artifacts are often incompressible (random-looking module bodies,
//! encrypted images); deflating them at level 1 cost a core for nothing
//! (36 % of svc-kmod's samples on random-content modules, issue 20).
//! Concatenated members are one valid gzip file for GNU tar, gzip and
//! Python's tarfile (tested), and independent members are what a parallel
//! compressor would need later.

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress};

/// Input bytes per member.
pub const MEMBER_BYTES: usize = 512 * 1024;

/// Bytes taken from each of four places in a member to judge it.
const SAMPLE_BYTES: usize = 4 * 1024;

/// A sample that level 1 shrinks by less than this many parts in 100 is
/// stored.
const WORTH_DEFLATING_PERCENT: usize = 97;

/// A gzip writer of independent members (see the module documentation).
pub struct ChunkedGzWriter<W: Write> {
    out: W,
    pending: Vec<u8>,
    members: u64,
    probe: Compress,
    probe_out: Vec<u8>,
    /// Deflates at the caller's level; `store` at level 0. Each is reset
    /// for each member, so no state is allocated per member.
    deflate: Compress,
    store: Compress,
    deflated: Vec<u8>,
    stored: u64,
}

/// A gzip member's header: deflate, no name, no time, unknown OS (as
/// flate2's GzEncoder writes it).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl<W: Write> ChunkedGzWriter<W> {
    /// Writes to `out`, deflating compressible members at `level`.
    pub fn new(out: W, level: u32) -> Self {
        Self {
            out,
            pending: Vec::with_capacity(MEMBER_BYTES),
            members: 0,
            probe: Compress::new(Compression::fast(), false),
            probe_out: Vec::with_capacity(2 * SAMPLE_BYTES),
            deflate: Compress::new(Compression::new(level), false),
            store: Compress::new(Compression::none(), false),
            deflated: Vec::with_capacity(MEMBER_BYTES + MEMBER_BYTES / 8),
            stored: 0,
        }
    }

    /// Whether level-1 deflate would shrink `data` (judged on samples).
    fn worth_deflating(&mut self, data: &[u8]) -> bool {
        if data.len() <= SAMPLE_BYTES {
            return true;
        }
        let (mut input, mut output) = (0usize, 0usize);
        let step = (data.len() - SAMPLE_BYTES) / 3;
        for i in 0..4 {
            let start = i * step;
            let sample = &data[start..start + SAMPLE_BYTES];
            self.probe.reset();
            self.probe_out.clear();
            if self
                .probe
                .compress_vec(sample, &mut self.probe_out, FlushCompress::Finish)
                .is_err()
            {
                return true;
            }
            input += sample.len();
            output += self.probe.total_out() as usize;
        }
        output * 100 < input * WORTH_DEFLATING_PERCENT
    }

    /// Writes the pending bytes as one member.
    fn write_member(&mut self) -> io::Result<()> {
        let data = std::mem::take(&mut self.pending);
        let compress = if self.worth_deflating(&data) {
            &mut self.deflate
        } else {
            self.stored += 1;
            &mut self.store
        };
        compress.reset();
        self.deflated.clear();
        let mut input = &data[..];
        loop {
            if self.deflated.capacity() - self.deflated.len() < 64 * 1024 {
                self.deflated.reserve(256 * 1024);
            }
            let before = compress.total_in();
            let status = compress
                .compress_vec(input, &mut self.deflated, FlushCompress::Finish)
                .map_err(io::Error::other)?;
            input = &input[(compress.total_in() - before) as usize..];
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(&data);
        self.out.write_all(&GZIP_HEADER)?;
        self.out.write_all(&self.deflated)?;
        self.out.write_all(&crc.sum().to_le_bytes())?;
        self.out.write_all(&crc.amount().to_le_bytes())?;
        self.members += 1;
        self.pending = data;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is pending and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.pending.is_empty() || self.members == 0 {
            self.write_member()?;
        }
        tracing::debug!(
            members = self.members,
            stored = self.stored,
            "reply gzip members"
        );
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ChunkedGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = MEMBER_BYTES - self.pending.len();
        let take = room.min(buf.len());
        self.pending.extend_from_slice(&buf[..take]);
        if self.pending.len() == MEMBER_BYTES {
            self.write_member()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Members are whole units; what is pending waits for more input or
        // `finish`.
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn random(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut w = ChunkedGzWriter::new(Vec::new(), 1);
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn members_read_back_as_one_stream_and_random_data_is_stored() {
        let mut data = random(3 * MEMBER_BYTES + 1234, 7);
        data.extend(std::iter::repeat_n(b'a', 2 * MEMBER_BYTES));
        let gz = gzip(&data);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Random members stored (a few bytes more than their input), the
        // repeated ones deflated to almost nothing.
        let random_part = 3 * MEMBER_BYTES + 1234;
        assert!(
            gz.len() < random_part + random_part / 100 + 64 * 1024,
            "{}",
            gz.len()
        );
        assert!(gz.len() > random_part);
    }

    #[test]
    fn an_empty_stream_is_a_valid_gzip() {
        let gz = gzip(b"");
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }

    #[test]
    fn gnu_gzip_tar_and_python_read_a_chunked_tarball() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("d")).unwrap();
        std::fs::write(tree.join("d/random.bin"), random(3 * MEMBER_BYTES, 3)).unwrap();
        std::fs::write(tree.join("d/text.txt"), "text ".repeat(300_000)).unwrap();
        let file = std::fs::File::create(dir.path().join("out.tar.gz")).unwrap();
        let gz = crate::archive::pack_tar_gz(&tree, file, 1).unwrap();
        drop(gz);
        let path = dir.path().join("out.tar.gz");
        let ok = |cmd: &mut std::process::Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        ok(std::process::Command::new("gzip").arg("-t").arg(&path));
        let listed = ok(std::process::Command::new("tar").arg("-tzf").arg(&path));
        assert!(
            listed.contains("./d/random.bin") && listed.contains("./d/text.txt"),
            "{listed}"
        );
        let py = ok(std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, tarfile, hashlib\n\
             t = tarfile.open(sys.argv[1], 'r:gz')\n\
             print(hashlib.sha256(t.extractfile('./d/random.bin').read()).hexdigest())",
            )
            .arg(&path));
        let want: String = openssl::sha::sha256(&random(3 * MEMBER_BYTES, 3))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(py.trim(), want);
    }
}
