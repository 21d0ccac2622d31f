"""The napari plugin, through its manifest, in a real viewer under Xvfb (pytest-xvfb).

Most tests check the plumbing (layers, statuses, autosave/resume, export, fine-tuning,
cancelling) with ``plugin_model``, the bundled model. ``test_segment_samples_finds_the_polyps``
checks what a clinician sees: the bundled model, run from the Segment widget on the bundled
Kvasir-SEG samples opened through the manifest, outlines the polyps the ground truth marks.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from napari_depthpolyp.dataset import Dataset
from napari_depthpolyp.engine import apply_threshold
from napari_depthpolyp.io.images import read_mask
from napari_depthpolyp.models import list_models, resolve_model
from napari_depthpolyp.review import ReviewSession, decode_map

PLUGIN = "napari-depthpolyp"
H, W = 96, 120
WAIT = 90_000  # ms; generous for a shared 2-core machine


def real_frames(n, size=(W, H)):
    """``n`` real frames at one size, from the bundled Kvasir-SEG samples (past the sixth, the same
    frames mirrored), so that the plugin tests run on a fresh clone without ``../shared/data``."""
    from napari_depthpolyp._sample_data import SAMPLES

    files = sorted((SAMPLES / "frames").glob("*.jpg"))
    frames = []
    for k in range(n):
        frame = np.asarray(PILImage.open(files[k % len(files)]).convert("RGB").resize(size, PILImage.BILINEAR))
        frames.append(frame[:, ::-1] if (k // len(files)) % 2 else frame)
    return np.ascontiguousarray(np.stack(frames))


@pytest.fixture
def frames_folder(tmp_path):
    """Four real Kvasir-SEG frames (the bundled samples) at one size, saved as a folder of PNGs."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(real_frames(4)):
        PILImage.fromarray(frame).save(folder / f"frame{i}.png")
    return folder


def dock(viewer, name):
    return viewer.window.add_plugin_dock_widget(PLUGIN, name)[1]


def segment(qtbot, seg, model):
    seg.select_model(str(model.path))
    worker = seg.run()
    assert worker is not None
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    return worker


# ----------------------------------------------------------------------------- manifest, IO
def test_the_napari_internals_the_review_relies_on_are_there(make_napari_viewer):
    """napari's undo sends no event, so autosave reads the Labels history lengths (and the staged
    stroke) itself; without them it stays correct but hashes every painted mask at each check. A
    napari that renames them fails here, not silently in a clinician's review."""
    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((2, 8, 8), np.uint8))
    for name in ("_undo_history", "_redo_history", "_staged_history"):
        assert hasattr(labels, name), name
    assert hasattr(viewer.window, "_qt_window")


