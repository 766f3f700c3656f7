//! Helpers shared by svc-optee's tests: keys from the `openssl` CLI, TA trees
//! packed with `tar`, requests made with `curl` as a build would make them,
//! and a checker that verifies a signed TA with `openssl` and Python's
//! `uuid`, not with any of the service's own code.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub use servicekit::testing::{curl_post, filler, run, Reply, ServiceUnderTest};

/// An RSA key of `bits` made by `openssl genpkey` (PKCS#8 PEM) and its
/// public half, in `dir`.
pub struct RsaKey {
    pub private_pem: PathBuf,
    pub public_pem: PathBuf,
    pub bits: usize,
}

pub fn make_rsa_key(dir: &Path, bits: usize) -> RsaKey {
    std::fs::create_dir_all(dir).unwrap();
    let private_pem = dir.join(format!("rsa{bits}.pem"));
    let public_pem = dir.join(format!("rsa{bits}.pub.pem"));
    run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-out")
        .arg(&private_pem));
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private_pem)
        .arg("-out")
        .arg(&public_pem));
    RsaKey {
        private_pem,
        public_pem,
        bits,
    }
}

/// Installs `key_pem` as `<root>/<machine>/opteesign/optee-signing-key.pem`.
pub fn install_key(root: &Path, machine: &str, key_pem: &Path) {
    let dir = root.join(machine).join("opteesign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(key_pem, dir.join("optee-signing-key.pem")).unwrap();
}

/// A svc-optee with keys from `keyfile_uri`.
pub fn start_svc_optee(keyfile_uri: &str) -> ServiceUnderTest {
    let uri = keyfile_uri.to_string();
    ServiceUnderTest::start(move |listener, config, shutdown| async move {
        let keystore = keystore::KeyStore::open(&uri).await.unwrap();
        svc_optee::run(listener, keystore, config, shutdown).await
    })
}

/// Packs `rel` (a directory under `base`) as the upstream docs' client does:
/// `find <rel> -type f ... | sort | xargs tar -c -z -f <dest>`.
pub fn pack(base: &Path, rel: &str, dest: &Path) {
    run(Command::new("sh").current_dir(base).arg("-c").arg(format!(
        "find {rel} -type f | sort | xargs tar -c -z -f '{}'",
        dest.display()
    )));
}

/// The documented client's call, run in `build` (which holds
/// `tasign-in.tar.gz`): `curl --fail ... --output tasign-out.tar.gz`.
pub fn post_like_the_client(base_url: &str, machine: &str, build: &Path) {
    run(Command::new("curl")
        .current_dir(build)
        .args(["--silent", "--show-error", "--fail", "-X", "POST"])
        .arg("-F")
        .arg(format!("machine={machine}"))
        .args(["-F", "artifact=@tasign-in.tar.gz"])
        .args(["--output", "tasign-out.tar.gz"])
        .arg(format!("{base_url}/sign/optee")));
}

/// Extracts a reply tarball into `dest` with GNU tar.
pub fn unpack(tarball: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    run(Command::new("tar")
        .current_dir(dest)
        .args(["-x", "--no-same-owner", "-z", "-f"])
        .arg(tarball));
}

/// The OP-TEE header algorithm a TA is expected to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    Pss,
    Pkcs1v15,
}

impl Algo {
    pub fn field(self) -> &'static str {
        match self {
            Algo::Pss => "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256",
            Algo::Pkcs1v15 => "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256",
        }
    }
    fn id(self) -> u32 {
        match self {
            Algo::Pss => 0x7041_4930,
            Algo::Pkcs1v15 => 0x7000_4830,
        }
    }
}

