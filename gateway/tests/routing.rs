//! The gateway over real HTTP on loopback: kernel modules signed the Yocto
//! bbclass's way in-process and routed to a real svc-kmod, replies passed
//! through unchanged, and what happens when the service is down, slow, or
//! the client goes away.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;
#[path = "../../svc-update/tests/common/mod.rs"]
mod mender_common;
#[path = "../../svc-optee/tests/common/mod.rs"]
mod optee_common;

use std::time::{Duration, Instant};

use gateway::Domain;
use harness::*;
use kmod_common::*;

fn keystore(tmp: &std::path::Path, machine: &str, cn: &str) -> (String, KeyPair) {
    let root = tmp.join("keys");
    let keys = kmod_keystore(&root, machine, KeyKind::Rsa(2048), cn);
    (format!("file://{}", root.display()), keys)
}

#[test]
fn embedded_mode_signs_modules_the_bbclass_way() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, keys) = keystore(tmp.path(), "jetson-orin", "gateway embedded");
    let gw = TestGateway::embedded(&uri);
    client_tree(tmp.path());
    sign_like_the_bbclass(
        &gw.url,
        tmp.path(),
        "jetson-orin",
        &keys,
        "gateway embedded",
    );
}

#[test]
fn routed_mode_signs_modules_the_bbclass_way_and_passes_replies_through_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, keys) = keystore(tmp.path(), "jetson-orin", "gateway routed");
    let service = start_svc_kmod(&uri, None);
    let gw = TestGateway::routed(&service.url);
    let client = client_tree(tmp.path());
    sign_like_the_bbclass(&gw.url, tmp.path(), "jetson-orin", &keys, "gateway routed");

    // Status, headers that describe the content, and body reach the client
    // as the service sent them: a success and several failures.
    let artifact = format!("artifact=@{}", client.join("modules-in.tar.gz").display());
    let not_gzip = format!("artifact=@{}", client.join("pkgd-missing").display());
    std::fs::write(client.join("pkgd-missing"), b"not a tarball").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["machine=jetson-orin".into(), artifact.clone()],
        vec!["machine=jetson-orin".into(), not_gzip],
        vec!["machine=no-such-machine".into(), artifact.clone()],
        vec!["machine=../etc".into(), artifact.clone()],
        vec![
            "machine=jetson-orin".into(),
            "hashalg=md5".into(),
            artifact.clone(),
        ],
        vec!["machine=jetson-orin".into()],
    ];
    for fields in cases {
        let mut args = vec!["-X", "POST"];
        for f in &fields {
            args.push("-F");
            args.push(f);
        }
        let (direct_status, direct_headers, direct_body) =
            curl(&format!("{}/sign/modules", service.url), &args);
        let (status, headers, body) = curl(&format!("{}/sign/modules", gw.url), &args);
        assert_eq!(
            status,
            direct_status,
            "{fields:?}: {}",
            String::from_utf8_lossy(&body)
        );
        for name in ["content-type", "content-disposition"] {
            assert_eq!(
                header(&headers, name),
                header(&direct_headers, name),
                "{fields:?}: {name}"
            );
        }
        if status == 200 {
            // Signatures are deterministic (RSA PKCS#1 v1.5): same tarball
            // content; compare the unpacked listings and sizes.
            let list = |bytes: &[u8]| {
                let p = tmp.path().join("reply.tar.gz");
                std::fs::write(&p, bytes).unwrap();
                run(std::process::Command::new("tar").arg("-tvzf").arg(&p))
            };
            assert_eq!(list(&body), list(&direct_body));
        } else {
            assert_eq!(body, direct_body, "{fields:?}");
        }
    }
    assert!(
        service.leftovers().is_empty(),
        "service work dirs left: {:?}",
        service.leftovers()
    );
}

