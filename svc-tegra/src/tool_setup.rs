//! Puts a BSP's tools where a signing run uses them, as upstream does: the
//! [`ToolSet`]'s files copied into the work dir's `_tools/` (directories
//! whole, without `__pycache__`), R32's python2 scripts wrapped, and the
//! links in the work dir to `_tools/bootloader/<name>`.
//!
//! The copies are the BSP's (the operator's), never the upload's: a link
//! whose name the upload also used replaces the uploaded file, as upstream.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::bsp::ToolSet;

/// Why the tools could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ToolSetupError {
    /// The BSP lacks a file the run needs: the operator's to fix (500).
    #[error("the L4T BSP is incomplete: it has no {0}")]
    MissingFromBsp(String),
    /// The upload has a `_tools` of its own: the client's to fix (400).
    #[error("the upload holds _tools, the name of the BSP tools' directory: leave it out")]
    UploadHasTools,
    /// Copying failed.
    #[error("setting up the BSP tools failed: {0}")]
    Io(#[from] io::Error),
}

/// Copies `set` from the BSP tree `tree` (its `Linux_for_Tegra`) into
/// `workdir/_tools` and makes the links.
pub fn prepare_tools(tree: &Path, workdir: &Path, set: &ToolSet) -> Result<(), ToolSetupError> {
    let tools = workdir.join("_tools");
    fs::create_dir(&tools).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => ToolSetupError::UploadHasTools,
        _ => e.into(),
    })?;
    for file in &set.files {
        let src = tree.join(file);
        let dest = tools.join(file);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)?;
        }
        let meta = fs::metadata(&src).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ToolSetupError::MissingFromBsp(file.clone()),
            _ => e.into(),
        })?;
        if meta.is_dir() {
            copy_dir(&src, &dest)?;
        } else if set.python2_wrapped.contains(&file.as_str()) && wants_python2(&src)? {
            let real = dest.with_file_name(format!(
                "{}.real",
                dest.file_name().unwrap_or_default().to_string_lossy()
            ));
            fs::copy(&src, &real)?;
            fs::write(
                &dest,
                format!("#!/bin/sh\npython2 {} \"$@\"\n", real.display()),
            )?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
        } else {
            fs::copy(&src, &dest)?;
        }
    }
    for link in &set.links {
        let at = workdir.join(link);
        if let Some(parent) = at.parent().filter(|p| *p != workdir) {
            // An uploaded `rollback` that is a link or a file is replaced by
            // a real directory: the link goes where we mean it to.
            match fs::symlink_metadata(parent) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(parent)?;
                    fs::create_dir(parent)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(parent)?,
                Err(e) => return Err(e.into()),
            }
        }
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&at)?,
            Ok(_) => fs::remove_file(&at)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        symlink(tools.join("bootloader").join(link), &at)?;
    }
    Ok(())
}

/// Whether a script's `#!` line asks for plain `python` or `python2`
/// (R32's BSP scripts), which today's systems run as python3.
fn wants_python2(script: &Path) -> io::Result<bool> {
    let text = fs::read(script)?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let first = first.trim_end();
    Ok(first.starts_with("#!") && (first.ends_with("python") || first.ends_with("python2")))
}

