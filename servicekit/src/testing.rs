//! Test support for any digsig service or the gateway (feature
//! `test-support`): a server on a loopback port in its own runtime thread,
//! commands that must succeed, requests made with `curl` as build hosts make
//! them, and a check that per-request work dirs are gone.

use std::future::Future;
use std::pin::Pin;

/// The shutdown future a test server's run function is handed.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A server serving real HTTP on `127.0.0.1:<free port>`, stopped on drop.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Binds a loopback port and runs `serve(listener, shutdown)` on it.
    pub fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port");
                ready_tx
                    .send(listener.local_addr().expect("bound").port())
                    .expect("test waits");
                let shutdown: Shutdown = Box::pin(async {
                    let _ = stopped.await;
                });
                serve(listener, shutdown).await.expect("server failed");
            });
        });
        let port = ready_rx.recv().expect("server did not start");
        TestServer {
            url: format!("http://127.0.0.1:{port}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs a command, panicking with its stderr if it fails; returns stdout.
pub fn run(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The result of a curl call: HTTP status and body.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, as received.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as (lossy) text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `curl -X POST -F <field>... url` run in `cwd` (so `@file` fields are
/// relative to it), as the Yocto classes call it; returns status and body
/// without failing on 4xx/5xx so tests can read messages.
pub fn curl_post(url: &str, fields: &[&str], cwd: &std::path::Path) -> Reply {
    let out_file = cwd.join(".curl-reply");
    let mut cmd = std::process::Command::new("curl");
    cmd.current_dir(cwd).args([
        "--silent",
        "--show-error",
        "--max-time",
        "120",
        "-X",
        "POST",
    ]);
    for f in fields {
        cmd.arg("-F").arg(f);
    }
    cmd.arg("--output")
        .arg(&out_file)
        .args(["--write-out", "%{http_code}"])
        .arg(url);
    let status: u16 = String::from_utf8(run(&mut cmd))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let body = std::fs::read(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(out_file);
    Reply { status, body }
}

/// What is left in `dir` (a service's work dir base), waiting up to 5 s for
/// it to empty: a reply's work dir is released when its body is dropped, a
/// moment after the client has read it all.
pub fn leftovers(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let left: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A service serving real HTTP on loopback with its own, fresh work dir base
/// (so a test can check every request cleaned up after itself); stopped on
/// drop, before the work dir base goes.
pub struct ServiceUnderTest {
    // Held only to stop the server on drop; declared first so it drops first.
    _server: TestServer,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Base of the per-request work dirs; must be empty between requests.
    pub workdir_base: tempfile::TempDir,
}

impl ServiceUnderTest {
    /// Starts `serve(listener, config, shutdown)`, where `config` is the
    /// default configuration with the fresh work dir base.
    pub fn start<F, Fut>(serve: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, crate::ServiceConfig, Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = std::io::Result<()>>,
    {
        let workdir_base = tempfile::tempdir().expect("a temp dir");
        let mut config = crate::ServiceConfig::from_lookup(|_| None).expect("default config");
        config.workdir_base = workdir_base.path().to_path_buf();
        let server = TestServer::start(move |listener, shutdown| serve(listener, config, shutdown));
        ServiceUnderTest {
            url: server.url.clone(),
            _server: server,
            workdir_base,
        }
    }

    /// Leftovers in the work dir base (none once every reply is read).
    pub fn leftovers(&self) -> Vec<std::path::PathBuf> {
        leftovers(self.workdir_base.path())
    }
}

/// Pseudo-random but compressible bytes, like machine code (deterministic).
pub fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|i| {
            if i % 4 == 0 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
            }
            // A small alphabet keeps it compressible, as code is.
            [0x48, 0x89, 0x8b, 0x00, 0xe8, 0xc3, 0x0f, 0xff][(x >> ((i % 4) * 8)) as usize & 7]
        })
        .collect()
}
