//! RSA PKCS#1 v1.5 signatures whose blinding outlives the request.
//!
//! Keys are fetched and parsed per request and never kept (unless the
//! operator turns the parsed-key cache on), so every SWUpdate request signs
//! with a fresh OpenSSL key object, and OpenSSL sets up that object's
//! blinding on its first signature: a random `r`, `A = r^e mod n` and the
//! constant-time inverse `Ai = r^-1 mod n`. The inverse alone costs about as
//! much as the signature (~0.25 ms for RSA-2048 here; BENCHMARKS.md).
//!
//! A blinding pair depends only on the public modulus and a random number,
//! not on the private key, so it can outlive the key object: pairs are kept
//! per public key, squared after every signature (`r` becomes `r²`) and
//! drawn afresh after [`USES_PER_PAIR`] signatures, which is what OpenSSL's
//! `BN_BLINDING` does inside one key object. The key object signs the
//! blinded value with OpenSSL's own blinding off; its constant-time CRT
//! exponentiation and its check of the CRT result are unchanged, and the
//! signature is the same bytes as OpenSSL's (PKCS#1 v1.5 is deterministic).

use std::collections::BTreeMap;
use std::sync::Mutex;

use foreign_types::{ForeignType, ForeignTypeRef};
use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use openssl::error::ErrorStack;
use openssl::pkey::Private;
use openssl::rsa::{Padding, Rsa};

extern "C" {
    // Deprecated in OpenSSL 3 but exported by libcrypto 3.x; openssl-sys
    // does not declare it.
    fn RSA_blinding_off(rsa: *mut openssl_sys::RSA);
    // The private DRBG's numbers, as OpenSSL's own blinding draws them
    // (`BigNumRef::rand_range` uses the public one).
    fn BN_priv_rand_range(
        rnd: *mut openssl_sys::BIGNUM,
        range: *const openssl_sys::BIGNUM,
    ) -> std::ffi::c_int;
}

/// A number in `[0, n)` from OpenSSL's private random generator.
fn private_random_below(n: &BigNumRef) -> Result<BigNum, ErrorStack> {
    let r = BigNum::new()?;
    // SAFETY: two valid BIGNUMs; `r` is written, `n` only read.
    if unsafe { BN_priv_rand_range(r.as_ptr(), n.as_ptr()) } == 1 {
        Ok(r)
    } else {
        Err(ErrorStack::get())
    }
}

/// Signatures per pair before a new one is drawn (OpenSSL's
/// `BN_BLINDING_COUNTER`).
pub const USES_PER_PAIR: u32 = 32;
/// Public keys whose pairs are kept; one more key clears the table (it is a
/// cost, not a correctness, question: a key without pairs draws a new one).
const MAX_KEYS: usize = 64;
/// Pairs kept per key: as many as requests signing with it at once.
const MAX_PAIRS_PER_KEY: usize = 8;

/// `r^e mod n` and `r^-1 mod n`.
struct BlindingPair {
    a: BigNum,
    a_inv: BigNum,
    uses: u32,
}

impl BlindingPair {
    fn draw(n: &BigNumRef, e: &BigNumRef, ctx: &mut BigNumContext) -> Result<Self, ErrorStack> {
        let mut tries = 0;
        loop {
            let r = private_random_below(n)?;
            // The inverse is taken of r·b, not of r, so that its timing
            // (BN_mod_inverse is not constant-time) says nothing about r
            // (BoringSSL's BN_mod_inverse_blinded does the same).
            let b = private_random_below(n)?;
            let mut rb = BigNum::new()?;
            rb.mod_mul(&r, &b, n, ctx)?;
            let mut rb_inv = BigNum::new()?;
            match rb_inv.mod_inverse(&rb, n, ctx) {
                Ok(()) => {
                    let mut a_inv = BigNum::new()?;
                    a_inv.mod_mul(&rb_inv, &b, n, ctx)?;
                    let mut a = BigNum::new()?;
                    a.mod_exp(&r, e, n, ctx)?;
                    return Ok(Self { a, a_inv, uses: 0 });
                }
                // r·b is 0 or shares a prime with n: vanishingly rare.
                Err(e) if tries >= 8 => return Err(e),
                Err(_) => tries += 1,
            }
        }
    }

    /// Moves from `r` to `r²`.
    fn advance(&mut self, n: &BigNumRef, ctx: &mut BigNumContext) -> Result<(), ErrorStack> {
        let mut a = BigNum::new()?;
        a.mod_sqr(&self.a, n, ctx)?;
        let mut a_inv = BigNum::new()?;
        a_inv.mod_sqr(&self.a_inv, n, ctx)?;
        self.a = a;
        self.a_inv = a_inv;
        self.uses += 1;
        Ok(())
    }
}

/// Pairs waiting for their next signature, by public key (`n` and `e`).
static PAIRS: Mutex<BTreeMap<Vec<u8>, Vec<BlindingPair>>> = Mutex::new(BTreeMap::new());

fn take_pair(key: &[u8]) -> Option<BlindingPair> {
    PAIRS.lock().ok()?.get_mut(key)?.pop()
}

fn give_back(key: Vec<u8>, pair: BlindingPair) {
    let Ok(mut pairs) = PAIRS.lock() else { return };
    if pairs.len() >= MAX_KEYS && !pairs.contains_key(&key) {
        pairs.clear();
    }
    let kept = pairs.entry(key).or_default();
    if kept.len() < MAX_PAIRS_PER_KEY {
        kept.push(pair);
    }
}

