#!/usr/bin/env python3
"""`make bench-train`: Kizuki's trainer and TensorFlow (tf_keras) on the same recipe and batch, in one run.

Usage (fixture stack): ~/.cache/kizuki/venv-fixtures/bin/python tools/bench_train.py KIZUKI
                           [--batch 128] [--threads 1,2] [--steps 10] [--warmup 3] [--rounds 1]

For each thread count, each round runs `KIZUKI bench-train --batch B --threads N --steps S --warmup W --json`
and then tools/tf_train_bench.py with the same settings, alternating the sides so both see the same machine
load. Each side reports the median of its timed steps; over rounds the median of those is shown. Prints
one table (images per second of each side, the ratio Kizuki / TensorFlow: above 1 = Kizuki trains faster,
peak RSS of each process), then Kizuki's milliseconds per op kind, forward and backward, per thread count,
headed by the CPU's name. When Kizuki fails, its error is printed, TensorFlow's numbers are still given,
and the exit status is 1.
"""
import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from bench_compare import cpu_name

TOOLS = Path(__file__).resolve().parent


def run_json(cmd: list[str]) -> tuple[dict | None, str]:
    """The last stdout line as JSON, or None and why not."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        return None, f"{cmd[0]}: {e}"
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None, f"{' '.join(cmd)} exited with {done.returncode}:\n{done.stderr.strip()}"
    try:
        return json.loads(lines[-1]), ""
    except json.JSONDecodeError as e:
        return None, f"{' '.join(cmd)} printed no JSON ({e}):\n{done.stdout.strip()[-2000:]}"


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kizuki")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args()
    threads = [int(t) for t in a.threads.split(",") if t]
    common = ["--batch", str(a.batch), "--steps", str(a.steps), "--warmup", str(a.warmup)]

    print(f"cpu {cpu_name()}; batch {a.batch}; {a.steps} timed steps after {a.warmup} warm-up, "
          f"{a.rounds} round(s) per side; medians", flush=True)
    results, errors, versions = {}, [], ""
    for n in threads:
        k_runs, t_runs = [], []
        for _ in range(a.rounds):
            k, err = run_json([a.kizuki, "bench-train", "--threads", str(n), "--json"] + common)
            if k is None:
                errors.append(f"kizuki at {n} thread(s): {err}")
            else:
                k_runs.append(k)
            t, err = run_json([sys.executable, str(TOOLS / "tf_train_bench.py"), "--threads", str(n)] + common)
            if t is None:
                sys.exit(f"TensorFlow at {n} thread(s) failed: {err}")
            t_runs.append(t)
            versions = (f"TensorFlow {t['tensorflow']} + tf_keras {t['tf_keras']}, oneDNN "
                        f"{'off' if t['onednn_opts'] == '0' else 'on'}")
        results[n] = (k_runs, t_runs)

    blas = next((r["blas"] for runs, _ in results.values() for r in runs if "blas" in r), None)
    print(versions + (f"; Kizuki's BLAS {blas}" if blas else ""))
    print(f"{'threads':>7} {'kizuki img/s':>13} {'TF img/s':>9} {'ratio':>6} {'kizuki RSS MiB':>15} {'TF RSS MiB':>11}")
    for n, (k_runs, t_runs) in results.items():
        ti = median_of(t_runs, "images_per_second")
        trss = mib(max(r["peak_rss_bytes"] for r in t_runs))
        if k_runs:
            ki = median_of(k_runs, "images_per_second")
            krss = mib(max(r["peak_rss_bytes"] for r in k_runs))
            print(f"{n:>7} {ki:>13.1f} {ti:>9.1f} {ki / ti:>6.2f} {krss:>15} {trss:>11}")
        else:
            print(f"{n:>7} {'failed':>13} {ti:>9.1f} {'-':>6} {'-':>15} {trss:>11}")

    with_ops = {n: runs for n, (runs, _) in results.items() if runs}
    if with_ops:
        kinds = list(dict.fromkeys(kind for runs in with_ops.values() for r in runs for kind in r.get("ops", {})))
        print("\nKizuki ms per step by op kind (median over rounds)")
        print(f"{'op':<32}" + "".join(f"{f'{n} thr':>10}" for n in with_ops))
        for kind in kinds:
            cells = []
            for runs in with_ops.values():
                values = [r["ops"][kind] for r in runs if kind in r.get("ops", {})]
                cells.append(f"{statistics.median(values):>10.1f}" if values else f"{'-':>10}")
            print(f"{kind:<32}" + "".join(cells))
    if errors:
        print("\n" + "\n\n".join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
