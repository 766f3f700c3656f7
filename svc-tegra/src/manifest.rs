//! The `MANIFEST` in a tegra signing upload: `KEY=VALUE` lines written by
//! the Yocto classes (`tegrasign.bbclass` in tegra-test-distro,
//! `digsigserver-tegra-signing.bbclass` in meta-tegra-signing-server).
//!
//! Upstream digsigserver makes every line an environment variable of NVIDIA's
//! shell scripts, so `BASH_ENV=./x.sh`, `LD_PRELOAD=...` or `PATH=...` in an
//! upload runs the client's code beside the signing keys. Here only the keys
//! those classes write are accepted, each value is checked against what it
//! can be, and the environment a helper gets is built from this typed form
//! under names chosen in code ([`Manifest::helper_env`]). Anything else is
//! refused, naming the key.

use std::collections::BTreeSet;

/// Every key a MANIFEST may hold, for messages and the API document.
pub const ACCEPTED_KEYS: [&str; 16] = [
    "DTBFILE",
    "LNXFILE",
    "ODMDATA",
    "EMMC_BCTS",
    "boardcfg",
    "BOARDID",
    "FAB",
    "BOARDSKU",
    "BOARDREV",
    "CHIPREV",
    "CHIP_SKU",
    "fuselevel",
    "localbootfile",
    "BUPGENSPECS",
    "SIGNFILES",
    "BUPGEN",
];

/// Most bytes of a MANIFEST (real ones are well under 1 KiB).
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// A file of the upload, named relative to its root: no leading `/`, no
/// `..`, no empty or `.` components, and only `A-Z a-z 0-9 . _ + @ - /`:
/// the helpers `eval` command lines holding these names, so a `$`, quote,
/// space or `;` in one would be shell code. (That it is a regular file
/// inside the extracted tree is checked when the tree is there.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UploadPath(String);

impl UploadPath {
    /// Checks `name` as the path of a file in the upload.
    pub fn parse(name: &str) -> Result<Self, &'static str> {
        if name.is_empty() {
            return Err("is empty");
        }
        if name.len() > 4096 {
            return Err("is longer than 4096 bytes");
        }
        if name.starts_with('/') {
            return Err("is an absolute path: name a file inside the upload");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '@' | '-' | '/'))
        {
            return Err("holds a character other than A-Z a-z 0-9 . _ + @ - / (the signing scripts evaluate it as shell)");
        }
        if name.starts_with('-') {
            return Err("starts with '-' (it would read as an option)");
        }
        for part in name.split('/') {
            match part {
                "" | "." => return Err("has an empty or '.' component"),
                ".." => return Err("has a '..' component: name a file inside the upload"),
                _ => {}
            }
        }
        Ok(Self(name.to_string()))
    }

    /// The path, relative to the upload's root.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One bootloader-update payload spec from `BUPGENSPECS`: the board it is
/// for, as meta-tegra writes them (`fab=300;boardsku=0000;boardrev=;
/// chipsku=00:00:00:D0;bup_type=bl`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BupSpec {
    /// `fab`.
    pub fab: Option<String>,
    /// `boardsku`.
    pub boardsku: Option<String>,
    /// `boardrev`.
    pub boardrev: Option<String>,
    /// `boardid`.
    pub boardid: Option<String>,
    /// `chiprev`.
    pub chiprev: Option<String>,
    /// `chipsku` (Orin).
    pub chipsku: Option<String>,
    /// `bup_type` (Orin: `bl` or `kernel`).
    pub bup_type: Option<String>,
}

/// The settings a spec may carry.
pub const SPEC_KEYS: [&str; 7] = [
    "fab", "boardsku", "boardrev", "boardid", "chiprev", "chipsku", "bup_type",
];

/// A MANIFEST that passed the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// `DTBFILE`: the device tree.
    pub dtb_file: Option<UploadPath>,
    /// `LNXFILE`: the kernel (or `boot.img`).
    pub kernel_file: Option<UploadPath>,
    /// `ODMDATA`: a hex word (R32) or comma-separated names (R35+).
    pub odmdata: Option<String>,
    /// `EMMC_BCTS`: the SDRAM/BCT config files, comma-separated.
    pub emmc_bcts: Option<Vec<UploadPath>>,
    /// `boardcfg` (tegra210): a board config file, or empty.
    pub boardcfg: Option<Option<UploadPath>>,
    /// Board identity the helpers read from their environment.
    pub board: Vec<(&'static str, String)>,
    /// `fuselevel`: `fuselevel_production` or `fuselevel_nofuse`.
    pub fuselevel: Option<String>,
    /// `localbootfile`: the kernel's name as the flash layout calls it.
    pub localbootfile: Option<String>,
    /// `BUPGENSPECS`: bootloader update payloads to make, one per spec.
    pub bup_specs: Option<Vec<BupSpec>>,
    /// `SIGNFILES`: files to sign one by one.
    pub sign_files: Option<Vec<UploadPath>>,
    /// `BUPGEN` (older clients): return only the `payloads*` the flash
    /// helper made.
    pub bupgen_legacy: bool,
}

