//! The `csf` field: a CST command sequence file description, checked before
//! `cst` reads it.
//!
//! `cst` opens every file a CSF names, by the name as written: certificates,
//! the SRK table, the data `Blocks` authenticate, and it *writes* some (an
//! `[Install Secret Key]` DEK). So the names are read here exactly as
//! `cst`'s lexer reads them (`cst_lexer.l`): a name is the text from the
//! first to the *last* double quote of a line (one per line; a `#` inside is
//! not a comment), with every `\` turned into `/`; `#` outside a name starts
//! a comment, and `\` outside a name a continuation: either drops the rest
//! of the line *and its newline*, so the statement goes on on the next line
//! (`#.*\n` and `\\.*\n` swallow the newline). Then:
//!
//! - every name must be a relative path that stays inside the request's
//!   work dir (no leading `/`, no `..` component), and may not be
//!   `key_pass.txt` or lie under a `keys/` directory: otherwise a client
//!   could have `cst` read or write a server file, or sign with another
//!   machine's certificate and key;
//! - the data `Blocks` authenticate must be the uploaded artifact (checked
//!   by the API, which knows its name): signing bytes of a key file would
//!   hand out key bytes one signature at a time.

/// Most bytes a CSF description may have (real ones are about 1 KiB).
pub const MAX_CSF_BYTES: usize = 64 * 1024;

/// A file name in the CSF, as `cst` will open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsfFile {
    /// 1-based line the name is on.
    pub line: usize,
    /// The name, `\` already turned into `/` as `cst` does.
    pub name: String,
    /// Whether it names data to authenticate (a `Blocks` value).
    pub is_block_data: bool,
}

