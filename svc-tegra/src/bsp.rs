//! Where an L4T BSP is, and which of its files a signing run needs, by BSP
//! version and SoC, as upstream digsigserver's `TegraSigner` copies them.
//!
//! BSPs sit side by side under `DIGSIGSERVER_L4T_TOOLS_BASE` (default
//! `/opt/nvidia`) as `L4T-<bspversion>-<soc>/Linux_for_Tegra`; tegra194
//! signs with the `tegra186` tree. A request's version and SoC are looked up
//! among the installed trees, never joined onto a path unchecked.

use std::fmt;
use std::path::{Path, PathBuf};

/// The variable naming the directory BSPs are installed under.
pub const L4T_TOOLS_BASE_VAR: &str = "DIGSIGSERVER_L4T_TOOLS_BASE";

/// Where BSPs are, unless [`L4T_TOOLS_BASE_VAR`] says otherwise (upstream's).
pub const DEFAULT_L4T_TOOLS_BASE: &str = "/opt/nvidia";

/// A Jetson SoC family, as the `soctype` field names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum TegraSoc {
    /// Jetson TX2 (and the `tegra186` BSP tree tegra194 shares).
    Tegra186,
    /// Jetson AGX Xavier / Xavier NX.
    Tegra194,
    /// Jetson TX1 / Nano.
    Tegra210,
    /// Jetson AGX Orin / Orin NX / Orin Nano.
    Tegra234,
}

impl TegraSoc {
    /// Every family.
    pub const ALL: [TegraSoc; 4] = [
        TegraSoc::Tegra186,
        TegraSoc::Tegra194,
        TegraSoc::Tegra210,
        TegraSoc::Tegra234,
    ];

    /// The name as `soctype` carries it.
    pub fn name(self) -> &'static str {
        match self {
            TegraSoc::Tegra186 => "tegra186",
            TegraSoc::Tegra194 => "tegra194",
            TegraSoc::Tegra210 => "tegra210",
            TegraSoc::Tegra234 => "tegra234",
        }
    }

    /// The family called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The BSP tree it signs with: tegra194 uses tegra186's.
    pub fn bsp_tree(self) -> TegraSoc {
        match self {
            TegraSoc::Tegra194 => TegraSoc::Tegra186,
            other => other,
        }
    }
}

/// An L4T BSP version: exactly three numeric parts (`32.7.4`, `35.5.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BspVersion {
    /// Major (R32, R35, R36).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Maintenance.
    pub maint: u32,
}

impl BspVersion {
    /// Parses `major.minor.maint`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let mut next = || -> Option<u32> {
            let part = parts.next()?;
            if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let version = BspVersion {
            major: next()?,
            minor: next()?,
            maint: next()?,
        };
        parts.next().is_none().then_some(version)
    }

    /// At least `major.minor`.
    fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for BspVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.maint)
    }
}

/// What a signing run needs of one BSP, for one SoC: the files copied into
/// the work dir's `_tools`, which of them are wrapped for python2, and the
/// links made in the work dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSet {
    /// Paths under `Linux_for_Tegra` copied to `_tools/` (files, or
    /// directories copied whole).
    pub files: Vec<String>,
    /// Of those, the scripts run under python2 when their `#!` line says
    /// plain `python`/`python2` (R32's `BUP_generator.py`, `rollback_parser.py`).
    pub python2_wrapped: Vec<&'static str>,
    /// Links in the work dir, each to `_tools/bootloader/<same path>`.
    pub links: Vec<&'static str>,
    /// Whether this BSP signs with `tegrasign_v3` (and so ships
    /// `tegra-signimage-helper`): every SoC but tegra210 from R32.5.
    pub tegrasign_v3: bool,
    /// Whether the helper encrypts the kernel: tegra194/234 before R34,
    /// tegra186 from R32.6, never tegra210.
    pub encrypted_kernel: bool,
}

