//! The tarball-in, tarball-out shape shared by the endpoints that sign a
//! tree (`/sign/modules`, `/sign/optee`): a private work dir, the spooled
//! upload read on a blocking thread, the signed tarball written there and
//! streamed back as `signed-artifact.tar.gz`, the work dir removed once the
//! reply is sent or the client is gone.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use poem::Body;
use poem_openapi::payload::Binary;
use poem_openapi::ApiResponse;

use crate::upload::{SpooledUpload, UploadReader};
use crate::{ServiceError, WorkDir};

/// Compression of replies: level 1 is several times faster than gzip's
/// default, and a reply is a transfer format (signatures do not compress).
pub const REPLY_GZIP_LEVEL: u32 = 1;

/// The reply's file name, as upstream names it.
pub const REPLY_NAME: &str = "signed-artifact.tar.gz";

/// Reply of an endpoint that returns the signed tree.
#[derive(ApiResponse)]
pub enum SignedTarball {
    /// The signed tree as a gzip tarball with `./` names
    /// (`signed-artifact.tar.gz`), as upstream's `tar -czf - .` writes it.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Signed(Binary<Body>, #[oai(header = "Content-Disposition")] String),
}

/// Runs `sign(input, output, workdir)` on a blocking thread, in a fresh work
/// dir under `workdir_base`: `input` is the spooled upload, `output` the
/// reply file, which `sign` hands back when done. Returns what `sign`
/// returned and the reply streaming the file.
pub async fn sign_to_tarball<T, F>(
    workdir_base: &Path,
    upload: SpooledUpload,
    sign: F,
) -> Result<(T, SignedTarball), ServiceError>
where
    T: Send + 'static,
    F: FnOnce(UploadReader, BufWriter<File>, &Path) -> Result<(T, BufWriter<File>), ServiceError>
        + Send
        + 'static,
{
    let work = WorkDir::for_request(workdir_base)?;
    // The upload is in memory or in an unlinked temp file; the signer reads
    // it with plain blocking reads.
    let mut input = upload.into_reader();
    let span = tracing::Span::current();
    let task_work = Arc::clone(&work);
    let audit = crate::audit::current_trail();
    let outcome = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        if let Some(trail) = audit {
            trail.add_file("artifact", &mut input).map_err(|e| {
                ServiceError::internal_from("reading the upload for the audit log", e)
            })?;
        }
        let out = File::create(task_work.path().join(REPLY_NAME))
            .map_err(|e| ServiceError::internal_from("cannot create the reply file", e))?;
        let (outcome, out) = sign(
            input,
            BufWriter::with_capacity(256 * 1024, out),
            task_work.path(),
        )?;
        out.into_inner()
            .map_err(|e| ServiceError::internal_from("writing the reply failed", e.into_error()))?;
        Ok::<_, ServiceError>(outcome)
    })
    .await
    .map_err(|e| ServiceError::internal_from("the signing task failed", e))??;
    let body = crate::workdir::stream_file(work, REPLY_NAME)
        .await
        .map_err(|e| ServiceError::internal_from("cannot read the reply file", e))?;
    Ok((
        outcome,
        SignedTarball::Signed(
            Binary(body),
            format!("attachment; filename=\"{REPLY_NAME}\""),
        ),
    ))
}
