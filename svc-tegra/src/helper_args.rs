//! The command lines of the BSP's helpers, as upstream digsigserver builds
//! them, with upstream's known bugs fixed (each marked "Fixed:"):
//!
//! - `<soctype>-flash-helper` for a flash package (`--no-flash`) or for
//!   bootloader update payloads (`--bup`, once per `BUPGENSPECS` spec);
//! - `tegra-signimage-helper` for `SIGNFILES`.
//!
//! Every value here is either ours (key paths, fixed option names) or a
//! checked MANIFEST value: file names relative to the upload that cannot
//! start with `-`, an ODMDATA that cannot either, and a machine name that
//! the caller has refused when it starts with `-`. The helpers parse their
//! options with getopt, which would take such a positional for an option.

use crate::bsp::{BspVersion, TegraSoc};
use crate::manifest::{BupSpec, Manifest, UploadPath};

/// The key files a run has, as paths the helper is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    /// `rsa_priv.pem`, the PKC key (required).
    pub pkc: String,
    /// `sbk.txt`, the secure boot key, if the machine has one.
    pub sbk: Option<String>,
    /// `user_key.txt`, if the machine has one.
    pub user_key: Option<String>,
}

/// Why no command line could be made from a MANIFEST (400s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A key the flash helper needs is missing.
    #[error("MANIFEST lacks {0}, which the flash helper needs")]
    Missing(&'static str),
    /// A spec asks for something this BSP's helper has no option for.
    #[error("BUPGENSPECS: {0}")]
    Unsupported(&'static str),
    /// A machine name the helper would read as an option (`-x.cfg`).
    #[error(
        "machine '{0}' starts with '-': the flash helper would read its config name as an option"
    )]
    Machine(String),
}

/// One helper run: the program (a name found on the run's `PATH`, or a
/// `./` path in the work dir), its arguments and the environment variables
/// it gets besides the run's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperRun {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment, by names chosen here.
    pub env: Vec<(&'static str, String)>,
}

/// Whether the helper is the unified R35+ `tegra-flash-helper` (installed
/// under the per-SoC name), which has `--bup-type` and no `--user_key`.
fn unified_helper(version: BspVersion) -> bool {
    version.major >= 35
}

/// The flash helper's run: `--no-flash` for a flash package, or `--bup`
/// with `bup` for one bootloader-update spec.
pub fn flash_helper(
    soc: TegraSoc,
    version: BspVersion,
    machine: &str,
    manifest: &Manifest,
    keys: &KeyPaths,
    bup: Option<&BupSpec>,
) -> Result<HelperRun, ArgsError> {
    if machine.starts_with('-') {
        return Err(ArgsError::Machine(machine.chars().take(64).collect()));
    }
    // Found on the run's PATH, `_tools/bootloader` first, for every SoC.
    // Not upstream's `./tegra210-flash-helper`: run from the upload, the
    // helper would take the upload for its own directory and put it first
    // on PATH (DESIGN.md). R32's tegra210 helper writes its own path into
    // the flash script, so the caller rewrites that path in `flashcmd.txt`.
    let program = format!("{}-flash-helper", soc.name());
    let mut args = vec![if bup.is_some() { "--bup" } else { "--no-flash" }.to_string()];
    let mut env = manifest.helper_env();
    if let Some(spec) = bup {
        if let Some(bup_type) = &spec.bup_type {
            // Fixed: upstream exports `BUP_TYPE`, which no helper reads;
            // meta-tegra's own BUP script passes --bup-type.
            if !unified_helper(version) {
                return Err(ArgsError::Unsupported(
                    "bup_type needs an R35 or later BSP; R32 helpers have no --bup-type",
                ));
            }
            args.push("--bup-type".into());
            args.push(bup_type.clone());
        }
        for (name, value) in [
            ("FAB", &spec.fab),
            ("BOARDSKU", &spec.boardsku),
            ("BOARDREV", &spec.boardrev),
            ("BOARDID", &spec.boardid),
            ("CHIPREV", &spec.chiprev),
            // Fixed: upstream exports `CHIPSKU`; the helper reads CHIP_SKU.
            ("CHIP_SKU", &spec.chipsku),
        ] {
            if let Some(value) = value {
                env.retain(|(n, _)| *n != name);
                env.push((name, value.clone()));
            }
        }
    }
    args.push("-u".into());
    args.push(keys.pkc.clone());
    if soc != TegraSoc::Tegra210 {
        if let Some(sbk) = &keys.sbk {
            args.push("-v".into());
            args.push(sbk.clone());
        }
        // Fixed: the unified R35+ helper has no --user_key option.
        if let (Some(user_key), false) = (&keys.user_key, unified_helper(version)) {
            args.push("--user_key".into());
            args.push(user_key.clone());
        }
    }
    let dtb = manifest
        .dtb_file
        .as_ref()
        .ok_or(ArgsError::Missing("DTBFILE"))?;
    let odmdata = manifest
        .odmdata
        .as_ref()
        .ok_or(ArgsError::Missing("ODMDATA"))?;
    let kernel = manifest
        .kernel_file
        .as_ref()
        .ok_or(ArgsError::Missing("LNXFILE"))?;
    let cfg = match &manifest.emmc_bcts {
        Some(files) => files
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(","),
        None if soc == TegraSoc::Tegra194 => format!("{machine}.cfg,{machine}-override.cfg"),
        None => format!("{machine}.cfg"),
    };
    args.extend([
        "flash.xml.in".to_string(),
        dtb.as_str().to_string(),
        cfg,
        odmdata.clone(),
    ]);
    if soc == TegraSoc::Tegra210 {
        if let Some(boardcfg) = &manifest.boardcfg {
            args.push(
                boardcfg
                    .as_ref()
                    .map(|f| f.as_str().to_string())
                    .unwrap_or_default(),
            );
        }
    }
    args.push(kernel.as_str().to_string());
    Ok(HelperRun { program, args, env })
}

