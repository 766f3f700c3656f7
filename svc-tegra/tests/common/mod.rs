//! Helpers shared by svc-tegra's tests (and the gateway's Jetson test): a
//! stand-in L4T BSP (NVIDIA's cannot be had here) made by
//! `tests/fixtures/make-stand-in-bsp`, keys from openssl, flash packages laid
//! out as meta-tegra's tegraflash package and tarred as the Yocto classes tar
//! them, and the records the stand-in helpers leave.
#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use servicekit::testing::{curl_post, run, Reply, ServiceUnderTest};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("svc-tegra")
}

/// A stand-in BSP for `version`/`soc` under `base`, its helpers recording
/// into `records`.
pub fn stand_in_bsp(base: &Path, version: &str, soc: &str, records: &Path) {
    run(
        Command::new(crate_dir().join("tests/fixtures/make-stand-in-bsp"))
            .arg(base)
            .arg(version)
            .arg(soc)
            .arg(records),
    );
}

/// Machine `machine`'s keys under `root`: an RSA-2048 `rsa_priv.pem`, and
/// `sbk.txt` / `user_key.txt` when asked for. Returns the PKC key's path.
pub fn install_keys(root: &Path, machine: &str, sbk: bool, user_key: bool) -> PathBuf {
    let dir = root.join(machine).join("tegrasign");
    std::fs::create_dir_all(&dir).unwrap();
    let pkc = dir.join("rsa_priv.pem");
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pkc));
    if sbk {
        std::fs::write(
            dir.join("sbk.txt"),
            "0x11223344 0x55667788 0x99aabbcc 0xddeeff00\n",
        )
        .unwrap();
    }
    if user_key {
        std::fs::write(
            dir.join("user_key.txt"),
            "0xa1a2a3a4 0xb1b2b3b4 0xc1c2c3c4 0xd1d2d3d4\n",
        )
        .unwrap();
    }
    pkc
}

/// The DTB name the packages use.
pub const DTB: &str = "tegra-board.dtb";

/// A flash package in `dir` for `machine` on `soc` with BSP `version`, as
/// meta-tegra lays it out (without the tools), with a MANIFEST as
/// tegrasign.bbclass writes it for `kernel` plus `extra` lines.
pub fn flash_package(
    dir: &Path,
    machine: &str,
    soc: &str,
    version: &str,
    kernel: &str,
    extra: &str,
) {
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, text: &[u8]| std::fs::write(dir.join(name), text).unwrap();
    write(
        "flash.xml.in",
        br#"<?xml version="1.0"?>
<!-- Nvidia Tegra Partition Layout Version 1.0.0 -->
<partition_layout version="01.00.0000">
    <device type="sdmmc_boot" instance="3" sector_size="512" num_sectors="8192">
        <partition name="kernel" type="kernel">
            <size> 67108864 </size>
            <filename> LNXFILE </filename>
            <description> The kernel (and its initrd); see "l4t" docs. </description>
        </partition>
    </device>
</partition_layout>
"#,
    );
    write(DTB, &servicekit::testing::filler(40_000, 1));
    write(kernel, &servicekit::testing::filler(300_000, 2));
    write("boot.img", &servicekit::testing::filler(200_000, 3));
    write("mb1_prod.bin", &servicekit::testing::filler(50_000, 4));
    write(
        &format!("{machine}.cfg"),
        b"# SDRAM config\nsdram.0.a = 0x1;\n",
    );
    write(&format!("{machine}-override.cfg"), b"# override\n");
    write("doflash.sh", b"#!/bin/sh\necho unsigned flash\n");
    run(Command::new("chmod").arg("755").arg(dir.join("doflash.sh")));
    if !version.starts_with("32.") {
        write(
            "flashvars",
            b"FLASHVARS=\"BPFDTB_FILE CHIP_SKU PINMUX_CONFIG\"\nBPFDTB_FILE=\"tegra-bpmp.dtb\"\nCHIP_SKU=\"00:00:00:D0\"\nPINMUX_CONFIG=\"tegra-pinmux.dtsi\"\n",
        );
        write("tegra-bpmp.dtb", b"bpmp");
        write(
            "tegra-pinmux.dtsi",
            b"#include \"tegra-common.dtsi\"\n/ { };\n",
        );
        write("tegra-common.dtsi", b"/ { };\n");
    }
    let boardcfg = if soc == "tegra210" { "boardcfg=\n" } else { "" };
    write(
        "MANIFEST",
        format!(
            "DTBFILE={DTB}\nODMDATA=0x9190000\nLNXFILE={kernel}\nBOARDID=2888\nFAB=400\nfuselevel=fuselevel_production\nlocalbootfile={kernel}\n{boardcfg}CHIPREV=\nBOARDSKU=0001\nBOARDREV=H.0\n{extra}"
        )
        .as_bytes(),
    );
}

