"""The project's one dataset format, and readers for plain image/mask folders (numpy + Pillow only).

Manifest dataset (written by :class:`DatasetWriter`, i.e. the napari export)::

    ROOT/images/NAME.png        RGB, lossless
    ROOT/masks/NAME.png         0/255
    ROOT/depth/NAME.png         optional, 16-bit relative inverse depth (0..65535 ↔ 0..1)
    ROOT/manifest.json          {"format": "depthpolyp-dataset", "version": 1, "created": ...,
                                 "frames": [{"name", "image", "mask", "depth" | null,
                                             "source": {"file", "frame_index"},
                                             "status": "accepted"|"corrected"|"empty"|"unreviewed",
                                             "proposed_by": {"model", "version", "sha256"} | null,
                                             "created", "modified",
                                             "sha256": {"image", "mask", "depth"}}]}

Plain folder (Kvasir-SEG, CVC-ClinicDB, ...): ``ROOT/images/NAME.ext`` and ``ROOT/masks/NAME.ext``
(.png .jpg .jpeg .tif .tiff .bmp; extensions may differ between image and mask), optional
``ROOT/depth/NAME.(png|tif|tiff)`` and an optional ``ROOT/split.json`` ``{split: [names]}``.
Images and masks are paired by NAME (the file stem), never by listing order.

Reading conventions (:meth:`Dataset.load`): images are returned RGB uint8 in their stored pixel
orientation (EXIF rotation is not applied, so they stay aligned with their masks); alpha is
dropped, grey is repeated to 3 channels, 16-bit is scaled to 8-bit (``round(v·255/65535)``).
Every file holds one image of 1 to 4 channels: a multi-page TIFF or a 5-channel one is refused
(as ``depthpolyp predict`` refuses them), naming the file. Masks follow
:func:`napari_depthpolyp.io.images.binarise_mask`, the rule of every mask reader: two values
(0/1, 0/255, ...) are "not 0", labels below 128 (0/1/2, a 0/1 mask saved as JPEG) are "not 0",
others (JPEG noise of 0/255 masks) ``> 127``; colour masks use the maximum over channels. A mask
that is clearly not binary (a photo or a grey ramp in masks/) is refused, naming the file.
Depth is float32: 8-bit / 16-bit integers are scaled to [0, 1], float TIFFs are returned as stored.

Opening a manifest dataset checks that its files are the ones exported (their sha256 against the
manifest's, see :meth:`Dataset.check_unchanged`; about 1 s per 1000 Kvasir-sized frames): a file
changed since is refused, naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from napari_depthpolyp.io.atomic import atomic_path, file_sha256, write_json

__all__ = [
    "DatasetError",
    "Sample",
    "Dataset",
    "DatasetWriter",
    "file_sha256",
    "FORMAT",
    "VERSION",
    "STATUSES",
]

FORMAT = "depthpolyp-dataset"
VERSION = 1
MANIFEST = "manifest.json"
STAGING = ".depthpolyp-staging"  # DatasetWriter's frames before close(); see DatasetWriter
SPLIT_FILE = "split.json"
STATUSES = ("accepted", "corrected", "empty", "unreviewed")
REVIEWED = ("accepted", "corrected", "empty")  # ground truth; an unreviewed frame holds a model's proposal
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DEPTH_EXTS = (".png", ".tif", ".tiff")
_TIFF_EXTS = (".tif", ".tiff")
_MAX_LISTED = 10


class DatasetError(ValueError):
    """A dataset folder or manifest is invalid (unpaired names, size mismatches, bad manifest...)."""


def _listing(names: Sequence[str], limit: int = _MAX_LISTED) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    more = f", ... and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more}"


def _natural_key(name: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def _sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- pixel reading
def _unreadable(path: Path, exc: Exception) -> DatasetError:
    if isinstance(exc, FileNotFoundError):
        return DatasetError(f"{path}: the file is missing")
    reason = str(exc) or type(exc).__name__
    return DatasetError(f"{path}: cannot be read as an image ({reason}); it may be damaged or not an image")


def _named(read, path: Path):
    """``read(path)``; whatever a missing, damaged or truncated file raises becomes a
    :class:`DatasetError` naming it."""
    try:
        return read(path)
    except DatasetError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from None


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    return _named(_header_size, path)


def _header_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    if path.suffix.lower() in _TIFF_EXTS:  # frames and channels as read_frames (predict) sees them
        from .io.images import probe_tiff

        count, shape, _ = probe_tiff(path)
        _check_layout(path, count, shape)
        return int(shape[1]), int(shape[0])
    with Image.open(path) as im:
        return im.size


def _check_layout(path: Path, count: int, shape: Sequence[int]) -> None:
    """One image of 1 to 4 channels per file: a multi-page TIFF or a 5-channel one is refused (as
    predict refuses them) rather than read as its first page or first channels."""
    if count != 1:
        raise DatasetError(
            f"{path}: holds {count} pages (frames), not one image; a dataset file is one image "
            "(save each frame as its own file)")
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[-1] > 4):
        what = f"{shape[-1]} channels ({shape[1]}×{shape[0]} px)" if len(shape) == 3 else f"array shape {tuple(shape)}"
        raise DatasetError(f"{path}: image has {what}; a dataset image is greyscale, RGB or RGBA (at most 4 channels)")


def _read_array(path: Path) -> np.ndarray:
    """Pixels as stored (H×W or H×W×C), palette / 1-bit images expanded by Pillow. A missing,
    damaged or truncated file raises :class:`DatasetError` naming it."""
    return _named(_decode, path)


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    if path.suffix.lower() in _TIFF_EXTS:
        from .io.images import read_frames  # the reader of predict: axes (planar RGB, ...) from the TIFF

        frames = read_frames(path)
        _check_layout(path, len(frames), frames.shape[1:])
        return frames[0]
    with Image.open(path) as im:
        if im.mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode == "1":
            im = im.convert("L")
        elif im.mode in ("I;16B", "I;16L", "I;16N"):
            im = im.convert("I;16")
        elif im.mode == "CMYK":
            im = im.convert("RGB")
        arr = np.asarray(im)
    if arr.dtype == np.int32 and arr.size and arr.min() >= 0 and arr.max() <= 65535:
        arr = arr.astype(np.uint16)  # 16-bit PNGs opened as mode "I" by older Pillow
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale an integer / float image to uint8 (16-bit → ×255/65535, float [0,1] → ×255)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16 or (np.issubdtype(arr.dtype, np.integer) and arr.size and arr.max() > 255):
        return np.round(np.clip(arr, 0, 65535).astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return np.clip(arr, 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        a = np.nan_to_num(arr.astype(np.float64), nan=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        return np.round(np.clip(a, 0, 255)).astype(np.uint8)
    raise DatasetError(f"unsupported pixel type {arr.dtype}")


def _to_rgb(arr: np.ndarray) -> np.ndarray:
    arr = _to_uint8(arr)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    if arr.ndim == 3 and arr.shape[-1] == 2:  # grey + alpha
        return np.repeat(arr[..., :1], 3, axis=-1)
    if arr.ndim == 3 and arr.shape[-1] >= 3:
        return np.ascontiguousarray(arr[..., :3])
    raise DatasetError(f"cannot interpret an array of shape {arr.shape} as an image")


def _to_mask(arr: np.ndarray, path: Path | None = None) -> np.ndarray:
    """bool H×W by :func:`~napari_depthpolyp.io.images.binarise_mask` (the rule of every mask
    reader); a mask that is clearly not binary raises :class:`DatasetError` naming ``path``."""
    from .io.images import InputError, binarise_mask

    if arr.ndim == 3:
        arr = arr[..., :3] if arr.shape[-1] in (3, 4) else arr[..., :1]
        arr = arr.max(axis=-1)
    try:
        return binarise_mask(arr, source=path)
    except InputError as exc:
        raise DatasetError(str(exc)) from None


def _to_depth(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        return (arr.astype(np.float64) / info.max).astype(np.float32)
    return arr.astype(np.float32)


# ----------------------------------------------------------------------------- samples and datasets
@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    mask: Path
    depth: Path | None = None


def _inside(root: Path, rel: str, what: str, name: str) -> Path:
    if not isinstance(rel, str) or not rel:
        raise DatasetError(f"manifest frame {name!r}: {what} path missing")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise DatasetError(f"manifest frame {name!r}: {what} path {rel!r} must be relative and inside the dataset")
    return root / p


def _index_folder(folder: Path, exts: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """NAME → path for files with one of ``exts``; also returns names present with several extensions."""
    found: dict[str, list[Path]] = {}
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.name.startswith(".") or not entry.is_file():
                continue  # hidden files, our own temporary files
            p = Path(entry.path)
            if p.suffix.lower() in exts:
                found.setdefault(p.stem, []).append(p)
    dup = sorted((n for n, ps in found.items() if len(ps) > 1), key=_natural_key)
    return {n: ps[0] for n, ps in found.items() if len(ps) == 1}, dup


def _read_split(root: Path, split: str) -> list[str]:
    path = root / SPLIT_FILE
    if not path.is_file():
        raise DatasetError(f"split {split!r} requested but {path} does not exist")
    splits = _read_json(path)
    if not isinstance(splits, dict) or split not in splits:
        keys = sorted(splits) if isinstance(splits, dict) else []
        raise DatasetError(f"split {split!r} not in {path} (available: {', '.join(keys) or 'none'})")
    names = splits[split]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"split {split!r} in {path} must be a list of names")
    out = []
    for n in names:  # tolerate "NAME.jpg" entries
        stem = Path(n).stem if Path(n).suffix.lower() in IMAGE_EXTS else n
        out.append(stem)
    dups = sorted((n for n, c in Counter(out).items() if c > 1), key=_natural_key)
    if dups:
        raise DatasetError(f"split {split!r} lists {len(dups)} names twice: {_listing(dups)}")
    return out


def read_splits(root: str | os.PathLike) -> dict | None:
    """A dataset folder's split.json as it stands, or None where there is no readable one (no file,
    not JSON, not an object): for callers that only consult it."""
    path = Path(root) / SPLIT_FILE
    if not path.is_file():
        return None
    try:
        splits = _read_json(path)
    except DatasetError:
        return None
    return splits if isinstance(splits, dict) else None


def holds_out(root: str | os.PathLike) -> bool:
    """Whether a dataset folder's split.json holds frames out for comparison (a ``val`` split beside
    ``train``, as an export with a share held out writes it); False for a folder without a readable one."""
    splits = read_splits(root)
    return splits is not None and bool(splits.get("val")) and "train" in splits


def _read_json(path: Path):
    """A JSON file's content; unreadable, not UTF-8 (a binary file) or not JSON: a DatasetError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"cannot read {path}: it is not a UTF-8 JSON text file ({exc})") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc


