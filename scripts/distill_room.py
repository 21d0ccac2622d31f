"""How much room does distillation leave? On training samples made as a run makes them (augmented,
coloured, degraded; the epoch-0 draws), the distillation term (``losses.distill_loss``: BCE against
the teachers' mean polyp probability, on frames with a polyp) of each model given, and its floor:
the teachers' own entropy, what a student that matched their average exactly would score.

    python scripts/distill_room.py --teachers DIR_OF_1.9 DIR_OF_1.8 --models DIR_OF_1.9 DIR [--n 96]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.engine import Predictor
from napari_depthpolyp.models import resolve_model
from napari_depthpolyp.train.cache import build_cache
from napari_depthpolyp.train.loop import SampleSource, TrainConfig, Trainer
from napari_depthpolyp.train.losses import distill_loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teachers", nargs="+", required=True)
    ap.add_argument("--models", nargs="+", required=True, help="the models whose term is measured")
    ap.add_argument("--data", default="../shared/data/kvasir-seg")
    ap.add_argument("--n", type=int, default=96, help="training samples (default 96)")
    args = ap.parse_args(argv)
    cfg = TrainConfig(train_data=[args.data], val_data=None, colour=True, workers=0, bf16=False)
    source = SampleSource(build_cache(Dataset.open(args.data, split="train"), cfg.input_size), cfg)
    teachers = [Predictor(m) for m in args.teachers]  # as a run's teachers: through the inference engine
    models = {model.id: model.load_torch().eval() for model in map(resolve_model, args.models)}
    picks = np.random.default_rng(0).choice(len(source), min(args.n, len(source)), replace=False)
    floor, term = [], {m: [] for m in models}
    with torch.no_grad():
        for s in range(0, len(picks), 16):
            batch = [source[(0, int(i))] for i in picks[s : s + 16]]
            x, mask = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
            soft = Trainer._teachers_probability(teachers, x)
            floor.append(float(distill_loss(torch.logit(soft.clamp(1e-6, 1 - 1e-6)), soft, mask)))
            for m, net in models.items():
                term[m].append(float(distill_loss(net(x)[:, 0:1], soft, mask)))
    print(f"floor (the teachers' own entropy): {np.mean(floor):.4f}  ({len(picks)} training samples)")
    for m in models:
        print(f"{m}: {np.mean(term[m]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
