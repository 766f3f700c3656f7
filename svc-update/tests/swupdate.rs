//! `POST /sign/swupdate` over real HTTP with the swupdate class's curl call;
//! signatures checked against the `openssl` commands upstream runs.

use std::path::Path;
use std::process::Command;

use servicekit::testing::{run, TestServer};

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// `<root>/<distro>/swupdate/` with rsa-private.key (RSA of `bits`), and
/// cms.cert + cms-private.key (a separate RSA-2048 pair).
fn keystore(root: &Path, distro: &str, bits: u32) -> std::path::PathBuf {
    let dir = root.join(distro).join("swupdate");
    std::fs::create_dir_all(&dir).unwrap();
    openssl(
        &dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-out",
            "rsa-private.key",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-newkey",
            "rsa:2048",
            "-subj",
            "/CN=digsig swupdate test",
            "-keyout",
            "cms-private.key",
            "-out",
            "cms.cert",
        ],
    );
    dir
}

/// `openssl cms -verify` of `dir/got.sig` over `dir/sw-description` as
/// SWUpdate checks it: detached, binary, the signer's certificate as CA.
fn cms_verify(dir: &Path, cert: &Path) -> std::process::Output {
    Command::new("openssl")
        .current_dir(dir)
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-in", "got.sig",
        ])
        .args(["-content", "sw-description", "-CAfile"])
        .arg(cert)
        .args(["-purpose", "any", "-out", "/dev/null"])
        .output()
        .unwrap()
}

fn server(root: &Path) -> TestServer {
    let uri = format!("file://{}", root.display());
    TestServer::start(move |listener, shutdown| async move {
        let store = keystore::KeyStore::open(&uri).await.unwrap();
        let mender = svc_update::MenderConfig::from_lookup(|_| None, std::env::temp_dir()).unwrap();
        svc_update::run(listener, store, mender, shutdown).await
    })
}

const SW_DESCRIPTION: &str = r#"software =
{
    version = "1.0.0";
    hardware-compatibility: [ "1.0" ];
    images: ( { filename = "rootfs.ext4.gz"; device = "/dev/mmcblk0p2"; type = "raw"; compressed = "zlib";
                sha256 = "6f1ed002ab5595859014ebf0951522d9b2d2fd2b7c9e1d1b3b7c2f3c8e5c5e5a"; } );
}
"#;

/// The client's call; returns (status, body).
fn post(url: &str, dir: &Path, fields: &[&str]) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir)
        .args(["--silent", "--show-error", "--max-time", "30", "-X", "POST"]);
    for f in fields {
        cmd.arg("-F").arg(f);
    }
    let out = run(cmd
        .args([
            "--output",
            "sw-description.sig",
            "--write-out",
            "%{http_code}",
        ])
        .arg(format!("{url}/sign/swupdate")));
    let status = String::from_utf8(out).unwrap().parse().unwrap();
    let body = std::fs::read(dir.join("sw-description.sig")).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join("sw-description.sig"));
    (status, body)
}

#[test]
fn rsa_signatures_are_byte_identical_to_openssl_dgst_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let mut distros = vec![];
    for bits in [2048, 4096] {
        distros.push((
            format!("distro-{bits}"),
            keystore(&keys, &format!("distro-{bits}"), bits),
        ));
    }
    let srv = server(&keys);
    let client = tmp.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    std::fs::write(client.join("sw-description"), SW_DESCRIPTION).unwrap();
    for (distro, dir) in &distros {
        // The swupdate class's exact call, and the same with `method` left out.
        for fields in [
            vec![
                format!("distro={distro}"),
                "method=RSA".into(),
                "sw-description=@sw-description".into(),
            ],
            vec![
                format!("distro={distro}"),
                "sw-description=@sw-description".into(),
            ],
        ] {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let (status, sig) = post(&srv.url, &client, &fields);
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&sig));
            let key = dir.join("rsa-private.key");
            let reference = openssl(
                &client,
                &[
                    "dgst",
                    "-sha256",
                    "-sign",
                    key.to_str().unwrap(),
                    "sw-description",
                ],
            );
            assert_eq!(
                sig, reference,
                "{distro}: differs from openssl dgst -sha256 -sign"
            );
            std::fs::write(client.join("got.sig"), &sig).unwrap();
            openssl(
                &client,
                &[
                    "pkey",
                    "-in",
                    key.to_str().unwrap(),
                    "-pubout",
                    "-out",
                    "pub.pem",
                ],
            );
            let verified = openssl(
                &client,
                &[
                    "dgst",
                    "-sha256",
                    "-verify",
                    "pub.pem",
                    "-signature",
                    "got.sig",
                    "sw-description",
                ],
            );
            assert_eq!(String::from_utf8_lossy(&verified).trim(), "Verified OK");
        }
    }
}

