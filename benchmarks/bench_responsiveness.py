"""Does napari stay responsive while DepthPolyp segments a long stack?

Opens a real napari window (run under Xvfb: ``xvfb-run -a python benchmarks/bench_responsiveness.py``),
loads a 300-frame stack, docks the Segment and Review widgets through the plugin manifest and runs it on all
frames. The click on Run (which creates the result layers and starts the worker) is timed
on its own. Then a 10 ms QTimer measures how late the Qt event loop serves it: the lateness is the
latency a click or a key press would see. Prints frames/s and the latency distribution.

    python benchmarks/bench_responsiveness.py [--frames 300] [--model M] [--json OUT]

The stack is a CVC-ClinicDB sequence looped to the length asked for (../shared/data), or the bundled
clip when the data is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def load_stack(n: int) -> tuple[np.ndarray, str]:
    from napari_depthpolyp.demo import sample_paths
    from napari_depthpolyp.io import read_image, read_input

    cvc = SHARED / "cvc-clinicdb" / "images"
    if cvc.is_dir():
        frames = [read_image(cvc / f"{i}.png") for i in range(1, 26)]
        source = "CVC-ClinicDB frames 1-25 (sequence 1), looped"
    else:
        frames = list(read_input(sample_paths()["clip"]))
        source = "bundled clip, looped"
    return np.stack([frames[i % len(frames)] for i in range(n)]), source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--model")
    ap.add_argument("--json")
    args = ap.parse_args()

    import napari
    from qtpy.QtCore import QElapsedTimer, QTimer
    from qtpy.QtWidgets import QApplication

    stack, source = load_stack(args.frames)
    viewer = napari.Viewer(show=True)
    viewer.add_image(stack, name="bench", rgb=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-depthpolyp", "Segment")
    viewer.window.add_plugin_dock_widget("napari-depthpolyp", "Review")  # its ranking table follows the run
    if args.model:
        widget.select_model(args.model)
    widget.frames.setCurrentText("All frames")

    clock = QElapsedTimer()
    gaps: list[float] = []
    last = [0.0]

    def tick():
        now = clock.nsecsElapsed() / 1e6
        gaps.append(now - last[0] - 10.0)
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()

    clock.start()
    timer.start()
    t0 = time.perf_counter()
    worker = widget.run()  # the click: creates the layers, starts the worker
    click_ms = (time.perf_counter() - t0) * 1000
    if worker is None:
        print("segmentation did not start (no model?)", file=sys.stderr)
        return 1
    done = {"flag": False}
    worker.finished.connect(lambda: done.__setitem__("flag", True))
    while not done["flag"]:
        app.processEvents()
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    timer.stop()

    lat = np.maximum(np.array(gaps[1:]), 0.0)  # the first gap holds the click, reported apart
    res = {
        "frames": args.frames,
        "frame_size": list(stack.shape[1:3]),
        "source": source,
        "seconds": elapsed,
        "fps": args.frames / elapsed,
        "run_click_ms": click_ms,
        "latency_ms_median": float(np.median(lat)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "latency_ms_p99": float(np.percentile(lat, 99)),
        "latency_ms_max": float(lat.max()),
        "ticks": int(lat.size),
        "mask_layer": f"bench polyp mask" in viewer.layers,
    }
    for k, v in res.items():
        print(f"{k:20s} {v:.1f}" if isinstance(v, float) else f"{k:20s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
