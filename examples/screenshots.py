"""Screenshots of each DepthPolyp panel at work on real frames, from a real napari window.

    xvfb-run -a -s "-screen 0 1600x1000x24" python examples/screenshots.py [--model M] [--out docs/screenshots]

Writes ``segment.png``, ``review.png``, ``export.png`` and ``finetune.png``:

* Segment / Review / Export: the bundled clip (48 frames made from Kvasir-SEG val frames with
  simulated camera motion and degradations, CC BY 4.0, the package's own sample: the pictures carry
  no frame of a data set the project may not redistribute) segmented by the model; a few frames
  accepted, one corrected by painting, one marked "no polyp"; the reviewed frames exported.
* Fine-tune: a few steps (2 epochs × 2 batches of 4) on 16 Kvasir-SEG *train* frames, selected and
  compared on 8 Kvasir-SEG *val* frames (CVC-ClinicDB stays a test set: never trained or selected on).

It refuses to run without a trained model (pictures of random weights would mislead). Everything it
writes besides the screenshots (sessions, exports, the fine-tuned model) goes to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))
PLUGIN = "napari-depthpolyp"


def bundled_clip() -> np.ndarray:
    """The bundled sample clip's frames, T×H×W×3."""
    from napari_depthpolyp._sample_data import SAMPLES
    from napari_depthpolyp.io import read_input

    stack = read_input(SAMPLES / "clip.mp4")
    try:
        return np.stack([np.asarray(stack[i]) for i in range(len(stack))])
    finally:
        stack.close()


def kvasir_dataset(out: Path, split: str, n: int) -> Path:
    """``n`` Kvasir-SEG frames of ``split`` as a curated dataset folder (all 'accepted')."""
    from napari_depthpolyp.dataset import Dataset, DatasetWriter

    source = Dataset.open(DATA / "kvasir-seg", split=split, check_sizes=False)
    with DatasetWriter(out) as writer:
        for i in range(n):
            image, mask, _ = source.load(i)
            writer.add(source.names[i], image, mask, source_file=str(source.samples[i].image))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model id, name or directory (default: the bundled model)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="depthpolyp-shots-"))
    model_spec = args.model
    from napari_depthpolyp.models import NoModelError, resolve_model

    try:
        model = resolve_model(model_spec)  # the user's registry, before it is swapped for a temporary one
    except NoModelError as exc:
        print(f"No screenshots: {exc}", file=sys.stderr)
        return 2
    os.environ["DEPTHPOLYP_USER_DIR"] = str(work / "user")  # sessions and the fine-tuned model: temporary
    os.environ["DEPTHPOLYP_CACHE_DIR"] = str(work / "cache")
    os.environ["DEPTHPOLYP_RESUME"] = "no"
    if not (DATA / "kvasir-seg").is_dir():  # the fine-tune's frames
        print(f"No screenshots: the real frames are not at {DATA}", file=sys.stderr)
        return 2

    import napari
    from qtpy.QtWidgets import QApplication

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or napari.qt.get_qapp()

    def pump(seconds: float = 0.3) -> None:
        end = time.time() + seconds
        while time.time() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(worker, what: str, timeout: float = 900) -> None:
        done = []
        worker.finished.connect(lambda: done.append(True))
        start = time.time()
        while not done:
            app.processEvents()
            time.sleep(0.02)
            if time.time() - start > timeout:
                raise TimeoutError(f"{what} took more than {timeout:.0f} s")
        pump()

    viewer = napari.Viewer(title="DepthPolyp")
    viewer.window.resize(1560, 960)
    frames = bundled_clip()
    name = "clip"
    viewer.add_image(frames, name=name, rgb=True)
    docks = {}
    for panel in ("Segment", "Review", "Export", "Fine-tune"):
        docks[panel] = viewer.window.add_plugin_dock_widget(PLUGIN, panel)
    seg, review, export, finetune = (docks[p][1] for p in ("Segment", "Review", "Export", "Fine-tune"))

    def shot(panel: str, file: str) -> None:
        for p, (dock, _) in docks.items():
            dock.setVisible(p == panel)
        pump(0.8)
        viewer.screenshot(str(out / file), canvas_only=False)
        print("wrote", out / file)

    # Segment every frame
    seg.select_model(str(model.path))
    wait(seg.run(), "segmentation")
    ctrl = seg.ctx.controller_for(viewer.layers[name], create=False)
    middle = len(frames) // 2
    ctrl.go_to(middle)
    viewer.reset_view()
    shot("Segment", "segment.png")

    # Review: accept a few, correct one by painting, mark one empty, then go to the most uncertain
    for i in range(0, min(4, len(frames))):
        ctrl.accept(i)
    mask = ctrl.mask_layer
    mask.brush_size = 18
    h, w = frames.shape[1:3]
    for t in np.linspace(0, 1, 12):
        mask.paint((middle, h * (0.35 + 0.2 * t), w * (0.4 + 0.15 * t)), 1)
    ctrl.mark_empty(len(frames) - 1)
    ctrl.next_most_uncertain()
    viewer.layers.selection.active = mask
    review.refresh()
    shot("Review", "review.png")

    # Export the reviewed frames
    export.folder.setText(str(work / "export"))
    wait(export.export(), "export")
    shot("Export", "export.png")

    # Fine-tune a few steps on Kvasir-SEG train frames, compare on Kvasir-SEG val frames
    train = kvasir_dataset(work / "kvasir-train-16", "train", 16)
    val = kvasir_dataset(work / "kvasir-val-8", "val", 8)
    finetune.datasets.clear()
    finetune.add_dataset(str(train))
    finetune.val.setText(str(val))
    finetune.select_base(str(model.path))
    finetune.epochs.setValue(2)
    finetune.batch.setValue(4)
    finetune.steps.setValue(2)
    wait(finetune.start(), "fine-tuning")
    shot("Fine-tune", "finetune.png")
    (out / "screenshots.json").write_text(json.dumps({
        "model": model.id, "model_sha256": model.sha256(), "frames": "the bundled sample clip (clip.mp4)", "finetune": finetune.result,
    }, indent=2) + "\n")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
