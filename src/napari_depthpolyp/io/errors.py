"""Errors for unreadable input. Every one is an :class:`InputError` (a ``ValueError``) whose message
names the file and says what is wrong with it, so it can be shown to a user as is."""

from __future__ import annotations

import os
from pathlib import Path


class InputError(ValueError):
    """A file or folder cannot be read as frames, masks or depth maps."""


class CorruptVideoError(InputError):
    """A video stops decoding part-way: truncated (e.g. an interrupted copy) or damaged.

    ``frame_index`` is the frame that could not be decoded; ``frames_ok`` is how many frames from the
    start are known to decode (frames ``0 .. frames_ok - 1``). The video stack that raised it shrinks
    its length to ``frame_index``, so every frame before the damage stays readable.
    """

    def __init__(self, path: str | os.PathLike, frame_index: int, frames_ok: int, detail: str = ""):
        self.path = Path(path)
        self.frame_index = frame_index
        self.frames_ok = frames_ok
        self.detail = detail
        good = f"frames 0-{frames_ok - 1} decode fine" if frames_ok else "no earlier frame was checked"
        message = f"{self.path}: video is truncated or corrupt: frame {frame_index} cannot be decoded ({good})"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __reduce__(self):  # keep the fields when the error crosses a process boundary
        return type(self), (self.path, self.frame_index, self.frames_ok, self.detail)


def check_file(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path, or raise :class:`InputError` if it is missing, a folder or empty."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    return path
