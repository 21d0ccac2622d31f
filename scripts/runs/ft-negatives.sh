#!/usr/bin/env bash
# An experiment for issue 4 (false positives on video without a polyp): fine-tune a trained model on
# Kvasir-SEG train plus polyp-free squares cut from the same train frames (scripts/make_negatives.py),
# selected on Kvasir-SEG val as every run. Kvasir-SEG shows a polyp in every image, so the model has
# never seen a frame without one. It goes through `depthpolyp finetune`, the path the review loop uses.
#   scripts/runs/ft-negatives.sh PARENT VERSION [ARG...]    e.g. depthpolyp-kvasir-1.7 1.8-ema --ema 0.998
# ARG... go to `depthpolyp finetune` as they are (e.g. --colour) and are named in the description;
# they come after this script's own options, so they override them (e.g. --epochs 60 --lr 2e-4).
# About 15 min where the loop runs 26 img/s (bf16), an hour in fp32. Running it again after an interruption continues from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
parent=$1 version=$2
shift 2
extra=""
[ $# -gt 0 ] && extra=", with $*"
CACHE="${DEPTHPOLYP_CACHE_DIR:-$HOME/.cache/napari-depthpolyp}"
NEG="$CACHE/negatives/kvasir-train"
[ -f "$NEG/manifest.json" ] || .venv/bin/python scripts/make_negatives.py \
  --data ../shared/data/kvasir-seg --split train --out "$NEG" --overwrite
# the held-out squares of the val frames: the share marked is printed at every validation (since
# session 21; it never selects, so the runs before it train and select alike)
VALNEG="$CACHE/negatives/kvasir-val"
[ -f "$VALNEG/manifest.json" ] || .venv/bin/python scripts/make_negatives.py \
  --data ../shared/data/kvasir-seg --split val --out "$VALNEG" --overwrite
run="$CACHE/runs/ft-negatives-$version"
RESUME=()
[ -f "$run/checkpoint.json" ] && RESUME=(--resume)
exec .venv/bin/depthpolyp finetune --model "$parent" \
  --data ../shared/data/kvasir-seg "$NEG" --split train \
  --val-data ../shared/data/kvasir-seg --val-split val --val-negatives "$VALNEG" \
  --epochs 15 --batch-size 16 --lr 5e-5 --weight-decay 0.01 --warmup-epochs 1 --ema 0 --val-every 1 \
  --workers 1 --seed 0 --name depthpolyp-kvasir --version "$version" \
  --description "DepthPolyp $(basename "$parent") fine-tuned on Kvasir-SEG train (800) plus polyp-free squares of those frames (empty masks)$extra" \
  "$@" --run-dir "$run" --out "$CACHE/out/depthpolyp-kvasir-$version" "${RESUME[@]}"
