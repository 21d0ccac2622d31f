"""Seeded degradations and geometric augmentation."""

import numpy as np
import pytest

from napari_depthpolyp.degrade import (
    AugmentConfig,
    ColourConfig,
    DegradeConfig,
    Degrader,
    augment_colour,
    augment_geometric,
    degrade_seeded,
    paste_polyp,
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


# ---------------------------------------------------------------------------------------------
# order, probabilities, rng hygiene


def test_names_in_reference_order_and_noise_off_by_default():
    seven = ["brightness_contrast", "gaussian_blur", "motion_blur", "jpeg", "fog", "optical_distortion", "specular"]
    assert DegradeConfig().noise is False
    assert Degrader().names() == seven
    assert Degrader(DegradeConfig(noise=True)).names() == seven[:3] + ["sensor_noise"] + seven[3:]
    assert Degrader().probability("sensor_noise") == 0.0
    assert [Degrader().probability(n) for n in seven] == [1.0, 0.2, 1.0, 0.5, 0.3, 0.3, 0.8]


def test_probability_zero_means_never_for_every_seed_including_noise(frame):
    img, mask = frame
    names = ("brightness_contrast", "gaussian_blur", "motion_blur", "jpeg", "fog", "optical_distortion", "specular", "noise")
    cfg = DegradeConfig(noise=True, **{f"{n}_p": 0.0 for n in names})
    for seed in range(10):
        out, m = degrade_seeded(img[:32, :32], mask[:32, :32], seed=seed, config=cfg)
        assert np.array_equal(out, img[:32, :32]) and np.array_equal(m, mask[:32, :32])


def test_probability_is_respected():
    img = np.full((12, 12, 3), 0.5, np.float32)
    off = {f"{n}_p": 0.0 for n in ("brightness_contrast", "gaussian_blur", "motion_blur", "jpeg",
                                    "optical_distortion", "specular")}
    deg = Degrader(DegradeConfig(fog_p=0.3, **off))
    fired = sum(not np.array_equal(deg(img, None, np.random.default_rng(s))[0], img) for s in range(300))
    assert 60 <= fired <= 120, fired  # 90 expected (binomial sd ~ 8)


def test_only_the_given_rng_is_used(frame):
    img, mask = frame
    state = np.random.get_state()
    degrade_seeded(img, mask, seed=3, config=DegradeConfig(noise=True, noise_p=1.0))
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


def test_inputs_are_checked(frame):
    img, mask = frame
    with pytest.raises(TypeError):
        degrade_seeded((img * 255).astype(np.uint8), mask, seed=0)
    with pytest.raises(ValueError):
        degrade_seeded(img[..., :2], mask, seed=0)
    with pytest.raises(ValueError):
        degrade_seeded(img, mask[:10], seed=0)
    with pytest.raises(KeyError):
        Degrader().apply_one("rain", img, mask, np.random.default_rng(0))
    with pytest.raises(ValueError):
        DegradeConfig(fog_p=1.5)


def test_mask_none_and_dtypes_are_kept(frame):
    img, mask = frame
    out, m = degrade_seeded(img, None, seed=2)
    assert m is None and out.dtype == np.float32
    mask_u8 = mask.astype(np.uint8) * 255
    for seed in range(3):
        _, m = Degrader().apply_one("optical_distortion", img, mask_u8, np.random.default_rng(seed))
        assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}


