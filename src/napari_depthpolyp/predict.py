"""``depthpolyp predict``: pre-label images, folders and videos.

Writes, under ``--out``::

    masks/<name>.png            0/255 polyp masks at the frame's own size
    depth/<name>.png            16-bit relative inverse depth (near = bright)
    overlay/<name>.jpg          with --overlay: the frame with the mask outlined
    summary.json                per input and per frame: polyp present, area fraction, mean
                                probability inside the mask, uncertainty (review the doubtful first)

Frames of a folder or video go to ``masks/<input stem>/``. Images in a folder may differ in size.
Names never collide: a second input or file with a name already written (``a/frames`` and
``b/frames``, ``x.png`` and ``x.jpg``) gets ``-2``, ``-3``, ... and summary.json gives each frame's files.
A run into a folder that holds an earlier run's summary.json adds to it: the entries of inputs not
run again are kept (with the ``model`` and ``created`` of the run that made them) and their names
stay taken, so a new input never writes over their files; an input run again replaces its entry.
An unreadable or damaged input (or file in a folder) is reported in summary.json and in the exit
code (2), and everything else is still processed; for a damaged video every frame decoded before
the damage is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from .engine import BACKENDS, Predictor
from .io import (
    InputError,
    is_video,
    list_images,
    read_image,
    read_input,
    write_depth,
    write_json,
    write_mask_png,
    write_overlay,
)
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


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``name-2``, ``name-3``, ... if taken (case-insensitively); marks it taken."""
    candidate, k = name, 1
    while candidate.lower() in used:
        k += 1
        candidate = f"{name}-{k}"
    used.add(candidate.lower())
    return candidate


class _Writer:
    """Writes one input's masks/depth/overlays and collects its per-frame records."""

    def __init__(self, out: Path, sub: Path, overlay: bool, entry: dict, used: set[str] | None = None):
        self.out, self.sub, self.overlay, self.entry = out, sub, overlay, entry
        self.used = set() if used is None else used  # names taken in this output folder

    def __call__(self, result, name: str, frame) -> None:
        name = _unique(name, self.used)
        rel = {
            "mask": str(Path("masks") / self.sub / f"{name}.png"),
            "depth": str(Path("depth") / self.sub / f"{name}.png"),
        }
        write_mask_png(self.out / rel["mask"], result.mask)
        write_depth(self.out / rel["depth"], result.depth)
        if self.overlay:
            rel["overlay"] = str(Path("overlay") / self.sub / f"{name}.jpg")
            write_overlay(self.out / rel["overlay"], frame, result.mask)
        self.entry["frames"].append(_frame_record(result, name, rel))


def _predict_folder(path: Path, predictor: Predictor, write: _Writer, entry: dict, progress) -> None:
    """Image folders are data sets, not videos: images may differ in size, and one unreadable file
    is reported without stopping the others."""
    files = list_images(path)
    if not files:
        hint = f"; its images seem to be in {path / 'images'}" if (path / "images").is_dir() else ""
        raise InputError(f"{path}: no images in this folder{hint}")
    entry.update(kind="folder", n_frames=len(files), file_errors=[])
    if progress is not None:
        progress(str(path), 0, len(files))
    for start in range(0, len(files), predictor.batch_size):
        batch = []
        for i in range(start, min(start + predictor.batch_size, len(files))):
            try:
                batch.append((i, files[i], read_image(files[i])))
            except (InputError, OSError) as exc:
                entry["file_errors"].append({"file": str(files[i]), "error": str(exc)})
        if not batch:
            continue
        try:
            results = predictor.predict_frames([b[2] for b in batch], [b[0] for b in batch], [str(b[1]) for b in batch])
        except ValueError:  # find the bad frame(s), keep the rest
            results = []
            for i, f, frame in batch:
                try:
                    results += predictor.predict_frames([frame], [i], [str(f)])
                except ValueError as exc:
                    entry["file_errors"].append({"file": str(f), "error": str(exc)})
        frames = {i: (f, frame) for i, f, frame in batch}
        for r in results:
            f, frame = frames[r.index]
            write(r, f.stem, frame)
        if progress is not None:
            progress(str(path), min(start + predictor.batch_size, len(files)), len(files))
    if entry["file_errors"]:
        entry.update(status="error", error=f"{len(entry['file_errors'])} of {len(files)} files could not be segmented")


