"""The DepthPolyp decoder: hierarchical Ghost factorisation, Interleaved Shuffle Fusion (ISF) and
Dynamic Group Gating (DGG), all at stride 4 (56x56 for a 224x224 input).

Module names follow the published implementation so that its state_dict maps one-to-one (see
``model/reference.py``); the per-level channel projections are 1x1 convolutions here (the
reference uses ``nn.Linear`` over channels: the same arithmetic, a cleaner export graph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EMBED = 256
GROUPS = 4


class GhostModule(nn.Module):
    """GFM(in -> out): returns the intrinsic (1x1 conv) and ghost (3x3 depthwise) halves apart."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        half = out_ch // 2
        self.primary_conv = nn.Sequential(
            nn.Conv2d(in_ch, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True)
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_preactivation(self.primary_conv[0](x))

    def from_preactivation(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two halves given the output of the 1x1 conv (before BN + ReLU)."""
        intrinsic = self.primary_conv[2](self.primary_conv[1](y))
        return intrinsic, self.cheap_operation(intrinsic)


def interleave_index(channels: int, groups: int = GROUPS) -> torch.Tensor:
    """Channel order of the shuffle ``view(groups, C/groups).T.flatten()`` as a gather index."""
    return torch.arange(channels).view(groups, channels // groups).t().reshape(-1)


class InterleavedShuffleFusion(nn.Module):
    """Interleave channels, 3x3 depthwise conv + BN + ReLU, scale each group's block by its own
    learnable scalar, and add to the un-shuffled input."""

    def __init__(self, channels: int, groups: int = GROUPS):
        super().__init__()
        self.groups = groups
        self.group_scale = nn.Parameter(torch.ones(groups))
        self.dw = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.register_buffer("order", interleave_index(channels, groups), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if x.is_contiguous(memory_format=torch.channels_last) and not torch.jit.is_tracing():
            # channels_last (training): interleave along the innermost axis, one copy, no layout flip
            xl = x.permute(0, 2, 3, 1)
            shuffled = xl.reshape(b, h, w, self.groups, c // self.groups).transpose(3, 4).reshape(b, h, w, c)
            shuffled = shuffled.permute(0, 3, 1, 2)
        else:  # NCHW (export): a single Gather
            shuffled = x.index_select(1, self.order)
        y = F.relu(self.bn(self.dw(shuffled)))
        scale = self.group_scale.to(y.dtype).repeat_interleave(c // self.groups)
        return x.to(y.dtype) + y * scale.view(1, -1, 1, 1)


class DynamicGroupGating(nn.Module):
    """Per-group mean -> Linear(G->G) -> sigmoid gate; X + gate*X, then Dropout2d(0.1)."""

    def __init__(self, channels: int = 64, groups: int = GROUPS, dropout: float = 0.1):
        super().__init__()
        self.groups = groups
        self.fc = nn.Linear(groups, groups)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.groups
        pooled = x.reshape(b, g, (c // g) * h * w).mean(-1)
        gate = torch.sigmoid(self.fc(pooled)).repeat_interleave(c // g, dim=1)
        return self.drop(x * (1.0 + gate.view(b, c, 1, 1)))


class GhostDecoder(nn.Module):
    """``fold_projections`` (default on) evaluates level 1 in a cheaper order with the same
    parameters and the same function: the per-level projection (C_i -> 256, with bias), the bilinear
    upsampling and the GFM's 1x1 conv (256 -> 64, no bias) are all linear per pixel, and bilinear
    weights sum to one, so ``conv(up(proj(x))) == up((W_conv W_proj) x + W_conv b_proj)``. The
    product of the two weight matrices is formed on the fly (gradients reach both), the 1x1 conv
    runs at the level's own resolution on 64 instead of 256 channels, and 64 rather than 256 channels
    are upsampled. Set it to False to evaluate in the reference's order (e.g. to count the
    architecture's MACs as published)."""

    def __init__(self, in_channels=(32, 64, 160, 256), embed: int = EMBED, fold_projections: bool = True):
        super().__init__()
        self.fold_projections = fold_projections
        for i, c in enumerate(in_channels, start=1):
            setattr(self, f"linear_c{i}", _Proj(c, embed))
        for i in (4, 3, 2, 1):
            setattr(self, f"gfm_c{i}_1", GhostModule(embed, embed // 2))
        self.cyclic_shuffle_enhancer_o = InterleavedShuffleFusion(embed)
        self.cyclic_shuffle_enhancer_e = InterleavedShuffleFusion(embed)
        self.gfm_c_o_1 = GhostModule(embed, embed // 2)
        self.gfm_c_e_1 = GhostModule(embed, embed // 2)
        self.gfm_c_o_2 = GhostModule(embed // 2, embed // 4)
        self.gfm_c_e_2 = GhostModule(embed // 2, embed // 4)
        self.gfm_c_o_3 = GhostModule(embed // 4, embed // 8)
        self.gfm_c_e_3 = GhostModule(embed // 4, embed // 8)
        self.gatefuser = DynamicGroupGating(embed // 4)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        halves = [self._level1(i, feats[i - 1], size) for i in (4, 3, 2, 1)]
        o = self.cyclic_shuffle_enhancer_o(torch.cat([h[0] for h in halves], 1))
        e = self.cyclic_shuffle_enhancer_e(torch.cat([h[1] for h in halves], 1))
        for level in (1, 2):
            oi, og = getattr(self, f"gfm_c_o_{level}")(o)
            ei, eg = getattr(self, f"gfm_c_e_{level}")(e)
            o, e = torch.cat([oi, ei], 1), torch.cat([og, eg], 1)
        oi, og = self.gfm_c_o_3(o)
        ei, eg = self.gfm_c_e_3(e)
        return self.gatefuser(torch.cat([oi, ei, og, eg], 1))


    def _level1(self, i: int, feat: torch.Tensor, size) -> tuple[torch.Tensor, torch.Tensor]:
        proj = getattr(self, f"linear_c{i}").proj
        gfm = getattr(self, f"gfm_c{i}_1")
        conv = gfm.primary_conv[0]
        if self.fold_projections:
            w = conv.weight.flatten(1)  # (64, 256)
            y = F.conv2d(feat, (w @ proj.weight.flatten(1))[:, :, None, None], w @ proj.bias)
            if i > 1:  # levels 2-4 are coarser than level 1
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        else:
            y = proj(feat)
            if i > 1:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            y = conv(y)
        return gfm.from_preactivation(y)


class _Proj(nn.Module):
    """Per-pixel linear projection over channels (named ``proj`` like the reference's MLP)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
