"""Review: go through the proposals, accept or correct them; the most uncertain frames first.

    Image      [layer ▾]
    Frame 12 / 48 · corrected
    12 unreviewed · 30 accepted · 5 corrected · 1 empty
    [◀ Unreviewed [,]] [Unreviewed ▶ [.]] [Most uncertain [U]]
    [Accept [G]] [No polyp [N]] [Reset frame [Shift+R]]
    [x] after Accept / No polyp, go to the next unreviewed frame
    ┌ frame │ uncertainty │ entropy │ boundary │ temporal │ status ┐   click a row to go there
    Autosave: /data/clip.mp4.depthpolyp  [Save to…]

Painting, erasing or filling on the mask layer marks a frame corrected by itself. Everything is
autosaved a second or two after each change.
"""

from __future__ import annotations

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..review import ReviewError, session_folder_in
from . import _keys
from ._context import get_context, remember_checked, unwrap
from ._layers import ImageLayerCombo

TABLE_ROWS = 500  # the most uncertain frames listed
COLUMNS = ("frame", "uncertainty", "entropy", "boundary", "temporal", "status")
STATUS_COLOURS = {"accepted": "#3fbf5f", "corrected": "#f0a030", "empty": "#7f9fff", "unreviewed": ""}


class ReviewWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = unwrap(napari_viewer)
        self.ctx = get_context(self.viewer)
        self.ctrl = None

        self.image = ImageLayerCombo(self.viewer)
        self.frame = QLabel("")
        self.counts = QLabel("Segment an image to start reviewing.", wordWrap=True)
        self.buttons = {}
        grid = QGridLayout()
        for k, action in enumerate(_keys.KEYS):
            button = QPushButton(_keys.button_text(action), toolTip=_keys.tooltip(action))
            button.clicked.connect(lambda _=False, a=action: self.ctx.run(a))
            self.buttons[action] = button
        order = ("prev_unreviewed", "next_unreviewed", "next_most_uncertain", "accept", "mark_empty", "reset",
                 "undo_accept")
        for k, action in enumerate(order):
            grid.addWidget(self.buttons[action], k // 3, k % 3)
        self.advance = QCheckBox("After Accept / No polyp, go to the next unreviewed frame",
                                 checked=self.ctx.advance_after_review)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setToolTip("Frames ranked by uncertainty (entropy, mask boundary, disagreement with "
                              "neighbouring frames). Click a row to go to the frame.")
        self.autosave = QLabel("", wordWrap=True)
        self.save_to = QPushButton("Save to…", toolTip="Autosave this session to another folder")
        self.import_button = QPushButton(
            "Import masks…", toolTip="Start from masks made elsewhere: a folder of masks named like the frames "
            "or a multi-page TIFF (this plugin's exports and mask writer make both). They become corrected "
            "frames; refine them by painting. Frames already reviewed keep their masks.")

        layout = QVBoxLayout(self)
        layout.addWidget(self.image)
        layout.addWidget(self.frame)
        layout.addWidget(self.counts)
        layout.addLayout(grid)
        layout.addWidget(self.advance)
        layout.addWidget(self.table, stretch=1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.autosave, stretch=1)
        bottom.addWidget(self.import_button)
        bottom.addWidget(self.save_to)
        layout.addLayout(bottom)

        self._refresh_timer = QTimer(self, singleShot=True, interval=100)
        self._refresh_timer.timeout.connect(self.refresh)
        self.image.currentIndexChanged.connect(self._image_changed)
        self.ctx.active_changed.connect(self._follow)
        self.advance.toggled.connect(lambda on: setattr(self.ctx, "advance_after_review", on))
        remember_checked(self.advance, "review/advance")
        self.table.cellClicked.connect(self._row_clicked)
        self.save_to.clicked.connect(self._choose_folder)
        menu = QMenu(self.import_button)
        menu.addAction("A folder of masks named like the frames…", self._choose_masks)
        menu.addAction("A multi-page mask TIFF, one page per frame…", self._choose_mask_stack)
        self.import_button.setMenu(menu)
        self.viewer.dims.events.current_step.connect(self._show_frame)
        _keys.add_shortcuts(self, self.ctx.run)
        self._follow(self.ctx.active)
        self._image_changed()

    def reset_choices(self, event=None) -> None:
        self.image.reset_choices()

    # -- which session ------------------------------------------------------------------------------
    def _image_changed(self, _=None) -> None:
        layer = self.image.value
        ctrl = self.ctx.controller_for(layer, create=False) if layer is not None else None
        self.ctx.set_active(ctrl)
        if ctrl is None:
            self._follow(None)

    def _follow(self, ctrl) -> None:
        """Show the session the keys act on."""
        if self.ctrl is not None:
            for signal, slot in ((self.ctrl.changed, self._refresh_timer.start), (self.ctrl.saved, self._show_saved)):
                try:
                    signal.disconnect(slot)
                except (TypeError, RuntimeError):
                    pass
        self.ctrl = ctrl
        if ctrl is not None:
            ctrl.changed.connect(self._refresh_timer.start)
            ctrl.saved.connect(self._show_saved)
            self.image.set_value(ctrl.image)
        self.refresh()

    # -- display ------------------------------------------------------------------------------------
    def refresh(self) -> None:
        try:
            self._fill()
        except RuntimeError:  # widget deleted while a refresh was pending
            pass

    def _fill(self) -> None:
        ctrl = self.ctrl
        for button in self.buttons.values():
            button.setEnabled(ctrl is not None)
        if ctrl is None:
            self.counts.setText("Segment an image to start reviewing.")
            self.table.setRowCount(0)
            self.autosave.setText("")
            self.frame.setText("")
            return
        s = ctrl.session
        counts = s.counts()
        self.counts.setText(" · ".join(f"{counts[k]} {k}" for k in counts))
        self.autosave.setText(f"Autosave: {s.folder}")
        rows = s.ranking(limit=TABLE_ROWS)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            values = (str(row["index"]), f"{row['score']:.3f}", f"{row['entropy']:.3f}", f"{row['boundary']:.3f}",
                      "–" if row["temporal"] is None else f"{row['temporal']:.3f}", row["status"])
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row["index"])
                if c == len(values) - 1 and STATUS_COLOURS[row["status"]]:
                    item.setForeground(_colour(STATUS_COLOURS[row["status"]]))
                self.table.setItem(r, c, item)
        self._show_frame()

    def _show_frame(self, event=None) -> None:
        ctrl = self.ctrl
        if ctrl is None or ctrl.image not in self.viewer.layers:
            return
        try:
            i = ctrl.current()
            self.frame.setText(f"Frame {i} / {ctrl.session.n - 1} · {ctrl.session.status_of(i)}")
        except RuntimeError:
            pass

    def _show_saved(self, folder: str) -> None:
        self.autosave.setText(f"Autosaved to {folder}")

    # -- actions ------------------------------------------------------------------------------------
    def _row_clicked(self, row: int, _column: int) -> None:
        item = self.table.item(row, 0)
        if item is not None and self.ctrl is not None:
            self.ctrl.go_to(int(item.data(Qt.ItemDataRole.UserRole)))

    def _choose_folder(self) -> None:
        if self.ctrl is None:
            return
        chosen = QFileDialog.getExistingDirectory(self, "Autosave the review session to", str(self.ctrl.session.folder.parent))
        if chosen:
            self.save_session_to(chosen)

    def save_session_to(self, chosen: str) -> None:
        """"Save to…" with the folder chosen: there, or in a ``.depthpolyp`` folder inside it when
        it holds other files (``review.session_folder_in``)."""
        session = self.ctrl.session
        try:
            folder = session_folder_in(chosen, session.source, session.ident)
            session.save(folder, force=True)
        except (OSError, ReviewError) as exc:
            show_error(f"Cannot save the review session to {chosen}: {exc}")
            return
        show_info(f"The review session now autosaves to {folder}; it is offered there when "
                  f"{self.ctrl.image.name} is opened again")
        self.refresh()


    def _choose_masks(self) -> None:
        if self.image.value is None:
            show_error("Open the frames first, then choose them under Image.")
            return
        folder = QFileDialog.getExistingDirectory(self, "A folder of masks named like the frames")
        if folder:
            self.import_masks(folder)

    def _choose_mask_stack(self) -> None:
        if self.image.value is None:
            show_error("Open the frames first, then choose them under Image.")
            return
        path, _ = QFileDialog.getOpenFileName(self, "A mask TIFF with one page per frame", "", "TIFF (*.tif *.tiff)")
        if path:
            self.import_masks(path)

    def import_masks(self, path: str) -> list[int]:
        """Import masks into the chosen image's review (see ``ReviewSession.import_masks``)."""
        layer = self.image.value
        if layer is None:
            show_error("Open the frames first, then choose them under Image.")
            return []
        try:
            ctrl = self.ctx.controller_for(layer, parent=self)
            kept: list[int] = []
            frames = ctrl.session.import_masks(path, kept=kept)
        except ReviewError as exc:
            show_error(str(exc))
            return []
        ctrl.ensure_layers()
        ctrl.refresh(maps=False)
        ctrl.touch()
        self.ctx.set_active(ctrl)
        note = (f"; {len(kept)} frames you had already reviewed kept their masks" if kept else "")
        show_info(f"Imported {len(frames)} masks into {layer.name} as corrected frames{note}.")
        return frames


def _colour(name: str):
    from qtpy.QtGui import QColor

    return QColor(name)
