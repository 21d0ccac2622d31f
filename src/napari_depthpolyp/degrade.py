"""Image degradations of colonoscopy frames (training and the seeded "degraded" evaluation).

The seven degradations of the DepthPolyp reference, with its parameters and probabilities, in its
order, plus the improvements the reference lacks:

=====================  ======  =============================================================
degradation            p       parameters (defaults = the reference)
=====================  ======  =============================================================
brightness_contrast    1.0     ``out = img * c + b``; b in [-0.1, 0.2] (times the max, 1.0),
                               c in [0.8, 1.2]
gaussian_blur          0.2     kernel 3, 5 or 7 (sigma as OpenCV derives it from the kernel)
motion_blur            1.0     line kernel, odd length 3-29, random direction
sensor_noise           (off)   **new**, only with ``noise=True``: Gaussian read noise +
                               Poisson-like shot noise (variance proportional to the signal)
jpeg                   0.5     quality 30-70 (PIL / libjpeg)
fog                    0.3     coefficient 0.5-0.8: blend toward a smooth bright haze, with the
                               slight softening albumentations' fog applies
optical_distortion     0.3     radial distortion k in [-0.05, 0.05], centre shift 5 %;
                               **improved**: the mask is warped identically (nearest neighbour),
                               so image and mask stay consistent (the reference left the mask)
specular               0.8     **improved**: 1 to ``specular_max_spots`` highlights, some
                               elongated (ellipses at random angles), edge blur sigma tied to the
                               size, added to all channels and clipped so that cores saturate to
                               white; radius 5-39 px at 224 px, scaled with the image size
=====================  ======  =============================================================

Everything draws from the ``numpy.random.Generator`` it is given (never from global random state),
so the same seed gives a bit-identical result: :func:`degrade_seeded` is the seeded evaluation.
Pixel-sized parameters of the blurs (kernels 3-7, motion kernels 3-29) are those of the training
resolution (224 x 224), like the reference; run the degrader after resizing. Specular radii scale
with ``min(H, W) / 224``.

:func:`augment_geometric` is the reference's geometric augmentation (rotate, shift-scale, flips),
applied identically to the image, the mask and an optional depth map. :func:`augment_colour`
(**new**, not in the reference, off unless a run asks for it) changes white balance, hue, saturation
and gamma, as another endoscope's camera and light source would. :func:`paste_polyp` (**new**, off
unless a run asks for it) copies the polyp of another training frame, feathered, into a frame at a
new place and size: polyps on mucosa they were not photographed on, and polyps on polyp-free frames.

Cost: about 2.3 ms of CPU per 224 x 224 frame on average with the default probabilities (3.4 ms
wall-clock on a loaded 2-core machine; the trainer calls it in its main process). The motion blur is
a sum of shifted views along a cached Bresenham line, the warps use
``torch.nn.functional.grid_sample`` (imported lazily), the highlights are rendered in closed form.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from scipy import special

__all__ = [
    "DEGRADATIONS",
    "AugmentConfig",
    "ColourConfig",
    "DegradeConfig",
    "Degrader",
    "augment_colour",
    "augment_geometric",
    "paste_polyp",
    "degrade_seeded",
]

#: Every degradation the module knows, in the order the pipeline applies them.
DEGRADATIONS: tuple[str, ...] = (
    "brightness_contrast",
    "gaussian_blur",
    "motion_blur",
    "sensor_noise",
    "jpeg",
    "fog",
    "optical_distortion",
    "specular",
)

_REFERENCE_SIZE = 224
_MOTION_ANGLE_STEP = 5.0  # degrees per cached motion-blur kernel


@dataclass
class DegradeConfig:
    """Probabilities and ranges of every degradation (defaults: the DepthPolyp reference).

    Ranges are ``(low, high)``, sampled uniformly; integer ranges are inclusive.
    """

    brightness_contrast_p: float = 1.0
    brightness_range: tuple[float, float] = (-0.1, 0.2)
    contrast_range: tuple[float, float] = (0.8, 1.2)

    gaussian_blur_p: float = 0.2
    gaussian_blur_kernels: tuple[int, ...] = (3, 5, 7)

    motion_blur_p: float = 1.0
    motion_blur_kernel_range: tuple[int, int] = (3, 29)  # odd lengths in this range

    jpeg_p: float = 0.5
    jpeg_quality_range: tuple[int, int] = (30, 70)

    fog_p: float = 0.3
    fog_coef_range: tuple[float, float] = (0.5, 0.8)

    optical_distortion_p: float = 0.3
    distort_limit: float = 0.05
    shift_limit: float = 0.05

    specular_p: float = 0.8
    specular_radius_range: tuple[float, float] = (5.0, 39.0)  # px at 224 px, scaled with min(H, W)
    specular_max_spots: int = 4
    specular_elongated_p: float = 0.5
    specular_aspect_range: tuple[float, float] = (0.25, 0.7)  # minor / major axis of elongated spots
    specular_sigma_range: tuple[float, float] = (0.15, 0.4)  # edge blur sigma / minor semi-axis
    specular_intensity_range: tuple[float, float] = (1.0, 1.5)  # added at the core, then clipped

    noise: bool = False  # sensor noise is off by default (not in the reference)
    noise_p: float = 0.5
    noise_read_range: tuple[float, float] = (0.005, 0.03)  # Gaussian std
    noise_shot_range: tuple[float, float] = (0.01, 0.05)  # std at full scale; var = s**2 * signal

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_p") and not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"DegradeConfig.{f.name} must be in [0, 1], got {value!r}")
            if f.name.endswith("_range"):
                if len(value) != 2 or value[0] > value[1]:
                    raise ValueError(f"DegradeConfig.{f.name} must be (low, high), got {value!r}")
        lo, hi = self.motion_blur_kernel_range
        if lo < 3 or not _odd_sizes(lo, hi):
            raise ValueError(f"motion_blur_kernel_range {self.motion_blur_kernel_range!r} holds no odd size >= 3")
        if not self.gaussian_blur_kernels or any(k < 1 or k % 2 == 0 for k in self.gaussian_blur_kernels):
            raise ValueError(f"gaussian_blur_kernels must be odd sizes, got {self.gaussian_blur_kernels!r}")
        qlo, qhi = self.jpeg_quality_range
        if not 1 <= qlo <= qhi <= 100:
            raise ValueError(f"jpeg_quality_range must lie in [1, 100], got {self.jpeg_quality_range!r}")
        if self.specular_max_spots < 1:
            raise ValueError("specular_max_spots must be >= 1")
        if self.specular_radius_range[0] <= 0 or self.specular_aspect_range[0] <= 0:
            raise ValueError("specular radii and aspect ratios must be positive")


def _odd_sizes(lo: int, hi: int) -> tuple[int, ...]:
    start = lo if lo % 2 == 1 else lo + 1
    return tuple(range(start, hi + 1, 2))


# --------------------------------------------------------------------------------------------------
# input checks


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"image must be floating point in [0, 1] (got {image.dtype}); divide uint8 by 255")
    return np.ascontiguousarray(image, dtype=np.float32)


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3) or mask.shape[:2] != tuple(shape[:2]):
        raise ValueError(f"mask shape {mask.shape} does not match image {tuple(shape[:2])}")
    return mask


# --------------------------------------------------------------------------------------------------
# warping (shared by optical distortion and the geometric augmentation)


@lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


def _remap(arrays: list[np.ndarray], map_y: np.ndarray, map_x: np.ndarray, mode: str) -> list[np.ndarray]:
    """Sample H x W (x C) float32 arrays at (map_y, map_x) pixel coordinates, mirror-reflected borders.

    ``mode`` is "bilinear" or "nearest". One ``grid_sample`` call for all arrays (stacked as channels).
    """
    import torch
    import torch.nn.functional as F

    h, w = map_y.shape
    chans = [a[..., None] if a.ndim == 2 else a for a in arrays]
    stack = np.concatenate(chans, axis=2) if len(chans) > 1 else chans[0]
    src = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32)).permute(2, 0, 1)[None]
    gx = map_x * np.float32(2.0 / max(w - 1, 1)) - np.float32(1.0)
    gy = map_y * np.float32(2.0 / max(h - 1, 1)) - np.float32(1.0)
    grid = torch.from_numpy(np.stack([gx, gy], axis=-1))[None]
    # align_corners=True + reflection = reflect about the outer pixel centres (OpenCV REFLECT_101)
    out = F.grid_sample(src, grid, mode=mode, padding_mode="reflection", align_corners=True)
    out = out[0].permute(1, 2, 0).numpy()
    result, start = [], 0
    for a, c in zip(arrays, chans):
        n = c.shape[2]
        part = out[..., start : start + n]
        result.append(np.ascontiguousarray(part[..., 0] if a.ndim == 2 else part))
        start += n
    return result


def _warp_mask(mask: np.ndarray, map_y: np.ndarray, map_x: np.ndarray) -> np.ndarray:
    """Nearest-neighbour warp that keeps the mask's dtype and values: labels, or (float H x W x C)
    maps that must follow the frame, such as a mask beside a soft target (``train.loop``)."""
    (warped,) = _remap([mask.astype(np.float32)], map_y, map_x, "nearest")
    if mask.dtype == bool:
        return warped > 0.5
    if np.issubdtype(mask.dtype, np.floating):
        return warped.astype(mask.dtype, copy=False)
    return np.rint(warped).astype(mask.dtype)


# --------------------------------------------------------------------------------------------------
# individual degradations: (image float32 HxWx3 [0,1], mask, rng) -> (image, mask)


def _brightness_contrast(cfg: DegradeConfig, img, mask, rng):
    contrast = rng.uniform(*cfg.contrast_range)
    brightness = rng.uniform(*cfg.brightness_range)  # times the maximum value, 1.0 for float images
    out = img * np.float32(contrast)
    out += np.float32(brightness)
    return np.clip(out, 0.0, 1.0, out=out), mask


def _gaussian_blur(cfg: DegradeConfig, img, mask, rng):
    k = int(rng.choice(cfg.gaussian_blur_kernels))
    sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for a kernel of size k (albumentations)
    r = k // 2
    out = ndi.gaussian_filter(img, sigma=(sigma, sigma, 0.0), radius=(r, r, 0), mode="mirror")
    return np.clip(out, 0.0, 1.0, out=out), mask


@lru_cache(maxsize=1024)
def _motion_offsets(k: int, bucket: int) -> tuple[tuple[int, int], ...]:
    """Pixel offsets (dy, dx) of a centred Bresenham line of length k at angle bucket*step degrees."""
    from skimage.draw import line

    theta = math.radians(bucket * _MOTION_ANGLE_STEP)
    half = (k - 1) / 2.0
    dy, dx = half * math.sin(theta), half * math.cos(theta)
    rr, cc = line(round(-dy), round(-dx), round(dy), round(dx))
    return tuple(sorted(set(zip(rr.tolist(), cc.tolist()))))


def _motion_blur(cfg: DegradeConfig, img, mask, rng):
    k = int(rng.choice(_odd_sizes(*cfg.motion_blur_kernel_range)))
    angle = rng.uniform(0.0, 180.0)
    bucket = int(round(angle / _MOTION_ANGLE_STEP)) % int(round(180 / _MOTION_ANGLE_STEP))
    offsets = _motion_offsets(k, bucket)
    h, w = img.shape[:2]
    py = min(max(abs(o[0]) for o in offsets), h - 1)
    px = min(max(abs(o[1]) for o in offsets), w - 1)
    padded = np.pad(img, ((py, py), (px, px), (0, 0)), mode="reflect")  # numpy reflect = REFLECT_101
    out = np.zeros_like(img)
    for dy, dx in offsets:  # correlation with a uniform line kernel: sum of shifted views
        dy, dx = max(-py, min(py, dy)), max(-px, min(px, dx))
        np.add(out, padded[py + dy : py + dy + h, px + dx : px + dx + w], out=out)
    out *= np.float32(1.0 / len(offsets))
    return np.clip(out, 0.0, 1.0, out=out), mask


def _sensor_noise(cfg: DegradeConfig, img, mask, rng):
    read = rng.uniform(*cfg.noise_read_range)
    shot = rng.uniform(*cfg.noise_shot_range)
    std = np.sqrt(np.float32(read) ** 2 + np.float32(shot) ** 2 * img)  # Poisson-like: var grows with signal
    out = img + std * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(out, 0.0, 1.0, out=out), mask


def _jpeg(cfg: DegradeConfig, img, mask, rng):
    quality = int(rng.integers(cfg.jpeg_quality_range[0], cfg.jpeg_quality_range[1] + 1))
    u8 = (img * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        out = np.asarray(decoded.convert("RGB"), dtype=np.float32)
    out *= np.float32(1.0 / 255.0)
    return out, mask


def _smooth_field(h: int, w: int, cells: int, rng) -> np.ndarray:
    """A smooth random field in [0, 1]: a small uniform grid upsampled bilinearly."""
    gh = max(2, round(cells * h / max(h, w)) + 1)
    gw = max(2, round(cells * w / max(h, w)) + 1)
    coarse = rng.random((gh, gw), dtype=np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.BILINEAR), dtype=np.float32)


def _fog(cfg: DegradeConfig, img, mask, rng):
    """Albumentations-like fog: haze that is densest around a random point near the centre.

    Opacity = coef * (0.3 + 0.7 * density) where density mixes a smooth random field with a radial
    fall-off, the haze is a bright grey (0.8-1.0) and the image underneath is softened with a box
    blur of the size albumentations uses (``(w // 3 * coef) // 10`` px).
    """
    h, w = img.shape[:2]
    coef = rng.uniform(*cfg.fog_coef_range)
    haze_level = rng.uniform(0.8, 1.0)
    cy = h * rng.uniform(0.3, 0.7)
    cx = w * rng.uniform(0.3, 0.7)
    field = _smooth_field(h, w, 4, rng)
    ys, xs = _pixel_grid(h, w)
    rad = np.sqrt(((ys - cy) / h) ** 2 + ((xs - cx) / w) ** 2) * np.float32(1.6)
    density = 0.5 * field + 0.5 * np.clip(1.0 - rad, 0.0, 1.0)
    alpha = (np.float32(coef) * (np.float32(0.3) + np.float32(0.7) * density))[..., None]
    size = max(2, int((w // 3) * coef) // 10)
    soft = ndi.uniform_filter(img, size=(size, size, 1), mode="mirror")
    haze = np.float32(haze_level) * (np.float32(0.95) + np.float32(0.05) * field)[..., None]
    out = soft + alpha * (haze - soft)
    return np.clip(out, 0.0, 1.0, out=out), mask


def _distortion_maps(h: int, w: int, k: float, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates of OpenCV's ``initUndistortRectifyMap(K, [k, k, 0, 0, 0], None, K)``.

    K has fx = w, fy = h and its principal point at the centre shifted by (dx, dy) px, as in
    albumentations' ``OpticalDistortion``. The same K maps back, so the shift moves the centre of
    the distortion, not the picture. (albumentations 1.x rounds its shift, drawn in [-0.05, 0.05],
    to whole pixels, so the reference's is always 0; here it is up to ``shift_limit`` of the size.)
    With k = +-0.05 pixels move by up to ~4 px at the corners of a 224 px frame, < 1 px near the
    centre: a mild lens change, as in the reference.
    """
    ys, xs = _pixel_grid(h, w)
    fx, fy = np.float32(w), np.float32(h)
    cx, cy = np.float32(w * 0.5 + dx), np.float32(h * 0.5 + dy)
    x = (xs - cx) / fx
    y = (ys - cy) / fy
    r2 = x * x + y * y
    radial = 1.0 + np.float32(k) * r2 + np.float32(k) * r2 * r2
    return y * radial * fy + cy, x * radial * fx + cx


def _optical_distortion(cfg: DegradeConfig, img, mask, rng):
    h, w = img.shape[:2]
    k = rng.uniform(-cfg.distort_limit, cfg.distort_limit)
    dx = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * w
    dy = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * h
    map_y, map_x = _distortion_maps(h, w, k, dx, dy)
    (out,) = _remap([img], map_y, map_x, "bilinear")
    if mask is not None:
        mask = _warp_mask(mask, map_y, map_x)
    return np.clip(out, 0.0, 1.0, out=out), mask


def _soft_ellipse(h, w, cy, cx, a, b, theta, sigma):
    """A filled ellipse (semi-axes a >= b, angle theta) convolved with a Gaussian of std ``sigma``.

    Closed form instead of drawing + ``gaussian_filter``: a Gaussian-blurred edge is
    ``0.5 * erfc(d / (sigma * sqrt 2))`` with d the signed distance to the boundary, here the
    first-order distance ``(q - 1) / |grad q|`` with q the normalised elliptic radius (exact for
    circles). Close to the blurred ellipse (tested against ``gaussian_filter``), and its cost does
    not grow with sigma. Returns (y0, x0, patch) clipped to the image, or None when outside.
    """
    c, s = math.cos(theta), math.sin(theta)
    ey = math.sqrt((a * s) ** 2 + (b * c) ** 2) + 4 * sigma
    ex = math.sqrt((a * c) ** 2 + (b * s) ** 2) + 4 * sigma
    y0, y1 = max(0, int(math.floor(cy - ey))), min(h, int(math.ceil(cy + ey)) + 1)
    x0, x1 = max(0, int(math.floor(cx - ex))), min(w, int(math.ceil(cx + ex)) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    u = xx * np.float32(c) + yy * np.float32(s)
    v = yy * np.float32(c) - xx * np.float32(s)
    ua, vb = u / np.float32(a * a), v / np.float32(b * b)
    q = np.sqrt(u * ua + v * vb)  # normalised radius, 1 on the boundary
    grad_q = np.sqrt(ua * ua + vb * vb) / np.maximum(q, np.float32(1e-6))
    grad_q = np.maximum(grad_q, np.float32(1.0 / a))  # |grad q| lies in [1/a, 1/b]; guards q = 0
    d = (q - np.float32(1.0)) / grad_q
    patch = np.float32(0.5) * special.erfc(d * np.float32(1.0 / (sigma * math.sqrt(2.0))))
    return y0, x0, patch.astype(np.float32, copy=False)


def _specular(cfg: DegradeConfig, img, mask, rng):
    """Specular highlights: 1..max_spots soft ellipses added to all channels, clipped to white."""
    h, w = img.shape[:2]
    scale = min(h, w) / _REFERENCE_SIZE
    r_lo, r_hi = cfg.specular_radius_range
    n = 1 + (int(rng.binomial(cfg.specular_max_spots - 1, 0.35)) if cfg.specular_max_spots > 1 else 0)
    layer = np.zeros((h, w), dtype=np.float32)
    for i in range(n):
        # the first spot spans the reference's radii; extra glints are smaller (lower 40 % of the range)
        hi = r_hi if i == 0 else r_lo + 0.4 * (r_hi - r_lo)
        a = rng.uniform(r_lo, hi) * scale
        elongated = rng.random() < cfg.specular_elongated_p
        aspect = rng.uniform(*cfg.specular_aspect_range)
        b = a * aspect if elongated else a
        theta = rng.uniform(0.0, math.pi)
        sigma = max(0.5, rng.uniform(*cfg.specular_sigma_range) * b)
        intensity = rng.uniform(*cfg.specular_intensity_range)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        spot = _soft_ellipse(h, w, cy, cx, a, b, theta, sigma)
        if spot is None:
            continue
        y0, x0, patch = spot
        region = layer[y0 : y0 + patch.shape[0], x0 : x0 + patch.shape[1]]
        np.maximum(region, np.float32(intensity) * patch, out=region)
    out = img + layer[..., None]
    return np.clip(out, 0.0, 1.0, out=out), mask


_OPS: dict[str, Callable] = {
    "brightness_contrast": _brightness_contrast,
    "gaussian_blur": _gaussian_blur,
    "motion_blur": _motion_blur,
    "sensor_noise": _sensor_noise,
    "jpeg": _jpeg,
    "fog": _fog,
    "optical_distortion": _optical_distortion,
    "specular": _specular,
}
assert tuple(_OPS) == DEGRADATIONS


class Degrader:
    """Random degradation pipeline: ``image, mask = Degrader()(image, mask, rng)``.

    Each degradation fires independently with its probability (one ``rng.random()`` draw each, in
    :meth:`names` order). Only the optical distortion moves pixels, and it warps the mask with the
    image; every other degradation returns the mask untouched.
    """

    def __init__(self, config: DegradeConfig | None = None):
        self.config = config if config is not None else DegradeConfig()

    def names(self) -> list[str]:
        """The degradations of this pipeline in the order they are applied (``sensor_noise`` only
        when ``config.noise``)."""
        return [n for n in DEGRADATIONS if n != "sensor_noise" or self.config.noise]

    def probability(self, name: str) -> float:
        if name not in _OPS:
            raise KeyError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")
        if name == "sensor_noise" and not self.config.noise:
            return 0.0
        prefix = "noise" if name == "sensor_noise" else name
        return float(getattr(self.config, f"{prefix}_p"))

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """image float32 H x W x 3 in [0, 1]; mask bool/uint8 H x W (or float H x W x C: maps warped
        alike, nearest-neighbour), or None.

        Returns the degraded float32 image in [0, 1] (a new array) and the geometrically consistent
        mask, of the dtype given. Inputs are never modified.
        """
        img = _check_image(image).copy()
        mask = _check_mask(mask, img.shape)
        for name in self.names():
            if rng.random() < self.probability(name):
                img, mask = _OPS[name](self.config, img, mask, rng)
        return img, mask

    def apply_one(
        self, name: str, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Apply the named degradation unconditionally (its probability ignored)."""
        if name not in _OPS:
            raise KeyError(f"unknown degradation {name!r}; known: {', '.join(DEGRADATIONS)}")
        img = _check_image(image).copy()
        mask = _check_mask(mask, img.shape)
        return _OPS[name](self.config, img, mask, rng)


def degrade_seeded(
    image: np.ndarray, mask: np.ndarray | None, seed: int, config: DegradeConfig | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Degrade one frame deterministically (``rng = np.random.default_rng(seed)``): the seeded
    degraded evaluation (N->N), repeatable across runs."""
    return Degrader(config)(image, mask, np.random.default_rng(seed))


# --------------------------------------------------------------------------------------------------
# geometric augmentation


@dataclass
class AugmentConfig:
    """The reference's geometric augmentation (applied before the degradations).

    Rotation and shift-scale are composed into one affine warp (one interpolation); flips are exact.
    Borders are mirror-reflected (OpenCV REFLECT_101, the albumentations default).
    """

    rotate_p: float = 0.5
    rotate_limit: float = 15.0  # degrees, uniform in [-limit, limit]
    shift_scale_p: float = 0.5
    shift_limit: float = 0.0625  # fraction of width/height (albumentations ShiftScaleRotate default)
    scale_range: tuple[float, float] = (0.9, 1.1)
    hflip_p: float = 0.3
    vflip_p: float = 0.3

    def __post_init__(self) -> None:
        for name in ("rotate_p", "shift_scale_p", "hflip_p", "vflip_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be in [0, 1]")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"AugmentConfig.scale_range must be (low, high) > 0, got {self.scale_range!r}")


# Named augmentation strengths for ``depthpolyp train --augment``. "reference" is the reference's
# recipe; "strong" widens every range (rotation ±30°, shift 10 %, scale 0.75–1.25, flips at 0.5),
# for training from random weights on 800 frames, where the reference's ranges leave val flat.
AUGMENT_PRESETS = {
    "reference": AugmentConfig(),
    "strong": AugmentConfig(rotate_p=0.7, rotate_limit=30.0, shift_scale_p=0.7, shift_limit=0.1,
                            scale_range=(0.75, 1.25), hflip_p=0.5, vflip_p=0.5),
}


def augment_preset(name: str) -> AugmentConfig:
    """The :data:`AUGMENT_PRESETS` entry called ``name``; an unknown name is refused with the choices."""
    try:
        return AUGMENT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENT_PRESETS)}") from None


def augment_geometric(
    image: np.ndarray,
    mask: np.ndarray | None,
    depth: np.ndarray | None,
    rng: np.random.Generator,
    config: AugmentConfig | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Apply the same random rotation / shift-scale / flips to image, mask and depth.

    image float32 H x W x 3 (bilinear), mask H x W any dtype, or float H x W x C (nearest, dtype
    kept), depth float H x W (bilinear) or None. Returns new arrays; the number of rng draws is fixed
    per call.
    """
    cfg = config if config is not None else AugmentConfig()
    img = _check_image(image)
    mask = _check_mask(mask, img.shape)
    if depth is not None:
        depth = np.asarray(depth, dtype=np.float32)
        if depth.shape != img.shape[:2]:
            raise ValueError(f"depth shape {depth.shape} does not match image {img.shape[:2]}")
    h, w = img.shape[:2]

    do_rotate = rng.random() < cfg.rotate_p
    angle = rng.uniform(-cfg.rotate_limit, cfg.rotate_limit)
    do_shift_scale = rng.random() < cfg.shift_scale_p
    scale = rng.uniform(*cfg.scale_range)
    tx = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * w
    ty = rng.uniform(-cfg.shift_limit, cfg.shift_limit) * h
    hflip = rng.random() < cfg.hflip_p
    vflip = rng.random() < cfg.vflip_p

    img = img.copy()
    mask = None if mask is None else mask.copy()
    depth = None if depth is None else depth.copy()
    if do_rotate or do_shift_scale:
        a = math.radians(angle) if do_rotate else 0.0
        s = scale if do_shift_scale else 1.0
        t = (tx, ty) if do_shift_scale else (0.0, 0.0)
        # forward: p_out = s R (p_in - c) + c + t  =>  p_in = R^T (p_out - c - t) / s + c
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        ys, xs = _pixel_grid(h, w)
        ox = (xs - np.float32(cx + t[0])) / np.float32(s)
        oy = (ys - np.float32(cy + t[1])) / np.float32(s)
        ca, sa = np.float32(math.cos(a)), np.float32(math.sin(a))
        map_x = ca * ox + sa * oy + np.float32(cx)
        map_y = -sa * ox + ca * oy + np.float32(cy)
        arrays = [img] if depth is None else [img, depth]
        warped = _remap(arrays, map_y, map_x, "bilinear")
        img = np.clip(warped[0], 0.0, 1.0)
        if depth is not None:
            depth = warped[1]
        if mask is not None:
            mask = _warp_mask(mask, map_y, map_x)
    for flip, axis in ((hflip, 1), (vflip, 0)):
        if flip:
            img = np.flip(img, axis)
            mask = None if mask is None else np.flip(mask, axis)
            depth = None if depth is None else np.flip(depth, axis)
    img = np.ascontiguousarray(img)
    mask = None if mask is None else np.ascontiguousarray(mask)
    depth = None if depth is None else np.ascontiguousarray(depth)
    return img, mask, depth


@dataclass
class ColourConfig:
    """Ranges of :func:`augment_colour` (``depthpolyp train/finetune --colour``).

    Endoscopes differ in white balance, colour processing and tone curve: a model trained on one
    data set's colours meets others in the clinic. The brightness and contrast changes are already
    among the degradations; this adds what they leave out.
    """

    p: float = 0.8
    gain_range: tuple[float, float] = (0.9, 1.1)  # per channel (white balance), renormalised to mean 1
    hue_range: tuple[float, float] = (-0.05, 0.05)  # fraction of the hue circle (±18°), rotation in YIQ
    saturation_range: tuple[float, float] = (0.75, 1.25)  # chroma scale in YIQ
    gamma_range: tuple[float, float] = (0.8, 1.25)  # out = in ** gamma

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"ColourConfig.p must be in [0, 1], got {self.p!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_range") and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"ColourConfig.{f.name} must be (low, high), got {value!r}")
        if self.gain_range[0] <= 0 or self.gamma_range[0] <= 0 or self.saturation_range[0] < 0:
            raise ValueError("ColourConfig gains, gammas and saturations must be positive")


_RGB2YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
_YIQ2RGB = np.linalg.inv(_RGB2YIQ)


def augment_colour(image: np.ndarray, rng: np.random.Generator, config: ColourConfig | None = None) -> np.ndarray:
    """Random white balance, hue rotation, saturation and gamma of a float32 H x W x 3 image in [0, 1].

    Moves no pixel, so masks and depth maps need nothing. Draws a fixed number of values from
    ``rng`` per call (fired or not), so a seeded pipeline stays aligned. Returns a new array.
    """
    cfg = config if config is not None else ColourConfig()
    img = _check_image(image)
    fire = rng.random() < cfg.p
    gains = rng.uniform(*cfg.gain_range, size=3)
    hue = rng.uniform(*cfg.hue_range) * 2.0 * math.pi
    sat = rng.uniform(*cfg.saturation_range)
    gamma = rng.uniform(*cfg.gamma_range)
    if not fire:
        return img.copy()
    c, s = math.cos(hue), math.sin(hue)
    chroma = np.array([[1.0, 0.0, 0.0], [0.0, sat * c, -sat * s], [0.0, sat * s, sat * c]])
    m = _YIQ2RGB @ chroma @ _RGB2YIQ * (gains / gains.mean())[:, None]
    out = np.clip(img @ m.T.astype(np.float32), 0.0, 1.0)
    return np.power(out, np.float32(gamma), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# copy-paste of polyps between training frames


def paste_polyp(
    image: np.ndarray,
    mask: np.ndarray,
    donor_image: np.ndarray,
    donor_mask: np.ndarray,
    rng: np.random.Generator,
    scale_range: tuple[float, float] = (0.5, 1.0),
    feather: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Paste the polyp of ``donor_image`` (where ``donor_mask``) into ``image`` at a random place.

    The donor's polyp (its mask's bounding box) is resized by a factor drawn from ``scale_range``
    (never larger than the frame), placed at a uniformly random position, and blended with an alpha
    that is the donor mask softened by a Gaussian of ``feather`` px, so no hard seam tells the
    network where the paste is. The new mask is the union of both masks. Images are float32
    H x W x 3 in [0, 1], masks boolean. Draws a fixed number of values from ``rng`` per call.
    Returns new arrays; an empty donor mask returns copies of the inputs.
    """
    img = _check_image(image)
    mask = np.asarray(_check_mask(mask, img.shape), dtype=bool)
    donor = _check_image(donor_image)
    donor_mask = np.asarray(_check_mask(donor_mask, donor.shape), dtype=bool)
    factor = rng.uniform(*scale_range)
    u, v = rng.random(2)
    rows, cols = np.flatnonzero(donor_mask.any(1)), np.flatnonzero(donor_mask.any(0))
    if rows.size == 0:
        return img.copy(), mask.copy()
    crop = donor[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    crop_mask = donor_mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = img.shape[:2]
    factor = min(factor, h / crop.shape[0], w / crop.shape[1])
    ch, cw = max(1, round(crop.shape[0] * factor)), max(1, round(crop.shape[1] * factor))
    from .preprocess import resize_map

    crop = np.stack([resize_map(crop[..., c], (ch, cw)) for c in range(3)], -1).clip(0.0, 1.0)
    crop_mask = resize_map(crop_mask.astype(np.float32), (ch, cw)) >= 0.5
    y0, x0 = int(u * (h - ch + 1)), int(v * (w - cw + 1))
    # softened outside the polyp, at least half the donor inside it (where the new mask says polyp)
    alpha = np.maximum(ndi.gaussian_filter(crop_mask.astype(np.float32), feather, mode="constant"), crop_mask * np.float32(0.5))
    out, new_mask = img.copy(), mask.copy()
    region = out[y0 : y0 + ch, x0 : x0 + cw]
    region[...] = alpha[..., None] * crop + (1.0 - alpha[..., None]) * region
    new_mask[y0 : y0 + ch, x0 : x0 + cw] |= crop_mask
    return out, new_mask
