#!/usr/bin/env bash
# The depth-off ablation (issue 4): the main run's recipe with --no-depth.
# About 35 s per epoch on an idle 2-core CPU (bf16), 100 epochs (~1 h). Run it in the background:
#   setsid nohup scripts/runs/nodepth-v1.sh >> nodepth-v1.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
exec "$(dirname "$0")/_train.sh" nodepth-v1 depthpolyp-kvasir-nodepth-1.0 \
  --name depthpolyp-kvasir-nodepth --version 1.0 --epochs 100 --warmup-epochs 5 --no-depth \
  --description "Ablation: the depthpolyp-kvasir 1.0 recipe without the depth task"
