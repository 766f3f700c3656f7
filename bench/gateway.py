#!/usr/bin/env python3
"""Benchmark: a 1 GB upload through the gateway to a routed service versus
straight to the service, in the same run.

Builds a module tree holding 200 modules and one incompressible 1 GB firmware
blob (so the gzip tarball sent is ~1 GB and the work is mostly streaming, which
is what the gateway adds cost to), starts a release svc-kmod and a release
digsigserver routing kernel modules to it (DIGSIGSERVER_KMOD_URL), then times
the bbclass's curl call both ways, alternating, and prints the times, the
gateway's overhead and the gateway's peak RSS.

Usage: bench/gateway.py [--gigabytes 1.0] [--rounds 2] [--keep DIR]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmod  # noqa: E402  (shares tree building and /proc readers)

ROOT = kmod.ROOT


def post(url, tarball, out):
    t0 = time.monotonic()
    kmod.sh("curl", "--silent", "--fail", "-X", "POST", "-F", "machine=bench", "-F", "hashalg=sha512",
            "-F", f"artifact=@{tarball}", "--output", out, f"{url}/sign/modules")
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gigabytes", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep")
    args = ap.parse_args()

    print("building release svc-kmod and digsigserver ...", flush=True)
    kmod.sh("cargo", "build", "--release", "--quiet", "-p", "svc-kmod", "-p", "gateway", cwd=ROOT)
    svc_bin = os.path.join(ROOT, "target/release/svc-kmod")
    gw_bin = os.path.join(ROOT, "target/release/digsigserver")

    work = args.keep or tempfile.mkdtemp(prefix="digsig-bench-gw-")
    os.makedirs(work, exist_ok=True)
    keys = os.path.join(work, "keys/bench/kmodsign")
    os.makedirs(keys, exist_ok=True)
    kmod.sh("openssl", "req", "-new", "-x509", "-nodes", "-days", "3", "-newkey", "rsa:2048",
            "-subj", "/CN=digsig bench", "-keyout", os.path.join(keys, "kernel-signkey.priv"),
            "-out", os.path.join(keys, "kernel-signkey.x509"), stderr=subprocess.DEVNULL)
    pkgd = os.path.join(work, "pkgd")
    shutil.rmtree(pkgd, ignore_errors=True)
    kmod.make_tree(pkgd, 200, 7)
    blob = os.path.join(pkgd, "lib/modules/6.1.0-bench/firmware.bin")
    with open(blob, "wb") as f, open("/dev/urandom", "rb") as rnd:
        left = int(args.gigabytes * 1e9)
        while left > 0:
            n = min(left, 8 << 20)
            f.write(rnd.read(n))
            left -= n
    tarball = os.path.join(work, "modules-in.tar.gz")
    kmod.sh("tar", "-C", pkgd, "-c", "-z", "-f", tarball, "lib/modules")
    shutil.rmtree(pkgd)
    size = os.path.getsize(tarball)
    print(f"upload: {size / 1e9:.2f} GB gzip tarball (200 modules + incompressible blob); "
          f"{os.cpu_count()} cores", flush=True)

    with kmod.serving(svc_bin, DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys",
                      DIGSIGSERVER_WORKDIR=work) as (svc, svc_url), \
            kmod.serving(gw_bin, DIGSIGSERVER_KMOD_URL=svc_url,
                         DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys") as (gw, gw_url):
        direct, routed = [], []
        out = os.path.join(work, "out.tar.gz")
        for r in range(args.rounds):
            direct.append(post(svc_url, tarball, out))
            routed.append(post(gw_url, tarball, out))
            print(f"round {r + 1}: direct {direct[-1]:.2f} s, through gateway {routed[-1]:.2f} s", flush=True)
        # The reply is a real signed tree.
        listing = subprocess.run(["tar", "-tzf", out], check=True, capture_output=True, text=True).stdout
        assert listing.count(".ko\n") == 200, "reply does not hold the 200 modules"
        gw_rss, svc_rss = kmod.peak_rss_kib(gw.pid), kmod.peak_rss_kib(svc.pid)
        gw_cpu = kmod.cpu_seconds(gw.pid)
    best_direct, best_routed = min(direct), min(routed)
    print(f"straight to svc-kmod: best {best_direct:.2f} s ({size / best_direct / 1e6:.0f} MB/s up)")
    print(f"through the gateway:  best {best_routed:.2f} s ({size / best_routed / 1e6:.0f} MB/s up)")
    print(f"gateway overhead: {100 * (best_routed / best_direct - 1):+.1f} %   (target <= 10 %)")
    print(f"gateway peak RSS: {gw_rss / 1024:.1f} MiB   (target <= 64 MiB); gateway CPU {gw_cpu:.2f} s "
          f"for {args.rounds} x {size * 2 / 1e9:.1f} GB proxied")
    print(f"svc-kmod peak RSS: {svc_rss / 1024:.1f} MiB")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
