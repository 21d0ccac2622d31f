"""Dataset format: DatasetWriter → Dataset round trip, plain folders, errors, real data sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_depthpolyp.dataset import Dataset, DatasetError, DatasetWriter, Sample, file_sha256

H, W = 20, 30  # not square, so a transposition would show


def frame(seed: int, with_depth: bool = True, empty: bool = False):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), bool)
    if not empty:
        mask[4 + seed : 12 + seed, 5:20] = True
    depth = rng.random((H, W)).astype(np.float32) if with_depth else None
    return image, mask, depth


MODEL = {"model": "depthpolyp-kvasir", "version": "0.1.0", "sha256": "ab" * 32}


def write_sample_dataset(root: Path) -> dict:
    with DatasetWriter(root) as w:
        img, m, d = frame(0)
        w.add("video_0000", img, m, d, source_file="/videos/a.mp4", frame_index=0, status="accepted", proposed_by=MODEL)
        img, m, d = frame(1)
        w.add("video_0001", img, m, d, source_file="/videos/a.mp4", frame_index=1, status="corrected", proposed_by=MODEL)
        img, m, _ = frame(2, with_depth=False, empty=True)
        w.add("video_0002", img, m, None, source_file="/videos/a.mp4", frame_index=2, status="empty")
        img, m, _ = frame(3, with_depth=False)
        w.add("still", img, m, status="unreviewed", proposed_by=MODEL)
        report = w.close()
    return report


def save(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


# ----------------------------------------------------------------------------- round trip
def test_writer_round_trip(tmp_path):
    root = tmp_path / "ds"
    report = write_sample_dataset(root)
    assert report == {
        "root": str(root),
        "n_frames": 4,
        "statuses": {"accepted": 1, "corrected": 1, "empty": 1, "unreviewed": 1},
    }
    ds = Dataset.open(root)
    assert ds.names == ["video_0000", "video_0001", "video_0002", "still"]  # manifest order
    assert len(ds) == 4 and isinstance(ds[0], Sample) and [s.name for s in ds] == ds.names
    assert ds.manifest["format"] == "depthpolyp-dataset" and ds.manifest["version"] == 1

    for i, (seed, has_depth, empty) in enumerate([(0, True, False), (1, True, False), (2, False, True), (3, False, False)]):
        img, m, d = frame(seed, with_depth=has_depth, empty=empty)
        image, mask, depth = ds.load(i)
        assert image.dtype == np.uint8 and image.shape == (H, W, 3)
        np.testing.assert_array_equal(image, img)  # lossless
        assert mask.dtype == bool
        np.testing.assert_array_equal(mask, m)
        if has_depth:
            assert depth.dtype == np.float32 and depth.shape == (H, W)
            np.testing.assert_allclose(depth, d, atol=1 / 65535)  # 16-bit PNG
        else:
            assert depth is None and ds[i].depth is None

    statuses = [ds.frame_info(i)["status"] for i in range(len(ds))]
    assert statuses == ["accepted", "corrected", "empty", "unreviewed"]
    info = ds.frame_info("video_0001")
    assert info["source"] == {"file": "/videos/a.mp4", "frame_index": 1}
    assert info["proposed_by"] == MODEL and ds.frame_info("video_0002")["proposed_by"] is None
    assert info["image"] == "images/video_0001.png" and info["depth"] == "depth/video_0001.png"
    assert info["sha256"]["image"] == file_sha256(root / "images/video_0001.png")
    assert info["sha256"]["mask"] == file_sha256(root / "masks/video_0001.png")
    assert info["sha256"]["depth"] == file_sha256(root / "depth/video_0001.png")
    assert ds.frame_info("still")["sha256"]["depth"] is None
    assert set(info) >= {"created", "modified"}
    assert ds.verify() == []
    # masks on disk are 0/255, depth 16-bit
    assert set(np.unique(np.asarray(Image.open(root / "masks/video_0000.png"))).tolist()) == {0, 255}
    assert np.asarray(Image.open(root / "depth/video_0000.png")).dtype == np.uint16
    assert not list(root.rglob(".*"))  # no temporary files left behind

    # review statuses can be filtered (e.g. train without unreviewed proposals)
    reviewed = Dataset.open(root, statuses=("accepted", "corrected", "empty"))
    assert reviewed.names == ["video_0000", "video_0001", "video_0002"]


def test_fingerprint_is_content_based(tmp_path):
    root = tmp_path / "ds"
    write_sample_dataset(root)
    ds = Dataset.open(root)
    fp = ds.fingerprint()
    assert len(fp) == 64 and fp == Dataset.open(root).fingerprint()
    # the same files as a plain folder (no manifest, elsewhere) have the same fingerprint
    plain = tmp_path / "plain"
    shutil.copytree(root / "images", plain / "images")
    shutil.copytree(root / "masks", plain / "masks")
    assert Dataset.open(plain).fingerprint() == fp
    # changing one mask changes it, and verify() reports the file
    m = np.asarray(Image.open(root / "masks/still.png")).copy()
    m[0, 0] = 255
    save(root / "masks/still.png", m)
    assert Dataset.open(root, verify=False).fingerprint() != fp
    problems = Dataset.open(root, verify=False).verify()
    assert len(problems) == 1 and "still" in problems[0] and "mask" in problems[0]
    # a file name that is not UTF-8 (Latin-1 bytes on a Linux disk) is fingerprinted, not a crash
    import os

    latin = tmp_path / "latin"
    shutil.copytree(plain, latin)
    for sub in ("images", "masks"):
        src = next((latin / sub).iterdir())
        os.rename(src, os.path.join(os.fsencode(latin / sub), b"caf\xe9" + os.fsencode(src.suffix)))
    assert len(Dataset.open(latin).fingerprint()) == 64


def test_writer_refuses_non_empty_folder_and_overwrites(tmp_path):
    root = tmp_path / "ds"
    write_sample_dataset(root)
    created = Dataset.open(root).frame_info("still")["created"]
    with pytest.raises(DatasetError, match="not empty"):
        DatasetWriter(root)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(DatasetError):
        DatasetWriter(other)
    # overwrite: new manifest, stale frames removed after it is written, created time kept
    with DatasetWriter(root, overwrite=True) as w:
        img, m, _ = frame(3, with_depth=False)
        w.add("still", img, m, status="accepted")
    ds = Dataset.open(root)
    assert ds.names == ["still"] and ds.frame_info("still")["status"] == "accepted"
    assert ds.frame_info("still")["created"] == created
    assert sorted(p.name for p in (root / "images").iterdir()) == ["still.png"]
    assert not any((root / "depth").iterdir())
    assert ds.verify() == []


def test_writer_never_replaces_a_folder_it_did_not_write(tmp_path):
    """A Kvasir-style folder of someone's images and masks, or a folder with a foreign manifest, is
    refused even with overwrite: an export aimed at the wrong folder deletes nothing."""
    from PIL import Image

    plain = tmp_path / "kvasir"
    for sub in ("images", "masks"):
        (plain / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(plain / sub / "a.png")
    with pytest.raises(DatasetError, match="no manifest.json"):
        DatasetWriter(plain, overwrite=True)
    assert sorted(p.name for p in (plain / "images").iterdir()) == ["a.png"]
    (plain / "manifest.json").write_text('{"format": "something-else", "frames": []}')
    with pytest.raises(DatasetError, match="not a napari-depthpolyp manifest"):
        DatasetWriter(plain, overwrite=True)
    # A file dropped beside a dataset of ours survives its replacement: only listed files go.
    root = tmp_path / "ds"
    write_sample_dataset(root)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "images" / "mine.png")
    with DatasetWriter(root, overwrite=True) as w:
        w.add("still", *frame(3, with_depth=False)[:2])
    assert sorted(p.name for p in (root / "images").iterdir()) == ["mine.png", "still.png"]


def test_writer_aborted_block_writes_no_manifest(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(root) as w:
            w.add("a", *frame(0)[:2])
            raise RuntimeError("export interrupted")
    assert not (root / "manifest.json").exists() and not any(root.iterdir())
    # an interrupted replacement leaves the old dataset exactly as it was, and the folder usable
    write_sample_dataset(root)
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError):
        with DatasetWriter(root, overwrite=True) as w:
            w.add("still", *frame(7, with_depth=False)[:2])
            raise RuntimeError("export interrupted")
    assert {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    assert Dataset.open(root).verify() == []


def test_writer_validates_frames(tmp_path):
    w = DatasetWriter(tmp_path / "ds")
    img, m, d = frame(0)
    for bad in ("", "../x", "a/b", ".hidden", "x" * 201):
        with pytest.raises(DatasetError):
            w.add(bad, img, m)
    w.add("a", img, m)
    with pytest.raises(DatasetError, match="already"):
        w.add("A", img, m)
    with pytest.raises(DatasetError, match="status"):
        w.add("b", img, m, status="maybe")
    with pytest.raises(DatasetError, match="empty"):
        w.add("c", img, m, status="empty")
    with pytest.raises(DatasetError, match="'d'"):
        w.add("d", img, m[:, :10])
    with pytest.raises(DatasetError, match="depth"):
        w.add("e", img, m, d * 3)
    assert w.close()["n_frames"] == 1
    with pytest.raises(DatasetError, match="closed"):
        w.add("f", img, m)


def test_writer_converts_inputs(tmp_path):
    root = tmp_path / "ds"
    grey = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    rgba = np.dstack([frame(0)[0], np.full((H, W), 7, np.uint8)])
    labels = np.zeros((H, W), np.int32)
    labels[2:5, 2:5] = 1
    labels[10:12, 10:12] = 3  # napari Labels: every label is polyp
    with DatasetWriter(root) as w:
        w.add("grey", grey, labels, np.zeros((H, W), np.uint16))
        w.add("rgba", rgba, labels > 0)
        w.add("float", frame(1)[0] / 255.0, labels.astype(np.float32))
    ds = Dataset.open(root)
    image, mask, depth = ds.load(0)
    np.testing.assert_array_equal(image, np.dstack([grey] * 3))
    assert mask.sum() == 9 + 4 and depth.max() == 0.0
    np.testing.assert_array_equal(ds.load(1)[0], frame(0)[0])
    np.testing.assert_array_equal(ds.load(2)[0], frame(1)[0])


# ----------------------------------------------------------------------------- plain folders
def test_plain_folder_pairs_by_name_not_order(tmp_path):
    root = tmp_path / "plain"
    # image extensions differ from mask extensions, and listing order differs from name order
    for i, (img_ext, mask_ext) in enumerate([(".jpg", ".png"), (".png", ".tif"), (".tiff", ".bmp")]):
        name = ["10", "2", "b"][i]
        save(root / "images" / f"{name}{img_ext}", np.full((H, W, 3), 40 * i, np.uint8))
        mask = np.zeros((H, W), np.uint8)
        mask[: i + 1] = 255  # i+1 rows: identifies the pair
        save(root / "masks" / f"{name}{mask_ext}", mask)
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    ds = Dataset.open(root)
    assert ds.names == ["2", "10", "b"]  # natural order
    assert ds.manifest is None and ds.frame_info(0) is None
    assert Dataset.open(root, statuses=("accepted",)).names == ds.names  # plain folders have no statuses
    for name, rows in (("10", 1), ("2", 2), ("b", 3)):
        i = ds.names.index(name)
        _, mask, depth = ds.load(i)
        assert mask.sum() == rows * W and depth is None


def test_unpaired_names_are_listed(tmp_path):
    root = tmp_path / "plain"
    px = np.zeros((2, 2), np.uint8)
    for i in range(12):
        save(root / "images" / f"img{i:02d}.png", px)
    save(root / "images" / "paired.png", px)
    save(root / "masks" / "paired.png", px)
    save(root / "masks" / "orphan_mask.png", px)
    with pytest.raises(DatasetError) as err:
        Dataset.open(root)
    msg = str(err.value)
    assert "13 unpaired" in msg and "12 images without a mask" in msg
    assert "img00" in msg and "img09" in msg and "img11" not in msg and "and 2 more" in msg
    assert "1 masks without an image: orphan_mask" in msg
    assert isinstance(err.value, ValueError)


def test_duplicate_stems_rejected(tmp_path):
    root = tmp_path / "plain"
    px = np.zeros((2, 2), np.uint8)
    save(root / "images" / "a.png", px)
    save(root / "images" / "a.jpg", px)
    save(root / "masks" / "a.png", px)
    with pytest.raises(DatasetError, match="several extensions in one folder: a"):
        Dataset.open(root)


def test_size_mismatch_names_the_file(tmp_path):
    root = tmp_path / "plain"
    save(root / "images" / "ok.png", np.zeros((8, 8, 3), np.uint8))
    save(root / "masks" / "ok.png", np.zeros((8, 8), np.uint8))
    save(root / "images" / "bad.jpg", np.zeros((8, 8, 3), np.uint8))
    save(root / "masks" / "bad.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(DatasetError, match=r"1 samples .*bad \(image bad.jpg is 8×8, mask bad.png is 9×8\)"):
        Dataset.open(root)
    assert len(Dataset.open(root, check_sizes=False)) == 2


def test_split_file(tmp_path):
    root = tmp_path / "plain"
    px = np.zeros((2, 2), np.uint8)
    for n in ("a", "b", "c"):
        save(root / "images" / f"{n}.png", px)
        save(root / "masks" / f"{n}.png", px)
    with pytest.raises(DatasetError, match="split.json does not exist"):
        Dataset.open(root, split="train")
    (root / "split.json").write_text(json.dumps({"train": ["c", "a"], "val": ["b.png"], "bad": ["zz"]}))
    assert Dataset.open(root, split="train").names == ["c", "a"]
    assert Dataset.open(root, split="val").names == ["b"]
    with pytest.raises(DatasetError, match="available: bad, train, val"):
        Dataset.open(root, split="test")
    with pytest.raises(DatasetError, match="zz"):
        Dataset.open(root, split="bad")


def test_load_conversions(tmp_path):
    root = tmp_path / "plain"
    img16 = (np.arange(H * W).reshape(H, W) * 100).astype(np.uint16)
    save(root / "images" / "grey16.png", img16)
    rgba = np.dstack([frame(0)[0], np.zeros((H, W), np.uint8)])
    save(root / "images" / "rgba.png", rgba)
    mask01 = np.zeros((H, W), np.uint8)
    mask01[:3] = 1  # a 0/1 mask must not come back empty
    save(root / "masks" / "grey16.png", mask01)
    noisy = np.zeros((H, W, 3), np.uint8)
    noisy[5:10] = 255
    Image.fromarray(noisy).save(root / "masks" / "rgba.jpg", quality=60)  # JPEG mask: noise
    import tifffile

    depth = np.linspace(0, 3, H * W, dtype=np.float32).reshape(H, W)
    (root / "depth").mkdir()
    tifffile.imwrite(root / "depth" / "rgba.tif", depth)
    save(root / "depth" / "grey16.png", np.full((H, W), 51, np.uint8))
    ds = Dataset.open(root)
    image, mask, d = ds.load(ds.names.index("grey16"))
    expected = np.round(img16.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(image, np.dstack([expected] * 3))
    assert mask.sum() == 3 * W
    np.testing.assert_allclose(d, 0.2)
    image, mask, d = ds.load(ds.names.index("rgba"))
    np.testing.assert_array_equal(image, rgba[..., :3])
    np.testing.assert_array_equal(mask, noisy[..., 0] > 127)
    np.testing.assert_array_equal(d, depth)  # float TIFF as stored


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.open(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="images/ and masks/"):
        Dataset.open(tmp_path / "x")
    (tmp_path / "x" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="not a depthpolyp-dataset"):
        Dataset.open(tmp_path / "x")


def test_manifest_paths_stay_inside(tmp_path):
    root = tmp_path / "ds"
    write_sample_dataset(root)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["frames"][0]["image"] = "../../etc/passwd"
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="inside the dataset"):
        Dataset.open(root)


# ----------------------------------------------------------------------------- real data
@pytest.mark.data
def test_real_kvasir_split(kvasir_dir):
    train = Dataset.open(kvasir_dir, split="train")
    val = Dataset.open(kvasir_dir, split="val")
    assert len(train) == 800 and len(val) == 200
    assert not set(train.names) & set(val.names)
    assert len(Dataset.open(kvasir_dir, check_sizes=False)) == 1000
    image, mask, depth = val.load(0)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert mask.shape == image.shape[:2] and mask.dtype == bool and 0 < mask.mean() < 1
    assert depth is None
    assert val[0].image.stem == val[0].mask.stem == val.names[0]


@pytest.mark.data
def test_real_cvc(cvc_dir):
    ds = Dataset.open(cvc_dir)
    assert len(ds) == 612
    assert ds.names[:3] == ["1", "2", "3"] and ds.names[-1] == "612"
    image, mask, _ = ds.load(0)
    assert image.shape == (288, 384, 3) and mask.shape == (288, 384) and mask.any()


def test_damaged_files_and_16_bit_masks(tmp_path):
    """A truncated or non-image file in a dataset is a DatasetError naming it (the CLI prints it,
    no traceback); a 16-bit mask holding 0/255 is read as the polyp it is, not as an empty mask."""
    root = tmp_path / "plain"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    img = (np.random.default_rng(0).random((32, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(root / "images" / "a.png")
    mask16 = np.zeros((32, 40), np.uint16)
    mask16[8:20, 10:30] = 255
    Image.fromarray(mask16).save(root / "masks" / "a.png")
    ds = Dataset.open(root)
    _, m, _ = ds.load(0)
    assert m.sum() == 12 * 20
    # two values at any depth are "not 0"; many values (JPEG noise) are cut at 127
    from napari_depthpolyp.io.images import binarise_mask

    assert binarise_mask(np.array([[0, 2]], np.uint8)).tolist() == [[False, True]]
    assert binarise_mask(np.array([[0, 65535]], np.uint16)).tolist() == [[False, True]]
    noisy = np.array([[3, 120, 130, 252] + [0] * 16], np.uint8)  # 2 of 20 pixels grey: still a mask
    assert binarise_mask(noisy).tolist() == [[False, False, True, True] + [False] * 16]
    # damaged files: a truncated PNG and text posing as one
    data = (root / "images" / "a.png").read_bytes()
    (root / "images" / "a.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"a\.png.*cannot be read as an image"):
        Dataset.open(root).load(0)
    (root / "images" / "a.png").write_text("not an image")
    with pytest.raises(DatasetError, match=r"a\.png.*cannot be read as an image"):
        Dataset.open(root)


# ----------------------------------------------------------------------------- audit: masks, manifests
def _plain_pair(root: Path, mask: np.ndarray, mask_name: str = "a.png", **save_args) -> Path:
    """A one-sample plain folder: a random image a.png and ``mask`` saved as masks/``mask_name``."""
    img = (np.random.default_rng(1).random(mask.shape[:2] + (3,)) * 255).astype(np.uint8)
    save(root / "images" / "a.png", img)
    (root / "masks").mkdir(exist_ok=True)
    Image.fromarray(mask).save(root / "masks" / mask_name, **save_args)
    return root / "masks" / mask_name


def _blob(h: int = 64, w: int = 80) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - h / 2) ** 2 / (h / 3) ** 2 + (xx - w / 2) ** 2 / (w / 3) ** 2 < 1


def test_label_valued_masks_are_polyp_not_empty(tmp_path):
    """D3: a mask of small labels (0/1/2 from another tool, a 0/1 mask saved as JPEG) is the polyp
    it marks; Kvasir-style 0/255 JPEG noise (0..8 and 246..255) is still cut at 127."""
    truth = _blob()
    labels = truth.astype(np.uint8)
    labels[truth & (np.arange(truth.shape[1])[None] > truth.shape[1] // 2)] = 2
    _plain_pair(tmp_path / "labels", labels)
    np.testing.assert_array_equal(Dataset.open(tmp_path / "labels").load(0)[1], truth)
    _plain_pair(tmp_path / "jpeg01", truth.astype(np.uint8), "a.jpg", quality=95)
    stored = np.asarray(Image.open(tmp_path / "jpeg01" / "masks" / "a.jpg"))
    assert stored.max() < 128 and len(np.unique(stored)) > 2  # label-valued, with compression noise
    mask = Dataset.open(tmp_path / "jpeg01").load(0)[1]
    assert (mask & truth).sum() / (mask | truth).sum() > 0.95
    noisy = np.where(truth, 255, 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    noisy = np.where(truth, noisy - rng.integers(0, 10, truth.shape), noisy + rng.integers(0, 9, truth.shape))
    _plain_pair(tmp_path / "noise255", noisy.astype(np.uint8))
    np.testing.assert_array_equal(Dataset.open(tmp_path / "noise255").load(0)[1], truth)


@pytest.mark.parametrize("kind", ["photo", "gradient"])
def test_non_binary_mask_is_refused_naming_the_file(tmp_path, kind):
    """D4: a photo or a grey ramp in masks/ is not ground truth."""
    h, w = 64, 80
    if kind == "photo":
        yy, xx = np.mgrid[:h, :w]
        mask = np.dstack([(yy * 3) % 256, (xx * 3) % 256, (yy + xx) % 256]).astype(np.uint8)
    else:
        mask = np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))
    path = _plain_pair(tmp_path / kind, mask)
    ds = Dataset.open(tmp_path / kind)
    with pytest.raises(DatasetError, match=rf"{path}: not a binary mask: \d+% of its pixels are grey"):
        ds.load(0)


def test_anti_aliased_and_jpeg_masks_are_accepted(tmp_path):
    """D4's check leaves real masks alone: resized (anti-aliased) and heavily compressed ones."""
    truth = _blob(256, 320)
    small = Image.fromarray(truth.astype(np.uint8) * 255).resize((128, 102), Image.BILINEAR)
    _plain_pair(tmp_path / "aa", np.asarray(small))
    assert Dataset.open(tmp_path / "aa").load(0)[1].any()
    _plain_pair(tmp_path / "q20", truth.astype(np.uint8) * 255, "a.jpg", quality=20)
    assert Dataset.open(tmp_path / "q20").load(0)[1].sum() == pytest.approx(truth.sum(), rel=0.02)


