"""Export view of DepthPolyp: the same function and weights, arranged for a clean inference graph.

The training modules are written for autograd and channels_last training; a graph that ONNX Runtime
runs well on a CPU wants something else. ``ExportView(net)`` snapshots the weights of a
``DepthPolyp`` with eval semantics (BatchNorm running statistics, no dropout, no stochastic depth)
and evaluates the same function, ``(sigmoid(polyp logits), sigmoid(depth logits))``, in an order
that exports to few, cheap nodes. Each change and why:

* **Static shapes except the batch.** Every reshape uses integers fixed by the input size and
  ``-1`` for the batch, so the graph has no Shape/Gather/Unsqueeze/Concat arithmetic on shapes
  (the legacy export of the network carried ~94 Shape nodes and ~1,500 nodes in all).
* **Encoder tokens as a 2-D matrix** ``(B*H*W, C)``: each ``nn.Linear`` is one Gemm with its bias
  (a 3-D MatMul leaves the bias to a separate Add), LayerNorm normalises the last axis, and the
  key/value projection is split into two Gemms instead of one Gemm and a Split.
* **One layout change per convolution.** The tokens are NHWC; the Mix-FFN depthwise conv, the
  key/value reduction conv and the patch embeddings see ``permute(0, 3, 1, 2)`` in and
  ``permute(0, 2, 3, 1)`` out, which ONNX Runtime folds into the reorders to and from its blocked
  NCHWc layout (``channels_last``), so no Transpose runs for them.
* **Attention without extra nodes**: the 1/sqrt(d) scale is folded into the query weights, and
  stage 1 (one head) uses plain 3-D matmuls without head transposes.
* **A decoder that stays in NCHWc.** BatchNorm is folded into every conv, for levels 2-4 through the
  bilinear upsampling (a per-channel affine map commutes with interpolation weights that sum to one);
  the upsampling uses ``scale_factor`` (``half_pixel`` coordinates, which ONNX Runtime runs in its
  blocked layout, unlike ``sizes``); the ghost halves of the four level modules are one depthwise conv
  over their concatenation (a depthwise conv of a concatenation is the concatenation of the depthwise
  convs), and likewise for each later Ghost pair, so a pair costs one Concat and one depthwise conv
  instead of two of each. The ISF group scales are folded into its conv (``relu(a)*s == relu(s*a)``
  for ``s > 0``; a Mul is kept otherwise). Of the two ISF channel shuffles only one is a Gather (run
  outside NCHWc, between two reorders): the other is obtained as a second depthwise conv on the
  shuffled input, ``shuffle(relu(dw(o))) == relu(dw'(shuffle(o)))`` with ``dw'`` the shuffled conv.
* **Gating folded into the head.** ``head(x * (1 + gate))`` is computed from the head applied to each
  channel group (one 1x1 conv to 2 x 4 channels) and the four gates, so the 64-channel map is never
  rescaled, and the final x4 upsampling and sigmoids run on 2 channels in plain NCHW.

``tests/test_network.py`` checks that the view matches the network; ``models.export_onnx_model``
exports it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import interleave_index
from .encoder import HEADS, MLP_RATIO, SR_RATIOS, WIDTHS
from .network import DEPTH, INPUT_SIZE, POLYP, DepthPolyp


def _bn(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as a per-channel (scale, shift)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _fold(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d | None = None):
    """Conv weight and bias with an eval-mode BatchNorm after it folded in."""
    bias = torch.zeros(weight.shape[0]) if bias is None else bias
    if bn is None:
        return weight.clone(), bias.clone()
    scale, shift = _bn(bn)
    return weight * scale.view(-1, 1, 1, 1), bias * scale + shift


class _Conv(nn.Module):
    """A frozen conv (weights already folded)."""

    def __init__(self, weight, bias, stride=1, padding=0, groups=1, relu=False):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().contiguous())
        self.register_buffer("bias", bias.detach().clone().contiguous())
        self.stride, self.padding, self.groups, self.relu = stride, padding, groups, relu

    def forward(self, x):
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        return F.relu(y) if self.relu else y


class _Linear(nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.register_buffer("weight", weight.detach().clone().contiguous())
        self.register_buffer("bias", bias.detach().clone().contiguous())

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class _Norm(nn.Module):
    def __init__(self, ln: nn.LayerNorm):
        super().__init__()
        self.register_buffer("weight", ln.weight.detach().clone())
        self.register_buffer("bias", ln.bias.detach().clone())
        self.eps = ln.eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


def _conv(conv: nn.Conv2d, bn=None, relu=False) -> _Conv:
    w, b = _fold(conv.weight, conv.bias, bn)
    return _Conv(w, b, conv.stride, conv.padding, conv.groups, relu)


class _Stage(nn.Module):
    """Patch embedding + blocks + norm of one MiT stage, tokens as a (B*H*W, C) matrix."""

    def __init__(self, enc, i: int, h: int, w: int):
        super().__init__()
        pe = getattr(enc, f"patch_embed{i}")
        self.embed, self.embed_norm = _conv(pe.proj), _Norm(pe.norm)
        self.h, self.w = h, w
        self.c, self.heads, self.sr = WIDTHS[i - 1], HEADS[i - 1], SR_RATIOS[i - 1]
        self.blocks = nn.ModuleList(self._block(b) for b in getattr(enc, f"block{i}"))
        self.norm = _Norm(getattr(enc, f"norm{i}"))

    def _block(self, blk) -> nn.ModuleDict:
        a, c = blk.attn, self.c
        scale = 1.0 / math.sqrt(c // self.heads)  # scaled_dot_product_attention's default
        m = {
            "norm1": _Norm(blk.norm1),
            "q": _Linear(a.q.weight * scale, a.q.bias * scale),
            "k": _Linear(a.kv.weight[:c], a.kv.bias[:c]),
            "v": _Linear(a.kv.weight[c:], a.kv.bias[c:]),
            "proj": _Linear(a.proj.weight, a.proj.bias),
            "norm2": _Norm(blk.norm2),
            "fc1": _Linear(blk.mlp.fc1.weight, blk.mlp.fc1.bias),
            "dw": _conv(blk.mlp.dwconv.dwconv),
            "fc2": _Linear(blk.mlp.fc2.weight, blk.mlp.fc2.bias),
        }
        if self.sr > 1:
            m["sr"], m["sr_norm"] = _conv(a.sr), _Norm(a.norm)
        return nn.ModuleDict(m)

    @staticmethod
    def _nchw(t, h, w, c):
        """(B*H*W, C) tokens -> (B, C, H, W); channel counts are passed as integers, never read
        from a tensor, so that no exporter turns them into Shape nodes."""
        return t.reshape(-1, h, w, c).permute(0, 3, 1, 2)

    @staticmethod
    def _tokens(x, c):
        return x.permute(0, 2, 3, 1).reshape(-1, c)

    def _attention(self, m, t):
        h, w, c, heads = self.h, self.w, self.c, self.heads
        n, d = h * w, c // heads
        q = m["q"](t)
        if self.sr > 1:
            t = m["sr_norm"](self._tokens(m["sr"](self._nchw(t, h, w, c)), c))
        k, v = m["k"](t), m["v"](t)
        kv_n = (h // self.sr) * (w // self.sr)
        if heads == 1:
            att = torch.softmax(q.reshape(-1, n, c) @ k.reshape(-1, kv_n, c).transpose(1, 2), -1)
            out = att @ v.reshape(-1, kv_n, c)
        else:
            q = q.reshape(-1, n, heads, d).transpose(1, 2)
            k = k.reshape(-1, kv_n, heads, d).permute(0, 2, 3, 1)
            v = v.reshape(-1, kv_n, heads, d).transpose(1, 2)
            out = (torch.softmax(q @ k, -1) @ v).transpose(1, 2)
        return m["proj"](out.reshape(-1, c))

    def _mlp(self, m, t):
        hidden = MLP_RATIO * self.c
        y = self._tokens(m["dw"](self._nchw(m["fc1"](t), self.h, self.w, hidden)), hidden)
        return m["fc2"](F.gelu(y))

    def forward(self, x):
        t = self.embed_norm(self._tokens(self.embed(x), self.c))
        for m in self.blocks:
            t = t + self._attention(m, m["norm1"](t))
            t = t + self._mlp(m, m["norm2"](t))
        return self._nchw(self.norm(t), self.h, self.w, self.c)


class _ISF(nn.Module):
    """Interleaved Shuffle Fusion with BN (and the group scales when positive) folded into the conv."""

    def __init__(self, isf):
        super().__init__()
        w, b = _fold(isf.dw.weight, None, isf.bn)
        c = w.shape[0]
        s = isf.group_scale.detach().repeat_interleave(c // isf.groups)
        self.fold_scale = bool((s > 0).all())
        if self.fold_scale:
            w, b = w * s.view(-1, 1, 1, 1), b * s
        self.register_buffer("scale", s.view(1, -1, 1, 1).clone())
        self.register_buffer("order", interleave_index(c, isf.groups))
        self.conv = _Conv(w, b, 1, 1, c, relu=True)

    def forward(self, x, shuffled):
        """``shuffled`` is ``x`` with its channels interleaved (``x.index_select(1, order)``)."""
        y = self.conv(shuffled)
        return x + (y if self.fold_scale else y * self.scale)


def _ghost_pair(*gfms):
    """The 1x1 convs of Ghost modules (BN folded, ReLU) and one depthwise conv over their
    concatenated intrinsic halves (the modules' cheap operations, concatenated)."""
    convs = [_conv(g.primary_conv[0], g.primary_conv[1], relu=True) for g in gfms]
    ws, bs = zip(*(_fold(g.cheap_operation[0].weight, None, g.cheap_operation[1]) for g in gfms))
    w = torch.cat(ws)
    return convs, _Conv(w, torch.cat(bs), 1, 1, w.shape[0], relu=True)


class _Decoder(nn.Module):
    def __init__(self, dec):
        super().__init__()
        self.levels = nn.ModuleList()
        gws, gbs = [], []
        for i in (4, 3, 2, 1):
            proj, gfm = getattr(dec, f"linear_c{i}").proj, getattr(dec, f"gfm_c{i}_1")
            w1 = gfm.primary_conv[0].weight.flatten(1)  # (64, 256)
            w = (w1 @ proj.weight.flatten(1))[:, :, None, None]
            w, b = _fold(w, w1 @ proj.bias, gfm.primary_conv[1])
            self.levels.append(_Conv(w, b))
            gw, gb = _fold(gfm.cheap_operation[0].weight, None, gfm.cheap_operation[1])
            gws.append(gw)
            gbs.append(gb)
        gw, gb = torch.cat(gws), torch.cat(gbs)
        self.ghost1 = _Conv(gw, gb, 1, 1, len(gw), relu=True)
        self.isf_o, self.isf_e = _ISF(dec.cyclic_shuffle_enhancer_o), _ISF(dec.cyclic_shuffle_enhancer_e)
        order = self.isf_o.order
        self.ghost1_shuffled = _Conv(gw[order], gb[order], 1, 1, len(gw), relu=True)
        self.stages = nn.ModuleList()
        for level in (1, 2, 3):
            convs, ghost = _ghost_pair(getattr(dec, f"gfm_c_o_{level}"), getattr(dec, f"gfm_c_e_{level}"))
            self.stages.append(nn.ModuleList([*convs, ghost]))

    def forward(self, feats):
        ys = []
        for conv, i in zip(self.levels, (4, 3, 2, 1)):
            y = conv(feats[i - 1])
            if i > 1:
                y = F.interpolate(y, scale_factor=2 ** (i - 1), mode="bilinear", align_corners=False)
            ys.append(y)
        o = F.relu(torch.cat(ys, 1))
        o_shuffled = o.index_select(1, self.isf_o.order)
        e, e_shuffled = self.ghost1(o), self.ghost1_shuffled(o_shuffled)
        o, e = self.isf_o(o, o_shuffled), self.isf_e(e, e_shuffled)
        for conv_o, conv_e, ghost in self.stages:
            o = torch.cat([conv_o(o), conv_e(e)], 1)
            e = ghost(o)
        return torch.cat([o, e], 1)


class _GatedHead(nn.Module):
    """Dynamic Group Gating followed by the 1x1 head, without scaling the 64-channel map.

    ``head(x * (1 + gate))`` with one gate per channel group equals
    ``sum_g (1 + gate_g) * z_g + bias`` where ``z_g`` is the head applied to group ``g`` alone. One
    1x1 conv gives all ``z_g`` (2 x G channels); the gate comes from a global average pool (which
    ONNX Runtime runs in its blocked layout) and one Gemm that also does the per-group averaging.
    """

    def __init__(self, dgg, head: nn.Conv2d, grid: tuple[int, int]):
        super().__init__()
        g, w = dgg.groups, head.weight.flatten(1)  # (2, C)
        k, c = w.shape
        member = torch.zeros(g, c)
        for j in range(g):
            member[j, j * (c // g) : (j + 1) * (c // g)] = 1.0
        z = (w[:, None, :] * member[None]).reshape(k * g, c)  # row (k, g): head k on group g only
        self.z = _Conv(z[:, :, None, None], torch.zeros(k * g))
        self.gate = _Linear(dgg.fc.weight @ (member / member.sum(1, keepdim=True)), dgg.fc.bias)
        self.register_buffer("bias", head.bias.detach().view(1, k, 1, 1).clone())
        self.k, self.g, self.grid = k, g, grid

    def forward(self, x):
        h, w = self.grid
        pooled = F.avg_pool2d(x, (h, w)).flatten(1)  # an AveragePool: stays in NCHWc
        gate = 1.0 + torch.sigmoid(self.gate(pooled))
        z = self.z(x).reshape(-1, self.k, self.g, h * w)
        logits = torch.matmul(gate.reshape(-1, 1, 1, self.g), z).reshape(-1, self.k, h, w)
        return logits + self.bias


class ExportView(nn.Module):
    """image (B, 3, H, W) in [0, 1] -> (polyp probability, depth), each (B, 1, H, W).

    A snapshot of ``net``'s weights (BatchNorm with its running statistics, i.e. eval semantics,
    whatever mode ``net`` is in; ``net`` itself is not modified). ``size`` is fixed in the graph
    and must be a multiple of 32 on both sides, so that every stage halves exactly and the
    decoder's upsampling to the stride-4 grid is by a whole factor (the network's ``size=``
    interpolation then equals ``scale_factor=`` interpolation).
    """

    def __init__(self, net: DepthPolyp, size: int | tuple[int, int] = INPUT_SIZE):
        super().__init__()
        h, w = (size, size) if isinstance(size, int) else size
        if h % 32 or w % 32:
            raise ValueError(f"export input size must be a multiple of 32 on both sides, got {h}x{w}")
        with torch.no_grad():
            grids = [(h // s, w // s) for s in (4, 8, 16, 32)]
            self.stages = nn.ModuleList(_Stage(net.encoder, i, *grids[i - 1]) for i in range(1, 5))
            self.decoder = _Decoder(net.decoder)
            self.head = _GatedHead(net.decoder.gatefuser, net.segmentation_head[0], grids[0])
        self.eval()

    def forward(self, image):
        feats, x = [], image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        logits = F.interpolate(self.head(self.decoder(feats)), scale_factor=4, mode="bilinear", align_corners=True)
        p = torch.sigmoid(logits)
        return p[:, POLYP : POLYP + 1], p[:, DEPTH : DEPTH + 1]
