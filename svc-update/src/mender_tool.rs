//! Running `mender-artifact sign`, the vendor tool (its key in the one form
//! it reads comes from `MenderKey::traditional_pem`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use servicekit::{ToolError, ToolRun};

/// The variable naming the `mender-artifact` binary (default: found on PATH).
pub const MENDER_ARTIFACT_VAR: &str = "DIGSIGSERVER_MENDER_ARTIFACT";

/// Why `mender-artifact sign` did not produce a signed artifact.
#[derive(Debug, thiserror::Error)]
pub enum MenderToolError {
    /// The binary is not installed where we looked (500).
    #[error("mender-artifact is not installed: install Debian's mender-artifact package or set {MENDER_ARTIFACT_VAR} to its path")]
    NotInstalled,
    /// The artifact was signed before; `mender-artifact` refuses (422).
    #[error("the artifact is already signed (it has a manifest.sig); it is not signed again: upload the unsigned artifact")]
    AlreadySigned,
    /// The tool ran out of room for its output (507).
    #[error("mender-artifact could not write the signed copy: the file system it writes to (beside a file:// artifact, the work dir for s3://) is full or over its quota; make room and try again ({0})")]
    DiskFull(String),
    /// The tool rejected the input, most likely not a Mender artifact (422).
    #[error("mender-artifact could not sign the artifact: {0}")]
    Rejected(String),
    /// The tool crashed, hung or could not be started (500).
    #[error("mender-artifact failed on the server: {0}")]
    Failed(#[source] ToolError),
}

/// The `mender-artifact` binary.
#[derive(Debug, Clone)]
pub struct MenderTool {
    path: Option<PathBuf>,
    timeout: Duration,
}

impl MenderTool {
    /// `configured` if given, else `mender-artifact` on PATH; a signing may
    /// run for `timeout`.
    pub fn locate(configured: Option<PathBuf>, timeout: Duration) -> Self {
        let path = configured.or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("mender-artifact"))
                    .find(|candidate| candidate.is_file())
            })
        });
        Self { path, timeout }
    }

    /// Where the binary is, for readiness reports.
    pub fn path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("mender-artifact (not found on PATH)"))
    }

    /// Runs `mender-artifact sign input -k key -o output` with servicekit's
    /// vendor-tool runner, in `output`'s (private) directory. The tool writes
    /// a temporary file there and renames it, so `output` is either absent or
    /// complete. Messages name `input` as `shown`, never the server's paths.
    pub async fn sign(
        &self,
        input: &Path,
        key: &Path,
        output: &Path,
        shown: &str,
    ) -> Result<(), MenderToolError> {
        let program = self.path.as_ref().ok_or(MenderToolError::NotInstalled)?;
        let workdir = output.parent().unwrap_or(Path::new("."));
        let result = ToolRun::new(program, workdir)
            .arg("sign")
            .arg(input)
            .arg("-k")
            .arg(key)
            .arg("-o")
            .arg(output)
            .timeout(self.timeout)
            .run()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(ToolError::NotFound { .. }) => return Err(MenderToolError::NotInstalled),
            Err(err @ ToolError::Exited { .. }) => err,
            Err(err) => return Err(MenderToolError::Failed(err)),
        };
        let output_text = err.output().map(|o| o.message(workdir)).unwrap_or_default();
        if output_text.contains("already signed") {
            return Err(MenderToolError::AlreadySigned);
        }
        let message = output_text
            .replace(&*input.to_string_lossy(), shown)
            .replace(&*key.to_string_lossy(), "<key>");
        // Go's words for ENOSPC and EDQUOT: the server's disk, not the
        // client's artifact.
        let lower = message.to_lowercase();
        if lower.contains("no space left on device") || lower.contains("disk quota exceeded") {
            return Err(MenderToolError::DiskFull(
                message
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            ));
        }
        Err(MenderToolError::Rejected(if message.is_empty() {
            err.to_string()
        } else {
            message
        }))
    }
}
