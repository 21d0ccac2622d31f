#!/usr/bin/env bash
# An experiment for issue 4, after restart-1.5.sh: more optimisation at a low learning rate. The warm
# restart (lr back to 2e-4) threw 1.5 out of its minimum and ended worse on val and on its own
# training frames. This run repeats, from 1.5 itself, the fine-tune that made 1.5 (lr 5e-5, 1 warm-up
# epoch then cosine, no EMA, 15 epochs, val every epoch, Kvasir-SEG train plus its polyp-free
# squares), with --colour and --augment strong: 15 more epochs near the minimum the first run found.
# About 25 min on a 2-core CPU at 17.6 img/s:
#   setsid nohup scripts/runs/continue-1.5.sh >> ~/.cache/napari-depthpolyp/runs/continue-1.5.log 2>&1 < /dev/null &
# Decided before the run: it helps if the selected val score beats 1.5's .8191 by more than the
# seed-to-seed spread (0.7 points); it is released by the usual rule (val score above .8191, held-out
# val squares marked not worse than 1.5's 33 % by more than 5 points).
# Result: val .825 / .775 at epoch 1, score .8100: not better, not released (docs/model-card.md).
# 1.5 is no longer bundled: main-v4.sh then ft-negatives.sh ... 1.5 --colour write it here (or restore it from git)
exec "$(dirname "$0")/ft-negatives.sh" "${DEPTHPOLYP_CACHE_DIR:-$HOME/.cache/napari-depthpolyp}/out/depthpolyp-kvasir-1.5" 1.6-lowlr --colour --augment strong
