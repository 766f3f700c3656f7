//! Starting the gateway on a loopback port for tests, and a client tree to
//! sign the way the Yocto bbclass does.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gateway::{Domain, GatewayConfig};

use crate::kmod_common::*;

/// A gateway serving real HTTP on a loopback port, stopped on drop.
pub struct TestGateway {
    // Stops the gateway before the work dir base goes.
    _server: servicekit::testing::TestServer,
    pub url: String,
    pub workdir_base: tempfile::TempDir,
}

impl TestGateway {
    /// Every built domain in-process, keys from `keyfile_uri`.
    pub fn embedded(keyfile_uri: &str) -> Self {
        Self::start(Some(keyfile_uri), |_| {})
    }

    /// Kernel modules routed to `service_url`; the other built domains
    /// in-process with an empty key store.
    pub fn routed(service_url: &str) -> Self {
        let url = reqwest::Url::parse(service_url).unwrap();
        Self::start(None, move |c| c.route(Domain::Kmod, url))
    }

    /// A gateway whose configuration `adjust` finishes. Without
    /// `keyfile_uri`, domains left in-process get an empty key store.
    pub fn start(keyfile_uri: Option<&str>, adjust: impl FnOnce(&mut GatewayConfig)) -> Self {
        let workdir_base = tempfile::tempdir().unwrap();
        let mut config = GatewayConfig::from_lookup(|_| None).unwrap();
        config.service.workdir_base = workdir_base.path().to_path_buf();
        adjust(&mut config);
        let empty_keys = workdir_base.path().join("no-keys");
        std::fs::create_dir_all(&empty_keys).unwrap();
        let uri = match keyfile_uri {
            Some(uri) => Some(uri.to_string()),
            None if config.has_embedded_domains() => {
                Some(format!("file://{}", empty_keys.display()))
            }
            None => None,
        };
        let server = servicekit::testing::TestServer::start(move |listener, shutdown| async move {
            let keystore = match uri {
                Some(uri) => Some(keystore::KeyStore::open(&uri).await.unwrap()),
                None => None,
            };
            gateway::run(listener, config, keystore, shutdown).await
        });
        TestGateway {
            url: server.url.clone(),
            _server: server,
            workdir_base,
        }
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `digsigserver --demo` on loopback `port`, to be configured and spawned.
pub fn demo_server(port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digsigserver"));
    cmd.args(["--demo", "--address", "127.0.0.1", "--port"])
        .arg(port.to_string());
    cmd
}

/// Waits until `child` listens on loopback `port` (20 s at most), failing
/// with its exit status if it stops first (a server that cannot start).
pub fn wait_listening(child: &mut std::process::Child, port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited before listening: {status}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port} after 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TestGateway {
    /// What requests left in the work dir base (nothing, once replies are read).
    pub fn leftovers(&self) -> Vec<std::path::PathBuf> {
        servicekit::testing::leftovers(self.workdir_base.path())
            .into_iter()
            .filter(|p| !p.ends_with("no-keys"))
            .collect()
    }
}

pub const KVER: &str = "6.1.0-gw";
pub const MODULES: [&str; 2] = ["kernel/drivers/gw/gwnet.ko", "extra/gwvendor.ko"];

/// `$PKGD/lib/modules/<ver>` with two modules, an index file and the usual
/// dangling `build` symlink; packed as the bbclass packs it into `client/`.
pub fn client_tree(tmp: &Path) -> std::path::PathBuf {
    let pkgd = tmp.join("pkgd");
    let base = pkgd.join("lib/modules").join(KVER);
    for (i, rel) in MODULES.iter().enumerate() {
        let path = base.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let name = Path::new(rel).file_stem().unwrap().to_str().unwrap();
        std::fs::write(
            &path,
            make_module(tmp, name, &filler(40_000 * (i + 1), i as u64)),
        )
        .unwrap();
    }
    std::fs::write(base.join("modules.dep"), "extra/gwvendor.ko:\n").unwrap();
    std::os::unix::fs::symlink("/usr/src/kernel", base.join("build")).unwrap();
    let client = tmp.join("client");
    std::fs::create_dir_all(&client).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(&pkgd)
        .args(["-c", "-z", "-f"])
        .arg(client.join("modules-in.tar.gz"))
        .arg("lib/modules"));
    client
}

/// The bbclass's exact curl and tar calls against `server`, then each module
/// checked: byte-identical to sign-file's output, and modinfo names the signer.
pub fn sign_like_the_bbclass(
    server: &str,
    tmp: &Path,
    machine: &str,
    keys: &KeyPair,
    signer: &str,
) {
    let client = tmp.join("client");
    run(Command::new("curl")
        .current_dir(&client)
        .args(["--silent", "--fail", "-X", "POST", "-F"])
        .arg(format!("machine={machine}"))
        .args([
            "-F",
            "hashalg=sha512",
            "-F",
            "artifact=@modules-in.tar.gz",
            "--output",
            "modules-out.tar.gz",
        ])
        .arg(format!("{server}/sign/modules")));
    let out = client.join("out");
    std::fs::create_dir_all(&out).unwrap();
    run(Command::new("tar").current_dir(&out).args([
        "-x",
        "--no-same-owner",
        "-f",
        "../modules-out.tar.gz",
        "./lib/modules",
    ]));
    let before = tmp.join("pkgd/lib/modules").join(KVER);
    let after = out.join("lib/modules").join(KVER);
    for rel in MODULES {
        let original = std::fs::read(before.join(rel)).unwrap();
        let reference = sign_file(tmp, "sha512", &keys.key_pem, &keys.cert_pem, &original);
        assert_eq!(
            std::fs::read(after.join(rel)).unwrap(),
            reference,
            "{rel} differs from sign-file's"
        );
        assert_eq!(modinfo(&after.join(rel), "signer"), signer);
        assert_eq!(modinfo(&after.join(rel), "sig_hashalgo"), "sha512");
    }
    assert_eq!(
        std::fs::read(after.join("modules.dep")).unwrap(),
        b"extra/gwvendor.ko:\n"
    );
    assert_eq!(
        std::fs::read_link(after.join("build")).unwrap(),
        Path::new("/usr/src/kernel")
    );
}

/// `curl url` with extra `args`: status, headers (lower-case names) and body.
pub fn curl(url: &str, args: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (body, head) = (dir.path().join("body"), dir.path().join("head"));
    let out = run(Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(args)
        .arg("--output")
        .arg(&body)
        .arg("--dump-header")
        .arg(&head)
        .args(["--write-out", "%{http_code}"])
        .arg(url));
    let status = String::from_utf8(out).unwrap().trim().parse().unwrap();
    let headers = std::fs::read_to_string(&head)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

/// The value of header `name` in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A raw HTTP exchange: sends `request`, returns everything the server sent
/// until it closed (bounded by `timeout`).
pub fn raw_exchange(addr: &str, request: &[u8], timeout: Duration) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// A stand-in service that accepts one connection, records how many request
/// bytes arrived before the peer closed (or `wait` passed), and never answers.
/// Used to see what the gateway does to the upstream connection.
pub struct SilentService {
    pub url: String,
    received: std::sync::mpsc::Receiver<(usize, bool)>,
}

impl SilentService {
    pub fn start(wait: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(wait)).unwrap();
            let mut total = 0;
            let mut buf = [0u8; 64 * 1024];
            let closed = loop {
                match conn.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => total += n,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                    Err(_) => break false, // timed out: still open
                }
            };
            let _ = tx.send((total, closed));
        });
        Self { url, received }
    }

    /// (bytes received, whether the gateway closed the connection).
    pub fn outcome(&self, within: Duration) -> (usize, bool) {
        self.received
            .recv_timeout(within)
            .expect("stand-in service saw no connection")
    }
}

/// Hex SHA-256 of `bytes` (token hashes for access files, audit records).
pub fn sha256_hex(bytes: &[u8]) -> String {
    openssl::sha::sha256(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh RSA-2048 key written to `path` with `openssl genpkey`
/// (replacing any key there).
pub fn new_rsa_key(path: &Path) {
    servicekit::testing::run(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(path),
    );
}
