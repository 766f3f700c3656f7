//! Signing a Mender artifact without `mender-artifact`, for the artifacts it
//! writes itself.
//!
//! `mender-artifact sign` (3.9, Debian's) reads the outer tar member by
//! member, signs the raw bytes of `manifest` (RSA PKCS#1 v1.5 or ECDSA P-256
//! as raw `r‖s`, over SHA-256, base64 without a newline), and writes every
//! member again with a `manifest.sig` member right after `manifest`. For an
//! artifact it made, whose headers are plain USTAR, its output is the input
//! with those 1,024 bytes inserted (its `awriter/signer.go`; checked here
//! byte for byte in the tests). So the copy is made here the same way: the
//! members up to `manifest`, the new member, then the rest of the file,
//! copied by the kernel (`copy_file_range`) and handed to the disk as it is
//! written, so the fsync that makes it durable has little left to do. The
//! tool copied 200 MB through user space and then left it all dirty.
//!
//! Anything else (other header forms, members out of order, not a tar) goes
//! to the tool, which keeps the last word on what it accepts.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use keystore::SignType;
use openssl::ec::EcKey;
use openssl::ecdsa::EcdsaSig;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{Id, Private};
use servicekit::private_key::{key_type_name, KeyProblem, UnusableKey};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::blinded_rsa::{can_sign_sha256, BlindedRsa, SignError};
use crate::in_place::start_writeback;

const BLOCK: u64 = 512;
/// `version` is a line of JSON; anything bigger is not one of the tool's.
const MAX_VERSION: u64 = 64 << 10;
/// A manifest is a checksum line per file.
const MAX_MANIFEST: u64 = 4 << 20;
/// How much is copied before the kernel is asked to write it out.
const WRITEBACK_CHUNK: u64 = 8 << 20;

/// What the first members of an artifact say about signing it here.
#[derive(Debug)]
enum Inspection {
    /// `version` then `manifest`, plain USTAR, not signed: signed here.
    Native(Plan),
    /// `manifest.sig` follows `manifest` already.
    AlreadySigned,
    /// Anything else: `mender-artifact` decides.
    UseTool,
}

/// Where the signature goes, and what it signs.
#[derive(Debug)]
struct Plan {
    manifest: Vec<u8>,
    /// The offset just past `manifest`'s data and padding.
    insert_at: u64,
    /// The size walked and found whole: exactly this much is copied.
    len: u64,
}

impl Plan {
    /// The raw bytes of the `manifest` member: what is signed.
    fn manifest(&self) -> &[u8] {
        &self.manifest
    }
}

/// A member header this module understands: a regular file in plain USTAR
/// form, its name in the name field alone.
struct Member {
    name: Vec<u8>,
    size: u64,
}

fn octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    // Octal digits only: `from_str_radix` would take a leading `+`, which
    // Go's reader (the tool's and the device's) refuses.
    if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
}

/// `None` for the end of the archive, `Some(None)` for a header of another
/// form (PAX, GNU, a prefix, a bad checksum, not a regular file).
/// A header's checksum: the sum of its bytes, its checksum field counted
/// as spaces.
fn checksum(block: &[u8; BLOCK as usize]) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum()
}

fn member(block: &[u8; BLOCK as usize]) -> Option<Option<Member>> {
    if block.iter().all(|&b| b == 0) {
        return None;
    }
    let stored = octal(&block[148..156]);
    let sum = checksum(block);
    let regular = matches!(block[156], b'0' | 0);
    let prefix_empty = block[345] == 0;
    // USTAR as Go writes it ("ustar\0" "00"); GNU and pre-POSIX headers go
    // to the tool.
    let ustar = &block[257..265] == b"ustar\x0000";
    // Go's reader refuses a header whose numeric fields are not octal.
    let numeric = [100..108, 108..116, 116..124, 136..148]
        .into_iter()
        .all(|field| octal(&block[field]).is_some());
    let size = octal(&block[124..136]);
    if stored != Some(sum) || !regular || !prefix_empty || !ustar || !numeric {
        return Some(None);
    }
    let name_len = block[..100].iter().position(|&b| b == 0).unwrap_or(100);
    Some(size.map(|size| Member {
        name: block[..name_len].to_vec(),
        size,
    }))
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK) * BLOCK
}

