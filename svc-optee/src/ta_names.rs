//! What the files in a client's TA tree mean, read as upstream digsigserver
//! (and OP-TEE's `sign_encrypt.py`) read them:
//!
//! - `<uuid>.stripped.elf` is a TA image; the UUID is its file name, in any
//!   spelling Python's `uuid.UUID()` takes (hyphens anywhere, braces, case);
//! - `<uuid>.ta-version` holds its version: the first line, an integer
//!   literal as Python's `int(text, 0)` reads it (`7`, `0x10`, `0o7`,
//!   `0b1`, `1_000`), at most `0xffffffff`; no file means version 0.

/// The suffix of a TA image in the client's tree.
pub const IMAGE_SUFFIX: &str = ".stripped.elf";
/// The suffix of a TA's version file.
pub const VERSION_SUFFIX: &str = ".ta-version";
/// The suffix of a signed TA.
pub const SIGNED_SUFFIX: &str = ".ta";

/// Parses a UUID as Python's `uuid.UUID(text)` does, returning its 16 bytes in
/// RFC 4122 order (what `UUID.bytes` gives and OP-TEE's header holds).
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|&c| c != '-')
        .collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Parses a `.ta-version` file's contents: its first line, as Python's
/// `int(line.rstrip(), 0)` reads it, which must fit in a u32.
pub fn parse_version(contents: &[u8]) -> Result<u32, String> {
    let line = contents.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = std::str::from_utf8(line)
        .map_err(|_| "it is not text".to_string())?
        .trim();
    let value = parse_int_literal(text).ok_or_else(|| {
        format!("'{text}' is not an integer (write e.g. 1, 0x10001 or 0o17 on the first line)")
    })?;
    u32::try_from(value).map_err(|_| format!("{text} does not fit in 32 bits (0 to 4294967295)"))
}

/// Python 3's integer literal with base 0: an optional sign, then decimal
/// (no leading zeros unless all zeros), `0x`, `0o` or `0b` digits; single
/// underscores may separate digits or follow the base prefix.
fn parse_int_literal(text: &str) -> Option<i128> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else {
        (10, lower.as_str(), false)
    };
    // After a prefix one leading underscore is allowed ("0x_ff").
    let digits = if prefixed {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if radix == 10 && clean.len() > 1 && clean.starts_with('0') && clean.bytes().any(|b| b != b'0')
    {
        return None; // "010" is an error in Python 3, not octal
    }
    if clean.len() > 38 {
        return None; // far beyond u32 either way; keeps i128 from overflowing
    }
    let value = i128::from_str_radix(&clean, radix).ok()?;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_spellings_python_accepts() {
        let want = [
            0x8a, 0xaa, 0xf2, 0x00, 0x24, 0x50, 0x11, 0xe4, 0xab, 0xe2, 0x00, 0x02, 0xa5, 0xd5,
            0xc5, 0x1b,
        ];
        for s in [
            "8aaaf200-2450-11e4-abe2-0002a5d5c51b",
            "8AAAF200-2450-11E4-ABE2-0002A5D5C51B",
            "8aaaf200245011e4abe20002a5d5c51b",
            "{8aaaf200-2450-11e4-abe2-0002a5d5c51b}",
        ] {
            assert_eq!(parse_uuid(s), Some(want), "{s}");
        }
        for s in [
            "",
            "hello",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51bb",
            "8aaaf200-2450-11e4-abe2-0002a5d5c51g",
            "8aaaf200 2450 11e4 abe2 0002a5d5c51b",
        ] {
            assert_eq!(parse_uuid(s), None, "{s}");
        }
    }

    #[test]
    fn versions_as_python_int_base_0_reads_them() {
        for (text, want) in [
            ("0", 0),
            ("7\n", 7),
            ("  42  \r\nignored second line", 42),
            ("0x10001", 0x10001),
            ("0X1F", 0x1f),
            ("0o17", 0o17),
            ("0b101", 5),
            ("1_000", 1000),
            ("0x_ff", 0xff),
            ("+3", 3),
            ("000", 0),
            ("4294967295", u32::MAX),
        ] {
            assert_eq!(parse_version(text.as_bytes()), Ok(want), "{text:?}");
        }
        for text in [
            "",
            "\n",
            "010",
            "1.0",
            "v1",
            "0x",
            "1__0",
            "_1",
            "1_",
            "-1",
            "4294967296",
            "0xg",
            "1 2",
        ] {
            assert!(parse_version(text.as_bytes()).is_err(), "{text:?}");
        }
    }
}
