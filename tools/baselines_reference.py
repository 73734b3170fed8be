#!/usr/bin/env python3
"""scikit-learn's reference for Kizuki's baselines (issue 11): raw-pixel nearest neighbour and PCA reconstruction.

Usage:
    .venv/bin/python tools/baselines_reference.py --out .cache/fixtures/baselines.json
        [--data DIR] [--normal 7] [--anomaly 9] [--anchors 6000,3000,1000,500,100,50] [--pca-components 64]

Run by `make fixtures`; Tests/AnomalyTests/BaselineAgreementTests.swift holds Kizuki to it.

Recipe (the split of tools/ort_auc.py and `kizuki eval`):
  * Anchors: the first N training images of --normal (file order); test: the test images of --normal and
    --anomaly (file order), label 1 = anomaly. Pixels: uint8 / 255 in float64, flattened to 784 values.
  * Raw pixels: sklearn.neighbors.NearestNeighbors (brute force, Euclidean) fitted on the anchors; the score is
    the mean distance to the k nearest, for each k in --k.
  * PCA: sklearn.decomposition.PCA(n_components=min(C, N - 1), svd_solver="full": an exact SVD, not the
    randomized solver that "auto" picks at this size) fitted on the anchors; the score is the Euclidean norm of
    x - inverse_transform(transform(x)).
  * AUC: sklearn.metrics.roc_auc_score over all test images.
Writes JSON: the AUCs of every anchor count, and the scores of a fixed subset of the test images (every 100th).
"""
import argparse
import json
import os

import numpy as np
import sklearn
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from fashion_mnist import DATA_DIR, load_split

SUBSET_STEP = 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=os.environ.get("KIZUKI_DATA", DATA_DIR), help="as Kizuki: $KIZUKI_DATA, else the Debian folder")
    ap.add_argument("--normal", type=int, default=7)
    ap.add_argument("--anomaly", type=int, default=9)
    ap.add_argument("--anchors", default="6000,3000,1000,500,100,50")
    ap.add_argument("--pca-components", type=int, default=64)
    ap.add_argument("--k", default="1,3", help="neighbour counts of the raw-pixel baseline")
    a = ap.parse_args()
    counts = [int(c) for c in a.anchors.split(",")]
    ks = [int(k) for k in a.k.split(",")]

    train_x, train_y = load_split(a.data, "train")
    test_x, test_y = load_split(a.data, "t10k")
    anchors = train_x[train_y == a.normal][:max(counts)].reshape(-1, 28 * 28).astype(np.float64) / 255.0
    keep = (test_y == a.normal) | (test_y == a.anomaly)
    test = test_x[keep].reshape(-1, 28 * 28).astype(np.float64) / 255.0
    labels = (test_y[keep] == a.anomaly).astype(np.int64)
    subset = list(range(0, len(test), SUBSET_STEP))

    raw, pca = [], []
    for n in counts:
        fitted = anchors[:n]
        for k in ks:
            distances, _ = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="euclidean").fit(fitted).kneighbors(test)
            scores = distances.mean(axis=1)
            raw.append({"anchors": n, "k": k, "auc": float(roc_auc_score(labels, scores)),
                        "scores": [float(s) for s in scores[subset]]})
        components = min(a.pca_components, n - 1)
        model = PCA(n_components=components, svd_solver="full").fit(fitted)
        scores = np.linalg.norm(test - model.inverse_transform(model.transform(test)), axis=1)
        pca.append({"anchors": n, "components": components, "auc": float(roc_auc_score(labels, scores)),
                    "scores": [float(s) for s in scores[subset]]})
        print(f"{n:5d} anchors: raw pixels AUC {raw[-len(ks)]['auc']:.4f} (k={ks[0]}), "
              f"PCA-{components} AUC {pca[-1]['auc']:.4f}")

    result = {"scikit_learn": sklearn.__version__, "normal": a.normal, "anomaly": a.anomaly, "n_test": len(test),
              "pca_components": a.pca_components, "subset": subset, "raw_pixels": raw, "pca": pca}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
