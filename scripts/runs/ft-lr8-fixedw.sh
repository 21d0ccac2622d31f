#!/usr/bin/env bash
# The second half of main-v12-lr8-fixedw.sh's rule (written in session 21, before either ran): its
# 200-epoch model (depthpolyp-kvasir-base-lr8-fixedw) fine-tuned exactly as 1.9 was
# (ft-fixedw-1.8.sh: polyp-free squares, lr 5e-5, 1 warm-up epoch then cosine, no EMA, 15 epochs,
# --colour --dice-on-empty, the task weights kept fixed as the parent's), the held-out val squares
# counted at every epoch (--val-negatives, in ft-negatives.sh). About 35 min in fp32:
#   setsid nohup scripts/runs/ft-lr8-fixedw.sh >> ~/.cache/napari-depthpolyp/runs/ft-lr8-fixedw.log 2>&1 < /dev/null &
# Decided before the run: released as 1.10 if its selected val score beats 1.9's .8325 and it marks
# not more than 35 % of the held-out val squares (1.9's 30 % plus 5 points; the count printed for the
# selected epoch, confirmed with `depthpolyp eval --data ~/.cache/napari-depthpolyp/negatives/kvasir-val
# --model <model>`). Run it only once main-v12-lr8-fixedw has finished, whatever its own verdict:
# the fine-tune is what would be released.
exec "$(dirname "$0")/ft-negatives.sh" ~/.cache/napari-depthpolyp/out/depthpolyp-kvasir-base-lr8-fixedw 1.10-lr8-fixedw \
  --colour --dice-on-empty
