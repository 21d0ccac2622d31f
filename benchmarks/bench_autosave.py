"""What does an autosave cost on a long review? Headless (the napari Review widget saves through
the same :meth:`ReviewSession.save` on napari's main thread, so this time is a pause in the UI).

A session of ``--frames`` frames of ``--size`` (default 1080p video), ``--painted`` of them
corrected by painting and saved once. Then one brush stroke on one frame, and the autosave after it:

* ``after a stroke``: what the viewer does when the layer's history shows no undo or redo
  (``save(rehash=False)``): only the stroke's frame is hashed and written;
* ``after an undo``: every painted frame is hashed again (``save()``, the default), since napari's
  undo changes a mask without an event;
* ``idle``: nothing changed (the periodic check does not even call save then; this is the cost
  of a save that finds nothing to do).

    python benchmarks/bench_autosave.py [--frames 300] [--painted 200] [--size 1080x1920] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from napari_depthpolyp.review import ReviewSession


def timed(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--painted", type=int, default=200)
    ap.add_argument("--size", default="1080x1920", help="HxW")
    ap.add_argument("--json")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        s = ReviewSession(args.frames, (h, w), folder=tmp, threshold=0.5)
        for i in range(args.painted):
            y, x = rng.integers(0, h - 100), rng.integers(0, w - 100)
            s.masks[i, y:y + 100, x:x + 100] = 1
            s.mark_corrected(i)
        t = time.perf_counter()
        s.save()
        first = (time.perf_counter() - t) * 1000

        def stroke(rehash: bool):
            def run():
                s.masks[0, :10, :10] ^= 1
                s.mark_corrected(0)
                assert s.save(rehash=rehash)
            return run

        result = {
            "frames": args.frames, "painted": args.painted, "size": [h, w],
            "first_save_ms": round(first, 1),
            "after_stroke_ms": round(timed(stroke(False)), 2),
            "after_undo_ms": round(timed(stroke(True)), 2),
            "idle_ms": round(timed(lambda: s.save(rehash=False)), 2),
        }
    for k, v in result.items():
        print(f"{k:>16}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
