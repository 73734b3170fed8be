#!/usr/bin/env bash
# Fetch the ONNX backend conformance test cases (the test data shipped in the onnx wheel).
#
# Usage: tools/fetch_conformance.sh [DEST]      (default DEST: .cache/onnx-conformance)
#
# Downloads the onnx==1.22.0 wheel for this platform with pip (no dependencies, binary only)
# into a temporary folder and extracts onnx/backend/test/data/{node,pytorch-converted,
# pytorch-operator,simple,light}/** into DEST, giving DEST/node/test_xxx/model.onnx,
# DEST/node/test_xxx/test_data_set_0/input_0.pb, ... Idempotent: does nothing when
# DEST/.complete exists. Needs python3 with pip (no unzip required).
set -euo pipefail

ONNX_VERSION=1.22.0
DEST=${1:-.cache/onnx-conformance}
PYTHON=${PYTHON:-python3}

if [[ -f "$DEST/.complete" ]]; then
    echo "conformance data already in $DEST"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "onnx==$ONNX_VERSION"
wheel=$(ls "$tmp"/onnx-"$ONNX_VERSION"-*.whl)

mkdir -p "$DEST"
"$PYTHON" - "$wheel" "$DEST" <<'PY'
import os, sys, zipfile

wheel, dest = sys.argv[1], sys.argv[2]
prefix = "onnx/backend/test/data/"
groups = ("node", "pytorch-converted", "pytorch-operator", "simple", "light")
files = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or info.is_dir():
            continue
        rel = name[len(prefix):]
        if rel.split("/", 1)[0] not in groups or ".." in rel.split("/"):
            continue
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            out.write(src.read())
        files += 1
for g in groups:
    d = os.path.join(dest, g)
    entries = os.listdir(d) if os.path.isdir(d) else []
    # most groups: one folder per case with model.onnx; light/: light_NAME.onnx + light_NAME_output_0.pb
    n = sum(os.path.isfile(os.path.join(d, c, "model.onnx")) or c.endswith(".onnx") for c in entries)
    print(f"{g}: {n} cases")
print(f"{files} files extracted into {dest}")
PY
echo "onnx==$ONNX_VERSION" > "$DEST/.complete"
