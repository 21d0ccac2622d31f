"""Segmentation metrics, depth-robustness helpers and uncertainty scores (numpy only).

Conventions (all documented here once; tests pin every one of them)
--------------------------------------------------------------------
* **Binarisation**: a pixel is polyp when ``prob >= threshold`` (``>=``, the same comparison
  py_sod_metrics uses for its dynamic thresholds). Default threshold 0.3, as in the reference.
  Boolean predictions are used as they are.
* **Per-image binary metrics** (``dice``, ``iou``, ``recall``, ``precision``) from the confusion
  counts of one image, then averaged over images (per-image mean, as in the reference):

  ============================  ======  =====  ======  =========
  case                          dice    iou    recall  precision
  ============================  ======  =====  ======  =========
  empty mask, empty prediction  1       1      1       1
  empty mask, non-empty pred.   0       0      1       0
  non-empty mask, empty pred.   0       0      0       0
  otherwise                     2TP/(2TP+FP+FN), TP/(TP+FP+FN), TP/(TP+FN), TP/(TP+FP)
  ============================  ======  =====  ======  =========

  (recall is 1 on an empty mask because there is nothing to recall; precision is 1 on an empty
  prediction of an empty mask because nothing predicted is wrong.)
* **Saliency-style metrics** come from ``py_sod_metrics`` unchanged: S-measure (alpha 0.5), mean
  E-measure (mean of the 256-threshold curve, the usual "meanEm"), weighted F-measure (beta 1), MAE,
  and max Dice (the library's dynamic-threshold Dice: per-image curves averaged over images, then
  the maximum over the 256 thresholds). The probability map is quantised to uint8 (``round(p*255)``)
  and the mask given as 0/255, which is what the library expects. By default the library then
  min-max normalises each prediction (MATLAB ``mapminmax``, ``minmax=True``), which is the standard
  protocol of the polyp / SOD evaluation toolboxes and keeps numbers comparable with papers. Caveat:
  on an image *without* a polyp this stretches faint background noise to full scale; pass
  ``minmax=False`` to evaluate the raw probabilities instead (e.g. for negative-frame sequences).
  Library conventions kept as they are (they differ from the binary metrics above on frames
  without polyp): weighted F and the dynamic Dice curve (hence max Dice) are 0 on an empty mask
  whatever the prediction; S-measure of an empty mask is ``1 - mean(pred)``; E-measure of an empty
  mask counts background agreement. Report the binary metrics for negative frames; the summary
  counts them: ``empty_masks`` (frames without polyp) and ``empty_masks_marked`` (of those, frames
  where any pixel is predicted polyp: false-positive frames).
* **Pearson / depth consistency**: if both maps are constant the correlation is defined as 1.0
  (two flat maps agree; Pearson ignores shift and scale); if exactly one is constant it is 0.0
  (no linear relation can be measured). Never NaN.
* **Uncertainty** (for ranking frames for review; higher = review first), all in [0, 1]:
  binary entropy in bits; boundary uncertainty = mean entropy in a band of ``band`` pixels either
  side of the predicted boundary (of the near miss, scaled by how near, when the mask is empty but
  the probability comes close to the threshold; image borders are not boundaries; 0 when the predicted mask is
  empty or full); temporal disagreement = 1 - mean fuzzy soft Dice with neighbour frames;
  ``uncertainty_score`` = 0.5 entropy + 0.5 boundary without neighbours, and
  0.4 entropy + 0.3 boundary + 0.3 temporal with neighbours.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLD",
    "SUMMARY_KEYS",
    "SegmentationEvaluator",
    "as_mask",
    "as_probability",
    "binarize",
    "binary_metrics",
    "boundary_uncertainty",
    "check_min_region",
    "depth_consistency",
    "drop_small_regions",
    "frame_summary",
    "mean_binary_entropy",
    "pearson",
    "binary_entropy",
    "soft_dice",
    "sod_metrics",
    "temporal_disagreement",
    "uncertainty_score",
]

DEFAULT_THRESHOLD = 0.3

SUMMARY_KEYS = (
    "n",
    "mean_dice",
    "mean_iou",
    "recall",
    "precision",
    "s_measure",
    "mean_e_measure",
    "weighted_f",
    "mae",
    "max_dice",
    "threshold",
    "empty_masks",
    "empty_masks_marked",
)

# weights of uncertainty_score (documented in the module docstring)
_W_NO_NEIGHBOURS = {"entropy": 0.5, "boundary": 0.5}
_W_NEIGHBOURS = {"entropy": 0.4, "boundary": 0.3, "temporal": 0.3}

_PROB_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- input handling
def _squeeze2d(arr: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (H×W), got shape {arr.shape}")
    return arr


def as_probability(prob: np.ndarray) -> np.ndarray:
    """Return ``prob`` as a float64 H×W map in [0, 1].

    Accepts float arrays in [0, 1] (values within 1e-6 outside are clipped), boolean arrays, and
    uint8 arrays read as 0..255. Raises ``ValueError`` for non-finite or out-of-range values.
    """
    p = _squeeze2d(prob, "probability map")
    if p.dtype == bool:
        return p.astype(np.float64)
    if p.dtype == np.uint8:
        return p.astype(np.float64) / 255.0
    if not np.issubdtype(p.dtype, np.floating):
        raise TypeError(f"probability map must be float in [0, 1], bool or uint8, got {p.dtype}")
    p = p.astype(np.float64, copy=False)
    if p.size and not np.isfinite(p).all():
        raise ValueError("probability map contains NaN or infinite values")
    if p.size and (p.min() < -_PROB_TOLERANCE or p.max() > 1 + _PROB_TOLERANCE):
        raise ValueError(f"probability map must lie in [0, 1], got [{p.min():.4g}, {p.max():.4g}]")
    return np.clip(p, 0.0, 1.0)


def as_mask(mask: np.ndarray) -> np.ndarray:
    """Return ``mask`` as a boolean H×W array, by the one rule every mask reader follows
    (:func:`napari_depthpolyp.io.images.binarise_mask`): bool as is, floats ``> 0.5``, two-valued
    integers (0/1, 0/255, labels 0/2, a 16-bit 0/255) ``!= 0``, JPEG-noisy 0/255 masks ``> 127``.
    """
    from .io.images import binarise_mask

    return binarise_mask(_squeeze2d(mask, "mask"))


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0 or math.isnan(threshold):
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return threshold


def binarize(prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Predicted mask: ``prob >= threshold`` (booleans are returned unchanged)."""
    arr = np.asarray(prob)
    if arr.dtype == bool:
        return _squeeze2d(arr, "prediction")
    return as_probability(arr) >= _check_threshold(threshold)


