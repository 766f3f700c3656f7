//! The artifact's file name: the CSF's `Blocks` name the data by the file
//! name the client uploaded it under, so the artifact is written into the
//! work dir under that name. Upstream writes it wherever the name points
//! (`os.path.join(workdir, name)`: an absolute or `../` name writes any file
//! the server may write); here only a plain file name is taken.

use std::fmt;

/// A plain file name for the artifact, fit to create in the work dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactName(String);

/// Most bytes in a file name (Linux's `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

impl ArtifactName {
    /// Checks the multipart part's file name; the error says what to fix.
    pub fn parse(name: Option<&str>) -> Result<Self, String> {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err("artifact has no file name: send it as a file (-F artifact=@<name>) under the name the CSF's Blocks use".into());
        };
        let refuse = |why: &str| {
            Err(format!(
                "artifact file name {name:?} {why}: send the file under the plain name the CSF's Blocks use"
            ))
        };
        if name.contains(['/', '\\']) {
            return refuse("contains a path separator");
        }
        if name.starts_with('.') {
            return refuse("starts with '.'");
        }
        if name.chars().any(char::is_control) {
            return refuse("contains a control character");
        }
        if name.len() > MAX_NAME_BYTES {
            return refuse("is longer than 255 bytes");
        }
        if name == crate::api::CSF_FILE {
            return refuse("is the name the CSF itself is given");
        }
        Ok(Self(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_plain_name() {
        let name = ArtifactName::parse(Some("imx-boot-imx8mm-evk-sd.bin-flash_evk")).unwrap();
        assert_eq!(name.as_str(), "imx-boot-imx8mm-evk-sd.bin-flash_evk");
    }

    #[test]
    fn refuses_paths_and_names_that_are_not_plain() {
        for bad in [
            "../flash.bin",
            "/etc/passwd",
            "a/b",
            "..",
            ".",
            ".home",
            "a\\b",
            "a\nb",
            "csf-input.txt",
        ] {
            assert!(ArtifactName::parse(Some(bad)).is_err(), "{bad:?} accepted");
        }
        assert!(ArtifactName::parse(None)
            .unwrap_err()
            .contains("no file name"));
        assert!(ArtifactName::parse(Some(&"x".repeat(256))).is_err());
    }
}
