#!/usr/bin/env bash
# Set up a fresh clone and run the one-command demo: `bash scripts/demo.sh [seamline demo options]`.
# Broker, cloud service with a local vLLM (CPU) on the demo classifier, edge agent on the demo detector
# (ONNX Runtime), fed by the synthetic line; a live view in the terminal and a summary in demo-run/.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
exec "$VENV/bin/seamline" demo "$@"
