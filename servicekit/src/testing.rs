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