@pytest.mark.parametrize("name", ["manifest.json", "split.json"])
def test_binary_manifest_or_split_names_the_file(tmp_path, name):
    """D8: a binary (non-UTF-8) manifest.json or split.json is a DatasetError, not a traceback."""
    root = tmp_path / "ds"
    write_sample_dataset(root)
    (root / name).write_bytes(b"\xff\xfe\x00\x01binary")
    with pytest.raises(DatasetError, match=rf"cannot read {root / name}: it is not a UTF-8 JSON text file"):
        Dataset.open(root, split="train" if name == "split.json" else None)


def test_file_changed_since_export_is_refused_at_open(tmp_path):
    """D11: opening a manifest dataset compares its files with the sha256 the manifest recorded."""
    root = tmp_path / "ds"
    write_sample_dataset(root)
    image = root / "images" / "video_0001.png"
    recorded = file_sha256(image)
    pixels = np.asarray(Image.open(image)).copy()
    pixels[0, 0] ^= 1
    save(image, pixels)
    now = file_sha256(image)
    with pytest.raises(DatasetError) as err:
        Dataset.open(root)
    assert str(err.value) == f"{image}: changed since it was exported: sha256 {recorded} recorded, {now} now"
    # only the samples opened are checked, and the check can be skipped (then verify() reports it)
    assert Dataset.open(root, statuses=("empty",)).names == ["video_0002"]
    assert "video_0001: image video_0001.png" in Dataset.open(root, verify=False).verify()[0]
    # a mask swapped with another frame's: both files named
    shutil.copy(root / "masks" / "video_0000.png", root / "masks" / "still.png")
    with pytest.raises(DatasetError, match=r"2 files changed since they were exported") as err:
        Dataset.open(root)
    assert str(image) in str(err.value) and str(root / "masks" / "still.png") in str(err.value)
    # a plain folder has no recorded hashes: nothing to compare
    shutil.copytree(root / "images", tmp_path / "plain" / "images")
    shutil.copytree(root / "masks", tmp_path / "plain" / "masks")
    assert len(Dataset.open(tmp_path / "plain")) == 4