impl ToolSet {
    /// The files and links upstream's `TegraSigner` prepares for `soc` with
    /// BSP `version`.
    pub fn for_bsp(soc: TegraSoc, version: BspVersion) -> Self {
        let mut files: Vec<String> = [
            "bootloader/tegraflash.py",
            "bootloader/tegraflash_internal.py",
            "bootloader/BUP_generator.py",
            "bootloader/odmsign.func",
            "bootloader/l4t_bup_gen.func",
        ]
        .map(String::from)
        .to_vec();
        files.push(format!("bootloader/{}-flash-helper", soc.name()));
        let r32_6 = version.at_least(32, 6);
        let (tegrasign_v3, encrypted_kernel) = match soc {
            TegraSoc::Tegra210 => (false, false),
            TegraSoc::Tegra194 | TegraSoc::Tegra234 => {
                (version.at_least(32, 5), version.major < 34)
            }
            TegraSoc::Tegra186 => (version.at_least(32, 5), r32_6),
        };
        if soc == TegraSoc::Tegra210 {
            if r32_6 {
                files.push("bootloader/nvflashxmlparse".into());
            }
        } else {
            files.push("bootloader/nvflashxmlparse".into());
            files.push("bootloader/rollback/rollback_parser.py".into());
            if version.major == 32
                && (version.minor > 7 || (version.minor == 7 && version.maint >= 4))
            {
                files.push("bootloader/rewrite-tegraflash-args".into());
            }
        }
        let v3_support = [
            "bootloader/tegrasign_v3.py",
            "bootloader/tegrasign_v3_internal.py",
            "bootloader/tegrasign_v3_util.py",
        ];
        if tegrasign_v3 {
            files.extend(["tegra-signimage-helper", "l4t_sign_image.sh"].map(String::from));
            files.extend(v3_support.map(String::from));
        } else if r32_6 {
            files.extend(v3_support.map(String::from));
        }
        match version.major {
            35 => files.push("bootloader/tegrasign_v3_oemkey.yaml".into()),
            m if m >= 36 => files.push("bootloader/tegrasign_v3_oemkey_t234.yaml".into()),
            _ => {}
        }
        if version.major >= 35 {
            files.extend(
                [
                    "bootloader/dtbcheck.py",
                    "bootloader/tegraflash_impl_t234.py",
                    "bootloader/t194.py",
                    "bootloader/t234.py",
                    "bootloader/ed25519.py",
                    "bootloader/tegrasign_v3_hsm.py",
                    "bootloader/tegraopenssl",
                    "bootloader/pyfdt",
                ]
                .map(String::from),
            );
        }
        let mut links = vec!["tegraflash.py", "BUP_generator.py"];
        if version.major >= 35 {
            links.extend(["dtbcheck.py", "t194.py", "t234.py"]);
        }
        if soc == TegraSoc::Tegra210 {
            // R32 tegra210-flash-helper writes its own path into the flash
            // script, and expects the .func files beside it.
            links.extend(["tegra210-flash-helper", "odmsign.func", "l4t_bup_gen.func"]);
        } else {
            links.push("rollback/rollback_parser.py");
        }
        ToolSet {
            files,
            python2_wrapped: vec![
                "bootloader/BUP_generator.py",
                "bootloader/rollback/rollback_parser.py",
            ],
            links,
            tegrasign_v3,
            encrypted_kernel,
        }
    }
}

/// The BSPs installed under one base directory.
#[derive(Debug, Clone)]
pub struct BspInstalls {
    base: PathBuf,
}

/// Why no BSP could be chosen for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BspLookupError {
    /// Not three numeric parts (400).
    #[error("bspversion '{0}' is not a BSP version: give three numbers, e.g. 35.5.0")]
    BadVersion(String),
    /// Not a Jetson SoC family (400).
    #[error("soctype '{0}' is not one of tegra186, tegra194, tegra210, tegra234")]
    BadSoc(String),
    /// Not installed here (400): the installed ones are listed.
    #[error("no L4T BSP {version} for {soc} is installed here; installed: {}", if installed.is_empty() { "none".to_string() } else { installed.join(", ") })]
    NotInstalled {
        /// The version asked for.
        version: BspVersion,
        /// The SoC asked for.
        soc: &'static str,
        /// `<version> <soc>` of every installed BSP.
        installed: Vec<String>,
    },
}

