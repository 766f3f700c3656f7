//! The unpacked flash package, made safe to run NVIDIA's tools in.
//!
//! The archive layer has already refused escapes (absolute names, `..`,
//! links out of the tree, devices). What is left are files the tools would
//! *run*: the helpers and `tegraflash.py` work in the package directory,
//! `tegraflash.py` puts it first on `sys.path` and on its tools' `PATH`,
//! and the helpers source files from it (see `DESIGN.md`). So, before any
//! tool runs:
//!
//! - names that would be imported, sourced or run as code are refused, each
//!   naming the member: Python modules (`*.py`, `*.pyc`, `*.so`, ...),
//!   shell function files (`*.func`), the BSP's own tools (a client keeps
//!   them out with `TEGRA_SIGNING_EXCLUDE_TOOLS = "1"`, as the Yocto classes
//!   set it) and the programs the tools look up on `PATH`;
//! - every file loses its execute bits, so a `PATH` lookup that reaches the
//!   package directory finds nothing it can run;
//! - `flashvars` is parsed as data and rewritten; `bsp_version` is replaced
//!   by one written from the request's version; outputs of an earlier run
//!   (`signed/`, ...) are removed;
//! - `flash.xml.in`, whose fields a helper `eval`s, and the BCT device-tree
//!   sources, which go through `cpp` and `dtc`, are checked;
//! - every file the MANIFEST names must be a regular file inside the package.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::bsp::{BspVersion, TegraSoc, ToolSet};
use crate::flashvars::{bsp_version_file, Flashvars, FlashvarsError};
use crate::manifest::{Manifest, ManifestError, UploadPath};

/// Most bytes of a `flash.xml.in` or device-tree source read for checking.
const MAX_CHECKED_TEXT: u64 = 4 << 20;

/// File endings of code: Python modules and packages, shell function files.
const CODE_SUFFIXES: [&str; 8] = [
    ".py", ".pyc", ".pyo", ".pyw", ".pyz", ".so", ".pth", ".func",
];

/// Programs NVIDIA's tools run by bare name (so would find in the package
/// directory), and files they source by name.
const TOOL_NAMES: [&str; 32] = [
    "sed",
    "cpp",
    "dtc",
    "sh",
    "bash",
    "python",
    "python2",
    "python3",
    "openssl",
    "nvflashxmlparse",
    "mksparse",
    "mkbootimg",
    "mkgpt",
    "mkbctpart",
    "tegraopenssl",
    "track",
    "rcmdump_blob",
    "tegrabct",
    "tegrabct_v2",
    "tegrahost",
    "tegrahost_v2",
    "tegrarcm",
    "tegrarcm_v2",
    "tegraparser",
    "tegraparser_v2",
    "tegradevflash",
    "tegradevflash_v2",
    "tegrasign",
    "tegrakeyhash",
    "chkbdinfo",
    "bpmp-dtb-trim",
    "pyfdt",
];

/// Outputs of an earlier run, and the runner's own directories: removed
/// before the helper runs, so what comes back is what the helper made (and
/// nothing it reads back was the client's).
const EARLIER_OUTPUTS: [&str; 9] = [
    "signed",
    "encrypted_signed",
    "enc_signed",
    "multi_signed",
    "flashcmd.txt",
    "flash.idx",
    "secureflash.sh",
    ".home",
    ".tmp",
];

