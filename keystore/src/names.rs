//! Validated names: a machine/distro selector and a key file name.
//!
//! Both become one path component (a directory or an S3 key segment), so both
//! follow one rule: only `[A-Za-z0-9._+-]`, not empty, not `.` or `..`. A value
//! of these types exists only if it passed, so code past the edge never re-checks.

use std::fmt;

use crate::KeyStoreError;

/// Longest name we accept; real machine names are far shorter.
const MAX_NAME_LEN: usize = 128;

fn validate(what: &'static str, value: &str) -> Result<(), KeyStoreError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > MAX_NAME_LEN {
        Some("it is longer than 128 characters")
    } else if value == "." || value == ".." {
        Some("'.' and '..' are not names")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    {
        Some("only letters, digits and . _ + - are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(KeyStoreError::InvalidName {
            what,
            value: shorten(value),
            reason,
        }),
    }
}

/// Echo at most a short, escaped prefix of a rejected value back to the user.
fn shorten(value: &str) -> String {
    let escaped: String = value
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if value.chars().count() > 64 {
        format!("{escaped}...")
    } else {
        escaped
    }
}

/// A machine or distro name from a request, used to find its keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Selector(String);

impl Selector {
    /// Validates a `machine=` or `distro=` value.
    pub fn parse(value: &str) -> Result<Self, KeyStoreError> {
        validate("machine/distro name", value)?;
        Ok(Self(value.to_string()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key file name inside a sign type directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyFileName(String);

impl KeyFileName {
    /// Validates a key file name.
    pub fn parse(value: &str) -> Result<Self, KeyStoreError> {
        validate("key file name", value)?;
        Ok(Self(value.to_string()))
    }

    /// The file name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_yocto_machine_names() {
        for ok in [
            "jetson-xavier-nx-devkit",
            "imx8mm_evk",
            "demo",
            "tegra+1.2",
            "a",
        ] {
            assert_eq!(Selector::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_anything_that_could_leave_the_key_directory() {
        for bad in [
            "", ".", "..", "a/b", "/etc", "%2e%2e", "a\\b", "a b", "x\0y", "é",
        ] {
            let err = Selector::parse(bad).unwrap_err();
            assert!(
                matches!(err, KeyStoreError::InvalidName { .. }),
                "{bad:?} gave {err:?}"
            );
        }
        assert!(Selector::parse(&"m".repeat(129)).is_err());
        assert!(KeyFileName::parse("../rsa_priv.pem").is_err());
    }

    #[test]
    fn rejected_value_is_echoed_short_and_escaped() {
        let err = Selector::parse(&format!("{}\n", "x".repeat(200))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("..."), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.len() < 250, "{msg}");
    }
}
