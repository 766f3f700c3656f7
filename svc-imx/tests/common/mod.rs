//! Helpers shared by svc-imx's tests (and the gateway's i.MX tests): a real
//! HAB4 PKI from openssl and Debian's `srktool`, a working `cst` installed
//! by `svc-imx/cst/install-cst`, requests made with curl, and a checker that
//! verifies a CSF blob with `csf_parser` and `openssl cms`, not with any of
//! the service's own code.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use servicekit::testing::{curl_post, filler, run, Reply, ServiceUnderTest};

/// The CST version install-cst installs from Debian's package.
pub const CST_VERSION: &str = "3.3.1";

pub const CSF_CERT: &str = "crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem";
pub const IMG_CERT: &str = "crts/IMG1_1_sha256_2048_65537_v3_usr_crt.pem";
pub const SRK_TABLE: &str = "SRK_1_2_3_4_table.bin";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("svc-imx")
}

/// A CST base directory holding `cst-3.3.1` (Debian's cst with our back
/// end), made once per test process.
pub fn cst_base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("cst-base-")
            .tempdir()
            .unwrap();
        run(Command::new(crate_dir().join("cst/install-cst")).arg(dir.path()));
        dir
    })
    .path()
}

/// A CST base whose `cst-<version>` runs `script` (a shell script body).
pub fn fake_cst_base(dir: &Path, version: &str, script: &str) -> PathBuf {
    let bin = dir.join(format!("cst-{version}/linux64/bin"));
    std::fs::create_dir_all(&bin).unwrap();
    let cst = bin.join("cst");
    std::fs::write(&cst, format!("#!/bin/sh\n{script}\n")).unwrap();
    run(Command::new("chmod").arg("0755").arg(&cst));
    dir.to_path_buf()
}

/// A HAB4 PKI (tests/fixtures/make-hab4-pki) in `dir`, and the keys tarball
/// of it installed as `<root>/<machine>/imxsign/imx-cst-keys.tar.gz`.
pub fn install_pki(root: &Path, machine: &str, dir: &Path) {
    run(Command::new(crate_dir().join("tests/fixtures/make-hab4-pki")).arg(dir));
    let keys = root.join(machine).join("imxsign");
    std::fs::create_dir_all(&keys).unwrap();
    run(Command::new("tar")
        .current_dir(dir)
        .arg("-czf")
        .arg(keys.join("imx-cst-keys.tar.gz"))
        .args([SRK_TABLE, "SRK_1_2_3_4_fuse.bin", "crts", "keys"]));
}

/// A CSF description that installs the SRK and CSF key, authenticates the
/// CSF, installs the image key and authenticates `len` bytes of `artifact`.
pub fn csf_text(artifact: &str, len: usize) -> String {
    format!(
        r#"[Header]
    Version = 4.2
    Hash Algorithm = sha256
    Engine = CAAM
    Engine Configuration = 0
    Certificate Format = X509
    Signature Format = CMS

[Install SRK]
    File = "{SRK_TABLE}"
    Source index = 0

[Install CSFK]
    File = "{CSF_CERT}"

[Authenticate CSF]

[Install Key]
    Verification index = 0
    Target Index = 2
    File = "{IMG_CERT}"

[Authenticate Data]
    Verification index = 2
    Blocks = 0x877ff400 0x0 {len:#x} "{artifact}"
"#
    )
}

/// Checks `blob` (a CSF blob) independently: `csf_parser` parses it; the
/// SRK table and the two certificates in it are the PKI's in `pki`; the CSF
/// signature verifies with `openssl cms` over the CSF's own commands
/// against the CSF certificate, the image signature over the first `len`
/// bytes of `artifact` against the IMG certificate; and neither verifies
/// against the other certificate.
pub fn verify_blob(blob: &[u8], pki: &Path, artifact: &Path, len: usize, scratch: &Path) {
    std::fs::create_dir_all(scratch).unwrap();
    let blob_path = scratch.join("csf.bin");
    std::fs::write(&blob_path, blob).unwrap();
    let parsed = run(Command::new("csf_parser")
        .current_dir(scratch)
        .arg("-c")
        .arg(&blob_path));
    let parsed = String::from_utf8_lossy(&parsed);
    assert!(parsed.contains("SRK Table file created"), "{parsed}");
    let out = scratch.join("output");
    assert_eq!(
        std::fs::read(out.join("SRKTable.bin")).unwrap(),
        std::fs::read(pki.join(SRK_TABLE)).unwrap(),
        "the SRK table in the blob is not the PKI's"
    );
    let pem = |der: &Path| {
        run(Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(der))
    };
    assert_eq!(
        pem(&out.join("cert0.der")),
        std::fs::read(pki.join(CSF_CERT)).unwrap()
    );
    assert_eq!(
        pem(&out.join("cert1.der")),
        std::fs::read(pki.join(IMG_CERT)).unwrap()
    );

    // HAB signs the CSF from its header to the end of its commands: the
    // header's big-endian length.
    assert_eq!(blob[0], 0xd4, "not a HAB CSF header");
    let csf_len = u16::from_be_bytes([blob[1], blob[2]]) as usize;
    let commands = scratch.join("csf-commands.bin");
    std::fs::write(&commands, &blob[..csf_len]).unwrap();
    let data = scratch.join("signed-data.bin");
    std::fs::write(&data, &std::fs::read(artifact).unwrap()[..len]).unwrap();
    let cms_verify = |sig: &str, content: &Path, cert: &str| {
        Command::new("openssl")
            .args(["cms", "-verify", "-inform", "DER", "-binary", "-noverify"])
            .arg("-in")
            .arg(out.join(sig))
            .arg("-content")
            .arg(content)
            .arg("-certfile")
            .arg(pki.join(cert))
            .args(["-out", "/dev/null"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(cms_verify("sig0.bin", &commands, CSF_CERT), "CSF signature");
    assert!(cms_verify("sig1.bin", &data, IMG_CERT), "image signature");
    assert!(
        !cms_verify("sig0.bin", &commands, IMG_CERT),
        "CSF signature by the IMG key"
    );
    assert!(
        !cms_verify("sig1.bin", &commands, IMG_CERT),
        "image signature over other data"
    );
}

/// Starts a svc-imx with keys from `keyfile_uri` and the CSTs under `base`,
/// with `settings` added.
pub fn start_svc_imx(
    keyfile_uri: &str,
    base: &Path,
    settings: &[(&str, &str)],
) -> ServiceUnderTest {
    let uri = keyfile_uri.to_string();
    let base = base.display().to_string();
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ServiceUnderTest::start(move |listener, mut config, shutdown| async move {
        config.settings.set(svc_imx::CST_BASE_VAR, base);
        for (name, value) in settings {
            config.settings.set(&name, value);
        }
        let keystore = keystore::KeyStore::open(&uri).await.unwrap();
        svc_imx::run(listener, keystore, config, shutdown).await
    })
}
