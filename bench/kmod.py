#!/usr/bin/env python3
"""Benchmark: POST /sign/modules versus the reference way, in the same run.

Builds a tree of N kernel modules of realistic sizes (default 2000 modules,
20-400 KB, ~200 MB), then times
  ours:      the bbclass's curl call against a release svc-kmod, end to end
             (upload, signing, reply), and reads the service's peak RSS;
  reference: what upstream does: tar -xzf, one sign-file process per module,
             tar -czf (the kernel's sign-file from Debian's linux-kbuild-6.1).
It checks that both produce the same signed modules, then prints the figures.

With --content random the modules' bodies are random bytes (incompressible,
like encrypted or already-compressed payloads) instead of machine code.

With --baseline BIN the same request is also sent to another svc-kmod
binary (e.g. one built from an earlier commit), in the same run, and both
are printed.

Usage: bench/kmod.py [--modules N] [--key-bits 4096] [--content elf|random]
                     [--baseline BIN] [--keep DIR]
"""
import argparse
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGN_FILE = "/usr/lib/linux-kbuild-6.1/scripts/sign-file"
MODINFO_C = r'''
static const char l[] __attribute__((used, section(".modinfo"), aligned(1))) = "license=GPL";
int init_module(void) { return 0; }
'''


def sh(*args, **kw):
    subprocess.run(args, check=True, **kw)


def corpus():
    """Real machine code to pad modules with, so they compress like modules do."""
    data = bytearray()
    for name in sorted(os.listdir("/usr/bin")):
        path = os.path.join("/usr/bin", name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                data += f.read()
        if len(data) > 64 << 20:
            break
    return bytes(data)


def make_tree(root, count, seed, content="elf"):
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "m.c")
        obj = os.path.join(d, "m.o")
        with open(src, "w") as f:
            f.write(MODINFO_C)
        sh("cc", "-c", "-o", obj, src)
        with open(obj, "rb") as f:
            base = f.read()
    code = corpus() if content == "elf" else os.urandom(64 << 20)
    base_dir = os.path.join(root, "lib/modules/6.1.0-bench")
    total = 0
    for i in range(count):
        # Log-uniform over 20-400 KB: many small modules, a few large ones,
        # ~250 MB for 2000 modules, like a distro kernel's tree.
        size = int(20_000 * 20 ** rng.random())
        start = rng.randrange(0, len(code) - size)
        path = os.path.join(base_dir, "kernel", f"sub{i % 40}", f"mod{i}.ko")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base + code[start:start + size - len(base)])
        total += size
    with open(os.path.join(base_dir, "modules.dep"), "w") as f:
        f.write("".join(f"kernel/sub{i % 40}/mod{i}.ko:\n" for i in range(count)))
    os.symlink("/usr/src/kernel", os.path.join(base_dir, "build"))
    return total


def digsigserver(binary=None):
    """`binary` if given (e.g. a build of an earlier commit, to compare in
    the same run), else this tree's release digsigserver, built first."""
    if binary:
        return binary
    print("building release digsigserver ...", flush=True)
    sh("cargo", "build", "--release", "--quiet", "-p", "gateway", "--bin", "digsigserver", cwd=ROOT)
    return os.path.join(ROOT, "target/release/digsigserver")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    """Waits until something listens on loopback `port` (10 s at most)."""
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


