//! The name rules: entry names and link targets stay inside the tree.

use std::path::{Component, Path, PathBuf};

use super::ArchiveError;

/// Checks an entry name and returns it as a clean relative path (no `.`
/// components). `None` means the name is only `.`/`./` (the tree's root).
pub fn safe_relative_path(raw: &Path) -> Result<Option<PathBuf>, ArchiveError> {
    let unsafe_path = |reason| ArchiveError::UnsafePath {
        path: raw.display().to_string(),
        reason,
    };
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("'..' is not allowed in member names")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_path("absolute member names are not allowed"))
            }
        }
    }
    Ok(if clean.as_os_str().is_empty() {
        None
    } else {
        Some(clean)
    })
}

/// Checks that a symlink at `entry` (clean, relative) pointing at `target`
/// stays inside the tree: relative, `..` only before any normal component
/// (so no `..` can follow a component that is itself a symlink), never above
/// the tree's root.
pub fn check_symlink_target(entry: &Path, target: &Path) -> Result<(), ArchiveError> {
    let refuse = |reason| ArchiveError::UnsafePath {
        path: format!("{} -> {}", entry.display(), target.display()),
        reason,
    };
    let mut depth = entry.components().count() as i64 - 1;
    let mut seen_normal = false;
    let mut any = false;
    for component in target.components() {
        any = true;
        match component {
            Component::Normal(_) => seen_normal = true,
            Component::CurDir => {}
            Component::ParentDir if seen_normal => {
                return Err(refuse("symlink targets may use '..' only at their start"))
            }
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err(refuse("symlink points outside the archive"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("symlink points to an absolute path"))
            }
        }
    }
    if !any {
        return Err(refuse("symlink has an empty target"));
    }
    Ok(())
}