def check_min_region(min_region: float) -> float:
    min_region = float(min_region)
    if not 0.0 <= min_region < 1.0 or math.isnan(min_region):
        raise ValueError(f"the smallest region kept must be a share of the frame in [0, 1), got {min_region}")
    return min_region


def drop_small_regions(mask: np.ndarray, min_region: float) -> np.ndarray:
    """``mask`` without its connected regions (4-connected) smaller than ``min_region`` of the frame's
    area. ``min_region`` 0 returns the mask unchanged (the default everywhere)."""
    mask = np.asarray(mask, dtype=bool)
    if check_min_region(min_region) == 0.0 or not mask.any():
        return mask
    from scipy import ndimage as ndi

    labels, n = ndi.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_region * mask.size
    keep[0] = False
    return keep[labels]


def suppress_small_regions(prob: np.ndarray, threshold: float, min_region: float) -> np.ndarray:
    """``prob`` with the pixels of the regions that ``drop_small_regions`` removes set to 0, so that
    every measure (binary at ``threshold`` and the continuous ones) sees them removed."""
    if check_min_region(min_region) == 0.0:
        return prob
    marked = prob >= _check_threshold(threshold)
    removed = marked & ~drop_small_regions(marked, min_region)
    return np.where(removed, np.float32(0.0), prob).astype(prob.dtype, copy=False) if removed.any() else prob


