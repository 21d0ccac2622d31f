"""Export: write the reviewed frames as a dataset folder the trainer reads.

    Image    [layer ▾]
    Folder   [/data/curated/clip-2024-05     ] [Browse…]
    [x] depth maps   [x] frames marked "no polyp" (negatives)
    Will export 35 frames: 30 accepted, 5 corrected.
    [ Export ]

Only reviewed frames go out (accepted and corrected, and optionally the empty ones), each with its
image, mask, optional depth and provenance (source file and frame, status, the proposing model and
threshold) in ``manifest.json`` — :class:`napari_depthpolyp.dataset.DatasetWriter`'s format.
A folder that is not empty is only replaced after a confirmation.
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..dataset import DatasetError, replaceable_dataset
from ..review import iter_export
from ._context import get_context, remember_checked, settings, start_worker, unwrap
from ._layers import ImageLayerCombo, frame_data, source_info


class ExportWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = unwrap(napari_viewer)
        self.ctx = get_context(self.viewer)
        self.worker = None
        self.confirm_overwrite: bool | None = None  # tests/scripts: answer the overwrite question
        self._watched: set[int] = set()

        self.image = ImageLayerCombo(self.viewer)
        self.folder = QLineEdit(placeholderText="a new or empty folder")
        self.browse = QPushButton("Browse…")
        self.depth = QCheckBox("depth maps", checked=True)
        self.empty = QCheckBox('frames marked "no polyp" (negatives)', checked=True)
        self.holdout = QSpinBox(minimum=0, maximum=50, value=20, suffix=" % of the frames")
        self.holdout.setToolTip(
            "Held out in blocks of neighbouring frames (split.json): Fine-tune trains on the rest and "
            "compares the new model with its base on these. 0: train on every frame.")
        self.holdout.setValue(int(settings().value("export/holdout", 20)))
        self.holdout.valueChanged.connect(lambda v: settings().setValue("export/holdout", v))
        self.summary = QLabel("", wordWrap=True)
        self.export_button = QPushButton("Export")
        self.cancel_button = QPushButton("Cancel", enabled=False,
                                         toolTip="Stop the export; the folder is left as it was")
        self._suggested: str | None = None
        remember_checked(self.depth, "export/depth")
        remember_checked(self.empty, "export/empty")

        form = QFormLayout()
        form.addRow("Image", self.image)
        folder = QHBoxLayout()
        folder.addWidget(self.folder, stretch=1)
        folder.addWidget(self.browse)
        form.addRow("Folder", folder)
        options = QHBoxLayout()
        options.addWidget(self.depth)
        options.addWidget(self.empty)
        form.addRow("Include", options)
        form.addRow("Hold out for comparison", self.holdout)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button, stretch=1)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        layout.addStretch(1)

        self.browse.clicked.connect(self._browse)
        self.export_button.clicked.connect(self.export)
        self.cancel_button.clicked.connect(self.cancel)
        self.image.currentIndexChanged.connect(self.update_summary)
        self.empty.toggled.connect(self.update_summary)
        self.ctx.active_changed.connect(self._follow)
        self._follow(self.ctx.active)

    def reset_choices(self, event=None) -> None:
        self.image.reset_choices()

    def _follow(self, ctrl) -> None:
        if ctrl is not None:
            if id(ctrl) not in self._watched:
                self._watched.add(id(ctrl))
                ctrl.changed.connect(self.update_summary)
            self.image.set_value(ctrl.image)
            self._suggest_folder(ctrl)
        self.update_summary()

    def _suggest_folder(self, ctrl) -> None:
        """Beside the source: ``<source>-reviewed`` (not for samples inside the package). A folder
        the user typed is kept; one suggested for another image is replaced, so that the second
        video's frames do not go to the first video's export."""
        info = source_info(ctrl.image)
        text = self.folder.text()
        if (not text or text == self._suggested) and info.get("source") and not info.get("sample"):
            src = Path(info["source"])
            self._suggested = str(src.parent / f"{src.stem}-reviewed")
            self.folder.setText(self._suggested)

    @property
    def statuses(self) -> tuple[str, ...]:
        return ("accepted", "corrected", "empty") if self.empty.isChecked() else ("accepted", "corrected")

    def _controller(self):
        layer = self.image.value
        return self.ctx.controller_for(layer, create=False) if layer is not None else None

    def update_summary(self, *_) -> None:
        try:
            ctrl = self._controller()
            if ctrl is None:
                self.summary.setText("Nothing to export yet: segment and review an image first.")
                return
            counts = ctrl.session.counts()
            parts = [f"{counts[s]} {s}" for s in self.statuses if counts[s]]
            total = sum(counts[s] for s in self.statuses)
            self.summary.setText(f"Will export {total} frames" + (f": {', '.join(parts)}." if parts else "."))
        except RuntimeError:  # deleted widget
            pass

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the reviewed frames to")
        if folder:
            self.folder.setText(folder)

    def _may_overwrite(self, root: Path) -> bool:
        if self.confirm_overwrite is not None:
            return self.confirm_overwrite
        reply = QMessageBox.question(
            self, "Replace the folder's dataset?",
            f"{root} is not empty.\n\nReplace the dataset in it? Files of the old dataset that the new "
            "one does not list are removed; nothing else in the folder is touched.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        return reply == QMessageBox.StandardButton.Yes

    def export(self):
        """Start the export; returns the napari worker (None when nothing was started)."""
        ctrl = self._controller()
        text = self.folder.text().strip()
        if ctrl is None:
            show_error("Nothing to export: segment and review an image first.")
            return None
        if not text:
            show_error("Choose the folder to export to.")
            return None
        plan = ctrl.session.export_plan(self.statuses, include_depth=self.depth.isChecked())
        if not plan:
            show_error(f"No frame of {ctrl.image.name} is {' or '.join(self.statuses)} yet: review some frames first.")
            return None
        holdout = self.holdout.value() / 100 if len(plan) >= 2 else 0.0  # one frame: nothing to hold out
        root = Path(text).expanduser()
        overwrite = root.is_dir() and any(root.iterdir())
        if overwrite:
            try:
                replaceable_dataset(root)
            except DatasetError as exc:
                show_error(str(exc))
                return None
        if overwrite and not self._may_overwrite(root):
            show_info(f"Export cancelled: {root} was left as it was.")
            return None
        ctrl.save_now()
        image, is_stack = ctrl.image, ctrl.is_stack

        def done(report: dict) -> None:
            counts = ", ".join(f"{v} {k}" for k, v in report["statuses"].items() if v)
            held = report.get("split")
            counts += f"; {held['val']} held out for comparison" if held else ""
            counts += f", {held['gap']} next to them used for neither" if held and held.get("gap") else ""
            show_info(f"Exported {report['n_frames']} frames ({counts}) to {report['root']}.")
            self.summary.setText(f"Wrote {report['n_frames']} frames to {report['root']}.")
            self.ctx.last_export = root
            self.ctx.exported.emit(str(root))

        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker = start_worker(
            iter_export, plan, lambda i: frame_data(image, i, is_stack), root,
            overwrite=overwrite, source_file=source_info(image).get("source"), holdout=holdout,
            desc=f"Exporting {len(plan)} frames", total=len(plan), on_return=done, on_done=self._done,
            on_abort=self._cancelled,
        )
        return self.worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def _cancelled(self) -> None:
        text = "Export cancelled: the folder was left as it was."
        self.summary.setText(text)
        show_info(text)

    def _done(self) -> None:
        self.worker = None
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
