#!/usr/bin/env python3
"""`make bench`: Kizuki and onnxruntime on the same model, batch sizes and thread counts, in one run.

Usage: .venv/bin/python tools/bench_compare.py KIZUKI MODEL [--batch 1,20,128] [--threads 1,2] [--seconds 3]

Each configuration alternates the two sides twice (Kizuki, onnxruntime, Kizuki, onnxruntime) so
both see the same machine load; each side's median over its rounds is reported.
Prints one table with the
ratio Kizuki / onnxruntime of the median milliseconds per image (below 1 = Kizuki is faster).
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent


def kizuki(binary, model, batch, threads, seconds):
    out = subprocess.run([binary, "bench", model, "--batch", str(batch), "--threads", str(threads),
                          "--seconds", str(seconds), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ort(model, batch, threads, seconds):
    out = subprocess.run([sys.executable, str(TOOLS / "ort_bench.py"), model, "--batch", str(batch),
                          "--threads", str(threads), "--seconds", str(seconds), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kizuki")
    p.add_argument("model")
    p.add_argument("--batch", default="1,20,128")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--seconds", type=float, default=3)
    a = p.parse_args()
    print(f"model {a.model}; {a.seconds:g} s per side per round, 2 rounds; medians of ms per image")
    print(f"{'batch':>5} {'threads':>7} {'kizuki ms/img':>14} {'ort ms/img':>11} {'ratio':>7} {'kizuki RSS MiB':>15}")
    for threads in [int(t) for t in a.threads.split(",")]:
        for batch in [int(b) for b in a.batch.split(",")]:
            k, o = [], []
            for _ in range(2):
                k.append(kizuki(a.kizuki, a.model, batch, threads, a.seconds))
                o.append(ort(a.model, batch, threads, a.seconds))
            km = statistics.median(r["per_image_ms"] for r in k)
            om = statistics.median(r["per_image_ms"] for r in o)
            rss = max(r["peak_rss_mib"] for r in k)
            print(f"{batch:>5} {threads:>7} {km:>14.3f} {om:>11.3f} {km / om:>7.2f} {rss:>15.1f}", flush=True)


if __name__ == "__main__":
    main()