/// At most this many members are looked at (an artifact has a handful).
const MAX_MEMBERS: usize = 10_000;

/// Reads every member header of the artifact open as `file` (seeking over
/// the data), as the tool reads them all before it signs: only a
/// well-formed tar (every header plain USTAR with a right checksum, every
/// member's data inside the file, the end marker and nothing after it) with
/// `version` then `manifest` first is signed here. Being cut short or not a
/// tar at all is [`Inspection::UseTool`]; only other I/O errors are errors.
fn inspect(file: &mut File) -> io::Result<Inspection> {
    match walk(file) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Inspection::UseTool),
        other => other,
    }
}

fn walk(file: &mut File) -> io::Result<Inspection> {
    let len = file.metadata()?.len();
    let mut block = [0u8; BLOCK as usize];
    let mut offset = 0u64;
    let mut manifest = None;
    let mut signed = false;
    for index in 0..MAX_MEMBERS {
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut block)?;
        let member = match member(&block) {
            Some(Some(member)) => member,
            Some(None) => return Ok(Inspection::UseTool),
            None => {
                // The end marker is two zero blocks, and the file's end.
                file.read_exact(&mut block)?;
                let whole = block.iter().all(|&b| b == 0) && offset + 2 * BLOCK == len;
                return Ok(match (whole, manifest, signed) {
                    (false, _, _) | (_, None, _) => Inspection::UseTool,
                    (true, Some(_), true) => Inspection::AlreadySigned,
                    (true, Some((manifest, insert_at)), false) => Inspection::Native(Plan {
                        manifest,
                        insert_at,
                        len,
                    }),
                });
            }
        };
        let data_end = match (offset + BLOCK).checked_add(padded(member.size)) {
            Some(end) if end <= len => end,
            _ => return Ok(Inspection::UseTool),
        };
        match index {
            0 if member.name == b"version" && member.size <= MAX_VERSION => {}
            1 if member.name == b"manifest" && member.size <= MAX_MANIFEST => {
                let mut bytes = vec![0u8; member.size as usize];
                file.read_exact(&mut bytes)?;
                manifest = Some((bytes, data_end));
            }
            0 | 1 => return Ok(Inspection::UseTool),
            _ => signed |= member.name == b"manifest.sig",
        }
        offset = data_end;
    }
    Ok(Inspection::UseTool)
}

/// What [`sign_file`] did.
#[derive(Debug)]
pub enum Outcome {
    /// The signed copy is written.
    Signed,
    /// The artifact has a `manifest.sig`.
    AlreadySigned,
    /// Not one for this module: `mender-artifact` must sign it.
    UseTool,
}

