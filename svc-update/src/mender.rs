//! Signing a Mender artifact where it lives: fetch (S3) or read (file) it,
//! sign it (natively for the artifacts `mender-artifact` writes, see
//! [`mender_native`]; with `mender-artifact sign` for the rest), put the
//! signed copy in its place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keystore::{KeyMaterial, S3Options};
use servicekit::config::ConfigError;
use servicekit::{ServiceError, WorkDir};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::artifact_uri::{AllowedUris, ArtifactUri, ALLOWED_URIS_VAR};
use crate::in_place::{self, BesideCopy, TransferError, UploadPolicy};
use crate::mender_native::{self, MenderKey, NativeError, Outcome};
use crate::mender_tool::{MenderTool, MenderToolError, MENDER_ARTIFACT_VAR};

/// How long `mender-artifact` may run on one artifact (the update domain's
/// timeout, as the gateway reads it).
pub const TIMEOUT_VAR: &str = "DIGSIGSERVER_UPDATE_TIMEOUT";

/// The Mender half of the service's settings.
#[derive(Debug, Clone)]
pub struct MenderConfig {
    /// `DIGSIGSERVER_MENDER_ALLOWED_URIS`: where artifacts may be signed.
    pub allowed: AllowedUris,
    /// `DIGSIGSERVER_MENDER_ARTIFACT`, or `mender-artifact` on PATH.
    pub tool: MenderTool,
    /// How `s3://` artifacts are reached (AWS defaults, `AWS_ENDPOINT_URL`).
    pub s3: S3Options,
    /// When signed artifacts go back as multipart uploads.
    pub upload: UploadPolicy,
    /// Where per-request directories go (`DIGSIGSERVER_WORKDIR`): an
    /// `s3://` artifact is downloaded there, so size it for two copies.
    pub workdir_base: PathBuf,
}

impl MenderConfig {
    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        workdir_base: PathBuf,
    ) -> Result<Self, ConfigError> {
        let list = lookup(ALLOWED_URIS_VAR).unwrap_or_default();
        let allowed = AllowedUris::parse(&list).map_err(|e| ConfigError {
            name: ALLOWED_URIS_VAR,
            value: e.entry().to_string(),
            reason: e.reason().into(),
        })?;
        let timeout = servicekit::config::timeout_setting(&lookup, TIMEOUT_VAR)?;
        let tool = MenderTool::locate(
            lookup(MENDER_ARTIFACT_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            timeout,
        );
        Ok(Self {
            allowed,
            tool,
            s3: S3Options {
                // Artifacts are hundreds of MB: allow an upload its time.
                operation_timeout: Duration::from_secs(3600),
                ..S3Options::default()
            },
            upload: UploadPolicy::default(),
            workdir_base,
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_env(workdir_base: PathBuf) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), workdir_base)
    }
}

/// Signs artifacts in place, as [`MenderConfig`] allows.
pub struct MenderSigner {
    config: MenderConfig,
    s3: OnceCell<aws_sdk_s3::Client>,
}

impl MenderSigner {
    /// A signer with `config`; an S3 client is made on first use.
    pub fn new(config: MenderConfig) -> Self {
        Self {
            config,
            s3: OnceCell::new(),
        }
    }

    /// Checks `uri` against the allowed locations; returns what to sign.
    pub async fn authorize(&self, uri: &str) -> Result<ArtifactUri, ServiceError> {
        let parsed = ArtifactUri::parse(uri)?;
        Ok(self.config.allowed.authorize(&parsed).await?)
    }

