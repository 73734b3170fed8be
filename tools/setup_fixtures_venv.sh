#!/usr/bin/env bash
# Create/update the fixture venv (TensorFlow CPU, tf_keras, tf2onnx, torch CPU) used by make_fixtures.py.
#
# Usage: tools/setup_fixtures_venv.sh [VENV]      (default VENV: .venv-fixtures, ~2.8 GB, ~1-2 min)
#
# tf_keras is installed with --no-deps: its "tensorflow" requirement would pull the CUDA build
# next to tensorflow-cpu. Idempotent: skips pip when the requirement files are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-fixtures}
reqs=(tools/requirements.txt tools/requirements-fixtures.txt tools/requirements-fixtures-nodeps.txt)
stamp="$VENV/.requirements.sha256"
want=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$VENV is up to date"
    exit 0
fi
[[ -x "$VENV/bin/python" ]] || { mkdir -p "$(dirname "$VENV")"; python3 -m venv "$VENV"; }
"$VENV/bin/pip" install --quiet -r tools/requirements-fixtures.txt
"$VENV/bin/pip" install --quiet --no-deps -r tools/requirements-fixtures-nodeps.txt
"$VENV/bin/python" -c "import tensorflow, tf_keras, tf2onnx, torch, onnxscript, onnxruntime; print('fixture stack: tensorflow', tensorflow.__version__, 'torch', torch.__version__, 'tf2onnx', tf2onnx.__version__)" 2>/dev/null
echo "$want" > "$stamp"
