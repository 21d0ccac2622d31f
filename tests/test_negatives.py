"""Polyp-free crops: the largest free square, and the dataset of "empty" frames the trainer reads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_depthpolyp.dataset import Dataset, DatasetWriter
from napari_depthpolyp.negatives import largest_free_square, write_negative_crops
from napari_depthpolyp.train.loop import _open_split


def brute_force_side(mask: np.ndarray, margin: int) -> int:
    h, w = mask.shape
    padded = np.pad(mask, margin)
    best = 0
    for side in range(1, min(h, w) + 1):
        k = side + 2 * margin
        if any(not padded[y:y + k, x:x + k].any() for y in range(h - side + 1) for x in range(w - side + 1)):
            best = side
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("margin", [0, 2])
def test_largest_free_square_matches_brute_force(seed, margin):
    rng = np.random.default_rng(seed)
    mask = np.zeros((13, 17), bool)
    for _ in range(rng.integers(1, 4)):
        y, x = rng.integers(0, 13), rng.integers(0, 17)
        mask[y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = True
    top, left, side = largest_free_square(mask, margin)
    assert side == brute_force_side(mask, margin)
    lo_y, lo_x = max(0, top - margin), max(0, left - margin)
    assert not mask[lo_y:top + side + margin, lo_x:left + side + margin].any()


def test_largest_free_square_edge_cases():
    assert largest_free_square(np.ones((5, 5), bool)) == (0, 0, 0)
    assert largest_free_square(np.zeros((4, 6), bool)) == (0, 1, 4)  # centred when there is a choice
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:6] = True
    assert largest_free_square(mask) == (2, 6, 6)  # right of the polyp, centred vertically
    assert largest_free_square(mask, margin=1) == (2, 7, 5)
    with pytest.raises(ValueError, match="2-D"):
        largest_free_square(np.zeros((2, 2, 3)))


def test_negative_crops_dataset(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "annotated"
    with DatasetWriter(src) as w:
        image = rng.integers(40, 256, (60, 80, 3), dtype=np.uint8)
        mask = np.zeros((60, 80), bool)
        mask[10:30, 5:25] = True  # polyp on the left: free space on the right
        w.add("left", image, mask)
        w.add("filled", image, np.ones((60, 80), bool))  # nothing free
        dark = image.copy()
        dark[:, 30:] = 0  # the free part is the scope's black border
        w.add("dark", dark, mask)
    summary = write_negative_crops(Dataset.open(src), tmp_path / "negatives")
    assert summary["n_frames"] == 1 and summary["statuses"]["empty"] == 1
    assert sorted(summary["skipped"]) == ["dark", "filled"]
    top, left, side = summary["crops"]["left_nopolyp"]
    margin = round(0.05 * 60)
    assert side >= 0.4 * 60 and left >= 25 + margin
    assert not mask[max(0, top - margin):top + side + margin, max(0, left - margin):left + side + margin].any()

    negatives = _open_split(str(tmp_path / "negatives"), "train")  # no split.json: the whole folder
    assert negatives.names == ["left_nopolyp"]
    crop, crop_mask, _ = negatives.load(0)
    assert crop_mask.shape == (side, side) and not crop_mask.any()
    assert np.array_equal(crop, image[top:top + side, left:left + side])
    manifest = json.loads((tmp_path / "negatives" / "manifest.json").read_text())
    assert manifest["frames"][0]["status"] == "empty"
    assert manifest["frames"][0]["source"]["file"].endswith("left.png")


def test_negative_crops_refuse_bad_fraction(tmp_path):
    with pytest.raises(ValueError, match="min_fraction"):
        write_negative_crops(Dataset(tmp_path, []), tmp_path / "out", min_fraction=0)


def test_negative_crops_from_kvasir_train_never_touch_a_polyp(kvasir_dir, tmp_path):
    source = Dataset.open(kvasir_dir, split="train")
    subset = Dataset(source.root, source.samples[:12])
    summary = write_negative_crops(subset, tmp_path / "neg")
    assert summary["n_frames"] >= 6  # most Kvasir frames leave a square of 40 % of the short side
    for name, (top, left, side) in summary["crops"].items():
        i = subset.names.index(name.removesuffix("_nopolyp"))
        _, mask, _ = subset.load(i)
        assert side >= 0.4 * min(mask.shape)
        assert not mask[top:top + side, left:left + side].any()
