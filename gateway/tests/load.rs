//! Load, bounded: 200 requests at once across the domains against one
//! `digsigserver --demo` with few job slots. Every answer is a 200 or a 503
//! with `Retry-After` (never a 5xx of another kind, a reset or a hang), the
//! server's memory stays bounded, and its work dir and upload spool are empty
//! afterwards.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const UUID: &str = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";
const REQUESTS: usize = 200;

fn run(cmd: &mut Command) {
    servicekit::testing::run(cmd);
}

/// Artifacts for each endpoint, in `dir`; returns curl's field lists.
fn artifacts(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let modules = dir.join("m/lib/modules/6.1-load");
    std::fs::create_dir_all(&modules).unwrap();
    for i in 0..5 {
        std::fs::write(
            modules.join(format!("m{i}.ko")),
            servicekit::testing::filler(50_000, i),
        )
        .unwrap();
    }
    run(Command::new("tar")
        .current_dir(dir.join("m"))
        .args(["-czf", "../modules.tar.gz", "lib"]));
    let ta = dir.join("t/ta");
    std::fs::create_dir_all(&ta).unwrap();
    std::fs::write(
        ta.join(format!("{UUID}.stripped.elf")),
        servicekit::testing::filler(100_000, 7),
    )
    .unwrap();
    run(Command::new("tar")
        .current_dir(dir.join("t"))
        .args(["-czf", "../tas.tar.gz", "ta"]));
    std::fs::write(
        dir.join("sw-description"),
        "software = { version = \"1.0\"; };\n",
    )
    .unwrap();
    let at = |name: &str| format!("@{}", dir.join(name).display());
    vec![
        (
            "/sign/modules",
            vec![
                "machine=demo".into(),
                format!("artifact={}", at("modules.tar.gz")),
            ],
        ),
        (
            "/sign/optee",
            vec![
                "machine=demo".into(),
                format!("artifact={}", at("tas.tar.gz")),
            ],
        ),
        (
            "/sign/swupdate",
            vec![
                "distro=demo".into(),
                format!("sw-description={}", at("sw-description")),
            ],
        ),
    ]
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn two_hundred_mixed_requests_at_once_get_200_or_503_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (work, spool) = (tmp.path().join("work"), tmp.path().join("spool"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&spool).unwrap();
    let port = harness::free_port();
    let mut server = harness::demo_server(port)
        .env("DIGSIGSERVER_WORKDIR", &work)
        .env("TMPDIR", &spool)
        .env("DIGSIGSERVER_MAX_JOBS", "2")
        .env("DIGSIGSERVER_MAX_QUEUE", "8")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    harness::wait_listening(&mut server, port);
    let url = format!("http://127.0.0.1:{port}");
    let kinds = artifacts(tmp.path());

    let started = Instant::now();
    let children: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (path, fields) = &kinds[i % kinds.len()];
            let mut cmd = Command::new("curl");
            cmd.args(["--silent", "--max-time", "60", "-o", "/dev/null"])
                .args(["-w", "%{http_code} %header{retry-after}"]);
            for f in fields {
                cmd.arg("-F").arg(f);
            }
            cmd.arg(format!("{url}{path}"))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        *outcomes.entry(text).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let rss_mib = peak_rss_kib(server.id()) / 1024;
    let leftovers: Vec<_> = [&work, &spool]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("digsig-demo-keys-"))
        .collect();
    let _ = server.kill();
    let _ = server.wait();

    println!("{REQUESTS} requests in {elapsed:?}: {outcomes:?}; peak RSS {rss_mib} MiB");
    for (outcome, count) in &outcomes {
        assert!(
            outcome == "200" || outcome == "503 10",
            "{count} requests got {outcome:?}: {outcomes:?}"
        );
    }
    assert!(
        outcomes.get("200").copied().unwrap_or(0) >= 10,
        "{outcomes:?}"
    );
    assert!(rss_mib < 512, "peak RSS {rss_mib} MiB");
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
