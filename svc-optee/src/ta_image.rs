//! OP-TEE's signed trusted application format, as OP-TEE's own
//! `scripts/sign_encrypt.py` writes a bootstrap TA:
//!
//! ```text
//! struct shdr (20 bytes, little-endian)
//!     u32 magic = 0x4f545348, u32 img_type = 1 (bootstrap TA), u32 img_size,
//!     u32 algo, u16 hash_size = 32, u16 sig_size = key size in bytes
//! hash       SHA-256(shdr ‖ uuid ‖ ta_version ‖ image)
//! signature  RSA signature of `hash` (PSS with MGF1-SHA256 and a 32-byte
//!            salt, or PKCS#1 v1.5 over a SHA-256 DigestInfo)
//! uuid       16 bytes, RFC 4122 byte order
//! ta_version u32, little-endian
//! image      the stripped ELF, unchanged
//! ```
//!
//! The image is read once, streamed into place while it is hashed, and never
//! held in memory, so a TA of any size costs the same few hundred KiB.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use keystore::SignType;
use openssl::hash::{Hasher, MessageDigest};
use openssl::md::Md;
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::RsaPssSaltlen;
use poem_openapi::Enum;
use servicekit::private_key::{key_type_name, KeyProblem, UnusableKey};

/// `SHDR_MAGIC`: "OTSH" read as a little-endian u32.
pub const SHDR_MAGIC: u32 = 0x4f54_5348;
/// `SHDR_BOOTSTRAP_TA`: a plain (unencrypted) signed TA.
pub const SHDR_BOOTSTRAP_TA: u32 = 1;
/// Size of `struct shdr`.
pub const SHDR_SIZE: usize = 20;
/// SHA-256's digest size, the only hash OP-TEE's TA header algorithms use.
const DIGEST_LEN: usize = 32;

/// The signature algorithms OP-TEE verifies TAs with, named as
/// `sign_encrypt.py --algo` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum TaAlgorithm {
    /// RSASSA-PSS, MGF1-SHA256, 32-byte salt (`0x70414930`): OP-TEE's
    /// default and upstream digsigserver's only choice.
    #[oai(rename = "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256")]
    Pss,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`0x70004830`); deterministic.
    #[oai(rename = "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256")]
    Pkcs1v15,
}

impl TaAlgorithm {
    /// The GlobalPlatform algorithm identifier written in the header.
    pub fn id(self) -> u32 {
        match self {
            TaAlgorithm::Pss => 0x7041_4930,
            TaAlgorithm::Pkcs1v15 => 0x7000_4830,
        }
    }

    /// The name clients send and logs show.
    pub fn name(self) -> &'static str {
        match self {
            TaAlgorithm::Pss => "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256",
            TaAlgorithm::Pkcs1v15 => "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256",
        }
    }
}

/// The key file every request signs with, under `<machine>/opteesign/`.
pub const KEY_FILE: &str = "optee-signing-key.pem";

/// Why one TA could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum TaSignError {
    /// The image does not fit the header's 32-bit size field.
    #[error("is {0} bytes; a TA image must be under 4 GiB")]
    TooLarge(u64),
    /// Reading the image or writing the TA failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// OpenSSL refused to hash or sign.
    #[error("signing failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// An RSA key ready to sign TAs with one algorithm.
pub struct TaSigner {
    key: PKey<Private>,
    algo: TaAlgorithm,
    sig_len: usize,
}

impl TaSigner {
    /// Parses `key` (PEM, or DER) and checks it is RSA.
    pub fn new(key: &[u8], algo: TaAlgorithm) -> Result<Self, UnusableKey> {
        let unusable = |problem| UnusableKey::new(SignType::Optee, KEY_FILE, problem);
        let key = servicekit::private_key::parse(key).map_err(|_| unusable(KeyProblem::NotAKey))?;
        if key.id() != Id::RSA {
            return Err(unusable(KeyProblem::WrongType {
                found: key_type_name(key.id()),
                needs: "OP-TEE verifies TA signatures with RSA keys only",
            }));
        }
        let sig_len = key.size();
        Ok(Self { key, algo, sig_len })
    }

