//! Access control over real HTTP: tokens (Bearer, and Basic as curl sends it
//! for `http://name:token@host`), per-client rules checked where keys are
//! fetched, the gateway's word to routed services and nobody else's,
//! source addresses, and the access file re-read when it changes.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::path::Path;
use std::process::Command;

use gateway::Domain;
use harness::*;
use kmod_common::*;

const TOKEN: &str = "farm-a-token-0123456789";
const INTERNAL: &str = "internal-secret-0123456789abcdef";

/// An access file letting `farm-a` (token [`TOKEN`]) sign modules for
/// `jetson-*` and OP-TEE for nothing.
fn access_file(dir: &Path, token: &str) -> String {
    let path = dir.join("access.toml");
    let next = dir.join("access.toml.new");
    std::fs::write(
        &next,
        format!(
            "[[client]]\nname = \"farm-a\"\ntoken_sha256 = \"{}\"\nallow = [\"modules:jetson-*\", \"swupdate:product-b\"]\n",
            sha256_hex(token.as_bytes())
        ),
    )
    .unwrap();
    std::fs::rename(&next, &path).unwrap();
    path.display().to_string()
}

fn post_modules(
    url: &str,
    client: &Path,
    machine: &str,
    extra: &[&str],
) -> (u16, Vec<(String, String)>, String) {
    let artifact = format!("artifact=@{}", client.join("modules-in.tar.gz").display());
    let machine = format!("machine={machine}");
    let mut args: Vec<&str> = vec!["-X", "POST", "-F", &machine, "-F", &artifact];
    args.extend_from_slice(extra);
    let (status, headers, body) = curl(&format!("{url}/sign/modules"), &args);
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn tokens_and_rules_in_the_embedded_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let keys = kmod_keystore(&root, "jetson-nano", KeyKind::Rsa(2048), "access");
    kmod_keystore(&root, "other-board", KeyKind::Rsa(2048), "access");
    let client = client_tree(tmp.path());
    let file = access_file(tmp.path(), TOKEN);
    let gw = TestGateway::start(Some(&format!("file://{}", root.display())), move |c| {
        c.service.settings.set("DIGSIGSERVER_ACCESS_FILE", file)
    });

    // No credentials, and unknown ones: 401 with a challenge.
    let (status, headers, body) = post_modules(&gw.url, &client, "jetson-nano", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(
        header(&headers, "www-authenticate").is_some_and(|v| v.contains("Basic")),
        "{headers:?}"
    );
    assert!(body.contains("token"), "{body}");
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &["-H", "Authorization: Bearer wrong"],
    );
    assert_eq!(status, 401, "{body}");

    // Bearer, and the bbclass way: the token as the password in DIGSIG_SERVER.
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &["-H", &bearer, "-o", "/dev/null"],
    );
    assert_eq!(status, 200, "{body}");
    let with_password = gw
        .url
        .replace("http://", &format!("http://farm-a:{TOKEN}@"));
    sign_like_the_bbclass(&with_password, tmp.path(), "jetson-nano", &keys, "access");

    // A rule miss: 403 naming the client and what it lacks, never the token.
    let (status, _, body) = post_modules(&gw.url, &client, "other-board", &["-H", &bearer]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("farm-a") && body.contains("modules:other-board"),
        "{body}"
    );
    assert!(!body.contains(TOKEN));

    // Non-signing endpoints stay open (probes, the document).
    assert_eq!(curl(&format!("{}/health", gw.url), &[]).0, 200);
    assert_eq!(curl(&format!("{}/openapi.json", gw.url), &[]).0, 200);

    // The file is re-read when it changes: the old token stops working.
    access_file(tmp.path(), "rotated-token-0123456789");
    let (status, _, _) = post_modules(&gw.url, &client, "jetson-nano", &["-H", &bearer]);
    assert_eq!(status, 401);
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &[
            "-H",
            "Authorization: Bearer rotated-token-0123456789",
            "-o",
            "/dev/null",
        ],
    );
    assert_eq!(status, 200, "{body}");
    // A broken file keeps the rules in force.
    std::fs::write(tmp.path().join("access.toml"), "[[client]\n").unwrap();
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &[
            "-H",
            "Authorization: Bearer rotated-token-0123456789",
            "-o",
            "/dev/null",
        ],
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn routed_services_believe_only_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    kmod_keystore(&root, "jetson-nano", KeyKind::Rsa(2048), "access");
    let client = client_tree(tmp.path());
    let uri = format!("file://{}", root.display());
    let service = servicekit::testing::ServiceUnderTest::start(
        move |listener, mut config, shutdown| async move {
            config.settings.set("DIGSIGSERVER_INTERNAL_TOKEN", INTERNAL);
            let keystore = keystore::KeyStore::open(&uri).await.unwrap();
            svc_kmod::run(listener, keystore, config, shutdown).await
        },
    );

    // Straight to the service: refused, however the caller dresses up.
    let (status, _, body) = post_modules(&service.url, &client, "jetson-nano", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("gateway"), "{body}");
    let (status, _, body) = post_modules(
        &service.url,
        &client,
        "jetson-nano",
        &[
            "-H",
            "X-Digsig-Internal-Token: guessed-secret-0123456789",
            "-H",
            "X-Digsig-Client: farm-a",
            "-H",
            "X-Digsig-Allow: modules:*",
        ],
    );
    assert_eq!(status, 401, "{body}");

    // Through the gateway, with a token: signed.
    let file = access_file(tmp.path(), TOKEN);
    let url = reqwest::Url::parse(&service.url).unwrap();
    let gw = TestGateway::start(None, move |c| {
        c.route(Domain::Kmod, url);
        c.service.settings.set("DIGSIGSERVER_ACCESS_FILE", file);
        c.service
            .settings
            .set("DIGSIGSERVER_INTERNAL_TOKEN", INTERNAL);
    });
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &["-H", &bearer, "-o", "/dev/null"],
    );
    assert_eq!(status, 200, "{body}");
    // A client's own identity headers never reach the service.
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &[
            "-H",
            &format!("X-Digsig-Internal-Token: {INTERNAL}"),
            "-H",
            "X-Digsig-Client: farm-a",
            "-H",
            "X-Digsig-Allow: modules:*",
        ],
    );
    assert_eq!(status, 401, "{body}");
    assert!(service.leftovers().is_empty());
}

