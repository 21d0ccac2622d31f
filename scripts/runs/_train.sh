#!/usr/bin/env bash
# The recipe every run in scripts/runs shares: Kvasir-SEG train, selected on val, batch 16, AdamW
# 2e-4 / 0.01, EMA 0.999, seed 0. Checkpoints in the user cache, outside the work tree; running a
# run again continues from its last checkpoint (--resume is added).
#   _train.sh RUN OUT ARG...   RUN: the run's directory name; OUT: the model directory's name;
#                              ARG...: what the run sets itself (name, version, epochs, warm-up, ...)
set -euo pipefail
cd "$(dirname "$0")/../.."
run=$1 out=$2
shift 2
RUNS="${DEPTHPOLYP_CACHE_DIR:-$HOME/.cache/napari-depthpolyp}/runs"
RESUME=()
[ -f "$RUNS/$run/checkpoint.json" ] && RESUME=(--resume)
exec .venv/bin/depthpolyp train --data ../shared/data/kvasir-seg --val-data ../shared/data/kvasir-seg \
  --batch-size 16 --lr 2e-4 --weight-decay 0.01 --ema 0.999 --val-every 5 --workers 1 --seed 0 \
  "$@" --run-dir "$RUNS/$run" --out "$RUNS/../out/$out" "${RESUME[@]}"
