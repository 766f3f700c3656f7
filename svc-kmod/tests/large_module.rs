//! A module past 2 GiB, over real HTTP: its signature must cover every byte
//! (a length cast to C's int once made it cover only a prefix, with a 200).
//! The module is a sparse file with bytes at its start, past 2 GiB and at its
//! end, so a signature over any prefix differs; it is checked byte for byte
//! against the kernel's sign-file.

mod common;

use std::os::unix::fs::FileExt;
use std::process::Command;

use common::*;

const SIZE: u64 = (2 << 30) + 3 * 4096 + 17;

fn sha256(path: &std::path::Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8(out).unwrap()[..64].to_string()
}

#[test]
fn a_module_past_2_gib_is_signed_over_all_its_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let keyroot = tmp.path().join("keys");
    let keys = kmod_keystore(&keyroot, "big", KeyKind::Rsa(2048), "big module");
    // The module is sparse, so its tarball expands ~1000:1: past the ratio
    // limit, which this test is not about.
    let uri = format!("file://{}", keyroot.display());
    let server = servicekit::testing::ServiceUnderTest::start(
        move |listener, mut config, shutdown| async move {
            config.archive_limits.max_ratio = 0;
            let keystore = keystore::KeyStore::open(&uri).await.unwrap();
            svc_kmod::run(listener, keystore, config, shutdown).await
        },
    );

    let tree = tmp.path().join("pkgd/lib/modules/6.1-big");
    std::fs::create_dir_all(&tree).unwrap();
    let module = tree.join("huge.ko");
    let file = std::fs::File::create(&module).unwrap();
    file.set_len(SIZE).unwrap();
    file.write_all_at(b"\x7fELF start of a very large module", 0)
        .unwrap();
    file.write_all_at(b"bytes past 2 GiB", (2 << 30) + 4096)
        .unwrap();
    file.write_all_at(b"last bytes", SIZE - 10).unwrap();
    drop(file);
    // GNU tar without --sparse stores the zeros; gzip -1 keeps packing quick.
    run(Command::new("tar")
        .current_dir(tmp.path().join("pkgd"))
        .args([
            "-c",
            "--use-compress-program=gzip -1",
            "-f",
            "../in.tar.gz",
            "lib/modules",
        ]));

    let reply = curl_post(
        &format!("{}/sign/modules", server.url),
        &["machine=big", "hashalg=sha256", "artifact=@in.tar.gz"],
        tmp.path(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(tmp.path().join("out.tar.gz"), &reply.body).unwrap();
    drop(reply);
    run(Command::new("tar")
        .current_dir(&out)
        .args(["-x", "-z", "-f", "../out.tar.gz"]));
    let ours = out.join("lib/modules/6.1-big/huge.ko");

    // sign-file signs the original in place (it streams the file).
    run(Command::new(SIGN_FILE)
        .arg("sha256")
        .arg(&keys.key_pem)
        .arg(&keys.cert_pem)
        .arg(&module));
    assert_eq!(
        std::fs::metadata(&ours).unwrap().len(),
        std::fs::metadata(&module).unwrap().len()
    );
    assert_eq!(sha256(&ours), sha256(&module), "differs from sign-file's");
    // (Not an ELF file, so modinfo cannot read it; sign-file's bytes are
    // the check.)
    assert!(server.leftovers().is_empty(), "{:?}", server.leftovers());
}
