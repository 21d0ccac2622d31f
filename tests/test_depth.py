"""Pseudo-depth teachers."""

import numpy as np
import pytest
import torch

from napari_depthpolyp.depth import (
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
