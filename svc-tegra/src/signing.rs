//! One signing run over a prepared flash package: the helper runs of the
//! request's mode, then the package pruned to what upstream returns.
//!
//! Modes, chosen by the MANIFEST as upstream chooses them:
//! - `BUPGENSPECS`: one `--bup` flash-helper run per spec; the `payloads*`
//!   files come back;
//! - `SIGNFILES`: one `tegra-signimage-helper` run over the listed files;
//!   their `.sig` files come back;
//! - otherwise the flash package (`--no-flash`): what the helper made comes
//!   back (`flashcmd.txt`, the signed binaries), without the inputs, the
//!   tools, the intermediate directories or any key.
//!
//! A helper that exits 0 without its expected outputs is a failure naming
//! what is missing (upstream returned such packages with 200, issue #20).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use servicekit::vendor_tool::{scrub_paths, ToolError, ToolRun};

use crate::bsp::{BspVersion, TegraSoc, ToolSet};
use crate::helper_args::{flash_helper, signimage_helper, ArgsError, HelperRun, KeyPaths};
use crate::manifest::{Manifest, UploadPath};
use crate::upload::remove_any;

/// Which of the three modes a MANIFEST asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bootloader update payloads, one run per `BUPGENSPECS` spec.
    BupSpecs,
    /// `SIGNFILES`: detached signatures.
    SignFiles,
    /// The flash package; with the legacy `BUPGEN` key, only its payloads.
    FlashPackage,
}

impl Mode {
    /// The mode `manifest` asks for (`BUPGENSPECS` wins, then `SIGNFILES`).
    pub fn of(manifest: &Manifest) -> Self {
        if manifest.bup_specs.is_some() {
            Mode::BupSpecs
        } else if manifest.sign_files.is_some() {
            Mode::SignFiles
        } else {
            Mode::FlashPackage
        }
    }