/// Why a MANIFEST is refused (all 400s: the client's to fix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("MANIFEST is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8 text.
    #[error("MANIFEST is not UTF-8 text")]
    NotText,
    /// A line that is not `KEY=VALUE`.
    #[error("MANIFEST line {line} is not KEY=VALUE")]
    NotKeyValue {
        /// 1-based line number.
        line: usize,
    },
    /// A key that is not accepted.
    #[error("MANIFEST line {line}: key '{key}' is not accepted (only {} are; a MANIFEST never sets other variables of the signing tools)", ACCEPTED_KEYS.join(", "))]
    UnknownKey {
        /// 1-based line number.
        line: usize,
        /// The key, cut to 64 characters.
        key: String,
    },
    /// A key given twice.
    #[error("MANIFEST line {line}: key '{key}' is given twice")]
    Duplicate {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// A value that cannot be what its key means.
    #[error("MANIFEST line {line}: {key} value {value:?} {why}")]
    BadValue {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// The value, cut to 128 characters.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Board identity values: `0000`, `B01`, `00:00:00:D0`, or empty; never
/// starting with `-`.
fn is_board_value(value: &str) -> bool {
    value.len() <= 64
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

impl Manifest {
    /// Reads and checks a MANIFEST.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotText)?;
        let mut manifest = Manifest::default();
        let mut seen = BTreeSet::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let raw = raw.trim_end();
            if raw.trim().is_empty() {
                continue;
            }
            let (key, value) = raw
                .split_once('=')
                .ok_or(ManifestError::NotKeyValue { line })?;
            let Some(&key) = ACCEPTED_KEYS.iter().find(|k| **k == key) else {
                return Err(ManifestError::UnknownKey {
                    line,
                    key: key.chars().take(64).collect(),
                });
            };
            if !seen.insert(key) {
                return Err(ManifestError::Duplicate { line, key });
            }
            manifest.set(line, key, value)?;
        }
        Ok(manifest)
    }

    fn set(&mut self, line: usize, key: &'static str, value: &str) -> Result<(), ManifestError> {
        let bad = |why: &'static str| ManifestError::BadValue {
            line,
            key: key.to_string(),
            value: value.chars().take(128).collect(),
            why,
        };
        let path = |v: &str| UploadPath::parse(v).map_err(bad);
        match key {
            "DTBFILE" => self.dtb_file = Some(path(value)?),
            "LNXFILE" => self.kernel_file = Some(path(value)?),
            "ODMDATA" => {
                let ok = !value.is_empty()
                    && !value.starts_with('-')
                    && value.len() <= 512
                    && value.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, ',' | '.' | '_' | ':' | '-')
                    });
                if !ok {
                    return Err(bad("is not a hex word or a comma-separated list of names (not starting with '-')"));
                }
                self.odmdata = Some(value.to_string());
            }
            // meta-tegra-signing-server's class writes `EMMC_BCTS=` when
            // unset: empty is absent (the helper then uses <machine>.cfg).
            "EMMC_BCTS" if value.is_empty() => {}
            "EMMC_BCTS" => {
                let files = value.split(',').map(path).collect::<Result<Vec<_>, _>>()?;
                self.emmc_bcts = Some(files);
            }
            "boardcfg" => {
                self.boardcfg = Some(if value.is_empty() {
                    None
                } else {
                    Some(path(value)?)
                })
            }
            "fuselevel" => {
                if !matches!(value, "fuselevel_production" | "fuselevel_nofuse") {
                    return Err(bad("is not fuselevel_production or fuselevel_nofuse"));
                }
                self.fuselevel = Some(value.to_string());
            }
            "localbootfile" => {
                if value.contains('/') || UploadPath::parse(value).is_err() {
                    return Err(bad("is not a plain file name"));
                }
                self.localbootfile = Some(value.to_string());
            }
            "BUPGENSPECS" => self.bup_specs = Some(parse_specs(value).map_err(bad)?),
            "BUPGEN" => self.bupgen_legacy = true,
            "SIGNFILES" => {
                let files = value
                    .split_whitespace()
                    .map(path)
                    .collect::<Result<Vec<_>, _>>()?;
                if files.is_empty() {
                    return Err(bad("names no file"));
                }
                self.sign_files = Some(files);
            }
            // BOARDID, FAB, BOARDSKU, BOARDREV, CHIPREV, CHIP_SKU
            board => {
                if !is_board_value(value) {
                    return Err(bad(
                        "is not a board identity value (letters, digits, . _ : -; at most 64)",
                    ));
                }
                self.board.push((board, value.to_string()));
            }
        }
        Ok(())
    }

    /// The environment a helper gets from the MANIFEST: fixed names, checked
    /// values (the caller adds `PATH`, `MACHINE` and its own).
    pub fn helper_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.board.clone();
        if let Some(level) = &self.fuselevel {
            env.push(("fuselevel", level.clone()));
        }
        if let Some(file) = &self.localbootfile {
            env.push(("localbootfile", file.clone()));
        }
        if let Some(file) = &self.dtb_file {
            env.push(("DTBFILE", file.as_str().to_string()));
        }
        if let Some(file) = &self.kernel_file {
            env.push(("LNXFILE", file.as_str().to_string()));
        }
        if let Some(odmdata) = &self.odmdata {
            env.push(("ODMDATA", odmdata.clone()));
        }
        env
    }
}

