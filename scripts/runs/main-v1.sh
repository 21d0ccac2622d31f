#!/usr/bin/env bash
# The main DepthPolyp training run (issue 4): the released depthpolyp-kvasir 1.0.
# About 35 s per epoch on an idle 2-core CPU (bf16), 100 epochs (~1 h). Run it in the background:
#   setsid nohup scripts/runs/main-v1.sh >> main-v1.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint (--resume is added).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${DEPTHPOLYP_CACHE_DIR:-$HOME/.cache/napari-depthpolyp}/runs"
RESUME=""
[ -f "$RUNS/main-v1/checkpoint.json" ] && RESUME="--resume"
exec .venv/bin/depthpolyp train --data ../shared/data/kvasir-seg --val-data ../shared/data/kvasir-seg \
  --name depthpolyp-kvasir --version 1.0 --epochs 100 --batch-size 16 --lr 2e-4 --weight-decay 0.01 \
  --warmup-epochs 5 --ema 0.999 --val-every 5 --workers 1 --seed 0 \
  --description "DepthPolyp trained on Kvasir-SEG train (800) with degradations and the light fall-off depth teacher" \
  --run-dir "$RUNS/main-v1" --out "$RUNS/../out/depthpolyp-kvasir-1.0" $RESUME
