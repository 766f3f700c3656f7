//! `POST /sign/modules`, wire-compatible with upstream digsigserver.

use keystore::{KeyFileName, KeyStore, SignType};
use poem_openapi::error::ParseMultipartError;
use poem_openapi::{Multipart, OpenApi, Tags};
use servicekit::form_fields::SelectorField;
use servicekit::streamed_form::{Artifact, Streamed, StreamedForm, TextFields};
use servicekit::tarball_reply::{sign_to_tarball, SignedTarball, REPLY_GZIP_LEVEL};
use servicekit::upload::SpooledUpload;
use servicekit::{ArchiveLimits, ServiceError};

use crate::sign_tree::sign_tarball;
use crate::signer::{HashAlg, ModuleSigner, CERT_FILE, KEY_FILE};

/// Form fields of a module signing request: the OpenAPI document's
/// description of the form. Requests are read by [`ModuleFields`], which
/// signs the artifact as it arrives when `machine` and `hashalg` come
/// first, as the bbclass sends them.
#[derive(Debug, Multipart)]
#[allow(dead_code)] // documents the form; never built
pub struct SignModulesForm {
    /// Machine name; keys come from `<keyfile-uri>/<machine>/kmodsign/`.
    machine: SelectorField,
    /// Hash algorithm for the signatures; default `sha512`.
    #[oai(default = "default_hashalg")]
    hashalg: HashAlg,
    /// gzip-compressed tarball of a tree of kernel modules (e.g. `lib/modules/...`).
    artifact: SpooledUpload,
}

/// Upstream's default, and the bbclass's.
fn default_hashalg() -> HashAlg {
    HashAlg::Sha512
}

/// The text fields of a module signing request.
#[derive(Debug)]
pub struct ModuleFields {
    machine: SelectorField,
    hashalg: HashAlg,
}

impl StreamedForm for ModuleFields {
    type Documented = SignModulesForm;
    const TEXT_FIELDS: &'static [&'static str] = &["machine", "hashalg"];
    // Both, as the bbclass sends them: a `hashalg` after the file is
    // accepted as upstream accepts it (the file is spooled then).
    const BEFORE_FILE: &'static [&'static str] = &["machine", "hashalg"];
    const FILE_FIELD: &'static str = "artifact";

    fn parse(fields: &TextFields) -> Result<Self, ParseMultipartError> {
        Ok(Self {
            machine: fields.required("machine")?,
            hashalg: fields.optional("hashalg", default_hashalg)?,
        })
    }
}

#[derive(Tags)]
enum ApiTags {
    /// Linux kernel module signing (`kernel-module-signing.bbclass`).
    #[oai(rename = "kernel modules")]
    KernelModules,
}

/// The kernel module signing API.
pub struct KmodApi {
    keystore: KeyStore,
    workdir_base: std::path::PathBuf,
    limits: ArchiveLimits,
}

impl KmodApi {
    /// An API signing with keys from `keystore`, working under `workdir_base`.
    pub fn new(
        keystore: KeyStore,
        workdir_base: std::path::PathBuf,
        limits: ArchiveLimits,
    ) -> Self {
        Self {
            keystore,
            workdir_base,
            limits,
        }
    }
}

#[OpenApi]
impl KmodApi {
    /// Sign kernel modules.
    ///
    /// Signs every regular `*.ko` file in the uploaded tarball with the
    /// machine's `kmodsign` keys (`kernel-signkey.priv`, `kernel-signkey.x509`),
    /// exactly as the kernel's `sign-file` would; a module that is already
    /// signed has its signature replaced. Every other entry (directories,
    /// symlinks, modes, mtimes) is returned unchanged. A tarball with no
    /// `*.ko` at all is refused with 422. Client: Yocto's
    /// `kernel-module-signing.bbclass`.
    #[oai(
        path = "/sign/modules",
        method = "post",
        tag = "ApiTags::KernelModules"
    )]
    async fn sign_modules(
        &self,
        form: Streamed<ModuleFields>,
    ) -> Result<SignedTarball, ServiceError> {
        self.sign(form.fields, form.artifact).await
    }
}

impl KmodApi {
    async fn sign(
        &self,
        form: ModuleFields,
        artifact: Artifact,
    ) -> Result<SignedTarball, ServiceError> {
        let started = std::time::Instant::now();
        let machine = form.machine.0;
        let hash = form.hashalg;
        let signer = self
            .keystore
            .parsed(&machine, SignType::Kmod, hash.name(), || async {
                let key = self
                    .keystore
                    .fetch(&machine, SignType::Kmod, &KeyFileName::parse(KEY_FILE)?)
                    .await?;
                let cert = self
                    .keystore
                    .fetch(&machine, SignType::Kmod, &KeyFileName::parse(CERT_FILE)?)
                    .await?;
                // Parsing, and the template's check (a CMS signature and a
                // bare one), is CPU work: off the async workers.
                let selector = machine.clone();
                tokio::task::spawn_blocking(move || {
                    ModuleSigner::new(key.bytes(), cert.bytes(), hash)
                        .map_err(|e| ServiceError::from(e.of(&selector)))
                })
                .await
                .map_err(|e| ServiceError::internal_from("preparing the module signer", e))?
            })
            .await?;

        let limits = self.limits;
        let (summary, reply) =
            sign_to_tarball(&self.workdir_base, artifact, move |input, out, workdir| {
                let input = std::io::BufReader::with_capacity(256 * 1024, input);
                sign_tarball(input, out, &signer, &limits, REPLY_GZIP_LEVEL, workdir)
            })
            .await?;
        if summary.modules == 0 {
            return Err(ServiceError::Unprocessable(
                "artifact contains no *.ko files to sign; send the modules tree, e.g. `tar -czf modules.tar.gz lib/modules`".into(),
            ));
        }
        tracing::info!(
            machine = %machine,
            hashalg = hash.name(),
            modules = summary.modules,
            entries = summary.entries,
            signing_ms = started.elapsed().as_millis() as u64,
            "signed modules"
        );
        Ok(reply)
    }
}