def _check_same_shape(a: np.ndarray, b: np.ndarray, name: str | None, what=("prediction", "mask")) -> None:
    if a.shape != b.shape:
        label = f" for {name!r}" if name is not None else ""
        raise ValueError(f"shape mismatch{label}: {what[0]} {a.shape} vs {what[1]} {b.shape}")


# ----------------------------------------------------------------------------- per-image metrics
def binary_metrics(
    prob: np.ndarray, mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD, *, name: str | None = None
) -> dict:
    """Dice, IoU, recall and precision of one image at ``threshold`` (conventions in the module doc)."""
    pred = binarize(prob, threshold)
    gt = as_mask(mask)
    _check_same_shape(pred, gt, name)
    tp = int(np.count_nonzero(pred & gt))
    n_pred = int(np.count_nonzero(pred))
    n_gt = int(np.count_nonzero(gt))
    fp = n_pred - tp
    fn = n_gt - tp
    if n_gt == 0 and n_pred == 0:
        return {"dice": 1.0, "iou": 1.0, "recall": 1.0, "precision": 1.0}
    if n_gt == 0:  # false alarm on a frame without polyp
        return {"dice": 0.0, "iou": 0.0, "recall": 1.0, "precision": 0.0}
    if n_pred == 0:  # missed polyp
        return {"dice": 0.0, "iou": 0.0, "recall": 0.0, "precision": 0.0}
    return {
        "dice": 2.0 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
        "recall": tp / (tp + fn),
        "precision": tp / (tp + fp),
    }


def _sod_inputs(prob: np.ndarray, mask: np.ndarray, minmax: bool):
    p = as_probability(prob)
    gt = as_mask(mask)
    pred_u8 = np.round(p * 255.0).astype(np.uint8)
    if minmax:
        # the library's own normalisation (im2double + mapminmax, gt > 128)
        return pred_u8, gt.astype(np.uint8) * 255, True
    # same quantisation, no min-max stretch: the library's normalize=False path wants float + bool
    return pred_u8.astype(np.float64) / 255.0, gt, False


def _sod_dice_curve(prob, mask, minmax: bool) -> np.ndarray:
    import py_sod_metrics as psm

    pred, gt, normalize = _sod_inputs(prob, mask, minmax)
    fm = psm.FmeasureV2(metric_handlers={"dice": psm.DICEHandler(with_dynamic=True, with_adaptive=False)})
    fm.step(pred, gt, normalize=normalize)
    return np.asarray(fm.get_results()["dice"]["dynamic"], dtype=np.float64)


def sod_metrics(prob: np.ndarray, mask: np.ndarray, *, minmax: bool = True, name: str | None = None) -> dict:
    """py_sod_metrics values of one image.

    Returns ``s_measure``, ``mean_e_measure`` (mean of the E-measure curve), ``weighted_f``, ``mae``,
    ``max_dice`` (max of this image's dynamic-threshold Dice curve) and ``dice_curve`` (256 values,
    thresholds 255 → 0 in the library's order).
    """
    import py_sod_metrics as psm

    p = as_probability(prob)
    gt = as_mask(mask)
    _check_same_shape(p, gt, name)
    pred, gt_in, normalize = _sod_inputs(p, gt, minmax)

    sm, em, wfm, mae = psm.Smeasure(), psm.Emeasure(), psm.WeightedFmeasure(), psm.MAE()
    for metric in (sm, em, wfm, mae):
        metric.step(pred, gt_in, normalize=normalize)
    dice_curve = _sod_dice_curve(p, gt, minmax)
    return {
        "s_measure": float(sm.get_results()["sm"]),
        "mean_e_measure": float(np.mean(em.get_results()["em"]["curve"])),
        "weighted_f": float(wfm.get_results()["wfm"]),
        "mae": float(mae.get_results()["mae"]),
        "max_dice": float(np.max(dice_curve)),
        "dice_curve": dice_curve,
    }


