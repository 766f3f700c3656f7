//! `POST /sign/optee` over real HTTP, called with curl and tar as upstream's
//! documented client does, with every signed TA checked by `openssl` (digest
//! and signature) and Python's `uuid` (the UUID bytes).

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

const UUID_A: &str = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";
const UUID_B: &str = "5b9e0e40-2636-11e1-ad9e-0002a5d5c51b";
const UUID_C: &str = "E13010E0-2AE1-11E5-896A-0002A5D5C51B";

/// A TA tree as an OP-TEE build leaves it (`ta/<name>/out/...`): images in
/// nested directories, version files in decimal and hex, one missing, and
/// files that are not TAs. Returns (relative image path, uuid, version, bytes).
fn make_ta_tree(base: &Path) -> Vec<(String, &'static str, u32, Vec<u8>)> {
    let tas = vec![
        (
            format!("ta/hello/out/{UUID_A}.stripped.elf"),
            UUID_A,
            Some("1\n"),
            1,
            filler(200_000, 1),
        ),
        (
            format!("ta/crypto/deep/out/{UUID_B}.stripped.elf"),
            UUID_B,
            None,
            0,
            filler(700_000, 2), // several 256 KiB read chunks
        ),
        (
            format!("ta/upper/{UUID_C}.stripped.elf"),
            UUID_C,
            Some("0x10002\n"),
            0x10002,
            filler(1, 3),
        ),
    ];
    let mut out = Vec::new();
    for (rel, uuid, version_text, version, bytes) in tas {
        let path = base.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        if let Some(text) = version_text {
            std::fs::write(path.with_file_name(format!("{uuid}.ta-version")), text).unwrap();
        }
        out.push((rel, uuid, version, bytes));
    }
    std::fs::write(base.join("ta/hello/out/README"), "not a TA\n").unwrap();
    std::fs::write(base.join("ta/hello/out/libutee.stripped.a"), "not a TA\n").unwrap();
    out
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    key: RsaKey,
    server: ServiceUnderTest,
}

fn setup(bits: usize) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let key = make_rsa_key(&dir.join("keysrc"), bits);
    install_key(&dir.join("keys"), "qemu-optee", &key.private_pem);
    let server = start_svc_optee(&format!("file://{}", dir.join("keys").display()));
    Setup {
        _tmp: tmp,
        dir,
        key,
        server,
    }
}

