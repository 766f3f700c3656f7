//! Helpers shared by svc-kmod's tests: real keys from the `openssl` CLI, real
//! ELF modules from `cc`, and the kernel's own `sign-file`.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub use servicekit::testing::{curl_post, filler, run, Reply, ServiceUnderTest};

/// Debian's `linux-kbuild-6.1` ships the kernel's signing tool here.
pub const SIGN_FILE: &str = "/usr/lib/linux-kbuild-6.1/scripts/sign-file";

/// A signing key kind the kernel supports.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    Rsa(u32),
    Ec(&'static str),
}

/// A key pair on disk: PEM key, PEM and DER certificate.
pub struct KeyPair {
    pub key_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub cert_der: PathBuf,
}

/// Makes a key and a self-signed certificate with common name `cn` in `dir`.
pub fn make_keypair(dir: &Path, kind: KeyKind, cn: &str) -> KeyPair {
    std::fs::create_dir_all(dir).unwrap();
    let key_pem = dir.join("key.pem");
    let cert_pem = dir.join("cert.pem");
    let cert_der = dir.join("cert.der");
    let newkey = match kind {
        KeyKind::Rsa(bits) => format!("rsa:{bits}"),
        KeyKind::Ec(curve) => {
            let params = dir.join("ec.params");
            run(Command::new("openssl")
                .args(["ecparam", "-name", curve, "-out"])
                .arg(&params));
            format!("ec:{}", params.display())
        }
    };
    run(Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-nodes", "-days", "30", "-newkey", &newkey, "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key_pem)
        .arg("-out")
        .arg(&cert_pem));
    run(Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert_pem)
        .arg("-out")
        .arg(&cert_der));
    KeyPair {
        key_pem,
        cert_pem,
        cert_der,
    }
}

/// A real ELF relocatable object with a `.modinfo` section, as `modinfo`
/// reads kernel modules, followed by `filler` (the ELF headers do not cover
/// trailing bytes, so the object stays valid).
pub fn make_module(dir: &Path, name: &str, filler: &[u8]) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!("{name}.c"));
    let obj = dir.join(format!("{name}.o"));
    std::fs::write(
        &src,
        format!(
            "static const char l[] __attribute__((used, section(\".modinfo\"), aligned(1))) = \"license=GPL\";\n\
             static const char n[] __attribute__((used, section(\".modinfo\"), aligned(1))) = \"name={name}\";\n\
             int init_module(void) {{ return 0; }}\n"
        ),
    )
    .unwrap();
    run(Command::new("cc").arg("-c").arg("-o").arg(&obj).arg(&src));
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes.extend_from_slice(filler);
    std::fs::remove_file(src).unwrap();
    std::fs::remove_file(obj).unwrap();
    bytes
}

/// Signs a copy of `module` with the kernel's sign-file and returns the result.
pub fn sign_file(dir: &Path, hash: &str, key: &Path, cert: &Path, module: &[u8]) -> Vec<u8> {
    let path = dir.join("reference.ko");
    std::fs::write(&path, module).unwrap();
    run(Command::new(SIGN_FILE)
        .arg(hash)
        .arg(key)
        .arg(cert)
        .arg(&path));
    let signed = std::fs::read(&path).unwrap();
    std::fs::remove_file(path).unwrap();
    signed
}

/// `modinfo -F <field>` of a module file, trimmed.
pub fn modinfo(path: &Path, field: &str) -> String {
    let out = run(Command::new("modinfo").args(["-F", field]).arg(path));
    String::from_utf8(out).unwrap().trim().to_string()
}

/// A svc-kmod with keys from `keyfile_uri` (opened with `s3` options, if given).
pub fn start_svc_kmod(keyfile_uri: &str, s3: Option<keystore::S3Options>) -> ServiceUnderTest {
    let uri = keyfile_uri.to_string();
    ServiceUnderTest::start(move |listener, config, shutdown| async move {
        let keystore = match s3 {
            Some(options) => keystore::KeyStore::open_with(&uri, &options).await,
            None => keystore::KeyStore::open(&uri).await,
        }
        .unwrap();
        svc_kmod::run(listener, keystore, config, shutdown).await
    })
}

/// A key store root on disk holding `<machine>/kmodsign/kernel-signkey.*`.
pub fn kmod_keystore(root: &Path, machine: &str, kind: KeyKind, cn: &str) -> KeyPair {
    let keys = make_keypair(&root.join("_src").join(machine), kind, cn);
    let dir = root.join(machine).join("kmodsign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&keys.key_pem, dir.join("kernel-signkey.priv")).unwrap();
    std::fs::copy(&keys.cert_pem, dir.join("kernel-signkey.x509")).unwrap();
    keys
}
