#!/usr/bin/env bash
# The main DepthPolyp training run (issue 4): the released depthpolyp-kvasir 1.0.
# About 35 s per epoch on an idle 2-core CPU (bf16), 100 epochs (~1 h). Run it in the background:
#   setsid nohup scripts/runs/main-v1.sh >> main-v1.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
exec "$(dirname "$0")/_train.sh" main-v1 depthpolyp-kvasir-1.0 \
  --name depthpolyp-kvasir --version 1.0 --epochs 100 --warmup-epochs 5 \
  --description "DepthPolyp trained on Kvasir-SEG train (800) with degradations and the light fall-off depth teacher"
