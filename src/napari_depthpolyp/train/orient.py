"""Which way round the depth channel points.

The depth losses align the prediction to the teacher with a least-squares scale and shift per image
(MiDaS), and that scale may come out negative: the loss is as happy with "near = low" as with
"near = high". Our output contract is relative *inverse* depth, near = high (what the napari depth
layer and ``predict``'s 16-bit PNGs show). So every exported model is oriented: the correlation of its
depth with the light fall-off prior (near = bright, ``docs/pseudo-depth.md``) is measured on frames,
and if it is negative the depth row of the 1×1 head is negated. ``sigmoid(-z) = 1 - sigmoid(z)``, so
the flip is exact: the depth becomes ``1 - depth`` and the polyp channel is untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

HEAD_WEIGHT = "segmentation_head.0.weight"
HEAD_BIAS = "segmentation_head.0.bias"
DEPTH_CHANNEL = 1


def flip_depth(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same weights with the depth output replaced by ``1 - depth`` (a new dict; ``state`` is kept)."""
    out = dict(state)
    for key in (HEAD_WEIGHT, HEAD_BIAS):
        t = state[key].clone()
        t[DEPTH_CHANNEL] = -t[DEPTH_CHANNEL]
        out[key] = t
    return out


@torch.inference_mode()
def depth_prior_correlation(state: dict[str, torch.Tensor], images: torch.Tensor) -> float:
    """Mean Pearson correlation between the network's depth and the light fall-off prior on
    ``images`` (N×3×H×W floats in [0, 1])."""
    from ..depth import LightFalloffTeacher
    from ..metrics import pearson
    from ..model import DepthPolyp

    net = DepthPolyp()
    net.load_state_dict(state)
    net.eval()
    prior = LightFalloffTeacher()
    corr = []
    for s in range(0, len(images), 32):
        x = images[s : s + 32].float()
        depth = torch.sigmoid(net(x)[:, DEPTH_CHANNEL].float()).numpy()
        for frame, d in zip(x.permute(0, 2, 3, 1).numpy(), depth):
            corr.append(pearson(d, prior(np.ascontiguousarray(frame))))
    return float(np.mean(corr))


def orient_depth(state: dict[str, torch.Tensor], images: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``state`` with its depth pointing near = high, and a record of the check for the model card."""
    corr = depth_prior_correlation(state, images)
    flipped = corr < 0
    record = {"reference": "light fall-off prior", "frames": int(len(images)),
              "correlation": abs(corr), "flipped": bool(flipped)}
    return (flip_depth(state) if flipped else state), record
