//! `GET /metrics` read by Prometheus' own Python parser (prometheus_client
//! from PyPI), after signing requests through the gateway.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::collections::BTreeMap;
use std::process::Command;

use harness::*;
use kmod_common::*;

/// Every sample of the exposition at `url`, as `name{labels}` → value, parsed
/// by prometheus_client.
fn samples(url: &str, scratch: &std::path::Path) -> BTreeMap<String, f64> {
    let (status, headers, body) = curl(&format!("{url}/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .is_some_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    let file = scratch.join("metrics.txt");
    std::fs::write(&file, &body).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\n\
             from prometheus_client.parser import text_string_to_metric_families as parse\n\
             for family in parse(open(sys.argv[1]).read()):\n\
             \x20   for s in family.samples:\n\
             \x20       labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))\n\
             \x20       print(f'{s.name}{{{labels}}} {s.value}')\n",
        )
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client (PyPI; scripts/test installs it) rejected the exposition:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&body)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn signing_requests_are_counted_as_prometheus_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("keys");
    let keys = kmod_keystore(&root, "m", KeyKind::Rsa(2048), "metrics");
    let client = client_tree(tmp.path());
    let gw = TestGateway::embedded(&format!("file://{}", root.display()));

    sign_like_the_bbclass(&gw.url, tmp.path(), "m", &keys, "metrics");
    let (status, _, _) = curl(
        &format!("{}/sign/modules", gw.url),
        &[
            "-X",
            "POST",
            "-F",
            "machine=nobody",
            "-F",
            &format!("artifact=@{}", client.join("modules-in.tar.gz").display()),
        ],
    );
    assert_eq!(status, 404);

    let s = samples(&gw.url, tmp.path());
    let get = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in {s:#?}"));
    assert_eq!(
        get("digsig_requests_total{endpoint=/sign/modules,status=200}"),
        1.0
    );
    assert_eq!(
        get("digsig_requests_total{endpoint=/sign/modules,status=404}"),
        1.0
    );
    assert_eq!(
        get("digsig_request_duration_seconds_count{endpoint=/sign/modules}"),
        2.0
    );
    assert_eq!(
        get("digsig_request_duration_seconds_bucket{endpoint=/sign/modules,le=+Inf}"),
        2.0
    );
    let upload = std::fs::metadata(client.join("modules-in.tar.gz"))
        .unwrap()
        .len() as f64;
    assert!(get("digsig_request_bytes_total{endpoint=/sign/modules}") >= upload);
    let reply = std::fs::metadata(client.join("modules-out.tar.gz"))
        .unwrap()
        .len() as f64;
    assert!(get("digsig_response_bytes_total{endpoint=/sign/modules}") >= reply);
    assert_eq!(get("digsig_requests_in_flight{}"), 0.0);
    assert_eq!(get("digsig_jobs_running{domain=kmod}"), 0.0);
    assert_eq!(get("digsig_jobs_waiting{domain=kmod}"), 0.0);
    // Probes and the metrics themselves are not signing requests.
    assert!(!s
        .keys()
        .any(|k| k.contains("/health") || k.contains("/metrics")));
}
