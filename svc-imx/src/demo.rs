//! Throwaway demo keys, so a first run signs a CSF with no setup: a HAB4
//! PKI laid out as NXP's `hab4_pki_tree.sh` makes it, in
//! `demo/imxsign/imx-cst-keys.tar.gz`.

use std::io::Write;

use keystore::SignType;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::symm::Cipher;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509NameBuilder, X509};
use servicekit::demo::DemoKeyStore;
use zeroize::Zeroizing;

use crate::srk_table::srk_table;

/// The keys tarball's name in the key store.
pub const KEYS_TARBALL: &str = "imx-cst-keys.tar.gz";

/// The SRK table's name in the demo tarball (NXP's name for four SRKs).
pub const DEMO_SRK_TABLE: &str = "SRK_1_2_3_4_table.bin";

/// The demo CSF key's certificate, as a CSF names it.
pub const DEMO_CSF_CERT: &str = "crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem";

/// The demo image key's certificate, as a CSF names it.
pub const DEMO_IMG_CERT: &str = "crts/IMG1_1_sha256_2048_65537_v3_usr_crt.pem";

/// Adds a fresh HAB4 PKI as `demo/imxsign/imx-cst-keys.tar.gz`.
pub fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
    store.add(SignType::Imx, KEYS_TARBALL, &demo_keys_tarball()?)?;
    Ok(())
}

struct Issued {
    stem: String,
    key: PKey<Private>,
    cert: X509,
}

/// A gzip tarball of a fresh PKI: CA1; SRK1..4, CA certificates signed by
/// CA1; CSF1_1 and IMG1_1 signed by SRK1; RSA-2048, SHA-256; every key
/// PKCS#8 encrypted with the pass phrase in `keys/key_pass.txt`; and the SRK
/// table.
pub fn demo_keys_tarball() -> Result<Zeroizing<Vec<u8>>, Box<dyn std::error::Error>> {
    let ca = issue("CA1_sha256_2048_65537_v3_ca", None, true)?;
    let srks = (1..=4)
        .map(|i| issue(&format!("SRK{i}_sha256_2048_65537_v3_ca"), Some(&ca), true))
        .collect::<Result<Vec<_>, _>>()?;
    let csf = issue("CSF1_1_sha256_2048_65537_v3_usr", Some(&srks[0]), false)?;
    let img = issue("IMG1_1_sha256_2048_65537_v3_usr", Some(&srks[0]), false)?;
    let table = srk_table(&srks.iter().map(|s| s.cert.clone()).collect::<Vec<_>>())?;

    let mut pass = [0u8; 16];
    openssl::rand::rand_bytes(&mut pass)?;
    let pass = Zeroizing::new(pass.iter().map(|b| format!("{b:02x}")).collect::<String>());

    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes)
    };
    for issued in std::iter::once(&ca).chain(&srks).chain([&csf, &img]) {
        let key = Zeroizing::new(
            issued
                .key
                .private_key_to_pem_pkcs8_passphrase(Cipher::aes_256_cbc(), pass.as_bytes())?,
        );
        add(&format!("keys/{}_key.pem", issued.stem), &key)?;
        add(
            &format!("crts/{}_crt.pem", issued.stem),
            &issued.cert.to_pem()?,
        )?;
    }
    add(
        "keys/key_pass.txt",
        format!("{}\n{}\n", *pass, *pass).as_bytes(),
    )?;
    add(DEMO_SRK_TABLE, &table)?;
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    Ok(Zeroizing::new(gz.finish()?))
}

/// A fresh RSA-2048 key and its certificate `CN=<stem>`, signed by `issuer`
/// (self-signed without one); a CA certificate when `ca`.
fn issue(
    stem: &str,
    issuer: Option<&Issued>,
    ca: bool,
) -> Result<Issued, openssl::error::ErrorStack> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", stem)?;
    let name = name.build();
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(issuer.map_or(&*name, |i| i.cert.subject_name()))?;
    cert.set_pubkey(&key)?;
    cert.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    cert.set_not_after(&*Asn1Time::days_from_now(3650)?)?;
    if ca {
        cert.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        cert.append_extension(KeyUsage::new().key_cert_sign().build()?)?;
    } else {
        cert.append_extension(BasicConstraints::new().build()?)?;
        cert.append_extension(KeyUsage::new().digital_signature().build()?)?;
    }
    let ski = SubjectKeyIdentifier::new().build(&cert.x509v3_context(None, None))?;
    cert.append_extension(ski)?;
    cert.sign(issuer.map_or(&key, |i| &i.key), MessageDigest::sha256())?;
    Ok(Issued {
        stem: stem.to_string(),
        key,
        cert: cert.build(),
    })
}
