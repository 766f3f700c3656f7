//! The `csf` field: a CST command sequence file description, checked before
//! `cst` reads it.
//!
//! `cst` opens every file a CSF names, by the name as written: certificates,
//! the SRK table, the data `Blocks` authenticate, and it *writes* some (an
//! `[Install Secret Key]` DEK). A name is a double-quoted string (`cst`'s
//! grammar has no other form for one). So every quoted string must be a
//! relative path that stays inside the request's work dir: no leading `/`,
//! no `..` component. Otherwise a client could have `cst` sign with another
//! machine's certificate and key, or read or write a server file.

/// Most bytes a CSF description may have (real ones are about 1 KiB).
pub const MAX_CSF_BYTES: usize = 64 * 1024;

/// A CSF description that passed the checks.
#[derive(Debug, Clone)]
pub struct CsfText {
    text: String,
    files: Vec<String>,
}

/// Why a CSF description is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsfError {
    /// Nothing in it.
    #[error("csf is empty: send the CSF description text, e.g. -F csf=@csf.txt")]
    Empty,
    /// Larger than [`MAX_CSF_BYTES`].
    #[error("csf is larger than {MAX_CSF_BYTES} bytes; a CSF description is a short text file")]
    TooLarge,
    /// Not text.
    #[error(
        "csf is not UTF-8 text (or holds a NUL byte): send the CSF description, not a binary CSF"
    )]
    NotText,
    /// A quoted string is not closed on its line.
    #[error("csf line {line}: a quoted string is not closed")]
    Unterminated {
        /// 1-based line number.
        line: usize,
    },
    /// A file name that leaves the work dir.
    #[error("csf line {line}: file name \"{name}\" is not allowed: name files by relative paths inside the keys tarball or the artifact's own name, without a leading '/' or '..'")]
    OutsideWorkDir {
        /// 1-based line number.
        line: usize,
        /// The name as written.
        name: String,
    },
    /// A PKCS#11 URI where a file name goes (the pkcs11 back end's form).
    #[error("csf line {line}: names a PKCS#11 object; signing with the pkcs11 backend is not supported yet: name certificate files from the keys tarball")]
    Pkcs11 {
        /// 1-based line number.
        line: usize,
    },
    /// An AHAB CSF (`Target = AHAB`), which HAB4 SoCs do not take.
    #[error("csf is for AHAB (Target = AHAB in [Header]); this service signs HAB4 CSFs for the soctype families it lists")]
    Ahab,
}

impl CsfText {
    /// Checks `bytes` as a CSF description.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, CsfError> {
        if bytes.len() > MAX_CSF_BYTES {
            return Err(CsfError::TooLarge);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(CsfError::Empty);
        }
        if bytes.contains(&0) {
            return Err(CsfError::NotText);
        }
        let text = String::from_utf8(bytes).map_err(|_| CsfError::NotText)?;
        let mut files = Vec::new();
        let mut section = String::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let (code, quoted) = split_line(raw).ok_or(CsfError::Unterminated { line })?;
            for name in quoted {
                if name.starts_with("pkcs11:") {
                    return Err(CsfError::Pkcs11 { line });
                }
                if leaves_work_dir(name) {
                    return Err(CsfError::OutsideWorkDir {
                        line,
                        name: name.to_string(),
                    });
                }
                files.push(name.to_string());
            }
            let code = code.trim();
            if let Some(name) = code.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
                section = name.trim().to_ascii_lowercase();
            } else if section == "header" {
                if let Some((key, value)) = code.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("target")
                        && value.trim().eq_ignore_ascii_case("ahab")
                    {
                        return Err(CsfError::Ahab);
                    }
                }
            }
        }
        Ok(Self { text, files })
    }

    /// The description, as sent.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// Every file name it mentions (quoted strings), in order.
    pub fn files(&self) -> &[String] {
        &self.files
    }
}

