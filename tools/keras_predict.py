"""Load Keras weight files into the reference embedder built by Keras itself, and predict.

The independent side of Kizuki's Keras round-trip tests (Tests/KerasTests, Tests/KizukiCLITests): whatever
Kizuki writes must load with Keras's own `model.load_weights(...)` and predict what Kizuki predicts.

usage: keras_predict.py JOBS.json
JOBS.json is a list of jobs, each
  {"keras": "tf_keras" | "keras3", "layout": "nested" | "flat", "dense_name": "dense",
   "weights": "file.h5" | "file.weights.h5", "images": "images.npy" ([N,28,28,1] float32), "out": "embeddings.npy"}
"nested" is the reference recipe's model (tfkeras_recipe.build_embedder: MobileNetV2 as one nested layer);
"flat" inlines MobileNetV2's layers (MobileNetV2(input_tensor=...)), as the shared keras-seed model does.
Embeddings are computed in inference mode (model.predict) and saved as float32 [N,128].
Optional "save_weights" / "save_model": after loading, Keras also writes the model's weights (save_weights; a
".weights.h5" name gives Keras 3's layout) or the whole model (model.save; tf_keras's legacy .h5 with the weights
under model_weights/) there, for Kizuki to read files Keras wrote itself.
A job that fails prints its error and makes the exit status 1; the other jobs still run.

Runs in the fixture venv (tools/setup_fixtures_venv.sh): TensorFlow 2.21 CPU, tf_keras 2.21, Keras 3.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def keras_module(name: str):
    if name == "tf_keras":
        import tf_keras
        return tf_keras
    if name == "keras3":
        import keras
        assert keras.__version__.startswith("3."), keras.__version__
        return keras
    raise ValueError(f"unknown Keras '{name}' (tf_keras or keras3)")


def build(keras, layout: str, dense_name: str):
    inp = keras.Input((28, 28, 1), name="input")
    x = keras.layers.UpSampling2D(3)(inp)
    if layout == "nested":
        base = keras.applications.MobileNetV2(input_shape=(84, 84, 1), alpha=1.0, include_top=False,
                                              weights=None, pooling="avg")
        out = keras.layers.Dense(128, name=dense_name)(base(x))
    elif layout == "flat":
        base = keras.applications.MobileNetV2(input_tensor=x, alpha=1.0, include_top=False, weights=None,
                                              pooling="avg")
        out = keras.layers.Dense(128, name=dense_name)(base.output)
    else:
        raise ValueError(f"unknown layout '{layout}' (nested or flat)")
    return keras.Model(inp, out, name="embedder")


def main() -> int:
    jobs = json.load(open(sys.argv[1]))
    status = 0
    for job in jobs:
        try:
            keras = keras_module(job["keras"])
            model = build(keras, job["layout"], job.get("dense_name", "dense"))
            model.load_weights(job["weights"])
            images = np.load(job["images"]).astype(np.float32)
            embeddings = model.predict(images, batch_size=64, verbose=0).astype(np.float32)
            np.save(job["out"], embeddings)
            if "save_weights" in job:
                model.save_weights(job["save_weights"])
            if "save_model" in job:
                model.save(job["save_model"])
            print(f"{job['keras']} {job['layout']} {job['weights']}: {embeddings.shape}", flush=True)
        except Exception as e:  # report every job, then fail
            print(f"FAILED {job}: {type(e).__name__}: {e}", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
