#!/usr/bin/env python3
"""Build the reference MobileNetV2 embedder and export it to ONNX in several ways.

Usage (fixture stack, see tools/requirements-fixtures.txt):
    python3 -m venv .venv-fixtures
    .venv-fixtures/bin/pip install -r tools/requirements-fixtures.txt
    .venv-fixtures/bin/pip install --no-deps -r tools/requirements-fixtures-nodeps.txt
    .venv-fixtures/bin/python tools/make_fixtures.py [OUTDIR] [--force] [--only NAME,...]

OUTDIR defaults to .cache/fixtures. Architecture: Input 28x28x1 -> UpSampling2D(3) (nearest)
-> MobileNetV2 (alpha 1, no top, no pretrained weights, global average pool) -> Dense(128,
"embedding"). Variants written (NAME.onnx):
    keras3_opset13       Keras 3 (tf.keras of TF 2.21), tf2onnx opset 13, NHWC input
                         (Keras 3's UpSampling2D exports as Shape/Tile/Reshape, not Resize)
    keras3_opset18       same weights, opset 18
    keras3_nchw_opset13  same weights, tf2onnx inputs_as_nchw: input [N,1,28,28]
    tfkeras_opset13      legacy Keras 2 (tf_keras), tf2onnx opset 13 (Resize with tf_half_pixel_for_nn)
    torch_legacy         PyTorch re-implementation, TorchScript exporter (dynamo=False), opset 13
    torch_dynamo         same torch model, dynamo exporter, external data (torch_dynamo.onnx.data)
Every model has input "input" with a symbolic batch and output "embedding" [N,128].

Untrained networks have vanishing activations (outputs ~1e-12, independent of the input), so
every BatchNormalization is calibrated, in network order, on a batch of random images:
gamma ~ U(0.5,1.5), beta ~ N(0,0.1), moving_mean = batch mean + N(0,0.1)*batch std,
moving_variance = batch variance * U(0.5,1.5); the final bias ~ N(0,0.1). All seeded.

For each variant also: NAME.in.bB.npy (float32 uniform [0,1], the same images for every
variant, NCHW where the model is NCHW) and NAME.out.bB.npy (onnxruntime, 1 thread) for
B = 1 and 7, and OUTDIR/MANIFEST.json. A variant whose files all exist is skipped
unless --force.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

ort.set_default_logger_severity(3)  # hide e.g. the deprecated tf_half_pixel_for_nn notice

BATCHES = (1, 7)
SEED = 20240607
CALIB_BATCH = 32
NHWC_VARIANTS = ("keras3_opset13", "keras3_opset18", "tfkeras_opset13")
NCHW_VARIANTS = ("keras3_nchw_opset13", "torch_legacy", "torch_dynamo")
VARIANTS = NHWC_VARIANTS[:2] + ("keras3_nchw_opset13", "tfkeras_opset13", "torch_legacy", "torch_dynamo")
EXTERNAL_DATA = {"torch_dynamo": "torch_dynamo.onnx.data"}


def images(batch: int, nchw: bool) -> np.ndarray:
    """The test images for one batch size: identical pixels for every variant."""
    x = np.random.default_rng(SEED + batch).random((batch, 28, 28, 1), dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x


def calibration_images(nchw: bool) -> np.ndarray:
    x = np.random.default_rng(SEED - 1).random((CALIB_BATCH, 28, 28, 1), dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if nchw else x


def bn_values(rng: np.random.Generator, batch_mean: np.ndarray, batch_var: np.ndarray):
    c = batch_mean.shape[0]
    gamma = rng.uniform(0.5, 1.5, c)
    beta = rng.normal(0.0, 0.1, c)
    mean = batch_mean + rng.normal(0.0, 0.1, c) * np.sqrt(batch_var)
    var = np.maximum(batch_var, 1e-6) * rng.uniform(0.5, 1.5, c)
    return [v.astype(np.float32) for v in (gamma, beta, mean, var)]


# ---------------------------------------------------------------------------- Keras
def build_keras(keras, seed: int):
    """The embedder with Keras 3 (tf.keras) or Keras 2 (tf_keras): the same code builds both."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((28, 28, 1), name="input")
    x = keras.layers.UpSampling2D(3)(inp)
    base = keras.applications.MobileNetV2(include_top=False, input_tensor=x, weights=None, pooling="avg")
    out = keras.layers.Dense(128, name="embedding")(base.output)
    model = keras.Model(inp, out, name="embedder")

    rng = np.random.default_rng(seed)
    calibrate_keras(keras, model, calibration_images(nchw=False), rng)
    dense = model.get_layer("embedding")
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape).astype(np.float32)])
    return model


