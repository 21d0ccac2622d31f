"""Evaluation on a dataset folder through the one inference engine.

Protocol (as the reference, made repeatable): every frame is resized to the model's input size the
way the engine resizes it; in degraded mode the resized frame is degraded with a per-frame seed
derived from ``seed`` (``degraded_frame_seed``), so a figure is reproducible. Metrics are computed at
the model's resolution (224x224, the paper's protocol) or at the frame's original resolution (what a
clinician sees: probability upsampled to the frame, compared with the original mask).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from .dataset import Dataset
from .engine import Predictor
from .metrics import SegmentationEvaluator, pearson
from .preprocess import resize_batch, resize_map, resize_mask, to_float_rgb

RESOLUTIONS = ("model", "original")


# the columns of ``evaluate(..., per_frame=True)["frames"]`` (areas in pixels at the resolution
# evaluated; a depth figure is None where it was not measured)
FRAME_COLUMNS = ("name", "dice", "iou", "recall", "precision", "s_measure", "mean_e_measure", "weighted_f",
                 "mae", "mask_area", "pred_area", "depth_clean_vs_degraded", "depth_vs_teacher")


def degraded_frame_seed(seed: int, index: int) -> int:
    """The degradation seed of frame ``index`` under evaluation seed ``seed`` (training's validation
    uses the same rule with seed 0)."""
    return seed * 1_000_003 + index


def evaluate(
    predictor: Predictor,
    dataset: Dataset,
    *,
    degraded: bool = False,
    seed: int = 0,
    resolution: str = "model",
    threshold: float | None = None,
    teacher: str | None = "falloff",
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
    per_frame: bool = False,
) -> dict[str, Any]:
    """Mean Dice/IoU/recall/precision + pysodmetrics measures, and depth robustness figures:
    ``depth_clean_vs_degraded`` (Pearson correlation of the model's depth on the clean and the
    degraded frame, degraded mode only) and ``depth_vs_teacher`` (model depth vs the teacher's depth
    of the same input). ``per_frame``: also ``frames``, one row per frame in the order evaluated
    (:data:`FRAME_COLUMNS`), to find the frames a model fails on."""
    from .degrade import degrade_seeded
    from .depth import make_teacher

    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    thr = predictor.threshold if threshold is None else float(threshold)
    size = predictor.input_size
    evaluator = SegmentationEvaluator(threshold=thr, min_region=predictor.min_region)
    teach = make_teacher(teacher, folder=dataset.root) if teacher else None  # "precomputed": its depth/ maps
    consistency, teacher_corr, frame_depth = [], [], []
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for i in range(n):
        sample = dataset[i]
        image, mask, _ = dataset.load(i)
        rgb = to_float_rgb(image, str(sample.image))
        x = resize_batch([rgb], size)
        mask_small = resize_mask(mask, size)
        frame_in = x[0].permute(1, 2, 0).numpy()
        target_small, target_full = mask_small, mask
        if degraded:
            clean_depth = predictor.run_batch(x)[1][0]
            frame_in, warped = degrade_seeded(frame_in, mask_small, seed=degraded_frame_seed(seed, i))
            if not np.array_equal(warped, mask_small):  # optical distortion moved the mask
                target_small = warped
                target_full = resize_map(warped.astype(np.float32), mask.shape) >= 0.5
            x = torch.from_numpy(np.ascontiguousarray(frame_in.transpose(2, 0, 1)))[None]
        prob, depth = predictor.run_batch(x)
        prob, depth = prob[0], depth[0]
        depth_row = {}
        if degraded:
            depth_row["depth_clean_vs_degraded"] = pearson(clean_depth, depth)
            consistency.append(depth_row["depth_clean_vs_degraded"])
        if teach is not None:
            # a stored map is found by the frame's name (the clean frame's map, degraded or not)
            target = teach.lookup(sample.name, frame_in.shape) if hasattr(teach, "lookup") else teach(frame_in)
            depth_row["depth_vs_teacher"] = pearson(depth, target)
            teacher_corr.append(depth_row["depth_vs_teacher"])
        frame_depth.append(depth_row)
        if resolution == "model":
            evaluator.add(prob, target_small, name=sample.name)
        else:
            evaluator.add(resize_map(prob, mask.shape), target_full, name=sample.name)
        if progress is not None:
            progress(i + 1, n)
    out = evaluator.summary()
    out.update(
        {
            "resolution": resolution,
            "degraded": degraded,
            "seed": seed if degraded else None,
            "model": predictor.model.id,
            "model_sha256": predictor.model.sha256(),
            "backend": predictor.backend,
            "tta": predictor.tta,
            "min_region": evaluator.min_region,
            "data": str(dataset.root),
        }
    )
    if per_frame:
        out["frames"] = [{k: row.get(k, extra.get(k)) for k in FRAME_COLUMNS}
                         for row, extra in zip(evaluator.per_image(), frame_depth)]
    if consistency:
        out["depth_clean_vs_degraded"] = float(np.mean(consistency))
    if teacher_corr:
        out["depth_vs_teacher"] = float(np.mean(teacher_corr))
        out["teacher"] = teacher
    return out
