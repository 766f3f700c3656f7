//! svc-tegra over real HTTP against a stand-in L4T BSP (NVIDIA's BSPs
//! cannot be had here; the stand-in's helpers honour the real getopt
//! contracts and record what they saw): requests as the Yocto classes send
//! them, the client's own post-processing of the reply, and outputs checked
//! with openssl.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Every version and SoC the tests sign for.
const BSPS: [(&str, &str); 6] = [
    ("32.4.3", "tegra210"),
    ("32.7.4", "tegra210"),
    ("32.7.4", "tegra186"),
    ("32.7.4", "tegra194"),
    ("35.5.0", "tegra234"),
    ("36.3.0", "tegra234"),
];

struct Setup {
    tmp: tempfile::TempDir,
    uri: String,
    base: PathBuf,
    records: PathBuf,
    pkc: PathBuf,
}

/// Keys for machine `m` (with `sbk.txt` and `user_key.txt`), and a BSP base
/// holding the stand-ins for `bsps`.
fn setup(bsps: &[(&str, &str)]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let pkc = install_keys(&root, "m", true, true);
    let base = tmp.path().join("nvidia");
    let records = tmp.path().join("records");
    for (version, soc) in bsps {
        stand_in_bsp(&base, version, soc, &records);
    }
    std::fs::create_dir_all(&records).unwrap();
    Setup {
        uri: format!("file://{}", root.display()),
        base,
        records,
        pkc,
        tmp,
    }
}

impl Setup {
    /// A fresh client dir holding a flash package; returns it and its tarball.
    fn package(&self, name: &str, soc: &str, version: &str, extra: &str) -> (PathBuf, PathBuf) {
        let dir = self.tmp.path().join(name);
        flash_package(&dir, "m", soc, version, "Image.cboot", extra);
        let tarball = self.tmp.path().join(format!("{name}.tar.gz"));
        tar_package(&dir, &tarball);
        (dir, tarball)
    }

    fn fault(&self, fault: &str) {
        std::fs::write(self.records.join("fault"), fault).unwrap();
    }
}

fn post(url: &str, soc: &str, version: &str, tarball: &Path) -> Reply {
    curl_post(
        &format!("{url}/sign/tegra"),
        &[
            "machine=m",
            &format!("soctype={soc}"),
            &format!("bspversion={version}"),
            &format!("artifact=@{}", tarball.display()),
        ],
        tarball.parent().unwrap(),
    )
}

/// argv with key paths shown by their file names, after checking they are
/// outside the helper's working directory.
fn argv_shown(record: &Record) -> Vec<String> {
    record.argv[1..]
        .iter()
        .map(|a| {
            for key in ["rsa_priv.pem", "sbk.txt", "user_key.txt"] {
                if a.ends_with(&format!("/{key}")) {
                    assert!(
                        !Path::new(a).starts_with(&record.cwd),
                        "key {a} is inside the package dir"
                    );
                    assert!(!Path::new(a).exists(), "key copy {a} outlived the request");
                    return format!("<{key}>");
                }
            }
            a.clone()
        })
        .collect()
}

/// Environment names a helper may see: the runner's, the fixed ones and the
/// MANIFEST's, never anything else (bash adds PWD, SHLVL and _).
const ENV_ALLOWED: [&str; 21] = [
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "MACHINE",
    "PWD",
    "SHLVL",
    "_",
    "BOARDID",
    "FAB",
    "BOARDSKU",
    "BOARDREV",
    "CHIPREV",
    "CHIP_SKU",
    "fuselevel",
    "localbootfile",
    "DTBFILE",
    "LNXFILE",
    "ODMDATA",
    "BUPGEN",
    "OLDPWD",
];

fn assert_env_clean(record: &Record) {
    for name in record.env.keys() {
        assert!(
            ENV_ALLOWED.contains(&name.as_str()),
            "helper saw {name}: {:?}",
            record.env
        );
    }
    let path = &record.env["PATH"];
    assert!(
        !path.split(':').any(|d| Path::new(d) == record.cwd),
        "the package dir is on PATH: {path}"
    );
    assert!(
        path.split(':').next().unwrap().ends_with("/_tools"),
        "{path}"
    );
    assert_eq!(record.env["MACHINE"], "m");
    assert!(
        record.executables.is_empty(),
        "uploaded executables: {:?}",
        record.executables
    );
}

