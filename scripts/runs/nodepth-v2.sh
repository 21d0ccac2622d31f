#!/usr/bin/env bash
# The depth-off ablation of depthpolyp-kvasir 1.1 (issue 4): main-v2's recipe (200 epochs, 10 warm-up)
# with --no-depth. About 35 s per epoch on an idle 2-core CPU, 200 epochs (~2 h). In the background:
#   setsid nohup scripts/runs/nodepth-v2.sh >> nodepth-v2.log 2>&1 &
# Running it again after an interruption continues from the last checkpoint.
exec "$(dirname "$0")/_train.sh" nodepth-v2 depthpolyp-kvasir-nodepth-1.1 \
  --name depthpolyp-kvasir-nodepth --version 1.1 --epochs 200 --warmup-epochs 10 --no-depth \
  --description "Ablation: the depthpolyp-kvasir 1.1 recipe without the depth task"
