//! A private working directory for one request.
//!
//! Removed when the last handle drops: on success, on error, on panic (drop
//! runs while unwinding) and when the client disconnects (the handler future is
//! dropped). Blocking tasks hold an `Arc<WorkDir>`, so a directory is never
//! removed under a task still writing into it, and never outlives the last one.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

/// A per-request directory (mode 0700) under the configured base.
#[derive(Debug)]
pub struct WorkDir {
    dir: tempfile::TempDir,
}

impl WorkDir {
    /// Creates a fresh directory under `base`.
    pub fn create(base: &Path) -> io::Result<Arc<Self>> {
        let dir = tempfile::Builder::new()
            .prefix("digsig-req-")
            .permissions(fs::Permissions::from_mode(0o700))
            .tempdir_in(base)?;
        Ok(Arc::new(Self { dir }))
    }

    /// Creates a request's work dir under `base`; failing is the operator's
    /// problem (the same 500 in every domain): the base is missing, full or
    /// not writable. The client's message does not show the server's path;
    /// the log does.
    pub fn for_request(base: &Path) -> Result<Arc<Self>, crate::ServiceError> {
        Self::create(base).map_err(|e| {
            tracing::error!(base = %base.display(), error = %e, "cannot create a request work directory");
            if crate::error::is_disk_full(&e) {
                return crate::ServiceError::disk_full("creating the request's work directory");
            }
            crate::ServiceError::Misconfigured(format!(
                "cannot create a request work directory (DIGSIGSERVER_WORKDIR): {e}"
            ))
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A response body streaming the file `name` from `work`; the directory lives
/// until the body is dropped (sent, or the client went away).
pub async fn stream_file(work: Arc<WorkDir>, name: &str) -> io::Result<poem::Body> {
    let file = tokio::fs::File::open(work.path().join(name)).await?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let held = futures_util::StreamExt::map(stream, move |chunk| {
        let _ = &work;
        chunk
    });
    Ok(poem::Body::from_bytes_stream(held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_when_last_handle_drops_even_on_panic() {
        let base = tempfile::tempdir().unwrap();
        let work = WorkDir::create(base.path()).unwrap();
        let path = work.path().to_path_buf();
        fs::write(path.join("f"), b"x").unwrap();
        let held = Arc::clone(&work);
        let result = std::thread::spawn(move || {
            let _held = held;
            panic!("signer crashed");
        })
        .join();
        assert!(result.is_err());
        assert!(path.exists(), "still held by the request");
        drop(work);
        assert!(!path.exists());
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
    }
}
