//! Native kernel module signing, byte-identical to Linux's `scripts/sign-file`.
//!
//! sign-file builds a detached CMS SignedData with no certificates and no
//! signed attributes (`CMS_NOCERTS | CMS_BINARY | CMS_NOSMIMECAP | CMS_NOATTR`),
//! identifying the signer by issuer and serial number, and appends it to the
//! module followed by a 12-byte `struct module_signature` (id type
//! `PKEY_ID_PKCS7`, big-endian signature length) and the magic
//! `~Module signature appended~\n`. With RSA PKCS#1 v1.5 that output is
//! deterministic, so we make the same calls through OpenSSL and get the same
//! bytes, in-process, on every core.
//!
//! Building that CMS structure costs more than the RSA signature in it
//! (allocating the ASN.1 tree, copying the issuer, fetching the provider's
//! algorithms for each signature). Without signed attributes the structure
//! is the same for every module except the signature, which is its last
//! element and, for RSA, always as long as the modulus. So a signer makes
//! the CMS once per request (over empty content) as a template, checks that
//! its tail is exactly the signature a bare PKCS#1 v1.5 signing gives, and
//! then signs each module's digest with a [`SigningContext`]: one per
//! thread, with its own copy of the key so that RSA blinding is the
//! thread's own. Keys for which the check fails (EC: randomised, variable
//! length) take OpenSSL's CMS path for every module.

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use foreign_types::ForeignType;
use keystore::SignType;
use openssl::cms::CmsContentInfo;
use openssl::hash::{Hasher, MessageDigest};
use openssl::pkey::{Id, PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::x509::X509;
use openssl_sys as ffi;
use servicekit::private_key::{KeyProblem, UnusableKey};
use zeroize::Zeroizing;

/// The magic string the kernel looks for at a module's end.
pub const MODULE_SIG_MAGIC: &[u8] = b"~Module signature appended~\n";
/// `PKEY_ID_PKCS7` in the kernel's `struct module_signature`.
const PKEY_ID_PKCS7: u8 = 2;

// CMS flags from <openssl/cms.h>, as sign-file passes them.
const CMS_NOCERTS: u32 = 0x2;
const CMS_DETACHED: u32 = 0x40;
const CMS_BINARY: u32 = 0x80;
const CMS_NOATTR: u32 = 0x100;
const CMS_NOSMIMECAP: u32 = 0x200;
const CMS_STREAM: u32 = 0x1000;
const CMS_PARTIAL: u32 = 0x4000;

extern "C" {
    // Not bound by openssl-sys; part of libcrypto's public CMS API.
    fn CMS_add1_signer(
        cms: *mut ffi::CMS_ContentInfo,
        signer: *mut ffi::X509,
        pk: *mut ffi::EVP_PKEY,
        md: *const ffi::EVP_MD,
        flags: u32,
    ) -> *mut libc::c_void;
    // Not bound by openssl-sys either: a BIO reading a file by name, which
    // OpenSSL reads as it hashes.
    fn BIO_new_file(filename: *const libc::c_char, mode: *const libc::c_char) -> *mut ffi::BIO;
    fn CMS_final(
        cms: *mut ffi::CMS_ContentInfo,
        data: *mut ffi::BIO,
        dcont: *mut ffi::BIO,
        flags: u32,
    ) -> libc::c_int;
}

/// Hash algorithms the kernel accepts for module signatures (upstream's set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum HashAlg {
    /// SHA-256
    Sha256,
    /// SHA-384
    Sha384,
    /// SHA-512 (upstream's default)
    Sha512,
}

impl HashAlg {
    fn digest(self) -> MessageDigest {
        match self {
            HashAlg::Sha256 => MessageDigest::sha256(),
            HashAlg::Sha384 => MessageDigest::sha384(),
            HashAlg::Sha512 => MessageDigest::sha512(),
        }
    }

    fn digest_md(self) -> &'static openssl::md::MdRef {
        use openssl::md::Md;
        match self {
            HashAlg::Sha256 => Md::sha256(),
            HashAlg::Sha384 => Md::sha384(),
            HashAlg::Sha512 => Md::sha512(),
        }
    }

    /// The name sign-file and modinfo use.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }
}

