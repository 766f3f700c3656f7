//! `POST /sign/mender` over real HTTP with mendersign.bbclass's curl call:
//! artifacts made and verified with Debian's `mender-artifact`, `s3://`
//! artifacts on a real S3-compatible server (moto), and every refusal the
//! allowed-URI rules promise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{make_artifact, make_tool_only_artifact};
use keystore::testing::moto;
use servicekit::testing::TestServer;
use svc_update::in_place::UploadPolicy;
use svc_update::MenderConfig;

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A key store with `<distro>/mender/private.key` as `openssl` writes it
/// today (PKCS#8, which mender-artifact itself refuses), and its public key.
struct Keys {
    root: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        let keys = Self {
            root: tempfile::tempdir().unwrap(),
        };
        keys.add(
            "rsa",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        keys.add(
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        keys.add("ed", &["-algorithm", "ED25519"]);
        keys
    }

    fn add(&self, distro: &str, genpkey: &[&str]) {
        let dir = self.root.path().join(distro).join("mender");
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("openssl")
            .current_dir(&dir)
            .arg("genpkey")
            .args(genpkey)
            .args(["-out", "private.key"]));
        run(Command::new("openssl").current_dir(&dir).args([
            "pkey",
            "-in",
            "private.key",
            "-pubout",
            "-out",
            "public.key",
        ]));
    }

    fn uri(&self) -> String {
        format!("file://{}", self.root.path().display())
    }

    fn public(&self, distro: &str) -> PathBuf {
        self.root.path().join(distro).join("mender/public.key")
    }

    fn private_pem(&self, distro: &str) -> String {
        std::fs::read_to_string(self.root.path().join(distro).join("mender/private.key")).unwrap()
    }
}

/// `mender-artifact validate -k public.key`: (ok, output).
fn validate(artifact: &Path, public: &Path) -> (bool, String) {
    let out = Command::new("mender-artifact")
        .arg("validate")
        .arg("-k")
        .arg(public)
        .arg(artifact)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn server(keys: &Keys, config: MenderConfig) -> TestServer {
    let uri = keys.uri();
    TestServer::start(move |listener, shutdown| async move {
        let store = keystore::KeyStore::open(&uri).await.unwrap();
        svc_update::run(listener, store, config, shutdown).await
    })
}

/// The allowed-URI entry for `dir`.
fn allow_dir(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

fn config(allowed: &str) -> MenderConfig {
    let allowed = allowed.to_string();
    let mut config = MenderConfig::from_lookup(
        |name| (name == "DIGSIGSERVER_MENDER_ALLOWED_URIS").then(|| allowed.clone()),
        std::env::temp_dir(),
    )
    .unwrap();
    config.s3 = keystore::S3Options {
        operation_timeout: std::time::Duration::from_secs(60),
        ..moto().options()
    };
    config
}

/// mendersign.bbclass: `curl -X POST -F distro=.. -F artifact-uri=..`;
/// returns (status, body).
fn post(url: &str, fields: &[String]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "60", "-X", "POST"]);
    for f in fields {
        cmd.arg("-F").arg(f);
    }
    let out = run(cmd
        .args(["--output", "-", "--write-out", "\n%{http_code}"])
        .arg(format!("{url}/sign/mender")));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

fn sign(url: &str, distro: &str, uri: &str) -> (u16, String) {
    post(
        url,
        &[format!("distro={distro}"), format!("artifact-uri={uri}")],
    )
}

/// The names in `dir`, to show nothing was left beside the artifact.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn signs_file_artifacts_in_place_with_rsa_and_ec_keys() {
    let keys = Keys::new();
    let deploy = tempfile::tempdir().unwrap();
    let service = server(&keys, config(&allow_dir(deploy.path())));
    for distro in ["rsa", "ec"] {
        let artifact = deploy.path().join(format!("image-{distro}.mender"));
        make_artifact(&artifact, 100_000);
        std::fs::set_permissions(&artifact, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (ok, _) = validate(&artifact, &keys.public(distro));
        assert!(!ok, "an unsigned artifact must not validate");

        let (status, body) = sign(
            &service.url,
            distro,
            &format!("file://{}", artifact.display()),
        );
        assert_eq!(
            (status, body.as_str()),
            (200, "Signing successful"),
            "{distro}"
        );
        let (ok, text) = validate(&artifact, &keys.public(distro));
        assert!(ok, "{distro}: mender-artifact validate: {text}");
        let mode = std::fs::metadata(&artifact).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "the original's mode is kept");
        // Signed with this distro's key, not just any key.
        let other = if distro == "rsa" { "ec" } else { "rsa" };
        assert!(!validate(&artifact, &keys.public(other)).0);
    }
    assert_eq!(
        listing(deploy.path()),
        vec!["image-ec.mender", "image-rsa.mender"],
        "nothing is left beside the artifacts"
    );
}

