"""Lazy frame stacks: T×H×W[×C] sequences that read a frame only when it is indexed.

napari and numpy treat them like arrays (``shape``, ``dtype``, ``ndim``, ``size``, ``len()``,
indexing, ``np.asarray``), but a 30-minute video or a folder of thousands of frames is never loaded
whole unless someone asks for all of it (``np.asarray(stack)`` or ``stack[:]``).
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator

import numpy as np


class FrameStack:
    """Base class: the array protocol, a small LRU of recently read frames, and a lock.

    Indexing takes the time axis first and applies the rest of the key to each frame, so
    ``stack[3, 10:20, :, 0]`` reads only frame 3. Frames are returned read-only (they may be shared
    with the cache); copy one before changing it in place.

    Attributes: ``source`` (the file or folder read), ``kind`` (``"image"``, ``"tiff-stack"``,
    ``"folder"`` or ``"video"``), ``fps`` (frames per second for videos, otherwise ``None``).
    """

    kind = "frames"
    fps: float | None = None

    def __init__(self, source: str | os.PathLike, frame_shape: tuple[int, ...], dtype, length: int, cache_size: int):
        self.source = Path(source)
        self.frame_shape = tuple(int(n) for n in frame_shape)
        self.dtype = np.dtype(dtype)
        self._length = int(length)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.RLock()

    # -- what subclasses provide -------------------------------------------------------------------
    def _read_frame(self, index: int) -> np.ndarray:
        """Read frame ``index`` (0 <= index < len) from the source."""
        raise NotImplementedError

    # -- array protocol ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self),) + self.frame_shape

    @property
    def ndim(self) -> int:
        return 1 + len(self.frame_shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if not key:
            key = (slice(None),)
        if key[0] is Ellipsis:
            explicit = sum(k is not None for k in key[1:])
            # The ellipsis swallows the time axis unless the rest of the key already names every axis.
            key = (slice(None),) + key if explicit < self.ndim else key[1:]
        if key[0] is None:
            raise IndexError("a new axis before the time axis is not supported; index the frames first")
        time_key, rest = key[0], key[1:]
        indices = self._time_indices(time_key)
        if np.ndim(indices) == 0:
            return self._frame(int(indices))[rest]
        if indices.ndim != 1:
            raise IndexError(f"the time axis takes an int, a slice or a 1-D index array, not {time_key!r}")
        frames = [self._frame(int(i))[rest] for i in indices]
        if frames:
            return np.stack(frames)
        return np.empty((0,) + np.empty(self.frame_shape, self.dtype)[rest].shape, self.dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames in order. A damaged video yields every good frame, then raises CorruptVideoError."""
        for index in range(len(self)):
            yield self._frame(index)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """Read every frame into one array (the whole video, for a video: mind the memory)."""
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.source)!r} shape={self.shape} dtype={self.dtype}>"

    # -- helpers for callers -----------------------------------------------------------------------
    def frame_name(self, index: int) -> str:
        """A file-name stem for outputs of frame ``index`` (e.g. ``clip_000042``)."""
        return f"{self.source.stem}_{self._time_indices(int(index)):06d}"

    def close(self) -> None:
        """Release open files. The stack stays usable: it reopens its source if indexed again."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------
    def _time_indices(self, key):
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"frame {key} is out of range for {self.source.name} ({n} frames)")
            return int(key) % n
        return np.arange(len(self))[key]

    def _frame(self, index: int) -> np.ndarray:
        with self._lock:
            frame = self._cache.get(index)
            if frame is not None:
                self._cache.move_to_end(index)
                return frame
            frame = self._read_frame(index)
            self._remember(index, frame)
            return frame

    def _remember(self, index: int, frame: np.ndarray) -> None:
        frame.flags.writeable = False
        self._cache[index] = frame
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class ArrayStack(FrameStack):
    """Frames already in memory: one image file (``kind="image"``, 1 frame) or a multi-page TIFF."""

    def __init__(self, frames: np.ndarray, source: str | os.PathLike, kind: str = "image"):
        frames = np.asarray(frames).view()
        frames.flags.writeable = False
        self._frames = frames
        self.kind = kind
        super().__init__(source, frames.shape[1:], frames.dtype, len(frames), cache_size=0)

    def _read_frame(self, index: int) -> np.ndarray:
        return self._frames[index]

    def frame_name(self, index: int) -> str:
        if self.kind == "image":
            self._time_indices(int(index))
            return self.source.stem
        return super().frame_name(index)
