#!/usr/bin/env bash
# Set up a fresh clone and run the test suite: `bash scripts/test.sh [pytest args]`.
# CPU only; GPU and TensorRT tests are deselected by marker.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
echo "== running tests"
exec "$PY" -m pytest "$@"