/// An RSA private key that makes PKCS#1 v1.5 signatures with kept blinding.
pub struct BlindedRsa {
    rsa: Rsa<Private>,
    public: Vec<u8>,
}

impl BlindedRsa {
    /// Takes the key over; OpenSSL's per-object blinding is turned off, as
    /// every signature is blinded here.
    pub fn new(rsa: Rsa<Private>) -> Self {
        // SAFETY: a valid key object that this value owns; the call only
        // sets a flag and frees the object's (unused) blinding.
        unsafe { RSA_blinding_off(rsa.as_ptr()) };
        let mut public = rsa.n().to_vec();
        public.extend_from_slice(&rsa.e().to_vec());
        Self { rsa, public }
    }

    /// The PKCS#1 v1.5 signature (RFC 8017, 8.2.1) of `digest_info`, a DER
    /// DigestInfo: the same bytes as `RSA_private_encrypt` with
    /// `RSA_PKCS1_PADDING`, or `openssl dgst -sign`.
    pub fn sign_digest_info(&self, digest_info: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        let size = self.rsa.size() as usize;
        if digest_info.len() + 11 > size {
            // Too small a key: OpenSSL's padding says so in its own words.
            let mut out = vec![0u8; size];
            let len = self
                .rsa
                .private_encrypt(digest_info, &mut out, Padding::PKCS1)?;
            out.truncate(len);
            return Ok(out);
        }
        // EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo.
        let mut encoded = vec![0xffu8; size];
        encoded[0] = 0;
        encoded[1] = 1;
        encoded[size - digest_info.len() - 1] = 0;
        encoded[size - digest_info.len()..].copy_from_slice(digest_info);

        let n = self.rsa.n();
        let mut ctx = BigNumContext::new()?;
        let mut pair = match take_pair(&self.public) {
            Some(pair) => pair,
            None => BlindingPair::draw(n, self.rsa.e(), &mut ctx)?,
        };
        let message = BigNum::from_slice(&encoded)?;
        let mut blinded = BigNum::new()?;
        blinded.mod_mul(&message, &pair.a, n, &mut ctx)?;
        let mut raw = vec![0u8; size];
        self.rsa.private_encrypt(
            &blinded.to_vec_padded(size as i32)?,
            &mut raw,
            Padding::NONE,
        )?;
        let raw = BigNum::from_slice(&raw)?;
        let mut signature = BigNum::new()?;
        signature.mod_mul(&raw, &pair.a_inv, n, &mut ctx)?;
        pair.advance(n, &mut ctx)?;
        if pair.uses < USES_PER_PAIR {
            give_back(self.public.clone(), pair);
        }
        signature.to_vec_padded(size as i32)
    }
}

#[cfg(test)]
fn kept_keys() -> usize {
    PAIRS.lock().unwrap().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(rsa: &Rsa<Private>, digest_info: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; rsa.size() as usize];
        let len = rsa
            .private_encrypt(digest_info, &mut out, Padding::PKCS1)
            .unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn the_same_bytes_as_openssl_across_pair_renewals_and_fresh_key_objects() {
        let rsa = Rsa::generate(2048).unwrap();
        let der = rsa.private_key_to_der().unwrap();
        let kept = BlindedRsa::new(Rsa::private_key_from_der(&der).unwrap());
        // Past USES_PER_PAIR, with the key object kept (the cache) and with
        // a new one per signature (the default).
        for i in 0..(2 * USES_PER_PAIR + 3) {
            let digest_info = [i as u8; 51];
            let expected = reference(&rsa, &digest_info);
            assert_eq!(
                kept.sign_digest_info(&digest_info).unwrap(),
                expected,
                "kept, #{i}"
            );
            let fresh = BlindedRsa::new(Rsa::private_key_from_der(&der).unwrap());
            assert_eq!(
                fresh.sign_digest_info(&digest_info).unwrap(),
                expected,
                "fresh, #{i}"
            );
        }
    }

    #[test]
    fn signatures_made_at_once_on_many_threads_all_verify() {
        let rsa = Rsa::generate(2048).unwrap();
        let der = rsa.private_key_to_der().unwrap();
        let public =
            Rsa::public_key_from_der_pkcs1(&rsa.public_key_to_der_pkcs1().unwrap()).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let (der, public) = (&der, &public);
                s.spawn(move || {
                    for i in 0..40u8 {
                        let digest_info = [t ^ i; 40];
                        let key = BlindedRsa::new(Rsa::private_key_from_der(der).unwrap());
                        let signature = key.sign_digest_info(&digest_info).unwrap();
                        let mut recovered = vec![0u8; 256];
                        let len = public
                            .public_decrypt(&signature, &mut recovered, Padding::PKCS1)
                            .unwrap();
                        assert_eq!(&recovered[..len], &digest_info);
                    }
                });
            }
        });
    }

    #[test]
    fn pairs_are_kept_for_a_bounded_number_of_keys() {
        for _ in 0..(MAX_KEYS + 5) {
            let key = BlindedRsa::new(Rsa::generate(512).unwrap());
            key.sign_digest_info(&[1u8; 20]).unwrap();
            assert!(kept_keys() <= MAX_KEYS);
        }
        assert!(kept_keys() >= 1);
    }

    #[test]
    fn a_key_too_small_for_the_digest_is_an_error_not_a_panic() {
        let key = BlindedRsa::new(Rsa::generate(512).unwrap());
        assert!(key.sign_digest_info(&[0u8; 60]).is_err());
    }
}