#[test]
fn artifacts_the_tool_wrote_are_signed_without_it_byte_for_byte_as_it_signs_them() {
    // A server with no mender-artifact: the artifacts it signs are signed
    // natively, and with an RSA key (deterministic) the result is the very
    // file `mender-artifact sign` makes of the same artifact.
    let keys = Keys::new();
    let deploy = tempfile::tempdir().unwrap();
    let mut no_tool = config(&allow_dir(deploy.path()));
    no_tool.tool = svc_update::mender_tool::MenderTool::locate(
        Some(deploy.path().join("no-such-mender-artifact")),
        servicekit::config::DEFAULT_DOMAIN_TIMEOUT,
    );
    let service = server(&keys, no_tool);
    let scratch = tempfile::tempdir().unwrap();
    // 20 MB: several of the copy's 8 MiB chunks.
    for (distro, payload) in [("rsa", 20_000_000), ("rsa", 0), ("ec", 200_000)] {
        let artifact = deploy.path().join("image.mender");
        make_artifact(&artifact, payload);
        let unsigned = scratch.path().join("unsigned.mender");
        std::fs::copy(&artifact, &unsigned).unwrap();
        let (status, body) = sign(
            &service.url,
            distro,
            &format!("file://{}", artifact.display()),
        );
        assert_eq!(
            (status, body.as_str()),
            (200, "Signing successful"),
            "{distro}, {payload} bytes"
        );
        let (ok, text) = validate(&artifact, &keys.public(distro));
        assert!(ok, "{distro}: mender-artifact validate: {text}");
        let read = run(Command::new("mender-artifact")
            .arg("read")
            .arg("-k")
            .arg(keys.public(distro))
            .arg(&artifact));
        assert!(
            String::from_utf8_lossy(&read.stdout).contains("signed and verified correctly"),
            "{}",
            String::from_utf8_lossy(&read.stdout)
        );
        if distro == "rsa" {
            // mender-artifact 3.9 takes only traditional PEM.
            let traditional = scratch.path().join("traditional.key");
            run(Command::new("openssl")
                .args(["rsa", "-traditional", "-in"])
                .arg(keys.root.path().join("rsa/mender/private.key"))
                .arg("-out")
                .arg(&traditional));
            let by_tool = scratch.path().join("by-tool.mender");
            let _ = std::fs::remove_file(&by_tool);
            run(Command::new("mender-artifact")
                .arg("sign")
                .arg(&unsigned)
                .arg("-k")
                .arg(&traditional)
                .arg("-o")
                .arg(&by_tool));
            assert!(
                std::fs::read(&artifact).unwrap() == std::fs::read(&by_tool).unwrap(),
                "{payload} bytes: not the bytes mender-artifact sign writes"
            );
        }
        // Signed once: a second time is refused without the tool too.
        let (status, body) = sign(
            &service.url,
            distro,
            &format!("file://{}", artifact.display()),
        );
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("already signed"), "{body}");
    }

    // What the native path leaves to the tool needs the tool: here, a 500
    // saying it is not installed, the artifact as it was.
    let other = deploy.path().join("pax.mender");
    make_tool_only_artifact(&other, 10_000);
    let before = std::fs::read(&other).unwrap();
    let (status, body) = sign(&service.url, "rsa", &format!("file://{}", other.display()));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("not installed"), "{body}");
    assert_eq!(std::fs::read(&other).unwrap(), before);
}

