"""Does running the network at a larger input size than it was trained at (224) help? Measured on
Kvasir-SEG val only (selection data; the test sets are not looked at), with the torch backend:

* clean: each val frame resized from its original straight to S x S, the probability map resized
  back to the frame's size, Dice at the original resolution (``evaluate(resolution="original")``);
* degraded: the evaluation protocol's own degraded 224 x 224 frame (seed 0), resized to S x S, the
  maps resized back to 224, Dice at the model resolution. Degrading at S instead would change the
  degradations themselves (blur kernels, spot sizes in pixels) and so the test, not the model.

    python scripts/sweep_input_size.py [--sizes 224 256 288 320] [--model ID] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.engine import Predictor
from napari_depthpolyp.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]


class ResizedPredictor(Predictor):
    """Runs the network at ``size`` on whatever it is given, and returns the maps at the given size."""

    size = 224

    def _run(self, x: torch.Tensor):
        n = x.shape[-1]
        prob, depth = super()._run(F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False))

        def back(a: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(a))[:, None]
            return F.interpolate(t, size=(n, n), mode="bilinear", align_corners=False)[:, 0].numpy()

        return back(prob), back(depth)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 256, 288, 320])
    ap.add_argument("--model")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "kvasir-seg"))
    ap.add_argument("--json")
    args = ap.parse_args()
    val = Dataset.open(args.data, split="val")
    rows = {}
    print("| input size | val clean Dice | val degraded Dice | score (0.7 clean + 0.3 degraded) |")
    print("|---|---|---|---|")
    for s in args.sizes:
        direct = Predictor(args.model, backend="torch")
        direct.input_size = s
        clean = evaluate(direct, val, resolution="original", teacher=None)["mean_dice"]
        resized = ResizedPredictor(args.model, backend="torch")
        resized.size = s
        degraded = evaluate(resized, val, degraded=True, seed=0, resolution="model", teacher=None)["mean_dice"]
        rows[s] = {"clean": clean, "degraded": degraded, "score": 0.7 * clean + 0.3 * degraded}
        print(f"| {s} | {clean:.4f} | {degraded:.4f} | {rows[s]['score']:.4f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": direct.model.id, "sizes": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
