"""What the four widgets share in one viewer: a review controller per segmented image (its session,
its layers, autosave), which one is active (the keys act on it), and a few signals between widgets.

The controller is the thin Qt side of :class:`napari_depthpolyp.review.ReviewSession`: it turns the
mask layer's ``paint`` events into "corrected", refreshes layers after the session changed, and
autosaves ``AUTOSAVE_MS`` after every change, hashing only the masks changed since the last save.
napari's undo and redo change a mask without an event: they show in the lengths of the layer's undo
and redo history, which a check every ``CHECK_MS`` compares with what the paint events explain; only
then are all painted masks hashed again.
"""

from __future__ import annotations

import json
import logging
import os
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, QSettings, QTimer, Signal
from qtpy.QtWidgets import QApplication, QMessageBox

from ..paths import user_dir
from ..review import (
    SESSION_FILE,
    ReviewError,
    ReviewSession,
    find_sidecar,
    frame_digest,
    identity,
    move_session_aside,
    session_bytes,
)
from . import _keys
from ._layers import (
    current_frame,
    ensure_map_layers,
    ensure_mask_layer,
    frame_data,
    frame_geometry,
    go_to_frame,
    record,
    rename_with,
    role_of,
    source_info,
)

log = logging.getLogger(__name__)
AUTOSAVE_MS = 1500
RETHRESHOLD_NOW = 64  # a new threshold re-thresholds this many frames at once; more go a slice at a time
RETHRESHOLD_SLICE_S = 0.03  # napari's thread is given back after this long
RETHRESHOLD_CHUNK = 8  # frames between two looks at the clock
CHECK_MS = 5000
RESUME_ENV = "DEPTHPOLYP_RESUME"  # "yes" / "no": answer the resume question without a dialog


def settings() -> QSettings:
    """The widgets' remembered choices (an ini file in the user folder)."""
    return QSettings(str(user_dir() / "napari-widgets.ini"), QSettings.Format.IniFormat)


def remember_checked(box, key: str) -> None:
    """Give ``box`` (a QCheckBox) its last state from :func:`settings` and keep it there."""
    box.setChecked(str(settings().value(key, box.isChecked())).lower() == "true")
    box.toggled.connect(lambda on: settings().setValue(key, on))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _content_key(image: Image, source: str | None, is_stack: bool) -> str | None:
    """What tells an image with no file apart from another of its name (``review.identity``): a
    digest of its first frame; None for an image read from a file, which its path names."""
    return None if source else frame_digest(frame_data(image, 0, is_stack))


def start_worker(func, *args, desc: str, total: int = 0, on_yield=None, on_return=None, on_done=None,
                 on_error=None, on_abort=None, **kwargs):
    """A napari worker with a progress bar in the activity dock; errors become notifications. Every
    handler is connected before the worker starts: a worker that fails or is cancelled at once
    emits into no void."""
    worker = create_worker(func, *args, _progress={"total": total, "desc": desc}, _ignore_errors=True, **kwargs)

    def report(exc: BaseException) -> None:
        log.error("%s failed", desc, exc_info=exc)
        show_error(f"{desc} failed: {exc}")

    worker.errored.connect(report)
    if on_yield is not None:
        worker.yielded.connect(on_yield)
    if on_return is not None:
        worker.returned.connect(on_return)
    if on_done is not None:
        worker.finished.connect(on_done)
    if on_error is not None:
        worker.errored.connect(on_error)
    if on_abort is not None:
        worker.aborted.connect(on_abort)
    worker.start()
    return worker


def _edited_frames(atoms, ndim: int) -> set[int]:
    """Frames touched by one napari Labels history item (mask-based atoms or index tuples)."""
    if ndim < 3:
        return {0}
    frames: set[int] = set()
    for atom in atoms:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            first = key[0]
            if isinstance(first, slice):
                frames.update(range(first.start or 0, first.stop))
            else:
                frames.add(int(first))
        else:
            frames.update(int(i) for i in np.unique(np.asarray(atom[0][0])))
    return frames