def calibrate_keras(keras, model, calib: np.ndarray, rng: np.random.Generator) -> None:
    """Set every BatchNormalization of an NHWC Keras model from its input statistics on `calib`."""
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    probe = keras.Model(model.input, [bn.input for bn in bns])
    for i, bn in enumerate(bns):  # in network order: each sees the already-final layers before it
        feat = probe.predict(calib, verbose=0)[i].astype(np.float64)
        bn.set_weights(bn_values(rng, feat.mean(axis=(0, 1, 2)), feat.var(axis=(0, 1, 2))))


def export_keras(model, path: str, opset: int, nchw: bool = False) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, 28, 28, 1), tf.float32, name="input")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset,
                                          inputs_as_nchw=["input"] if nchw else None)
    proto = rename_io(proto, "input", "embedding")
    onnx.save(proto, path)


# ---------------------------------------------------------------------------- PyTorch
def build_torch(seed: int):
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden, 1, 1)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),  # depthwise
                       conv_bn(hidden, cout, 1, 1, act=False)]  # linear bottleneck
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.residual else y

    class Embedder(nn.Module):
        # (expansion t, channels c, repeats n, first stride s) from the MobileNetV2 paper, alpha 1.0
        SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

        def __init__(self):
            super().__init__()
            layers, cin = [conv_bn(1, 32, 3, 2)], 32
            for t, c, n, s in self.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers.append(conv_bn(cin, 1280, 1, 1))
            self.upsample = nn.Upsample(scale_factor=3, mode="nearest")
            self.features = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.embedding = nn.Linear(1280, 128)

        def forward(self, x):
            x = self.pool(self.features(self.upsample(x)))
            return self.embedding(torch.flatten(x, 1))

    torch.manual_seed(seed)
    model = Embedder().eval()
    rng = np.random.default_rng(seed)
    calibrate_torch(model, calibration_images(nchw=True), rng)
    with torch.no_grad():
        model.embedding.bias.copy_(torch.from_numpy(rng.normal(0.0, 0.1, 128).astype(np.float32)))
    return model


def calibrate_torch(model, calib: np.ndarray, rng: np.random.Generator) -> None:
    """Set every BatchNorm2d of an NCHW torch model (in eval mode) from its input statistics on `calib`."""
    import torch
    from torch import nn

    calib = torch.from_numpy(calib)
    captured = {}

    class Captured(Exception):
        pass

    def capture(module, args):  # keep the BN input, skip the rest of the forward pass
        captured["x"] = args[0]
        raise Captured

    with torch.no_grad():
        for bn in [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]:
            hook = bn.register_forward_pre_hook(capture)
            try:
                model(calib)
            except Captured:
                pass
            finally:
                hook.remove()
            feat = captured["x"].double().numpy()
            values = bn_values(rng, feat.mean(axis=(0, 2, 3)), feat.var(axis=(0, 2, 3)))
            for tensor, v in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), values):
                tensor.copy_(torch.from_numpy(v))


def export_torch_legacy(model, path: str) -> None:
    import torch

    torch.onnx.export(model, (torch.from_numpy(images(2, nchw=True)),), path, dynamo=False,
                      opset_version=13, input_names=["input"], output_names=["embedding"],
                      dynamic_axes={"input": {0: "N"}, "embedding": {0: "N"}})


def export_torch_dynamo(model, path: str) -> None:
    import torch

    batch = torch.export.Dim("N", min=1, max=4096)
    program = torch.onnx.export(model, (torch.from_numpy(images(2, nchw=True)),), dynamo=True,
                                input_names=["input"], output_names=["embedding"],
                                dynamic_shapes=({0: batch},), verbose=False)
    data = path + ".data"
    if os.path.exists(data):
        os.remove(data)  # the saver appends to an existing data file
    program.save(path, external_data=True)
    if not os.path.exists(data):
        raise RuntimeError(f"dynamo export wrote no external data file {data}")


