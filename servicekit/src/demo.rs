//! A throwaway key store for `--demo`, so a first run signs something with no
//! setup. Each service crate adds the keys its domain needs for the machine or
//! distro called [`DEMO_SELECTOR`].

use std::fs;
use std::os::unix::fs::PermissionsExt;

use keystore::SignType;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use zeroize::Zeroizing;

/// The machine/distro name demo keys are stored under.
pub const DEMO_SELECTOR: &str = "demo";

/// A private (0700) temp directory laid out as a `file://` key store, deleted
/// when dropped.
pub struct DemoKeyStore {
    dir: tempfile::TempDir,
}

impl DemoKeyStore {
    /// An empty demo key store.
    pub fn create() -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("digsig-demo-keys-")
            .tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    /// Writes `<demo>/<signtype>/<file>` (mode 0600).
    pub fn add(&self, signtype: SignType, file: &str, bytes: &[u8]) -> std::io::Result<()> {
        let dir = self
            .dir
            .path()
            .join(DEMO_SELECTOR)
            .join(signtype.dir_name());
        fs::create_dir_all(&dir)?;
        let path = dir.join(file);
        fs::write(&path, bytes)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
    }

    /// The `file://` URI of the demo key store.
    pub fn uri(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }
}

/// A fresh RSA-2048 key (PKCS#8 PEM, wiped on drop) and a self-signed
/// certificate (PEM) for it, valid 30 days, with common name `cn`.
pub fn self_signed_rsa(
    cn: &str,
) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), openssl::error::ErrorStack> {
    let key: PKey<Private> = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", cn)?;
    let name = name.build();
    let mut cert = X509::builder()?;
    cert.set_version(2)?;
    let serial = BigNum::from_u32(1)?.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(30)?);
    cert.set_not_before(&not_before)?;
    cert.set_not_after(&not_after)?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok((
        Zeroizing::new(key.private_key_to_pem_pkcs8()?),
        cert.build().to_pem()?,
    ))
}