    /// As logs name it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::BupSpecs => "bup",
            Mode::SignFiles => "signfiles",
            Mode::FlashPackage => "flash",
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The MANIFEST cannot make a command line (400).
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// `SIGNFILES` with a BSP whose tools have no `tegra-signimage-helper`
    /// (400).
    #[error("SIGNFILES needs tegra-signimage-helper, which L4T {0} for {1} does not have (it comes with tegrasign_v3: R32.5 and later, not tegra210)")]
    NoSignImage(BspVersion, &'static str),
    /// The helper refused the package (422): its own words.
    #[error("{program} failed (exit status {code}): {message}")]
    Refused {
        /// The helper.
        program: String,
        /// Its exit status.
        code: i32,
        /// The end of what it printed.
        message: String,
    },
    /// The helper could not run, crashed or ran out of time (500).
    #[error("{reason}{}", if output.is_empty() { String::new() } else { format!(": {output}") })]
    Failed {
        /// What happened.
        reason: String,
        /// The end of what it printed.
        output: String,
    },
    /// The helper exited 0 without its outputs (500).
    #[error("{program} exited 0 but did not produce {missing}: nothing is returned (check the BSP's tools; L4T R35.4.1's tegraparser_v2 is known to skip flash.idx)")]
    MissingOutput {
        /// The helper.
        program: String,
        /// What is missing.
        missing: String,
    },
    /// Pruning or rewriting the package failed (500).
    #[error("collecting the signed files failed: {0}")]
    Io(#[from] io::Error),
}

/// Everything a run needs besides the MANIFEST.
#[derive(Debug, Clone)]
pub struct SigningJob {
    /// The SoC family asked for.
    pub soc: TegraSoc,
    /// The BSP version asked for.
    pub version: BspVersion,
    /// The BSP's `Linux_for_Tegra`.
    pub bsp: PathBuf,
    /// What of it the run uses.
    pub tools: ToolSet,
    /// The machine name (a checked selector).
    pub machine: String,
    /// The unpacked, prepared package: the helpers' working directory.
    pub package: PathBuf,
    /// The key files, outside the package.
    pub keys: KeyPaths,
    /// How long one helper run may take.
    pub timeout: Duration,
    /// The request's work dir, scrubbed from messages.
    pub workdir: PathBuf,
}

/// Lines of a helper's output a failure message keeps.
const MESSAGE_LINES: usize = 20;

impl SigningJob {
    /// Runs `manifest`'s mode and prunes the package to what is returned.
    pub async fn run(&self, manifest: &Manifest) -> Result<Mode, SigningError> {
        let mode = Mode::of(manifest);
        // Upstream: everything present before the helper ran (inputs, the
        // tools, the links) is not returned in flash mode.
        let before = top_level_names(&self.package)?;
        match mode {
            Mode::BupSpecs => {
                for spec in manifest.bup_specs.iter().flatten() {
                    let run = flash_helper(
                        self.soc,
                        self.version,
                        &self.machine,
                        manifest,
                        &self.keys,
                        Some(spec),
                    )?;
                    self.run_helper(run).await?;
                }
                self.keep_payloads()?;
            }
            Mode::SignFiles => {
                if !self.tools.tegrasign_v3 {
                    return Err(SigningError::NoSignImage(self.version, self.soc.name()));
                }
                let files = manifest.sign_files.as_deref().unwrap_or_default();
                let run = signimage_helper(self.soc, &self.keys, files);
                let program = run.program.clone();
                self.run_helper(run).await?;
                self.keep_signatures(&program, files)?;
            }
            Mode::FlashPackage => {
                let mut run = flash_helper(
                    self.soc,
                    self.version,
                    &self.machine,
                    manifest,
                    &self.keys,
                    None,
                )?;
                if manifest.bupgen_legacy {
                    // R32.4's helpers make payloads in --no-flash runs when
                    // BUPGEN is set.
                    run.env.push(("BUPGEN", "1".into()));
                }
                let program = run.program.clone();
                self.run_helper(run).await?;
                if manifest.bupgen_legacy {
                    self.keep_payloads()?;
                } else {
                    self.keep_flash_outputs(&program, manifest, &before)?;
                }
            }
        }
        Ok(mode)
    }

    async fn run_helper(&self, run: HelperRun) -> Result<(), SigningError> {
        let tools = self.package.join("_tools");
        // The helper is the BSP's copy in `_tools`, by its full path: never
        // a name the package could provide.
        let program = [
            tools.join(&run.program),
            tools.join("bootloader").join(&run.program),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| SigningError::Failed {
            reason: format!(
                "server misconfiguration: the L4T BSP {} for {} has no {}",
                self.version,
                self.soc.name(),
                run.program
            ),
            output: String::new(),
        })?;
        // Upstream's PATH: the copied tools, then the BSP's own (for the
        // binaries not copied: tegrabct_v2, tegrahost_v2, ...), then the
        // system's. The package directory is not on it.
        let mut tool = ToolRun::new(program, &self.package)
            .path_prepend(&tools)
            .path_prepend(tools.join("bootloader"))
            .path_prepend(&self.bsp)
            .path_prepend(self.bsp.join("bootloader"))
            .args(&run.args)
            .env("MACHINE", &self.machine)
            .timeout(self.timeout);
        for (name, value) in &run.env {
            tool = tool.env(name, value);
        }
        let scrub = |mut text: String| {
            for dir in self.server_dirs() {
                text = scrub_paths(&text, &dir);
            }
            text
        };
        let tail = |err: &ToolError| {
            err.output()
                .map(|o| last_lines(&scrub(o.message(&self.package)), MESSAGE_LINES))
                .unwrap_or_default()
        };
        match tool.run().await {
            Ok(_) => Ok(()),
            // 126/127, or a tool or Python module missing: the BSP's (or the
            // image's) to fix, not the client's.
            Err(err @ ToolError::Exited { code, .. })
                if code != 126 && code != 127 && !operator_fault(&tail(&err)) =>
            {
                Err(SigningError::Refused {
                    program: run.program,
                    code,
                    message: tail(&err),
                })
            }
            Err(err) => Err(SigningError::Failed {
                output: tail(&err),
                reason: err.to_string(),
            }),
        }
    }

    /// Bootloader update payloads: only the `payloads*` entries stay.
    fn keep_payloads(&self) -> Result<(), SigningError> {
        let names = top_level_names(&self.package)?;
        if !names.iter().any(|n| n.starts_with("payloads")) {
            return Err(SigningError::MissingOutput {
                program: format!("{}-flash-helper", self.soc.name()),
                missing: "any payloads* file".into(),
            });
        }
        for name in names.iter().filter(|n| !n.starts_with("payloads")) {
            remove_any(&self.package.join(name))?;
        }
        Ok(())
    }

    /// `SIGNFILES`: only each file's `.sig` stays, each required.
    fn keep_signatures(&self, program: &str, files: &[UploadPath]) -> Result<(), SigningError> {
        let wanted: BTreeSet<PathBuf> = files
            .iter()
            .map(|f| PathBuf::from(format!("{}.sig", f.as_str())))
            .collect();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|w| !fs::symlink_metadata(self.package.join(w)).is_ok_and(|m| m.is_file()))
            .map(|w| w.display().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(SigningError::MissingOutput {
                program: program.to_string(),
                missing: missing.join(", "),
            });
        }
        prune(&self.package, Path::new(""), &wanted)?;
        Ok(())
    }

    /// The flash package: what the helper made, less the inputs, the tools
    /// and upstream's list of intermediate files.
    fn keep_flash_outputs(
        &self,
        program: &str,
        manifest: &Manifest,
        before: &BTreeSet<String>,
    ) -> Result<(), SigningError> {
        let mut expected = vec!["flashcmd.txt"];
        if self.version.major >= 35 {
            expected.push("flash.idx");
        }
        let missing: Vec<&str> = expected
            .into_iter()
            .filter(|f| !fs::symlink_metadata(self.package.join(f)).is_ok_and(|m| m.is_file()))
            .collect();
        if !missing.is_empty() {
            return Err(SigningError::MissingOutput {
                program: program.to_string(),
                missing: missing.join(", "),
            });
        }
        let mut remove: BTreeSet<String> = before.clone();
        remove.extend(
            [
                "signed",
                "encrypted_signed",
                "flash.xml.tmp",
                ".home",
                ".tmp",
            ]
            .map(String::from),
        );
        if self.soc != TegraSoc::Tegra210 {
            remove.insert("flash.xml".into());
            if !self.tools.encrypted_kernel {
                // The bootloader boots the signed kernel, not this copy.
                if let Some(kernel) = &manifest.kernel_file {
                    remove.insert(encrypted_kernel_name(kernel.as_str()));
                }
            }
        }
        for name in &remove {
            remove_any(&self.package.join(name))?;
        }
        drop_absolute_links(&self.package)?;
        self.rewrite_flash_command()?;
        Ok(())
    }

    /// The server's directories a message or `flashcmd.txt` may name: the
    /// package, the work dir, the BSP, each also as its canonical path (the
    /// helpers resolve links with `readlink -f`).
    fn server_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for dir in [
            self.package.join("_tools").join("bootloader"),
            self.package.join("_tools"),
            self.package.clone(),
            self.workdir.clone(),
            self.bsp.clone(),
        ] {
            if let Ok(real) = fs::canonicalize(&dir) {
                if real != dir {
                    dirs.push(real);
                }
            }
            dirs.push(dir);
        }
        dirs
    }

