#!/usr/bin/env python3
"""Benchmark: update package signing, against the reference way, same run.

1. SWUpdate RSA: requests/s at concurrency 8 through a release digsigserver
   (update domain embedded) with the swupdate class's form, versus the
   reference way, one `openssl dgst -sha256 -sign` process per request, 8 at
   a time. Both sign the same sw-description with the same RSA-2048 key.
   Each digsig run prints the server's own CPU time per request (from
   /proc), with keys fetched per request (the default) and with
   DIGSIGSERVER_KEY_CACHE_SECONDS=60; --baseline BIN adds a run of another
   digsigserver binary (e.g. an earlier commit's) in the same run.
2. Mender: an artifact of --mender-mb MB signed in place via file://,
   --mender-rounds times (medians printed), each time on a new unsigned
   copy, versus `cp` of it plus `mender-artifact sign` (the yardstick), and
   upstream's way (copy in, sign, copy back): wall time of each, and the
   peak RSS of the digsigserver process and of any mender-artifact child it
   runs (read from /proc while it runs; the artifacts made here are signed
   natively, without one).

Usage: bench/update.py [--seconds 10] [--concurrency 8] [--mender-mb 200] [--mender-rounds 5]
                       [--baseline BIN] [--keep DIR]
"""
import argparse
import concurrent.futures
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kmod  # noqa: E402  (shares sh, free_port, wait_for and /proc readers)

ROOT = kmod.ROOT


def output(*args):
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def openssl_per_request(key, doc, seconds, concurrency, out_dir):
    """The reference: one openssl process per signature, `concurrency` at a time."""
    deadline = time.monotonic() + seconds

    def worker(n):
        count = 0
        out = os.path.join(out_dir, f"ref-{n}.sig")
        while time.monotonic() < deadline:
            subprocess.run(["openssl", "dgst", "-sha256", "-sign", key, "-out", out, doc], check=True)
            count += 1
        return count

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(worker, range(concurrency)))
    return total / (time.monotonic() - t0)


