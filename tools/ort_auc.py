#!/usr/bin/env python3
"""Independent reference for Kizuki's anomaly scoring: onnxruntime embeddings + NumPy.

Usage:
    .venv/bin/python tools/ort_auc.py MODEL [--data /usr/share/datasets/fashion-mnist]
        [--normal 7] [--anomaly 9] [--anchors 6000] [--out scores.npy] [--threads 1]

Recipe:
  * Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...) are read with gzip + NumPy.
  * Anchors: the first --anchors training images whose label is --normal (file order).
  * Test set: the test images whose label is --normal or --anomaly, in file order
    (2000 for two classes); label 1 = anomaly, 0 = normal.
  * Preprocessing: uint8 -> float32 / 255, shape (N, 28, 28, 1) (NHWC). If the model's
    input is NCHW ([N, 1, 28, 28]) the same values are fed as (N, 1, 28, 28).
  * Embedding: onnxruntime CPUExecutionProvider, batches of 256.
  * Score: Euclidean distance, in float64, from a test embedding to its nearest anchor.
  * AUC: Mann-Whitney statistic (ties count 1/2) in NumPy, and sklearn's roc_auc_score.
Prints JSON {auc, auc_sklearn, n_anchors, n_test} on stdout; writes the per-image scores
(float64, test-set order) to --out.
"""
import argparse
import json
import sys
import time

import numpy as np
import onnxruntime as ort

from fashion_mnist import load_split

ort.set_default_logger_severity(3)  # hide e.g. the deprecated tf_half_pixel_for_nn notice


def embed(sess: ort.InferenceSession, images: np.ndarray, batch: int = 256) -> np.ndarray:
    inp = sess.get_inputs()[0]
    nchw = len(inp.shape) == 4 and inp.shape[1] == 1
    x = images.astype(np.float32) / np.float32(255.0)
    x = x[:, None, :, :] if nchw else x[:, :, :, None]
    out = [sess.run(None, {inp.name: x[i:i + batch]})[0] for i in range(0, len(x), batch)]
    return np.concatenate(out).astype(np.float64)


def nearest_anchor_distance(test: np.ndarray, anchors: np.ndarray, chunk: int = 16) -> np.ndarray:
    """Exact float64 distances (explicit differences, no |a|^2+|b|^2-2ab shortcut)."""
    scores = np.empty(len(test), dtype=np.float64)
    for i in range(0, len(test), chunk):
        diff = test[i:i + chunk, None, :] - anchors[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", diff, diff)
        scores[i:i + chunk] = np.sqrt(d2.min(axis=1))
    return scores


def mann_whitney_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos = scores[labels == 1]
    neg = scores[labels == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--normal", type=int, default=7)
    ap.add_argument("--anomaly", type=int, default=9)
    ap.add_argument("--anchors", type=int, default=6000)
    ap.add_argument("--out", default="scores.npy")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    a = ap.parse_args()

    train_x, train_y = load_split(a.data, "train")
    test_x, test_y = load_split(a.data, "t10k")
    anchors_x = train_x[train_y == a.normal][:a.anchors]
    keep = (test_y == a.normal) | (test_y == a.anomaly)
    tx, ty = test_x[keep], (test_y[keep] == a.anomaly).astype(np.int64)

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])

    t0 = time.perf_counter()
    anchor_emb = embed(sess, anchors_x)
    test_emb = embed(sess, tx)
    t1 = time.perf_counter()
    scores = nearest_anchor_distance(test_emb, anchor_emb)
    t2 = time.perf_counter()
    print(f"embedding {len(anchors_x) + len(tx)} images: {t1 - t0:.1f} s; scoring: {t2 - t1:.1f} s",
          file=sys.stderr)

    from sklearn.metrics import roc_auc_score

    result = {"auc": mann_whitney_auc(scores, ty), "auc_sklearn": float(roc_auc_score(ty, scores)),
              "n_anchors": int(len(anchors_x)), "n_test": int(len(tx))}
    np.save(a.out, scores)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