/// The key and certificate files, under `<machine>/kmodsign/`.
pub const KEY_FILE: &str = "kernel-signkey.priv";
/// See [`KEY_FILE`].
pub const CERT_FILE: &str = "kernel-signkey.x509";

fn unusable(name: &str, problem: KeyProblem) -> UnusableKey {
    UnusableKey::new(SignType::Kmod, name, problem)
}

/// A module signer holding one key pair and hash algorithm; shareable across
/// threads, each of which signs through its own [`SigningContext`].
pub struct ModuleSigner {
    key: PKey<Private>,
    cert: X509,
    hash: HashAlg,
    /// The CMS DER of this key and hash without its trailing signature
    /// (`None`: sign through OpenSSL's CMS every time).
    template: Option<Vec<u8>>,
}

impl ModuleSigner {
    /// Builds a signer from key and certificate bytes (PEM or DER, as
    /// sign-file accepts) and checks they belong together.
    pub fn new(key: &[u8], cert: &[u8], hash: HashAlg) -> Result<Self, UnusableKey> {
        let key = servicekit::private_key::parse(key)
            .map_err(|_| unusable(KEY_FILE, KeyProblem::NotAKey))?;
        // sign-file treats data starting with a DER SEQUENCE as DER, else PEM.
        let cert = if cert.starts_with(&[0x30, 0x82]) {
            X509::from_der(cert)
        } else {
            X509::from_pem(cert)
        }
        .map_err(|_| unusable(CERT_FILE, KeyProblem::NotACertificate))?;
        let public = cert
            .public_key()
            .map_err(|_| unusable(CERT_FILE, KeyProblem::NotACertificate))?;
        if !public.public_eq(&key) {
            return Err(unusable(
                KEY_FILE,
                KeyProblem::Mismatch {
                    certificate: CERT_FILE,
                },
            ));
        }
        let mut signer = Self {
            key,
            cert,
            hash,
            template: None,
        };
        signer.template = signer
            .rsa_template()
            .map_err(|_| unusable(KEY_FILE, KeyProblem::NotAKey))?;
        Ok(signer)
    }

    /// The CMS structure for an RSA key without its signature, if splicing a
    /// bare PKCS#1 v1.5 signature onto it gives exactly what OpenSSL's CMS
    /// gives (checked here, once per request, on empty content).
    fn rsa_template(&self) -> Result<Option<Vec<u8>>, SignError> {
        if self.key.id() != Id::RSA {
            return Ok(None);
        }
        let cms = self.cms_signature(b"")?;
        let mut context = SigningContext::fast(self, Vec::new())?;
        let signature = context.signature_over(b"")?;
        Ok(cms
            .strip_suffix(&signature[..])
            .filter(|prefix| !prefix.is_empty())
            .map(<[u8]>::to_vec))
    }

    /// Whether modules are signed by splicing into a template (RSA) rather
    /// than through OpenSSL's CMS each time.
    pub fn uses_template(&self) -> bool {
        self.template.is_some()
    }