def test_multi_page_and_five_channel_tiffs_are_refused(tmp_path):
    """A dataset image must be one image of at most 4 channels, as predict requires: a multi-page
    TIFF is not read as its first page, nor a 5-channel one as its first three channels."""
    import tifffile

    img = (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[5:10] = 255
    for kind, data in (("multipage", np.stack([img, img[::-1]])), ("5ch", np.dstack([img, img[..., :2]]))):
        root = tmp_path / kind
        (root / "images").mkdir(parents=True)
        tifffile.imwrite(root / "images" / "a.tif", data, planarconfig="contig")
        save(root / "masks" / "a.png", mask)
        problem = "holds 2 pages" if kind == "multipage" else r"has 5 channels \(30×20 px\)"
        with pytest.raises(DatasetError, match=rf"{root / 'images' / 'a.tif'}: (image )?{problem}"):
            Dataset.open(root)  # at open, from the header
        with pytest.raises(DatasetError, match=rf"{root / 'images' / 'a.tif'}: (image )?{problem}"):
            Dataset.open(root, check_sizes=False).load(0)  # and when read
    # planar and single-channel TIFFs are still one image
    root = tmp_path / "ok"
    (root / "images").mkdir(parents=True)
    tifffile.imwrite(root / "images" / "a.tif", np.moveaxis(img, -1, 0), photometric="rgb", planarconfig="separate")
    tifffile.imwrite(root / "images" / "b.tif", img[..., :1])
    save(root / "masks" / "a.png", mask)
    save(root / "masks" / "b.png", mask)
    ds = Dataset.open(root)
    np.testing.assert_array_equal(ds.load(0)[0], img)
    np.testing.assert_array_equal(ds.load(1)[0], np.repeat(img[..., :1], 3, axis=-1))
