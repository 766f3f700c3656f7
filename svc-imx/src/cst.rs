//! NXP's Code Signing Tool: where the installed versions are, and one run
//! of `cst` through servicekit's vendor-tool runner.
//!
//! Versions sit side by side as NXP's releases unpack:
//! `<base>/cst-<version>/linux64/bin/cst` (base `DIGSIGSERVER_IMX_CST_BASE`,
//! default `/opt/NXP`). The request's `cstversion` is looked up in the list
//! of installed ones, never joined onto a path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use servicekit::{ToolError, ToolRun};

/// The variable naming the directory CST versions are installed under.
pub const CST_BASE_VAR: &str = "DIGSIGSERVER_IMX_CST_BASE";

/// Where CST versions are, unless [`CST_BASE_VAR`] says otherwise (upstream's
/// default).
pub const DEFAULT_CST_BASE: &str = "/opt/NXP";

/// The CST versions under one base directory.
#[derive(Debug, Clone)]
pub struct CstInstalls {
    base: PathBuf,
    timeout: Duration,
}

/// Why no `cst` could be chosen for a request.
#[derive(Debug, thiserror::Error)]
pub enum CstLookupError {
    /// The request names a version that is not installed (400).
    #[error("cstversion '{asked}' is not installed here; installed: {}", installed.join(", "))]
    Unknown {
        /// The version asked for.
        asked: String,
        /// The versions installed.
        installed: Vec<String>,
    },
    /// None is installed at all: the operator's to fix (500).
    #[error("no NXP Code Signing Tool is installed: install one as <{CST_BASE_VAR}>/cst-<version>/linux64/bin/cst (svc-imx/cst/install-cst does, from Debian's imx-code-signing-tool)")]
    NoneInstalled,
}

/// Why `cst` did not make a CSF blob.
#[derive(Debug, thiserror::Error)]
pub enum CstError {
    /// `cst` refused the request's CSF, certificates or data (422): its
    /// message, with the work dir's path taken out.
    #[error("cst could not sign with this CSF: {0}")]
    Rejected(String),
    /// `cst` is missing, crashed, hung or could not be started (500).
    #[error("cst failed on the server: {reason}{}", if output.is_empty() { String::new() } else { format!(": {output}") })]
    Failed {
        /// What went wrong.
        reason: String,
        /// What it printed, scrubbed.
        output: String,
    },
}

impl CstInstalls {
    /// The versions under `base`; a run may take `timeout`.
    pub fn new(base: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            base: base.into(),
            timeout,
        }
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Every installed version, sorted (read afresh: an operator may add one
    /// without a restart).
    pub fn versions(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return Vec::new();
        };
        let mut versions: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let version = name.strip_prefix("cst-")?.to_string();
                self.program_path(&version).is_file().then_some(version)
            })
            .collect();
        versions.sort();
        versions
    }

    /// The `cst` of version `asked`, if that is installed.
    pub fn program(&self, asked: &str) -> Result<PathBuf, CstLookupError> {
        let installed = self.versions();
        if installed.is_empty() {
            return Err(CstLookupError::NoneInstalled);
        }
        match installed.iter().find(|v| v.as_str() == asked) {
            Some(version) => Ok(self.program_path(version)),
            None => Err(CstLookupError::Unknown {
                asked: asked.chars().take(64).collect(),
                installed,
            }),
        }
    }

    fn program_path(&self, version: &str) -> PathBuf {
        self.base
            .join(format!("cst-{version}"))
            .join("linux64/bin/cst")
    }

    /// Runs `cst -i <csf> -o <output>` in `dir` (the request's, holding the
    /// keys, the CSF and the artifact).
    pub async fn sign(
        &self,
        program: &Path,
        dir: &Path,
        csf: &str,
        output: &Path,
    ) -> Result<(), CstError> {
        let result = ToolRun::new(program, dir)
            .args(["-i", csf, "-o"])
            .arg(output)
            .timeout(self.timeout)
            .run()
            .await;
        // Messages show paths relative to the work dir, and `cst` for the
        // tool's own path.
        let program_path = program.to_string_lossy();
        let scrub_text = |text: String| {
            let text = match output.parent() {
                Some(parent) => servicekit::vendor_tool::scrub_paths(&text, parent),
                None => text,
            };
            text.replace(&*program_path, "cst")
        };
        let scrub = |err: &ToolError| {
            err.output()
                .map(|o| scrub_text(o.message(dir)))
                .unwrap_or_default()
        };
        match result {
            Ok(_) if output.is_file() => Ok(()),
            Ok(out) => Err(CstError::Failed {
                reason: "cst exited 0 but wrote no CSF blob".into(),
                output: scrub_text(out.message(dir)),
            }),
            // 126/127: the shell wrapper could not run cst itself.
            Err(err @ ToolError::Exited { code, .. }) if code != 126 && code != 127 => {
                let message = complaint(&scrub(&err));
                Err(CstError::Rejected(if message.is_empty() {
                    err.to_string()
                } else {
                    message
                }))
            }
            // cst 3.3.1 aborts (SIGABRT, a double free) after reporting a
            // syntax error: the report is what the client needs.
            Err(err @ ToolError::Signalled { .. }) if scrub(&err).contains("syntax error") => {
                Err(CstError::Rejected(complaint(&scrub(&err))))
            }
            Err(err) => Err(CstError::Failed {
                output: scrub(&err),
                reason: err.to_string(),
            }),
        }
    }
}

/// `cst`'s complaint as one line: it prints each CSF command as it processes
/// it, then what went wrong, so the last line is the complaint and the one
/// before it the command it was about.
fn complaint(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [only] => only.to_string(),
        [.., command, last] => format!("{last} (at [{command}])"),
    }
}

#[cfg(test)]
mod tests {
    use super::complaint;

    #[test]
    fn a_complaint_is_its_last_line_and_the_command_it_was_about() {
        assert_eq!(
            complaint("Install SRK\nInstall CSFK\nAuthenticate CSF\nInstall key\nPublic key certificate is invalid in file crts/x.pem\n"),
            "Public key certificate is invalid in file crts/x.pem (at [Install key])"
        );
        assert_eq!(
            complaint("error: line 17: syntax error"),
            "error: line 17: syntax error"
        );
        assert_eq!(complaint("\n \n"), "");
    }
}
