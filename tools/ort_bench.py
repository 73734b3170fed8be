#!/usr/bin/env python3
"""Time onnxruntime (CPU) on a model, as the reference for Kizuki's own timings.

Usage:
    .venv/bin/python tools/ort_bench.py MODEL [--batch 1,20,128] [--threads 1,2] [--seconds 3]
                                        [--shape NAME=D0,D1,...]... [--json]

For every (batch, threads) pair: a CPUExecutionProvider session with
intra_op_num_threads=threads, inter_op_num_threads=1, sequential execution and all graph
optimisations; random input of the model's input shape, as `kizuki bench` makes it: a free
first axis takes the batch size, any other free axis (-1, '?', a name, or none) must be given
with --shape (the first axis of --shape is replaced by the batch); a few warm-up runs; then repeated
runs for --seconds (at least 5 runs). Reports median/min/max milliseconds per batch and
median milliseconds per image. --json prints a JSON list of
{batch, threads, median_ms, min_ms, max_ms, per_image_ms} instead of a table.
--profile adds, per configuration, onnxruntime's own profile (SessionOptions.enable_profiling) of 10 further
runs in a second session: milliseconds per run by op type (as it runs them after its graph rewrites).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(3)  # hide e.g. the deprecated tf_half_pixel_for_nn notice

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def make_session(model: str, threads: int, profile: bool = False) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.enable_profiling = profile
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # hide warnings such as the deprecated tf_half_pixel_for_nn notice
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def input_shape(inp, batch: int, given: list[int] | None) -> list[int]:
    """The shape `inp` is timed at; mirrors Bench.benchShape in Sources/kizuki/BenchCommand.swift."""
    declared = inp.shape
    if declared is None:
        if given is None:
            sys.exit(f"input '{inp.name}' declares no shape: give one with --shape {inp.name}=D0,D1,...")
        return [batch] + given[1:]
    if given is not None and len(given) != len(declared):
        sys.exit(f"--shape {inp.name} has {len(given)} axes; the model declares {len(declared)}: {declared}")
    shape = []
    for axis, d in enumerate(declared):
        fixed = d if isinstance(d, int) and d >= 0 else None
        if axis == 0:
            if fixed is not None and fixed != batch:
                sys.exit(f"input '{inp.name}' has a fixed batch of {fixed} (shape {declared}): use --batch {fixed}")
            shape.append(batch)
        elif fixed is not None:
            if given is not None and given[axis] != fixed:
                sys.exit(f"--shape {inp.name}: axis {axis} is {fixed} in the model, not {given[axis]}")
            shape.append(fixed)
        elif given is not None:
            shape.append(given[axis])
        else:
            example = ",".join("1" if i == 0 else (str(x) if isinstance(x, int) and x >= 0 else "N")
                               for i, x in enumerate(declared))
            sys.exit(f"input '{inp.name}' has a free axis {axis} ({d!r} in {declared}): give its size with "
                     f"--shape {inp.name}={example} (the batch axis 0 follows --batch)")
    return shape


def make_feed(sess: ort.InferenceSession, batch: int, shapes: dict, rng: np.random.Generator) -> dict:
    unknown = set(shapes) - {inp.name for inp in sess.get_inputs()}
    if unknown:
        sys.exit(f"--shape names {', '.join(sorted(unknown))}, not an input of the model")
    feed = {}
    for inp in sess.get_inputs():
        shape = input_shape(inp, batch, shapes.get(inp.name))
        dtype = DTYPES.get(inp.type, np.float32)
        feed[inp.name] = rng.random(shape, dtype=np.float64).astype(dtype)
    return feed


def op_profile(model: str, batch: int, threads: int, shapes: dict, runs: int = 10, warmup: int = 3) -> dict:
    """Milliseconds per run by op type, from onnxruntime's profiler: kernel events of the runs after the warm-up."""
    sess = make_session(model, threads, profile=True)
    feed = make_feed(sess, batch, shapes, np.random.default_rng(0))
    for _ in range(warmup + runs):
        sess.run(None, feed)
    path = sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if len(starts) != warmup + runs:
        sys.exit(f"onnxruntime's profile has {len(starts)} runs, expected {warmup + runs}")
    first = starts[warmup]
    totals: dict = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= first:
            op = e.get("args", {}).get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + e["dur"] / 1000.0
    return {op: ms / runs for op, ms in totals.items()}


def bench(model: str, batch: int, threads: int, seconds: float, shapes: dict, warmup: int = 3) -> dict:
    sess = make_session(model, threads)
    feed = make_feed(sess, batch, shapes, np.random.default_rng(0))
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    # The whole process's peak resident memory (Python and NumPy included), as Kizuki's `bench` reports its own.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"batch": batch, "threads": threads, "median_ms": med, "min_ms": min(times),
            "max_ms": max(times), "per_image_ms": med / batch, "runs": len(times), "peak_rss_mib": peak_mib}


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def shape_option(s: str) -> tuple[str, list[int]]:
    name, sep, dims = s.rpartition("=")
    try:
        sizes = [int(x) for x in dims.split(",")]
    except ValueError:
        sizes = []
    if not sep or not name or not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"--shape takes NAME=D0,D1,... with positive sizes, got '{s}'")
    return name, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batch", type=ints, default=[1, 20, 128])
    ap.add_argument("--threads", type=ints, default=[1, 2])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--shape", type=shape_option, action="append", default=[], metavar="NAME=D0,D1,...")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--profile", action="store_true", help="add onnxruntime's per-op-type profile")
    a = ap.parse_args()
    shapes = dict(a.shape)
    if len(shapes) != len(a.shape):
        ap.error("an input's --shape is given twice")
    results = [bench(a.model, b, t, a.seconds, shapes) for t in a.threads for b in a.batch]
    if a.profile:
        for r in results:
            r["profile"] = op_profile(a.model, r["batch"], r["threads"], shapes)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"onnxruntime {ort.__version__}  {a.model}")
    print(f"{'batch':>6} {'threads':>7} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'ms/image':>9} {'runs':>5}")
    for r in results:
        print(f"{r['batch']:>6} {r['threads']:>7} {r['median_ms']:>10.3f} {r['min_ms']:>9.3f} "
              f"{r['max_ms']:>9.3f} {r['per_image_ms']:>9.4f} {r['runs']:>5}")


if __name__ == "__main__":
    main()
