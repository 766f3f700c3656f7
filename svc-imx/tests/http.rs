//! svc-imx over real HTTP: requests as curl sends them, signed by a real
//! `cst` with a real HAB4 PKI, checked with `csf_parser` and `openssl cms`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

struct Setup {
    tmp: tempfile::TempDir,
    uri: String,
}

/// A key store with machine `m`'s PKI, an artifact `flash.bin` (12 KiB) and
/// its CSF `csf.txt` in the client dir (`tmp`).
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    install_pki(&root, "m", &tmp.path().join("pki"));
    std::fs::write(tmp.path().join("flash.bin"), filler(12 * 1024, 7)).unwrap();
    std::fs::write(tmp.path().join("csf.txt"), csf_text("flash.bin", 0x3000)).unwrap();
    Setup {
        uri: format!("file://{}", root.display()),
        tmp,
    }
}

fn post(url: &str, fields: &[&str], dir: &Path) -> Reply {
    curl_post(&format!("{url}/sign/imx"), fields, dir)
}

const GOOD: [&str; 5] = [
    "machine=m",
    "soctype=mx8m",
    "cstversion=3.3.1",
    "csf=@csf.txt;type=text/plain",
    "artifact=@flash.bin",
];

#[test]
fn signs_a_csf_that_csf_parser_and_openssl_verify() {
    let s = setup();
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    let reply = post(&svc.url, &GOOD, s.tmp.path());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let pki = s.tmp.path().join("pki");
    verify_blob(
        &reply.body,
        &pki,
        &s.tmp.path().join("flash.bin"),
        0x3000,
        &s.tmp.path().join("v1"),
    );
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());

    // The CSF as curl sends any other file name (application/octet-stream),
    // and another HAB4 family.
    std::fs::copy(
        s.tmp.path().join("csf.txt"),
        s.tmp.path().join("flash_evk.csf"),
    )
    .unwrap();
    let reply = post(
        &svc.url,
        &[
            "machine=m",
            "soctype=mx6ull",
            "cstversion=3.3.1",
            "csf=@flash_evk.csf",
            "artifact=@flash.bin",
        ],
        s.tmp.path(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    verify_blob(
        &reply.body,
        &pki,
        &s.tmp.path().join("flash.bin"),
        0x3000,
        &s.tmp.path().join("v2"),
    );
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn the_reply_is_the_blob_named_as_upstream_names_it() {
    let s = setup();
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    let out = run(Command::new("curl")
        .current_dir(s.tmp.path())
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "-D",
            "-",
            "-o",
            "blob.bin",
            "-X",
            "POST",
        ])
        .args(GOOD.iter().flat_map(|f| ["-F", f]))
        .arg(format!("{}/sign/imx", svc.url)));
    let headers = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(
        headers.contains("content-type: application/octet-stream"),
        "{headers}"
    );
    assert!(
        headers.contains("filename=\"artifact.signed\""),
        "{headers}"
    );
    let blob = std::fs::read(s.tmp.path().join("blob.bin")).unwrap();
    assert_eq!(blob[0], 0xd4);
}

