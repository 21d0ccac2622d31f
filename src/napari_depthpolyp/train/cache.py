"""Frames decoded and resized once into an on-disk cache, so that an epoch is bound by the network,
not by JPEG decoding.

The cache lives in the user cache directory, keyed by the dataset's content fingerprint, the
input size and :data:`CACHE_FORMAT` (how frames and masks are read and resized; raised whenever that
changes, so a cache made by an older rule is never served): ``images.npy`` (N, S, S, 3) uint8, ``masks.npy`` (N, S, S) uint8 {0, 1},
``depth.npy`` (N, S, S) uint16 when the dataset has depth maps, and ``names.json``. Frames are
resized exactly as the inference engine resizes them (``preprocess.resize_batch``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset import Dataset, DatasetError, file_sha256
from ..io.atomic import atomic_path, write_json
from ..paths import cache_dir
from ..preprocess import resize_batch, resize_mask, to_float_rgb


CACHE_FORMAT = 2  # 2: masks by io.images.binarise_mask's rule (a 16-bit 0/255 or a 0/1/2 mask is not empty)


@dataclass
class FrameCache:
    names: list[str]
    images: np.ndarray  # (N, S, S, 3) uint8
    masks: np.ndarray  # (N, S, S) uint8 {0, 1}
    depth: np.ndarray | None  # (N, S, S) uint16, or None
    fingerprint: str
    no_depth: list[str] = field(default_factory=list)  # frames without a depth map (zeros in ``depth``)

    def __len__(self) -> int:
        return len(self.names)


def build_cache(dataset: Dataset, size: int = 224, progress=None) -> FrameCache:
    """Load (or build once) the resized cache of ``dataset``."""
    fingerprint = dataset.fingerprint()
    key = _key(dataset, fingerprint)
    root = cache_dir() / "frames" / f"{key[:24]}-{size}"
    done = root / "names.json"
    if not done.is_file():
        n = len(dataset)
        images = np.empty((n, size, size, 3), np.uint8)
        masks = np.empty((n, size, size), np.uint8)
        depth = None
        for i in range(n):
            image, mask, d = dataset.load(i)
            name = dataset[i].name
            rgb = to_float_rgb(image, name)
            images[i] = (resize_batch([rgb], size)[0].permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
            masks[i] = resize_mask(mask, size)
            if d is not None:
                if depth is None:
                    depth = np.zeros((n, size, size), np.uint16)
                dt = torch.from_numpy(np.ascontiguousarray(d, dtype=np.float32))[None, None]
                dt = F.interpolate(dt, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                depth[i] = (dt[0, 0].clamp(0, 1).numpy() * 65535.0 + 0.5).astype(np.uint16)
            if progress is not None:
                progress(i + 1, n)
        if _key(dataset, dataset.fingerprint(rehash=True)) != key:  # written to while it was read (a new export)
            raise DatasetError(f"{dataset.root}: its files changed while they were read; start again once "
                               "nothing writes to the folder")
        root.mkdir(parents=True, exist_ok=True)
        arrays = {"images": images, "masks": masks}
        if depth is not None:
            arrays["depth"] = depth
        for key, arr in arrays.items():
            with atomic_path(root / f"{key}.npy") as tmp:
                np.save(tmp, arr)
        no_depth = [s.name for s in dataset if s.depth is None] if depth is not None else []
        write_json(done, {"names": [s.name for s in dataset], "fingerprint": fingerprint, "size": size,
                          "no_depth": no_depth})
    meta = json.loads(done.read_text())
    depth_path = root / "depth.npy"
    return FrameCache(
        names=meta["names"],
        images=np.load(root / "images.npy", mmap_mode="r"),
        masks=np.load(root / "masks.npy", mmap_mode="r"),
        depth=np.load(depth_path, mmap_mode="r") if depth_path.is_file() else None,
        fingerprint=fingerprint,
        no_depth=list(meta.get("no_depth", [])),
    )


def _key(dataset: Dataset, fingerprint: str) -> str:
    """The cache's key: the frames' fingerprint, their depth maps (derived data outside the
    fingerprint, but the cache holds them) and the cache format."""
    depth = "".join(file_sha256(s.depth) for s in dataset if s.depth is not None)
    return hashlib.sha256(f"format {CACHE_FORMAT}\n{fingerprint}{depth}".encode()).hexdigest()


def concat_caches(caches: list[FrameCache]) -> FrameCache:
    if len(caches) == 1:
        return caches[0]
    with_depth = all(c.depth is not None for c in caches)
    return FrameCache(
        names=[n for c in caches for n in c.names],
        images=np.concatenate([c.images for c in caches]),
        masks=np.concatenate([c.masks for c in caches]),
        depth=np.concatenate([c.depth for c in caches]) if with_depth else None,
        fingerprint="+".join(c.fingerprint for c in caches),
        no_depth=[n for c in caches for n in c.no_depth],
    )
