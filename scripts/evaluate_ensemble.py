"""Would an average of several models do better than one? Each frame's polyp probability (and depth)
is averaged over the models, then scored by ``evaluate`` exactly as ``depthpolyp eval`` scores one
model: mean Dice clean and degraded (seed 0) at 224², and the val score (0.7 clean + 0.3 degraded).
Used on Kvasir-SEG val to decide whether distilling an ensemble into one network is worth a run
(``scripts/runs/distill-1.9.sh``); never on the test sets to choose.

    python scripts/evaluate_ensemble.py --models depthpolyp-kvasir-1.10 DIR_OF_1.9 [--combos] [--json OUT]

``--combos``: also each model alone and every pair. A model released before the bundled one comes
back from git with ``scripts/runs/_released.sh VERSION COMMIT`` (1.9: ``_released.sh 1.9 7a683d7``, 1.8: ``_released.sh 1.8 c0e3f0a^``).
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.engine import Predictor
from napari_depthpolyp.evaluate import evaluate
from napari_depthpolyp.io.atomic import write_json


class Average:
    """The mean of several predictors' maps, with what ``evaluate`` asks of a predictor (the first
    model's threshold, input size and name)."""

    def __init__(self, predictors: list[Predictor]):
        first = predictors[0]
        sizes = {p.input_size for p in predictors}
        if len(sizes) > 1:
            raise SystemExit(f"the models take different input sizes ({sorted(sizes)}): they cannot be averaged")
        self.predictors = predictors
        self.threshold, self.input_size, self.min_region = first.threshold, first.input_size, first.min_region
        self.model, self.backend, self.tta = first.model, first.backend, False

    def run_batch(self, x):
        outs = [p.run_batch(x) for p in self.predictors]
        return tuple(np.mean([o[k] for o in outs], axis=0).astype(np.float32) for k in (0, 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", required=True, help="model ids or folders")
    ap.add_argument("--data", default="../shared/data/kvasir-seg")
    ap.add_argument("--split", default="val")
    ap.add_argument("--combos", action="store_true", help="also each model alone and every pair")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    predictors = {m: Predictor(m) for m in args.models}
    dataset = Dataset.open(args.data, split=args.split)
    sets = [tuple(args.models)]
    if args.combos:
        sets = [(m,) for m in args.models] + list(itertools.combinations(args.models, 2)) + sets
    rows = []
    for combo in dict.fromkeys(sets):
        avg = Average([predictors[m] for m in combo])
        clean, degraded = (evaluate(avg, dataset, degraded=d, teacher=None)["mean_dice"] for d in (False, True))
        rows.append({"models": [predictors[m].model.id for m in combo], "dice_clean": clean,
                     "dice_degraded": degraded, "val_score": 0.7 * clean + 0.3 * degraded})
        print(f"{' + '.join(rows[-1]['models'])}: Dice {clean:.4f} / {degraded:.4f}, score {rows[-1]['val_score']:.4f}",
              flush=True)
    if args.json:
        write_json(args.json, {"data": args.data, "split": args.split, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