#[test]
fn artifacts_the_native_path_does_not_know_are_signed_by_the_tool() {
    let keys = Keys::new();
    let deploy = tempfile::tempdir().unwrap();
    let service = server(&keys, config(&allow_dir(deploy.path())));
    for distro in ["rsa", "ec"] {
        let artifact = deploy.path().join(format!("pax-{distro}.mender"));
        make_tool_only_artifact(&artifact, 50_000);
        let (status, body) = sign(
            &service.url,
            distro,
            &format!("file://{}", artifact.display()),
        );
        assert_eq!(
            (status, body.as_str()),
            (200, "Signing successful"),
            "{distro}"
        );
        let (ok, text) = validate(&artifact, &keys.public(distro));
        assert!(ok, "{distro}: mender-artifact validate: {text}");
    }
}

#[test]
fn signs_s3_artifacts_in_place_with_one_put_and_with_a_multipart_upload() {
    let keys = Keys::new();
    let s3 = moto().client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bucket = "digsig-mender-tempstore";
    rt.block_on(s3.create_bucket().bucket(bucket).send())
        .unwrap();
    let mut config = config(&format!("s3://{bucket}/builds"));
    // 5 MiB parts (S3's minimum) so a 12 MB artifact goes up in three.
    config.upload = UploadPolicy {
        multipart_threshold: 8 << 20,
        part_size: 5 << 20,
    };
    let service = server(&keys, config);
    let work = tempfile::tempdir().unwrap();
    for (name, size) in [("small", 200_000usize), ("large", 12 << 20)] {
        let local = work.path().join(format!("{name}.mender"));
        make_artifact(&local, size);
        let key = format!("builds/distro/{name}-uuid");
        let body = std::fs::read(&local).unwrap();
        rt.block_on(
            s3.put_object()
                .bucket(bucket)
                .key(&key)
                .body(body.into())
                .send(),
        )
        .unwrap();

        let (status, text) = sign(&service.url, "rsa", &format!("s3://{bucket}/{key}"));
        assert_eq!(
            (status, text.as_str()),
            (200, "Signing successful"),
            "{name}"
        );

        let got = rt
            .block_on(async {
                let object = s3.get_object().bucket(bucket).key(&key).send().await?;
                Ok::<_, Box<dyn std::error::Error>>(object.body.collect().await?.to_vec())
            })
            .unwrap();
        let signed = work.path().join(format!("{name}-signed.mender"));
        std::fs::write(&signed, got).unwrap();
        let (ok, text) = validate(&signed, &keys.public("rsa"));
        assert!(ok, "{name}: mender-artifact validate: {text}");
    }
    let uploads = rt
        .block_on(s3.list_multipart_uploads().bucket(bucket).send())
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "no multipart upload is left open"
    );
}

#[test]
fn refuses_uris_outside_the_allowed_locations_and_names_the_rule() {
    let keys = Keys::new();
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("deploy");
    let outside = root.path().join("private");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret.mender");
    make_artifact(&secret, 1000);
    let before = std::fs::read(&secret).unwrap();
    std::os::unix::fs::symlink(&secret, allowed.join("link.mender")).unwrap();
    std::os::unix::fs::symlink(&outside, allowed.join("dirlink")).unwrap();
    let service = server(
        &keys,
        config(&format!(
            "file://{},s3://only-this-bucket/tmp",
            allowed.display()
        )),
    );
    let a = allowed.display();
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("file://{a}/../private/secret.mender"), 400, "'..'"),
        (
            format!("file://{}", secret.display()),
            403,
            "DIGSIGSERVER_MENDER_ALLOWED_URIS",
        ),
        (
            format!("file://{a}/link.mender"),
            403,
            "DIGSIGSERVER_MENDER_ALLOWED_URIS",
        ),
        (
            format!("file://{a}/dirlink/secret.mender"),
            403,
            "outside the locations",
        ),
        (
            "file:///etc/passwd".to_string(),
            403,
            "outside the locations",
        ),
        (
            "http://example.com/x.mender".to_string(),
            400,
            "file:// or s3://",
        ),
        (
            "ftp://example.com/x.mender".to_string(),
            400,
            "file:// or s3://",
        ),
        (
            "s3://another-bucket/tmp/x".to_string(),
            403,
            "outside the locations",
        ),
        (
            "s3://only-this-bucket/elsewhere/x".to_string(),
            403,
            "outside the locations",
        ),
        (format!("file://{a}/missing.mender"), 404, "does not exist"),
        (format!("file://{a}"), 403, "outside the locations"),
    ];
    for (uri, status, says) in cases {
        let (got, body) = sign(&service.url, "rsa", &uri);
        assert_eq!(got, status, "{uri}: {body}");
        assert!(body.contains(says), "{uri}: {body:?} should say {says:?}");
    }
    assert_eq!(
        std::fs::read(&secret).unwrap(),
        before,
        "the target outside is untouched"
    );

    // With no allowed locations configured, Mender signing is off.
    let off = server(&keys, config(""));
    let artifact = allowed.join("image.mender");
    make_artifact(&artifact, 1000);
    let (got, body) = sign(&off.url, "rsa", &format!("file://{}", artifact.display()));
    assert_eq!(got, 403, "{body}");
    assert!(
        body.contains("disabled") && body.contains("DIGSIGSERVER_MENDER_ALLOWED_URIS"),
        "{body}"
    );
}

