#!/usr/bin/env bash
# An experiment for issue 4: main-v2's recipe (200 epochs, 10 warm-up) with the wider geometric
# augmentation (--augment strong). main-v2's val Dice was flat from epoch 140 at .829 / .777; this
# asks whether wider ranges lift that plateau for a network trained from random weights on 800 frames.
# It becomes depthpolyp-kvasir 1.2 only if it measures better on Kvasir-SEG val. About 2 h:
#   setsid nohup scripts/runs/main-v3.sh >> main-v3.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
exec "$(dirname "$0")/_train.sh" main-v3 depthpolyp-kvasir-1.2 \
  --name depthpolyp-kvasir --version 1.2 --epochs 200 --warmup-epochs 10 --augment strong \
  --description "DepthPolyp trained on Kvasir-SEG train (800) with wide geometric augmentation, degradations and the light fall-off depth teacher"
