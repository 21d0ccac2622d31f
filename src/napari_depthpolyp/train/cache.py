"""Frames decoded and resized once into an on-disk cache, so that an epoch is bound by the network,
not by JPEG decoding.

The cache lives in the user cache directory, keyed by the dataset's content fingerprint and the
input size: ``images.npy`` (N, S, S, 3) uint8, ``masks.npy`` (N, S, S) uint8 {0, 1},
``depth.npy`` (N, S, S) uint16 when the dataset has depth maps, and ``names.json``. Frames are
resized exactly as the inference engine resizes them (``preprocess.resize_batch``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..dataset import Dataset, file_sha256
from ..io.atomic import atomic_path, write_json
from ..paths import cache_dir
from ..preprocess import resize_batch, resize_mask, to_float_rgb


@dataclass
class FrameCache:
    names: list[str]
    images: np.ndarray  # (N, S, S, 3) uint8
    masks: np.ndarray  # (N, S, S) uint8 {0, 1}
    depth: np.ndarray | None  # (N, S, S) uint16, or None
    fingerprint: str

    def __len__(self) -> int:
        return len(self.names)


def build_cache(dataset: Dataset, size: int = 224, progress=None) -> FrameCache:
    """Load (or build once) the resized cache of ``dataset``."""
    fingerprint = dataset.fingerprint()
    key = fingerprint
    depth_files = [s.depth for s in dataset if s.depth is not None]
    if depth_files:  # depth maps are derived data outside the fingerprint, but the cache holds them
        key = hashlib.sha256((fingerprint + "".join(file_sha256(p) for p in depth_files)).encode()).hexdigest()
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
        root.mkdir(parents=True, exist_ok=True)
        arrays = {"images": images, "masks": masks}
        if depth is not None:
            arrays["depth"] = depth
        for key, arr in arrays.items():
            with atomic_path(root / f"{key}.npy") as tmp:
                np.save(tmp, arr)
        write_json(done, {"names": [s.name for s in dataset], "fingerprint": fingerprint, "size": size})
    meta = json.loads(done.read_text())
    depth_path = root / "depth.npy"
    return FrameCache(
        names=meta["names"],
        images=np.load(root / "images.npy", mmap_mode="r"),
        masks=np.load(root / "masks.npy", mmap_mode="r"),
        depth=np.load(depth_path, mmap_mode="r") if depth_path.is_file() else None,
        fingerprint=fingerprint,
    )


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
    )
