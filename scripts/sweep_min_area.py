"""Would dropping small marked regions help? For each minimum region size (a share of the frame),
every connected region of the mask (probability >= the model's threshold) smaller than it is
removed, and the script prints what that does to:

* Kvasir-SEG val, clean and degraded (seed 0, the evaluation protocol's frames), mean Dice at 224²,
  and how many val frames lose more than 0.01 Dice (a true polyp, or part of one, removed);
* the held-out polyp-free squares of the val frames (``scripts/make_negatives.py --split val``):
  the share with anything marked;
* the PolypGen no-polyp sequences (a test set: printed to report, never to choose): the share of
  frames with anything marked.

The network runs once per frame (the default engine, ONNX Runtime); the sizes are applied after.

    python scripts/sweep_min_area.py [--model ID] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from napari_depthpolyp.degrade import degrade_seeded
from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.engine import Predictor
from napari_depthpolyp.evaluate import degraded_frame_seed
from napari_depthpolyp.io.images import list_images, read_image
from napari_depthpolyp.metrics import binary_metrics, drop_small_regions
from napari_depthpolyp.negatives import write_negative_crops
from napari_depthpolyp.paths import cache_dir
from napari_depthpolyp.preprocess import resize_batch, resize_mask, to_float_rgb

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))
SIZES = (0.0, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02)


def probabilities(predictor: Predictor, ds: Dataset, degraded: bool = False):
    size = predictor.input_size
    for i in range(len(ds)):
        image, mask, _ = ds.load(i)
        x = resize_batch([to_float_rgb(image, str(ds[i].image))], size)
        m = resize_mask(mask, size)
        if degraded:
            frame, m = degrade_seeded(x[0].permute(1, 2, 0).numpy(), m, seed=degraded_frame_seed(0, i))
            x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
        yield predictor.run_batch(x)[0][0], m.astype(bool)


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    return binary_metrics(pred, gt)["dice"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--json")
    args = ap.parse_args()
    p = Predictor(args.model)
    val = Dataset.open(SHARED / "kvasir-seg", split="val")
    crops = cache_dir() / "negatives" / "kvasir-val"
    if not (crops / "manifest.json").is_file():
        write_negative_crops(val, crops, overwrite=True)
    sets = {
        "clean": list(probabilities(p, val)),
        "degraded": list(probabilities(p, val, degraded=True)),
        "squares": [prob for prob, _ in probabilities(p, Dataset.open(crops))],
        "polypgen": [],
    }
    for seq in sorted(d for d in (SHARED / "polypgen-negative").iterdir() if d.is_dir()):
        for f in list_images(seq):
            sets["polypgen"].append(p.run_batch(resize_batch([to_float_rgb(read_image(f), str(f))], p.input_size))[0][0])
    thr = p.threshold
    rows = []
    print("| smallest region kept (share of the frame) | val clean Dice | val degraded Dice | score | val frames losing > 0.01 Dice, clean / degraded | val squares marked | PolypGen no-polyp frames marked |")
    print("|---|---|---|---|---|---|---|")
    for share in SIZES:
        row = {"min_region": share}
        for k in ("clean", "degraded"):
            before = [dice(prob >= thr, m) for prob, m in sets[k]]
            after = [dice(drop_small_regions(prob >= thr, share), m) for prob, m in sets[k]]
            row[k] = float(np.mean(after))
            row[f"{k}_frames_worse"] = int(sum(a < b - 0.01 for a, b in zip(after, before)))
        row["score"] = 0.7 * row["clean"] + 0.3 * row["degraded"]
        for k in ("squares", "polypgen"):
            row[f"{k}_marked"] = float(np.mean([drop_small_regions(prob >= thr, share).any() for prob in sets[k]]))
        rows.append(row)
        print(f"| {share:.2%} | {row['clean']:.4f} | {row['degraded']:.4f} | {row['score']:.4f} | "
              f"{row['clean_frames_worse']} / {row['degraded_frames_worse']} | {row['squares_marked']:.0%} | "
              f"{row['polypgen_marked']:.0%} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": p.model.id, "threshold": thr, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