#[test]
fn cms_signatures_verify_with_openssl_cms() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let dir = keystore(&keys, "poky", 2048);
    let srv = server(&keys);
    let client = tmp.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    std::fs::write(client.join("sw-description"), SW_DESCRIPTION).unwrap();
    let (status, sig) = post(
        &srv.url,
        &client,
        &[
            "distro=poky",
            "method=CMS",
            "sw-description=@sw-description",
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&sig));
    std::fs::write(client.join("got.sig"), &sig).unwrap();
    let cert = dir.join("cms.cert");
    // As SWUpdate checks it: detached, binary, signer's certificate as CA.
    let verified = cms_verify(&client, &cert);
    assert!(
        verified.status.success(),
        "openssl cms -verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // The structure the openssl cms -sign call makes: detached, signer cert included.
    let printed = String::from_utf8(openssl(
        &client,
        &[
            "cms", "-cmsout", "-print", "-inform", "DER", "-in", "got.sig",
        ],
    ))
    .unwrap();
    assert!(
        printed.contains("eContent: <ABSENT>"),
        "not detached:\n{printed}"
    );
    assert!(
        printed.contains("CN=digsig swupdate test"),
        "signer certificate missing:\n{printed}"
    );
    assert!(
        !printed.contains("SMIMECapabilities"),
        "nosmimecap not honoured"
    );
    // A changed sw-description does not verify.
    std::fs::write(
        client.join("sw-description"),
        SW_DESCRIPTION.replace("1.0.0", "6.6.6"),
    )
    .unwrap();
    assert!(
        !cms_verify(&client, &cert).status.success(),
        "a tampered sw-description verified"
    );
}

#[test]
fn bad_requests_get_clear_4xx_and_bad_keys_5xx_without_key_material() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let dir = keystore(&keys, "poky", 2048);
    // A distro whose CMS key does not match its certificate, and whose RSA key is EC.
    let bad = keystore(&keys, "mismatch", 2048);
    std::fs::copy(dir.join("cms-private.key"), bad.join("cms-private.key")).unwrap();
    openssl(
        &bad,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "rsa-private.key",
        ],
    );
    // A distro with only an RSA key.
    let rsa_only = keys.join("rsa-only/swupdate");
    std::fs::create_dir_all(&rsa_only).unwrap();
    std::fs::copy(
        dir.join("rsa-private.key"),
        rsa_only.join("rsa-private.key"),
    )
    .unwrap();
    let srv = server(&keys);
    let client = tmp.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    std::fs::write(client.join("sw-description"), SW_DESCRIPTION).unwrap();
    std::fs::write(client.join("empty"), "").unwrap();
    let secret = std::fs::read_to_string(dir.join("rsa-private.key")).unwrap();
    let secret_line = secret.lines().nth(1).unwrap().to_string();

    for (fields, status, needle) in [
        (vec!["sw-description=@sw-description"], 400, "distro"),
        (vec!["distro=poky"], 400, "sw-description"),
        (
            vec![
                "distro=poky",
                "method=ECDSA",
                "sw-description=@sw-description",
            ],
            400,
            "method",
        ),
        (vec!["distro=poky", "sw-description=@empty"], 400, "empty"),
        (
            vec!["distro=../etc", "sw-description=@sw-description"],
            400,
            "../etc",
        ),
        (
            vec!["distro=nosuch", "sw-description=@sw-description"],
            404,
            "nosuch",
        ),
        (
            vec![
                "distro=rsa-only",
                "method=CMS",
                "sw-description=@sw-description",
            ],
            500,
            "cms.cert",
        ),
        (
            vec![
                "distro=mismatch",
                "method=CMS",
                "sw-description=@sw-description",
            ],
            500,
            "does not match",
        ),
        (
            vec![
                "distro=mismatch",
                "method=RSA",
                "sw-description=@sw-description",
            ],
            500,
            "needs an RSA key",
        ),
    ] {
        let (got, body) = post(&srv.url, &client, &fields);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(got, status, "{fields:?}: {text}");
        assert!(
            text.contains(needle),
            "{fields:?}: message does not mention {needle:?}: {text}"
        );
        assert!(
            !text.contains(&secret_line) && !text.contains("PRIVATE KEY"),
            "{fields:?} leaked key material"
        );
    }
}

