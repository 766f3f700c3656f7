#!/usr/bin/env python3
"""Benchmark: digsig under mixed and concurrent load, against a release
digsigserver (every domain in one process), on loopback.

  1. Concurrent module trees: one modules-500 request alone, then 4 at once
     (the bbclass's curl call each). Prints wall time, throughput relative to
     the single request, server CPU (how many cores it kept busy) and peak
     RSS.
  2. Small requests beside a large one: sequential SWUpdate RSA requests
     (the swupdate class's call) alone, then while a modules-2000 request
     runs. Prints p50/p99 latency of each.

Usage: bench/mixed.py [--modules-small 500] [--modules-large 2000]
                      [--content random|elf] [--concurrent 4] [--keep DIR]
                      [--binary DIGSIGSERVER]
"""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmod  # noqa: E402  (tree maker, server runner, /proc readers)

ROOT = kmod.ROOT


def post_modules(url, tarball, out):
    t0 = time.monotonic()
    kmod.sh("curl", "--silent", "--fail", "-X", "POST", "-F", "machine=bench", "-F", "hashalg=sha512",
            "-F", f"artifact=@{tarball}", "--output", out, f"{url}/sign/modules")
    return time.monotonic() - t0


def swupdate_latencies(url, doc, stop=None, count=200):
    """Sequential swupdate requests (each a fresh curl, as the class does):
    `count` of them, or as many as fit until `stop` is set."""
    times = []
    while (stop is None and len(times) < count) or (stop is not None and not stop.is_set()):
        t0 = time.monotonic()
        subprocess.run(["curl", "--silent", "--fail", "-o", "/dev/null", "-X", "POST", "-F", "distro=bench",
                        "-F", "method=RSA", "-F", f"sw-description=@{doc}", f"{url}/sign/swupdate"],
                       check=True)
        times.append(time.monotonic() - t0)
    return times


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules-small", type=int, default=500)
    ap.add_argument("--modules-large", type=int, default=2000)
    ap.add_argument("--content", choices=["elf", "random"], default="random")
    ap.add_argument("--concurrent", type=int, default=4)
    ap.add_argument("--keep")
    ap.add_argument("--binary", help="run another digsigserver binary (e.g. one built from an earlier "
                                     "commit) instead of building this tree's")
    args = ap.parse_args()

    binary = kmod.digsigserver(args.binary)

    work = args.keep or tempfile.mkdtemp(prefix="digsig-bench-mixed-")
    os.makedirs(work, exist_ok=True)
    kdir = os.path.join(work, "keys/bench/kmodsign")
    sdir = os.path.join(work, "keys/bench/swupdate")
    os.makedirs(kdir, exist_ok=True)
    os.makedirs(sdir, exist_ok=True)
    kmod.sh("openssl", "req", "-new", "-x509", "-nodes", "-days", "3", "-newkey", "rsa:2048",
            "-subj", "/CN=digsig bench", "-keyout", os.path.join(kdir, "kernel-signkey.priv"),
            "-out", os.path.join(kdir, "kernel-signkey.x509"), stderr=subprocess.DEVNULL)
    kmod.sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", os.path.join(sdir, "rsa-private.key"), stderr=subprocess.DEVNULL)
    doc = os.path.join(work, "sw-description")
    with open(doc, "w") as f:
        f.write('software = { version = "1.0.0"; };\n')
    tarballs = {}
    for label, count in (("small", args.modules_small), ("large", args.modules_large)):
        tree = os.path.join(work, f"tree-{label}")
        shutil.rmtree(tree, ignore_errors=True)
        kmod.make_tree(tree, count, 7, args.content)
        tarballs[label] = os.path.join(work, f"{label}.tar.gz")
        kmod.sh("tar", "-C", tree, "-c", "-z", "-f", tarballs[label], "lib/modules")
        shutil.rmtree(tree)
    print(f"{args.content} content, RSA-2048, sha512; {os.cpu_count()} cores", flush=True)

    try:
        with kmod.serving(binary, DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys",
                          DIGSIGSERVER_WORKDIR=work) as (gw, url):
            out = lambda i: os.path.join(work, f"out-{i}.tar.gz")  # noqa: E731
            post_modules(url, tarballs["small"], out(0))  # warm-up
            cpu0 = kmod.cpu_seconds(gw.pid)
            single = post_modules(url, tarballs["small"], out(0))
            single_cpu = kmod.cpu_seconds(gw.pid) - cpu0
            cpu0 = kmod.cpu_seconds(gw.pid)
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
                list(pool.map(lambda i: post_modules(url, tarballs["small"], out(i)), range(args.concurrent)))
            together = time.monotonic() - t0
            together_cpu = kmod.cpu_seconds(gw.pid) - cpu0
            print(f"\n== {args.concurrent} concurrent modules-{args.modules_small} requests")
            print(f"one alone:        {single:6.2f} s  (server CPU {single_cpu:.2f} s, "
                  f"{single_cpu / single:.2f} cores busy)")
            print(f"{args.concurrent} at once:        {together:6.2f} s  (server CPU {together_cpu:.2f} s, "
                  f"{together_cpu / together:.2f} cores busy)")
            print(f"throughput:       {args.concurrent * single / together:6.2f}x one request's "
                  f"(the cores: {os.cpu_count()})")
            print(f"peak RSS so far:  {kmod.peak_rss_kib(gw.pid) / 1024:6.1f} MiB")

            alone = swupdate_latencies(url, doc)
            stop = threading.Event()
            box = {}
            big = threading.Thread(target=lambda: box.update(t=post_modules(url, tarballs["large"], out(99))))
            big.start()
            time.sleep(0.2)
            beside = []
            probe = threading.Thread(target=lambda: beside.extend(swupdate_latencies(url, doc, stop)))
            probe.start()
            big.join()
            stop.set()
            probe.join()
            print(f"\n== SWUpdate requests beside a modules-{args.modules_large} request")
            print(f"alone:            p50 {percentile(alone, 50) * 1000:6.1f} ms, "
                  f"p99 {percentile(alone, 99) * 1000:6.1f} ms  ({len(alone)} requests)")
            print(f"beside it:        p50 {percentile(beside, 50) * 1000:6.1f} ms, "
                  f"p99 {percentile(beside, 99) * 1000:6.1f} ms  ({len(beside)} requests, "
                  f"during {box['t']:.2f} s; target p99 <= 50 ms)")
            print(f"peak RSS (run):   {kmod.peak_rss_kib(gw.pid) / 1024:6.1f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
