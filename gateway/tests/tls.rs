//! TLS on the gateway's own port (DIGSIGSERVER_TLS_CERT/KEY): the real
//! binary, a certificate from openssl, curl checking it.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::path::Path;
use std::process::Command;

use harness::*;
use kmod_common::*;

/// A self-signed certificate for 127.0.0.1 and its key in `dir`.
fn certificate(dir: &Path, name: &str) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=digsig test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert.display().to_string(), key.display().to_string())
}

#[test]
fn the_gateway_serves_https_with_its_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(tmp.path(), "server");
    let client = client_tree(tmp.path());
    let port = free_port();
    let mut child = demo_server(port)
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .env("DIGSIGSERVER_TLS_CERT", &cert)
        .env("DIGSIGSERVER_TLS_KEY", &key)
        .stdout(std::fs::File::create(tmp.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    wait_listening(&mut child, port);
    let url = format!("https://127.0.0.1:{port}");
    let (status, _, _) = curl(&format!("{url}/health"), &["--cacert", &cert]);
    assert_eq!(status, 200);
    let artifact = format!("artifact=@{}", client.join("modules-in.tar.gz").display());
    let out = tmp.path().join("out.tar.gz").display().to_string();
    let (status, _, _) = curl(
        &format!("{url}/sign/modules"),
        &[
            "--cacert",
            &cert,
            "-X",
            "POST",
            "-F",
            "machine=demo",
            "-F",
            &artifact,
            "-o",
            &out,
        ],
    );
    assert_eq!(status, 200);
    let listed = run(Command::new("tar").arg("-tzf").arg(&out));
    assert!(String::from_utf8_lossy(&listed).contains("gwnet.ko"));
    // Plain HTTP gets no answer from a TLS port.
    let plain = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(format!("http://127.0.0.1:{port}/health"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    // And a client that does not trust the certificate refuses it.
    let untrusted = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
        .arg(format!("{url}/health"))
        .status()
        .unwrap();
    assert!(!untrusted.success());
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(tmp.path().join("stdout")).unwrap();
    assert!(log.contains("https"), "{log}");
}

#[test]
fn a_key_that_does_not_match_stops_the_start_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, _) = certificate(tmp.path(), "one");
    let (_, other_key) = certificate(tmp.path(), "two");
    let out = demo_server(free_port())
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .env("DIGSIGSERVER_TLS_CERT", &cert)
        .env("DIGSIGSERVER_TLS_KEY", &other_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DIGSIGSERVER_TLS_KEY") && stderr.contains("does not match"),
        "{stderr}"
    );
    let out = demo_server(free_port())
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .env("DIGSIGSERVER_TLS_CERT", &cert)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs its key"));
}