#[test]
fn an_access_file_with_routed_domains_needs_the_internal_token() {
    let tmp = tempfile::tempdir().unwrap();
    let file = access_file(tmp.path(), TOKEN);
    let mut config = gateway::GatewayConfig::from_lookup(|_| None).unwrap();
    config.route(
        Domain::Kmod,
        reqwest::Url::parse("http://127.0.0.1:9").unwrap(),
    );
    config
        .service
        .settings
        .set("DIGSIGSERVER_ACCESS_FILE", file);
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keystore = rt
        .block_on(keystore::KeyStore::open(&format!(
            "file://{}",
            keys.display()
        )))
        .unwrap();
    let err = gateway::app(&config, Some(keystore))
        .err()
        .expect("started");
    assert!(
        err.to_string().contains("DIGSIGSERVER_INTERNAL_TOKEN"),
        "{err}"
    );

    // A broken access file stops the start, saying what is wrong.
    std::fs::write(
        tmp.path().join("broken.toml"),
        "[[client]]\nname = \"a\"\ntoken = \"x\"\n",
    )
    .unwrap();
    let mut config = gateway::GatewayConfig::from_lookup(|_| None).unwrap();
    config.service.settings.set(
        "DIGSIGSERVER_ACCESS_FILE",
        tmp.path().join("broken.toml").display().to_string(),
    );
    let keystore = rt
        .block_on(keystore::KeyStore::open(&format!(
            "file://{}",
            keys.display()
        )))
        .unwrap();
    let err = gateway::app(&config, Some(keystore))
        .err()
        .expect("started");
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn source_addresses_are_checked_before_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    kmod_keystore(&root, "jetson-nano", KeyKind::Rsa(2048), "access");
    let client = client_tree(tmp.path());
    let gw = TestGateway::start(Some(&format!("file://{}", root.display())), |c| {
        c.service
            .settings
            .set("DIGSIGSERVER_ALLOWED_SOURCES", "10.0.0.0/8");
        c.service
            .settings
            .set("DIGSIGSERVER_TRUSTED_PROXIES", "127.0.0.1");
    });
    // Loopback is not in 10/8.
    let (status, _, body) = post_modules(&gw.url, &client, "jetson-nano", &[]);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("127.0.0.1") && body.contains("DIGSIGSERVER_ALLOWED_SOURCES"),
        "{body}"
    );
    // Through a trusted proxy (loopback here) for an allowed address.
    let (status, _, body) = post_modules(
        &gw.url,
        &client,
        "jetson-nano",
        &["-H", "X-Forwarded-For: 10.1.2.3", "-o", "/dev/null"],
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn json_logs_name_the_client_and_never_hold_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let client = client_tree(tmp.path());
    let file = access_file(tmp.path(), TOKEN);
    std::fs::write(
        tmp.path().join("access.toml"),
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("modules:jetson-*", "modules:demo"),
    )
    .unwrap();
    let port = free_port();
    let log = tmp.path().join("log.jsonl");
    let mut child = demo_server(port)
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .env_remove("RUST_LOG")
        .env("DIGSIGSERVER_LOG_FORMAT", "json")
        .env("DIGSIGSERVER_ACCESS_FILE", &file)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    wait_listening(&mut child, port);
    let url = format!("http://127.0.0.1:{port}");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let (status, _, body) =
        post_modules(&url, &client, "demo", &["-H", &bearer, "-o", "/dev/null"]);
    assert_eq!(status, 200, "{body}");
    let wrong = "Authorization: Bearer not-the-token-0123456789";
    assert_eq!(post_modules(&url, &client, "demo", &["-H", wrong]).0, 401);
    let basic = url.replace("http://", &format!("http://farm-a:{TOKEN}@"));
    assert_eq!(
        post_modules(&basic, &client, "demo", &["-o", "/dev/null"]).0,
        200
    );
    let _ = child.kill();
    let _ = child.wait();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.is_empty());
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    assert!(!text.contains('\u{1b}'), "ANSI colour in a log file");
    assert!(text.contains("\"client\":\"farm-a\""), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    for secret in [
        TOKEN,
        "not-the-token-0123456789",
        &openssl::base64::encode_block(format!("farm-a:{TOKEN}").as_bytes()),
    ] {
        assert!(!text.contains(secret), "a token is in the log");
    }
}

