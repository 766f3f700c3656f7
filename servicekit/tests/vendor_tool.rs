//! The vendor-tool runner against real processes: environment, process
//! groups, timeouts, cancellation and output caps.

use std::path::Path;
use std::time::{Duration, Instant};

use servicekit::{ToolError, ToolRun, WorkDir};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Whether `pid` is still a live (not zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // The state follows the parenthesised command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next()),
            Some(Some('Z' | 'X'))
        ),
    }
}

/// A fresh work dir under a fresh base (kept alive by the returned TempDir).
fn work_dir() -> (tempfile::TempDir, std::sync::Arc<WorkDir>) {
    let base = tempfile::tempdir().unwrap();
    let work = WorkDir::create(base.path()).unwrap();
    (base, work)
}

/// `sh -c script` run in `work`.
fn sh(work: &Path, script: &str) -> ToolRun {
    ToolRun::new("/bin/sh", work).args(["-c", script])
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A tool that starts a helper in the background and then hangs.
const HANGS_WITH_GRANDCHILD: &str =
    "sleep 300 & echo $! > grandchild.pid; echo $$ > tool.pid; echo started; sleep 300";

#[test]
fn a_hung_tool_and_its_background_child_die_at_the_timeout_and_the_work_dir_goes() {
    let (base, work) = work_dir();
    let started = Instant::now();
    let result = runtime().block_on(
        ToolRun::new("/bin/sh", work.path())
            .args(["-c", HANGS_WITH_GRANDCHILD])
            .timeout(Duration::from_secs(1))
            .grace(Duration::from_millis(500))
            .run(),
    );
    let elapsed = started.elapsed();
    let (tool, grandchild) = (
        read_pid(&work.path().join("tool.pid")),
        read_pid(&work.path().join("grandchild.pid")),
    );
    match result {
        Err(ToolError::TimedOut { after, output, .. }) => {
            assert_eq!(after, Duration::from_secs(1));
            assert_eq!(String::from_utf8_lossy(&output.stdout), "started\n");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(wait_gone(tool), "the tool {tool} survived its timeout");
    assert!(
        wait_gone(grandchild),
        "the tool's background child {grandchild} survived"
    );
    let path = work.path().to_path_buf();
    drop(work);
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0);
}

#[test]
fn dropping_the_run_kills_the_whole_group() {
    let (_base, work) = work_dir();
    let rt = runtime();
    let run = ToolRun::new("/bin/sh", work.path())
        .args(["-c", HANGS_WITH_GRANDCHILD])
        .run();
    let task = rt.spawn(run);
    let grandchild = read_pid(&work.path().join("grandchild.pid"));
    let tool = read_pid(&work.path().join("tool.pid"));
    assert!(alive(tool) && alive(grandchild));
    // The client went away: the handler future is dropped.
    task.abort();
    let _ = rt.block_on(task);
    assert!(wait_gone(tool), "the tool {tool} survived cancellation");
    assert!(wait_gone(grandchild), "its child {grandchild} survived");
}

#[test]
fn stragglers_of_a_tool_that_exits_are_killed_and_do_not_hold_the_reply() {
    let (_base, work) = work_dir();
    let started = Instant::now();
    let output = runtime()
        .block_on(
            sh(
                work.path(),
                "sleep 300 & echo $! > grandchild.pid; echo done",
            )
            .run(),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "done\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(wait_gone(read_pid(&work.path().join("grandchild.pid"))));
}

#[test]
fn the_tool_sees_only_the_environment_it_is_given() {
    // What a production server has in its environment and a tool must never see.
    std::env::set_var(
        "AWS_SECRET_ACCESS_KEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
    std::env::set_var("DIGSIGSERVER_KEYFILE_URI", "s3://secret-bucket/keys");
    std::env::set_var("https_proxy", "http://proxy.example:3128");
    let (_base, work) = work_dir();
    let output = runtime()
        .block_on(
            ToolRun::new("/usr/bin/env", work.path())
                .env("MACHINE", "jetson-agx-orin-devkit")
                .path_prepend(work.path().join("bsp/bin"))
                .run(),
        )
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let mut names: Vec<&str> = text
        .lines()
        .map(|line| line.split_once('=').unwrap().0)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["HOME", "LANG", "MACHINE", "PATH", "TMPDIR"],
        "{text}"
    );
    let var = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_string()
    };
    assert!(Path::new(&var("HOME")).starts_with(work.path()));
    assert!(Path::new(&var("TMPDIR")).starts_with(work.path()));
    assert_eq!(var("LANG"), "C.UTF-8");
    assert_eq!(var("MACHINE"), "jetson-agx-orin-devkit");
    assert!(var("PATH").starts_with(&format!("{}:", work.path().join("bsp/bin").display())));
    assert!(!text.contains("wJalrXUtnFEMI") && !text.contains("secret-bucket"));
}

#[test]
fn stdin_is_empty_and_the_tool_runs_in_the_work_dir() {
    let (_base, work) = work_dir();
    let output = runtime()
        .block_on(sh(work.path(), "pwd; wc -c").run())
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let canonical = work.path().canonicalize().unwrap();
    assert_eq!(text, format!("{}\n0\n", canonical.display()));
}

#[test]
fn output_is_capped_and_keeps_its_tail() {
    let (_base, work) = work_dir();
    let err = runtime()
        .block_on(
            ToolRun::new("/bin/sh", work.path())
                .args([
                    "-c",
                    "head -c 5000000 /dev/zero | tr '\\0' x; echo END; \
                     head -c 5000000 /dev/zero | tr '\\0' y >&2; echo 'error: bad CSF' >&2; exit 3",
                ])
                .output_cap(1000)
                .run(),
        )
        .unwrap_err();
    let ToolError::Exited { code, output, .. } = &err else {
        panic!("expected an exit status, got {err:?}");
    };
    assert_eq!(*code, 3);
    assert_eq!(output.stdout.len(), 1000);
    assert!(output.stdout.ends_with(b"xxxxEND\n"));
    assert_eq!(output.stderr.len(), 1000);
    assert!(output.message(work.path()).ends_with("yyyyerror: bad CSF"));
}

#[test]
fn a_missing_tool_and_a_crash_are_told_apart() {
    let (_base, work) = work_dir();
    let rt = runtime();
    let missing = rt
        .block_on(ToolRun::new("/opt/NXP/cst-9.9/linux64/bin/cst", work.path()).run())
        .unwrap_err();
    assert!(
        matches!(&missing, ToolError::NotFound { program } if program == "cst"),
        "{missing:?}"
    );
    assert_eq!(missing.to_string(), "cst is not installed");
    let crashed = rt
        .block_on(sh(work.path(), "echo about to crash >&2; kill -SEGV $$").run())
        .unwrap_err();
    match crashed {
        ToolError::Signalled { signal, output, .. } => {
            assert_eq!(signal, libc::SIGSEGV);
            assert_eq!(output.message(work.path()), "about to crash");
        }
        other => panic!("expected a crash, got {other:?}"),
    }
}

#[test]
fn a_helper_that_leaves_the_group_with_the_pipes_open_does_not_hold_the_run() {
    let (_base, work) = work_dir();
    let started = Instant::now();
    let output = runtime()
        .block_on(
            ToolRun::new("/bin/sh", work.path())
                .args([
                    "-c",
                    "setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & sleep 0.2; echo done",
                ])
                .grace(Duration::from_millis(500))
                .run(),
        )
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "done\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the run waited {:?} for a helper's pipes",
        started.elapsed()
    );
    // It escaped the group on purpose; end it here.
    let escaped = read_pid(&work.path().join("escaped.pid"));
    unsafe {
        libc::kill(escaped, libc::SIGKILL);
    }
}