#[test]
fn flash_packages_for_every_version_and_soc_as_the_bbclass_uses_them() {
    let s = setup(&BSPS);
    let svc = start_svc_tegra(&s.uri, &s.base, &[]);
    for (version, soc) in BSPS {
        clear_records(&s.records);
        let name = format!("pkg-{soc}-{version}");
        let (dir, tarball) = s.package(&name, soc, version, "");
        let out = s.tmp.path().join(format!("{name}-out.tar.gz"));
        assert!(
            bbclass_post(&svc.url, "m", soc, version, &tarball, &out),
            "{soc} {version}: curl --fail failed: {}",
            post(&svc.url, soc, version, &tarball).text()
        );

        // Exactly one helper run, with upstream's argv (fixed where upstream
        // was wrong), a clean environment, the package as cwd.
        let runs = records(&s.records);
        assert_eq!(runs.len(), 1, "{soc} {version}");
        let run = &runs[0];
        assert!(
            run.argv[0].ends_with(&format!("/_tools/bootloader/{soc}-flash-helper")),
            "{:?}",
            run.argv[0]
        );
        let r35 = !version.starts_with("32.");
        let mut want: Vec<&str> = vec!["--no-flash", "-u", "<rsa_priv.pem>"];
        if soc != "tegra210" {
            want.extend(["-v", "<sbk.txt>"]);
            if !r35 {
                want.extend(["--user_key", "<user_key.txt>"]);
            }
        }
        let cfg = if soc == "tegra194" {
            "m.cfg,m-override.cfg"
        } else {
            "m.cfg"
        };
        want.extend(["flash.xml.in", DTB, cfg, "0x9190000"]);
        if soc == "tegra210" {
            want.push("");
        }
        want.push("Image.cboot");
        assert_eq!(argv_shown(run), want, "{soc} {version}");
        assert_env_clean(run);
        assert_eq!(run.env["BOARDID"], "2888");
        assert_eq!(run.env["LNXFILE"], "Image.cboot");
        assert!(run.files.contains(&"./bsp_version".to_string()));
        if r35 {
            assert_eq!(
                run.flashvars.as_deref(),
                Some("FLASHVARS='BPFDTB_FILE CHIP_SKU PINMUX_CONFIG'\nBPFDTB_FILE='tegra-bpmp.dtb'\nCHIP_SKU='00:00:00:D0'\nPINMUX_CONFIG='tegra-pinmux.dtsi'\n")
            );
        }

        // What comes back: only what the helper made.
        let names = tar_names(&out);
        let mut want: Vec<String> = vec![
            "./",
            "./Image_sigheader.cboot.signed",
            "./flashcmd.txt",
            "./tegra-board_sigheader.dtb.encrypt",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        // Upstream drops the encrypted kernel copy where the bootloader
        // boots the signed one: tegra194/234 from R34 (never tegra210; on
        // tegra186 R32.6+ it is used).
        if !(soc == "tegra234" && r35) {
            want.push("./Image_sigheader.cboot.encrypt.signed".into());
        }
        if soc == "tegra210" {
            want.push("./flash.xml".into());
        }
        if r35 {
            want.push("./flash.idx".into());
        }
        want.sort();
        assert_eq!(names, want, "{soc} {version}");

        // The bbclass's own post-processing works on the reply.
        run_client_post_processing(&dir, &out);
        let doflash = std::fs::read_to_string(dir.join("doflash.sh")).unwrap();
        assert!(
            !doflash.contains(s.tmp.path().to_str().unwrap()) && !doflash.contains("/tmp/"),
            "{doflash}"
        );
        if soc == "tegra210" && !r35 {
            assert!(
                doflash.contains("\n./tegra210-flash-helper --flash-only"),
                "{doflash}"
            );
        }
        verify_signed_copy(
            &dir.join("Image_sigheader.cboot.signed"),
            &dir.join("Image.cboot"),
            &s.pkc,
            &s.tmp.path().join(format!("{name}-verify")),
        );
        assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
    }
}

/// `tar -x -z -f out; rm doflash.sh; mv flashcmd.txt doflash.sh; chmod +x
/// doflash.sh; rm -f secureflash.sh`, as tegrasign.bbclass does.
fn run_client_post_processing(dir: &Path, out: &Path) {
    run(Command::new("sh").current_dir(dir).arg("-ec").arg(format!(
        "tar -x -z -f '{}'; rm doflash.sh; mv flashcmd.txt doflash.sh; chmod +x doflash.sh; rm -f secureflash.sh",
        out.display()
    )));
}

#[test]
fn bup_specs_run_the_helper_once_per_spec_and_return_only_payloads() {
    let s = setup(&[("32.7.4", "tegra186"), ("35.5.0", "tegra234")]);
    let svc = start_svc_tegra(&s.uri, &s.base, &[]);

    let (dir, tarball) = s.package(
        "bup-r32",
        "tegra186",
        "32.7.4",
        "BUPGENSPECS=fab=B00 fab=C04;boardsku=0001;boardrev=\n",
    );
    let out = s.tmp.path().join("bup-r32-out.tar.gz");
    assert!(bbclass_post(
        &svc.url, "m", "tegra186", "32.7.4", &tarball, &out
    ));
    let runs = records(&s.records);
    assert_eq!(runs.len(), 2);
    for (run, fab) in runs.iter().zip(["B00", "C04"]) {
        assert_eq!(argv_shown(run)[..1], ["--bup"]);
        assert_env_clean(run);
        assert_eq!(run.env["FAB"], fab);
    }
    assert_eq!(runs[1].env["BOARDSKU"], "0001");
    assert_eq!(
        runs[0].env["BOARDSKU"], "0001",
        "the MANIFEST's value stays without a spec's"
    );
    assert_eq!(
        tar_names(&out),
        [
            "./",
            "./payloads_t18x/",
            "./payloads_t18x/bl_update_payload",
            "./payloads_t18x/bl_update_payload.entries"
        ]
    );
    run(Command::new("tar").current_dir(&dir).arg("-xzf").arg(&out));
    let entries =
        std::fs::read_to_string(dir.join("payloads_t18x/bl_update_payload.entries")).unwrap();
    assert_eq!(entries.lines().count(), 2, "{entries}");

    // Orin: bup_type and chipsku reach the helper as --bup-type and CHIP_SKU.
    clear_records(&s.records);
    let (_dir, tarball) = s.package(
        "bup-r35",
        "tegra234",
        "35.5.0",
        "BUPGENSPECS=fab=300;boardsku=0004;chipsku=00:00:00:D3;bup_type=bl fab=300;boardsku=0004;chipsku=00:00:00:D3;bup_type=kernel\n",
    );
    let reply = post(&svc.url, "tegra234", "35.5.0", &tarball);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let runs = records(&s.records);
    assert_eq!(runs.len(), 2);
    for (run, bup_type) in runs.iter().zip(["bl", "kernel"]) {
        let argv = argv_shown(run);
        assert_eq!(argv[..3], ["--bup", "--bup-type", bup_type], "{argv:?}");
        assert!(!argv.contains(&"--user_key".to_string()));
        assert_eq!(run.env["CHIP_SKU"], "00:00:00:D3");
        assert_env_clean(run);
    }

    // An R32 helper has no --bup-type: refused before anything runs.
    clear_records(&s.records);
    let (_dir, tarball) = s.package(
        "bup-r32-type",
        "tegra186",
        "32.7.4",
        "BUPGENSPECS=fab=B00;bup_type=bl\n",
    );
    let reply = post(&svc.url, "tegra186", "32.7.4", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("--bup-type"), "{}", reply.text());
    assert!(records(&s.records).is_empty());

    // A helper that makes no payload is a 500 naming it, not an empty 200.
    clear_records(&s.records);
    s.fault("no-payload");
    let (_dir, tarball) = s.package("bup-none", "tegra186", "32.7.4", "BUPGENSPECS=fab=B00\n");
    let reply = post(&svc.url, "tegra186", "32.7.4", &tarball);
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains("payloads"), "{}", reply.text());
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn signfiles_passes_chip_as_two_arguments_and_returns_the_signatures() {
    let s = setup(&[("32.7.4", "tegra194"), ("32.7.4", "tegra210")]);
    let svc = start_svc_tegra(&s.uri, &s.base, &[]);
    let dir = s.tmp.path().join("files");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.bin"), servicekit::testing::filler(5000, 9)).unwrap();
    std::fs::write(dir.join("sub/b.bin"), servicekit::testing::filler(7000, 8)).unwrap();
    std::fs::write(dir.join("c.bin"), b"not listed").unwrap();
    std::fs::write(dir.join("MANIFEST"), "SIGNFILES=a.bin sub/b.bin\n").unwrap();
    let tarball = s.tmp.path().join("files.tar.gz");
    tar_package(&dir, &tarball);

    let reply = post(&svc.url, "tegra194", "32.7.4", &tarball);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let runs = records(&s.records);
    assert_eq!(runs.len(), 1);
    assert!(runs[0].argv[0].ends_with("/_tools/tegra-signimage-helper"));
    assert_eq!(
        argv_shown(&runs[0]),
        [
            "--chip",
            "0x19",
            "-u",
            "<rsa_priv.pem>",
            "a.bin",
            "sub/b.bin"
        ]
    );
    assert_env_clean(&runs[0]);
    let out = s.tmp.path().join("files-out.tar.gz");
    std::fs::write(&out, &reply.body).unwrap();
    assert_eq!(
        tar_names(&out),
        ["./", "./a.bin.sig", "./sub/", "./sub/b.bin.sig"]
    );
    let back = s.tmp.path().join("files-back");
    std::fs::create_dir_all(&back).unwrap();
    run(Command::new("tar").current_dir(&back).arg("-xzf").arg(&out));
    for f in ["a.bin", "sub/b.bin"] {
        verify_signature(
            &dir.join(f),
            &back.join(format!("{f}.sig")),
            &s.pkc,
            &s.tmp.path().join("verify"),
        );
    }

    // tegra210 BSPs have no tegra-signimage-helper.
    clear_records(&s.records);
    let reply = post(&svc.url, "tegra210", "32.7.4", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("tegra-signimage-helper"),
        "{}",
        reply.text()
    );
    assert!(records(&s.records).is_empty());
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

/// An injection case: its name, MANIFEST lines added, files added or
/// replaced, and what the 400 must name.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [u8])],
    &'static str,
);

/// Adds `name` holding `content` to a fresh package and posts it.
fn post_with(
    s: &Setup,
    svc: &ServiceUnderTest,
    case: &str,
    extra: &str,
    files: &[(&str, &[u8])],
) -> Reply {
    let dir = s.tmp.path().join(case);
    flash_package(&dir, "m", "tegra234", "35.5.0", "Image.cboot", extra);
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let tarball = s.tmp.path().join(format!("{case}.tar.gz"));
    tar_package(&dir, &tarball);
    post(&svc.url, "tegra234", "35.5.0", &tarball)
}

#[test]
fn injections_and_escapes_are_refused_before_any_helper_runs() {
    let s = setup(&[("35.5.0", "tegra234")]);
    let svc = start_svc_tegra(&s.uri, &s.base, &[]);
    let cases: &[Case] = &[
        ("bash-env", "BASH_ENV=./x.sh\n", &[], "BASH_ENV"),
        ("ld-preload", "LD_PRELOAD=./x.so\n", &[], "LD_PRELOAD"),
        ("path", "PATH=.\n", &[], "PATH"),
        ("pythonpath", "PYTHONPATH=.\n", &[], "PYTHONPATH"),
        (
            "spec-path",
            "BUPGENSPECS=fab=1;PATH=/tmp\n",
            &[],
            "BUPGENSPECS",
        ),
        ("spec-shell", "BUPGENSPECS=fab=$(id)\n", &[], "BUPGENSPECS"),
        ("flashvars-path", "", &[("flashvars", b"PATH=.\n")], "PATH"),
        ("flashvars-here", "", &[("flashvars", b"here=.\n")], "here"),
        (
            "flashvars-sed",
            "",
            &[("flashvars", b"BPFDTB_FILE=x,e\n")],
            "BPFDTB_FILE",
        ),
        (
            "python-module",
            "",
            &[("getopt.py", b"import os\n")],
            "getopt.py",
        ),
        (
            "func",
            "",
            &[("odmsign.func", b"odmsign_ext() { :; }\n")],
            "odmsign.func",
        ),
        (
            "tool",
            "",
            &[("tegrabct_v2", b"#!/bin/sh\n")],
            "tegrabct_v2",
        ),
        ("sed", "", &[("sed", b"#!/bin/sh\n")], "sed"),
        ("pkg", "", &[("yaml/__init__.py", b"")], "yaml/__init__.py"),
        ("tools-dir", "", &[("_tools/x", b"")], "_tools"),
        (
            "abs-dtb",
            "",
            &[(
                "MANIFEST",
                b"DTBFILE=/etc/passwd\nODMDATA=1\nLNXFILE=boot.img\n",
            )],
            "absolute",
        ),
        (
            "dotdot",
            "",
            &[(
                "MANIFEST",
                b"DTBFILE=../keys/x\nODMDATA=1\nLNXFILE=boot.img\n",
            )],
            "..",
        ),
        (
            "missing",
            "",
            &[(
                "MANIFEST",
                b"DTBFILE=nothere.dtb\nODMDATA=1\nLNXFILE=boot.img\n",
            )],
            "nothere.dtb",
        ),
        (
            "dir-kernel",
            "",
            &[
                (
                    "MANIFEST",
                    b"DTBFILE=tegra-board.dtb\nODMDATA=1\nLNXFILE=sub\n",
                ),
                ("sub/x", b""),
            ],
            "not a regular file",
        ),
        (
            "dash-odm",
            "",
            &[(
                "MANIFEST",
                b"DTBFILE=tegra-board.dtb\nODMDATA=-x\nLNXFILE=boot.img\n",
            )],
            "ODMDATA",
        ),
        (
            "include",
            "",
            &[("tegra-pinmux.dtsi", b"#include \"/etc/passwd\"\n")],
            "tegra-pinmux.dtsi",
        ),
        (
            "incbin",
            "",
            &[("bct.dts", b"x = /incbin/(\"../../keys/rsa_priv.pem\");\n")],
            "bct.dts",
        ),
        (
            "layout",
            "",
            &[("flash.xml.in", b"<partition name=\"a$(id)\"></partition>")],
            "flash.xml.in",
        ),
    ];
    for (case, extra, files, named) in cases {
        let reply = post_with(&s, &svc, case, extra, files);
        assert_eq!(reply.status, 400, "{case}: {}", reply.text());
        assert!(reply.text().contains(named), "{case}: {}", reply.text());
        assert!(records(&s.records).is_empty(), "{case}: a helper ran");
    }
    // No MANIFEST at all.
    let dir = s.tmp.path().join("no-manifest");
    flash_package(&dir, "m", "tegra234", "35.5.0", "Image.cboot", "");
    std::fs::remove_file(dir.join("MANIFEST")).unwrap();
    let tarball = s.tmp.path().join("no-manifest.tar.gz");
    tar_package(&dir, &tarball);
    let reply = post(&svc.url, "tegra234", "35.5.0", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("no MANIFEST"), "{}", reply.text());
    assert!(records(&s.records).is_empty());

    // A symlink an output would be written through (here into the copy of
    // a tool tegraflash.py imports), packed without tar -h.
    let dir = s.tmp.path().join("link");
    flash_package(&dir, "m", "tegra234", "35.5.0", "Image.cboot", "");
    std::os::unix::fs::symlink(
        "_tools/bootloader/tegraflash_impl_t234.py",
        dir.join("flash.xml.tmp"),
    )
    .unwrap();
    let tarball = s.tmp.path().join("link.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg("."));
    let reply = post(&svc.url, "tegra234", "35.5.0", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("flash.xml.tmp") && reply.text().contains("symlink"),
        "{}",
        reply.text()
    );
    assert!(records(&s.records).is_empty());
    // A machine name the helper would read as an option (with keys, so the
    // refusal is the option check, not a missing key).
    install_keys(&s.tmp.path().join("keys"), "-m", false, false);
    let (_d, tarball) = s.package("dash-machine", "tegra234", "35.5.0", "");
    let reply = curl_post(
        &format!("{}/sign/tegra", svc.url),
        &[
            "machine=-m",
            "soctype=tegra234",
            "bspversion=35.5.0",
            &format!("artifact=@{}", tarball.display()),
        ],
        s.tmp.path(),
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("starts with '-'"), "{}", reply.text());
    assert!(records(&s.records).is_empty());
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());

    // Executable uploads lose their execute bits; an uploaded bsp_version is
    // replaced by the request's.
    let reply = post_with(
        &s,
        &svc,
        "exec",
        "",
        &[
            ("mkimage-x", b"#!/bin/sh\nid\n"),
            ("bsp_version", b"BSP_BRANCH=$(id)\n"),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let runs = records(&s.records);
    assert_eq!(runs.len(), 1);
    assert_env_clean(&runs[0]);
}

/// Whether process `pid` runs (not gone, not a zombie waiting to be reaped),
/// allowing a moment for the kill to land.
fn running(pid: &str) -> bool {
    for _ in 0..20 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return false,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z') =>
            {
                return false
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    true
}

#[test]
fn failing_hanging_and_incomplete_helpers() {
    let s = setup(&[("35.5.0", "tegra234")]);
    let svc = start_svc_tegra(&s.uri, &s.base, &[("DIGSIGSERVER_TEGRA_TIMEOUT", "2")]);
    let (_dir, tarball) = s.package("faults", "tegra234", "35.5.0", "");

    s.fault("fail");
    let reply = post(&svc.url, "tegra234", "35.5.0", &tarball);
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply.text().contains("stand-in failure on request"),
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains(s.tmp.path().to_str().unwrap()),
        "{}",
        reply.text()
    );

    // An uploaded flash.idx does not stand in for the helper's.
    clear_records(&s.records);
    s.fault("no-idx");
    let reply = post_with(&s, &svc, "faults-idx", "", &[("flash.idx", b"uploaded\n")]);
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains("flash.idx"), "{}", reply.text());

    clear_records(&s.records);
    s.fault("hang");
    let started = std::time::Instant::now();
    let reply = post(&svc.url, "tegra234", "35.5.0", &tarball);
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains("did not finish"), "{}", reply.text());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    for pid_file in ["helper.pid", "child.pid"] {
        let pid = std::fs::read_to_string(s.records.join(pid_file)).unwrap();
        assert!(!running(pid.trim()), "{pid_file} {pid} still runs");
    }
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn unknown_versions_and_socs_list_what_is_installed() {
    let s = setup(&[
        ("35.5.0", "tegra234"),
        ("32.7.4", "tegra186"),
        ("32.7.4", "tegra194"),
    ]);
    let svc = start_svc_tegra(&s.uri, &s.base, &[]);
    let (_dir, tarball) = s.package("versions", "tegra234", "35.5.0", "");
    let reply = post(&svc.url, "tegra234", "35.6.0", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("32.7.4 tegra186, 35.5.0 tegra234"),
        "{}",
        reply.text()
    );
    let reply = post(&svc.url, "tegra234", "35.x", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("three numbers"), "{}", reply.text());
    let reply = post(&svc.url, "tegra999", "35.5.0", &tarball);
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.text().contains("tegra234"), "{}", reply.text());
    // tegra194 signs with the tegra186 tree.
    let (_dir, tarball) = s.package("t194", "tegra194", "32.7.4", "");
    let reply = post(&svc.url, "tegra194", "32.7.4", &tarball);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(records(&s.records)[0].argv[0].ends_with("/tegra194-flash-helper"));
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}
