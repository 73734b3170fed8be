#!/usr/bin/env python3
"""`make bench-instructions`: instructions per image for Kizuki and onnxruntime, counted by valgrind's callgrind.

Usage: .venv/bin/python tools/bench_instructions.py KIZUKI MODEL [--batch 20] [--runs 2,6]

Time on a shared machine is noisy; instruction counts are not. Each side runs the model at --batch on one thread
under `valgrind --tool=callgrind` twice, with a few and with more inference runs after the same start-up; the
difference of the two totals, over the extra runs and images, is the count per image without loading, planning
or interpreter start-up. Kizuki runs `kizuki bench --runs N` (two warm-up runs first); onnxruntime runs the same
shape of input N times after two warm-up runs (tools/ort_bench.py's session settings).
Kizuki runs as a copy without debug information: Debian's valgrind 3.19 cannot read the DWARF 5 that Swift emits.
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TOOLS = Path(__file__).resolve().parent

ORT_RUNNER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
from ort_bench import make_session, make_feed
sess = make_session(sys.argv[2], 1)
feed = make_feed(sess, int(sys.argv[3]), {}, np.random.default_rng(0))
for _ in range(2 + int(sys.argv[4])):
    sess.run(None, feed)
"""


def instructions(cmd: list[str]) -> int:
    """Total instructions (Ir) of `cmd` and its threads under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed under valgrind:\n{done.stderr[-2000:]}")
        found = re.search(r"Collected : (\d+)", done.stderr)
        if not found:
            sys.exit(f"no instruction count in callgrind's output:\n{done.stderr[-2000:]}")
        return int(found.group(1))


def per_image(run, batch: int, few: int, many: int) -> float:
    return (instructions(run(many)) - instructions(run(few))) / ((many - few) * batch)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kizuki")
    p.add_argument("model")
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--runs", default="2,6", help="the two run counts whose difference is measured")
    a = p.parse_args()
    few, many = (int(x) for x in a.runs.split(","))
    if not 0 < few < many:
        sys.exit("--runs takes two counts, the first smaller, e.g. 2,6")
    binary = tempfile.NamedTemporaryFile(prefix="kizuki-nodebug-", delete=False)
    binary.close()
    subprocess.run(["objcopy", "--strip-debug", a.kizuki, binary.name], check=True)
    Path(binary.name).chmod(0o755)
    try:
        kizuki = per_image(lambda n: [binary.name, "bench", a.model, "--batch", str(a.batch), "--threads", "1", "--runs", str(n),
                                      "--json"], a.batch, few, many)
    finally:
        Path(binary.name).unlink()
    ort = per_image(lambda n: [sys.executable, "-c", ORT_RUNNER, str(TOOLS), a.model, str(a.batch), str(n)],
                    a.batch, few, many)
    print(f"model {a.model}; batch {a.batch}, 1 thread; instructions per image (callgrind, {many} minus {few} runs)")
    print(f"{'kizuki':>14} {'onnxruntime':>14} {'ratio':>7}")
    print(f"{kizuki:>14,.0f} {ort:>14,.0f} {kizuki / ort:>7.2f}")


if __name__ == "__main__":
    main()
