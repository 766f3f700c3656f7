//! Throwaway demo keys, so a first run signs something with no setup.

use keystore::SignType;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::{X509NameBuilder, X509};
use servicekit::demo::DemoKeyStore;

/// Adds a fresh RSA-2048 key and self-signed certificate as
/// `demo/kmodsign/kernel-signkey.{priv,x509}`.
pub fn add_demo_keys(store: &DemoKeyStore) -> Result<(), Box<dyn std::error::Error>> {
    let key = PKey::from_rsa(Rsa::generate(2048)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "digsig THROWAWAY demo module signing key")?;
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
    let key_pem = zeroize::Zeroizing::new(key.private_key_to_pem_pkcs8()?);
    store.add(SignType::Kmod, "kernel-signkey.priv", &key_pem)?;
    store.add(SignType::Kmod, "kernel-signkey.x509", &cert.build().to_pem()?)?;
    Ok(())
}
