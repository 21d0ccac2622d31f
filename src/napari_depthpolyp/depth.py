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

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image
from scipy import ndimage as ndi


class TeacherError(ValueError):
    """A depth teacher that cannot be made or run: an unknown name, a missing or unsuitable ONNX
    model, a missing precomputed map. The message names the file."""


@runtime_checkable
class DepthTeacher(Protocol):
    """float32 H×W×3 in [0, 1] -> float32 H×W in [0, 1], near = high, min-max normalised per frame."""

    name: str

    def __call__(self, image: np.ndarray) -> np.ndarray: ...


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise TeacherError(f"a depth teacher takes an H×W×3 frame, got shape {img.shape}")
    if img.dtype.kind != "f":
        raise TypeError(f"a depth teacher takes a float frame in [0, 1], got {img.dtype} (divide uint8 by 255)")
    return img.astype(np.float32, copy=False)


def _resize(plane: np.ndarray, hw: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    """Resize a 2-D float map to (H, W) with PIL's float mode (pixel-area aligned, fast)."""
    h, w = int(hw[0]), int(hw[1])
    plane = np.ascontiguousarray(plane, dtype=np.float32)
    if plane.shape == (h, w):
        return plane.copy()
    return np.array(Image.fromarray(plane, mode="F").resize((w, h), resample), dtype=np.float32)


def _minmax(d: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    d = np.asarray(d, dtype=np.float32)
    finite = np.isfinite(d)
    if not finite.all():  # invalid pixels of a stored map (NaN/inf) become the minimum
        if not finite.any():
            return np.zeros(d.shape, np.float32)
        d = np.where(finite, d, d[finite].min())
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
    leaves the slow fall-off with distance. Steps, at a working size of ~``work_size`` px:

    1. luminance; the endoscope's black border (near-black regions connected to the frame edge)
       and burnt-in overlays (bright marks sitting in that border, e.g. white text) are set aside;
    2. specular highlights (bright, unsaturated, dilated) are set aside too;
    3. a wide Gaussian (``sigma`` x the frame's long side) normalised over the remaining pixels;
       highlights too large for it to bridge take the value of the nearest supported pixel (a
       highlight is a near, camera-facing wall: it must not read as far);
    4. ``sqrt``; robust min-max over the field of view (``percentiles``); back to the frame size.

    The border and overlays get the minimum (far). See ``docs/pseudo-depth.md`` for limits.
    """

    name = "falloff"

    def __init__(self, sigma: float = 0.04, work_size: int = 112, border_level: float = 0.06,
                 percentiles: tuple[float, float] = (1.0, 99.0)):
        self.sigma = sigma
        self.work_size = work_size
        self.border_level = border_level
        self.percentiles = percentiles

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = _check_image(image)
        h, w = img.shape[:2]
        # work at a reduced size: the result is smooth by construction
        step = max(1, int(round(min(h, w) / self.work_size)))
        small = img[::step, ::step]
        r, g, b = small[..., 0], small[..., 1], small[..., 2]
        lum = np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
        sat = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        border = _border_dark(lum, self.border_level)
        highlight = ndi.binary_dilation((lum > 0.85) & (sat < 0.25), iterations=2) & ~border
        if highlight.any() and border.any():
            # bright marks mostly surrounded by the border are overlays (text, icons), not tissue
            labels, n = ndi.label(highlight)
            near_border = ndi.binary_dilation(border, iterations=2)
            share = np.asarray(ndi.mean(near_border, labels, index=np.arange(1, n + 1)))
            overlay = np.isin(labels, 1 + np.flatnonzero(share > 0.3))
            border |= overlay
            highlight &= ~overlay
        valid = ~border
        if not valid.any():
            return np.zeros((h, w), np.float32)
        weight = (valid & ~highlight).astype(np.float32)
        s = self.sigma * max(small.shape[:2])
        num = ndi.gaussian_filter(lum * weight, s, mode="nearest")
        den = ndi.gaussian_filter(weight, s, mode="nearest")
        supported = den > 0.05
        if not supported.any():
            return np.zeros((h, w), np.float32)
        inv_depth = np.sqrt(np.clip(num / np.maximum(den, 1e-4), 0.0, 1.0))
        if (valid & ~supported).any():  # large highlights: nearest supported value
            idx = ndi.distance_transform_edt(~supported, return_distances=False, return_indices=True)
            inv_depth = inv_depth[tuple(idx)]
        lo, hi = np.percentile(inv_depth[valid], self.percentiles)
        if hi - lo < 1e-6:
            return np.zeros((h, w), np.float32)
        out = np.clip((inv_depth - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
        out[border] = 0.0
        if step > 1:
            out = _resize(out, (h, w), Image.BILINEAR)
        return np.clip(out, 0.0, 1.0, out=out)


class OnnxDepthTeacher:
    """A user-supplied ONNX depth model: NCHW float input (3 channels), one depth-like output.

    The input name and size are read from the file: a fixed H×W is used as stored; dynamic H/W
    use ``size`` (default 518, Depth-Anything's), rounded to a multiple of ``multiple_of`` (14, the
    ViT patch of Depth-Anything; 1 disables the rounding). ``imagenet_norm`` applies ImageNet
    mean/std first (as Depth-Anything expects). ``inverse`` says whether the model outputs inverse
    depth/disparity (near = high, Depth-Anything's convention) or depth (near = low; inverted here).
    The first output (N×1×h×w, N×h×w or h×w; its shape is read from the file too) is resized back
    to the frame bilinearly and min-max normalised. float16 models get float16 input.
    """

    name = "onnx"
    _MEAN = np.array([0.485, 0.456, 0.406], np.float32)
    _STD = np.array([0.229, 0.224, 0.225], np.float32)

    def __init__(self, path: str | Path, size: int = 518, imagenet_norm: bool = True, inverse: bool = True,
                 multiple_of: int = 14):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise TeacherError(f"{self.path}: ONNX depth model not found")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            raise TeacherError(f"{self.path}: not a valid ONNX model ({exc})") from exc
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise TeacherError(f"{self.path}: input {inp.name!r} has shape {shape}; expected N×3×H×W")
        if len(self.session.get_inputs()) != 1:
            raise TeacherError(f"{self.path}: a depth model has one input, this one has {len(self.session.get_inputs())}")
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        out0 = self.session.get_outputs()[0]
        self.output_name = out0.name
        self.output_shape = list(out0.shape)
        m = max(1, int(multiple_of))
        dyn = max(m, int(round(size / m)) * m)
        self.dynamic = not all(isinstance(d, int) for d in shape[2:])
        self.hw = tuple(d if isinstance(d, int) else dyn for d in shape[2:])
        self.imagenet_norm = imagenet_norm
        self.inverse = inverse

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = _check_image(image)
        h, w = img.shape[:2]
        x = np.stack([_resize(img[..., c], self.hw, Image.BILINEAR) for c in range(3)])[None]
        if self.imagenet_norm:
            x = (x - self._MEAN[None, :, None, None]) / self._STD[None, :, None, None]
        out = self.session.run([self.output_name], {self.input_name: x.astype(self.input_dtype)})[0]
        out = np.asarray(out, dtype=np.float32)
        if out.ndim < 2 or out.size != out.shape[-1] * out.shape[-2]:
            raise TeacherError(f"{self.path}: output {self.output_name!r} has shape {out.shape}, not one depth map")
        d = _resize(out.reshape(out.shape[-2:]), (h, w), Image.BILINEAR)
        d = _minmax(d, 0.0, 100.0)
        return d if self.inverse else 1.0 - d


class PrecomputedDepthTeacher:
    """Depth maps computed beforehand (e.g. Depth-Anything-V2 run where its weights are available).

    ``folder`` holds one map per frame, named after it: ``NAME.png`` (16- or 8-bit grey) or
    ``NAME.tif``/``.tiff`` (float, any scale; NaN/inf count as far); a ``depth/`` sub-folder of
    ``folder`` is searched too, so a dataset root works. Maps are relative inverse depth (near =
    high) unless ``inverse=False`` (then they are depth and get inverted).

    A map is found by the frame's name, not its pixels, so this teacher is called as
    ``teacher.lookup(name, shape)`` (``name`` may carry a folder and an image extension,
    ``shape`` is (H, W) or (H, W, C)); calling it with an image raises ``TypeError``. The map is
    resized bilinearly to ``shape`` and min-max normalised like every teacher's output. (The trainer
    reads ``depth/`` maps through its frame cache instead, so they follow the geometric augmentation.)
    """

    name = "precomputed"
    _IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")

    def __init__(self, folder: str | Path, inverse: bool = True):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise TeacherError(f"{self.folder}: depth folder not found")
        self.inverse = inverse

    def path_for(self, name: str) -> Path:
        """The map file of frame ``name``."""
        stem = Path(name).name
        if stem.lower().endswith(self._IMAGE_EXTS):
            stem = stem.rsplit(".", 1)[0]
        for folder in (self.folder, self.folder / "depth"):
            for ext in (".png", ".tif", ".tiff"):
                path = folder / f"{stem}{ext}"
                if path.is_file():
                    return path
        raise TeacherError(f"{self.folder}: no depth map for frame {name!r} (.png, .tif or .tiff)")

    def lookup(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        from .io import read_depth

        d = read_depth(self.path_for(name))
        d = _minmax(_resize(d, (shape[0], shape[1]), Image.BILINEAR), 0.0, 100.0)
        return d if self.inverse else 1.0 - d

    def __call__(self, image: np.ndarray) -> np.ndarray:
        raise TypeError("PrecomputedDepthTeacher needs the frame name: use lookup(name, shape)")


def make_teacher(spec: str | os.PathLike | None = None, folder: str | Path | None = None) -> DepthTeacher:
    """``None``/``"falloff"``: the light fall-off prior; ``"PATH.onnx"``: an ONNX model;
    ``"precomputed"`` with ``folder`` (or ``"precomputed:FOLDER"``): stored maps."""
    spec = None if spec is None else os.fspath(spec).strip()
    if spec in (None, "", "falloff"):
        return LightFalloffTeacher()
    if spec.startswith("precomputed:"):
        spec, folder = "precomputed", spec[len("precomputed:"):]
    if spec == "precomputed":
        if not folder:
            raise TeacherError("the 'precomputed' teacher needs the folder holding the depth maps")
        return PrecomputedDepthTeacher(folder)
    if spec.lower().endswith(".onnx"):
        return OnnxDepthTeacher(spec)
    raise TeacherError(f"unknown depth teacher {spec!r}: use 'falloff', 'precomputed' or a path to an .onnx model")
