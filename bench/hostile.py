#!/usr/bin/env python3
"""Benchmark: what hostile uploads cost the server, as figures.

Starts a release digsigserver (every domain in-process, throwaway keys for
machine/distro `demo`) with its own work dir and TMPDIR, sends each hostile
upload once, and prints per case: the status, the time to the answer, the
server's peak RSS growth and the peak disk use of its work dir and TMPDIR
(sampled every 20 ms while the request runs). A fresh server per case, so
each peak is that case's alone.

Cases: a 1 GiB module in a modules tarball; a 256 MB GNU long-name record
(to /sign/modules and /sign/optee); a gzip bomb of 10 GB of zeros split
over many gzip members (both endpoints); a 2 GB upload to /sign/swupdate
(declared length, and chunked); a 100 MB `machine` field.

Usage: bench/hostile.py [--binary target/release/digsigserver] [--quick]
"""
import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kmod import peak_rss_kib, serving  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20


def tar_header(name, size, kind=b"0"):
    h = bytearray(512)
    h[0:len(name)] = name
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[156:157] = kind
    h[257:265] = b"ustar  \0"
    h[148:156] = b"        "
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def zeros_member(total, level=1, chunk=16 * MiB):
    """A gzip member of `total` zero bytes, made without holding them."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = bytearray()
    block = bytes(chunk)
    left = total
    while left:
        n = min(left, chunk)
        out += comp.compress(block[:n])
        left -= n
    return bytes(out + comp.flush())


def write_gz_tar(path, entries):
    """entries: list of (header bytes, body size of zeros, trailing data)."""
    with open(path, "wb") as f:
        for header, size in entries:
            f.write(gzip.compress(header, 1))
            if size:
                f.write(zeros_member(size + (-size % 512)))
        f.write(gzip.compress(bytes(1024), 1))


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def run_case(binary, scratch, name, curl_args, path, extra_env):
    work = os.path.join(scratch, "work")
    tmpdir = os.path.join(scratch, "tmp")
    for d in (work, tmpdir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    env = dict(TMPDIR=tmpdir, DIGSIGSERVER_WORKDIR=work, **extra_env)
    with serving(binary, "--demo", **env) as (proc, url):
        base_rss = peak_rss_kib(proc.pid)
        peak_disk = 0
        done = threading.Event()

        def sample():
            nonlocal peak_disk
            while not done.is_set():
                peak_disk = max(peak_disk, du(work) + du(tmpdir))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "--max-time", "300", "-X", "POST", *curl_args, url + path],
                             capture_output=True, text=True)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        rss = peak_rss_kib(proc.pid)
    print(f"{name:<48} {out.stdout or 'none':>6} {elapsed:8.2f} s "
          f"{(rss - base_rss) / 1024:9.1f} MiB {peak_disk / MiB:10.1f} MiB", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/digsigserver"))
    ap.add_argument("--quick", action="store_true", help="smaller bombs (1 GB instead of 10 GB)")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        sh = ["cargo", "build", "--release", "-p", "gateway"]
        subprocess.run(sh, check=True, cwd=ROOT)
    bomb = (1 if args.quick else 10) << 30
    with tempfile.TemporaryDirectory(prefix="digsig-hostile-") as scratch:
        files = os.path.join(scratch, "files")
        os.makedirs(files)
        f = lambda n: os.path.join(files, n)  # noqa: E731
        write_gz_tar(f("big-module.tar.gz"), [(tar_header(b"lib/modules/v/huge.ko", 1 << 30), 1 << 30)])
        long = 256 * MiB
        write_gz_tar(f("long-name.tar.gz"), [(tar_header(b"././@LongLink", long, b"L"), long)])
        per = 1 << 30
        members = [(tar_header(b"lib/modules/v/z%d.ko" % i, per), per) for i in range(bomb // per)]
        write_gz_tar(f("bomb.tar.gz"), members)
        with open(f("big.bin"), "wb") as out:
            out.truncate(2 << 30)
        with open(f("machine.txt"), "wb") as out:
            out.write(b"A" * (100 * MiB))
        print(f"{'case':<48} {'status':>6} {'time':>10} {'RSS growth':>13} {'peak disk':>14}")
        no_ratio = {"DIGSIGSERVER_MAX_ARTIFACT_RATIO": "0"}
        cases = [
            ("1 GiB module (modules)", ["-F", "machine=demo", "-F", f"artifact=@{f('big-module.tar.gz')}"], "/sign/modules"),
            ("1 GiB module, ratio limit off (modules)", ["-F", "machine=demo", "-F", f"artifact=@{f('big-module.tar.gz')}"], "/sign/modules", no_ratio),
            ("256 MB long-name record (modules)", ["-F", "machine=demo", "-F", f"artifact=@{f('long-name.tar.gz')}"], "/sign/modules"),
            ("256 MB long-name record (optee)", ["-F", "machine=demo", "-F", f"artifact=@{f('long-name.tar.gz')}"], "/sign/optee"),
            (f"{bomb >> 30} GB gzip bomb in 1 GB members (modules)", ["-F", "machine=demo", "-F", f"artifact=@{f('bomb.tar.gz')}"], "/sign/modules"),
            (f"{bomb >> 30} GB gzip bomb in 1 GB members (optee)", ["-F", "machine=demo", "-F", f"artifact=@{f('bomb.tar.gz')}"], "/sign/optee"),
            ("2 GB sw-description, Content-Length", ["-F", "distro=demo", "-F", f"sw-description=@{f('big.bin')}"], "/sign/swupdate"),
            ("2 GB sw-description, chunked", ["-H", "Transfer-Encoding: chunked", "-F", "distro=demo", "-F", f"sw-description=@{f('big.bin')}"], "/sign/swupdate"),
            ("100 MB machine field", ["-F", f"machine=<{f('machine.txt')}", "-F", f"artifact=@{f('long-name.tar.gz')}"], "/sign/modules"),
        ]
        for name, curl_args, path, *env in cases:
            run_case(args.binary, scratch, name, curl_args, path, env[0] if env else {})


if __name__ == "__main__":
    main()