/// Why an upload cannot be signed (400s, naming what to fix).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No `MANIFEST` at the top of the package.
    #[error("the artifact has no MANIFEST at its top level: send the flash package with its MANIFEST (KEY=VALUE lines)")]
    NoManifest,
    /// The MANIFEST is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// `flashvars` is refused.
    #[error(transparent)]
    Flashvars(#[from] FlashvarsError),
    /// A member that would run as code, or write through to one.
    #[error("artifact member '{member}' is {why}")]
    Code {
        /// The member, relative to the package.
        member: String,
        /// What it is, and what to do.
        why: String,
    },
    /// A file the MANIFEST names is missing or not a regular file inside.
    #[error("{key} names '{name}', which {why}")]
    NamedFile {
        /// The MANIFEST key.
        key: &'static str,
        /// The name.
        name: String,
        /// What is wrong.
        why: &'static str,
    },
    /// `flash.xml.in` holds a value the helper would evaluate as shell.
    #[error("flash.xml.in: {0}")]
    FlashLayout(String),
    /// A device-tree source includes a file from outside the package.
    #[error("{file} line {line}: {why}")]
    Include {
        /// The source file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// Reading or rewriting the tree failed (500).
    #[error("preparing the flash package failed: {0}")]
    Io(#[from] io::Error),
}

/// Checks and prepares the unpacked package at `root` for `soc` and BSP
/// `version`, whose tools are `tools`. Returns the MANIFEST.
pub fn prepare_package(
    root: &Path,
    soc: TegraSoc,
    version: BspVersion,
    tools: &ToolSet,
) -> Result<Manifest, UploadError> {
    let manifest = match fs::symlink_metadata(root.join("MANIFEST")) {
        Ok(meta) if meta.is_file() => read_small(&root.join("MANIFEST"), 64 * 1024)?,
        _ => return Err(UploadError::NoManifest),
    };
    let manifest = Manifest::parse(&manifest)?;

    let tool_names: Vec<&str> = tools
        .files
        .iter()
        .filter_map(|f| f.rsplit('/').next())
        .chain(tools.links.iter().filter_map(|l| l.rsplit('/').next()))
        .collect();
    walk(root, Path::new(""), &mut |rel, meta| {
        let member = rel.display().to_string();
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let code = |why: &str| UploadError::Code {
            member: member.clone(),
            why: format!("{why}: the signing tools would run it; leave it out of the upload"),
        };
        if meta.file_type().is_symlink() {
            // A helper writing an output name would write through it (into
            // the BSP tools' copies, or a file it sources later).
            return Err(UploadError::Code {
                member: member.clone(),
                why: "a symlink: send the package with links resolved (tar -h, as the Yocto classes do)".into(),
            });
        }
        if name == "_tools" && rel.parent() == Some(Path::new("")) {
            return Err(code("named _tools, the BSP tools' directory"));
        }
        if CODE_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            return Err(code("a Python module or shell function file"));
        }
        if name == "__pycache__" || name == "__init__.py" || name.ends_with(".egg-info") {
            return Err(code("a Python package"));
        }
        if TOOL_NAMES.contains(&name.as_str()) || tool_names.contains(&name.as_str()) {
            return Err(code("named like a program the BSP tools run"));
        }
        if meta.is_file() {
            // Readable and writable by us, executable by nobody.
            let mode = meta.permissions().mode() & 0o777;
            let wanted = (mode & 0o666) | 0o600;
            if mode != wanted {
                fs::set_permissions(root.join(rel), fs::Permissions::from_mode(wanted))?;
            }
            if [".dts", ".dtsi", ".h"].iter().any(|s| name.ends_with(s)) {
                check_includes(&root.join(rel), &member)?;
            }
        }
        Ok(())
    })?;

    for name in EARLIER_OUTPUTS {
        remove_any(&root.join(name))?;
    }
    for entry in fs::read_dir(root)? {
        let name = entry?.file_name();
        if name.to_string_lossy().starts_with("payloads") {
            remove_any(&root.join(name))?;
        }
    }
    // Sourced by the helpers: replaced by what we write.
    let flashvars = root.join("flashvars");
    if exists_as_file(&flashvars, "flashvars")? {
        let vars = Flashvars::parse(
            &read_small(&flashvars, crate::flashvars::MAX_FLASHVARS_BYTES as u64 + 1)?,
            soc,
            version,
        )?;
        remove_any(&flashvars)?;
        fs::write(&flashvars, vars.render())?;
        // The BCT sources it names go through cpp and dtc, whatever their
        // names end with.
        for file in vars.file_names() {
            let path = root.join(file);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                check_includes(&path, file)?;
            }
        }
    }
    remove_any(&root.join("bsp_version"))?;
    fs::write(root.join("bsp_version"), bsp_version_file(version))?;

    let layout = root.join("flash.xml.in");
    if exists_as_file(&layout, "flash.xml.in")? {
        let text = read_small(&layout, MAX_CHECKED_TEXT)?;
        check_flash_layout(&String::from_utf8_lossy(&text)).map_err(UploadError::FlashLayout)?;
    }

    check_named_files(root, &manifest)?;
    Ok(manifest)
}