    /// A context for signing on the calling thread.
    pub fn context(&self) -> Result<SigningContext<'_>, SignError> {
        match &self.template {
            Some(template) => SigningContext::fast(self, template.clone()),
            None => Ok(SigningContext {
                signer: self,
                fast: None,
            }),
        }
    }

    /// The detached CMS signature (DER) over `module`, as sign-file makes it.
    pub fn cms_signature(&self, module: &[u8]) -> Result<Vec<u8>, SignError> {
        // BIO_new_mem_buf takes an int length; a longer buffer would be cut
        // (or, cast, read up to its first NUL): such modules go through
        // `sign_spooled`, which streams a file of any size.
        let len = libc::c_int::try_from(module.len())
            .map_err(|_| SignError::TooLargeForMemory(module.len() as u64))?;
        // SAFETY: the buffer outlives the BIO, which is freed before return.
        unsafe {
            let bio = ffi::BIO_new_mem_buf(module.as_ptr() as *const _, len);
            if bio.is_null() {
                return Err(openssl::error::ErrorStack::get().into());
            }
            let signature = self.cms_over(bio);
            ffi::BIO_free_all(bio);
            signature
        }
    }

    /// The CMS signature over everything `data` yields, read by OpenSSL as
    /// it hashes (so a file-backed BIO streams).
    ///
    /// # Safety
    /// `data` must be a valid BIO; the caller frees it.
    unsafe fn cms_over(&self, data: *mut ffi::BIO) -> Result<Vec<u8>, SignError> {
        let cms = ffi::CMS_sign(
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            CMS_NOCERTS | CMS_PARTIAL | CMS_BINARY | CMS_DETACHED | CMS_STREAM,
        );
        if cms.is_null() {
            return Err(openssl::error::ErrorStack::get().into());
        }
        // Owned from here: freed on every path.
        let cms = CmsContentInfo::from_ptr(cms);
        let signer = CMS_add1_signer(
            cms.as_ptr(),
            self.cert.as_ptr(),
            self.key.as_ptr(),
            self.hash.digest().as_ptr(),
            CMS_NOCERTS | CMS_BINARY | CMS_NOSMIMECAP | CMS_NOATTR,
        );
        if signer.is_null() {
            return Err(openssl::error::ErrorStack::get().into());
        }
        if CMS_final(
            cms.as_ptr(),
            data,
            ptr::null_mut(),
            CMS_NOCERTS | CMS_BINARY,
        ) != 1
        {
            return Err(openssl::error::ErrorStack::get().into());
        }
        Ok(cms.to_der()?)
    }

    /// Signs a module: returns it with any existing signature removed and ours
    /// appended (signature, trailer, magic). One-off use; a thread signing
    /// many modules keeps a [`SigningContext`].
    pub fn sign_module(&self, module: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut module = module.to_vec();
        let suffix = self.context()?.sign_in_place(&mut module)?;
        module.extend_from_slice(&suffix);
        Ok(module)
    }
}

/// Signs modules on one thread: for RSA with its own parsed key, one
/// reusable OpenSSL signing context and hasher, and the signer's template.
pub struct SigningContext<'a> {
    signer: &'a ModuleSigner,
    fast: Option<FastPath>,
}

/// What the template path needs on each thread.
struct FastPath {
    /// Holds its own reference to the thread's copy of the key.
    pkey_ctx: PkeyCtx<Private>,
    hasher: Hasher,
    template: Vec<u8>,
}

impl<'a> SigningContext<'a> {
    fn fast(signer: &'a ModuleSigner, template: Vec<u8>) -> Result<Self, SignError> {
        // The thread's own copy of the key, so that RSA blinding is per
        // thread rather than shared under a lock. The DER in between is
        // wiped at once.
        let der = Zeroizing::new(signer.key.rsa()?.private_key_to_der()?);
        let key = PKey::from_rsa(openssl::rsa::Rsa::private_key_from_der(&der)?)?;
        let mut pkey_ctx = PkeyCtx::new(&key)?;
        pkey_ctx.sign_init()?;
        pkey_ctx.set_rsa_padding(Padding::PKCS1)?;
        pkey_ctx.set_signature_md(signer.hash.digest_md())?;
        Ok(Self {
            signer,
            fast: Some(FastPath {
                pkey_ctx,
                hasher: Hasher::new(signer.hash.digest())?,
                template,
            }),
        })
    }

    /// The bare PKCS#1 v1.5 signature over `data` (fast path only).
    fn signature_over(&mut self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        let fast = self.fast.as_mut().expect("a fast-path context");
        fast.hasher.update(data)?;
        let digest = fast.hasher.finish()?;
        let mut signature = Vec::new();
        fast.pkey_ctx.sign_to_vec(&digest, &mut signature)?;
        Ok(signature)
    }

    /// Cuts any existing signature off `module` and returns what to append
    /// to it (signature, trailer, magic): the module is not copied.
    pub fn sign_in_place(&mut self, module: &mut Vec<u8>) -> Result<Vec<u8>, SignError> {
        let body_len = strip_signature(module).len();
        module.truncate(body_len);
        let cms = match self.fast {
            Some(_) => self.spliced(|hasher| Ok(hasher.update(module)?))?,
            None => self.signer.cms_signature(module)?,
        };
        Ok(signature_suffix(&cms))
    }

