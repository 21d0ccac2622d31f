"""Measure a trained model with its BatchNorm statistics re-measured on whole epochs of its own
training samples ("precise BN"), on Kvasir-SEG val, and optionally write that model.

A model trained without an EMA keeps the running statistics BatchNorm averaged (momentum 0.1) over
its last few dozen training batches: statistics of the last weights on a small, random share of the
samples. 1.7's own fine-tune, run again with the same seed, moved between val score .820 and .830
from one epoch to the next while its training loss did not move. This script takes a model's
training configuration from its card, rebuilds the same training samples (augmentation, colour,
degradations), measures the statistics as a plain average over K batches of them (the trainer's
``_refit_bn``, ``torch.optim.swa_utils.update_bn``), and validates on the trainer's own val frames.
Val only: the cross-dataset test is never looked at here.

Decided before it was run (session 18): the step is adopted for a released model if, at 84 batches
(one epoch, 1344 samples), its val score rises by more than 0.3 points over the model as trained,
with samples drawn from two epochs (1000 and 1001) alike; otherwise the model is shipped as trained.

    python scripts/precise_bn.py --model depthpolyp-kvasir-1.7 --batches 10 42 84 [--epoch 1000]
    python scripts/precise_bn.py --model M --batches 84 --write OUT --version V
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import tempfile


def main() -> int:
    from napari_depthpolyp.models import ModelCard, resolve_model, write_model
    from napari_depthpolyp.train.loop import SampleSource, Trainer, TrainConfig, steps_per_epoch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--batches", type=int, nargs="+", default=[84], help="training batches to average over (at most one epoch's)")
    ap.add_argument("--epoch", type=int, default=1000, help="the epoch number whose samples are drawn (not one the run trained on)")
    ap.add_argument("--write", help="write the model with the statistics of the last --batches value here")
    ap.add_argument("--version", help="the written model's version")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    if args.write and not args.version:
        ap.error("--write needs --version")

    model = resolve_model(args.model)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in model.card.config.items() if k in fields}
    values["train_data"] = [os.path.expanduser(p) for p in values["train_data"]]
    values["val_data"] = os.path.expanduser(values["val_data"])
    values["init_model"] = None
    cfg = TrainConfig(**values)
    trainer = Trainer(cfg, run_dir=tempfile.mkdtemp(prefix="precise-bn-"))
    trainer._prepare(None)
    source = SampleSource(trainer.train_cache, cfg)
    spe = steps_per_epoch(len(trainer.train_cache), cfg)
    net = model.load_torch().eval()
    rows = [{"batches": 0, **trainer.validate(net)}]
    print(f"{model.id} as shipped: {json.dumps(rows[0])}", flush=True)
    refit = None
    for k in args.batches:
        if not 0 < k <= spe:
            ap.error(f"--batches {k}: between 1 and {spe} (one epoch)")
        refit = copy.deepcopy(net)
        trainer._refit_bn(refit, source, args.epoch, False, batches=k)
        rows.append({"batches": k, **trainer.validate(refit)})
        print(f"statistics over {k} batches ({k * cfg.batch_size} samples): {json.dumps(rows[-1])}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": model.id, "epoch": args.epoch, "rows": rows}, fh, indent=1)
    if args.write:
        k = args.batches[-1]
        card: ModelCard = model.card
        metrics = {**card.metrics, "val": {key: v for key, v in rows[-1].items() if key.startswith("val_")},
                   "before_precise_bn": card.metrics.get("val"),
                   "precise_bn": {"batches": k, "samples": k * cfg.batch_size, "epoch": args.epoch}}
        card = dataclasses.replace(
            card, version=args.version, config={**card.config, "version": args.version}, metrics=metrics,
            description=f"{card.description}; BatchNorm statistics re-measured on {k * cfg.batch_size} "
                        f"training samples (scripts/precise_bn.py, from {model.id})")
        out = write_model(args.write, refit.state_dict(), card)
        print(f"wrote {out.id} to {out.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
