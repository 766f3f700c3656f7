//! RSA PKCS#1 v1.5 signatures whose blinding outlives the request.
//!
//! Keys are fetched and parsed per request and never kept (unless the
//! operator turns the parsed-key cache on), so every SWUpdate request (and
//! every Mender artifact signed natively) signs with a fresh OpenSSL key
//! object, and OpenSSL sets up that object's
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
//!
//! What differs from OpenSSL's blinding, and why it is acceptable:
//! - a pair now links up to 32 signatures across requests (r, r², r⁴, ...),
//!   as one long-lived OpenSSL key object does; pairs say nothing about the
//!   private key, only about the blinding;
//! - `r^e` is computed with a constant-time exponentiation, but the inverse
//!   is taken of `r·b` for a second random `b` (BoringSSL's
//!   `BN_mod_inverse_blinded`), and blinding, unblinding and squaring use
//!   `BN_mod_mul`/`BN_mod_sqr`, not OpenSSL's fixed-top Montgomery forms:
//!   their timing shows limb counts, not values;
//! - every signature is checked against the public key before it is
//!   returned (OpenSSL's own check covers only the blinded exponentiation),
//!   so a damaged pair cannot hand out wrong signatures: it is dropped.

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

/// Signatures per pair before a new one is drawn (OpenSSL's
/// `BN_BLINDING_COUNTER`).
pub const USES_PER_PAIR: u32 = 32;
/// Public keys whose pairs are kept; one more key clears the table (it is a
/// cost, not a correctness, question: a key without pairs draws a new one).
const MAX_KEYS: usize = 64;
/// Pairs kept per key: as many as requests signing with it at once.
const MAX_PAIRS_PER_KEY: usize = 8;

