//! `POST /sign/optee`, wire-compatible with upstream digsigserver.

use std::path::PathBuf;
use std::sync::Arc;

use keystore::{KeyFileName, KeyStore, Selector, SignType};
use poem::Body;
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi, Tags};
use servicekit::archive::{extract_tar_gz, pack_tar_gz};
use servicekit::{ArchiveLimits, ServiceError, WorkDir};

use crate::sign_tree::sign_tree;
use crate::ta_image::{TaAlgorithm, TaSigner};

/// The key file every request signs with, under `<machine>/opteesign/`.
pub const KEY_FILE: &str = "optee-signing-key.pem";

/// Compression of the reply: level 1 is several times faster than gzip's
/// default; the reply is a transfer format and signatures do not compress.
const REPLY_GZIP_LEVEL: u32 = 1;

/// Form fields of a TA signing request.
#[derive(Debug, Multipart)]
pub struct SignOpteeForm {
    /// Machine name; the key is `<keyfile-uri>/<machine>/opteesign/optee-signing-key.pem` (RSA).
    machine: String,
    /// gzip-compressed tarball of a tree of `<uuid>.stripped.elf` files, each
    /// with an optional `<uuid>.ta-version` (first line an integer, `0x` hex
    /// allowed; none means version 0).
    artifact: Upload,
    /// Signature algorithm written in each TA header; default PSS, as
    /// upstream. (Not an upstream field: OP-TEE verifies both.)
    #[oai(default = "default_algo")]
    algo: TaAlgorithm,
}

fn default_algo() -> TaAlgorithm {
    TaAlgorithm::Pss
}

/// Replies of `POST /sign/optee`.
#[derive(ApiResponse)]
pub enum SignOpteeResponse {
    /// The same tree, each `<uuid>.stripped.elf` and its `<uuid>.ta-version`
    /// replaced by the signed `<uuid>.ta`, as a gzip tarball with `./` names.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Signed(Binary<Body>, #[oai(header = "Content-Disposition")] String),
}

#[derive(Tags)]
enum ApiTags {
    /// OP-TEE trusted application signing.
    #[oai(rename = "trusted applications")]
    Optee,
}

/// The OP-TEE TA signing API.
pub struct OpteeApi {
    keystore: KeyStore,
    workdir_base: PathBuf,
    limits: ArchiveLimits,
}

impl OpteeApi {
    /// An API signing with keys from `keystore`, working under `workdir_base`.
    pub fn new(keystore: KeyStore, workdir_base: PathBuf, limits: ArchiveLimits) -> Self {
        Self {
            keystore,
            workdir_base,
            limits,
        }
    }
}

#[OpenApi]
impl OpteeApi {
    /// Sign OP-TEE trusted applications.
    ///
    /// Signs every `<uuid>.stripped.elf` in the uploaded tarball with the
    /// machine's `opteesign` RSA key, writing `<uuid>.ta` in OP-TEE's signed
    /// (bootstrap) TA format beside it, exactly as OP-TEE's
    /// `scripts/sign_encrypt.py` does; the image and its `<uuid>.ta-version`
    /// are removed, every other file is returned unchanged. The UUID is the
    /// file name (hyphens optional); the version is the first line of
    /// `<uuid>.ta-version` (`0x` hex, `0o` octal allowed; no file means 0).
    /// A tarball with no `*.stripped.elf`, a name that is not a UUID or a
    /// version that is not a 32-bit integer is refused with 422 naming the
    /// file; nothing is signed then.
    #[oai(path = "/sign/optee", method = "post", tag = "ApiTags::Optee")]
    async fn sign_optee(&self, form: SignOpteeForm) -> Result<SignOpteeResponse, ServiceError> {
        self.sign(form).await
    }
}

impl OpteeApi {
    async fn sign(&self, form: SignOpteeForm) -> Result<SignOpteeResponse, ServiceError> {
        let started = std::time::Instant::now();
        let machine = Selector::parse(&form.machine)?;
        let key = self
            .keystore
            .fetch(&machine, SignType::Optee, &KeyFileName::parse(KEY_FILE)?)
            .await?;
        let signer = TaSigner::new(key.bytes(), form.algo).map_err(|e| {
            ServiceError::Misconfigured(format!(
                "machine '{machine}' {}/{KEY_FILE} {e}",
                SignType::Optee.dir_name()
            ))
        })?;
        drop(key);

        let work = WorkDir::create(&self.workdir_base).map_err(ServiceError::internal)?;
        // The HTTP layer has spooled the upload to an unlinked temp file.
        let input = form.artifact.into_file().into_std().await;
        let limits = self.limits;
        let span = tracing::Span::current();
        let task_work = Arc::clone(&work);
        let signed = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let tree = task_work.path().join("tree");
            std::fs::create_dir(&tree).map_err(ServiceError::internal)?;
            extract_tar_gz(input, &tree, &limits)?;
            let signed = sign_tree(&tree, &signer)?;
            let out = std::fs::File::create(task_work.path().join("signed-artifact.tar.gz"))
                .map_err(ServiceError::internal)?;
            pack_tar_gz(&tree, std::io::BufWriter::new(out), REPLY_GZIP_LEVEL)
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .map_err(|e| {
                    ServiceError::Internal(format!("writing the signed tarball failed: {e}"))
                })?;
            Ok::<_, ServiceError>(signed)
        })
        .await
        .map_err(ServiceError::internal)??;
        tracing::info!(
            machine = %machine,
            algo = form.algo.name(),
            tas = signed,
            signing_ms = started.elapsed().as_millis() as u64,
            "signed trusted applications"
        );
        let body = servicekit::workdir::stream_file(work, "signed-artifact.tar.gz")
            .await
            .map_err(ServiceError::internal)?;
        Ok(SignOpteeResponse::Signed(
            Binary(body),
            "attachment; filename=\"signed-artifact.tar.gz\"".into(),
        ))
    }
}