/// Tars the package in `dir` as the bbclass does (`tar -c -h -z -f OUT *`).
pub fn tar_package(dir: &Path, out: &Path) {
    run(Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(format!("tar -c -h -z -f '{}' *", out.display())));
}

/// Posts the package as the bbclass's `digsig_post sign/tegra` does (curl
/// --silent --fail), writing the reply to `out`; returns curl's success.
pub fn bbclass_post(
    url: &str,
    machine: &str,
    soc: &str,
    version: &str,
    tarball: &Path,
    out: &Path,
) -> bool {
    Command::new("curl")
        .args(["--silent", "--fail", "-X", "POST"])
        .args(["-F", &format!("machine={machine}")])
        .args(["-F", &format!("soctype={soc}")])
        .args(["-F", &format!("bspversion={version}")])
        .args(["-F", &format!("artifact=@{}", tarball.display())])
        .arg("--output")
        .arg(out)
        .arg(format!("{url}/sign/tegra"))
        .status()
        .unwrap()
        .success()
}

/// What one stand-in helper run saw.
#[derive(Debug)]
pub struct Record {
    /// `$0` then the arguments.
    pub argv: Vec<String>,
    /// Its environment.
    pub env: BTreeMap<String, String>,
    /// Its working directory.
    pub cwd: PathBuf,
    /// The files it saw there (`./name`), without `_tools`.
    pub files: Vec<String>,
    /// Of those, the executable ones.
    pub executables: Vec<String>,
    /// The `flashvars` it sourced, if any.
    pub flashvars: Option<String>,
}

/// Every run recorded in `records`, in order.
pub fn records(records: &Path) -> Vec<Record> {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(records) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("run-"))
            .collect(),
        Err(_) => return Vec::new(),
    };
    dirs.sort();
    let lines = |p: PathBuf| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    dirs.into_iter()
        .map(|d| Record {
            argv: lines(d.join("argv")),
            env: lines(d.join("env"))
                .into_iter()
                .filter_map(|l| {
                    l.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect(),
            cwd: PathBuf::from(std::fs::read_to_string(d.join("cwd")).unwrap().trim()),
            files: lines(d.join("files")),
            executables: lines(d.join("executables")),
            flashvars: std::fs::read_to_string(d.join("flashvars")).ok(),
        })
        .collect()
}

/// Clears the records (and any fault) between requests.
pub fn clear_records(records: &Path) {
    let _ = std::fs::remove_dir_all(records);
    std::fs::create_dir_all(records).unwrap();
}

/// The names in a gzip tarball, as `tar -tzf` lists them.
pub fn tar_names(tarball: &Path) -> Vec<String> {
    let out = run(Command::new("tar").arg("-tzf").arg(tarball));
    let mut names: Vec<String> = String::from_utf8_lossy(&out)
        .lines()
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// Checks that `signed` is `input` followed by an RSA-SHA256 signature
/// that `openssl dgst -verify` accepts with `pkc`'s public key.
pub fn verify_signed_copy(signed: &Path, input: &Path, pkc: &Path, scratch: &Path) {
    std::fs::create_dir_all(scratch).unwrap();
    let signed = std::fs::read(signed).unwrap();
    let input_bytes = std::fs::read(input).unwrap();
    assert_eq!(
        signed.len(),
        input_bytes.len() + 256,
        "not input + RSA-2048 signature"
    );
    assert_eq!(&signed[..input_bytes.len()], &input_bytes[..]);
    let sig = scratch.join("sig");
    std::fs::write(&sig, &signed[input_bytes.len()..]).unwrap();
    verify_signature(input, &sig, pkc, scratch);
}

/// `openssl dgst -sha256 -verify` of `sig` over `data` with `pkc`'s public key.
pub fn verify_signature(data: &Path, sig: &Path, pkc: &Path, scratch: &Path) {
    std::fs::create_dir_all(scratch).unwrap();
    let public = scratch.join("pub.pem");
    run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(pkc)
        .arg("-out")
        .arg(&public));
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(&public)
        .arg("-signature")
        .arg(sig)
        .arg(data));
    assert_eq!(String::from_utf8_lossy(&out).trim(), "Verified OK");
}

/// svc-tegra on loopback with BSPs under `base` and `settings`.
pub fn start_svc_tegra(
    keyfile_uri: &str,
    base: &Path,
    settings: &[(&str, &str)],
) -> ServiceUnderTest {
    let uri = keyfile_uri.to_string();
    let base = base.display().to_string();
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ServiceUnderTest::start(move |listener, mut config, shutdown| async move {
        config.settings.set(svc_tegra::L4T_TOOLS_BASE_VAR, base);
        for (name, value) in settings {
            config.settings.set(&name, value);
        }
        let keystore = keystore::KeyStore::open(&uri).await.unwrap();
        svc_tegra::run(listener, keystore, config, shutdown).await
    })
}