/// Visits every entry under `root/rel` (not following symlinks).
fn walk(
    root: &Path,
    rel: &Path,
    visit: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<(), UploadError>,
) -> Result<(), UploadError> {
    let mut entries: Vec<PathBuf> = fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| rel.join(e.file_name())))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for entry in entries {
        let meta = fs::symlink_metadata(root.join(&entry))?;
        visit(&entry, &meta)?;
        if meta.is_dir() {
            walk(root, &entry, visit)?;
        }
    }
    Ok(())
}

/// Whether `path` exists; an error naming `name` if it is not a regular
/// file.
fn exists_as_file(path: &Path, name: &str) -> Result<bool, UploadError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(_) => Err(UploadError::Code {
            member: name.to_string(),
            why: "not a regular file".into(),
        }),
        Err(_) => Ok(false),
    }
}

fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(limit).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Removes whatever is at `path` (a file, a link or a whole directory), if
/// anything is.
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every file the MANIFEST names is a regular file inside `root` (a symlink
/// is followed, and must stay inside).
fn check_named_files(root: &Path, manifest: &Manifest) -> Result<(), UploadError> {
    let mut named: Vec<(&'static str, &UploadPath)> = Vec::new();
    named.extend(manifest.dtb_file.iter().map(|f| ("DTBFILE", f)));
    named.extend(manifest.kernel_file.iter().map(|f| ("LNXFILE", f)));
    if let Some(files) = &manifest.emmc_bcts {
        named.extend(files.iter().map(|f| ("EMMC_BCTS", f)));
    }
    if let Some(Some(file)) = &manifest.boardcfg {
        named.push(("boardcfg", file));
    }
    if let Some(files) = &manifest.sign_files {
        named.extend(files.iter().map(|f| ("SIGNFILES", f)));
    }
    let real_root = fs::canonicalize(root)?;
    for (key, file) in named {
        let bad = |why| UploadError::NamedFile {
            key,
            name: file.as_str().to_string(),
            why,
        };
        let real = fs::canonicalize(root.join(file.as_str()))
            .map_err(|_| bad("is not in the artifact"))?;
        if !real.starts_with(&real_root) {
            return Err(bad("is a link leading out of the artifact"));
        }
        if !fs::metadata(&real).map(|m| m.is_file()).unwrap_or(false) {
            return Err(bad("is not a regular file"));
        }
    }
    Ok(())
}

/// `#include`, `/include/` and `/incbin/` in a BCT device-tree source may
/// only name files by relative paths without `..`: `cpp` and `dtc` would
/// otherwise pull any file the server can read (a key) into signed output.
///
/// The text is read as cpp reads it (backslash-newlines joined, comments
/// removed), and every other way to spell an include is refused: `%:`
/// digraphs, trigraphs, `#embed`, `#define` (a macro could build the word),
/// `#import`, `#include_next`, `__has_include`, and any `include` or `incbin`
/// that is not one of the three checked forms.
fn check_includes(path: &Path, member: &str) -> Result<(), UploadError> {
    let text = read_small(path, MAX_CHECKED_TEXT)?;
    let text = String::from_utf8_lossy(&text);
    let text = strip_comments(&text.replace("\\\n", "").replace("\\\r\n", ""));
    for (index, line) in text.lines().enumerate() {
        let bad = |why| UploadError::Include {
            file: member.to_string(),
            line: index + 1,
            why,
        };
        for refused in [
            "%:",
            "??=",
            "__has_include",
            "include_next",
            "#embed",
            "#import",
        ] {
            if line.contains(refused) {
                return Err(bad("uses a preprocessor form that is not accepted here (digraphs, trigraphs, #embed, #import, #include_next, __has_include)"));
            }
        }
        let trimmed = line.trim_start();
        if let Some(directive) = trimmed.strip_prefix('#') {
            let directive = directive.trim_start();
            if directive.starts_with("define") {
                return Err(bad("defines a macro: not accepted in uploaded BCT sources"));
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("inc") {
            let word_start = &rest[at..];
            let form = if word_start.starts_with("include") || word_start.starts_with("incbin") {
                Some(&line[..line.len() - rest.len() + at])
            } else {
                None
            };
            rest = &rest[at + 3..];
            let Some(before) = form else { continue };
            let after = &word_start[if word_start.starts_with("include") {
                7
            } else {
                6
            }..];
            let before = before.trim_end();
            let name = if before.ends_with('#') && before.trim_start() == "#" {
                // `#include "x"` / `#include <x>`
                quoted(after.trim_start(), &['"', '<'])
            } else if before.ends_with('/') && after.starts_with('/') {
                // `/include/ "x"` / `/incbin/("x"...)`
                let after = after[1..].trim_start();
                let after = after.strip_prefix('(').unwrap_or(after).trim_start();
                quoted(after, &['"'])
            } else {
                None
            };
            let Some(name) = name else {
                return Err(bad("includes a file in a form not accepted here: use #include \"file\", /include/ \"file\" or /incbin/(\"file\")"));
            };
            if name.starts_with('/') || name.split('/').any(|p| p == "..") || name.contains('\\') {
                return Err(bad(
                    "includes a file outside the artifact: name files by relative paths without '..'",
                ));
            }
        }
    }
    Ok(())
}

/// The name in `"name"` or `<name>` at the start of `text`.
fn quoted<'a>(text: &'a str, opens: &[char]) -> Option<&'a str> {
    let open = text.chars().next().filter(|c| opens.contains(c))?;
    let close = if open == '<' { '>' } else { '"' };
    let inner = &text[1..];
    inner.find(close).map(|end| &inner[..end])
}

/// `text` without `/* */` and `//` comments (outside string literals), as
/// cpp sees it; newlines inside block comments are kept so line numbers
/// stay right.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '"' || c == '\n' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                    }
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            ('/', Some('/')) => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Characters a `flash.xml.in` value may hold: the helpers turn partition
/// names, types, ids and file names into shell assignments and `eval` them.
fn layout_value_ok(value: &str) -> bool {
    value.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || c.is_ascii_whitespace()
            || matches!(c, '.' | '_' | '+' | '@' | ':' | ',' | '-')
    })
}

