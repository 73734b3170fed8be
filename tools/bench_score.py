#!/usr/bin/env python3
"""`kizuki score` end to end: images per second on Fashion-MNIST's 2,000 test sneakers and ankle boots against an
index of 6,000 sneaker anchors, read from PNG files and from an IDX file.

Usage: .venv/bin/python tools/bench_score.py KIZUKI [MODEL] [--runs 3] [--threads 1,2] [--data DIR]

Writes the 2,000 images once as a folder of 8-bit grayscale PNGs and as an uncompressed IDX file (NumPy and zlib, no
imaging library), builds the index with `kizuki index`, then times whole `kizuki score` processes (model and index
loading, decoding, embedding, k-NN, CSV output): the median wall time of --runs runs per source and thread count.
"""
import argparse
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import cpu_name, ints  # noqa: E402
from fashion_mnist import DATA_DIR, load_split  # noqa: E402


def png_gray(path: Path, image: np.ndarray):
    """An 8-bit grayscale PNG: signature, IHDR, one IDAT (filter 0 on every row), IEND."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    h, w = image.shape
    raw = b"".join(b"\x00" + image[r].tobytes() for r in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def idx_images(path: Path, images: np.ndarray):
    path.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">III", *images.shape) + images.astype(np.uint8).tobytes())


def run(cmd):
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kizuki")
    p.add_argument("model", nargs="?", default="models/keras-seed/model.onnx")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--data", default=os.environ.get("KIZUKI_DATA", DATA_DIR))
    a = p.parse_args()
    images, labels = load_split(a.data, "t10k")
    test = images[(labels == 7) | (labels == 9)]
    print(f"kizuki score: {len(test)} test images (sneakers and ankle boots), 6000 sneaker anchors, model {a.model}")
    print(f"cpu {cpu_name()}; median of {a.runs} whole-process runs")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pngs = tmp / "png"
        pngs.mkdir()
        for i, image in enumerate(test):
            png_gray(pngs / f"{i:05d}.png", image)
        idx = tmp / "test-images-idx3-ubyte"
        idx_images(idx, test)
        index = tmp / "anchors.kzi"
        run([a.kizuki, "index", a.model, "--images", "fmnist:train:7", "--anchors", "6000", "--out", str(index), "--quiet",
             "--data", a.data])
        print(f"{'source':<8} {'threads':>7} {'seconds':>8} {'images/s':>9}")
        for threads in ints(a.threads):
            for name, source in (("png", pngs), ("idx", idx)):
                cmd = [a.kizuki, "score", a.model, "--index", str(index), "--images", str(source), "--quiet",
                       "--threads", str(threads), "--data", a.data]
                seconds = statistics.median(run(cmd) for _ in range(a.runs))
                print(f"{name:<8} {threads:>7} {seconds:>8.3f} {len(test) / seconds:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