# ----------------------------------------------------------------------------- accumulator
class SegmentationEvaluator:
    """Accumulates per-image metrics and summarises them as per-image means.

    ``summary()["max_dice"]`` is the dataset-level max Dice of py_sod_metrics: the per-image
    dynamic-threshold Dice curves are averaged over images and the maximum of that mean curve is
    taken (so it is not the mean of per-image maxima, which ``per_image()`` reports per image).
    With no image added, every metric of the summary is ``None``.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, *, minmax: bool = True, min_region: float = 0.0):
        self.threshold = _check_threshold(threshold)
        self.min_region = check_min_region(min_region)  # marked regions smaller than this share are removed
        self.minmax = bool(minmax)
        self._rows: list[dict] = []
        self._dice_curve_sum: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, prob: np.ndarray, mask: np.ndarray, name: str | None = None) -> dict:
        """Evaluate one image; returns its metrics. ``ValueError`` names ``name`` on a shape mismatch."""
        p = as_probability(prob) if np.asarray(prob).dtype != bool else _squeeze2d(prob, "prediction")
        if self.min_region:
            p = drop_small_regions(p, self.min_region) if p.dtype == bool else suppress_small_regions(p, self.threshold, self.min_region)
        gt = as_mask(mask)
        _check_same_shape(p, gt, name)
        row: dict = {"name": name if name is not None else str(len(self._rows))}
        row.update(binary_metrics(p, gt, self.threshold, name=name))
        sod = sod_metrics(p, gt, minmax=self.minmax, name=name)
        curve = sod.pop("dice_curve")
        row.update(sod)
        row["mask_area"] = int(np.count_nonzero(gt))
        row["pred_area"] = int(np.count_nonzero(binarize(p, self.threshold)))
        self._dice_curve_sum = curve.copy() if self._dice_curve_sum is None else self._dice_curve_sum + curve
        self._rows.append(row)
        return dict(row)

    def per_image(self) -> list[dict]:
        return [dict(r) for r in self._rows]

    def summary(self) -> dict:
        n = len(self._rows)
        out: dict = {"n": n}
        if n == 0:
            for key in SUMMARY_KEYS[1:]:
                out[key] = None
            out.update(threshold=self.threshold, empty_masks=0, empty_masks_marked=0)
            return out

        def mean(key: str) -> float:
            return float(np.mean([r[key] for r in self._rows]))

        out.update(
            mean_dice=mean("dice"),
            mean_iou=mean("iou"),
            recall=mean("recall"),
            precision=mean("precision"),
            s_measure=mean("s_measure"),
            mean_e_measure=mean("mean_e_measure"),
            weighted_f=mean("weighted_f"),
            mae=mean("mae"),
            max_dice=float(np.max(self._dice_curve_sum / n)),
            threshold=self.threshold,
            empty_masks=sum(r["mask_area"] == 0 for r in self._rows),
            empty_masks_marked=sum(r["mask_area"] == 0 and r["pred_area"] > 0 for r in self._rows),
        )
        return out


# ----------------------------------------------------------------------------- depth robustness
def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally shaped arrays, in [-1, 1], never NaN.

    Constant inputs: both constant → 1.0 (neither has structure, and Pearson ignores shift and
    scale, so two flat maps agree); exactly one constant → 0.0 (no linear relation measurable).
    Raises ``ValueError`` on a shape mismatch, empty or non-finite input.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    if x.size == 0:
        raise ValueError("pearson() of empty arrays")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("pearson() input contains NaN or infinite values")
    const_x = bool(np.ptp(x) == 0)
    const_y = bool(np.ptp(y) == 0)
    if const_x and const_y:
        return 1.0
    if const_x or const_y:
        return 0.0
    x = x.ravel() - x.mean()
    y = y.ravel() - y.mean()
    denom = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    if denom == 0.0:  # underflow of a nearly constant map
        return 0.0
    return float(np.clip(np.dot(x, y) / denom, -1.0, 1.0))


def depth_consistency(depth_clean: np.ndarray, depth_degraded: np.ndarray) -> float:
    """Pearson correlation between one image's depth predicted on the clean and on the degraded frame.

    1 = the degradation did not change the depth structure. Pixels that are non-finite in either
    map are ignored (0.0 if fewer than two remain). Constant maps follow :func:`pearson`.
    For a data set, call it per image and average.
    """
    a = _squeeze2d(np.asarray(depth_clean, dtype=np.float64), "depth_clean")
    b = _squeeze2d(np.asarray(depth_degraded, dtype=np.float64), "depth_degraded")
    if a.shape != b.shape:
        raise ValueError(f"depth shape mismatch: clean {a.shape} vs degraded {b.shape}")
    valid = np.isfinite(a) & np.isfinite(b)
    if np.count_nonzero(valid) < 2:
        return 0.0
    return pearson(a[valid], b[valid])


# ----------------------------------------------------------------------------- uncertainty
def _entropy_bits(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits of probabilities already validated to lie in [0, 1]."""
    p = np.asarray(p, dtype=np.float64)
    q = 1.0 - p
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
              + np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0)), 0.0))
    return np.clip(h, 0.0, 1.0)