/// The 16 bytes Python's `uuid.UUID(text).bytes` gives: what OP-TEE's
/// signing scripts (and upstream digsigserver) write.
pub fn python_uuid_bytes(text: &str) -> Vec<u8> {
    let hex = run(Command::new("python3")
        .arg("-c")
        .arg("import sys, uuid; print(uuid.UUID(sys.argv[1]).bytes.hex())")
        .arg(text));
    let hex = String::from_utf8(hex).unwrap();
    (0..16)
        .map(|i| u8::from_str_radix(&hex.trim()[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap())
}

/// Checks a signed TA against what it must hold, with independent tools:
/// the layout field by field, the digest recomputed by `openssl dgst` over
/// header ‖ uuid ‖ version ‖ image, and the signature checked by `openssl
/// pkeyutl -verify` against the public key. Returns the signature.
pub fn verify_ta(
    ta: &[u8],
    image: &[u8],
    uuid_text: &str,
    version: u32,
    key: &RsaKey,
    algo: Algo,
    scratch: &Path,
) -> Vec<u8> {
    let sig_len = key.bits / 8;
    assert_eq!(
        ta.len(),
        20 + 32 + sig_len + 16 + 4 + image.len(),
        "TA length"
    );
    let header = &ta[..20];
    assert_eq!(le32(&header[0..4]), 0x4f54_5348, "magic");
    assert_eq!(le32(&header[4..8]), 1, "img_type (bootstrap TA)");
    assert_eq!(le32(&header[8..12]) as usize, image.len(), "img_size");
    assert_eq!(le32(&header[12..16]), algo.id(), "algo");
    assert_eq!(
        u16::from_le_bytes([header[16], header[17]]),
        32,
        "hash_size"
    );
    assert_eq!(
        u16::from_le_bytes([header[18], header[19]]) as usize,
        sig_len,
        "sig_size"
    );
    let digest = &ta[20..52];
    let sig = &ta[52..52 + sig_len];
    let rest = &ta[52 + sig_len..];
    assert_eq!(&rest[..16], &python_uuid_bytes(uuid_text)[..], "uuid");
    assert_eq!(le32(&rest[16..20]), version, "ta_version");
    assert!(&rest[20..] == image, "image bytes");

    std::fs::create_dir_all(scratch).unwrap();
    let signed_part = scratch.join("signed-part");
    std::fs::write(&signed_part, [&ta[..20], &rest[..20], image].concat()).unwrap();
    let recomputed = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .arg(&signed_part));
    assert_eq!(
        &recomputed[..],
        digest,
        "digest over header‖uuid‖version‖image"
    );

    let digest_file = scratch.join("digest");
    let sig_file = scratch.join("sig");
    std::fs::write(&digest_file, digest).unwrap();
    std::fs::write(&sig_file, sig).unwrap();
    let mut verify = Command::new("openssl");
    verify
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(&key.public_pem)
        .arg("-in")
        .arg(&digest_file)
        .arg("-sigfile")
        .arg(&sig_file)
        .args(["-pkeyopt", "digest:sha256"]);
    if algo == Algo::Pss {
        verify.args([
            "-pkeyopt",
            "rsa_padding_mode:pss",
            "-pkeyopt",
            "rsa_pss_saltlen:32",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ]);
    }
    let out = run(&mut verify);
    assert!(
        String::from_utf8_lossy(&out).contains("Signature Verified Successfully"),
        "openssl pkeyutl -verify: {}",
        String::from_utf8_lossy(&out)
    );
    sig.to_vec()
}

/// `openssl pkeyutl -sign -pkeyopt digest:sha256` over a TA's digest: the
/// reference PKCS#1 v1.5 signature (deterministic, so ours must equal it).
pub fn openssl_pkcs1_signature(ta: &[u8], key: &RsaKey, scratch: &Path) -> Vec<u8> {
    let digest_file = scratch.join("digest-for-sign");
    std::fs::write(&digest_file, &ta[20..52]).unwrap();
    run(Command::new("openssl")
        .args(["pkeyutl", "-sign", "-inkey"])
        .arg(&key.private_pem)
        .arg("-in")
        .arg(&digest_file)
        .args(["-pkeyopt", "digest:sha256"]))
}
