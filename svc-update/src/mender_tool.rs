//! Running `mender-artifact sign`, the vendor tool, and giving it a key in
//! the one form it reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keystore::SignType;
use openssl::pkey::Id;
use servicekit::private_key::{key_type_name, KeyProblem, UnusableKey};
use servicekit::{ToolError, ToolRun};
use zeroize::Zeroizing;

/// The variable naming the `mender-artifact` binary (default: found on PATH).
pub const MENDER_ARTIFACT_VAR: &str = "DIGSIGSERVER_MENDER_ARTIFACT";

/// Rewrites a PEM private key in the "traditional" form `mender-artifact`
/// 3.9 insists on (`BEGIN RSA PRIVATE KEY` / `BEGIN EC PRIVATE KEY`): it
/// refuses PKCS#8 (`BEGIN PRIVATE KEY`), which is what `openssl genpkey`
/// writes today. The bytes are wiped when dropped.
pub fn traditional_pem(key: &[u8]) -> Result<Zeroizing<Vec<u8>>, UnusableKey> {
    let unusable = |problem| UnusableKey::new(SignType::Mender, "private.key", problem);
    let pkey = servicekit::private_key::parse(key).map_err(|_| unusable(KeyProblem::NotAKey))?;
    let pem = match pkey.id() {
        Id::RSA => pkey.rsa().and_then(|k| k.private_key_to_pem()),
        Id::EC => pkey.ec_key().and_then(|k| k.private_key_to_pem()),
        other => {
            return Err(unusable(KeyProblem::WrongType {
                found: key_type_name(other),
                needs: "Mender artifacts are signed with RSA or ECDSA keys",
            }))
        }
    };
    pem.map(Zeroizing::new)
        .map_err(|_| unusable(KeyProblem::NotAKey))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;

    #[test]
    fn pkcs8_keys_become_traditional_pem() {
        let rsa = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let pkcs8 = rsa.private_key_to_pem_pkcs8().unwrap();
        assert!(pkcs8.starts_with(b"-----BEGIN PRIVATE KEY-----"));
        let pem = traditional_pem(&pkcs8).unwrap();
        assert!(pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));

        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let pem = traditional_pem(&ec.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert!(pem.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
    }

    #[test]
    fn other_keys_are_refused_by_type() {
        let ed = PKey::generate_ed25519().unwrap();
        let err = traditional_pem(&ed.private_key_to_pem_pkcs8().unwrap()).unwrap_err();
        assert!(err.to_string().contains("Ed25519"), "{err}");
        assert!(matches!(
            traditional_pem(b"-----BEGIN CERTIFICATE-----\n").map_err(|e| e.problem),
            Err(KeyProblem::NotAKey)
        ));
    }
}