#[test]
fn sighup_rereads_the_access_file() {
    let tmp = tempfile::tempdir().unwrap();
    let client = client_tree(tmp.path());
    let path = tmp.path().join("access.toml");
    let write = |token: &str| {
        std::fs::write(
            &path,
            format!(
                "[[client]]\nname = \"farm-a\"\ntoken_sha256 = \"{}\"\nallow = [\"modules:demo\"]\n",
                sha256_hex(token.as_bytes())
            ),
        )
        .unwrap()
    };
    write(TOKEN);
    let port = free_port();
    let mut child = demo_server(port)
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .env("DIGSIGSERVER_ACCESS_FILE", &path)
        .stdout(std::fs::File::create(tmp.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    wait_listening(&mut child, port);
    let url = format!("http://127.0.0.1:{port}");
    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    assert_eq!(
        post_modules(
            &url,
            &client,
            "demo",
            &["-H", &bearer(TOKEN), "-o", "/dev/null"]
        )
        .0,
        200
    );

    // Rewrite the file in place with a token of the same length and put its
    // time back: nothing a change check would see. Only SIGHUP re-reads it.
    let rotated = "farm-a-token-9876543210";
    assert_eq!(rotated.len(), TOKEN.len());
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    write(rotated);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(modified))
        .unwrap();
    assert_eq!(
        post_modules(&url, &client, "demo", &["-H", &bearer(rotated)]).0,
        401
    );
    run(Command::new("kill").args(["-HUP", &child.id().to_string()]));
    let mut status = 0;
    for _ in 0..50 {
        status = post_modules(
            &url,
            &client,
            "demo",
            &["-H", &bearer(rotated), "-o", "/dev/null"],
        )
        .0;
        if status == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status, 200, "SIGHUP did not re-read the access file");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the server"
    );
    let _ = child.kill();
    let _ = child.wait();
}
