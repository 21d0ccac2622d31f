#!/usr/bin/env bash
# An experiment for issue 4: main-v3's recipe (200 epochs, 10 warm-up, --augment strong) with the
# colour augmentation (--colour: white balance, hue, saturation, gamma) from the first epoch. Added
# to a 15-epoch fine-tune (candidate 1.4) it lowered val a little (.8131 against 1.3's .8161) but
# measured better on CVC-ClinicDB degraded and on video without a polyp; this asks whether training
# with it from the start lifts val. Selected on Kvasir-SEG val only; it is then fine-tuned with the
# polyp-free squares like 1.3 (scripts/runs/ft-negatives.sh OUT 1.5 --colour) and replaces 1.3 only if
# that beats 1.3's val score. About 2 h:
#   setsid nohup scripts/runs/main-v4.sh >> main-v4.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
# Result (2026-11-30): val .830 / .785 at epoch 194; its fine-tune, 1.5, scored .8191 and is bundled.
exec "$(dirname "$0")/_train.sh" main-v4 depthpolyp-kvasir-1.5-base \
  --name depthpolyp-kvasir --version 1.5-base --epochs 200 --warmup-epochs 10 --augment strong --colour \
  --description "DepthPolyp trained on Kvasir-SEG train (800) with wide geometric and colour augmentation, degradations and the light fall-off depth teacher"