/// A CSF description that passed the checks.
#[derive(Debug, Clone)]
pub struct CsfText {
    text: String,
    files: Vec<CsfFile>,
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
    /// A double quote with no partner on its line.
    #[error("csf line {line}: a quoted file name is not closed")]
    Unterminated {
        /// 1-based line number.
        line: usize,
    },
    /// A file name that leaves the work dir or names key material.
    #[error("csf line {line}: file name \"{name}\" is not allowed: {why}")]
    NotAllowed {
        /// 1-based line number.
        line: usize,
        /// The name as `cst` would open it.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
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

/// One logical line (a statement) as `cst` lexes it: its words and `=`
/// signs, lower-cased, and its names, each with the physical line it is on.
#[derive(Default)]
struct Statement {
    words: Vec<String>,
    names: Vec<(usize, String)>,
}

impl Statement {
    /// Adds the words of `code` (`[a-z][a-z0-9]*`, case-insensitive, and `=`).
    fn push_code(&mut self, code: &str) {
        let mut word = String::new();
        let flush = |word: &mut String, words: &mut Vec<String>| {
            if !word.is_empty() {
                words.push(std::mem::take(word));
            }
        };
        for c in code.chars() {
            if c.is_ascii_alphabetic() || (c.is_ascii_digit() && !word.is_empty()) {
                word.push(c.to_ascii_lowercase());
            } else {
                flush(&mut word, &mut self.words);
                if c == '=' {
                    self.words.push("=".into());
                }
            }
        }
        flush(&mut word, &mut self.words);
    }

    /// Whether it is `Target = AHAB`.
    fn is_ahab_target(&self) -> bool {
        self.words.windows(3).any(|w| w == ["target", "=", "ahab"])
    }

    /// Whether its names are data to authenticate (`Blocks = ...`).
    fn is_blocks(&self) -> bool {
        self.words.iter().any(|w| w == "blocks")
    }
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
        for statement in statements(&text)? {
            if statement.is_ahab_target() {
                return Err(CsfError::Ahab);
            }
            let is_block_data = statement.is_blocks();
            for (line, name) in statement.names {
                check_name(line, &name)?;
                files.push(CsfFile {
                    line,
                    name,
                    is_block_data,
                });
            }
        }
        Ok(Self { text, files })
    }

    /// The description, as sent.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }

    /// Every file name it mentions, in order.
    pub fn files(&self) -> &[CsfFile] {
        &self.files
    }
}

/// Splits `text` into statements the way `cst_lexer.l` tokenises it.
fn statements(text: &str) -> Result<Vec<Statement>, CsfError> {
    let mut statements = Vec::new();
    let mut current = Statement::default();
    for (index, physical) in text.lines().enumerate() {
        let line = index + 1;
        let mut rest = physical;
        let mut continued = false;
        while let Some(at) = rest.find(['"', '#', '\\']) {
            current.push_code(&rest[..at]);
            let tail = &rest[at..];
            if tail.starts_with('"') {
                // `\".*\"`: flex takes the longest match, to the last quote.
                let Some(end) = tail.rfind('"').filter(|&end| end > 0) else {
                    return Err(CsfError::Unterminated { line });
                };
                current.names.push((line, tail[1..end].replace('\\', "/")));
                rest = &tail[end + 1..];
            } else {
                // A comment or a continuation: the rest of the line and its
                // newline are dropped; the statement goes on.
                continued = true;
                rest = "";
            }
        }
        current.push_code(rest);
        if !continued {
            statements.push(std::mem::take(&mut current));
        }
    }
    statements.push(current);
    Ok(statements)
}

/// Refuses a name `cst` must not open.
fn check_name(line: usize, name: &str) -> Result<(), CsfError> {
    if name.starts_with("pkcs11:") {
        return Err(CsfError::Pkcs11 { line });
    }
    let refuse = |why| {
        Err(CsfError::NotAllowed {
            line,
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.starts_with('/') || name.split('/').any(|part| part == "..") {
        return refuse("name files by relative paths inside the keys tarball, or the artifact by its own name, without a leading '/' or '..' ('\\' counts as '/')");
    }
    let mut parts = name.split('/').filter(|p| !p.is_empty() && *p != ".");
    if parts.clone().next_back() == Some("key_pass.txt") || parts.any(|p| p == "keys") {
        return refuse("private keys and their pass phrase are found by cst from the certificate; a CSF never names them");
    }
    Ok(())
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
    File = "crts\CSF1_1_sha256_2048_65537_v3_usr_crt.pem"
[Authenticate CSF]
[Authenticate Data]
    Verification index = 2
    Blocks = 0x877ff400 0x0 0x1000 "flash.bin", \ the rest is dropped
             0x40480000 0x1000 0x10 "flash.bin"
"#;

    fn names(csf: &CsfText) -> Vec<(usize, &str, bool)> {
        csf.files()
            .iter()
            .map(|f| (f.line, f.name.as_str(), f.is_block_data))
            .collect()
    }

    #[test]
    fn reads_names_as_cst_s_lexer_does() {
        let csf = CsfText::parse(GOOD.as_bytes().to_vec()).unwrap();
        assert_eq!(
            names(&csf),
            [
                (9, "SRK_1_2_3_4_table.bin", false),
                (12, "crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem", false),
                (16, "flash.bin", true),
                (17, "flash.bin", true),
            ]
        );
        assert_eq!(csf.as_bytes(), GOOD.as_bytes());
        // From the first to the last quote of a line is one name, `#` and all.
        let csf = CsfText::parse(
            br#"[Install CSFK]
 File = "a" # "b"
"#
            .to_vec(),
        )
        .unwrap();
        assert_eq!(names(&csf), [(2, r#"a" # "b"#, false)]);
        // A comment swallows its newline: the next line is the same statement.
        let csf = CsfText::parse(b"[Authenticate Data]\n Blocks = 0x0 0x0 0x10 \"flash.bin\" # c\n  \"crts/CA1_crt.pem\"\n[Install Key]\n File = \"crts/IMG_crt.pem\"\n".to_vec()).unwrap();
        assert_eq!(
            names(&csf),
            [
                (2, "flash.bin", true),
                (3, "crts/CA1_crt.pem", true),
                (5, "crts/IMG_crt.pem", false)
            ]
        );
    }

    #[test]
    fn refuses_names_outside_the_work_dir() {
        for (bad, opened) in [
            (
                "/keys/other/imxsign/crts/CSF1_1_crt.pem",
                "/keys/other/imxsign/crts/CSF1_1_crt.pem",
            ),
            ("../other/crts/x_crt.pem", "../other/crts/x_crt.pem"),
            ("crts/../../x_crt.pem", "crts/../../x_crt.pem"),
            ("..", ".."),
            (r"\etc\hostname", "/etc/hostname"),
            (r"..\..\etc\hostname", "../../etc/hostname"),
        ] {
            let text = GOOD.replace("SRK_1_2_3_4_table.bin", bad);
            match CsfText::parse(text.into_bytes()).unwrap_err() {
                CsfError::NotAllowed { line: 9, name, .. } => assert_eq!(name, opened),
                other => panic!("{bad}: {other:?}"),
            }
        }
        // A name that only looks like one is fine.
        let text = GOOD.replace("SRK_1_2_3_4_table.bin", "..table/x..bin");
        assert!(CsfText::parse(text.into_bytes()).is_ok());
    }

    #[test]
    fn refuses_names_of_key_material() {
        for bad in [
            "keys/CSF1_1_sha256_2048_65537_v3_usr_key.pem",
            r"keys\key_pass.txt",
            "key_pass.txt",
            "pki/keys/x_key.pem",
        ] {
            let text = GOOD.replace("crts\\CSF1_1_sha256_2048_65537_v3_usr_crt.pem", bad);
            assert!(
                matches!(
                    CsfText::parse(text.into_bytes()),
                    Err(CsfError::NotAllowed { line: 12, .. })
                ),
                "{bad} accepted"
            );
        }
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
        assert_eq!(p("[Header]\n  Target = AHAB\n"), CsfError::Ahab);
        assert_eq!(
            p("[Header]\n  Target = \\\n  AHAB\n"),
            CsfError::Ahab,
            "continued"
        );
        assert_eq!(
            p("[Install CSFK]\n File = \"pkcs11:token=YubiHSM;object=CSF1_1;type=cert\"\n"),
            CsfError::Pkcs11 { line: 2 }
        );
        assert_eq!(
            CsfText::parse(vec![b'#'; MAX_CSF_BYTES + 1]).unwrap_err(),
            CsfError::TooLarge
        );
        // An image key's "Target Index" is not an AHAB target.
        assert!(CsfText::parse(b"[Install Key]\n Target Index = 2\n".to_vec()).is_ok());
    }
}
