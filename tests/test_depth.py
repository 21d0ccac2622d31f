"""Pseudo-depth teachers."""

import numpy as np
import pytest
import torch

from napari_depthpolyp.depth import (
    DepthTeacher,
    LightFalloffTeacher,
    OnnxDepthTeacher,
    PrecomputedDepthTeacher,
    make_teacher,
)


def test_falloff_brighter_is_nearer_and_border_is_far():
    yy, xx = np.mgrid[0:224, 0:224]
    r = np.hypot(yy - 112, xx - 60)
    lum = np.clip(0.9 - r / 300.0, 0, 1)  # bright (near) wall on the left, dark lumen to the right
    img = np.repeat(lum[..., None], 3, -1).astype(np.float32)
    img[:10] = 0.0  # endoscope border
    d = LightFalloffTeacher()(img)
    assert d.shape == (224, 224) and d.dtype == np.float32
    assert 0.0 <= d.min() and d.max() <= 1.0
    assert d[112, 60] > d[112, 200]
    assert d[:8].max() == 0.0


def test_falloff_on_a_real_frame_follows_brightness(kvasir_dir):
    from napari_depthpolyp.dataset import Dataset
    from napari_depthpolyp.preprocess import resize_batch, to_float_rgb

    image, _, _ = Dataset.open(kvasir_dir, split="val").load(3)
    x = resize_batch([to_float_rgb(image)], 224)[0].permute(1, 2, 0).numpy()
    d = LightFalloffTeacher()(x)
    lum = x.mean(-1)
    inside = lum > 0.1
    assert np.corrcoef(d[inside], lum[inside])[0, 1] > 0.5


class _TinyDepth(torch.nn.Module):
    def forward(self, x):  # "depth" = blurred mean intensity, 1 output channel
        return torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 3, 1, 1)


@pytest.mark.parametrize("dynamic", [False, True])
def test_onnx_teacher_reads_its_shapes_from_the_file(tmp_path, dynamic):
    path = tmp_path / "depth.onnx"
    kw = {"dynamic_axes": {"x": {2: "H", 3: "W"}}} if dynamic else {}
    torch.onnx.export(_TinyDepth(), (torch.rand(1, 3, 56, 70),), str(path), input_names=["x"],
                      output_names=["d"], dynamo=False, **kw)
    teacher = OnnxDepthTeacher(path, size=84, imagenet_norm=False)
    assert teacher.hw == ((84, 84) if dynamic else (56, 70))
    img = np.zeros((100, 120, 3), np.float32)
    img[:, :60] = 0.8
    d = teacher(img)
    assert d.shape == (100, 120) and d.min() >= 0 and d.max() <= 1
    assert d[50, 10] > d[50, 110]
    assert isinstance(make_teacher(str(path)), OnnxDepthTeacher)


def test_onnx_teacher_refuses_a_broken_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="broken.onnx"):
        OnnxDepthTeacher(bad)


def test_precomputed_teacher(tmp_path):
    from napari_depthpolyp.io import write_depth

    d = np.linspace(0, 1, 40 * 50, dtype=np.float32).reshape(40, 50)
    write_depth(tmp_path / "f1.png", d)
    t = PrecomputedDepthTeacher(tmp_path)
    got = t.lookup("f1", (40, 50))
    assert np.abs(got - d).max() < 1e-4
    assert t.lookup("f1", (20, 25)).shape == (20, 25)
    with pytest.raises(ValueError, match="f2"):
        t.lookup("f2", (40, 50))
    with pytest.raises(ValueError, match="folder"):
        make_teacher("precomputed")
    with pytest.raises(ValueError, match="unknown depth teacher"):
        make_teacher("midas")


# ---------------------------------------------------------------------------------------------
# light fall-off: shape, range, degenerate frames, highlights, real frames


def test_falloff_range_shape_and_degenerate_frames():
    teacher = make_teacher(None)
    assert isinstance(teacher, LightFalloffTeacher) and isinstance(teacher, DepthTeacher)
    rng = np.random.default_rng(0)
    for shape in [(101, 157, 3), (224, 224, 3), (48, 40, 3)]:
        d = teacher(rng.random(shape, dtype=np.float32))
        assert d.shape == shape[:2] and d.dtype == np.float32 and np.isfinite(d).all()
        assert d.min() >= 0.0 and d.max() <= 1.0
    for value in (0.0, 0.5):  # black or flat frames: no NaN, all zeros
        d = teacher(np.full((64, 64, 3), value, np.float32))
        assert np.isfinite(d).all() and d.max() == 0.0
    with pytest.raises(TypeError):
        teacher(np.zeros((8, 8, 3), np.uint8))


def test_falloff_ignores_a_specular_highlight():
    yy, xx = np.mgrid[0:224, 0:224]
    lum = 0.3 + 0.4 * xx / 223.0  # brighter (nearer) to the right
    img = np.repeat(lum[..., None], 3, -1).astype(np.float32)
    spot = (yy - 112) ** 2 + (xx - 40) ** 2 < 12**2  # a white glint on the far (left) side
    img[spot] = 1.0
    d = LightFalloffTeacher()(img)
    assert d[112, 40] < 0.4 and d[112, 210] > 0.8


