//! `POST /sign/modules` over real HTTP, called with curl and tar exactly as
//! the Yocto `kernel-module-signing.bbclass` does, with outputs checked by
//! the kernel's sign-file and modinfo.

mod common;

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;

const KVER: &str = "6.1.0-digsig";

/// A `$PKGD/lib/modules/<ver>` tree like a kernel package's: modules in
/// nested dirs, index files, a dangling absolute `build` symlink, a relative
/// `source` symlink, an empty directory, varied modes and mtimes.
fn make_pkgd(pkgd: &Path) -> Vec<&'static str> {
    let base = pkgd.join("lib/modules").join(KVER);
    let modules = [
        "kernel/drivers/net/dsnet.ko",
        "kernel/fs/dsfs.ko",
        "extra/vendor.ko",
    ];
    for (i, rel) in modules.iter().enumerate() {
        let path = base.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let name = Path::new(rel).file_stem().unwrap().to_str().unwrap();
        std::fs::write(
            &path,
            make_module(
                pkgd.parent().unwrap(),
                name,
                &filler(30_000 * (i + 1), i as u64),
            ),
        )
        .unwrap();
    }
    std::fs::set_permissions(
        base.join("extra/vendor.ko"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(base.join("modules.dep"), "kernel/fs/dsfs.ko:\n").unwrap();
    std::fs::write(
        base.join("kernel/drivers/net/README.ko.txt"),
        "not a module\n",
    )
    .unwrap();
    // Larger than the in-memory threshold: passes through a spool file.
    std::fs::write(base.join("firmware.bin"), filler(6 << 20, 42)).unwrap();
    std::fs::create_dir_all(base.join("updates")).unwrap();
    symlink("/usr/src/kernel", base.join("build")).unwrap();
    symlink("build", base.join("source")).unwrap();
    run(Command::new("touch")
        .args(["-h", "-d", "2020-02-02 02:02:02"])
        .arg(base.join("modules.dep")));
    run(Command::new("touch")
        .args(["-h", "-d", "2021-03-03 03:03:03"])
        .arg(base.join("source")));
    modules.to_vec()
}

/// `tar -C $PKGD -c -z -f modules-in.tar.gz lib/modules`
fn pack(pkgd: &Path, dest: &Path) {
    run(Command::new("tar")
        .arg("-C")
        .arg(pkgd)
        .args(["-c", "-z", "-f"])
        .arg(dest)
        .arg("lib/modules"));
}

#[test]
fn bbclass_sequence_signs_every_module_and_keeps_everything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let keyroot = tmp.path().join("keys");
    let keys = kmod_keystore(
        &keyroot,
        "jetson-xavier",
        KeyKind::Rsa(2048),
        "digsig http test",
    );
    let server = start_svc_kmod(&format!("file://{}", keyroot.display()), None);

    let pkgd = tmp.path().join("pkgd");
    let modules = make_pkgd(&pkgd);
    let work = tmp.path().join("client");
    std::fs::create_dir_all(&work).unwrap();
    pack(&pkgd, &work.join("modules-in.tar.gz"));

    // The client's exact calls.
    run(Command::new("curl")
        .current_dir(&work)
        .args([
            "--silent",
            "--fail",
            "-X",
            "POST",
            "-F",
            "machine=jetson-xavier",
            "-F",
            "hashalg=sha512",
        ])
        .args([
            "-F",
            "artifact=@modules-in.tar.gz",
            "--output",
            "modules-out.tar.gz",
        ])
        .arg(format!("{}/sign/modules", server.url)));
    let out = work.join("out");
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("tar")
        .current_dir(&out)
        .args(["-x", "--no-same-owner", "-f"])
        .arg(work.join("modules-out.tar.gz"))
        .arg("./lib/modules"));

    let before = pkgd.join("lib/modules").join(KVER);
    let after = out.join("lib/modules").join(KVER);
    for rel in &modules {
        let original = std::fs::read(before.join(rel)).unwrap();
        let reference = sign_file(
            tmp.path(),
            "sha512",
            &keys.key_pem,
            &keys.cert_pem,
            &original,
        );
        assert_eq!(
            std::fs::read(after.join(rel)).unwrap(),
            reference,
            "{rel} differs from sign-file's output"
        );
        assert_eq!(modinfo(&after.join(rel), "signer"), "digsig http test");
        assert_eq!(modinfo(&after.join(rel), "sig_hashalgo"), "sha512");
    }
    // Everything else as it was: contents, modes, mtimes, link targets.
    for rel in [
        "modules.dep",
        "kernel/drivers/net/README.ko.txt",
        "firmware.bin",
    ] {
        assert_eq!(
            std::fs::read(after.join(rel)).unwrap(),
            std::fs::read(before.join(rel)).unwrap(),
            "{rel}"
        );
    }
    for rel in [
        "modules.dep",
        "extra/vendor.ko",
        "kernel/fs/dsfs.ko",
        "updates",
        "kernel",
    ] {
        let (b, a) = (
            std::fs::metadata(before.join(rel)).unwrap(),
            std::fs::metadata(after.join(rel)).unwrap(),
        );
        assert_eq!(a.mode(), b.mode(), "{rel} mode");
        assert_eq!(a.mtime(), b.mtime(), "{rel} mtime");
    }
    assert_eq!(
        std::fs::read_link(after.join("build")).unwrap(),
        Path::new("/usr/src/kernel")
    );
    assert_eq!(
        std::fs::read_link(after.join("source")).unwrap(),
        Path::new("build")
    );
    assert_eq!(
        std::fs::symlink_metadata(after.join("source"))
            .unwrap()
            .mtime(),
        std::fs::symlink_metadata(before.join("source"))
            .unwrap()
            .mtime()
    );
    assert!(after.join("updates").is_dir());

    // Names carry upstream's "./" prefix (the client extracts "./lib/modules").
    let listing = String::from_utf8(run(Command::new("tar")
        .arg("-tzf")
        .arg(work.join("modules-out.tar.gz"))))
    .unwrap();
    assert!(listing.lines().all(|l| l.starts_with("./")), "{listing}");
    assert!(
        server.leftovers().is_empty(),
        "work dirs left behind: {:?}",
        server.leftovers()
    );
}

