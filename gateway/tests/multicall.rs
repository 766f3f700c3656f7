//! The one release binary: `digsigserver` named `svc-<domain>` is that
//! domain's service (the container images carry it so).

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use harness::*;

#[test]
fn digsigserver_named_after_a_service_is_that_service() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, path, other) in [
        ("svc-kmod", "/sign/modules", "/sign/optee"),
        ("svc-update", "/sign/swupdate", "/sign/modules"),
    ] {
        let link = tmp.path().join(name);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_digsigserver"), &link).unwrap();
        let port = free_port();
        let mut child = std::process::Command::new(&link)
            .args(["--demo", "--address", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .env_remove("DIGSIGSERVER_KEYFILE_URI")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(&mut child, port);
        let (status, _, body) = curl(&format!("http://127.0.0.1:{port}/openapi.json"), &[]);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(status, 200);
        let spec: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(spec["info"]["title"], format!("digsig {name}"), "{name}");
        let paths = spec["paths"].as_object().unwrap();
        assert!(paths.contains_key(path), "{name}: {:?}", paths.keys());
        assert!(!paths.contains_key(other), "{name} serves {other}");
    }
    // A service name this build lacks fails rather than starting a gateway.
    let link = tmp.path().join("svc-nothing");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_digsigserver"), &link).unwrap();
    let out = std::process::Command::new(&link)
        .arg("--version")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no such service") && err.contains("svc-kmod"),
        "{err}"
    );
}