def test_falloff_large_highlight_stays_near_and_border_text_stays_far():
    yy, xx = np.mgrid[0:224, 0:224]
    lum = 0.25 + 0.5 * xx / 223.0
    img = np.repeat(lum[..., None], 3, -1).astype(np.float32)
    img[(yy - 112) ** 2 + (xx - 180) ** 2 < 35**2] = 1.0  # a big glint on the near (right) wall
    img[:, :24] = 0.0  # black border on the left ...
    img[100:108, 6:18] = 0.95  # ... with burnt-in white "text" in it
    d = LightFalloffTeacher()(img)
    assert d[112, 180] > max(0.5, d[112, 100])  # the glint is not a hole of "far"
    assert d[104, 12] == 0.0 and d[:, :20].max() == 0.0


@pytest.mark.data
def test_falloff_is_high_on_the_bright_near_wall_and_low_in_the_dark_lumen(kvasir_dir):
    import json

    from PIL import Image
    from scipy import ndimage as ndi

    names = json.loads((kvasir_dir / "split.json").read_text())["val"][:4]
    for name in names:
        rgb = Image.open(kvasir_dir / "images" / f"{name}.jpg").convert("RGB").resize((224, 224), Image.BILINEAR)
        x = np.asarray(rgb, np.float32) / 255.0
        d = LightFalloffTeacher()(x)
        smooth = ndi.gaussian_filter(x.mean(-1), 6)
        field = ndi.binary_erosion(x.mean(-1) > 0.08, iterations=6)  # inside the endoscope's field
        lo, hi = np.percentile(smooth[field], [10, 90])
        near, far = d[field & (smooth >= hi)].mean(), d[field & (smooth <= lo)].mean()
        assert near > far + 0.3, (name, near, far)
        r = np.corrcoef(d[field], smooth[field])[0, 1]
        assert r > 0.7, (name, r)


# ---------------------------------------------------------------------------------------------
# ONNX teacher: sizes, channels, inversion


def _onnx_model(path, in_shape, channels_out=1):
    """A tiny ONNX graph built with onnx.helper: depth = mean over the input channels."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("depth", TensorProto.FLOAT, [in_shape[0], channels_out, in_shape[2], in_shape[3]])
    node = helper.make_node("ReduceMean", ["image"], ["depth"], axes=[1], keepdims=1)
    model = helper.make_model(helper.make_graph([node], "tiny", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_teacher_snaps_dynamic_sizes_and_can_invert(tmp_path):
    path = _onnx_model(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    teacher = OnnxDepthTeacher(path, size=100, imagenet_norm=True)
    assert teacher.hw == (98, 98) and teacher.input_name == "image" and teacher.dynamic
    img = np.zeros((60, 90, 3), np.float32)
    img[:, 45:] = 0.9
    d = teacher(img)
    assert d.shape == (60, 90) and d[30, 80] == pytest.approx(1.0) and d[30, 5] == pytest.approx(0.0)
    flipped = OnnxDepthTeacher(path, size=100, inverse=False)(img)
    assert flipped[30, 80] == pytest.approx(0.0)


def test_onnx_teacher_refuses_a_non_rgb_input_naming_the_file(tmp_path):
    path = _onnx_model(tmp_path / "grey_model.onnx", [1, 1, 32, 32])
    with pytest.raises(ValueError, match="grey_model.onnx"):
        OnnxDepthTeacher(path)
    with pytest.raises(ValueError, match="missing.onnx"):
        make_teacher(str(tmp_path / "missing.onnx"))


# ---------------------------------------------------------------------------------------------
# precomputed maps


def test_precomputed_float_tiff_any_scale_names_with_extensions(tmp_path):
    from napari_depthpolyp.io import write_depth

    (tmp_path / "depth").mkdir()
    raw = np.linspace(3.0, 40.0, 30 * 20, dtype=np.float32).reshape(30, 20)  # raw disparity, not [0, 1]
    write_depth(tmp_path / "depth" / "frame7.tif", raw)
    teacher = make_teacher(f"precomputed:{tmp_path}")
    assert isinstance(teacher, PrecomputedDepthTeacher)
    got = teacher.lookup("some/folder/frame7.jpg", (60, 40, 3))
    assert got.shape == (60, 40) and got.min() == 0.0 and got.max() == 1.0
    assert got[-1, -1] > got[0, 0]
    inverted = PrecomputedDepthTeacher(tmp_path, inverse=False).lookup("frame7", (60, 40))
    assert np.allclose(inverted, 1.0 - got)
    with pytest.raises(TypeError, match="lookup"):
        teacher(np.zeros((8, 8, 3), np.float32))


def test_core_modules_import_no_gui():
    import subprocess
    import sys

    code = ("import sys, napari_depthpolyp.degrade, napari_depthpolyp.depth; "
            "bad = [m for m in ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
