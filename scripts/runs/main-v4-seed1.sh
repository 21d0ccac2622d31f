#!/usr/bin/env bash
# An experiment for issue 4: main-v4 (the recipe of 1.5-base, the parent of the bundled 1.5) again
# with seed 1. Every "within what a second seed could move" in docs/model-card.md is a guess until
# two seeds of one recipe are measured: this measures the seed-to-seed spread of val and test Dice.
# It is not a release candidate by itself (it would still go through the fine-tune and the val rule).
# About 2 h:
#   setsid nohup scripts/runs/main-v4-seed1.sh >> ~/.cache/napari-depthpolyp/runs/main-v4-seed1.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
exec "$(dirname "$0")/_train.sh" main-v4-seed1 depthpolyp-kvasir-1.5-base-seed1 \
  --name depthpolyp-kvasir --version 1.5-base-seed1 --epochs 200 --warmup-epochs 10 --augment strong --colour \
  --seed 1 \
  --description "main-v4 (1.5-base's recipe) with seed 1: the seed-to-seed spread"
