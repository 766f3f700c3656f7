//! A full disk, for real: `digsigserver` runs in a private mount namespace
//! (`unshare --mount`, as root) with its work dir and upload spool on a
//! 16 MiB tmpfs. An upload too big to spool, a tree too big to extract and
//! a Mender artifact with no room for its signed copy get a 507 that says
//! so, nothing is left behind, and the next request that fits is signed.

mod harness;
#[path = "../../svc-kmod/tests/common/mod.rs"]
mod kmod_common;
#[path = "../../svc-update/tests/common/mod.rs"]
mod mender_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::*;

const UUID: &str = "8aaaf200-2450-11e4-abe2-0002a5d5c51b";

fn targz(dir: &Path, out: &Path, what: &str) {
    servicekit::testing::run(
        Command::new("tar")
            .current_dir(dir)
            .args(["-c", "-z", "-f"])
            .arg(out)
            .arg(what),
    );
}

/// The server, killed however the test ends (a failed assertion too), so
/// that it does not outlive the test holding the test's stderr open.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_full_disk_is_a_507_that_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let port = free_port();
    let script = r#"mount -t tmpfs -o size=16m digsig-test "$MNT" \
        && mkdir "$MNT/work" "$MNT/tmp" "$MNT/deploy" \
        && exec "$BIN" --demo --address 127.0.0.1 --port "$PORT""#;
    let mut server = KillOnDrop(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .env("MNT", &mnt)
            .env("BIN", env!("CARGO_BIN_EXE_digsigserver"))
            .env("PORT", port.to_string())
            .env("DIGSIGSERVER_WORKDIR", mnt.join("work"))
            .env("TMPDIR", mnt.join("tmp"))
            .env(
                "DIGSIGSERVER_MENDER_ALLOWED_URIS",
                format!("file://{}", mnt.join("deploy").display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) runs the server in its own mount namespace"),
    );
    // (It needs root for the mount; its stderr says why if it stops.)
    wait_listening(&mut server.0, port);
    let url = format!("http://127.0.0.1:{port}");
    // The server's view of its tmpfs, through its own root.
    let seen = Path::new("/proc")
        .join(server.0.id().to_string())
        .join("root");
    let work = seen.join(mnt.strip_prefix("/").unwrap()).join("work");
    let spool = seen.join(mnt.strip_prefix("/").unwrap()).join("tmp");

    // 24 MiB that does not compress, sent before `machine`: it must be
    // spooled, and there is no room for it.
    let d = tmp.path();
    servicekit::testing::run(
        Command::new("sh")
            .current_dir(d)
            .args(["-c", "head -c 25165824 /dev/urandom > noise.bin"]),
    );
    let noise = format!("artifact=@{}", d.join("noise.bin").display());
    let (status, _, body) = curl(
        &format!("{url}/sign/optee"),
        &["-F", &noise, "-F", "machine=demo"],
    );
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("disk is full"), "{text}");
    // After `machine`, as clients send it, it is read as it arrives and never
    // spooled: what is wrong with it is then what the client hears.
    let (status, _, body) = curl(
        &format!("{url}/sign/optee"),
        &["-F", "machine=demo", "-F", &noise],
    );
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not gzip"), "{text}");

    // A small upload whose tree does not fit once extracted (40 MiB of zeros).
    let tree = d.join("tree/ta");
    std::fs::create_dir_all(&tree).unwrap();
    let elf = std::fs::File::create(tree.join(format!("{UUID}.stripped.elf"))).unwrap();
    elf.set_len(40 << 20).unwrap();
    targz(&d.join("tree"), &d.join("big-tree.tar.gz"), "ta");
    let (status, _, body) = curl(
        &format!("{url}/sign/optee"),
        &[
            "-F",
            "machine=demo",
            "-F",
            &format!("artifact=@{}", d.join("big-tree.tar.gz").display()),
        ],
    );
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("disk is full"), "{text}");

    // Nothing left in the work dir or the spool.
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = || -> Vec<String> {
        [&work, &spool]
            .iter()
            .flat_map(|dir| std::fs::read_dir(dir).unwrap())
            .map(|e| e.unwrap().path().display().to_string())
            // --demo keeps its throwaway keys in TMPDIR for its lifetime.
            .filter(|p| !p.contains("digsig-demo-keys-"))
            .collect()
    };
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(left().is_empty(), "left behind: {:?}", left());

    // A Mender artifact with no room beside it for its signed copy (10 MB on
    // the 16 MiB disk): 507, the artifact as it was, nothing beside it.
    let deploy = seen.join(mnt.strip_prefix("/").unwrap()).join("deploy");
    let made = d.join("image.mender");
    mender_common::make_artifact(&made, 10_000_000);
    // Signs a copy of `original` in the deploy dir, on the full disk: a 507
    // saying `says`, the copy as it was, nothing beside it.
    let no_room = |original: &Path, says: &str| {
        std::fs::copy(original, deploy.join("image.mender")).unwrap();
        let (status, _, body) = curl(
            &format!("{url}/sign/mender"),
            &[
                "-F",
                "distro=demo",
                "-F",
                &format!(
                    "artifact-uri=file://{}/image.mender",
                    mnt.join("deploy").display()
                ),
            ],
        );
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 507, "{text}");
        assert!(text.contains(says), "{text}");
        assert!(
            std::fs::read(deploy.join("image.mender")).unwrap() == std::fs::read(original).unwrap(),
            "the artifact is as it was"
        );
        let beside: Vec<_> = std::fs::read_dir(&deploy)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["image.mender"], "nothing is left beside it");
        std::fs::remove_file(deploy.join("image.mender")).unwrap();
    };
    no_room(&made, "no room beside file://");
    // The same artifact with a PAX header, which only mender-artifact signs:
    // its "no space left on device" is a 507 too, not the artifact's fault.
    let pax = d.join("pax.mender");
    mender_common::with_pax_header(&made, &pax);
    no_room(&pax, "mender-artifact could not write");

    // A request that fits is signed.
    let small = d.join("small/ta");
    std::fs::create_dir_all(&small).unwrap();
    std::fs::write(small.join(format!("{UUID}.stripped.elf")), b"a small TA").unwrap();
    targz(&d.join("small"), &d.join("small.tar.gz"), "ta");
    let (status, _, body) = curl(
        &format!("{url}/sign/optee"),
        &[
            "-F",
            "machine=demo",
            "-F",
            &format!("artifact=@{}", d.join("small.tar.gz").display()),
        ],
    );
    drop(server);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}
