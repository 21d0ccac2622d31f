"""One entry point for every kind of frame input: a video, a folder of images, or an image file."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError
from .images import IMAGE_EXTENSIONS, FolderStack, is_image, read_frames
from .stack import ArrayStack, FrameStack
from .video import VIDEO_EXTENSIONS, VideoStack, is_video


def read_input(path: str | os.PathLike) -> FrameStack:
    """Open ``path`` as a T×H×W[×C] frame stack, always with the time axis first.

    - a folder: its images in natural order, lazily (:class:`FolderStack`, ``kind="folder"``);
    - a video: lazily decoded RGB frames (:class:`VideoStack`, ``kind="video"``, with ``fps``);
    - an image file: one frame (``kind="image"``; use ``stack[0]`` for the H×W[×C] image), or every
      page of a multi-page TIFF (``kind="tiff-stack"``), read into memory.

    Raises :class:`InputError` (naming the file and the problem) for anything unreadable.
    """
    path = Path(path)
    if path.is_dir():
        return FolderStack(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if is_video(path):
        return VideoStack(path)
    if is_image(path):
        frames = read_frames(path)
        return ArrayStack(frames, path, kind="image" if len(frames) == 1 else "tiff-stack")
    raise InputError(
        f"{path}: unsupported file type {path.suffix or '(no extension)'!r}; expected a video "
        f"({', '.join(VIDEO_EXTENSIONS)}), an image ({', '.join(IMAGE_EXTENSIONS)}) or a folder of images"
    )
