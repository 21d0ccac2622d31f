"""Pseudo-depth teachers: where the auxiliary depth target comes from.

Every teacher maps a float32 H×W×3 frame in [0, 1] to a float32 H×W relative inverse depth in
[0, 1] (near = high), min-max normalised per frame, like the reference's Depth-Anything target.

* ``LightFalloffTeacher`` (default, no download): the endoscope's light sits at the camera, so the
  irradiance of a Lambertian wall falls with the square of its distance and smoothed brightness
  gives a relative inverse depth. See ``docs/pseudo-depth.md`` for the model and its limits.
* ``OnnxDepthTeacher``: a user-supplied ONNX depth model (e.g. an exported Depth-Anything-V2).
* ``PrecomputedDepthTeacher``: depth maps stored in a dataset folder (``depth/NAME.png|tif``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import ndimage as ndi


class DepthTeacher(Protocol):
    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


def _minmax(d: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    lo, hi = np.percentile(d, [lo_pct, hi_pct])
    if hi - lo < 1e-6:
        return np.zeros_like(d, dtype=np.float32)
    return np.clip((d - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _border_dark(lum: np.ndarray, level: float) -> np.ndarray:
    """Near-black pixels connected to the frame's edge: the endoscope's mask and overlays, not
    tissue (dark tissue inside the field of view stays valid: it is the far lumen)."""
    dark = lum <= level
    labels, n = ndi.label(dark)
    if n == 0:
        return dark
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge > 0])


class LightFalloffTeacher:
    """Relative inverse depth from the endoscopic light fall-off prior.

    With a point light at the camera and a Lambertian wall of albedo rho, the image irradiance is
    E ~ rho cos(theta) / r^2, so 1/r ~ sqrt(E / (rho cos theta)). Albedo and incidence are unknown
    and taken as constant after heavy smoothing, which removes texture (vessels, pit pattern) and
    leaves the slow fall-off with distance. Steps: luminance; specular highlights (bright and
    unsaturated) replaced by their surroundings; the black border of the endoscope mask set aside;
    a wide Gaussian (a fraction ``sigma`` of the frame size) normalised over valid pixels;
    ``sqrt``; robust min-max. The border gets the minimum (far).
    """

    name = "falloff"

    def __init__(self, sigma: float = 0.04, work_size: int = 112, border_level: float = 0.06):
        self.sigma = sigma
        self.work_size = work_size
        self.border_level = border_level

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = np.asarray(image, dtype=np.float32)
        h, w = img.shape[:2]
        # work at a reduced size: the result is smooth by construction
        step = max(1, int(round(min(h, w) / self.work_size)))
        small = img[::step, ::step]
        lum = small @ np.array([0.299, 0.587, 0.114], np.float32)
        sat = small.max(-1) - small.min(-1)
        valid = ~_border_dark(lum, self.border_level)
        highlight = (lum > 0.85) & (sat < 0.25)
        highlight = ndi.binary_dilation(highlight, iterations=2)
        weight = (valid & ~highlight).astype(np.float32)
        s = self.sigma * max(small.shape[:2])
        num = ndi.gaussian_filter(lum * weight, s, mode="nearest")
        den = ndi.gaussian_filter(weight, s, mode="nearest")
        smooth = num / np.maximum(den, 1e-4)
        inv_depth = np.sqrt(np.clip(smooth, 0.0, 1.0))
        inv_depth = np.where(den > 0.05, inv_depth, inv_depth[valid].min() if valid.any() else 0.0)
        out = _minmax(inv_depth)
        out[~valid] = 0.0
        if step > 1:
            zoom = (h / out.shape[0], w / out.shape[1])
            out = ndi.zoom(out, zoom, order=1, mode="nearest")[:h, :w]
            if out.shape != (h, w):
                out = np.pad(out, ((0, h - out.shape[0]), (0, w - out.shape[1])), mode="edge")
        return np.clip(out, 0.0, 1.0).astype(np.float32)


class OnnxDepthTeacher:
    """A user-supplied ONNX depth model: NCHW float input (3 channels), one depth-like output.

    Input size is read from the file; dynamic sizes use ``size`` (a multiple of 14 suits ViT
    models such as Depth-Anything). ``imagenet_norm`` applies ImageNet mean/std first (as
    Depth-Anything expects). ``inverse`` says whether the model outputs inverse depth/disparity
    (near = high, Depth-Anything's convention) or metric depth (near = low; inverted here).
    """

    name = "onnx"
    _MEAN = np.array([0.485, 0.456, 0.406], np.float32)
    _STD = np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, path: str | Path, size: int = 518, imagenet_norm: bool = True, inverse: bool = True):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"{self.path}: ONNX depth model not found")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            raise ValueError(f"{self.path}: not a valid ONNX model ({exc})") from exc
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ValueError(f"{self.path}: input {inp.name!r} has shape {shape}; expected N×3×H×W")
        self.input_name = inp.name
        self.hw = tuple(d if isinstance(d, int) else size for d in shape[2:])
        self.imagenet_norm = imagenet_norm
        self.inverse = inverse

    def __call__(self, image: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        img = np.asarray(image, dtype=np.float32)
        h, w = img.shape[:2]
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        t = F.interpolate(t, size=self.hw, mode="bilinear", align_corners=False)
        x = t.numpy()
        if self.imagenet_norm:
            x = (x - self._MEAN[None, :, None, None]) / self._STD[None, :, None, None]
        out = np.asarray(self.session.run(None, {self.input_name: x.astype(np.float32)})[0], dtype=np.float32)
        out = out.reshape(out.shape[-2:]) if out.size == out.shape[-1] * out.shape[-2] else out[0].reshape(out.shape[-2:])
        d = F.interpolate(torch.from_numpy(out)[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        d = _minmax(d, 0.0, 100.0)
        return d if self.inverse else 1.0 - d


class PrecomputedDepthTeacher:
    """Depth maps stored beside the frames: ``folder/NAME.png`` (16-bit) or ``.tif/.tiff`` (float).
    Needs the frame's name, so it is called as ``teacher.lookup(name, (h, w))``."""

    name = "precomputed"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"{self.folder}: depth folder not found")

    def lookup(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        from .io import read_depth

        for ext in (".png", ".tif", ".tiff"):
            path = self.folder / f"{name}{ext}"
            if path.is_file():
                d = read_depth(path)
                if d.shape != tuple(shape):
                    d = F.interpolate(torch.from_numpy(d)[None, None], size=tuple(shape), mode="bilinear",
                                      align_corners=False)[0, 0].numpy()
                return np.clip(d, 0.0, 1.0).astype(np.float32)
        raise ValueError(f"{self.folder}: no depth map for frame {name!r} (.png, .tif or .tiff)")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise TypeError("PrecomputedDepthTeacher needs the frame name: use lookup(name, shape)")


def make_teacher(spec: str | None = None, folder: str | Path | None = None) -> DepthTeacher:
    """``None``/``"falloff"``: the light fall-off prior; ``"PATH.onnx"``: an ONNX model;
    ``"precomputed"``: maps from ``folder``."""
    if spec in (None, "", "falloff"):
        return LightFalloffTeacher()
    if spec == "precomputed":
        if folder is None:
            raise ValueError("the 'precomputed' teacher needs the folder holding the depth maps")
        return PrecomputedDepthTeacher(folder)
    if str(spec).lower().endswith(".onnx"):
        return OnnxDepthTeacher(spec)
    raise ValueError(f"unknown depth teacher {spec!r}: use 'falloff', 'precomputed' or a path to an .onnx model")
