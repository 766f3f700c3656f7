//! `/sign/imx` through the gateway, in-process and routed to a real
//! svc-imx: the blob verifies with `csf_parser` and `openssl cms` either way.

mod harness;
#[path = "../../svc-imx/tests/common/mod.rs"]
mod imx_common;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use gateway::Domain;
use harness::*;
use imx_common::*;

fn client(dir: &std::path::Path) -> String {
    let root = dir.join("keys");
    install_pki(&root, "evk", &dir.join("pki"));
    std::fs::write(dir.join("imx-boot.bin"), filler(40 * 1024, 5)).unwrap();
    std::fs::write(
        dir.join("imx-boot.csf"),
        csf_text("imx-boot.bin", 40 * 1024),
    )
    .unwrap();
    format!("file://{}", root.display())
}

fn sign_and_verify(url: &str, dir: &std::path::Path, scratch: &str) {
    let reply = curl_post(
        &format!("{url}/sign/imx"),
        &[
            "machine=evk",
            "soctype=mx8mm",
            "cstversion=3.3.1",
            "csf=@imx-boot.csf;type=text/plain",
            "artifact=@imx-boot.bin",
        ],
        dir,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    verify_blob(
        &reply.body,
        &dir.join("pki"),
        &dir.join("imx-boot.bin"),
        40 * 1024,
        &dir.join(scratch),
    );
}

#[test]
fn the_gateway_signs_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let uri = client(tmp.path());
    let base = cst_base().display().to_string();
    let gw = TestGateway::start(Some(&uri), move |c| {
        c.service.settings.set(svc_imx::CST_BASE_VAR, base)
    });
    sign_and_verify(&gw.url, tmp.path(), "embedded");
    assert!(servicekit::testing::leftovers(gw.workdir_base.path())
        .iter()
        .all(|p| p.ends_with("no-keys")));
}

#[test]
fn the_gateway_routes_to_svc_imx() {
    let tmp = tempfile::tempdir().unwrap();
    let uri = client(tmp.path());
    let service = start_svc_imx(&uri, cst_base(), &[]);
    let url = reqwest::Url::parse(&service.url).unwrap();
    let gw = TestGateway::start(None, move |c| c.route(Domain::Imx, url));
    sign_and_verify(&gw.url, tmp.path(), "routed");
    assert!(
        service.leftovers().is_empty(),
        "left: {:?}",
        service.leftovers()
    );
    // A refusal passes through as the service gave it.
    let reply = curl_post(
        &format!("{}/sign/imx", gw.url),
        &[
            "machine=evk",
            "soctype=mx8mm",
            "cstversion=0.1",
            "csf=@imx-boot.csf",
            "artifact=@imx-boot.bin",
        ],
        tmp.path(),
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("installed: 3.3.1"),
        "{}",
        reply.text()
    );
}
