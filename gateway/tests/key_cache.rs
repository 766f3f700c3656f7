//! The opt-in parsed-key cache (`DIGSIGSERVER_KEY_CACHE_SECONDS`): off, a
//! rotated key is used by the very next request; on, the parsed key is
//! reused until the time is up and then fetched again, while access control
//! and the audit record work on every request as without it. Signatures are
//! checked against `openssl dgst -sha256 -sign` with each key.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::*;
use servicekit::testing::run;

const TOKEN: &str = "farm-b-token-9876543210";

/// A fresh RSA key at `path` (replacing any key there, as an operator's
/// rotation does); returns its PEM.
fn new_key(path: &Path) -> Vec<u8> {
    new_rsa_key(path);
    std::fs::read(path).unwrap()
}

/// `openssl dgst -sha256 -sign` with the key in `pem` over `data`.
fn reference(dir: &Path, pem: &[u8], data: &Path) -> Vec<u8> {
    let key = dir.join("reference.key");
    std::fs::write(&key, pem).unwrap();
    run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(&key)
        .arg(data))
}

/// The swupdate class's call for `distro`; (status, body).
fn sign(url: &str, distro: &str, sw_description: &Path) -> (u16, Vec<u8>) {
    let (status, _, body) = curl(
        &format!("{url}/sign/swupdate"),
        &[
            "-X",
            "POST",
            "-F",
            &format!("distro={distro}"),
            "-F",
            "method=RSA",
            "-F",
            &format!("sw-description=@{}", sw_description.display()),
        ],
    );
    (status, body)
}

struct Setup {
    tmp: tempfile::TempDir,
    key_path: std::path::PathBuf,
    sw_description: std::path::PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    for distro in ["product-a", "product-b"] {
        let dir = tmp.path().join("keys").join(distro).join("swupdate");
        std::fs::create_dir_all(&dir).unwrap();
        new_key(&dir.join("rsa-private.key"));
    }
    let sw_description = tmp.path().join("sw-description");
    std::fs::write(&sw_description, "software = { version = \"1.0\"; };\n").unwrap();
    Setup {
        key_path: tmp.path().join("keys/product-a/swupdate/rsa-private.key"),
        tmp,
        sw_description,
    }
}

#[test]
fn without_the_cache_a_rotated_key_is_used_at_once() {
    let s = setup();
    let gw = TestGateway::embedded(&format!("file://{}", s.tmp.path().join("keys").display()));
    let first = std::fs::read(&s.key_path).unwrap();
    let (status, sig) = sign(&gw.url, "product-a", &s.sw_description);
    assert_eq!(status, 200);
    assert_eq!(sig, reference(s.tmp.path(), &first, &s.sw_description));
    let rotated = new_key(&s.key_path);
    let (status, sig) = sign(&gw.url, "product-a", &s.sw_description);
    assert_eq!(status, 200);
    assert_eq!(sig, reference(s.tmp.path(), &rotated, &s.sw_description));
}

#[test]
fn with_the_cache_a_key_is_reused_until_its_time_is_up_and_access_and_audit_still_apply() {
    let s = setup();
    let access = s.tmp.path().join("access.toml");
    std::fs::write(
        &access,
        format!(
            "[[client]]\nname = \"farm-b\"\ntoken_sha256 = \"{}\"\nallow = [\"swupdate:product-a\"]\n",
            sha256_hex(TOKEN.as_bytes())
        ),
    )
    .unwrap();
    let log = s.tmp.path().join("audit.jsonl");
    let (access_setting, log_setting) = (access.display().to_string(), log.display().to_string());
    let ttl = Duration::from_secs(3);
    let gw = TestGateway::start(
        Some(&format!("file://{}", s.tmp.path().join("keys").display())),
        move |c| {
            c.service.key_cache_ttl = ttl;
            c.service
                .settings
                .set("DIGSIGSERVER_ACCESS_FILE", access_setting);
            c.service
                .settings
                .set("DIGSIGSERVER_AUDIT_LOG", log_setting);
        },
    );
    let with_token = gw
        .url
        .replace("http://", &format!("http://farm-b:{TOKEN}@"));
    let first = std::fs::read(&s.key_path).unwrap();
    let first_sig = reference(s.tmp.path(), &first, &s.sw_description);

    let started = std::time::Instant::now();
    let (status, sig) = sign(&with_token, "product-a", &s.sw_description);
    assert_eq!(status, 200);
    assert_eq!(sig, first_sig);
    // Rotated on disk: the cached key still signs, within the time.
    let rotated = new_key(&s.key_path);
    let (status, sig) = sign(&with_token, "product-a", &s.sw_description);
    assert!(
        started.elapsed() < ttl,
        "the machine is too slow for this test's timing"
    );
    assert_eq!(status, 200);
    assert_eq!(sig, first_sig, "a cached key was not reused");
    // Access is checked on a hit as on a miss: no token, or another
    // distro's keys, are refused.
    assert_eq!(sign(&gw.url, "product-a", &s.sw_description).0, 401);
    assert_eq!(sign(&with_token, "product-b", &s.sw_description).0, 403);

    // Once the time is up, the rotated key is fetched and used.
    std::thread::sleep(ttl + Duration::from_millis(500));
    let (status, sig) = sign(&with_token, "product-a", &s.sw_description);
    assert_eq!(status, 200);
    assert_eq!(sig, reference(s.tmp.path(), &rotated, &s.sw_description));

    // The audit record of each signing names the key it used, hit or not.
    let fingerprint = |pem: &[u8]| {
        let key = s.tmp.path().join("fp.key");
        std::fs::write(&key, pem).unwrap();
        sha256_hex(&run(Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key)))
    };
    let used: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["status"] == 200)
        .map(|r| {
            let keys = r["keys"]
                .as_array()
                .unwrap_or_else(|| panic!("no keys in {r}"));
            assert_eq!(keys.len(), 1, "{r}");
            keys[0]["fingerprint_sha256"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        used,
        [
            fingerprint(&first),
            fingerprint(&first),
            fingerprint(&rotated)
        ]
    );
}