    /// Signs the stripped ELF at `image` as TA `uuid` at `version`, writing the
    /// signed TA to `out` (which must not exist: it is created exclusively).
    ///
    /// One pass over the image: it is copied into place after the (fixed-size)
    /// signed header while being hashed, then the header, digest and
    /// signature are written in front of it.
    pub fn sign_file(
        &self,
        image: &Path,
        uuid: &[u8; 16],
        version: u32,
        out: &Path,
    ) -> Result<(), TaSignError> {
        let mut input = File::open(image)?;
        let size = input.metadata()?.len();
        let img_size = u32::try_from(size).map_err(|_| TaSignError::TooLarge(size))?;
        let header = self.header(img_size);
        let version = version.to_le_bytes();

        let mut hasher = Hasher::new(MessageDigest::sha256())?;
        hasher.update(&header)?;
        hasher.update(uuid)?;
        hasher.update(&version)?;

        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)?;
        let image_at = SHDR_SIZE + DIGEST_LEN + self.sig_len + uuid.len() + version.len();
        file.seek(SeekFrom::Start(image_at as u64))?;
        let mut w = BufWriter::with_capacity(256 * 1024, file);
        copy_exact(&mut input, size, |chunk| {
            hasher.update(chunk).map_err(io::Error::other)?;
            w.write_all(chunk)
        })?;
        let mut file = w.into_inner().map_err(|e| e.into_error())?;

        let digest = hasher.finish()?;
        let signature = self.sign_digest(&digest)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&[&header[..], &digest, &signature, uuid, &version].concat())?;
        Ok(())
    }

    /// `struct shdr` for an image of `img_size` bytes.
    fn header(&self, img_size: u32) -> [u8; SHDR_SIZE] {
        let mut h = [0u8; SHDR_SIZE];
        h[0..4].copy_from_slice(&SHDR_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&SHDR_BOOTSTRAP_TA.to_le_bytes());
        h[8..12].copy_from_slice(&img_size.to_le_bytes());
        h[12..16].copy_from_slice(&self.algo.id().to_le_bytes());
        h[16..18].copy_from_slice(&(DIGEST_LEN as u16).to_le_bytes());
        h[18..20].copy_from_slice(&(self.sig_len as u16).to_le_bytes());
        h
    }

    /// Signs a SHA-256 digest: what `openssl pkeyutl -sign -pkeyopt
    /// digest:sha256` does, with PSS options for the PSS algorithm.
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, openssl::error::ErrorStack> {
        let mut ctx = PkeyCtx::new(&self.key)?;
        ctx.sign_init()?;
        ctx.set_signature_md(Md::sha256())?;
        match self.algo {
            TaAlgorithm::Pss => {
                ctx.set_rsa_padding(Padding::PKCS1_PSS)?;
                ctx.set_rsa_mgf1_md(Md::sha256())?;
                ctx.set_rsa_pss_saltlen(RsaPssSaltlen::custom(DIGEST_LEN as i32))?;
            }
            TaAlgorithm::Pkcs1v15 => ctx.set_rsa_padding(Padding::PKCS1)?,
        }
        let mut sig = Vec::with_capacity(self.sig_len);
        ctx.sign_to_vec(digest, &mut sig)?;
        Ok(sig)
    }
}

/// Streams up to `len` bytes of `input` to `sink` in 256 KiB chunks; fails if
/// the file turns out shorter than its size said.
fn copy_exact(
    input: &mut File,
    len: u64,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    while done < len {
        let want = buf.len().min((len - done) as usize);
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the image shrank while it was being signed",
            ));
        }
        sink(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

/// A key type's name for the misconfiguration message.
#[cfg(test)]
mod tests {
    use super::*;
    use openssl::rsa::Rsa;

    fn rsa_pem(bits: u32) -> Vec<u8> {
        PKey::from_rsa(Rsa::generate(bits).unwrap())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap()
    }

    #[test]
    fn header_fields_are_little_endian_in_shdr_order() {
        let signer = TaSigner::new(&rsa_pem(3072), TaAlgorithm::Pss).unwrap();
        let h = signer.header(0x0102_0304);
        assert_eq!(&h[0..4], b"HSTO", "magic 0x4f545348 little-endian");
        assert_eq!(&h[4..8], &[1, 0, 0, 0]);
        assert_eq!(&h[8..12], &[4, 3, 2, 1]);
        assert_eq!(&h[12..16], &[0x30, 0x49, 0x41, 0x70]);
        assert_eq!(&h[16..18], &[32, 0]);
        assert_eq!(&h[18..20], &384u16.to_le_bytes());
    }
}
