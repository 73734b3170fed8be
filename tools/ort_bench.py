#!/usr/bin/env python3
"""Time onnxruntime (CPU) on a model, as the reference for Kizuki's own timings.

Usage:
    .venv/bin/python tools/ort_bench.py MODEL [--batch 1,20,128] [--threads 1,2] [--seconds 3] [--json]

For every (batch, threads) pair: a CPUExecutionProvider session with
intra_op_num_threads=threads, inter_op_num_threads=1, sequential execution and all graph
optimisations; random float32 input of the model's input shape (symbolic dims other than
the first are set to 1, the first to the batch size); a few warm-up runs; then repeated
runs for --seconds (at least 5 runs). Reports median/min/max milliseconds per batch and
median milliseconds per image. --json prints a JSON list of
{batch, threads, median_ms, min_ms, max_ms, per_image_ms} instead of a table.
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort

ort.set_default_logger_severity(3)  # hide e.g. the deprecated tf_half_pixel_for_nn notice

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


def make_session(model: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # hide warnings such as the deprecated tf_half_pixel_for_nn notice
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def make_feed(sess: ort.InferenceSession, batch: int, rng: np.random.Generator) -> dict:
    feed = {}
    for inp in sess.get_inputs():
        shape = [batch if i == 0 else (d if isinstance(d, int) and d > 0 else 1)
                 for i, d in enumerate(inp.shape)]
        dtype = DTYPES.get(inp.type, np.float32)
        feed[inp.name] = rng.random(shape, dtype=np.float64).astype(dtype)
    return feed


def bench(model: str, batch: int, threads: int, seconds: float, warmup: int = 3) -> dict:
    sess = make_session(model, threads)
    feed = make_feed(sess, batch, np.random.default_rng(0))
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1e3)
    med = statistics.median(times)
    return {"batch": batch, "threads": threads, "median_ms": med, "min_ms": min(times),
            "max_ms": max(times), "per_image_ms": med / batch, "runs": len(times)}


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--batch", type=ints, default=[1, 20, 128])
    ap.add_argument("--threads", type=ints, default=[1, 2])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results = [bench(a.model, b, t, a.seconds) for t in a.threads for b in a.batch]
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