def _predict_stack(path: Path, predictor: Predictor, write: _Writer, entry: dict, progress) -> None:
    stack = read_input(path)
    entry.update(kind=stack.kind, n_frames=len(stack))
    single = stack.kind == "image"
    if progress is not None:  # the bar (and its clock) starts with the input, not after its first batch
        progress(str(path), 0, len(stack))
    try:
        for batch in predictor.iter_predict(stack, source=str(path)):
            for r in batch:
                write(r, path.stem if single else stack.frame_name(r.index), stack[r.index])
            if progress is not None:
                progress(str(path), len(entry["frames"]), len(stack))
    finally:
        stack.close()


def _top_names(frames: list) -> set[str]:
    """The names an entry's frames hold at the top of masks/ (lower case): an image's stem, or the
    folder of a video's or a folder's frames."""
    names = set()
    for f in frames:
        parts = Path(str(f.get("mask", ""))).parts if isinstance(f, dict) else ()
        if len(parts) >= 2:
            names.add((Path(parts[1]).stem if len(parts) == 2 else parts[1]).lower())
    return names


def _on_disk(out: Path) -> set[str]:
    """The names at the top of ``out/masks`` (lower case), whatever a summary says of them."""
    masks = out / "masks"
    if not masks.is_dir():
        return set()
    return {(p.name if p.is_dir() else p.stem).lower() for p in masks.iterdir()}


def _entry_input(e: dict) -> str:
    """The input an entry was made from, as an absolute path (``input_path``; runs before it was
    recorded give ``input`` only, resolved here)."""
    return str(e.get("input_path") or Path(str(e.get("input", ""))).resolve())


