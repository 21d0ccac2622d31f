"""Fine-tune: teach a model your reviewed frames, watch it learn, compare it with its parent.

    Datasets     ┌ /data/curated/clip-a ┐ [Add…] [Remove]     exported folders (or images/+masks/)
    Validation   [/data/curated/val     ] [Browse…]          optional; base vs new Dice on it
    Base model   [depthpolyp-kvasir 1.10 ▾]
    Epochs [5]  Batch [8]  Steps/epoch [0 = all]  [x] freeze encoder
    [ Start ] [ Cancel ]   ▓▓▓▓▓░░░ epoch 2/5
    (plot: loss per batch and epoch, val Dice per epoch)
    Base Dice 0.712 → new 0.768 on 24 validation frames   [Use this model in Segment]

The one training loop (``Trainer``, the same as ``depthpolyp finetune``) runs in a worker; its
progress events reach this panel through a Qt signal. Cancel stops after the current batch and keeps
the checkpoint: Start with the same settings resumes from it. The result is registered as a new
user model version; the parent is never overwritten.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..dataset import holds_out
from ..models import ModelError, resolve_model
from ._context import fill_model_combo, get_context, remember_checked, settings, start_worker, unwrap
from ._plot import TrainingPlot



class _Events(QObject):
    """Carries the trainer's progress events from the worker thread to the panel."""

    event = Signal(object)


def _resumable(run_dir: Path, epochs: int) -> bool:
    meta = run_dir / "checkpoint.json"
    try:
        state = json.loads(meta.read_text())["state"]
    except (OSError, ValueError, KeyError):
        return False
    return state.get("epoch", 0) < epochs


def finetune_job(cfg, base_path: str, val: str | None, emit, should_stop) -> dict:
    """Runs in the worker thread: train and register. With validation frames, the comparison of
    base and new is the trainer's own: the base measured on them before the first step
    (``parent_val`` in the new card) and the new model's selected figures (``val``)."""
    from ..train import Trainer
    from ..train.loop import ResumeError

    trainer = Trainer(cfg)
    resume = _resumable(trainer.run_dir, cfg.epochs)
    try:
        model = trainer.run(progress=emit, should_stop=should_stop, resume=resume)
    except ResumeError:  # the cancelled run was on other frames (a new export): start afresh
        resume = False
        model = trainer.run(progress=emit, should_stop=should_stop, resume=False)
    if model is None:
        return {"cancelled": True, "run_dir": str(trainer.run_dir)}
    out = {"cancelled": False, "model": model.id, "path": str(model.path), "resumed": resume}
    before, after = model.card.metrics.get("parent_val"), model.card.metrics.get("val", {})
    if before and "val_dice_clean" in after:
        out.update(n_val=model.card.training_data.get("val", {}).get("n"),
                   base_dice=before["val_dice_clean"], new_dice=after["val_dice_clean"],
                   base_degraded=before["val_dice_degraded"], new_degraded=after["val_dice_degraded"])
    return out


class FinetuneWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = unwrap(napari_viewer)
        self.ctx = get_context(self.viewer)
        self.worker = None
        self.result: dict | None = None
        self._stop = threading.Event()
        self._events = _Events()
        self._events.event.connect(self._on_event)

        self.datasets = QListWidget(toolTip="Dataset folders: exports of Review, or images/ + masks/ folders")
        self.datasets.setMaximumHeight(90)
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.val = QLineEdit(placeholderText="optional: a folder to compare base and new on")
        self.val_browse = QPushButton("Browse…")
        self.base = QComboBox()
        self.epochs = QSpinBox(minimum=1, maximum=500, value=5)
        self.batch = QSpinBox(minimum=2, maximum=64, value=8)
        self.steps = QSpinBox(minimum=0, maximum=100000, value=0, specialValueText="all")
        self.steps.setToolTip("Batches per epoch (all = the whole data set)")
        self.freeze = QCheckBox("freeze encoder", toolTip="Train only the decoder: faster, gentler on few frames")
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.progress = QProgressBar()
        self.status = QLabel("", wordWrap=True)
        self.plot = TrainingPlot()
        self.comparison = QLabel("", wordWrap=True)
        self.use_button = QPushButton("Use this model in Segment", enabled=False)

        form = QFormLayout()
        lists = QHBoxLayout()
        lists.addWidget(self.datasets, stretch=1)
        side = QVBoxLayout()
        side.addWidget(self.add_button)
        side.addWidget(self.remove_button)
        side.addStretch(1)
        lists.addLayout(side)
        form.addRow("Datasets", lists)
        val = QHBoxLayout()
        val.addWidget(self.val, stretch=1)
        val.addWidget(self.val_browse)
        form.addRow("Validation", val)
        form.addRow("Base model", self.base)
        numbers = QHBoxLayout()
        for label, box in (("epochs", self.epochs), ("batch", self.batch), ("steps/epoch", self.steps)):
            numbers.addWidget(QLabel(label))
            numbers.addWidget(box)
        form.addRow(numbers)
        form.addRow(self.freeze)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, stretch=1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.plot, stretch=1)
        layout.addWidget(self.comparison)
        layout.addWidget(self.use_button)

        self.add_button.clicked.connect(self._browse_dataset)
        self.remove_button.clicked.connect(lambda: [self.datasets.takeItem(self.datasets.row(i)) for i in self.datasets.selectedItems()])
        self.val_browse.clicked.connect(self._browse_val)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self.use_model)
        self.ctx.exported.connect(self.add_dataset)
        self.ctx.models_changed.connect(lambda: fill_model_combo(self.base))
        fill_model_combo(self.base)
        saved = settings()
        for key, box in (("epochs", self.epochs), ("batch", self.batch), ("steps", self.steps)):
            box.setValue(int(saved.value(f"finetune/{key}", box.value())))
        remember_checked(self.freeze, "finetune/freeze")
        self.val.setText(str(saved.value("finetune/val", "")))  # the same held-out frames, round after round
        if self.ctx.last_export is not None:
            self.add_dataset(str(self.ctx.last_export))

    # -- inputs -------------------------------------------------------------------------------------
    def add_dataset(self, folder: str) -> None:
        folder = str(Path(folder))
        if folder not in self.dataset_folders():
            self.datasets.addItem(folder)

    def select_base(self, spec: str) -> None:
        """Choose the base model by path or id (also a model directory outside the registry)."""
        try:
            fill_model_combo(self.base, str(resolve_model(spec).path))
        except ModelError as exc:
            show_error(str(exc))

    def dataset_folders(self) -> list[str]:
        return [self.datasets.item(i).text() for i in range(self.datasets.count())]

    def _browse_dataset(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A dataset folder to train on")
        if folder:
            self.add_dataset(folder)

    def _browse_val(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A dataset folder to compare base and new on")
        if folder:
            self.val.setText(folder)

    def config(self):
        from ..train import finetune_config

        base = resolve_model(self.base.currentData())
        data = self.dataset_folders()
        if not data:
            raise ValueError("Add at least one dataset folder (an export of Review) to train on.")
        val, splits = self.val.text().strip() or None, {}
        self.unused_holdouts: list[str] = []
        if val is None:  # the frames an export held out (its split.json) are the comparison
            holding = [d for d in data if holds_out(d)]
            val = holding[0] if holding else None
            self.unused_holdouts = holding[1:]  # trained on their 'train' side, compared on neither
            if val is not None:
                splits = {"train_split": "train", "val_split": "val"}
        return base, finetune_config(
            data, init_model=str(base.path), parent_config=base.card.config, name=base.card.name,
            epochs=self.epochs.value(),
            batch_size=self.batch.value(), max_steps_per_epoch=self.steps.value() or None,
            freeze_encoder=self.freeze.isChecked(), val_data=val, workers=0, **splits,
        )

    # -- running ------------------------------------------------------------------------------------
    def start(self):
        """Start fine-tuning; returns the napari worker (None when nothing was started)."""
        if self.worker is not None:
            return None
        try:
            base, cfg = self.config()
        except (ModelError, ValueError) as exc:
            show_error(str(exc))
            self.status.setText(str(exc))
            return None
        saved = settings()
        for key, box in (("epochs", self.epochs), ("batch", self.batch), ("steps", self.steps)):
            saved.setValue(f"finetune/{key}", box.value())
        saved.setValue("finetune/val", self.val.text().strip())
        self._stop.clear()
        self.result = None
        self.plot.clear()
        self.plot.total_epochs = cfg.epochs
        self.progress.setRange(0, 0)
        self.comparison.setText("")
        self.use_button.setEnabled(False)
        self.status.setText(f"Fine-tuning {base.id} on {len(cfg.train_data)} folder(s)…")
        if self.unused_holdouts:
            show_info(f"Base and new are compared on the frames {cfg.val_data} holds out; those "
                      f"{', '.join(self.unused_holdouts)} holds out are used for neither training nor the "
                      "comparison.")
        self._set_running(True)
        self.worker = start_worker(
            finetune_job, cfg, str(base.path), cfg.val_data, self._events.event.emit, self._stop.is_set,
            desc=f"Fine-tuning {base.id}", on_return=self._finished, on_done=lambda: self._set_running(False),
            on_error=lambda exc: self.status.setText(f"Fine-tuning failed: {exc}"),
        )
        return self.worker

    def cancel(self) -> None:
        if self.worker is not None:
            self._stop.set()
            self.status.setText("Stopping after this batch (the checkpoint is kept)…")

    def _on_event(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "cache":
            self.status.setText(f"Preparing frames {event['done']}/{event['total']}…")
        elif kind == "resumed":
            self.status.setText(f"Resuming from the checkpoint (epoch {event.get('epoch', 0) + 1})…")
        elif kind == "batch":
            total = self.plot.total_epochs * event["batches"]
            done = event["epoch"] * event["batches"] + event["batch"]
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            pbar = getattr(self.worker, "pbar", None)  # the activity dock's bar: determinate too
            if pbar is not None:
                if pbar.total != total:
                    pbar.total = total
                pbar.update(done - pbar.n)
            self.plot.add_batch(event["epoch"], event["batch"], event["batches"], event["loss"])
            self.status.setText(f"Epoch {event['epoch'] + 1}/{self.plot.total_epochs}, batch "
                                f"{event['batch']}/{event['batches']}: loss {event['loss']:.4f}")
        elif kind == "epoch":
            dice = event.get("val_dice_clean")
            self.plot.add_epoch(event["epoch"], event.get("loss_total", float("nan")), dice)
            extra = f", val Dice {dice:.3f}" if dice is not None else ""
            self.status.setText(f"Epoch {event['epoch']}/{self.plot.total_epochs}: loss {event.get('loss_total', 0):.4f}{extra}")
        elif kind == "parent_val":
            self.status.setText(f"Base model on the validation frames: Dice {event['val_dice_clean']:.3f} clean, "
                                f"{event['val_dice_degraded']:.3f} degraded. Fine-tuning…")

    def _finished(self, result: dict) -> None:
        self.result = result
        if result["cancelled"]:
            text = (f"Cancelled. The checkpoint in {result['run_dir']} is kept: Start again with the same "
                    "settings to resume from it.")
            self.status.setText(text)
            show_info(text)
            return
        self.ctx.models_changed.emit()
        text = f"Registered {result['model']} ({result['path']})."
        if "new_dice" in result:
            self.comparison.setText(f"Dice on {result['n_val']} validation frames, clean: base {result['base_dice']:.3f} "
                                    f"→ new {result['new_dice']:.3f}; degraded: {result['base_degraded']:.3f} "
                                    f"→ {result['new_degraded']:.3f}")
            if result["new_dice"] < result["base_dice"]:
                show_warning(f"The new model is worse than its base on the validation folder "
                             f"({result['new_dice']:.3f} < {result['base_dice']:.3f}); keep using the base?")
        else:
            self.comparison.setText("No validation folder and no frames held out in the exports: choose a folder, "
                                    "or export with a share held out, to compare base and new.")
        self.status.setText(text)
        self.use_button.setEnabled(True)
        show_info(text)

    def use_model(self) -> None:
        if self.result and not self.result["cancelled"]:
            try:  # make sure a Segment panel is there to receive it (napari returns an open one)
                self.viewer.window.add_plugin_dock_widget("napari-depthpolyp", "Segment")
            except Exception:  # noqa: BLE001 - a viewer without a window (scripts)
                pass
            self.ctx.use_model.emit(self.result["path"])
            show_info(f"Segment now uses {self.result['model']}.")

    def _set_running(self, running: bool) -> None:
        if not running:
            self.worker = None
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if self.result and not self.result.get("cancelled") else 0)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
