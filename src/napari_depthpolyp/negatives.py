"""Frames with no polyp, cut from annotated frames that have one.

Kvasir-SEG shows a polyp in every image, so a model trained on it alone has never seen a frame
without one, and it marks something on most polyp-free video frames (``docs/model-card.md``).
:func:`write_negative_crops` cuts from each annotated frame the largest square that stays clear of
the polyp by a margin, and writes these squares as a dataset of ``"empty"`` frames in the project's
format (``dataset.py``), to train or fine-tune on beside the annotated frames. The crops are
deterministic (the largest free square nearest the frame's centre), so the dataset is reproducible
from its source; each frame's manifest entry names the source file.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .dataset import Dataset, DatasetWriter

__all__ = ["largest_free_square", "write_negative_crops"]


def largest_free_square(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int]:
    """``(top, left, side)`` of the largest square inside ``mask`` with no true pixel in it or within
    ``margin`` pixels of it; of several, the one whose centre is nearest the frame's centre.
    ``side`` is 0 when no square is free."""
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    margin = max(0, int(margin))
    h, w = m.shape
    padded = np.pad(m, margin).astype(np.int64)  # outside the frame counts as free
    integral = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), np.int64)
    integral[1:, 1:] = padded.cumsum(0).cumsum(1)

    def free(side: int) -> np.ndarray:
        """Boolean map over top-left corners (h-side+1, w-side+1): the square there is free."""
        k = side + 2 * margin  # the square and its margin, in padded coordinates
        ny, nx = h - side + 1, w - side + 1
        box = integral[k:k + ny, k:k + nx] - integral[:ny, k:k + nx] - integral[k:k + ny, :nx] + integral[:ny, :nx]
        return box == 0

    lo, hi = 0, min(h, w)  # lo is free (side 0 trivially), search the largest free side
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if free(mid).any():
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return 0, 0, 0
    ys, xs = np.nonzero(free(lo))
    centre = (ys + lo / 2 - h / 2) ** 2 + (xs + lo / 2 - w / 2) ** 2
    i = int(np.argmin(centre))
    return int(ys[i]), int(xs[i]), lo


def write_negative_crops(
    dataset: Dataset,
    out: str | os.PathLike,
    *,
    min_fraction: float = 0.4,
    margin_fraction: float = 0.05,
    max_dark: float = 0.25,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write one polyp-free square per frame of ``dataset`` to a new dataset at ``out``.

    The square keeps ``margin_fraction`` of the frame's short side away from the polyp; frames whose
    largest such square is shorter than ``min_fraction`` of the short side give none (a close-up of a
    large polyp leaves too little to show), and neither do squares more than ``max_dark`` of whose
    pixels are the scope's black border or overlay (every channel below 20). Returns the writer's
    summary with ``"skipped"`` (names) and ``"crops"`` ({name: [top, left, side]}).
    """
    if not 0 < min_fraction <= 1:
        raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
    skipped: list[str] = []
    crops: dict[str, list[int]] = {}
    with DatasetWriter(out, overwrite=overwrite) as writer:
        for i, sample in enumerate(dataset):
            image, mask, _ = dataset.load(i)
            short = min(mask.shape)
            top, left, side = largest_free_square(mask, margin=round(margin_fraction * short))
            crop = image[top:top + side, left:left + side]
            if side < min_fraction * short or (crop.max(axis=2) < 20).mean() > max_dark:
                skipped.append(sample.name)
            else:
                name = f"{sample.name}_nopolyp"
                writer.add(name, crop, np.zeros(crop.shape[:2], bool), status="empty",
                           source_file=str(sample.image))
                crops[name] = [top, left, side]
            if progress is not None:
                progress(i + 1, len(dataset))
        summary = writer.close()
    return {**summary, "skipped": skipped, "crops": crops}
