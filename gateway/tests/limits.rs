//! Limits that hold while data streams, over real TCP to the gateway with
//! every domain embedded: bodies over an endpoint's limit (declared or not),
//! stalled request heads and bodies, slow but steady uploads, and a busy
//! server asking clients to retry.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use harness::*;
use servicekit::admission::JobLimits;

/// A key store with SWUpdate RSA keys for distro `poky`.
fn swupdate_keys(tmp: &Path) -> String {
    let dir = tmp.join("keys/poky/swupdate");
    std::fs::create_dir_all(&dir).unwrap();
    servicekit::testing::run(
        std::process::Command::new("openssl")
            .current_dir(&dir)
            .args(["genpkey", "-algorithm", "RSA", "-out", "rsa-private.key"]),
    );
    format!("file://{}", tmp.join("keys").display())
}

/// A `/sign/swupdate` request: its head (with `Content-Length`) and body.
fn swupdate_request(sw_description: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    body.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"distro\"\r\n\r\npoky\r\n\
          --XyZ\r\nContent-Disposition: form-data; name=\"sw-description\"; filename=\"sw-description\"\r\n\
          Content-Type: application/octet-stream\r\n\r\n",
    );
    body.extend_from_slice(sw_description);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let head = format!(
        "POST /sign/swupdate HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head.into_bytes(), body)
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

fn read_reply(stream: &mut TcpStream, within: Duration) -> String {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn a_body_over_the_endpoints_limit_is_refused_before_it_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = TestGateway::embedded(&swupdate_keys(tmp.path()));
    // Declared: 413 at once, and curl (which waits for 100 Continue before a
    // large body) sends nothing.
    let started = Instant::now();
    let reply = raw_exchange(
        &addr(&gw.url),
        b"POST /sign/swupdate HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
          Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 2000000000\r\n\r\n",
        Duration::from_secs(10),
    );
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("limit of"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // The same with curl and a real 40 MB file, chunked (no length declared):
    // counted as it streams and cut off at the limit.
    std::fs::write(tmp.path().join("big"), vec![b'x'; 40 << 20]).unwrap();
    let (status, _, body) = curl(
        &format!("{}/sign/swupdate", gw.url),
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "-F",
            "distro=poky",
            "-F",
            &format!("sw-description=@{}", tmp.path().join("big").display()),
        ],
    );
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(gw.leftovers().is_empty(), "{:?}", gw.leftovers());
}

#[test]
fn a_trickled_request_head_is_closed_at_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(Some(&swupdate_keys(tmp.path())), |c| {
        c.service.idle_timeout = Duration::from_secs(1);
    });
    let mut stream = TcpStream::connect(addr(&gw.url)).unwrap();
    stream
        .write_all(b"POST /sign/swupdate HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    // A header line every 300 ms: never silent, never a whole head.
    let started = Instant::now();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(8) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(300));
        if stream.write_all(b"X-Trickle: 1\r\n").is_err() {
            break true;
        }
        stream
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
    };
    let held = started.elapsed();
    assert!(closed, "a trickled head was held for {held:?}");
    assert!(held < Duration::from_secs(5), "closed only after {held:?}");
}

#[test]
fn a_slow_steady_upload_is_served_and_a_stalled_one_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(Some(&swupdate_keys(tmp.path())), |c| {
        c.service.idle_timeout = Duration::from_secs(1);
    });
    let (head, body) = swupdate_request(b"software = { version = \"1.0\"; };\n");
    // Steady: a piece every 400 ms, 4 s in all, four times the idle limit.
    let mut stream = TcpStream::connect(addr(&gw.url)).unwrap();
    stream.write_all(&head).unwrap();
    for piece in body.chunks(body.len().div_ceil(10)) {
        std::thread::sleep(Duration::from_millis(400));
        stream.write_all(piece).unwrap();
    }
    let reply = read_reply(&mut stream, Duration::from_secs(10));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // Stalled: half the body, then nothing.
    let mut stream = TcpStream::connect(addr(&gw.url)).unwrap();
    stream.write_all(&head).unwrap();
    stream.write_all(&body[..body.len() / 2]).unwrap();
    let started = Instant::now();
    let reply = read_reply(&mut stream, Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "held {:?}",
        started.elapsed()
    );
    assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(gw.leftovers().is_empty(), "{:?}", gw.leftovers());
}

#[test]
fn a_busy_server_answers_503_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let gw = TestGateway::start(Some(&swupdate_keys(tmp.path())), |c| {
        c.service.jobs = JobLimits {
            max_jobs: 1,
            max_queue: 0,
        };
    });
    let (head, body) = swupdate_request(b"software = { version = \"1.0\"; };\n");
    let file = tmp.path().join("sw-description");
    std::fs::write(&file, "software = { version = \"1.0\"; };\n").unwrap();
    let field = format!("sw-description=@{}", file.display());
    // One request in progress (its upload not finished) holds the only slot.
    let mut first = TcpStream::connect(addr(&gw.url)).unwrap();
    first.write_all(&head).unwrap();
    first.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (status, headers, text) = curl(
        &format!("{}/sign/swupdate", gw.url),
        &["-F", "distro=poky", "-F", &field],
    );
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&text));
    assert_eq!(header(&headers, "retry-after"), Some("10"));
    assert!(String::from_utf8_lossy(&text).contains("busy"));
    // Once it is done, the next one is served.
    first.write_all(&body[body.len() / 2..]).unwrap();
    let reply = read_reply(&mut first, Duration::from_secs(10));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let (status, _, text) = curl(
        &format!("{}/sign/swupdate", gw.url),
        &["-F", "distro=poky", "-F", &field],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&text));
}