def test_manifest_reader_writer_and_samples(make_napari_viewer, frames_folder, tmp_path):
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    pm = PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest(PLUGIN)
    assert {w.display_name for w in manifest.contributions.widgets} == {"Segment", "Review", "Export", "Fine-tune"}
    assert {s.key for s in manifest.contributions.sample_data} == {"kvasir-frames", "clip"}

    layers = viewer.open(frames_folder, plugin=PLUGIN)
    assert len(layers) == 1 and layers[0].data.shape == (4, H, W, 3) and layers[0].rgb
    info = layers[0].metadata["depthpolyp"]
    assert info["kind"] == "folder" and info["frame_names"] == ["frame0", "frame1", "frame2", "frame3"]
    single = viewer.open(frames_folder / "frame1.png", plugin=PLUGIN)[0]
    assert single.data.shape == (H, W, 3)

    viewer.open_sample(PLUGIN, "clip")
    assert viewer.layers["clip"].data.shape == (48, 256, 320, 3)
    viewer.open_sample(PLUGIN, "kvasir-frames")
    assert sum(layer.name[:2].isdigit() for layer in viewer.layers) == 6

    from napari_depthpolyp._sample_data import SAMPLES

    video = viewer.open(SAMPLES / "clip.mp4", plugin=PLUGIN)[0]  # a lazy stack, not decoded up front
    assert type(video.data).__name__ == "VideoStack" and video.data.shape == (48, 256, 320, 3)
    assert video.metadata["depthpolyp"]["kind"] == "video" and video.metadata["depthpolyp"]["fps"] == 12
    mixed = viewer.open(SAMPLES / "frames", plugin=PLUGIN)  # frames of different sizes: one layer each
    assert len(mixed) == 6 and len({layer.data.shape for layer in mixed}) > 1

    masks = np.zeros((4, H, W), np.uint8)
    masks[1, 10:20, 10:30] = 1
    labels = viewer.add_labels(masks, name="m", metadata={"depthpolyp": {"frame_names": info["frame_names"]}})
    from napari_depthpolyp.io import read_mask, read_mask_stack

    viewer.layers.selection = {labels}
    written = viewer.layers.save(str(tmp_path / "m.tif"), selected=True, plugin=PLUGIN)
    np.testing.assert_array_equal(read_mask_stack(written[0]), masks.astype(bool))
    written = viewer.layers.save(str(tmp_path / "pngs.png"), selected=True, plugin=PLUGIN)
    assert sorted(p.split("/")[-1] for p in written) == ["frame0.png", "frame1.png", "frame2.png", "frame3.png"]
    np.testing.assert_array_equal(read_mask(tmp_path / "pngs" / "frame1.png"), masks[1].astype(bool))
    # saved again with other frame names: the folder is replaced whole, never a mix of two saves
    labels.metadata = {"depthpolyp": {"frame_names": ["a", "b", "c", "d"]}}
    viewer.layers.save(str(tmp_path / "pngs.png"), selected=True, plugin=PLUGIN)
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["a.png", "b.png", "c.png", "d.png"]
    (tmp_path / "pngs" / "notes.txt").write_text("mine")  # a folder with other files is never replaced
    from napari_depthpolyp._writer import write_pngs

    with pytest.raises(ValueError, match="holds more than PNG masks"):
        write_pngs(str(tmp_path / "pngs.png"), masks, {"name": "m"})
    assert (tmp_path / "pngs" / "notes.txt").read_text() == "mine"
    [back] = viewer.open(tmp_path / "pngs" / "b.png", plugin=PLUGIN)  # a mask opens as Labels
    assert back._type_string == "labels" and np.array_equal(back.data != 0, masks[1] != 0)
    [empty] = viewer.open(tmp_path / "pngs" / "a.png", plugin=PLUGIN)  # so does an empty one (no polyp)
    assert empty._type_string == "labels" and not empty.data.any()
    [stack] = viewer.open(tmp_path / "m.tif", plugin=PLUGIN)  # and this plugin's multi-page mask TIFF
    assert stack._type_string == "labels" and np.array_equal(stack.data, masks)
    # a folder of PNG frames (the ones the masks were made on) is never replaced by masks
    frames = tmp_path / "rgb"
    frames.mkdir()
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(frames / f"f{i}.png")
    before = {f.name: f.read_bytes() for f in frames.iterdir()}
    with pytest.raises(ValueError, match="holds images that are not masks"):
        write_pngs(str(tmp_path / "rgb.png"), masks, {"name": "m"})
    assert {f.name: f.read_bytes() for f in frames.iterdir()} == before


def test_no_trained_model_is_an_error_not_random_weights(make_napari_viewer, monkeypatch, tmp_path):
    from napari_depthpolyp.models import NoModelError

    monkeypatch.setenv("DEPTHPOLYP_USER_DIR", str(tmp_path / "empty-user"))
    monkeypatch.setattr("napari_depthpolyp.models.BUNDLED_DIR", tmp_path / "no-bundled-models")
    with pytest.raises(NoModelError):
        resolve_model()
    errors = []
    monkeypatch.setattr("napari_depthpolyp.widgets._segment.show_error", errors.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((2, 32, 32, 3), np.uint8), name="nomodel")
    seg = dock(viewer, "Segment")
    assert seg.model.currentData() is None
    assert seg.run() is None
    assert errors and "No trained DepthPolyp model" in errors[0]
    assert [layer.name for layer in viewer.layers] == ["nomodel"]