    /// Signs the artifact at `target` (from [`MenderSigner::authorize`])
    /// with `key` and replaces it with the signed copy. On any failure the
    /// original is left as it was.
    pub async fn sign(&self, target: &ArtifactUri, key: &KeyMaterial) -> Result<u64, ServiceError> {
        let started = Instant::now();
        // Checked first, whichever way the artifact is signed: a key the
        // tool cannot use is the operator's problem before any work is done.
        let signer = MenderKey::parse(key.bytes())?;
        let pem = signer
            .traditional_pem()
            .map_err(|e| ServiceError::internal_from("writing the key as PEM failed", e))?;
        let work = WorkDir::create(&self.config.workdir_base).map_err(|e| {
            ServiceError::Misconfigured(format!(
                "cannot create a work directory under {}: {e}",
                self.config.workdir_base.display()
            ))
        })?;
        let shown = target.to_string();
        let bytes = match target {
            ArtifactUri::File(path) => {
                let copy = BesideCopy::reserve(path)?;
                audit_file("artifact-before", path).await?;
                if !signed_natively(path, &copy.path(), signer, copy.hold(), Some(&shown)).await? {
                    let key_file = key_file(&pem, &work)?;
                    copy.while_written(self.config.tool.sign(
                        path,
                        key_file.path(),
                        &copy.path(),
                        &shown,
                    ))
                    .await?;
                }
                audit_file("artifact-after", &copy.path()).await?;
                let size = std::fs::metadata(copy.path()).map(|m| m.len()).unwrap_or(0);
                tokio::task::spawn_blocking(move || copy.replace_original())
                    .await
                    .map_err(ServiceError::internal)??;
                size
            }
            ArtifactUri::S3 {
                bucket,
                key: object,
            } => {
                let client = self
                    .s3
                    .get_or_init(|| keystore::s3_client(&self.config.s3))
                    .await;
                let unsigned = work.path().join("unsigned.mender");
                let signed = work.path().join("signed.mender");
                in_place::download(client, bucket, object, &unsigned).await?;
                audit_file("artifact-before", &unsigned).await?;
                if !signed_natively(&unsigned, &signed, signer, Arc::clone(&work), None).await? {
                    let key_file = key_file(&pem, &work)?;
                    self.config
                        .tool
                        .sign(&unsigned, key_file.path(), &signed, &shown)
                        .await?;
                }
                audit_file("artifact-after", &signed).await?;
                in_place::upload(client, bucket, object, &signed, self.config.upload).await?
            }
        };
        tracing::info!(artifact = ?shown, bytes, elapsed_ms = started.elapsed().as_millis() as u64, "signed Mender artifact in place");
        Ok(bytes)
    }
}

/// The key as `mender-artifact` reads it, in a private file in `work`.
fn key_file(pem: &[u8], work: &WorkDir) -> Result<keystore::TempKeyFile, ServiceError> {
    KeyMaterial::new("private.key", pem.to_vec())
        .to_temp_file(work.path())
        .map_err(ServiceError::internal)
}

/// Makes the signed copy of `input` at `output` here, for an artifact that
/// `mender-artifact` wrote ([`mender_native`]); `false` if the tool must.
/// `hold` keeps the directory `output` is in until the copy has stopped;
/// `beside` names the artifact when that directory is beside it (`file://`),
/// not in the work dir, so that a full disk is reported where it is.
async fn signed_natively(
    input: &Path,
    output: &Path,
    key: MenderKey,
    hold: impl Send + 'static,
    beside: Option<&str>,
) -> Result<bool, ServiceError> {
    // Cancelled when this future ends, finished or dropped with the
    // request, so that a cancelled request's copy stops within a chunk.
    let cancelled = CancellationToken::new();
    let _cancel_on_drop = cancelled.clone().drop_guard();
    let (input, output) = (input.to_path_buf(), output.to_path_buf());
    let outcome = tokio::task::spawn_blocking(move || {
        let _hold = hold;
        mender_native::sign_file(&input, &output, &key, &cancelled)
    })
    .await
    .map_err(ServiceError::internal)?;
    match outcome {
        Ok(Outcome::Signed) => Ok(true),
        Ok(Outcome::UseTool) => Ok(false),
        Ok(Outcome::AlreadySigned) => Err(MenderToolError::AlreadySigned.into()),
        Err(NativeError::Write(e)) => match beside {
            Some(location) if servicekit::error::is_disk_full(&e) => Err(TransferError::DiskFull {
                location: location.to_string(),
            }
            .into()),
            // The io::Error itself, so that a full work dir is a 507 too.
            _ => Err(ServiceError::internal_from(
                "writing the signed artifact failed",
                e,
            )),
        },
        Err(e) => Err(ServiceError::internal_from(
            "signing the artifact natively failed",
            e,
        )),
    }
}

/// Records the artifact's SHA-256 for the audit log (before and after
/// signing), when the request is audited.
async fn audit_file(field: &str, path: &std::path::Path) -> Result<(), ServiceError> {
    servicekit::audit::record_file(field, path)
        .await
        .map_err(|e| ServiceError::internal_from("reading the artifact for the audit log", e))
}