# ---------------------------------------------------------------------------- helpers
def rename_io(proto: onnx.ModelProto, input_name: str, output_name: str) -> onnx.ModelProto:
    """Give the (single) graph input and output fixed names, rewriting node references."""
    g = proto.graph
    renames = {}
    graph_inputs = [i for i in g.input if i.name not in {t.name for t in g.initializer}]
    if graph_inputs[0].name != input_name:
        renames[graph_inputs[0].name] = input_name
    if g.output[0].name != output_name:
        renames[g.output[0].name] = output_name
    if not renames:
        return proto
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        vi.name = renames.get(vi.name, vi.name)
    for node in g.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    return proto


def ort_run(path: str, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def files_for(outdir: str, name: str, batches=BATCHES) -> list[str]:
    """The model, its external data if any, and its inputs and onnxruntime outputs per batch."""
    files = [f"{name}.onnx"] + [f"{name}.{kind}.b{b}.npy" for b in batches for kind in ("in", "out")]
    if name in EXTERNAL_DATA:
        files.append(EXTERNAL_DATA[name])
    return [os.path.join(outdir, f) for f in files]


def write_references(outdir: str, name: str, framework_fn, inputs=None, batches=BATCHES, relative_spread=False) -> dict:
    """Check the model, run onnxruntime on the fixed images (`inputs(b)`, else this file's images), save .npy files,
    compare with the framework. The outputs must not vanish and must depend on the image: their spread over the
    batch above 1e-2, or above 1e-2 of their mean magnitude with `relative_spread`."""
    path = os.path.join(outdir, f"{name}.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    stats = {}
    for b in batches:
        x = inputs(b) if inputs else images(b, nchw=name in NCHW_VARIANTS)
        y = ort_run(path, x)
        assert inputs or y.shape == (b, 128), y.shape  # the reference embedder's embeddings
        np.save(os.path.join(outdir, f"{name}.in.b{b}.npy"), x)
        np.save(os.path.join(outdir, f"{name}.out.b{b}.npy"), y)
        ref = framework_fn(x)
        stats[f"b{b}"] = {"mean_abs": float(np.abs(y).mean()), "max_abs": float(np.abs(y).max()),
                          "std_over_batch": float(y.std(axis=0).mean()) if b > 1 else None,
                          "max_diff_vs_framework": float(np.abs(y - ref).max())}
    s = stats[f"b{batches[-1]}"]
    print(f"  {name}: output {list(y.shape)}  mean|y| {s['mean_abs']:.3f}  max|y| {s['max_abs']:.3f}  "
          f"std over batch {s['std_over_batch']:.3f}  max |ort - framework| {s['max_diff_vs_framework']:.2e}")
    assert s["mean_abs"] > 1e-2, f"{name}: outputs too small ({s['mean_abs']})"
    spread = 1e-2 * (s["mean_abs"] if relative_spread else 1.0)
    assert s["std_over_batch"] > spread, f"{name}: outputs do not depend on the input"
    assert s["max_diff_vs_framework"] < 1e-3 * max(1.0, s["max_abs"]), f"{name}: onnxruntime disagrees"
    return stats


def describe(path: str) -> dict:
    m = onnx.load(path, load_external_data=False)
    init = {t.name for t in m.graph.initializer}

    def io(v):
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in v.type.tensor_type.shape.dim]
        return {"name": v.name, "shape": dims, "elem_type": onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)}

    return {"inputs": [io(v) for v in m.graph.input if v.name not in init], "outputs": [io(v) for v in m.graph.output],
            "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
            "producer": f"{m.producer_name} {m.producer_version}".strip(), "ir_version": m.ir_version,
            "nodes": len(m.graph.node)}


# ---------------------------------------------------------------------------- main
def keep_stats(entry: dict, name: str, stats: dict, old: dict) -> dict:
    """`entry` with the build statistics of `name`: this run's, else those the previous manifest recorded."""
    if name in stats:
        entry["stats"] = stats[name]
    elif "stats" in old.get(name, {}):
        entry["stats"] = old[name]["stats"]
    return entry


