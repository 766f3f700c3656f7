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

use keystore::SignType;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use servicekit::private_key::{key_type_name, KeyProblem, UnusableKey};

use crate::blinded_rsa::{can_sign_sha256, BlindedRsa, SignError};

fn unusable(file: &str, problem: KeyProblem) -> UnusableKey {
    UnusableKey::new(SignType::Swupdate, file, problem)
}

fn private_key(bytes: &[u8], file: &'static str) -> Result<PKey<Private>, UnusableKey> {
    servicekit::private_key::parse(bytes).map_err(|_| unusable(file, KeyProblem::NotAKey))
}

fn certificate(bytes: &[u8], file: &'static str) -> Result<X509, UnusableKey> {
    X509::from_pem(bytes)
        .or_else(|_| X509::from_der(bytes))
        .map_err(|_| unusable(file, KeyProblem::NotACertificate))
}

/// The RSA method's parsed key (kept between requests only when the
/// parsed-key cache is on).
///
/// It signs through the RSA key itself (the DigestInfo, PKCS#1 v1.5
/// padded, through `RSA_private_encrypt`) rather than through an EVP
/// context: with a key parsed for each request, the EVP path also copied
/// the key into OpenSSL's provider and fetched the algorithm every time.
/// Blinding pairs outlive the key object ([`BlindedRsa`]), so a fresh key
/// does not pay for a new one. The signature is the same bytes (PKCS#1 v1.5
/// is deterministic; tested against `openssl dgst -sign`).
pub struct RsaSigner(BlindedRsa);

impl RsaSigner {
    /// Parses `rsa-private.key`, which must hold an RSA key.
    pub fn new(key: &[u8]) -> Result<Self, UnusableKey> {
        const FILE: &str = "rsa-private.key";
        let key = private_key(key, FILE)?;
        match key.rsa() {
            Ok(rsa) if key.id() == openssl::pkey::Id::RSA && !can_sign_sha256(&rsa) => {
                Err(unusable(
                    FILE,
                    KeyProblem::WrongType {
                        found: "RSA (under 496 bits)",
                        needs: "the RSA method needs an RSA key of at least 512 bits",
                    },
                ))
            }
            Ok(rsa) if key.id() == openssl::pkey::Id::RSA => Ok(Self(BlindedRsa::new(rsa))),
            _ => Err(unusable(
                FILE,
                KeyProblem::WrongType {
                    found: key_type_name(key.id()),
                    needs: "the RSA method needs an RSA key",
                },
            )),
        }
    }

    /// A PKCS#1 v1.5 signature over the SHA-256 of `data`. Fails only if
    /// OpenSSL cannot allocate (e.g. its secure heap is full) or the
    /// signature does not verify (a fault): never for the key's size, which
    /// [`RsaSigner::new`] checked.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        self.0.sign_sha256(data)
    }
}

/// The CMS method's certificate and key, checked to belong together.
pub struct CmsSigner {
    cert: X509,
    key: PKey<Private>,
}

impl CmsSigner {
    /// Parses `cms.cert` and `cms-private.key`.
    pub fn new(cert: &[u8], key: &[u8]) -> Result<Self, UnusableKey> {
        let cert = certificate(cert, "cms.cert")?;
        let key = private_key(key, "cms-private.key")?;
        if !cert
            .public_key()
            .map(|p| p.public_eq(&key))
            .unwrap_or(false)
        {
            return Err(cms_mismatch());
        }
        Ok(Self { cert, key })
    }

    /// A detached DER SignedData over `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, UnusableKey> {
        let flags = CMSOptions::BINARY | CMSOptions::DETACHED | CMSOptions::NOSMIMECAP;
        let cms = CmsContentInfo::sign(Some(&self.cert), Some(&self.key), None, Some(data), flags)
            .map_err(|_| cms_mismatch())?;
        Ok(cms.to_der().expect("a signed CMS encodes"))
    }
}

fn cms_mismatch() -> UnusableKey {
    unusable(
        "cms-private.key",
        KeyProblem::Mismatch {
            certificate: "cms.cert",
        },
    )
}

/// The CMS method: a detached DER SignedData over `data`.
pub fn sign_cms(cert: &[u8], key: &[u8], data: &[u8]) -> Result<Vec<u8>, UnusableKey> {
    CmsSigner::new(cert, key)?.sign(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::hash::MessageDigest;
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;

    /// The RSA method, key to signature.
    fn sign_rsa(key: &[u8], data: &[u8]) -> Result<Vec<u8>, UnusableKey> {
        Ok(RsaSigner::new(key)?.sign(data).unwrap())
    }

    #[test]
    fn pkcs1_and_pkcs8_keys_give_the_same_signature() {
        let rsa = Rsa::generate(2048).unwrap();
        let pkcs1 = rsa.private_key_to_pem().unwrap();
        let pkcs8 = PKey::from_rsa(rsa.clone())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let generic = PKey::private_key_from_pem(&pkcs8).unwrap();
        let mut signer = Signer::new(MessageDigest::sha256(), &generic).unwrap();
        signer.update(b"sw-description").unwrap();
        let reference = signer.sign_to_vec().unwrap();
        assert_eq!(sign_rsa(&pkcs1, b"sw-description").unwrap(), reference);
        assert_eq!(sign_rsa(&pkcs8, b"sw-description").unwrap(), reference);
    }

    #[test]
    fn an_rsa_key_too_short_for_a_sha256_signature_is_refused() {
        use openssl::bn::{BigNum, BigNumContext};
        // OpenSSL will not make a key this small: one from two 200-bit primes.
        let mut ctx = BigNumContext::new().unwrap();
        let prime = || {
            let mut p = BigNum::new().unwrap();
            p.generate_prime(200, false, None, None).unwrap();
            p
        };
        let (p, q) = (prime(), prime());
        let one = BigNum::from_u32(1).unwrap();
        let e = BigNum::from_u32(65537).unwrap();
        let (p1, q1) = (&p - &one, &q - &one);
        let mut n = BigNum::new().unwrap();
        n.checked_mul(&p, &q, &mut ctx).unwrap();
        let mut phi = BigNum::new().unwrap();
        phi.checked_mul(&p1, &q1, &mut ctx).unwrap();
        let mut d = BigNum::new().unwrap();
        d.mod_inverse(&e, &phi, &mut ctx).unwrap();
        let (mut dp, mut dq, mut qinv) = (
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
            BigNum::new().unwrap(),
        );
        dp.nnmod(&d, &p1, &mut ctx).unwrap();
        dq.nnmod(&d, &q1, &mut ctx).unwrap();
        qinv.mod_inverse(&q, &p, &mut ctx).unwrap();
        let key = Rsa::from_private_components(n, e, d, p, q, dp, dq, qinv).unwrap();
        let pem = key.private_key_to_pem().unwrap();
        assert!(matches!(
            sign_rsa(&pem, b"x").map_err(|e| e.problem),
            Err(KeyProblem::WrongType { needs, .. }) if needs.contains("at least 512 bits")
        ));
    }

    #[test]
    fn non_rsa_and_garbage_keys_are_refused() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pem = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(matches!(
            sign_rsa(&pem, b"x").map_err(|e| e.problem),
            Err(KeyProblem::WrongType { found: "EC", .. })
        ));
        assert!(matches!(
            sign_rsa(b"garbage", b"x").map_err(|e| e.problem),
            Err(KeyProblem::NotAKey)
        ));
    }
}
