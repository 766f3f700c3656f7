//! Our signatures against the kernel's own `scripts/sign-file` (Debian's
//! `linux-kbuild-6.1`): byte-identical for RSA, and checked by `modinfo` and
//! `openssl cms -verify` for EC, whose signatures are randomised.

mod common;

use std::process::Command;

use common::*;
use servicekit::private_key::{KeyProblem, UnusableKey};
use svc_kmod::signer::{strip_signature, HashAlg, ModuleSigner, MODULE_SIG_MAGIC};

const HASHES: [HashAlg; 3] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

fn check_rsa(bits: u32) {
    let dir = tempfile::tempdir().unwrap();
    let keys = make_keypair(
        &dir.path().join("keys"),
        KeyKind::Rsa(bits),
        &format!("digsig parity rsa{bits}"),
    );
    let module = make_module(dir.path(), "parity", &filler(50_000, bits as u64));
    let key = std::fs::read(&keys.key_pem).unwrap();
    for hash in HASHES {
        for cert_path in [&keys.cert_pem, &keys.cert_der] {
            let reference = sign_file(dir.path(), hash.name(), &keys.key_pem, cert_path, &module);
            let cert = std::fs::read(cert_path).unwrap();
            let ours = ModuleSigner::new(&key, &cert, hash)
                .unwrap()
                .sign_module(&module)
                .unwrap();
            assert_eq!(
                ours,
                reference,
                "rsa{bits} {} {}: output differs from sign-file",
                hash.name(),
                cert_path.display()
            );
            let signed = dir.path().join("ours.ko");
            std::fs::write(&signed, &ours).unwrap();
            assert_eq!(
                modinfo(&signed, "signer"),
                format!("digsig parity rsa{bits}")
            );
            assert_eq!(modinfo(&signed, "sig_hashalgo"), hash.name());
            assert_eq!(modinfo(&signed, "sig_id"), "PKCS#7");
        }
    }
}

#[test]
fn rsa_2048_is_byte_identical_to_sign_file() {
    check_rsa(2048);
}

#[test]
fn rsa_4096_is_byte_identical_to_sign_file() {
    check_rsa(4096);
}

/// What the service does: one context per thread signs module after module
/// by splicing each RSA signature into the request's CMS template. Every
/// one must still be byte-identical to sign-file's, for each hash.
#[test]
fn one_context_signs_many_modules_byte_identical_to_sign_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = make_keypair(
        &dir.path().join("keys"),
        KeyKind::Rsa(2048),
        "digsig parity context",
    );
    let key = std::fs::read(&keys.key_pem).unwrap();
    let cert = std::fs::read(&keys.cert_pem).unwrap();
    let modules: Vec<Vec<u8>> = [(1, 10u64), (30_000, 11), (250_000, 12), (7, 13)]
        .iter()
        .map(|&(len, seed)| make_module(dir.path(), &format!("m{seed}"), &filler(len, seed)))
        .collect();
    for hash in HASHES {
        let signer = ModuleSigner::new(&key, &cert, hash).unwrap();
        assert!(
            signer.uses_template(),
            "an RSA key signs through the template"
        );
        let mut context = signer.context().unwrap();
        for module in &modules {
            let reference = sign_file(
                dir.path(),
                hash.name(),
                &keys.key_pem,
                &keys.cert_pem,
                module,
            );
            let mut ours = module.clone();
            let suffix = context.sign_in_place(&mut ours).unwrap();
            ours.extend_from_slice(&suffix);
            assert_eq!(
                ours,
                reference,
                "{} module of {} bytes",
                hash.name(),
                module.len()
            );
            // Re-signing the signed module replaces the signature.
            let mut again = ours.clone();
            let suffix = context.sign_in_place(&mut again).unwrap();
            again.extend_from_slice(&suffix);
            assert_eq!(again, reference);
        }
    }
}

/// `openssl asn1parse` of the CMS blob with offsets, lengths and the
/// signature value removed: what must match when signatures are randomised.
fn cms_shape(dir: &std::path::Path, signed: &[u8]) -> Vec<String> {
    let sig = cms_of(signed);
    let path = dir.join("sig.der");
    std::fs::write(&path, sig).unwrap();
    let text = run(Command::new("openssl")
        .args(["asn1parse", "-inform", "DER", "-in"])
        .arg(&path));
    let lines: Vec<String> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|l| {
            // "  123:d=4  hl=2 l=  70 prim: OCTET STRING [HEX DUMP]:..." -> depth, kind, value
            let after_len = l
                .split_once("prim:")
                .or_else(|| l.split_once("cons:"))
                .map(|(_, r)| r)
                .unwrap_or(l);
            let depth = l
                .split_whitespace()
                .next()
                .and_then(|f| f.split_once(':'))
                .map(|(_, d)| d)
                .unwrap_or("");
            format!("{depth} {}", after_len.trim())
        })
        .collect();
    // The last element is the signature value: its bytes differ each time.
    let (last, rest) = lines.split_last().unwrap();
    assert!(
        last.contains("OCTET STRING"),
        "last element is not the signature: {last}"
    );
    rest.to_vec()
}

/// The CMS blob appended to a signed module.
fn cms_of(signed: &[u8]) -> &[u8] {
    let rest = signed
        .strip_suffix(MODULE_SIG_MAGIC)
        .expect("no signature magic");
    let len = u32::from_be_bytes(rest[rest.len() - 4..].try_into().unwrap()) as usize;
    &rest[rest.len() - 12 - len..rest.len() - 12]
}