class ReviewController(QObject):
    """One segmented image: its review session, its three layers, its autosave."""

    changed = Signal()  # statuses, masks or scores changed
    saved = Signal(str)  # the sidecar folder written to

    def __init__(self, context: "DepthPolypContext", image: Image, session: ReviewSession, is_stack: bool):
        super().__init__()
        self.context = context
        self.image = image
        self.session = session
        self.is_stack = is_stack
        self.mask_layer = self.prob_layer = self.depth_layer = None
        self._save_error = None
        self._replacing = False
        self.closed = False
        self._autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_MS)
        self._autosave.timeout.connect(self._autosave_due)
        self._history_seen = None  # (undo, redo) lengths of the mask layer at the last save
        self._paints = 0  # paint events since the last save (each adds one history item)
        self._check = QTimer(self, interval=CHECK_MS)
        self._check.timeout.connect(self._check_history)
        self._check.start()
        self._rethreshold = QTimer(self, singleShot=True, interval=0)  # the pending frames, a slice per tick
        self._rethreshold.timeout.connect(self._rethreshold_slice)
        self._image_name = image.name
        image.events.name.connect(self._on_image_renamed)
        self.ensure_layers()

    @property
    def viewer(self):
        return self.context.viewer

    # -- layers ---------------------------------------------------------------------------------
    def _view(self, array: np.ndarray) -> np.ndarray:
        return array if self.is_stack else array[0]

    def layers(self) -> tuple:
        return self.mask_layer, self.prob_layer, self.depth_layer

    def ensure_layers(self) -> None:
        """(Re)create missing layers; existing ones are updated in place. A layer of another image
        that bears this image's layer name (left from a rename) is never taken over."""
        s = self.session
        taken = [layer for ctrl in self.context.controllers.values() if ctrl is not self
                 for layer in ctrl.layers() if layer is not None]
        if s.probability is not None:
            self.prob_layer, self.depth_layer = ensure_map_layers(
                self.viewer, self.image, self._view(s.probability), self._view(s.depth), (self.prob_layer, self.depth_layer),
                taken=taken,
            )
        new_mask = self.mask_layer is None or self.mask_layer not in self.viewer.layers
        self.mask_layer = ensure_mask_layer(self.viewer, self.image, self._view(s.masks), self.mask_layer, taken=taken)
        layers = self.viewer.layers
        top = len(layers) - 1
        if layers.index(self.mask_layer) != top:
            layers.move(layers.index(self.mask_layer), top + 1)
        if new_mask:
            self.mask_layer.events.paint.connect(self._on_paint)
            _keys.bind(self.mask_layer, self.context.run)
            info = source_info(self.image)
            record(self.mask_layer, source=info.get("source"), frame_names=info.get("frame_names"),
                   session=str(s.folder))
        if s.models:  # every model that proposed masks in this session, a resumed one too
            record(self.mask_layer, models=list(s.models))
        self.record_review()

    def _on_image_renamed(self, event=None) -> None:
        rename_with(self.layers(), self._image_name, self.image.name)
        self._image_name = self.image.name

    def refresh(self, maps: bool = True) -> None:
        for layer in (self.mask_layer, self.prob_layer, self.depth_layer) if maps else (self.mask_layer,):
            if layer is not None:
                layer.refresh()

    def record_review(self) -> None:
        record(self.mask_layer, review=self.session.counts(), threshold=self.session.threshold,
               min_region=self.session.min_region)

    def record_provenance(self, provenance: dict[str, Any]) -> None:
        values = {**provenance, "threshold": self.session.threshold, "min_region": self.session.min_region,
                  "time": now_iso()}
        for layer in (self.mask_layer, self.prob_layer, self.depth_layer):
            if layer is not None:
                record(layer, **values)

    # -- session changes --------------------------------------------------------------------------
    def touch(self) -> None:
        """Something changed: autosave soon, tell the widgets."""
        self._autosave.start()
        self.record_review()
        self.changed.emit()

    def _on_paint(self, event) -> None:
        self._paints += 1
        if self._replacing:  # a review action's own change, through napari's history
            return
        for i in _edited_frames(event.value, self.mask_layer.ndim):
            if 0 <= i < self.session.n:
                self.session.mark_corrected(i)
        self.touch()

    def add_predictions(self, predictions, model: int = -1) -> None:
        """Store a batch and show it. The layers view the session's arrays, so only the frame on
        screen needs redrawing, and only when it is in this batch (a 300-frame run then redraws
        once, not 38 times, keeping napari's thread free)."""
        if self.closed:
            return
        done = self.session.add_predictions(predictions, model)
        layers = (self.mask_layer, self.prob_layer, self.depth_layer)
        if any(layer is None or layer not in self.viewer.layers for layer in layers):
            self.ensure_layers()  # first results, or the user deleted one of the layers
            self.refresh()
        elif not self.is_stack or self.current() in done:
            self.refresh()
        self.touch()

    def set_threshold(self, threshold: float, min_region: float | None = None) -> None:
        """A new threshold (and, given, smallest region kept) for the unreviewed proposals."""
        if float(threshold) == self.session.threshold and min_region in (None, self.session.min_region):
            return
        defer = self.is_stack and self.session.predicted.sum() > RETHRESHOLD_NOW
        changed = self.session.set_threshold(threshold, min_region, defer=defer)
        if self.session.pending:
            self._rethreshold_slice()  # the frame on screen first, then the rest without blocking the viewer
        elif changed:
            self.refresh(maps=False)
        for layer in (self.mask_layer, self.prob_layer, self.depth_layer):
            if layer is not None:
                record(layer, threshold=self.session.threshold, min_region=self.session.min_region)
        self.touch()

    def _rethreshold_slice(self) -> None:
        """Re-threshold pending frames for about RETHRESHOLD_SLICE_S, the one on screen first, then
        give napari's thread back and continue at the next tick."""
        if self.closed:
            return
        t0, current = time.perf_counter(), self.current()
        done = self.session.rethreshold_pending(RETHRESHOLD_CHUNK, first=(current,))
        while self.session.pending and time.perf_counter() - t0 < RETHRESHOLD_SLICE_S:
            done += self.session.rethreshold_pending(RETHRESHOLD_CHUNK)
        if current in done or not self.session.pending:
            self.refresh(maps=False)
        if self.session.pending:
            self._rethreshold.start()

    # -- review actions (buttons and keys) --------------------------------------------------------
    def current(self) -> int:
        return current_frame(self.viewer, self.image, self.session.n)

    def go_to(self, index: int | None) -> None:
        if index is None:
            show_info("Every frame is reviewed.")
            return
        go_to_frame(self.viewer, self.image, int(index))

    def _replace_mask(self, i: int, new: np.ndarray) -> None:
        """Put ``new`` in frame ``i``'s mask through the Labels layer's history, so that napari's
        Ctrl+Z undoes "No polyp" and "Reset" like any brush stroke: a correction is never lost."""
        layer = self.mask_layer
        if layer is None or layer not in self.viewer.layers:
            return
        old = self.session.masks[i]
        where = np.nonzero((old != 0) != (new != 0))
        if where[0].size == 0:
            return
        index = (np.full(where[0].size, i), *where) if self.is_stack else where
        self._replacing = True
        try:
            layer.data_setitem(index, (new[where] != 0).astype(old.dtype))
        finally:
            self._replacing = False

    def _edit(self, method: str, index: int | None = None) -> int:
        i = self.current() if index is None else int(index)
        if method == "mark_empty":
            self._replace_mask(i, np.zeros(self.session.shape, np.uint8))
        elif method == "reset":
            self._replace_mask(i, self.session.proposal(i))
        getattr(self.session, method)(i)
        self.refresh(maps=False)
        self.touch()
        return i

    def accept(self, index: int | None = None) -> int:
        return self._edit("accept", index)

    def mark_empty(self, index: int | None = None) -> int:
        return self._edit("mark_empty", index)

    def reset(self, index: int | None = None) -> int:
        return self._edit("reset", index)

    def undo_accept(self) -> int | None:
        i = self.session.undo_accept()
        if i is None:
            show_info("No Accept to take back (Ctrl+Z undoes painting, No polyp and Reset).")
            return None
        self.go_to(i)
        self.refresh(maps=False)
        self.touch()
        return i

    def next_unreviewed(self) -> None:
        self.go_to(self.session.next_unreviewed(self.current()))

    def prev_unreviewed(self) -> None:
        self.go_to(self.session.prev_unreviewed(self.current()))

    def next_most_uncertain(self) -> None:
        index = self.session.next_most_uncertain(self.current())
        if index is None and self.session.next_unreviewed(self.current()) is not None:
            show_info("No unreviewed frame has a prediction to rank yet: run Segment on them (a resumed "
                      "review keeps the masks and statuses, not the probabilities).")
            return
        self.go_to(index)

    # -- autosave ---------------------------------------------------------------------------------
    _history_warned = False

    def _history(self):
        """The lengths of the mask layer's undo and redo history (None if napari does not expose
        them). Without a paint event, the masks are a function of the undo position alone."""
        layer = self.mask_layer
        undo, redo = getattr(layer, "_undo_history", None), getattr(layer, "_redo_history", None)
        if undo is None or redo is None:
            if layer is not None and not ReviewController._history_warned:  # said once, not every 5 s
                ReviewController._history_warned = True
                log.warning("this napari's Labels layer has no _undo_history/_redo_history: every autosave "
                            "check hashes all painted masks (slower, still correct)")
            return None
        return len(undo), len(redo)

    def _undone(self, now) -> bool:
        """Whether the history moved in a way paint events do not explain: an undo or a redo (or
        a history napari capped or reset). Unknown counts as yes. Paint events explain the lengths
        only from an empty redo history: each adds one undo item and clears the redo history, so
        with a redo item at the last save, a redo, a paint, an undo and a paint would look alike."""
        seen = self._history_seen
        if now is None or seen is None:
            return True
        if self._paints:
            return seen[1] > 0 or now != (seen[0] + self._paints, 0)
        return now != seen

    def _stroke_open(self) -> bool:
        """A stroke still being drawn (napari stages its history until the mouse is released; an
        unfinished lasso can still be taken back without any event): do not save it half-drawn."""
        return bool(getattr(self.mask_layer, "_staged_history", None))

    def _autosave_due(self) -> None:
        if self._stroke_open():
            self._autosave.start()
        else:
            self.save_now()

    def _check_history(self) -> None:
        """The periodic check: save after an undo or redo (a paint has its own event and autosave),
        so an idle review hashes nothing."""
        if not self._stroke_open() and self._undone(self._history()):
            self.save_now()

    def save_now(self, folder: str | os.PathLike | None = None) -> bool:
        now = self._history()
        if self._undone(now) and self.session.reconcile():  # an undo brought back a mask "No polyp" or "Reset" replaced
            self.refresh(maps=False)
            self.record_review()
            self.changed.emit()
        try:
            wrote = self.session.save(folder, rehash=self._undone(now))
        except OSError as exc:
            if str(exc) != self._save_error:  # say it once, not every few seconds
                self._save_error = str(exc)
                show_error(f"Autosave to {self.session.folder} failed: {exc}. Choose another folder in Review.")
            return False
        self._save_error = None
        self._history_seen, self._paints = now, 0
        if wrote:
            self.saved.emit(str(self.session.folder))
        return wrote

    def close(self) -> None:
        """The image left the viewer: save, and take no more results (a run still streaming
        must not bring its layers back)."""
        self.closed = True
        slots = [(self.image.events.name, self._on_image_renamed)]
        if self.mask_layer is not None:  # it may stay in the viewer: its strokes are no longer this session's
            slots.append((self.mask_layer.events.paint, self._on_paint))
        for emitter, slot in slots:
            try:
                emitter.disconnect(slot)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._autosave.stop()
        self._check.stop()
        self._rethreshold.stop()
        self.save_now()


