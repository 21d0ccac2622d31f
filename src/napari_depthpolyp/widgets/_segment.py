"""Segment: propose polyp masks and depth for one frame, a frame range or a whole stack.

    Image       [layer ▾]                     a video, an image folder or one image
    Model       [depthpolyp-kvasir 1.10 ▾] [↻] bundled models and the user's versions
    Backend     [onnx ▾]  [ ] flip averaging   4 mirrored passes averaged: 4x slower, a little better
    Threshold   [────●────] 0.30               re-thresholds stored probabilities, no network run
    Smallest    [0.00 % of the frame]           drops smaller marked regions (0: keep all)
    Frames      [All frames ▾]  from [0] to [47]
    [ Run ]  [ Cancel ]
    status line

The network runs in a napari worker over ``review.iter_predictions`` (one yield per batch: the
activity dock shows progress, results appear batch by batch, Cancel stops within one batch).
"""

from __future__ import annotations

import math

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine import BACKENDS, Predictor
from ..models import ModelError, resolve_model
from ..review import iter_predictions
from ._context import fill_model_combo, get_context, settings, start_worker, unwrap
from ._layers import ImageLayerCombo, current_frame, frame_geometry

FRAMES = ("Current frame", "All frames", "Frame range")


class SegmentWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = unwrap(napari_viewer)
        self.ctx = get_context(self.viewer)
        self.worker = None
        self._predictor: Predictor | None = None
        self._done = 0

        self.image = ImageLayerCombo(self.viewer)
        self.model = QComboBox(toolTip="Bundled models and your fine-tuned versions")
        self.refresh_models = QPushButton("↻", toolTip="Look for new models", maximumWidth=32)
        self.backend = QComboBox(toolTip="ONNX Runtime is faster on CPU; torch is the reference")
        self.backend.addItems(BACKENDS)
        self.tta = QCheckBox("flip averaging")
        self.tta.setToolTip("Run each frame also mirrored left-right, top-bottom and both, and average the "
                            "four answers: 4x slower, slightly more accurate (about +0.5 Dice on our test sets)")
        self.threshold = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=99, value=50)
        self.threshold.setToolTip("Mask = probability ≥ threshold. Moving it never runs the network "
                                  "again and never changes reviewed frames.")
        self.threshold_label = QLabel("0.50")
        self.min_region = QDoubleSpinBox(minimum=0.0, maximum=5.0, singleStep=0.05, decimals=2, value=0.0,
                                         suffix=" % of the frame")
        self.min_region.setToolTip(
            "Drop marked regions smaller than this share of the frame from the proposals (0: keep all). "
            "With depthpolyp-kvasir 1.10, 0.25 % left Kvasir-SEG val Dice unchanged and cut the polyp-free "
            "frames with a false region by about a quarter; larger values can hide a small polyp. Never changes "
            "reviewed frames.")
        self.frames = QComboBox()
        self.frames.addItems(FRAMES)
        self.start = QSpinBox(minimum=0, maximum=0)
        self.stop = QSpinBox(minimum=0, maximum=0)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.status = QLabel("", wordWrap=True)

        form = QFormLayout()
        form.addRow("Image", self.image)
        form.addRow("Model", _row(self.model, self.refresh_models))
        form.addRow("Backend", _row(self.backend, self.tta))
        form.addRow("Threshold", _row(self.threshold, self.threshold_label))
        form.addRow("Smallest region", self.min_region)
        form.addRow("Frames", self.frames)
        form.addRow("from / to", _row(self.start, self.stop))
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(_row(self.run_button, self.cancel_button, layout=True))
        layout.addWidget(self.status)
        layout.addStretch(1)

        self._threshold_timer = QTimer(self, singleShot=True, interval=150)
        self._threshold_timer.timeout.connect(self._apply_threshold)
        self.threshold.valueChanged.connect(self._threshold_moved)
        self.min_region.valueChanged.connect(lambda _: self._threshold_timer.start())
        self.model.currentIndexChanged.connect(self._model_changed)
        self.refresh_models.clicked.connect(lambda: fill_model_combo(self.model))
        self.image.currentIndexChanged.connect(self._image_changed)
        self.frames.currentIndexChanged.connect(self._frames_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.ctx.use_model.connect(self.select_model)
        self.ctx.active_changed.connect(self._active_changed)
        self.ctx.models_changed.connect(lambda: fill_model_combo(self.model))

        saved = settings()
        self.backend.setCurrentText(str(saved.value("segment/backend", "onnx")))
        self.tta.setChecked(str(saved.value("segment/tta", "false")).lower() == "true")
        fill_model_combo(self.model, saved.value("segment/model", None))
        self.min_region.setValue(float(saved.value("segment/min_region", 0.0)))
        frames = self.frames.findText(str(saved.value("segment/frames", "All frames")))
        self.frames.setCurrentIndex(frames if frames >= 0 else 1)
        self._image_changed()

    def reset_choices(self, event=None) -> None:
        self.image.reset_choices()

    # -- choices ----------------------------------------------------------------------------------
    @property
    def threshold_value(self) -> float:
        return self.threshold.value() / 100.0

    @property
    def min_region_value(self) -> float:
        """The smallest region kept, as a share of the frame (the spin box shows it in %)."""
        return self.min_region.value() / 100.0

    def set_threshold(self, value: float) -> None:
        self.threshold.setValue(int(round(value * 100)))
        self._apply_threshold()

    def select_model(self, spec: str) -> None:
        """Choose a model by path or id (e.g. from the fine-tune widget's "Use this model")."""
        try:
            path = str(resolve_model(spec).path)
        except ModelError as exc:
            show_error(str(exc))
            return
        fill_model_combo(self.model, path)

    def _model_changed(self, _=None) -> None:
        path = self.model.currentData()
        if path is None:
            self.status.setText("No trained model is installed yet: Run explains what to do.")
        layer = self.image.value
        if layer is not None and self.ctx.controller_for(layer, create=False) is not None:
            return  # the image's review has its threshold: choosing a model does not re-cut its proposals
        if path:
            try:
                self.threshold.setValue(int(round(resolve_model(path).card.default_threshold * 100)))
            except ModelError as exc:
                self.status.setText(str(exc))

    def _image_changed(self, _=None) -> None:
        layer = self.image.value
        n = 1
        if layer is not None:
            try:
                n = frame_geometry(layer)[0]
            except ValueError as exc:
                self.status.setText(str(exc))
        for box in (self.start, self.stop):
            box.setMaximum(n - 1)
        self.stop.setValue(n - 1)
        ctrl = self.ctx.controller_for(layer, create=False) if layer is not None else None
        if ctrl is not None:
            self._show_session(ctrl)
            self.ctx.set_active(ctrl)

    def _show_session(self, ctrl) -> None:
        """Threshold and smallest region as the image's review session has them (a resumed
        session's are the user's: Run must not replace them with the slider's)."""
        self.threshold.blockSignals(True)
        self.threshold.setValue(int(round(ctrl.session.threshold * 100)))
        self.threshold_label.setText(f"{ctrl.session.threshold:.2f}")
        self.threshold.blockSignals(False)
        self.min_region.blockSignals(True)
        self.min_region.setValue(ctrl.session.min_region * 100.0)
        self.min_region.blockSignals(False)

    def _active_changed(self, ctrl) -> None:
        """A saved review resumed for the image chosen here (opening a file offers it): show its
        settings. A new session takes the panel's instead, at Run."""
        if ctrl is not None and ctrl.image is self.image.value and ctrl.session.resumed:
            self._show_session(ctrl)

    def _frames_changed(self, _=None) -> None:
        ranged = self.frames.currentText() == "Frame range"
        self.start.setEnabled(ranged)
        self.stop.setEnabled(ranged)

    def _threshold_moved(self, value: int) -> None:
        self.threshold_label.setText(f"{value / 100:.2f}")
        self._threshold_timer.start()

    def _apply_threshold(self) -> None:
        layer = self.image.value
        ctrl = self.ctx.controller_for(layer, create=False) if layer is not None else None
        if ctrl is not None:
            ctrl.set_threshold(self.threshold_value, self.min_region_value)

    def frame_indices(self, layer) -> tuple[list[int], bool]:
        n, _, is_stack = frame_geometry(layer)
        mode = self.frames.currentText()
        if not is_stack or mode == "All frames":
            return list(range(n)), is_stack
        if mode == "Current frame":
            return [current_frame(self.viewer, layer, n)], is_stack
        lo, hi = sorted((self.start.value(), self.stop.value()))
        return list(range(lo, hi + 1)), is_stack

    # -- running ----------------------------------------------------------------------------------
    def run(self):
        """Segment the chosen frames; returns the napari worker (None if nothing was started)."""
        if self.worker is not None:
            return None
        layer = self.image.value
        if layer is None:
            show_error("Open a video, an image folder or an image first, then choose it under Image.")
            return None
        try:
            model = resolve_model(self.model.currentData())  # None: the default, or NoModelError
            indices, is_stack = self.frame_indices(layer)
            ctrl = self.ctx.controller_for(layer, parent=self)  # ReviewError: fits neither in memory nor on disk
        except (ModelError, ValueError) as exc:
            show_error(str(exc))
            self.status.setText(str(exc))
            return None
        ctrl.set_threshold(self.threshold_value, self.min_region_value)
        ctrl.session.allocate_maps()
        ctrl.ensure_layers()  # the layers appear at the click, not in the middle of the stream
        self.ctx.set_active(ctrl)
        model_index = ctrl.session.add_model(model.provenance())
        backend = self.backend.currentText()
        settings().setValue("segment/backend", backend)
        tta = self.tta.isChecked()
        settings().setValue("segment/tta", tta)
        settings().setValue("segment/model", str(model.path))
        settings().setValue("segment/min_region", self.min_region.value())
        settings().setValue("segment/frames", self.frames.currentText())
        batch = 8
        self._done = 0
        self._run_info = (ctrl, model, len(indices), layer.name)
        self.status.setText(f"Segmenting {len(indices)} frame(s) of {layer.name} with {model.id}…")

        def show(predictions):
            if ctrl.closed:  # the image was removed from the viewer: stop, add nothing
                self.cancel()
                return
            ctrl.add_predictions(predictions, model_index)
            if not self._done:  # the layers carry their model from the first batch, even if the run fails later
                ctrl.record_provenance(self._provenance(model))
            self._done += len(predictions)
            self.status.setText(f"Segmented {self._done} / {len(indices)} frame(s) of {layer.name}…")

        self._set_running(True)
        self.worker = start_worker(
            self._compute, model, backend, tta, layer.data, indices, ctrl.session.map_dtype, layer.name, batch,
            ctrl.session.threshold,
            desc=f"Segmenting {layer.name}", total=math.ceil(len(indices) / batch),
            on_yield=show, on_return=lambda _: self._finished(), on_done=lambda: self._set_running(False),
            on_abort=self._cancelled, on_error=lambda exc: self.status.setText(f"Segmentation failed: {exc}"),
        )
        return self.worker

    def _compute(self, model, backend, tta, data, indices, map_dtype, source, batch, threshold):
        """Runs in the worker thread: load (or reuse) the predictor, then yield per batch (with each
        frame's uncertainty parts computed here, off napari's thread)."""
        p = self._predictor
        if (p is None or p.model.path != model.path or p.model.sha256() != model.sha256() or p.backend != backend
                or p.tta != tta):
            p = self._predictor = Predictor(model, backend=backend, batch_size=batch, tta=tta)
        yield from iter_predictions(p, data, indices, map_dtype, source=source, threshold=threshold)

    def cancel(self) -> None:
        if self.worker is not None:
            self.status.setText("Cancelling after this batch…")
            self.worker.quit()

    def _provenance(self, model) -> dict:
        """The predictor's provenance (model, backend, tta); the session's threshold replaces the
        predictor's in ``record_provenance``."""
        provenance = self._predictor.provenance() if self._predictor else model.provenance()
        provenance.pop("path", None)
        return provenance

    def _finished(self) -> None:
        ctrl, model, total, name = self._run_info
        ctrl.record_provenance(self._provenance(model))
        smallest = f", smallest region {ctrl.session.min_region:.2%}" if ctrl.session.min_region else ""
        text = f"Segmented {self._done} frame(s) of {name} with {model.id} (threshold {ctrl.session.threshold:.2f}{smallest})."
        self.status.setText(text)
        show_info(text)

    def _cancelled(self) -> None:
        ctrl, model, total, name = self._run_info
        if self._done:
            ctrl.record_provenance(self._provenance(model))
        text = f"Cancelled: {self._done} of {total} frame(s) of {name} segmented."
        self.status.setText(text)
        show_info(text)

    def _set_running(self, running: bool) -> None:
        if not running:
            self.worker = None
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for box in (self.model, self.backend, self.tta):  # what the running frames are segmented with
            box.setEnabled(not running)


def _row(*widgets, layout: bool = False):
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    if layout:
        return row
    holder = QWidget()
    row.setContentsMargins(0, 0, 0, 0)
    holder.setLayout(row)
    return holder

