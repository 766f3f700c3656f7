//! The HAB4 Super Root Key table, as NXP's `srktool -h 4` writes it: the
//! boot ROM checks the CSF's SRK against this table's hash burnt in fuses.
//! Made natively only for the demo keys (no `srktool` needed to run the
//! demo); tests check it byte for byte against `srktool`'s.

use openssl::rsa::Rsa;
use openssl::x509::X509;

/// HAB4 table tag.
const TAG_SRK_TABLE: u8 = 0xd7;
/// HAB 4.0 version byte.
const HAB_VERSION: u8 = 0x40;
/// HAB4 public key tag.
const TAG_PUBLIC_KEY: u8 = 0xe1;
/// Public key parameter byte: an RSA key for HAB 4.1+ (`HAB_KEY_PUBLIC`).
const PARAM_RSA_PUBLIC: u8 = 0x21;
/// Key flag: the key's certificate is a CA (it signs the CSF and image keys).
const FLAG_CA: u8 = 0x80;

/// The SRK table of the RSA certificates `srks` (one to four), each a CA
/// certificate as SRKs are when they sign the CSF and IMG certificates.
pub fn srk_table(srks: &[X509]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut body = Vec::new();
    for cert in srks {
        let rsa: Rsa<_> = cert.public_key()?.rsa()?;
        let modulus = rsa.n().to_vec();
        let exponent = rsa.e().to_vec();
        let len = 12 + modulus.len() + exponent.len();
        body.push(TAG_PUBLIC_KEY);
        body.extend_from_slice(&(len as u16).to_be_bytes());
        body.push(PARAM_RSA_PUBLIC);
        body.extend_from_slice(&[0, 0, 0, FLAG_CA]);
        body.extend_from_slice(&(modulus.len() as u16).to_be_bytes());
        body.extend_from_slice(&(exponent.len() as u16).to_be_bytes());
        body.extend_from_slice(&modulus);
        body.extend_from_slice(&exponent);
    }
    let mut table = vec![TAG_SRK_TABLE];
    table.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    table.push(HAB_VERSION);
    table.extend_from_slice(&body);
    Ok(table)
}
