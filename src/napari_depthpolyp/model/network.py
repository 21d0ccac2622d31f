"""DepthPolyp: MiT-B0 encoder + hierarchical Ghost decoder + one 2-channel head (polyp, depth)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import GhostDecoder
from .encoder import MiTB0

INPUT_SIZE = 224
POLYP, DEPTH = 0, 1


class DepthPolyp(nn.Module):
    """Returns logits (B, 2, H, W): channel 0 polyp, channel 1 relative inverse depth.

    The shared 1x1 head runs at stride 4 and is upsampled x4 with ``align_corners=True``, as in the
    published network. Apply a sigmoid outside (``ProbabilityWrapper`` does it for inference and
    export) so that the loss can use the numerically safe ``BCEWithLogits``.
    """

    def __init__(self, drop_path: float = 0.1):
        super().__init__()
        self.encoder = MiTB0(drop_path=drop_path)
        self.decoder = GhostDecoder()
        self.segmentation_head = nn.Sequential(nn.Conv2d(64, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.segmentation_head(self.decoder(self.encoder(x)))
        return F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=True)


class ProbabilityWrapper(nn.Module):
    """Inference/export view: image in [0, 1] -> (polyp probability, depth), each (B, 1, H, W)."""

    def __init__(self, net: DepthPolyp):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor):
        p = torch.sigmoid(self.net(image))
        return p[:, POLYP : POLYP + 1], p[:, DEPTH : DEPTH + 1]


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def count_macs(net: nn.Module, size: int = INPUT_SIZE, executed: bool = False) -> int:
    """Multiply-accumulates for one 3 x size x size frame, from torch's FlopCounterMode (FLOPs/2).

    By default the architecture's count, evaluated in the published order; ``executed=True`` counts
    what this implementation actually runs (level-1 projections folded, see ``GhostDecoder``)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    # The math attention kernel decomposes into matmuls the counter sees (the fused CPU kernel
    # is invisible to it and would drop ~38 MMACs of attention).
    was_training, folded = net.training, net.decoder.fold_projections
    net.eval()
    net.decoder.fold_projections = executed
    x = torch.zeros(1, 3, size, size)
    try:
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        net.train(was_training)
        net.decoder.fold_projections = folded
    return counter.get_total_flops() // 2