def binary_entropy(prob: np.ndarray) -> np.ndarray:
    """Per-pixel binary entropy in bits (0 for p in {0, 1}, 1 for p = 0.5)."""
    return _entropy_bits(as_probability(prob))


def mean_binary_entropy(prob: np.ndarray) -> float:
    """Mean per-pixel binary entropy in bits, in [0, 1] (0 = fully confident, 1 = all p = 0.5)."""
    h = binary_entropy(prob)
    return float(h.mean()) if h.size else 0.0


def _boundary_band(mask: np.ndarray, band: int) -> np.ndarray:
    from scipy import ndimage as ndi

    struct = ndi.generate_binary_structure(2, 1)
    outer = ndi.binary_dilation(mask, structure=struct, iterations=band)
    # border_value=1: the image border is not a boundary of a mask that touches it
    inner = ndi.binary_erosion(mask, structure=struct, iterations=band, border_value=1)
    return outer & ~inner


def boundary_uncertainty(prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD, band: int = 3) -> float:
    """Mean binary entropy (bits) within ``band`` pixels of the predicted mask's boundary.

    Where the mask (``prob >= threshold``) is empty but the probability's peak comes within two
    thirds of the way to the threshold, the boundary is that of the region the threshold just missed
    (``prob >= 0.9 · peak``), its entropy scaled by how close the peak came (0 at a third of the
    threshold, 1 at the threshold): a polyp proposed at 0.28 against a threshold of 0.3 is nearly as
    doubtful as one at 0.32, not as sure as an empty frame, and the score does not jump at the
    threshold. 0.0 when nothing comes that near, or the mask covers the whole frame.
    """
    if band < 1:
        raise ValueError(f"band must be >= 1 pixel, got {band}")
    p = as_probability(prob)
    threshold = _check_threshold(threshold)
    mask, closeness = p >= threshold, 1.0
    if not mask.any():
        peak = float(p.max()) if p.size else 0.0
        closeness = min(1.0, (peak - threshold / 3) / (threshold * 2 / 3)) if threshold > 0 else 0.0
        if closeness <= 0.0:  # nothing near the threshold: a confidently empty frame
            return 0.0
        mask = p >= 0.9 * peak  # the near miss
    if mask.all():
        return 0.0
    region = _boundary_band(mask, int(band))
    if not region.any():
        return 0.0
    return closeness * float(_entropy_bits(p[region]).mean())


