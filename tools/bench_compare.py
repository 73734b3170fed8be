#!/usr/bin/env python3
"""`make bench`: Kizuki and onnxruntime on the same model, batch sizes and thread counts, in one run.

Usage: .venv/bin/python tools/bench_compare.py KIZUKI MODEL [--batch 1,20,128] [--threads 1,2] [--seconds 3]
                                                [--shape NAME=D0,D1,...]... [--load]

Each configuration alternates the two sides twice (Kizuki, onnxruntime, Kizuki, onnxruntime) so
both see the same machine load; each side's median over its rounds is reported.
Prints one table with the ratio Kizuki / onnxruntime of the median milliseconds per image
(below 1 = Kizuki is faster), headed by the CPU's name and the BLAS core Kizuki runs, and each side's peak
resident memory (its whole process: onnxruntime's includes the Python interpreter and NumPy it runs in).

--shape gives an input's shape to both sides (needed for inputs with free axes after the batch).
--profile prints, after each configuration, both sides' time per run by op kind (Kizuki's `bench --profile`,
onnxruntime's SessionOptions.enable_profiling), from separate profiled runs.
--load runs one busy process (a plain CPU spin loop) beside both sides for the whole run, started
before the first configuration and killed after the last: how each copes with a machine that is
not theirs alone.
"""
import argparse
import contextlib
import json
import statistics
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def run_json(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return done.stdout


def kizuki(binary, model, batch, threads, seconds, shapes, profile=False):
    out = run_json([binary, "bench", model, "--batch", str(batch), "--threads", str(threads),
                    "--seconds", str(seconds), "--json"] + (["--profile"] if profile else [])
                   + [a for s in shapes for a in ("--shape", s)])
    return json.loads(out.strip().splitlines()[-1])


def ort(model, batch, threads, seconds, shapes, profile=False):
    out = run_json([sys.executable, str(TOOLS / "ort_bench.py"), model, "--batch", str(batch),
                    "--threads", str(threads), "--seconds", str(seconds), "--json"] + (["--profile"] if profile else [])
                   + [a for s in shapes for a in ("--shape", s)])
    return json.loads(out)[0]


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def blas_line(binary):
    """The `blas:` and `conv:` lines of `kizuki --version`: OpenBLAS core and who chose it, the NHWC kernels' ISA."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    blas = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("blas:")), "unknown")
    conv = next((l.split(":", 1)[1].strip().split(" (")[0] for l in out.splitlines() if l.startswith("conv:")), "unknown")
    return f"{blas}; conv {conv}"


def print_profiles(kizuki_ops: dict, ort_ops: dict, top: int = 8):
    """Two columns of (op kind, ms per run), largest first; each side names op kinds its own way."""
    k = sorted(kizuki_ops.items(), key=lambda kv: -kv[1])[:top]
    o = sorted(ort_ops.items(), key=lambda kv: -kv[1])[:top]
    print(f"      {'Kizuki op kind':<30} {'ms/run':>8}    {'onnxruntime op':<22} {'ms/run':>8}")
    for i in range(max(len(k), len(o))):
        left = f"{k[i][0]:<30} {k[i][1]:>8.2f}" if i < len(k) else " " * 39
        right = f"{o[i][0]:<22} {o[i][1]:>8.2f}" if i < len(o) else ""
        print(f"      {left}    {right}")
    print(f"      {'total':<30} {sum(kizuki_ops.values()):>8.2f}    {'total':<22} {sum(ort_ops.values()):>8.2f}", flush=True)


def profile(binary, model, batch, threads, shapes):
    """--profile: both sides' time per op kind for one configuration, from separate profiled runs."""
    print_profiles(kizuki(binary, model, batch, threads, 1, shapes, profile=True)["profile"],
                   ort(model, batch, threads, 0.1, shapes, profile=True)["profile"])


def measure(binary, model, batch, threads, seconds, shapes):
    """One configuration, both sides alternated twice: (Kizuki ms/img, onnxruntime ms/img, Kizuki peak RSS MiB,
    onnxruntime peak RSS MiB); each side's peak is its whole process's (one process per round)."""
    k, o = [], []
    for _ in range(2):
        k.append(kizuki(binary, model, batch, threads, seconds, shapes))
        o.append(ort(model, batch, threads, seconds, shapes))
    return (statistics.median(r["per_image_ms"] for r in k), statistics.median(r["per_image_ms"] for r in o),
            max(r["peak_rss_mib"] for r in k), max(r["peak_rss_mib"] for r in o))


@contextlib.contextmanager
def busy_load(enabled):
    """--load: one CPU spin loop beside both sides for the whole run."""
    if not enabled:
        yield
        return
    load = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    print(f"load: one busy process (pid {load.pid}) beside both sides")
    try:
        yield
    finally:
        load.kill()
        load.wait()


def add_options(p, batch):
    """The options bench_compare.py and bench_suite.py share."""
    p.add_argument("--batch", default=batch)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--load", action="store_true", help="run one busy process beside both sides")
    p.add_argument("--profile", action="store_true",
                   help="after each configuration, milliseconds per run by op kind: Kizuki's beside onnxruntime's")


def ints(s):
    return [int(x) for x in s.split(",") if x]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kizuki")
    p.add_argument("model")
    add_options(p, "1,20,128")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D0,D1,...")
    a = p.parse_args()
    print(f"model {a.model}; {a.seconds:g} s per side per round, 2 rounds; medians of ms per image")
    print(f"cpu {cpu_name()}; blas {blas_line(a.kizuki)}")
    with busy_load(a.load):
        print(f"{'batch':>5} {'threads':>7} {'kizuki ms/img':>14} {'ort ms/img':>11} {'ratio':>7} {'kizuki RSS MiB':>15} "
              f"{'ort RSS MiB':>12}")
        for threads in ints(a.threads):
            for batch in ints(a.batch):
                km, om, krss, orss = measure(a.kizuki, a.model, batch, threads, a.seconds, a.shape)
                print(f"{batch:>5} {threads:>7} {km:>14.3f} {om:>11.3f} {km / om:>7.2f} {krss:>15.1f} {orss:>12.1f}", flush=True)
                if a.profile:
                    profile(a.kizuki, a.model, batch, threads, a.shape)


if __name__ == "__main__":
    main()