#[test]
fn field_mistakes_are_400s_that_say_what_to_fix() {
    let s = setup();
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    let dir = s.tmp.path();
    let with = |name: &str, value: &str| -> Vec<String> {
        GOOD.iter()
            .filter(|f| !f.starts_with(&format!("{name}=")))
            .map(|f| f.to_string())
            .chain((!value.is_empty()).then(|| format!("{name}={value}")))
            .collect()
    };
    let check = |fields: Vec<String>, status: u16, says: &[&str]| {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let reply = post(&svc.url, &fields, dir);
        assert_eq!(reply.status, status, "{fields:?}: {}", reply.text());
        for s in says {
            assert!(
                reply.text().contains(s),
                "{fields:?}: {} lacks {s:?}",
                reply.text()
            );
        }
        assert!(
            !reply.text().contains(&*dir.to_string_lossy()),
            "{}",
            reply.text()
        );
    };
    check(with("csf", ""), 400, &["field `csf`"]);
    check(with("artifact", ""), 400, &["artifact"]);
    check(with("machine", ""), 400, &["machine"]);
    check(
        with("soctype", "mx8qm"),
        400,
        &["soctype", "mx8m", "mx6ull"],
    );
    check(
        with("cstversion", "3.4.0"),
        400,
        &["3.4.0", "installed: 3.3.1"],
    );
    check(with("backend", "tpm"), 400, &["backend", "ssl", "pkcs11"]);
    check(with("backend", "pkcs11"), 501, &["pkcs11", "not supported"]);
    check(with("machine", "nobody"), 404, &["nobody", "imxsign"]);
    std::fs::write(dir.join("empty.bin"), b"").unwrap();
    check(
        with("artifact", "@empty.bin;filename=flash.bin"),
        400,
        &["artifact is empty"],
    );
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn an_artifact_name_with_a_path_is_refused_and_nothing_is_written() {
    let s = setup();
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    for name in [
        "../escaped.bin",
        "../../escaped.bin",
        "/tmp/escaped.bin",
        "..",
        "sub/flash.bin",
    ] {
        let field = format!("artifact=@flash.bin;filename={name}");
        let fields: Vec<&str> = GOOD[..4].iter().copied().chain([field.as_str()]).collect();
        let reply = post(&svc.url, &fields, s.tmp.path());
        assert_eq!(reply.status, 400, "{name}: {}", reply.text());
        assert!(
            reply.text().contains("plain name"),
            "{name}: {}",
            reply.text()
        );
    }
    // `../../` from a request's `<base>/<request>/sign` is the base itself:
    // leftovers would show it.
    assert!(!Path::new("/tmp/escaped.bin").exists());
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
    // A name that is a file of the keys tarball would replace it: refused.
    std::fs::write(
        s.tmp.path().join("srk.txt"),
        csf_text("SRK_1_2_3_4_table.bin", 0x400),
    )
    .unwrap();
    let fields = [
        "machine=m",
        "soctype=mx8m",
        "cstversion=3.3.1",
        "csf=@srk.txt",
        "artifact=@flash.bin;filename=SRK_1_2_3_4_table.bin",
    ];
    let reply = post(&svc.url, &fields, s.tmp.path());
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("also a file in the machine's keys tarball"),
        "{}",
        reply.text()
    );
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn csf_mistakes_get_cst_s_own_message_or_a_400_and_no_server_paths() {
    let s = setup();
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    let dir = s.tmp.path();
    let csf = csf_text("flash.bin", 0x3000);
    let try_csf = |text: &str| {
        std::fs::write(dir.join("bad.txt"), text).unwrap();
        let fields: Vec<&str> = [
            "machine=m",
            "soctype=mx8mm",
            "cstversion=3.3.1",
            "csf=@bad.txt",
            "artifact=@flash.bin",
        ]
        .to_vec();
        let reply = post(&svc.url, &fields, dir);
        assert!(
            !reply
                .text()
                .contains(&*svc.workdir_base.path().to_string_lossy()),
            "a server path in {}",
            reply.text()
        );
        reply
    };
    // A certificate the tarball lacks: cst says which.
    let reply = try_csf(&csf.replace(IMG_CERT, "crts/IMG9_9_sha256_2048_65537_v3_usr_crt.pem"));
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(reply.text().contains("IMG9_9"), "{}", reply.text());
    // A certificate whose key is missing (machine `nokey`'s tarball lacks
    // the IMG key): cst says which key file it could not open.
    let nokey = dir.join("keys/nokey/imxsign");
    std::fs::create_dir_all(&nokey).unwrap();
    run(Command::new("tar")
        .current_dir(dir.join("pki"))
        .args([
            "--exclude",
            "IMG1_1_sha256_2048_65537_v3_usr_key.pem",
            "-czf",
        ])
        .arg(nokey.join("imx-cst-keys.tar.gz"))
        .args([SRK_TABLE, "crts", "keys"]));
    std::fs::write(dir.join("good.txt"), &csf).unwrap();
    let fields = [
        "machine=nokey",
        "soctype=mx8mm",
        "cstversion=3.3.1",
        "csf=@good.txt",
        "artifact=@flash.bin",
    ];
    let reply = post(&svc.url, &fields, dir);
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("keys/IMG1_1_sha256_2048_65537_v3_usr_key.pem"),
        "{}",
        reply.text()
    );
    // Data the CSF names but nobody sent: the name it expects is said.
    let reply = try_csf(&csf.replace("\"flash.bin\"", "\"u-boot.bin\""));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("Blocks name \"u-boot.bin\""),
        "{}",
        reply.text()
    );
    // A syntax error (cst aborts after reporting it).
    let reply = try_csf(&csf.replace("[Authenticate CSF]", "[Authenticate CSF\nbogus"));
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert!(reply.text().contains("syntax error"), "{}", reply.text());
    // Names outside the work dir never reach cst.
    let reply = try_csf(&csf.replace(SRK_TABLE, "/etc/passwd"));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("\"/etc/passwd\" is not allowed"),
        "{}",
        reply.text()
    );
    let reply = try_csf(&csf.replace(
        CSF_CERT,
        "../other/crts/CSF1_1_sha256_2048_65537_v3_usr_crt.pem",
    ));
    assert_eq!(reply.status, 400, "{}", reply.text());
    // AHAB and PKCS#11 CSFs.
    let reply = try_csf(&csf.replace("[Header]", "[Header]\n    Target = AHAB"));
    assert_eq!(reply.status, 422, "{}", reply.text());
    let reply = try_csf(&csf.replace(
        CSF_CERT,
        "pkcs11:token=YubiHSM;object=CSF1_1;type=cert;pin-value=password",
    ));
    assert_eq!(reply.status, 501, "{}", reply.text());
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn a_hostile_keys_tarball_is_the_operator_s_500_and_writes_nothing_outside() {
    let s = setup();
    let dir = s.tmp.path();
    let evil = dir.join("evil");
    std::fs::create_dir_all(evil.join("a/b")).unwrap();
    std::fs::write(evil.join("payload"), b"x").unwrap();
    // A member named ../../payload (GNU tar keeps it with -P): from a
    // request's `<base>/<request>/sign`, the work dir base itself.
    let keys = dir.join("keys/m/imxsign/imx-cst-keys.tar.gz");
    run(Command::new("tar")
        .current_dir(evil.join("a/b"))
        .args(["-P", "-czf"])
        .arg(&keys)
        .arg("../../payload"));
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    let reply = post(&svc.url, &GOOD, dir);
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains("keys tarball"), "{}", reply.text());
    assert!(!svc.workdir_base.path().join("payload").exists());
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn a_hung_cst_is_killed_at_the_timeout_with_nothing_left() {
    let s = setup();
    let base = s.tmp.path().join("hung-cst");
    // A duration no other process uses marks the tool and its child.
    let marker = format!("sleep 1000.{}", std::process::id());
    fake_cst_base(&base, "9.9.9", &format!("{marker} &\nexec {marker}"));
    let svc = start_svc_imx(&s.uri, &base, &[("DIGSIGSERVER_IMX_TIMEOUT", "2")]);
    let started = std::time::Instant::now();
    let fields = [
        "machine=m",
        "soctype=mx8m",
        "cstversion=9.9.9",
        "csf=@csf.txt",
        "artifact=@flash.bin",
    ];
    let reply = post(&svc.url, &fields, s.tmp.path());
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply.text().contains("did not finish within 2 s"),
        "{}",
        reply.text()
    );
    assert!(
        !reply.text().contains(&*base.to_string_lossy()),
        "{}",
        reply.text()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let left = Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "cst still runs: {}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert!(svc.leftovers().is_empty(), "left: {:?}", svc.leftovers());
}