/// A line without its comment (`#` outside quotes), and its quoted strings;
/// `None` when a quote is not closed.
fn split_line(line: &str) -> Option<(String, Vec<&str>)> {
    let mut code = String::new();
    let mut quoted = Vec::new();
    let mut rest = line;
    loop {
        let Some(at) = rest.find(['"', '#']) else {
            code.push_str(rest);
            return Some((code, quoted));
        };
        code.push_str(&rest[..at]);
        if rest[at..].starts_with('#') {
            return Some((code, quoted));
        }
        let after = &rest[at + 1..];
        let end = after.find('"')?;
        quoted.push(&after[..end]);
        code.push_str("\"\"");
        rest = &after[end + 1..];
    }
}

/// Whether `name`, opened relative to the work dir, can reach outside it.
fn leaves_work_dir(name: &str) -> bool {
    name.starts_with('/') || name.split('/').any(|part| part == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"[Header]
    Version = 4.2
    Hash Algorithm = sha256
    Engine = CAAM
    Certificate Format = X509
    Signature Format = CMS
# a comment with "quotes" and /etc/passwd
[Install SRK]
    File = "SRK_1_2_3_4_table.bin"  # trailing comment
    Source index = 0
[Install CSFK]
    File = "crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem"
[Authenticate CSF]
[Authenticate Data]
    Verification index = 2
    Blocks = 0x877ff400 0x0 0x1000 "flash.bin", 0x40480000 0x1000 0x10 "flash.bin"
"#;

    #[test]
    fn lists_the_files_a_good_csf_names() {
        let csf = CsfText::parse(GOOD.as_bytes().to_vec()).unwrap();
        assert_eq!(
            csf.files(),
            [
                "SRK_1_2_3_4_table.bin",
                "crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem",
                "flash.bin",
                "flash.bin"
            ]
        );
        assert_eq!(csf.as_bytes(), GOOD.as_bytes());
    }

    #[test]
    fn refuses_names_outside_the_work_dir() {
        for bad in [
            "/keys/other/imxsign/crts/CSF1_1_crt.pem",
            "../other/crts/x_crt.pem",
            "crts/../../x_crt.pem",
            "..",
        ] {
            let text = GOOD.replace("SRK_1_2_3_4_table.bin", bad);
            assert_eq!(
                CsfText::parse(text.into_bytes()).unwrap_err(),
                CsfError::OutsideWorkDir {
                    line: 9,
                    name: bad.to_string()
                }
            );
        }
        // A name that only looks like one is fine.
        let text = GOOD.replace("SRK_1_2_3_4_table.bin", "..table/x..bin");
        assert!(CsfText::parse(text.into_bytes()).is_ok());
    }

    #[test]
    fn refuses_what_cst_cannot_or_must_not_take() {
        let p = |t: &str| CsfText::parse(t.as_bytes().to_vec()).unwrap_err();
        assert_eq!(p(" \n\t"), CsfError::Empty);
        assert_eq!(
            p("[Header]\n File = \"abc\n"),
            CsfError::Unterminated { line: 2 }
        );
        assert_eq!(p("[Header]\0"), CsfError::NotText);
        assert_eq!(
            CsfText::parse(vec![0xff, 0xfe, b'x']).unwrap_err(),
            CsfError::NotText
        );
        assert_eq!(
            p("[Header]\n  Target = AHAB\n"),
            CsfError::Ahab,
            "an AHAB CSF"
        );
        assert_eq!(
            p("[Install CSFK]\n File = \"pkcs11:token=YubiHSM;object=CSF1_1;type=cert\"\n"),
            CsfError::Pkcs11 { line: 2 }
        );
        assert_eq!(
            CsfText::parse(vec![b'#'; MAX_CSF_BYTES + 1]).unwrap_err(),
            CsfError::TooLarge
        );
        // "Target" outside [Header] is not the header's.
        assert!(CsfText::parse(b"[Install Key]\n Target = AHAB\n".to_vec()).is_ok());
    }
}
