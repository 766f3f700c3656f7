//! `POST /sign/imx`, wire-compatible with upstream digsigserver.

use std::path::PathBuf;
use std::sync::Arc;

use keystore::{KeyFileName, KeyStore, SignType};
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi, Tags};
use servicekit::archive::extract_tar_gz;
use servicekit::form_fields::{SelectorField, TextField};
use servicekit::{ArchiveError, ArchiveLimits, ServiceError, WorkDir};
use tokio::io::AsyncWriteExt;

use crate::artifact_name::ArtifactName;
use crate::backend::Backend;
use crate::csf::{CsfText, MAX_CSF_BYTES};
use crate::cst::CstInstalls;
use crate::demo::KEYS_TARBALL;
use crate::soc::SocType;

/// The name the CSF description gets in the work dir (upstream's).
pub const CSF_FILE: &str = "csf-input.txt";

/// Most bytes of an artifact (a bootloader or kernel image; HAB4 boot ROMs
/// load far less).
pub const MAX_ARTIFACT_BYTES: u64 = 256 << 20;

/// Most bytes of a CSF blob `cst` makes (real ones are a few KiB).
const MAX_BLOB_BYTES: u64 = 1 << 20;

/// The keys tarball holds a PKI: a few dozen small files.
const KEYS_TARBALL_LIMITS: ArchiveLimits = ArchiveLimits {
    max_bytes: 16 << 20,
    max_entries: 1000,
    max_ratio: 200,
};

fn default_backend() -> Backend {
    Backend::Ssl
}

/// Form fields of an i.MX HAB signing request.
#[derive(Debug, Multipart)]
pub struct SignImxForm {
    /// Machine name; the keys are the tarball
    /// `<keyfile-uri>/<machine>/imxsign/imx-cst-keys.tar.gz`.
    machine: SelectorField,
    /// The SoC family: one whose boot ROM uses HAB4 (i.MX 6, 7, 8M).
    soctype: SocType,
    /// The CST version to sign with, e.g. `3.3.1`: one installed as
    /// `<DIGSIGSERVER_IMX_CST_BASE>/cst-<version>/linux64/bin/cst`; any other
    /// is refused with the list of installed ones.
    cstversion: TextField,
    /// The CSF description (text). Any content type is accepted (upstream
    /// takes only `text/plain`, which curl sends only for `.txt` names).
    /// File names in it must be relative paths inside the keys tarball (not
    /// `key_pass.txt` or under `keys/`), and `Blocks` may name only the
    /// artifact; at most 64 KiB.
    csf: Upload,
    /// The binary the CSF's `Blocks` authenticate, sent under the plain file
    /// name the CSF gives it (curl sends the local file's name); at most
    /// 256 MiB.
    artifact: Upload,
    /// `ssl` (the default, and the only back end here). Upstream's `pkcs11`
    /// (keys in a YubiHSM) is answered with 501: not supported yet.
    #[oai(default = "default_backend")]
    backend: Backend,
}