# ----------------------------------------------------------------------------- real results
def test_segment_samples_finds_the_polyps(make_napari_viewer, qtbot):
    """The default model, from the widget, on the six bundled Kvasir-SEG val frames and the clip."""
    from napari_depthpolyp.demo import sample_paths
    from napari_depthpolyp.io import read_mask, read_mask_stack
    from napari_depthpolyp.metrics import binary_metrics

    model = resolve_model()  # the bundled default, with no flags
    viewer = make_napari_viewer()
    seg = dock(viewer, "Segment")
    assert seg.model.currentData() == str(model.path)
    viewer.open_sample(PLUGIN, "kvasir-frames")
    dices = []
    for mask_file in sorted(sample_paths()["masks"].iterdir()):
        layer = viewer.layers[mask_file.stem]
        seg.image.set_value(layer)
        worker = seg.run()
        with qtbot.waitSignal(worker.finished, timeout=WAIT):
            pass
        labels = viewer.layers[f"{layer.name} polyp mask"]
        assert labels.data.shape == layer.data.shape[:2] and labels.metadata["depthpolyp"]["sha256"] == model.sha256()
        depth = viewer.layers[f"{layer.name} depth"].data
        assert depth.shape == layer.data.shape[:2] and 0.0 <= depth.min() < depth.max() <= 1.0
        dices.append(binary_metrics(labels.data != 0, read_mask(mask_file))["dice"])
    assert min(dices) > 0.5 and np.mean(dices) > 0.8, dices
    assert labels.metadata["depthpolyp"]["tta"] is False

    seg.tta.setChecked(True)  # flip averaging: the same frame again, recorded as such
    worker = seg.run()
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    assert labels.metadata["depthpolyp"]["tta"] is True
    assert binary_metrics(labels.data != 0, read_mask(mask_file))["dice"] > 0.5
    seg.tta.setChecked(False)

    viewer.open_sample(PLUGIN, "clip")
    clip = viewer.layers["clip"]
    seg.image.set_value(clip)
    seg.frames.setCurrentText("All frames")
    worker = seg.run()
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    masks = viewer.layers["clip polyp mask"].data
    truth = read_mask_stack(sample_paths()["clip_masks"])
    assert masks.shape == truth.shape == clip.data.shape[:3]
    clip_dice = np.mean([binary_metrics(m != 0, t)["dice"] for m, t in zip(masks, truth)])
    assert clip_dice > 0.7, clip_dice


