"""Evaluate a model on the paper's protocol and print the model card's table.

Kvasir-SEG val (200) and all of CVC-ClinicDB (612), each clean and degraded (seed 0), at the
model's resolution (224x224, the paper's protocol) and at the frame's original resolution. Every
figure is one ``depthpolyp eval`` call; this script runs them all, writes the JSON results and
prints a Markdown table with the paper's numbers beside ours. Then the false-positive test for
video: ``depthpolyp predict`` over the five PolypGen sequences that show no polyp at all, counting
the frames where the model marks any polyp pixel, and the same count on polyp-free squares cut
from the Kvasir-SEG val frames (``scripts/make_negatives.py``; held out like val itself).

    python scripts/evaluate_model.py --model M [--out results/eval-M] [--threshold 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))
PAPER = {("kvasir", False): 0.891, ("kvasir", True): 0.853, ("cvc", False): 0.854, ("cvc", True): 0.751}
SETS = {"kvasir": ("kvasir-seg", "val"), "cvc": ("cvc-clinicdb", None)}


def command(model: str, key: str, degraded: bool, resolution: str, threshold: float | None, out: Path) -> list[str]:
    folder, split = SETS[key]
    args = ["eval", "--data", str(SHARED / folder), "--model", model, "--resolution", resolution, "--json", str(out)]
    if split:
        args += ["--split", split]
    if degraded:
        args += ["--degraded", "--seed", "0"]
    if threshold is not None:
        args += ["--threshold", str(threshold)]
    return args


def main() -> int:
    from napari_depthpolyp.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out")
    ap.add_argument("--threshold", type=float)
    ap.add_argument("--resolutions", nargs="+", default=["model", "original"])
    args = ap.parse_args()
    out_dir = Path(args.out or f"results/eval-{Path(args.model).name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for key in SETS:
        for degraded in (False, True):
            for res in args.resolutions:
                out = out_dir / f"{key}-{'degraded' if degraded else 'clean'}-{res}.json"
                if not out.is_file():
                    argv = command(args.model, key, degraded, res, args.threshold, out)
                    print("depthpolyp " + " ".join(argv), file=sys.stderr)
                    if cli(argv) != 0:
                        return 1
                r = json.loads(out.read_text())
                rows.append((key, degraded, res, r))
    print("| test set | condition | resolution | paper mean Dice | ours mean Dice | IoU | recall | precision | S | E | wF | MAE | depth clean↔degraded | depth↔teacher |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, degraded, res, r in rows:
        paper = f"{PAPER[(key, degraded)]:.3f}" if res == "model" else "—"
        name = "Kvasir-SEG val" if key == "kvasir" else "CVC-ClinicDB (612)"
        cells = [name, "degraded (seed 0)" if degraded else "clean", res, paper, f"**{r['mean_dice']:.3f}**"]
        cells += [f"{r[k]:.3f}" for k in ("mean_iou", "recall", "precision", "s_measure", "mean_e_measure", "weighted_f", "mae")]
        for field in ("depth_clean_vs_degraded", "depth_vs_teacher"):
            v = r.get(field)
            cells.append(f"{v:.3f}" if v is not None else "—")
        print("| " + " | ".join(cells) + " |")
    if false_positives(args.model, args.threshold, out_dir) != 0:
        return 1
    return val_crops_marked(args.model, args.threshold, out_dir)


def val_crops_marked(model: str, threshold: float | None, out_dir: Path) -> int:
    from napari_depthpolyp.cli import main as cli
    from napari_depthpolyp.dataset import Dataset
    from napari_depthpolyp.negatives import write_negative_crops
    from napari_depthpolyp.paths import cache_dir

    crops = cache_dir() / "negatives" / "kvasir-val"
    if not (crops / "manifest.json").is_file():
        write_negative_crops(Dataset.open(SHARED / "kvasir-seg", split="val"), crops, overwrite=True)
    out = out_dir / "kvasir-val-nopolyp-crops.json"
    if not out.is_file():
        argv = ["eval", "--data", str(crops), "--model", model, "--json", str(out)]
        if threshold is not None:
            argv += ["--threshold", str(threshold)]
        print("depthpolyp " + " ".join(argv), file=sys.stderr)
        if cli(argv) != 0:
            return 1
    r = json.loads(out.read_text())
    print(f"\nKvasir-SEG val, polyp-free squares: {r['empty_masks_marked']} of {r['empty_masks']} "
          f"({r['empty_masks_marked'] / max(r['empty_masks'], 1):.0%}) with a polyp marked")
    return 0


def false_positives(model: str, threshold: float | None, out_dir: Path) -> int:
    from napari_depthpolyp.cli import main as cli

    root = SHARED / "polypgen-negative"
    print("\n| PolypGen sequence (no polyp) | frames | frames with a polyp marked | largest marked area |")
    print("|---|---|---|---|")
    areas: list[float] = []
    flagged = 0
    for seq in sorted(p for p in root.iterdir() if p.is_dir()):
        out = out_dir / "polypgen-negative" / seq.name
        if not (out / "summary.json").is_file():
            argv = ["predict", str(seq), "--out", str(out), "--model", model]
            if threshold is not None:
                argv += ["--threshold", str(threshold)]
            print("depthpolyp " + " ".join(argv), file=sys.stderr)
            if cli(argv) != 0:
                return 1
        frames = [f for e in json.loads((out / "summary.json").read_text())["inputs"] for f in e["frames"]]
        marked = [f for f in frames if f["polyp_present"]]
        areas += [f["area_fraction"] for f in frames]
        flagged += len(marked)
        largest = max((f["area_fraction"] for f in frames), default=0.0)
        print(f"| {seq.name} | {len(frames)} | {len(marked)} ({len(marked) / len(frames):.0%}) | {largest:.1%} of the frame |")
    print(f"| **all** | {len(areas)} | **{flagged} ({flagged / max(len(areas), 1):.0%})** | |")
    for share in (0.01, 0.05):
        n = sum(a > share for a in areas)
        print(f"PolypGen frames with more than {share:.0%} of the frame marked: {n} of {len(areas)} ({n / max(len(areas), 1):.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
