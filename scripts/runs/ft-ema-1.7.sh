#!/usr/bin/env bash
# An experiment for issue 4 (session 17): an average of the weights along a fine-tune of the bundled
# 1.7. Every fine-tune of a trained model so far (continue-1.5, cleanmix-1.5, paste-1.5) wandered
# around its parent's val figure by about a point from epoch to epoch, and the best of those points
# is what selection keeps. An exponential moving average of the weights (the EMA the 200-epoch runs
# already validate and export) takes the centre of that wandering instead. This run is 1.7's own
# fine-tune (ft-negatives.sh: Kvasir-SEG train plus its polyp-free squares, lr 5e-5, 1 warm-up epoch
# then cosine, --colour, the reference's geometric ranges), from 1.7, with two changes: EMA 0.998
# (about 500 steps, six epochs of 84) and 20 epochs instead of 15. About 85 min at 6.5 img/s (fp32,
# AVX2-only machine):
#   setsid nohup scripts/runs/ft-ema-1.7.sh >> ~/.cache/napari-depthpolyp/runs/ft-ema-1.7.log 2>&1 < /dev/null &
# Decided before the run: released as 1.8 if its selected val score beats 1.7's .8277 and it marks
# the held-out val squares (scripts/evaluate_model.py) not more than 5 points above 1.7's 34 %.
# Result (session 17, 58 min at 8.9 img/s in fp32): val .843 / .786 at epoch 3, score .8257; val fell
# about a point from epoch 5 on: not better, not released (docs/model-card.md).
exec "$(dirname "$0")/ft-negatives.sh" depthpolyp-kvasir-1.7 1.8-ema --colour --ema 0.998 --epochs 20
