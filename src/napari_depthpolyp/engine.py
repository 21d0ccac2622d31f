"""The one inference engine, used by the CLI, the napari widgets and evaluation.

``Predictor`` takes one frame or a stack (numpy or any lazy array indexable by frame), resizes frames
to the model's input size, runs ONNX Runtime (default) or torch, and returns per-frame polyp
probability and depth at the frame's own size. Masks are derived from the stored probability, so
re-thresholding never runs the network again. Long stacks stream in batches through
``iter_predict``, a generator that yields after every batch (progress, cancellation, live display)
and holds only one batch in memory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from .metrics import check_min_region, drop_small_regions
from .models import ModelDir, ModelError, resolve_model
from .preprocess import FrameError, resize_batch, resize_map, to_float_rgb

log = logging.getLogger(__name__)
BACKENDS = ("onnx", "torch")


def apply_threshold(probability: np.ndarray, threshold: float, min_region: float = 0.0) -> np.ndarray:
    """The mask at ``threshold`` (probability >= threshold), the one rule used everywhere; with
    ``min_region`` > 0, without its connected regions smaller than that share of the frame
    (``metrics.drop_small_regions``; off by default, ``docs/model-card.md`` has what it does)."""
    return drop_small_regions(probability >= threshold, min_region)


@dataclass
class FrameResult:
    index: int
    probability: np.ndarray  # float32 (H, W) in [0, 1]
    depth: np.ndarray  # float32 (H, W) in [0, 1], near = high
    threshold: float
    min_region: float = 0.0  # marked regions smaller than this share of the frame are dropped
    _summary: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray:
        return apply_threshold(self.probability, self.threshold, self.min_region)

    def mask_at(self, threshold: float) -> np.ndarray:
        return apply_threshold(self.probability, threshold, self.min_region)

    @property
    def summary(self) -> dict[str, Any]:
        """polyp_present, area_fraction, mean_prob_in_mask, uncertainty (no network call)."""
        if self._summary is None:
            from .metrics import frame_summary

            self._summary = frame_summary(self.probability, self.threshold, self.min_region)
        return self._summary


def stack_length(data) -> tuple[int, bool]:
    """(number of frames, is_stack) for a frame or a T×H×W[×C] stack."""
    shape = tuple(getattr(data, "shape", np.shape(data)))
    ndim = len(shape)
    if ndim == 4:
        return shape[0], True
    if ndim == 3 and shape[-1] not in (1, 3, 4):
        return shape[0], True  # T×H×W greyscale stack
    if ndim in (2, 3):
        return 1, False
    raise FrameError(
        f"got data of shape {shape}; expected one frame (H×W, H×W×3, H×W×4) or a stack (T×H×W×3)"
    )


class Predictor:
    """Runs a DepthPolyp model on frames.

    Parameters
    ----------
    model : a model id, name, directory or ``ModelDir`` (``None``: the default bundled model).
    backend : ``"onnx"`` (ONNX Runtime, default) or ``"torch"``; falls back to torch when the
        model has no ONNX graph or ONNX Runtime is missing.
    threshold : mask threshold (default: the model card's).
    batch_size : frames per network call when streaming a stack.
    num_threads : CPU threads (default: all cores).
    tta : flip averaging: each frame also runs mirrored left-right, top-bottom and both, and the
        four probability and depth maps are mirrored back and averaged (4x the network time; with
        depthpolyp-kvasir 1.10, +1.5 / +1.3 mean Dice clean / degraded on CVC-ClinicDB and -0.2 / -0.3
        on Kvasir-SEG val, ``docs/model-card.md``).
    min_region : drop marked regions smaller than this share of the frame (0, the default: keep
        all). With depthpolyp-kvasir 1.10, 0.0025 left val Dice unchanged (no val frame lost more
        than 0.01 of its Dice) and cut the polyp-free val squares marked from 34 % to 25 %
        (``docs/model-card.md``).
    """

    def __init__(
        self,
        model: str | os.PathLike | ModelDir | None = None,
        backend: str = "onnx",
        threshold: float | None = None,
        batch_size: int = 8,
        num_threads: int | None = None,
        tta: bool = False,
        min_region: float = 0.0,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model = model if isinstance(model, ModelDir) else resolve_model(model)
        self.input_size = int(self.model.card.input_size[0])
        self.threshold = float(self.model.card.default_threshold if threshold is None else threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ModelError(f"threshold {self.threshold:g} is not a probability strictly between 0 and 1")
        self.min_region = check_min_region(min_region)
        self.batch_size = max(1, int(batch_size))
        self.num_threads = num_threads or os.cpu_count() or 1
        self.backend = backend
        self.tta = bool(tta)
        self._session = None
        self._net = None
        if backend == "onnx":
            try:
                self._session = self._make_session()
            except ImportError as exc:  # onnxruntime missing, or no model.onnx in the model directory
                why = "onnxruntime is not installed" if getattr(exc, "name", None) == "onnxruntime" else str(exc)
                log.warning("%s: using the torch backend", why)
                self.backend = "torch"
        if self.backend == "torch":
            self.model.check_graph_file()  # card.json against model.onnx when there is one (onnx library)
            self._net = self.model.load_torch().to(memory_format=torch.channels_last)

    def _make_session(self):
        import onnxruntime as ort

        if not self.model.onnx_path.is_file():
            raise ImportError(f"{self.model.path}: no model.onnx in the model directory")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = self.num_threads
        opts.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(str(self.model.onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, ...), not ImportError
            raise ModelError(f"{self.model.onnx_path}: ONNX Runtime cannot load this graph ({exc})") from exc
        # card.json against the graph, with the facts the session already has (no second parse)
        self.model.check_graph(sess.get_modelmeta().custom_metadata_map,
                               {i.name: list(i.shape) for i in sess.get_inputs()},
                               [o.name for o in sess.get_outputs()])
        return sess

    def provenance(self) -> dict[str, Any]:
        return {**self.model.provenance(), "backend": self.backend, "threshold": self.threshold, "tta": self.tta,
                "min_region": self.min_region}

    # ------------------------------------------------------------------ network
    def run_batch(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, S, S) float in [0, 1] -> (probability, depth), each (B, S, S) float32."""
        if not self.tta:
            return self._run(x)
        b = x.shape[0]
        prob, depth = self._run(torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-2, -1)]))

        def unflip_mean(a: np.ndarray) -> np.ndarray:
            a = a.reshape(4, b, *a.shape[1:])
            return ((a[0] + a[1][..., ::-1] + a[2][..., ::-1, :] + a[3][..., ::-1, ::-1]) / 4).astype(np.float32)

        return unflip_mean(prob), unflip_mean(depth)

    def _run(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self._session is not None:
            prob, depth = self._session.run(None, {"image": x.numpy()})
            return prob[:, 0], depth[:, 0]
        with torch.inference_mode():
            logits = self._net(x.contiguous(memory_format=torch.channels_last))
            p = torch.sigmoid(logits).float().numpy()
        return p[:, 0], p[:, 1]

    # ------------------------------------------------------------------ frames
    def predict_frame(self, frame, index: int = 0, name: str = "frame") -> FrameResult:
        return self.predict_frames([frame], [index], [name])[0]

    def predict_frames(self, frames: Sequence, indices: Sequence[int], names: Sequence[str]) -> list[FrameResult]:
        """One network call on frames of any sizes (each result comes back at its frame's size)."""
        rgb = [to_float_rgb(f, n) for f, n in zip(frames, names)]
        prob, depth = self.run_batch(resize_batch(rgb, self.input_size))
        return [
            FrameResult(i, resize_map(p, f.shape[:2]), resize_map(d, f.shape[:2]), self.threshold, self.min_region)
            for i, f, p, d in zip(indices, rgb, prob, depth)
        ]

    def iter_predict(
        self, data, indices: Iterable[int] | None = None, source: str = "stack"
    ) -> Iterator[list[FrameResult]]:
        """Yield the results of each batch of frames. ``data`` is one frame or a stack; ``indices``
        picks frames of a stack (default: all). Only one batch is held at a time."""
        n, is_stack = stack_length(data)
        if not is_stack:
            yield [self.predict_frame(data, 0, source)]
            return
        order = list(range(n) if indices is None else indices)
        for i in order:
            if not 0 <= i < n:
                raise IndexError(f"{source}: frame {i} is outside 0..{n - 1}")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            frames, damage = [], None
            try:
                for i in chunk:
                    frames.append(np.asarray(data[i]))
            except Exception as exc:  # a damaged video: the frames decoded before the damage still count
                damage, chunk = exc, chunk[: len(frames)]
            if frames:
                yield self.predict_frames(frames, chunk, [f"{source} frame {i}" for i in chunk])
            if damage is not None:
                raise damage

    def predict(self, data, indices: Iterable[int] | None = None) -> list[FrameResult]:
        """All results at once (for short stacks; stream long videos with ``iter_predict``)."""
        return [r for batch in self.iter_predict(data, indices) for r in batch]