/// Why [`sign_file`] failed.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The artifact could not be opened or read.
    #[error("reading the artifact failed: {0}")]
    Read(#[source] io::Error),
    /// The signed copy could not be written (a full disk among others).
    #[error("writing the signed artifact failed: {0}")]
    Write(#[source] io::Error),
    /// OpenSSL failed, or a signature did not verify.
    #[error("signing the artifact's manifest failed: {0}")]
    Sign(#[source] SignError),
}

/// Signs the artifact `input` into the new file `output` if it is one this
/// module signs, reading it through one open handle (a file renamed over
/// `input` meanwhile is not mixed in).
pub fn sign_file(
    input: &Path,
    output: &Path,
    key: &MenderKey,
    cancelled: &CancellationToken,
) -> Result<Outcome, NativeError> {
    let mut src = File::open(input).map_err(NativeError::Read)?;
    let plan = match inspect(&mut src).map_err(NativeError::Read)? {
        Inspection::Native(plan) => plan,
        Inspection::AlreadySigned => return Ok(Outcome::AlreadySigned),
        Inspection::UseTool => return Ok(Outcome::UseTool),
    };
    let signature = key
        .manifest_sig(plan.manifest())
        .map_err(NativeError::Sign)?;
    write_signed(&mut src, &plan, &signature, output, cancelled)
        .map(|_| Outcome::Signed)
        .map_err(NativeError::Write)
}

/// A key Mender signs with, as `mender-artifact` 3.9 takes them: RSA, or
/// ECDSA on P-256.
pub enum MenderKey {
    /// PKCS#1 v1.5 over SHA-256.
    Rsa(BlindedRsa),
    /// ECDSA P-256 over SHA-256, written as `r‖s`.
    P256(EcKey<Private>),
}

impl MenderKey {
    /// Parses `mender/private.key` (PEM or DER, PKCS#1, SEC1 or PKCS#8).
    pub fn parse(bytes: &[u8]) -> Result<Self, UnusableKey> {
        let unusable = |problem| UnusableKey::new(SignType::Mender, "private.key", problem);
        let key =
            servicekit::private_key::parse(bytes).map_err(|_| unusable(KeyProblem::NotAKey))?;
        match key.id() {
            Id::RSA => {
                let rsa = key.rsa().map_err(|_| unusable(KeyProblem::NotAKey))?;
                if !can_sign_sha256(&rsa) {
                    return Err(unusable(KeyProblem::WrongType {
                        found: "RSA (under 496 bits)",
                        needs: "Mender needs an RSA key of at least 512 bits",
                    }));
                }
                Ok(Self::Rsa(BlindedRsa::new(rsa)))
            }
            Id::EC => {
                let ec = key.ec_key().map_err(|_| unusable(KeyProblem::NotAKey))?;
                if ec.group().curve_name() != Some(Nid::X9_62_PRIME256V1) {
                    return Err(unusable(KeyProblem::WrongType {
                        found: "EC on a curve other than P-256",
                        needs: "Mender signs with ECDSA on P-256 only",
                    }));
                }
                Ok(Self::P256(ec))
            }
            other => Err(unusable(KeyProblem::WrongType {
                found: key_type_name(other),
                needs: "Mender artifacts are signed with RSA or ECDSA keys",
            })),
        }
    }

    /// The key as `mender-artifact` 3.9 reads it: traditional PEM (PKCS#1 or
    /// SEC1), which it needs even where the key store holds PKCS#8.
    pub fn traditional_pem(&self) -> Result<Zeroizing<Vec<u8>>, ErrorStack> {
        match self {
            Self::Rsa(rsa) => rsa.key().private_key_to_pem(),
            Self::P256(ec) => ec.private_key_to_pem(),
        }
        .map(Zeroizing::new)
    }

    /// The contents of `manifest.sig` for `manifest`.
    pub fn manifest_sig(&self, manifest: &[u8]) -> Result<Vec<u8>, SignError> {
        let raw = match self {
            Self::Rsa(rsa) => rsa.sign_sha256(manifest)?,
            Self::P256(ec) => {
                let sig = EcdsaSig::sign(&openssl::sha::sha256(manifest), ec)?;
                let mut raw = sig.r().to_vec_padded(32)?;
                raw.extend_from_slice(&sig.s().to_vec_padded(32)?);
                raw
            }
        };
        Ok(openssl::base64::encode_block(&raw).into_bytes())
    }
}

/// The USTAR header Go's `archive/tar` writes for `manifest.sig` from
/// `tar.Header{Name, Size, Mode: 0644}`: zero owner and time, no names.
fn signature_header(size: u64) -> [u8; BLOCK as usize] {
    let mut h = [0u8; BLOCK as usize];
    h[..12].copy_from_slice(b"manifest.sig");
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[329..337].copy_from_slice(b"0000000\0");
    h[337..345].copy_from_slice(b"0000000\0");
    let sum = checksum(&h);
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Writes the signed copy of `src` (the file [`inspect`]ed) to the new file `output` (mode 0600,
/// as the tool's): the members up to `manifest`, `manifest.sig` with
/// `signature`, and the rest of `input`. Returns its size. The caller
/// makes it durable. Stops between chunks once `cancelled` is set (the
/// request went away: its directory is being removed).
fn write_signed(
    src: &mut File,
    plan: &Plan,
    signature: &[u8],
    output: &Path,
    cancelled: &CancellationToken,
) -> io::Result<u64> {
    let total = plan.len;
    src.seek(SeekFrom::Start(0))?;
    let src = &*src;
    let dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(output)?;
    let mut written = io::copy(&mut src.take(plan.insert_at), &mut &dst)?;
    if written != plan.insert_at {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the artifact changed while it was signed",
        ));
    }
    let mut member = signature_header(signature.len() as u64).to_vec();
    member.extend_from_slice(signature);
    member.resize(BLOCK as usize + padded(signature.len() as u64) as usize, 0);
    (&dst).write_all(&member)?;
    written += member.len() as u64;
    let mut left = total.saturating_sub(plan.insert_at);
    while left > 0 {
        if cancelled.is_cancelled() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the request ended before the signed copy was written",
            ));
        }
        let chunk = io::copy(&mut src.take(WRITEBACK_CHUNK.min(left)), &mut &dst)?;
        if chunk == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the artifact changed while it was signed",
            ));
        }
        start_writeback(&dst, written, chunk);
        written += chunk;
        left -= chunk;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_keys_become_the_traditional_pem_the_tool_reads() {
        use openssl::ec::EcGroup;
        use openssl::pkey::PKey;
        let rsa = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let pkcs8 = rsa.private_key_to_pem_pkcs8().unwrap();
        assert!(pkcs8.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let pem = MenderKey::parse(&pkcs8).unwrap().traditional_pem().unwrap();
        assert!(pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));

        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let key = MenderKey::parse(&ec.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let pem = key.traditional_pem().unwrap();
        assert!(pem.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
    }

    #[test]
    fn other_keys_are_refused_by_type() {
        let ed = openssl::pkey::PKey::generate_ed25519().unwrap();
        let err = MenderKey::parse(&ed.private_key_to_pem_pkcs8().unwrap())
            .err()
            .unwrap();
        assert!(err.to_string().contains("Ed25519"), "{err}");
        assert!(matches!(
            MenderKey::parse(b"-----BEGIN CERTIFICATE-----\n").map_err(|e| e.problem),
            Err(KeyProblem::NotAKey)
        ));
    }

    #[test]
    fn the_signature_header_is_a_valid_ustar_header_for_its_size() {
        let h = signature_header(344);
        let parsed = member(&h).expect("not the end").expect("plain USTAR");
        assert_eq!(parsed.name, b"manifest.sig");
        assert_eq!(parsed.size, 344);
        let tar_header = tar::Header::from_byte_slice(&h);
        assert_eq!(tar_header.size().unwrap(), 344);
        assert_eq!(tar_header.mode().unwrap(), 0o644);
        assert_eq!(tar_header.cksum().unwrap(), {
            let mut copy = h;
            copy[148..156].copy_from_slice(b"        ");
            copy.iter().map(|&b| b as u32).sum::<u32>()
        });
    }

    fn inspect_path(path: &Path) -> Inspection {
        inspect(&mut File::open(path).unwrap()).unwrap()
    }

    /// A tar of `members` in USTAR form, as the tar crate writes it.
    fn ustar(path: &Path, members: &[(&str, &[u8])]) {
        let mut builder = tar::Builder::new(File::create(path).unwrap());
        for (name, data) in members {
            let mut header = tar::Header::new_ustar();
            header.set_path(name).unwrap();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.finish().unwrap();
    }

    #[test]
    fn a_plain_artifact_gets_its_signature_after_the_manifest_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mender");
        let payload = vec![7u8; 9 << 20]; // more than one copy chunk
        ustar(
            &input,
            &[
                ("version", b"{\"format\":\"mender\",\"version\":3}"),
                ("manifest", b"abc  header.tar.gz\n"),
                ("header.tar.gz", b"h"),
                ("data/0000.tar.gz", &payload),
            ],
        );
        let Inspection::Native(plan) = inspect_path(&input) else {
            panic!("a plain artifact is signed natively");
        };
        assert_eq!(plan.manifest(), b"abc  header.tar.gz\n");
        let output = dir.path().join("out.mender");
        let copy = |to: &Path, cancelled: &CancellationToken| {
            write_signed(
                &mut File::open(&input).unwrap(),
                &plan,
                b"c2ln",
                to,
                cancelled,
            )
        };
        let written = copy(&output, &CancellationToken::new()).unwrap();
        let (before, after) = (
            std::fs::read(&input).unwrap(),
            std::fs::read(&output).unwrap(),
        );
        assert_eq!(written, after.len() as u64);
        assert_eq!(after.len(), before.len() + 1024);
        let at = plan.insert_at as usize;
        assert_eq!(after[..at], before[..at]);
        assert_eq!(after[at + 1024..], before[at..]);
        let names: Vec<String> = tar::Archive::new(&after[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "version",
                "manifest",
                "manifest.sig",
                "header.tar.gz",
                "data/0000.tar.gz"
            ]
        );
        assert!(matches!(inspect_path(&output), Inspection::AlreadySigned));

        // A cancelled request's copy stops, and says why.
        let stopped = dir.path().join("stopped.mender");
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let err = copy(&stopped, &cancelled).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    }

    #[test]
    fn other_shapes_go_to_the_tool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mender");
        // Members out of order, a missing manifest, not a tar, cut short.
        ustar(&path, &[("manifest", b"m"), ("version", b"v")]);
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
        ustar(&path, &[("version", b"v"), ("header.tar.gz", b"h")]);
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
        std::fs::write(&path, b"this is not a tar archive").unwrap();
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
        ustar(&path, &[("version", b"v"), ("manifest", &[b'm'; 2000])]);
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..1024 + 512]).unwrap();
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
    }

    #[test]
    fn a_flaw_anywhere_in_the_tar_goes_to_the_tool_and_a_late_signature_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.mender");
        let good: &[(&str, &[u8])] = &[
            ("version", b"v"),
            ("manifest", b"m"),
            ("header.tar.gz", b"h"),
            ("data/0000.tar.gz", &[9u8; 5000]),
        ];
        ustar(&path, good);
        assert!(matches!(inspect_path(&path), Inspection::Native(_)));
        let whole = std::fs::read(&path).unwrap();
        let data_header = 512 * 6; // version, manifest, header.tar.gz: a header and a block each

        // Cut inside the last member's data; data after the end marker; a
        // later header whose checksum is wrong, or whose size has a `+`.
        std::fs::write(&path, &whole[..data_header + 512 + 100]).unwrap();
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
        std::fs::write(&path, [&whole[..], b"trailing"].concat()).unwrap();
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
        let mut bad = whole.clone();
        bad[data_header] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(inspect_path(&path), Inspection::UseTool));
        let mut plus = whole.clone();
        plus[data_header + 124..data_header + 136].copy_from_slice(b"+0000011610\0");
        let block: [u8; 512] = plus[data_header..data_header + 512].try_into().unwrap();
        plus[data_header..data_header + 512].copy_from_slice(&resummed(block));
        std::fs::write(&path, &plus).unwrap();
        assert!(matches!(inspect_path(&path), Inspection::UseTool));

        // A manifest.sig anywhere is a signed artifact, as the tool sees it.
        ustar(
            &path,
            &[
                ("version", b"v"),
                ("manifest", b"m"),
                ("header.tar.gz", b"h"),
                ("manifest.sig", b"s"),
            ],
        );
        assert!(matches!(inspect_path(&path), Inspection::AlreadySigned));
    }

    /// `h` with its checksum made right again.
    fn resummed(mut h: [u8; 512]) -> [u8; 512] {
        let sum = checksum(&h);
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    #[test]
    fn headers_of_other_forms_are_left_to_the_tool() {
        assert!(matches!(
            member(&resummed(signature_header(10))),
            Some(Some(_))
        ));
        let mut h = signature_header(10);
        h[156] = b'x'; // a PAX extended header
        assert!(matches!(member(&resummed(h)), Some(None)));
        let mut h = signature_header(10);
        h[345] = b'a'; // a USTAR prefix
        assert!(matches!(member(&resummed(h)), Some(None)));
        let mut h = signature_header(10);
        h[100..108].copy_from_slice(b"06x4\0\0\0\0"); // a mode Go would refuse
        assert!(matches!(member(&resummed(h)), Some(None)));
        let mut h = signature_header(10);
        h[257..265].copy_from_slice(b"ustar  \0"); // GNU's magic
        assert!(matches!(member(&resummed(h)), Some(None)));
        let mut h = signature_header(10);
        h[0] = b'M'; // the checksum no longer matches
        assert!(matches!(member(&h), Some(None)));
        assert!(member(&[0u8; 512]).is_none());
    }
}
