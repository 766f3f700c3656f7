#!/usr/bin/env python3
"""Benchmark: OP-TEE TA signing, against the reference way, same run.

1. A tree of --tas TAs of ~--ta-kb KB each (an OP-TEE build's ta/ tree),
   signed through a release digsigserver (OP-TEE domain embedded) with the
   documented client's curl call, --requests times: wall time per request.
2. The reference way on the same tree and key: unpack, then per TA the
   equivalent `openssl` pipeline (`openssl dgst -sha256 -binary` over header,
   uuid, version and image; `openssl pkeyutl -sign` with PSS, salt 32), the
   pieces concatenated as OP-TEE's sign_encrypt.py lays them out, then pack.
   The same pipeline with PKCS#1 v1.5 must give byte-identical TAs to
   digsig's (checked here, so the reference is known to do the same work).
3. One TA of --big-mb MB: wall time and the digsigserver's peak RSS, which
   must not grow with the image (TAs are streamed from disk).

Usage: bench/optee.py [--tas 20] [--ta-kb 200] [--requests 20] [--big-mb 200] [--keep DIR]
                      [--binary DIGSIGSERVER]
"""
import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmod  # noqa: E402  (shares sh, free_port, wait_for and /proc readers)

ROOT = kmod.ROOT
PSS = "TEE_ALG_RSASSA_PKCS1_PSS_MGF1_SHA256"
PKCS1 = "TEE_ALG_RSASSA_PKCS1_V1_5_SHA256"
ALGO_ID = {PSS: 0x70414930, PKCS1: 0x70004830}
BITS = 2048


