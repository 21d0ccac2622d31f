"""Seeded degradations and geometric augmentation."""

import numpy as np
import pytest

from napari_depthpolyp.degrade import (
    AugmentConfig,
    DegradeConfig,
    Degrader,
    augment_geometric,
    degrade_seeded,
)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:224, 0:224]
    img = np.stack([0.5 + 0.3 * np.sin(xx / 9.0), 0.4 + 0.2 * np.cos(yy / 7.0), 0.3 + 0.1 * rng.random((224, 224))], -1)
    mask = (yy - 120) ** 2 + (xx - 100) ** 2 < 40**2
    return img.astype(np.float32), mask


def test_same_seed_bit_identical_and_seeds_differ(frame):
    img, mask = frame
    a, ma = degrade_seeded(img, mask, seed=7)
    b, mb = degrade_seeded(img, mask, seed=7)
    c, _ = degrade_seeded(img, mask, seed=8)
    assert a.tobytes() == b.tobytes() and np.array_equal(ma, mb)
    assert not np.array_equal(a, c)


def test_inputs_untouched(frame):
    img, mask = frame
    before = img.copy()
    degrade_seeded(img, mask, seed=1)
    assert np.array_equal(img, before)


@pytest.mark.parametrize("name", Degrader(DegradeConfig(noise=True)).names())
def test_each_degradation_changes_the_image_and_stays_in_range(frame, name):
    img, mask = frame
    out, m = Degrader(DegradeConfig(noise=True)).apply_one(name, img, mask, np.random.default_rng(3))
    assert out.dtype == np.float32 and out.shape == img.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not np.array_equal(out, img), name
    assert m.shape == mask.shape and m.dtype == mask.dtype


def test_probability_zero_means_never(frame):
    img, mask = frame
    cfg = DegradeConfig(**{f"{n}_p": 0.0 for n in ("brightness_contrast", "gaussian_blur", "motion_blur", "jpeg",
                                                  "fog", "optical_distortion", "specular")})
    out, m = Degrader(cfg)(img, mask, np.random.default_rng(0))
    assert np.array_equal(out, img) and np.array_equal(m, mask)


def test_distortion_moves_the_mask_with_the_image(frame):
    _, mask = frame
    img = np.repeat(mask[..., None].astype(np.float32), 3, -1)  # the image *is* the mask
    for seed in range(5):
        out, m = Degrader().apply_one("optical_distortion", img, mask, np.random.default_rng(seed))
        agree = ((out[..., 0] > 0.5) == m).mean()
        assert agree > 0.995, (seed, agree)


def test_specular_highlights_saturate(frame):
    img, mask = frame
    out, _ = Degrader().apply_one("specular", img * 0.5, mask, np.random.default_rng(4))
    assert (out >= 0.999).all(-1).any()  # white cores, as real specularities


def test_geometric_augmentation_is_consistent(frame):
    _, mask = frame
    img = np.repeat(mask[..., None].astype(np.float32), 3, -1)
    depth = mask.astype(np.float32)
    cfg = AugmentConfig(rotate_p=1, shift_scale_p=1, hflip_p=1, vflip_p=1)
    a, m, d = augment_geometric(img, mask, depth, np.random.default_rng(5), cfg)
    assert ((a[..., 0] > 0.5) == m).mean() > 0.995
    assert ((d > 0.5) == m).mean() > 0.995
    a2, m2, _ = augment_geometric(img, mask, depth, np.random.default_rng(5), cfg)
    assert np.array_equal(a, a2) and np.array_equal(m, m2)


def test_real_frame_degrades_visibly(kvasir_dir):
    from napari_depthpolyp.dataset import Dataset
    from napari_depthpolyp.preprocess import resize_batch, resize_mask, to_float_rgb

    ds = Dataset.open(kvasir_dir, split="val")
    image, mask, _ = ds.load(0)
    x = resize_batch([to_float_rgb(image)], 224)[0].permute(1, 2, 0).numpy()
    out, m = degrade_seeded(x, resize_mask(mask, 224), seed=0)
    assert np.abs(out - x).mean() > 0.01 and m.shape == (224, 224)