/// `tegra-signimage-helper` signing `files` (checked names from `SIGNFILES`,
/// not upstream's listing of the whole upload).
pub fn signimage_helper(soc: TegraSoc, keys: &KeyPaths, files: &[UploadPath]) -> HelperRun {
    let chip = match soc {
        TegraSoc::Tegra186 => "0x18",
        TegraSoc::Tegra194 => "0x19",
        TegraSoc::Tegra210 => "0x21",
        TegraSoc::Tegra234 => "0x23",
    };
    // Fixed: upstream passes "--chip 0x18" as one argument, which the
    // helper's getopt rejects.
    let mut args = vec![
        "--chip".to_string(),
        chip.to_string(),
        "-u".to_string(),
        keys.pkc.clone(),
    ];
    args.extend(files.iter().map(|f| f.as_str().to_string()));
    HelperRun {
        program: "tegra-signimage-helper".into(),
        args,
        env: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(
            format!(
                "DTBFILE=board.dtb\nODMDATA=0x9190000\nLNXFILE=boot.img\nBOARDID=2888\nFAB=400\nboardcfg=\n{extra}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn keys(sbk: bool, user_key: bool) -> KeyPaths {
        KeyPaths {
            pkc: "/w/keys/rsa_priv.pem".into(),
            sbk: sbk.then(|| "/w/keys/sbk.txt".into()),
            user_key: user_key.then(|| "/w/keys/user_key.txt".into()),
        }
    }

    fn v(text: &str) -> BspVersion {
        BspVersion::parse(text).unwrap()
    }

    #[test]
    fn r32_flash_package_argv_is_upstream_s() {
        let run = flash_helper(
            TegraSoc::Tegra194,
            v("32.7.4"),
            "jetson-xavier",
            &manifest(""),
            &keys(true, true),
            None,
        )
        .unwrap();
        assert_eq!(run.program, "tegra194-flash-helper");
        assert_eq!(
            run.args,
            [
                "--no-flash",
                "-u",
                "/w/keys/rsa_priv.pem",
                "-v",
                "/w/keys/sbk.txt",
                "--user_key",
                "/w/keys/user_key.txt",
                "flash.xml.in",
                "board.dtb",
                "jetson-xavier.cfg,jetson-xavier-override.cfg",
                "0x9190000",
                "boot.img"
            ]
        );
        assert!(run.env.contains(&("BOARDID", "2888".into())));
    }

    #[test]
    fn tegra210_runs_its_link_without_sbk_or_user_key_and_with_boardcfg() {
        let run = flash_helper(
            TegraSoc::Tegra210,
            v("32.7.4"),
            "jetson-nano",
            &manifest(""),
            &keys(true, true),
            None,
        )
        .unwrap();
        assert_eq!(run.program, "tegra210-flash-helper");
        assert_eq!(
            run.args,
            [
                "--no-flash",
                "-u",
                "/w/keys/rsa_priv.pem",
                "flash.xml.in",
                "board.dtb",
                "jetson-nano.cfg",
                "0x9190000",
                "",
                "boot.img"
            ]
        );
    }

    #[test]
    fn the_unified_r35_helper_gets_no_user_key() {
        let m = manifest("EMMC_BCTS=a.cfg,b.cfg\n");
        let run = flash_helper(
            TegraSoc::Tegra234,
            v("35.5.0"),
            "orin",
            &m,
            &keys(true, true),
            None,
        )
        .unwrap();
        assert_eq!(run.program, "tegra234-flash-helper");
        assert!(
            !run.args.iter().any(|a| a == "--user_key"),
            "{:?}",
            run.args
        );
        assert!(run.args.contains(&"a.cfg,b.cfg".to_string()));
        assert!(run.args.windows(2).any(|w| w == ["-v", "/w/keys/sbk.txt"]));
    }

    #[test]
    fn orin_bup_specs_pass_bup_type_and_chip_sku() {
        let m = manifest(
            "BUPGENSPECS=fab=300;boardsku=0000;boardrev=;chipsku=00:00:00:D0;bup_type=bl\n",
        );
        let spec = &m.bup_specs.clone().unwrap()[0];
        let run = flash_helper(
            TegraSoc::Tegra234,
            v("36.4.4"),
            "orin",
            &m,
            &keys(false, false),
            Some(spec),
        )
        .unwrap();
        assert_eq!(&run.args[..3], ["--bup", "--bup-type", "bl"]);
        assert!(run.env.contains(&("CHIP_SKU", "00:00:00:D0".into())));
        assert!(
            run.env.contains(&("FAB", "300".into())) && !run.env.contains(&("FAB", "400".into()))
        );
        assert!(run.env.contains(&("BOARDREV", String::new())));
        // An R32 helper has no --bup-type.
        assert!(matches!(
            flash_helper(
                TegraSoc::Tegra186,
                v("32.7.4"),
                "tx2",
                &m,
                &keys(false, false),
                Some(spec)
            ),
            Err(ArgsError::Unsupported(_))
        ));
    }

    #[test]
    fn a_machine_starting_with_a_dash_is_refused() {
        assert!(matches!(
            flash_helper(
                TegraSoc::Tegra186,
                v("32.7.4"),
                "-uX",
                &manifest(""),
                &keys(false, false),
                None
            ),
            Err(ArgsError::Machine(_))
        ));
    }

    #[test]
    fn a_manifest_without_what_the_helper_needs_is_refused() {
        let m = Manifest::parse(b"ODMDATA=0x1\nLNXFILE=boot.img\n").unwrap();
        assert_eq!(
            flash_helper(
                TegraSoc::Tegra186,
                v("32.7.4"),
                "tx2",
                &m,
                &keys(false, false),
                None
            ),
            Err(ArgsError::Missing("DTBFILE"))
        );
    }

    #[test]
    fn signimage_gets_chip_as_two_arguments() {
        let files = [
            UploadPath::parse("a.bin").unwrap(),
            UploadPath::parse("b.dtb").unwrap(),
        ];
        let run = signimage_helper(TegraSoc::Tegra186, &keys(false, false), &files);
        assert_eq!(
            run.args,
            [
                "--chip",
                "0x18",
                "-u",
                "/w/keys/rsa_priv.pem",
                "a.bin",
                "b.dtb"
            ]
        );
    }
}