class DepthPolypContext(QObject):
    """Per-viewer shared state of the plugin's widgets."""

    active_changed = Signal(object)  # the ReviewController the keys act on (or None)
    models_changed = Signal()  # a model was registered (fine-tune)
    use_model = Signal(str)  # "Use this model": the path of a model for Segment
    exported = Signal(str)  # a dataset folder was written

    def __init__(self, viewer):
        super().__init__()
        self._viewer = weakref.ref(viewer)
        self.controllers: dict[int, ReviewController] = {}
        self.active: ReviewController | None = None
        self.resume_answer: bool | None = None  # tests/scripts: answer the resume question
        self.advance_after_review = str(settings().value("review/advance", True)).lower() == "true"
        self.last_export: Path | None = None
        viewer.layers.events.removed.connect(self._on_removed)
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.selection.events.active.connect(self._on_active_layer)
        _keys.bind(viewer, self.run)
        for layer in list(viewer.layers):  # opened before the first panel was docked
            self._offer_resume(layer)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)  # the last edits, however recent

    @property
    def viewer(self):
        return self._viewer()

    # -- controllers ------------------------------------------------------------------------------
    def controller_for(self, image: Image, *, create: bool = True, parent=None) -> ReviewController | None:
        """The image's controller; with ``create`` a new session (offering to resume a saved one).
        Raises ``ReviewError`` for a stack whose session fits neither in memory nor on disk."""
        ctrl = self.controllers.get(id(image))
        if ctrl is not None or not create:
            return ctrl
        n, shape, is_stack = frame_geometry(image)
        info = source_info(image)
        key = _content_key(image, info.get("source"), is_stack)
        common = {"source": info.get("source"), "name": image.name, "frame_names": info.get("frame_names"),
                  "content_key": key}
        session = None
        found = find_sidecar(info.get("source"), identity(info.get("source"), image.name, key))
        if found is not None:
            if self._ask_resume(parent, image.name, found):
                try:
                    session = ReviewSession.load(found, expect=(n, shape), **common)
                except ReviewError as exc:
                    show_warning(f"Not resumed: {exc}")
                    found = self._move_aside(found)
                else:
                    w = session.load_warnings
                    note = f" ({len(w)} warnings; first: {w[0]})" if w else ""
                    show_info(f"Resumed the review of {image.name}: {session.reviewed} frames reviewed{note}.")
            else:
                self._move_aside(found)
        if session is None:
            session = ReviewSession(n, shape, beside=not info.get("sample"), **common)
        if session.storage.on_disk:
            need = session_bytes(session.n, session.shape, session.map_dtype) / 2**20
            size = f"{need / 1024:.1f} GB" if need >= 1024 else f"{need:.0f} MB"
            show_info(f"{image.name}: its masks, probability and depth ({size} once every frame is segmented) "
                      f"are more than this session may keep in memory, so they are kept in a temporary file in "
                      f"{session.storage.folder}.")
        ctrl = ReviewController(self, image, session, is_stack)
        self.controllers[id(image)] = ctrl
        self.set_active(ctrl)
        return ctrl

    def _ask_resume(self, parent, name: str, folder: Path) -> bool:
        answer = os.environ.get(RESUME_ENV, "").strip().lower()
        if answer:
            return answer in ("1", "y", "yes", "true")
        if self.resume_answer is not None:
            return self.resume_answer
        try:
            counts = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8"))["counts"]
            what = ", ".join(f"{v} {k}" for k, v in counts.items() if v and k != "unreviewed") or "no reviewed frames"
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            what = f"unreadable: {exc}"
        reply = QMessageBox.question(
            parent, "Resume review?",
            f"A saved review of '{name}' was found in\n{folder}\n({what}).\n\nResume it? "
            "(No keeps it aside as a dated copy and starts afresh.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes,
        )
        return reply == QMessageBox.StandardButton.Yes

    @staticmethod
    def _move_aside(folder: Path) -> Path:
        try:
            aside = move_session_aside(folder)
        except OSError as exc:
            show_warning(f"Could not move the old session {folder} aside ({exc}); it will be overwritten.")
            return folder
        show_info(f"The previous session was kept as {aside}.")
        return aside

    def set_active(self, ctrl: ReviewController | None) -> None:
        if ctrl is not self.active:
            self.active = ctrl
            self.active_changed.emit(ctrl)

    def run(self, action: str) -> None:
        """Perform a review action (a button or a key) on the active controller."""
        ctrl = self.active
        if ctrl is None:
            show_info("Segment an image first (DepthPolyp › Segment).")
            return
        getattr(ctrl, action)()
        if action in ("accept", "mark_empty") and self.advance_after_review:
            nxt = ctrl.session.next_unreviewed(ctrl.current())
            if nxt is not None:
                ctrl.go_to(nxt)

    # -- viewer events ----------------------------------------------------------------------------
    def _on_removed(self, event) -> None:
        layer = event.value
        ctrl = self.controllers.pop(id(layer), None)
        if ctrl is not None:
            ctrl.close()
            if self.active is ctrl:
                self.set_active(None)
            mask = ctrl.mask_layer
            viewer = self.viewer
            if mask is not None and viewer is not None and mask in viewer.layers:
                show_info(f"{layer.name} was closed: its review is saved in {ctrl.session.folder}. Edits to "
                          f"'{mask.name}' are no longer saved; open {layer.name} again to go on reviewing.")

    def _on_inserted(self, event) -> None:
        self._offer_resume(event.value)

    def _offer_resume(self, layer) -> None:
        """Reopening a source that has a saved session: offer to resume it at once."""
        if not isinstance(layer, Image) or role_of(layer) is not None or id(layer) in self.controllers:
            return
        source = source_info(layer).get("source")
        try:
            key = _content_key(layer, source, frame_geometry(layer)[2])
        except ValueError:  # not a frame or a stack: nothing to resume
            return
        if find_sidecar(source, identity(source, layer.name, key)) is not None:
            QTimer.singleShot(0, lambda: self._resume_inserted(layer))

    def _resume_inserted(self, layer: Image) -> None:
        viewer = self.viewer
        if viewer is not None and layer in viewer.layers:
            try:
                self.controller_for(layer, parent=viewer.window._qt_window)
            except ValueError as exc:  # not a frame or a stack
                show_warning(str(exc))

    def _on_active_layer(self, event) -> None:
        layer = event.value
        for ctrl in self.controllers.values():
            if layer is ctrl.mask_layer or layer is ctrl.image:
                self.set_active(ctrl)
                return

    def close(self) -> None:
        for ctrl in list(self.controllers.values()):
            try:
                ctrl.close()
            except RuntimeError:  # Qt objects already gone at exit
                pass


