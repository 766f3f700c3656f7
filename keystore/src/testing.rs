//! Test support: a real S3-compatible server (moto's `moto_server`, from PyPI)
//! started once per test process, on loopback, on a free port.
//!
//! Enabled by the `test-support` feature; never part of a release build.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use crate::S3Options;

/// A running moto server.
#[derive(Debug)]
pub struct MotoServer {
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

/// The shared moto server that accepts any credentials.
pub fn moto() -> &'static MotoServer {
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    SERVER.get_or_init(|| start(false))
}

/// A moto server that checks credentials, so made-up keys are refused.
pub fn moto_with_auth() -> &'static MotoServer {
    static SERVER: OnceLock<MotoServer> = OnceLock::new();
    SERVER.get_or_init(|| start(true))
}

impl MotoServer {
    /// Options pointing a key store at this server with test credentials.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some(test_credentials()),
            connect_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
        }
    }

    /// An S3 client for setting up fixtures on this server.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(test_credentials())
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

/// Made-up credentials; moto without auth accepts anything.
pub fn test_credentials() -> aws_sdk_s3::config::Credentials {
    aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "digsig-tests")
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().unwrap().port()
}

fn start(auth: bool) -> MotoServer {
    let program = std::env::var("DIGSIG_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
    let port = closed_port();
    let (tx, rx) = mpsc::channel();
    // The child is spawned from a thread that lives as long as the test process,
    // and asks the kernel to kill it when that thread (so the process) ends: no
    // stray servers after `cargo test`.
    std::thread::spawn(move || {
        let mut command = Command::new(&program);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if auth {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = tx.send(Err(format!(
                    "cannot start {program}: {e}. Install it with `pip install 'moto[server]'` \
                     (scripts/test does this) or set DIGSIG_MOTO_SERVER"
                )));
                return;
            }
        };
        let _ = tx.send(Ok(()));
        let status = child.wait();
        eprintln!("moto_server on port {port} exited: {status:?}");
    });
    if let Err(e) = rx.recv().expect("moto starter thread") {
        panic!("{e}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    MotoServer {
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}