#[test]
fn hashalg_defaults_to_sha512_and_sha256_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let keyroot = tmp.path().join("keys");
    kmod_keystore(&keyroot, "m1", KeyKind::Rsa(2048), "hash test");
    let server = start_svc_kmod(&format!("file://{}", keyroot.display()), None);
    let pkgd = tmp.path().join("pkgd");
    make_pkgd(&pkgd);
    pack(&pkgd, &tmp.path().join("in.tar.gz"));
    let url = format!("{}/sign/modules", server.url);
    for (fields, expected) in [
        (vec!["machine=m1", "artifact=@in.tar.gz"], "sha512"),
        (
            vec!["machine=m1", "hashalg=sha256", "artifact=@in.tar.gz"],
            "sha256",
        ),
        (
            vec!["machine=m1", "hashalg=sha384", "artifact=@in.tar.gz"],
            "sha384",
        ),
        // The file first: it is spooled, and the fields after it still
        // count.
        (
            vec!["artifact=@in.tar.gz", "hashalg=sha256", "machine=m1"],
            "sha256",
        ),
    ] {
        let reply = curl_post(&url, &fields, tmp.path());
        assert_eq!(reply.status, 200, "{}", reply.text());
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("o.tar.gz"), &reply.body).unwrap();
        run(Command::new("tar")
            .current_dir(out.path())
            .args(["-xzf", "o.tar.gz"]));
        let module = out
            .path()
            .join("lib/modules")
            .join(KVER)
            .join("kernel/fs/dsfs.ko");
        assert_eq!(modinfo(&module, "sig_hashalgo"), expected);
    }
}

#[test]
fn keys_from_s3_sign_the_same_as_keys_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = make_keypair(&tmp.path().join("k"), KeyKind::Rsa(2048), "s3 signer");
    let moto = keystore::testing::moto();
    let client = moto.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        client
            .create_bucket()
            .bucket("kmod-keys")
            .send()
            .await
            .unwrap();
        for (name, path) in [
            ("kernel-signkey.priv", &keys.key_pem),
            ("kernel-signkey.x509", &keys.cert_pem),
        ] {
            client
                .put_object()
                .bucket("kmod-keys")
                .key(format!("prod/s3box/kmodsign/{name}"))
                .body(std::fs::read(path).unwrap().into())
                .send()
                .await
                .unwrap();
        }
    });
    let server = start_svc_kmod("s3://kmod-keys/prod", Some(moto.options()));
    let module = make_module(tmp.path(), "s3mod", &filler(40_000, 9));
    let tree = tmp.path().join("tree/lib/modules/x");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("s3mod.ko"), &module).unwrap();
    pack(&tmp.path().join("tree"), &tmp.path().join("in.tar.gz"));
    let reply = curl_post(
        &format!("{}/sign/modules", server.url),
        &["machine=s3box", "artifact=@in.tar.gz"],
        tmp.path(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("o.tar.gz"), &reply.body).unwrap();
    run(Command::new("tar")
        .current_dir(&out)
        .args(["-xzf", "o.tar.gz"]));
    assert_eq!(
        std::fs::read(out.join("lib/modules/x/s3mod.ko")).unwrap(),
        sign_file(tmp.path(), "sha512", &keys.key_pem, &keys.cert_pem, &module)
    );
}