# ----------------------------------------------------------------------------- the review loop
def test_segment_review_autosave_resume_export(make_napari_viewer, qtbot, frames_folder, plugin_model, tmp_path):
    viewer = make_napari_viewer()
    image = viewer.open(frames_folder, plugin=PLUGIN)[0]
    image.scale = (1, 0.5, 0.5)
    seg, review, export = dock(viewer, "Segment"), dock(viewer, "Review"), dock(viewer, "Export")
    ctx = seg.ctx
    segment(qtbot, seg, plugin_model)

    # layers: created once, named after the source, placed like it, with provenance
    mask, depth, prob = (viewer.layers[f"frames {r}"] for r in ("polyp mask", "depth", "polyp probability"))
    assert mask.data.shape == depth.data.shape == prob.data.shape == (4, H, W)
    assert mask.data.dtype == np.uint8 and depth.data.dtype == prob.data.dtype == np.float32
    assert not prob.visible and mask.opacity == pytest.approx(0.5)
    assert tuple(mask.scale) == tuple(depth.scale) == (1, 0.5, 0.5)
    meta = mask.metadata["depthpolyp"]
    assert meta["model"] == plugin_model.card.name and meta["version"] == plugin_model.card.version
    assert meta["sha256"] == plugin_model.sha256() and meta["threshold"] == seg.threshold_value and meta["time"]
    assert depth.metadata["depthpolyp"]["sha256"] == plugin_model.sha256()
    ctrl = ctx.controller_for(image, create=False)
    session = ctrl.session
    assert mask.data is session.masks and session.predicted.all()
    np.testing.assert_array_equal(mask.data[0], apply_threshold(decode_map(prob.data[0]), session.threshold))
    n_layers = len(viewer.layers)
    image.name = "renamed"  # again, after a rename: the same layers, renamed with it, updated in place
    assert seg.image.currentText() == "renamed"
    assert (mask.name, depth.name, prob.name) == ("renamed polyp mask", "renamed depth", "renamed polyp probability")
    segment(qtbot, seg, plugin_model)
    assert len(viewer.layers) == n_layers and viewer.layers[-1] is mask
    # another image never takes over this one's layers, even when one bears its layer name
    mask.name = "other polyp mask"
    other = viewer.add_image(real_frames(2), name="other")
    seg.image.set_value(other)
    before = mask.data.copy()
    segment(qtbot, seg, plugin_model)
    other_mask = ctx.controller_for(other, create=False).mask_layer
    assert other_mask is not mask and other_mask.data.shape == (2, H, W)
    np.testing.assert_array_equal(mask.data, before)
    other_mask.paint((0, 40, 40), 0 if other_mask.data[0, 40, 40] else 1)
    assert session.status_of(0) != "corrected"  # a stroke on the other image's mask is not this one's
    mask.name = "renamed polyp mask"
    for layer in (*ctx.controller_for(other, create=False).layers(), other):
        viewer.layers.remove(layer)
    assert mask in viewer.layers
    seg.image.set_value(image)
    image.name = "frames"

    # painting and filling mark frames corrected
    viewer.dims.set_point(0, 1)
    mask.brush_size = 6
    label = 0 if mask.data[1, 40, 40] else 1  # a stroke that changes pixels, whatever the model proposed
    mask.paint((1, 40, 40), label)
    assert session.status_of(1) == "corrected" and mask.data[1, 40, 40] == label
    mask.data[2] = 0
    mask.fill((2, 5, 5), 1)
    assert session.status_of(2) == "corrected" and mask.data[2].all()
    qtbot.waitUntil(lambda: review.counts.text().startswith("2 unreviewed · 0 accepted · 2 corrected"), timeout=2000)
    # "No polyp" and "Reset" go through napari's history: Ctrl+Z brings a correction back
    for action in (ctrl.mark_empty, ctrl.reset):
        action(2)
        assert session.status_of(2) in ("empty", "unreviewed") and not mask.data[2].all()
        ctrl.save_now()
        mask.undo()
        ctrl._check_history()  # the periodic check (napari's undo sends no event) sees the history move
        assert session.status_of(2) == "corrected" and mask.data[2].all()
    with pytest.MonkeyPatch.context() as mp:  # an idle review: the periodic check hashes nothing
        mp.setattr(session, "save", lambda *a, **k: pytest.fail("saved with nothing changed"))
        ctrl._check_history()
    import napari_depthpolyp.review as review_module

    def stroke(frame, y):  # a stroke that changes pixels
        mask.paint((frame, y, 20), 0 if mask.data[frame, y, 20] else 1)

    stroke(1, 10)  # (the undo above left a redo item: this save hashes every painted frame)
    ctrl.save_now()
    hashed = []
    with pytest.MonkeyPatch.context() as mp:  # a stroke: only its frame is hashed, not every painted one
        mp.setattr(review_module, "_mask_digest", lambda m, real=review_module._mask_digest: hashed.append(1) or real(m))
        stroke(1, 10)
        assert ctrl.save_now() and len(hashed) == 1

    # saved with a redo pending, then a redo, a stroke, an undo and a stroke: the redone mask is saved too
    stroke(1, 30)
    ctrl.save_now()
    mask.undo()
    ctrl._check_history()
    mask.redo()  # frame 1's stroke comes back, without an event
    stroke(2, 50)
    mask.undo()
    stroke(2, 50)
    ctrl.save_now()
    np.testing.assert_array_equal(read_mask(session.folder / "masks" / "000001.png") != 0, mask.data[1] != 0)
    mask._staged_history.append(object())  # a lasso still being drawn: never saved half-drawn
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(session, "save", lambda *a, **k: pytest.fail("saved a half-drawn stroke"))
        ctrl._autosave_due()
        ctrl._check_history()
    mask._staged_history.clear()

    # moving the threshold re-thresholds only unreviewed frames
    corrected = mask.data[1:3].copy()
    with pytest.MonkeyPatch.context() as mp:  # no network run
        mp.setattr("napari_depthpolyp.engine.Predictor.run_batch", lambda *a: pytest.fail("network ran"))
        seg.set_threshold(0.95)
    assert session.threshold == 0.95 and mask.metadata["depthpolyp"]["threshold"] == 0.95
    seg._model_changed()  # choosing a model again does not re-cut this image's proposals at its default
    assert seg.threshold_value == 0.95
    np.testing.assert_array_equal(mask.data[1:3], corrected)
    np.testing.assert_array_equal(mask.data[0], decode_map(prob.data[0]) >= 0.95)
    # the smallest region kept: the spin box (in % of the frame) re-thresholds the same frames
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("napari_depthpolyp.engine.Predictor.run_batch", lambda *a: pytest.fail("network ran"))
        seg.min_region.setValue(1.0)
        seg._apply_threshold()
    assert session.min_region == 0.01 and mask.metadata["depthpolyp"]["min_region"] == 0.01
    np.testing.assert_array_equal(mask.data[1:3], corrected)
    np.testing.assert_array_equal(mask.data[0], apply_threshold(decode_map(prob.data[0]), 0.95, 0.01))
    seg.min_region.setValue(0.0)
    seg._apply_threshold()
    assert session.min_region == 0.0

    # keys and buttons: accept frame 0, mark 3 empty (with a real key press on the canvas)
    from qtpy.QtCore import Qt

    viewer.dims.set_point(0, 0)
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, "g")
    assert session.status_of(0) == "accepted"
    assert ctrl.current() == 3  # advanced to the next unreviewed frame
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, "g", modifier=Qt.KeyboardModifier.ShiftModifier)
    assert session.status_of(0) == "unreviewed" and ctrl.current() == 0  # a stray G taken back, at its frame
    review.buttons["accept"].click()
    assert session.status_of(0) == "accepted" and ctrl.current() == 3
    review.buttons["prev_unreviewed"].click()  # the only unreviewed frame left is this one
    assert ctrl.current() == 3
    # the same keys while the Review panel has the focus (QShortcuts; a bare Xvfb has no active
    # window to deliver a real key press to, so trigger the one bound to N)
    from qtpy.QtGui import QShortcut

    [empty_key] = [sc for sc in review.findChildren(QShortcut) if sc.key().toString() == "N"]
    empty_key.activated.emit()
    assert session.status_of(3) == "empty" and not mask.data[3].any()
    qtbot.waitUntil(lambda: review.counts.text() == "0 unreviewed · 1 accepted · 2 corrected · 1 empty", timeout=2000)
    assert review.table.rowCount() == 4 and "[G]" in review.buttons["accept"].text()
    review._row_clicked(review.table.rowCount() - 1, 0)
    assert ctrl.current() == int(review.table.item(review.table.rowCount() - 1, 0).text())

    # autosave within seconds, beside the source
    sidecar = frames_folder.parent / "frames.depthpolyp"
    qtbot.waitUntil(lambda: (sidecar / "session.json").is_file() and not session.needs_save, timeout=10_000)
    assert session.folder == sidecar
    assert sorted(p.name for p in (sidecar / "masks").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    saved = mask.data.copy()
    # "Save to…" a folder holding other things (a data set's masks/): into frames.depthpolyp in it
    case = tmp_path / "case"
    (case / "masks").mkdir(parents=True)
    (case / "masks" / "000001.png").write_bytes(b"ground truth")
    review.save_session_to(str(case))
    assert session.folder == case / "frames.depthpolyp" and (session.folder / "session.json").is_file()
    assert (case / "masks" / "000001.png").read_bytes() == b"ground truth"
    review.save_session_to(str(sidecar))  # and back beside the source, where the rest of this test expects it
    assert session.folder == sidecar

    # export: reviewed frames only, read back with the trainer's reader
    out = tmp_path / "export"
    export.folder.setText(str(out))
    worker = export.export()
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    ds = Dataset.open(out, statuses=("accepted", "corrected", "empty"))
    assert ds.names == ["frame0", "frame1", "frame2", "frame3"]
    assert [ds.frame_info(n)["status"] for n in ds.names] == ["accepted", "corrected", "corrected", "empty"]
    for k in range(4):
        img, m, d = ds.load(k)
        np.testing.assert_array_equal(m, saved[k] != 0)
        np.testing.assert_array_equal(img, np.asarray(image.data[k]))
        assert d is not None and d.shape == (H, W)
    assert ds.frame_info("frame1")["proposed_by"]["sha256"] == plugin_model.sha256()
    # 20 % held out by default, in blocks of neighbours: Fine-tune trains on the rest, compares on these
    import json

    split = json.loads((out / "split.json").read_text())
    assert len(split["val"]) == 1 and sorted(split["train"] + split["val"] + split["gap"]) == ds.names
    assert split["train"] and not set(split["train"]) & set(split["val"] + split["gap"])
    ft = dock(viewer, "Fine-tune")
    assert str(out) in ft.dataset_folders()  # the export is offered to Fine-tune
    _, cfg = ft.config()
    assert (cfg.val_data, cfg.val_split, cfg.train_split) == (str(out), "val", "train")
    export.confirm_overwrite = False  # a non-empty folder is not replaced without a yes
    assert export.export() is None
    assert ctx.last_export == out
    foreign = tmp_path / "someone's frames"  # not a dataset of ours: refused even with a yes
    foreign.mkdir()
    (foreign / "a.png").write_bytes(b"x")
    export.folder.setText(str(foreign))
    export.confirm_overwrite = True
    assert export.export() is None
    assert [p.name for p in foreign.iterdir()] == ["a.png"]
    from napari_depthpolyp.widgets import ExportWidget, ReviewWidget

    export.depth.setChecked(False)  # the panels remember their choices
    review.advance.setChecked(False)
    assert not ExportWidget(viewer).depth.isChecked() and ExportWidget(viewer).empty.isChecked()
    assert not ReviewWidget(viewer).advance.isChecked() and not ctx.advance_after_review
    export.depth.setChecked(True)  # as the other tests expect
    review.advance.setChecked(True)

    # reopen the same source: resume restores statuses and corrections
    viewer.layers.clear()
    assert ReviewSession.load(sidecar).threshold == 0.95  # saved at close
    seg.threshold.setValue(40)  # the slider moved meanwhile: the resumed review keeps its own
    ctx.resume_answer = True
    image2 = viewer.open(frames_folder, plugin=PLUGIN)[0]
    qtbot.waitUntil(lambda: ctx.controller_for(image2, create=False) is not None, timeout=5000)
    back = ctx.controller_for(image2, create=False)
    assert seg.image.value is image2 and seg.threshold_value == 0.95
    assert [back.session.status_of(i) for i in range(4)] == ["accepted", "corrected", "corrected", "empty"]
    resumed_meta = viewer.layers["frames polyp mask"].metadata["depthpolyp"]
    assert [m["sha256"] for m in resumed_meta["models"]] == [plugin_model.sha256()]  # provenance survives a resume
    np.testing.assert_array_equal(back.session.masks[:3], saved[:3])
    assert viewer.layers["frames polyp mask"].data is back.session.masks
    # model output never overwrites the restored reviewed frames
    segment(qtbot, seg, plugin_model)
    np.testing.assert_array_equal(back.session.masks, saved)
    assert back.session.threshold == 0.95


def test_review_starts_from_imported_masks(make_napari_viewer, qtbot, frames_folder, tmp_path):
    """Masks made elsewhere, named like the frames: the Review panel imports them as corrected
    frames into the image's mask layer (created if the image was never segmented)."""
    from napari_depthpolyp.io.writers import write_mask_png

    viewer = make_napari_viewer()
    image = viewer.open(frames_folder, plugin=PLUGIN)[0]
    review = dock(viewer, "Review")
    m = np.zeros((H, W), bool)
    m[10:30, 20:60] = True
    write_mask_png(tmp_path / "masks" / "frame2.png", m)
    assert review.image.value is image
    assert review.import_masks(str(tmp_path / "masks")) == [2]
    mask = viewer.layers["frames polyp mask"]
    np.testing.assert_array_equal(mask.data[2] != 0, m)
    ctrl = review.ctx.controller_for(image, create=False)
    assert ctrl.session.status_of(2) == "corrected" and review.ctx.active is ctrl
    assert review.import_masks(str(tmp_path / "nothing-here")) == []  # an error notification, nothing changed
    # the button offers both kinds: a folder, or a multi-page TIFF (frame 2, now corrected, keeps its mask)
    from napari_depthpolyp.io.writers import write_mask_stack_tiff

    assert [a.text() for a in review.import_button.menu().actions()][1].startswith("A multi-page mask TIFF")
    write_mask_stack_tiff(tmp_path / "all.tif", np.ones((4, H, W), bool))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("napari_depthpolyp.widgets._review.QFileDialog.getOpenFileName",
                   lambda *a, **k: (str(tmp_path / "all.tif"), ""))
        review.import_button.menu().actions()[1].trigger()
    assert [ctrl.session.status_of(i) for i in range(4)] == ["corrected"] * 4
    assert mask.data[[0, 1, 3]].all() and np.array_equal(mask.data[2] != 0, m)


def run_long(viewer, model):
    """Start Segment on a 48-frame stack called "long" (6 batches of 8): (widget, worker)."""
    stack = np.concatenate([real_frames(4)] * 12)
    viewer.add_image(stack, name="long", rgb=True)
    seg = dock(viewer, "Segment")
    seg.select_model(str(model.path))
    seg.min_region.setValue(0.1)  # remembered by the next Segment panel
    return seg, seg.run()


def test_cancel_segmentation_stops_within_a_batch(make_napari_viewer, qtbot, plugin_model, monkeypatch):
    monkeypatch.setenv("DEPTHPOLYP_SESSION_RAM_MB", "0.5")  # 48 frames need 1.6 MB: a session kept on disk
    viewer = make_napari_viewer()
    seg, worker = run_long(viewer, plugin_model)
    assert not seg.model.isEnabled() and not seg.backend.isEnabled()  # what the running frames are cut with
    seen = []
    worker.yielded.connect(lambda batch: (seen.append(len(batch)), seg.cancel()))
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    session = seg.ctx.controller_for(viewer.layers["long"], create=False).session
    done = int(session.predicted.sum())
    assert 8 <= done <= 16 and done % 8 == 0  # stopped after the batch in flight
    assert isinstance(session.masks, np.memmap) and viewer.layers["long polyp mask"].data is session.masks
    from napari_depthpolyp.widgets import SegmentWidget

    again = SegmentWidget(viewer)
    assert again.min_region.value() == 0.1 and again.frames.currentText() == "All frames"

    # a new threshold on many frames: the one on screen at once, the others a slice per tick
    from napari_depthpolyp.review import threshold_map
    from napari_depthpolyp.widgets import _context

    for name, value in (("RETHRESHOLD_NOW", 1), ("RETHRESHOLD_SLICE_S", 0.0), ("RETHRESHOLD_CHUNK", 1)):
        monkeypatch.setattr(_context, name, value)
    ctrl = seg.ctx.controller_for(viewer.layers["long"], create=False)
    ctrl.go_to(0)
    ctrl.set_threshold(0.9)
    current = ctrl.current()
    assert session.pending and current not in session.pending and session.predicted[current]
    mask = viewer.layers["long polyp mask"]
    np.testing.assert_array_equal(mask.data[current], threshold_map(session.probability[current], 0.9, 0.001))
    qtbot.waitUntil(lambda: not session.pending, timeout=10_000)
    for i in np.flatnonzero(session.predicted):
        np.testing.assert_array_equal(mask.data[i], threshold_map(session.probability[i], 0.9, 0.001))
    assert seg.worker is None and seg.run_button.isEnabled() and "Cancelled" in seg.status.text()


def test_removing_the_image_mid_run_stops_it_and_leaves_no_layers(make_napari_viewer, qtbot, plugin_model):
    viewer = make_napari_viewer()
    seg, worker = run_long(viewer, plugin_model)
    removed = []

    def remove_all(batch):  # after the first batch: the image and its layers go
        if not removed:
            removed.append(1)
            for layer in [layer for layer in viewer.layers if layer.name.startswith("long")]:
                viewer.layers.remove(layer)

    worker.yielded.connect(remove_all)
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    qtbot.wait(50)
    assert not [layer.name for layer in viewer.layers if layer.name.startswith("long")]  # none re-created
    assert seg.worker is None and seg.run_button.isEnabled() and "Cancelled" in seg.status.text()


# ----------------------------------------------------------------------------- fine-tuning
def test_finetune_cancel_resume_register_compare_use(make_napari_viewer, qtbot, plugin_model, tmp_path):
    from napari_depthpolyp.dataset import DatasetWriter

    data, holdout = tmp_path / "curated", tmp_path / "holdout"  # validation never on the training frames
    images = real_frames(12, size=(128, 112))
    for folder, part in ((data, range(8)), (holdout, range(8, 12))):
        with DatasetWriter(folder) as writer:
            for i in part:
                mask = np.zeros(images[i].shape[:2], bool)
                mask[30 + i : 70, 40:90 - i] = True
                writer.add(f"f{i}", images[i], mask, status="corrected" if i % 2 else "accepted")
    viewer = make_napari_viewer()
    seg, ft = dock(viewer, "Segment"), dock(viewer, "Fine-tune")
    ft.add_dataset(str(data))
    ft.val.setText(str(holdout))
    ft.base.setCurrentIndex(ft.base.findData(str(plugin_model.path)))
    ft.epochs.setValue(1)
    ft.batch.setValue(4)
    ft.steps.setValue(2)
    before = {m.id for m in list_models()}

    worker = ft.start()  # cancel after the first batch: a checkpoint, no model
    worker_events = []
    ft._events.event.connect(lambda e: (worker_events.append(e["event"]), ft.cancel() if e["event"] == "batch" else None))
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    assert ft.result["cancelled"] and "batch" in worker_events
    # the activity dock's bar is determinate: the batch that cancelled the run moved it
    assert worker.pbar.total == 2 and worker.pbar.n >= 1  # 1 epoch of 2 steps
    assert {m.id for m in list_models()} == before
    ft._events.event.disconnect()
    ft._events.event.connect(ft._on_event)

    worker = ft.start()  # same settings: resumes from the checkpoint and finishes
    with qtbot.waitSignal(worker.finished, timeout=WAIT):
        pass
    result = ft.result
    assert not result["cancelled"] and result["resumed"]
    new = resolve_model(result["path"])
    assert new.card.parent == plugin_model.id and new.id not in before and new.path != plugin_model.path
    assert {m.id for m in list_models()} == before | {new.id}
    assert 0 <= result["base_dice"] <= 1 and 0 <= result["new_dice"] <= 1 and result["n_val"] == 4
    from napari_depthpolyp.engine import Predictor
    from napari_depthpolyp.evaluate import evaluate

    held = Dataset.open(holdout, statuses=("accepted", "corrected", "empty"))  # the base, measured here
    assert evaluate(Predictor(plugin_model), held, teacher=None)["mean_dice"] == pytest.approx(result["base_dice"], abs=0.01)
    assert "base" in ft.comparison.text() and ft.plot.epochs
    ft.use_button.click()
    assert seg.model.currentData() == str(new.path)
    from napari_depthpolyp.widgets import FinetuneWidget

    again = FinetuneWidget(viewer)  # the panel remembers its last settings
    assert (again.epochs.value(), again.batch.value(), again.steps.value()) == (1, 4, 2)
    assert again.val.text() == str(holdout)