/// DER of the DigestInfo for SHA-256 up to the digest (RFC 8017, 9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Whether `rsa` is long enough for a PKCS#1 v1.5 signature over SHA-256
/// (a 62-byte block: 496 bits).
pub fn can_sign_sha256(rsa: &Rsa<Private>) -> bool {
    rsa.size() as usize >= SHA256_DIGEST_INFO.len() + 32 + 11
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key's modulus is too short for the DigestInfo and its padding.
    #[error("a {bits}-bit RSA key is too small for a PKCS#1 v1.5 signature over this digest")]
    KeyTooSmall {
        /// The key's size.
        bits: u32,
    },
    /// The signature made did not verify with the key's own public half.
    #[error("the signature did not verify with the key's public half")]
    Unverified,
    /// OpenSSL failed (out of memory, or its random generator).
    #[error(transparent)]
    OpenSsl(#[from] ErrorStack),
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

/// `r^e mod n` and `r^-1 mod n`.
struct BlindingPair {
    a: BigNum,
    a_inv: BigNum,
    uses: u32,
}

impl BlindingPair {
    fn draw(n: &BigNumRef, e: &BigNumRef, ctx: &mut BigNumContext) -> Result<Self, ErrorStack> {
        // A copy of n that makes BN_mod_exp take its constant-time path for
        // the secret r.
        let mut n_const_time = n.to_owned()?;
        n_const_time.set_const_time();
        let mut tries = 0;
        loop {
            let r = private_random_below(n)?;
            // The inverse is taken of r·b, not of r, so that its timing
            // (BN_mod_inverse is not constant-time) says nothing about r.
            let b = private_random_below(n)?;
            let mut rb = BigNum::new()?;
            rb.mod_mul(&r, &b, n, ctx)?;
            let mut rb_inv = BigNum::new()?;
            match rb_inv.mod_inverse(&rb, n, ctx) {
                Ok(()) => {
                    let mut a_inv = BigNum::new()?;
                    a_inv.mod_mul(&rb_inv, &b, n, ctx)?;
                    let mut a = BigNum::new()?;
                    a.mod_exp(&r, e, &n_const_time, ctx)?;
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

/// Pairs waiting for their next signature, by public key. A pair is taken
/// out while it is used, so no two signatures ever share one.
struct PairTable(Mutex<BTreeMap<Vec<u8>, Vec<BlindingPair>>>);

impl PairTable {
    const fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }

    fn take(&self, key: &[u8]) -> Option<BlindingPair> {
        self.0.lock().ok()?.get_mut(key)?.pop()
    }

    fn give_back(&self, key: &[u8], pair: BlindingPair) {
        // A poisoned lock only means no more keeping: every signature then
        // draws its own pair, as OpenSSL would.
        let Ok(mut pairs) = self.0.lock() else { return };
        if pairs.len() >= MAX_KEYS && !pairs.contains_key(key) {
            pairs.clear();
        }
        let kept = pairs.entry(key.to_vec()).or_default();
        if kept.len() < MAX_PAIRS_PER_KEY {
            kept.push(pair);
        }
    }
}

/// The process's pairs.
static PAIRS: PairTable = PairTable::new();

/// An RSA private key that makes PKCS#1 v1.5 signatures with kept blinding.
pub struct BlindedRsa {
    rsa: Rsa<Private>,
    /// The table's key: `len(n) ‖ n ‖ e`, so no two public keys share one.
    public: Vec<u8>,
}

impl BlindedRsa {
    /// Takes the key over; OpenSSL's per-object blinding is turned off, as
    /// every signature is blinded here.
    pub fn new(rsa: Rsa<Private>) -> Self {
        // SAFETY: a valid key object that this value owns; the call only
        // sets a flag and frees the object's (unused) blinding.
        unsafe { RSA_blinding_off(rsa.as_ptr()) };
        let n = rsa.n().to_vec();
        let mut public = (n.len() as u32).to_be_bytes().to_vec();
        public.extend_from_slice(&n);
        public.extend_from_slice(&rsa.e().to_vec());
        Self { rsa, public }
    }

    /// The key itself (to write it out for a vendor tool).
    pub fn key(&self) -> &Rsa<Private> {
        &self.rsa
    }

    /// The PKCS#1 v1.5 signature over the SHA-256 of `data`: the same bytes
    /// as `openssl dgst -sha256 -sign`, or Go's `rsa.SignPKCS1v15` with
    /// SHA-256.
    pub fn sign_sha256(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut digest_info = SHA256_DIGEST_INFO.to_vec();
        digest_info.extend_from_slice(&openssl::sha::sha256(data));
        self.sign_digest_info(&digest_info)
    }

    /// The PKCS#1 v1.5 signature (RFC 8017, 8.2.1) of `digest_info`, a DER
    /// DigestInfo: the same bytes as `RSA_private_encrypt` with
    /// `RSA_PKCS1_PADDING`, or `openssl dgst -sign`.
    pub fn sign_digest_info(&self, digest_info: &[u8]) -> Result<Vec<u8>, SignError> {
        self.sign_with(&PAIRS, digest_info)
    }

    fn sign_with(&self, pairs: &PairTable, digest_info: &[u8]) -> Result<Vec<u8>, SignError> {
        let size = self.rsa.size() as usize;
        if digest_info.len() + 11 > size {
            return Err(SignError::KeyTooSmall {
                bits: self.rsa.n().num_bits() as u32,
            });
        }
        // EMSA-PKCS1-v1_5: 00 01 FF..FF 00 DigestInfo.
        let mut encoded = vec![0xffu8; size];
        encoded[0] = 0;
        encoded[1] = 1;
        encoded[size - digest_info.len() - 1] = 0;
        encoded[size - digest_info.len()..].copy_from_slice(digest_info);

        let n = self.rsa.n();
        let mut ctx = BigNumContext::new()?;
        let mut pair = match pairs.take(&self.public) {
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
        // Public data only: the check may take variable time.
        let mut recovered = BigNum::new()?;
        recovered.mod_exp(&signature, self.rsa.e(), n, &mut ctx)?;
        if recovered != message {
            // The pair is damaged (or the key is): it is not given back.
            return Err(SignError::Unverified);
        }
        pair.advance(n, &mut ctx)?;
        if pair.uses < USES_PER_PAIR {
            pairs.give_back(&self.public, pair);
        }
        Ok(signature.to_vec_padded(size as i32)?)
    }
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

    fn key_pair(bits: u32) -> (Rsa<Private>, Vec<u8>) {
        let rsa = Rsa::generate(bits).unwrap();
        let der = rsa.private_key_to_der().unwrap();
        (rsa, der)
    }

    fn blinded(der: &[u8]) -> BlindedRsa {
        BlindedRsa::new(Rsa::private_key_from_der(der).unwrap())
    }

    /// How many pairs `table` keeps for `key`, and their uses.
    fn kept_uses(table: &PairTable, key: &BlindedRsa) -> Vec<u32> {
        let pairs = table.0.lock().unwrap();
        pairs
            .get(&key.public)
            .map(|p| p.iter().map(|p| p.uses).collect())
            .unwrap_or_default()
    }

    /// `A·Ai^e ≡ 1 (mod n)`, and neither is 1 (no blinding at all).
    fn assert_valid_pair(pair: &BlindingPair, rsa: &Rsa<Private>) {
        let mut ctx = BigNumContext::new().unwrap();
        let one = BigNum::from_u32(1).unwrap();
        assert!(
            pair.a != one && pair.a_inv != one,
            "a pair of ones blinds nothing"
        );
        let mut ai_e = BigNum::new().unwrap();
        ai_e.mod_exp(&pair.a_inv, rsa.e(), rsa.n(), &mut ctx)
            .unwrap();
        let mut product = BigNum::new().unwrap();
        product.mod_mul(&pair.a, &ai_e, rsa.n(), &mut ctx).unwrap();
        assert_eq!(product, one, "A and Ai do not belong to one r");
    }

    #[test]
    fn the_same_bytes_as_openssl_and_a_pair_lasts_exactly_its_uses() {
        let (rsa, der) = key_pair(2048);
        let table = PairTable::new();
        let kept = blinded(&der);
        // Past two renewals, alternating the key object kept (the cache)
        // with a new one per signature (the default): they share pairs.
        for signature in 1..=(2 * USES_PER_PAIR + 3) {
            let digest_info = [signature as u8; 51];
            let fresh = blinded(&der);
            let signer = if signature % 2 == 0 { &kept } else { &fresh };
            assert_eq!(
                signer.sign_with(&table, &digest_info).unwrap(),
                reference(&rsa, &digest_info),
                "signature #{signature}"
            );
            let expected = match signature % USES_PER_PAIR {
                0 => vec![],
                uses => vec![uses],
            };
            assert_eq!(kept_uses(&table, &kept), expected, "after #{signature}");
        }
    }

    #[test]
    fn a_kept_pair_is_valid_and_squared_after_each_signature() {
        let (rsa, der) = key_pair(2048);
        let table = PairTable::new();
        let key = blinded(&der);
        key.sign_with(&table, &[1u8; 51]).unwrap();
        let first = table.take(&key.public).expect("the pair is kept");
        assert_eq!(first.uses, 1);
        assert_valid_pair(&first, &rsa);
        let first_a = first.a.to_owned().unwrap();
        table.give_back(&key.public, first);
        key.sign_with(&table, &[2u8; 51]).unwrap();
        let second = table.take(&key.public).expect("the pair is kept");
        assert_eq!(second.uses, 2);
        assert_valid_pair(&second, &rsa);
        let mut squared = BigNum::new().unwrap();
        squared
            .mod_sqr(&first_a, rsa.n(), &mut BigNumContext::new().unwrap())
            .unwrap();
        assert_eq!(second.a, squared, "r moves to r² after a signature");
    }

    #[test]
    fn a_pair_serves_one_signature_at_a_time() {
        let (rsa, der) = key_pair(1024);
        let table = PairTable::new();
        let key = blinded(&der);
        let mut ctx = BigNumContext::new().unwrap();
        let pair = BlindingPair::draw(rsa.n(), rsa.e(), &mut ctx).unwrap();
        table.give_back(&key.public, pair);
        assert!(table.take(&key.public).is_some());
        assert!(
            table.take(&key.public).is_none(),
            "taken pairs leave the table"
        );
    }

    #[test]
    fn a_damaged_pair_gives_an_error_not_a_wrong_signature_and_is_dropped() {
        let (rsa, der) = key_pair(2048);
        let table = PairTable::new();
        let key = blinded(&der);
        key.sign_with(&table, &[3u8; 51]).unwrap();
        let mut pair = table.take(&key.public).unwrap();
        pair.a_inv.add_word(1).unwrap();
        table.give_back(&key.public, pair);
        assert!(matches!(
            key.sign_with(&table, &[4u8; 51]),
            Err(SignError::Unverified)
        ));
        assert!(
            kept_uses(&table, &key).is_empty(),
            "the damaged pair is gone"
        );
        assert_eq!(
            key.sign_with(&table, &[4u8; 51]).unwrap(),
            reference(&rsa, &[4u8; 51])
        );
    }

    #[test]
    fn signatures_made_at_once_on_many_threads_all_verify() {
        let (rsa, der) = key_pair(2048);
        let table = PairTable::new();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let (der, rsa, table) = (&der, &rsa, &table);
                s.spawn(move || {
                    for i in 0..40u8 {
                        let digest_info = [t ^ i; 40];
                        let signature = blinded(der).sign_with(table, &digest_info).unwrap();
                        assert_eq!(signature, reference(rsa, &digest_info));
                    }
                });
            }
        });
    }

    #[test]
    fn pairs_are_kept_for_a_bounded_number_of_keys() {
        let table = PairTable::new();
        for _ in 0..(MAX_KEYS + 5) {
            let key = BlindedRsa::new(Rsa::generate(512).unwrap());
            key.sign_with(&table, &[1u8; 20]).unwrap();
            let keys = table.0.lock().unwrap().len();
            assert!((1..=MAX_KEYS).contains(&keys), "{keys} keys kept");
        }
    }

    #[test]
    fn a_key_too_small_for_the_digest_is_an_error() {
        let key = BlindedRsa::new(Rsa::generate(512).unwrap());
        assert!(matches!(
            key.sign_digest_info(&[0u8; 60]),
            Err(SignError::KeyTooSmall { bits: 512 })
        ));
    }
}
