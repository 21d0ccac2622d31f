"""The review state of a segmented frame stack, headless (numpy and the core only, no Qt or napari).

A :class:`ReviewSession` holds, for the ``n`` frames of one source (a video, an image folder, a
single image or an in-memory stack):

* ``masks``        uint8 ``n×H×W`` (0 background, non-zero polyp) — the napari Labels layer shows
                   this very array, so painting in napari edits the session in place;
* ``status``       one of ``unreviewed`` / ``accepted`` / ``corrected`` / ``empty`` per frame;
* ``probability``, ``depth``  the model's maps (see *Memory* below), allocated on the first prediction;
* ``scores``       the review priority of each predicted frame (see *Uncertainty*), and its parts.

Rules
-----
* **Reviewed frames are the user's.** Model output (a new prediction or a new threshold) only
  changes the masks of *unreviewed* frames; accepted, corrected and empty frames keep their masks.
  Painting on any frame marks it ``corrected``; "mark empty" clears the mask; "reset" goes back to
  the model's proposal at the current threshold.
* **Thresholding** is :func:`napari_depthpolyp.engine.apply_threshold` (``prob >= t``, then, with
  ``min_region`` > 0, without the marked regions smaller than that share of the frame) on the
  stored probability, never a new network run.
* **Memory.** Probability and depth are stored as float32 while both stacks fit in
  ``DEPTHPOLYP_FLOAT_MAPS_MB`` (default 512 MB); larger stacks store them as uint8 quantised with a
  step of 1/255 (``q = round(p·255)``, read back as ``q/255``; thresholds then act on the quantised
  value, an error of at most 1/510). The ``n×H×W`` arrays are allocated with ``np.zeros`` (lazily
  committed pages), so only predicted frames use memory. When masks, probability and depth of the
  whole stack would take more than the session memory budget (``DEPTHPOLYP_SESSION_RAM_MB``, default
  half the memory available when the session starts), they are kept in an anonymous temporary file
  under ``cache_dir()/scratch`` instead (``np.memmap``, sparse: only predicted frames take disk; the
  file is gone when the session is), so a long video does not run the machine out of memory. A
  session that fits in neither is refused with the figures (segment a frame range instead).
* **Uncertainty** (higher = look first) is :func:`napari_depthpolyp.metrics.uncertainty_score`
  computed on a thumbnail of the probability (longest side ≤ ``THUMB`` px, strided): mean binary
  entropy, entropy along the mask boundary and, when ``temporal`` is on and the neighbouring frames
  are predicted, disagreement with frames ``i-1`` and ``i+1``. The parts are kept for display.

Autosave and resume
-------------------
:meth:`ReviewSession.save` writes to a sidecar folder, ``<source>.depthpolyp/`` beside the source
(or under ``user_dir()/sessions`` when the source's folder is not writable or the frames have no
file), or any folder given::

    session.json        format, source (path, n_frames, frame_shape), threshold, min_region, the models that
                        proposed masks, and every frame that is not unreviewed:
                        {"12": {"status": "corrected", "name": "cju0qkwl35piu0993l0dewei2",
                                "mask": "masks/000012.png", "mask_digest": ..., "model": 0}}
    masks/NNNNNN.png    0/255 mask of every accepted or corrected frame

Every file is written atomically (temporary file, then rename); masks are written before the
session.json that names them, and only masks that changed since the last save are rewritten.
Nothing is written for a session without any reviewed frame. :meth:`ReviewSession.load` restores
statuses and masks (the probability maps are not saved: run the model again for unreviewed frames).
A session of an image folder whose files changed (another frame under a saved index) is refused,
never restored onto the wrong frames; a mask file edited outside napari is restored with a warning.

Export
------
:meth:`ReviewSession.export_plan` + :func:`iter_export` write the reviewed frames (images, masks,
optional depth, provenance) through :class:`napari_depthpolyp.dataset.DatasetWriter`, the format the
trainer reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .engine import apply_threshold
from .metrics import check_min_region, drop_small_regions
from .metrics import boundary_uncertainty, combine_uncertainty, mean_binary_entropy, temporal_disagreement

__all__ = [
    "STATUSES",
    "ExportItem",
    "Prediction",
    "ReviewError",
    "ReviewSession",
    "choose_map_dtype",
    "decode_map",
    "encode_map",
    "export_frames",
    "find_sidecar",
    "frame_digest",
    "identity",
    "frame_name",
    "iter_export",
    "iter_predictions",
    "sidecar_for",
    "thumbnail",
]

STATUSES = ("unreviewed", "accepted", "corrected", "empty")
UNREVIEWED, ACCEPTED, CORRECTED, EMPTY = range(4)
_WITH_MASK = (ACCEPTED, CORRECTED)  # statuses whose mask is kept in the sidecar
FORMAT = "depthpolyp-review"
VERSION = 1
SESSION_FILE = "session.json"
SIDECAR_SUFFIX = ".depthpolyp"
THUMB = 128
_DEFAULT_FLOAT_MAPS_MB = 512
UNDO_ACCEPTS = 100  # accepts that undo_accept can take back
_DISK_MARGIN = 1.1  # a session kept on disk leaves this much of its size free on that disk


class ReviewError(ValueError):
    """A session folder that cannot be read or does not belong to the frames at hand."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- maps
def choose_map_dtype(n_frames: int, frame_shape: Sequence[int], budget_mb: float | None = None) -> np.dtype:
    """float32 when probability + depth of the whole stack fit in the budget, else uint8 (1/255 steps)."""
    if budget_mb is None:
        budget_mb = float(os.environ.get("DEPTHPOLYP_FLOAT_MAPS_MB", _DEFAULT_FLOAT_MAPS_MB))
    nbytes = 2 * 4 * int(n_frames) * int(np.prod(frame_shape))
    return np.dtype(np.float32) if nbytes <= budget_mb * 2**20 else np.dtype(np.uint8)


def session_bytes(n_frames: int, frame_shape: Sequence[int], map_dtype) -> int:
    """Bytes of a session's masks (uint8) plus its probability and depth maps, every frame predicted."""
    return int(n_frames) * int(np.prod(frame_shape)) * (1 + 2 * np.dtype(map_dtype).itemsize)