#[test]
fn openapi_document_is_the_same_in_both_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, _) = keystore(tmp.path(), "m", "spec");
    let service = start_svc_kmod(&uri, None);
    let embedded = TestGateway::embedded(&uri);
    let routed = TestGateway::routed(&service.url);
    let (s1, _, a) = curl(&format!("{}/openapi.json", embedded.url), &[]);
    let (s2, _, b) = curl(&format!("{}/openapi.json", routed.url), &[]);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
}

#[test]
fn a_service_that_is_down_gets_a_fast_503_naming_the_domain() {
    let port = keystore::testing::closed_port();
    let gw = TestGateway::routed(&format!("http://127.0.0.1:{port}"));
    let (reply, took) = post_any_modules(&gw.url);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(
        reply.text().contains("kmod service") && reply.text().contains("DIGSIGSERVER_KMOD_URL"),
        "{}",
        reply.text()
    );

    let (status, _, body) = curl(&format!("{}/ready", gw.url), &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("service kmod") && body.contains("not reachable"),
        "{body}"
    );
    // Liveness is the gateway's own and stays up.
    assert_eq!(curl(&format!("{}/health", gw.url), &[]).0, 200);
}

#[test]
fn ready_reports_a_routed_service_that_is_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, _) = keystore(tmp.path(), "m", "ready");
    let service = start_svc_kmod(&uri, None);
    let gw = TestGateway::routed(&service.url);
    let (status, _, body) = curl(&format!("{}/ready", gw.url), &[]);
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("service kmod") && body.contains("is ready"),
        "{body}"
    );
}

#[test]
fn a_slow_service_gets_a_504_after_the_domain_timeout_and_its_connection_closed() {
    let silent = SilentService::start(Duration::from_secs(10));
    let url = reqwest::Url::parse(&silent.url).unwrap();
    let gw = TestGateway::start(None, |c| {
        c.route(Domain::Kmod, url);
        c.set_timeout(Domain::Kmod, Duration::from_secs(1));
    });
    let (reply, took) = post_any_modules(&gw.url);
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(
        reply.text().contains("DIGSIGSERVER_KMOD_TIMEOUT"),
        "{}",
        reply.text()
    );
    let (_, closed) = silent.outcome(Duration::from_secs(15));
    assert!(
        closed,
        "the gateway left the upstream connection open after timing out"
    );
}

/// POSTs a module request (its content never reaches a signer) and times it.
fn post_any_modules(gateway_url: &str) -> (Reply, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.tar.gz"), b"whatever").unwrap();
    let started = Instant::now();
    let reply = curl_post(
        &format!("{gateway_url}/sign/modules"),
        &["machine=m", "artifact=@a.tar.gz"],
        tmp.path(),
    );
    (reply, started.elapsed())
}

/// Sends the head of a large multipart upload and hangs up.
fn abandon_upload(gateway_url: &str) {
    let addr = gateway_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /sign/modules HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"machine\"\r\n\r\nm\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"artifact\"; filename=\"a.tar.gz\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        50 << 20
    );
    use std::io::Write;
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![0x1f; 1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
}

#[test]
fn a_client_hanging_up_mid_upload_cancels_the_upstream_request() {
    let silent = SilentService::start(Duration::from_secs(10));
    let gw = TestGateway::routed(&silent.url);
    abandon_upload(&gw.url);
    let (received, closed) = silent.outcome(Duration::from_secs(15));
    assert!(
        closed,
        "upstream connection still open 10 s after the client left"
    );
    assert!(
        received < 50 << 20,
        "upstream got {received} bytes, more than the client sent"
    );
    assert!(
        received > 1 << 19,
        "upstream got only {received} bytes: the upload did not stream through"
    );
}

#[test]
fn a_client_hanging_up_mid_upload_leaves_nothing_in_the_service() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, keys) = keystore(tmp.path(), "m", "hang-up");
    let service = start_svc_kmod(&uri, None);
    let gw = TestGateway::routed(&service.url);
    abandon_upload(&gw.url);
    assert!(
        service.leftovers().is_empty(),
        "service work dirs left: {:?}",
        service.leftovers()
    );
    // And the service still signs afterwards.
    client_tree(tmp.path());
    sign_like_the_bbclass(&gw.url, tmp.path(), "m", &keys, "hang-up");
}