#[test]
fn bad_requests_get_clear_4xx_and_leave_the_original_untouched() {
    let keys = Keys::new();
    let deploy = tempfile::tempdir().unwrap();
    let service = server(&keys, config(&allow_dir(deploy.path())));
    let uri = |p: &Path| format!("file://{}", p.display());

    // Not an artifact: mender-artifact's own message, the file as it was.
    let junk = deploy.path().join("junk.mender");
    std::fs::write(&junk, b"this is not a tar archive").unwrap();
    let (status, body) = sign(&service.url, "rsa", &uri(&junk));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("mender-artifact could not sign"), "{body}");
    assert!(
        !body.contains("digsig-req-") && !body.contains(".key-"),
        "no server paths: {body}"
    );
    assert_eq!(std::fs::read(&junk).unwrap(), b"this is not a tar archive");

    // Cut short (a copy still arriving): the tool reads it all and refuses.
    let cut = deploy.path().join("cut.mender");
    make_artifact(&cut, 100_000);
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() - 5000]).unwrap();
    let (status, body) = sign(&service.url, "rsa", &uri(&cut));
    assert_eq!(status, 422, "{body}");
    assert_eq!(std::fs::read(&cut).unwrap(), &whole[..whole.len() - 5000]);

    // Already signed: refused, the signed file as it was.
    let artifact = deploy.path().join("image.mender");
    make_artifact(&artifact, 10_000);
    assert_eq!(sign(&service.url, "rsa", &uri(&artifact)).0, 200);
    let signed = std::fs::read(&artifact).unwrap();
    let (status, body) = sign(&service.url, "ec", &uri(&artifact));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("already signed"), "{body}");
    assert_eq!(std::fs::read(&artifact).unwrap(), signed);

    // Unknown distro, missing fields, bad distro name.
    let fresh = deploy.path().join("fresh.mender");
    make_artifact(&fresh, 1000);
    let (status, body) = sign(&service.url, "nosuchdistro", &uri(&fresh));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("nosuchdistro"), "{body}");
    let (status, body) = post(&service.url, &[format!("artifact-uri={}", uri(&fresh))]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("distro"), "{body}");
    let (status, body) = post(&service.url, &["distro=rsa".to_string()]);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("artifact-uri"), "{body}");
    let (status, _) = sign(&service.url, "../rsa", &uri(&fresh));
    assert_eq!(status, 400);

    // A key mender-artifact cannot use is the operator's problem: 500, with
    // no key material in the reply.
    let before = std::fs::read(&fresh).unwrap();
    let (status, body) = sign(&service.url, "ed", &uri(&fresh));
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("server misconfiguration") && body.contains("Ed25519"),
        "{body}"
    );
    let pem = keys.private_pem("ed");
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!body.contains(secret_line));
    assert_eq!(std::fs::read(&fresh).unwrap(), before);
    // Mender's ECDSA is P-256 only.
    keys.add(
        "ec384",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let (status, body) = sign(&service.url, "ec384", &uri(&fresh));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("P-256"), "{body}");
    assert_eq!(std::fs::read(&fresh).unwrap(), before);

    // A missing S3 object is a 404 naming it.
    let s3 = moto().client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(s3.create_bucket().bucket("digsig-mender-empty").send())
        .unwrap();
    let s3_service = server(&keys, config("s3://digsig-mender-empty"));
    let (status, body) = sign(&s3_service.url, "rsa", "s3://digsig-mender-empty/none");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("s3://digsig-mender-empty/none"), "{body}");

    let left: Vec<String> = listing(deploy.path())
        .into_iter()
        .filter(|n| n.starts_with('.') || n.starts_with("mender-artifact"))
        .collect();
    assert!(left.is_empty(), "left beside the artifacts: {left:?}");
}