#[test]
fn debian_s_cst_without_the_back_end_crashes_and_that_is_a_500() {
    let s = setup();
    let base = fake_cst_base(
        &s.tmp.path().join("bare-cst"),
        "3.3.1",
        "exec /usr/bin/cst \"$@\"",
    );
    let svc = start_svc_imx(&s.uri, &base, &[]);
    let reply = post(&svc.url, &GOOD, s.tmp.path());
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply.text().contains("killed by signal"),
        "{}",
        reply.text()
    );
    // No CST at all is the operator's to fix, and says how.
    let svc = start_svc_imx(&s.uri, &s.tmp.path().join("no-such-base"), &[]);
    let reply = post(&svc.url, &GOOD, s.tmp.path());
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(reply.text().contains("install-cst"), "{}", reply.text());
}

#[test]
fn ready_lists_the_installed_cst_versions() {
    let s = setup();
    let svc = start_svc_imx(&s.uri, cst_base(), &[]);
    let out = run(Command::new("curl")
        .args(["--silent", "--fail"])
        .arg(format!("{}/ready", svc.url)));
    assert!(
        String::from_utf8_lossy(&out).contains("cst 3.3.1"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let svc = start_svc_imx(&s.uri, &s.tmp.path().join("empty-base"), &[]);
    let out = Command::new("curl")
        .args(["--silent", "-w", " %{http_code}"])
        .arg(format!("{}/ready", svc.url))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with(" 503") && text.contains("cst"), "{text}");
}

#[test]
fn the_native_srk_table_is_the_one_srktool_makes() {
    let s = setup();
    let pki = s.tmp.path().join("pki");
    let srks: Vec<openssl::x509::X509> = (1..=4)
        .map(|i| {
            let pem =
                std::fs::read(pki.join(format!("crts/SRK{i}_sha256_2048_65537_v3_ca_crt.pem")))
                    .unwrap();
            openssl::x509::X509::from_pem(&pem).unwrap()
        })
        .collect();
    assert_eq!(
        svc_imx::srk_table::srk_table(&srks).unwrap(),
        std::fs::read(pki.join(SRK_TABLE)).unwrap()
    );
}

#[test]
fn the_demo_keys_sign_the_readme_s_csf() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let tarball = svc_imx::demo::demo_keys_tarball().unwrap();
    let keys = tmp.path().join("keys/demo/imxsign");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("imx-cst-keys.tar.gz"), &*tarball).unwrap();
    run(Command::new("tar")
        .current_dir(&pki)
        .arg("-xzf")
        .arg(keys.join("imx-cst-keys.tar.gz")));
    // The demo PKI is a chain openssl accepts.
    run(Command::new("openssl")
        .current_dir(&pki)
        .args([
            "verify",
            "-CAfile",
            "crts/CA1_sha256_2048_65537_v3_ca_crt.pem",
            "-untrusted",
        ])
        .arg("crts/SRK1_sha256_2048_65537_v3_ca_crt.pem")
        .arg(IMG_CERT));
    std::fs::write(tmp.path().join("flash.bin"), filler(8192, 3)).unwrap();
    std::fs::write(tmp.path().join("csf.txt"), csf_text("flash.bin", 0x2000)).unwrap();
    let svc = start_svc_imx(
        &format!("file://{}", tmp.path().join("keys").display()),
        cst_base(),
        &[],
    );
    let fields = [
        "machine=demo",
        "soctype=mx8m",
        "cstversion=3.3.1",
        "csf=@csf.txt",
        "artifact=@flash.bin",
    ];
    let reply = post(&svc.url, &fields, tmp.path());
    assert_eq!(reply.status, 200, "{}", reply.text());
    verify_blob(
        &reply.body,
        &pki,
        &tmp.path().join("flash.bin"),
        0x2000,
        &tmp.path().join("v"),
    );
}
