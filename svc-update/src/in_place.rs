//! Replacing an artifact with its signed copy without ever leaving it
//! half-written: beside-and-rename for files, one complete PUT (or one
//! completed multipart upload) for S3 objects. Artifacts are streamed
//! between S3 and disk; memory does not grow with their size.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use tokio::io::AsyncWriteExt;

/// Why an artifact could not be read or replaced.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The object is not there (404).
    #[error("artifact {0} does not exist; upload the artifact there first")]
    Missing(String),
    /// The server's credentials or permissions do not reach it (500).
    #[error("this server is not allowed to read or write {location}: {detail}")]
    Denied {
        /// The artifact.
        location: String,
        /// What the store or file system said.
        detail: String,
    },
    /// The store did not answer (503).
    #[error("cannot reach {location}: {detail}")]
    Unreachable {
        /// The artifact.
        location: String,
        /// What failed.
        detail: String,
    },
    /// The file system holding the artifact filled up while its signed copy
    /// was written beside it or made durable (507).
    #[error("there is no room beside {location} for its signed copy: the file system holding it is full (or over its quota); make room there (the copy needs as much space as the artifact) and try again")]
    DiskFull {
        /// The artifact.
        location: String,
    },
    /// Anything else on the way (500).
    #[error("moving {location}: {detail}")]
    Failed {
        /// The artifact.
        location: String,
        /// What failed.
        detail: String,
    },
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to
/// disk (0 and 0: all of it), without waiting. Errors are ignored: this only
/// moves work earlier, the fsync still decides.
pub(crate) fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; the call only schedules I/O.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Starts writeback of every regular file in `dir`.
fn start_writeback_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let Ok(file) = std::fs::File::open(entry.path()) {
            start_writeback(&file, 0, 0);
        }
    }
}

/// How often the kernel is asked to write a signed copy out while the tool
/// makes it. At `mender-artifact`'s ~2 GB/s a tick is ~10 MB; every 20 ms
/// left ~45 ms of a 200 MB copy for the final fsync, every 5 ms ~38 ms
/// (measured beside bench/update.py; 2 ms gave no more). A tick is a directory read and a
/// `sync_file_range` per file, a few microseconds.
const WRITEBACK_TICK: std::time::Duration = std::time::Duration::from_millis(5);

/// A signed copy being made beside `target`: in a private hidden directory
/// in the same directory, so it can be renamed over the original, and so
/// whatever the tool writes on the way (`mender-artifact` makes its own
/// temporary file next to its output) goes with the directory when the
/// request ends, finished, failed or cancelled.
pub struct BesideCopy {
    target: PathBuf,
    /// Shared with a blocking task writing into it ([`BesideCopy::hold`]).
    dir: std::sync::Arc<tempfile::TempDir>,
}

