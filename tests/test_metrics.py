"""Metrics: hand-computed binary cases, py_sod_metrics wrappers, depth and uncertainty helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_depthpolyp import metrics as M
from napari_depthpolyp.metrics import SegmentationEvaluator

# 4×4 case worked out by hand (threshold 0.3, rule prob >= threshold):
#   mask |A| = 4 (top-left 2×2); prediction = {(0,0) .9, (0,1) .3, (0,2) .3, (1,1) .8, (2,2) .5}
#   TP = 3 ((0,0), (0,1), (1,1)), FP = 2 ((0,2), (2,2)), FN = 1 ((1,0))
#   dice = 2·3 / (5 + 4) = 2/3, iou = 3 / 6 = 1/2, recall = 3/4, precision = 3/5
MASK4 = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool)
PROB4 = np.array(
    [[0.9, 0.3, 0.3, 0.0], [0.2, 0.8, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0]]
)


def square(size=32, lo=8, hi=24, shift=0):
    m = np.zeros((size, size), bool)
    m[lo:hi, lo + shift : hi + shift] = True
    return m


# ----------------------------------------------------------------------------- binary metrics
def test_binary_metrics_hand_computed():
    r = M.binary_metrics(PROB4, MASK4, 0.3)
    assert r["dice"] == pytest.approx(2 / 3)
    assert r["iou"] == pytest.approx(1 / 2)
    assert r["recall"] == pytest.approx(3 / 4)
    assert r["precision"] == pytest.approx(3 / 5)


def test_threshold_is_inclusive():
    # with ">" the two 0.3 pixels would drop out: TP 2, FP 1, FN 2 → dice 4/7
    assert M.binarize(PROB4, 0.3).sum() == 5
    assert M.binary_metrics(PROB4, MASK4, 0.3)["dice"] == pytest.approx(2 / 3)
    assert M.binary_metrics(PROB4, MASK4, 0.31)["dice"] == pytest.approx(4 / 7)
    assert M.binarize(np.array([[0.3]]), 0.3).all()


def test_binary_metrics_empty_conventions():
    empty = np.zeros((4, 4), bool)
    assert M.binary_metrics(np.zeros((4, 4)), empty) == {"dice": 1.0, "iou": 1.0, "recall": 1.0, "precision": 1.0}
    assert M.binary_metrics(PROB4, empty) == {"dice": 0.0, "iou": 0.0, "recall": 1.0, "precision": 0.0}
    assert M.binary_metrics(np.zeros((4, 4)), MASK4) == {"dice": 0.0, "iou": 0.0, "recall": 0.0, "precision": 0.0}


def test_mask_and_probability_inputs():
    assert M.as_mask(MASK4.astype(np.uint8) * 255).sum() == 4
    noisy = np.array([[0] * 9 + [3, 130] + [255] * 9], np.uint8)  # JPEG noise of a 0/255 mask
    assert M.as_mask(noisy).tolist() == [[False] * 10 + [True] * 10]
    # the same rule as every mask reader (io.images.binarise_mask): two-valued masks are "not 0"
    assert M.as_mask(np.array([[0, 2]], np.uint8)).tolist() == [[False, True]]  # a label 0/2
    assert M.as_mask(np.array([[0, 255]], np.uint16)).tolist() == [[False, True]]  # a 16-bit file of 0/255
    assert M.as_mask(np.array([[0, 1]], np.uint8)).tolist() == [[False, True]]  # 0/1 mask
    assert M.as_mask(np.array([[0, 2, 7]], np.int32)).tolist() == [[False, True, True]]  # labels
    assert M.as_probability(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert M.as_probability(PROB4[None]).shape == (4, 4)
    with pytest.raises(ValueError):
        M.as_probability(np.array([[0.5, 1.5]]))
    with pytest.raises(ValueError):
        M.as_probability(np.array([[np.nan, 0.5]]))
    with pytest.raises(ValueError):
        M.binary_metrics(PROB4, MASK4, threshold=1.5)


# ----------------------------------------------------------------------------- py_sod_metrics
def test_sod_metrics_perfect_prediction():
    gt = square()
    r = M.sod_metrics(gt.astype(np.float64), gt)
    assert r["s_measure"] == pytest.approx(1.0)
    assert r["mae"] == pytest.approx(0.0)
    assert r["weighted_f"] == pytest.approx(1.0)
    assert r["max_dice"] == pytest.approx(1.0)
    assert 0.99 < r["mean_e_measure"] <= 1.0  # the threshold-0 point of the curve is below 1
    assert r["dice_curve"].shape == (256,)


def test_sod_metrics_imperfect_ordering():
    gt = square()
    perfect = M.sod_metrics(gt.astype(float), gt)
    shifted = M.sod_metrics(square(shift=4).astype(float) * 0.9, gt)
    inverted = M.sod_metrics((~gt).astype(float), gt)
    for key in ("s_measure", "mean_e_measure", "weighted_f", "max_dice"):
        assert 0.0 <= inverted[key] < shifted[key] < perfect[key] <= 1.0 + 1e-9, key
    assert perfect["mae"] < shifted["mae"] < inverted["mae"] <= 1.0
    # shifted 16×16 square by 4 columns: overlap 16·12 → best Dice 2·192/512 = 0.75
    assert shifted["max_dice"] == pytest.approx(0.75)


def test_sod_minmax_option():
    rng = np.random.default_rng(0)
    faint = rng.uniform(0.0, 0.04, (32, 32))  # background noise on a frame without polyp
    empty = np.zeros((32, 32), bool)
    stretched = M.sod_metrics(faint, empty, minmax=True)["mae"]
    raw = M.sod_metrics(faint, empty, minmax=False)["mae"]
    assert raw < 0.03 < 0.3 < stretched


def test_evaluator_summary_and_per_image():
    ev = SegmentationEvaluator(threshold=0.3)
    assert ev.summary()["n"] == 0 and ev.summary()["mean_dice"] is None
    gt = square()
    r1 = ev.add(gt.astype(float), gt, name="perfect")
    r2 = ev.add(square(shift=4).astype(float) * 0.9, gt, name="shifted")
    ev.add(np.zeros((4, 4)), np.zeros((4, 4), bool), name="negative")
    s = ev.summary()
    assert set(s) == set(M.SUMMARY_KEYS) == {
        "n", "mean_dice", "mean_iou", "recall", "precision", "s_measure", "mean_e_measure",
        "weighted_f", "mae", "max_dice", "threshold", "empty_masks", "empty_masks_marked",
    }
    assert s["n"] == 3 and s["threshold"] == 0.3
    assert s["empty_masks"] == 1 and s["empty_masks_marked"] == 0
    assert r1["dice"] == 1.0 and r2["dice"] == pytest.approx(0.75)
    assert s["mean_dice"] == pytest.approx((1 + 0.75 + 1) / 3)
    assert s["mean_iou"] == pytest.approx((1 + 0.6 + 1) / 3)  # IoU 192/320 = 0.6
    rows = ev.per_image()
    assert [r["name"] for r in rows] == ["perfect", "shifted", "negative"]
    assert rows[2]["weighted_f"] == 0.0  # library convention on an empty mask
    # dataset max Dice = max of the mean curve ≤ mean of per-image maxima
    assert s["max_dice"] <= np.mean([r["max_dice"] for r in rows]) + 1e-12
    rows[0]["dice"] = -1  # per_image returns copies
    assert ev.per_image()[0]["dice"] == 1.0


def test_evaluator_counts_false_positive_frames():
    """Frames without polyp: how many there are and on how many anything is marked (>= threshold)."""
    ev = SegmentationEvaluator(threshold=0.3)
    empty = np.zeros((4, 4), bool)
    assert ev.summary()["empty_masks"] == 0
    ev.add(np.full((4, 4), 0.29), empty, name="below threshold")
    faint = np.zeros((4, 4))
    faint[0, 0] = 0.3
    ev.add(faint, empty, name="one pixel at threshold")
    ev.add(square().astype(float), square(), name="polyp")
    s = ev.summary()
    assert s["empty_masks"] == 2 and s["empty_masks_marked"] == 1


def test_evaluator_shape_mismatch_names_image():
    ev = SegmentationEvaluator()
    with pytest.raises(ValueError, match="frame_042"):
        ev.add(np.zeros((8, 8)), np.zeros((8, 9), bool), name="frame_042")
    assert len(ev) == 0


# ----------------------------------------------------------------------------- depth robustness
def test_pearson_and_depth_consistency():
    rng = np.random.default_rng(1)
    a = rng.random((16, 16))
    assert M.pearson(a, 2 * a + 1) == pytest.approx(1.0)
    assert M.pearson(a, -a) == pytest.approx(-1.0)
    assert M.pearson(np.full((4, 4), 0.3), np.full((4, 4), 0.7)) == 1.0  # both flat: agree
    assert M.pearson(a, np.full((16, 16), 0.5)) == 0.0  # one flat: no relation
    assert M.depth_consistency(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    with pytest.raises(ValueError):
        M.pearson(a, a[:8])
    b = a.copy()
    b[0, 0] = np.nan  # invalid depth pixels are ignored
    assert M.depth_consistency(a, b) == pytest.approx(1.0)
    noisy = a + rng.normal(0, 0.3, a.shape)
    c = M.depth_consistency(a, noisy)
    assert 0.0 < c < 1.0 and not math.isnan(c)


# ----------------------------------------------------------------------------- uncertainty
def test_mean_binary_entropy_values():
    assert M.mean_binary_entropy(np.zeros((4, 4))) == 0.0
    assert M.mean_binary_entropy(np.ones((4, 4))) == 0.0
    assert M.mean_binary_entropy(np.full((4, 4), 0.5)) == pytest.approx(1.0)
    h01 = -(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9))  # 0.4690 bits
    assert M.mean_binary_entropy(np.full((4, 4), 0.1)) == pytest.approx(h01)


def test_boundary_uncertainty():
    gt = square()
    assert M.boundary_uncertainty(gt.astype(float), 0.3) == 0.0  # confident edges
    assert M.boundary_uncertainty(np.zeros((16, 16)), 0.3) == 0.0  # no boundary
    assert M.boundary_uncertainty(np.full((16, 16), 0.5), 0.3) == 0.0  # mask covers the frame
    # left half 0.6, right half 0: band of 3 px either side of column 8 → cols 5..10,
    # half at H(0.6), half at 0; the image border is not a boundary
    p = np.zeros((16, 16))
    p[:, :8] = 0.6
    h06 = -(0.6 * math.log2(0.6) + 0.4 * math.log2(0.4))
    assert M.boundary_uncertainty(p, 0.3, band=3) == pytest.approx(h06 / 2)
    soft = gt * 0.9 + 0.05
    soft[gt ^ np.roll(gt, 1, axis=0)] = 0.5
    assert M.boundary_uncertainty(soft, 0.3) > 0.2


def test_a_polyp_just_below_the_threshold_is_doubtful_not_sure():
    """A frame whose polyp peaks at 0.28 against a threshold of 0.3 ranks near one at 0.32 and far
    above an empty frame; the score does not jump at the threshold, and fades for faint ones."""
    yy, xx = np.mgrid[:64, :64]
    d = np.hypot(yy - 32, xx - 32)

    def blob(peak):
        return 0.01 + (peak - 0.01) / (1 + np.exp((d - 10) / 2.0))

    below, above, empty = (M.uncertainty_score(blob(v), 0.3) for v in (0.28, 0.32, 0.01))
    assert below > 5 * empty and below > 0.8 * above
    at = [M.boundary_uncertainty(blob(v), 0.3) for v in (0.299, 0.301)]
    assert at[0] == pytest.approx(at[1], rel=0.1)  # no jump across the threshold
    assert M.boundary_uncertainty(blob(0.09), 0.3) == 0.0  # under a third of the threshold: nothing near


def test_temporal_disagreement():
    a = square(16, 4, 12).astype(float)
    assert M.temporal_disagreement(a, []) == 0.0
    assert M.temporal_disagreement(a, None) == 0.0
    assert M.temporal_disagreement(a, [a, a]) == 0.0
    disjoint = np.zeros_like(a)
    disjoint[12:, 12:] = 1
    assert M.temporal_disagreement(a, [disjoint]) == pytest.approx(1.0)
    half = square(16, 4, 12, shift=4).astype(float)  # 8×8 squares overlapping on 32 px → Dice 0.5
    assert M.temporal_disagreement(a, [half]) == pytest.approx(0.5)
    assert M.temporal_disagreement(a, [a, disjoint]) == pytest.approx(0.5)
    unsure = np.full((16, 16), 0.5)
    assert M.temporal_disagreement(unsure, [unsure]) == 0.0  # uncertain but consistent
    faint = np.full((16, 16), 0.01)
    assert M.temporal_disagreement(faint, [faint * 2]) == 0.0  # background noise below the floor
    with pytest.raises(ValueError):
        M.temporal_disagreement(a, [a[:8]])


def test_uncertainty_score_ranks_frames():
    rng = np.random.default_rng(2)
    gt = square()
    confident = gt * 0.99 + 0.005
    unsure = np.full(gt.shape, 0.5)
    noisy = np.clip(gt * 0.7 + 0.15 + rng.normal(0, 0.15, gt.shape), 0, 1)
    s_conf, s_noisy, s_unsure = (M.uncertainty_score(p, 0.3) for p in (confident, noisy, unsure))
    assert s_conf < 0.1
    assert s_unsure >= 0.5
    assert s_conf < s_noisy
    with_agreeing = M.uncertainty_score(noisy, 0.3, neighbours=[noisy])
    with_moving = M.uncertainty_score(noisy, 0.3, neighbours=[np.roll(noisy, 10, axis=1)])
    assert with_agreeing < with_moving
    for p in (rng.random((16, 16)), np.zeros((8, 8)), np.ones((8, 8))):
        assert 0.0 <= M.uncertainty_score(p, 0.3, neighbours=[rng.random(p.shape)]) <= 1.0


def test_frame_summary():
    gt = square(16, 4, 8)  # 16 px of 256
    p = gt * 0.8
    s = M.frame_summary(p, 0.3)
    assert set(s) == {"polyp_present", "area_fraction", "mean_prob_in_mask", "uncertainty"}
    assert s["polyp_present"] is True
    assert s["area_fraction"] == pytest.approx(16 / 256)
    assert s["mean_prob_in_mask"] == pytest.approx(0.8)
    assert s["uncertainty"] == pytest.approx(M.uncertainty_score(p, 0.3))
    e = M.frame_summary(np.full((16, 16), 0.1), 0.3)
    assert e["polyp_present"] is False and e["area_fraction"] == 0.0 and e["mean_prob_in_mask"] == 0.0


def test_small_regions_are_dropped_only_when_asked():
    p = np.zeros((20, 20), np.float32)
    p[2:12, 2:12] = 0.9  # 100 px: 25 % of the frame
    p[15, 15] = p[15, 16] = 0.8  # 2 px: 0.5 %
    p[18, 2] = 0.5  # 1 px, touching nothing (4-connected)
    marked = p >= 0.3
    assert np.array_equal(M.drop_small_regions(marked, 0.0), marked)
    kept = M.drop_small_regions(marked, 0.005)  # keeps regions of at least 2 px
    assert kept[2:12, 2:12].all() and kept[15, 15] and not kept[18, 2]
    assert M.drop_small_regions(marked, 0.01).sum() == 100
    s = M.frame_summary(p, 0.3, min_region=0.01)
    assert s["area_fraction"] == pytest.approx(0.25) and s["mean_prob_in_mask"] == pytest.approx(0.9)
    assert M.frame_summary(p, 0.3, min_region=0.3)["polyp_present"] is False
    # the evaluator sees the removed regions as unmarked, in the binary and the continuous measures
    gt = np.zeros((20, 20), bool)
    gt[2:12, 2:12] = True
    plain, filtered = M.SegmentationEvaluator(0.3), M.SegmentationEvaluator(0.3, min_region=0.01)
    assert plain.add(p, gt)["dice"] < 1.0 == filtered.add(p, gt)["dice"]
    assert filtered.per_image()[0]["pred_area"] == 100
    with pytest.raises(ValueError, match="share of the frame"):
        M.drop_small_regions(marked, 1.5)