impl BspInstalls {
    /// The BSPs under `base`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// Every installed BSP as `(version, tree SoC)`, sorted.
    pub fn installed(&self) -> Vec<(BspVersion, TegraSoc)> {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return Vec::new();
        };
        let mut found: Vec<(BspVersion, TegraSoc)> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                let (version, soc) = name.strip_prefix("L4T-")?.rsplit_once('-')?;
                let found = (BspVersion::parse(version)?, TegraSoc::parse(soc)?);
                self.tree(found.0, found.1).is_dir().then_some(found)
            })
            .collect();
        found.sort_by_key(|(v, s)| (*v, s.name()));
        found
    }

    /// The `Linux_for_Tegra` of an installed BSP, as [`installed`](Self::installed) names it.
    pub fn tree_of(&self, version: BspVersion, tree_soc: TegraSoc) -> PathBuf {
        self.tree(version, tree_soc)
    }

    fn tree(&self, version: BspVersion, tree_soc: TegraSoc) -> PathBuf {
        self.base
            .join(format!("L4T-{version}-{}", tree_soc.name()))
            .join("Linux_for_Tegra")
    }

    /// The `Linux_for_Tegra` tree for `soctype` and `bspversion`.
    pub fn locate(
        &self,
        soctype: &str,
        bspversion: &str,
    ) -> Result<(TegraSoc, BspVersion, PathBuf), BspLookupError> {
        let soc = TegraSoc::parse(soctype)
            .ok_or_else(|| BspLookupError::BadSoc(soctype.chars().take(64).collect()))?;
        let version = BspVersion::parse(bspversion)
            .ok_or_else(|| BspLookupError::BadVersion(bspversion.chars().take(64).collect()))?;
        let installed = self.installed();
        if installed.contains(&(version, soc.bsp_tree())) {
            return Ok((soc, version, self.tree(version, soc.bsp_tree())));
        }
        Err(BspLookupError::NotInstalled {
            version,
            soc: soc.name(),
            installed: installed
                .iter()
                .map(|(v, s)| format!("{v} {}", s.name()))
                .collect(),
        })
    }

    /// The base directory.
    pub fn base(&self) -> &Path {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> BspVersion {
        BspVersion::parse(text).unwrap()
    }

    #[test]
    fn versions_are_three_numbers() {
        assert_eq!(
            v("32.7.4"),
            BspVersion {
                major: 32,
                minor: 7,
                maint: 4
            }
        );
        for bad in [
            "32.7",
            "32.7.4.1",
            "32.x.1",
            "",
            "32..1",
            "-1.2.3",
            "35.5.0 ",
            "99999.0.0",
        ] {
            assert_eq!(BspVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn r32_4_3_has_the_base_set_and_no_tegrasign_v3() {
        let t = ToolSet::for_bsp(TegraSoc::Tegra186, v("32.4.3"));
        assert!(!t.tegrasign_v3 && !t.encrypted_kernel);
        assert!(t.files.contains(&"bootloader/tegra186-flash-helper".into()));
        assert!(t
            .files
            .contains(&"bootloader/rollback/rollback_parser.py".into()));
        assert!(!t
            .files
            .iter()
            .any(|f| f.contains("tegrasign_v3") || f.contains("signimage")));
        assert!(!t
            .files
            .contains(&"bootloader/rewrite-tegraflash-args".into()));
    }

    #[test]
    fn r32_7_4_adds_the_tegraflash_args_rewriter_and_tegrasign_v3() {
        let t = ToolSet::for_bsp(TegraSoc::Tegra194, v("32.7.4"));
        assert!(t.tegrasign_v3 && t.encrypted_kernel);
        assert!(t.files.contains(&"bootloader/tegra194-flash-helper".into()));
        assert!(t
            .files
            .contains(&"bootloader/rewrite-tegraflash-args".into()));
        assert!(t.files.contains(&"tegra-signimage-helper".into()));
        assert!(!ToolSet::for_bsp(TegraSoc::Tegra194, v("32.7.3"))
            .files
            .contains(&"bootloader/rewrite-tegraflash-args".into()));
    }

    #[test]
    fn tegra210_links_its_helper_and_never_gets_signimage() {
        let t = ToolSet::for_bsp(TegraSoc::Tegra210, v("32.7.4"));
        assert!(!t.tegrasign_v3 && !t.encrypted_kernel);
        assert!(t.files.contains(&"bootloader/nvflashxmlparse".into()));
        assert!(t.files.contains(&"bootloader/tegrasign_v3.py".into()));
        assert!(!t.files.contains(&"tegra-signimage-helper".into()));
        assert!(t.links.contains(&"tegra210-flash-helper"));
        assert!(!ToolSet::for_bsp(TegraSoc::Tegra210, v("32.5.0"))
            .files
            .contains(&"bootloader/nvflashxmlparse".into()));
    }

    #[test]
    fn r35_and_r36_add_their_oem_key_yaml_and_the_t234_scripts() {
        let r35 = ToolSet::for_bsp(TegraSoc::Tegra234, v("35.5.0"));
        assert!(r35
            .files
            .contains(&"bootloader/tegrasign_v3_oemkey.yaml".into()));
        assert!(r35.files.contains(&"bootloader/pyfdt".into()));
        assert!(r35.links.contains(&"t234.py"));
        assert!(!r35.encrypted_kernel);
        let r36 = ToolSet::for_bsp(TegraSoc::Tegra234, v("36.4.4"));
        assert!(r36
            .files
            .contains(&"bootloader/tegrasign_v3_oemkey_t234.yaml".into()));
        assert!(!r36
            .files
            .contains(&"bootloader/tegrasign_v3_oemkey.yaml".into()));
    }

    #[test]
    fn a_bsp_is_found_among_the_installed_ones_or_they_are_listed() {
        let base = std::env::temp_dir().join(format!("digsig-bsp-test-{}", std::process::id()));
        for tree in [
            "L4T-32.7.4-tegra186",
            "L4T-35.5.0-tegra234",
            "L4T-1.2-tegra186",
            "other",
        ] {
            std::fs::create_dir_all(base.join(tree).join("Linux_for_Tegra")).unwrap();
        }
        let bsps = BspInstalls::new(&base);
        let (soc, version, tree) = bsps.locate("tegra194", "32.7.4").unwrap();
        assert_eq!(
            (soc, version.to_string()),
            (TegraSoc::Tegra194, "32.7.4".to_string())
        );
        assert!(tree.ends_with("L4T-32.7.4-tegra186/Linux_for_Tegra"));
        let err = bsps.locate("tegra234", "36.4.4").unwrap_err().to_string();
        assert!(
            err.contains("installed: 32.7.4 tegra186, 35.5.0 tegra234"),
            "{err}"
        );
        assert!(matches!(
            bsps.locate("tegra999", "32.7.4"),
            Err(BspLookupError::BadSoc(_))
        ));
        assert!(matches!(
            bsps.locate("tegra186", "../../x"),
            Err(BspLookupError::BadVersion(_))
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