impl BesideCopy {
    /// Makes `.<name>.<random>.digsig/` (0700) beside `target`.
    pub fn reserve(target: &Path) -> Result<Self, TransferError> {
        let denied = |e: io::Error| TransferError::Denied {
            location: format!("file://{}", target.display()),
            detail: format!("cannot create a directory beside it: {e}"),
        };
        let parent = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".digsig")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(denied)?;
        Ok(Self {
            target: target.to_path_buf(),
            dir: std::sync::Arc::new(dir),
        })
    }

    /// Keeps the directory until the returned handle is dropped too: given
    /// to a task writing the copy, so that a request that ends first does
    /// not remove the directory under it.
    pub fn hold(&self) -> std::sync::Arc<tempfile::TempDir> {
        std::sync::Arc::clone(&self.dir)
    }

    /// Where the signed copy is to be written.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("signed")
    }

    /// Runs `write` (the tool making the signed copy) while asking the
    /// kernel, every 5 ms (`WRITEBACK_TICK`), to start writing what it has written so far to
    /// disk (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait).
    /// Left alone, the kernel would hold a 200 MB copy in memory until
    /// [`replace_original`](Self::replace_original)'s fsync, which then
    /// waited for all of it; this way the disk works while the tool does,
    /// and the fsync, which stays, finds little left to do.
    ///
    /// The ticking runs inside this future, not as a task of its own, so it
    /// ends with `write` however the request ends (a cancelled or timed-out
    /// request drops both).
    pub async fn while_written<F: std::future::Future>(&self, write: F) -> F::Output {
        let dir = self.dir.path().to_path_buf();
        let flush = async move {
            let mut ticks = tokio::time::interval(WRITEBACK_TICK);
            loop {
                ticks.tick().await;
                let dir = dir.clone();
                let _ = tokio::task::spawn_blocking(move || start_writeback_in(&dir)).await;
            }
        };
        tokio::select! {
            out = write => out,
            never = flush => never,
        }
    }

    /// Gives the copy the original's mode (and owner, where allowed),
    /// flushes it to disk and renames it over the original.
    pub fn replace_original(self) -> Result<(), TransferError> {
        let failed = |e: io::Error| {
            let location = format!("file://{}", self.target.display());
            // A delayed-allocation file system may only find out at fsync.
            if servicekit::error::is_disk_full(&e) {
                return TransferError::DiskFull { location };
            }
            TransferError::Failed {
                location,
                detail: e.to_string(),
            }
        };
        let signed = self.path();
        let original = std::fs::metadata(&self.target).map_err(failed)?;
        let copy = std::fs::File::open(&signed).map_err(failed)?;
        copy.set_permissions(std::fs::Permissions::from_mode(original.mode() & 0o7777))
            .map_err(failed)?;
        // Only root may give a file away; anyone else keeps their own uid.
        let _ = std::os::unix::fs::fchown(&copy, Some(original.uid()), Some(original.gid()));
        copy.sync_all().map_err(failed)?;
        drop(copy);
        std::fs::rename(&signed, &self.target).map_err(failed)?;
        if let Some(parent) = self.target.parent() {
            // Make the rename itself durable.
            let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

/// How signed artifacts go back to S3.
#[derive(Debug, Clone, Copy)]
pub struct UploadPolicy {
    /// Larger artifacts go up as a multipart upload.
    pub multipart_threshold: u64,
    /// The size of each part but the last (S3's minimum is 5 MiB).
    pub part_size: u64,
}

impl Default for UploadPolicy {
    fn default() -> Self {
        Self {
            multipart_threshold: 256 << 20,
            part_size: 64 << 20,
        }
    }
}

fn s3_location(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

fn classify<E>(err: SdkError<E>, location: &str) -> TransferError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let location = location.to_string();
    let detail = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            TransferError::Unreachable { location, detail }
        }
        SdkError::ServiceError(service) => match service.err().code() {
            Some("NoSuchKey") | Some("NotFound") => TransferError::Missing(location),
            Some("NoSuchBucket") => TransferError::Missing(location),
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken",
            ) => TransferError::Denied { location, detail },
            _ => TransferError::Failed { location, detail },
        },
        _ => TransferError::Failed { location, detail },
    }
}

/// Streams `s3://bucket/key` into the new file `dest`.
pub async fn download(
    client: &Client,
    bucket: &str,
    key: &str,
    dest: &Path,
) -> Result<u64, TransferError> {
    let location = s3_location(bucket, key);
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(e, &location))?;
    let failed = |detail: String| TransferError::Failed {
        location: location.clone(),
        detail,
    };
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let mut body = object.body.into_async_read();
    let copied = tokio::io::copy(&mut body, &mut file)
        .await
        .map_err(|e| failed(format!("download broke off: {e}")))?;
    file.flush().await.map_err(|e| failed(e.to_string()))?;
    Ok(copied)
}

/// Replaces `s3://bucket/key` with the file `src`, streamed: one PUT up to
/// the policy's threshold, else one multipart upload, which S3 only makes
/// visible when it is completed. A failed multipart upload is aborted.
/// Returns the size uploaded.
pub async fn upload(
    client: &Client,
    bucket: &str,
    key: &str,
    src: &Path,
    policy: UploadPolicy,
) -> Result<u64, TransferError> {
    let location = s3_location(bucket, key);
    let failed = |detail: String| TransferError::Failed {
        location: location.clone(),
        detail,
    };
    let size = tokio::fs::metadata(src)
        .await
        .map_err(|e| failed(e.to_string()))?
        .len();
    if size <= policy.multipart_threshold {
        let body = ByteStream::from_path(src)
            .await
            .map_err(|e| failed(e.to_string()))?;
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_length(size as i64)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(e, &location))?;
        return Ok(size);
    }
    let created = client
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(e, &location))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| failed("the store returned no upload id".into()))?
        .to_string();
    let result = upload_parts(client, bucket, key, src, size, policy, &upload_id).await;
    if result.is_err() {
        let _ = client
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result.map(|()| size)
}

async fn upload_parts(
    client: &Client,
    bucket: &str,
    key: &str,
    src: &Path,
    size: u64,
    policy: UploadPolicy,
    upload_id: &str,
) -> Result<(), TransferError> {
    let location = s3_location(bucket, key);
    let mut parts = Vec::new();
    let mut offset = 0u64;
    let mut number = 1i32;
    while offset < size {
        let len = policy.part_size.min(size - offset);
        let body = ByteStream::read_from()
            .path(src)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .map_err(|e| TransferError::Failed {
                location: location.clone(),
                detail: e.to_string(),
            })?;
        let part = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(len as i64)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(e, &location))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
        offset += len;
        number += 1;
    }
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| classify(e, &location))?;
    Ok(())
}
