#!/usr/bin/env python3
"""The Keras side of the training parity test: 5 SGD steps of the reference recipe on one real batch.

Usage (fixture stack): ~/.cache/kizuki/venv-fixtures/bin/python tools/keras_train_reference.py OUTDIR [--data DIR]
`make fixtures` writes OUTDIR = .cache/fixtures/train-parity. Deterministic: seeds, op determinism,
float32, CPU, one thread, oneDNN off.

The model, loss and optimiser are tools/tfkeras_recipe.py's (tf_keras). Its weights: Keras's glorot
initialisers from SEED, then, with NumPy's default_rng(SEED), every BatchNormalization's gamma ~ U[0.5,1.5]
and beta ~ U[-0.5,0.5], its moving statistics drawn around its input's batch statistics (see randomise),
and the Dense bias ~ U[-0.1,0.1]. The batch: the first 8 sneakers and the first 24 other images (ankle
boots excluded) of the Fashion-MNIST training file, in file order.

Files (float32 unless said; Keras layouts: conv kernels HWIO, depthwise kernels [kh,kw,C,1], Dense [in,out];
a weight's file name is its Keras name with "/" replaced by "__"):
  input.npy                  [32,28,28,1]  pixels / 255, NHWC
  labels.npy                 [32] int32    1 = sneaker, 0 = any other class
  weights/<name>.npy         every weight and moving statistic before training
  weights.h5                 the same, as tf_keras's save_weights writes it (HDF5)
  embeddings.npy             [32,128]      model(x, training=True) on the initial weights (step 1's forward)
  loss.npy                   float64 scalar, the loss of that forward
  grads/<name>.npy           the gradient of every trainable weight at the initial weights (step 1's tape)
  step_losses.npy            [5] float64   the loss of each SGD step's forward, before its update
  after/<name>.npy           every weight and moving statistic after step 5
  inference_embeddings.npy   [32,128]      model(x, training=False) after step 5
  f64/...                    float64: embeddings.npy, loss.npy, grads/<name>.npy, step_losses.npy,
                             after/<trainable name>.npy of the same run in float64, and
                             moving_after_step1/<moving statistic>.npy (see float64_twin)
  manifest.json              names, shapes, recipe constants, versions, the data indices, checks, float32
                             TensorFlow's relative distance from the float64 run per tensor, and the measured
                             answer to "does the moving variance use the Bessel-corrected batch variance?"
                             (written last: its presence means the set is complete)

Read the float32/float64 distances before choosing tolerances: at this initialisation float32 TensorFlow's
gradients are 0.2-10 % (by norm) from the exact ones and its 5-step trajectory diverges (tens of % by step 5),
because every training-mode BatchNormalization re-amplifies the rounding of the layers before it.
"""
import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # Eigen kernels only, as make_fixtures.py
os.environ["CUDA_VISIBLE_DEVICES"] = ""

import numpy as np  # noqa: E402

from fashion_mnist import DATA_DIR  # noqa: E402
import tfkeras_recipe as recipe  # noqa: E402

SEED = 20241201
SNEAKERS = 8
OTHERS = 24
STEPS = 5
TENSOR_DIRS = ("weights", "grads", "after", "f64")


def pick_batch(data_dir: str):
    """The first SNEAKERS sneakers and the first OTHERS other images of the recipe's training set."""
    x, y, index = recipe.training_set(data_dir)
    rows = np.sort(np.concatenate([np.flatnonzero(y == 1)[:SNEAKERS], np.flatnonzero(y == 0)[:OTHERS]]))
    return np.ascontiguousarray(x[rows]), y[rows], index[rows]


def randomise(keras, model, x: np.ndarray, rng: np.random.Generator) -> None:
    """Move every BN parameter and moving statistic away from 0/1, and the Dense bias away from 0.

    The moving statistics are drawn around each layer's training-mode batch statistics on x (mean + U[-0.5,0.5]
    standard deviations, variance times U[0.5,2]): drawn around 0 and 1 instead, the glorot-initialised
    network's activations shrink layer after layer in inference mode and the inference embeddings no longer
    depend on the input (their spread over the batch falls to ~1e-7), which would make them a blind check."""
    bns = bn_layers(keras, model)
    for layer in bns:
        c = layer.gamma.shape[0]
        layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype(np.float32))
        layer.beta.assign(rng.uniform(-0.5, 0.5, c).astype(np.float32))
    for layer, t in zip(bns, bn_inputs(keras, model, x)[1]):
        t = t.numpy().astype(np.float64)
        mean, var = t.mean(axis=(0, 1, 2)), t.var(axis=(0, 1, 2))
        c = mean.shape[0]
        layer.moving_mean.assign((mean + rng.uniform(-0.5, 0.5, c) * np.sqrt(var)).astype(np.float32))
        layer.moving_variance.assign((var * rng.uniform(0.5, 2.0, c)).astype(np.float32))
    dense = model.get_layer("dense")
    dense.bias.assign(rng.uniform(-0.1, 0.1, dense.bias.shape).astype(np.float32))


