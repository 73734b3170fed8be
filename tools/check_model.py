#!/usr/bin/env python3
"""Validate ONNX files with the official checker (full_check=True, i.e. with shape inference).

Usage:
    .venv/bin/python tools/check_model.py model.onnx [more.onnx ...]

Prints "OK  path" or "FAIL path: reason" per file; exits 1 if any file failed.
External data (e.g. torch_dynamo.onnx + .data) is loaded from beside the model file.
"""
import sys

import onnx


def check(path: str) -> str | None:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:  # noqa: BLE001 - report any failure, including load errors
        return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = 0
    for path in argv:
        err = check(path)
        if err is None:
            print(f"OK   {path}")
        else:
            failed += 1
            print(f"FAIL {path}: {err}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