#[test]
fn documented_client_sequence_signs_every_ta_and_keeps_the_rest() {
    let s = setup(2048);
    let build = s.dir.join("build");
    let tas = make_ta_tree(&build);
    pack(&build, "ta", &build.join("tasign-in.tar.gz"));

    // The client's exact call, from upstream's docs.
    run(std::process::Command::new("curl")
        .current_dir(&build)
        .args(["--silent", "--show-error", "--fail", "-X", "POST"])
        .args([
            "-F",
            "machine=qemu-optee",
            "-F",
            "artifact=@tasign-in.tar.gz",
        ])
        .args(["--output", "tasign-out.tar.gz"])
        .arg(format!("{}/sign/optee", s.server.url)));
    let out = s.dir.join("out");
    unpack(&build.join("tasign-out.tar.gz"), &out);

    for (i, (rel, uuid, version, image)) in tas.iter().enumerate() {
        let elf = out.join(rel);
        let ta_path = elf.with_file_name(format!("{uuid}.ta"));
        let ta = std::fs::read(&ta_path)
            .unwrap_or_else(|e| panic!("{} missing: {e}", ta_path.display()));
        verify_ta(
            &ta,
            image,
            uuid,
            *version,
            &s.key,
            Algo::Pss,
            &s.dir.join(format!("scratch{i}")),
        );
        assert!(!elf.exists(), "{rel} must be replaced by the .ta");
        assert!(
            !elf.with_file_name(format!("{uuid}.ta-version")).exists(),
            "{uuid}.ta-version must go with its image"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("ta/hello/out/README")).unwrap(),
        "not a TA\n"
    );
    assert!(out.join("ta/hello/out/libutee.stripped.a").exists());
    assert_eq!(s.server.leftovers(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn every_key_size_and_both_algorithms_verify_and_pkcs1_matches_openssl() {
    for bits in [2048, 3072, 4096] {
        let s = setup(bits);
        let build = s.dir.join("build");
        let image = filler(200_000, bits as u64);
        std::fs::create_dir_all(build.join("ta")).unwrap();
        std::fs::write(build.join(format!("ta/{UUID_A}.stripped.elf")), &image).unwrap();
        std::fs::write(build.join(format!("ta/{UUID_A}.ta-version")), "7").unwrap();
        pack(&build, "ta", &build.join("in.tar.gz"));
        for algo in [Algo::Pss, Algo::Pkcs1v15] {
            let reply = curl_post(
                &format!("{}/sign/optee", s.server.url),
                &[
                    "machine=qemu-optee",
                    &format!("algo={}", algo.field()),
                    "artifact=@in.tar.gz",
                ],
                &build,
            );
            assert_eq!(reply.status, 200, "{bits} {algo:?}: {}", reply.text());
            let got = s.dir.join(format!("reply-{algo:?}.tar.gz"));
            std::fs::write(&got, &reply.body).unwrap();
            let out = s.dir.join(format!("out-{algo:?}"));
            unpack(&got, &out);
            let ta = std::fs::read(out.join(format!("ta/{UUID_A}.ta"))).unwrap();
            let scratch = s.dir.join(format!("scratch-{algo:?}"));
            let sig = verify_ta(&ta, &image, UUID_A, 7, &s.key, algo, &scratch);
            if algo == Algo::Pkcs1v15 {
                assert_eq!(
                    sig,
                    openssl_pkcs1_signature(&ta, &s.key, &scratch),
                    "RSA-{bits} PKCS#1 v1.5 must be byte-identical to openssl pkeyutl"
                );
            }
        }
    }
}

/// Posts a tree made by `make` and returns the reply.
fn post_tree(s: &Setup, name: &str, make: impl FnOnce(&Path)) -> Reply {
    let build = s.dir.join(name);
    std::fs::create_dir_all(build.join("ta")).unwrap();
    make(&build.join("ta"));
    run(std::process::Command::new("tar").current_dir(&build).args([
        "-c",
        "-z",
        "-f",
        "in.tar.gz",
        "ta",
    ]));
    curl_post(
        &format!("{}/sign/optee", s.server.url),
        &["machine=qemu-optee", "artifact=@in.tar.gz"],
        &build,
    )
}

#[test]
fn bad_trees_are_refused_with_422_naming_the_file() {
    let s = setup(2048);
    type MakeTree = Box<dyn FnOnce(&Path)>;
    let cases: Vec<(&str, MakeTree, &str)> = vec![
        (
            "bad-uuid",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join(format!("{UUID_A}.stripped.elf")), b"ok").unwrap();
                std::fs::write(ta.join("hello_world.stripped.elf"), b"x").unwrap();
            }),
            "./ta/hello_world.stripped.elf: the file name before .stripped.elf must be the TA's UUID",
        ),
        (
            "short-uuid",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join("8aaaf200-2450-11e4.stripped.elf"), b"x").unwrap();
            }),
            "./ta/8aaaf200-2450-11e4.stripped.elf",
        ),
        (
            "bad-version",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join(format!("{UUID_A}.stripped.elf")), b"x").unwrap();
                std::fs::write(ta.join(format!("{UUID_A}.ta-version")), "v1.2\n").unwrap();
            }),
            "ta-version: 'v1.2' is not an integer",
        ),
        (
            "version-too-big",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join(format!("{UUID_A}.stripped.elf")), b"x").unwrap();
                std::fs::write(ta.join(format!("{UUID_A}.ta-version")), "0x100000000").unwrap();
            }),
            "does not fit in 32 bits",
        ),
        (
            "no-tas",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join("README"), b"nothing to sign").unwrap();
            }),
            "artifact contains no *.stripped.elf files to sign",
        ),
        (
            "symlinked-image",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join("real.bin"), b"x").unwrap();
                symlink("real.bin", ta.join(format!("{UUID_A}.stripped.elf"))).unwrap();
            }),
            "is a symbolic link; it must be a regular file",
        ),
        (
            "output-is-a-directory",
            Box::new(|ta: &Path| {
                std::fs::write(ta.join(format!("{UUID_A}.stripped.elf")), b"x").unwrap();
                std::fs::create_dir(ta.join(format!("{UUID_A}.ta"))).unwrap();
                std::fs::write(ta.join(format!("{UUID_A}.ta/x")), b"x").unwrap();
            }),
            "is a directory, where the signed TA would be written",
        ),
    ];
    for (name, make, want) in cases {
        let reply = post_tree(&s, name, make);
        assert_eq!(reply.status, 422, "{name}: {}", reply.text());
        assert!(
            reply.text().contains(want),
            "{name}: {:?} should contain {want:?}",
            reply.text()
        );
        assert!(
            !reply
                .text()
                .contains(s.server.workdir_base.path().to_str().unwrap()),
            "{name}: the server's paths must not leak: {}",
            reply.text()
        );
    }
    assert_eq!(s.server.leftovers(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn bad_requests_get_4xx_saying_what_to_fix() {
    let s = setup(2048);
    let build = s.dir.join("req");
    std::fs::create_dir_all(build.join("ta")).unwrap();
    std::fs::write(build.join(format!("ta/{UUID_A}.stripped.elf")), b"x").unwrap();
    pack(&build, "ta", &build.join("in.tar.gz"));
    std::fs::write(build.join("plain.txt"), "not a tarball").unwrap();
    // A wrong CRC-32 in the gzip trailer: never signed and returned.
    let mut bad_crc = std::fs::read(build.join("in.tar.gz")).unwrap();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    std::fs::write(build.join("badcrc.tar.gz"), bad_crc).unwrap();
    // A path deeper than the file system allows: the client's mistake.
    let deep = format!("{}{UUID_A}.stripped.elf", "d/".repeat(2000));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, &deep, &b"x"[..]).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    std::fs::write(build.join("deep.tar.gz"), gz.finish().unwrap()).unwrap();
    let url = format!("{}/sign/optee", s.server.url);
    let cases: &[(&[&str], u16, &str)] = &[
        (
            &["machine=other-machine", "artifact=@in.tar.gz"],
            404,
            "other-machine",
        ),
        (&["artifact=@in.tar.gz"], 400, "machine"),
        (&["machine=qemu-optee"], 400, "artifact"),
        (&["machine=../etc", "artifact=@in.tar.gz"], 400, "machine"),
        (
            &["machine=qemu-optee", "artifact=@plain.txt"],
            400,
            "not gzip-compressed",
        ),
        (
            &["machine=qemu-optee", "algo=ECDSA", "artifact=@in.tar.gz"],
            400,
            "algo",
        ),
        // The tree was signed as it arrived, with the default: an `algo`
        // after it cannot apply, and is refused rather than ignored.
        (
            &[
                "machine=qemu-optee",
                "artifact=@in.tar.gz",
                "algo=TEE_ALG_RSASSA_PKCS1_V1_5_SHA256",
            ],
            400,
            "send `algo` before `artifact`",
        ),
        (
            &["machine=qemu-optee", "artifact=@badcrc.tar.gz"],
            400,
            "not a complete gzip",
        ),
        (
            &["machine=qemu-optee", "artifact=@deep.tar.gz"],
            400,
            "longer than the file system allows",
        ),
    ];
    for (fields, status, want) in cases {
        let reply = curl_post(&url, fields, &build);
        assert_eq!(reply.status, *status, "{fields:?}: {}", reply.text());
        assert!(
            reply.text().contains(want),
            "{fields:?}: {:?} should mention {want:?}",
            reply.text()
        );
    }
    assert_eq!(s.server.leftovers(), Vec::<std::path::PathBuf>::new());
}

#[test]
fn keys_that_cannot_sign_tas_are_a_named_misconfiguration_without_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let ec = src.join("ec.pem");
    run(std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&ec));
    install_key(&keys, "ec-machine", &ec);
    let enc = src.join("enc.pem");
    run(std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-aes-128-cbc",
            "-pass",
            "pass:secret",
            "-out",
        ])
        .arg(&enc));
    install_key(&keys, "encrypted-machine", &enc);

    let server = start_svc_optee(&format!("file://{}", keys.display()));
    let build = tmp.path().join("build");
    std::fs::create_dir_all(build.join("ta")).unwrap();
    std::fs::write(build.join(format!("ta/{UUID_A}.stripped.elf")), b"x").unwrap();
    pack(&build, "ta", &build.join("in.tar.gz"));
    for (machine, key_file, want) in [
        (
            "ec-machine",
            &ec,
            "holds a key of type EC; OP-TEE verifies TA signatures with RSA keys only",
        ),
        (
            "encrypted-machine",
            &enc,
            "is not an unencrypted private key",
        ),
    ] {
        let reply = curl_post(
            &format!("{}/sign/optee", server.url),
            &[&format!("machine={machine}"), "artifact=@in.tar.gz"],
            &build,
        );
        assert_eq!(reply.status, 500, "{machine}: {}", reply.text());
        let text = reply.text();
        assert!(text.contains("server misconfiguration"), "{text}");
        assert!(
            text.contains(&format!(
                "key file {machine}/opteesign/optee-signing-key.pem"
            )),
            "{text}"
        );
        assert!(text.contains(want), "{text}");
        let pem = std::fs::read_to_string(key_file).unwrap();
        let body_line = pem.lines().nth(1).unwrap();
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains(body_line),
            "key material in {text}"
        );
    }
    assert_eq!(server.leftovers(), Vec::<std::path::PathBuf>::new());
}
