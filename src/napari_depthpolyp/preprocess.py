"""Frame validation and resizing, shared by inference and by the training cache so that the network
sees frames prepared the same way in both."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class FrameError(ValueError):
    """A frame the engine cannot take; the message says what it got and what it accepts."""


ACCEPTS = (
    "an RGB frame H×W×3, a greyscale frame H×W or an RGBA frame H×W×4 (alpha dropped), "
    "uint8, uint16 or float in [0, 1], at least 8×8 pixels"
)


def to_float_rgb(frame, name: str = "frame") -> np.ndarray:
    """Validate one frame and return it as float32 H×W×3 in [0, 1]."""
    arr = np.asarray(frame)
    if arr.size == 0:
        raise FrameError(f"{name}: empty array of shape {arr.shape}; expected {ACCEPTS}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise FrameError(f"{name}: got shape {arr.shape}; expected {ACCEPTS}")
    h, w = arr.shape[:2]
    if h < 8 or w < 8:
        raise FrameError(f"{name}: frame of {h}×{w} pixels is too small; expected {ACCEPTS}")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.bool_:
        raise FrameError(f"{name}: got a boolean array (a mask?); expected {ACCEPTS}")
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32, copy=False)
        if not np.isfinite(out).all():
            raise FrameError(f"{name}: contains NaN or infinite values; expected {ACCEPTS}")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0.0 or hi > 1.0:
            raise FrameError(f"{name}: float values span [{lo:.3g}, {hi:.3g}]; expected {ACCEPTS}")
    else:
        raise FrameError(f"{name}: dtype {arr.dtype} is not supported; expected {ACCEPTS}")
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    elif out.shape[-1] == 4:
        out = out[..., :3]
    out = np.ascontiguousarray(out)
    return out if out.flags.writeable else out.copy()  # a read-only float32 frame (a memory-mapped TIFF)


def resize_batch(frames: list[np.ndarray], size: int) -> torch.Tensor:
    """float32 H×W×3 frames (any sizes) -> a (B, 3, size, size) tensor, bilinear with antialiasing
    when shrinking (a 1080p frame is not aliased down to 224)."""
    out = torch.empty(len(frames), 3, size, size)
    for i, f in enumerate(frames):
        t = torch.from_numpy(f).permute(2, 0, 1)[None]
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[i] = t[0].clamp_(0.0, 1.0)
    return out


def resize_map(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (h, w) float map resized to ``shape`` (bilinear, align_corners False)."""
    if m.shape == tuple(shape):
        return m.astype(np.float32, copy=False)
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]
    return F.interpolate(t, size=tuple(shape), mode="bilinear", align_corners=False)[0, 0].numpy()


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A boolean (H, W) mask at size×size: area-weighted (antialiased) then >= 0.5, so thin parts
    are kept in proportion rather than sampled away."""
    t = torch.from_numpy(np.asarray(mask, dtype=np.float32))[None, None]
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t[0, 0].numpy() >= 0.5
