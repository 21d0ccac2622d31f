"""napari reader: videos (mp4/avi/mov/mkv/...) and image folders as lazy T×H×W[×3] stacks, single
images as they are (a binary mask as a Labels layer). The Image layer's ``metadata["depthpolyp"]`` remembers the source (path, kind,
fps, frame names) so the review session can autosave beside it and offer to resume it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .io import InputError, is_image, is_mask_like, is_video, list_images, read_image, read_input

# A folder of images of different sizes (Kvasir-SEG's images/) cannot be one stack: up to this many
# images open as one layer each; more is refused with the reason.
MAX_SEPARATE_IMAGES = 16

LayerData = tuple[Any, dict, str]


def _readable(path: str | os.PathLike) -> bool:
    p = Path(path)
    if p.is_dir():
        try:
            return bool(list_images(p))
        except InputError:
            return False
    return p.is_file() and (is_video(p) or is_image(p))


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The npe2 reader command: a function for paths we can open, else None (napari tries others)."""
    paths = path if isinstance(path, list) else [path]
    if paths and all(_readable(p) for p in paths):
        return read
    return None


def read(path: str | list[str]) -> list[LayerData]:
    paths = path if isinstance(path, list) else [path]
    return [layer for p in paths for layer in _read_one(Path(p))]


def _meta(path: Path, kind: str, fps=None, frame_names=None) -> dict:
    return {"depthpolyp": {"source": str(path.resolve()), "kind": kind, "fps": fps, "frame_names": frame_names}}


def _layer(data, path: Path, kind: str, name: str, **meta) -> LayerData:
    rgb = data.ndim >= 3 and data.shape[-1] in (3, 4)
    return data, {"name": name, "rgb": rgb, "metadata": _meta(path, kind, **meta)}, "image"


def _mask_layer(masks: np.ndarray, path: Path) -> LayerData:
    """Binary masks (this plugin's writer, a dataset's masks/) as a Labels layer, polyp = 1."""
    return (masks != 0).astype(np.uint8), {"name": path.stem, "metadata": _meta(path, "mask")}, "labels"


def _read_one(path: Path) -> list[LayerData]:
    try:
        stack = read_input(path)
    except InputError:
        if not path.is_dir():
            raise
        files = list_images(path)
        if len(files) > MAX_SEPARATE_IMAGES:
            raise
        return [_layer(read_image(f), f, "image", f.stem) for f in files]  # different sizes: one layer each
    if stack.kind == "image":
        frame = np.asarray(stack[0])
        if frame.ndim == 2 and is_mask_like(frame):
            return [_mask_layer(frame, path)]
        return [_layer(frame, path, "image", path.stem)]
    if stack.kind == "tiff-stack":  # in memory already; a multi-page mask TIFF (this plugin's writer)
        frames = np.asarray(stack)
        if frames.ndim == 3 and is_mask_like(frames):
            return [_mask_layer(frames, path)]
    names = [stack.frame_name(i) for i in range(len(stack))] if stack.kind == "folder" else None
    return [_layer(stack, path, stack.kind, path.stem if path.is_file() else path.name, fps=stack.fps, frame_names=names)]
