#!/usr/bin/env bash
# The next candidate (issue 4): depthpolyp-kvasir 1.1, the 1.0 recipe for the reference's 200 epochs
# (10 warm-up). A 200-epoch run of this recipe on 2026-11-22 reached val Dice .827 / .781 before its
# checkpoints were lost; 1.0 (100 epochs) has .796 / .754. About 35 s per epoch on an idle 2-core CPU,
# 200 epochs (~2 h). It replaces the bundled model only if it measures better on val (and then on the
# model card's table). Run it in the background:
#   setsid nohup scripts/runs/main-v2.sh >> main-v2.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
exec "$(dirname "$0")/_train.sh" main-v2 depthpolyp-kvasir-1.1 \
  --name depthpolyp-kvasir --version 1.1 --epochs 200 --warmup-epochs 10 \
  --description "DepthPolyp trained on Kvasir-SEG train (800) with degradations and the light fall-off depth teacher"
