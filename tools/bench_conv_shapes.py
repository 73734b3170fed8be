#!/usr/bin/env python3
"""Kizuki and onnxruntime on single convolutions, one shape at a time, in one run: which conv shapes are slow.

Usage: .venv/bin/python tools/bench_conv_shapes.py KIZUKI [--set resnet18|resnet50] [--batch 1] [--threads 1] [--seconds 1]

Each shape becomes a model NHWC input -> Transpose -> Conv(+bias) -> Relu -> Transpose -> NHWC output (the layout
Keras exports: Kizuki runs the conv on NHWC directly, onnxruntime reorders to its blocked layout), timed as
tools/bench_compare.py times a model (both sides alternated twice, medians). Prints ms per run and GFLOP/s of
each side and the ratio Kizuki / onnxruntime.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench_compare import cpu_name, blas_line, ints, measure

# (name, C, H, W, M, k, stride, pad): the distinct convolutions of torchvision's ResNet-18 and of Keras's ResNet50.
SETS = {
    "resnet18": [
        ("conv1 7x7/2", 3, 224, 224, 64, 7, 2, 3),
        ("layer1 3x3", 64, 56, 56, 64, 3, 1, 1),
        ("layer2 3x3/2", 64, 56, 56, 128, 3, 2, 1),
        ("layer2 3x3", 128, 28, 28, 128, 3, 1, 1),
        ("layer3 3x3/2", 128, 28, 28, 256, 3, 2, 1),
        ("layer3 3x3", 256, 14, 14, 256, 3, 1, 1),
        ("layer4 3x3/2", 256, 14, 14, 512, 3, 2, 1),
        ("layer4 3x3", 512, 7, 7, 512, 3, 1, 1),
    ],
    "resnet50": [
        ("conv2 1x1 64->64", 64, 56, 56, 64, 1, 1, 0),
        ("conv2 1x1 64->256", 64, 56, 56, 256, 1, 1, 0),
        ("conv2 1x1 256->64", 256, 56, 56, 64, 1, 1, 0),
        ("conv3 3x3 128", 128, 28, 28, 128, 3, 1, 1),
        ("conv3 1x1 512->128", 512, 28, 28, 128, 1, 1, 0),
        ("conv4 1x1 1024->256", 1024, 14, 14, 256, 1, 1, 0),
        ("conv5 1x1 512->2048", 512, 7, 7, 2048, 1, 1, 0),
    ],
}


def conv_model(path, c, h, w, m, k, stride, pad):
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array((rng.standard_normal((m, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.standard_normal(m).astype(np.float32) * 0.1, "b")
    nodes = [
        helper.make_node("Transpose", ["input"], ["x"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4),
        helper.make_node("Relu", ["y"], ["r"]),
        helper.make_node("Transpose", ["r"], ["output"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", h, w, c])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kizuki")
    p.add_argument("--set", choices=sorted(SETS), default="resnet18")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", default="1")
    p.add_argument("--seconds", type=float, default=1)
    a = p.parse_args()
    print(f"single convolutions ({a.set}), batch {a.batch}; cpu {cpu_name()}; blas {blas_line(a.kizuki)}")
    print(f"{'conv':<22} {'threads':>7} {'kizuki ms':>10} {'ort ms':>8} {'kizuki GF/s':>12} {'ort GF/s':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, c, h, w, m, k, s, pad in SETS[a.set]:
            path = str(Path(tmp) / "conv.onnx")
            conv_model(path, c, h, w, m, k, s, pad)
            oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
            gflop = 2 * a.batch * oh * ow * m * c * k * k / 1e9
            for threads in ints(a.threads):
                km, om, _, _ = measure(a.kizuki, path, a.batch, threads, a.seconds, [])
                km, om = km * a.batch, om * a.batch
                print(f"{name:<22} {threads:>7} {km:>10.3f} {om:>8.3f} {gflop / km * 1e3:>12.1f} {gflop / om * 1e3:>9.1f} "
                      f"{km / om:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