fn check_ec(curve: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let keys = make_keypair(
        &dir.path().join("keys"),
        KeyKind::Ec(curve),
        &format!("digsig parity {curve}"),
    );
    let module = make_module(dir.path(), "ecmod", &filler(20_000, 7));
    let key = std::fs::read(&keys.key_pem).unwrap();
    let cert = std::fs::read(&keys.cert_pem).unwrap();
    for hash in HASHES {
        let reference = sign_file(
            dir.path(),
            hash.name(),
            &keys.key_pem,
            &keys.cert_pem,
            &module,
        );
        let signer = ModuleSigner::new(&key, &cert, hash).unwrap();
        assert!(
            !signer.uses_template(),
            "EC signatures are randomised: no template"
        );
        let ours = signer.sign_module(&module).unwrap();
        assert!(ours.starts_with(&module) && reference.starts_with(&module));
        assert_eq!(
            cms_shape(dir.path(), &ours),
            cms_shape(dir.path(), &reference),
            "{curve} {}",
            hash.name()
        );
        // The signature verifies over the module with the certificate.
        let sig_path = dir.path().join("ours.p7s");
        let content = dir.path().join("content.ko");
        std::fs::write(&sig_path, cms_of(&ours)).unwrap();
        std::fs::write(&content, &module).unwrap();
        run(Command::new("openssl")
            .args([
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-noverify",
                "-in",
            ])
            .arg(&sig_path)
            .arg("-content")
            .arg(&content)
            .arg("-certfile")
            .arg(&keys.cert_pem)
            .args(["-out", "/dev/null"]));
        let signed = dir.path().join("ours.ko");
        std::fs::write(&signed, &ours).unwrap();
        assert_eq!(modinfo(&signed, "signer"), format!("digsig parity {curve}"));
        assert_eq!(modinfo(&signed, "sig_hashalgo"), hash.name());
    }
}

#[test]
fn ec_p256_matches_sign_file_and_verifies() {
    check_ec("prime256v1");
}

#[test]
fn ec_p384_matches_sign_file_and_verifies() {
    check_ec("secp384r1");
}

#[test]
fn already_signed_module_gets_its_signature_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_keypair(&dir.path().join("old"), KeyKind::Rsa(2048), "old signer");
    let new = make_keypair(&dir.path().join("new"), KeyKind::Rsa(2048), "new signer");
    let module = make_module(dir.path(), "resign", &filler(10_000, 3));
    let signed_by_old = sign_file(dir.path(), "sha256", &old.key_pem, &old.cert_pem, &module);
    assert_eq!(strip_signature(&signed_by_old), &module[..]);

    let signer = ModuleSigner::new(
        &std::fs::read(&new.key_pem).unwrap(),
        &std::fs::read(&new.cert_pem).unwrap(),
        HashAlg::Sha512,
    )
    .unwrap();
    let resigned = signer.sign_module(&signed_by_old).unwrap();
    // Exactly what sign-file makes from the unsigned module: one signature, the new one.
    assert_eq!(
        resigned,
        sign_file(dir.path(), "sha512", &new.key_pem, &new.cert_pem, &module)
    );
    assert_eq!(
        resigned
            .windows(MODULE_SIG_MAGIC.len())
            .filter(|w| *w == MODULE_SIG_MAGIC)
            .count(),
        1
    );
    // Signing twice with the same key is idempotent.
    assert_eq!(signer.sign_module(&resigned).unwrap(), resigned);
}

#[test]
fn unsigned_module_is_left_alone_by_strip() {
    let module = b"\x7fELF not really a module but ends with text~".to_vec();
    assert_eq!(strip_signature(&module), &module[..]);
    // A magic with a trailer claiming more bytes than exist is not a signature.
    let mut bogus = vec![0u8; 4];
    bogus.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    bogus.extend_from_slice(MODULE_SIG_MAGIC);
    assert_eq!(strip_signature(&bogus), &bogus[..]);
}

#[test]
fn unusable_keys_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_keypair(&dir.path().join("a"), KeyKind::Rsa(2048), "a");
    let b = make_keypair(&dir.path().join("b"), KeyKind::Rsa(2048), "b");
    let key_a = std::fs::read(&a.key_pem).unwrap();
    let cert_a = std::fs::read(&a.cert_pem).unwrap();
    let cert_b = std::fs::read(&b.cert_der).unwrap();
    let problem = |result: Result<ModuleSigner, UnusableKey>| match result {
        Err(e) => (e.file.clone(), e.problem.clone(), e.to_string()),
        Ok(_) => panic!("unusable keys were accepted"),
    };
    let (file, mismatch, msg) = problem(ModuleSigner::new(&key_a, &cert_b, HashAlg::Sha256));
    assert_eq!(file, "kmodsign/kernel-signkey.priv");
    assert!(matches!(mismatch, KeyProblem::Mismatch { .. }));
    // The messages name files, never key bytes.
    assert!(msg.contains("kernel-signkey.priv") && msg.contains("kernel-signkey.x509"));
    assert_eq!(
        problem(ModuleSigner::new(b"not a key", &cert_a, HashAlg::Sha256)).1,
        KeyProblem::NotAKey
    );
    let (file, bad_cert, _) = problem(ModuleSigner::new(&key_a, b"not a cert", HashAlg::Sha256));
    assert_eq!(
        (file.as_str(), bad_cert),
        ("kmodsign/kernel-signkey.x509", KeyProblem::NotACertificate)
    );
}
