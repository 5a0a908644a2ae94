#!/usr/bin/env bash
# Reproduce the demo models in models/demo/ with Seamline's own commands on its own synthetic data:
#   bash scripts/train_demo_models.sh [WORK_DIR]        (default .cache/train; hours on 2 CPU cores, minutes on a GPU)
#   WITH_LITE0=1 bash scripts/train_demo_models.sh      (also the EfficientNet-Lite0 detector lineage)
# Steps: render a training line (seed 100) and a held-out line (seed 200); train the class-agnostic detector and
# the tiny classifier; export the detector to ONNX; copy both, with their model cards, into models/demo/.
set -euo pipefail
source "$(dirname "$0")/setup.sh"
WORK=${1:-.cache/train}
DET_STEPS=${DET_STEPS:-3000}
CLS_STEPS=${CLS_STEPS:-4000}
S="$VENV/bin/seamline"

[ -f "$WORK/det-train/annotations.json" ] || "$S" synth --garments 4000 --seed 100 --out "$WORK/det-train" -j 2 --no-progress
[ -f "$WORK/det-val/annotations.json" ] || "$S" synth --garments 400 --seed 200 --out "$WORK/det-val" -j 2 --no-progress

# The detector (demo-detector@2: 3000 steps, 66 min on two CPU threads). On a GPU box add --mixed-precision bf16.
"$S" train detector "$WORK/det-train" --val "$WORK/det-val" -o "$WORK/runs/det-demo" --class-agnostic --tiles 2x2 \
  --steps "$DET_STEPS" --batch-size 8 --lr 4e-4 --eval-every "$DET_STEPS" --checkpoint-every 250 --version 2 --no-progress
# The classifier (trained beside detector version 1, one thread each): 4000 steps, then on from its step-4000
# state to step 5500 (the schedule restarts from there).
"$S" train classifier "$WORK/det-train" --val "$WORK/det-val" -o "$WORK/runs/cls-demo" \
  --base small --prompt-style v1-compact --steps "$CLS_STEPS" --batch-size 16 --lr 1e-3 --eval-examples 400 --no-progress
"$S" train classifier "$WORK/det-train" --val "$WORK/det-val" -o "$WORK/runs/cls-demo" \
  --base small --prompt-style v1-compact --steps 5500 --batch-size 16 --lr 1e-3 --eval-examples 400 --resume --no-progress

mkdir -p models/demo/detector models/demo/classifier
"$S" edge export "$WORK/runs/det-demo/model" --out models/demo/detector/detector.onnx --version "demo-detector@2"
cp "$WORK/runs/det-demo/model/README.md" "$WORK/runs/det-demo/model/seamline_model.json" models/demo/detector/
rm -rf models/demo/classifier && cp -r "$WORK/runs/cls-demo/model" models/demo/classifier
# The detector on an ImageNet EfficientNet-Lite0 backbone (models/demo/detector-lite0, not shipped: higher mAP50,
# lower recall than v2; docs/benchmarks.md). Two runs, the second from the first's weights: 50 + 37 min.
if [ "${WITH_LITE0:-0}" = 1 ]; then
  "$S" train detector "$WORK/det-train" --val "$WORK/det-val" -o "$WORK/runs/det-lite0" --class-agnostic --tiles 2x2 \
    --init-backbone efficientnet-lite0 --steps 1200 --batch-size 8 --lr 4e-4 --backbone-lr-scale 0.1 --eval-every 0 \
    --checkpoint-every 200 --version 3 --no-progress
  "$S" train detector "$WORK/det-train" --val "$WORK/det-val" -o "$WORK/runs/det-lite0-r2" --class-agnostic \
    --tiles 2x2 --init "$WORK/runs/det-lite0/model" --steps 900 --batch-size 8 --lr 3e-4 --backbone-lr-scale 0.5 \
    --eval-every 0 --checkpoint-every 300 --version 4 --no-progress
  rm -rf models/demo/detector-lite0 && cp -r "$WORK/runs/det-lite0-r2/model" models/demo/detector-lite0
fi
echo "demo models written to models/demo/"