def session_ram_budget_mb() -> float:
    """MB of memory a session's arrays may take before they go to a temporary file on disk:
    ``DEPTHPOLYP_SESSION_RAM_MB``, else half the memory available now."""
    env = os.environ.get("DEPTHPOLYP_SESSION_RAM_MB")
    if env:
        return float(env)
    import psutil

    return psutil.virtual_memory().available / 2**20 / 2


class _Storage:
    """Allocates a session's ``n×H×W`` arrays in memory (``np.zeros``) or, when they would not fit
    in the memory budget, in one anonymous temporary file per array under ``cache_dir()/scratch``."""

    def __init__(self, n_frames: int, frame_shape: Sequence[int], map_dtype, name: str):
        from .paths import cache_dir

        need = session_bytes(n_frames, frame_shape, map_dtype)
        budget = session_ram_budget_mb() * 2**20
        self.on_disk = need > budget
        self.folder = cache_dir() / "scratch"
        if self.on_disk:
            import shutil

            self.folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.folder).free
            if free < need * _DISK_MARGIN:
                gb = 2**30
                raise ReviewError(
                    f"{name}: {n_frames} frames of {frame_shape[1]}×{frame_shape[0]} need {need / gb:.1f} GB for "
                    f"their masks, probability and depth: more than the {budget / gb:.1f} GB of memory this session "
                    f"may take and the {free / gb:.1f} GB free in {self.folder}. Open or segment a shorter "
                    "frame range (or set DEPTHPOLYP_SESSION_RAM_MB)."
                )

    def zeros(self, shape: Sequence[int], dtype) -> np.ndarray:
        if not self.on_disk:
            return np.zeros(tuple(shape), dtype)
        import tempfile

        with tempfile.TemporaryFile(dir=self.folder, prefix="session-") as f:  # gone once unmapped
            return np.memmap(f, dtype=dtype, mode="w+", shape=tuple(shape))


def encode_map(values: np.ndarray, dtype) -> np.ndarray:
    """A float map in [0, 1] in the storage dtype (uint8: ``round(v·255)``)."""
    values = np.asarray(values, dtype=np.float32)
    if np.dtype(dtype) == np.uint8:
        return np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    return values


def decode_map(stored: np.ndarray) -> np.ndarray:
    """A stored map back as float32 in [0, 1]."""
    stored = np.asarray(stored)
    if stored.dtype == np.uint8:
        return stored.astype(np.float32) / np.float32(255.0)
    return stored.astype(np.float32, copy=False)


def threshold_map(stored: np.ndarray, threshold: float, min_region: float = 0.0) -> np.ndarray:
    """``apply_threshold(decode_map(stored), threshold, min_region)`` without decoding: a uint8 map
    is compared with the first stored level that passes (the same result, bit for bit, several times
    faster: re-thresholding a long video runs on napari's thread)."""
    stored = np.asarray(stored)
    if stored.dtype == np.uint8:
        passes = apply_threshold(np.arange(256, dtype=np.float32) / np.float32(255.0), threshold)
        first = int(np.argmax(passes)) if passes.any() else 256  # monotone: every level above passes too
        return drop_small_regions(stored >= first if first < 256 else np.zeros(stored.shape, bool), min_region)
    return apply_threshold(stored.astype(np.float32, copy=False), threshold, min_region)


def thumbnail(prob: np.ndarray, size: int = THUMB) -> np.ndarray:
    """A strided float32 copy of a probability map whose longest side is at most ``size``."""
    prob = decode_map(prob)
    step = max(1, int(np.ceil(max(prob.shape) / size)))
    return np.ascontiguousarray(prob[::step, ::step])


# ----------------------------------------------------------------------------- predictions
@dataclass
class Prediction:
    """One predicted frame, ready to be stored: maps in the session's storage dtype, a thumbnail
    and, when computed where the prediction was made (the worker thread, not napari's), the
    frame's own uncertainty parts: ``entropy`` and ``boundary`` at ``threshold``."""

    index: int
    probability: np.ndarray
    depth: np.ndarray
    thumb: np.ndarray
    entropy: float | None = None
    boundary: float | None = None
    threshold: float | None = None

    @classmethod
    def scored(cls, index: int, probability: np.ndarray, depth: np.ndarray, map_dtype, threshold: float | None) -> "Prediction":
        thumb = thumbnail(probability)
        entropy = boundary = None
        if threshold is not None:
            entropy, boundary = mean_binary_entropy(thumb), boundary_uncertainty(thumb, threshold)
        return cls(index, encode_map(probability, map_dtype), encode_map(depth, map_dtype), thumb, entropy, boundary, threshold)


def iter_predictions(
    predictor, data, indices: Iterable[int] | None, map_dtype, source: str = "stack", threshold: float | None = None
) -> Iterator[list[Prediction]]:
    """The compute generator behind the segment widget (it runs in a worker thread): one list of
    :class:`Prediction` per batch of :meth:`Predictor.iter_predict`, so a consumer can stop it
    between batches and show results as they come. With ``threshold`` each frame's own
    uncertainty parts are computed here too, leaving the GUI thread only the neighbour term."""
    for batch in predictor.iter_predict(data, indices, source=source):
        yield [Prediction.scored(r.index, r.probability, r.depth, map_dtype, threshold) for r in batch]


# ----------------------------------------------------------------------------- sidecar folders
def _safe(name: str) -> str:
    name = re.sub(r'[^\w.+\- ]+', "_", str(name)).strip(" .") or "frames"
    return name[:120].rstrip(" .")  # cut, it may end in a space or a dot, which no file name may


def _fallback_folder(source: Path | None, name: str) -> Path:
    from .paths import user_dir

    if source is None:
        return user_dir() / "sessions" / f"{_safe(name)}{SIDECAR_SUFFIX}"
    digest = hashlib.sha1(str(source.resolve()).encode("utf-8")).hexdigest()[:10]
    return user_dir() / "sessions" / f"{_safe(source.name)}-{digest}{SIDECAR_SUFFIX}"


