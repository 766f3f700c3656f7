//! The flash package's `flashvars`: read, never sourced, and written afresh.
//!
//! meta-tegra writes `flashvars` into every flash package: a `FLASHVARS`
//! line naming the variables, then one `NAME=value` line for each (the
//! BCT config files, DTB overlays, chip SKU, ...). Every flash helper
//! sources it (`. ./flashvars`), so as uploaded it is shell code: it could
//! redefine `PATH` or `here` (which `.func` files the helper sources) and
//! run anything beside the keys. Its values also reach `eval` and `sed`
//! command lines in the helpers.
//!
//! So the uploaded file is parsed as data: only the variables the given BSP
//! generation's helper reads are accepted, each value from a small
//! character set, and the file the helper sources is written here, every
//! value single-quoted. Anything else is refused, naming the variable.

use crate::bsp::{BspVersion, TegraSoc};

/// Most bytes of a `flashvars` (real ones are a few hundred).
pub const MAX_FLASHVARS_BYTES: usize = 64 * 1024;

const R32_T186: &[&str] = &[
    "BPFDTB_FILE",
    "PINMUX_CONFIG",
    "PMIC_CONFIG",
    "PMC_CONFIG",
    "PROD_CONFIG",
    "BOOTROM_CONFIG",
    "MISC_CONFIG",
    "SCR_CONFIG",
    "SCR_COLD_BOOT_CONFIG",
    "DEV_PARAMS",
];

const R32_T194: &[&str] = &[
    "BPFDTB_FILE",
    "PMIC_CONFIG",
    "SCR_COLD_BOOT_CONFIG",
    "MISC_COLD_BOOT_CONFIG",
    "PINMUX_CONFIG",
    "PMC_CONFIG",
    "UPHY_CONFIG",
    "DEVICE_CONFIG",
    "GPIOINT_CONFIG",
    "PROD_CONFIG",
    "SCR_CONFIG",
    "BR_CMD_CONFIG",
    "DEV_PARAMS",
    "TRIM_BPMP_DTB",
    "MINRATCHET_CONFIG",
];

const R32_T210: &[&str] = &["DTBFILE", "TBCFILENAME", "RCM_TBCFILENAME", "boardcfg_file"];

const R35: &[&str] = &[
    "OVERLAY_DTB_FILE",
    "CHIPID",
    "PLUGIN_MANAGER_OVERLAYS",
    "BOOTCONTROL_OVERLAYS",
    "BPFDTB_FILE",
    "BPF_FILE",
    "BR_CMD_CONFIG",
    "CHIP_SKU",
    "DEVICE_CONFIG",
    "DEVICEPROD_CONFIG",
    "DEV_PARAMS",
    "DEV_PARAMS_B",
    "EMC_FUSE_DEV_PARAMS",
    "GPIOINT_CONFIG",
    "MB2BCT_CFG",
    "MINRATCHET_CONFIG",
    "MISC_COLD_BOOT_CONFIG",
    "MISC_CONFIG",
    "PINMUX_CONFIG",
    "PMC_CONFIG",
    "PMIC_CONFIG",
    "PROD_CONFIG",
    "RAMCODE",
    "SCR_COLD_BOOT_CONFIG",
    "SCR_CONFIG",
    "TBCDTB_FILE",
    "UPHY_CONFIG",
    "WB0SDRAM_BCT",
];

/// R36 adds these to R35's (less the two cold-boot configs).
const R36_EXTRA: &[&str] = &[
    "DCE_OVERLAY",
    "RCM_UEFI_IMAGE",
    "UEFI_IMAGE",
    "CHECK_BOARDID",
    "CHECK_BOARDSKU",
    "RCMBOOT_KERNEL",
];