_CONTEXTS: "weakref.WeakKeyDictionary[Any, DepthPolypContext]" = weakref.WeakKeyDictionary()


def unwrap(obj):
    """The object behind napari's PublicOnlyProxy (napari hands plugins a proxied viewer, whose
    layers are new proxy objects at every access: the context keys on the real ones)."""
    return getattr(obj, "__wrapped__", obj)


def get_context(viewer) -> DepthPolypContext:
    viewer = unwrap(viewer)
    ctx = _CONTEXTS.get(viewer)
    if ctx is None:
        ctx = _CONTEXTS[viewer] = DepthPolypContext(viewer)
    return ctx


def model_choices() -> list[tuple[str, str]]:
    """(label, path) of every registered model, bundled first."""
    from ..models import list_models

    return [(f"{m.card.name} {m.card.version}" + (" (bundled)" if m.bundled else ""), str(m.path)) for m in list_models()]


def fill_model_combo(combo, select: str | None = None) -> None:
    """Fill a QComboBox with the registry's models (item data = path), keeping or setting the choice.
    ``currentIndexChanged`` is emitted only when the chosen model changed: refreshing the list (or a
    fine-tune registering a model) must not reset the threshold of the open session."""
    before = combo.currentData() if combo.count() else object()
    keep = select or combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    choices = model_choices()
    for label, path in choices:
        combo.addItem(label, path)
    if not choices:
        combo.addItem("No trained model installed", None)
    if keep:
        index = combo.findData(str(keep))
        if index < 0 and Path(str(keep)).is_dir():
            combo.addItem(Path(str(keep)).name, str(keep))
            index = combo.count() - 1
        if index >= 0:
            combo.setCurrentIndex(index)
    combo.blockSignals(False)
    if combo.currentData() != before:
        combo.currentIndexChanged.emit(combo.currentIndex())