def _earlier_entries(out: Path, inputs: list[str | Path]) -> tuple[list[dict[str, Any]], set[str]]:
    """The entries of an earlier summary.json in ``out`` for inputs this run does not repeat, and the
    names taken at the top of masks/ (lower case): theirs, and any on disk that no entry of a
    repeated input holds (a run killed before its summary, or a summary that cannot be read), so
    that nothing an earlier run wrote is written over. An unreadable summary is kept aside."""
    path = out / "summary.json"
    on_disk = _on_disk(out)
    if not path.is_file():
        return [], on_disk
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        entries = earlier["inputs"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError("'inputs' is not a list of entries")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        aside = path.with_name(f"summary-unreadable-{now_iso().replace(':', '')}.json")
        path.replace(aside)
        print(f"depthpolyp predict: {path} could not be read ({exc}); kept as {aside.name}", file=sys.stderr)
        return [], on_disk
    again = {str(Path(i).resolve()) for i in inputs}
    kept, used, repeated = [], set(), set()
    for e in entries:
        frames = e.get("frames") if isinstance(e.get("frames"), list) else []
        if _entry_input(e) in again:
            repeated |= _top_names(frames)
            continue
        e.setdefault("model", earlier.get("model"))
        e.setdefault("created", earlier.get("created"))
        kept.append(e)
        used |= _top_names(frames)
    return kept, used | (on_disk - repeated)


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
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file: give the folder to write the masks to")
    earlier, top = _earlier_entries(out, inputs)  # top: names taken at the top of masks/ (images, input folders)
    summary: dict[str, Any] = {"created": now_iso(), "model": predictor.provenance(), "inputs": list(earlier)}
    for item in inputs:
        path = Path(item)
        entry: dict[str, Any] = {"input": str(path), "input_path": str(path.resolve()), "status": "ok", "frames": []}
        summary["inputs"].append(entry)
        is_single = path.is_file() and not is_video(path)
        if is_single:
            write = _Writer(out, Path(), overlay, entry, used=top)
        else:
            write = _Writer(out, Path(_unique(path.stem or path.resolve().name, top)), overlay, entry)
        try:
            if path.is_dir():
                _predict_folder(path, predictor, write, entry, progress)
            else:
                _predict_stack(path, predictor, write, entry, progress)
        except (InputError, OSError, ValueError) as exc:  # unreadable, or damaged part-way
            entry.update(status="error", error=str(exc), frames_written=len(entry["frames"]))
        except Exception as exc:  # anything else one input does: reported, and the other inputs still run
            entry.update(status="error", error=f"{path}: {type(exc).__name__}: {exc}", frames_written=len(entry["frames"]))
    summary["n_frames"] = sum(len(e["frames"]) for e in summary["inputs"])
    summary["n_errors"] = sum(e["status"] != "ok" for e in summary["inputs"])
    write_json(out / "summary.json", summary)
    return summary


def add_engine_args(s) -> None:
    """The inference engine's options, shared by ``predict`` and ``eval``."""
    s.add_argument("--backend", choices=BACKENDS, default="onnx")
    s.add_argument("--tta", action="store_true",
                   help="flip averaging: 4 mirrored passes per frame, averaged (4x slower, a little more accurate)")
    s.add_argument("--min-region", dest="min_region", type=_percent_of_frame, default=0.0, metavar="PERCENT",
                   help="drop marked regions smaller than this share of the frame, in %% (default 0: keep all; "
                        "with 1.10, 0.25 left Kvasir-SEG val Dice unchanged and cut the polyp-free val squares marked from 34 %% to 25 %%)")


def _percent_of_frame(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 100.0:
        raise argparse.ArgumentTypeError(f"{text} is not a share of the frame in % (0 to under 100)")
    return value / 100.0


def add_predict_parser(sub) -> None:
    s = sub.add_parser("predict", help="segment images, folders and videos; write masks, depth, summary.json")
    s.add_argument("inputs", nargs="+", help="images, image folders or videos (mp4/avi/mov/mkv)")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--model", help="model id, name or directory (default: the bundled model)")
    add_engine_args(s)
    s.add_argument("--threshold", type=float, help="mask threshold (default: the model card's)")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--overlay", action="store_true", help="also write overlays of the masks on the frames")
    s.set_defaults(func=cmd_predict)


def cmd_predict(args) -> int:
    from .cli import Progress

    predictor = Predictor(args.model, backend=args.backend, threshold=args.threshold, batch_size=args.batch_size,
                          tta=args.tta, min_region=args.min_region)
    bars: dict[str, Progress] = {}

    def progress(name: str, done: int, total: int) -> None:
        bars.setdefault(name, Progress(Path(name).name, total)).update(done, total)

    summary = predict_inputs(args.inputs, args.out, predictor, overlay=args.overlay, progress=progress)
    ran = summary["inputs"][len(summary["inputs"]) - len(args.inputs):]  # this run's, after any earlier run's
    for e in ran:
        if e["status"] != "ok":
            print(f"depthpolyp predict: error: {e['error']}", file=sys.stderr)
            for f in e.get("file_errors", [])[:10]:
                print(f"  {f['error'] if f['file'] in f['error'] else f['file'] + ': ' + f['error']}", file=sys.stderr)
            if len(e.get("file_errors", [])) > 10:
                print(f"  ... and {len(e['file_errors']) - 10} more, in summary.json", file=sys.stderr)
    present = sum(f["polyp_present"] for e in ran for f in e["frames"])
    kept = len(summary["inputs"]) - len(ran)
    print(
        f"{sum(len(e['frames']) for e in ran)} frames from {len(ran)} inputs ({present} with a polyp) "
        f"-> {Path(args.out) / 'summary.json'}" + (f" (with {kept} inputs of an earlier run)" if kept else "")
    )
    return 2 if any(e["status"] != "ok" for e in ran) else 0
