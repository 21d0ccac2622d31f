"""``depthpolyp predict``: pre-label images, folders and videos.

Writes, under ``--out``::

    masks/<name>.png            0/255 polyp masks at the frame's own size
    depth/<name>.png            16-bit relative inverse depth (near = bright)
    overlay/<name>.jpg          with --overlay: the frame with the mask outlined
    summary.json                per input and per frame: polyp present, area fraction, mean
                                probability inside the mask, uncertainty (review the doubtful first)

Frames of a folder or video go to ``masks/<input stem>/``. An unreadable or damaged input is
reported in summary.json and in the exit code (2), and the other inputs are still processed; for a
damaged video every frame decoded before the damage is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from .engine import Predictor
from .io import InputError, read_input, write_depth, write_json, write_mask_png, write_overlay
from .models import now_iso


def _frame_record(result, name: str, rel: dict[str, str]) -> dict[str, Any]:
    s = result.summary
    return {
        "index": result.index,
        "name": name,
        "polyp_present": bool(s["polyp_present"]),
        "area_fraction": round(float(s["area_fraction"]), 6),
        "mean_prob_in_mask": round(float(s["mean_prob_in_mask"]), 6),
        "uncertainty": round(float(s["uncertainty"]), 6),
        **rel,
    }


def predict_inputs(
    inputs: list[str | Path],
    out_dir: str | Path,
    predictor: Predictor,
    *,
    overlay: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``predictor`` over every input and write masks, depth (and overlays) + summary.json."""
    out = Path(out_dir)
    summary: dict[str, Any] = {
        "created": now_iso(),
        "model": predictor.provenance(),
        "inputs": [],
    }
    for item in inputs:
        path = Path(item)
        entry: dict[str, Any] = {"input": str(path), "status": "ok", "frames": []}
        summary["inputs"].append(entry)
        try:
            stack = read_input(path)
        except (InputError, OSError) as exc:
            entry.update(status="error", error=str(exc))
            continue
        entry.update(kind=stack.kind, n_frames=len(stack))
        single = stack.kind == "image"
        sub = Path() if single else Path(path.stem)
        try:
            for batch in predictor.iter_predict(stack, source=str(path)):
                for r in batch:
                    name = path.stem if single else stack.frame_name(r.index)
                    rel = {
                        "mask": str(Path("masks") / sub / f"{name}.png"),
                        "depth": str(Path("depth") / sub / f"{name}.png"),
                    }
                    write_mask_png(out / rel["mask"], r.mask)
                    write_depth(out / rel["depth"], r.depth)
                    if overlay:
                        rel["overlay"] = str(Path("overlay") / sub / f"{name}.jpg")
                        write_overlay(out / rel["overlay"], stack[r.index], r.mask)
                    entry["frames"].append(_frame_record(r, name, rel))
                if progress is not None:
                    progress(str(path), len(entry["frames"]), len(stack))
        except (InputError, OSError, ValueError) as exc:
            entry.update(status="error", error=str(exc), frames_written=len(entry["frames"]))
        finally:
            stack.close()
    summary["n_frames"] = sum(len(e["frames"]) for e in summary["inputs"])
    summary["n_errors"] = sum(e["status"] != "ok" for e in summary["inputs"])
    write_json(out / "summary.json", summary)
    return summary


def add_predict_parser(sub) -> None:
    s = sub.add_parser("predict", help="segment images, folders and videos; write masks, depth, summary.json")
    s.add_argument("inputs", nargs="+", help="images, image folders or videos (mp4/avi/mov/mkv)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--model", help="model id, name or directory (default: the bundled model)")
    s.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    s.add_argument("--threshold", type=float, help="mask threshold (default: the model card's)")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--overlay", action="store_true", help="also write overlays of the masks on the frames")
    s.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from .cli import Progress

    predictor = Predictor(args.model, backend=args.backend, threshold=args.threshold, batch_size=args.batch_size)
    bars: dict[str, Progress] = {}

    def progress(name: str, done: int, total: int) -> None:
        bars.setdefault(name, Progress(Path(name).name, total)).update(done, total)

    summary = predict_inputs(args.inputs, args.out, predictor, overlay=args.overlay, progress=progress)
    for e in summary["inputs"]:
        if e["status"] != "ok":
            print(f"depthpolyp predict: error: {e['error']}", file=sys.stderr)
    present = sum(f["polyp_present"] for e in summary["inputs"] for f in e["frames"])
    print(
        f"{summary['n_frames']} frames from {len(summary['inputs'])} inputs ({present} with a polyp) "
        f"-> {Path(args.out) / 'summary.json'}"
    )
    return 2 if summary["n_errors"] else 0
