//! Signing an SWUpdate `sw-description`, natively, as upstream does with the
//! `openssl` command.
//!
//! - RSA: `openssl dgst -sha256 -sign rsa-private.key sw-description`, an
//!   RSA PKCS#1 v1.5 signature over SHA-256: deterministic, so ours is
//!   byte-identical.
//! - CMS: `openssl cms -sign -binary -nosmimecap -outform DER -signer cms.cert
//!   -inkey cms-private.key`: a detached DER SignedData with the signer's
//!   certificate and the signing-time attribute (so no two are alike; SWUpdate
//!   and `openssl cms -verify` check it).

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::X509;
use zeroize::Zeroizing;

/// Why keys from the key store cannot sign; names the file, never its bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not a private key in PEM or DER.
    #[error("{file} is not a private key in PEM or DER form")]
    BadPrivateKey {
        /// The key's file name.
        file: &'static str,
    },
    /// `rsa-private.key` holds a key of another type.
    #[error("{file} holds a {found} key; the RSA method needs an RSA key")]
    NotRsa {
        /// The key's file name.
        file: &'static str,
        /// The type found.
        found: String,
    },
    /// Not an X.509 certificate in PEM or DER.
    #[error("{file} is not an X.509 certificate in PEM or DER form")]
    BadCertificate {
        /// The certificate's file name.
        file: &'static str,
    },
    /// The key does not belong to the certificate.
    #[error("cms-private.key does not match the public key in cms.cert")]
    Mismatch,
}

fn private_key(bytes: &[u8], file: &'static str) -> Result<PKey<Private>, KeyError> {
    if let Some(rsa) = rsa_key_fast(bytes) {
        return PKey::from_rsa(rsa).map_err(|_| KeyError::BadPrivateKey { file });
    }
    PKey::private_key_from_pem(bytes)
        .or_else(|_| PKey::private_key_from_der(bytes))
        .map_err(|_| KeyError::BadPrivateKey { file })
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

fn certificate(bytes: &[u8], file: &'static str) -> Result<X509, KeyError> {
    X509::from_pem(bytes)
        .or_else(|_| X509::from_der(bytes))
        .map_err(|_| KeyError::BadCertificate { file })
}

/// The RSA method: a PKCS#1 v1.5 signature over the SHA-256 of `data`.
pub fn sign_rsa(key: &[u8], data: &[u8]) -> Result<Vec<u8>, KeyError> {
    const FILE: &str = "rsa-private.key";
    let key = private_key(key, FILE)?;
    if key.rsa().is_err() {
        return Err(KeyError::NotRsa {
            file: FILE,
            found: format!("{:?}", key.id()),
        });
    }
    let mut signer = Signer::new(MessageDigest::sha256(), &key).expect("an RSA key signs");
    signer.update(data).expect("hashing cannot fail");
    Ok(signer.sign_to_vec().expect("an RSA key signs"))
}

/// The CMS method: a detached DER SignedData over `data`.
pub fn sign_cms(cert: &[u8], key: &[u8], data: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cert = certificate(cert, "cms.cert")?;
    let key = private_key(key, "cms-private.key")?;
    if !cert
        .public_key()
        .map(|p| p.public_eq(&key))
        .unwrap_or(false)
    {
        return Err(KeyError::Mismatch);
    }
    let flags = CMSOptions::BINARY | CMSOptions::DETACHED | CMSOptions::NOSMIMECAP;
    let cms = CmsContentInfo::sign(Some(&cert), Some(&key), None, Some(data), flags)
        .map_err(|_| KeyError::Mismatch)?;
    Ok(cms.to_der().expect("a signed CMS encodes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_rsa_path_reads_pkcs1_and_pkcs8_to_the_same_signature() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        let pkcs8 = PKey::from_rsa(rsa.clone())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(rsa_key_fast(&pkcs1).is_some() && rsa_key_fast(&pkcs8).is_some());
        let generic = PKey::private_key_from_pem(&pkcs8).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &generic).unwrap();
        signer.update(b"sw-description").unwrap();
        let reference = signer.sign_to_vec().unwrap();
        assert_eq!(sign_rsa(&pkcs1, b"sw-description").unwrap(), reference);
        assert_eq!(sign_rsa(&pkcs8, b"sw-description").unwrap(), reference);
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
        assert!(matches!(sign_rsa(&pem, b"x"), Err(KeyError::NotRsa { .. })));
        assert!(
            rsa_key_fast(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_none()
        );
        assert!(matches!(
            sign_rsa(b"garbage", b"x"),
            Err(KeyError::BadPrivateKey { .. })
        ));
    }
}