    /// `flashcmd.txt` runs on the client, in its copy of the package: paths
    /// of this server's work dir become `./` (R32's tegra210 helper writes
    /// its own path there, which upstream worked around by running it as
    /// `./tegra210-flash-helper`).
    fn rewrite_flash_command(&self) -> io::Result<()> {
        let path = self.package.join("flashcmd.txt");
        let text = fs::read(&path)?;
        let mut text = String::from_utf8_lossy(&text).into_owned();
        for dir in self.server_dirs() {
            text = text.replace(&format!("{}/", dir.display()), "./");
        }
        fs::write(&path, text)
    }
}

/// Whether a helper's failure is the operator's: a program or Python module
/// the BSP or the image lacks.
fn operator_fault(output: &str) -> bool {
    [
        "command not found",
        "No module named",
        "python2: not found",
        "No such file or directory: 'python",
    ]
    .iter()
    .any(|m| output.contains(m))
}

/// Removes links in the reply that point out of it (absolute, or with
/// `..`): the client would get a link to a server path.
fn drop_absolute_links(dir: &Path) -> io::Result<()> {
    for name in top_level_names(dir)? {
        let path = dir.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)?;
            if target.is_absolute()
                || target
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                fs::remove_file(&path)?;
            }
        } else if meta.is_dir() {
            drop_absolute_links(&path)?;
        }
    }
    Ok(())
}

