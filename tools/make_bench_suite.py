#!/usr/bin/env python3
"""Build the inference bench suite: four CNNs other than the reference embedder, with onnxruntime's outputs.

Usage (fixture stack, see tools/setup_fixtures_venv.sh):
    ~/.cache/kizuki/venv-fixtures/bin/python tools/make_bench_suite.py [OUTDIR] [--force] [--only NAME,...]

OUTDIR defaults to .cache/bench-suite. Models written (NAME.onnx), untrained (weights=None), 224x224 RGB:
    resnet50          keras.applications.ResNet50, include_top=False, pooling="avg": output [N,2048], NHWC input
    mobilenetv3small  keras.applications.MobileNetV3Small, same head: output [N,576], NHWC input
    efficientnetb0    keras.applications.EfficientNetB0, same head: output [N,1280], NHWC input
    resnet18_torch    a ResNet-18 written here in torch (3x3 convolutions, 1000 logits), NCHW input
The Keras models go through tf2onnx (opset 13) from Keras 3; the torch model through the TorchScript
exporter (opset 13). No classifier on the Keras models: a softmax would squash the differences the
tests look for. Every model has input "input" with a symbolic batch and output "output".
tf2onnx 1.17's transpose optimizer fails on MobileNetV3Small (it logs "Failed to apply
optimize_transpose": its Add handler fails on a scalar addend such as hard-sigmoid's x + 3), which leaves
about 100 NHWC/NCHW Transpose nodes in that graph; the model is kept as exported, as a user would get it.

Every BatchNormalization is calibrated exactly as make_fixtures.py does for the reference embedder
(its functions, imported), on CALIB_BATCH random images: fewer than there, because each BN costs one
forward pass of the whole network at 224x224 and the build runs in every CI (~2-3 minutes in all).

For each model also NAME.in.bB.npy (float32 uniform [0,255), the same pixels for every model, NCHW
for the torch model) and NAME.out.bB.npy (onnxruntime, 1 thread) for B = 1 and 2, and
OUTDIR/MANIFEST.json (model, exporter, opset, shapes, ops, sha256, size). A model whose files all
exist is skipped unless --force.
"""
import argparse
import collections
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnx

from make_fixtures import calibrate_keras, calibrate_torch, describe, keep_stats, ort, rename_io, write_manifest
from make_fixtures import files_for as fixture_files
from make_fixtures import write_references as fixture_references

BATCHES = (1, 2)
SEED = 20261201
CALIB_BATCH = 4
SIZE = 224
KERAS_MODELS = {"resnet50": "ResNet50", "mobilenetv3small": "MobileNetV3Small", "efficientnetb0": "EfficientNetB0"}
MODELS = tuple(KERAS_MODELS) + ("resnet18_torch",)
NCHW_MODELS = ("resnet18_torch",)
OPSET = 13


def images(batch: int, nchw: bool, seed: int) -> np.ndarray:
    """Pixels in the 0-255 range the Keras applications expect (MobileNetV3 and EfficientNet rescale inside)."""
    x = np.random.default_rng(seed).uniform(0.0, 255.0, (batch, SIZE, SIZE, 3)).astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x


def test_images(name: str, batch: int) -> np.ndarray:
    return images(batch, name in NCHW_MODELS, SEED + batch)


def calibration_images(nchw: bool) -> np.ndarray:
    return images(CALIB_BATCH, nchw, SEED - 1)


# ---------------------------------------------------------------------------- Keras
def build_keras(name: str, seed: int):
    import tensorflow as tf

    keras = tf.keras
    keras.utils.set_random_seed(seed)
    app = getattr(keras.applications, KERAS_MODELS[name])
    model = app(weights=None, include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3))
    calibrate_keras(keras, model, calibration_images(nchw=False), np.random.default_rng(seed))
    return model


def export_keras(model, path: str) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    onnx.save(rename_io(proto, "input", "output"), path)


