#!/usr/bin/env bash
# Set up a fresh clone and run the test suite: `bash scripts/test.sh [--gpu] [pytest args]`.
# --gpu: set up .venv-gpu with the GPU builds (scripts/setup.sh) and run there, e.g. `--gpu -m gpu`.
# Lints first (ruff check and ruff format --check): a lint error fails the command before any test runs.
# CPU only; GPU and TensorRT tests are deselected by marker.
set -euo pipefail
if [ "${1:-}" = "--gpu" ]; then
  export SEAMLINE_GPU=1
  shift
fi
source "$(dirname "$0")/setup.sh"
echo "== lint (ruff check, ruff format --check)"
"$PY" -m ruff check --quiet .
"$PY" -m ruff format --check --quiet .
echo "== running tests"
exec "$PY" -m pytest "$@"
