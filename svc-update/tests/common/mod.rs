//! Mender artifacts for tests, made with Debian's `mender-artifact`; shared
//! with the gateway's tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// An unsigned Mender artifact with a payload of `payload` random bytes at
/// `path`.
pub fn make_artifact(path: &Path, payload: usize) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("payload.bin");
    let mut bytes = vec![0u8; payload];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    std::fs::write(&data, bytes).unwrap();
    servicekit::testing::run(
        Command::new("mender-artifact")
            .args(["write", "module-image", "-T", "script", "-n", "release-1"])
            .args(["-t", "board", "-f"])
            .arg(&data)
            .arg("-o")
            .arg(path),
    );
}

/// `src` rewritten by Python's tarfile at `dst` with a PAX header on
/// `version`: an artifact `mender-artifact` reads and signs, and digsig's
/// native signer leaves to it.
pub fn with_pax_header(src: &Path, dst: &Path) {
    servicekit::testing::run(
        Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, tarfile\n\
                 src = tarfile.open(sys.argv[1])\n\
                 dst = tarfile.open(sys.argv[2], 'w', format=tarfile.PAX_FORMAT)\n\
                 for m in src.getmembers():\n\
                 \x20   if m.name == 'version': m.pax_headers = {'comment': 'digsig test'}\n\
                 \x20   dst.addfile(m, src.extractfile(m))\n\
                 dst.close()\n",
            )
            .arg(src)
            .arg(dst),
    );
}

/// An unsigned artifact that only `mender-artifact` signs (see
/// [`with_pax_header`]).
pub fn make_tool_only_artifact(path: &Path, payload: usize) {
    let plain = path.with_extension("plain");
    make_artifact(&plain, payload);
    with_pax_header(&plain, path);
    std::fs::remove_file(plain).unwrap();
}
