//! Reading private keys from key store files: PEM or DER, never prompting.
//!
//! Every service parses its key on every request (keys are fetched per
//! request and never kept), so two things matter here: a passphrase-protected
//! key must fail at once rather than make OpenSSL prompt on the server's
//! terminal (which `PKey::private_key_from_pem` does when the process has
//! one: the request would hang), and RSA keys take a fast path.

use openssl::error::ErrorStack;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use zeroize::Zeroizing;

/// Why a key or certificate from the key store cannot be used. Always the
/// operator's to fix (a 500 in every domain); it names the file, never its
/// contents.
#[derive(Debug, thiserror::Error)]
#[error("{file} {problem}")]
pub struct UnusableKey {
    /// The file as `<signtype>/<name>`, e.g. `kmodsign/kernel-signkey.priv`.
    pub file: String,
    /// What is wrong with it.
    pub problem: KeyProblem,
}

/// What is wrong with a key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// Not a private key in PEM or DER, or one protected by a passphrase.
    #[error("is not an unencrypted private key in PEM or DER form")]
    NotAKey,
    /// A private key of a type this signature cannot be made with.
    #[error("holds a key of type {found}; {needs}")]
    WrongType {
        /// The type found ("Ed25519", "EC", ...).
        found: &'static str,
        /// What the domain needs, as a sentence for the operator.
        needs: &'static str,
    },
    /// Not an X.509 certificate in PEM or DER.
    #[error("is not an X.509 certificate in PEM or DER form")]
    NotACertificate,
    /// The private key does not belong to the certificate.
    #[error("does not match the public key in {certificate}")]
    Mismatch {
        /// The certificate's file name.
        certificate: &'static str,
    },
}

impl UnusableKey {
    /// `problem` with `<signtype>/<name>`.
    pub fn new(signtype: keystore::SignType, name: &str, problem: KeyProblem) -> Self {
        Self {
            file: format!("{}/{name}", signtype.dir_name()),
            problem,
        }
    }
}

impl UnusableKey {
    /// Names the file as `<selector>/<signtype>/<name>`, as the operator
    /// finds it in the key store.
    pub fn of(mut self, selector: &keystore::Selector) -> Self {
        self.file = format!("{selector}/{}", self.file);
        self
    }
}

/// The name of a key type, for messages.
pub fn key_type_name(id: openssl::pkey::Id) -> &'static str {
    use openssl::pkey::Id;
    match id {
        Id::RSA => "RSA",
        Id::RSA_PSS => "RSA-PSS (restricted)",
        Id::EC => "EC",
        Id::ED25519 => "Ed25519",
        Id::ED448 => "Ed448",
        Id::DSA => "DSA",
        Id::DH => "DH",
        _ => "unknown type of",
    }
}

/// Parses an unencrypted private key in PEM (PKCS#1, SEC1, PKCS#8) or DER.
/// An encrypted key is an error, never a prompt.
pub fn parse(bytes: &[u8]) -> Result<PKey<Private>, ErrorStack> {
    if let Some(rsa) = rsa_key_fast(bytes) {
        return PKey::from_rsa(rsa);
    }
    // An empty passphrase, not none: none means "ask the terminal".
    PKey::private_key_from_pem_passphrase(bytes, b"").or_else(|_| PKey::private_key_from_der(bytes))
}

/// RSA keys in PEM (PKCS#1 `RSA PRIVATE KEY` or unencrypted PKCS#8
/// `PRIVATE KEY`) read straight from their DER. Keys are fetched for every
/// request and never kept, so parsing is on every request's path, and
/// OpenSSL 3's generic decoder costs ~340 µs a key here (more than the
/// signature) where `d2i_RSAPrivateKey` takes ~2 µs. `None` for anything
/// else, which then takes the generic path.
fn rsa_key_fast(pem: &[u8]) -> Option<Rsa<Private>> {
    let text = std::str::from_utf8(pem).ok()?;
    let (label, der) = pem_body(text)?;
    match label {
        "RSA PRIVATE KEY" => Rsa::private_key_from_der(&der).ok(),
        "PRIVATE KEY" => Rsa::private_key_from_der(pkcs8_rsa_payload(&der)?).ok(),
        _ => None,
    }
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_body(text: &str) -> Option<(&str, Zeroizing<Vec<u8>>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = &rest[..label_end];
    let body = &rest[label_end + 5..];
    let end = body.find(&format!("-----END {label}-----"))?;
    let lines = &body[..end];
    if lines.contains(':') {
        return None; // headers: an encrypted legacy PEM
    }
    let b64: Zeroizing<String> = Zeroizing::new(lines.split_whitespace().collect());
    Some((
        label,
        Zeroizing::new(openssl::base64::decode_block(&b64).ok()?),
    ))
}

/// The PKCS#1 key inside an unencrypted PKCS#8 `PrivateKeyInfo` for
/// rsaEncryption: `SEQUENCE { INTEGER version, SEQUENCE { OID, NULL },
/// OCTET STRING key, ... }`.
fn pkcs8_rsa_payload(der: &[u8]) -> Option<&[u8]> {
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let (tag, info, _) = der_tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _version, rest) = der_tlv(info)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, algorithm, rest) = der_tlv(rest)?;
    if tag != 0x30 || !algorithm.starts_with(RSA_ENCRYPTION) {
        return None;
    }
    let (tag, key, _) = der_tlv(rest)?;
    (tag == 0x04).then_some(key)
}

/// One DER element: (tag, contents, what follows).
fn der_tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | b as usize);
        rest = &rest[count..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_rsa_path_reads_pkcs1_and_pkcs8_to_the_same_key() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        let pkcs8 = PKey::from_rsa(rsa.clone())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let want = rsa.private_key_to_der().unwrap();
        for pem in [&pkcs1, &pkcs8] {
            let fast = rsa_key_fast(pem).expect("fast path taken");
            assert_eq!(fast.private_key_to_der().unwrap(), want);
            assert_eq!(
                parse(pem)
                    .unwrap()
                    .rsa()
                    .unwrap()
                    .private_key_to_der()
                    .unwrap(),
                want
            );
        }
        let der = rsa.private_key_to_der().unwrap();
        assert_eq!(
            parse(&der)
                .unwrap()
                .rsa()
                .unwrap()
                .private_key_to_der()
                .unwrap(),
            want
        );
    }

    #[test]
    fn other_keys_take_the_generic_path() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(rsa_key_fast(&pem).is_none());
        assert_eq!(parse(&pem).unwrap().id(), openssl::pkey::Id::EC);
        assert!(
            rsa_key_fast(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_none()
        );
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn encrypted_keys_fail_instead_of_prompting() {
        let rsa = Rsa::generate(2048).unwrap();
        let legacy = rsa
            .private_key_to_pem_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"secret")
            .unwrap();
        let pkcs8 = PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"secret")
            .unwrap();
        // Run from a terminal, a parse that prompts would block here.
        assert!(parse(&legacy).is_err());
        assert!(parse(&pkcs8).is_err());
    }
}
