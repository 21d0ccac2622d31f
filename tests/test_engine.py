"""The one inference engine: inputs it takes and refuses, sizes, backends, streaming, re-thresholding."""

import numpy as np
import pytest

from napari_depthpolyp.engine import Predictor, apply_threshold
from napari_depthpolyp.preprocess import FrameError


@pytest.fixture(scope="module")
def predictor(format_model):
    return Predictor(format_model, batch_size=4)


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((48, 64, 3), np.uint8),
        np.zeros((48, 64), np.uint8),
        np.zeros((48, 64, 4), np.uint8),
        np.full((48, 64, 3), 40000, np.uint16),
        np.random.default_rng(0).random((48, 64, 3), dtype=np.float32),
    ],
    ids=["rgb8", "grey", "rgba", "rgb16", "float"],
)
def test_accepts_common_frames_and_answers_at_their_size(predictor, frame):
    r = predictor.predict_frame(frame)
    assert r.probability.shape == r.depth.shape == r.mask.shape == (48, 64)
    assert r.probability.dtype == np.float32 and r.depth.dtype == np.float32
    assert 0 <= r.probability.min() and r.probability.max() <= 1


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((32, 32, 5), np.uint8), r"shape \(32, 32, 5\)"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        (np.full((32, 32, 3), np.nan, np.float32), "NaN"),
        (np.zeros((1, 1, 3), np.uint8), "too small"),
        (np.full((32, 32, 3), 255.0, np.float32), r"\[0, 1\]"),
        (np.zeros((32, 32), bool), "boolean"),
        (np.zeros((32, 32, 3), np.complex64), "dtype"),
    ],
    ids=["5ch", "empty", "nan", "1x1", "float255", "bool", "complex"],
)
def test_refuses_what_it_cannot_take_and_says_what_it_accepts(predictor, frame, message):
    with pytest.raises(FrameError, match=message) as err:
        predictor.predict_frame(frame, name="frame.png")
    assert "frame.png" in str(err.value) and "expected" in str(err.value)


def test_a_read_only_float_frame_is_taken_without_a_warning(predictor):
    import warnings

    frame = np.random.default_rng(1).random((48, 64, 3), dtype=np.float32)
    frame.flags.writeable = False  # as a memory-mapped float TIFF comes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert predictor.predict_frame(frame).probability.shape == (48, 64)


def test_frames_read_before_a_damaged_one_are_still_segmented(predictor):
    class Damaged:  # a stack whose frame 6 cannot be decoded, like a truncated video
        shape = (10, 32, 40, 3)

        def __getitem__(self, i):
            if i >= 6:
                raise OSError("frame 6 cannot be decoded")
            return np.zeros((32, 40, 3), np.uint8)

    seen = []
    with pytest.raises(OSError, match="frame 6"):
        for batch in predictor.iter_predict(Damaged()):  # batches of 4: 0-3, then 4-5 before the damage
            seen.append([r.index for r in batch])
    assert seen == [[0, 1, 2, 3], [4, 5]]


def test_wrong_layer_shape_is_refused(predictor):
    with pytest.raises(FrameError, match="expected one frame"):
        list(predictor.iter_predict(np.zeros((2, 3, 32, 32, 3), np.uint8)))


def test_rethresholding_never_runs_the_network(predictor, monkeypatch):
    r = predictor.predict_frame(np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    calls = []
    monkeypatch.setattr(predictor, "run_batch", lambda x: calls.append(x))
    for t in (0.1, 0.5, 0.9):
        assert np.array_equal(r.mask_at(t), apply_threshold(r.probability, t))
    assert calls == []


def test_min_region_drops_small_marked_regions_in_masks_and_summaries(format_model):
    frame = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    plain = Predictor(format_model).predict_frame(frame)
    p = Predictor(format_model, min_region=0.05)
    r = p.predict_frame(frame)
    assert r.min_region == 0.05 and plain.min_region == 0.0
    assert np.array_equal(r.probability, plain.probability)  # the network's answer is kept whole
    assert np.array_equal(r.mask, apply_threshold(r.probability, r.threshold, 0.05))
    assert r.mask.sum() <= plain.mask.sum() and not (r.mask & ~plain.mask).any()
    assert r.summary["area_fraction"] == pytest.approx(r.mask.mean())
    assert p.provenance()["min_region"] == 0.05 and Predictor(format_model).provenance()["min_region"] == 0.0
    with pytest.raises(ValueError, match="share of the frame"):
        Predictor(format_model, min_region=2.0)


class CountingStack:
    """A lazy T×H×W×3 stack that records which frames were read and when."""

    def __init__(self, n, h=40, w=56):
        self.shape = (n, h, w, 3)
        self.dtype = np.uint8
        self.reads = []

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, i):
        self.reads.append(i)
        return np.full(self.shape[1:], i % 255, np.uint8)


def test_streams_in_batches_holding_one_batch(predictor):
    stack = CountingStack(10)
    gen = predictor.iter_predict(stack)
    first = next(gen)
    assert [r.index for r in first] == [0, 1, 2, 3]
    assert stack.reads == [0, 1, 2, 3]  # nothing beyond the first batch was read yet
    rest = [r.index for b in gen for r in b]
    assert rest == list(range(4, 10))


def test_frame_subsets_and_range_checks(predictor):
    stack = CountingStack(6)
    got = [r.index for b in predictor.iter_predict(stack, indices=[5, 1]) for r in b]
    assert got == [5, 1]
    with pytest.raises(IndexError, match="outside"):
        list(predictor.iter_predict(stack, indices=[6]))


def test_onnx_and_torch_backends_agree(format_model):
    frame = np.random.default_rng(2).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    a = Predictor(format_model, backend="onnx").predict_frame(frame)
    b = Predictor(format_model, backend="torch").predict_frame(frame)
    assert np.abs(a.probability - b.probability).max() < 1e-4
    assert np.abs(a.depth - b.depth).max() < 1e-4


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_flip_averaging_mirrors_back_and_averages(format_model, backend):
    """tta=True: the mean of the four mirrored passes, each mirrored back; its own provenance."""
    import torch

    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((2, 3, 224, 224), dtype=np.float32))
    plain = Predictor(format_model, backend=backend)
    tta = Predictor(format_model, backend=backend, tta=True)
    views = [
        (x, lambda a: a),
        (x.flip(-1), lambda a: a[..., ::-1]),
        (x.flip(-2), lambda a: a[..., ::-1, :]),
        (x.flip(-2, -1), lambda a: a[..., ::-1, ::-1]),
    ]
    expected = [np.mean([back(plain.run_batch(v)[k]) for v, back in views], axis=0) for k in (0, 1)]
    prob, depth = tta.run_batch(x)
    assert prob.shape == depth.shape == (2, 224, 224) and prob.dtype == np.float32
    assert np.abs(prob - expected[0]).max() < 1e-5 and np.abs(depth - expected[1]).max() < 1e-5
    assert not np.allclose(prob, plain.run_batch(x)[0], atol=1e-4)  # the network is not mirror-symmetric
    assert tta.provenance()["tta"] is True and plain.provenance()["tta"] is False