/// Replies of `POST /sign/imx`.
#[derive(ApiResponse)]
pub enum SignImxResponse {
    /// The binary CSF blob `cst` made (`artifact.signed`): HAB commands,
    /// SRK table, certificates and CMS signatures. The client inserts it,
    /// with an IVT, into its image.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Signed(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

#[derive(Tags)]
enum ApiTags {
    /// NXP i.MX HAB signing with NXP's Code Signing Tool.
    #[oai(rename = "i.MX")]
    Imx,
}

/// The i.MX HAB signing API.
pub struct ImxApi {
    keystore: KeyStore,
    workdir_base: PathBuf,
    cst: CstInstalls,
}

impl ImxApi {
    /// An API signing with keys from `keystore` and the CSTs in `cst`,
    /// working under `workdir_base`.
    pub fn new(keystore: KeyStore, workdir_base: PathBuf, cst: CstInstalls) -> Self {
        Self {
            keystore,
            workdir_base,
            cst,
        }
    }
}

#[OpenApi]
impl ImxApi {
    /// Sign an i.MX image with HAB4: make its CSF blob.
    ///
    /// Extracts the machine's `imxsign/imx-cst-keys.tar.gz` into a private
    /// work dir, writes the CSF there as `csf-input.txt` and the artifact
    /// under its file name, and runs `cst -i csf-input.txt -o <blob>` of the
    /// requested version there; the work dir, keys included, is removed
    /// afterwards. `cst` finds a certificate's key by NXP's rule (`crts/` →
    /// `keys/`, `_crt` → `_key`) and its pass phrase in `key_pass.txt`
    /// beside it. A CSF `cst` refuses (a syntax error, a certificate or key
    /// the tarball lacks) is a 422 with `cst`'s message; a CSF naming a file
    /// outside the work dir or key material, `Blocks` naming anything but
    /// the artifact, an artifact name with a path, or an unknown
    /// `cstversion` is a 400.
    #[oai(path = "/sign/imx", method = "post", tag = "ApiTags::Imx")]
    async fn sign_imx(&self, form: SignImxForm) -> Result<SignImxResponse, ServiceError> {
        self.sign(form).await
    }
}

impl ImxApi {
    async fn sign(&self, form: SignImxForm) -> Result<SignImxResponse, ServiceError> {
        let started = std::time::Instant::now();
        if form.backend == Backend::Pkcs11 {
            return Err(ServiceError::NotImplemented(
                "backend=pkcs11 is not supported yet: sign with backend=ssl and the machine's keys tarball".into(),
            ));
        }
        let machine = form.machine.0;
        let version = form.cstversion.0.trim().to_string();
        let program = self.cst.program(&version)?;
        let name =
            ArtifactName::parse(form.artifact.file_name()).map_err(ServiceError::BadRequest)?;
        if form.csf.size() > MAX_CSF_BYTES {
            return Err(crate::csf::CsfError::TooLarge.into());
        }
        let csf = form
            .csf
            .into_vec()
            .await
            .map_err(|e| ServiceError::internal_from("reading the uploaded CSF", e))?;
        servicekit::audit::record_bytes("csf", &csf);
        let csf = CsfText::parse(csf)?;
        // Only the client's own data is authenticated: a Blocks entry naming
        // a file of the keys tarball would sign key bytes for the client.
        if let Some(other) = csf
            .files()
            .iter()
            .find(|f| f.is_block_data && f.name != name.as_str())
        {
            return Err(ServiceError::BadRequest(format!(
                "csf line {}: Blocks name \"{}\", but the artifact was sent as \"{name}\": Blocks may only name the artifact (send it under the name the CSF uses)",
                other.line, other.name
            )));
        }
        if form.artifact.size() == 0 {
            return Err(ServiceError::BadRequest(
                "artifact is empty: send the binary the CSF's Blocks authenticate".into(),
            ));
        }
        if form.artifact.size() as u64 > MAX_ARTIFACT_BYTES {
            return Err(ServiceError::TooLarge(format!(
                "artifact is larger than {MAX_ARTIFACT_BYTES} bytes"
            )));
        }

        let keys = self
            .keystore
            .fetch(&machine, SignType::Imx, &KeyFileName::parse(KEYS_TARBALL)?)
            .await?;
        let work = WorkDir::for_request(&self.workdir_base)?;
        let dir = work.path().join("sign");
        let blob = work.path().join("csf.bin");
        {
            let (work, dir, machine) = (Arc::clone(&work), dir.clone(), machine.clone());
            let csf = csf.clone();
            tokio::task::spawn_blocking(move || {
                let _held = work;
                std::fs::create_dir(&dir)
                    .map_err(|e| ServiceError::internal_from("creating the signing directory", e))?;
                extract_tar_gz(keys.bytes(), &dir, &KEYS_TARBALL_LIMITS).map_err(|e| match e {
                    ArchiveError::Io(e) => {
                        ServiceError::internal_from("extracting the keys tarball", e)
                    }
                    e => ServiceError::Misconfigured(format!(
                        "the keys tarball {}/{KEYS_TARBALL} of machine '{machine}' is unusable: {e}",
                        SignType::Imx.dir_name()
                    )),
                })?;
                drop(keys);
                write_new(&dir.join(CSF_FILE), csf.as_bytes()).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        ServiceError::Misconfigured(format!(
                            "the keys tarball of machine '{machine}' holds a file named {CSF_FILE}, the name the CSF is given"
                        ))
                    } else {
                        ServiceError::internal_from("writing the CSF", e)
                    }
                })
            })
            .await
            .map_err(ServiceError::internal)??;
        }
        save_artifact(form.artifact, &dir, &name).await?;
        servicekit::audit::record_file("artifact", &dir.join(name.as_str()))
            .await
            .map_err(|e| {
                ServiceError::internal_from("reading the artifact for the audit log", e)
            })?;

        self.cst.sign(&program, &dir, CSF_FILE, &blob).await?;
        let signed = read_blob(&blob).await?;
        drop(work);
        tracing::info!(
            machine = %machine,
            soctype = form.soctype.name(),
            cstversion = %version,
            blob_bytes = signed.len(),
            signing_ms = started.elapsed().as_millis() as u64,
            "signed i.MX CSF"
        );
        Ok(SignImxResponse::Signed(
            Binary(signed),
            "attachment; filename=\"artifact.signed\"".into(),
        ))
    }
}

/// Writes `bytes` to a file that must not exist yet.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)
}

/// Copies the spooled upload into `dir` under `name`, which must be new: a
/// name that is also a file of the keys tarball would replace a key or a
/// certificate.
async fn save_artifact(
    upload: Upload,
    dir: &std::path::Path,
    name: &ArtifactName,
) -> Result<(), ServiceError> {
    let path = dir.join(name.as_str());
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ServiceError::Unprocessable(format!(
                    "artifact file name '{name}' is also a file in the machine's keys tarball: upload the artifact under another name (and use that name in the CSF's Blocks)"
                ))
            } else {
                ServiceError::internal_from("saving the artifact", e)
            }
        })?;
    let mut reader = upload.into_async_read();
    tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(|e| ServiceError::internal_from("saving the artifact", e))?;
    file.flush()
        .await
        .map_err(|e| ServiceError::internal_from("saving the artifact", e))
}

/// Reads the CSF blob `cst` wrote.
async fn read_blob(path: &std::path::Path) -> Result<Vec<u8>, ServiceError> {
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| ServiceError::internal_from("reading the CSF blob", e))?
        .len();
    if len > MAX_BLOB_BYTES {
        return Err(ServiceError::Internal(format!(
            "cst wrote a CSF blob of {len} bytes, more than the {MAX_BLOB_BYTES} expected"
        )));
    }
    tokio::fs::read(path)
        .await
        .map_err(|e| ServiceError::internal_from("reading the CSF blob", e))
}