/// Checks every attribute value and every element's text (but a
/// `description`'s, which no helper reads) in a flash layout.
fn check_flash_layout(xml: &str) -> Result<(), String> {
    let mut rest = xml;
    let mut element = String::new();
    while let Some(lt) = rest.find('<') {
        let text = rest[..lt].trim();
        if !text.is_empty() && element != "description" && !layout_value_ok(text) {
            return Err(format!(
                "<{element}> holds {:?}: only A-Z a-z 0-9 . _ + @ : , - are allowed (the flash helper evaluates it as shell)",
                text.chars().take(64).collect::<String>()
            ));
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unterminated comment")?;
            rest = &after[end + 3..];
            continue;
        }
        let gt = rest.find('>').ok_or("unterminated tag")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if tag.starts_with('!') {
            return Err(
                "holds a DOCTYPE, CDATA section or entity declaration: not accepted here".into(),
            );
        }
        if let Some(pi) = tag.strip_prefix('?') {
            if !(pi.starts_with("xml ") || pi.starts_with("xml?")) {
                return Err("holds a processing instruction: not accepted here".into());
            }
            continue;
        }
        if let Some(closing) = tag.strip_prefix('/') {
            let _ = closing;
            element.clear();
            continue;
        }
        let name_end = tag
            .find(|c: char| c.is_ascii_whitespace() || c == '/')
            .unwrap_or(tag.len());
        element = tag[..name_end].to_string();
        if element.is_empty()
            || !element
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "element name {:?} is not accepted (letters, digits, _ - . only)",
                element.chars().take(64).collect::<String>()
            ));
        }
        // Attribute values: every quoted string in the tag.
        let mut attrs = &tag[name_end..];
        while let Some(q) = attrs.find(['"', '\'']) {
            let name = attrs[..q].trim().trim_end_matches('=').trim();
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
            {
                return Err(format!(
                    "an attribute name of <{element}> is not accepted: {:?}",
                    name.chars().take(64).collect::<String>()
                ));
            }
            let quote = attrs.as_bytes()[q] as char;
            let after = &attrs[q + 1..];
            let end = after.find(quote).ok_or("unterminated attribute value")?;
            let value = &after[..end];
            if !layout_value_ok(value) {
                return Err(format!(
                    "an attribute of <{element}> holds {:?}: only A-Z a-z 0-9 . _ + @ : , - are allowed (the flash helper evaluates it as shell)",
                    value.chars().take(64).collect::<String>()
                ));
            }
            attrs = &after[end + 1..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_layout_passes() {
        let xml = r#"<?xml version="1.0"?>
<!-- Nvidia Tegra Partition Layout Version 1.0.0 ($x) -->
<partition_layout version="01.00.0000">
    <device type="sdmmc_boot" instance="3" sector_size="512" num_sectors="8192">
        <partition name="mb1" type="mb1_bootloader">
            <allocation_policy> sequential </allocation_policy>
            <size> 262144 </size>
            <filename> MB1FILE </filename>
            <description> **Required.** Contains a copy (of "mb1"); see $DOCS. </description>
        </partition>
    </device>
</partition_layout>"#;
        check_flash_layout(xml).unwrap();
    }

    #[test]
    fn shell_in_a_layout_is_refused() {
        for bad in [
            r#"<partition name="a$(id)" type="x"></partition>"#,
            r#"<partition name="a" type="x"><filename> a;id </filename></partition>"#,
            r#"<partition name='`id`'></partition>"#,
            r#"<filename>a b'c</filename>"#,
            "<filename><![CDATA[$(id)]]></filename>",
            r#"<!DOCTYPE x [<!ENTITY c "x><!--">]><partition name="a"></partition>"#,
            "<?php $(id) ?><partition/>",
            r#"<partition name="a" x$(id)="b"></partition>"#,
            "<$(id)></x>",
        ] {
            assert!(check_flash_layout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn includes_must_stay_inside() {
        let dir = std::env::temp_dir().join(format!("digsig-inc-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.dts");
        for (text, ok) in [
            ("#include \"tegra234-mb1-bct-common.dtsi\"\n", true),
            ("/include/ \"sub/x.dtsi\"\n", true),
            ("#include <dt-bindings/gpio/gpio.h>\n", true),
            ("#include \"/work/keys/rsa_priv.pem\"\n", false),
            ("  #  include \"../keys/rsa_priv.pem\"\n", false),
            ("data = /incbin/(\"/etc/shadow\");\n", false),
            ("#import \"/x\"\n", false),
            ("#include KEYFILE\n", false),
            ("#inc\\\nlude \"/work/keys/rsa_priv.pem\"\n", false),
            ("#/**/include \"/etc/shadow\"\n", false),
            ("%:include \"/etc/shadow\"\n", false),
            ("#define B incbin\nx = /B/(\"/etc/shadow\");\n", false),
            ("#embed \"/etc/shadow\"\n", false),
            ("/* #include \"/etc/shadow\" */ / { };\n", true),
            ("// #include \"/etc/shadow\"\n", true),
            (
                "x = \"/* not a comment\"; #include \"/etc/shadow\"\n",
                false,
            ),
            ("compatible = \"nvidia,incbin-free\";\n", false),
        ] {
            fs::write(&file, text).unwrap();
            assert_eq!(check_includes(&file, "a.dts").is_ok(), ok, "{text}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
