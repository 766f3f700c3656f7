//! `POST /sign/modules`, wire-compatible with upstream digsigserver.

use std::sync::Arc;

use keystore::{KeyFileName, KeyStore, Selector, SignType};
use poem::Body;
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, OpenApi, Tags};
use servicekit::{ArchiveLimits, ServiceError, WorkDir};

use crate::sign_tree::sign_tarball;
use crate::signer::{HashAlg, ModuleSigner};

/// Compression of the reply: level 1 is several times faster than gzip's
/// default and modules still shrink well; the reply is a transfer format.
const REPLY_GZIP_LEVEL: u32 = 1;

/// Form fields of a module signing request.
#[derive(Debug, Multipart)]
pub struct SignModulesForm {
    /// Machine name; keys come from `<keyfile-uri>/<machine>/kmodsign/`.
    machine: String,
    /// Hash algorithm for the signatures; default `sha512`.
    #[oai(default = "default_hashalg")]
    hashalg: HashAlg,
    /// gzip-compressed tarball of a tree of kernel modules (e.g. `lib/modules/...`).
    artifact: Upload,
}

/// Upstream's default, and the bbclass's.
fn default_hashalg() -> HashAlg {
    HashAlg::Sha512
}

/// Replies of `POST /sign/modules`.
#[derive(ApiResponse)]
pub enum SignModulesResponse {
    /// The same tree with every `*.ko` signed, as a gzip tarball with `./` names.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Signed(Binary<Body>, #[oai(header = "Content-Disposition")] String),
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
        form: SignModulesForm,
    ) -> Result<SignModulesResponse, ServiceError> {
        self.sign(form).await
    }
}

impl KmodApi {
    async fn sign(&self, form: SignModulesForm) -> Result<SignModulesResponse, ServiceError> {
        let started = std::time::Instant::now();
        let machine = Selector::parse(&form.machine)?;
        let hash = form.hashalg;
        let key = self
            .keystore
            .fetch(
                &machine,
                SignType::Kmod,
                &KeyFileName::parse("kernel-signkey.priv")?,
            )
            .await?;
        let cert = self
            .keystore
            .fetch(
                &machine,
                SignType::Kmod,
                &KeyFileName::parse("kernel-signkey.x509")?,
            )
            .await?;
        let signer = ModuleSigner::new(key.bytes(), cert.bytes(), hash).map_err(|e| {
            ServiceError::Misconfigured(format!("machine '{machine}' kmodsign keys: {e}"))
        })?;
        drop((key, cert));

        let work = WorkDir::create(&self.workdir_base).map_err(ServiceError::internal)?;
        let out_path = work.path().join("signed-artifact.tar.gz");
        // The HTTP layer has spooled the upload to an unlinked temp file; read
        // it with plain blocking reads (a tokio file would cost a thread-pool
        // round trip per small read).
        let input = std::io::BufReader::with_capacity(
            256 * 1024,
            form.artifact.into_file().into_std().await,
        );
        let limits = self.limits;
        let span = tracing::Span::current();
        let task_work = Arc::clone(&work);
        let summary = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let out = std::fs::File::create(&out_path).map_err(ServiceError::internal)?;
            let (summary, out) = sign_tarball(
                input,
                std::io::BufWriter::new(out),
                &signer,
                &limits,
                REPLY_GZIP_LEVEL,
                task_work.path(),
            )?;
            out.into_inner()
                .map_err(|e| ServiceError::internal(e.error()))?
                .sync_data()
                .ok();
            Ok::<_, ServiceError>(summary)
        })
        .await
        .map_err(ServiceError::internal)??;
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
        let body = servicekit::workdir::stream_file(work, "signed-artifact.tar.gz")
            .await
            .map_err(ServiceError::internal)?;
        Ok(SignModulesResponse::Signed(
            Binary(body),
            "attachment; filename=\"signed-artifact.tar.gz\"".into(),
        ))
    }
}