@contextlib.contextmanager
def serving(binary, *args, **env):
    """Runs `binary --address 127.0.0.1 --port <free port> args...` with
    RUST_LOG=warn and `env` added to this environment; yields (process, base
    URL) once it listens, and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen([binary, "--address", "127.0.0.1", "--port", str(port), *args],
                            env=dict(os.environ, RUST_LOG="warn", **env),
                            stderr=subprocess.DEVNULL if args else None)
    try:
        wait_for(port)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modules", type=int, default=2000)
    ap.add_argument("--key-bits", type=int, default=4096)
    ap.add_argument("--hash", default="sha512")
    ap.add_argument("--content", choices=["elf", "random"], default="elf")
    ap.add_argument("--baseline", help="another svc-kmod binary to run the same request against")
    ap.add_argument("--rounds", type=int, default=1,
                    help="requests to each server, alternating with the baseline; the median is printed")
    ap.add_argument("--keep")
    args = ap.parse_args()

    print("building release svc-kmod ...", flush=True)
    sh("cargo", "build", "--release", "--quiet", "-p", "svc-kmod", cwd=ROOT)
    binary = os.path.join(ROOT, "target/release/svc-kmod")

    work = args.keep or tempfile.mkdtemp(prefix="digsig-bench-kmod-")
    os.makedirs(work, exist_ok=True)
    keys = os.path.join(work, "keys/bench/kmodsign")
    os.makedirs(keys, exist_ok=True)
    key, cert = os.path.join(keys, "kernel-signkey.priv"), os.path.join(keys, "kernel-signkey.x509")
    sh("openssl", "req", "-new", "-x509", "-nodes", "-days", "3", "-newkey", f"rsa:{args.key_bits}",
       "-subj", "/CN=digsig bench", "-keyout", key, "-out", cert, stderr=subprocess.DEVNULL)

    pkgd = os.path.join(work, "pkgd")
    shutil.rmtree(pkgd, ignore_errors=True)
    total = make_tree(pkgd, args.modules, 1, args.content)
    tarball = os.path.join(work, "modules-in.tar.gz")
    sh("tar", "-C", pkgd, "-c", "-z", "-f", tarball, "lib/modules")
    print(f"input: {args.modules} modules, {total / 1e6:.0f} MB uncompressed, "
          f"{os.path.getsize(tarball) / 1e6:.0f} MB gzip; {args.content} content; RSA-{args.key_bits}, {args.hash}; "
          f"{os.cpu_count()} cores", flush=True)

    # --- ours (and the baseline binary's, if given) ---
    def run_service(bin_path, out):
        with serving(bin_path, DIGSIGSERVER_KEYFILE_URI=f"file://{work}/keys",
                     DIGSIGSERVER_WORKDIR=work) as (server, url):
            # curl truncates an existing output file, which costs ~0.15 s
            # for a 257 MB reply: each run writes a new file, as the
            # reference's tar does.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
            cpu0 = cpu_seconds(server.pid)
            t0 = time.monotonic()
            sh("curl", "--silent", "--fail", "-X", "POST", "-F", "machine=bench", "-F", f"hashalg={args.hash}",
               "-F", f"artifact=@{tarball}", "--output", out, f"{url}/sign/modules")
            return time.monotonic() - t0, cpu_seconds(server.pid) - cpu0, peak_rss_kib(server.pid)

    def median_run(runs):
        runs = sorted(runs)
        return runs[len(runs) // 2][0], runs[len(runs) // 2][1], max(r[2] for r in runs)

    out = os.path.join(work, "modules-out.tar.gz")
    base_out = os.path.join(work, "baseline-out.tar.gz")
    ours_runs, base_runs = [], []
    for _ in range(args.rounds):
        ours_runs.append(run_service(binary, out))
        if args.baseline:
            base_runs.append(run_service(args.baseline, base_out))
    ours, cpu, rss = median_run(ours_runs)
    if args.baseline:
        base, base_cpu, base_rss = median_run(base_runs)
    if args.rounds > 1:
        print("rounds (wall s / service CPU s): ours "
              + ", ".join(f"{w:.2f}/{c:.2f}" for w, c, _ in ours_runs)
              + ("; baseline " + ", ".join(f"{w:.2f}/{c:.2f}" for w, c, _ in base_runs) if base_runs else ""))

    # --- reference: extract, sign-file per module, re-tar ---
    ref = os.path.join(work, "ref")
    shutil.rmtree(ref, ignore_errors=True)
    os.makedirs(ref)
    t0 = time.monotonic()
    sh("tar", "-C", ref, "-xzf", tarball)
    for dirpath, _, files in os.walk(ref):
        for name in files:
            if name.endswith(".ko"):
                sh(SIGN_FILE, args.hash, key, cert, os.path.join(dirpath, name))
    ref_out = os.path.join(work, "ref-out.tar.gz")
    sh("tar", "-C", ref, "-czf", ref_out, ".")
    reference = time.monotonic() - t0

    # Same signed modules both ways (RSA PKCS#1 v1.5 is deterministic).
    check = os.path.join(work, "check")
    shutil.rmtree(check, ignore_errors=True)
    os.makedirs(check)
    sh("tar", "-C", check, "-x", "--no-same-owner", "-f", out, "./lib/modules")
    sh("diff", "-r", "--no-dereference", "-q", os.path.join(ref, "lib"), os.path.join(check, "lib"))

    print(f"ours (curl POST /sign/modules, end to end): {ours:7.2f} s, reply {os.path.getsize(out) / 1e6:.1f} MB, "
          f"service CPU {cpu:.2f} s, peak RSS {rss / 1024:.1f} MiB")
    if args.baseline:
        print(f"baseline {args.baseline}: {base:7.2f} s, reply {os.path.getsize(base_out) / 1e6:.1f} MB, "
              f"service CPU {base_cpu:.2f} s, peak RSS {base_rss / 1024:.1f} MiB")
    print(f"reference (tar -x, {args.modules} x sign-file, tar -cz): {reference:7.2f} s, "
          f"reply {os.path.getsize(ref_out) / 1e6:.0f} MB")
    print(f"speed-up: {reference / ours:.1f}x   (target >= 15x; service CPU <= 2.5 s for 2000 random modules)")
    print(f"svc-kmod peak RSS: {rss / 1024:.1f} MiB   (target < 64 MiB)")
    print("outputs identical: yes (diff -r of the extracted trees)")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    sys.exit(main())