def soft_dice(p: np.ndarray, q: np.ndarray, *, floor: float = 0.05) -> float:
    """Fuzzy soft Dice ``2·Σmin(p, q) / (Σp + Σq)`` in [0, 1].

    Equals the ordinary Dice for binary maps and 1 for identical maps (the product form
    ``2Σpq/(Σp+Σq)`` would score two identical uncertain maps as disagreeing, which is
    uncertainty, not disagreement). Probabilities below ``floor`` are treated as 0 so that faint
    background noise on frames without polyp does not count; two maps with nothing left are 1.
    """
    a = as_probability(p)
    b = as_probability(q)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if floor > 0:
        a = np.where(a < floor, 0.0, a)
        b = np.where(b < floor, 0.0, b)
    denom = float(a.sum() + b.sum())
    if denom <= 0.0:
        return 1.0
    return float(np.clip(2.0 * np.minimum(a, b).sum() / denom, 0.0, 1.0))


def temporal_disagreement(prob_t: np.ndarray, prob_neighbours: Sequence[np.ndarray] | None) -> float:
    """1 − mean :func:`soft_dice` between a frame's probability and each neighbour's; 0 without neighbours."""
    if not prob_neighbours:
        return 0.0
    p = as_probability(prob_t)
    dices = []
    for i, q in enumerate(prob_neighbours):
        q = as_probability(q)
        if q.shape != p.shape:
            raise ValueError(f"neighbour {i} has shape {q.shape}, frame has {p.shape}")
        dices.append(soft_dice(p, q))
    return float(np.clip(1.0 - np.mean(dices), 0.0, 1.0))


def uncertainty_score(
    prob: np.ndarray,
    threshold: float = DEFAULT_THRESHOLD,
    neighbours: Iterable[np.ndarray] | None = None,
) -> float:
    """Review priority in [0, 1]: higher means a human should look at this frame first.

    Without neighbours: ``0.5·mean_entropy + 0.5·boundary_uncertainty``.
    With neighbours (adjacent video frames): ``0.4·mean_entropy + 0.3·boundary + 0.3·temporal``.
    """
    p = as_probability(prob)
    neighbours = list(neighbours) if neighbours is not None else []
    temporal = temporal_disagreement(p, neighbours) if neighbours else None
    return combine_uncertainty(mean_binary_entropy(p), boundary_uncertainty(p, threshold), temporal)


def combine_uncertainty(entropy: float, boundary: float, temporal: float | None = None) -> float:
    """:func:`uncertainty_score` from its parts (``temporal`` None: a frame without neighbours)."""
    parts = {"entropy": entropy, "boundary": boundary}
    weights = _W_NO_NEIGHBOURS
    if temporal is not None and not np.isnan(temporal):
        parts["temporal"] = temporal
        weights = _W_NEIGHBOURS
    return float(np.clip(sum(weights[k] * parts[k] for k in weights), 0.0, 1.0))


def frame_summary(prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD, min_region: float = 0.0) -> dict:
    """Per-frame facts for review tables: ``polyp_present``, ``area_fraction``,
    ``mean_prob_in_mask`` (0.0 when the predicted mask is empty) and ``uncertainty``
    (:func:`uncertainty_score` without neighbours). The mask drops regions smaller than
    ``min_region`` of the frame (:func:`drop_small_regions`)."""
    p = as_probability(prob)
    mask = drop_small_regions(p >= _check_threshold(threshold), min_region)
    n = int(np.count_nonzero(mask))
    return {
        "polyp_present": bool(n > 0),
        "area_fraction": float(n / mask.size) if mask.size else 0.0,
        "mean_prob_in_mask": float(p[mask].mean()) if n else 0.0,
        "uncertainty": uncertainty_score(p, threshold),
    }
