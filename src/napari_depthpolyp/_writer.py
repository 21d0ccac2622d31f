"""napari writers for Labels layers (masks): a multi-page 0/255 TIFF, or PNG masks (one 0/255 PNG for
a single frame; for a stack, a folder named like the file without ``.png`` holding one PNG per frame,
named after the source frames when known). Every file is written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .io import write_mask_png, write_mask_stack_tiff
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
    return [str(write_mask_png(folder / f"{name}.png", frames[i])) for i, name in enumerate(names)]