/// Copies a directory tree (files and directories; symlinks as links),
/// leaving out `__pycache__`.
fn copy_dir(src: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let (from, to) = (entry.path(), dest.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&from, &to)?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bsp::{BspVersion, TegraSoc};

    /// A stand-in BSP tree holding every file `set` names.
    fn stand_in_bsp(root: &Path, set: &ToolSet, python: &str) {
        for file in &set.files {
            let path = root.join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            if file.ends_with("pyfdt") || file.ends_with("tegraopenssl") {
                fs::create_dir_all(path.join("__pycache__")).unwrap();
                fs::write(path.join("__init__.py"), "").unwrap();
                fs::write(path.join("__pycache__/x.pyc"), "").unwrap();
            } else {
                fs::write(&path, format!("#!/usr/bin/env {python}\n# {file}\n")).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("digsig-tools-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn r32_scripts_are_wrapped_for_python2_and_linked() {
        let dir = scratch("r32");
        let set = ToolSet::for_bsp(TegraSoc::Tegra186, BspVersion::parse("32.7.4").unwrap());
        stand_in_bsp(&dir.join("bsp"), &set, "python");
        let work = dir.join("work");
        fs::create_dir_all(&work).unwrap();
        // An uploaded file under a link's name is replaced by the link, and
        // an uploaded `rollback` link by a directory.
        fs::write(work.join("tegraflash.py"), "print('uploaded')").unwrap();
        symlink("_tools/bootloader/rollback", work.join("rollback")).unwrap();
        prepare_tools(&dir.join("bsp"), &work, &set).unwrap();
        let bup = work.join("_tools/bootloader/BUP_generator.py");
        let wrapper = fs::read_to_string(&bup).unwrap();
        assert_eq!(
            wrapper,
            format!("#!/bin/sh\npython2 {}.real \"$@\"\n", bup.display())
        );
        assert!(work
            .join("_tools/bootloader/BUP_generator.py.real")
            .is_file());
        assert!(work
            .join("_tools/bootloader/rollback/rollback_parser.py.real")
            .is_file());
        // Scripts not on the list are copied as they are.
        assert!(
            fs::read_to_string(work.join("_tools/bootloader/tegraflash.py"))
                .unwrap()
                .contains("python\n")
        );
        assert_eq!(
            fs::read_link(work.join("tegraflash.py")).unwrap(),
            work.join("_tools/bootloader/tegraflash.py")
        );
        assert_eq!(
            fs::read_link(work.join("rollback/rollback_parser.py")).unwrap(),
            work.join("_tools/bootloader/rollback/rollback_parser.py")
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn r35_copies_directories_without_pycache_and_does_not_wrap_python3() {
        let dir = scratch("r35");
        let set = ToolSet::for_bsp(TegraSoc::Tegra234, BspVersion::parse("35.5.0").unwrap());
        stand_in_bsp(&dir.join("bsp"), &set, "python3");
        let work = dir.join("work");
        fs::create_dir_all(&work).unwrap();
        prepare_tools(&dir.join("bsp"), &work, &set).unwrap();
        assert!(work.join("_tools/bootloader/pyfdt/__init__.py").is_file());
        assert!(!work.join("_tools/bootloader/pyfdt/__pycache__").exists());
        assert!(!work
            .join("_tools/bootloader/BUP_generator.py.real")
            .exists());
        assert!(work.join("t234.py").is_symlink());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_uploaded_tools_directory_is_refused() {
        let dir = scratch("uploaded-tools");
        let set = ToolSet::for_bsp(TegraSoc::Tegra186, BspVersion::parse("32.7.4").unwrap());
        stand_in_bsp(&dir.join("bsp"), &set, "python");
        fs::create_dir_all(dir.join("work/_tools")).unwrap();
        assert!(matches!(
            prepare_tools(&dir.join("bsp"), &dir.join("work"), &set),
            Err(ToolSetupError::UploadHasTools)
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bsp_missing_a_tool_is_named() {
        let dir = scratch("missing");
        let set = ToolSet::for_bsp(TegraSoc::Tegra186, BspVersion::parse("32.4.3").unwrap());
        stand_in_bsp(&dir.join("bsp"), &set, "python");
        fs::remove_file(dir.join("bsp/bootloader/tegra186-flash-helper")).unwrap();
        let work = dir.join("work");
        fs::create_dir_all(&work).unwrap();
        let err = prepare_tools(&dir.join("bsp"), &work, &set).unwrap_err();
        assert!(
            err.to_string()
                .contains("no bootloader/tegra186-flash-helper"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