# ---------------------------------------------------------------------------- PyTorch
def build_resnet18(seed: int):
    """ResNet-18 (He et al. 2016): a 7x7 stem, then four stages of two basic blocks of 3x3 convolutions."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [*conv_bn(3, 64, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
            for i, cout in enumerate((64, 128, 256, 512)):
                layers += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
                cin = cout
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    torch.manual_seed(seed)
    model = ResNet18().eval()
    calibrate_torch(model, calibration_images(nchw=True), np.random.default_rng(seed))
    return model


def export_torch(model, path: str) -> None:
    import torch

    torch.onnx.export(model, (torch.from_numpy(test_images("resnet18_torch", 2)),), path, dynamo=False,
                      opset_version=OPSET, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "N"}, "output": {0: "N"}})


# ---------------------------------------------------------------------------- references
def files_for(outdir: str, name: str) -> list[str]:
    return fixture_files(outdir, name, BATCHES)


def write_references(outdir: str, name: str, framework_fn) -> dict:
    """onnxruntime's outputs on the fixed images, saved, and checked against the framework's own."""
    return fixture_references(outdir, name, framework_fn, inputs=lambda b: test_images(name, b), batches=BATCHES,
                              relative_spread=True)


def manifest_entry(outdir: str, name: str) -> dict:
    path = os.path.join(outdir, f"{name}.onnx")
    with open(path, "rb") as f:
        data = f.read()
    m = onnx.load_from_string(data)
    return {"name": name, "file": f"{name}.onnx", "layout": "NCHW" if name in NCHW_MODELS else "NHWC",
            "source": f"keras.applications.{KERAS_MODELS[name]}" if name in KERAS_MODELS else "ResNet-18 (torch, this script)",
            "exporter": "tf2onnx (Keras 3)" if name in KERAS_MODELS else "torch.onnx TorchScript (dynamo=False)",
            **describe(path), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "parameters": int(sum(np.prod(t.dims) for t in m.graph.initializer)),
            "ops": dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items())),
            "references": {f"b{b}": {"input": f"{name}.in.b{b}.npy", "output": f"{name}.out.b{b}.npy"} for b in BATCHES}}


# ---------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default=".cache/bench-suite")
    ap.add_argument("--force", action="store_true", help="rebuild models whose files exist")
    ap.add_argument("--only", default=",".join(MODELS), help="comma-separated model names")
    a = ap.parse_args()
    wanted = [m for m in a.only.split(",") if m]
    unknown = set(wanted) - set(MODELS)
    if unknown:
        sys.exit(f"unknown models: {sorted(unknown)}; known: {MODELS}")
    os.makedirs(a.outdir, exist_ok=True)
    manifest_path = os.path.join(a.outdir, "MANIFEST.json")
    old = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            old = {m["name"]: m for m in json.load(f).get("models", [])}
    stats = {}
    for i, name in enumerate(MODELS):
        if name not in wanted:
            print(f"{name}: not requested")
            continue
        if not a.force and all(map(os.path.exists, files_for(a.outdir, name))):
            print(f"{name}: up to date")
            continue
        t0 = time.perf_counter()
        print(f"{name}: building")
        path = os.path.join(a.outdir, f"{name}.onnx")
        if name in KERAS_MODELS:
            model = build_keras(name, SEED + i)
            export_keras(model, path)
            fn = lambda x, model=model: model.predict(x, verbose=0)  # noqa: E731
        else:
            import torch
            model = build_resnet18(SEED + i)
            export_torch(model, path)

            def fn(x, model=model):
                with torch.no_grad():
                    return model(torch.from_numpy(x)).numpy()
        stats[name] = write_references(a.outdir, name, fn)
        stats[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{name}: done in {stats[name]['seconds']} s")

    models = []
    for name in MODELS:
        if not all(map(os.path.exists, files_for(a.outdir, name))):
            continue
        models.append(keep_stats(manifest_entry(a.outdir, name), name, stats, old))
    write_manifest(manifest_path, "models", models, SEED, BATCHES)


if __name__ == "__main__":
    main()
