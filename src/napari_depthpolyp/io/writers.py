"""Writing masks, depth maps, overlays and videos. Every file is written atomically (to a temporary
file beside the target, then renamed over it), so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import itertools
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np
import tifffile
from PIL import Image

from .atomic import atomic_path

_DEPTH_PNG_MAX = 65535


def write_mask_png(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Save a binary H×W mask (bool, or integers with 0 = background) as an 8-bit PNG of 0/255."""
    path = Path(path)
    pixels = _binary_mask(mask).astype(np.uint8) * 255
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return path


def write_mask_stack_tiff(path: str | os.PathLike, masks: Iterable[np.ndarray]) -> Path:
    """Save binary masks (a T×H×W array or any iterable of H×W masks) as one multi-page 0/255 TIFF.

    Pages are written one at a time (zlib-compressed), so a long video's masks need not be in memory.
    Read it back with ``read_mask_stack``; Fiji/ImageJ open it as a stack.
    """
    path = Path(path)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp) as tif:
        shape = None
        for index, mask in enumerate(masks):
            page = _binary_mask(mask).astype(np.uint8) * 255
            if shape is None:
                shape = page.shape
            elif page.shape != shape:
                raise ValueError(f"mask {index} has shape {page.shape}, the first mask {shape}")
            tif.write(page, compression="zlib", photometric="minisblack", metadata=None)
        if shape is None:
            raise ValueError(f"no masks to write to {path}")
    return path


def write_depth(path: str | os.PathLike, depth: np.ndarray) -> Path:
    """Save an H×W depth map with values in [0, 1].

    ``.png``: 16-bit, ``round(depth * 65535)`` (values outside [0, 1] are clipped; precision 1.5e-5).
    ``.tif`` / ``.tiff``: float32, exactly as given. Read either back with ``read_depth``.
    """
    path = Path(path)
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"a depth map is H×W, got shape {depth.shape}")
    if not np.isfinite(depth).all():
        raise ValueError(f"depth map for {path} contains NaN or infinite values")
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff"):
        raise ValueError(f"{path}: depth maps are written as .png (16-bit) or .tif (float32), not {suffix!r}")
    with atomic_path(path) as tmp:
        if suffix == ".png":
            pixels = np.round(np.clip(depth, 0.0, 1.0) * _DEPTH_PNG_MAX).astype(np.uint16)
            Image.fromarray(pixels).save(tmp, format="PNG")
        else:
            tifffile.imwrite(tmp, depth, compression="zlib")
    return path


def render_overlay(
    frame: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (0, 255, 0),
    alpha: float = 0.35,
    contour_width: int = 2,
) -> np.ndarray:
    """The frame as RGB uint8 with the mask tinted in ``color`` (opacity ``alpha``) and outlined by a
    solid contour ``contour_width`` pixels wide (0 for none). ``frame`` may be grayscale, RGB or RGBA,
    uint8, uint16 or float in [0, 1]."""
    rgb = _rgb8(frame).copy()
    region = _binary_mask(mask)
    if region.shape != rgb.shape[:2]:
        raise ValueError(f"mask shape {region.shape} does not match frame shape {rgb.shape[:2]}")
    colour = np.asarray(color, dtype=np.float32)
    rgb[region] = np.round(rgb[region] * (1.0 - alpha) + colour * alpha).astype(np.uint8)
    if contour_width > 0:
        from scipy.ndimage import binary_erosion  # imported here: scipy.ndimage would double io's import time

        rgb[region & ~binary_erosion(region, iterations=contour_width)] = colour.astype(np.uint8)
    return rgb


def write_overlay(path: str | os.PathLike, frame: np.ndarray, mask: np.ndarray, **style) -> Path:
    """Save ``render_overlay(frame, mask, **style)`` as PNG, or JPEG (quality 95) for .jpg/.jpeg."""
    path = Path(path)
    image = Image.fromarray(render_overlay(frame, mask, **style))
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".jpg", ".jpeg"):
            image.save(tmp, format="JPEG", quality=95)
        else:
            image.save(tmp, format="PNG")
    return path


def make_video(
    frames: Iterable[np.ndarray],
    out_path: str | os.PathLike,
    fps: float = 25,
    codec: str = "libx264",
    crf: int = 18,
) -> int:
    """Encode frames (H×W×3 RGB uint8; grayscale/RGBA/uint16/float are converted) into a video and
    return how many were written. The container follows the suffix (.mp4, .mkv, .avi, .mov).

    Pixels are stored as yuv420p, which needs an even width and height: frames with an odd size are
    padded by one pixel at the bottom and/or right, repeating the last row/column, so the video can be
    1 px larger than the frames (crop ``[:H, :W]`` to compare with masks). mp4/mov files get their
    index at the start ("faststart"), which also keeps the frames before a truncation readable.
    ``crf`` (quality, lower is better; 18 is visually lossless) applies to libx264/libx265.
    """
    out_path = Path(out_path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to encode into {out_path}")
    height, width = _rgb8(first).shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    container_options = {"movflags": "+faststart"} if out_path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
    codec_options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
    count = 0
    with atomic_path(out_path) as tmp, av.open(str(tmp), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=codec_options)
        stream.width, stream.height, stream.pix_fmt = width + width % 2, height + height % 2, "yuv420p"
        for frame in itertools.chain([first], frames):
            rgb = _rgb8(frame)
            if rgb.shape[:2] != (height, width):
                raise ValueError(f"frame {count} is {rgb.shape[1]}×{rgb.shape[0]}, the first frame {width}×{height}")
            rgb = np.ascontiguousarray(np.pad(rgb, pad, mode="edge"))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            count += 1
        container.mux(stream.encode(None))
    return count


def _binary_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is H×W, got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind in "ui":
        return mask != 0
    raise TypeError(f"a mask must be bool or integer (0 = background), got {mask.dtype}: threshold probabilities first")


def _rgb8(frame: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 for display and encoding (not the model's input normalisation)."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an H×W, H×W×3 or H×W×4 frame, got shape {frame.shape}")
    frame = np.broadcast_to(frame[..., :3], frame.shape[:2] + (3,))
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return (frame >> 8).astype(np.uint8)
    if frame.dtype.kind == "f":
        return np.round(np.clip(frame, 0.0, 1.0) * 255).astype(np.uint8)
    raise TypeError(f"unsupported frame type {frame.dtype} (expected uint8, uint16 or float in [0, 1])")