/// The variables the flash helper of `version` for `soc` reads from
/// `flashvars` (besides `FLASHVARS` itself).
pub fn accepted(soc: TegraSoc, version: BspVersion) -> Vec<&'static str> {
    match version.major {
        ..=34 => match soc {
            TegraSoc::Tegra186 => R32_T186.to_vec(),
            TegraSoc::Tegra194 | TegraSoc::Tegra234 => R32_T194.to_vec(),
            TegraSoc::Tegra210 => R32_T210.to_vec(),
        },
        35 => R35.to_vec(),
        _ => R35
            .iter()
            .filter(|v| !matches!(**v, "MISC_COLD_BOOT_CONFIG" | "SCR_COLD_BOOT_CONFIG"))
            .chain(R36_EXTRA)
            .copied()
            .collect(),
    }
}

/// Why an uploaded `flashvars` is refused (400s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlashvarsError {
    /// Larger than [`MAX_FLASHVARS_BYTES`], or not text.
    #[error("flashvars is not a text file of at most {MAX_FLASHVARS_BYTES} bytes")]
    NotText,
    /// A line that is not `NAME=value`.
    #[error("flashvars line {0} is not NAME=value (it is read as data, never run)")]
    NotAssignment(usize),
    /// A variable this BSP's helper does not read.
    #[error("flashvars line {line}: variable '{name}' is not accepted for this BSP (accepted: FLASHVARS, {})", accepted.join(", "))]
    UnknownVariable {
        /// 1-based line.
        line: usize,
        /// The name, cut to 64 characters.
        name: String,
        /// What is accepted.
        accepted: Vec<&'static str>,
    },
    /// A value holding something other than a file name or list of them.
    #[error("flashvars line {line}: {name} value {value:?} holds a character the signing scripts would run as shell (allowed: A-Z a-z 0-9 . _ @ - and {extra})")]
    BadValue {
        /// 1-based line.
        line: usize,
        /// The variable.
        name: &'static str,
        /// The value, cut to 128 characters.
        value: String,
        /// The characters this variable may hold besides the common ones.
        extra: &'static str,
    },
    /// `FLASHVARS` names a variable that is not accepted or not set.
    #[error("flashvars: FLASHVARS lists '{0}', which is not an accepted variable set in the file")]
    Unlisted(String),
}

/// A `flashvars` that passed the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flashvars {
    vars: Vec<(&'static str, String)>,
}

/// Characters a variable's value may hold besides `A-Z a-z 0-9 . _ @ -`:
/// commas only where the value is a list, `:` in the chip SKU, and spaces
/// where the helper passes it on as an option and its file.
fn extra_chars(name: &str) -> &'static str {
    match name {
        "CHIP_SKU" => ":",
        "PLUGIN_MANAGER_OVERLAYS" | "BOOTCONTROL_OVERLAYS" | "OVERLAY_DTB_FILE" => ",",
        "UPHY_CONFIG" => "a leading '--uphy_config '",
        "MINRATCHET_CONFIG" => "a leading '--minratchet_config '",
        _ => "nothing else",
    }
}

fn value_ok(name: &str, value: &str) -> bool {
    if value.len() > 1024 {
        return false;
    }
    let common = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    match extra_chars(name) {
        ":" => value.chars().all(|c| common(c) || c == ':'),
        "," => value.chars().all(|c| common(c) || c == ','),
        "nothing else" => !value.starts_with('-') && value.chars().all(common),
        // `--uphy_config tegra194-...cfg`: that one option, then a file
        // name (never another tegraflash option).
        _ => {
            let option = if name == "UPHY_CONFIG" {
                "--uphy_config "
            } else {
                "--minratchet_config "
            };
            let file = value.strip_prefix(option).unwrap_or(value);
            !file.starts_with('-') && file.chars().all(common)
        }
    }
}

