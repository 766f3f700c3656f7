//! The audit log: one JSON line per signing request, fsynced before the
//! reply; checked against sha256sum and openssl's own fingerprints. A log
//! that cannot be written withholds the signed result (503).

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::path::Path;
use std::process::Command;

use harness::*;
use kmod_common::*;

const TOKEN: &str = "farm-a-token-0123456789";

/// `openssl ... -outform DER` of `args` on `input`, hashed.
fn der_fingerprint(args: &[&str], input: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(args)
        .arg("-in")
        .arg(input)
        .args(["-outform", "DER"]));
    sha256_hex(&out)
}

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn every_signing_request_is_recorded_with_hashes_and_key_fingerprints() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let keys = kmod_keystore(&root, "jetson-nano", KeyKind::Rsa(2048), "audit");
    kmod_keystore(&root, "other", KeyKind::Rsa(2048), "audit");
    let client = client_tree(tmp.path());
    std::fs::write(
        tmp.path().join("access.toml"),
        format!(
            "[[client]]\nname = \"farm-a\"\ntoken_sha256 = \"{}\"\nallow = [\"modules:jetson-*\"]\n",
            sha256_hex(TOKEN.as_bytes())
        ),
    )
    .unwrap();
    let log = tmp.path().join("audit.jsonl");
    let (access, audit) = (
        tmp.path().join("access.toml").display().to_string(),
        log.display().to_string(),
    );
    let gw = TestGateway::start(Some(&format!("file://{}", root.display())), move |c| {
        c.service.settings.set("DIGSIGSERVER_ACCESS_FILE", access);
        c.service.settings.set("DIGSIGSERVER_AUDIT_LOG", audit);
    });

    let with_token = gw
        .url
        .replace("http://", &format!("http://farm-a:{TOKEN}@"));
    sign_like_the_bbclass(&with_token, tmp.path(), "jetson-nano", &keys, "audit");
    let artifact = format!("artifact=@{}", client.join("modules-in.tar.gz").display());
    let (status, _, _) = curl(
        &format!("{}/sign/modules", with_token),
        &["-X", "POST", "-F", "machine=other", "-F", &artifact],
    );
    assert_eq!(status, 403);
    let (status, _, _) = curl(
        &format!("{}/sign/modules", gw.url),
        &["-X", "POST", "-F", "machine=jetson-nano", "-F", &artifact],
    );
    assert_eq!(status, 401);
    // Probes are not signing requests.
    assert_eq!(curl(&format!("{}/health", gw.url), &[]).0, 200);

    let lines = records(&log);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let signed = &lines[0];
    assert_eq!(signed["client"], "farm-a");
    assert_eq!(signed["endpoint"], "/sign/modules");
    assert_eq!(signed["machine_or_distro"], "jetson-nano");
    assert_eq!(signed["status"], 200);
    assert_eq!(signed["source"], "127.0.0.1");
    assert!(signed["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert!(signed["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let upload = std::fs::read(client.join("modules-in.tar.gz")).unwrap();
    assert_eq!(
        signed["artifacts"],
        serde_json::json!([{"field": "artifact", "sha256": sha256_hex(&upload)}])
    );
    let key_uses = signed["keys"].as_array().unwrap();
    let fingerprint = |file: &str| {
        key_uses
            .iter()
            .find(|k| k["file"] == file)
            .unwrap_or_else(|| panic!("{file} not in {key_uses:?}"))["fingerprint_sha256"]
            .clone()
    };
    assert_eq!(
        fingerprint("kernel-signkey.x509"),
        der_fingerprint(&["x509"], &keys.cert_pem)
    );
    assert_eq!(
        fingerprint("kernel-signkey.priv"),
        der_fingerprint(&["pkey", "-pubout"], &keys.key_pem)
    );
    assert!(key_uses
        .iter()
        .all(|k| k["signtype"] == "kmodsign" && k["machine_or_distro"] == "jetson-nano"));

    // The rule miss: recorded, no key read.
    assert_eq!(lines[1]["status"], 403);
    assert_eq!(lines[1]["client"], "farm-a");
    assert_eq!(lines[1]["keys"], serde_json::json!([]));
    // No credentials: recorded without a client.
    assert_eq!(lines[2]["status"], 401);
    assert!(lines[2]["client"].is_null());

    // No key material and no token in the log.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(TOKEN));
    let key_pem = std::fs::read_to_string(&keys.key_pem).unwrap();
    let body_line = key_pem.lines().nth(1).unwrap();
    assert!(!text.contains(body_line));
}

#[test]
fn a_record_that_cannot_be_written_withholds_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    kmod_keystore(&root, "m", KeyKind::Rsa(2048), "audit");
    let client = client_tree(tmp.path());
    // Every write to /dev/full fails with ENOSPC.
    let gw = TestGateway::start(Some(&format!("file://{}", root.display())), |c| {
        c.service
            .settings
            .set("DIGSIGSERVER_AUDIT_LOG", "/dev/full")
    });
    let artifact = format!("artifact=@{}", client.join("modules-in.tar.gz").display());
    let (status, _, body) = curl(
        &format!("{}/sign/modules", gw.url),
        &["-X", "POST", "-F", "machine=m", "-F", &artifact],
    );
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("audit record"));
    let (_, _, metrics) = curl(&format!("{}/metrics", gw.url), &[]);
    assert!(String::from_utf8_lossy(&metrics).contains("digsig_audit_write_failures_total 1"));
    assert!(gw.leftovers().is_empty(), "{:?}", gw.leftovers());
}

#[test]
fn other_domains_report_their_uploads_and_keys_at_the_same_point() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let dir = root.join("poky/swupdate");
    std::fs::create_dir_all(&dir).unwrap();
    new_rsa_key(&dir.join("rsa-private.key"));
    let sw = tmp.path().join("sw-description");
    std::fs::write(&sw, "software = { version = \"1.0\"; };\n").unwrap();
    let log = tmp.path().join("audit.jsonl");
    let audit = log.display().to_string();
    let gw = TestGateway::start(Some(&format!("file://{}", root.display())), move |c| {
        c.service.settings.set("DIGSIGSERVER_AUDIT_LOG", audit)
    });
    let (status, _, _) = curl(
        &format!("{}/sign/swupdate", gw.url),
        &[
            "-X",
            "POST",
            "-F",
            "distro=poky",
            "-F",
            "method=RSA",
            "-F",
            &format!("sw-description=@{}", sw.display()),
        ],
    );
    assert_eq!(status, 200);
    let lines = records(&log);
    assert_eq!(lines.len(), 1);
    let r = &lines[0];
    assert_eq!(r["endpoint"], "/sign/swupdate");
    assert_eq!(r["machine_or_distro"], "poky");
    assert!(r["client"].is_null(), "no access control: no client");
    assert_eq!(
        r["artifacts"],
        serde_json::json!([{"field": "sw-description", "sha256": sha256_hex(&std::fs::read(&sw).unwrap())}])
    );
    assert_eq!(
        r["keys"][0]["fingerprint_sha256"],
        der_fingerprint(&["pkey", "-pubout"], &dir.join("rsa-private.key"))
    );
    assert_eq!(r["keys"][0]["signtype"], "swupdate");
}