def test_distortion_warps_the_mask_exactly_like_the_image():
    # a strong distortion (the reference's 0.05 moves corners by ~4 px only) makes the check sharp:
    # the returned mask must match the warped image far better than the unwarped mask does
    yy, xx = np.mgrid[0:160, 0:160]
    mask = ((yy // 20 + xx // 20) % 2 == 0) & (yy > 8) & (xx > 8)  # a checkerboard: edges everywhere
    img = np.repeat(mask[..., None].astype(np.float32), 3, -1)
    for distort in (0.05, 0.4):
        deg = Degrader(DegradeConfig(distort_limit=distort))
        checked = 0
        for seed in range(4):
            out, m = deg.apply_one("optical_distortion", img, mask, np.random.default_rng(seed))
            seen = out[..., 0] > 0.5
            moved = (seen != mask).mean()
            if moved > 0.002:  # the image moved (k is uniform in [-limit, limit], so not always)
                checked += 1
                assert (seen != m).mean() < 0.2 * moved, (distort, seed)  # and the mask moved with it
        assert checked >= 2, distort


# ---------------------------------------------------------------------------------------------
# speculars


def test_specular_spot_is_a_gaussian_blurred_ellipse():
    from scipy import ndimage as ndi

    from napari_depthpolyp.degrade import _soft_ellipse

    n, ss = 160, 4
    for a, b, theta, sigma in [(25, 25, 0.0, 6.0), (30, 10, 0.6, 2.5), (12, 12, 0.0, 1.5)]:
        y0, x0, patch = _soft_ellipse(n, n, 80.0, 80.0, a, b, theta, sigma)
        got = np.zeros((n, n), np.float32)
        got[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
        yy, xx = (np.mgrid[0:n * ss, 0:n * ss] + 0.5) / ss - 0.5 - 80.0  # supersampled binary ellipse
        u, v = xx * np.cos(theta) + yy * np.sin(theta), yy * np.cos(theta) - xx * np.sin(theta)
        disk = ((u / a) ** 2 + (v / b) ** 2 <= 1).reshape(n, ss, n, ss).mean((1, 3))
        ref = ndi.gaussian_filter(disk, sigma)
        err = np.abs(got - ref)
        assert err[ref > 0.01].mean() < 0.04 and err.max() < 0.2, (a, b, sigma, err.max())


def test_specular_radii_scale_with_the_image():
    grey = np.full((224, 224, 3), 0.3, np.float32)
    big = np.full((448, 448, 3), 0.3, np.float32)
    ratios = []
    for seed in range(4):
        small_out, _ = Degrader().apply_one("specular", grey, None, np.random.default_rng(seed))
        big_out, _ = Degrader().apply_one("specular", big, None, np.random.default_rng(seed))
        ratios.append((big_out > 0.31).all(-1).sum() / max(1, (small_out > 0.31).all(-1).sum()))
    assert 3.0 < np.median(ratios) < 5.0, ratios  # area x4 for twice the size


def test_specular_cores_are_white_on_a_red_frame():
    red = np.zeros((224, 224, 3), np.float32)
    red[..., 0] = 0.7
    red[..., 1] = 0.25
    out, _ = Degrader().apply_one("specular", red, None, np.random.default_rng(1))
    changed = np.abs(out - red).max(-1) > 0.05
    white = (out >= 0.999).all(-1)
    assert white.any() and white.sum() < changed.sum()  # saturated core, softer halo around it


# ---------------------------------------------------------------------------------------------
# geometric augmentation


def test_geometric_augmentation_never_and_exact_flips(frame):
    img, mask = frame
    depth = img[..., 1].copy()
    never = AugmentConfig(rotate_p=0, shift_scale_p=0, hflip_p=0, vflip_p=0)
    a, m, d = augment_geometric(img, mask, depth, np.random.default_rng(0), never)
    assert np.array_equal(a, img) and np.array_equal(m, mask) and np.array_equal(d, depth)
    flips = AugmentConfig(rotate_p=0, shift_scale_p=0, hflip_p=1, vflip_p=1)
    a, m, d = augment_geometric(img, mask, None, np.random.default_rng(0), flips)
    assert np.array_equal(a, img[::-1, ::-1]) and np.array_equal(m, mask[::-1, ::-1]) and d is None


def test_geometric_augmentation_moves_things_and_keeps_dtypes(frame):
    img, mask = frame
    cfg = AugmentConfig(rotate_p=1, shift_scale_p=1, hflip_p=0, vflip_p=0)
    a, m, d = augment_geometric(img, mask.astype(np.uint8), img[..., 0], np.random.default_rng(9), cfg)
    assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1 and not np.array_equal(a, img)
    assert m.dtype == np.uint8 and d.dtype == np.float32 and d.shape == mask.shape
    assert not np.array_equal(m, mask.astype(np.uint8))


def test_augment_presets_reference_is_the_default_and_strong_moves_more(frame):
    from napari_depthpolyp.degrade import AUGMENT_PRESETS, augment_preset
    from napari_depthpolyp.train import TrainConfig

    assert augment_preset("reference") == AugmentConfig()
    strong = augment_preset("strong")
    assert strong.rotate_limit > AugmentConfig().rotate_limit
    assert strong.scale_range[0] < 0.9 and strong.scale_range[1] > 1.1
    with pytest.raises(ValueError, match="strong"):
        augment_preset("wild")
    # The mask still follows the image under the wider ranges: the polyp's area changes only by the
    # scale, never by a mismatch (the warp is one affine for both).
    img, mask = frame
    areas = []
    for seed in range(20):
        a, m, _ = augment_geometric(img, mask.astype(np.uint8), None, np.random.default_rng(seed), strong)
        assert a.shape == img.shape and set(np.unique(m)) <= {0, 1}
        areas.append(m.sum() / mask.sum())
    assert 0.75**2 * 0.9 < min(areas) and max(areas) < 1.25**2 * 1.1
    # Existing runs keep their config key (and so still resume) at the default preset.
    cfg = TrainConfig(train_data=["x"])
    assert cfg.key() == TrainConfig(train_data=["x"], augment_preset="reference").key()
    assert cfg.key() != TrainConfig(train_data=["x"], augment_preset="strong").key()
    # The command line lists its choices without importing this module: they must be the presets.
    from napari_depthpolyp.cli import build_parser

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "augment_preset")
    assert set(train.choices) == set(AUGMENT_PRESETS) == {"reference", "strong"}


def test_colour_augmentation_changes_colour_not_geometry(frame):
    img, _ = frame
    outs = [augment_colour(img, np.random.default_rng(seed), ColourConfig(p=1.0)) for seed in range(8)]
    for out in outs:
        assert out.dtype == np.float32 and out.shape == img.shape
        assert 0.0 <= out.min() and out.max() <= 1.0
        # Geometry untouched: the image's structure (here the sine along x) stays where it was.
        assert np.corrcoef(out[..., 0].mean(0), img[..., 0].mean(0))[0, 1] > 0.9
    # The colour balance really moves from draw to draw: the red/green ratio of the mean colour.
    ratios = [o[..., 0].mean() / o[..., 1].mean() for o in outs]
    assert max(ratios) - min(ratios) > 0.05
    # Seeded, and the input is never modified.
    before = img.copy()
    a = augment_colour(img, np.random.default_rng(3))
    np.testing.assert_array_equal(a, augment_colour(img, np.random.default_rng(3)))
    np.testing.assert_array_equal(img, before)


def test_colour_augmentation_draws_the_same_whether_it_fires_or_not(frame):
    img, _ = frame
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(augment_colour(img, r1, ColourConfig(p=0.0)), img)
    augment_colour(img, r2, ColourConfig(p=1.0))
    assert r1.random() == r2.random()  # what follows in the pipeline sees the same stream


def test_colour_augmentation_identity_settings_and_grey_stays_grey():
    grey = np.full((8, 8, 3), 0.4, np.float32)
    ident = ColourConfig(p=1.0, gain_range=(1.0, 1.0), hue_range=(0.0, 0.0), saturation_range=(1.0, 1.0),
                         gamma_range=(1.0, 1.0))
    rng = np.random.default_rng(0)
    colours = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(augment_colour(colours, rng, ident), colours, atol=1e-5)
    # Hue and saturation have no effect on a neutral grey; gamma alone moves its level.
    hue_sat = ColourConfig(p=1.0, gain_range=(1.0, 1.0), gamma_range=(1.0, 1.0))
    out = augment_colour(grey, rng, hue_sat)
    np.testing.assert_allclose(out, grey, atol=1e-5)
    with pytest.raises(ValueError, match="gamma_range"):
        ColourConfig(gamma_range=(1.2, 0.8))


def test_colour_is_off_by_default_and_keeps_run_keys():
    from napari_depthpolyp.cli import build_parser
    from napari_depthpolyp.train import TrainConfig

    cfg = TrainConfig(train_data=["x"])
    assert cfg.colour is False
    assert cfg.key() != TrainConfig(train_data=["x"], colour=True).key()
    # Runs started before the option existed still resume: the key leaves it out at its default.
    import hashlib
    import json

    old = cfg.to_json()
    # Every field added after runs were started is left out at its default, these among them.
    for name in ("colour", "augment_preset", "degrade_prob", "paste_prob", "dice_positives", "ema_bn_batches",
                 "val_negatives", "distill_from", "distill_weight", "distill_view",
                 "select_max_negatives"):
        del old[name]
    assert cfg.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:12]
    for command in ("train", "finetune"):
        args = build_parser().parse_args([command, "--data", "d", "--colour"])
        assert args.colour is True


def test_paste_polyp_puts_the_donor_polyp_somewhere_new_and_the_mask_follows(frame):
    img, mask = frame
    donor = np.zeros_like(img)
    donor[..., 2] = 1.0  # a blue polyp on black, so every pasted pixel is recognisable
    yy, xx = np.mgrid[0:224, 0:224]
    donor_mask = (yy - 60) ** 2 + (xx - 60) ** 2 < 30**2
    out, new_mask = paste_polyp(img, mask, donor, donor_mask, np.random.default_rng(5), scale_range=(0.8, 0.8))
    assert new_mask.dtype == bool and (new_mask >= mask).all()  # the union: nothing of the frame's polyp is lost
    added = new_mask & ~mask
    assert 0.8**2 * donor_mask.sum() * 0.5 < added.sum() <= 0.8**2 * donor_mask.sum() * 1.1
    bluish = out[..., 2] - out[..., :2].max(-1) > 0.5
    assert bluish[added].mean() > 0.9  # under the new mask: the donor's pixels
    from scipy import ndimage as ndi

    seam = ndi.binary_dilation(new_mask, iterations=5)
    assert not (np.abs(out - img).max(-1) > 0.02)[~seam].any()  # outside the polyp: the frame, but a feathered seam
    assert np.array_equal(img, frame[0]) and np.array_equal(mask, frame[1])  # inputs untouched
    again = paste_polyp(img, mask, donor, donor_mask, np.random.default_rng(5), scale_range=(0.8, 0.8))
    assert np.array_equal(again[0], out) and np.array_equal(again[1], new_mask)


def test_paste_polyp_with_an_empty_donor_or_a_huge_one(frame):
    img, mask = frame
    out, new_mask = paste_polyp(img, mask, img, np.zeros_like(mask), np.random.default_rng(0))
    assert np.array_equal(out, img) and np.array_equal(new_mask, mask)
    big = np.ones((300, 400, 3), np.float32)  # a donor larger than the frame is shrunk to fit
    out, new_mask = paste_polyp(img, np.zeros_like(mask), big, np.ones((300, 400), bool), np.random.default_rng(0),
                                scale_range=(1.0, 1.0))
    assert out.shape == img.shape and new_mask.shape == mask.shape and new_mask.mean() > 0.5