/// `boot.img` → `boot_sigheader.img.encrypt.signed`, as upstream names the
/// encrypted kernel copy it drops.
fn encrypted_kernel_name(kernel: &str) -> String {
    let (stem, ext) = match kernel.rfind('.') {
        Some(dot) if dot > 0 && !kernel[dot..].contains('/') => kernel.split_at(dot),
        _ => (kernel, ""),
    };
    format!("{stem}_sigheader{ext}.encrypt.signed")
}

/// The names directly in `dir`.
fn top_level_names(dir: &Path) -> io::Result<BTreeSet<String>> {
    fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect()
}

/// Removes everything under `root/rel` but the files in `keep` (and the
/// directories leading to them). Returns whether anything was kept.
fn prune(root: &Path, rel: &Path, keep: &BTreeSet<PathBuf>) -> io::Result<bool> {
    let mut kept = false;
    for name in top_level_names(&root.join(rel))? {
        let entry = rel.join(&name);
        let path = root.join(&entry);
        let meta = fs::symlink_metadata(&path)?;
        if keep.contains(&entry) && meta.is_file() {
            kept = true;
        } else if meta.is_dir() && keep.iter().any(|k| k.starts_with(&entry)) {
            if prune(root, &entry, keep)? {
                kept = true;
            } else {
                fs::remove_dir_all(&path)?;
            }
        } else {
            remove_any(&path)?;
        }
    }
    Ok(kept)
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encrypted_kernel_copy_is_named_as_upstream_names_it() {
        assert_eq!(
            encrypted_kernel_name("boot.img"),
            "boot_sigheader.img.encrypt.signed"
        );
        assert_eq!(
            encrypted_kernel_name("tegra-minimal-initramfs.cboot"),
            "tegra-minimal-initramfs_sigheader.cboot.encrypt.signed"
        );
        assert_eq!(
            encrypted_kernel_name("Image"),
            "Image_sigheader.encrypt.signed"
        );
    }

    #[test]
    fn prune_keeps_only_the_named_files() {
        let dir = std::env::temp_dir().join(format!("digsig-prune-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::create_dir_all(dir.join("c")).unwrap();
        for f in ["x", "x.sig", "a/b/y.sig", "a/b/y", "c/z"] {
            fs::write(dir.join(f), f).unwrap();
        }
        let keep: BTreeSet<PathBuf> = ["x.sig", "a/b/y.sig"].map(PathBuf::from).into();
        assert!(prune(&dir, Path::new(""), &keep).unwrap());
        let mut left = Vec::new();
        fn list(root: &Path, rel: &Path, out: &mut Vec<String>) {
            for n in top_level_names(&root.join(rel)).unwrap() {
                let e = rel.join(&n);
                if root.join(&e).is_dir() {
                    list(root, &e, out)
                } else {
                    out.push(e.display().to_string())
                }
            }
        }
        list(&dir, Path::new(""), &mut left);
        assert_eq!(left, ["a/b/y.sig", "x.sig"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_keep_the_last_lines() {
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
