#!/usr/bin/env python3
"""TensorFlow's training speed on the reference recipe: the speed reference for `kizuki bench-train`.

Usage (fixture stack): ~/.cache/kizuki/venv-fixtures/bin/python tools/tf_train_bench.py
                           [--batch 128] [--threads N] [--steps 10] [--warmup 3] [--data DIR]

tf_keras with tools/tfkeras_recipe.py's model, batch-all triplet loss and SGD (lr 1e-3, momentum 0.9);
one fixed batch: the first --batch images of the recipe's training set (Fashion-MNIST without ankle
boots, pixels / 255, label 1 for sneakers). TensorFlow runs with --threads intra-op threads and one
inter-op thread, set before it initialises, and its oneDNN kernels on (TF_ENABLE_ONEDNN_OPTS=0 turns them off).
Each step is one compiled call (tf.function: training-mode forward with the BN statistic updates, loss,
gradients, SGD update), timed alone; --warmup steps (tracing included) are not counted.
Prints one JSON object: images_per_second (batch / median step time), step_ms_median/min/max, steps,
batch, threads, peak_rss_bytes (VmHWM: the whole process, TensorFlow's runtime included), the versions,
the loss of the first and last timed step.
"""
import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow leaves its oneDNN kernels off on this machine's CPU (AMD EPYC); with them it trains ~45 % faster
# here (66 against 45 images/s at 1 thread), so they are on unless the caller says TF_ENABLE_ONEDNN_OPTS=0.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ["CUDA_VISIBLE_DEVICES"] = ""

from fashion_mnist import DATA_DIR  # noqa: E402
import tfkeras_recipe as recipe  # noqa: E402


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=10, help="timed steps (at least 10)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--data", default=DATA_DIR)
    a = ap.parse_args()
    if a.steps < 10 or a.warmup < 1 or a.batch < 2 or a.threads < 1:
        ap.error("need --steps >= 10, --warmup >= 1, --batch >= 2, --threads >= 1")

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import tf_keras as keras

    x, y, _ = recipe.training_set(a.data)
    x, y = tf.constant(x[:a.batch]), tf.constant(y[:a.batch])
    keras.utils.set_random_seed(0)
    model = recipe.build_embedder(keras)
    step = recipe.make_train_step(tf, model, recipe.sgd(keras))
    for _ in range(a.warmup):
        step(x, y)
    times, losses = [], []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        _, loss, _ = step(x, y)
        losses.append(float(loss))  # the step has finished once its loss is on the host
        times.append((time.perf_counter() - t0) * 1e3)
    median = statistics.median(times)
    print(json.dumps({"images_per_second": a.batch / median * 1e3, "step_ms_median": median,
                      "step_ms_min": min(times), "step_ms_max": max(times), "steps": a.steps, "warmup": a.warmup,
                      "batch": a.batch, "sneakers_in_batch": int(y.numpy().sum()), "threads": a.threads,
                      "peak_rss_bytes": peak_rss_bytes(), "tensorflow": tf.__version__, "tf_keras": keras.__version__,
                      "onednn_opts": os.environ["TF_ENABLE_ONEDNN_OPTS"],
                      "loss_first": losses[0], "loss_last": losses[-1]}))


if __name__ == "__main__":
    main()