#[test]
fn domains_this_build_lacks_answer_501_saying_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (uri, _) = keystore(tmp.path(), "m", "501");
    let gw = TestGateway::embedded(&uri);
    // Upstream 0.16's endpoints that no service crate here provides yet.
    for (domain, path) in [
        (Domain::Tegra, "/sign/tegra/uefi"),
        (Domain::Tegra, "/sign/tegra/ueficapsule"),
        (Domain::Tegra, "/sign/tegra/ekb"),
        (Domain::Fitimage, "/sign/fitimage"),
        (Domain::Rockchip, "/sign/rk"),
        (Domain::Rockchip, "/sign/rkoptee-tee"),
        (Domain::Rockchip, "/sign/rkoptee-ta"),
    ] {
        let reply = curl_post(&format!("{}{path}", gw.url), &["machine=m"], tmp.path());
        assert_eq!(reply.status, 501, "{path}: {}", reply.text());
        assert!(
            reply.text().contains(&format!("the {domain} domain")),
            "{path}: {}",
            reply.text()
        );
    }
    assert_eq!(
        curl(&format!("{}/sign/nothing", gw.url), &["-X", "POST"]).0,
        404
    );
}

#[test]
fn embedded_domains_without_a_key_store_refuse_to_start() {
    let config = gateway::GatewayConfig::from_lookup(|_| None).unwrap();
    let err = gateway::app(&config, None)
        .err()
        .expect("started without keys");
    assert!(
        err.to_string().contains("DIGSIGSERVER_KEYFILE_URI"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_digsigserver"))
        .args(["--address", "127.0.0.1", "--port", "0"])
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .env_remove("DIGSIGSERVER_KMOD_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("DIGSIGSERVER_KEYFILE_URI is not set") && stderr.contains("--demo"),
        "{stderr}"
    );
    // It refuses before binding: nothing claims it is listening.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("DIGSIGSERVER_KEYFILE_URI is not set"),
        "the log says why: {stdout}"
    );
    assert!(!stdout.contains("listening"), "{stdout}");
}

#[test]
fn the_binary_with_demo_keys_signs_for_machine_demo() {
    let port = free_port();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = demo_server(port)
        .env_remove("DIGSIGSERVER_KEYFILE_URI")
        .stderr(std::fs::File::create(tmp.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_listening(&mut child, port);
    let client = client_tree(tmp.path());
    let reply = curl_post(
        &format!("{url}/sign/modules"),
        &["machine=demo", "artifact=@modules-in.tar.gz"],
        &client,
    );
    std::fs::create_dir_all(client.join("ta")).unwrap();
    std::fs::write(client.join(format!("ta/{TA_UUID}.stripped.elf")), b"ta").unwrap();
    run(std::process::Command::new("tar")
        .current_dir(&client)
        .args(["-czf", "ta-in.tar.gz", "ta"]));
    let ta_reply = curl_post(
        &format!("{url}/sign/optee"),
        &["machine=demo", "artifact=@ta-in.tar.gz"],
        &client,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    std::fs::write(client.join("out.tar.gz"), &reply.body).unwrap();
    run(std::process::Command::new("tar")
        .current_dir(&client)
        .args(["-xzf", "out.tar.gz"]));
    let signed = client.join("lib/modules").join(KVER).join(MODULES[0]);
    assert!(
        modinfo(&signed, "signer").contains("THROWAWAY"),
        "{}",
        modinfo(&signed, "signer")
    );
    assert_eq!(ta_reply.status, 200, "{}", ta_reply.text());
    std::fs::write(client.join("ta-out.tar.gz"), &ta_reply.body).unwrap();
    let listing = run(std::process::Command::new("tar")
        .args(["-tzf", "ta-out.tar.gz"])
        .current_dir(&client));
    assert!(
        String::from_utf8_lossy(&listing).contains(&format!("./ta/{TA_UUID}.ta")),
        "{}",
        String::from_utf8_lossy(&listing)
    );
    let stderr = std::fs::read_to_string(tmp.path().join("stderr")).unwrap();
    assert!(
        stderr.contains("DEMO MODE") && stderr.contains("THROWAWAY"),
        "{stderr}"
    );
}

#[test]
fn swupdate_is_signed_in_both_modes_byte_identical_to_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let dir = root.join("poky/swupdate");
    std::fs::create_dir_all(&dir).unwrap();
    new_rsa_key(&dir.join("rsa-private.key"));
    let uri = format!("file://{}", root.display());
    let service_uri = uri.clone();
    let service = servicekit::testing::TestServer::start(move |listener, shutdown| async move {
        let store = keystore::KeyStore::open(&service_uri).await.unwrap();
        let mender = svc_update::MenderConfig::from_lookup(|_| None, std::env::temp_dir()).unwrap();
        svc_update::run(listener, store, mender, shutdown).await
    });
    let embedded = TestGateway::embedded(&uri);
    let service_url = reqwest::Url::parse(&service.url).unwrap();
    let routed = TestGateway::start(Some(&uri), move |c| c.route(Domain::Update, service_url));
    std::fs::write(
        tmp.path().join("sw-description"),
        "software = { version = \"1.0\"; };\n",
    )
    .unwrap();
    let reference = run(std::process::Command::new("openssl")
        .current_dir(tmp.path())
        .args(["dgst", "-sha256", "-sign"])
        .arg(dir.join("rsa-private.key"))
        .arg("sw-description"));
    for gw in [&embedded, &routed] {
        // The swupdate class's call.
        run(std::process::Command::new("curl")
            .current_dir(tmp.path())
            .args([
                "--silent",
                "--fail",
                "-X",
                "POST",
                "-F",
                "distro=poky",
                "-F",
                "method=RSA",
            ])
            .args([
                "-F",
                "sw-description=@sw-description",
                "--output",
                "sw-description.sig",
            ])
            .arg(format!("{}/sign/swupdate", gw.url)));
        assert_eq!(
            std::fs::read(tmp.path().join("sw-description.sig")).unwrap(),
            reference
        );
    }
}

#[test]
fn mender_artifacts_are_signed_in_place_in_both_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let dir = root.join("poky/mender");
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        run(std::process::Command::new("openssl")
            .current_dir(&dir)
            .args(args));
    };
    openssl(&["genpkey", "-algorithm", "RSA", "-out", "private.key"]);
    openssl(&[
        "pkey",
        "-in",
        "private.key",
        "-pubout",
        "-out",
        "public.key",
    ]);
    let deploy = tmp.path().join("deploy");
    std::fs::create_dir_all(&deploy).unwrap();
    let allowed = format!("file://{}", deploy.display());
    let mender_config = move || {
        let allowed = allowed.clone();
        svc_update::MenderConfig::from_lookup(
            move |name| (name == "DIGSIGSERVER_MENDER_ALLOWED_URIS").then(|| allowed.clone()),
            std::env::temp_dir(),
        )
        .unwrap()
    };
    let uri = format!("file://{}", root.display());
    let service_uri = uri.clone();
    let service_config = mender_config();
    let service = servicekit::testing::TestServer::start(move |listener, shutdown| async move {
        let store = keystore::KeyStore::open(&service_uri).await.unwrap();
        svc_update::run(listener, store, service_config, shutdown).await
    });
    let embedded_allowed = format!("file://{}", deploy.display());
    let embedded = TestGateway::start(Some(&uri), move |c| {
        c.service
            .settings
            .set("DIGSIGSERVER_MENDER_ALLOWED_URIS", embedded_allowed)
    });
    let service_url = reqwest::Url::parse(&service.url).unwrap();
    let routed = TestGateway::start(Some(&uri), move |c| c.route(Domain::Update, service_url));
    for (mode, gw) in [("embedded", &embedded), ("routed", &routed)] {
        let artifact = deploy.join(format!("{mode}.mender"));
        mender_common::make_artifact(&artifact, 1000);
        // mendersign.bbclass's call, for a build farm on the same host.
        let out = run(std::process::Command::new("curl")
            .args([
                "--silent",
                "--fail",
                "-X",
                "POST",
                "-F",
                "distro=poky",
                "-F",
            ])
            .arg(format!("artifact-uri=file://{}", artifact.display()))
            .arg(format!("{}/sign/mender", gw.url)));
        assert_eq!(out, b"Signing successful", "{mode}");
        let validated = run(std::process::Command::new("mender-artifact")
            .arg("validate")
            .arg("-k")
            .arg(dir.join("public.key"))
            .arg(&artifact));
        assert!(
            String::from_utf8_lossy(&validated).contains("validated successfully"),
            "{mode}"
        );
        // The allowed-URI rule holds in both modes.
        let (status, _, body) = curl(
            &format!("{}/sign/mender", gw.url),
            &[
                "-X",
                "POST",
                "-F",
                "distro=poky",
                "-F",
                "artifact-uri=file:///etc/passwd",
            ],
        );
        assert_eq!(status, 403, "{mode}: {}", String::from_utf8_lossy(&body));
    }
}

const TA_UUID: &str = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";

#[test]
fn optee_tas_are_signed_in_both_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let key = optee_common::make_rsa_key(&tmp.path().join("keysrc"), 3072);
    optee_common::install_key(&root, "qemu-optee", &key.private_pem);
    let uri = format!("file://{}", root.display());
    let service_uri = uri.clone();
    let service = servicekit::testing::TestServer::start(move |listener, shutdown| async move {
        let store = keystore::KeyStore::open(&service_uri).await.unwrap();
        let mut config = servicekit::ServiceConfig::from_lookup(|_| None).unwrap();
        config.workdir_base = std::env::temp_dir();
        svc_optee::run(listener, store, config, shutdown).await
    });
    let embedded = TestGateway::embedded(&uri);
    let service_url = reqwest::Url::parse(&service.url).unwrap();
    let routed = TestGateway::start(None, move |c| c.route(Domain::Optee, service_url));

    let build = tmp.path().join("build");
    let image = optee_common::filler(300_000, 9);
    std::fs::create_dir_all(build.join("ta/out")).unwrap();
    std::fs::write(build.join(format!("ta/out/{TA_UUID}.stripped.elf")), &image).unwrap();
    std::fs::write(build.join(format!("ta/out/{TA_UUID}.ta-version")), "0x2\n").unwrap();
    optee_common::pack(&build, "ta", &build.join("tasign-in.tar.gz"));
    for (mode, gw) in [("embedded", &embedded), ("routed", &routed)] {
        optee_common::post_like_the_client(&gw.url, "qemu-optee", &build);
        let out = tmp.path().join(format!("out-{mode}"));
        optee_common::unpack(&build.join("tasign-out.tar.gz"), &out);
        let ta = std::fs::read(out.join(format!("ta/out/{TA_UUID}.ta"))).unwrap();
        optee_common::verify_ta(
            &ta,
            &image,
            TA_UUID,
            2,
            &key,
            optee_common::Algo::Pss,
            &tmp.path().join(format!("scratch-{mode}")),
        );
        // A bad name is refused the same way in both modes.
        std::fs::write(build.join("ta/out/hello.stripped.elf"), b"x").unwrap();
        optee_common::pack(&build, "ta", &build.join("bad.tar.gz"));
        std::fs::remove_file(build.join("ta/out/hello.stripped.elf")).unwrap();
        let reply = curl_post(
            &format!("{}/sign/optee", gw.url),
            &["machine=qemu-optee", "artifact=@bad.tar.gz"],
            &build,
        );
        assert_eq!(reply.status, 422, "{mode}: {}", reply.text());
        assert!(
            reply.text().contains("./ta/out/hello.stripped.elf"),
            "{mode}: {}",
            reply.text()
        );
    }
}
