"""Training losses.

Segmentation: soft Dice + BCE on logits (masks binarised). Depth: scale-and-shift-invariant L1,
multi-scale gradient matching and an FFT-amplitude term, each with its own weight. The two tasks are
balanced by Kendall-style uncertainty weighting with learnable log sigma^2, in the reference's form
``L = L_seg / sigma1^2 + L_depth / sigma2^2 + log(sigma1 * sigma2)``. ``depth_weight=0`` (or
``MultiTaskLoss(depth=False)``) turns the depth task off completely for the ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0, positives_only: bool = False) -> torch.Tensor:
    """1 - soft Dice per image, averaged. ``target`` is a {0, 1} map of the logits' shape.

    ``positives_only``: averaged over the images that hold a polyp only (0 for a batch without
    one). On an empty mask the soft Dice is ``S / (S + eps)`` for ``S`` the summed probability: about
    1 for any prediction short of p ~ 1e-5 everywhere (at p = 0.0025, right at a threshold of 0.3,
    it is 0.99), so empty frames add a near-constant term that dilutes the others' gradient, and a
    long enough run learns to crush every probability to reach it, at the polyps' expense. BCE
    already scores empty frames."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    per_image = 1.0 - (2.0 * inter + eps) / (p.sum(1) + t.sum(1) + eps)
    if not positives_only:
        return per_image.mean()
    has = t.sum(1) > 0
    return per_image[has].mean() if bool(has.any()) else per_image.sum() * 0.0


def seg_loss(logits: torch.Tensor, target: torch.Tensor, bce_weight: float = 1.0,
             dice_positives: bool = False) -> torch.Tensor:
    return (dice_loss(logits, target, positives_only=dice_positives)
            + bce_weight * F.binary_cross_entropy_with_logits(logits, target))


def distill_loss(logits: torch.Tensor, soft: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE of the polyp logits against ``soft``, other models' polyp probability on the same input
    (knowledge distillation), over the frames whose ``target`` holds a polyp only: on a polyp-free
    frame the target stays empty, and the teachers' false marks there are not taught (0 for a batch
    without a polyp)."""
    has = target.flatten(1).sum(1) > 0
    if not bool(has.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[has], soft[has].to(logits.dtype))


def _align_scale_shift(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Least-squares scale s and shift t per image so that s*pred + t best matches target.

    s may be negative: these terms do not fix the depth's sign. The exported model is oriented
    near = high afterwards (``orient.py``)."""
    b = pred.shape[0]
    p = pred.reshape(b, -1)
    t = target.reshape(b, -1)
    pm, tm = p.mean(1, keepdim=True), t.mean(1, keepdim=True)
    pc, tc = p - pm, t - tm
    s = (pc * tc).sum(1, keepdim=True) / (pc.pow(2).sum(1, keepdim=True) + 1e-6)
    return (s * pc + tm).reshape_as(pred)


def ssi_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant L1 (MiDaS-style alignment by least squares)."""
    return (_align_scale_shift(pred, target) - target).abs().mean()


def gradient_matching(pred: torch.Tensor, target: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale gradient matching on the aligned residual (MiDaS)."""
    diff = _align_scale_shift(pred, target) - target
    total = pred.new_zeros(())
    for k in range(scales):
        d = diff if k == 0 else F.avg_pool2d(diff, 2**k)
        total = total + (d[..., :, 1:] - d[..., :, :-1]).abs().mean() + (d[..., 1:, :] - d[..., :-1, :]).abs().mean()
    return total / scales


def fft_amplitude(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between log-amplitude spectra: penalises missing or spurious structure at any frequency."""
    fp = torch.fft.rfft2(pred.float(), norm="ortho").abs()
    ft = torch.fft.rfft2(target.float(), norm="ortho").abs()
    return (torch.log1p(fp) - torch.log1p(ft)).abs().mean()


@dataclass
class DepthLossWeights:
    ssi: float = 1.0
    grad: float = 0.5
    fft: float = 0.1


def depth_loss(pred: torch.Tensor, target: torch.Tensor, w: DepthLossWeights = DepthLossWeights()) -> dict:
    terms = {"depth_ssi": ssi_l1(pred, target)}
    if w.grad:
        terms["depth_grad"] = gradient_matching(pred, target)
    if w.fft:
        terms["depth_fft"] = fft_amplitude(pred, target)
    weights = {"depth_ssi": w.ssi, "depth_grad": w.grad, "depth_fft": w.fft}
    terms["depth"] = sum(weights[k] * v for k, v in terms.items())
    return terms


class MultiTaskLoss(nn.Module):
    """Segmentation + depth with learnable log sigma^2 per task (Kendall et al.)."""

    def __init__(self, depth: bool = True, uncertainty: bool = True, bce_weight: float = 1.0,
                 depth_weights: DepthLossWeights | None = None, dice_positives: bool = False,
                 distill_weight: float = 0.0):
        super().__init__()
        self.distill_weight = distill_weight
        self.dice_positives = dice_positives
        self.depth = depth
        self.uncertainty = uncertainty
        self.bce_weight = bce_weight
        self.depth_weights = depth_weights or DepthLossWeights()
        self.log_var = nn.Parameter(torch.zeros(2))

    def forward(self, logits: torch.Tensor, mask: torch.Tensor, depth: torch.Tensor | None,
                soft: torch.Tensor | None = None) -> dict:
        """``soft``: teachers' polyp probability (B, 1, H, W) for the distillation term, which joins
        the segmentation loss with weight ``distill_weight``."""
        logits = logits.float()
        seg = seg_loss(logits[:, 0:1], mask, self.bce_weight, self.dice_positives)
        out = {"seg": seg}
        if soft is not None and self.distill_weight:
            out["distill"] = distill_loss(logits[:, 0:1], soft, mask)
            seg = seg + self.distill_weight * out["distill"]
        if self.depth and depth is not None:
            pred_depth = torch.sigmoid(logits[:, 1:2])
            out.update(depth_loss(pred_depth, depth, self.depth_weights))
            if self.uncertainty:
                s = self.log_var
                total = torch.exp(-s[0]) * seg + torch.exp(-s[1]) * out["depth"] + 0.5 * (s[0] + s[1])
            else:
                total = seg + out["depth"]
        else:  # single task: the weighting would only rescale the learning rate
            total = seg
        out["total"] = total
        return out

    def sigmas(self) -> list[float]:
        return torch.exp(0.5 * self.log_var.detach()).tolist()
