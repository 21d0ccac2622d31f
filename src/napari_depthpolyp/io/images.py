"""Reading still images, image folders, masks and depth maps.

Pixel values and dtypes are kept as stored: an 8-bit PNG gives ``uint8``, a 16-bit PNG ``uint16``, a
float TIFF ``float32``. Layouts are H×W (grayscale), H×W×3 (RGB) or H×W×4 (RGBA); palette,
CMYK and grayscale-with-alpha images are expanded to RGB / RGBA. TIFFs are read with tifffile
(RGB, 16-bit, float and multi-page); everything else with Pillow.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import tifffile
from natsort import natsorted, ns
from PIL import Image, UnidentifiedImageError

from .errors import InputError, check_file
from .stack import FrameStack

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_TIFF_EXTENSIONS = (".tif", ".tiff")

# Pillow modes that are converted on reading, so every image is H×W, H×W×3 or H×W×4.
_PIL_CONVERT = {"1": "L", "LA": "RGBA", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "RGBX": "RGB"}
# Pillow mode -> (channels, dtype); 0 channels means H×W.
_PIL_LAYOUT = {
    "L": (0, np.uint8), "RGB": (3, np.uint8), "RGBA": (4, np.uint8),
    "I;16": (0, np.uint16), "I;16L": (0, np.uint16), "I;16B": (0, np.uint16),
    "I": (0, np.int32), "F": (0, np.float32),
}


def is_image(path: str | os.PathLike) -> bool:
    """True if the file name has an image extension (see ``IMAGE_EXTENSIONS``; case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder`` in natural order (``frame2`` before ``frame10``).

    Hidden files (``.DS_Store``, macOS ``._frame1.jpg`` copies) and non-image files are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    files = [p for p in folder.iterdir() if p.is_file() and is_image(p) and not p.name.startswith(".")]
    return natsorted(files, key=lambda p: p.name, alg=ns.IGNORECASE)


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """All frames of an image file as a T×H×W[×C] array: one for PNG/JPEG, every page for a TIFF stack."""
    path = _check_image_file(path)
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        return _read_tiff(path)
    return _read_pil(path)[None]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image as H×W, H×W×3 or H×W×4, dtype as stored. A multi-page TIFF is refused (use read_input)."""
    frames = read_frames(path)
    if len(frames) != 1:
        raise InputError(f"{path}: holds {len(frames)} frames, not one image; open it as a stack (depthpolyp predict and napari take it as one input)")
    return frames[0]


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A binary mask as a bool H×W array (True = polyp).

    A mask with two values (0/1, 0/255, 0/65535 at any bit depth) is "not 0"; a label mask whose
    values are all below 128 (0/1/2 labels, a 0/1 mask saved as JPEG) is "not 0" too; one with more
    values up to 255 (JPEG compression noise of a 0/255 mask) is cut at ``> 127``, wider ones at half
    range; float ones at 0.5 (:func:`binarise_mask`). For colour masks a pixel is set if any of R, G,
    B is set (alpha is ignored). An image that is clearly not a mask (a photo, a grey gradient) is
    refused with an :class:`InputError` naming the file (see :data:`NOT_BINARY_FRACTION`).
    """
    return _binarise(read_image(path)[None], path)[0]


def read_mask_stack(path: str | os.PathLike) -> np.ndarray:
    """A mask stack (e.g. a multi-page TIFF written by ``write_mask_stack_tiff``) as bool T×H×W.
    Every frame must pass :func:`binarise_mask`'s check; a failing one is named with the file."""
    return _binarise(read_frames(path), path)


def read_depth(path: str | os.PathLike) -> np.ndarray:
    """A depth map as float32 H×W in [0, 1]: 16-bit PNGs are divided by 65535 (8-bit by 255);
    float TIFFs are returned as stored."""
    depth = read_image(path)
    if depth.ndim != 2:
        raise InputError(f"{path}: a depth map has one channel, this image has shape {depth.shape}")
    if depth.dtype.kind == "f":
        return depth.astype(np.float32)
    if depth.dtype.kind in "ui":
        return (depth / np.iinfo(depth.dtype).max).astype(np.float32)
    raise InputError(f"{path}: unsupported depth map type {depth.dtype}")


class FolderStack(FrameStack):
    """A folder of same-size images as a lazy T×H×W[×C] stack, frames in natural file-name order.

    Every file's header is checked on opening, so a folder with one odd-sized image fails at once
    with an error naming that file rather than half-way through a long run. ``files`` lists the frames.
    """

    kind = "folder"

    def __init__(self, folder: str | os.PathLike, cache_size: int = 8):
        folder = Path(folder)
        files = list_images(folder)
        if not files:
            raise InputError(f"{folder}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        shape, dtype = _probe_single(files[0])
        for file in files[1:]:
            _check_same(file, *_probe_single(file), files[0], shape, dtype)
        self.files = files
        super().__init__(folder, shape, dtype, len(files), cache_size)

    def _read_frame(self, index: int) -> np.ndarray:
        frame = read_image(self.files[index])
        _check_same(self.files[index], frame.shape, frame.dtype, self.files[0], self.frame_shape, self.dtype)
        return frame

    def frame_name(self, index: int) -> str:
        return self.files[self._time_indices(int(index))].stem


# -- internals ---------------------------------------------------------------------------------------
def _check_image_file(path: str | os.PathLike) -> Path:
    path = check_file(path)
    if not is_image(path):
        raise InputError(f"{path}: not a supported image type (expected one of {', '.join(IMAGE_EXTENSIONS)})")
    return path


def _describe(shape: tuple[int, ...], dtype) -> str:
    channels = {2: "grayscale"}.get(len(shape)) or {3: "RGB", 4: "RGBA"}.get(shape[-1], f"{shape[-1]}-channel")
    return f"{shape[1]}×{shape[0]} px {channels} {np.dtype(dtype)}"


def _check_same(file: Path, shape, dtype, first: Path, first_shape, first_dtype) -> None:
    if tuple(shape) != tuple(first_shape) or np.dtype(dtype) != np.dtype(first_dtype):
        raise InputError(
            f"{file}: image is {_describe(shape, dtype)} but the folder's first image {first.name} is "
            f"{_describe(first_shape, first_dtype)}; all images in a folder must have the same size and type"
        )


def _binarise(frames: np.ndarray, path: str | os.PathLike | None = None) -> np.ndarray:
    """T×H×W[×C] -> bool T×H×W (see read_mask)."""
    if frames.ndim == 4:
        frames = frames[..., :3].max(axis=-1)
    return binarise_mask(frames, source=path, stack=True)


# A mask is refused as "clearly not binary" when more than this fraction of its pixels lie strictly
# between 10 % and 90 % of its value range (8-bit: 26..229). Measured: 0.0 for every mask of
# Kvasir-SEG (1000 JPEGs with compression noise: their values are 0..8 and 246..255), CVC-ClinicDB
# (612), the bundled samples and everything this project writes (0/255); <= 1 % for binary masks
# re-saved as JPEG at quality 20, <= 3 % / 6 % for masks resized with anti-aliasing to 128 / 64 px;
# >= 36 % for Kvasir-SEG / CVC-ClinicDB frames put in masks/ by mistake, ~80 % for a grey ramp.
NOT_BINARY_FRACTION = 0.10
_MID_BAND = (0.1, 0.9)


def binarise_mask(arr: np.ndarray, source: str | os.PathLike | None = None, *, stack: bool = False) -> np.ndarray:
    """A mask array of any type as bool (True = polyp), one rule for every reader.

    bool as is; float ``> 0.5``; an integer mask with at most two values (0/1, 0/255, 0/65535,
    a label 0/2, ...) is ``!= 0``, whatever its bit depth, so a 16-bit file holding 0/255 is not
    emptied. An integer mask with more values whose maximum is below 128 holds labels (0/1/2 from
    another tool, or a 0/1 mask saved as JPEG, whose noise gives 0..3 or so): every label ``> 0`` is
    polyp (half of the smallest label, 1, is 0.5, so no other cut can be right for it). Other
    integer masks with more values (JPEG noise of a 0/255 mask, anti-aliased edges) are cut at half
    of their range: ``> 127`` when every value fits in 8 bits, else at half of their type's range.

    An array that is clearly not a mask is refused with :class:`InputError`: more than
    :data:`NOT_BINARY_FRACTION` of its pixels (of any one frame when ``stack``, the first axis
    being frames) lie between 10 % and 90 % of its range (0..255 when every value fits in 8 bits,
    else the type's range; 0..1 for floats up to 1). Masks with one or two values are never refused.
    ``source`` (a file) starts the message.
    """
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        hi = float(np.max(arr, initial=0.0, where=finite)) if arr.size else 0.0
        if not _two_valued(arr):
            _check_binary(arr, 1.0 if hi <= 1.0 else 255.0 if hi <= 255.0 else hi, source, stack)
        return arr > 0.5
    if arr.dtype.kind not in "ui":
        raise InputError(f"{source}: unsupported mask type {arr.dtype}" if source is not None
                         else f"unsupported mask type {arr.dtype}")
    if arr.size == 0:
        return arr != 0
    lo, hi = int(arr.min()), int(arr.max())
    if _two_valued(arr, lo, hi):
        return arr != 0 if lo == 0 or lo == hi else arr == hi
    scale = 255 if hi <= 255 else np.iinfo(arr.dtype).max
    _check_binary(arr, scale, source, stack)
    if 0 < hi < 128:
        return arr > 0
    return arr > scale // 2


def is_mask_like(frames: np.ndarray) -> bool:
    """Integer frames holding only 0 and at most one other value (0/1, 0/255, 0/65535): masks as this
    project writes them, all-zero ones (no polyp) included. The caller checks the layout (one
    channel: H×W, or T×H×W for a stack)."""
    return frames.dtype.kind in "ub" and frames.size > 0 and frames.min() == 0 and _two_valued(frames)


def _two_valued(arr: np.ndarray, lo=None, hi=None) -> bool:
    if arr.size == 0:
        return True
    lo = arr.min() if lo is None else lo
    hi = arr.max() if hi is None else hi
    return bool(lo == hi or not np.any((arr != lo) & (arr != hi)))


def _check_binary(arr: np.ndarray, scale: float, source, stack: bool) -> None:
    """Raise InputError when too many pixels are neither background nor polyp (see binarise_mask)."""
    low, high = _MID_BAND[0] * scale, _MID_BAND[1] * scale
    mid = (arr > low) & (arr < high)
    if stack and arr.ndim >= 3:
        fractions = mid.reshape(len(arr), -1).mean(axis=1)
        worst = int(np.argmax(fractions))
        fraction, where = float(fractions[worst]), f" (frame {worst})" if len(arr) > 1 else ""
    else:
        fraction, where = float(mid.mean()), ""
    if fraction > NOT_BINARY_FRACTION:
        prefix = f"{source}: " if source is not None else ""
        span = f"{low:g}..{high:g}" if arr.dtype.kind == "f" else f"{int(low) + 1}..{int(np.ceil(high)) - 1}"
        raise InputError(
            f"{prefix}not a binary mask{where}: {fraction:.0%} of its pixels are grey values ({span}, neither "
            f"background nor polyp; a mask has at most {NOT_BINARY_FRACTION:.0%}); is it a photo or a map "
            "rather than a mask? A mask is 0/255 (or 0/1 labels), polyp = non-zero")


def probe_tiff(path: str | os.PathLike) -> tuple[int, tuple[int, ...], np.dtype]:
    """(number of frames, frame shape H×W[×C], dtype) of a TIFF from its header, as
    :func:`read_frames` would return it, without decoding pixels."""
    path = _check_image_file(path)
    with _open_tiff(path) as tif:
        series = tif.series[0]
        order, frame_ndim = _tiff_order(series.axes, path)
        shape = [series.shape[i] for i in order]
        return math.prod(shape[:-frame_ndim]), _squeeze_channel(shape[-frame_ndim:]), np.dtype(series.dtype)


def _probe_single(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a one-frame image file from its header, without decoding pixels."""
    path = _check_image_file(path)
    if path.suffix.lower() in _TIFF_EXTENSIONS:
        count, frame_shape, dtype = probe_tiff(path)
        if count != 1:
            raise InputError(f"{path}: holds {count} frames; a folder stack takes one image per file")
        return frame_shape, np.dtype(dtype)
    with _open_pil(path) as im:
        mode = _target_mode(im)
        channels, dtype = _PIL_LAYOUT[mode]
        return (im.height, im.width) + ((channels,) if channels else ()), np.dtype(dtype)


def _open_pil(path: Path) -> Image.Image:
    _refuse_16bit_colour_png(path)
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:  # a header that claims a frame of gigapixels
        raise InputError(f"{path}: refused, larger than any frame this reads ({exc})") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from exc


def _refuse_16bit_colour_png(path: Path) -> None:
    # Pillow silently reduces 16-bit colour PNGs to 8 bits; refuse rather than lose precision.
    with open(path, "rb") as fh:
        header = fh.read(26)
    if header[:8] == b"\x89PNG\r\n\x1a\n" and len(header) == 26 and header[24] == 16 and header[25] in (2, 4, 6):
        raise InputError(f"{path}: 16-bit colour PNGs are not supported (they would lose precision); save it as TIFF")


def _target_mode(im: Image.Image) -> str:
    if im.mode == "P":
        return "RGBA" if "transparency" in im.info else "RGB"
    mode = _PIL_CONVERT.get(im.mode, im.mode)
    if mode not in _PIL_LAYOUT:
        raise InputError(f"{im.filename}: unsupported pixel format {im.mode!r}")
    return mode


def _read_pil(path: Path) -> np.ndarray:
    with _open_pil(path) as im:
        mode = _target_mode(im)
        try:
            array = np.asarray(im.convert(mode) if mode != im.mode else im)
        except OSError as exc:  # truncated or damaged pixel data
            raise InputError(f"{path}: image data is damaged ({exc})") from exc
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _open_tiff(path: Path) -> tifffile.TiffFile:
    try:
        return tifffile.TiffFile(path)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable TIFF ({exc})") from exc


def _tiff_order(axes: str, path: Path) -> tuple[list[int], int]:
    """Axis order that puts frame axes first, then Y, X and the channel axis; and the frame's ndim."""
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"{path}: TIFF has no image plane (axes {axes!r})")
    channel = "S" if "S" in axes else ("C" if "C" in axes else None)
    frame_axes = ["Y", "X"] + ([channel] if channel else [])
    order = [i for i, a in enumerate(axes) if a not in frame_axes] + [axes.index(a) for a in frame_axes]
    return order, len(frame_axes)


def _squeeze_channel(frame_shape) -> tuple[int, ...]:
    frame_shape = tuple(int(n) for n in frame_shape)
    return frame_shape[:2] if len(frame_shape) == 3 and frame_shape[2] == 1 else frame_shape


def _read_tiff(path: Path) -> np.ndarray:
    with _open_tiff(path) as tif:
        series = tif.series[0]
        order, frame_ndim = _tiff_order(series.axes, path)
        try:
            array = series.asarray()
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: TIFF image data is damaged ({exc})") from exc
    array = array.transpose(order)
    array = array.reshape((-1,) + _squeeze_channel(array.shape[-frame_ndim:]))
    return array.astype(array.dtype.newbyteorder("="), copy=False)
