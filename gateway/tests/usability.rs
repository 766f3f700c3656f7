//! What a new user of the gateway runs into, over real HTTP: messages that
//! say what to fix and nothing of the server's layout, the HTTP details
//! (405 with Allow, `/` to the docs, `--version`), and routing to services
//! over https with the operator's own CA.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::path::Path;
use std::process::Command;

use gateway::Domain;
use harness::*;
use kmod_common::*;

fn keystore(tmp: &Path, machine: &str) -> (String, KeyPair) {
    let root = tmp.join("keys");
    let keys = kmod_keystore(&root, machine, KeyKind::Rsa(2048), "usability");
    (format!("file://{}", root.display()), keys)
}

/// An embedded gateway with keys for machine `m`, and the bbclass's module
/// tarball as a curl `-F` argument.
fn gateway_and_artifact(tmp: &Path) -> (TestGateway, String) {
    let (uri, _) = keystore(tmp, "m");
    let gw = TestGateway::embedded(&uri);
    client_tree(tmp);
    let artifact = format!(
        "artifact=@{}",
        tmp.join("client/modules-in.tar.gz").display()
    );
    (gw, artifact)
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[test]
fn a_machine_without_keys_is_named_but_the_key_store_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw, artifact) = gateway_and_artifact(tmp.path());
    let (status, _, body) = curl(
        &format!("{}/sign/modules", gw.url),
        &["-F", "machine=raspberrypi4", "-F", &artifact],
    );
    let message = text(&body);
    assert_eq!(status, 404, "{message}");
    assert!(
        message.contains("'raspberrypi4'") && message.contains("kmodsign"),
        "{message}"
    );
    let store = tmp.path().join("keys");
    assert!(
        !message.contains(&*store.to_string_lossy()) && !message.contains("file://"),
        "the reply names where the keys are: {message}"
    );
    // Readiness answers anyone who can reach the port: no location there either.
    let (status, _, body) = curl(&format!("{}/ready", gw.url), &[]);
    assert_eq!(status, 200, "{}", text(&body));
    assert!(
        !text(&body).contains(&*store.to_string_lossy()),
        "{}",
        text(&body)
    );
}

#[test]
fn field_mistakes_say_what_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw, artifact) = gateway_and_artifact(tmp.path());
    let empty = tmp.path().join("empty.tar.gz");
    std::fs::write(&empty, b"").unwrap();
    let long_name = tmp.path().join("long-name");
    std::fs::write(&long_name, "A".repeat(100_000)).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["machine=m".into(), "hashalg=md5".into(), artifact.clone()],
            "field `hashalg` must be one of: sha256, sha384, sha512",
        ),
        (
            vec!["machine=m".into(), format!("artifact=@{}", empty.display())],
            "the artifact is empty (0 bytes)",
        ),
        (
            vec![
                format!("machine=<{}", long_name.display()),
                artifact.clone(),
            ],
            "field `machine`: it is longer than 4096 bytes",
        ),
        (
            vec!["machine=..".into(), artifact.clone()],
            "field `machine`: invalid machine/distro name '..'",
        ),
    ];
    for (fields, want) in cases {
        let mut args = Vec::new();
        for f in &fields {
            args.push("-F");
            args.push(f.as_str());
        }
        let (status, _, body) = curl(&format!("{}/sign/modules", gw.url), &args);
        assert_eq!(status, 400, "{}", text(&body));
        assert!(
            text(&body).contains(want),
            "want {want:?} in {}",
            text(&body)
        );
        assert!(
            !text(&body).contains("failed to parse \""),
            "{}",
            text(&body)
        );
    }
    // An enum in another domain lists its own values.
    let (status, _, body) = curl(
        &format!("{}/sign/swupdate", gw.url),
        &["-F", "distro=m", "-F", "method=GPG", "-F", &artifact],
    );
    assert_eq!(status, 400);
    assert!(
        text(&body).contains("field `method` must be one of: RSA, CMS"),
        "{}",
        text(&body)
    );
}