impl Flashvars {
    /// Reads an uploaded `flashvars` for `soc` and BSP `version`.
    pub fn parse(bytes: &[u8], soc: TegraSoc, version: BspVersion) -> Result<Self, FlashvarsError> {
        if bytes.len() > MAX_FLASHVARS_BYTES {
            return Err(FlashvarsError::NotText);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| FlashvarsError::NotText)?;
        let accepted = accepted(soc, version);
        let mut vars = Vec::new();
        let mut listed: Option<Vec<String>> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let (name, value) = raw
                .split_once('=')
                .ok_or(FlashvarsError::NotAssignment(line))?;
            let value = unquote(value).ok_or(FlashvarsError::NotAssignment(line))?;
            if name == "FLASHVARS" {
                listed = Some(value.split_whitespace().map(String::from).collect());
                continue;
            }
            let Some(&name) = accepted.iter().find(|a| **a == name) else {
                return Err(FlashvarsError::UnknownVariable {
                    line,
                    name: name.chars().take(64).collect(),
                    accepted,
                });
            };
            if !value_ok(name, value) {
                return Err(FlashvarsError::BadValue {
                    line,
                    name,
                    value: value.chars().take(128).collect(),
                    extra: extra_chars(name),
                });
            }
            vars.retain(|(n, _)| *n != name);
            vars.push((name, value.to_string()));
        }
        if let Some(listed) = listed {
            if let Some(missing) = listed.iter().find(|l| !vars.iter().any(|(n, _)| n == l)) {
                return Err(FlashvarsError::Unlisted(missing.chars().take(64).collect()));
            }
        }
        Ok(Self { vars })
    }

    /// The file names among the values (list items, and the file after an
    /// option), for the checks on what `cpp` and `dtc` read.
    pub fn file_names(&self) -> Vec<&str> {
        self.vars
            .iter()
            .flat_map(|(_, v)| v.split([',', ' ', ':']))
            .filter(|w| !w.is_empty() && !w.starts_with('-'))
            .collect()
    }

    /// The variables, in file order.
    pub fn vars(&self) -> &[(&'static str, String)] {
        &self.vars
    }

    /// The file the helper sources: `FLASHVARS` naming the variables, then
    /// each, single-quoted (no value can hold a quote).
    pub fn render(&self) -> String {
        let names: Vec<&str> = self.vars.iter().map(|(n, _)| *n).collect();
        let mut out = format!("FLASHVARS='{}'\n", names.join(" "));
        for (name, value) in &self.vars {
            out.push_str(&format!("{name}='{value}'\n"));
        }
        out
    }
}

/// `value`, `"value"` or `'value'`, without its quotes; `None` for
/// unbalanced quotes.
fn unquote(value: &str) -> Option<&str> {
    for q in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(q) {
            return rest.strip_suffix(q).filter(|inner| !inner.contains(q));
        }
    }
    Some(value)
}

