#!/usr/bin/env python3
"""`make bench-suite`: Kizuki and onnxruntime on every model of the bench suite, in one run.

Usage: .venv/bin/python tools/bench_suite.py KIZUKI [SUITE_DIR] [--batch 1,20] [--threads 1,2] [--seconds 3] [--load] [--profile]

SUITE_DIR (default .cache/bench-suite) is what tools/make_bench_suite.py writes; its MANIFEST.json
lists the models. Every configuration is timed as tools/bench_compare.py times one (its functions:
both sides alternated twice, medians of ms per image). Prints one table (model, batch, threads,
Kizuki ms/img, onnxruntime ms/img, ratio), then the geometric mean of the ratios per (batch, threads):
issue 10's target for the suite is a geometric mean of at most 1.0 in every configuration.
"""
import argparse
import json
import math
from pathlib import Path

from bench_compare import add_options, blas_line, busy_load, cpu_name, ints, measure, profile


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kizuki")
    p.add_argument("suite", nargs="?", default=".cache/bench-suite")
    add_options(p, "1,20")
    a = p.parse_args()
    manifest = Path(a.suite) / "MANIFEST.json"
    models = [m["name"] for m in json.loads(manifest.read_text())["models"]]
    print(f"bench suite {a.suite}: {', '.join(models)}; {a.seconds:g} s per side per round, 2 rounds; "
          "medians of ms per image")
    print(f"cpu {cpu_name()}; blas {blas_line(a.kizuki)}")
    ratios = {}
    with busy_load(a.load):
        print(f"{'model':<18} {'batch':>5} {'threads':>7} {'kizuki ms/img':>14} {'ort ms/img':>11} {'ratio':>7}")
        for name in models:
            for threads in ints(a.threads):
                for batch in ints(a.batch):
                    model = str(Path(a.suite) / f"{name}.onnx")
                    km, om, _, _ = measure(a.kizuki, model, batch, threads, a.seconds, [])
                    ratios.setdefault((batch, threads), []).append(km / om)
                    print(f"{name:<18} {batch:>5} {threads:>7} {km:>14.3f} {om:>11.3f} {km / om:>7.2f}", flush=True)
                    if a.profile:
                        profile(a.kizuki, model, batch, threads, [])
    print("geometric mean of the ratios (target <= 1.0)")
    print(f"{'batch':>5} {'threads':>7} {'geomean':>8}")
    for (batch, threads), rs in sorted(ratios.items()):
        print(f"{batch:>5} {threads:>7} {math.exp(sum(map(math.log, rs)) / len(rs)):>8.2f}")


if __name__ == "__main__":
    main()
