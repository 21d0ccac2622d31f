#!/usr/bin/env bash
# An experiment for issue 4 (session 23), after ft-dice-1.9.sh and the two distillations of 1.9.
# All three selected epoch 3 at val score .834 while marking half the held-out val squares, and so
# failed the release rule's second half, which selection never looked at; ft-dice-1.9's later epochs
# scored .832-.833 with 30-33 % marked. The ceiling is now part of selection
# (--select-max-negatives 0.35: the best val score among the epochs marking at most 35 % of the
# squares, the rule's own limit, 1.9's 30 % plus 5 points). Those three runs drew the same samples in
# the same order (seed 0); rerunning one of them with the ceiling would pick an epoch already seen,
# so this is ft-dice-1.9.sh with a new seed (1) and the ceiling: a new draw, its rule fixed first.
# About 25 min in fp32 on an AVX2 CPU:
#   setsid nohup scripts/runs/ft-dice-1.9-s1.sh >> ~/.cache/napari-depthpolyp/runs/ft-dice-1.9-s1.log 2>&1 < /dev/null &
# Decided before the run: released as 1.10 if its selected val score beats 1.9's .8325 by more than
# 0.01 points and it marks not more than 35 % of the held-out val squares; then measured on the test
# sets as every release.
# Result (2026-12-08, 26 min): val score .8312, .8322, .8372 (46 % marked: beyond the ceiling),
# .8315, .8324, .8358 (29 %), .8376 (34 %), .8369, .8361, .8370 over epochs 1-10; selected epoch 7,
# val .853 / .802, score .8376 (+0.51 over 1.9), 42 of 125 squares marked (34 %): both halves pass,
# released as 1.10 (scripts/release_model.py ... --version 1.10). Seed 0 (ft-dice-1.9.sh) ran
# .8327-.8331 over the same epochs: the two seeds differ by about the seed spread (0.7 points).
set -euo pipefail
cd "$(dirname "$0")/../.."
T19=$("$(dirname "$0")/_released.sh" 1.9 7a683d7)  # bundled until 1.10
exec "$(dirname "$0")/ft-negatives.sh" "$T19" 1.10-dice-s1 --colour --epochs 10 --seed 1 \
  --select-max-negatives 0.35
