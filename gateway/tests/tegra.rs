//! `/sign/tegra` through the gateway, in-process and routed to a real
//! svc-tegra, against the stand-in L4T BSP (NVIDIA's cannot be had here):
//! the bbclass's own calls get the same signed flash package either way.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;
#[path = "../../svc-tegra/tests/common/mod.rs"]
mod tegra_common;

use gateway::Domain;
use harness::*;
use tegra_common::*;

struct Client {
    tmp: tempfile::TempDir,
    uri: String,
    base: std::path::PathBuf,
    pkc: std::path::PathBuf,
}

fn client() -> Client {
    let tmp = tempfile::tempdir().unwrap();
    let pkc = install_keys(&tmp.path().join("keys"), "orin", true, false);
    let base = tmp.path().join("nvidia");
    stand_in_bsp(&base, "35.5.0", "tegra234", &tmp.path().join("records"));
    Client {
        uri: format!("file://{}", tmp.path().join("keys").display()),
        base,
        pkc,
        tmp,
    }
}

/// Signs a flash package as tegrasign.bbclass does and checks the reply.
fn sign_like_the_bbclass(url: &str, c: &Client, name: &str) {
    let dir = c.tmp.path().join(name);
    flash_package(&dir, "orin", "tegra234", "35.5.0", "boot.img", "");
    let tarball = c.tmp.path().join(format!("{name}.tar.gz"));
    tar_package(&dir, &tarball);
    let out = c.tmp.path().join(format!("{name}-out.tar.gz"));
    assert!(bbclass_post(
        url, "orin", "tegra234", "35.5.0", &tarball, &out
    ));
    assert_eq!(
        tar_names(&out),
        [
            "./",
            "./boot_sigheader.img.signed",
            "./flash.idx",
            "./flashcmd.txt",
            "./tegra-board_sigheader.dtb.encrypt"
        ]
    );
    run(std::process::Command::new("tar")
        .current_dir(&dir)
        .arg("-xzf")
        .arg(&out));
    verify_signed_copy(
        &dir.join("boot_sigheader.img.signed"),
        &dir.join("boot.img"),
        &c.pkc,
        &c.tmp.path().join(format!("{name}-verify")),
    );
}

#[test]
fn the_gateway_signs_in_process() {
    let c = client();
    let base = c.base.display().to_string();
    let gw = TestGateway::start(Some(&c.uri), move |cfg| {
        cfg.service
            .settings
            .set(svc_tegra::L4T_TOOLS_BASE_VAR, base)
    });
    sign_like_the_bbclass(&gw.url, &c, "embedded");
    assert!(servicekit::testing::leftovers(gw.workdir_base.path())
        .iter()
        .all(|p| p.ends_with("no-keys")));
}

#[test]
fn the_gateway_routes_to_svc_tegra() {
    let c = client();
    let service = start_svc_tegra(&c.uri, &c.base, &[]);
    let url = reqwest::Url::parse(&service.url).unwrap();
    let gw = TestGateway::start(None, move |cfg| cfg.route(Domain::Tegra, url));
    sign_like_the_bbclass(&gw.url, &c, "routed");
    assert!(
        service.leftovers().is_empty(),
        "left: {:?}",
        service.leftovers()
    );
}