/// A gzip tarball with one regular file whose header name is `name`, raw.
fn tarball_with_raw_name(name: &[u8], data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut raw = header.as_bytes().to_vec();
    raw.extend_from_slice(data);
    raw.resize(raw.len().div_ceil(512) * 512 + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

/// POSTs a multipart form as a client that writes its whole request before
/// it reads the reply (curl reads an early reply and stops sending; many
/// clients do not): `texts` in order, then `file`, then `after`. The status
/// and body, or what failed.
fn post_whole_form_then_read(
    url: &str,
    texts: &[(&str, &str)],
    file: &[u8],
    after: &[(&str, &str)],
) -> Result<(u16, String), std::io::Error> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let boundary = "----digsig-test-boundary";
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let mut body = Vec::new();
    for (n, v) in texts {
        body.extend_from_slice(part(n, v).as_bytes());
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"a.tar.gz\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n");
    for (n, v) in after {
        body.extend_from_slice(part(n, v).as_bytes());
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut conn = std::net::TcpStream::connect(host)?;
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply[9..12].parse().unwrap();
    let text = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    Ok((status, text.unwrap_or_default()))
}

/// A request refused while the client is still sending a large file gets
/// its status and message, not a reset connection, even from a client that
/// writes its whole request before reading: refused before the file was
/// read (no keys), while it is read live (not gzip), and after it (a field
/// sent twice). (The server drains what a refused request left unread,
/// `servicekit::drain`; a field after the file is only seen once the file
/// has been read.)
#[test]
fn refusals_reach_a_client_still_sending_a_large_file() {
    let tmp = tempfile::tempdir().unwrap();
    let keyroot = tmp.path().join("keys");
    kmod_keystore(&keyroot, "good", KeyKind::Rsa(2048), "good");
    let server = start_svc_kmod(&format!("file://{}", keyroot.display()), None);
    let url = format!("{}/sign/modules", server.url);
    let d = tmp.path();
    // 48 MiB, far more than the sockets buffer between curl and the server.
    let big = servicekit::testing::filler(48 << 20, 7);
    std::fs::write(d.join("big.bin"), &big).unwrap();
    let cases: &[(&[&str], u16, &str)] = &[
        (
            &[
                "machine=no-such-board",
                "hashalg=sha512",
                "artifact=@big.bin",
            ],
            404,
            "no-such-board",
        ),
        (
            &["machine=good", "hashalg=sha512", "artifact=@big.bin"],
            400,
            "gzip",
        ),
        (
            &[
                "machine=good",
                "hashalg=sha512",
                "artifact=@big.bin",
                "hashalg=sha256",
            ],
            400,
            "repeated",
        ),
    ];
    for (fields, status, needle) in cases {
        // curl_post fails the test if curl itself fails (a reset is exit 55
        // or 56).
        let reply = curl_post(&url, fields, d);
        let text = reply.text();
        assert_eq!(reply.status, *status, "{fields:?}: {text}");
        assert!(text.contains(needle), "{fields:?}: {text:?}");
        assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
    }
    let h = [("machine", "good"), ("hashalg", "sha512")];
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let whole_form_cases: &[(Fields, Fields, u16, &str)] = &[
        (
            &[("machine", "no-such-board"), ("hashalg", "sha512")],
            &[],
            404,
            "no-such-board",
        ),
        (&h, &[], 400, "gzip"),
        (&h, &[("machine", "good")], 400, "repeated"),
    ];
    for (texts, after, status, needle) in whole_form_cases {
        let (got, text) = post_whole_form_then_read(&url, texts, &big, after)
            .unwrap_or_else(|e| panic!("{texts:?}: the client saw {e}, not the reply"));
        assert_eq!(got, *status, "{texts:?}: {text}");
        assert!(text.contains(needle), "{texts:?}: {text:?}");
    }
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
}

#[test]
fn bad_requests_get_clear_4xx_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let keyroot = tmp.path().join("keys");
    kmod_keystore(&keyroot, "good", KeyKind::Rsa(2048), "good");
    // A machine whose key and certificate are not a pair.
    let other = make_keypair(&tmp.path().join("other"), KeyKind::Rsa(2048), "other");
    let bad = kmod_keystore(&keyroot, "mismatched", KeyKind::Rsa(2048), "mismatched");
    std::fs::copy(
        &other.cert_pem,
        keyroot.join("mismatched/kmodsign/kernel-signkey.x509"),
    )
    .unwrap();
    // A machine directory without kmodsign keys.
    std::fs::create_dir_all(keyroot.join("nokmod/mender")).unwrap();
    let server = start_svc_kmod(&format!("file://{}", keyroot.display()), None);
    let url = format!("{}/sign/modules", server.url);

    let d = tmp.path();
    let module = make_module(d, "m", b"");
    let tree = d.join("t/lib/modules/v");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("m.ko"), &module).unwrap();
    pack(&d.join("t"), &d.join("ok.tar.gz"));
    std::fs::write(d.join("plain.bin"), b"this is not gzip at all").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &[0x55u8; 4096]).unwrap();
    std::fs::write(d.join("notar.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        d.join("dotdot.tar.gz"),
        tarball_with_raw_name(b"lib/../../evil.ko", &module),
    )
    .unwrap();
    std::fs::write(
        d.join("absolute.tar.gz"),
        tarball_with_raw_name(b"/tmp/evil.ko", &module),
    )
    .unwrap();
    // The same good tarball with a wrong CRC-32 in its gzip trailer: a
    // corrupted upload must never come back signed.
    let mut bad_crc = std::fs::read(d.join("ok.tar.gz")).unwrap();
    let at = bad_crc.len() - 8;
    bad_crc[at] ^= 0xff;
    std::fs::write(d.join("badcrc.tar.gz"), bad_crc).unwrap();
    let empty_tree = d.join("e/lib/modules/v");
    std::fs::create_dir_all(&empty_tree).unwrap();
    std::fs::write(empty_tree.join("modules.dep"), b"").unwrap();
    pack(&d.join("e"), &d.join("nomodules.tar.gz"));

    let cases: &[(&[&str], u16, &str)] = &[
        (&["artifact=@ok.tar.gz"], 400, "machine"),
        (&["machine=good"], 400, "artifact"),
        (
            &["machine=good", "hashalg=md5", "artifact=@ok.tar.gz"],
            400,
            "hashalg",
        ),
        (&["machine=good", "artifact=@plain.bin"], 400, "gzip"),
        (&["machine=good", "artifact=@notar.gz"], 400, "tar"),
        (
            &["machine=good", "artifact=@badcrc.tar.gz"],
            400,
            "not a complete gzip",
        ),
        (&["machine=../good", "artifact=@ok.tar.gz"], 400, "../good"),
        (&["machine=good/x", "artifact=@ok.tar.gz"], 400, "good/x"),
        (&["machine=good", "artifact=@dotdot.tar.gz"], 400, "evil.ko"),
        (
            &["machine=good", "artifact=@absolute.tar.gz"],
            400,
            "evil.ko",
        ),
        (
            &["machine=good", "artifact=@nomodules.tar.gz"],
            422,
            "no *.ko",
        ),
        (
            &["machine=unknown-board", "artifact=@ok.tar.gz"],
            404,
            "unknown-board",
        ),
        (&["machine=nokmod", "artifact=@ok.tar.gz"], 404, "nokmod"),
        (
            &["machine=mismatched", "artifact=@ok.tar.gz"],
            500,
            "does not match",
        ),
    ];
    let key_text = std::fs::read_to_string(&bad.key_pem).unwrap();
    let key_body: String = key_text.lines().nth(1).unwrap().to_string();
    // Each case as written (most without `hashalg`, so the file is spooled)
    // and, where it names a machine, with `hashalg` before the file too (so
    // it is signed as it arrives): both give the same answer.
    let live = |fields: &[&'static str]| -> Option<Vec<&'static str>> {
        let file = fields.iter().position(|f| f.starts_with("artifact="))?;
        let named = fields[..file].iter().any(|f| f.starts_with("machine="));
        let has_hash = fields.iter().any(|f| f.starts_with("hashalg="));
        (named && !has_hash).then(|| {
            let mut v = fields.to_vec();
            v.insert(file, "hashalg=sha512");
            v
        })
    };
    let variants: Vec<(Vec<&str>, u16, &str)> = cases
        .iter()
        .flat_map(|(fields, status, needle)| {
            std::iter::once(fields.to_vec())
                .chain(live(fields))
                .map(move |f| (f, *status, *needle))
        })
        .collect();
    assert!(variants.len() > cases.len() + 10);
    for (fields, status, needle) in &variants {
        let reply = curl_post(&url, fields, d);
        let text = reply.text();
        assert_eq!(reply.status, *status, "{fields:?}: {text}");
        assert!(
            text.contains(needle),
            "{fields:?}: message {text:?} does not mention {needle:?}"
        );
        assert!(
            !text.contains("PRIVATE KEY") && !text.contains(&key_body),
            "{fields:?} leaks key material"
        );
        assert!(
            server.leftovers().is_empty(),
            "{fields:?} left {:?}",
            server.leftovers()
        );
    }
    // Nothing was written beside the tree the tarballs named.
    assert!(!Path::new("/tmp/evil.ko").exists());
    assert!(!server
        .workdir_base
        .path()
        .parent()
        .unwrap()
        .join("evil.ko")
        .exists());
    // The good request still works after all that.
    let reply = curl_post(&url, &["machine=good", "artifact=@ok.tar.gz"], d);
    assert_eq!(reply.status, 200, "{}", reply.text());
}