/// `BUPGENSPECS`: specs separated by white space, each `k=v` settings
/// separated by `;`.
fn parse_specs(value: &str) -> Result<Vec<BupSpec>, &'static str> {
    let mut specs = Vec::new();
    for text in value.split_whitespace() {
        let mut spec = BupSpec::default();
        for setting in text.split(';').filter(|s| !s.is_empty()) {
            let (name, v) = setting
                .split_once('=')
                .ok_or("has a spec setting that is not name=value")?;
            if !is_board_value(v) {
                return Err("has a spec value that is not a board identity value");
            }
            if name == "bup_type" && !matches!(v, "bl" | "kernel") {
                return Err("has a bup_type other than bl or kernel");
            }
            let slot = match name {
                "fab" => &mut spec.fab,
                "boardsku" => &mut spec.boardsku,
                "boardrev" => &mut spec.boardrev,
                "boardid" => &mut spec.boardid,
                "chiprev" => &mut spec.chiprev,
                "chipsku" => &mut spec.chipsku,
                "bup_type" => &mut spec.bup_type,
                _ => {
                    return Err("has a spec setting other than fab, boardsku, boardrev, boardid, chiprev, chipsku, bup_type")
                }
            };
            if slot.replace(v.to_string()).is_some() {
                return Err("sets one spec setting twice");
            }
        }
        specs.push(spec);
    }
    if specs.is_empty() {
        return Err("names no spec");
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What tegrasign.bbclass writes for a flash package (tegra-test-distro).
    const BBCLASS: &str = "DTBFILE=tegra194-p2888-0001-p2822-0000.dtb
ODMDATA=0x9190000
LNXFILE=boot.img
BOARDID=2888
FAB=400
fuselevel=fuselevel_production
localbootfile=boot.img
boardcfg=
CHIPREV=
BOARDSKU=0001
BOARDREV=H.0
";

    #[test]
    fn reads_what_the_bbclass_writes() {
        let m = Manifest::parse(BBCLASS.as_bytes()).unwrap();
        assert_eq!(
            m.dtb_file.as_ref().unwrap().as_str(),
            "tegra194-p2888-0001-p2822-0000.dtb"
        );
        assert_eq!(m.kernel_file.as_ref().unwrap().as_str(), "boot.img");
        assert_eq!(m.odmdata.as_deref(), Some("0x9190000"));
        assert_eq!(m.boardcfg, Some(None));
        assert!(m.bup_specs.is_none() && m.sign_files.is_none());
        let env = m.helper_env();
        for (name, value) in [
            ("BOARDID", "2888"),
            ("FAB", "400"),
            ("CHIPREV", ""),
            ("BOARDSKU", "0001"),
            ("BOARDREV", "H.0"),
            ("fuselevel", "fuselevel_production"),
            ("localbootfile", "boot.img"),
        ] {
            assert!(env.contains(&(name, value.to_string())), "{name}: {env:?}");
        }
    }

    #[test]
    fn reads_bup_specs_as_meta_tegra_writes_them() {
        let text = format!(
            "{BBCLASS}BUPGENSPECS=fab=300;boardsku=0000;boardrev=;chipsku=00:00:00:D0;bup_type=bl fab=300;boardsku=0000;boardrev=;chipsku=00:00:00:D0;bup_type=kernel\n"
        );
        let m = Manifest::parse(text.as_bytes()).unwrap();
        let specs = m.bup_specs.unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].chipsku.as_deref(), Some("00:00:00:D0"));
        assert_eq!(specs[0].bup_type.as_deref(), Some("bl"));
        assert_eq!(specs[1].bup_type.as_deref(), Some("kernel"));
        assert_eq!(specs[1].boardrev.as_deref(), Some(""));
    }

    #[test]
    fn refuses_keys_that_would_steer_the_tools() {
        for key in [
            "BASH_ENV",
            "LD_PRELOAD",
            "PATH",
            "PYTHONPATH",
            "ENV",
            "MACHINE",
            "dtbfile",
        ] {
            let text = format!("{BBCLASS}{key}=./x.sh\n");
            match Manifest::parse(text.as_bytes()) {
                Err(ManifestError::UnknownKey { line: 12, key: k }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        let err = Manifest::parse(b"LD_PRELOAD=/tmp/x.so\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'LD_PRELOAD' is not accepted") && err.contains("DTBFILE"),
            "{err}"
        );
    }

    #[test]
    fn refuses_spec_settings_that_are_not_board_identity() {
        for spec in [
            "fab=300;BASH_ENV=./x.sh",
            "fab=300;path=/tmp",
            "fab=$(id)",
            "fab=300;fab=301",
            "fab",
        ] {
            let text = format!("{BBCLASS}BUPGENSPECS={spec}\n");
            assert!(
                matches!(
                    Manifest::parse(text.as_bytes()),
                    Err(ManifestError::BadValue { line: 12, .. })
                ),
                "{spec} accepted"
            );
        }
    }

    #[test]
    fn refuses_file_names_outside_the_upload() {
        for (key, value) in [
            ("DTBFILE", "/etc/passwd"),
            ("LNXFILE", "../boot.img"),
            ("EMMC_BCTS", "a.cfg,../../b.cfg"),
            ("SIGNFILES", "a.bin /etc/shadow"),
            ("boardcfg", "x/../../y"),
            ("DTBFILE", "--help"),
            ("localbootfile", "dir/boot.img"),
            ("DTBFILE", "$(id).dtb"),
            ("LNXFILE", "boot img"),
            ("SIGNFILES", "a;reboot"),
            ("EMMC_BCTS", "x`id`.cfg"),
        ] {
            let text = format!("{key}={value}\n");
            assert!(
                matches!(
                    Manifest::parse(text.as_bytes()),
                    Err(ManifestError::BadValue { .. })
                ),
                "{key}={value} accepted"
            );
        }
    }

    #[test]
    fn an_empty_emmc_bcts_is_absent_as_the_signing_server_class_writes_it() {
        let m = Manifest::parse(format!("{BBCLASS}EMMC_BCTS=\n").as_bytes()).unwrap();
        assert_eq!(m.emmc_bcts, None);
        let m = Manifest::parse(format!("{BBCLASS}EMMC_BCTS=a.cfg,b.cfg\n").as_bytes()).unwrap();
        assert_eq!(m.emmc_bcts.unwrap().len(), 2);
    }

    #[test]
    fn refuses_malformed_manifests() {
        assert_eq!(
            Manifest::parse(b"DTBFILE\n"),
            Err(ManifestError::NotKeyValue { line: 1 })
        );
        assert_eq!(
            Manifest::parse(b"FAB=1\nFAB=2\n"),
            Err(ManifestError::Duplicate {
                line: 2,
                key: "FAB"
            })
        );
        assert_eq!(Manifest::parse(&[0xff, b'=']), Err(ManifestError::NotText));
        assert!(matches!(
            Manifest::parse(b"ODMDATA=0x1;rm -rf /\n"),
            Err(ManifestError::BadValue { .. })
        ));
        assert_eq!(
            Manifest::parse(&vec![b'#'; MAX_MANIFEST_BYTES + 1]),
            Err(ManifestError::TooLarge)
        );
        // Blank lines are tolerated; upstream refuses them.
        assert!(Manifest::parse(b"\nFAB=1\n\n").is_ok());
    }
}