def bn_inputs(keras, model, x: np.ndarray):
    """Every BN layer and its input in one training-mode call, which updates each layer's moving statistics
    once: a probe model sharing the MobileNetV2's layers also returns the BN inputs."""
    base = next(l for l in model.layers if isinstance(l, keras.Model))
    bns = bn_layers(keras, base)
    probe = keras.Model(base.input, [bn.input for bn in bns] + [base.output])
    upsample = next(l for l in model.layers if isinstance(l, keras.layers.UpSampling2D))
    return bns, probe(upsample(x), training=True)[:-1]


def bn_layers(keras, model) -> list:
    """Every BatchNormalization, in network order, looking inside nested models."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += bn_layers(keras, layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def keras_name(variable, prefixes) -> str:
    """"Conv1/kernel:0" -> "Conv1/kernel", without a nested model's name in front."""
    name = variable.name.split(":")[0]
    for p in prefixes:
        if name.startswith(p + "/"):
            name = name[len(p) + 1:]
    return name


def file_name(name: str) -> str:
    return name.replace("/", "__") + ".npy"


def save_tensors(outdir: str, sub: str, tensors: dict, dtype=np.float32) -> None:
    os.makedirs(os.path.join(outdir, sub), exist_ok=True)
    for name, value in tensors.items():
        np.save(os.path.join(outdir, sub, file_name(name)), np.asarray(value, dtype=dtype))