#[test]
fn http_details_a_user_meets() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, _) = keystore(tmp.path(), "m");
    let gw = TestGateway::embedded(&uri);
    // A browser pointed at the server lands on the docs.
    let (status, headers, _) = curl(&format!("{}/", gw.url), &[]);
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/docs"));
    // The wrong method says which one is right.
    let (status, headers, body) = curl(&format!("{}/sign/modules", gw.url), &[]);
    assert_eq!(status, 405, "{}", text(&body));
    assert_eq!(header(&headers, "allow"), Some("POST"));
    assert!(text(&body).contains("use POST"), "{}", text(&body));
    // Not multipart at all.
    let (status, _, _) = curl(
        &format!("{}/sign/modules", gw.url),
        &["-H", "Content-Type: application/json", "--data", "{}"],
    );
    assert_eq!(status, 415);
    let out = Command::new(env!("CARGO_BIN_EXE_digsigserver"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("digsigserver {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A CA, and a certificate it signed for 127.0.0.1 (PEM files in `dir`).
fn test_ca(dir: &Path) {
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").current_dir(dir).args(args));
    };
    openssl(&[
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-days",
        "2",
        "-subj",
        "/CN=digsig test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "rsa:2048",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "svc.key",
        "-out",
        "svc.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "svc.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "svc.pem",
    ]);
}

#[test]
fn a_domain_routes_over_https_trusting_the_operators_ca() {
    use poem::listener::{AcceptorExt, OpensslTlsConfig, TcpAcceptor};

    let tmp = tempfile::tempdir().unwrap();
    let (uri, keys) = keystore(tmp.path(), "m");
    let tls = tmp.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    test_ca(&tls);
    // svc-kmod behind TLS, as a service would sit behind a TLS sidecar.
    let config = OpensslTlsConfig::new()
        .cert_from_data(std::fs::read(tls.join("svc.pem")).unwrap())
        .key_from_data(std::fs::read(tls.join("svc.key")).unwrap());
    let service_uri = uri.clone();
    let service = servicekit::testing::TestServer::start(move |listener, shutdown| async move {
        let keystore = keystore::KeyStore::open(&service_uri).await.unwrap();
        let service_config = servicekit::ServiceConfig::from_lookup(|_| None).unwrap();
        let app = servicekit::domain::app::<svc_kmod::Kmod>(keystore, &service_config).unwrap();
        let acceptor =
            TcpAcceptor::from_tokio(listener)?.openssl_tls(futures_util::stream::iter([config]));
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(app, shutdown, None)
            .await
    });
    let https = reqwest::Url::parse(&service.url.replace("http://", "https://")).unwrap();

    // Without the CA the gateway cannot trust the service: 503, not a hang.
    let untrusted_url = https.clone();
    let untrusted = TestGateway::start(None, move |c| c.route(Domain::Kmod, untrusted_url));
    client_tree(tmp.path());
    let artifact = format!(
        "artifact=@{}",
        tmp.path().join("client/modules-in.tar.gz").display()
    );
    let (status, _, body) = curl(
        &format!("{}/sign/modules", untrusted.url),
        &["-F", "machine=m", "-F", &artifact],
    );
    assert_eq!(status, 503, "{}", text(&body));

    let ca = tls.join("ca.pem");
    let trusted = TestGateway::start(None, move |c| {
        c.tls.ca_file = Some(ca);
        c.route(Domain::Kmod, https);
    });
    sign_like_the_bbclass(&trusted.url, tmp.path(), "m", &keys, "usability");
}

#[test]
fn a_ca_file_that_is_not_one_stops_the_start_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_digsigserver"))
        .args(["--demo", "--address", "127.0.0.1", "--port", "0"])
        .env("DIGSIGSERVER_SERVICE_CA_FILE", &bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DIGSIGSERVER_SERVICE_CA_FILE"), "{stderr}");
}

#[test]
fn a_newline_in_a_field_cannot_forge_a_log_line() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("deploy");
    std::fs::create_dir_all(&allowed).unwrap();
    let port = free_port();
    let log = tmp.path().join("log");
    let mut child = demo_server(port)
        .env(
            "DIGSIGSERVER_MENDER_ALLOWED_URIS",
            format!("file://{}", allowed.display()),
        )
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_listening(&mut child, port);
    // The uri names a missing artifact, so the server echoes it in a 404.
    let forged = "2026-01-01T00:00:00Z  INFO signed Mender artifact in place artifact=evil";
    let uri = format!("file://{}/missing.mender\n{forged}", allowed.display());
    let (status, _, body) = curl(
        &format!("{url}/sign/mender"),
        &["-F", "distro=demo", "-F", &format!("artifact-uri={uri}")],
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(status == 404 || status == 400, "{status}: {}", text(&body));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("missing.mender"),
        "the refusal was not logged at all: {logged}"
    );
    assert!(
        !logged.lines().any(|line| line.starts_with("2026-01-01")),
        "a client forged a log line:\n{logged}"
    );
}
