//! The OpenAPI document checked by a real validator, and Swagger UI rendered
//! by a real browser (Debian's chromium, headless).

mod harness;
#[path = "../../svc-imx/tests/common/mod.rs"]
mod imx_common;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;
#[path = "../../svc-tegra/tests/common/mod.rs"]
mod tegra_common;

use std::process::Command;

use harness::*;
use kmod_common::*;

/// Every signing endpoint this build serves.
const BUILT_ENDPOINTS: [&str; 6] = [
    "/sign/imx",
    "/sign/tegra",
    "/sign/modules",
    "/sign/optee",
    "/sign/swupdate",
    "/sign/mender",
];

#[test]
fn schemathesis_finds_nothing_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = gateway(tmp.path());
    // positive_data_acceptance is left out: the document cannot say that an
    // artifact must be a gzip tarball, so schema-valid random bytes get a
    // 400 that is right. Every other check runs (server errors, status codes
    // and headers as documented, content types, negative data rejected,
    // methods not allowed).
    let out = Command::new("schemathesis")
        .args(["run", "--max-examples", "40", "--seed", "1"])
        .args(["--exclude-checks", "positive_data_acceptance"])
        .arg(format!("{}/openapi.json", gw.url))
        .env("NO_COLOR", "1")
        .current_dir(tmp.path())
        .output()
        .expect("schemathesis (PyPI) is not installed; scripts/test installs it");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("8 selected / 8 total"), "{report}");
    assert!(!report.contains(" 0 generated"), "{report}");
}

fn gateway(tmp: &std::path::Path) -> TestGateway {
    let root = tmp.join("keys");
    kmod_keystore(&root, "m", KeyKind::Rsa(2048), "openapi");
    // A real CST, so /sign/imx is as an operator runs it (without one it is
    // a 500 asking the operator to install it).
    let cst_base = imx_common::cst_base().display().to_string();
    // And an L4T BSP (the stand-in: NVIDIA's cannot be had here), so
    // /sign/tegra is not a 500 asking for one.
    let bsp_base = tmp.join("nvidia");
    tegra_common::stand_in_bsp(&bsp_base, "35.5.0", "tegra234", &tmp.join("records"));
    let bsp_base = bsp_base.display().to_string();
    TestGateway::start(Some(&format!("file://{}", root.display())), move |c| {
        c.service.settings.set(svc_imx::CST_BASE_VAR, cst_base);
        c.service
            .settings
            .set(svc_tegra::L4T_TOOLS_BASE_VAR, bsp_base)
    })
}

#[test]
fn the_document_is_valid_openapi_3_and_describes_every_built_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = gateway(tmp.path());
    let (status, _, body) = curl(&format!("{}/openapi.json", gw.url), &[]);
    assert_eq!(status, 200);
    let spec_path = tmp.path().join("openapi.json");
    std::fs::write(&spec_path, &body).unwrap();
    let out = Command::new("openapi-spec-validator")
        .arg(&spec_path)
        .output()
        .expect("openapi-spec-validator (PyPI) is not installed; scripts/test installs it");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let spec: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    for path in BUILT_ENDPOINTS {
        assert!(
            paths[path]["post"].is_object(),
            "{path} missing from the document"
        );
    }
    let listed: Vec<&String> = paths.keys().filter(|p| p.starts_with("/sign/")).collect();
    assert_eq!(
        listed.len(),
        BUILT_ENDPOINTS.len(),
        "unexpected endpoints: {listed:?}"
    );
    assert!(paths["/health"]["get"].is_object() && paths["/ready"]["get"].is_object());

    // The module form: fields, which are required, allowed values, default.
    let op = &paths["/sign/modules"]["post"];
    let form = &op["requestBody"]["content"]["multipart/form-data"]["schema"];
    let required: Vec<&str> = form["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        required.contains(&"machine")
            && required.contains(&"artifact")
            && !required.contains(&"hashalg"),
        "{required:?}"
    );
    assert_eq!(form["properties"]["artifact"]["format"], "binary");
    let hashalg = &form["properties"]["hashalg"];
    assert_eq!(hashalg["default"], "sha512", "{hashalg}");
    let reference = hashalg["$ref"]
        .as_str()
        .or(hashalg["allOf"][0]["$ref"].as_str());
    let hashalg = match reference {
        Some(r) => &spec["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => hashalg,
    };
    assert_eq!(
        hashalg["enum"],
        serde_json::json!(["sha256", "sha384", "sha512"]),
        "{hashalg}"
    );
    // Name fields state the server's rule and an example Swagger UI's
    // "Try it out" sends (not the literal `string`).
    let machine = &form["properties"]["machine"];
    assert_eq!(machine["example"], "demo", "{machine}");
    assert_eq!(machine["pattern"], "^[A-Za-z0-9._+-]{1,128}$", "{machine}");
    assert_eq!(machine["maxLength"], 128, "{machine}");
    // Replies: the signed tarball and every error status.
    let responses = op["responses"].as_object().unwrap();
    assert!(responses["200"]["content"]["application/octet-stream"].is_object());
    for status in ["400", "403", "404", "413", "415", "422", "500", "503"] {
        assert!(
            responses.contains_key(status),
            "status {status} not documented"
        );
    }

    // The Mender form: both fields required, by upstream's names.
    let form =
        &paths["/sign/mender"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
    assert_eq!(
        form["required"],
        serde_json::json!(["distro", "artifact-uri"]),
        "{form}"
    );
    assert_eq!(
        form["properties"]["artifact-uri"]["type"], "string",
        "{form}"
    );

    // The OP-TEE form: upstream's two required fields, and the optional
    // algorithm by OP-TEE's names, PSS by default.
    let form =
        &paths["/sign/optee"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"];
    assert_eq!(
        form["required"],
        serde_json::json!(["machine", "artifact"]),
        "{form}"
    );
    let algo = &form["properties"]["algo"];
    assert_eq!(
        algo["default"], "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256",
        "{algo}"
    );
    let reference = algo["$ref"].as_str().or(algo["allOf"][0]["$ref"].as_str());
    let algo = match reference {
        Some(r) => &spec["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => algo,
    };
    assert_eq!(
        algo["enum"],
        serde_json::json!([
            "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256",
            "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256"
        ]),
        "{algo}"
    );
}

#[test]
fn swagger_ui_renders_the_endpoints_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = gateway(tmp.path());
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium is not installed; scripts/test installs Debian's chromium");
    let headless = |extra: &[&str]| {
        let out = Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(["--virtual-time-budget=15000", "--window-size=1280,1400"])
            .arg(format!(
                "--user-data-dir={}",
                tmp.path().join("profile").display()
            ))
            .args(extra)
            .arg(format!("{}/docs", gw.url))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // The DOM after Swagger UI's script has fetched /openapi.json and drawn
    // one block per operation.
    let dom = String::from_utf8(headless(&["--dump-dom"])).unwrap();
    for path in BUILT_ENDPOINTS.iter().chain(&["/health", "/ready"]) {
        assert!(
            dom.contains(&format!(
                "class=\"opblock-summary-path\" data-path=\"{path}\""
            )),
            "Swagger UI did not render {path}"
        );
    }
    assert!(
        dom.contains("opblock opblock-post"),
        "no POST operation block rendered"
    );

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("swagger-ui.png");
    let _ = std::fs::remove_file(&shot);
    headless(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "screenshot is not a real PNG"
    );
    eprintln!("Swagger UI screenshot: {}", shot.display());
}