def rel_err(got, want) -> float:
    """||got - want|| / ||want|| in float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))


def numpy_triplet_loss(e: np.ndarray, labels: np.ndarray) -> float:
    """The loss in float64 by brute force over the P x N matrix: an independent check of TensorFlow's."""
    e = e.astype(np.float64)
    d = ((e[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    same = labels[:, None] == labels[None, :]
    return float(np.maximum(d[same][:, None] - d[~same][None, :] + recipe.MARGIN, 0.0).mean())


def bessel_evidence(tf, keras, model, x: np.ndarray) -> dict:
    """Measure how BatchNormalization updates its moving variance, from one training-mode call.

    One call gives each layer's input and updates its statistics once (bn_inputs). For each layer, the new
    moving variance is compared with both candidates computed in float64 from that input (n = N*H*W values
    per channel): m*old + (1-m)*var and m*old + (1-m)*var*n/(n-1). The Bessel factor is largest, and so the
    evidence clearest, on the 3x3 layers (n = 288 at batch 32). Call it last: it changes the statistics."""
    bns = bn_layers(keras, model)
    before = [(bn.moving_mean.numpy().astype(np.float64), bn.moving_variance.numpy().astype(np.float64))
              for bn in bns]
    bns, inputs = bn_inputs(keras, model, x)
    layers, worst = [], {"biased": 0.0, "bessel": 0.0, "mean": 0.0}
    for bn, (old_mean, old_var), t in zip(bns, before, inputs):
        t = t.numpy().astype(np.float64)
        n = t.shape[0] * t.shape[1] * t.shape[2]
        m = float(bn.momentum)
        mean, var = t.mean(axis=(0, 1, 2)), t.var(axis=(0, 1, 2))
        new_mean = bn.moving_mean.numpy().astype(np.float64)
        new_var = bn.moving_variance.numpy().astype(np.float64)

        def err(want, got):  # worst relative error over the channels
            return float(np.max(np.abs(got - want) / np.abs(want)))
        e = {"biased": err(m * old_var + (1 - m) * var, new_var),
             "bessel": err(m * old_var + (1 - m) * var * n / (n - 1), new_var),
             "mean": err(m * old_mean + (1 - m) * mean, new_mean)}
        layers.append({"layer": bn.name, "n": n, "rel_err_biased": e["biased"], "rel_err_bessel": e["bessel"],
                       "rel_err_moving_mean": e["mean"]})
        for k in worst:
            worst[k] = max(worst[k], e[k])
    smallest = [l for l in layers if l["n"] == min(l["n"] for l in layers)]
    biased = max(l["rel_err_biased"] for l in smallest)
    corrected = max(l["rel_err_bessel"] for l in smallest)
    if max(biased, corrected) < 10 * min(biased, corrected):
        sys.exit(f"the Bessel test is inconclusive: worst relative errors {biased:.2e} (biased) and "
                 f"{corrected:.2e} (Bessel-corrected) on the layers with n = {smallest[0]['n']}")
    answer = corrected < biased
    return {"answer": answer,
            "method": "one training-mode call; new moving variance vs m*old + (1-m)*v with v the biased and "
                      "the Bessel-corrected (n/(n-1)) batch variance of the layer's input, float64",
            "decided_on": f"{len(smallest)} layers with n = {smallest[0]['n']} (Bessel factor "
                          f"{smallest[0]['n'] / (smallest[0]['n'] - 1):.5f}); "
                          f"worst relative errors: biased {biased:.2e}, Bessel-corrected {corrected:.2e}",
            "worst_rel_err_biased": worst["biased"], "worst_rel_err_bessel": worst["bessel"],
            "worst_rel_err_moving_mean": worst["mean"], "layers": layers}


def train(tf, keras, model, trainable: list, x: np.ndarray, labels: np.ndarray) -> dict:
    """STEPS SGD steps on the batch: step 1's embeddings, loss and gradients, and every step's loss."""
    step = recipe.make_train_step(tf, model, recipe.sgd(keras))
    x = tf.constant(x.astype(model.dtype))
    out = {"losses": []}
    for i in range(STEPS):
        embeddings, loss, grads = step(x, tf.constant(labels))
        out["losses"].append(float(loss))
        if i == 0:
            out.update(embeddings=embeddings.numpy(), loss=float(loss),
                       grads={n: g.numpy() for n, g in zip(trainable, grads)})
    return out


def float64_twin(tf, keras, initial: dict, trainable: list, x: np.ndarray, labels: np.ndarray, bessel: bool) -> dict:
    """The same weights, batch and steps in float64: how far float32 TensorFlow itself is from the exact
    values. Measured at this initialisation: float32 TensorFlow's bn_Conv1 output is already ~1e-4 (relative
    to each channel's spread) from float64's, from its float32 batch statistics over 56,448 values per channel;
    the distance grows to ~7e-3 by the last BN, and the gradients are 0.2-10 % from the exact ones. A float32
    implementation can only be held to float32 TensorFlow within that distance; the float64 tensors let a
    test measure its distance from the exact values instead. float64 BatchNormalization runs TensorFlow's
    non-fused kernel, whose moving variance has no Bessel correction, so the exact moving statistics after
    step 1 are computed here from each BN input of step 1's forward with the rule measured on the float32
    model (bessel); later moving statistics are not taken from this run."""
    keras.backend.set_floatx("float64")
    try:
        twin = recipe.build_embedder(keras)
    finally:
        keras.backend.set_floatx("float32")
    prefixes = [l.name for l in twin.layers if isinstance(l, keras.Model)]
    for v in twin.weights:
        v.assign(initial[keras_name(v, prefixes)].astype(np.float64))
    moving = {}
    for bn, t in zip(*bn_inputs(keras, twin, x.astype(np.float64))):  # the training forward at the initial weights
        t = t.numpy()
        n, m = t.shape[0] * t.shape[1] * t.shape[2], float(bn.momentum)
        mean, var = keras_name(bn.moving_mean, prefixes), keras_name(bn.moving_variance, prefixes)
        moving[mean] = m * initial[mean].astype(np.float64) + (1 - m) * t.mean(axis=(0, 1, 2))
        moving[var] = m * initial[var].astype(np.float64) + (1 - m) * t.var(axis=(0, 1, 2)) * (n / (n - 1) if bessel else 1)
    run = train(tf, keras, twin, trainable, x, labels)
    run["moving_after_step1"] = moving
    run["after"] = {keras_name(v, prefixes): v.numpy() for v in twin.trainable_weights}
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--data", default=DATA_DIR)
    a = ap.parse_args()

    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    import tf_keras as keras

    keras.utils.set_random_seed(SEED)
    model = recipe.build_embedder(keras)
    prefixes = [l.name for l in model.layers if isinstance(l, keras.Model)]
    names = [keras_name(v, prefixes) for v in model.weights]
    trainable = [keras_name(v, prefixes) for v in model.trainable_weights]
    non_trainable = [keras_name(v, prefixes) for v in model.non_trainable_weights]
    assert len(set(names)) == len(names) == len(trainable) + len(non_trainable), "weight names collide"
    bns = bn_layers(keras, model)
    epsilons, momenta = {float(l.epsilon) for l in bns}, {float(l.momentum) for l in bns}
    assert len(epsilons) == 1 and len(momenta) == 1, (epsilons, momenta)

    x, labels, rows = pick_batch(a.data)
    randomise(keras, model, x, np.random.default_rng(SEED))
    initial = {n: v.numpy() for n, v in zip(names, model.weights)}
    # The same initial weights as Keras itself writes them (save_weights, HDF5): Kizuki's .h5 reader is
    # checked against weights/*.npy. Written beside the folder first, moved in once the set is complete.
    keras_h5 = os.path.join(os.path.dirname(os.path.abspath(a.outdir)), ".train-parity-weights.h5")
    model.save_weights(keras_h5)
    run = train(tf, keras, model, trainable, x, labels)
    first_embeddings, first_loss, first_grads, step_losses = run["embeddings"], run["loss"], run["grads"], run["losses"]
    after = {n: v.numpy() for n, v in zip(names, model.weights)}
    inference = model(x, training=False).numpy()

    if os.path.exists(os.path.join(a.outdir, "manifest.json")):
        os.remove(os.path.join(a.outdir, "manifest.json"))  # the set is incomplete until it is rewritten
    for sub in TENSOR_DIRS:  # no stale tensors from an older name list
        shutil.rmtree(os.path.join(a.outdir, sub), ignore_errors=True)
    os.makedirs(a.outdir, exist_ok=True)
    np.save(os.path.join(a.outdir, "input.npy"), x)
    np.save(os.path.join(a.outdir, "labels.npy"), labels.astype(np.int32))
    save_tensors(a.outdir, "weights", initial)
    shutil.move(keras_h5, os.path.join(a.outdir, "weights.h5"))
    np.save(os.path.join(a.outdir, "embeddings.npy"), first_embeddings.astype(np.float32))
    np.save(os.path.join(a.outdir, "loss.npy"), np.float64(first_loss))
    save_tensors(a.outdir, "grads", first_grads)
    np.save(os.path.join(a.outdir, "step_losses.npy"), np.array(step_losses, dtype=np.float64))
    save_tensors(a.outdir, "after", after)
    np.save(os.path.join(a.outdir, "inference_embeddings.npy"), inference.astype(np.float32))

    # Checks of the reference itself, and facts the parity test needs to pick its comparisons.
    numpy_loss = numpy_triplet_loss(first_embeddings, labels)
    loss_err = abs(numpy_loss - first_loss) / numpy_loss
    grad_norms = {n: float(np.linalg.norm(g.astype(np.float64))) for n, g in first_grads.items()}
    largest = max(grad_norms.values())
    moved = {n: float(np.abs(after[n] - initial[n]).max()) for n in names}
    assert np.isfinite(step_losses).all() and first_loss > 0, step_losses
    assert loss_err < 1e-5, f"TensorFlow's loss {first_loss} vs NumPy's float64 {numpy_loss}"
    assert largest > 0 and all(moved[n] > 0 for n in non_trainable), "no gradient, or a moving statistic did not move"
    bessel = bessel_evidence(tf, keras, model, x)
    exact = float64_twin(tf, keras, initial, trainable, x, labels, bessel["answer"])
    f64 = os.path.join(a.outdir, "f64")
    os.makedirs(f64, exist_ok=True)
    np.save(os.path.join(f64, "embeddings.npy"), exact["embeddings"])
    np.save(os.path.join(f64, "loss.npy"), np.float64(exact["loss"]))
    np.save(os.path.join(f64, "step_losses.npy"), np.array(exact["losses"], dtype=np.float64))
    save_tensors(f64, "grads", exact["grads"], np.float64)
    save_tensors(f64, "after", exact["after"], np.float64)
    save_tensors(f64, "moving_after_step1", exact["moving_after_step1"], np.float64)
    f32_vs_f64 = {"embeddings": rel_err(first_embeddings, exact["embeddings"]),
                  "loss": rel_err(first_loss, exact["loss"]),
                  "step_losses": [rel_err(u, v) for u, v in zip(step_losses, exact["losses"])],
                  "grads": {n: rel_err(first_grads[n], exact["grads"][n]) for n in trainable},
                  "after": {n: rel_err(after[n], exact["after"][n]) for n in trainable}}
    grad_errs = sorted(v for n, v in f32_vs_f64["grads"].items() if grad_norms[n] >= 1e-4 * largest)

    manifest = {
        "format": 1,
        "description": "tf_keras reference for Kizuki's training parity test (tools/keras_train_reference.py)",
        "files": {"input": "input.npy", "labels": "labels.npy", "embeddings": "embeddings.npy", "loss": "loss.npy",
                  "step_losses": "step_losses.npy", "inference_embeddings": "inference_embeddings.npy",
                  "weights": "weights/<name with / as __>.npy", "grads": "grads/<name with / as __>.npy",
                  "after": "after/<name with / as __>.npy"},
        "batch": int(x.shape[0]),
        "steps": STEPS,
        "trainable": trainable,
        "non_trainable": non_trainable,
        "shapes": {n: list(initial[n].shape) for n in names},
        "layouts": {"conv kernel": "HWIO [kh,kw,in,out]", "depthwise_kernel": "[kh,kw,C,1]",
                    "dense kernel": "[in,out]", "input": "NHWC", "embeddings": "[N,128]"},
        "recipe": {"loss": "batch-all triplet, squared Euclidean distances, positives include i == j, "
                           "mean over P x N of max(d_pos - d_neg + margin, 0)",
                   "margin": recipe.MARGIN, "learning_rate": recipe.LEARNING_RATE, "momentum": recipe.MOMENTUM,
                   "sgd": "v <- momentum*v - lr*g; w <- w + v (v starts at 0)",
                   "bn_epsilon": epsilons.pop(), "bn_momentum": momenta.pop(),
                   "bn_moving_update": "moving <- momentum*moving + (1-momentum)*batch statistic, once per step"},
        "data": {"source": os.path.join(a.data, "train-images-idx3-ubyte.gz"),
                 "file_indices": [int(r) for r in rows], "sneakers": int(labels.sum()),
                 "others": int((labels == 0).sum()), "pixels": "uint8 / 255 as float32"},
        "init": {"seed": SEED, "kernels": "Keras glorot_uniform after keras.utils.set_random_seed(seed)",
                 "randomised": "numpy default_rng(seed): per BN in network order gamma U[0.5,1.5], beta U[-0.5,0.5]; "
                               "then per BN, from its input's training-mode batch mean m and variance v on the "
                               "batch: moving_mean m + U[-0.5,0.5]*sqrt(v), moving_variance v*U[0.5,2]; then "
                               "dense/bias U[-0.1,0.1]"},
        "versions": {"tensorflow": tf.__version__, "tf_keras": keras.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "bessel_corrected_moving_variance": bessel.pop("answer"),
        "bessel_evidence": bessel,
        "float64": {"files": {"embeddings": "f64/embeddings.npy", "loss": "f64/loss.npy",
                              "step_losses": "f64/step_losses.npy", "grads": "f64/grads/<name with / as __>.npy",
                              "after": "f64/after/<trainable name with / as __>.npy",
                              "moving_after_step1": "f64/moving_after_step1/<non-trainable name with / as __>.npy"},
                    "what": "the same initial weights, batch and 5 steps run by tf_keras in float64 (all float64 "
                            "files); trainable weights only in f64/after: float64 BN runs TensorFlow's non-fused "
                            "kernel, whose moving variance skips the Bessel correction",
                    "float32_vs_float64_rel_err": f32_vs_f64},
        "checks": {"loss_tf": first_loss, "loss_numpy_float64": numpy_loss, "loss_rel_err": loss_err},
        "grad_norms": grad_norms,
        # The loss only depends on differences of embeddings, and a training-mode BN removes any per-channel
        # constant added before it: such gradients (dense/bias, the beta of every BN whose output reaches
        # the next BN through 1x1 convolutions and Adds only) are zero up to rounding. Compare them absolutely.
        "near_zero_grads": sorted(n for n, v in grad_norms.items() if v < 1e-4 * largest),
        "stats": {"embeddings_std_over_batch": float(first_embeddings.std(axis=0).mean()),
                  "inference_embeddings_mean_abs": float(np.abs(inference).mean()),
                  "inference_embeddings_std_over_batch": float(inference.std(axis=0).mean()),
                  "max_abs_change": moved},
    }
    with open(os.path.join(a.outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {a.outdir}: {len(trainable)} trainable + {len(non_trainable)} non-trainable tensors; "
          f"loss {first_loss:.6f} (NumPy float64 {numpy_loss:.6f}); step losses "
          + " ".join(f"{v:.6f}" for v in step_losses)
          + f"; float32 vs float64: embeddings {f32_vs_f64['embeddings']:.1e}, gradients median "
          f"{grad_errs[len(grad_errs) // 2]:.1e} worst {grad_errs[-1]:.1e}, step-5 loss {f32_vs_f64['step_losses'][-1]:.1e}"
          + f"; Bessel-corrected moving variance: {manifest['bessel_corrected_moving_variance']} "
          f"(worst rel. err. biased {bessel['worst_rel_err_biased']:.2e}, Bessel {bessel['worst_rel_err_bessel']:.2e})")


if __name__ == "__main__":
    main()