def children_of(pid):
    """`pid`'s children, whichever of its threads started them."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def watch_child_rss(pid, stop, peak):
    """Polls `pid`'s children's VmHWM until `stop` is set; keeps the largest."""
    while not stop.is_set():
        for child in children_of(pid):
            try:
                peak[0] = max(peak[0], kmod.peak_rss_kib(child))
            except OSError:
                pass
        time.sleep(0.005)


def make_artifact(path, megabytes, work):
    payload = os.path.join(work, "payload.bin")
    with open(payload, "wb") as f, open("/dev/urandom", "rb") as rnd:
        left = megabytes * 1_000_000
        while left > 0:
            n = min(left, 8 << 20)
            f.write(rnd.read(n))
            left -= n
    kmod.sh("mender-artifact", "write", "module-image", "-T", "script", "-n", "bench-1", "-t", "board",
            "--compression", "none", "-f", payload, "-o", path)
    os.remove(payload)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--mender-mb", type=int, default=200)
    ap.add_argument("--mender-rounds", type=int, default=5, help="Mender runs of each way; medians are printed")
    ap.add_argument("--baseline", help="another digsigserver binary to run the SWUpdate load against")
    ap.add_argument("--keep")
    args = ap.parse_args()

    print("building release digsigserver and the load generator ...", flush=True)
    kmod.sh("cargo", "build", "--release", "--quiet", "-p", "gateway", "--bin", "digsigserver",
            "--example", "post_load", cwd=ROOT)
    gw_bin = os.path.join(ROOT, "target/release/digsigserver")
    load_bin = os.path.join(ROOT, "target/release/examples/post_load")

    work = args.keep or tempfile.mkdtemp(prefix="digsig-bench-update-")
    os.makedirs(work, exist_ok=True)
    swu = os.path.join(work, "keys/bench/swupdate")
    mender = os.path.join(work, "keys/bench/mender")
    deploy = os.path.join(work, "deploy")
    for d in (swu, mender, deploy):
        os.makedirs(d, exist_ok=True)
    key = os.path.join(swu, "rsa-private.key")
    kmod.sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key,
            stderr=subprocess.DEVNULL)
    kmod.sh("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", os.path.join(mender, "private.key"), stderr=subprocess.DEVNULL)
    kmod.sh("openssl", "pkey", "-in", os.path.join(mender, "private.key"), "-pubout",
            "-out", os.path.join(work, "mender-public.key"))
    doc = os.path.join(work, "sw-description")
    with open(doc, "w") as f:
        f.write('software = { version = "1.0.0"; hardware-compatibility: [ "1.0" ];\n'
                '  images: ( { filename = "rootfs.ext4.gz"; device = "/dev/mmcblk0p2"; } ); };\n')

    try:
        print(f"\n== SWUpdate RSA-2048, concurrency {args.concurrency}, {args.seconds:.0f} s each, "
              f"{os.cpu_count()} cores", flush=True)
        ref_rps = openssl_per_request(key, doc, args.seconds, args.concurrency, work)
        print(f"openssl dgst per request:       {ref_rps:8.0f} signatures/s")
        runs = [("keys fetched per request", gw_bin, "0"), ("DIGSIGSERVER_KEY_CACHE_SECONDS=60", gw_bin, "60")]
        if args.baseline:
            runs.insert(0, (f"baseline {args.baseline}", args.baseline, "0"))
        for label, bin_path, cache in runs:
            with kmod.serving(bin_path, DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys", DIGSIGSERVER_WORKDIR=work,
                              DIGSIGSERVER_KEY_CACHE_SECONDS=cache) as (gw, url):
                # One request first, so start-up is not counted.
                output("curl", "--silent", "--fail", "-o", "/dev/null", "-F", "distro=bench",
                       "-F", f"sw-description=@{doc}", f"{url}/sign/swupdate")
                cpu0 = kmod.cpu_seconds(gw.pid)
                out = output(load_bin, f"{url}/sign/swupdate", str(args.seconds), str(args.concurrency),
                             "distro=bench", "method=RSA", f"sw-description=@{doc}")
                cpu = kmod.cpu_seconds(gw.pid) - cpu0
                ours = dict(kv.split("=") for kv in out.split())
                ours_rps = float(ours["rps"])
                requests = ours_rps * args.seconds
                print(f"digsig, {label}: {ours_rps:8.0f} req/s  (p50 {ours['p50_ms']} ms, "
                      f"p99 {ours['p99_ms']} ms), server CPU {cpu / requests * 1000:.3f} ms/request "
                      f"(target <= 0.6), {ours_rps / ref_rps:.1f}x openssl")

        with kmod.serving(gw_bin, DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys", DIGSIGSERVER_WORKDIR=work,
                          DIGSIGSERVER_MENDER_ALLOWED_URIS=f"file://{deploy}") as (gw, url):
            print(f"\n== Mender artifact, {args.mender_mb} MB payload, file://", flush=True)
            artifact = os.path.join(deploy, "image.mender")
            unsigned = os.path.join(work, "unsigned-master.mender")
            make_artifact(unsigned, args.mender_mb, work)
            size = os.path.getsize(unsigned)
            trad = os.path.join(work, "reference.key")
            kmod.sh("openssl", "rsa", "-traditional", "-in", os.path.join(mender, "private.key"), "-out", trad,
                    )
            scratch = os.path.join(work, "unsigned.mender")
            signed = os.path.join(work, "signed.mender")

            def fresh(path):
                """A new unsigned copy at `path`, written out, so no run inherits another's dirty pages."""
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                shutil.copyfile(unsigned, path)
                os.sync()

            stop, child_peak = threading.Event(), [0]
            watcher = threading.Thread(target=watch_child_rss, args=(gw.pid, stop, child_peak))
            watcher.start()
            ours_runs, cp_sign_runs, ref_runs = [], [], []
            for _ in range(args.mender_rounds):
                fresh(artifact)
                t0 = time.monotonic()
                reply = output("curl", "--silent", "--fail", "-X", "POST", "-F", "distro=bench",
                               "-F", f"artifact-uri=file://{artifact}", f"{url}/sign/mender")
                ours_runs.append(time.monotonic() - t0)
                assert reply.strip() == "Signing successful", reply
                kmod.sh("mender-artifact", "validate", "-k", os.path.join(work, "mender-public.key"), artifact,
                        stdout=subprocess.DEVNULL)
                # The references: mender-artifact on the same file after a
                # plain `cp` of it (the yardstick), and upstream's
                # way (copy in, sign, copy back).
                fresh(artifact)
                for path in (scratch, signed):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                t0 = time.monotonic()
                kmod.sh("cp", artifact, scratch)
                kmod.sh("mender-artifact", "sign", scratch, "-k", trad, "-o", signed)
                cp_sign_runs.append(time.monotonic() - t0)
                for path in (scratch, signed):
                    os.unlink(path)
                t0 = time.monotonic()
                shutil.copyfile(artifact, scratch)
                kmod.sh("mender-artifact", "sign", scratch, "-k", trad, "-o", signed)
                shutil.copyfile(signed, artifact)
                ref_runs.append(time.monotonic() - t0)
            stop.set()
            watcher.join()
            ours_s, cp_sign_s, ref_s = (statistics.median(r) for r in (ours_runs, cp_sign_runs, ref_runs))
            print(f"runs (s): ours {' '.join(f'{t:.3f}' for t in ours_runs)}; "
                  f"cp + sign {' '.join(f'{t:.3f}' for t in cp_sign_runs)}")
            print(f"artifact: {size / 1e6:.0f} MB (validated with mender-artifact validate -k)")
            print(f"medians of {args.mender_rounds} runs, each on a new unsigned copy")
            print(f"digsig in place:                {ours_s:6.3f} s")
            print(f"cp + mender-artifact sign:      {cp_sign_s:6.3f} s  "
                  f"(ours {100 * (ours_s / cp_sign_s - 1):+.0f} %, target within +10 %)")
            print(f"copy in, mender-artifact, copy back (upstream's way): {ref_s:6.3f} s")
            print(f"digsigserver peak RSS:          {kmod.peak_rss_kib(gw.pid) / 1024:6.1f} MiB  "
                  f"(whole run, target <= 64 MiB)")
            if child_peak[0]:
                print(f"mender-artifact child peak RSS: {child_peak[0] / 1024:6.1f} MiB")
            else:
                print("mender-artifact child:          none (signed natively)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
