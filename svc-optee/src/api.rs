//! `POST /sign/optee`, wire-compatible with upstream digsigserver.

use std::path::PathBuf;

use keystore::{KeyFileName, KeyStore, SignType};
use poem_openapi::error::ParseMultipartError;
use poem_openapi::{Multipart, OpenApi, Tags};
use servicekit::archive::{extract_tar_gz, pack_tar_gz};
use servicekit::form_fields::SelectorField;
use servicekit::streamed_form::{Artifact, Streamed, StreamedForm, TextFields};
use servicekit::tarball_reply::{sign_to_tarball, SignedTarball, REPLY_GZIP_LEVEL};
use servicekit::upload::SpooledUpload;
use servicekit::{ArchiveLimits, ServiceError};

use crate::sign_tree::sign_tree;
use crate::ta_image::{TaAlgorithm, TaSigner};

pub use crate::ta_image::KEY_FILE;

/// Form fields of a TA signing request: the OpenAPI document's description
/// of the form. Requests are read by [`OpteeFields`], which signs the
/// artifact as it arrives when the text fields come first.
#[derive(Debug, Multipart)]
#[allow(dead_code)] // documents the form; never built
pub struct SignOpteeForm {
    /// Machine name; the key is `<keyfile-uri>/<machine>/opteesign/optee-signing-key.pem` (RSA).
    machine: SelectorField,
    /// Signature algorithm written in each TA header; default PSS, as
    /// upstream. (Not an upstream field: OP-TEE verifies both.) If sent, it
    /// must come before `artifact`, which is signed as it arrives.
    #[oai(default = "default_algo")]
    algo: TaAlgorithm,
    /// gzip-compressed tarball of a tree of `<uuid>.stripped.elf` files, each
    /// with an optional `<uuid>.ta-version` (first line an integer, `0x` hex
    /// allowed; none means version 0).
    artifact: SpooledUpload,
}

fn default_algo() -> TaAlgorithm {
    TaAlgorithm::Pss
}

/// The text fields of a TA signing request.
#[derive(Debug)]
pub struct OpteeFields {
    machine: SelectorField,
    algo: TaAlgorithm,
}

impl StreamedForm for OpteeFields {
    type Documented = SignOpteeForm;
    const TEXT_FIELDS: &'static [&'static str] = &["machine", "algo"];
    // Upstream's client sends `machine` and `artifact` only (`algo` is
    // ours): its trees are read as they arrive; an `algo` after the file is
    // refused (the OpenAPI form, and so Swagger UI, puts it before).
    const BEFORE_FILE: &'static [&'static str] = &["machine"];
    const FILE_FIELD: &'static str = "artifact";

    fn parse(fields: &TextFields) -> Result<Self, ParseMultipartError> {
        Ok(Self {
            machine: fields.required("machine")?,
            algo: fields.optional("algo", default_algo)?,
        })
    }
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
    async fn sign_optee(&self, form: Streamed<OpteeFields>) -> Result<SignedTarball, ServiceError> {
        self.sign(form.fields, form.artifact).await
    }
}

impl OpteeApi {
    async fn sign(
        &self,
        form: OpteeFields,
        artifact: Artifact,
    ) -> Result<SignedTarball, ServiceError> {
        let started = std::time::Instant::now();
        let machine = form.machine.0;
        let signer = self.signer(&machine, form.algo).await?;

        let limits = self.limits;
        let (signed, reply) =
            sign_to_tarball(&self.workdir_base, artifact, move |input, out, workdir| {
                let tree = workdir.join("tree");
                std::fs::create_dir(&tree).map_err(|e| {
                    ServiceError::internal_from("cannot create the tree directory", e)
                })?;
                extract_tar_gz(input, &tree, &limits)?;
                let signed = sign_tree(&tree, &signer)?;
                let out = pack_tar_gz(&tree, out, REPLY_GZIP_LEVEL).map_err(|e| {
                    ServiceError::internal_from("writing the signed tarball failed", e)
                })?;
                Ok((signed, out))
            })
            .await?;
        tracing::info!(
            machine = %machine,
            algo = form.algo.name(),
            tas = signed,
            signing_ms = started.elapsed().as_millis() as u64,
            "signed trusted applications"
        );
        Ok(reply)
    }

    async fn signer(
        &self,
        machine: &keystore::Selector,
        algo: TaAlgorithm,
    ) -> Result<TaSigner, ServiceError> {
        let key = self
            .keystore
            .fetch(machine, SignType::Optee, &KeyFileName::parse(KEY_FILE)?)
            .await?;
        Ok(TaSigner::new(key.bytes(), algo).map_err(|e| e.of(machine))?)
    }
}