/// The real consumer: Debian's swupdate checks a `.swu` (cpio, `crc` format:
/// sw-description, its signature, then the images) signed by us with CMS.
#[test]
fn debians_swupdate_accepts_a_swu_signed_with_cms_and_rejects_a_tampered_one() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let dir = keystore(&keys, "poky", 2048);
    let srv = server(&keys);
    let client = tmp.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    std::fs::write(client.join("payload.bin"), b"digsig payload\n").unwrap();
    let digest =
        String::from_utf8(openssl(&client, &["dgst", "-sha256", "-r", "payload.bin"])).unwrap();
    let digest = digest.split_whitespace().next().unwrap().to_string();
    let installed = tmp.path().join("installed.bin");
    let description = format!(
        "software =\n{{\n    version = \"1.0.0\";\n    hardware-compatibility: [ \"1.0\" ];\n    \
         files: ( {{ filename = \"payload.bin\"; path = \"{}\"; sha256 = \"{digest}\"; }} );\n}}\n",
        installed.display()
    );
    std::fs::write(client.join("sw-description"), &description).unwrap();
    let (status, sig) = post(
        &srv.url,
        &client,
        &[
            "distro=poky",
            "method=CMS",
            "sw-description=@sw-description",
        ],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&sig));
    std::fs::write(client.join("sw-description.sig"), &sig).unwrap();

    let swupdate = |swu: &str| {
        run(Command::new("sh").current_dir(&client).arg("-c").arg(format!(
            "printf 'sw-description\\nsw-description.sig\\npayload.bin\\n' | cpio -o -H crc --quiet > {swu}"
        )));
        let cert = dir.join("cms.cert");
        let out = Command::new("swupdate")
            .current_dir(&client)
            .args([
                "-c",
                "-i",
                swu,
                "-k",
                cert.to_str().unwrap(),
                "-H",
                "board:1.0",
            ])
            .output()
            .expect("swupdate is not installed; scripts/test installs Debian's swupdate");
        // Judged by what swupdate prints: its exit status after `-c` varies
        // from run to run on the same input (seen 0 and 1 for a success).
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let log = swupdate("signed.swu");
    assert!(
        log.contains("SWUPDATE successful") && !log.contains("ERROR"),
        "swupdate rejected our signature:\n{log}"
    );

    std::fs::write(
        client.join("sw-description"),
        description.replace("1.0.0", "6.6.6"),
    )
    .unwrap();
    let log = swupdate("tampered.swu");
    assert!(
        log.contains("Signature verification failed") && !log.contains("SWUPDATE successful"),
        "a tampered sw-description passed:\n{log}"
    );
}