def _check_sizes(samples: Sequence[Sample]) -> None:
    bad: list[str] = []
    for s in samples:
        size = _image_size(s.image)
        msize = _image_size(s.mask)
        problem = []
        if msize != size:
            problem.append(f"mask {s.mask.name} is {msize[0]}×{msize[1]}")
        if s.depth is not None:
            dsize = _image_size(s.depth)
            if dsize != size:
                problem.append(f"depth {s.depth.name} is {dsize[0]}×{dsize[1]}")
        if problem:
            bad.append(f"{s.name} (image {s.image.name} is {size[0]}×{size[1]}, {', '.join(problem)})")
    if bad:
        raise DatasetError(f"{len(bad)} samples with mismatched image/mask/depth sizes: {_listing(bad)}")


class Dataset:
    """A sequence of :class:`Sample`, from a manifest folder or a plain images/masks folder."""

    def __init__(self, root: str | os.PathLike, samples: Sequence[Sample], manifest: dict | None = None):
        self.root = Path(root)
        self.samples: list[Sample] = list(samples)
        self.manifest = manifest
        self._frames: dict[str, dict] = (
            {f["name"]: f for f in manifest.get("frames", [])} if manifest is not None else {}
        )
        self._digests: dict[Path, str] = {}  # files hashed by check_unchanged, reused by fingerprint

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        split: str | None = None,
        *,
        statuses: Iterable[str] | None = None,
        check_sizes: bool = True,
        verify: bool = True,
    ) -> "Dataset":
        """Open a manifest dataset or a plain images/masks folder.

        ``split``: None = every sample, else a key of ``ROOT/split.json``. ``statuses`` keeps only
        manifest frames with those review statuses, e.g. ``("accepted", "corrected", "empty")`` to
        train without unreviewed proposals; None keeps all. Plain folders have no statuses (all
        their masks are ground truth), so ``statuses`` does not filter them.
        ``check_sizes`` compares image/mask/depth sizes from the file headers. ``verify`` (manifest
        datasets) checks that the chosen samples' files still have the sha256 the manifest recorded
        when they were exported (:meth:`check_unchanged`: about 1 s per 1000 Kvasir-sized frames);
        a changed file raises :class:`DatasetError` naming it.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"dataset folder {root} does not exist")
        if (root / MANIFEST).is_file():
            ds = cls._open_manifest(root, statuses)
        else:
            ds = cls._open_plain(root)
        if split is not None:
            wanted = _read_split(root, split)
            by_name = {s.name: s for s in ds.samples}
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise DatasetError(
                    f"{len(missing)} names of split {split!r} have no image/mask pair in {root}: {_listing(missing)}"
                )
            ds.samples = [by_name[n] for n in wanted]
        if verify:
            ds.check_unchanged()
        if check_sizes:
            _check_sizes(ds.samples)
        return ds

    @classmethod
    def _open_manifest(cls, root: Path, statuses: Iterable[str] | None) -> "Dataset":
        path = root / MANIFEST
        manifest = _read_json(path)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DatasetError(f"{path} is not a {FORMAT} manifest")
        if manifest.get("version") != VERSION:
            raise DatasetError(
                f"{path} has format version {manifest.get('version')!r}; this version reads {VERSION}"
            )
        frames = manifest.get("frames")
        if not isinstance(frames, list):
            raise DatasetError(f"{path}: 'frames' must be a list")
        keep = None
        if statuses is not None:
            keep = set(statuses)
            unknown = keep - set(STATUSES)
            if unknown:
                raise DatasetError(f"unknown statuses {sorted(unknown)}; known: {', '.join(STATUSES)}")
        samples, missing, seen = [], [], set()
        for i, fr in enumerate(frames):
            if not isinstance(fr, dict) or not isinstance(fr.get("name"), str):
                raise DatasetError(f"{path}: frame {i} has no name")
            name = fr["name"]
            if name in seen:
                raise DatasetError(f"{path}: frame name {name!r} appears twice")
            seen.add(name)
            if fr.get("status") not in STATUSES:
                raise DatasetError(f"{path}: frame {name!r} has unknown status {fr.get('status')!r}")
            if keep is not None and fr["status"] not in keep:
                continue
            image = _inside(root, fr.get("image"), "image", name)
            mask = _inside(root, fr.get("mask"), "mask", name)
            depth = _inside(root, fr["depth"], "depth", name) if fr.get("depth") else None
            for p in (image, mask, depth):
                if p is not None and not p.is_file():
                    missing.append(f"{name} ({p.relative_to(root)})")
            samples.append(Sample(name, image, mask, depth))
        if missing:
            raise DatasetError(f"{len(missing)} files listed in {path} are missing: {_listing(missing)}")
        return cls(root, samples, manifest)

    @classmethod
    def _open_plain(cls, root: Path) -> "Dataset":
        img_dir, mask_dir = root / "images", root / "masks"
        if not img_dir.is_dir() or not mask_dir.is_dir():
            raise DatasetError(f"{root} is not a dataset: expected {MANIFEST} or images/ and masks/ folders")
        images, dup_i = _index_folder(img_dir, IMAGE_EXTS)
        masks, dup_m = _index_folder(mask_dir, IMAGE_EXTS)
        depths, dup_d = _index_folder(root / "depth", DEPTH_EXTS)
        dups = sorted(set(dup_i) | set(dup_m) | set(dup_d), key=_natural_key)
        if dups:
            raise DatasetError(f"{len(dups)} names exist with several extensions in one folder: {_listing(dups)}")
        no_mask = sorted(set(images) - set(masks), key=_natural_key)
        no_image = sorted(set(masks) - set(images), key=_natural_key)
        if no_mask or no_image:
            parts = []
            if no_mask:
                parts.append(f"{len(no_mask)} images without a mask: {_listing(no_mask)}")
            if no_image:
                parts.append(f"{len(no_image)} masks without an image: {_listing(no_image)}")
            raise DatasetError(f"{len(no_mask) + len(no_image)} unpaired names in {root}; " + "; ".join(parts))
        if not images:
            raise DatasetError(f"{root} has no images in images/")
        names = sorted(images, key=_natural_key)
        samples = [Sample(n, images[n], masks[n], depths.get(n)) for n in names]
        return cls(root, samples, None)

    # -- sequence protocol ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __repr__(self) -> str:
        kind = "manifest" if self.manifest is not None else "plain"
        return f"Dataset({str(self.root)!r}, {len(self)} samples, {kind})"

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    def frame_info(self, i: int | str) -> dict | None:
        """The manifest entry of sample ``i`` (index or name); None for plain folders."""
        name = i if isinstance(i, str) else self.samples[i].name
        return self._frames.get(name)

    # -- content -------------------------------------------------------------------------------
    def fingerprint(self, rehash: bool = False) -> str:
        """sha256 over the sorted (name, sha256(image), sha256(mask)) of the samples.

        Content-based and independent of file names' extensions, order and location; depth maps
        are not included (they are derived data). Every file is hashed once per call, and not at all
        if :meth:`check_unchanged` (run by :meth:`open`) has just hashed it, unless ``rehash`` (the
        files as they are now, e.g. after reading them all).
        """
        cache: dict[Path, str] = {}

        def h(p: Path) -> str:
            if p not in cache:
                cache[p] = (None if rehash else self._digests.get(p)) or file_sha256(p)
            return cache[p]

        digest = hashlib.sha256()
        for s in sorted(self.samples, key=lambda s: s.name):
            # surrogateescape: a file name that is not UTF-8 (Latin-1 bytes) hashes as its own bytes
            digest.update(f"{s.name}\0{h(s.image)}\0{h(s.mask)}\n".encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def verify(self) -> list[str]:
        """Compare files with the sha256 recorded in the manifest; returns the problems (empty = ok)."""
        problems = []
        for s, key, path, want in self._recorded():
            if not want:
                problems.append(f"{s.name}: no sha256 recorded for {key}")
            elif _sha256(path) != want:
                problems.append(f"{s.name}: {key} {path.name} does not match its recorded sha256")
        return problems

    def check_unchanged(self) -> None:
        """Raise :class:`DatasetError` naming every file of the samples whose sha256 differs from the
        one the manifest recorded at export (an image or mask edited, replaced or swapped since).
        Files without a recorded sha256 are not checked (see :meth:`verify`); plain folders have none.
        :meth:`open` calls it unless ``verify=False``."""
        changed = []
        for _, _, path, want in self._recorded():
            if want:
                now = self._digests[path] = _sha256(path)
                if now != want:
                    changed.append(f"{path}: changed since it was exported: sha256 {want} recorded, {now} now")
        if len(changed) == 1:
            raise DatasetError(changed[0])
        if changed:
            raise DatasetError(f"{len(changed)} files changed since they were exported (their sha256 differs "
                               f"from {self.root / MANIFEST}): {_listing(changed)}")

    def _recorded(self) -> Iterator[tuple[Sample, str, Path, str | None]]:
        """(sample, "image"|"mask"|"depth", file, recorded sha256 or None) of the manifest's samples."""
        for s in self.samples:
            fr = self._frames.get(s.name)
            if fr is None:
                continue
            recorded = fr.get("sha256")
            recorded = recorded if isinstance(recorded, dict) else {}
            for key, path in (("image", s.image), ("mask", s.mask), ("depth", s.depth)):
                if path is not None:
                    want = recorded.get(key)
                    yield s, key, path, want if isinstance(want, str) and want else None

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(RGB uint8 H×W×3, mask bool H×W, depth float32 H×W or None) of sample ``i``."""
        s = self.samples[i]
        image = _to_rgb(_read_array(s.image))
        mask = _to_mask(_read_array(s.mask), s.mask)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"{s.name}: mask {s.mask.name} is {mask.shape}, image is {image.shape[:2]}")
        depth = None
        if s.depth is not None:
            depth = _to_depth(_read_array(s.depth))
            if depth.shape != image.shape[:2]:
                raise DatasetError(f"{s.name}: depth {s.depth.name} is {depth.shape}, image is {image.shape[:2]}")
        return image, mask, depth


# ----------------------------------------------------------------------------- writing
_NAME_RE = re.compile(r'^[^/\\:*?"<>|\x00-\x1f]+$')


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or name.startswith(".") or name != name.strip() \
            or name.endswith(".") or len(name) > 200:
        raise DatasetError(
            f"invalid frame name {name!r}: use letters, digits, spaces and . _ - + (no path separators, "
            "not starting with '.', at most 200 characters)"
        )
    return name


def _image_to_write(image: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 2, 3, 4):
        raise DatasetError(f"frame {name!r}: image must be H×W or H×W×C (C ≤ 4), got {arr.shape}")
    if arr.ndim not in (2, 3):
        raise DatasetError(f"frame {name!r}: image must be H×W or H×W×C, got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
            raise DatasetError(f"frame {name!r}: float image must be finite in [0, 1] or [0, 255]")
    return _to_rgb(arr)


def _mask_to_write(mask: np.ndarray, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise DatasetError(f"frame {name!r}: mask must be H×W, got {m.shape}")
    if m.dtype == bool:
        return m
    if np.issubdtype(m.dtype, np.floating):
        return m > 0.5
    return m != 0  # napari Labels: every label > 0 is polyp


def _depth_to_write(depth: np.ndarray, name: str) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim == 3 and d.shape[-1] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise DatasetError(f"frame {name!r}: depth must be H×W, got {d.shape}")
    if d.dtype == np.uint16:
        return d
    if d.dtype == np.uint8:
        return d.astype(np.uint16) * 257
    if np.issubdtype(d.dtype, np.floating):
        if not np.isfinite(d).all() or d.min() < -1e-6 or d.max() > 1 + 1e-6:
            raise DatasetError(f"frame {name!r}: float depth must be finite and in [0, 1] (relative inverse depth)")
        return np.round(np.clip(d, 0, 1) * 65535.0).astype(np.uint16)
    raise DatasetError(f"frame {name!r}: unsupported depth dtype {d.dtype}")


def _save_png(arr: np.ndarray, target: Path) -> str:
    from PIL import Image

    with atomic_path(target) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return file_sha256(target)


class DatasetWriter:
    """Writes a manifest dataset; every file (and the manifest) is written atomically.

    A non-empty existing folder is refused unless ``overwrite=True``, and even then unless it holds a
    dataset this writer wrote (a ``manifest.json`` of this format): a folder of someone's images
    and masks is never written into. With ``overwrite`` the new manifest replaces the old one on
    :meth:`close`, and only then are the files the old manifest listed and the new one does not
    removed (nothing else is touched). Frames kept under the same name keep their original
    ``created`` time.

    Frames are written into a hidden staging folder (``STAGING`` inside the root) and moved into
    place only by :meth:`close`: an export that fails or is cancelled (:meth:`abort`, or the
    ``with`` block raising) leaves the folder exactly as it was, the old dataset intact.
    """

    def __init__(self, root: str | os.PathLike, overwrite: bool = False):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DatasetError(f"{self.root} exists and is not a folder")
        self._stage = self.root / STAGING
        shutil.rmtree(self._stage, ignore_errors=True)  # left by a crash: never part of a dataset
        non_empty = self.root.is_dir() and any(self.root.iterdir())
        if non_empty and not overwrite:
            raise DatasetError(f"{self.root} is not empty; pass overwrite=True to replace the dataset in it")
        old_frames = replaceable_dataset(self.root) if non_empty else []
        self.overwrite = overwrite
        self.root.mkdir(parents=True, exist_ok=True)
        self._created = _now()
        self._frames: list[dict] = []
        self._names_lower: set[str] = set()
        self._closed = False
        self._old_created = {fr["name"]: fr.get("created") for fr in old_frames if fr.get("created")}
        self._old_files = {str(Path(fr[k])) for fr in old_frames for k in ("image", "mask", "depth") if fr.get(k)}

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._closed:
            self.close()
        elif exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Drop everything added: the folder stays as it was before this writer."""
        shutil.rmtree(self._stage, ignore_errors=True)
        self._closed = True

    def __len__(self) -> int:
        return len(self._frames)

    def add(
        self,
        name: str,
        image: np.ndarray,
        mask: np.ndarray,
        depth: np.ndarray | None = None,
        *,
        source_file: str | None = None,
        frame_index: int | None = None,
        status: str = "accepted",
        proposed_by: dict | None = None,
    ) -> None:
        """Write one frame. ``image``: H×W[×C] uint8/uint16/float ([0,1] or [0,255]); ``mask``: bool,
        labels (!= 0) or float (> 0.5); ``depth``: float [0, 1], uint8 or uint16."""
        if self._closed:
            raise DatasetError("DatasetWriter is closed")
        name = _check_name(name)
        if name.lower() in self._names_lower:
            raise DatasetError(f"frame name {name!r} already added (names are case-insensitive)")
        if status not in STATUSES:
            raise DatasetError(f"frame {name!r}: status {status!r} is not one of {', '.join(STATUSES)}")
        if proposed_by is not None and not isinstance(proposed_by, dict):
            raise DatasetError(f"frame {name!r}: proposed_by must be a dict or None")
        if frame_index is not None:
            frame_index = int(frame_index)
        img = _image_to_write(image, name)
        m = _mask_to_write(mask, name)
        if m.shape != img.shape[:2]:
            raise DatasetError(f"frame {name!r}: mask {m.shape} does not match image {img.shape[:2]}")
        if status == "empty" and m.any():
            raise DatasetError(f"frame {name!r}: status 'empty' but the mask has {int(m.sum())} polyp pixels")
        d = None
        if depth is not None:
            d = _depth_to_write(depth, name)
            if d.shape != img.shape[:2]:
                raise DatasetError(f"frame {name!r}: depth {d.shape} does not match image {img.shape[:2]}")

        rel_image, rel_mask = f"images/{name}.png", f"masks/{name}.png"
        rel_depth = f"depth/{name}.png" if d is not None else None
        sha = {
            "image": _save_png(img, self._stage / rel_image),
            "mask": _save_png(m.astype(np.uint8) * 255, self._stage / rel_mask),
            "depth": _save_png(d, self._stage / rel_depth) if d is not None else None,
        }
        now = _now()
        if proposed_by is not None:
            proposed_by = {"model": proposed_by.get("model"), "version": proposed_by.get("version"),
                           "sha256": proposed_by.get("sha256"),
                           **{k: v for k, v in proposed_by.items() if k not in ("model", "version", "sha256")}}
        self._frames.append({
            "name": name,
            "image": rel_image,
            "mask": rel_mask,
            "depth": rel_depth,
            "source": {"file": source_file, "frame_index": frame_index},
            "status": status,
            "proposed_by": proposed_by,
            "created": self._old_created.get(name, now),
            "modified": now,
            "sha256": sha,
        })
        self._names_lower.add(name.lower())

    def close(self) -> dict:
        """Write manifest.json atomically; returns ``{"root", "n_frames", "statuses": {status: count}}``."""
        if not self._closed:
            for fr in self._frames:  # staged files into place (each an atomic rename)
                for rel in (fr["image"], fr["mask"], fr["depth"]):
                    if rel:
                        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(self._stage / rel, self.root / rel)
            shutil.rmtree(self._stage, ignore_errors=True)
            write_json(self.root / MANIFEST, {
                "format": FORMAT,
                "version": VERSION,
                "created": self._created,
                "frames": self._frames,
            })
            self._closed = True
            if self.overwrite:
                self._remove_stale()
        counts = {s: 0 for s in STATUSES}
        for fr in self._frames:
            counts[fr["status"]] += 1
        return {"root": str(self.root), "n_frames": len(self._frames), "statuses": counts}

    def _remove_stale(self) -> None:
        """Remove the files the old manifest listed and the new one does not (nothing else)."""
        keep = {str(Path(fr[k])) for fr in self._frames for k in ("image", "mask", "depth") if fr[k]}
        for rel in sorted(self._old_files - keep):
            path = self.root / rel
            if path.parent.name in ("images", "masks", "depth") and path.parent.parent == self.root and path.is_file():
                os.unlink(path)


def replaceable_dataset(root: str | os.PathLike) -> list[dict]:
    """The frame records of the napari-depthpolyp dataset in the non-empty folder ``root``, which
    :class:`DatasetWriter` may replace. Raises :class:`DatasetError` naming the folder when it holds
    anything else (someone's images and masks, an unreadable manifest): never written into."""
    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(
            f"{root} is not empty and holds no napari-depthpolyp dataset (no {MANIFEST}): it is left "
            "untouched; choose an empty or new folder")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        frames = data["frames"]
        if data.get("format") != FORMAT or not isinstance(frames, list):
            raise ValueError(f"format {data.get('format')!r}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"{manifest} is not a napari-depthpolyp manifest ({exc}): {root} is left untouched; "
            "choose an empty or new folder") from None
    return [fr for fr in frames if isinstance(fr, dict)]