def write_manifest(path: str, key: str, entries: list, seed: int = SEED, batches=BATCHES) -> None:
    """MANIFEST.json: the seed, batches and reference runtime, and the models under `key`."""
    with open(path, "w") as f:
        json.dump({"seed": seed, "batches": list(batches), "reference": f"onnxruntime {ort.__version__}, 1 thread",
                   key: entries}, f, indent=1)
    print(f"wrote {path} ({len(entries)} {key})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", default=".cache/fixtures")
    ap.add_argument("--force", action="store_true", help="rebuild variants whose files exist")
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variant names")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    wanted = [v for v in a.only.split(",") if v]
    unknown = set(wanted) - set(VARIANTS)
    if unknown:
        sys.exit(f"unknown variants: {sorted(unknown)}; known: {VARIANTS}")
    todo = [v for v in VARIANTS if v in wanted and (a.force or not all(map(os.path.exists, files_for(a.outdir, v))))]
    manifest_path = os.path.join(a.outdir, "MANIFEST.json")
    old = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            old = {v["name"]: v for v in json.load(f).get("variants", [])}
    stats = {}
    for v in VARIANTS:
        if v not in todo:
            print(f"{v}: up to date" if v in wanted else f"{v}: not requested")
    cache = {}

    def keras3():
        if "keras3" not in cache:
            import tensorflow as tf
            t0 = time.perf_counter()
            cache["keras3"] = build_keras(tf.keras, SEED)
            print(f"  built Keras 3 model in {time.perf_counter() - t0:.1f} s")
        return cache["keras3"]

    def torch_model():
        if "torch" not in cache:
            t0 = time.perf_counter()
            cache["torch"] = build_torch(SEED)
            print(f"  built torch model in {time.perf_counter() - t0:.1f} s")
        return cache["torch"]

    def keras_fn(model):
        return lambda x: model.predict(x, verbose=0)

    def keras_nchw_fn(model):
        return lambda x: model.predict(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), verbose=0)

    def torch_fn(model):
        import torch

        def run(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()
        return run

    for v in todo:
        t0 = time.perf_counter()
        print(f"{v}: building")
        path = os.path.join(a.outdir, f"{v}.onnx")
        if v == "keras3_opset13":
            export_keras(keras3(), path, 13)
            fn = keras_fn(keras3())
        elif v == "keras3_opset18":
            export_keras(keras3(), path, 18)
            fn = keras_fn(keras3())
        elif v == "keras3_nchw_opset13":
            export_keras(keras3(), path, 13, nchw=True)
            fn = keras_nchw_fn(keras3())
        elif v == "tfkeras_opset13":
            import tf_keras
            model = build_keras(tf_keras, SEED + 1)
            export_keras(model, path, 13)
            fn = keras_fn(model)
        elif v == "torch_legacy":
            export_torch_legacy(torch_model(), path)
            fn = torch_fn(torch_model())
        elif v == "torch_dynamo":
            export_torch_dynamo(torch_model(), path)
            fn = torch_fn(torch_model())
        stats[v] = write_references(a.outdir, v, fn)
        stats[v]["seconds"] = round(time.perf_counter() - t0, 1)
        print(f"{v}: done in {time.perf_counter() - t0:.1f} s")

    # Outputs of the same weights must agree across exports / layouts.
    def out(v, b):
        return np.load(os.path.join(a.outdir, f"{v}.out.b{b}.npy"))
    for group in (("keras3_opset13", "keras3_opset18", "keras3_nchw_opset13"), ("torch_legacy", "torch_dynamo")):
        present = [v for v in group if all(map(os.path.exists, files_for(a.outdir, v)))]
        for v in present[1:]:
            d = max(float(np.abs(out(v, b) - out(present[0], b)).max()) for b in BATCHES)
            print(f"max |{v} - {present[0]}| = {d:.2e}")
            assert d < 1e-3, f"{v} and {present[0]} disagree"

    variants = []
    for v in VARIANTS:
        if not all(map(os.path.exists, files_for(a.outdir, v))):
            continue
        entry = {"name": v, "file": f"{v}.onnx", "layout": "NCHW" if v in NCHW_VARIANTS else "NHWC",
                 "external_data": [EXTERNAL_DATA[v]] if v in EXTERNAL_DATA else [],
                 **describe(os.path.join(a.outdir, f"{v}.onnx")),
                 "references": {f"b{b}": {"input": f"{v}.in.b{b}.npy", "output": f"{v}.out.b{b}.npy"} for b in BATCHES}}
        variants.append(keep_stats(entry, v, stats, old))
    write_manifest(manifest_path, "variants", variants)


if __name__ == "__main__":
    main()
