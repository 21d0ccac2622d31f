"""``depthpolyp``: the command line over the same core the napari widgets use.

Sub-commands: predict, demo, info, models, export-onnx, train, finetune, eval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


class Progress:
    """A one-line progress bar on stderr (quiet when stderr is not a terminal, except the end)."""

    def __init__(self, label: str, total: int | None = None, stream=sys.stderr):
        self.label, self.total, self.stream = label, total, stream
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, done: int, total: int | None = None, extra: str = "") -> None:
        total = total or self.total
        now = time.perf_counter()
        final = total is not None and done >= total
        if not final and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        if total:
            width = 30
            fill = int(width * done / total)
            bar = f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total}"
        else:
            bar = f"{done}"
        line = f"{self.label} {bar} {rate:.1f}/s {extra}".rstrip()
        self.stream.write(("\r" if self.tty else "") + line + ("\n" if final or not self.tty else ""))
        self.stream.flush()


# ---------------------------------------------------------------------------------------- info
def cmd_info(args) -> int:
    from .model import DepthPolyp, count_macs, count_parameters
    from .models import resolve_model

    model = resolve_model(args.model)
    model.check_graph_file()  # card.json against model.onnx (no engine session here)
    net = model.load_torch()
    info = {
        "model": model.id,
        "path": str(model.path),
        "bundled": model.bundled,
        "params": count_parameters(net),
        "macs": count_macs(DepthPolyp().eval(), model.card.input_size[0]),
        "input_size": model.card.input_size,
        "default_threshold": model.card.default_threshold,
        "parent": model.card.parent,
        "files": model.card.files,
        "metrics": model.card.metrics,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"model       {info['model']}  ({info['path']})")
        print(f"params      {info['params']:,}")
        print(f"MACs        {info['macs'] / 1e9:.3f} G at {info['input_size'][0]}x{info['input_size'][1]}")
        print(f"threshold   {info['default_threshold']}")
        print(f"parent      {info['parent']}")
        for name, digest in info["files"].items():
            print(f"file        {name}  sha256 {digest}")
    return 0


def cmd_models(args) -> int:
    from .models import list_models

    skipped = []  # the directories that are not usable models: listed on stderr, exit code 2
    for m in list_models(skipped):
        where = "bundled" if m.bundled else "user"
        val = m.card.metrics.get("val")
        dice = val.get("val_dice_clean") if isinstance(val, dict) else None
        extra = f"  val Dice {dice:.3f}" if isinstance(dice, (int, float)) else ""
        print(f"{m.id:40s} {where:8s} parent={m.card.parent}{extra}  {m.path}")
    for exc in skipped:
        print(f"depthpolyp models: error: {exc}", file=sys.stderr)
    return 2 if skipped else 0


def cmd_export_onnx(args) -> int:
    from .models import export_onnx_model, resolve_model

    model = resolve_model(args.model)
    out = export_onnx_model(model.load_torch(), args.out, model.card, opset=args.opset)
    print(f"wrote {out} (input 'image' [N,3,{model.card.input_size[0]},{model.card.input_size[1]}], dynamic batch)")
    return 0


# ---------------------------------------------------------------------------------------- train
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a number of frames (1 or more)")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _train_config(args, defaults=None, **over):
    """TrainConfig from: its defaults < ``defaults`` < the command line < ``over``."""
    from .train import TrainConfig

    fields = TrainConfig.__dataclass_fields__
    values = dict(defaults or {})
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    values.update(over)
    return TrainConfig(**values)


def _run_training(cfg, args) -> int:
    from .train import Trainer

    trainer = Trainer(cfg, run_dir=args.run_dir)
    print(f"run directory: {trainer.run_dir}", file=sys.stderr)
    bar = Progress("epoch")

    def progress(e):
        kind = e["event"]
        if kind in ("cache", "distill_view"):
            bar.label = "caching frames" if kind == "cache" else "teachers on the clean frames"
            bar.update(e["done"], e["total"])
        elif kind == "batch":
            bar.label = f"epoch {e['epoch'] + 1}/{cfg.epochs}"
            bar.update(e["batch"], e["batches"], f"loss {e['loss']:.4f}")
        elif kind == "epoch":
            vals = " ".join(f"{k}={v:.4f}" for k, v in e.items() if k.startswith("val_"))
            print(f"epoch {e['epoch']}: loss {e.get('loss_total', float('nan')):.4f} "
                  f"{e['images_per_s']:.1f} img/s {vals}", file=sys.stderr)
        elif kind == "precision":
            print("precision: " + ("bf16 autocast" if e["bf16"] else "fp32" + (
                " (this CPU has no native bf16: emulated bf16 is about 10x slower)" if e["requested"] else "")),
                file=sys.stderr)
        elif kind == "parent_val":
            print(f"{e['model']}, the model it starts from, on the val frames: " + " ".join(
                f"{k}={v:.4f}" for k, v in e.items() if k.startswith("val_")), file=sys.stderr)
        elif kind in ("resumed", "cancelled", "early_stop"):
            print(f"{kind}: epoch {e['epoch']} batch {e['batch']}", file=sys.stderr)

    try:
        model = trainer.run(progress=progress, resume=args.resume, out_dir=args.out)
    except KeyboardInterrupt:
        print(f"interrupted: resume with --resume (run directory {trainer.run_dir})", file=sys.stderr)
        return 130
    if model is None:
        return 130
    print(f"wrote model {model.id} to {model.path}")
    before, after = model.card.metrics.get("parent_val"), model.card.metrics.get("val", {})
    if before and "val_score" in after:
        verdict = "better than" if after["val_score"] > before["val_score"] else "NOT better than"
        print(f"on the same val frames: {before['model']} {before['val_score']:.4f} -> {model.id} "
              f"{after['val_score']:.4f} (val score; Dice clean {before['val_dice_clean']:.4f} -> "
              f"{after['val_dice_clean']:.4f}, degraded {before['val_dice_degraded']:.4f} -> "
              f"{after['val_dice_degraded']:.4f}): {verdict} the model it started from")
        if "val_negatives_marked" in before and "val_negatives_marked" in after:
            print(f"polyp-free frames marked ({args.val_negatives}): {before['val_negatives_marked']:.1%} -> "
                  f"{after['val_negatives_marked']:.1%}")
    return 0


def cmd_train(args) -> int:
    over = {"train_data": args.data}
    if args.no_depth:
        over["depth"] = False
    if args.no_degrade:
        over["degrade"] = False
    if args.no_uncertainty:
        over["uncertainty"] = False
    if args.fp32:
        over["bf16"] = False
    return _run_training(_train_config(args, **over), args)


def _finetune_config(args):
    """The fine-tune's TrainConfig: FINETUNE_DEFAULTS (whole folders, ...) < what the parent was
    trained with (its task weighting) < the command line."""
    from .models import resolve_model
    from .train.loop import FINETUNE_DEFAULTS, inherited_from_parent

    parent = resolve_model(args.model)
    over = {
        "train_data": args.data,
        "init_model": str(parent.path),
        "name": args.name or parent.card.name,
        "freeze_encoder": args.freeze_encoder,
    }
    return _train_config(args, {**FINETUNE_DEFAULTS, **inherited_from_parent(parent.card.config)}, **over)


def cmd_finetune(args) -> int:
    return _run_training(_finetune_config(args), args)


# ---------------------------------------------------------------------------------------- eval
def cmd_eval(args) -> int:
    from .dataset import REVIEWED, Dataset, DatasetError
    from .engine import Predictor
    from .evaluate import evaluate

    for flag, target in (("--json", args.json), ("--per-frame", args.per_frame)):
        if target and Path(target).is_dir():  # found now, not after the whole evaluation
            raise IsADirectoryError(f"{flag} {target} is a folder: give the file to write the result to")
    predictor = Predictor(args.model, backend=args.backend, threshold=args.threshold, tta=args.tta,
                          min_region=args.min_region)
    # a curated export's unreviewed frames hold the model's own proposals, not ground truth
    dataset = Dataset.open(args.data, split=args.split, statuses=REVIEWED)
    if len(dataset) == 0:
        what = f"split '{args.split}' of " if args.split else ""
        raise DatasetError(f"{args.data}: the {what}data set holds no reviewed frame to evaluate on")
    bar = Progress(f"eval {Path(args.data).name}")
    result = evaluate(
        predictor, dataset, degraded=args.degraded, seed=args.seed, resolution=args.resolution,
        teacher=args.teacher, progress=bar.update, limit=args.limit, per_frame=bool(args.per_frame),
    )
    frames = result.pop("frames", None)
    result["split"] = args.split
    print(json.dumps(result, indent=2))  # first: a failed write below loses no result
    sys.stdout.flush()
    if frames is not None:
        import csv

        from .evaluate import FRAME_COLUMNS
        from .io.atomic import atomic_open

        with atomic_open(args.per_frame, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=FRAME_COLUMNS)
            writer.writeheader()
            writer.writerows(frames)
        print(f"{len(frames)} frames' figures written to {args.per_frame}", file=sys.stderr)
    if args.json:
        from .io.atomic import write_json

        try:
            write_json(args.json, result)
        except OSError as exc:
            raise OSError(f"the result (printed above) could not be written to {args.json}: {exc}") from exc
    return 0


# ---------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="depthpolyp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    from .demo import add_demo_parser
    from .predict import add_engine_args, add_predict_parser

    add_predict_parser(sub)
    add_demo_parser(sub)

    s = sub.add_parser("info", help="parameters, MACs, input size, files and hashes of a model")
    s.add_argument("--model", help="model id, name or directory (default: the bundled model)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("models", help="list bundled and user models")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("export-onnx", help="export a model to ONNX (dynamic batch, card in metadata)")
    s.add_argument("--model")
    s.add_argument("--out", required=True)
    s.add_argument("--opset", type=int, default=20)
    s.set_defaults(func=cmd_export_onnx)

    def training_args(s, finetune: bool):
        s.add_argument("--data", nargs="+", required=True, help="dataset folder(s)")
        s.add_argument("--val-data", dest="val_data")
        s.add_argument("--val-negatives", dest="val_negatives", metavar="FOLDER",
                       help="polyp-free frames (empty masks): the share marked is printed at each "
                            "validation beside the val score, which alone selects")
        s.add_argument("--epochs", type=int)
        s.add_argument("--batch-size", dest="batch_size", type=int)
        s.add_argument("--lr", type=float)
        s.add_argument("--weight-decay", dest="weight_decay", type=float)
        s.add_argument("--warmup-epochs", dest="warmup_epochs", type=float)
        s.add_argument("--seed", type=int)
        s.add_argument("--teacher", help="falloff (default), precomputed, or PATH.onnx")
        s.add_argument("--ema", type=float)
        s.add_argument("--val-every", dest="val_every", type=int)
        s.add_argument("--patience", type=int, help="early stopping after N validations without gain")
        s.add_argument("--workers", type=int)
        s.add_argument("--threshold", type=float)
        s.add_argument("--noise", action="store_true", default=None, help="add sensor noise to the degradations")
        s.add_argument("--out", help="model directory to write (default: a new user model version)")
        s.add_argument("--run-dir", dest="run_dir", help="checkpoint directory (default: under the user cache)")
        s.add_argument("--resume", action="store_true", help="continue the run from its last checkpoint")
        s.add_argument("--version")
        s.add_argument("--description")
        s.add_argument("--split", dest="train_split",
                       help="training split of folders with a split.json (default: train; fine-tune: whole folders)")
        s.add_argument("--val-split", dest="val_split")
        s.add_argument("--colour", action="store_true", default=None,
                       help="also vary white balance, hue, saturation and gamma (other endoscopes' colours)")
        s.add_argument("--augment", dest="augment_preset", choices=["reference", "strong"],
                       help="geometric augmentation: the reference's ranges (default) or wider ones")
        s.add_argument("--degrade-prob", dest="degrade_prob", type=_probability,
                       help="share of training frames degraded, the rest seen clean (default 1, the reference)")
        s.add_argument("--dice-on-empty", dest="dice_positives", action="store_false", default=None,
                       help="score polyp-free frames with the Dice term too (before session 17; it "
                            "dilutes the other frames' gradient: BCE alone scores them by default)")
        s.add_argument("--paste-prob", dest="paste_prob", type=_probability,
                       help="share of training frames that get another frame's polyp pasted in (default 0)")
        s.add_argument("--distill-from", dest="distill_from", nargs="+", metavar="MODEL",
                       help="also teach these models' mean polyp probability on each training input, on "
                            "frames with a polyp (knowledge distillation; e.g. an ensemble into one model)")
        s.add_argument("--distill-weight", dest="distill_weight", type=float,
                       help="weight of the distillation term beside the segmentation loss (default 1)")
        s.add_argument("--select-max-negatives", dest="select_max_negatives", type=_probability, metavar="SHARE",
                       help="with --val-negatives: select the best val score among the epochs that mark at "
                            "most this share of those polyp-free frames (0-1; default: the score alone)")
        s.add_argument("--distill-view", dest="distill_view", choices=["input", "clean"],
                       help="what the teachers see: each training input as it is (default), or each clean "
                            "frame once before training, flip-averaged, their map then warped with the mask")
        if finetune:
            s.add_argument("--model", help="parent model (default: the bundled model)")
            s.add_argument("--name", help="name of the new model (default: the parent's)")
            s.add_argument("--freeze-encoder", dest="freeze_encoder", action="store_true")
            s.add_argument("--uncertainty", action=argparse.BooleanOptionalAction, default=None,
                           help="learned (--uncertainty) or fixed (--no-uncertainty) task weights "
                                "(default: as the parent was trained)")
        else:
            s.add_argument("--name")
            s.add_argument("--no-depth", action="store_true", help="ablation: train without the depth task")
            s.add_argument("--no-degrade", action="store_true", help="train on clean frames only")
            s.add_argument("--no-uncertainty", action="store_true", help="fixed (unlearned) task weights")
            s.add_argument("--fp32", action="store_true", help="no bf16 autocast (it is used only where the CPU computes bf16 natively)")

    s = sub.add_parser("train", help="train DepthPolyp (resumable; writes a model directory)")
    training_args(s, finetune=False)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("finetune", help="fine-tune a registered model on curated dataset folders")
    training_args(s, finetune=True)
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("eval", help="Dice/IoU/recall/precision, S/E/wF measures, MAE and depth robustness")
    s.add_argument("--data", required=True)
    s.add_argument("--split")
    s.add_argument("--model")
    add_engine_args(s)
    s.add_argument("--threshold", type=float)
    s.add_argument("--degraded", action="store_true")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--resolution", choices=("model", "original"), default="model")
    s.add_argument("--teacher", default="falloff", help="depth teacher for the depth-vs-teacher figure")
    s.add_argument("--limit", type=_positive, help="only the first N frames")
    s.add_argument("--json", help="also write the result to this file")
    s.add_argument("--per-frame", dest="per_frame", metavar="FILE.csv",
                   help="also write each frame's figures (Dice, IoU, areas, ...) to this CSV file")
    s.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    from .dataset import DatasetError
    from .depth import TeacherError
    from .models import ModelError
    from .preprocess import FrameError

    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ModelError, DatasetError, FrameError, TeacherError, OSError) as exc:
        # OSError: a missing file, a folder where a file should be, no permission, a full disk
        print(f"depthpolyp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
