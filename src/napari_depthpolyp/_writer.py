"""napari writers for Labels layers (masks): a multi-page 0/255 TIFF, or PNG masks (one 0/255 PNG for
a single frame; for a stack, a folder named like the file without ``.png`` holding one PNG per frame,
named after the source frames when known). Every file is written atomically, and a stack's folder
as a whole: written beside, then swapped in, so it never mixes two saves; a folder holding anything
but PNG masks (other files, or PNGs that are frames rather than masks) is never replaced."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .io import InputError, is_mask_like, read_image, write_mask_png, write_mask_stack_tiff
from .review import frame_name


def _frames(data: Any) -> tuple[np.ndarray, bool]:
    arr = np.asarray(data)
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3:
        return arr, True
    raise ValueError(f"masks are written from 2-D or 3-D (T×H×W) Labels layers, got shape {arr.shape}")


def write_tiff(path: str, data: Any, meta: dict) -> list[str]:
    frames, _ = _frames(data)
    return [str(write_mask_stack_tiff(path, frames))]


def write_pngs(path: str, data: Any, meta: dict) -> list[str]:
    frames, is_stack = _frames(data)
    if not is_stack:
        return [str(write_mask_png(path, frames[0]))]
    target = Path(path)
    folder = target.with_suffix("") if target.suffix.lower() == ".png" else target
    info = (meta.get("metadata") or {}).get("depthpolyp") or {}
    n = len(frames)
    names = [frame_name(i, n, source=info.get("source"), name=meta.get("name") or folder.name,
                        frame_names=info.get("frame_names")) for i in range(n)]
    if folder.exists():
        _check_replaceable(folder)
    tmp, old = folder.with_name(f".{folder.name}.partial"), folder.with_name(f".{folder.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, name in enumerate(names):
        write_mask_png(tmp / f"{name}.png", frames[i])
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)
    return [str(folder / f"{name}.png") for name in names]


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace ``folder`` unless it holds only PNG masks (a former save of masks): a
    folder of PNG frames, say the frames the masks were made on, is never swapped out."""
    if not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder of masks: choose another name")
    for f in folder.iterdir():
        if not f.is_file() or f.suffix.lower() != ".png":
            raise ValueError(f"{folder} exists and holds more than PNG masks ({f.name}): choose another name")
        try:
            pixels = read_image(f)
        except InputError:
            pixels = None
        if pixels is None or pixels.ndim != 2 or not is_mask_like(pixels):
            raise ValueError(f"{folder} exists and holds images that are not masks ({f.name}): "
                             "saving would replace them; choose another name")
