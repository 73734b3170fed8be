"""Runs onnx.checker (full_check) over the models Kizuki wrote in `swift test` (.cache/written).

Usage: python tools/check_written.py .cache/written
A written model that fails is an error unless the original it was copied from fails the same check
(a few ONNX backend test models are deliberately outside what the checker accepts); those are listed.
"""
import sys
from pathlib import Path

import onnx


def check(path):
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        return None
    except Exception as e:  # the checker raises several exception types
        return str(e).splitlines()[0][:200]


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/written")
    originals = {}
    manifest = root / "MANIFEST.tsv"
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            name, original = line.split("\t")
            originals[name] = original
    files = sorted(root.glob("*.onnx")) + sorted((root / "external").glob("*.onnx"))
    if not files:
        print(f"no models in {root}: run swift test first")
        return 1
    ours, inherited = [], []
    for f in files:
        err = check(f)
        if err is None:
            continue
        original = originals.get(f.name)
        if original and check(original) is not None:
            inherited.append((f.name, err))
        else:
            ours.append((f.name, err))
    for name, err in inherited:
        print(f"original fails too: {name}: {err}")
    for name, err in ours:
        print(f"FAIL {name}: {err}")
    print(f"onnx.checker full_check: {len(files) - len(ours) - len(inherited)} passed, {len(ours)} failed, "
          f"{len(inherited)} skipped (original fails the checker too)")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
