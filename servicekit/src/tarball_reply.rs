//! The tarball-in, tarball-out shape shared by the endpoints that sign a
//! tree (`/sign/modules`, `/sign/optee`): a private work dir, the upload read
//! on a blocking thread as it arrives (or from its spool), the signed
//! tarball written there and streamed back as `signed-artifact.tar.gz`, the
//! work dir removed once the reply is sent or the client is gone.
//!
//! The reply is finished before its status is sent, so a tree found bad at
//! its end is still a 4xx with a message.

use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::path::Path;
use std::sync::Arc;

use poem::Body;
use poem_openapi::payload::Binary;
use poem_openapi::ApiResponse;

use crate::streamed_form::{Artifact, ArtifactSource};
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

/// The upload as the signer reads it: every byte read is hashed when the
/// request is audited.
pub struct ArtifactInput {
    source: ArtifactSource,
    hasher: Option<openssl::sha::Sha256>,
}

impl Read for ArtifactInput {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Runs `sign(input, output, workdir)` on a blocking thread, in a fresh work
/// dir under `workdir_base`: `input` is the upload (read while it arrives
/// when it is live), `output` the reply file, which `sign` hands back when
/// done. Returns what `sign` returned and the reply streaming the file.
///
/// Whatever `sign` leaves unread is read after it, to the upload's end, as
/// the whole form was read before signing when uploads were spooled: the
/// audit record hashes the whole upload, and a field after the file is
/// still checked.
pub async fn sign_to_tarball<T, F>(
    workdir_base: &Path,
    artifact: Artifact,
    sign: F,
) -> Result<(T, SignedTarball), ServiceError>
where
    T: Send + 'static,
    F: FnOnce(
            &mut ArtifactInput,
            BufWriter<File>,
            &Path,
        ) -> Result<(T, BufWriter<File>), ServiceError>
        + Send
        + 'static,
{
    let work = WorkDir::for_request(workdir_base)?;
    let (source, feed) = artifact.into_reader();
    let live = feed.is_some();
    let span = tracing::Span::current();
    let task_work = Arc::clone(&work);
    let audit = crate::audit::current_trail();
    let audited = audit.is_some();
    let signing = tokio::task::spawn_blocking(move || {
        let _enter = span.enter();
        let mut input = ArtifactInput {
            source,
            hasher: audited.then(openssl::sha::Sha256::new),
        };
        let outcome = (|| {
            let out = File::create(task_work.path().join(REPLY_NAME))
                .map_err(|e| ServiceError::internal_from("cannot create the reply file", e))?;
            let (outcome, out) = sign(
                &mut input,
                BufWriter::with_capacity(256 * 1024, out),
                task_work.path(),
            )?;
            out.into_inner().map_err(|e| {
                ServiceError::internal_from("writing the reply failed", e.into_error())
            })?;
            Ok::<_, ServiceError>(outcome)
        })();
        let rest = io::copy(&mut input, &mut io::sink());
        // Only a whole upload has a hash worth recording.
        let digest = match &rest {
            Ok(_) => input.hasher.take().map(openssl::sha::Sha256::finish),
            Err(_) => None,
        };
        let outcome = match (outcome, rest) {
            (Err(e), _) => Err(e),
            // A live upload that broke off is the client's (the form error
            // goes first, below); a spool that cannot be read is ours.
            (Ok(_), Err(e)) if live => Err(ServiceError::BadRequest(format!(
                "the artifact could not be read to its end: {e}"
            ))),
            (Ok(_), Err(e)) => Err(ServiceError::internal_from(
                "reading the spooled upload failed",
                e,
            )),
            (Ok(outcome), Ok(_)) => Ok(outcome),
        };
        (outcome, digest)
    });
    let (signed, fed) = match feed {
        Some(feed) => tokio::join!(signing, feed.run()),
        None => (signing.await, Ok(())),
    };
    let (outcome, digest) =
        signed.map_err(|e| ServiceError::internal_from("the signing task failed", e))?;
    if let (Some(trail), Some(digest), true) = (audit, digest, fed.is_ok()) {
        trail.add_sha256("artifact", digest);
    }
    // A broken form explains a failed signer: it goes first.
    fed?;
    let outcome = outcome?;
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