    /// The template with the signature over what `feed` hashes appended.
    fn spliced(
        &mut self,
        feed: impl FnOnce(&mut Hasher) -> Result<(), SignError>,
    ) -> Result<Vec<u8>, SignError> {
        let fast = self.fast.as_mut().expect("a fast-path context");
        if let Err(e) = feed(&mut fast.hasher) {
            // Start the next module from a clean hasher, not this one's
            // partial input.
            let _ = fast.hasher.finish();
            return Err(e);
        }
        let digest = fast.hasher.finish()?;
        let mut cms = fast.template.clone();
        fast.pkey_ctx.sign_to_vec(&digest, &mut cms)?;
        Ok(cms)
    }

    /// Signs the module in the file at `path` without reading it into
    /// memory: an existing signature is cut off the file, the rest is hashed
    /// as it is read, and what to append (signature, trailer, magic) is
    /// returned. The file then holds the module's unsigned body.
    pub fn sign_spooled(&mut self, path: &Path) -> Result<Vec<u8>, SignError> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let total = file.metadata()?.len();
        let tail_len = total.min(TAIL_LEN as u64);
        let mut tail = vec![0u8; tail_len as usize];
        file.seek(SeekFrom::Start(total - tail_len))?;
        file.read_exact(&mut tail)?;
        let body_len = unsigned_len(&tail, total);
        file.set_len(body_len)?;
        if self.fast.is_some() {
            file.rewind()?;
            let cms = self.spliced(|hasher| {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    match file.read(&mut buf)? {
                        0 => return Ok(()),
                        n => hasher.update(&buf[..n])?,
                    }
                }
            })?;
            return Ok(signature_suffix(&cms));
        }
        drop(file);
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| SignError::Io(io::Error::other("a NUL in the spool path")))?;
        // SAFETY: valid C strings; the BIO is freed before return.
        unsafe {
            let bio = BIO_new_file(c_path.as_ptr(), c"rb".as_ptr());
            if bio.is_null() {
                return Err(openssl::error::ErrorStack::get().into());
            }
            let signature = self.signer.cms_over(bio);
            ffi::BIO_free_all(bio);
            Ok(signature_suffix(&signature?))
        }
    }
}

/// Why a module could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// OpenSSL refused.
    #[error("signing failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
    /// Reading or cutting the spooled module failed.
    #[error("the spooled module could not be read: {0}")]
    Io(#[from] io::Error),
    /// An in-memory module too large for OpenSSL's memory BIO.
    #[error("a {0}-byte module cannot be signed in memory")]
    TooLargeForMemory(u64),
}

/// The bytes sign-file appends after a module: the CMS signature, the
/// 12-byte `struct module_signature` and the magic.
fn signature_suffix(sig: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(sig.len() + 12 + MODULE_SIG_MAGIC.len());
    out.extend_from_slice(sig);
    // struct module_signature: algo, hash, id_type, signer_len, key_id_len,
    // 3 bytes padding, then sig_len as big-endian u32.
    out.extend_from_slice(&[0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&(sig.len() as u32).to_be_bytes());
    out.extend_from_slice(MODULE_SIG_MAGIC);
    out
}

/// How much of a module's end decides whether it is signed: the trailer and
/// the magic.
const TAIL_LEN: usize = 12 + MODULE_SIG_MAGIC.len();

/// The length of a `total`-byte module without its appended signature,
/// judged from its last bytes `tail` (the last [`TAIL_LEN`], or all of a
/// shorter module); `total` when it has no well-formed signature.
fn unsigned_len(tail: &[u8], total: u64) -> u64 {
    let Some(rest) = tail.strip_suffix(MODULE_SIG_MAGIC) else {
        return total;
    };
    if rest.len() < 12 {
        return total;
    }
    let trailer = &rest[rest.len() - 12..];
    if trailer[2] != PKEY_ID_PKCS7 {
        return total;
    }
    let sig_len = u64::from(u32::from_be_bytes(trailer[8..12].try_into().unwrap()));
    let before_trailer = total - TAIL_LEN as u64;
    if sig_len > before_trailer {
        return total;
    }
    before_trailer - sig_len
}

/// The module without its appended signature, if it has a well-formed one.
///
/// Re-signing a signed module replaces its signature instead of stacking a
/// second one after it (sign-file would stack; the kernel reads only the last).
pub fn strip_signature(module: &[u8]) -> &[u8] {
    let tail = &module[module.len().saturating_sub(TAIL_LEN)..];
    &module[..unsigned_len(tail, module.len() as u64) as usize]
}