/// Signs `artifact` in place with `distro`'s key through `signer`, given
/// `limit` before the signing is dropped (as the gateway's domain timeout
/// drops it): `Err` if it was cut short.
fn sign_within(
    signer: &svc_update::mender::MenderSigner,
    keys: &Keys,
    distro: &str,
    artifact: &Path,
    limit: std::time::Duration,
) -> Result<Result<u64, servicekit::ServiceError>, tokio::time::error::Elapsed> {
    let key = keystore::KeyMaterial::new(
        "private.key",
        std::fs::read(keys.root.path().join(distro).join("mender/private.key")).unwrap(),
    );
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let target = signer
            .authorize(&format!("file://{}", artifact.display()))
            .await
            .unwrap();
        tokio::time::timeout(limit, signer.sign(&target, &key)).await
    })
}

#[test]
fn a_native_signing_cut_short_leaves_the_artifact_as_it_was_and_nothing_beside_it() {
    // Dropped a few milliseconds in, during the kernel's copy of 32 MB (the
    // gateway's domain timeout does this): the copy stops, its directory
    // goes, the original is untouched.
    let keys = Keys::new();
    let deploy = tempfile::tempdir().unwrap();
    let signer = svc_update::mender::MenderSigner::new(config(&allow_dir(deploy.path())));
    let artifact = deploy.path().join("image.mender");
    make_artifact(&artifact, 32_000_000);
    let before = std::fs::read(&artifact).unwrap();
    let outcome = sign_within(
        &signer,
        &keys,
        "rsa",
        &artifact,
        std::time::Duration::from_millis(3),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while listing(deploy.path()).len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        listing(deploy.path()),
        vec!["image.mender"],
        "nothing beside it"
    );
    if outcome.is_err() {
        assert!(
            std::fs::read(&artifact).unwrap() == before,
            "the original is untouched"
        );
    } else {
        // Finished within 3 ms after all: then it must be signed.
        assert!(validate(&artifact, &keys.public("rsa")).0);
    }
}

/// Whether `pid` is gone or a zombie (killed, not yet reaped).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z'),
    }
}

#[test]
fn a_signing_cut_short_kills_the_tool_and_leaves_nothing_beside_the_artifact() {
    // When a request is dropped (the gateway's domain timeout, shutdown), the
    // tool must die and its leftovers go. A stand-in for mender-artifact does
    // what the real one does first (a temporary file next to its -o output)
    // and then takes its time.
    let keys = Keys::new();
    let deploy = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let pid_file = tools.path().join("pid");
    let tool = tools.path().join("slow-mender-artifact");
    std::fs::write(
        &tool,
        format!(
            "#!/bin/sh\necho $$ > {}\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=$2; shift; done\n\
             echo partial > \"$(dirname \"$out\")/mender-artifact4242\"\nexec sleep 30\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = config(&allow_dir(deploy.path()));
    config.tool = svc_update::mender_tool::MenderTool::locate(
        Some(tool),
        servicekit::config::DEFAULT_DOMAIN_TIMEOUT,
    );
    let signer = svc_update::mender::MenderSigner::new(config);
    let artifact = deploy.path().join("image.mender");
    make_tool_only_artifact(&artifact, 1000);
    let before = std::fs::read(&artifact).unwrap();
    let outcome = sign_within(
        &signer,
        &keys,
        "rsa",
        &artifact,
        std::time::Duration::from_secs(2),
    );
    assert!(
        outcome.is_err(),
        "the stand-in tool sleeps; the signing is cut short"
    );
    assert!(
        listing(deploy.path()).len() == 1,
        "nothing left beside the artifact: {:?}",
        listing(deploy.path())
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !is_dead(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(is_dead(pid), "the tool is killed with the request");
    assert_eq!(
        std::fs::read(&artifact).unwrap(),
        before,
        "the original is untouched"
    );
}
