"""Load the published DepthPolyp implementation's checkpoint into our network.

The reference's state_dict names (listed in ``shared/docs/reference-state-dict.json``) map
one-to-one onto ours: the module names are the same, and the only difference is that the decoder's
per-level channel projections are ``nn.Linear`` there (weight ``[256, C]``) and 1x1 convolutions
here (weight ``[256, C, 1, 1]``).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .network import DepthPolyp

_PROJ = re.compile(r"^decoder\.linear_c[1-4]\.proj\.weight$")
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net")


class ReferenceCheckpointError(ValueError):
    pass


def reference_to_ours(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename/reshape a reference state_dict into ours (strips a ``module.`` DataParallel prefix)."""
    out = {}
    for name, value in state.items():
        name = name.removeprefix("module.")
        if _PROJ.match(name) and value.ndim == 2:
            value = value[:, :, None, None]
        out[name] = value
    return out


def ours_to_reference(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse mapping: our state_dict with the reference's names and shapes."""
    return {k: (v[:, :, 0, 0] if _PROJ.match(k) else v) for k, v in state.items()}


def load_reference_checkpoint(path: str | Path, net: DepthPolyp | None = None) -> DepthPolyp:
    """Read a published ``.pth`` with ``torch.load(weights_only=True)`` (no pickle code runs) and
    load it strictly; a missing, extra or mis-shaped entry raises an error naming the file."""
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here is a bad file
        raise ReferenceCheckpointError(f"{path}: not a loadable weights-only checkpoint ({exc})") from exc
    for key in _WRAPPERS:
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ReferenceCheckpointError(f"{path}: holds no state_dict of tensors")
    net = net or DepthPolyp()
    state = reference_to_ours(obj)
    ours = net.state_dict()
    missing = sorted(set(ours) - set(state))
    extra = sorted(set(state) - set(ours))
    shapes = [k for k in set(ours) & set(state) if tuple(ours[k].shape) != tuple(state[k].shape)]
    if missing or extra or shapes:
        raise ReferenceCheckpointError(
            f"{path}: does not match DepthPolyp: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {extra[:5]} ({len(extra)}), wrong shape {sorted(shapes)[:5]} ({len(shapes)})"
        )
    net.load_state_dict(state, strict=True)
    return net