def make_tree(root, count, kb, seed):
    """ta/<name>/out/<uuid>.stripped.elf + .ta-version, half-compressible bytes."""
    rnd = __import__("random").Random(seed)
    tas = []
    for i in range(count):
        u = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        out = os.path.join(root, "ta", f"ta{i:02d}", "out")
        os.makedirs(out, exist_ok=True)
        size = kb * 1000 + rnd.randrange(0, 4096)
        body = bytearray(os.urandom(size // 2)) + bytes(rnd.choice(b"\x00\x48\x89\xe8") for _ in range(size - size // 2))
        with open(os.path.join(out, f"{u}.stripped.elf"), "wb") as f:
            f.write(body)
        with open(os.path.join(out, f"{u}.ta-version"), "w") as f:
            f.write(f"{i}\n")
        tas.append(os.path.join(out, u))
    return tas


def pack(root, dest):
    kmod.sh("sh", "-c", f"cd '{root}' && find ta -type f | sort | xargs tar -c -z -f '{dest}'")


def post(url, tarball, out, algo):
    kmod.sh("curl", "--silent", "--show-error", "--fail", "-X", "POST", "-F", "machine=bench",
            "-F", f"algo={algo}", "-F", f"artifact=@{tarball}", "--output", out, f"{url}/sign/optee")


def reference(tarball, key, bits, work, algo):
    """Unpack, the openssl pipeline per TA, pack: upstream's work done with openssl."""
    tree = os.path.join(work, "ref-tree")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(tree)
    kmod.sh("tar", "-C", tree, "-x", "-z", "-f", tarball)
    for dirpath, _, files in os.walk(tree):
        for name in sorted(files):
            if not name.endswith(".stripped.elf"):
                continue
            stem = os.path.join(dirpath, name[: -len(".stripped.elf")])
            image = stem + ".stripped.elf"
            version = 0
            if os.path.exists(stem + ".ta-version"):
                with open(stem + ".ta-version") as f:
                    version = int(f.readline().strip(), 0)
            hdr = struct.pack("<IIIIHH", 0x4F545348, 1, os.path.getsize(image), ALGO_ID[algo], 32, bits // 8)
            tail = uuid.UUID(os.path.basename(stem)).bytes + struct.pack("<I", version)
            with open(stem + ".hdr", "wb") as f:
                f.write(hdr + tail)
            kmod.sh("sh", "-c", f"cat '{stem}.hdr' '{image}' | openssl dgst -sha256 -binary > '{stem}.dgst'")
            opts = ["-pkeyopt", "digest:sha256"]
            if algo == PSS:
                opts += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:32",
                         "-pkeyopt", "rsa_mgf1_md:sha256"]
            kmod.sh("openssl", "pkeyutl", "-sign", "-inkey", key, "-in", f"{stem}.dgst", "-out", f"{stem}.sig", *opts)
            with open(stem + ".ta", "wb") as ta:
                ta.write(hdr)
                for part in (f"{stem}.dgst", f"{stem}.sig"):
                    with open(part, "rb") as f:
                        ta.write(f.read())
                ta.write(tail)
                with open(image, "rb") as f:
                    shutil.copyfileobj(f, ta)
            for ext in (".hdr", ".dgst", ".sig", ".stripped.elf", ".ta-version"):
                if os.path.exists(stem + ext):
                    os.remove(stem + ext)
    out = os.path.join(work, "ref-out.tar.gz")
    kmod.sh("tar", "-C", tree, "-c", "-z", "-f", out, ".")


def tas_in(tarball, dest):
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    with tarfile.open(tarball) as t:
        t.extractall(dest, filter="data")
    found = {}
    for dirpath, _, files in os.walk(dest):
        for name in files:
            if name.endswith(".ta"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    found[os.path.relpath(os.path.join(dirpath, name), dest)] = f.read()
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tas", type=int, default=20)
    ap.add_argument("--ta-kb", type=int, default=200)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--keep")
    ap.add_argument("--binary", help="run another digsigserver binary (e.g. one built from an earlier "
                                     "commit) instead of building this tree's")
    args = ap.parse_args()

    gw_bin = kmod.digsigserver(args.binary)

    work = args.keep or tempfile.mkdtemp(prefix="digsig-bench-optee-")
    os.makedirs(work, exist_ok=True)
    keydir = os.path.join(work, "keys/bench/opteesign")
    os.makedirs(keydir, exist_ok=True)
    key = os.path.join(keydir, "optee-signing-key.pem")
    kmod.sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{BITS}", "-out", key,
            stderr=subprocess.DEVNULL)
    src = os.path.join(work, "src")
    make_tree(src, args.tas, args.ta_kb, 1)
    tarball = os.path.join(work, "tasign-in.tar.gz")
    pack(src, tarball)

    try:
        with kmod.serving(gw_bin, DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys", DIGSIGSERVER_WORKDIR=work) as (gw, url):
            size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src) for f in fs) / 1e6
            print(f"\n== {args.tas} TAs of ~{args.ta_kb} KB ({size_mb:.1f} MB), RSA-2048, {os.cpu_count()} cores", flush=True)

            # Same work, two ways: PKCS#1 v1.5 outputs must be byte-identical.
            out = os.path.join(work, "out.tar.gz")
            post(url, tarball, out, PKCS1)
            ours = tas_in(out, os.path.join(work, "ours"))
            reference(tarball, key, BITS, work, PKCS1)
            theirs = tas_in(os.path.join(work, "ref-out.tar.gz"), os.path.join(work, "theirs"))
            assert len(ours) == args.tas and ours == theirs, "digsig and the openssl pipeline disagree"
            print(f"check: {len(ours)} PKCS#1 v1.5 TAs byte-identical to the openssl pipeline's")

            times = []
            for _ in range(args.requests):
                t0 = time.monotonic()
                post(url, tarball, out, PSS)
                times.append(time.monotonic() - t0)
            ref_times = []
            for _ in range(3):
                t0 = time.monotonic()
                reference(tarball, key, BITS, work, PSS)
                ref_times.append(time.monotonic() - t0)
            ours_ms, ref_ms = statistics.median(times) * 1000, statistics.median(ref_times) * 1000
            print(f"digsig (curl, gateway embedded): {ours_ms:8.1f} ms/request  "
                  f"(median of {args.requests}; min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
            print(f"openssl pipeline per TA + tar:   {ref_ms:8.1f} ms/tree     (median of 3)")
            print(f"speed-up:                        {ref_ms / ours_ms:8.1f}x")
            print(f"digsigserver peak RSS so far:    {kmod.peak_rss_kib(gw.pid) / 1024:8.1f} MiB")

            if args.big_mb:
                print(f"\n== one TA of {args.big_mb} MB", flush=True)
                big = os.path.join(work, "big")
                os.makedirs(os.path.join(big, "ta"), exist_ok=True)
                u = "8aaaf200-2450-11e4-abe2-0002a5d5c51b"
                with open(os.path.join(big, "ta", f"{u}.stripped.elf"), "wb") as f:
                    for _ in range(args.big_mb):
                        f.write(os.urandom(1_000_000))
                big_tar = os.path.join(work, "big.tar.gz")
                kmod.sh("tar", "-C", big, "-c", "-f", big_tar, "-I", "gzip -1", "ta")
                t0 = time.monotonic()
                post(url, big_tar, out, PSS)
                print(f"digsig:                          {time.monotonic() - t0:8.2f} s")
                print(f"digsigserver peak RSS (whole run): {kmod.peak_rss_kib(gw.pid) / 1024:6.1f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