/// The `bsp_version` file the helpers source (`. bsp_version`, found on
/// `PATH` first): NVIDIA's `nv_tegra/bsp_version` layout, written from the
/// request's checked version, so an uploaded one is never read.
pub fn bsp_version_file(version: BspVersion) -> String {
    format!(
        "# R{} , REVISION: {}.{}\nBSP_BRANCH={}\nBSP_MAJOR={}\nBSP_MINOR={}\n",
        version.major, version.minor, version.maint, version.major, version.minor, version.maint
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> BspVersion {
        BspVersion::parse(text).unwrap()
    }

    /// As meta-tegra's image_types_tegra writes it for an Orin (R35).
    const ORIN: &str = r#"FLASHVARS="BPFDTB_FILE PINMUX_CONFIG CHIP_SKU PLUGIN_MANAGER_OVERLAYS UPHY_CONFIG"
BPFDTB_FILE="tegra234-bpmp-3701-0000-3737-0000.dtb"
PINMUX_CONFIG="tegra234-mb1-bct-pinmux-p3701-0000-a04.dtsi"
CHIP_SKU="00:00:00:D0"
PLUGIN_MANAGER_OVERLAYS="tegra234-p3737-audio-codec-rt5658-40pin.dtbo,tegra234-p3737-overlay.dtbo"
UPHY_CONFIG="--uphy_config tegra234-mb1-bct-uphy-p3701-0000.dtsi"
"#;

    #[test]
    fn reads_meta_tegra_s_flashvars_and_writes_it_quoted() {
        let f = Flashvars::parse(ORIN.as_bytes(), TegraSoc::Tegra234, v("35.5.0")).unwrap();
        assert_eq!(f.vars().len(), 5);
        let out = f.render();
        assert!(out.starts_with(
            "FLASHVARS='BPFDTB_FILE PINMUX_CONFIG CHIP_SKU PLUGIN_MANAGER_OVERLAYS UPHY_CONFIG'\n"
        ));
        assert!(out.contains("CHIP_SKU='00:00:00:D0'\n"));
        assert!(out.contains("UPHY_CONFIG='--uphy_config tegra234-mb1-bct-uphy-p3701-0000.dtsi'\n"));
    }

    #[test]
    fn refuses_variables_the_helper_does_not_read() {
        for bad in [
            "PATH=/tmp",
            "BASH_ENV=./x",
            "here=.",
            "LD_PRELOAD=./x.so",
            "ENV=./x",
        ] {
            let err =
                Flashvars::parse(bad.as_bytes(), TegraSoc::Tegra234, v("35.5.0")).unwrap_err();
            assert!(
                matches!(err, FlashvarsError::UnknownVariable { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad.split('=').next().unwrap()));
        }
    }

    #[test]
    fn refuses_shell_in_values() {
        for bad in [
            "BPFDTB_FILE=\"$(id)\"",
            "BPFDTB_FILE=a;b",
            "BPFDTB_FILE=`id`",
            "BPFDTB_FILE=x,e",
            "BPFDTB_FILE=-x",
            "BPFDTB_FILE=a b",
            "BPFDTB_FILE=../../etc/passwd",
            "CHIP_SKU=a,b",
            "UPHY_CONFIG=--x=y",
            "UPHY_CONFIG=-o x",
            "UPHY_CONFIG=--cfg x.cfg",
            "UPHY_CONFIG=--uphy_config x --cmd y",
            "MINRATCHET_CONFIG=--uphy_config x",
        ] {
            let err =
                Flashvars::parse(bad.as_bytes(), TegraSoc::Tegra234, v("35.5.0")).unwrap_err();
            assert!(
                matches!(err, FlashvarsError::BadValue { .. }),
                "{bad}: {err}"
            );
        }
        for bad in ["BPFDTB_FILE=\"a'", "BPFDTB_FILE='a\"", "x"] {
            assert!(Flashvars::parse(bad.as_bytes(), TegraSoc::Tegra234, v("35.5.0")).is_err());
        }
    }

    #[test]
    fn the_accepted_set_follows_the_generation() {
        let r32 = accepted(TegraSoc::Tegra210, v("32.7.4"));
        assert!(r32.contains(&"TBCFILENAME") && !r32.contains(&"CHIP_SKU"));
        let r36 = accepted(TegraSoc::Tegra234, v("36.3.0"));
        assert!(r36.contains(&"UEFI_IMAGE") && !r36.contains(&"SCR_COLD_BOOT_CONFIG"));
        assert!(accepted(TegraSoc::Tegra234, v("35.5.0")).contains(&"SCR_COLD_BOOT_CONFIG"));
        let err = Flashvars::parse(b"CHIP_SKU=1", TegraSoc::Tegra186, v("32.7.4")).unwrap_err();
        assert!(matches!(err, FlashvarsError::UnknownVariable { .. }));
    }

    #[test]
    fn flashvars_must_set_what_it_lists() {
        let err = Flashvars::parse(
            b"FLASHVARS=\"BPFDTB_FILE PATH\"\nBPFDTB_FILE=a.dtb\n",
            TegraSoc::Tegra234,
            v("35.5.0"),
        )
        .unwrap_err();
        assert_eq!(err, FlashvarsError::Unlisted("PATH".into()));
    }

    #[test]
    fn bsp_version_is_nvidia_s_layout() {
        assert_eq!(
            bsp_version_file(v("35.5.0")),
            "# R35 , REVISION: 5.0\nBSP_BRANCH=35\nBSP_MAJOR=5\nBSP_MINOR=0\n"
        );
    }
}