def sidecar_for(source: str | os.PathLike | None, name: str = "frames", *, beside: bool = True) -> Path:
    """Where a session of ``source`` autosaves: ``<source>.depthpolyp`` beside it when that folder
    is writable (and ``beside``), else a folder under ``user_dir()/sessions`` (also for frames
    without a file, keyed by ``name``)."""
    if not source:
        return _fallback_folder(None, name)
    source = Path(source)
    if not beside:
        return _fallback_folder(source, name)
    folder = source.parent / f"{source.name}{SIDECAR_SUFFIX}"
    if folder.is_dir() or os.access(source.parent, os.W_OK):
        return folder
    return _fallback_folder(source, name)


def _chosen_folders() -> Path:
    from .paths import user_dir

    return user_dir() / "sessions" / "chosen-folders.json"


def _source_key(source: str | os.PathLike | None, name: str) -> str:
    return str(Path(source).resolve()) if source else f"name:{name}"


def _read_chosen() -> dict[str, str]:
    try:
        data = json.loads(_chosen_folders().read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def remember_folder(source: str | os.PathLike | None, name: str, folder: str | os.PathLike) -> None:
    """Note that the session of ``source`` now autosaves to ``folder`` ("Save to…"), so that
    :func:`find_sidecar` offers it when the source is opened again."""
    from .io.atomic import write_json

    chosen = _read_chosen()
    chosen[_source_key(source, name)] = str(Path(folder).resolve())
    write_json(_chosen_folders(), chosen)


def identity(source: str | os.PathLike | None, name: str, content_key: str | None = None) -> str:
    """What names a session's frames where a file does not: the layer's name, plus a digest of its
    content for frames with no file (see :func:`frame_digest`). The sidecar functions take it as
    their ``name``."""
    return name if source or not content_key else f"{name}-{content_key}"


def frame_digest(frame: np.ndarray) -> str:
    """A short digest of a frame's pixels and shape: tells apart two unsaved layers of one name."""
    frame = np.ascontiguousarray(frame)
    h = hashlib.blake2b(repr((frame.shape, frame.dtype.str)).encode(), digest_size=5)
    h.update(frame.tobytes())
    return h.hexdigest()


def _holds_session_of(folder: Path, source: str | os.PathLike | None, name: str) -> bool:
    """Whether ``folder/session.json`` is a session of the same frames (same source file, or the same
    name for frames without one)."""
    try:
        src = json.loads((folder / SESSION_FILE).read_text(encoding="utf-8")).get("source") or {}
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(src, dict):
        return False
    if source:
        return bool(src.get("path")) and _source_key(src["path"], name) == _source_key(source, name)
    return not src.get("path") and identity(None, str(src.get("name")), src.get("content_key")) == name


def session_folder_in(chosen: str | os.PathLike, source: str | os.PathLike | None, name: str) -> Path:
    """Where "Save to…" puts a session when the user picks ``chosen``: the folder itself when it is
    empty (or missing) or already holds this source's session, else ``<source name>.depthpolyp``
    inside it, so that a session never writes its ``masks/`` and ``session.json`` among other
    files (a data set's own ``masks/``, say). Raises ReviewError when that folder too holds
    something else."""
    chosen = Path(chosen)
    inner = chosen / f"{_safe(Path(source).name if source else name)}{SIDECAR_SUFFIX}"
    for folder in (chosen, inner):
        if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
            return folder
        if folder.is_dir() and _holds_session_of(folder, source, name):
            return folder
    raise ReviewError(f"{chosen}: holds other files, and so does {inner.name} in it; choose an empty folder")


def move_session_aside(folder: str | os.PathLike) -> Path:
    """Keep a session the user chose not to resume as a dated copy, and return where it went: a
    ``*.depthpolyp`` folder is renamed whole; in any other folder only the session's own files
    (``session.json`` and ``masks/``) move, into ``session.old-<time>`` inside it, so nothing
    else that lives there is touched."""
    folder = Path(folder)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if folder.name.endswith(SIDECAR_SUFFIX):
        aside = folder.with_name(f"{folder.name}.old-{stamp}")
        folder.rename(aside)
        return aside
    aside = folder / f"session.old-{stamp}"
    aside.mkdir()
    for part in (SESSION_FILE, "masks"):
        if (folder / part).exists():
            (folder / part).rename(aside / part)
    return aside


def find_sidecar(source: str | os.PathLike | None, name: str = "frames") -> Path | None:
    """An existing session folder of ``source``: the folder chosen with "Save to…", else beside it
    or in the fallback place; None if there is none."""
    candidates = [_fallback_folder(None, name)] if not source else [
        Path(source).parent / f"{Path(source).name}{SIDECAR_SUFFIX}", _fallback_folder(Path(source), name)
    ]
    chosen = _read_chosen().get(_source_key(source, name))
    if chosen:
        candidates.insert(0, Path(chosen))
    for folder in candidates:
        if (folder / SESSION_FILE).is_file():
            return folder
    return None


def frame_name(i: int, n: int, *, source=None, name: str = "frames", frame_names: Sequence[str] | None = None) -> str:
    """A file-name stem for frame ``i`` of ``n``: the frame's own name when known (image folders),
    the file's stem for a single image, else ``<source stem or name>_<index:06d>``."""
    if frame_names is not None:
        return _safe(frame_names[i])
    stem = _safe(Path(source).stem if source else name)
    return stem if n == 1 and source else f"{stem}_{int(i):06d}"


def _mask_digest(mask: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(mask != 0).tobytes(), digest_size=16).hexdigest()


# ----------------------------------------------------------------------------- the session
class ReviewSession:
    """Review state of ``n_frames`` frames of size ``frame_shape`` (H, W). See the module docstring."""

    def __init__(
        self,
        n_frames: int,
        frame_shape: Sequence[int],
        *,
        source: str | os.PathLike | None = None,
        name: str = "frames",
        folder: str | os.PathLike | None = None,
        beside: bool = True,
        threshold: float = 0.5,
        min_region: float = 0.0,
        map_dtype=None,
        temporal: bool = True,
        frame_names: Sequence[str] | None = None,
        content_key: str | None = None,
    ):
        if n_frames < 1 or len(frame_shape) != 2:
            raise ReviewError(f"a session needs at least one frame of shape (H, W), got {n_frames} × {tuple(frame_shape)}")
        self.n = int(n_frames)
        self.shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.source = str(source) if source else None
        self.name = str(name)
        # frames with no file are told apart by their name and their content (content_key, e.g.
        # frame_digest of the first frame): two unsaved layers called "Image" never share a session
        self.content_key = str(content_key) if content_key and not self.source else None
        self.folder = Path(folder) if folder else sidecar_for(self.source, self.ident, beside=beside)
        self.threshold = float(threshold)
        self.min_region = check_min_region(min_region)  # proposals drop marked regions smaller than this
        self.temporal = bool(temporal)
        self.frame_names = list(frame_names) if frame_names is not None else None
        self.map_dtype = np.dtype(map_dtype) if map_dtype is not None else choose_map_dtype(self.n, self.shape)
        self.storage = _Storage(self.n, self.shape, self.map_dtype, self.source or self.name)
        self.status = np.zeros(self.n, np.uint8)
        self.masks = self.storage.zeros((self.n, *self.shape), np.uint8)
        self.predicted = np.zeros(self.n, bool)
        self.probability: np.ndarray | None = None
        self.depth: np.ndarray | None = None
        self.models: list[dict[str, Any]] = []  # provenance of each model that proposed masks
        self.frame_model = np.full(self.n, -1, np.int16)  # the model whose proposal the frame's mask is
        # the threshold and smallest region that proposal was cut at, fixed when the frame is reviewed
        self.frame_cut: dict[int, tuple[float, float]] = {}
        self.entropy = np.full(self.n, np.nan, np.float32)
        self.boundary = np.full(self.n, np.nan, np.float32)
        self.disagreement = np.full(self.n, np.nan, np.float32)
        self.scores = np.full(self.n, np.nan, np.float32)
        self.created = _now()
        self.load_warnings: list[str] = []
        self.resumed = False  # read back by load(): its threshold and smallest region are the user's
        self._thumbs: dict[int, np.ndarray] = {}
        self._saved: dict[int, str] = {}  # frame -> digest of the mask last written
        self._edited: set[int] = set()  # frames painted in this session (undo may change them at any time)
        self._cleared: set[int] = set()  # frames whose mask a review action replaced (undo may bring it back)
        self._unsaved: set[int] = set()  # frames changed through this API since the last save
        self._accepts: list[tuple[int, int]] = []  # (frame, status before) of recent accepts, for undo_accept
        self.pending: set[int] = set()  # unreviewed frames still to re-threshold (set_threshold(defer=True))
        self._dirty = False

    # -- status ---------------------------------------------------------------------------------
    def status_of(self, i: int) -> str:
        return STATUSES[self.status[self._check(i)]]

    def counts(self) -> dict[str, int]:
        found = np.bincount(self.status, minlength=len(STATUSES))
        return {s: int(found[k]) for k, s in enumerate(STATUSES)}

    @property
    def reviewed(self) -> int:
        return int(np.count_nonzero(self.status != UNREVIEWED))

    def _check(self, i: int) -> int:
        i = int(i)
        if not 0 <= i < self.n:
            raise IndexError(f"frame {i} is outside 0..{self.n - 1}")
        return i

    def _set(self, i: int, code: int) -> None:
        if self.status[i] != code:
            if self.status[i] == UNREVIEWED:  # the proposal as it was cut when the user judged it
                self.frame_cut[i] = (self.threshold, self.min_region)
            elif code == UNREVIEWED:
                self.frame_cut.pop(i, None)
            self.status[i] = code
            self._dirty = True

    def mark_corrected(self, i: int) -> None:
        """The user edited frame ``i`` (painting, erasing, filling)."""
        i = self._check(i)
        self._edited.add(i)
        self._unsaved.add(i)
        self._set(i, CORRECTED)

    def accept(self, i: int) -> None:
        """The proposal of frame ``i`` is right. A corrected frame stays corrected."""
        i = self._check(i)
        if self.status[i] != CORRECTED:
            if self.status[i] != ACCEPTED:
                self._accepts = [*self._accepts[-(UNDO_ACCEPTS - 1):], (i, int(self.status[i]))]
            self._unsaved.add(i)
            self._set(i, ACCEPTED)

    def undo_accept(self) -> int | None:
        """Take back the most recent accept whose frame is still accepted (an accept is the one review
        action that changes no mask, so napari's Ctrl+Z cannot undo it): the frame gets its status
        from before. Returns the frame, or None if there is no accept to take back."""
        while self._accepts:
            i, before = self._accepts.pop()
            if self.status[i] == ACCEPTED:
                self._unsaved.add(i)
                self._set(i, before)
                if before == UNREVIEWED:  # a proposal again: the one at the current threshold
                    self.masks[i] = self.proposal(i)
                    self.pending.discard(i)
                return i
        return None

    def mark_empty(self, i: int) -> None:
        """Frame ``i`` shows no polyp: its mask is cleared (the viewer does it through napari's
        history, so Ctrl+Z brings the mask back; :meth:`reconcile` then makes it "corrected")."""
        i = self._check(i)
        self.masks[i] = 0
        self._cleared.add(i)
        self._unsaved.add(i)
        self._set(i, EMPTY)

    def reset(self, i: int) -> None:
        """Back to unreviewed, with the model's proposal at the current threshold (or an empty mask)."""
        i = self._check(i)
        self.masks[i] = self.proposal(i)
        self.pending.discard(i)  # up to date now, and never overwritten later (an undo may bring a correction back)
        self._edited.discard(i)
        self._cleared.add(i)
        self._unsaved.add(i)
        self._set(i, UNREVIEWED)

    def reconcile(self) -> list[int]:
        """Frames whose mask no longer fits their status after an undo in the viewer (napari's undo
        changes a mask without any event): an "empty" frame with polyp pixels, or an unreviewed
        frame whose mask is not the model's proposal, is "corrected" again. Returns those frames."""
        def undone(i: int) -> bool:
            if self.status[i] == EMPTY:
                return bool(self.masks[i].any())
            return self.status[i] == UNREVIEWED and not np.array_equal(self.masks[i] != 0, self.proposal(i) != 0)

        fixed = [i for i in sorted(self._cleared) if undone(i)]
        for i in fixed:
            self.mark_corrected(i)
        return fixed

    # -- predictions and threshold --------------------------------------------------------------
    def allocate_maps(self) -> None:
        """Allocate the probability and depth stores (zeros until frames are predicted)."""
        if self.probability is None:
            self.probability = self.storage.zeros((self.n, *self.shape), self.map_dtype)
            self.depth = self.storage.zeros((self.n, *self.shape), self.map_dtype)

    def add_model(self, provenance: dict[str, Any]) -> int:
        """Register the provenance of a model (or return the index of the same one)."""
        prov = {k: v for k, v in provenance.items() if k not in ("threshold", "min_region", "path")}
        for k, known in enumerate(self.models):
            if known == prov:
                return k
        self.models.append(prov)
        self._dirty = True
        return len(self.models) - 1

    def add_predictions(self, predictions: Iterable[Prediction], model: int = -1) -> list[int]:
        """Store predictions; the masks of unreviewed frames become the proposals. Returns the
        indices stored. ``model``: index from :meth:`add_model`."""
        self.allocate_maps()
        done = []
        for p in predictions:
            i = self._check(p.index)
            if p.probability.shape != self.shape:
                raise ReviewError(f"frame {i}: prediction of shape {p.probability.shape}, session frames are {self.shape}")
            self.probability[i] = p.probability
            self.depth[i] = p.depth
            self._thumbs[i] = p.thumb
            self.entropy[i] = mean_binary_entropy(p.thumb) if p.entropy is None else p.entropy
            self.boundary[i] = (p.boundary if p.boundary is not None and p.threshold == self.threshold
                                else boundary_uncertainty(p.thumb, self.threshold))
            self.predicted[i] = True
            if self.status[i] == UNREVIEWED:  # a reviewed frame keeps its mask, and so whose proposal it was
                self.frame_model[i] = model
                self.masks[i] = threshold_map(p.probability, self.threshold, self.min_region)
            self.pending.discard(i)
            done.append(i)
        self._rescore({j for i in done for j in (i - 1, i, i + 1)})
        return done

    def proposal(self, i: int) -> np.ndarray:
        """The model's mask of frame ``i`` at the current threshold (all zeros if not predicted)."""
        i = self._check(i)
        if not self.predicted[i]:
            return np.zeros(self.shape, np.uint8)
        return threshold_map(self.probability[i], self.threshold, self.min_region).astype(np.uint8)

    def set_threshold(self, threshold: float, min_region: float | None = None, defer: bool = False) -> list[int]:
        """Re-threshold the stored probability of every *unreviewed* predicted frame (reviewed frames
        keep their masks) and re-rank; ``min_region`` (default: unchanged) also sets the smallest
        region the proposals keep. Returns the frames whose mask is recomputed. With ``defer``, only
        the frames a review action replaced are recomputed now (so that :meth:`reconcile` never
        compares a stale mask); the others wait in :attr:`pending` for :meth:`rethreshold_pending`,
        which the viewer calls a few at a time so that a long video never freezes it."""
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        min_region = self.min_region if min_region is None else check_min_region(min_region)
        if threshold != self.threshold or min_region != self.min_region:
            self._dirty = True
        self.threshold, self.min_region = threshold, min_region
        frames = [int(i) for i in np.flatnonzero(self.predicted & (self.status == UNREVIEWED))]
        self.pending = {i for i in frames if i not in self._cleared} if defer else set()
        for i in frames:
            if i not in self.pending:
                self.masks[i] = self.proposal(i)
        self._rescore(self._thumbs.keys(), boundary=True)
        return frames

    def rethreshold_pending(self, count: int, first: Iterable[int] = ()) -> list[int]:
        """Re-threshold up to ``count`` of the :attr:`pending` frames, those in ``first`` (the frame
        on screen) before the others, skipping any reviewed meanwhile. Returns the frames done."""
        order = [i for i in first if i in self.pending]
        for i in sorted(self.pending):
            if len(order) >= count:
                break
            if i not in order:
                order.append(i)
        done = []
        for i in order[:count]:
            self.pending.discard(i)
            if self.status[i] == UNREVIEWED:
                self.masks[i] = self.proposal(i)
                done.append(i)
        return done

    def depth_of(self, i: int) -> np.ndarray | None:
        i = self._check(i)
        return decode_map(self.depth[i]) if self.predicted[i] else None

    # -- uncertainty ----------------------------------------------------------------------------
    def _rescore(self, frames: Iterable[int], *, boundary: bool = False) -> None:
        """Recompute the neighbour term and the score of ``frames`` (a frame's entropy is stored
        when it is predicted; its boundary term too, and again here when ``boundary``: the
        threshold changed)."""
        for i in sorted(frames):
            thumb = self._thumbs.get(i)
            if thumb is None:
                continue
            neighbours = [self._thumbs[j] for j in (i - 1, i + 1) if self.temporal and j in self._thumbs]
            if boundary:
                self.boundary[i] = boundary_uncertainty(thumb, self.threshold)
            self.disagreement[i] = temporal_disagreement(thumb, neighbours) if neighbours else np.nan
            self.scores[i] = combine_uncertainty(self.entropy[i], self.boundary[i], self.disagreement[i])

    def ranking(self, *, unreviewed_only: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
        """Predicted frames from most to least uncertain: index, score, its parts and the status."""
        ok = ~np.isnan(self.scores)
        if unreviewed_only:
            ok &= self.status == UNREVIEWED
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((idx, -self.scores[idx]))]
        if limit is not None:
            order = order[:limit]
        return [
            {
                "index": int(i),
                "score": float(self.scores[i]),
                "entropy": float(self.entropy[i]),
                "boundary": float(self.boundary[i]),
                "temporal": None if np.isnan(self.disagreement[i]) else float(self.disagreement[i]),
                "status": STATUSES[self.status[i]],
            }
            for i in order
        ]

    # -- navigation -----------------------------------------------------------------------------
    def _unreviewed_from(self, current: int, step: int) -> int | None:
        todo = np.flatnonzero(self.status == UNREVIEWED)
        if todo.size == 0:
            return None
        if step > 0:
            after = todo[todo > current]
            return int(after[0] if after.size else todo[0])
        before = todo[todo < current]
        return int(before[-1] if before.size else todo[-1])

    def next_unreviewed(self, current: int) -> int | None:
        """The next unreviewed frame after ``current`` (wrapping around), None when all are reviewed."""
        return self._unreviewed_from(int(current), +1)

    def prev_unreviewed(self, current: int) -> int | None:
        return self._unreviewed_from(int(current), -1)

    def next_most_uncertain(self, current: int | None = None) -> int | None:
        """The most uncertain unreviewed frame; from a frame of that ranking, the one after it."""
        order = [r["index"] for r in self.ranking(unreviewed_only=True)]
        if not order:
            return None
        if current is not None and int(current) in order:
            return order[(order.index(int(current)) + 1) % len(order)]
        return order[0]

    # -- names ----------------------------------------------------------------------------------
    def frame_name(self, i: int) -> str:
        """A file-name stem for frame ``i`` (see :func:`frame_name`)."""
        return frame_name(self._check(i), self.n, source=self.source, name=self.name, frame_names=self.frame_names)

    # -- autosave -------------------------------------------------------------------------------
    @property
    def ident(self) -> str:
        """The name its sidecar folder goes by (:func:`identity`)."""
        return identity(self.source, self.name, self.content_key)

    def to_json(self, digests: dict[int, str] | None = None) -> dict[str, Any]:
        digests = self._saved if digests is None else digests
        frames = {}
        for i in np.flatnonzero(self.status != UNREVIEWED):
            i = int(i)
            entry: dict[str, Any] = {"status": STATUSES[self.status[i]], "name": self.frame_name(i)}
            if self.status[i] in _WITH_MASK:
                entry["mask"] = f"masks/{i:06d}.png"
                if i in digests:
                    entry["mask_digest"] = digests[i]
            if self.frame_model[i] >= 0:
                entry["model"] = int(self.frame_model[i])
            if i in self.frame_cut:
                entry["threshold"], entry["min_region"] = self.frame_cut[i]
            frames[str(i)] = entry
        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "saved": _now(),
            "source": {"path": self.source, "name": self.name, "content_key": self.content_key,
                       "n_frames": self.n, "frame_shape": list(self.shape)},
            "threshold": self.threshold,
            "min_region": self.min_region,
            "temporal": self.temporal,
            "models": self.models,
            "counts": self.counts(),
            "frames": frames,
        }

    def _to_hash(self, rehash: bool) -> set[int]:
        """Frames whose mask may differ from its saved copy: those changed through this API since
        the last save and, with ``rehash``, every frame painted in this session (napari's undo and
        redo change a painted mask without any event)."""
        return self._unsaved | self._edited if rehash else self._unsaved

    @property
    def needs_save(self) -> bool:
        """Whether the sidecar is behind: a status/threshold change, or a mask that differs from its
        saved copy (hashing only the frames :meth:`_to_hash` names)."""
        if self._dirty:
            return True
        return any(self._saved.get(i) != _mask_digest(self.masks[i]) for i in self._to_hash(True) if self.status[i] in _WITH_MASK)

    def save(self, folder: str | os.PathLike | None = None, *, force: bool = False, rehash: bool = True) -> bool:
        """Write what changed since the last save (see the module docstring). Returns True if
        anything was written. Only masks that may have changed are hashed: the frames changed
        through this API since the last save and, with ``rehash`` (the default), every frame painted
        in this session, which an undo in napari may have changed without an event. The viewer
        passes ``rehash=False`` when the layer's history shows no undo or redo since the last save.
        A ``folder`` that cannot be written raises and leaves the session saving where it was."""
        moved = folder is not None and Path(folder) != self.folder
        if not moved:
            return self._write(force, rehash)
        before = self.folder, self._saved, self._dirty
        self.folder, self._saved, self._dirty = Path(folder), {}, True
        try:
            wrote = self._write(force, rehash)
        except BaseException:  # "Save to…" failed: keep autosaving where the session was
            self.folder, self._saved, self._dirty = before
            raise
        if wrote:
            remember_folder(self.source, self.ident, self.folder)
        return wrote

    def _write(self, force: bool, rehash: bool) -> bool:
        from .io.atomic import write_json
        from .io.writers import write_mask_png

        if not force and self.reviewed == 0 and not (self.folder / SESSION_FILE).is_file():
            return False  # nothing worth keeping yet: do not litter the source's folder
        if self._saved and not (self.folder / SESSION_FILE).is_file():
            self._saved = {}  # the folder was deleted or emptied meanwhile: write every mask again
        wrote = False
        keep: dict[int, str] = {}
        hash_again = self._to_hash(rehash)
        for i in np.flatnonzero(np.isin(self.status, _WITH_MASK)):
            i = int(i)
            old = self._saved.get(i)
            if old is not None and i not in hash_again:
                keep[i] = old
                continue
            digest = _mask_digest(self.masks[i])
            path = self.folder / "masks" / f"{i:06d}.png"
            if digest != old or not path.is_file():
                write_mask_png(path, self.masks[i] != 0)
                wrote = True
            keep[i] = digest
        stale = set(self._saved) - set(keep)
        if wrote or stale or self._dirty or force:
            write_json(self.folder / SESSION_FILE, self.to_json(keep))
            wrote = True
            for i in stale:
                (self.folder / "masks" / f"{i:06d}.png").unlink(missing_ok=True)
        self._saved = keep
        self._dirty = False
        self._unsaved = set()
        return wrote

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        *,
        expect: tuple[int, Sequence[int]] | None = None,
        **kwargs,
    ) -> "ReviewSession":
        """Read a session folder. ``expect=(n_frames, (H, W))`` refuses a session of other frames.
        Frames whose mask file is missing or unreadable come back unreviewed, listed in
        ``load_warnings``. ``kwargs`` go to the constructor (e.g. ``map_dtype``, ``frame_names``)."""
        from .io.images import read_mask

        folder = Path(folder)
        path = folder / SESSION_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ReviewError(f"{path}: cannot read the review session ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ReviewError(f"{path} is not a {FORMAT} session")
        if data.get("version") != VERSION:
            raise ReviewError(f"{path}: session version {data.get('version')!r}; this version reads {VERSION}")
        src = data.get("source") or {}
        try:
            n, shape = int(src["n_frames"]), tuple(int(v) for v in src["frame_shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ReviewError(f"{path}: the source entry lacks n_frames / frame_shape") from exc
        if expect is not None and (n, shape) != (int(expect[0]), tuple(int(v) for v in expect[1])):
            raise ReviewError(
                f"{path} belongs to {n} frames of {shape[1]}×{shape[0]} px, not to these "
                f"{expect[0]} frames of {expect[1][1]}×{expect[1][0]} px"
            )
        kwargs.setdefault("source", src.get("path"))
        kwargs.setdefault("name", src.get("name") or "frames")
        kwargs.setdefault("content_key", src.get("content_key"))
        try:
            threshold = float(data.get("threshold", 0.5))
            min_region = check_min_region(data.get("min_region", 0.0))
        except (TypeError, ValueError) as exc:
            raise ReviewError(f"{path}: its threshold or smallest region is not valid ({exc})") from exc
        session = cls(n, shape, folder=folder, threshold=threshold, min_region=min_region,
                      temporal=bool(data.get("temporal", True)), **kwargs)
        session.resumed = True
        session.created = data.get("created", session.created)
        session.models = list(data.get("models") or [])
        entries = data.get("frames") or {}
        if session.frame_names is not None:  # an image folder: are these still the same files?
            moved = []
            for key, entry in entries.items():
                try:
                    saved, now = entry.get("name"), session.frame_name(session._check(int(key)))
                except (ValueError, IndexError, TypeError, AttributeError):
                    continue
                if saved is not None and saved != now:
                    moved.append(f"frame {int(key)} was {saved!r}, is now {now!r}")
            if moved:
                raise ReviewError(
                    f"{path} was saved for other files: {len(moved)} reviewed frames changed "
                    f"({'; '.join(moved[:3])}{'; ...' if len(moved) > 3 else ''}); the folder's "
                    "contents changed since the review was saved")
        for key, entry in entries.items():
            try:
                i = session._check(int(key))
                code = STATUSES.index(entry["status"])
            except (ValueError, KeyError, IndexError, TypeError):
                session.load_warnings.append(f"frame {key!r}: unreadable entry {entry!r}, ignored")
                continue
            if code in _WITH_MASK:
                try:
                    mask = read_mask(folder / entry.get("mask", f"masks/{i:06d}.png"))
                except Exception as exc:  # noqa: BLE001 - any unreadable file: keep the others
                    session.load_warnings.append(f"frame {i}: mask not restored ({exc}); it is unreviewed again")
                    continue
                if mask.shape != shape:
                    session.load_warnings.append(f"frame {i}: mask is {mask.shape}, frames are {shape}; ignored")
                    continue
                session.masks[i] = mask
                session._saved[i] = _mask_digest(mask)
                if entry.get("mask_digest") not in (None, session._saved[i]):
                    session.load_warnings.append(
                        f"frame {i}: {entry.get('mask')} changed outside napari since it was saved; restored as it is now")
            session.status[i] = code
            model = entry.get("model")
            if isinstance(model, int) and 0 <= model < len(session.models):
                session.frame_model[i] = model
            cut = (entry.get("threshold"), entry.get("min_region"))
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in cut):
                session.frame_cut[i] = (float(cut[0]), float(cut[1]))
        session._dirty = bool(session.load_warnings)
        return session

    # -- starting from existing masks -------------------------------------------------------------
    def import_masks(self, path: str | os.PathLike, kept: list[int] | None = None) -> list[int]:
        """Start from masks made elsewhere (an earlier annotation, another tool, this plugin's mask
        writer or a dataset's ``masks/``): a folder of masks named like the frames
        (``<frame name>.png``; a frame without one is left as it is), a multi-page mask TIFF with
        one page per frame, or one mask for a single image. The imported frames become "corrected"
        (made by a person), so that no model run overwrites them; refine them by painting. Every
        mask is checked before any is used: a wrong size or count names the file. A frame already
        reviewed (accepted, corrected or empty) keeps its mask: the user's work is never replaced by
        an import; those frames are appended to ``kept``. Returns the frames imported."""
        from .io.images import InputError, list_images, read_mask, read_mask_stack

        path = Path(path)
        try:
            if path.is_dir():
                by_stem = {f.stem.lower(): f for f in list_images(path)}
                files = {i: by_stem.get(self.frame_name(i).lower()) for i in range(self.n)}
                files = {i: f for i, f in files.items() if f is not None}
                if not files:
                    raise ReviewError(f"{path}: no mask is named like these frames (e.g. {self.frame_name(0)}.png)")
                masks = {i: (f, read_mask(f)) for i, f in files.items()}
            else:
                stack = read_mask_stack(path)
                if len(stack) != self.n:
                    raise ReviewError(f"{path}: {len(stack)} masks for {self.n} frames")
                masks = {i: (path, stack[i]) for i in range(self.n)}
        except InputError as exc:
            raise ReviewError(str(exc)) from None
        for i, (f, m) in masks.items():
            if m.shape != self.shape:
                raise ReviewError(f"{f}: the mask of frame {self.frame_name(i)} is {m.shape[1]}×{m.shape[0]} px, "
                                  f"the frames are {self.shape[1]}×{self.shape[0]} px")
        imported = []
        for i, (_, m) in sorted(masks.items()):
            if self.status[i] != UNREVIEWED:
                if kept is not None:
                    kept.append(i)
                continue
            self.masks[i] = m
            self.mark_corrected(i)
            imported.append(i)
        return imported

    # -- export ---------------------------------------------------------------------------------
    def export_plan(self, statuses: Iterable[str] = ("accepted", "corrected"), include_depth: bool = True) -> list["ExportItem"]:
        """What to export, taken on the caller's thread: statuses, provenance and a copy of each
        mask (the user's work, which may change meanwhile). Depth maps, the model's output and four
        times a mask's size, are read when each frame is written (:meth:`ExportItem.depth_map`), so
        that a long review's export neither holds them all nor stalls napari while copying them."""
        self.reconcile()
        codes = [STATUSES.index(s) for s in statuses]
        items = []
        for i in np.flatnonzero(np.isin(self.status, codes)):
            i = int(i)
            model = self.models[self.frame_model[i]] if self.frame_model[i] >= 0 else None
            threshold, min_region = self.frame_cut.get(i, (self.threshold, self.min_region))
            items.append(ExportItem(
                index=i,
                name=self.frame_name(i),
                status=STATUSES[self.status[i]],
                mask=self.masks[i] != 0,
                depth=(lambda i=i: self.depth_of(i)) if include_depth else None,
                proposed_by={**model, "threshold": threshold, "min_region": min_region} if model else None,
            ))
        return items


@dataclass
class ExportItem:
    index: int
    name: str
    status: str
    mask: np.ndarray
    depth: np.ndarray | Callable[[], np.ndarray | None] | None  # a map, or how to read it when written
    proposed_by: dict[str, Any] | None

    def depth_map(self) -> np.ndarray | None:
        return self.depth() if callable(self.depth) else self.depth


HOLDOUT_BLOCK = 8  # frames held out together: neighbouring video frames are near copies of each other


def holdout_split(
    names: Sequence[str],
    fraction: float,
    block: int = HOLDOUT_BLOCK,
    *,
    indices: Sequence[int] | None = None,
    previous: dict[str, Sequence[str]] | None = None,
) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "gap": [...]}`` of ``names`` (in frame order; ``indices``:
    their frame indices, default their positions). A frame is held out when its index falls in every
    k-th block of ``block`` neighbouring frames (k = round(1 / fraction)), so no frame is compared on
    with its near copy in training, and a frame keeps its side from one export to the next, however
    many frames around it were reviewed meanwhile. Frames next to a held-out one (index ± 1) are left
    out of both (``gap``). ``previous`` (the split of the export being replaced) keeps every name it
    lists on its side. Exports too small or sparse for the rule fall back to blocks by position;
    with two frames or more, train and val each get at least one."""
    names = list(names)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the share held out must lie strictly between 0 and 1, got {fraction}")
    if len(names) < 2:
        raise ReviewError(f"{len(names)} frame(s): too few to hold any out for comparison")
    idx = list(range(len(names))) if indices is None else [int(i) for i in indices]
    k = max(2, round(1.0 / fraction))
    val = {n for n, i in zip(names, idx) if (i // block) % k == k // 2}
    before = {n: side for side in ("train", "val") for n in (previous or {}).get(side, [])}
    val = {n for n in names if before.get(n) == "val" or (n in val and before.get(n) != "train")}
    if not val or len(val) == len(names):  # too few frames for blocks of this size: blocks by position
        small = max(1, min(block, len(names) // 4))
        chunks = [names[i : i + small] for i in range(0, len(names), small)]
        val = {n for b, chunk in enumerate(chunks) if b % k == k // 2 for n in chunk} or {chunks[-1][-1]}
    held = {i for n, i in zip(names, idx) if n in val}
    gap = {n for n, i in zip(names, idx) if n not in val and before.get(n) != "train" and (i - 1 in held or i + 1 in held)}
    if len(gap) + len(val) == len(names):  # nothing would be left to train on: no gap
        gap = set()
    return {"train": [n for n in names if n not in val and n not in gap],
            "val": [n for n in names if n in val], "gap": [n for n in names if n in gap]}


def iter_export(
    plan: Sequence[ExportItem],
    get_image: Callable[[int], np.ndarray],
    root: str | os.PathLike,
    *,
    overwrite: bool = False,
    source_file: str | None = None,
    holdout: float = 0.0,
) -> Iterator[tuple[int, int]]:
    """Write ``plan`` as a dataset folder (DatasetWriter: atomic files, manifest with provenance),
    yielding ``(done, total)`` after each frame; the generator's return value is the writer's
    report plus ``"frames"`` (the exported frame indices). With ``holdout`` > 0, that share of the
    frames, in blocks of neighbours (:func:`holdout_split`), is written to ``split.json`` as ``val``
    and the rest as ``train``: the fine-tune trains on one and compares the new model with its base
    on the other. Raises DatasetError on a non-empty folder unless ``overwrite``. Cancelled (the
    generator closed) or failed part-way, it leaves the folder as it was."""
    from .dataset import DatasetWriter

    if not plan:
        raise ReviewError("nothing to export: no frame has a status to export yet")
    if holdout and len(plan) < 2:
        raise ReviewError("one frame to export: too few to hold any out for comparison (set the share held out to 0)")
    from .dataset import SPLIT_FILE, read_splits

    # the split of the export this one replaces: its frames keep their sides
    previous = read_splits(root) if holdout and overwrite else None
    writer = DatasetWriter(root, overwrite=overwrite)
    names: set[str] = set()
    written: list[str] = []
    try:
        for done, item in enumerate(plan, 1):
            name = item.name
            while name.lower() in names:  # two frames with the same stem (never from one source)
                name = f"{name}_{item.index:06d}"
            names.add(name.lower())
            writer.add(
                name, np.asarray(get_image(item.index)), item.mask, item.depth_map(),
                source_file=source_file, frame_index=item.index, status=item.status, proposed_by=item.proposed_by,
            )
            written.append(name)
            yield done, len(plan)
        order = sorted(zip((it.index for it in plan), written))
        split = holdout_split([n for _, n in order], holdout, indices=[i for i, _ in order],
                              previous=previous) if holdout else None
    except BaseException:  # an error, or the worker cancelled (GeneratorExit): the folder is left as it was
        writer.abort()
        raise
    report = writer.close()
    from .io.atomic import write_json

    if split is not None:
        write_json(Path(root) / SPLIT_FILE, split)
        report["split"] = {k: len(v) for k, v in split.items()}
    elif overwrite:  # a replaced export's split named its frames, not these
        (Path(root) / SPLIT_FILE).unlink(missing_ok=True)
    report["frames"] = [item.index for item in plan]
    return report


def export_frames(plan: Sequence[ExportItem], get_image: Callable[[int], np.ndarray], root, **kwargs) -> dict:
    """:func:`iter_export` run to the end; returns its report."""
    gen = iter_export(plan, get_image, root, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
